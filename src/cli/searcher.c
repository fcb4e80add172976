/* searcher.c — opening an index and its shards and searching them as one (used by scan and batch). */
#include "cli/searcher.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int searcher_open(searcher *s, const char *const *dirs, int n)
{
    memset(s, 0, sizeof *s);
    if (n > SEARCHER_MAX_SHARDS) {
        cli_error("at most %d shards", SEARCHER_MAX_SHARDS);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        provscan_error err;
        if (provscan_index_open(dirs[i], 0, &s->shard[i], &err) != PROVSCAN_OK ||
            provscan_index_prepare(s->shard[i], &err) != PROVSCAN_OK) {
            if (s->shard[i])
                s->n++;
            cli_error("%s", err.message);
            searcher_close(s);
            return -1;
        }
        s->n++;
    }
    return 0;
}

void searcher_close(searcher *s)
{
    for (int i = 0; i < s->n; i++)
        provscan_index_close(s->shard[i]);
    s->n = 0;
}

provscan_status searcher_search(searcher *s, const provscan_analysis *queries, size_t nq, const scan_policy *policy,
                                int jobs, provscan_results *out, provscan_error *err)
{
    provscan_search_options opts = {.top_k = policy->top_k,
                                    .max_distance = policy->list_distance,
                                    .jobs = jobs,
                                    .local = policy->local,
                                    .min_probability = policy->possible_probability / 4,
                                    .local_candidates = policy->local_candidates,
                                    .no_windows = policy->no_windows};
    provscan_status st = provscan_index_search_shards(s->shard, (size_t)s->n, queries, nq, &opts, out, err);
    if (st != PROVSCAN_OK)
        provscan_results_free(out);
    return st;
}

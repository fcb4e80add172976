/* searcher.h — an index and its shards, searched as one. */
#ifndef PROVSCAN_SEARCHER_H
#define PROVSCAN_SEARCHER_H

#include "cli/report.h"
#include "provscan.h"

#define SEARCHER_MAX_SHARDS 256

typedef struct searcher {
    provscan_index *shard[SEARCHER_MAX_SHARDS];
    int n;
} searcher;

/* Opens every index read-only; on failure prints why and returns -1. */
int searcher_open(searcher *s, const char *const *dirs, int n);
void searcher_close(searcher *s);
/* Searches every shard and merges: the same top-K as one index holding all their works. */
provscan_status searcher_search(searcher *s, const provscan_analysis *queries, size_t nq, const scan_policy *policy,
                                int jobs, provscan_results *out, provscan_error *err);

#endif

/* cmd_merge.c — `provscan merge`: combines batch outputs of shards into what one index would have given. */
#include "cli/cli.h"
#include "cli/report.h"
#include "cli/scan_common.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>


static void usage(FILE *f)
{
    fprintf(f,
            "Usage: provscan merge [OPTIONS] SHARD1.jsonl SHARD2.jsonl...\n"
            "Merges the outputs of 'batch' (or 'scan --json') run on the shards of a corpus: for each query\n"
            "the matches of all shards are pooled, ordered by score, PDQ distance and path, cut to the top\n"
            "K and given their verdicts again, as one index holding every shard would report them.\n"
            "The merged records go to standard output, in the order queries first appear.\n\n"
            "  -k, --top K             matches per query (default 5; use the value the shards ran with)\n"
            "  -t, --threshold P       calibrated probability counted as a match (default 0.5)\n"
            "  -p, --possible P        probability still reported as a possible copy (default 0.1)\n"
            "  -h, --help              this help\n\n"
            "Exit status: 0 nothing flagged; 1 something flagged; 2 an input could not be read.\n");
}

typedef struct entry {
    char *query;
    json_t *record;
} entry;

static int cmp_matches(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    double sx = json_real_value(json_object_get(x, "score")), sy = json_real_value(json_object_get(y, "score"));
    if (sx != sy)
        return sx > sy ? -1 : 1;
    json_int_t dx = json_integer_value(json_object_get(json_object_get(json_object_get(x, "evidence"), "pdq"), "distance")),
               dy = json_integer_value(json_object_get(json_object_get(json_object_get(y, "evidence"), "pdq"), "distance"));
    if (dx != dy)
        return dx < dy ? -1 : 1;
    const char *px = json_string_value(json_object_get(json_object_get(x, "work"), "path"));
    const char *py = json_string_value(json_object_get(json_object_get(y, "work"), "path"));
    return strcmp(px ? px : "", py ? py : "");
}

int cmd_merge(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"top", required_argument, NULL, 'k'},
        {"threshold", required_argument, NULL, 't'},
        {"possible", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    scan_options o;
    scan_options_default(&o);
    scan_policy policy;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "k:t:p:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return EXIT_OK;
        }
        int r = scan_common_option(c, "merge", &o);
        if (r < 0)
            return EXIT_USAGE;
        if (r == 0)
            return cli_usage_error("merge", "unknown option");
    }
    if (argc - optind < 1)
        return cli_usage_error("merge", "needs at least one JSONL file");
    if (scan_options_check(&o, "merge") != 0)
        return EXIT_USAGE;
    policy = o.policy;

    entry *v = NULL;
    size_t n = 0, cap = 0;
    json_t *by_query = json_object(); /* query -> index into v */
    int rc = EXIT_OK;
    for (int a = optind; a < argc && rc == EXIT_OK; a++) {
        FILE *f = fopen(argv[a], "r");
        if (!f) {
            cli_error("%s: cannot open: %s", argv[a], strerror(errno));
            rc = EXIT_USAGE;
            break;
        }
        char *line = NULL;
        size_t lcap = 0;
        long lineno = 0;
        ssize_t len;
        while ((len = getline(&line, &lcap, f)) > 0) {
            lineno++;
            json_error_t jerr;
            json_t *rec = json_loadb(line, (size_t)len, 0, &jerr);
            const char *q = rec ? json_string_value(json_object_get(rec, "query")) : NULL;
            if (!q) {
                cli_error("%s:%ld: not a provscan scan record", argv[a], lineno);
                json_decref(rec);
                rc = EXIT_USAGE;
                break;
            }
            json_t *at = json_object_get(by_query, q);
            if (!at) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 256;
                    v = realloc(v, cap * sizeof *v);
                }
                v[n] = (entry){strdup(q), rec};
                json_object_set_new(by_query, q, json_integer((json_int_t)n));
                n++;
                continue;
            }
            json_t *into = v[json_integer_value(at)].record;
            if (!json_is_true(json_object_get(into, "ok")) || !json_is_true(json_object_get(rec, "ok"))) {
                json_decref(rec); /* an unreadable query failed on every shard alike */
                continue;
            }
            json_array_extend(json_object_get(into, "matches"), json_object_get(rec, "matches"));
            json_decref(rec);
        }
        free(line);
        fclose(f);
    }
    int flagged = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == EXIT_OK) {
            json_t *matches = json_object_get(v[i].record, "matches");
            size_t m = json_array_size(matches);
            if (m > 0) {
                json_t **tmp = malloc(m * sizeof *tmp);
                for (size_t j = 0; j < m; j++)
                    tmp[j] = json_incref(json_array_get(matches, j));
                qsort(tmp, m, sizeof *tmp, cmp_matches);
                json_array_clear(matches);
                for (size_t j = 0; j < m; j++) {
                    if (j < (size_t)policy.top_k)
                        json_array_append(matches, tmp[j]);
                    json_decref(tmp[j]);
                }
                free(tmp);
            }
            flagged |= report_reverdict(v[i].record, &policy) != VERDICT_NONE;
            cli_json_line(stdout, v[i].record);
        } else {
            json_decref(v[i].record);
        }
        free(v[i].query);
    }
    free(v);
    json_decref(by_query);
    if (rc != EXIT_OK)
        return rc;
    return flagged ? EXIT_FLAGGED : EXIT_OK;
}

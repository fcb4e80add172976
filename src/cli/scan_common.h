/* scan_common.h — options and evidence pictures shared by scan and batch. */
#ifndef PROVSCAN_SCAN_COMMON_H
#define PROVSCAN_SCAN_COMMON_H

#include "cli/report.h"
#include "cli/searcher.h"

typedef struct scan_options {
    scan_policy policy;
    const char *shards[SEARCHER_MAX_SHARDS];
    int nshards;
    int jobs;
    unsigned long long max_pixels;
    const char *evidence_dir;
} scan_options;

/* getopt letters: k t p D G C L W N s J P E (see SCAN_COMMON_LONGOPTS). */
#define SCAN_COMMON_SHORT "k:t:p:D:s:J:E:"
#define SCAN_COMMON_LONGOPTS                                                                                     \
    {"top", required_argument, NULL, 'k'}, {"threshold", required_argument, NULL, 't'},                         \
        {"possible", required_argument, NULL, 'p'}, {"max-distance", required_argument, NULL, 'D'},             \
        {"no-local", no_argument, NULL, 'G'}, {"candidates", required_argument, NULL, 'C'},                     \
        {"tiles", no_argument, NULL, 'L'}, {"no-tiles", no_argument, NULL, 'W'},                                \
        {"no-windows", no_argument, NULL, 'N'},                                                                 \
        {"shard", required_argument, NULL, 's'},                                                                \
        {"jobs", required_argument, NULL, 'J'}, {"max-pixels", required_argument, NULL, 'P'},                   \
        {"evidence-dir", required_argument, NULL, 'E'}

/* The help text quotes the library's defaults, so it cannot drift from them. */
#define SCAN_STR_(x) #x
#define SCAN_STR(x) SCAN_STR_(x)

#define SCAN_COMMON_HELP                                                                                          \
    "  -k, --top K             report the K most likely works (default 5)\n"                                       \
    "  -t, --threshold P       calibrated probability counted as a match (default 0.5)\n"                          \
    "  -p, --possible P        probability still reported as a possible copy (default 0.1)\n"                      \
    "  -D, --max-distance D    also list works within PDQ distance D whatever their probability\n"                 \
    "                          (default 47; up to 256, to evaluate scores below the threshold)\n"                  \
    "      --no-local          global stage only (PDQ): faster, but blind to partial copies\n"                     \
    "      --candidates N      works verified with local features per query, from the visual-word\n"              \
    "                          retrieval (default " SCAN_STR(PROVSCAN_LOCAL_CANDIDATES) ", up to "                 \
    SCAN_STR(PROVSCAN_LOCAL_CANDIDATES_MAX) "): more find more crops and\n"                                       \
    "                          composites in a large corpus, at a cost in time\n"                                 \
    "      --tiles             also search 2 x 2 overlapping tiles of every query at the working\n"             \
    "                          size (by default only queries of 1280 pixels or more get them):\n"             \
    "                          finds works pasted small into pictures; 2-2.5 times the search time\n"         \
    "      --no-tiles          never search tiles\n"                                                           \
    "      --no-windows        retrieve candidates by the whole query's visual words only, not also\n"      \
    "                          by those of 5 windows of it: faster on a large corpus, but\n"     \
    "                          finds fewer works pasted into other pictures\n"                             \
    "  -s, --shard DIR         also search this index (repeatable); results merge as one corpus\n"                 \
    "  -E, --evidence-dir DIR  write a side-by-side picture for each flagged image's best match\n"                 \
    "  -J, --jobs N            threads (default: all cores)\n"                                                     \
    "      --max-pixels N      refuse larger images before decoding (default 268435456)\n"

void scan_options_default(scan_options *o);
/* Applies option c (from getopt); 1 if it was one of the common ones, 0 if not, -1 on a bad value. */
int scan_common_option(int c, const char *cmd, scan_options *o);
int scan_options_check(scan_options *o, const char *cmd);
/* Writes the evidence picture of a flagged query's best match; its path (caller frees) or NULL. */
char *scan_evidence(const scan_options *o, const char *query, const provscan_match *top, verdict v);

#endif

/* scan_common.c — what scan and batch share: their common options and evidence pictures. */
#include "cli/scan_common.h"
#include "cli/cli.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int scan_common_option(int c, const char *cmd, scan_options *o)
{
    long v;
    double d;
    switch (c) {
    case 'k':
        if (cli_parse_int(optarg, 1, 1000, &v) != 0)
            return cli_usage_error(cmd, "--top needs a number from 1 to 1000, not '%s'", optarg), -1;
        o->policy.top_k = (int)v;
        return 1;
    case 't':
        if (cli_parse_double(optarg, 0, 1, &d) != 0)
            return cli_usage_error(cmd, "--threshold needs a probability from 0 to 1, not '%s'", optarg), -1;
        o->policy.match_probability = d;
        return 1;
    case 'p':
        if (cli_parse_double(optarg, 0, 1, &d) != 0)
            return cli_usage_error(cmd, "--possible needs a probability from 0 to 1, not '%s'", optarg), -1;
        o->policy.possible_probability = d;
        return 1;
    case 'D':
        if (cli_parse_int(optarg, 0, 256, &v) != 0)
            return cli_usage_error(cmd, "--max-distance needs a distance from 0 to 256, not '%s'", optarg), -1;
        o->policy.list_distance = (int)v;
        return 1;
    case 'G':
        o->policy.local = 0;
        return 1;
    case 'C':
        if (cli_parse_int(optarg, 1, PROVSCAN_LOCAL_CANDIDATES_MAX, &v) != 0)
            return cli_usage_error(cmd, "--candidates needs a number from 1 to %d, not '%s'",
                                   PROVSCAN_LOCAL_CANDIDATES_MAX, optarg),
                   -1;
        o->policy.local_candidates = (int)v;
        return 1;
    case 'L': /* --tiles */
    case 'W': /* --no-tiles */
        o->policy.tiles = c == 'L' ? 1 : -1;
        return 1;
    case 'N': /* --no-windows */
        o->policy.no_windows = 1;
        return 1;
    case 's':
        if (o->nshards >= SEARCHER_MAX_SHARDS - 1)
            return cli_usage_error(cmd, "too many --shard options"), -1;
        o->shards[o->nshards++] = optarg;
        return 1;
    case 'J':
        if (cli_parse_int(optarg, 1, 4096, &v) != 0)
            return cli_usage_error(cmd, "--jobs needs a number from 1 to 4096, not '%s'", optarg), -1;
        o->jobs = (int)v;
        return 1;
    case 'P':
        if (cli_parse_u64(optarg, &o->max_pixels) != 0 || o->max_pixels == 0)
            return cli_usage_error(cmd, "--max-pixels needs a positive number, not '%s'", optarg), -1;
        return 1;
    case 'E':
        o->evidence_dir = optarg;
        return 1;
    default:
        return 0;
    }
}

void scan_options_default(scan_options *o)
{
    memset(o, 0, sizeof *o);
    scan_policy_default(&o->policy);
    o->nshards = 1; /* shards[0] is the INDEX argument */
    o->jobs = cli_default_jobs();
    o->max_pixels = PROVSCAN_DEFAULT_MAX_PIXELS;
}

int scan_options_check(scan_options *o, const char *cmd)
{
    if (o->policy.possible_probability > o->policy.match_probability)
        o->policy.possible_probability = o->policy.match_probability;
    if (o->policy.tiles > 0 && !o->policy.local) {
        cli_usage_error(cmd, "--tiles searches with local features: it cannot go with --no-local");
        return -1;
    }
    if (o->evidence_dir) {
        struct stat st;
        if (mkdir(o->evidence_dir, 0755) != 0 && (stat(o->evidence_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
            cli_usage_error(cmd, "--evidence-dir %s: not a directory and cannot be created", o->evidence_dir);
            return -1;
        }
    }
    return 0;
}

char *scan_evidence(const scan_options *o, const char *query, const provscan_match *top, verdict v)
{
    if (!o->evidence_dir || !top || v == VERDICT_NONE)
        return NULL;
    /* DIR/<query file name>-<8 hex digits of its full path>.png: unique even when two queries share
     * a file name. */
    const char *base = strrchr(query, '/');
    base = base ? base + 1 : query;
    size_t n = strlen(o->evidence_dir) + strlen(base) + 32;
    char *path = malloc(n);
    if (!path)
        return NULL;
    snprintf(path, n, "%s/%s-%08x.png", o->evidence_dir, base, (unsigned)(ps_hash_string(query) & 0xFFFFFFFFu));
    provscan_error err;
    if (provscan_evidence_write(query, top->path, path, &err) != PROVSCAN_OK) {
        cli_warn("evidence picture for %s: %s", query, err.message);
        free(path);
        return NULL;
    }
    return path;
}

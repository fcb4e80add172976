/* cmd_scan.c — `provscan scan INDEX FILE...`: does each image copy a work of the corpus, and which one? */
#include "cli/cli.h"
#include "cli/report.h"
#include "cli/searcher.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#define SCAN_CHUNK 64

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: provscan scan [OPTIONS] INDEX FILE...\n"
            "Checks each image against the corpus in INDEX: the closest works with their attribution, PDQ\n"
            "distance, a similarity score, the rotation/mirror that matched, and a verdict; also what the\n"
            "image's own metadata declares about its origin (a claim, never proof).\n\n"
            "  -j, --json              one JSON object per image (JSON Lines, schema %s)\n"
            "  -k, --top K             report the K closest works (default 5)\n"
            "  -t, --threshold T       PDQ distance counted as a match (default %d)\n"
            "  -p, --possible P        PDQ distance still reported as a possible copy (default %d)\n"
            "  -D, --max-distance D    farthest candidate listed (default: P; up to 256 lists candidates\n"
            "                          below the threshold, verdict none, so that scores can be evaluated)\n"
            "  -s, --shard DIR         also search this index (repeatable); results merge as one corpus\n"
            "  -J, --jobs N            threads (default: all cores)\n"
            "      --max-pixels N      refuse larger images before decoding (default %llu)\n"
            "  -h, --help              this help\n\n"
            "Verdicts: match (distance <= threshold and both images have PDQ quality >= %d), possible\n"
            "(<= P, or a match on a low-structure image), none.\n"
            "Exit status: 0 nothing flagged; 1 a match or possible copy was found; 2 an error (an image\n"
            "could not be read, or the index could not be opened).\n",
            SCAN_SCHEMA, PROVSCAN_PDQ_MATCH_DISTANCE, PROVSCAN_PDQ_POSSIBLE_DISTANCE,
            (unsigned long long)PROVSCAN_DEFAULT_MAX_PIXELS, PROVSCAN_PDQ_MIN_QUALITY);
}

/* Options shared by scan and batch; returns 1 if c was one of them, -1 on a bad value. */
int scan_common_option(int c, const char *cmd, scan_policy *p, const char **shards, int *nshards, long *jobs,
                       unsigned long long *max_pixels)
{
    long v;
    switch (c) {
    case 'k':
        if (cli_parse_int(optarg, 1, 1000, &v) != 0)
            return cli_usage_error(cmd, "--top needs a number from 1 to 1000, not '%s'", optarg), -1;
        p->top_k = (int)v;
        return 1;
    case 't':
        if (cli_parse_int(optarg, 0, 256, &v) != 0)
            return cli_usage_error(cmd, "--threshold needs a distance from 0 to 256, not '%s'", optarg), -1;
        p->match_distance = (int)v;
        return 1;
    case 'p':
        if (cli_parse_int(optarg, 0, 256, &v) != 0)
            return cli_usage_error(cmd, "--possible needs a distance from 0 to 256, not '%s'", optarg), -1;
        p->possible_distance = (int)v;
        return 1;
    case 'D':
        if (cli_parse_int(optarg, 0, 256, &v) != 0)
            return cli_usage_error(cmd, "--max-distance needs a distance from 0 to 256, not '%s'", optarg), -1;
        p->list_distance = (int)v;
        return 1;
    case 's':
        if (*nshards >= SEARCHER_MAX_SHARDS - 1)
            return cli_usage_error(cmd, "too many --shard options"), -1;
        shards[(*nshards)++] = optarg;
        return 1;
    case 'J':
        if (cli_parse_int(optarg, 1, 4096, jobs) != 0)
            return cli_usage_error(cmd, "--jobs needs a number from 1 to 4096, not '%s'", optarg), -1;
        return 1;
    case 'P':
        if (cli_parse_u64(optarg, max_pixels) != 0 || *max_pixels == 0)
            return cli_usage_error(cmd, "--max-pixels needs a positive number, not '%s'", optarg), -1;
        return 1;
    default:
        return 0;
    }
}

int cmd_scan(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},          {"top", required_argument, NULL, 'k'},
        {"threshold", required_argument, NULL, 't'}, {"max-distance", required_argument, NULL, 'D'}, {"possible", required_argument, NULL, 'p'},
        {"shard", required_argument, NULL, 's'},   {"jobs", required_argument, NULL, 'J'},
        {"max-pixels", required_argument, NULL, 'P'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    scan_policy policy;
    scan_policy_default(&policy);
    const char *shards[SEARCHER_MAX_SHARDS];
    int nshards = 1, json = 0, c;
    long jobs = cli_default_jobs();
    unsigned long long max_pixels = PROVSCAN_DEFAULT_MAX_PIXELS;
    optind = 0;
    while ((c = getopt_long(argc, argv, "jk:t:p:D:s:J:h", longopts, NULL)) != -1) {
        if (c == 'j') { json = 1; continue; }
        if (c == 'h') { usage(stdout); return EXIT_OK; }
        int r = scan_common_option(c, "scan", &policy, shards, &nshards, &jobs, &max_pixels);
        if (r < 0)
            return EXIT_USAGE;
        if (r == 0)
            return cli_usage_error("scan", "unknown option");
    }
    if (argc - optind < 2)
        return cli_usage_error("scan", "needs INDEX and at least one FILE");
    if (policy.possible_distance < policy.match_distance)
        policy.possible_distance = policy.match_distance;
    if (policy.list_distance < policy.possible_distance)
        policy.list_distance = policy.possible_distance;
    shards[0] = argv[optind];
    searcher s;
    if (searcher_open(&s, shards, nshards) != 0)
        return EXIT_USAGE;
    char **files = argv + optind + 1;
    int nfiles = argc - optind - 1;
    provscan_analysis *an = malloc(SCAN_CHUNK * sizeof *an);
    provscan_error *errs = malloc(SCAN_CHUNK * sizeof *errs);
    provscan_status *sts = malloc(SCAN_CHUNK * sizeof *sts);
    provscan_fingerprint *fps = malloc(SCAN_CHUNK * sizeof *fps);
    size_t *which = malloc(SCAN_CHUNK * sizeof *which);
    int errors = 0, flagged = 0, fatal = 0;
    if (!an || !errs || !sts || !fps || !which) {
        cli_error("out of memory");
        nfiles = 0;
        fatal = 1;
    }
    for (int start = 0; start < nfiles; start += SCAN_CHUNK) {
        int n = nfiles - start < SCAN_CHUNK ? nfiles - start : SCAN_CHUNK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
        for (int i = 0; i < n; i++)
            sts[i] = provscan_analyze_file(files[start + i], max_pixels, &an[i], &errs[i]);
        size_t nq = 0;
        for (int i = 0; i < n; i++)
            if (sts[i] == PROVSCAN_OK) {
                fps[nq] = an[i].fp;
                which[nq++] = (size_t)i;
            }
        provscan_results res = {0};
        provscan_error serr;
        if (nq && searcher_search(&s, fps, nq, &policy, (int)jobs, &res, &serr) != PROVSCAN_OK) {
            cli_error("%s", serr.message);
            fatal = 1;
            break;
        }
        size_t q = 0;
        for (int i = 0; i < n; i++) {
            const char *path = files[start + i];
            verdict v = VERDICT_NONE;
            const provscan_match *m = NULL;
            size_t cnt = 0;
            if (sts[i] == PROVSCAN_OK) {
                m = res.match[q];
                cnt = res.count[q];
                q++;
            } else {
                errors++;
                cli_error("%s", errs[i].message);
            }
            if (json)
                cli_json_line(stdout, report_json(path, sts[i] == PROVSCAN_OK ? &an[i] : NULL, &errs[i], m, cnt,
                                                  &policy, &v));
            else if (sts[i] == PROVSCAN_OK)
                report_text(stdout, path, &an[i], m, cnt, &policy, &v);
            flagged |= v != VERDICT_NONE;
        }
        provscan_results_free(&res);
        fflush(stdout);
    }
    searcher_close(&s);
    free(an); free(errs); free(sts); free(fps); free(which);
    if (fatal)
        return EXIT_USAGE;
    if (ferror(stdout)) {
        cli_error("writing the output failed");
        return EXIT_USAGE;
    }
    return errors ? EXIT_USAGE : flagged ? EXIT_FLAGGED : EXIT_OK;
}

/* cmd_scan.c — `provscan scan INDEX FILE...`: does each image copy (part of) a work of the corpus, and which one? */
#include "cli/cli.h"
#include "cli/report.h"
#include "cli/scan_common.h"
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
            "Checks each image against the corpus in INDEX, as a whole (PDQ over its 8 rotations and\n"
            "mirrors) and in part (local features: crops, pasted regions, captions, restyles). For the\n"
            "most likely works: attribution, a calibrated score (the probability of a copy), whether it is\n"
            "a near-duplicate or a partial copy, the matched region, and a verdict; also what the\n"
            "image's own metadata declares about its origin (a claim, never proof).\n\n"
            "  -j, --json              one JSON object per image (JSON Lines, schema %s)\n"
            SCAN_COMMON_HELP
            "  -h, --help              this help\n\n"
            "Verdicts: match (score >= threshold), possible (score >= possible), none.\n"
            "Exit status: 0 nothing flagged; 1 a match or possible copy was found; 2 an error (an image\n"
            "could not be read, or the index could not be opened).\n",
            SCAN_SCHEMA);
}

int cmd_scan(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, SCAN_COMMON_LONGOPTS, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    scan_options o;
    scan_options_default(&o);
    int json = 0, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "j" SCAN_COMMON_SHORT "h", longopts, NULL)) != -1) {
        if (c == 'j') { json = 1; continue; }
        if (c == 'h') { usage(stdout); return EXIT_OK; }
        int r = scan_common_option(c, "scan", &o);
        if (r < 0)
            return EXIT_USAGE;
        if (r == 0)
            return cli_usage_error("scan", "unknown option");
    }
    if (argc - optind < 2)
        return cli_usage_error("scan", "needs INDEX and at least one FILE");
    if (scan_options_check(&o, "scan") != 0)
        return EXIT_USAGE;
    o.shards[0] = argv[optind];
    searcher s;
    if (searcher_open(&s, o.shards, o.nshards) != 0)
        return EXIT_USAGE;
    char **files = argv + optind + 1;
    int nfiles = argc - optind - 1;
    provscan_analysis *an = calloc(SCAN_CHUNK, sizeof *an);
    provscan_analysis *ok = calloc(SCAN_CHUNK, sizeof *ok);
    provscan_error *errs = calloc(SCAN_CHUNK, sizeof *errs);
    provscan_status *sts = calloc(SCAN_CHUNK, sizeof *sts);
    int errors = 0, flagged = 0, fatal = 0;
    if (!an || !ok || !errs || !sts) {
        cli_error("out of memory");
        nfiles = 0;
        fatal = 1;
    }
    for (int start = 0; start < nfiles; start += SCAN_CHUNK) {
        int n = nfiles - start < SCAN_CHUNK ? nfiles - start : SCAN_CHUNK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(o.jobs)
        for (int i = 0; i < n; i++)
            sts[i] = provscan_analyze_file(files[start + i], o.max_pixels,
                                           scan_policy_local_mode(&o.policy), &an[i],
                                           &errs[i]);
        size_t nq = 0;
        for (int i = 0; i < n; i++)
            if (sts[i] == PROVSCAN_OK)
                ok[nq++] = an[i];
        provscan_results res = {0};
        provscan_error serr;
        if (nq && searcher_search(&s, ok, nq, &o.policy, o.jobs, &res, &serr) != PROVSCAN_OK) {
            cli_error("%s", serr.message);
            fatal = 1;
        }
        size_t q = 0;
        for (int i = 0; i < n && !fatal; i++) {
            const char *path = files[start + i];
            verdict v = VERDICT_NONE;
            if (sts[i] != PROVSCAN_OK) {
                errors++;
                cli_error("%s", errs[i].message);
                if (json)
                    cli_json_line(stdout, report_json(path, NULL, &errs[i], NULL, 0, &o.policy, NULL, &v));
                continue;
            }
            const provscan_match *m = res.match[q];
            size_t cnt = res.count[q];
            q++;
            char *picture = cnt ? scan_evidence(&o, path, &m[0], match_verdict(m[0].probability, &o.policy)) : NULL;
            if (json)
                cli_json_line(stdout, report_json(path, &an[i], NULL, m, cnt, &o.policy, picture, &v));
            else
                report_text(stdout, path, &an[i], m, cnt, &o.policy, picture, &v);
            free(picture);
            flagged |= v != VERDICT_NONE;
        }
        for (int i = 0; i < n; i++)
            if (sts[i] == PROVSCAN_OK)
                provscan_analysis_free(&an[i]);
        provscan_results_free(&res);
        fflush(stdout);
        if (fatal)
            break;
    }
    searcher_close(&s);
    free(an);
    free(ok);
    free(errs);
    free(sts);
    if (fatal)
        return EXIT_USAGE;
    if (ferror(stdout)) {
        cli_error("writing the output failed");
        return EXIT_USAGE;
    }
    return errors ? EXIT_USAGE : flagged ? EXIT_FLAGGED : EXIT_OK;
}

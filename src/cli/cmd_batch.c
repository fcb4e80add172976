/* cmd_batch.c — `provscan batch`: streams many queries through scan, one JSON line each, resumable. */
#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/report.h"
#include "cli/scan_common.h"
#include "cli/searcher.h"
#include "common/util.h"
#include "index/walk.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Queries per pass (default; --pass-size): fingerprinted in parallel, then searched together (one
 * pass over the corpus serves them all), then written. Memory per pass is bounded whatever the
 * input size. */
#define BATCH_PASS_DEFAULT 256
#define BATCH_PASS_MAX 65536


static void usage(FILE *f)
{
    fprintf(f,
            "Usage: provscan batch [OPTIONS] INDEX --input DIR|LISTFILE|- --output OUT.jsonl\n"
            "Scans many images against INDEX as a streaming job: one JSON object per query (schema %s,\n"
            "the same as 'scan --json'), written as each pass finishes; a bad file gives an error record\n"
            "and the job goes on; a summary at the end.\n\n"
            "  -i, --input SRC         a directory (walked recursively), a file listing one path per line,\n"
            "                          or - for paths on standard input\n"
            "  -o, --output FILE       where the JSON Lines go\n"
            "  -r, --resume            continue a job: skip queries already in FILE (a torn last line is cut)\n"
            "      --overwrite         replace FILE if it exists (otherwise an existing FILE is an error)\n"
            "      --pass-size N       queries fingerprinted and searched together, then written (default %d;\n"
            "                          smaller passes write results sooner, larger ones share each pass over\n"
            "                          the corpus among more queries)\n"
            SCAN_COMMON_HELP
            "  -q, --quiet             no progress bar and no summary\n\n"
            "Exit status: 0 nothing flagged; 1 a match or possible copy was found (in the whole job, when\n"
            "resumed); 2 the job could not run\n"
            "(index, input or output unusable). Unreadable query images are error records, not failures.\n",
            SCAN_SCHEMA, BATCH_PASS_DEFAULT);
}

typedef struct input {
    FILE *f;            /* list file or stdin */
    int owns_file;
    ps_walk_list walk;  /* directory input */
    int is_walk;
    size_t pos;
    char *line;
    size_t cap;
    uint64_t total;     /* known number of inputs, or 0 */
} input;

static int input_open(input *in, const char *src)
{
    memset(in, 0, sizeof *in);
    if (strcmp(src, "-") == 0) {
        in->f = stdin;
        return 0;
    }
    struct stat st;
    if (stat(src, &st) != 0) {
        cli_error("%s: cannot open input: %s", src, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        provscan_error err;
        const char *paths[1] = {src};
        if (ps_walk(paths, 1, 0, &in->walk, NULL, NULL, &err) != PROVSCAN_OK) {
            cli_error("%s", err.message);
            return -1;
        }
        in->is_walk = 1;
        in->total = in->walk.n;
        return 0;
    }
    in->f = fopen(src, "r");
    if (!in->f) {
        cli_error("%s: cannot open input: %s", src, strerror(errno));
        return -1;
    }
    in->owns_file = 1;
    int c, last = '\n';
    while ((c = getc(in->f)) != EOF) { /* count lines for the progress bar */
        if (c == '\n')
            in->total++;
        last = c;
    }
    if (last != '\n')
        in->total++;
    rewind(in->f);
    return 0;
}

/* Next query path (owned by the input until the next call), or NULL at the end. */
static const char *input_next(input *in)
{
    if (in->is_walk)
        return in->pos < in->walk.n ? in->walk.v[in->pos++].path : NULL;
    for (;;) {
        ssize_t n = getline(&in->line, &in->cap, in->f);
        if (n < 0)
            return NULL;
        while (n > 0 && (in->line[n - 1] == '\n' || in->line[n - 1] == '\r'))
            in->line[--n] = '\0';
        if (n > 0)
            return in->line;
    }
}

static void input_close(input *in)
{
    if (in->owns_file)
        fclose(in->f);
    if (in->is_walk)
        ps_walk_free(&in->walk);
    free(in->line);
}

/* The key a query is remembered by: its name exactly as the output records it. */
static uint64_t query_key(const char *path)
{
    json_t *j = cli_json_text(path);
    uint64_t h = ps_hash_string(json_is_string(j) ? json_string_value(j) : path);
    json_decref(j);
    return h;
}

/* Reads an existing output for --resume: remembers its queries (and whether any was flagged, so
 * the exit status speaks for the whole job) and cuts a torn last line. */
static int load_done(const char *out_path, ps_u64set *done, uint64_t *records, int *flagged)
{
    FILE *f = fopen(out_path, "r+");
    if (!f)
        return errno == ENOENT ? 0 : (cli_error("%s: cannot open: %s", out_path, strerror(errno)), -1);
    char *line = NULL;
    size_t cap = 0;
    long good_end = 0, lineno = 0;
    ssize_t n;
    int result = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[n - 1] != '\n')
            break; /* torn: the job was killed while writing it */
        json_error_t jerr;
        json_t *rec = json_loadb(line, (size_t)n, 0, &jerr);
        const char *q = rec ? json_string_value(json_object_get(rec, "query")) : NULL;
        if (!q) {
            cli_error("%s:%ld: not a provscan batch record; refusing to resume into it", out_path, lineno);
            json_decref(rec);
            result = -1;
            break;
        }
        ps_u64set_add(done, ps_hash_string(q));
        (*records)++;
        const char *v = json_string_value(json_object_get(rec, "verdict"));
        if (v && (strcmp(v, "match") == 0 || strcmp(v, "possible") == 0))
            *flagged = 1;
        json_decref(rec);
        good_end = ftell(f);
    }
    free(line);
    if (result == 0 && ftruncate(fileno(f), good_end) != 0) {
        cli_error("%s: cannot cut the torn last line: %s", out_path, strerror(errno));
        result = -1;
    }
    fclose(f);
    return result;
}

int cmd_batch(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"input", required_argument, NULL, 'i'}, {"output", required_argument, NULL, 'o'},
        {"resume", no_argument, NULL, 'r'},      {"overwrite", no_argument, NULL, 'O'},
        {"pass-size", required_argument, NULL, 'S'},
        SCAN_COMMON_LONGOPTS,                    {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    scan_options o;
    scan_options_default(&o);
    int resume = 0, overwrite = 0, quiet = 0, c;
    long pass = BATCH_PASS_DEFAULT;
    const char *src = NULL, *out_path = NULL;
    optind = 0;
    while ((c = getopt_long(argc, argv, "i:o:r" SCAN_COMMON_SHORT "qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': src = optarg; continue;
        case 'o': out_path = optarg; continue;
        case 'r': resume = 1; continue;
        case 'O': overwrite = 1; continue;
        case 'S':
            if (cli_parse_int(optarg, 1, BATCH_PASS_MAX, &pass) != 0)
                return cli_usage_error("batch", "--pass-size needs a number from 1 to 65536");
            continue;
        case 'q': quiet = 1; continue;
        case 'h': usage(stdout); return EXIT_OK;
        default: break;
        }
        int r = scan_common_option(c, "batch", &o);
        if (r < 0)
            return EXIT_USAGE;
        if (r == 0)
            return cli_usage_error("batch", "unknown option");
    }
    if (argc - optind != 1)
        return cli_usage_error("batch", "needs exactly one INDEX");
    if (!src || !out_path)
        return cli_usage_error("batch", "needs --input and --output");
    if (resume && overwrite)
        return cli_usage_error("batch", "--resume and --overwrite contradict each other");
    if (scan_options_check(&o, "batch") != 0)
        return EXIT_USAGE;

    ps_u64set done = {0};
    uint64_t resumed = 0;
    int flagged_before = 0;
    if (!resume && !overwrite && access(out_path, F_OK) == 0) {
        cli_error("%s already exists: use --resume to continue that job or --overwrite to replace it", out_path);
        return EXIT_USAGE;
    }
    if (resume && load_done(out_path, &done, &resumed, &flagged_before) != 0)
        return EXIT_USAGE;
    o.shards[0] = argv[optind];
    searcher s;
    if (searcher_open(&s, o.shards, o.nshards) != 0)
        return EXIT_USAGE;
    input in;
    if (input_open(&in, src) != 0) {
        searcher_close(&s);
        return EXIT_USAGE;
    }
    FILE *out = fopen(out_path, resume ? "a" : "w");
    if (!out) {
        cli_error("%s: cannot open for writing: %s", out_path, strerror(errno));
        input_close(&in);
        searcher_close(&s);
        return EXIT_USAGE;
    }

    char **paths = calloc((size_t)pass, sizeof *paths);
    provscan_analysis *an = calloc((size_t)pass, sizeof *an);
    provscan_analysis *ok = calloc((size_t)pass, sizeof *ok);
    provscan_error *errs = calloc((size_t)pass, sizeof *errs);
    provscan_status *sts = calloc((size_t)pass, sizeof *sts);
    int fatal = 0;
    if (!paths || !an || !ok || !errs || !sts) {
        cli_error("out of memory");
        fatal = 1;
    }
    cli_progress bar;
    cli_progress_start(&bar, "scanning", quiet);
    uint64_t counts[3] = {0}, nerrors = 0, processed = 0, skipped = 0;
    while (!fatal) {
        int n = 0;
        const char *p;
        while (n < pass && (p = input_next(&in))) {
            if (resume && ps_u64set_has(&done, query_key(p))) {
                skipped++;
                continue;
            }
            paths[n++] = strdup(p);
        }
        if (n == 0)
            break;
#pragma omp parallel for schedule(dynamic, 1) num_threads(o.jobs)
        for (int i = 0; i < n; i++)
            sts[i] = paths[i] ? provscan_analyze_file(paths[i], o.max_pixels,
                                                      scan_policy_local_mode(&o.policy),
                                                      &an[i], &errs[i])
                              : PROVSCAN_E_NOMEM;
        size_t nq = 0;
        for (int i = 0; i < n; i++)
            if (sts[i] == PROVSCAN_OK)
                ok[nq++] = an[i];
        provscan_results res = {0};
        provscan_error serr;
        if (nq && searcher_search(&s, ok, nq, &o.policy, o.jobs, &res, &serr) != PROVSCAN_OK) {
            cli_progress_finish(&bar);
            cli_error("%s", serr.message);
            fatal = 1;
        }
        size_t q = 0;
        for (int i = 0; i < n && !fatal; i++) {
            verdict v = VERDICT_NONE;
            json_t *rec;
            if (sts[i] == PROVSCAN_OK) {
                const provscan_match *m = res.match[q];
                char *picture = res.count[q] ? scan_evidence(&o, paths[i], &m[0], match_verdict(m[0].probability, &o.policy))
                                             : NULL;
                rec = report_json(paths[i], &an[i], NULL, m, res.count[q], &o.policy, picture, &v);
                free(picture);
                q++;
                counts[v]++;
            } else {
                if (!paths[i])
                    snprintf(errs[i].message, sizeof errs[i].message, "out of memory");
                rec = report_json(paths[i] ? paths[i] : "", NULL, &errs[i], NULL, 0, &o.policy, NULL, &v);
                nerrors++;
            }
            if (cli_json_line(out, rec) != 0) {
                cli_progress_finish(&bar);
                cli_error("%s: write failed: %s", out_path, strerror(errno));
                fatal = 1;
            }
        }
        provscan_results_free(&res);
        for (int i = 0; i < n; i++) {
            if (sts[i] == PROVSCAN_OK)
                provscan_analysis_free(&an[i]);
            free(paths[i]);
            paths[i] = NULL;
        }
        if (!fatal && fflush(out) != 0) {
            cli_error("%s: write failed: %s", out_path, strerror(errno));
            fatal = 1;
        }
        if (fatal)
            break;
        processed += (uint64_t)n;
        char extra[96];
        snprintf(extra, sizeof extra, "%llu match, %llu possible, %llu errors", (unsigned long long)counts[VERDICT_MATCH],
                 (unsigned long long)counts[VERDICT_POSSIBLE], (unsigned long long)nerrors);
        cli_progress_update(&bar, processed + skipped, in.total, extra);
    }
    cli_progress_finish(&bar);
    double secs = cli_progress_elapsed(&bar);
    if (fclose(out) != 0 && !fatal) {
        cli_error("%s: write failed: %s", out_path, strerror(errno));
        fatal = 1;
    }
    input_close(&in);
    searcher_close(&s);
    ps_u64set_free(&done);
    free(paths);
    free(an);
    free(ok);
    free(errs);
    free(sts);
    if (!quiet)
        fprintf(stderr,
                "provscan: batch: %llu queries (%llu already done): %llu match, %llu possible, %llu none, %llu errors;"
                " %.1f s, %.1f images/s\n",
                (unsigned long long)processed, (unsigned long long)skipped, (unsigned long long)counts[VERDICT_MATCH],
                (unsigned long long)counts[VERDICT_POSSIBLE], (unsigned long long)counts[VERDICT_NONE],
                (unsigned long long)nerrors, secs, secs > 0 ? (double)processed / secs : 0.0);
    if (fatal)
        return EXIT_USAGE;
    return flagged_before || counts[VERDICT_MATCH] || counts[VERDICT_POSSIBLE] ? EXIT_FLAGGED : EXIT_OK;
}

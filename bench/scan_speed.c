/* scan_speed.c — where a scan's time goes against a corpus index: analysis, global stage, candidates, verification. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/util.h"
#include "hash/hash.h"
#include "index/index_internal.h"
#include "index/local.h"
#include "index/walk.h"
#include "search/search.h"
#include "provscan.h"

/* usage: scan_speed INDEX QUERYDIR [--limit N] [--jobs T] [--candidates N] [--no-windows]
 *
 * Per query, one thread, in this order: provscan_analyze_file with local features (decode, PDQ over 8
 * variants, features, visual words); provscan_index_search with the global stage only; the same for
 * the nearest works by PDQ (the local stage's second source of candidates: the search's brute-force pass,
 * ps_search_knn over each segment with the query's 8 plain variants); the candidate
 * retrieval of the local stage alone (ps_local_retrieve over every segment, windows included, as the
 * search calls it);
 * provscan_index_search with both stages. Verification and scoring = full search - global - nearest
 * - retrieval.
 * Then the whole set as one batch (what `provscan batch` does) with 1 and T threads: analysis and
 * search throughput. --candidates N: works verified from retrieval (scan --candidates; default
 * PROVSCAN_LOCAL_CANDIDATES); --no-windows: retrieval without the query's windows (scan --no-windows). Prints medians, 95th percentiles and the single-core pipeline rate, and the
 * process's peak RSS. Each query's stages run back to back, so caches are as warm as in a real scan
 * of many images; the index's pages are read once before timing (a corpus index in use is cached). */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n ? v[(size_t)fmin((double)n - 1, floor(q * (double)n))] : 0;
}

static double seconds(void)
{
    return (double)ps_now_ns() / 1e9;
}

static double sum(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

static void print_walk_error(const char *path, const provscan_error *e, void *user)
{
    (void)path;
    (void)user;
    fprintf(stderr, "scan_speed: %s\n", e->message);
}

int main(int argc, char **argv)
{
    const char *index = NULL, *dir = NULL;
    long limit = 0;
    int jobs = omp_get_num_procs();
    int ncand = PROVSCAN_LOCAL_CANDIDATES, no_windows = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--limit") && i + 1 < argc)
            limit = atol(argv[++i]);
        else if (!strcmp(argv[i], "--jobs") && i + 1 < argc)
            jobs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--candidates") && i + 1 < argc)
            ncand = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-windows"))
            no_windows = 1;
        else if (!index)
            index = argv[i];
        else
            dir = argv[i];
    }
    if (!index || !dir || ncand < 1 || ncand > PROVSCAN_LOCAL_CANDIDATES_MAX) {
        fprintf(stderr, "usage: scan_speed INDEX QUERYDIR [--limit N] [--jobs T] [--candidates 1..%d] [--no-windows]\n",
                PROVSCAN_LOCAL_CANDIDATES_MAX);
        return 2;
    }
    provscan_error err;
    provscan_init(&err);
    /* the queries: the image files of QUERYDIR in name order (symbolic links followed) */
    ps_walk_list list = {0};
    const char *roots[] = {dir};
    if (ps_walk(roots, 1, 1, &list, print_walk_error, NULL, &err) != PROVSCAN_OK) {
        fprintf(stderr, "scan_speed: %s\n", err.message);
        return 2;
    }
    size_t np = limit > 0 && (size_t)limit < list.n ? (size_t)limit : list.n;

    double t0 = seconds();
    provscan_index *idx;
    if (provscan_index_open(index, 0, &idx, &err) != PROVSCAN_OK || provscan_index_prepare(idx, &err) != PROVSCAN_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    double t_open = seconds() - t0;
    provscan_index_stats info;
    if (provscan_index_info(idx, &info, &err) != PROVSCAN_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    ps_view view;
    if (ps_view_build(&idx, 1, &view) != 0) {
        fprintf(stderr, "scan_speed: out of memory\n");
        return 1;
    }
    volatile uint64_t touch = 0;
    for (size_t s = 0; s < view.n; s++) {
        /* read every page once: the timings are of a cached index, not of the disk */
        const uint8_t *base = idx->snap.segs[s].map;
        for (size_t off = 0; off < idx->snap.segs[s].map_size; off += 4096)
            touch += base[off];
    }

    provscan_analysis *a = calloc(np, sizeof *a);
    const char **qpath = calloc(np, sizeof *qpath); /* of the readable queries */
    double *t_an = calloc(np, sizeof *t_an), *t_gl = calloc(np, sizeof *t_gl), *t_nn = calloc(np, sizeof *t_nn), *t_re = calloc(np, sizeof *t_re),
           *t_full = calloc(np, sizeof *t_full), *t_ver = calloc(np, sizeof *t_ver), *t_pipe = calloc(np, sizeof *t_pipe);
    ps_local_candidate *cands = calloc((size_t)ncand, sizeof *cands);
    ps_local_candidate *windowed = calloc(PS_WINDOWS * PS_WINDOW_CANDIDATES, sizeof *windowed);
    size_t nwindowed = 0;
    if (!cands || !windowed) {
        fprintf(stderr, "scan_speed: out of memory\n");
        return 1;
    }
    size_t n = 0, flagged = 0;
    for (size_t i = 0; i < np; i++) {
        double s0 = seconds();
        if (provscan_analyze_file(list.v[i].path, 0, PROVSCAN_LOCAL_QUERY, &a[n], &err) != PROVSCAN_OK) {
            fprintf(stderr, "scan_speed: %s\n", err.message);
            continue;
        }
        double s1 = seconds();
        provscan_search_options g = {.top_k = 5, .max_distance = PROVSCAN_PDQ_POSSIBLE_DISTANCE, .jobs = 1, .local = 0,
                                     .local_candidates = ncand, .no_windows = no_windows};
        provscan_results r;
        if (provscan_index_search(idx, &a[n], 1, &g, &r, &err) != PROVSCAN_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        provscan_results_free(&r);
        double s2n = seconds();
        /* the pass the search makes: the 8 plain variants, each segment's 8 nearest, one thread */
        uint8_t qvar[PS_PDQ_QUERY_VARIANTS * 32]; /* the plain 8 come first */
        ps_pdq_query_variants(&a[n].fp, qvar);
        for (size_t sg = 0; sg < view.n; sg++) {
            ps_hits hits;
            ps_hits_init(&hits);
            const ps_segment *seg = view.segs[sg];
            if (ps_search_knn(ps_segment_section(seg, PS_SEC_CODES, NULL), seg->records, qvar, 1,
                              PROVSCAN_DIHEDRAL_COUNT, 8, 256, 1, &hits) != PROVSCAN_OK) {
                fprintf(stderr, "scan_speed: nearest pass failed\n");
                return 1;
            }
            ps_hits_free(&hits);
        }
        double s2 = seconds();
        if (a[n].local)
            ps_local_retrieve(&view, a[n].local, (size_t)ncand, cands, no_windows ? NULL : windowed, &nwindowed);
        double s3 = seconds();
        provscan_search_options f = g;
        f.local = 1;
        f.min_probability = 0.025;
        if (provscan_index_search(idx, &a[n], 1, &f, &r, &err) != PROVSCAN_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        flagged += r.count[0] > 0 && r.match[0][0].probability >= PROVSCAN_MATCH_PROBABILITY;
        provscan_results_free(&r);
        double s4 = seconds();
        qpath[n] = list.v[i].path;
        t_an[n] = s1 - s0;
        t_gl[n] = s2n - s1;
        t_nn[n] = s2 - s2n;
        t_re[n] = s3 - s2;
        t_full[n] = s4 - s3;
        t_ver[n] = fmax(0, t_full[n] - t_gl[n] - t_nn[n] - t_re[n]);
        t_pipe[n] = t_an[n] + t_full[n];
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "scan_speed: no readable queries in %s\n", dir);
        return 1;
    }
    double total_pipe = sum(t_pipe, n), total_an = sum(t_an, n), total_full = sum(t_full, n);

    /* The batch path: all analyses, then one search call (1 thread, then T threads). */
    double rate_an[2], rate_search[2];
    int threads[2] = {1, jobs};
    for (int k = 0; k < 2; k++) {
        provscan_analysis *b = calloc(n, sizeof *b);
        double b0 = seconds();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads[k])
        for (size_t i = 0; i < n; i++) {
            provscan_error e2;
            provscan_analyze_file(qpath[i], 0, PROVSCAN_LOCAL_QUERY, &b[i], &e2);
        }
        double b1 = seconds();
        provscan_search_options f = {.top_k = 5, .max_distance = PROVSCAN_PDQ_POSSIBLE_DISTANCE, .jobs = threads[k],
                                     .local = 1, .min_probability = 0.025, .local_candidates = ncand,
                                     .no_windows = no_windows};
        provscan_results r;
        if (provscan_index_search(idx, b, n, &f, &r, &err) != PROVSCAN_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        double b2 = seconds();
        provscan_results_free(&r);
        rate_an[k] = (double)n / (b1 - b0);
        rate_search[k] = (double)n / (b2 - b1);
        for (size_t i = 0; i < n; i++)
            provscan_analysis_free(&b[i]);
        free(b);
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("index %s: %llu works, %.1f MB on disk, opened and mapped in %.3f s\n", index,
           (unsigned long long)info.works, (double)info.bytes / 1e6, t_open);
    printf("queries: %zu from %s (%zu flagged at p >= %.1f), %d candidates verified from retrieval%s\n\n", n,
           dir, flagged, PROVSCAN_MATCH_PROBABILITY, ncand, no_windows ? ", no windows" : "");
    printf("per query, 1 thread         median ms    p95 ms   share of pipeline\n");
    const char *names[] = {"analysis (decode, hashes, features)", "global stage (PDQ, 16 variants)",
                           "nearest by PDQ (brute-force pass)", "local retrieval (visual words)",
                           "verification and scoring", "search, both stages", "pipeline (analysis + search)"};
    double *cols[] = {t_an, t_gl, t_nn, t_re, t_ver, t_full, t_pipe};
    double totals[] = {total_an, sum(t_gl, n), sum(t_nn, n), sum(t_re, n), sum(t_ver, n), total_full, total_pipe};
    for (int c = 0; c < 7; c++) {
        double *copy = malloc(n * sizeof *copy);
        memcpy(copy, cols[c], n * sizeof *copy);
        printf("  %-36s %8.2f  %8.2f   %5.1f %%\n", names[c], 1e3 * quantile(copy, n, 0.5), 1e3 * quantile(copy, n, 0.95),
               100 * totals[c] / total_pipe);
        free(copy);
    }
    printf("\nsingle-core pipeline: %.1f queries/s (search alone %.1f queries/s)\n", (double)n / total_pipe,
           (double)n / total_full);
    printf("batch, 1 thread:  analysis %.1f q/s, search %.1f q/s\n", rate_an[0], rate_search[0]);
    printf("batch, %d threads: analysis %.1f q/s, search %.1f q/s\n", jobs, rate_an[1], rate_search[1]);
    printf("peak RSS %.1f MB\n", (double)ru.ru_maxrss / 1024);
    for (size_t i = 0; i < n; i++)
        provscan_analysis_free(&a[i]);
    free(cands);
    free(windowed);
    ps_view_free(&view);
    provscan_index_close(idx);
    return touch == 1 ? 3 : 0;
}

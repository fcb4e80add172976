/* retrieval_eval.c — how often the local stage's candidate retrieval lists a copy's true work, per query family. */
#include <math.h>
#include <omp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "index/index_internal.h"
#include "index/local.h"
#include "provscan.h"

/* usage: retrieval_eval INDEX QUERYDIR [--max K] [--jobs T] [--family NAME] [--dump FILE]
 *
 * QUERYDIR holds the queries and groundtruth.csv (query,reference,family,...; bench/data/make-queries.sh).
 * Every query is analysed as a scan does (PROVSCAN_LOCAL_QUERY) and its candidates are retrieved from
 * INDEX's inverted files (ps_local_retrieve, up to K, default 500); the rank of a positive query's true
 * work (the best rank when it copies several) is looked up by path: an index path matches a reference
 * when it ends with "/" + reference. Its rank by PDQ distance among the nearest 64 comes from a global
 * search. Prints, per family, recall at several list lengths — the search verifies LOCAL_CANDIDATES (48)
 * of them — and R@48+P8 / R@48+P16: the true work is among the 48 retrieved or the 8 / 16 nearest by PDQ
 * (a scan adds the 8 nearest; a listing distance over 64 lists top-k, at least 16), which bounds what
 * verification can find; then the median retrieval time per query.
 *
 * --dump FILE: one line per query (negatives too): query, family, rank (0 = not retrieved, or a
 * negative), PDQ rank (0 = not among the nearest 64), the retrieval scores of the first 48 candidates.
 * --jobs: analysis and retrieval run in parallel, but the PDQ search shares the index's SQLite
 * connection and is far slower so; 1 (the default) is the measured setting. */

#define MAX_REFS 4
static const int cutoffs[] = {1, 5, 10, 24, 48, 96, 200, 500};
#define NCUT (sizeof cutoffs / sizeof cutoffs[0])

typedef struct {
    char *query, *family;
    char *ref[MAX_REFS];
    int nref;
    int rank;     /* 1-based; 0 = not retrieved */
    int pdq_rank; /* 1-based rank by PDQ distance among the nearest 64; 0 = farther */
    double seconds;
    int readable;
} query_row;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* groundtruth.csv: the first three fields of each line (no quoting is used by make-queries.sh) */
static query_row *read_groundtruth(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[4096];
    query_row *rows = NULL;
    size_t cap = 0;
    *n = 0;
    if (!fgets(line, sizeof line, f)) { /* header */
        fclose(f);
        return NULL;
    }
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *field[3] = {line, NULL, NULL};
        for (int k = 1; k < 3 && field[k - 1]; k++) {
            char *comma = strchr(field[k - 1], ',');
            if (comma)
                *comma = 0;
            field[k] = comma ? comma + 1 : NULL;
        }
        char *q = field[0], *ref = field[1], *fam = field[2];
        if (!fam)
            continue;
        fam[strcspn(fam, ",")] = 0;
        int negative = !strncmp(fam, "neg", 3);
        if (!negative && !*ref)
            continue;
        query_row *r = NULL;
        for (size_t i = 0; i < *n; i++)
            if (!strcmp(rows[i].query, q))
                r = &rows[i];
        if (!r) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 1024;
                rows = realloc(rows, cap * sizeof *rows);
            }
            r = &rows[(*n)++];
            memset(r, 0, sizeof *r);
            r->query = strdup(q);
            r->family = strdup(fam);
        }
        if (!negative && r->nref < MAX_REFS)
            r->ref[r->nref++] = strdup(ref);
    }
    fclose(f);
    return rows;
}

static int path_is_ref(const char *path, const char *ref)
{
    size_t lp = strlen(path), lr = strlen(ref);
    return lp > lr && path[lp - lr - 1] == '/' && !strcmp(path + lp - lr, ref);
}

int main(int argc, char **argv)
{
    const char *index = NULL, *dir = NULL, *only = NULL, *dump = NULL;
    size_t max = 500;
    int jobs = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--max") && i + 1 < argc)
            max = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--jobs") && i + 1 < argc)
            jobs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            dump = argv[++i];
        else if (!strcmp(argv[i], "--family") && i + 1 < argc)
            only = argv[++i];
        else if (!index)
            index = argv[i];
        else
            dir = argv[i];
    }
    if (!index || !dir || max == 0) {
        fprintf(stderr, "usage: retrieval_eval INDEX QUERYDIR [--max K] [--jobs T] [--family NAME] [--dump FILE]\n");
        return 2;
    }
    provscan_error err;
    provscan_init(&err);
    char gt[4096];
    snprintf(gt, sizeof gt, "%s/groundtruth.csv", dir);
    size_t nrows;
    query_row *rows = read_groundtruth(gt, &nrows);
    if (!rows) {
        fprintf(stderr, "retrieval_eval: cannot read %s\n", gt);
        return 2;
    }
    provscan_index *idx;
    if (provscan_index_open(index, 0, &idx, &err) != PROVSCAN_OK || provscan_index_prepare(idx, &err) != PROVSCAN_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    /* work id -> path */
    sqlite3_stmt *st;
    if (ps_sql_prepare(idx, "SELECT path FROM works WHERE id = ?", &st, &err) != PROVSCAN_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    ps_view view;
    if (ps_view_build(&idx, 1, &view) != 0) {
        fprintf(stderr, "retrieval_eval: out of memory\n");
        return 1;
    }
    /* candidates per query, kept for the single-threaded path lookup below */
    ps_local_candidate *cands = calloc(nrows * max, sizeof *cands);
    size_t *ncands = calloc(nrows, sizeof *ncands);
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
    for (size_t i = 0; i < nrows; i++) {
        if (only && strcmp(rows[i].family, only))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, rows[i].query);
        provscan_analysis a;
        provscan_error e;
        if (provscan_analyze_file(path, 0, PROVSCAN_LOCAL_QUERY, &a, &e) != PROVSCAN_OK)
            continue;
        rows[i].readable = 1;
        uint64_t t0 = ps_now_ns();
        if (a.local)
            ncands[i] = ps_local_retrieve(&view, a.local, max, cands + i * max);
        rows[i].seconds = (double)(ps_now_ns() - t0) / 1e9;
        /* the search's other source of local candidates: the nearest works by PDQ */
        provscan_search_options g = {.top_k = 64, .max_distance = 256, .jobs = 1, .local = 0};
        provscan_results res;
        if (provscan_index_search(idx, &a, 1, &g, &res, &e) == PROVSCAN_OK) {
            for (size_t m = 0; m < res.count[0] && !rows[i].pdq_rank; m++)
                for (int r = 0; r < rows[i].nref; r++)
                    if (path_is_ref(res.match[0][m].path, rows[i].ref[r]))
                        rows[i].pdq_rank = (int)m + 1;
            provscan_results_free(&res);
        }
        provscan_analysis_free(&a);
    }
    for (size_t i = 0; i < nrows; i++) {
        for (size_t c = 0; c < ncands[i] && !rows[i].rank; c++) {
            const ps_local_candidate *k = &cands[i * max + c];
            const int64_t *ids = ps_segment_section(view.segs[k->seg], PS_SEC_IDS, NULL);
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, ids[k->record]);
            if (sqlite3_step(st) != SQLITE_ROW)
                continue;
            const char *p = (const char *)sqlite3_column_text(st, 0);
            for (int r = 0; r < rows[i].nref && p; r++)
                if (path_is_ref(p, rows[i].ref[r]))
                    rows[i].rank = (int)c + 1;
        }
    }
    sqlite3_finalize(st);
    if (dump) {
        FILE *f = fopen(dump, "w");
        for (size_t i = 0; f && i < nrows; i++)
            if (rows[i].readable) {
                fprintf(f, "%s\t%s\t%d\t%d\t", rows[i].query, rows[i].family, rows[i].rank, rows[i].pdq_rank);
                for (size_t c = 0; c < ncands[i] && c < 48; c++)
                    fprintf(f, "%s%.4f", c ? "," : "", cands[i * max + c].score);
                fprintf(f, "\n");
            }
        if (f)
            fclose(f);
    }

    /* per family, in order of first appearance, then all */
    const char *fams[64];
    size_t nfam = 0;
    for (size_t i = 0; i < nrows; i++) {
        if (!rows[i].readable || rows[i].nref == 0)
            continue;
        size_t f = 0;
        while (f < nfam && strcmp(fams[f], rows[i].family))
            f++;
        if (f == nfam && nfam < 64)
            fams[nfam++] = rows[i].family;
    }
    printf("%-16s %7s", "family", "queries");
    for (size_t c = 0; c < NCUT; c++)
        if ((size_t)cutoffs[c] <= max)
            printf("  R@%-4d", cutoffs[c]);
    printf("  R@48+P8  R@48+P16\n");
    double *times = calloc(nrows + 1, sizeof *times);
    size_t ntimes = 0;
    for (size_t f = 0; f <= nfam; f++) {
        size_t nq = 0, hit[NCUT] = {0}, both8 = 0, both16 = 0;
        for (size_t i = 0; i < nrows; i++) {
            if (!rows[i].readable || rows[i].nref == 0 || (f < nfam && strcmp(rows[i].family, fams[f])))
                continue;
            nq++;
            if (f == nfam)
                times[ntimes++] = rows[i].seconds;
            for (size_t c = 0; c < NCUT; c++)
                hit[c] += rows[i].rank > 0 && rows[i].rank <= cutoffs[c];
            int in48 = rows[i].rank > 0 && rows[i].rank <= 48, p = rows[i].pdq_rank;
            both8 += in48 || (p > 0 && p <= 8);
            both16 += in48 || (p > 0 && p <= 16);
        }
        printf("%-16s %7zu", f < nfam ? fams[f] : "all", nq);
        for (size_t c = 0; c < NCUT; c++)
            if ((size_t)cutoffs[c] <= max)
                printf("  %6.3f", nq ? (double)hit[c] / (double)nq : 0);
        printf("  %7.3f  %8.3f\n", nq ? (double)both8 / (double)nq : 0, nq ? (double)both16 / (double)nq : 0);
    }
    qsort(times, ntimes, sizeof *times, cmp_double);
    uint64_t works = 0;
    for (size_t s = 0; s < view.n; s++)
        works += view.segs[s]->records;
    printf("retrieval median %.3f ms per query (%zu queries, %d threads, %llu records)\n",
           ntimes ? times[ntimes / 2] * 1e3 : 0, ntimes, jobs, (unsigned long long)works);
    ps_view_free(&view);
    provscan_index_close(idx);
    return 0;
}

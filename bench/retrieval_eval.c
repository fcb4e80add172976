/* retrieval_eval.c — how often the local stage's candidate retrieval lists a copy's true work, per query family. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "common/util.h"
#include "index/index_internal.h"
#include "index/local.h"
#include "provscan.h"

/* usage: retrieval_eval INDEX QUERYDIR [--max K] [--family NAME] [--dump FILE]
 *
 * QUERYDIR holds the queries and groundtruth.csv (query,reference,family,...; bench/data/make-queries.sh).
 * Every query is analysed as a scan does (PROVSCAN_LOCAL_QUERY) and its candidates are retrieved from
 * INDEX's inverted files (ps_local_retrieve, up to K, default 500), one query at a time; a positive
 * query's true work (the best rank when it copies several) is its reference's work in the index, found
 * by path (an index path matches a reference when it ends with "/" + reference). Its rank by PDQ
 * distance among the nearest 64 comes from a global search. Prints, per family, recall at several list
 * lengths — the search verifies PROVSCAN_LOCAL_CANDIDATES (VERIFIED, 64) of them — and R@64+P8 /
 * R@64+P16: the true work is among the VERIFIED retrieved or the 8 / 16 nearest by PDQ (a scan adds
 * the 8 nearest; a listing distance over 64 lists top-k, at least 16), which bounds what verification can find;
 * R@64+W: among the VERIFIED retrieved or the candidates of the whole query's windows (PS_WINDOWS); then the median
 * retrieval time per query. An unreadable query is named on stderr and left out.
 *
 * --dump FILE: one line per query (negatives too): query, family, rank (0 = not retrieved, or a
 * negative), PDQ rank (0 = not among the nearest 64), the retrieval scores of the first VERIFIED candidates. */

#define MAX_REFS 4
static const int cutoffs[] = {1, 5, 10, 24, 48, 64, 96, 200, 500};
enum { VERIFIED = PROVSCAN_LOCAL_CANDIDATES }; /* candidates a scan verifies */
#define NCUT (sizeof cutoffs / sizeof cutoffs[0])

typedef struct {
    char *query, *family;
    char *ref[MAX_REFS];
    int64_t ref_id[MAX_REFS]; /* in the index; -1 = not in it */
    int nref;
    int rank;     /* 1-based; 0 = not retrieved */
    int pdq_rank; /* 1-based rank by PDQ distance among the nearest 64; 0 = farther */
    int windowed; /* among the candidates of the query's windows (PS_WINDOWS) */
    double seconds;
    int readable;
} query_row;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "retrieval_eval: out of memory\n");
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

/* groundtruth.csv (header, then query,reference,family,...): one row per query, its references in
 * order; a negative family (neg_*) has none. NULL with *why set when the file cannot be used. */
static query_row *read_groundtruth(const char *path, size_t *n, const char **why)
{
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        *why = strerror(errno);
        return NULL;
    }
    ps_csv csv = {.f = f};
    query_row *rows = NULL;
    size_t cap = 0;
    int r = ps_csv_next(&csv); /* header */
    while (r > 0 && (r = ps_csv_next(&csv)) > 0) {
        if (csv.nfields < 3)
            continue;
        const char *q = csv.fields[0], *ref = csv.fields[1], *fam = csv.fields[2];
        int negative = !strncmp(fam, "neg_", 4);
        if (!negative && !*ref)
            continue;
        /* make-queries.sh writes a query's rows together */
        query_row *row = *n && !strcmp(rows[*n - 1].query, q) ? &rows[*n - 1] : NULL;
        if (!row) {
            if (*n == cap)
                rows = xrealloc(rows, (cap = cap ? 2 * cap : 1024) * sizeof *rows);
            row = &rows[(*n)++];
            memset(row, 0, sizeof *row);
            for (int k = 0; k < MAX_REFS; k++)
                row->ref_id[k] = -1;
            row->query = xstrdup(q);
            row->family = xstrdup(fam);
        }
        if (!negative && row->nref < MAX_REFS)
            row->ref[row->nref++] = xstrdup(ref);
    }
    ps_csv_free(&csv);
    fclose(f);
    if (r < 0 || *n == 0) {
        *why = r < 0 ? "malformed CSV" : "no queries";
        free(rows);
        return NULL;
    }
    return rows;
}

static int path_is_ref(const char *path, const char *ref)
{
    size_t lp = strlen(path), lr = strlen(ref);
    return lp > lr && path[lp - lr - 1] == '/' && !strcmp(path + lp - lr, ref);
}

/* The index's work ids of each query's references, read once: an index path matches a reference when
 * it ends with "/" + reference. */
static int resolve_refs(provscan_index *idx, query_row *rows, size_t nrows, provscan_error *err)
{
    sqlite3_stmt *st;
    if (ps_sql_prepare(idx, "SELECT id, path FROM works", &st, err) != PROVSCAN_OK)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *path = (const char *)sqlite3_column_text(st, 1);
        for (size_t i = 0; path && i < nrows; i++)
            for (int r = 0; r < rows[i].nref; r++)
                if (rows[i].ref_id[r] < 0 && path_is_ref(path, rows[i].ref[r]))
                    rows[i].ref_id[r] = id;
    }
    sqlite3_finalize(st);
    return 0;
}

static int is_ref(const query_row *row, int64_t id)
{
    for (int r = 0; r < row->nref; r++)
        if (row->ref_id[r] == id)
            return 1;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: retrieval_eval INDEX QUERYDIR [--max K] [--family NAME] [--dump FILE]\n");
}

int main(int argc, char **argv)
{
    const char *index = NULL, *dir = NULL, *only = NULL, *dump = NULL;
    size_t max = 500;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--max") && i + 1 < argc)
            max = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            dump = argv[++i];
        else if (!strcmp(argv[i], "--family") && i + 1 < argc)
            only = argv[++i];
        else if (argv[i][0] == '-' || (index && dir)) {
            usage();
            return 2;
        } else if (!index)
            index = argv[i];
        else
            dir = argv[i];
    }
    if (!index || !dir || max == 0) {
        usage();
        return 2;
    }
    provscan_error err;
    provscan_init(&err);
    char gt[4096];
    snprintf(gt, sizeof gt, "%s/groundtruth.csv", dir);
    size_t nrows;
    const char *why = NULL;
    query_row *rows = read_groundtruth(gt, &nrows, &why);
    if (!rows) {
        fprintf(stderr, "retrieval_eval: %s: %s\n", gt, why);
        return 2;
    }
    provscan_index *idx;
    if (provscan_index_open(index, 0, &idx, &err) != PROVSCAN_OK || provscan_index_prepare(idx, &err) != PROVSCAN_OK ||
        resolve_refs(idx, rows, nrows, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    ps_view view;
    if (ps_view_build(&idx, 1, &view) != 0) {
        fprintf(stderr, "retrieval_eval: out of memory\n");
        return 1;
    }
    FILE *out = dump ? fopen(dump, "w") : NULL; /* opened first: a bad path fails before the work */
    if (dump && !out) {
        fprintf(stderr, "retrieval_eval: %s: %s\n", dump, strerror(errno));
        return 1;
    }
    /* one query at a time: the PDQ search shares the index's SQLite connection */
    ps_local_candidate *cands = xrealloc(NULL, max * sizeof *cands);
    ps_local_candidate *windowed = xrealloc(NULL, PS_WINDOWS * PS_WINDOW_CANDIDATES * sizeof *windowed);
    float(*scores)[VERIFIED] = xrealloc(NULL, nrows * sizeof *scores);
    int *nscores = xrealloc(NULL, nrows * sizeof *nscores);
    for (size_t i = 0; i < nrows; i++) {
        nscores[i] = 0;
        if (only && strcmp(rows[i].family, only))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, rows[i].query);
        provscan_analysis a;
        if (provscan_analyze_file(path, 0, PROVSCAN_LOCAL_QUERY, &a, &err) != PROVSCAN_OK) {
            fprintf(stderr, "retrieval_eval: %s (query left out)\n", err.message);
            continue;
        }
        rows[i].readable = 1;
        uint64_t t0 = ps_now_ns();
        size_t nw = 0;
        size_t nc = a.local ? ps_local_retrieve(&view, a.local, max, cands, windowed, &nw) : 0;
        rows[i].seconds = (double)(ps_now_ns() - t0) / 1e9;
        for (size_t c = 0; c < nc; c++) {
            const int64_t *ids = ps_segment_section(view.segs[cands[c].seg], PS_SEC_IDS, NULL);
            if (!rows[i].rank && is_ref(&rows[i], ids[cands[c].record]))
                rows[i].rank = (int)c + 1;
            if (c < VERIFIED)
                scores[i][nscores[i]++] = cands[c].score;
        }
        for (size_t c = 0; c < nw; c++) {
            const int64_t *ids = ps_segment_section(view.segs[windowed[c].seg], PS_SEC_IDS, NULL);
            rows[i].windowed |= is_ref(&rows[i], ids[windowed[c].record]);
        }
        /* the search's other source of local candidates: the nearest works by PDQ */
        provscan_search_options g = {.top_k = 64, .max_distance = 256, .jobs = 1, .local = 0};
        provscan_results res;
        if (provscan_index_search(idx, &a, 1, &g, &res, &err) == PROVSCAN_OK) {
            for (size_t m = 0; m < res.count[0] && !rows[i].pdq_rank; m++)
                if (is_ref(&rows[i], res.match[0][m].work_id))
                    rows[i].pdq_rank = (int)m + 1;
            provscan_results_free(&res);
        }
        provscan_analysis_free(&a);
    }
    if (out) {
        for (size_t i = 0; i < nrows; i++)
            if (rows[i].readable) {
                fprintf(out, "%s\t%s\t%d\t%d\t", rows[i].query, rows[i].family, rows[i].rank, rows[i].pdq_rank);
                for (int c = 0; c < nscores[i]; c++)
                    fprintf(out, "%s%.4f", c ? "," : "", scores[i][c]);
                fprintf(out, "\n");
            }
        if (fclose(out) != 0) {
            fprintf(stderr, "retrieval_eval: %s: %s\n", dump, strerror(errno));
            return 1;
        }
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
    printf("  R@%d+P8  R@%d+P16  R@%d+W\n", VERIFIED, VERIFIED, VERIFIED);
    double *times = calloc(nrows + 1, sizeof *times);
    size_t ntimes = 0;
    for (size_t f = 0; f <= nfam; f++) {
        size_t nq = 0, hit[NCUT] = {0}, both8 = 0, both16 = 0, with_windows = 0;
        for (size_t i = 0; i < nrows; i++) {
            if (!rows[i].readable || rows[i].nref == 0 || (f < nfam && strcmp(rows[i].family, fams[f])))
                continue;
            nq++;
            if (f == nfam)
                times[ntimes++] = rows[i].seconds;
            for (size_t c = 0; c < NCUT; c++)
                hit[c] += rows[i].rank > 0 && rows[i].rank <= cutoffs[c];
            int inc = rows[i].rank > 0 && rows[i].rank <= VERIFIED, p = rows[i].pdq_rank;
            both8 += inc || (p > 0 && p <= 8);
            both16 += inc || (p > 0 && p <= 16);
            with_windows += inc || rows[i].windowed;
        }
        printf("%-16s %7zu", f < nfam ? fams[f] : "all", nq);
        for (size_t c = 0; c < NCUT; c++)
            if ((size_t)cutoffs[c] <= max)
                printf("  %6.3f", nq ? (double)hit[c] / (double)nq : 0);
        printf("  %7.3f  %8.3f  %6.3f\n", nq ? (double)both8 / (double)nq : 0, nq ? (double)both16 / (double)nq : 0,
               nq ? (double)with_windows / (double)nq : 0);
    }
    qsort(times, ntimes, sizeof *times, cmp_double);
    uint64_t works = 0;
    for (size_t s = 0; s < view.n; s++)
        works += view.segs[s]->records;
    printf("retrieval median %.3f ms per query (%zu queries, one thread, %llu records)\n",
           ntimes ? times[ntimes / 2] * 1e3 : 0, ntimes, (unsigned long long)works);
    ps_view_free(&view);
    provscan_index_close(idx);
    return 0;
}

/* search.c — index search: candidate hits from every segment, live-record filtering, top-K by (distance, path). */
#include "index/index_internal.h"
#include "common/error.h"
#include "cpu/kernels.h"

#include <stdlib.h>
#include <string.h>

#include <omp.h>

/* One candidate of one query. */
typedef struct cand {
    int64_t work_id;
    uint16_t distance;
    uint8_t transform;
} cand;

/* Per-query candidates, pruned as they arrive to the k best distances plus every tie at the k-th
 * distance (ties are decided later by path, which only the catalog knows). */
typedef struct cand_list {
    cand *v;
    size_t n, cap;
    uint32_t hist[257];
    int bound; /* candidates above it can no longer be among the k best */
} cand_list;

static void cand_bound_update(cand_list *c, int k)
{
    uint32_t acc = 0;
    for (int d = 0; d <= 256; d++) {
        acc += c->hist[d];
        if (acc >= (uint32_t)k) {
            c->bound = d;
            return;
        }
    }
}

static int cand_push(cand_list *c, int k, int64_t work_id, int distance, int transform)
{
    if (distance > c->bound)
        return 0;
    if (c->n == c->cap) {
        /* Before growing, drop what the bound already excludes. */
        size_t w = 0;
        for (size_t i = 0; i < c->n; i++)
            if (c->v[i].distance <= c->bound)
                c->v[w++] = c->v[i];
        c->n = w;
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 64;
            cand *v = realloc(c->v, cap * sizeof *v);
            if (!v)
                return -1;
            c->v = v;
            c->cap = cap;
        }
    }
    c->v[c->n++] = (cand){work_id, (uint16_t)distance, (uint8_t)transform};
    c->hist[distance]++;
    cand_bound_update(c, k);
    return 0;
}

/* Brute force over one segment for a block of queries: distances of all 8 variants of each query
 * to every record, min over variants, pushed into that query's list. */
#define RECORD_BLOCK 4096

static int search_segment(const ps_segment *seg, const ps_u64set *tombstones, const provscan_fingerprint *queries,
                          size_t nq, int k, cand_list *lists, int jobs)
{
    const uint8_t *codes = ps_segment_section(seg, PS_SEC_CODES, NULL);
    const int64_t *ids = ps_segment_section(seg, PS_SEC_IDS, NULL);
    const ps_kernels *kern = ps_kernels_get();
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
    for (size_t q = 0; q < nq; q++) {
        uint16_t best[RECORD_BLOCK], d[RECORD_BLOCK];
        uint8_t which[RECORD_BLOCK];
        for (uint64_t start = 0; start < seg->records; start += RECORD_BLOCK) {
            size_t n = seg->records - start < RECORD_BLOCK ? (size_t)(seg->records - start) : RECORD_BLOCK;
            const uint8_t *block = codes + start * 32;
            kern->hamming256(queries[q].pdq[0].bytes, block, n, best);
            memset(which, 0, n);
            for (int t = 1; t < PROVSCAN_DIHEDRAL_COUNT; t++) {
                kern->hamming256(queries[q].pdq[t].bytes, block, n, d);
                for (size_t i = 0; i < n; i++)
                    if (d[i] < best[i]) {
                        best[i] = d[i];
                        which[i] = (uint8_t)t;
                    }
            }
            for (size_t i = 0; i < n; i++) {
                if (best[i] > lists[q].bound)
                    continue;
                int64_t id = ids[start + i];
                if (ps_u64set_has(tombstones, (uint64_t)id))
                    continue;
                if (cand_push(&lists[q], k, id, best[i], which[i]) != 0)
                    failed = 1;
            }
        }
    }
    return failed ? -1 : 0;
}

static int cmp_match(const void *a, const void *b)
{
    const provscan_match *x = a, *y = b;
    if (x->distance != y->distance)
        return x->distance - y->distance;
    return strcmp(x->path ? x->path : "", y->path ? y->path : "");
}

static char *dup_column(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? strdup((const char *)t) : NULL;
}

static void match_free(provscan_match *m)
{
    free(m->path);
    free(m->title);
    free(m->author);
    free(m->license);
    free(m->source_url);
    free(m->note);
}

/* Turns one query's candidates into matches with catalog details, ordered by (distance, path). */
static provscan_status finish_query(sqlite3_stmt *row, cand_list *c, int k,
                                    provscan_match **out, size_t *count, provscan_error *err)
{
    *out = NULL;
    *count = 0;
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].distance <= c->bound)
            c->v[n++] = c->v[i];
    if (n == 0)
        return PROVSCAN_OK;
    provscan_match *m = calloc(n, sizeof *m);
    if (!m)
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(row, 1, c->v[i].work_id);
        if (sqlite3_step(row) == SQLITE_ROW) { /* a work deleted since the snapshot is skipped */
            provscan_match *x = &m[got++];
            x->work_id = c->v[i].work_id;
            x->distance = c->v[i].distance;
            x->transform = (provscan_dihedral)c->v[i].transform;
            x->path = dup_column(row, 0);
            const void *sha = sqlite3_column_blob(row, 1);
            if (sha && sqlite3_column_bytes(row, 1) == 32)
                ps_hex(sha, 32, x->sha256);
            x->width = sqlite3_column_int(row, 2);
            x->height = sqlite3_column_int(row, 3);
            x->quality = sqlite3_column_int(row, 4);
            x->title = dup_column(row, 5);
            x->author = dup_column(row, 6);
            x->license = dup_column(row, 7);
            x->source_url = dup_column(row, 8);
            x->note = dup_column(row, 9);
        }
        sqlite3_reset(row);
    }
    qsort(m, got, sizeof *m, cmp_match);
    for (size_t i = (size_t)k; i < got; i++)
        match_free(&m[i]);
    *out = m;
    *count = got < (size_t)k ? got : (size_t)k;
    return PROVSCAN_OK;
}

provscan_status provscan_index_search(provscan_index *idx, const provscan_fingerprint *queries, size_t nq,
                                      const provscan_search_options *opts, provscan_results *out, provscan_error *err)
{
    ps_error_clear(err);
    memset(out, 0, sizeof *out);
    int k = opts && opts->top_k > 0 ? opts->top_k : 5;
    int max_distance = opts && opts->max_distance >= 0 ? opts->max_distance : PROVSCAN_PDQ_POSSIBLE_DISTANCE;
    if (max_distance > 256)
        max_distance = 256;
    int jobs = opts && opts->jobs > 0 ? opts->jobs : omp_get_num_procs();
    if (!idx->snap_loaded)
        PS_TRY(ps_snapshot_load(idx, 0, err));

    out->nqueries = nq;
    out->count = calloc(nq ? nq : 1, sizeof *out->count);
    out->match = calloc(nq ? nq : 1, sizeof *out->match);
    cand_list *lists = calloc(nq ? nq : 1, sizeof *lists);
    if (!out->count || !out->match || !lists) {
        free(lists);
        provscan_results_free(out);
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    }
    for (size_t q = 0; q < nq; q++)
        lists[q].bound = max_distance;
    provscan_status s = PROVSCAN_OK;
    for (size_t i = 0; i < idx->snap.n && s == PROVSCAN_OK; i++)
        if (search_segment(&idx->snap.segs[i], &idx->snap.tombstones, queries, nq, k, lists, jobs) != 0)
            s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    sqlite3_stmt *row = NULL;
    if (s == PROVSCAN_OK)
        s = ps_sql_prepare(idx,
                           "SELECT path, sha256, width, height, quality, title, author, license, source_url, note"
                           " FROM works WHERE id = ?",
                           &row, err);
    for (size_t q = 0; q < nq && s == PROVSCAN_OK; q++)
        s = finish_query(row, &lists[q], k, &out->match[q], &out->count[q], err);
    sqlite3_finalize(row);
    for (size_t q = 0; q < nq; q++)
        free(lists[q].v);
    free(lists);
    if (s != PROVSCAN_OK)
        provscan_results_free(out);
    return s;
}

provscan_status provscan_results_merge(provscan_results *into, provscan_results *from, int top_k)
{
    if (into->nqueries != from->nqueries)
        return PROVSCAN_E_ARG;
    for (size_t q = 0; q < into->nqueries; q++) {
        size_t n = into->count[q] + from->count[q];
        if (n == 0)
            continue;
        provscan_match *m = malloc(n * sizeof *m);
        if (!m)
            return PROVSCAN_E_NOMEM;
        if (into->count[q])
            memcpy(m, into->match[q], into->count[q] * sizeof *m);
        if (from->count[q])
            memcpy(m + into->count[q], from->match[q], from->count[q] * sizeof *m);
        qsort(m, n, sizeof *m, cmp_match);
        for (size_t i = (size_t)top_k; i < n; i++)
            match_free(&m[i]);
        free(into->match[q]);
        free(from->match[q]);
        from->match[q] = NULL;
        from->count[q] = 0;
        into->match[q] = m;
        into->count[q] = n < (size_t)top_k ? n : (size_t)top_k;
    }
    return PROVSCAN_OK;
}

void provscan_results_free(provscan_results *r)
{
    if (!r)
        return;
    for (size_t q = 0; r->match && q < r->nqueries; q++) {
        for (size_t i = 0; r->count && i < r->count[q]; i++)
            match_free(&r->match[q][i]);
        free(r->match[q]);
    }
    free(r->match);
    free(r->count);
    memset(r, 0, sizeof *r);
}

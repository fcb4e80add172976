/* brute.c — exact brute-force radius and k-nearest searches: code blocks streamed once past many query variants. */
#include "search/search.h"
#include "cpu/kernels.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Codes per block (128 KiB): a block stays in L2 while every query chunk of a task passes over it, so
 * in batch mode each code is read from memory once per task rather than once per query. */
#define BLOCK_CODES 4096
/* Query vectors (whole queries' variants) per kernel call: the kernel transposes 8 codes once and then
 * runs every vector over them, reading the vectors' words from L1 (4 KiB for 128). Measured end to end
 * at 10^7 codes, 1 thread, 8-variant batches: 32 vectors 114 q/s, 64: 137, 128: 157 (fewer passes over
 * each L2 block and fewer transpositions). */
#define CALL_VECTORS 128
/* Pairs buffered per kernel call (must be >= the vectors of a call: max(CALL_VECTORS, nvar <= 255)). */
#define PAIR_CAP 4096
/* Queries per task in batch mode: one pass over the corpus serves this many queries. */
#define BATCH_QUERIES 64
/* Below this many (code, variant) pairs (~0.5 ms of work) the tasks run on the calling thread: waking
 * a team costs tens of microseconds on an idle machine, and on a busy one a parallel region waits for
 * its slowest thread to be scheduled at all (milliseconds: 50 queries x 8 variants over 10^4 codes ran
 * 9x slower on 2 threads than on 1 with the other vCPU busy). The task split is the same either way. */
#define PARALLEL_PAIRS ((uint64_t)1 << 23)

typedef struct task {
    size_t q_lo, q_hi; /* queries [q_lo, q_hi) */
    size_t c_lo, c_hi; /* codes [c_lo, c_hi) */
} task;

typedef struct plan {
    task *t;
    size_t n;
} plan;

static int resolve_threads(int threads)
{
    return threads > 0 ? threads : omp_get_max_threads();
}

/* Tasks = query chunks x code ranges. Many queries: chunks of up to max_q queries over all codes, one
 * pass over the corpus per chunk, spread evenly over the threads. Few queries: each chunk is split into
 * code ranges so that every thread has work (a single query runs on all threads). Ranges are multiples
 * of 64 codes. With threads == 1 a single query is still split (into 4 ranges): harmless, and the same
 * code runs whatever the thread count. */
static provscan_status make_plan(size_t n, size_t nq, int threads, size_t max_q, plan *p)
{
    size_t T = (size_t)threads;
    size_t chunks = (nq + max_q - 1) / max_q; /* fewest passes over the corpus... */
    chunks = (chunks + T - 1) / T * T;        /* ...in equal shares for the threads */
    if (chunks > nq)
        chunks = nq ? nq : 1;
    size_t per = (nq + chunks - 1) / chunks;
    if (per < 1)
        per = 1;
    size_t nchunks = (nq + per - 1) / per;
    /* Four code ranges per thread, handed out dynamically: a thread the OS preempts then delays the
     * query by one small range rather than by half the corpus. */
    size_t splits = nchunks >= T ? 1 : (4 * T + nchunks - 1) / nchunks;
    size_t max_splits = (n + 63) / 64;
    if (splits > max_splits)
        splits = max_splits ? max_splits : 1;
    p->n = nchunks * splits;
    p->t = malloc((p->n ? p->n : 1) * sizeof *p->t);
    if (!p->t)
        return PROVSCAN_E_NOMEM;
    size_t k = 0;
    for (size_t c = 0; c < nchunks; c++)
        for (size_t s = 0; s < splits; s++) {
            task *t = &p->t[k++];
            t->q_lo = c * per;
            t->q_hi = t->q_lo + per < nq ? t->q_lo + per : nq;
            t->c_lo = (n * s / splits) & ~(size_t)63;
            t->c_hi = s + 1 == splits ? n : (n * (s + 1) / splits) & ~(size_t)63;
        }
    return PROVSCAN_OK;
}

/* ---- radius ----------------------------------------------------------------------------------- */

/* Folds a kernel call's pairs (in order of code, then vector) into hits: consecutive pairs of the same
 * code and query collapse to the minimum distance, lowest variant first. */
static provscan_status fold_pairs(const ps_hpair *pr, size_t np, size_t rec0, size_t q0, int nvar, ps_hits *out)
{
    for (size_t k = 0; k < np; k++) {
        uint32_t rec = (uint32_t)(rec0 + pr[k].code), q = (uint32_t)(q0 + pr[k].query / (unsigned)nvar);
        uint8_t var = (uint8_t)(pr[k].query % (unsigned)nvar);
        if (out->n && out->v[out->n - 1].record == rec && out->v[out->n - 1].query == q) {
            ps_hit *h = &out->v[out->n - 1];
            if (pr[k].distance < h->distance) { /* variants ascend: equal distance keeps the lower one */
                h->distance = pr[k].distance;
                h->variant = var;
            }
            continue;
        }
        provscan_status st = ps_hits_push(out, (ps_hit){q, rec, pr[k].distance, var});
        if (st != PROVSCAN_OK)
            return st;
    }
    return PROVSCAN_OK;
}

static provscan_status radius_task(const ps_kernels *K, const uint8_t *codes, const uint8_t *queries, int nvar,
                                   int radius, const task *t, ps_hpair *buf, ps_hits *out, uint64_t *pairs)
{
    size_t per_call = CALL_VECTORS / (size_t)nvar;
    if (per_call < 1)
        per_call = 1;
    for (size_t b0 = t->c_lo; b0 < t->c_hi; b0 += BLOCK_CODES) {
        size_t len = t->c_hi - b0 < BLOCK_CODES ? t->c_hi - b0 : BLOCK_CODES;
        for (size_t q0 = t->q_lo; q0 < t->q_hi; q0 += per_call) {
            size_t qn = t->q_hi - q0 < per_call ? t->q_hi - q0 : per_call, nv = qn * (size_t)nvar;
            const uint8_t *qv = queries + 32 * q0 * (size_t)nvar;
            *pairs += (uint64_t)len * nv;
            for (size_t done = 0; done < len;) {
                size_t np = 0;
                size_t used = K->hamming256_radius(qv, nv, codes + 32 * (b0 + done), len - done, radius, buf, PAIR_CAP, &np);
                provscan_status st = fold_pairs(buf, np, b0 + done, q0, nvar, out);
                if (st != PROVSCAN_OK)
                    return st;
                done += used;
            }
        }
    }
    return PROVSCAN_OK;
}

provscan_status ps_brute_radius(const uint8_t *codes, size_t n, const uint8_t *queries, size_t nq, int nvar, int radius,
                                int threads, ps_hits *out, ps_search_stats *stats)
{
    const ps_kernels *K = ps_kernels_get();
    int T = resolve_threads(threads);
    plan p;
    provscan_status st = make_plan(n, nq, T, BATCH_QUERIES, &p);
    if (st != PROVSCAN_OK)
        return st;
    ps_hits *part = calloc(p.n, sizeof *part);
    if (!part) {
        free(p.t);
        return PROVSCAN_E_NOMEM;
    }
    uint64_t pairs = 0;
    int failed = PROVSCAN_OK;
    int par = (uint64_t)n * nq * (uint64_t)nvar >= PARALLEL_PAIRS;
#pragma omp parallel num_threads(T) reduction(+ : pairs) if (par)
    {
        ps_hpair *buf = malloc(PAIR_CAP * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = PROVSCAN_E_NOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < p.n; k++) {
            if (!buf)
                continue;
            provscan_status s = radius_task(K, codes, queries, nvar, radius, &p.t[k], buf, &part[k], &pairs);
            if (s != PROVSCAN_OK) {
#pragma omp atomic write
                failed = s;
            }
        }
        free(buf);
    }
    st = (provscan_status)failed;
    size_t base = out->n;
    for (size_t k = 0; k < p.n; k++) {
        if (st == PROVSCAN_OK)
            st = ps_hits_append(out, part[k].v, part[k].n);
        ps_hits_free(&part[k]);
    }
    free(part);
    free(p.t);
    if (st != PROVSCAN_OK) {
        out->n = base;
        return st;
    }
    ps_hits_sort(out->v + base, out->n - base);
    if (stats)
        stats->pairs += pairs;
    return PROVSCAN_OK;
}

/* Cost model (nanoseconds, measured on the development machine, see docs/search.md): a pass over the
 * codes costs per code its memory read (DRAM-bound past the last-level cache) plus per variant the
 * kernel's distance work; in batch mode the pass is shared by a task's queries. */
double ps_brute_cost_ns(size_t n, size_t nq, int nvar)
{
    const char *set = ps_kernels_get()->name;
    /* Kernel cost per pair: lower with many vectors per call (the transposition is shared). */
    int many = nq * (size_t)nvar >= 32;
    double pair = strcmp(set, "avx512") == 0 ? (many ? 0.07 : 0.09) : strcmp(set, "avx2") == 0 ? 0.35 : 3.0;
    /* Per code and pass, beyond the kernel's work: the share of the codes beyond the last-level cache
     * (taken as 32 MB) comes from DRAM. */
    double hit = (double)n * 32 > 32e6 ? 32e6 / ((double)n * 32) : 1.0;
    double stream = hit * 0.2 + (1 - hit) * 0.6;
    double share = nq >= BATCH_QUERIES ? BATCH_QUERIES : (double)nq;
    return (double)n * (stream / share + pair * nvar);
}

/* ---- k nearest -------------------------------------------------------------------------------- */

/* (distance, record) order: the heap keeps the k smallest, its root is the largest of them. */
static int worse(const ps_hit *a, const ps_hit *b)
{
    return a->distance != b->distance ? a->distance > b->distance : a->record > b->record;
}

static void sift_down(ps_hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && worse(&h[l], &h[m]))
            m = l;
        if (l + 1 < n && worse(&h[l + 1], &h[m]))
            m = l + 1;
        if (m == i)
            return;
        ps_hit t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_offer(ps_hit *h, size_t *n, size_t k, ps_hit x)
{
    if (*n < k) {
        size_t i = (*n)++;
        h[i] = x;
        while (i > 0 && worse(&h[i], &h[(i - 1) / 2])) {
            ps_hit t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (worse(&h[0], &x)) {
        h[0] = x;
        sift_down(h, *n, 0);
    }
}

/* One task: for every block, each query scans it at its current threshold: max_distance until its heap
 * holds k records, then one below the worst kept distance. Records arrive in ascending order within a
 * task, so a later record at the worst distance can never displace an earlier one: the threshold can
 * exclude it and stay exact. */
static void knn_task(const ps_kernels *K, const uint8_t *codes, const uint8_t *queries, int nvar, size_t k,
                     int max_distance, const task *t, ps_hpair *buf, ps_hit *heaps, size_t *counts)
{
    for (size_t b0 = t->c_lo; b0 < t->c_hi; b0 += BLOCK_CODES) {
        size_t len = t->c_hi - b0 < BLOCK_CODES ? t->c_hi - b0 : BLOCK_CODES;
        for (size_t q = t->q_lo; q < t->q_hi; q++) {
            ps_hit *h = heaps + (q - t->q_lo) * k;
            size_t *cnt = &counts[q - t->q_lo];
            const uint8_t *qv = queries + 32 * q * (size_t)nvar;
            for (size_t done = 0; done < len;) {
                int thr = *cnt < k ? max_distance : (int)h[0].distance - 1;
                if (thr < 0)
                    break;
                size_t np = 0;
                size_t used = K->hamming256_radius(qv, (size_t)nvar, codes + 32 * (b0 + done), len - done, thr, buf,
                                                   PAIR_CAP, &np);
                for (size_t i = 0; i < np;) {
                    ps_hit x = {(uint32_t)q, (uint32_t)(b0 + done + buf[i].code), buf[i].distance,
                                (uint8_t)buf[i].query};
                    size_t j = i + 1;
                    for (; j < np && buf[j].code == buf[i].code; j++)
                        if (buf[j].distance < x.distance) {
                            x.distance = buf[j].distance;
                            x.variant = (uint8_t)buf[j].query;
                        }
                    heap_offer(h, cnt, k, x);
                    i = j;
                }
                done += used;
            }
        }
    }
}

static int cmp_query_dist_record(const void *pa, const void *pb)
{
    const ps_hit *a = pa, *b = pb;
    if (a->query != b->query)
        return a->query < b->query ? -1 : 1;
    if (a->distance != b->distance)
        return a->distance < b->distance ? -1 : 1;
    return (a->record > b->record) - (a->record < b->record);
}

provscan_status ps_search_knn(const uint8_t *codes, size_t n, const uint8_t *queries, size_t nq, int nvar, int k,
                              int max_distance, int threads, ps_hits *out)
{
    if (!out || nvar < 1 || nvar > 255 || k < 0 || max_distance < 0 || (n && !codes) || (nq && !queries) ||
        n > UINT32_MAX || nq > UINT32_MAX)
        return PROVSCAN_E_ARG;
    if (k == 0 || n == 0 || nq == 0)
        return PROVSCAN_OK;
    size_t kk = (size_t)k < n ? (size_t)k : n;
    if (max_distance > 256)
        max_distance = 256;
    const ps_kernels *K = ps_kernels_get();
    int T = resolve_threads(threads);
    /* Heaps of a task's queries live together: keep them around 1 MiB. */
    size_t max_q = ((size_t)1 << 20) / (kk * sizeof(ps_hit));
    if (max_q > BATCH_QUERIES)
        max_q = BATCH_QUERIES;
    if (max_q < 1)
        max_q = 1;
    plan p;
    provscan_status st = make_plan(n, nq, T, max_q, &p);
    if (st != PROVSCAN_OK)
        return st;
    /* One heap of kk per (task, query); results then merged per query across a chunk's code ranges. */
    size_t *first = malloc((p.n + 1) * sizeof *first);
    if (!first) {
        free(p.t);
        return PROVSCAN_E_NOMEM;
    }
    first[0] = 0;
    for (size_t t = 0; t < p.n; t++)
        first[t + 1] = first[t] + (p.t[t].q_hi - p.t[t].q_lo);
    size_t slots = first[p.n];
    ps_hit *heaps = slots <= SIZE_MAX / sizeof(ps_hit) / kk ? malloc(slots * kk * sizeof *heaps) : NULL;
    size_t *counts = calloc(slots, sizeof *counts);
    if (!heaps || !counts) {
        free(heaps);
        free(counts);
        free(first);
        free(p.t);
        return PROVSCAN_E_NOMEM;
    }
    int failed = PROVSCAN_OK;
    int par = (uint64_t)n * nq * (uint64_t)nvar >= PARALLEL_PAIRS;
#pragma omp parallel num_threads(T) if (par)
    {
        ps_hpair *buf = malloc(PAIR_CAP * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = PROVSCAN_E_NOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < p.n; t++)
            if (buf)
                knn_task(K, codes, queries, nvar, kk, max_distance, &p.t[t], buf, heaps + first[t] * kk,
                         counts + first[t]);
        free(buf);
    }
    st = (provscan_status)failed;
    size_t base = out->n;
    for (size_t t = 0; t < p.n && st == PROVSCAN_OK; t++)
        for (size_t i = 0; i < p.t[t].q_hi - p.t[t].q_lo && st == PROVSCAN_OK; i++)
            st = ps_hits_append(out, heaps + (first[t] + i) * kk, counts[first[t] + i]);
    free(heaps);
    free(counts);
    free(first);
    free(p.t);
    if (st != PROVSCAN_OK) {
        out->n = base;
        return st;
    }
    /* Sort by (query, distance, record) and keep the first kk of each query (code ranges of one query
     * each contributed their own best kk). */
    if (out->n - base > 1)
        qsort(out->v + base, out->n - base, sizeof(ps_hit), cmp_query_dist_record);
    size_t w = base;
    for (size_t i = base; i < out->n;) {
        size_t j = i;
        while (j < out->n && out->v[j].query == out->v[i].query)
            j++;
        for (size_t x = i; x < j && x - i < kk; x++)
            out->v[w++] = out->v[x];
        i = j;
    }
    out->n = w;
    return PROVSCAN_OK;
}

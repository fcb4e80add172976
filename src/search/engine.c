/* engine.c — result arrays and the choice between MIH and brute force for radius searches. */
#include "search/search.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

void ps_hits_init(ps_hits *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
}

void ps_hits_clear(ps_hits *h)
{
    h->n = 0;
}

void ps_hits_free(ps_hits *h)
{
    free(h->v);
    ps_hits_init(h);
}

static provscan_status reserve(ps_hits *h, size_t more)
{
    if (h->cap - h->n >= more)
        return PROVSCAN_OK;
    if (more > SIZE_MAX / sizeof(ps_hit) - h->n)
        return PROVSCAN_E_NOMEM;
    size_t cap = h->cap ? h->cap : 64;
    while (cap - h->n < more)
        cap = cap > SIZE_MAX / (2 * sizeof(ps_hit)) ? h->n + more : cap * 2;
    ps_hit *v = realloc(h->v, cap * sizeof *v);
    if (!v)
        return PROVSCAN_E_NOMEM;
    h->v = v;
    h->cap = cap;
    return PROVSCAN_OK;
}

provscan_status ps_hits_push(ps_hits *h, ps_hit hit)
{
    if (h->n == h->cap)
        PS_TRY(reserve(h, 1));
    h->v[h->n++] = hit;
    return PROVSCAN_OK;
}

provscan_status ps_hits_append(ps_hits *dst, const ps_hit *src, size_t n)
{
    if (!n)
        return PROVSCAN_OK;
    provscan_status st = reserve(dst, n);
    if (st != PROVSCAN_OK)
        return st;
    memcpy(dst->v + dst->n, src, n * sizeof *src);
    dst->n += n;
    return PROVSCAN_OK;
}

static int cmp_query_record(const void *pa, const void *pb)
{
    const ps_hit *a = pa, *b = pb;
    if (a->query != b->query)
        return a->query < b->query ? -1 : 1;
    return (a->record > b->record) - (a->record < b->record);
}

void ps_hits_sort(ps_hit *v, size_t n)
{
    /* Output is already nearly sorted in the common cases; check before paying for qsort. */
    size_t i = 1;
    while (i < n && cmp_query_record(&v[i - 1], &v[i]) <= 0)
        i++;
    if (i < n)
        qsort(v, n, sizeof *v, cmp_query_record);
}

provscan_status ps_search_radius_ex(const uint8_t *codes, size_t n, const ps_mih *mih, const uint8_t *queries,
                                    size_t nq, int nvar, int radius, int threads, ps_engine engine, ps_hits *out,
                                    ps_search_stats *stats)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!out || nvar < 1 || nvar > 255 || radius < 0 || (n && !codes) || (nq && !queries) || n > UINT32_MAX ||
        nq > UINT32_MAX)
        return PROVSCAN_E_ARG;
    if (engine == PS_ENGINE_MIH && !mih)
        return PROVSCAN_E_ARG;
    if (engine == PS_ENGINE_AUTO) {
        engine = PS_ENGINE_BRUTE;
        if (mih && n && nq && ps_mih_cost_ns(mih, nvar, radius) < ps_brute_cost_ns(n, nq, nvar))
            engine = PS_ENGINE_MIH;
    }
    if (stats)
        stats->engine = engine;
    if (n == 0 || nq == 0)
        return PROVSCAN_OK;
    if (engine == PS_ENGINE_MIH)
        return ps_mih_radius(mih, codes, n, queries, nq, nvar, radius, threads, out, stats);
    return ps_brute_radius(codes, n, queries, nq, nvar, radius, threads, out, stats);
}

provscan_status ps_search_radius(const uint8_t *codes, size_t n, const ps_mih *mih, const uint8_t *queries, size_t nq,
                                 int nvar, int radius, int threads, ps_hits *out)
{
    return ps_search_radius_ex(codes, n, mih, queries, nq, nvar, radius, threads, PS_ENGINE_AUTO, out, NULL);
}

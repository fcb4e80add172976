/* search.h — exact Hamming-space search over 256-bit codes: blocked SIMD brute force and multi-index hashing (MIH). */
#ifndef PROVSCAN_SEARCH_H
#define PROVSCAN_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "provscan.h"

/*
 * Codes are 32 bytes each (a PDQ hash as stored: byte 0 = bits 255..248; Hamming distance does not
 * depend on the byte order). A query is one image given as nvar "variant" codes (its 8 rotations and
 * mirrors), stored contiguously: variant v of query i at queries + 32 * (i * nvar + v). A record's
 * distance to a query is the minimum over the variants; the variant reported is the lowest index
 * reaching that minimum. Everything here is exact: MIH returns exactly what brute force returns.
 * docs/search.md describes the design, the MIH blob byte by byte and the measured speed.
 */

/* ---- results ---------------------------------------------------------------------------------- */

typedef struct ps_hit {
    uint32_t query;    /* index of the query (image), 0..nq-1 */
    uint32_t record;   /* index of the code in the corpus, 0..n-1 */
    uint16_t distance; /* min over the query's variants, 0..256 */
    uint8_t variant;   /* lowest variant index reaching that distance */
} ps_hit;

/* A growable array of hits; zero-initialise it (or ps_hits_init), reuse it, ps_hits_free it. The search
 * functions append, so clear n (ps_hits_clear) between searches if needed. */
typedef struct ps_hits {
    ps_hit *v;
    size_t n, cap;
} ps_hits;

void ps_hits_init(ps_hits *h);
void ps_hits_clear(ps_hits *h);
void ps_hits_free(ps_hits *h);

/* ---- multi-index hashing ---------------------------------------------------------------------- */

/* A read-only view of MIH tables held in a caller-owned blob (malloc'd or mmapped read-only); the blob
 * must outlive the view and must not change while it is open. */
typedef struct ps_mih ps_mih;

#define PS_MIH_MAX_TABLES 64
#define PS_MIH_MIN_BITS 4
#define PS_MIH_MAX_BITS 32

/* Chooses the substring count m and width b (m * b <= 256) for n codes searched at the given radius,
 * from a cost model of the probes and candidate checks against a brute-force scan, with the offset
 * tables held to <= 64 bytes per record. Returns 1 with *m, *b set, or 0 (with *m = *b = 0) when MIH
 * would not beat brute force at this n and radius. */
int ps_mih_choose(size_t n, int radius, int *m, int *b);

/* Bytes of the blob for n codes, m tables of b bits; 0 if the parameters are out of range or the size
 * would overflow. */
size_t ps_mih_size(size_t n, int m, int b);

/* Builds the MIH tables for codes[0..n) into blob (blob_size >= ps_mih_size(n, m, b); the blob should be
 * 64-byte aligned and must be 4-byte aligned). max_radius is recorded as the radius the parameters were
 * chosen for. Deterministic: the same codes and parameters always give the same bytes. threads: OpenMP
 * threads to use (<= 0: the OpenMP default). */
provscan_status ps_mih_build(const uint8_t *codes, size_t n, int m, int b, int max_radius, int threads, void *blob,
                             size_t blob_size, provscan_error *err);

/* Opens a view of a blob for a corpus of n codes. Validates the header, every size and offset (rising
 * from 0 to n, inside the blob) and every record index (< n), so a damaged or hostile blob gives
 * PROVSCAN_E_INDEX (PROVSCAN_E_VERSION for another format version) and never a crash. This reads the
 * whole blob once, at memory bandwidth. */
provscan_status ps_mih_open(const void *blob, size_t blob_size, size_t n, ps_mih **out, provscan_error *err);

/* Deep check against the codes: every record sits in the bucket of each of its substrings, exactly once
 * (ids strictly ascending within a bucket). ps_mih_open already guarantees memory safety; this also
 * guarantees exactness (e.g. for an fsck command). Random access to the codes: seconds at 10^7. */
provscan_status ps_mih_check(const ps_mih *mih, const uint8_t *codes, provscan_error *err);

void ps_mih_close(ps_mih *mih);

/* Parameters of an open view (any pointer may be NULL). */
void ps_mih_params(const ps_mih *mih, int *m, int *b, int *max_radius);

/* ---- searches --------------------------------------------------------------------------------- */

typedef enum ps_engine {
    PS_ENGINE_AUTO = 0, /* MIH when one is given and the cost model says it wins, else brute force */
    PS_ENGINE_BRUTE,    /* always brute force */
    PS_ENGINE_MIH       /* always MIH (PROVSCAN_E_ARG without one) */
} ps_engine;

/* Counters of one search call, for benchmarks and tuning. */
typedef struct ps_search_stats {
    ps_engine engine;    /* the engine that ran: PS_ENGINE_BRUTE or PS_ENGINE_MIH */
    uint64_t probes;     /* MIH: buckets looked up */
    uint64_t candidates; /* MIH: record ids checked with the full distance */
    uint64_t pairs;      /* brute force: (code, variant) distances computed */
} ps_search_stats;

/* All (query, record) pairs whose min-over-variants distance is <= radius, each pair once, appended to
 * out sorted by (query, record). Uses the MIH view when given and the cost model says it wins, else a
 * blocked brute-force scan. threads: OpenMP threads to use (<= 0: the OpenMP default). nvar 1..255. */
provscan_status ps_search_radius(const uint8_t *codes, size_t n, const ps_mih *mih, const uint8_t *queries, size_t nq,
                                 int nvar, int radius, int threads, ps_hits *out);

/* The same with the engine forced (tests, benchmarks) and optional counters (stats may be NULL). */
provscan_status ps_search_radius_ex(const uint8_t *codes, size_t n, const ps_mih *mih, const uint8_t *queries,
                                    size_t nq, int nvar, int radius, int threads, ps_engine engine, ps_hits *out,
                                    ps_search_stats *stats);

/* The k nearest records of each query with distance <= max_distance, exact, ties broken by the lower
 * record index; appended to out sorted by query, then distance, then record. Brute force. */
provscan_status ps_search_knn(const uint8_t *codes, size_t n, const uint8_t *queries, size_t nq, int nvar, int k,
                              int max_distance, int threads, ps_hits *out);

/* ---- internal to src/search ------------------------------------------------------------------- */

/* Appends one hit, growing the array; PROVSCAN_E_NOMEM on failure. */
provscan_status ps_hits_push(ps_hits *h, ps_hit hit);
/* Appends all of src. */
provscan_status ps_hits_append(ps_hits *dst, const ps_hit *src, size_t n);
/* Sorts v[0..n) by (query, record). */
void ps_hits_sort(ps_hit *v, size_t n);

provscan_status ps_brute_radius(const uint8_t *codes, size_t n, const uint8_t *queries, size_t nq, int nvar, int radius,
                                int threads, ps_hits *out, ps_search_stats *stats);
provscan_status ps_mih_radius(const ps_mih *mih, const uint8_t *codes, size_t n, const uint8_t *queries, size_t nq,
                              int nvar, int radius, int threads, ps_hits *out, ps_search_stats *stats);
/* Estimated nanoseconds per query (all its variants) of each engine, for the choice in ps_search_radius. */
double ps_brute_cost_ns(size_t n, size_t nq, int nvar);
double ps_mih_cost_ns(const ps_mih *mih, int nvar, int radius);

#endif

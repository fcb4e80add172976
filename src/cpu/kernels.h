/* kernels.h — the table of hot-loop kernels (scalar, AVX2, AVX-512) and the one dispatcher that picks it. */
#ifndef PROVSCAN_KERNELS_H
#define PROVSCAN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "provscan.h"

/* One result of hamming256_radius: code index (relative to the codes passed), query index, distance. */
typedef struct ps_hpair {
    uint32_t code;
    uint16_t query;
    uint16_t distance;
} ps_hpair;

/* One result of hamming256_top2: nearest code and the two smallest distances. */
typedef struct ps_top2 {
    uint32_t idx;
    uint16_t d1, d2;
} ps_top2;

/* Point pairs for geo_gate, one array per coordinate (so the gate vectorises): query point (qx, qy),
 * work point (wx, wy) and each pair's own tolerance. */
typedef struct ps_point_pairs {
    const double *qx, *qy, *wx, *wy, *tol;
} ps_point_pairs;

/* Every kernel set must give results bit-identical to the scalar set (tests/test_kernels.c checks). */
typedef struct ps_kernels {
    const char *name;

    /* out[i] = (0.299f*R + 0.587f*G) + 0.114f*B in float32, in that order (the PDQ reference). */
    void (*luma_from_rgb)(const uint8_t *rgb, size_t npixels, float *out);
    /* out[i] = (float)grey[i]. */
    void (*float_from_grey)(const uint8_t *grey, size_t npixels, float *out);

    /* One box-filter pass of window w along each row (box_rows) or each column (box_cols) of a
     * rows x cols float image, with PDQ's exact running-sum order and edge handling. */
    void (*box_rows)(const float *in, float *out, int rows, int cols, int window);
    void (*box_cols)(const float *in, float *out, int rows, int cols, int window);

    /* C = D * G * D^T for PDQ: G is 64x64, D is 16x64 (row-major), Dt its 64x16 transpose,
     * C is 16x16; sums over x in ascending order, float32. */
    void (*dct16)(const float *G, const float *D, const float *Dt, float *C);

    /* out[i] = popcount(q ^ codes[i]) for n codes of 256 bits (32 bytes each, any byte order). */
    void (*hamming256)(const uint8_t *q, const uint8_t *codes, size_t n, uint16_t *out);
    /* out[i] = popcount(q ^ codes[i]) for n 64-bit codes. */
    void (*hamming64)(uint64_t q, const uint64_t *codes, size_t n, uint16_t *out);

    /* Radius scan of n 256-bit codes against nq 256-bit queries (nq <= 65535, n < 2^32): every pair
     * with d = popcount(queries[j] ^ codes[i]) <= radius is written to out as {i, j, d}, in order of i,
     * then j. Before each code i the kernel stops if fewer than nq slots remain (cap - written < nq),
     * so a call with cap >= nq always makes progress. Returns the number of codes consumed (== n unless
     * out filled up); *nout = pairs written. */
    size_t (*hamming256_radius)(const uint8_t *queries, size_t nq, const uint8_t *codes, size_t n, int radius,
                                ps_hpair *out, size_t cap, size_t *nout);
    /* out[k] = popcount(q ^ codes[32 * ids[k]]) for n record ids (random access: prefetches ahead). */
    void (*hamming256_gather)(const uint8_t *q, const uint8_t *codes, const uint32_t *ids, size_t n, uint16_t *out);

    /* --- local features (src/features/) --- */
    /* FAST-9 on one image row: for x in [x0, x1) (3 <= x0, x1 <= width - 3, the row at least 3 rows
     * from the top and bottom), score[x - x0] = 0 unless 9 contiguous pixels of the radius-3 circle
     * are all > p + t or all < p - t; then the Rosten score: the sum over the circle of
     * max(0, v - p - t) (bright arc) or max(0, p - t - v) (dark arc). The corners' x are written to
     * xs in ascending order; returns their count. */
    int (*fast9_row)(const uint8_t *row, ptrdiff_t stride, int x0, int x1, int t, uint16_t *score, uint16_t *xs);
    /* For each of nq 256-bit queries: out[i].idx = the lowest index j of the closest code, d1 its
     * distance, d2 the smallest distance to any other code (0xFFFF if n < 2; idx UINT32_MAX and d1
     * 0xFFFF if n == 0). */
    void (*hamming256_top2)(const uint8_t *queries, size_t nq, const uint8_t *codes, size_t n, ps_top2 *out);
    /* The position test of geometric verification, in double precision: writes to out, ascending,
     * every i < n for which the 3x3 model h (row-major) gives W = (h6 qx + h7 qy) + h8 > 1e-9 and
     * (X - wx W)^2 + (Y - wy W)^2 is not greater than (t W)^2, where X = (h0 qx + h1 qy) + h2,
     * Y = (h3 qx + h4 qy) + h5 and t = scale * tol[i] if own_tol, else scale; returns the count.
     * Operations in exactly that order, none fused. */
    int (*geo_gate)(const double *h, const ps_point_pairs *p, int n, int own_tol, double scale, int *out);
} ps_kernels;

/* The kernel set in use: chosen once from the CPU (and PROVSCAN_SIMD), cached. */
const ps_kernels *ps_kernels_get(void);

/* Look-up by name for tests and benchmarks; NULL if this build or CPU cannot run it. */
const ps_kernels *ps_kernels_by_name(const char *name);

/* The per-ISA tables (NULL-free only when compiled in). */
extern const ps_kernels ps_kernels_scalar;
#if defined(PROVSCAN_HAVE_AVX2)
extern const ps_kernels ps_kernels_avx2;
#endif
#if defined(PROVSCAN_HAVE_AVX512)
extern const ps_kernels ps_kernels_avx512;
#endif

#endif

/* kernels.h — the table of hot-loop kernels (scalar, AVX2, AVX-512) and the one dispatcher that picks it. */
#ifndef PROVSCAN_KERNELS_H
#define PROVSCAN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "provscan.h"

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

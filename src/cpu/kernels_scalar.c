/* kernels_scalar.c — portable reference kernels; every SIMD kernel must match these bit for bit. */
#include "cpu/kernels.h"

#include <assert.h>
#include <stdlib.h>

static void luma_from_rgb_scalar(const uint8_t *rgb, size_t npixels, float *out)
{
    for (size_t i = 0; i < npixels; i++) {
        const uint8_t *p = rgb + 3 * i;
        out[i] = 0.299f * (float)p[0] + 0.587f * (float)p[1] + 0.114f * (float)p[2];
    }
}

static void float_from_grey_scalar(const uint8_t *grey, size_t npixels, float *out)
{
    for (size_t i = 0; i < npixels; i++)
        out[i] = (float)grey[i];
}

/* One running-sum box pass over a line of len elements, stride apart. The order of additions,
 * subtractions and divisions is PDQ's (docs/hashes.md): bit-exactness depends on it. */
static void box_line(const float *in, float *out, int len, int stride, int window)
{
    int half = (window + 2) / 2;
    int phase1 = half - 1, phase2 = window - half + 1, phase3 = len - window, phase4 = half - 1;
    const float *right = in, *left = in;
    float *o = out;
    float sum = 0.0f;
    int count = 0;

    for (int i = 0; i < phase1; i++, right += stride) {
        sum += *right;
        count++;
    }
    for (int i = 0; i < phase2; i++, right += stride, o += stride) {
        sum += *right;
        count++;
        *o = sum / (float)count;
    }
    for (int i = 0; i < phase3; i++, right += stride, left += stride, o += stride) {
        sum += *right;
        sum -= *left;
        *o = sum / (float)count;
    }
    for (int i = 0; i < phase4; i++, left += stride, o += stride) {
        sum -= *left;
        count--;
        *o = sum / (float)count;
    }
}

static void box_rows_scalar(const float *in, float *out, int rows, int cols, int window)
{
    assert(window >= 1 && window <= cols);
    for (int r = 0; r < rows; r++)
        box_line(in + (size_t)r * cols, out + (size_t)r * cols, cols, 1, window);
}

/* The column pass walks the image row by row, keeping one running sum per column: the same
 * operations per column as box_line, in the same order, but with sequential memory access. */
static void box_cols_scalar(const float *in, float *out, int rows, int cols, int window)
{
    assert(window >= 1 && window <= rows);
    int half = (window + 2) / 2;
    int phase1 = half - 1, phase2 = window - half + 1, phase3 = rows - window, phase4 = half - 1;
    float *sum = calloc((size_t)cols, sizeof *sum);
    if (!sum) { /* fall back to the strided form: same result, no allocation */
        for (int c = 0; c < cols; c++)
            box_line(in + c, out + c, rows, cols, window);
        return;
    }
    size_t w = (size_t)cols;
    const float *right = in, *left = in;
    float *o = out;
    int count = 0;

    for (int i = 0; i < phase1; i++, right += w) {
        for (size_t c = 0; c < w; c++)
            sum[c] += right[c];
        count++;
    }
    for (int i = 0; i < phase2; i++, right += w, o += w) {
        count++;
        float n = (float)count;
        for (size_t c = 0; c < w; c++) {
            sum[c] += right[c];
            o[c] = sum[c] / n;
        }
    }
    for (int i = 0; i < phase3; i++, right += w, left += w, o += w) {
        float n = (float)count;
        for (size_t c = 0; c < w; c++) {
            sum[c] += right[c];
            sum[c] -= left[c];
            o[c] = sum[c] / n;
        }
    }
    for (int i = 0; i < phase4; i++, left += w, o += w) {
        count--;
        float n = (float)count;
        for (size_t c = 0; c < w; c++) {
            sum[c] -= left[c];
            o[c] = sum[c] / n;
        }
    }
    free(sum);
}

static void dct16_scalar(const float *G, const float *D, const float *Dt, float *C)
{
    float T[16 * 64];
    for (int u = 0; u < 16; u++) {
        for (int j = 0; j < 64; j++) {
            float s = 0.0f;
            for (int x = 0; x < 64; x++)
                s += D[u * 64 + x] * G[x * 64 + j];
            T[u * 64 + j] = s;
        }
    }
    for (int u = 0; u < 16; u++) {
        for (int v = 0; v < 16; v++) {
            float s = 0.0f;
            for (int x = 0; x < 64; x++)
                s += T[u * 64 + x] * Dt[x * 16 + v];
            C[u * 16 + v] = s;
        }
    }
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static void hamming256_scalar(const uint8_t *q, const uint8_t *codes, size_t n, uint16_t *out)
{
    uint64_t q0 = load64(q), q1 = load64(q + 8), q2 = load64(q + 16), q3 = load64(q + 24);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = codes + 32 * i;
        out[i] = (uint16_t)(__builtin_popcountll(q0 ^ load64(c)) + __builtin_popcountll(q1 ^ load64(c + 8)) +
                            __builtin_popcountll(q2 ^ load64(c + 16)) + __builtin_popcountll(q3 ^ load64(c + 24)));
    }
}

static void hamming64_scalar(uint64_t q, const uint64_t *codes, size_t n, uint16_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint16_t)__builtin_popcountll(q ^ codes[i]);
}

const ps_kernels ps_kernels_scalar = {
    .name = "scalar",
    .luma_from_rgb = luma_from_rgb_scalar,
    .float_from_grey = float_from_grey_scalar,
    .box_rows = box_rows_scalar,
    .box_cols = box_cols_scalar,
    .dct16 = dct16_scalar,
    .hamming256 = hamming256_scalar,
    .hamming64 = hamming64_scalar,
};

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

static inline int popcount256_xor(const uint8_t *a, const uint8_t *b)
{
    return __builtin_popcountll(load64(a) ^ load64(b)) + __builtin_popcountll(load64(a + 8) ^ load64(b + 8)) +
           __builtin_popcountll(load64(a + 16) ^ load64(b + 16)) + __builtin_popcountll(load64(a + 24) ^ load64(b + 24));
}

static size_t hamming256_radius_scalar(const uint8_t *queries, size_t nq, const uint8_t *codes, size_t n, int radius,
                                       ps_hpair *out, size_t cap, size_t *nout)
{
    size_t w = 0, i = 0;
    for (; i < n; i++) {
        if (cap - w < nq)
            break;
        const uint8_t *c = codes + 32 * i;
        uint64_t c0 = load64(c), c1 = load64(c + 8), c2 = load64(c + 16), c3 = load64(c + 24);
        for (size_t j = 0; j < nq; j++) {
            const uint8_t *q = queries + 32 * j;
            /* The first 128 bits alone are a lower bound on the distance: most pairs stop here. */
            int d = __builtin_popcountll(c0 ^ load64(q)) + __builtin_popcountll(c1 ^ load64(q + 8));
            if (d > radius)
                continue;
            d += __builtin_popcountll(c2 ^ load64(q + 16)) + __builtin_popcountll(c3 ^ load64(q + 24));
            if (d <= radius)
                out[w++] = (ps_hpair){(uint32_t)i, (uint16_t)j, (uint16_t)d};
        }
    }
    *nout = w;
    return i;
}

/* Ids ahead to prefetch in the gather kernels: enough misses in flight to cover DRAM latency. */
#define GATHER_AHEAD 16

static void hamming256_gather_scalar(const uint8_t *q, const uint8_t *codes, const uint32_t *ids, size_t n,
                                     uint16_t *out)
{
    for (size_t k = 0; k < n; k++) {
        if (k + GATHER_AHEAD < n)
            __builtin_prefetch(codes + 32 * (size_t)ids[k + GATHER_AHEAD]);
        out[k] = (uint16_t)popcount256_xor(q, codes + 32 * (size_t)ids[k]);
    }
}

/* --- local features (src/features/) --------------------------------------------------------- */

/* The radius-3 Bresenham circle of FAST, clockwise from the top. */
static const int fast_dx[16] = {0, 1, 2, 3, 3, 3, 2, 1, 0, -1, -2, -3, -3, -3, -2, -1};
static const int fast_dy[16] = {-3, -3, -2, -1, 0, 1, 2, 3, 3, 3, 2, 1, 0, -1, -2, -3};

/* 1 when the 16-bit circular mask m has 9 contiguous bits set. */
static inline int fast_arc9(uint32_t m)
{
    uint32_t r = m | (m << 16);
    uint32_t a = r & (r >> 1);
    a &= a >> 2;
    a &= a >> 4;
    a &= r >> 8;
    return (a & 0xFFFFu) != 0;
}

static int fast9_row_scalar(const uint8_t *row, ptrdiff_t stride, int x0, int x1, int t, uint16_t *score,
                            uint16_t *xs)
{
    ptrdiff_t off[16];
    for (int k = 0; k < 16; k++)
        off[k] = fast_dy[k] * stride + fast_dx[k];
    int n = 0;
    for (int x = x0; x < x1; x++) {
        const uint8_t *p = row + x;
        int hi = p[0] + t, lo = p[0] - t;
        uint32_t mb = 0, md = 0;
        int sb = 0, sd = 0;
        for (int k = 0; k < 16; k++) {
            int v = p[off[k]];
            if (v > hi) {
                mb |= 1u << k;
                sb += v - hi;
            } else if (v < lo) {
                md |= 1u << k;
                sd += lo - v;
            }
        }
        int s = fast_arc9(mb) ? sb : fast_arc9(md) ? sd : 0;
        score[x - x0] = (uint16_t)s;
        if (s)
            xs[n++] = (uint16_t)x;
    }
    return n;
}

static void hamming256_top2_scalar(const uint8_t *queries, size_t nq, const uint8_t *codes, size_t n, ps_top2 *out)
{
    for (size_t i = 0; i < nq; i++) {
        const uint8_t *q = queries + 32 * i;
        uint32_t best = UINT32_MAX;
        unsigned d1 = 0xFFFF, d2 = 0xFFFF;
        for (size_t j = 0; j < n; j++) {
            unsigned d = (unsigned)popcount256_xor(q, codes + 32 * j);
            if (d < d1) {
                d2 = d1;
                d1 = d;
                best = (uint32_t)j;
            } else if (d < d2) {
                d2 = d;
            }
        }
        out[i].idx = best;
        out[i].d1 = (uint16_t)d1;
        out[i].d2 = (uint16_t)d2;
    }
}

static int geo_gate_scalar(const double *h, const ps_point_pairs *p, int n, int own_tol, double scale, int *out)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        double qx = p->qx[i], qy = p->qy[i];
        double X = h[0] * qx + h[1] * qy + h[2], Y = h[3] * qx + h[4] * qy + h[5], W = h[6] * qx + h[7] * qy + h[8];
        if (!(W > 1e-9))
            continue;
        double t = own_tol ? scale * p->tol[i] : scale;
        double ex = X - p->wx[i] * W, ey = Y - p->wy[i] * W, tw = t * W;
        if (ex * ex + ey * ey > tw * tw)
            continue;
        out[k++] = i;
    }
    return k;
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
    .hamming256_radius = hamming256_radius_scalar,
    .hamming256_gather = hamming256_gather_scalar,
    .fast9_row = fast9_row_scalar,
    .hamming256_top2 = hamming256_top2_scalar,
    .geo_gate = geo_gate_scalar,
};

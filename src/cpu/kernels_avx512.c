/* kernels_avx512.c — AVX-512 kernels (F, BW, VL, VPOPCNTDQ); bit-identical to kernels_scalar.c. */
#include "cpu/kernels.h"

#include <assert.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/* Column pass with 16 columns per vector; same per-column operation order as the scalar kernel. */
static void box_cols_avx512(const float *in, float *out, int rows, int cols, int window)
{
    assert(window >= 1 && window <= rows);
    size_t w = (size_t)cols, wv = w & ~(size_t)15;
    float *sum = aligned_alloc(64, ((w + 15) & ~(size_t)15) * sizeof *sum);
    if (!sum) {
        ps_kernels_scalar.box_cols(in, out, rows, cols, window);
        return;
    }
    memset(sum, 0, w * sizeof *sum);
    int half = (window + 2) / 2;
    int phase1 = half - 1, phase2 = window - half + 1, phase3 = rows - window, phase4 = half - 1;
    const float *right = in, *left = in;
    float *o = out;
    int count = 0;

    for (int i = 0; i < phase1; i++, right += w) {
        size_t c = 0;
        for (; c < wv; c += 16)
            _mm512_store_ps(sum + c, _mm512_add_ps(_mm512_load_ps(sum + c), _mm512_loadu_ps(right + c)));
        for (; c < w; c++)
            sum[c] += right[c];
        count++;
    }
    for (int i = 0; i < phase2; i++, right += w, o += w) {
        count++;
        float n = (float)count;
        __m512 nv = _mm512_set1_ps(n);
        size_t c = 0;
        for (; c < wv; c += 16) {
            __m512 s = _mm512_add_ps(_mm512_load_ps(sum + c), _mm512_loadu_ps(right + c));
            _mm512_store_ps(sum + c, s);
            _mm512_storeu_ps(o + c, _mm512_div_ps(s, nv));
        }
        for (; c < w; c++) {
            sum[c] += right[c];
            o[c] = sum[c] / n;
        }
    }
    for (int i = 0; i < phase3; i++, right += w, left += w, o += w) {
        float n = (float)count;
        __m512 nv = _mm512_set1_ps(n);
        size_t c = 0;
        for (; c < wv; c += 16) {
            __m512 s = _mm512_add_ps(_mm512_load_ps(sum + c), _mm512_loadu_ps(right + c));
            s = _mm512_sub_ps(s, _mm512_loadu_ps(left + c));
            _mm512_store_ps(sum + c, s);
            _mm512_storeu_ps(o + c, _mm512_div_ps(s, nv));
        }
        for (; c < w; c++) {
            sum[c] += right[c];
            sum[c] -= left[c];
            o[c] = sum[c] / n;
        }
    }
    for (int i = 0; i < phase4; i++, left += w, o += w) {
        count--;
        float n = (float)count;
        __m512 nv = _mm512_set1_ps(n);
        size_t c = 0;
        for (; c < wv; c += 16) {
            __m512 s = _mm512_sub_ps(_mm512_load_ps(sum + c), _mm512_loadu_ps(left + c));
            _mm512_store_ps(sum + c, s);
            _mm512_storeu_ps(o + c, _mm512_div_ps(s, nv));
        }
        for (; c < w; c++) {
            sum[c] -= left[c];
            o[c] = sum[c] / n;
        }
    }
    free(sum);
}

static inline void transpose8x8(const float *src, size_t ss, float *dst, size_t ds)
{
    __m256 r0 = _mm256_loadu_ps(src + 0 * ss), r1 = _mm256_loadu_ps(src + 1 * ss);
    __m256 r2 = _mm256_loadu_ps(src + 2 * ss), r3 = _mm256_loadu_ps(src + 3 * ss);
    __m256 r4 = _mm256_loadu_ps(src + 4 * ss), r5 = _mm256_loadu_ps(src + 5 * ss);
    __m256 r6 = _mm256_loadu_ps(src + 6 * ss), r7 = _mm256_loadu_ps(src + 7 * ss);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ds, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* Row pass: 16-row strips transposed into a cols x 16 buffer, filtered by the column kernel with
 * one lane per row, transposed back. */
static void box_rows_avx512(const float *in, float *out, int rows, int cols, int window)
{
    assert(window >= 1 && window <= cols);
    size_t w = (size_t)cols, wb = w & ~(size_t)7;
    int strips = rows / 16;
    float *a = NULL, *b = NULL;
    if (strips > 0 && wb > 0) {
        a = malloc(w * 16 * sizeof *a);
        b = malloc(w * 16 * sizeof *b);
    }
    if (!a || !b) {
        free(a);
        free(b);
        ps_kernels_avx2.box_rows(in, out, rows, cols, window);
        return;
    }
    for (int s = 0; s < strips; s++) {
        const float *src = in + (size_t)s * 16 * w;
        float *dst = out + (size_t)s * 16 * w;
        for (size_t c = 0; c < wb; c += 8) {
            transpose8x8(src + c, w, a + c * 16, 16);
            transpose8x8(src + 8 * w + c, w, a + c * 16 + 8, 16);
        }
        for (size_t c = wb; c < w; c++)
            for (int r = 0; r < 16; r++)
                a[c * 16 + r] = src[r * w + c];
        box_cols_avx512(a, b, cols, 16, window);
        for (size_t c = 0; c < wb; c += 8) {
            transpose8x8(b + c * 16, 16, dst + c, w);
            transpose8x8(b + c * 16 + 8, 16, dst + 8 * w + c, w);
        }
        for (size_t c = wb; c < w; c++)
            for (int r = 0; r < 16; r++)
                dst[r * w + c] = b[c * 16 + r];
    }
    free(a);
    free(b);
    int done = strips * 16;
    if (done < rows)
        ps_kernels_avx2.box_rows(in + (size_t)done * w, out + (size_t)done * w, rows - done, cols, window);
}

static void dct16_avx512(const float *G, const float *D, const float *Dt, float *C)
{
    float T[16 * 64] __attribute__((aligned(64)));
    for (int u = 0; u < 16; u++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int x = 0; x < 64; x++) {
            __m512 d = _mm512_set1_ps(D[u * 64 + x]);
            const float *g = G + x * 64;
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(d, _mm512_loadu_ps(g)));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(d, _mm512_loadu_ps(g + 16)));
            a2 = _mm512_add_ps(a2, _mm512_mul_ps(d, _mm512_loadu_ps(g + 32)));
            a3 = _mm512_add_ps(a3, _mm512_mul_ps(d, _mm512_loadu_ps(g + 48)));
        }
        _mm512_store_ps(T + u * 64, a0);
        _mm512_store_ps(T + u * 64 + 16, a1);
        _mm512_store_ps(T + u * 64 + 32, a2);
        _mm512_store_ps(T + u * 64 + 48, a3);
    }
    for (int u = 0; u < 16; u++) {
        __m512 acc = _mm512_setzero_ps();
        for (int x = 0; x < 64; x++)
            acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_set1_ps(T[u * 64 + x]), _mm512_loadu_ps(Dt + x * 16)));
        _mm512_storeu_ps(C + u * 16, acc);
    }
}

static void hamming256_avx512(const uint8_t *q, const uint8_t *codes, size_t n, uint16_t *out)
{
    __m512i qv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)q));
    /* After the pairwise lane sums below, totals come out in the order c0 c2 c1 c3 c4 c6 c5 c7. */
    const __m512i order = _mm512_setr_epi64(0, 2, 1, 3, 4, 6, 5, 7);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint8_t *c = codes + 32 * i;
        __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(qv, _mm512_loadu_si512(c + 0)));   /* codes 0,1 */
        __m512i b = _mm512_popcnt_epi64(_mm512_xor_si512(qv, _mm512_loadu_si512(c + 64)));  /* codes 2,3 */
        __m512i d = _mm512_popcnt_epi64(_mm512_xor_si512(qv, _mm512_loadu_si512(c + 128))); /* codes 4,5 */
        __m512i e = _mm512_popcnt_epi64(_mm512_xor_si512(qv, _mm512_loadu_si512(c + 192))); /* codes 6,7 */
        __m512i ab = _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
        __m512i de = _mm512_add_epi64(_mm512_unpacklo_epi64(d, e), _mm512_unpackhi_epi64(d, e));
        __m512i lo = _mm512_shuffle_i64x2(ab, de, _MM_SHUFFLE(2, 0, 2, 0));
        __m512i hi = _mm512_shuffle_i64x2(ab, de, _MM_SHUFFLE(3, 1, 3, 1));
        __m512i tot = _mm512_permutexvar_epi64(order, _mm512_add_epi64(lo, hi));
        _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi64_epi16(tot));
    }
    if (i < n)
        ps_kernels_avx2.hamming256(q, codes + 32 * i, n - i, out + i);
}

static void hamming64_avx512(uint64_t q, const uint64_t *codes, size_t n, uint16_t *out)
{
    __m512i qv = _mm512_set1_epi64((long long)q);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i pc = _mm512_popcnt_epi64(_mm512_xor_si512(qv, _mm512_loadu_si512(codes + i)));
        _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi64_epi16(pc));
    }
    if (i < n)
        ps_kernels_avx2.hamming64(q, codes + i, n - i, out + i);
}

const ps_kernels ps_kernels_avx512 = {
    .name = "avx512",
    /* 256-bit code already saturates these two: the AVX2 versions are reused on purpose. */
    .luma_from_rgb = NULL,
    .float_from_grey = NULL,
    .box_rows = box_rows_avx512,
    .box_cols = box_cols_avx512,
    .dct16 = dct16_avx512,
    .hamming256 = hamming256_avx512,
    .hamming64 = hamming64_avx512,
};

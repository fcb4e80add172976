/* kernels_avx2.c — AVX2 kernels (compiled with -mavx2 -mpopcnt only); bit-identical to kernels_scalar.c. */
#include "cpu/kernels.h"

#include <assert.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

static void luma_from_rgb_avx2(const uint8_t *rgb, size_t npixels, float *out)
{
    const __m256 cr = _mm256_set1_ps(0.299f), cg = _mm256_set1_ps(0.587f), cb = _mm256_set1_ps(0.114f);
    /* Per 128-bit lane: 4 pixels (12 bytes) spread to one byte per 32-bit lane. */
    const __m256i pick_r = _mm256_setr_epi8(0, -1, -1, -1, 3, -1, -1, -1, 6, -1, -1, -1, 9, -1, -1, -1,
                                            0, -1, -1, -1, 3, -1, -1, -1, 6, -1, -1, -1, 9, -1, -1, -1);
    const __m256i pick_g = _mm256_setr_epi8(1, -1, -1, -1, 4, -1, -1, -1, 7, -1, -1, -1, 10, -1, -1, -1,
                                            1, -1, -1, -1, 4, -1, -1, -1, 7, -1, -1, -1, 10, -1, -1, -1);
    const __m256i pick_b = _mm256_setr_epi8(2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1,
                                            2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1);
    size_t i = 0;
    /* Each step reads 16 bytes at pixel i+4, i.e. 4 bytes past the 8 pixels it converts. */
    for (; i + 10 <= npixels; i += 8) {
        const uint8_t *p = rgb + 3 * i;
        __m256i v = _mm256_loadu2_m128i((const __m128i *)(p + 12), (const __m128i *)p);
        __m256 r = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, pick_r));
        __m256 g = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, pick_g));
        __m256 b = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, pick_b));
        __m256 y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(cr, r), _mm256_mul_ps(cg, g)), _mm256_mul_ps(cb, b));
        _mm256_storeu_ps(out + i, y);
    }
    ps_kernels_scalar.luma_from_rgb(rgb + 3 * i, npixels - i, out + i);
}

static void float_from_grey_avx2(const uint8_t *grey, size_t npixels, float *out)
{
    size_t i = 0;
    for (; i + 8 <= npixels; i += 8) {
        __m128i v = _mm_loadl_epi64((const __m128i *)(grey + i));
        _mm256_storeu_ps(out + i, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)));
    }
    ps_kernels_scalar.float_from_grey(grey + i, npixels - i, out + i);
}

/* Column pass: one running sum per column, 8 columns per vector, rows walked in order. The
 * operation sequence per column is exactly that of the scalar kernel. */
static void box_cols_avx2(const float *in, float *out, int rows, int cols, int window)
{
    assert(window >= 1 && window <= rows);
    size_t w = (size_t)cols, wv = w & ~(size_t)7;
    float *sum = aligned_alloc(32, ((w + 7) & ~(size_t)7) * sizeof *sum);
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
        for (; c < wv; c += 8)
            _mm256_store_ps(sum + c, _mm256_add_ps(_mm256_load_ps(sum + c), _mm256_loadu_ps(right + c)));
        for (; c < w; c++)
            sum[c] += right[c];
        count++;
    }
    for (int i = 0; i < phase2; i++, right += w, o += w) {
        count++;
        float n = (float)count;
        __m256 nv = _mm256_set1_ps(n);
        size_t c = 0;
        for (; c < wv; c += 8) {
            __m256 s = _mm256_add_ps(_mm256_load_ps(sum + c), _mm256_loadu_ps(right + c));
            _mm256_store_ps(sum + c, s);
            _mm256_storeu_ps(o + c, _mm256_div_ps(s, nv));
        }
        for (; c < w; c++) {
            sum[c] += right[c];
            o[c] = sum[c] / n;
        }
    }
    for (int i = 0; i < phase3; i++, right += w, left += w, o += w) {
        float n = (float)count;
        __m256 nv = _mm256_set1_ps(n);
        size_t c = 0;
        for (; c < wv; c += 8) {
            __m256 s = _mm256_add_ps(_mm256_load_ps(sum + c), _mm256_loadu_ps(right + c));
            s = _mm256_sub_ps(s, _mm256_loadu_ps(left + c));
            _mm256_store_ps(sum + c, s);
            _mm256_storeu_ps(o + c, _mm256_div_ps(s, nv));
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
        __m256 nv = _mm256_set1_ps(n);
        size_t c = 0;
        for (; c < wv; c += 8) {
            __m256 s = _mm256_sub_ps(_mm256_load_ps(sum + c), _mm256_loadu_ps(left + c));
            _mm256_store_ps(sum + c, s);
            _mm256_storeu_ps(o + c, _mm256_div_ps(s, nv));
        }
        for (; c < w; c++) {
            sum[c] -= left[c];
            o[c] = sum[c] / n;
        }
    }
    free(sum);
}

/* Transposes the 8x8 float block at src (row stride ss) into dst (row stride ds). */
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

/* Row pass: strips of 8 rows are transposed into a cols x 8 buffer (it stays in cache), filtered
 * with the column kernel (one lane per row), and transposed back. */
static void box_rows_avx2(const float *in, float *out, int rows, int cols, int window)
{
    assert(window >= 1 && window <= cols);
    size_t w = (size_t)cols, wb = w & ~(size_t)7;
    int strips = rows / 8;
    float *a = NULL, *b = NULL;
    if (strips > 0 && wb > 0) {
        a = malloc(w * 8 * sizeof *a);
        b = malloc(w * 8 * sizeof *b);
    }
    if (!a || !b) {
        free(a);
        free(b);
        ps_kernels_scalar.box_rows(in, out, rows, cols, window);
        return;
    }
    for (int s = 0; s < strips; s++) {
        const float *src = in + (size_t)s * 8 * w;
        float *dst = out + (size_t)s * 8 * w;
        for (size_t c = 0; c < wb; c += 8)
            transpose8x8(src + c, w, a + c * 8, 8);
        for (size_t c = wb; c < w; c++)
            for (int r = 0; r < 8; r++)
                a[c * 8 + r] = src[r * w + c];
        box_cols_avx2(a, b, cols, 8, window);
        for (size_t c = 0; c < wb; c += 8)
            transpose8x8(b + c * 8, 8, dst + c, w);
        for (size_t c = wb; c < w; c++)
            for (int r = 0; r < 8; r++)
                dst[r * w + c] = b[c * 8 + r];
    }
    free(a);
    free(b);
    int done = strips * 8;
    if (done < rows)
        ps_kernels_scalar.box_rows(in + (size_t)done * w, out + (size_t)done * w, rows - done, cols, window);
}

static void dct16_avx2(const float *G, const float *D, const float *Dt, float *C)
{
    float T[16 * 64] __attribute__((aligned(32)));
    for (int u = 0; u < 16; u++) {
        __m256 acc[8];
        for (int k = 0; k < 8; k++)
            acc[k] = _mm256_setzero_ps();
        for (int x = 0; x < 64; x++) {
            __m256 d = _mm256_set1_ps(D[u * 64 + x]);
            for (int k = 0; k < 8; k++)
                acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(d, _mm256_loadu_ps(G + x * 64 + 8 * k)));
        }
        for (int k = 0; k < 8; k++)
            _mm256_store_ps(T + u * 64 + 8 * k, acc[k]);
    }
    for (int u = 0; u < 16; u++) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        for (int x = 0; x < 64; x++) {
            __m256 t = _mm256_set1_ps(T[u * 64 + x]);
            lo = _mm256_add_ps(lo, _mm256_mul_ps(t, _mm256_loadu_ps(Dt + x * 16)));
            hi = _mm256_add_ps(hi, _mm256_mul_ps(t, _mm256_loadu_ps(Dt + x * 16 + 8)));
        }
        _mm256_storeu_ps(C + u * 16, lo);
        _mm256_storeu_ps(C + u * 16 + 8, hi);
    }
}

/* Byte popcount by nibble look-up (Mula), summed per 64-bit lane by vpsadbw. */
static inline __m256i popcount_lanes(__m256i x)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, low));
    __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
    return _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256());
}

static void hamming256_avx2(const uint8_t *q, const uint8_t *codes, size_t n, uint16_t *out)
{
    __m256i qv = _mm256_loadu_si256((const __m256i *)q);
    size_t i = 0;
    /* Four codes at a time: their per-lane counts (< 65) are packed into 16-bit fields of one
     * vector, so a single horizontal add yields all four distances. */
    for (; i + 4 <= n; i += 4) {
        const uint8_t *c = codes + 32 * i;
        __m256i s0 = popcount_lanes(_mm256_xor_si256(qv, _mm256_loadu_si256((const __m256i *)(c + 0))));
        __m256i s1 = popcount_lanes(_mm256_xor_si256(qv, _mm256_loadu_si256((const __m256i *)(c + 32))));
        __m256i s2 = popcount_lanes(_mm256_xor_si256(qv, _mm256_loadu_si256((const __m256i *)(c + 64))));
        __m256i s3 = popcount_lanes(_mm256_xor_si256(qv, _mm256_loadu_si256((const __m256i *)(c + 96))));
        __m256i packed = _mm256_or_si256(_mm256_or_si256(s0, _mm256_slli_epi64(s1, 16)),
                                         _mm256_or_si256(_mm256_slli_epi64(s2, 32), _mm256_slli_epi64(s3, 48)));
        __m128i half = _mm_add_epi16(_mm256_castsi256_si128(packed), _mm256_extracti128_si256(packed, 1));
        half = _mm_add_epi16(half, _mm_unpackhi_epi64(half, half));
        _mm_storel_epi64((__m128i *)(out + i), half);
    }
    if (i < n)
        ps_kernels_scalar.hamming256(q, codes + 32 * i, n - i, out + i);
}

static void hamming64_avx2(uint64_t q, const uint64_t *codes, size_t n, uint16_t *out)
{
    /* The hardware popcnt instruction beats a vector look-up for single 64-bit words. */
    for (size_t i = 0; i < n; i++)
        out[i] = (uint16_t)_mm_popcnt_u64(q ^ codes[i]);
}

const ps_kernels ps_kernels_avx2 = {
    .name = "avx2",
    .luma_from_rgb = luma_from_rgb_avx2,
    .float_from_grey = float_from_grey_avx2,
    .box_rows = box_rows_avx2,
    .box_cols = box_cols_avx2,
    .dct16 = dct16_avx2,
    .hamming256 = hamming256_avx2,
    .hamming64 = hamming64_avx2,
};

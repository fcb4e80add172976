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

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline int dist256_popcnt(const uint8_t *a, const uint8_t *b)
{
    return (int)(_mm_popcnt_u64(ld64(a) ^ ld64(b)) + _mm_popcnt_u64(ld64(a + 8) ^ ld64(b + 8)) +
                 _mm_popcnt_u64(ld64(a + 16) ^ ld64(b + 16)) + _mm_popcnt_u64(ld64(a + 24) ^ ld64(b + 24)));
}

/* Per-byte popcounts (0..8) of x, by the nibble look-up. */
static inline __m256i popcount_bytes(__m256i x)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, low)),
                           _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low)));
}

/* Emits code i's pairs exactly as the scalar kernel does (used for the few codes that have any). */
static inline size_t radius_emit_code(const uint8_t *queries, size_t nq, const uint8_t *c, uint32_t i, int radius,
                                      ps_hpair *out, size_t w)
{
    for (size_t j = 0; j < nq; j++) {
        int d = dist256_popcnt(c, queries + 32 * j);
        if (d <= radius)
            out[w++] = (ps_hpair){i, (uint16_t)j, (uint16_t)d};
    }
    return w;
}

/* Four codes per step, transposed so that each 64-bit lane holds one code's word k: a query's words
 * are broadcast and one vector op serves four codes. The first two words (128 bits) give a lower
 * bound; only when some lane's bound, minimised over all queries, is within the radius are the
 * full distances computed, and only lanes with a real hit go to the exact per-code emission. */
static size_t hamming256_radius_avx2(const uint8_t *queries, size_t nq, const uint8_t *codes, size_t n, int radius,
                                     ps_hpair *out, size_t cap, size_t *nout)
{
    size_t w = 0, i = 0;
    if (radius >= 0) {
        const __m256i rad = _mm256_set1_epi64x(radius > 256 ? 256 : radius), zero = _mm256_setzero_si256();
        /* Past 64 the 128-bit bound almost never rejects: go straight to full distances. */
        const int screen = radius < 64;
        for (; i + 4 <= n; i += 4) {
            if (cap - w < nq)
                break;
            const uint8_t *c = codes + 32 * i;
            __m256i z0 = _mm256_loadu_si256((const __m256i *)c), z1 = _mm256_loadu_si256((const __m256i *)(c + 32));
            __m256i z2 = _mm256_loadu_si256((const __m256i *)(c + 64)), z3 = _mm256_loadu_si256((const __m256i *)(c + 96));
            __m256i t0 = _mm256_unpacklo_epi64(z0, z1), t1 = _mm256_unpackhi_epi64(z0, z1);
            __m256i t2 = _mm256_unpacklo_epi64(z2, z3), t3 = _mm256_unpackhi_epi64(z2, z3);
            __m256i w0 = _mm256_permute2x128_si256(t0, t2, 0x20), w1 = _mm256_permute2x128_si256(t1, t3, 0x20);
            if (screen) {
                __m256i mn = _mm256_set1_epi64x(1024);
                for (size_t j = 0; j < nq; j++) {
                    const uint8_t *q = queries + 32 * j;
                    __m256i b = _mm256_add_epi8(popcount_bytes(_mm256_xor_si256(w0, _mm256_set1_epi64x((long long)ld64(q)))),
                                                popcount_bytes(_mm256_xor_si256(w1, _mm256_set1_epi64x((long long)ld64(q + 8)))));
                    /* Lanes hold values < 2^32 with zero upper halves, so a 32-bit minimum is exact. */
                    mn = _mm256_min_epu32(mn, _mm256_sad_epu8(b, zero));
                }
                if (_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(mn, rad))) == 0xF)
                    continue;
            }
            __m256i w2 = _mm256_permute2x128_si256(t0, t2, 0x31), w3 = _mm256_permute2x128_si256(t1, t3, 0x31);
            __m256i mn = _mm256_set1_epi64x(1024);
            for (size_t j = 0; j < nq; j++) {
                const uint8_t *q = queries + 32 * j;
                __m256i b = _mm256_add_epi8(popcount_bytes(_mm256_xor_si256(w0, _mm256_set1_epi64x((long long)ld64(q)))),
                                            popcount_bytes(_mm256_xor_si256(w1, _mm256_set1_epi64x((long long)ld64(q + 8)))));
                b = _mm256_add_epi8(b, popcount_bytes(_mm256_xor_si256(w2, _mm256_set1_epi64x((long long)ld64(q + 16)))));
                b = _mm256_add_epi8(b, popcount_bytes(_mm256_xor_si256(w3, _mm256_set1_epi64x((long long)ld64(q + 24)))));
                mn = _mm256_min_epu32(mn, _mm256_sad_epu8(b, zero));
            }
            int hit = ~_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(mn, rad))) & 0xF;
            if (!hit)
                continue;
            for (int l = 0; l < 4; l++) {
                if (cap - w < nq) {
                    *nout = w;
                    return i + (size_t)l;
                }
                if (hit >> l & 1)
                    w = radius_emit_code(queries, nq, c + 32 * l, (uint32_t)(i + (size_t)l), radius, out, w);
            }
        }
    }
    for (; i < n; i++) {
        if (cap - w < nq)
            break;
        if (radius >= 0)
            w = radius_emit_code(queries, nq, codes + 32 * i, (uint32_t)i, radius, out, w);
    }
    *nout = w;
    return i;
}

static void hamming256_gather_avx2(const uint8_t *q, const uint8_t *codes, const uint32_t *ids, size_t n,
                                   uint16_t *out)
{
    enum { AHEAD = 16 }; /* ids ahead to prefetch: enough misses in flight to cover DRAM latency */
    for (size_t k = 0; k < n; k++) {
        if (k + AHEAD < n)
            _mm_prefetch((const char *)(codes + 32 * (size_t)ids[k + AHEAD]), _MM_HINT_T0);
        out[k] = (uint16_t)dist256_popcnt(q, codes + 32 * (size_t)ids[k]);
    }
}

/* --- local features (src/features/) --------------------------------------------------------- */

static const int fast_dx_avx2[16] = {0, 1, 2, 3, 3, 3, 2, 1, 0, -1, -2, -3, -3, -3, -2, -1};
static const int fast_dy_avx2[16] = {-3, -3, -2, -1, 0, 1, 2, 3, 3, 3, 2, 1, 0, -1, -2, -3};

/* Lanes (bits) whose circle has 9 contiguous set masks: doubling ANDs over the 16 positions. */
static inline uint32_t arc9_lanes32(const uint32_t m[16])
{
    uint32_t a[16], c4[16], r = 0;
    for (int k = 0; k < 16; k++)
        a[k] = m[k] & m[(k + 1) & 15];
    for (int k = 0; k < 16; k++)
        c4[k] = a[k] & a[(k + 2) & 15];
    for (int k = 0; k < 16; k++)
        r |= c4[k] & c4[(k + 4) & 15] & m[(k + 8) & 15];
    return r;
}

/* 16-bit lanes set to all ones where the corresponding bit of bits (low 16) is set. */
static inline __m256i lanes16_from_bits(uint32_t bits)
{
    const __m256i sel = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
                                          (short)0x8000);
    __m256i b = _mm256_set1_epi16((short)(bits & 0xFFFF));
    return _mm256_cmpeq_epi16(_mm256_and_si256(b, sel), sel);
}

/* 32 pixels at a time: masks by unsigned saturating differences, arc test on the 32-bit lane masks,
 * Rosten scores summed in 16-bit lanes only for blocks that hold a corner. */
static int fast9_row_avx2(const uint8_t *row, ptrdiff_t stride, int x0, int x1, int t, uint16_t *score, uint16_t *xs)
{
    ptrdiff_t off[16];
    for (int k = 0; k < 16; k++)
        off[k] = fast_dy_avx2[k] * stride + fast_dx_avx2[k];
    const __m256i tv = _mm256_set1_epi8((char)(uint8_t)t), zero = _mm256_setzero_si256();
    int n = 0, x = x0;
    if (x1 - x0 < 32)
        return ps_kernels_scalar.fast9_row(row, stride, x0, x1, t, score, xs);
    /* The last block overlaps the one before it (the test is per pixel, so rewritten scores are
     * the same); only its new lanes (>= skip) are listed. */
    for (int skip = 0; x < x1; x += 32) {
        if (x + 32 > x1) {
            skip = x - (x1 - 32);
            x = x1 - 32;
        }
        const uint8_t *p = row + x;
        __m256i c = _mm256_loadu_si256((const __m256i *)p);
        __m256i hi = _mm256_adds_epu8(c, tv), lo = _mm256_subs_epu8(c, tv);
        uint32_t mb[16], md[16];
        for (int k = 0; k < 16; k += 4) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(p + off[k]));
            mb[k] = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_subs_epu8(v, hi), zero));
            md[k] = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_subs_epu8(lo, v), zero));
        }
        uint16_t *s = score + (x - x0);
        if (!((mb[0] | mb[8]) & (mb[4] | mb[12])) && !((md[0] | md[8]) & (md[4] | md[12]))) {
            _mm256_storeu_si256((__m256i *)s, zero);
            _mm256_storeu_si256((__m256i *)(s + 16), zero);
            continue;
        }
        for (int k = 0; k < 16; k++) {
            if ((k & 3) == 0)
                continue;
            __m256i v = _mm256_loadu_si256((const __m256i *)(p + off[k]));
            mb[k] = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_subs_epu8(v, hi), zero));
            md[k] = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_subs_epu8(lo, v), zero));
        }
        uint32_t ab = arc9_lanes32(mb), ad = arc9_lanes32(md) & ~ab;
        if (!(ab | ad)) {
            _mm256_storeu_si256((__m256i *)s, zero);
            _mm256_storeu_si256((__m256i *)(s + 16), zero);
            continue;
        }
        __m256i sb0 = zero, sb1 = zero, sd0 = zero, sd1 = zero;
        for (int k = 0; k < 16; k++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(p + off[k]));
            __m256i b = _mm256_subs_epu8(v, hi), d = _mm256_subs_epu8(lo, v);
            sb0 = _mm256_add_epi16(sb0, _mm256_cvtepu8_epi16(_mm256_castsi256_si128(b)));
            sb1 = _mm256_add_epi16(sb1, _mm256_cvtepu8_epi16(_mm256_extracti128_si256(b, 1)));
            sd0 = _mm256_add_epi16(sd0, _mm256_cvtepu8_epi16(_mm256_castsi256_si128(d)));
            sd1 = _mm256_add_epi16(sd1, _mm256_cvtepu8_epi16(_mm256_extracti128_si256(d, 1)));
        }
        __m256i r0 = _mm256_or_si256(_mm256_and_si256(sb0, lanes16_from_bits(ab)),
                                     _mm256_and_si256(sd0, lanes16_from_bits(ad)));
        __m256i r1 = _mm256_or_si256(_mm256_and_si256(sb1, lanes16_from_bits(ab >> 16)),
                                     _mm256_and_si256(sd1, lanes16_from_bits(ad >> 16)));
        _mm256_storeu_si256((__m256i *)s, r0);
        _mm256_storeu_si256((__m256i *)(s + 16), r1);
        for (uint32_t m = (ab | ad) & (~(uint32_t)0 << skip); m; m &= m - 1)
            xs[n++] = (uint16_t)(x + __builtin_ctz(m));
    }
    return n;
}

static inline __m256i popcnt_bytes_avx2(__m256i x)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                                         2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256i lo = _mm256_and_si256(x, low), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

/* One query per 64-bit lane (8 per pass): every lane runs the scalar loop's updates in code order. */
static void hamming256_top2_avx2(const uint8_t *queries, size_t nq, const uint8_t *codes, size_t n, ps_top2 *out)
{
    for (size_t i0 = 0; i0 < nq; i0 += 8) {
        size_t cnt = nq - i0 < 8 ? nq - i0 : 8;
        uint64_t qb[8][4];
        memset(qb, 0, sizeof qb);
        memcpy(qb, queries + 32 * i0, 32 * cnt);
        __m256i Q[2][4];
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                Q[h][k] = _mm256_setr_epi64x((long long)qb[4 * h][k], (long long)qb[4 * h + 1][k],
                                             (long long)qb[4 * h + 2][k], (long long)qb[4 * h + 3][k]);
        __m256i m1[2], m2[2], id[2];
        for (int h = 0; h < 2; h++) {
            m1[h] = m2[h] = _mm256_set1_epi64x(0xFFFF);
            id[h] = _mm256_set1_epi64x(0xFFFFFFFFLL);
        }
        const __m256i zero = _mm256_setzero_si256();
        for (size_t j = 0; j < n; j++) {
            const uint8_t *c = codes + 32 * j;
            __m256i acc0 = zero, acc1 = zero;
            for (int k = 0; k < 4; k++) {
                uint64_t w;
                memcpy(&w, c + 8 * k, 8);
                __m256i ck = _mm256_set1_epi64x((long long)w);
                acc0 = _mm256_add_epi8(acc0, popcnt_bytes_avx2(_mm256_xor_si256(Q[0][k], ck)));
                acc1 = _mm256_add_epi8(acc1, popcnt_bytes_avx2(_mm256_xor_si256(Q[1][k], ck)));
            }
            __m256i d[2] = {_mm256_sad_epu8(acc0, zero), _mm256_sad_epu8(acc1, zero)};
            __m256i jv = _mm256_set1_epi64x((long long)j);
            for (int h = 0; h < 2; h++) {
                __m256i lt = _mm256_cmpgt_epi64(m1[h], d[h]);
                __m256i mn = _mm256_blendv_epi8(m2[h], d[h], _mm256_cmpgt_epi64(m2[h], d[h]));
                m2[h] = _mm256_blendv_epi8(mn, m1[h], lt);
                m1[h] = _mm256_blendv_epi8(m1[h], d[h], lt);
                id[h] = _mm256_blendv_epi8(id[h], jv, lt);
            }
        }
        uint64_t a1[8], a2[8], ai[8];
        for (int h = 0; h < 2; h++) {
            _mm256_storeu_si256((__m256i *)(a1 + 4 * h), m1[h]);
            _mm256_storeu_si256((__m256i *)(a2 + 4 * h), m2[h]);
            _mm256_storeu_si256((__m256i *)(ai + 4 * h), id[h]);
        }
        for (size_t l = 0; l < cnt; l++) {
            out[i0 + l].idx = (uint32_t)ai[l];
            out[i0 + l].d1 = (uint16_t)a1[l];
            out[i0 + l].d2 = (uint16_t)a2[l];
        }
    }
}

/* Four pairs per step; the scalar kernel takes the last n % 4. */
static int geo_gate_avx2(const double *h, const ps_point_pairs *p, int n, int own_tol, double scale, int *out)
{
    __m256d H[9];
    for (int j = 0; j < 9; j++)
        H[j] = _mm256_set1_pd(h[j]);
    const __m256d eps = _mm256_set1_pd(1e-9), s = _mm256_set1_pd(scale);
    int k = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d qx = _mm256_loadu_pd(p->qx + i), qy = _mm256_loadu_pd(p->qy + i);
        __m256d X = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(H[0], qx), _mm256_mul_pd(H[1], qy)), H[2]);
        __m256d Y = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(H[3], qx), _mm256_mul_pd(H[4], qy)), H[5]);
        __m256d W = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(H[6], qx), _mm256_mul_pd(H[7], qy)), H[8]);
        __m256d t = own_tol ? _mm256_mul_pd(s, _mm256_loadu_pd(p->tol + i)) : s;
        __m256d ex = _mm256_sub_pd(X, _mm256_mul_pd(_mm256_loadu_pd(p->wx + i), W));
        __m256d ey = _mm256_sub_pd(Y, _mm256_mul_pd(_mm256_loadu_pd(p->wy + i), W));
        __m256d tw = _mm256_mul_pd(t, W);
        __m256d e2 = _mm256_add_pd(_mm256_mul_pd(ex, ex), _mm256_mul_pd(ey, ey));
        /* "not greater" is true for NaN, as the scalar test's "skip if greater" lets NaN through */
        __m256d ok = _mm256_and_pd(_mm256_cmp_pd(W, eps, _CMP_GT_OQ),
                                   _mm256_cmp_pd(e2, _mm256_mul_pd(tw, tw), _CMP_NGT_UQ));
        for (unsigned mask = (unsigned)_mm256_movemask_pd(ok); mask; mask &= mask - 1)
            out[k++] = i + __builtin_ctz(mask);
    }
    if (i < n) {
        ps_point_pairs rest = {p->qx + i, p->qy + i, p->wx + i, p->wy + i, p->tol ? p->tol + i : NULL};
        int m = ps_kernels_scalar.geo_gate(h, &rest, n - i, own_tol, scale, out + k);
        for (int j = 0; j < m; j++)
            out[k + j] += i;
        k += m;
    }
    return k;
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
    .hamming256_radius = hamming256_radius_avx2,
    .hamming256_gather = hamming256_gather_avx2,
    .fast9_row = fast9_row_avx2,
    .hamming256_top2 = hamming256_top2_avx2,
    .geo_gate = geo_gate_avx2,
};

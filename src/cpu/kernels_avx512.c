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

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Code i's pairs, computed one by one exactly as the scalar kernel does (only for codes with a hit). */
static inline size_t radius_emit_code(const uint8_t *queries, size_t nq, const uint8_t *c, uint32_t i, int radius,
                                      ps_hpair *out, size_t w)
{
    uint64_t c0 = ld64(c), c1 = ld64(c + 8), c2 = ld64(c + 16), c3 = ld64(c + 24);
    for (size_t j = 0; j < nq; j++) {
        const uint8_t *q = queries + 32 * j;
        int d = (int)(_mm_popcnt_u64(c0 ^ ld64(q)) + _mm_popcnt_u64(c1 ^ ld64(q + 8)) +
                      _mm_popcnt_u64(c2 ^ ld64(q + 16)) + _mm_popcnt_u64(c3 ^ ld64(q + 24)));
        if (d <= radius)
            out[w++] = (ps_hpair){i, (uint16_t)j, (uint16_t)d};
    }
    return w;
}

#define BCAST(p) _mm512_set1_epi64((long long)ld64(p))

/* Eight codes per step, transposed so that each 64-bit lane holds one code's word k (two permutes
 * and two lane shuffles per pair of words); a query's word is broadcast and one VPOPCNTQ serves
 * eight codes. The first 128 bits give a lower bound, minimised over all queries: for random codes
 * at radius 31 it rejects a step with probability ~1 - 1e-6, so the usual cost per (code, query)
 * is 2 xor + 2 popcount + add + min over 8 lanes. Steps that pass get full distances, and only
 * lanes with a real hit are emitted, code by code, in the scalar kernel's order. */
static size_t hamming256_radius_avx512(const uint8_t *queries, size_t nq, const uint8_t *codes, size_t n, int radius,
                                       ps_hpair *out, size_t cap, size_t *nout)
{
    size_t w = 0, i = 0;
    if (radius >= 0) {
        const __m512i ia = _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13), ib = _mm512_setr_epi64(2, 6, 10, 14, 3, 7, 11, 15);
        const __m512i rad = _mm512_set1_epi64(radius > 256 ? 256 : radius), big = _mm512_set1_epi64(1024);
        const int screen = radius < 64; /* past 64 the 128-bit bound almost never rejects */
        for (; i + 8 <= n; i += 8) {
            if (cap - w < nq)
                break;
            const uint8_t *c = codes + 32 * i;
            __m512i z0 = _mm512_loadu_si512(c), z1 = _mm512_loadu_si512(c + 64);
            __m512i z2 = _mm512_loadu_si512(c + 128), z3 = _mm512_loadu_si512(c + 192);
            /* [c0w0 c1w0 c2w0 c3w0 c0w1 c1w1 c2w1 c3w1] and the same for codes 4..7, then regrouped. */
            __m512i a01 = _mm512_permutex2var_epi64(z0, ia, z1), a23 = _mm512_permutex2var_epi64(z2, ia, z3);
            __m512i w0 = _mm512_shuffle_i64x2(a01, a23, 0x44), w1 = _mm512_shuffle_i64x2(a01, a23, 0xEE);
            if (screen) {
                __m512i m0 = big, m1 = big;
                size_t j = 0;
                for (; j + 2 <= nq; j += 2) {
                    const uint8_t *q = queries + 32 * j;
                    m0 = _mm512_min_epu64(m0, _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(w0, BCAST(q))),
                                                               _mm512_popcnt_epi64(_mm512_xor_si512(w1, BCAST(q + 8)))));
                    m1 = _mm512_min_epu64(m1, _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(w0, BCAST(q + 32))),
                                                               _mm512_popcnt_epi64(_mm512_xor_si512(w1, BCAST(q + 40)))));
                }
                if (j < nq) {
                    const uint8_t *q = queries + 32 * j;
                    m0 = _mm512_min_epu64(m0, _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(w0, BCAST(q))),
                                                               _mm512_popcnt_epi64(_mm512_xor_si512(w1, BCAST(q + 8)))));
                }
                if (!_mm512_cmple_epu64_mask(_mm512_min_epu64(m0, m1), rad))
                    continue;
            }
            __m512i b01 = _mm512_permutex2var_epi64(z0, ib, z1), b23 = _mm512_permutex2var_epi64(z2, ib, z3);
            __m512i w2 = _mm512_shuffle_i64x2(b01, b23, 0x44), w3 = _mm512_shuffle_i64x2(b01, b23, 0xEE);
            __m512i mn = big;
            for (size_t j = 0; j < nq; j++) {
                const uint8_t *q = queries + 32 * j;
                __m512i d = _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(w0, BCAST(q))),
                                             _mm512_popcnt_epi64(_mm512_xor_si512(w1, BCAST(q + 8))));
                d = _mm512_add_epi64(d, _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(w2, BCAST(q + 16))),
                                                         _mm512_popcnt_epi64(_mm512_xor_si512(w3, BCAST(q + 24)))));
                mn = _mm512_min_epu64(mn, d);
            }
            unsigned hit = _mm512_cmple_epu64_mask(mn, rad);
            if (!hit)
                continue;
            for (int l = 0; l < 8; l++) {
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
#undef BCAST

/* --- local features (src/features/) --------------------------------------------------------- */

static const int fast_dx_avx512[16] = {0, 1, 2, 3, 3, 3, 2, 1, 0, -1, -2, -3, -3, -3, -2, -1};
static const int fast_dy_avx512[16] = {-3, -3, -2, -1, 0, 1, 2, 3, 3, 3, 2, 1, 0, -1, -2, -3};

static inline uint64_t arc9_lanes64(const uint64_t m[16])
{
    uint64_t a[16], c4[16], r = 0;
    for (int k = 0; k < 16; k++)
        a[k] = m[k] & m[(k + 1) & 15];
    for (int k = 0; k < 16; k++)
        c4[k] = a[k] & a[(k + 2) & 15];
    for (int k = 0; k < 16; k++)
        r |= c4[k] & c4[(k + 4) & 15] & m[(k + 8) & 15];
    return r;
}

/* 64 pixels at a time with mask registers; the same definitions as the scalar kernel. */
static int fast9_row_avx512(const uint8_t *row, ptrdiff_t stride, int x0, int x1, int t, uint16_t *score,
                            uint16_t *xs)
{
    ptrdiff_t off[16];
    for (int k = 0; k < 16; k++)
        off[k] = fast_dy_avx512[k] * stride + fast_dx_avx512[k];
    const __m512i tv = _mm512_set1_epi8((char)(uint8_t)t), zero = _mm512_setzero_si512();
    int n = 0, x = x0;
    if (x1 - x0 < 64)
        return ps_kernels_scalar.fast9_row(row, stride, x0, x1, t, score, xs);
    /* The last block overlaps the one before it (the test is per pixel, so rewritten scores are
     * the same); only its new lanes (>= skip) are listed. */
    for (int skip = 0; x < x1; x += 64) {
        if (x + 64 > x1) {
            skip = x - (x1 - 64);
            x = x1 - 64;
        }
        const uint8_t *p = row + x;
        __m512i c = _mm512_loadu_si512(p);
        __m512i hi = _mm512_adds_epu8(c, tv), lo = _mm512_subs_epu8(c, tv);
        uint64_t mb[16], md[16];
        for (int k = 0; k < 16; k += 4) {
            __m512i v = _mm512_loadu_si512(p + off[k]);
            mb[k] = _mm512_cmpgt_epu8_mask(v, hi);
            md[k] = _mm512_cmplt_epu8_mask(v, lo);
        }
        uint16_t *s = score + (x - x0);
        if (!((mb[0] | mb[8]) & (mb[4] | mb[12])) && !((md[0] | md[8]) & (md[4] | md[12]))) {
            for (int q = 0; q < 4; q++)
                _mm512_storeu_si512(s + 16 * q, zero);
            continue;
        }
        for (int k = 0; k < 16; k++) {
            if ((k & 3) == 0)
                continue;
            __m512i v = _mm512_loadu_si512(p + off[k]);
            mb[k] = _mm512_cmpgt_epu8_mask(v, hi);
            md[k] = _mm512_cmplt_epu8_mask(v, lo);
        }
        uint64_t ab = arc9_lanes64(mb), ad = arc9_lanes64(md) & ~ab;
        if (!(ab | ad)) {
            for (int q = 0; q < 4; q++)
                _mm512_storeu_si512(s + 16 * q, zero);
            continue;
        }
        __m512i sb0 = zero, sb1 = zero, sd0 = zero, sd1 = zero;
        for (int k = 0; k < 16; k++) {
            __m512i v = _mm512_loadu_si512(p + off[k]);
            __m512i b = _mm512_subs_epu8(v, hi), d = _mm512_subs_epu8(lo, v);
            sb0 = _mm512_add_epi16(sb0, _mm512_cvtepu8_epi16(_mm512_castsi512_si256(b)));
            sb1 = _mm512_add_epi16(sb1, _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(b, 1)));
            sd0 = _mm512_add_epi16(sd0, _mm512_cvtepu8_epi16(_mm512_castsi512_si256(d)));
            sd1 = _mm512_add_epi16(sd1, _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(d, 1)));
        }
        __m512i r0 = _mm512_mask_mov_epi16(_mm512_maskz_mov_epi16((__mmask32)ab, sb0), (__mmask32)ad, sd0);
        __m512i r1 = _mm512_mask_mov_epi16(_mm512_maskz_mov_epi16((__mmask32)(ab >> 32), sb1), (__mmask32)(ad >> 32),
                                           sd1);
        _mm512_storeu_si512(s, r0);
        _mm512_storeu_si512(s + 32, r1);
        for (uint64_t m = (ab | ad) & (~(uint64_t)0 << skip); m; m &= m - 1)
            xs[n++] = (uint16_t)(x + __builtin_ctzll(m));
    }
    return n;
}

/* One query per 64-bit lane, 16 per pass over the codes (two registers for overlap). */
static void hamming256_top2_avx512(const uint8_t *queries, size_t nq, const uint8_t *codes, size_t n, ps_top2 *out)
{
    for (size_t i0 = 0; i0 < nq; i0 += 16) {
        size_t cnt = nq - i0 < 16 ? nq - i0 : 16;
        uint64_t qb[16][4];
        memset(qb, 0, sizeof qb);
        memcpy(qb, queries + 32 * i0, 32 * cnt);
        __m512i Q[2][4];
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                Q[h][k] = _mm512_setr_epi64((long long)qb[8 * h][k], (long long)qb[8 * h + 1][k],
                                            (long long)qb[8 * h + 2][k], (long long)qb[8 * h + 3][k],
                                            (long long)qb[8 * h + 4][k], (long long)qb[8 * h + 5][k],
                                            (long long)qb[8 * h + 6][k], (long long)qb[8 * h + 7][k]);
        __m512i m1[2], m2[2], id[2];
        for (int h = 0; h < 2; h++) {
            m1[h] = m2[h] = _mm512_set1_epi64(0xFFFF);
            id[h] = _mm512_set1_epi64(0xFFFFFFFFLL);
        }
        for (size_t j = 0; j < n; j++) {
            const uint8_t *c = codes + 32 * j;
            __m512i d[2];
            for (int h = 0; h < 2; h++)
                d[h] = _mm512_setzero_si512();
            for (int k = 0; k < 4; k++) {
                uint64_t w;
                memcpy(&w, c + 8 * k, 8);
                __m512i ck = _mm512_set1_epi64((long long)w);
                d[0] = _mm512_add_epi64(d[0], _mm512_popcnt_epi64(_mm512_xor_si512(Q[0][k], ck)));
                d[1] = _mm512_add_epi64(d[1], _mm512_popcnt_epi64(_mm512_xor_si512(Q[1][k], ck)));
            }
            __m512i jv = _mm512_set1_epi64((long long)j);
            for (int h = 0; h < 2; h++) {
                __mmask8 lt = _mm512_cmplt_epu64_mask(d[h], m1[h]);
                m2[h] = _mm512_mask_mov_epi64(_mm512_min_epu64(m2[h], d[h]), lt, m1[h]);
                m1[h] = _mm512_mask_mov_epi64(m1[h], lt, d[h]);
                id[h] = _mm512_mask_mov_epi64(id[h], lt, jv);
            }
        }
        uint64_t a1[16], a2[16], ai[16];
        for (int h = 0; h < 2; h++) {
            _mm512_storeu_si512(a1 + 8 * h, m1[h]);
            _mm512_storeu_si512(a2 + 8 * h, m2[h]);
            _mm512_storeu_si512(ai + 8 * h, id[h]);
        }
        for (size_t l = 0; l < cnt; l++) {
            out[i0 + l].idx = (uint32_t)ai[l];
            out[i0 + l].d1 = (uint16_t)a1[l];
            out[i0 + l].d2 = (uint16_t)a2[l];
        }
    }
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
    .hamming256_radius = hamming256_radius_avx512,
    /* Gathering codes is bound by memory latency; the AVX2 (scalar POPCNT) version is reused. */
    .hamming256_gather = NULL,
    .fast9_row = fast9_row_avx512,
    .hamming256_top2 = hamming256_top2_avx512,
};

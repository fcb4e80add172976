/* test_search.c — Hamming search: kernels equal scalar, brute force and MIH equal a naive reference, hostile MIH blobs rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpu/kernels.h"
#include "search/search.h"
#include "testutil.h"

/* ---- data ------------------------------------------------------------------------------------- */

static void random_code(uint8_t *c, uint64_t *seed)
{
    for (int i = 0; i < 4; i++) {
        uint64_t v = tu_rand(seed);
        memcpy(c + 8 * i, &v, 8);
    }
}

/* dst = src with exactly d distinct random bits flipped. */
static void flip_bits(uint8_t *dst, const uint8_t *src, int d, uint64_t *seed)
{
    uint8_t used[256] = {0};
    memcpy(dst, src, 32);
    while (d > 0) {
        int bit = (int)(tu_rand(seed) % 256);
        if (used[bit])
            continue;
        used[bit] = 1;
        dst[bit >> 3] ^= (uint8_t)(1u << (bit & 7));
        d--;
    }
}

static uint8_t *alloc_codes(size_t n)
{
    uint8_t *c = malloc(n ? 32 * n : 1);
    assert_non_null(c);
    return c;
}

static uint8_t *random_codes(size_t n, uint64_t *seed)
{
    uint8_t *c = alloc_codes(n);
    for (size_t i = 0; i < n; i++)
        random_code(c + 32 * i, seed);
    return c;
}

/* Noisy copies of a few hundred centres, like real PDQ corpora (near-copies, families of edits); many
 * exact duplicates, so buckets are skewed and distances tie. */
static uint8_t *clustered_codes(size_t n, size_t centres, const uint8_t *cent, uint64_t *seed)
{
    uint8_t *c = alloc_codes(n);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *src = cent + 32 * (tu_rand(seed) % centres);
        int d = (int)(tu_rand(seed) % 4 == 0 ? 0 : tu_rand(seed) % 48);
        flip_bits(c + 32 * i, src, d, seed);
    }
    return c;
}

static int dist(const uint8_t *a, const uint8_t *b)
{
    int d = 0;
    for (int i = 0; i < 32; i++)
        d += __builtin_popcount((unsigned)(a[i] ^ b[i]));
    return d;
}

/* The naive definition: for every query and record, the minimum over variants (lowest variant on
 * ties); kept when <= radius; sorted by (query, record). */
static ps_hits naive_radius(const uint8_t *codes, size_t n, const uint8_t *q, size_t nq, int nvar, int radius)
{
    ps_hits h;
    ps_hits_init(&h);
    for (size_t i = 0; i < nq; i++)
        for (size_t r = 0; r < n; r++) {
            int best = 1000, bv = 0;
            for (int v = 0; v < nvar; v++) {
                int d = dist(q + 32 * (i * (size_t)nvar + (size_t)v), codes + 32 * r);
                if (d < best) {
                    best = d;
                    bv = v;
                }
            }
            if (best <= radius)
                assert_int_equal(ps_hits_push(&h, (ps_hit){(uint32_t)i, (uint32_t)r, (uint16_t)best, (uint8_t)bv}),
                                 PROVSCAN_OK);
        }
    return h;
}

static void assert_hits_equal(const ps_hits *a, const ps_hits *b, const char *what)
{
    if (a->n != b->n)
        fail_msg("%s: %zu hits, expected %zu", what, b->n, a->n);
    for (size_t i = 0; i < a->n; i++) {
        const ps_hit *x = &a->v[i], *y = &b->v[i];
        if (x->query != y->query || x->record != y->record || x->distance != y->distance || x->variant != y->variant)
            fail_msg("%s: hit %zu is (q %u, r %u, d %u, v %u), expected (q %u, r %u, d %u, v %u)", what, i, y->query,
                     y->record, y->distance, y->variant, x->query, x->record, x->distance, x->variant);
    }
}

/* A blob allocated to its exact size, so that AddressSanitizer sees any read past it. */
static uint8_t *build_blob(const uint8_t *codes, size_t n, int m, int b, int radius, size_t *size)
{
    *size = ps_mih_size(n, m, b);
    assert_true(*size > 0);
    uint8_t *blob = aligned_alloc(64, (*size + 63) & ~(size_t)63);
    assert_non_null(blob);
    provscan_error err;
    assert_int_equal(ps_mih_build(codes, n, m, b, radius, 2, blob, *size, &err), PROVSCAN_OK);
    return blob;
}

/* ---- kernels ---------------------------------------------------------------------------------- */

static const char *const simd_sets[] = {"avx2", "avx512"};

/* Runs a radius kernel to completion with a given output capacity, recording every call's result. */
static size_t run_radius(const ps_kernels *k, const uint8_t *q, size_t nq, const uint8_t *codes, size_t n, int radius,
                         size_t cap, ps_hpair *buf, ps_hpair *all, size_t *calls, size_t *trace)
{
    size_t total = 0, done = 0, c = 0;
    while (done < n) {
        size_t np = 12345;
        size_t used = k->hamming256_radius(q, nq, codes + 32 * done, n - done, radius, buf, cap, &np);
        assert_true(np <= cap);
        trace[c++] = used;
        trace[c++] = np;
        for (size_t i = 0; i < np; i++) {
            all[total] = buf[i];
            all[total++].code += (uint32_t)done;
        }
        done += used;
        if (!used)
            break; /* cap < nq: no progress possible, by contract */
    }
    *calls = c;
    return total;
}

static void test_kernels_equal_scalar(void **state)
{
    (void)state;
    const ps_kernels *s = ps_kernels_by_name("scalar");
    assert_non_null(s);
    uint64_t seed = 11;
    static const size_t sizes[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 33, 100, 515};
    static const size_t nqs[] = {0, 1, 2, 3, 8, 9, 17, 40};
    static const int radii[] = {-1, 0, 3, 31, 63, 64, 128, 256, 400};
    uint8_t *q = random_codes(40, &seed);
    int ran = 0;
    /* Allocated once: large blocks are slow to come and go under AddressSanitizer. */
    enum { MAX_PAIRS = 515 * 40 + 1, BIG_CAP = 100000 };
    ps_hpair *x = malloc(MAX_PAIRS * sizeof *x), *y = malloc(MAX_PAIRS * sizeof *y), *buf = malloc(BIG_CAP * sizeof *buf);
    size_t *tx = malloc(2 * 600 * sizeof *tx), *ty = malloc(2 * 600 * sizeof *ty);
    assert_true(x && y && buf && tx && ty);
    for (size_t si = 0; si < sizeof simd_sets / sizeof simd_sets[0]; si++) {
        const ps_kernels *k = ps_kernels_by_name(simd_sets[si]);
        if (!k)
            continue;
        ran++;
        for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++) {
            size_t n = sizes[a];
            /* Codes near the queries at every distance, so that hits, screens and emissions all happen. */
            uint8_t *codes = alloc_codes(n);
            for (size_t i = 0; i < n; i++) {
                if (tu_rand(&seed) % 3 == 0)
                    random_code(codes + 32 * i, &seed);
                else
                    flip_bits(codes + 32 * i, q + 32 * (tu_rand(&seed) % 40), (int)(tu_rand(&seed) % 90), &seed);
            }
            for (size_t b = 0; b < sizeof nqs / sizeof nqs[0]; b++)
                for (size_t c = 0; c < sizeof radii / sizeof radii[0]; c++) {
                    size_t nq = nqs[b];
                    /* Small capacities force many resumptions: enough to try them at a few radii. */
                    size_t caps[] = {BIG_CAP, nq + 5, nq};
                    for (int ci = 0; ci < (c % 3 == 0 ? 3 : 1); ci++) {
                        size_t cap = caps[ci], cx = 0, cy = 0;
                        size_t nx = run_radius(s, q, nq, codes, n, radii[c], cap, buf, x, &cx, tx);
                        size_t ny = run_radius(k, q, nq, codes, n, radii[c], cap, buf, y, &cy, ty);
                        if (nx != ny || cx != cy || memcmp(tx, ty, cx * sizeof *tx) != 0 ||
                            memcmp(x, y, nx * sizeof *x) != 0)
                            fail_msg("%s radius kernel differs: n %zu nq %zu radius %d cap %zu (%zu vs %zu pairs)",
                                     k->name, n, nq, radii[c], cap, ny, nx);
                    }
                }
            /* Gather: random ids, repeated ids. */
            if (n) {
                uint32_t ids[600];
                size_t nid = n < 600 ? n : 600;
                for (size_t i = 0; i < nid; i++)
                    ids[i] = (uint32_t)(tu_rand(&seed) % n);
                uint16_t dx[600], dy[600];
                s->hamming256_gather(q, codes, ids, nid, dx);
                k->hamming256_gather(q, codes, ids, nid, dy);
                assert_memory_equal(dx, dy, nid * sizeof *dx);
                for (size_t i = 0; i < nid; i++)
                    assert_int_equal(dx[i], dist(q, codes + 32 * (size_t)ids[i]));
            }
            free(codes);
        }
    }
    free(q);
    free(x);
    free(y);
    free(buf);
    free(tx);
    free(ty);
    if (!ran)
        skip();
}

/* Known answers for the scalar kernel itself. */
static void test_scalar_radius_known(void **state)
{
    (void)state;
    const ps_kernels *s = ps_kernels_by_name("scalar");
    uint8_t q[64] = {0}, c[96] = {0};
    memset(q + 32, 0xff, 32);                      /* query 1: all ones */
    c[32 + 0] = 0x0f;                              /* code 1: 4 bits */
    memset(c + 64, 0xff, 16);                      /* code 2: 128 bits */
    ps_hpair out[8];
    size_t np;
    assert_int_equal(s->hamming256_radius(q, 2, c, 3, 4, out, 8, &np), 3);
    assert_int_equal(np, 2);
    assert_int_equal(out[0].code, 0);
    assert_int_equal(out[0].query, 0);
    assert_int_equal(out[0].distance, 0);
    assert_int_equal(out[1].code, 1);
    assert_int_equal(out[1].distance, 4);
    /* The capacity rule: stop before a code when fewer than nq slots remain. */
    assert_int_equal(s->hamming256_radius(q, 2, c, 3, 4, out, 3, &np), 2);
    assert_int_equal(np, 2);
    assert_int_equal(s->hamming256_radius(q, 2, c, 3, 0, out, 3, &np), 3);
    assert_int_equal(np, 1);
    assert_int_equal(s->hamming256_radius(q, 2, c, 3, 256, out, 1, &np), 0);
    assert_int_equal(np, 0);
}

/* ---- brute force ------------------------------------------------------------------------------ */

static void check_brute(const uint8_t *codes, size_t n, const uint8_t *q, size_t nq, int nvar, int radius,
                        const char *what)
{
    ps_hits want = naive_radius(codes, n, q, nq, nvar, radius);
    static const int threads[] = {1, 2, 3};
    for (int t = 0; t < 3; t++) {
        ps_hits got;
        ps_hits_init(&got);
        assert_int_equal(ps_search_radius_ex(codes, n, NULL, q, nq, nvar, radius, threads[t], PS_ENGINE_BRUTE, &got, NULL),
                         PROVSCAN_OK);
        char msg[200];
        snprintf(msg, sizeof msg, "brute %s n %zu nq %zu nvar %d radius %d threads %d", what, n, nq, nvar, radius,
                 threads[t]);
        assert_hits_equal(&want, &got, msg);
        ps_hits_free(&got);
    }
    ps_hits_free(&want);
}

static void test_brute_equals_naive(void **state)
{
    (void)state;
    uint64_t seed = 5;
    static const size_t sizes[] = {0, 1, 2, 63, 64, 65, 1000, 4097, 9000};
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++) {
        size_t n = sizes[a], nq = a % 3 == 0 ? 1 : 13;
        int nvar = a % 2 ? 8 : 3;
        uint8_t *q = random_codes(nq * (size_t)nvar, &seed);
        uint8_t *codes = alloc_codes(n);
        for (size_t i = 0; i < n; i++) {
            if (i % 2)
                random_code(codes + 32 * i, &seed);
            else
                flip_bits(codes + 32 * i, q + 32 * (tu_rand(&seed) % (nq * (size_t)nvar)), (int)(tu_rand(&seed) % 70),
                          &seed);
        }
        check_brute(codes, n, q, nq, nvar, 31, "random");
        check_brute(codes, n, q, nq, nvar, a % 2 ? 0 : 64, "random");
        free(codes);
        free(q);
    }
    /* A batch bigger than one task, with duplicates of query variants in the corpus (ties). */
    size_t n = 3000, nq = 150;
    uint8_t *q = random_codes(nq * 8, &seed);
    uint8_t *codes = alloc_codes(n);
    for (size_t i = 0; i < n; i++)
        flip_bits(codes + 32 * i, q + 32 * (tu_rand(&seed) % (nq * 8)), (int)(tu_rand(&seed) % 40), &seed);
    for (size_t i = 0; i < nq; i++) /* variants 2 and 5 equal: ties must name variant 2 */
        memcpy(q + 32 * (8 * i + 5), q + 32 * (8 * i + 2), 32);
    check_brute(codes, n, q, nq, 8, 20, "batch");
    free(codes);
    free(q);
}

/* ---- MIH -------------------------------------------------------------------------------------- */

/* MIH with parameters (m, b) must return exactly the brute-force result at every radius given. */
static int mih_threads = 2; /* the second thread count tried (besides 1) */

static void check_mih(const uint8_t *codes, size_t n, const uint8_t *q, size_t nq, int nvar, int m, int b,
                      const int *radii, size_t nradii, const char *what)
{
    size_t size;
    uint8_t *blob = build_blob(codes, n, m, b, 31, &size);
    ps_mih *mih;
    provscan_error err;
    assert_int_equal(ps_mih_open(blob, size, n, &mih, &err), PROVSCAN_OK);
    assert_int_equal(ps_mih_check(mih, codes, &err), PROVSCAN_OK);
    for (size_t r = 0; r < nradii; r++) {
        ps_hits want, got;
        ps_hits_init(&want);
        ps_hits_init(&got);
        assert_int_equal(
            ps_search_radius_ex(codes, n, NULL, q, nq, nvar, radii[r], 2, PS_ENGINE_BRUTE, &want, NULL), PROVSCAN_OK);
        for (int threads = 1; threads <= mih_threads; threads += mih_threads - 1) {
            ps_search_stats st;
            ps_hits_clear(&got);
            assert_int_equal(ps_search_radius_ex(codes, n, mih, q, nq, nvar, radii[r], threads, PS_ENGINE_MIH, &got, &st),
                             PROVSCAN_OK);
            if (n && nq)
                assert_int_equal(st.engine, PS_ENGINE_MIH);
            char msg[200];
            snprintf(msg, sizeof msg, "MIH %s n %zu m %d b %d radius %d threads %d", what, n, m, b, radii[r], threads);
            assert_hits_equal(&want, &got, msg);
        }
        /* The automatic choice gives the same answer whichever engine it picks. */
        ps_hits_clear(&got);
        assert_int_equal(ps_search_radius(codes, n, mih, q, nq, nvar, radii[r], 2, &got), PROVSCAN_OK);
        assert_hits_equal(&want, &got, "auto");
        ps_hits_free(&want);
        ps_hits_free(&got);
    }
    ps_mih_close(mih);
    free(blob);
}

static void test_mih_random(void **state)
{
    (void)state;
    uint64_t seed = 77;
    static const int radii[] = {0, 1, 2, 7, 8, 15, 16, 17, 31};
    static const size_t sizes[] = {0, 1, 2, 10, 300, 4000};
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++) {
        size_t n = sizes[a], nq = 6;
        uint8_t *q = random_codes(nq * 8, &seed);
        uint8_t *codes = alloc_codes(n);
        for (size_t i = 0; i < n; i++) {
            if (i % 4)
                random_code(codes + 32 * i, &seed);
            else
                flip_bits(codes + 32 * i, q + 32 * (tu_rand(&seed) % (nq * 8)), (int)(tu_rand(&seed) % 40), &seed);
        }
        /* Tables that tile all 256 bits, that leave bits out, and a few wide ones. */
        check_mih(codes, n, q, nq, 8, 16, 16, radii, sizeof radii / sizeof radii[0], "random");
        check_mih(codes, n, q, nq, 8, 11, 13, radii, sizeof radii / sizeof radii[0], "random");
        check_mih(codes, n, q, nq, 8, 21, 12, radii, sizeof radii / sizeof radii[0], "random");
        static const int few[] = {0, 3, 9};
        check_mih(codes, n, q, nq, 8, 8, 18, few, 3, "random");
        check_mih(codes, n, q, nq, 2, 64, 4, radii, sizeof radii / sizeof radii[0], "random");
        /* Sub-radii beyond the substring width: the whole key space is probed. */
        static const int wide[] = {5, 17, 31};
        check_mih(codes, n, q, nq, 2, 2, 6, wide, 3, "random, sub-radius > b");
        check_mih(codes, n, q, nq, 1, 1, 10, wide, 3, "random, one table");
        free(codes);
        free(q);
    }
}

/* Planted neighbours at every distance 0..radius+2 of each variant. */
static void test_mih_planted(void **state)
{
    (void)state;
    uint64_t seed = 99;
    size_t nq = 4, per = 36, n = 4000;
    uint8_t *q = random_codes(nq * 8, &seed);
    uint8_t *codes = random_codes(n, &seed);
    size_t at = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t d = 0; d < per; d++) {
            size_t v = (i + d) % 8;
            flip_bits(codes + 32 * at, q + 32 * (8 * i + v), (int)d, &seed);
            at += 27; /* spread over the corpus */
        }
    static const int radii[] = {0, 1, 4, 10, 11, 12, 21, 22, 29, 30, 31, 32, 33};
    /* Every radius 0..40 (each split r = m*r' + a of the pigeonhole bound), three threads for one
     * query's 8 variants (uneven variant groups). */
    int every[41];
    for (int r = 0; r <= 40; r++)
        every[r] = r;
    mih_threads = 3;
    check_mih(codes, n, q, nq, 8, 11, 23 - 10, every, 41, "planted");
    int m, b;
    assert_true(ps_mih_choose(10000000, 31, &m, &b));
    mih_threads = 2;
    check_mih(codes, n, q, nq, 8, m, 256 / m < 16 ? 256 / m : 16, radii, sizeof radii / sizeof radii[0], "planted, chosen m");
    /* Every planted pair within the radius is found. */
    ps_hits got;
    ps_hits_init(&got);
    assert_int_equal(ps_search_radius(codes, n, NULL, q, nq, 8, 31, 2, &got), PROVSCAN_OK);
    assert_true(got.n >= nq * 32);
    ps_hits_free(&got);
    free(codes);
    free(q);
}

static void test_mih_clustered(void **state)
{
    (void)state;
    uint64_t seed = 123;
    size_t centres = 300, n = 12000, nq = 5;
    uint8_t *cent = random_codes(centres, &seed);
    uint8_t *codes = clustered_codes(n, centres, cent, &seed);
    uint8_t *q = alloc_codes(nq * 8);
    for (size_t i = 0; i < nq * 8; i++)
        flip_bits(q + 32 * i, cent + 32 * (tu_rand(&seed) % centres), (int)(tu_rand(&seed) % 20), &seed);
    memcpy(q + 32 * 3, q + 32 * 1, 32); /* a tie between variants 1 and 3 of query 0 */
    static const int radii[] = {0, 6, 19, 31, 40};
    check_mih(codes, n, q, nq, 8, 16, 16, radii, sizeof radii / sizeof radii[0], "clustered");
    int m, b;
    if (ps_mih_choose(n, 31, &m, &b))
        check_mih(codes, n, q, nq, 8, m, b, radii, 4, "clustered, chosen");
    check_mih(codes, n, q, nq, 8, 12, 21, radii, 4, "clustered");
    free(q);
    free(codes);
    free(cent);
}

/* The same answers under every kernel set, the scalar one included. */
static void test_mih_every_kernel_set(void **state)
{
    (void)state;
    static const char *const sets[] = {"scalar", "avx2", "avx512"};
    uint64_t seed = 4242;
    size_t n = 3000, nq = 3;
    uint8_t *q = random_codes(nq * 8, &seed);
    uint8_t *codes = alloc_codes(n);
    for (size_t i = 0; i < n; i++)
        flip_bits(codes + 32 * i, q + 32 * (tu_rand(&seed) % (nq * 8)), (int)(tu_rand(&seed) % 60), &seed);
    const char *was = provscan_simd_path();
    for (int s = 0; s < 3; s++) {
        if (provscan_simd_force(sets[s]) != PROVSCAN_OK)
            continue;
        static const int radii[] = {0, 13, 31};
        check_mih(codes, n, q, nq, 8, 16, 16, radii, 3, sets[s]);
    }
    assert_int_equal(provscan_simd_force(was), PROVSCAN_OK);
    free(codes);
    free(q);
}

static void test_mih_choose_and_size(void **state)
{
    (void)state;
    int m, b;
    assert_false(ps_mih_choose(0, 31, &m, &b));
    assert_false(ps_mih_choose(10, 31, &m, &b));
    assert_int_equal(m, 0);
    assert_false(ps_mih_choose(1000000, 200, &m, &b));
    assert_true(ps_mih_choose(10000000, 31, &m, &b));
    assert_true(m * b <= 256 && m >= 1 && b >= 4);
    /* The resident budget: codes + tables <= 160 bytes per record. */
    size_t n = 10000000;
    assert_true((double)(32 * n + ps_mih_size(n, m, b)) / (double)n <= 160.0);
    assert_true(ps_mih_choose(1000000, 31, &m, &b));
    assert_true((double)(32 * 1000000 + ps_mih_size(1000000, m, b)) / 1e6 <= 160.0);
    assert_int_equal(ps_mih_size(10, 0, 16), 0);
    assert_int_equal(ps_mih_size(10, 17, 16), 0);
    assert_int_equal(ps_mih_size(10, 8, 33), 0);
    assert_int_equal(ps_mih_size(10, 8, 3), 0);
    assert_int_equal(ps_mih_size(100, 16, 16), 64 + 16 * ((4 * 65537 + 63) / 64 * 64 + (400 + 63) / 64 * 64));
}

static void test_mih_deterministic(void **state)
{
    (void)state;
    uint64_t seed = 8;
    size_t n = 2000, s1, s2;
    uint8_t *codes = random_codes(n, &seed);
    uint8_t *a = build_blob(codes, n, 16, 16, 31, &s1);
    size_t size = ps_mih_size(n, 16, 16);
    uint8_t *b = aligned_alloc(64, (size + 63) & ~(size_t)63);
    assert_int_equal(ps_mih_build(codes, n, 16, 16, 31, 1, b, size, NULL), PROVSCAN_OK);
    s2 = size;
    assert_int_equal(s1, s2);
    assert_memory_equal(a, b, s1);
    free(a);
    free(b);
    free(codes);
}

/* ---- hostile blobs ---------------------------------------------------------------------------- */

/* Opening may fail or succeed; when it succeeds, searching must be safe (AddressSanitizer watches). */
static int try_open_and_search(const uint8_t *blob, size_t size, size_t n, const uint8_t *codes, const uint8_t *q)
{
    uint8_t *copy = aligned_alloc(64, (size + 63) & ~(size_t)63);
    assert_non_null(copy);
    memcpy(copy, blob, size);
    ps_mih *mih = NULL;
    provscan_error err;
    provscan_status st = ps_mih_open(copy, size, n, &mih, &err);
    if (st == PROVSCAN_OK) {
        ps_hits h;
        ps_hits_init(&h);
        assert_int_equal(ps_search_radius_ex(codes, n, mih, q, 1, 8, 31, 1, PS_ENGINE_MIH, &h, NULL), PROVSCAN_OK);
        ps_hits_free(&h);
        ps_mih_close(mih);
    } else {
        assert_null(mih);
        assert_true(err.message[0] != '\0');
    }
    free(copy);
    return st == PROVSCAN_OK;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void test_mih_hostile(void **state)
{
    (void)state;
    uint64_t seed = 31337;
    size_t n = 500, size;
    const int m = 16, b = 12;
    uint8_t *codes = random_codes(n, &seed), *q = random_codes(8, &seed);
    uint8_t *blob = build_blob(codes, n, m, b, 31, &size);
    size_t ob = (4 * ((1u << b) + 1) + 63) / 64 * 64, tb = ob + (4 * n + 63) / 64 * 64;
    uint8_t *ids0 = blob + 64 + ob; /* table 0's ids */
    assert_true(try_open_and_search(blob, size, n, codes, q));

    ps_mih *mih;
    provscan_error err;
    /* Wrong arguments. */
    assert_int_equal(ps_mih_open(blob, size, n + 1, &mih, &err), PROVSCAN_E_INDEX);
    assert_int_equal(ps_mih_open(NULL, size, n, &mih, &err), PROVSCAN_E_ARG);
    assert_int_equal(ps_mih_open(blob + 1, size - 1, n, &mih, &err), PROVSCAN_E_ARG);
    /* Every truncation. */
    for (size_t s = 0; s < size; s += (s < 200 ? 1 : 997))
        assert_int_not_equal(ps_mih_open(blob, s, n, &mih, &err), PROVSCAN_OK);
    assert_int_not_equal(ps_mih_open(blob, size - 1, n, &mih, &err), PROVSCAN_OK);

    uint8_t *bad = malloc(size);
    /* Header fields. */
    memcpy(bad, blob, size);
    bad[0] = 'X';
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    memcpy(bad, blob, size);
    put_u32(bad + 8, 2);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_VERSION);
    memcpy(bad, blob, size);
    put_u32(bad + 36, 1);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_VERSION);
    static const uint32_t bad_m[] = {0, 17, 65, 1000, 0xffffffffu}, bad_b[] = {0, 3, 17, 33, 0xffffffffu};
    for (int i = 0; i < 5; i++) {
        memcpy(bad, blob, size);
        put_u32(bad + 24, bad_m[i]);
        assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
        memcpy(bad, blob, size);
        put_u32(bad + 28, bad_b[i]);
        assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    }
    /* Other consistent-looking parameters with this blob's size: (m, b) = (8, 13) fits in fewer bytes. */
    memcpy(bad, blob, size);
    put_u32(bad + 24, 8);
    put_u32(bad + 28, 13);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    /* Every single header byte changed: an error, or a still-safe view. */
    for (int i = 0; i < 64; i++)
        for (int x = 1; x < 256; x <<= 1) {
            memcpy(bad, blob, size);
            bad[i] ^= (uint8_t)x;
            (void)try_open_and_search(bad, size, n, codes, q);
        }

    /* Offsets: decreasing, overshooting n then coming back, not starting at 0, not ending at n. */
    uint8_t *off0 = blob + 64;
    size_t k = 0;
    while (get_u32(off0 + 4 * k) == 0) /* the first bucket starting past entry 0 */
        k++;
    memcpy(bad, blob, size);
    put_u32(bad + 64 + 4 * (k + 1), get_u32(off0 + 4 * k) - 1);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    memcpy(bad, blob, size);
    put_u32(bad + 64 + 4 * (k + 1), (uint32_t)n + 1000);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    memcpy(bad, blob, size);
    put_u32(bad + 64, 1);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    memcpy(bad, blob, size);
    put_u32(bad + 64 + 4 * (1u << b), (uint32_t)n - 1);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    memcpy(bad, blob, size);
    put_u32(bad + 64 + (size_t)(m - 1) * tb + 4 * (1u << b), 0xffffffffu);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    /* Record ids out of range. */
    memcpy(bad, blob, size);
    put_u32(bad + (ids0 - blob) + 4 * 7, (uint32_t)n);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    memcpy(bad, blob, size);
    put_u32(bad + (ids0 - blob) + 4 * (n - 1), 0xfffffff0u);
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_E_INDEX);
    size_t big = 0; /* a bucket of table 0 with two entries */
    while (get_u32(off0 + 4 * (big + 1)) - get_u32(off0 + 4 * big) < 2)
        big++;
    size_t at = get_u32(off0 + 4 * big);
    /* A record listed twice in one bucket (another one missing): memory-safe, so open accepts it; the
     * deep check does not. */
    memcpy(bad, blob, size);
    put_u32(bad + (ids0 - blob) + 4 * (at + 1), get_u32(ids0 + 4 * at));
    assert_int_equal(ps_mih_open(bad, size, n, &mih, &err), PROVSCAN_OK);
    assert_int_equal(ps_mih_check(mih, codes, &err), PROVSCAN_E_INDEX);
    ps_mih_close(mih);

    /* Swapping two ids of different buckets keeps the structure valid but breaks exactness: open
     * accepts it (memory-safe), ps_mih_check catches it. */
    size_t other = big + 1;
    while (get_u32(off0 + 4 * (other + 1)) == get_u32(off0 + 4 * other))
        other++;
    memcpy(bad, blob, size);
    uint32_t x = get_u32(ids0 + 4 * at), y = get_u32(ids0 + 4 * get_u32(off0 + 4 * other));
    put_u32(bad + (ids0 - blob) + 4 * at, y);
    put_u32(bad + (ids0 - blob) + 4 * get_u32(off0 + 4 * other), x);
    if (ps_mih_open(bad, size, n, &mih, &err) == PROVSCAN_OK) {
        assert_int_equal(ps_mih_check(mih, codes, &err), PROVSCAN_E_INDEX);
        ps_mih_close(mih);
    }

    /* Random damage anywhere: flips, and random words. */
    for (int it = 0; it < 300; it++) {
        memcpy(bad, blob, size);
        int flips = 1 + (int)(tu_rand(&seed) % 4);
        for (int f = 0; f < flips; f++) {
            size_t pos = tu_rand(&seed) % size;
            if (tu_rand(&seed) % 2)
                bad[pos] ^= (uint8_t)(1u << (tu_rand(&seed) % 8));
            else if (pos + 4 <= size)
                put_u32(bad + (pos & ~(size_t)3), (uint32_t)tu_rand(&seed));
        }
        (void)try_open_and_search(bad, size, n, codes, q);
    }
    /* Random bytes after a valid header. */
    for (int it = 0; it < 50; it++) {
        memcpy(bad, blob, 64);
        for (size_t i = 64; i < size; i++)
            bad[i] = (uint8_t)tu_rand(&seed);
        assert_false(try_open_and_search(bad, size, n, codes, q));
    }
    free(bad);
    free(blob);
    free(q);
    free(codes);
}

/* Inputs big enough for real thread teams (smaller ones run their tasks on the calling thread). */
static void test_parallel_teams(void **state)
{
    (void)state;
    uint64_t seed = 606;
    size_t n = 40000, nq = 32; /* 10^7 pairs, ~1 ms of MIH: both engines above their team thresholds */
    uint8_t *q = random_codes(nq * 8, &seed);
    uint8_t *codes = random_codes(n, &seed);
    for (size_t i = 0; i < n; i += 7)
        flip_bits(codes + 32 * i, q + 32 * (tu_rand(&seed) % (nq * 8)), (int)(tu_rand(&seed) % 45), &seed);
    size_t size;
    uint8_t *blob = build_blob(codes, n, 16, 16, 31, &size);
    ps_mih *mih;
    assert_int_equal(ps_mih_open(blob, size, n, &mih, NULL), PROVSCAN_OK);
    ps_hits one, two, mh;
    ps_hits_init(&one);
    ps_hits_init(&two);
    ps_hits_init(&mh);
    ps_search_stats st;
    assert_int_equal(ps_search_radius_ex(codes, n, NULL, q, nq, 8, 31, 1, PS_ENGINE_BRUTE, &one, NULL), PROVSCAN_OK);
    assert_int_equal(ps_search_radius_ex(codes, n, NULL, q, nq, 8, 31, 2, PS_ENGINE_BRUTE, &two, &st), PROVSCAN_OK);
    assert_int_equal(st.pairs, (uint64_t)n * nq * 8);
    assert_hits_equal(&one, &two, "brute, 2 threads");
    assert_int_equal(ps_search_radius_ex(codes, n, mih, q, nq, 8, 31, 2, PS_ENGINE_MIH, &mh, &st), PROVSCAN_OK);
    assert_true(st.probes > 0 && st.candidates > 0);
    assert_hits_equal(&one, &mh, "MIH, 2 threads");
    ps_hits_clear(&mh);
    assert_int_equal(ps_search_radius_ex(codes, n, mih, q, 1, 8, 31, 2, PS_ENGINE_MIH, &mh, NULL), PROVSCAN_OK);
    size_t q0 = 0;
    while (q0 < one.n && one.v[q0].query == 0)
        q0++;
    assert_int_equal(mh.n, q0);
    ps_hits_clear(&one);
    ps_hits_clear(&two);
    assert_int_equal(ps_search_knn(codes, n, q, nq, 8, 20, 256, 1, &one), PROVSCAN_OK);
    assert_int_equal(ps_search_knn(codes, n, q, nq, 8, 20, 256, 2, &two), PROVSCAN_OK);
    assert_hits_equal(&one, &two, "knn, 2 threads");
    ps_hits_free(&one);
    ps_hits_free(&two);
    ps_hits_free(&mh);
    ps_mih_close(mih);
    free(blob);
    free(codes);
    free(q);
}

/* ---- k nearest -------------------------------------------------------------------------------- */

static int cmp_dr(const void *pa, const void *pb)
{
    const ps_hit *a = pa, *b = pb;
    if (a->distance != b->distance)
        return a->distance < b->distance ? -1 : 1;
    return (a->record > b->record) - (a->record < b->record);
}

static void check_knn(const uint8_t *codes, size_t n, const uint8_t *q, size_t nq, int nvar, int k, int maxd)
{
    ps_hits all = naive_radius(codes, n, q, nq, nvar, maxd), want;
    ps_hits_init(&want);
    for (size_t i = 0, j; i < all.n; i = j) {
        for (j = i; j < all.n && all.v[j].query == all.v[i].query; j++)
            ;
        qsort(all.v + i, j - i, sizeof *all.v, cmp_dr);
        assert_int_equal(ps_hits_append(&want, all.v + i, (j - i) < (size_t)k ? j - i : (size_t)k), PROVSCAN_OK);
    }
    for (int t = 1; t <= 3; t++) {
        ps_hits got;
        ps_hits_init(&got);
        assert_int_equal(ps_search_knn(codes, n, q, nq, nvar, k, maxd, t, &got), PROVSCAN_OK);
        char msg[160];
        snprintf(msg, sizeof msg, "knn n %zu nq %zu k %d maxd %d threads %d", n, nq, k, maxd, t);
        assert_hits_equal(&want, &got, msg);
        ps_hits_free(&got);
    }
    ps_hits_free(&all);
    ps_hits_free(&want);
}

static void test_knn(void **state)
{
    (void)state;
    uint64_t seed = 2024;
    size_t centres = 20, n = 6000;
    uint8_t *cent = random_codes(centres, &seed);
    uint8_t *codes = clustered_codes(n, centres, cent, &seed); /* many exact ties */
    uint8_t *q = alloc_codes(70 * 8);
    for (size_t i = 0; i < 70 * 8; i++)
        flip_bits(q + 32 * i, cent + 32 * (tu_rand(&seed) % centres), (int)(tu_rand(&seed) % 30), &seed);
    check_knn(codes, n, q, 1, 8, 1, 256);
    check_knn(codes, n, q, 1, 8, 10, 256);
    check_knn(codes, n, q, 3, 8, 50, 20);
    check_knn(codes, n, q, 70, 8, 5, 256);
    check_knn(codes, n, q, 70, 8, 7, 3);
    check_knn(codes, 7, q, 2, 8, 10, 256); /* k > n */
    check_knn(codes, n, q, 5, 1, 3, 0);
    check_knn(codes, 100, q, 4, 8, 150, 256);
    free(q);
    free(codes);
    free(cent);
}

/* ---- empty and invalid inputs ----------------------------------------------------------------- */

static void test_empty_and_invalid(void **state)
{
    (void)state;
    uint64_t seed = 3;
    uint8_t *codes = random_codes(10, &seed), *q = random_codes(8, &seed);
    ps_hits h;
    ps_hits_init(&h);
    assert_int_equal(ps_search_radius(NULL, 0, NULL, q, 1, 8, 31, 1, &h), PROVSCAN_OK);
    assert_int_equal(ps_search_radius(codes, 10, NULL, NULL, 0, 8, 31, 1, &h), PROVSCAN_OK);
    assert_int_equal(ps_search_knn(NULL, 0, q, 1, 8, 5, 31, 1, &h), PROVSCAN_OK);
    assert_int_equal(ps_search_knn(codes, 10, q, 1, 8, 0, 31, 1, &h), PROVSCAN_OK);
    assert_int_equal(h.n, 0);
    assert_int_equal(ps_search_radius(codes, 10, NULL, q, 1, 0, 31, 1, &h), PROVSCAN_E_ARG);
    assert_int_equal(ps_search_radius(codes, 10, NULL, q, 1, 256, 31, 1, &h), PROVSCAN_E_ARG);
    assert_int_equal(ps_search_radius(codes, 10, NULL, q, 1, 8, -1, 1, &h), PROVSCAN_E_ARG);
    assert_int_equal(ps_search_radius(codes, 10, NULL, q, 1, 8, 31, 1, NULL), PROVSCAN_E_ARG);
    assert_int_equal(ps_search_radius_ex(codes, 10, NULL, q, 1, 8, 31, 1, PS_ENGINE_MIH, &h, NULL), PROVSCAN_E_ARG);
    assert_int_equal(ps_search_knn(codes, 10, q, 1, 8, -1, 31, 1, &h), PROVSCAN_E_ARG);
    assert_int_equal(ps_search_knn(codes, 10, q, 1, 8, 3, -1, 1, &h), PROVSCAN_E_ARG);
    /* Radius 256 and beyond: everything matches. */
    assert_int_equal(ps_search_radius(codes, 10, NULL, q, 1, 8, 300, 1, &h), PROVSCAN_OK);
    assert_int_equal(h.n, 10);
    ps_hits_free(&h);
    /* MIH over an empty corpus. */
    size_t size = ps_mih_size(0, 16, 8);
    uint8_t *blob = aligned_alloc(64, (size + 63) & ~(size_t)63);
    assert_int_equal(ps_mih_build(NULL, 0, 16, 8, 31, 1, blob, size, NULL), PROVSCAN_OK);
    ps_mih *mih;
    assert_int_equal(ps_mih_open(blob, size, 0, &mih, NULL), PROVSCAN_OK);
    assert_int_equal(ps_search_radius_ex(NULL, 0, mih, q, 1, 8, 31, 1, PS_ENGINE_MIH, &h, NULL), PROVSCAN_OK);
    assert_int_equal(h.n, 0);
    ps_mih_close(mih);
    /* Build refuses bad parameters and short buffers. */
    assert_int_equal(ps_mih_build(codes, 10, 16, 8, 31, 1, blob, size - 1, NULL), PROVSCAN_E_ARG);
    assert_int_equal(ps_mih_build(codes, 10, 33, 8, 31, 1, blob, size, NULL), PROVSCAN_E_ARG);
    free(blob);
    ps_hits_free(&h);
    free(codes);
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_radius_known), cmocka_unit_test(test_kernels_equal_scalar),
        cmocka_unit_test(test_brute_equals_naive),  cmocka_unit_test(test_mih_random),
        cmocka_unit_test(test_mih_planted),         cmocka_unit_test(test_mih_clustered),
        cmocka_unit_test(test_mih_every_kernel_set), cmocka_unit_test(test_mih_choose_and_size),
        cmocka_unit_test(test_mih_deterministic),   cmocka_unit_test(test_mih_hostile),
        cmocka_unit_test(test_parallel_teams),      cmocka_unit_test(test_knn),
        cmocka_unit_test(test_empty_and_invalid),
    };
    /* TEST_FILTER=name runs one test (cmocka 1.1 reads no environment variable for this itself). */
    const char *filter = getenv("TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

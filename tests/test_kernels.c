/* test_kernels.c — every SIMD kernel set gives results bit-identical to the scalar reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpu/kernels.h"
#include "testutil.h"

static const char *const simd_sets[] = {"avx2", "avx512"};

static float *random_floats(size_t n, uint64_t *seed)
{
    float *f = malloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)(tu_rand(seed) % 25600) / 100.0f; /* luma-like values with fractions */
    return f;
}

static void for_each_set(void (*check)(const ps_kernels *scalar, const ps_kernels *simd))
{
    const ps_kernels *scalar = ps_kernels_by_name("scalar");
    assert_non_null(scalar);
    int ran = 0;
    for (size_t i = 0; i < sizeof simd_sets / sizeof simd_sets[0]; i++) {
        const ps_kernels *k = ps_kernels_by_name(simd_sets[i]);
        if (!k)
            continue; /* not compiled in, or this CPU lacks it */
        check(scalar, k);
        ran++;
    }
    if (!ran)
        skip();
}

static void check_luma(const ps_kernels *s, const ps_kernels *k)
{
    uint64_t seed = 1;
    static const size_t sizes[] = {0, 1, 7, 8, 9, 10, 11, 17, 31, 100, 1001, 4099};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        size_t n = sizes[t];
        uint8_t *rgb = malloc(3 * n + 1);
        for (size_t i = 0; i < 3 * n; i++)
            rgb[i] = (uint8_t)tu_rand(&seed);
        float *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
        s->luma_from_rgb(rgb, n, a);
        k->luma_from_rgb(rgb, n, b);
        assert_memory_equal(a, b, n * sizeof *a);
        s->float_from_grey(rgb, n, a);
        k->float_from_grey(rgb, n, b);
        assert_memory_equal(a, b, n * sizeof *a);
        free(rgb);
        free(a);
        free(b);
    }
}

static void check_box(const ps_kernels *s, const ps_kernels *k)
{
    static const int dims[][2] = {{1, 1},   {5, 7},    {8, 8},     {9, 17},   {16, 33}, {33, 16},
                                  {64, 64}, {100, 129}, {257, 130}, {17, 300}, {300, 1000}};
    uint64_t seed = 7;
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
        int rows = dims[t][0], cols = dims[t][1];
        size_t n = (size_t)rows * cols;
        float *in = random_floats(n, &seed);
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        for (int w = 1; w <= 12; w++) {
            if (w <= cols) {
                s->box_rows(in, a, rows, cols, w);
                k->box_rows(in, b, rows, cols, w);
                assert_memory_equal(a, b, n * sizeof *a);
            }
            if (w <= rows) {
                s->box_cols(in, a, rows, cols, w);
                k->box_cols(in, b, rows, cols, w);
                assert_memory_equal(a, b, n * sizeof *a);
            }
        }
        free(in);
        free(a);
        free(b);
    }
}

static void check_dct(const ps_kernels *s, const ps_kernels *k)
{
    uint64_t seed = 11;
    float *G = random_floats(64 * 64, &seed), *D = malloc(16 * 64 * sizeof *D), *Dt = malloc(64 * 16 * sizeof *Dt);
    for (int u = 0; u < 16; u++)
        for (int x = 0; x < 64; x++)
            D[u * 64 + x] = Dt[x * 16 + u] = (float)((int64_t)(tu_rand(&seed) % 2001) - 1000) / 1000.0f;
    float a[256], b[256];
    s->dct16(G, D, Dt, a);
    k->dct16(G, D, Dt, b);
    assert_memory_equal(a, b, sizeof a);
    free(G);
    free(D);
    free(Dt);
}

static void check_hamming(const ps_kernels *s, const ps_kernels *k)
{
    uint64_t seed = 3;
    for (size_t n = 0; n <= 1037; n += (n < 40 ? 1 : 331)) {
        uint8_t q[32], *codes = malloc(32 * n + 1);
        uint64_t *c64 = malloc(8 * n + 8);
        for (int i = 0; i < 32; i++)
            q[i] = (uint8_t)tu_rand(&seed);
        for (size_t i = 0; i < 32 * n; i++)
            codes[i] = (uint8_t)tu_rand(&seed);
        for (size_t i = 0; i < n; i++)
            c64[i] = tu_rand(&seed);
        if (n > 2) { /* extremes: identical and complementary codes */
            memcpy(codes, q, 32);
            for (int i = 0; i < 32; i++)
                codes[32 + i] = (uint8_t)~q[i];
        }
        uint16_t *a = malloc(2 * n + 2), *b = malloc(2 * n + 2);
        s->hamming256(q, codes, n, a);
        k->hamming256(q, codes, n, b);
        assert_memory_equal(a, b, 2 * n);
        if (n > 2) {
            assert_int_equal(a[0], 0);
            assert_int_equal(a[1], 256);
        }
        uint64_t q64 = tu_rand(&seed);
        s->hamming64(q64, c64, n, a);
        k->hamming64(q64, c64, n, b);
        assert_memory_equal(a, b, 2 * n);
        free(codes);
        free(c64);
        free(a);
        free(b);
    }
}

static void test_luma(void **state) { (void)state; for_each_set(check_luma); }
static void test_box(void **state) { (void)state; for_each_set(check_box); }
static void test_dct(void **state) { (void)state; for_each_set(check_dct); }
static void test_hamming(void **state) { (void)state; for_each_set(check_hamming); }

/* The scalar kernels themselves: a hand-checked box pass and popcounts. */
static void test_scalar_known_answers(void **state)
{
    (void)state;
    const ps_kernels *s = ps_kernels_by_name("scalar");
    float in[5] = {1, 2, 3, 4, 5}, out[5];
    s->box_rows(in, out, 1, 5, 2); /* window 2 covers [i, i+1], clipped at the end */
    float expect2[5] = {1.5f, 2.5f, 3.5f, 4.5f, 5.0f};
    assert_memory_equal(out, expect2, sizeof out);
    s->box_rows(in, out, 1, 5, 3); /* window 3 is symmetric, edges divide by the count inside */
    float expect3[5] = {1.5f, 2.0f, 3.0f, 4.0f, 4.5f};
    assert_memory_equal(out, expect3, sizeof out);
    uint8_t q[32] = {0}, c[32] = {0};
    c[0] = 0xFF;
    c[31] = 0x01;
    uint16_t d;
    s->hamming256(q, c, 1, &d);
    assert_int_equal(d, 9);
}

/* The dispatcher honours forcing and refuses unknown sets. */
static void test_force(void **state)
{
    (void)state;
    assert_int_equal(provscan_simd_force("scalar"), PROVSCAN_OK);
    assert_string_equal(provscan_simd_path(), "scalar");
    assert_int_equal(provscan_simd_force("sse9"), PROVSCAN_E_UNSUPPORTED);
    assert_string_equal(provscan_simd_path(), "scalar");
    assert_non_null(strstr(provscan_simd_available(), "scalar"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_known_answers), cmocka_unit_test(test_luma), cmocka_unit_test(test_box),
        cmocka_unit_test(test_dct),      cmocka_unit_test(test_hamming), cmocka_unit_test(test_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

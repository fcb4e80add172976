/* test_hashes.c — PDQ/pHash/dHash definitions on synthetic images, hex form and distances. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash/hash.h"
#include "provscan.h"
#include "testutil.h"

static provscan_image *make_image(int w, int h, int channels, uint8_t (*pixel)(int x, int y, int c))
{
    uint8_t *px = malloc((size_t)w * h * channels);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                px[((size_t)y * w + x) * channels + c] = pixel(x, y, c);
    provscan_image *img;
    assert_int_equal(provscan_image_from_pixels(px, w, h, channels, (size_t)w * channels, &img), PROVSCAN_OK);
    free(px);
    return img;
}

static uint8_t ramp_right(int x, int y, int c) { (void)y; (void)c; return (uint8_t)(x * 255 / 199); }
static uint8_t ramp_left(int x, int y, int c) { (void)y; (void)c; return (uint8_t)(255 - x * 255 / 199); }
static uint8_t flat(int x, int y, int c) { (void)x; (void)y; (void)c; return 128; }
static uint8_t pattern(int x, int y, int c)
{
    return (uint8_t)(((x / 13) * 37 + (y / 7) * 91 + (x * y) / 50 + c * 29) & 0xFF);
}
static uint8_t pattern_dim(int x, int y, int c) { return (uint8_t)(pattern(x, y, c) / 2 + 20); }
static uint8_t pattern_mirrored(int x, int y, int c) { return pattern(199 - x, y, c); }
static uint8_t pattern_negative(int x, int y, int c) { return (uint8_t)(255 - pattern(x, y, c)); }
static uint8_t pattern_negative_rot180(int x, int y, int c) { return pattern_negative(199 - x, 159 - y, c); }

static void test_dhash_gradients(void **state)
{
    (void)state;
    provscan_fingerprint fp;
    provscan_image *img = make_image(200, 150, 1, ramp_right);
    assert_int_equal(provscan_fingerprint_image(img, &fp), PROVSCAN_OK);
    assert_true(fp.dhash == UINT64_MAX); /* every right neighbour is brighter */
    provscan_image_free(img);
    img = make_image(200, 150, 1, ramp_left);
    assert_int_equal(provscan_fingerprint_image(img, &fp), PROVSCAN_OK);
    assert_true(fp.dhash == 0);
    provscan_image_free(img);
}

/* Brightness offsets and contrast scaling do not change which coefficients exceed the median. */
static void test_hashes_ignore_brightness_and_contrast(void **state)
{
    (void)state;
    provscan_fingerprint a, b;
    provscan_image *img = make_image(200, 160, 3, pattern);
    provscan_image *dim = make_image(200, 160, 3, pattern_dim);
    assert_int_equal(provscan_fingerprint_image(img, &a), PROVSCAN_OK);
    assert_int_equal(provscan_fingerprint_image(dim, &b), PROVSCAN_OK);
    assert_true(provscan_hash64_distance(a.phash, b.phash) <= 2);
    assert_true(provscan_hash64_distance(a.dhash, b.dhash) <= 2);
    assert_true(provscan_pdq_distance(&a.pdq[0], &b.pdq[0]) <= 8);
    provscan_image_free(img);
    provscan_image_free(dim);
}

static void test_pdq_properties(void **state)
{
    (void)state;
    provscan_fingerprint fp, mirrored;
    provscan_image *img = make_image(200, 160, 3, pattern);
    assert_int_equal(provscan_fingerprint_image(img, &fp), PROVSCAN_OK);
    for (int t = 0; t < PROVSCAN_DIHEDRAL_COUNT; t++) { /* median threshold: half the bits set */
        int ones = 0;
        for (int i = 0; i < 32; i++)
            ones += __builtin_popcount(fp.pdq[t].bytes[i]);
        assert_int_equal(ones, 128);
    }
    assert_true(fp.quality > 50);
    provscan_image *m = make_image(200, 160, 3, pattern_mirrored);
    assert_int_equal(provscan_fingerprint_image(m, &mirrored), PROVSCAN_OK);
    provscan_dihedral which;
    int d = provscan_pdq_distance_dihedral(&mirrored.pdq[0], &fp, &which);
    print_message("mirrored synthetic pattern: %d bits from the flipy variant\n", d);
    assert_true(d <= PROVSCAN_PDQ_MATCH_DISTANCE);
    assert_int_equal(which, PROVSCAN_D_FLIPY);
    assert_true(provscan_pdq_distance(&mirrored.pdq[0], &fp.pdq[0]) > 64);
    provscan_image_free(img);
    provscan_image_free(m);

    img = make_image(100, 100, 1, flat);
    assert_int_equal(provscan_fingerprint_image(img, &fp), PROVSCAN_OK);
    assert_int_equal(fp.quality, 0); /* no structure at all */
    provscan_image_free(img);
    img = make_image(4, 40, 1, flat);
    assert_int_equal(provscan_fingerprint_image(img, &fp), PROVSCAN_E_TOO_SMALL);
    provscan_image_free(img);
}

/* A negative flips every PDQ bit (all coefficients and their median change sign), so a search
 * compares the query's inverted hashes too: variants 8..15. */
static void test_pdq_negative(void **state)
{
    (void)state;
    provscan_fingerprint fp, neg, neg180;
    provscan_image *img = make_image(200, 160, 3, pattern), *n = make_image(200, 160, 3, pattern_negative),
                   *n180 = make_image(200, 160, 3, pattern_negative_rot180);
    assert_int_equal(provscan_fingerprint_image(img, &fp), PROVSCAN_OK);
    assert_int_equal(provscan_fingerprint_image(n, &neg), PROVSCAN_OK);
    assert_int_equal(provscan_fingerprint_image(n180, &neg180), PROVSCAN_OK);
    uint8_t codes[PS_PDQ_QUERY_VARIANTS * 32];
    ps_pdq_query_variants(&neg, codes);
    for (int v = 0; v < PROVSCAN_DIHEDRAL_COUNT; v++)
        for (int b = 0; b < 32; b++)
            assert_int_equal(codes[32 * (8 + v) + b], (uint8_t)~neg.pdq[v].bytes[b]);
    int variant;
    int d = ps_pdq_nearest_variant(&neg, fp.pdq[0].bytes, &variant);
    print_message("negative: %d bits from the inverted hash (plain: %d)\n", d,
                  provscan_pdq_distance(&neg.pdq[0], &fp.pdq[0]));
    assert_true(d <= PROVSCAN_PDQ_MATCH_DISTANCE);
    assert_int_equal(variant, PROVSCAN_DIHEDRAL_COUNT + PROVSCAN_D_ORIGINAL);
    assert_true(provscan_pdq_distance(&neg.pdq[0], &fp.pdq[0]) > 256 - PROVSCAN_PDQ_MATCH_DISTANCE);
    d = ps_pdq_nearest_variant(&neg180, fp.pdq[0].bytes, &variant);
    print_message("negative rotated 180 degrees: %d bits from variant %d\n", d, variant);
    /* this blocky pattern's 180-degree variant is 60 bits off even without the negative (PDQ's
     * filter windows are not symmetric); what matters is which reading is nearest */
    assert_true(d < 80);
    assert_int_equal(variant, PROVSCAN_DIHEDRAL_COUNT + PROVSCAN_D_ROT180);
    /* the plain reading wins when it is as near */
    assert_int_equal(ps_pdq_nearest_variant(&fp, fp.pdq[0].bytes, &variant), 0);
    assert_int_equal(variant, PROVSCAN_D_ORIGINAL);
    provscan_image_free(img);
    provscan_image_free(n);
    provscan_image_free(n180);
}

static void test_hex_round_trip(void **state)
{
    (void)state;
    const char *hex = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    provscan_pdq h, g;
    char out[65];
    assert_int_equal(provscan_pdq_from_hex(hex, &h), PROVSCAN_OK);
    assert_int_equal(h.bytes[0], 0xf8);
    assert_int_equal(h.bytes[31], 0x22);
    provscan_pdq_to_hex(&h, out);
    assert_string_equal(out, hex);
    assert_int_equal(provscan_pdq_from_hex("F8F8F0CEE0F4A84F06370A22038F63F0B36E2ED596621E1D33E6B39C4E9C9B22", &g),
                     PROVSCAN_OK);
    assert_int_equal(provscan_pdq_distance(&h, &g), 0);
    assert_int_equal(provscan_pdq_from_hex("f8f8", &g), PROVSCAN_E_ARG);
    assert_int_equal(provscan_pdq_from_hex("z8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22", &g),
                     PROVSCAN_E_ARG);
    memset(&g, 0, sizeof g);
    memset(&h, 0xFF, sizeof h);
    assert_int_equal(provscan_pdq_distance(&h, &g), 256);
    assert_int_equal(provscan_hash64_distance(0, 7), 3);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(provscan_error_name(PROVSCAN_OK), "ok");
    assert_string_equal(provscan_error_name(PROVSCAN_E_CORRUPT), "corrupt_image");
    assert_string_equal(provscan_error_name((provscan_status)999), "unknown_status");
    for (int s = 0; s < PROVSCAN_STATUS_COUNT; s++)
        assert_non_null(provscan_error_name((provscan_status)s));
    assert_string_equal(provscan_dihedral_name(PROVSCAN_D_FLIPY), "flipy");
    assert_string_equal(provscan_dihedral_name((provscan_dihedral)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dhash_gradients), cmocka_unit_test(test_hashes_ignore_brightness_and_contrast),
        cmocka_unit_test(test_pdq_properties),  cmocka_unit_test(test_pdq_negative), cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

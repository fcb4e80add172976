/* test_properties.c — on real photos: edited copies stay within the match threshold, unrelated photos far apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "provscan.h"
#include "testutil.h"

static const char *const photos[] = {
    "pdq-vectors/images/pdq-data/reg-test-input/dih/bridge-1-original.jpg",
    "pdq-vectors/images/pdq-data/reg-test-input/pen-and-coaster.png",
    "pdq-vectors/images/pdq-data/reg-test-input/exif-rotn/exif-rotn-1.jpg",
    "pdq-vectors/images/pdq-data/reg-test-input/exif-rotn/exif-rotn-3.jpg",
    "pdq-vectors/images/pdq-data/reg-test-input/exif-rotn/exif-rotn-6.jpg",
    "pdq-vectors/images/pdq-data/reg-test-input/exif-rotn/exif-rotn-8.jpg",
};
#define NPHOTOS (sizeof photos / sizeof photos[0])

static provscan_fingerprint originals[NPHOTOS];

static void fingerprint_buffer(const void *buf, size_t len, provscan_fingerprint *fp)
{
    provscan_load_options opts;
    provscan_load_options_for_mode(PROVSCAN_MODE_FAST, &opts);
    provscan_image *img;
    provscan_error err;
    if (provscan_image_load_memory(buf, len, "edited", &opts, &img, NULL, &err) != PROVSCAN_OK)
        fail_msg("%s", err.message);
    assert_int_equal(provscan_fingerprint_image(img, fp), PROVSCAN_OK);
    provscan_image_free(img);
}

static VipsImage *load_upright(const char *rel)
{
    char *path = tu_data_path(rel);
    VipsImage *in, *up, *flat;
    in = vips_image_new_from_file(path, NULL);
    free(path);
    assert_non_null(in);
    assert_int_equal(vips_autorot(in, &up, NULL), 0);
    g_object_unref(in);
    if (!vips_image_hasalpha(up))
        return up;
    double white[3] = {255, 255, 255};
    VipsArrayDouble *bg = vips_array_double_new(white, vips_image_get_bands(up) - 1);
    assert_int_equal(vips_flatten(up, &flat, "background", bg, NULL), 0);
    vips_area_unref(VIPS_AREA(bg));
    g_object_unref(up);
    return flat;
}

typedef enum { EDIT_HALF, EDIT_QUARTER, EDIT_JPEG_Q20, EDIT_RECOLOUR, EDIT_GREY, EDIT_MIRROR, EDIT_ROT90, EDIT_COUNT } edit;
static const char *const edit_names[EDIT_COUNT] = {"half size", "quarter size", "JPEG q20", "recoloured",
                                                  "greyscale", "mirrored", "rotated 90"};

static VipsImage *apply(VipsImage *in, edit e)
{
    VipsImage *out = NULL;
    switch (e) {
    case EDIT_HALF: vips_resize(in, &out, 0.5, NULL); break;
    case EDIT_QUARTER: vips_resize(in, &out, 0.25, NULL); break;
    case EDIT_JPEG_Q20: vips_copy(in, &out, NULL); break; /* the encoder below does the damage */
    case EDIT_RECOLOUR: {
        /* warmer, brighter and lower contrast: a different gain and offset per channel */
        double a[3] = {0.8, 0.7, 0.55}, b[3] = {50, 40, 20};
        VipsImage *t;
        vips_linear(in, &t, a, b, vips_image_get_bands(in) >= 3 ? 3 : 1, NULL);
        vips_cast_uchar(t, &out, NULL);
        g_object_unref(t);
        break;
    }
    case EDIT_GREY: vips_colourspace(in, &out, VIPS_INTERPRETATION_B_W, NULL); break;
    case EDIT_MIRROR: vips_flip(in, &out, VIPS_DIRECTION_HORIZONTAL, NULL); break;
    case EDIT_ROT90: vips_rot(in, &out, VIPS_ANGLE_D90, NULL); break;
    default: break;
    }
    assert_non_null(out);
    return out;
}

static void test_edited_copies_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < NPHOTOS; i++) {
        VipsImage *img = load_upright(photos[i]);
        for (int e = 0; e < EDIT_COUNT; e++) {
            VipsImage *edited = apply(img, (edit)e);
            void *buf;
            size_t len;
            assert_int_equal(vips_jpegsave_buffer(edited, &buf, &len, "Q", e == EDIT_JPEG_Q20 ? 20 : 90, NULL), 0);
            provscan_fingerprint fp;
            fingerprint_buffer(buf, len, &fp);
            provscan_dihedral which;
            int d = provscan_pdq_distance_dihedral(&fp.pdq[0], &originals[i], &which);
            print_message("%-12s %-14s PDQ %3d (%s)  pHash %2d  dHash %2d\n", strrchr(photos[i], '/') + 1,
                          edit_names[e], d, provscan_dihedral_name(which),
                          provscan_hash64_distance(fp.phash, originals[i].phash),
                          provscan_hash64_distance(fp.dhash, originals[i].dhash));
            if (d > PROVSCAN_PDQ_MATCH_DISTANCE)
                fail_msg("%s %s: PDQ distance %d over the match threshold", photos[i], edit_names[e], d);
            if (e == EDIT_MIRROR)
                assert_int_equal(which, PROVSCAN_D_FLIPY);
            else if (e == EDIT_ROT90)
                assert_true(which == PROVSCAN_D_ROT90 || which == PROVSCAN_D_ROT270);
            else
                assert_int_equal(which, PROVSCAN_D_ORIGINAL);
            g_free(buf);
            g_object_unref(edited);
        }
        g_object_unref(img);
    }
}

static void test_unrelated_photos_far_apart(void **state)
{
    (void)state;
    for (size_t i = 0; i < NPHOTOS; i++)
        for (size_t j = i + 1; j < NPHOTOS; j++) {
            int d = provscan_pdq_distance_dihedral(&originals[i].pdq[0], &originals[j], NULL);
            print_message("unrelated %zu-%zu: best dihedral PDQ distance %d\n", i, j, d);
            if (d <= PROVSCAN_PDQ_POSSIBLE_DISTANCE)
                fail_msg("%s and %s are %d bits apart", photos[i], photos[j], d);
        }
}

static int setup(void **state)
{
    (void)state;
    provscan_error err;
    if (provscan_init(&err) != PROVSCAN_OK)
        return -1;
    for (size_t i = 0; i < NPHOTOS; i++) {
        char *path = tu_data_path(photos[i]);
        provscan_status st = provscan_fingerprint_file(path, PROVSCAN_MODE_FAST, 0, &originals[i], NULL, &err);
        free(path);
        if (st != PROVSCAN_OK)
            return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edited_copies_match),
        cmocka_unit_test(test_unrelated_photos_far_apart),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

/* test_load.c — the loader on bad input (each failure named with its reason), orientation, alpha, metadata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "decode/metadata.h"
#include "provscan.h"
#include "testutil.h"

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Appends a PNG chunk with a correct CRC; returns the new length. */
static size_t png_chunk(uint8_t *buf, size_t len, const char *type, const void *data, uint32_t n)
{
    put32(buf + len, n);
    memcpy(buf + len + 4, type, 4);
    if (n)
        memcpy(buf + len + 8, data, n);
    put32(buf + len + 8 + n, crc32_of(buf + len + 4, n + 4));
    return len + 12 + n;
}

/* Loads path, expects status, and checks that the message names the file and contains why. */
static void expect_failure(const char *path, provscan_status status, const char *why)
{
    provscan_image *img = NULL;
    provscan_error err;
    provscan_status st = provscan_image_load(path, NULL, &img, NULL, &err);
    if (st != status)
        fail_msg("%s: expected %s, got %s (%s)", path, provscan_error_name(status), provscan_error_name(st),
                 err.message);
    assert_null(img);
    assert_int_equal(err.status, status);
    assert_non_null(strstr(err.message, path));
    if (why && !strstr(err.message, why))
        fail_msg("message '%s' does not say '%s'", err.message, why);
    assert_null(strchr(err.message, '\n')); /* one line */
}

static void test_bad_inputs(void **state)
{
    (void)state;
    char *empty = tu_tmp_path("empty.jpg");
    tu_write_file(empty, "", 0);
    expect_failure(empty, PROVSCAN_E_NOT_IMAGE, "empty file");

    char *text = tu_tmp_path("notes.jpg");
    const char *words = "This is a text file with an image extension.\n";
    tu_write_file(text, words, strlen(words));
    expect_failure(text, PROVSCAN_E_NOT_IMAGE, "not an image");

    char *missing = tu_tmp_path("no-such-file.png");
    expect_failure(missing, PROVSCAN_E_IO, "No such file");

    expect_failure(tu_tmpdir(), PROVSCAN_E_IO, "directory");

    /* A JPEG cut off in the middle of its image data. */
    char *src = tu_data_path("pdq-vectors/images/pdq-data/bridge-mods/aaa-orig.jpg");
    size_t n;
    uint8_t *jpeg = tu_read_file(src, &n);
    char *cut = tu_tmp_path("truncated.jpg");
    tu_write_file(cut, jpeg, n * 2 / 5);
    expect_failure(cut, PROVSCAN_E_CORRUPT, "truncated");
    /* ... also in fast mode, whose DCT scaling reads less of the file. */
    provscan_fingerprint fp;
    provscan_error err;
    assert_int_equal(provscan_fingerprint_file(cut, PROVSCAN_MODE_FAST, 0, &fp, NULL, &err), PROVSCAN_E_CORRUPT);
    free(jpeg);

    /* A PNG whose image-data CRC is wrong. */
    char *png_src = tu_data_path("pdq-vectors/images/pdq-data/reg-test-input/pen-and-coaster.png");
    uint8_t *png = tu_read_file(png_src, &n);
    uint8_t *idat = memmem(png, n, "IDAT", 4);
    assert_non_null(idat);
    uint32_t idat_len = (uint32_t)idat[-4] << 24 | (uint32_t)idat[-3] << 16 | (uint32_t)idat[-2] << 8 | idat[-1];
    idat[4 + idat_len] ^= 0x5A; /* first CRC byte */
    char *bad_crc = tu_tmp_path("bad-crc.png");
    tu_write_file(bad_crc, png, n);
    expect_failure(bad_crc, PROVSCAN_E_CORRUPT, NULL);
    free(png);

    /* A PNG header claiming 100000 x 100000 pixels: refused before any decoding. */
    uint8_t bomb[128];
    size_t len = 8;
    memcpy(bomb, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0};
    put32(ihdr, 100000);
    put32(ihdr + 4, 100000);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* RGB */
    len = png_chunk(bomb, len, "IHDR", ihdr, 13);
    len = png_chunk(bomb, len, "IEND", NULL, 0);
    char *bomb_path = tu_tmp_path("bomb.png");
    tu_write_file(bomb_path, bomb, len);
    expect_failure(bomb_path, PROVSCAN_E_TOO_LARGE, "exceeds the limit");

    /* The pixel limit is configurable: a 1600x1004 JPEG refused at 1 megapixel. */
    provscan_load_options opts;
    provscan_load_options_default(&opts);
    opts.max_pixels = 1000000;
    provscan_image *img = NULL;
    assert_int_equal(provscan_image_load(src, &opts, &img, NULL, &err), PROVSCAN_E_TOO_LARGE);

    free(empty); free(text); free(missing); free(src); free(cut); free(png_src); free(bad_crc); free(bomb_path);
}

static void test_unreadable_file(void **state)
{
    (void)state;
    char *path = tu_tmp_path("secret.jpg");
    tu_write_file(path, "\xFF\xD8\xFF", 3);
    chmod(path, 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* root reads anything, so test as an unprivileged user; the loader fails at open(),
         * before any decoder runs. */
        if (geteuid() == 0 && setuid(65534) != 0)
            _exit(3);
        provscan_image *img = NULL;
        provscan_error err;
        provscan_status st = provscan_image_load(path, NULL, &img, NULL, &err);
        _exit(st == PROVSCAN_E_IO && strstr(err.message, path) && strstr(err.message, "Permission denied") ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(path);
}

/* An asymmetric test card, so every orientation is distinguishable. */
static VipsImage *test_card(void)
{
    VipsImage *x, *y, *r, *g, *b, *rg, *rgb, *u8;
    vips_xyz(&x, 96, 64, NULL);
    vips_extract_band(x, &y, 1, NULL);
    vips_extract_band(x, &r, 0, NULL);
    g_object_unref(x);
    vips_linear1(r, &g, 2.0, 0.0, NULL);
    vips_linear1(y, &b, 3.0, 10.0, NULL);
    vips_bandjoin2(r, g, &rg, NULL);
    vips_bandjoin2(rg, b, &rgb, NULL);
    vips_cast_uchar(rgb, &u8, NULL);
    VipsImage *objs[] = {y, r, g, b, rg, rgb};
    for (size_t i = 0; i < 6; i++)
        g_object_unref(objs[i]);
    return u8;
}

/* Orientation tags 1..8 in TIFF (libvips path) and JPEG (provscan's own EXIF parser and rotation):
 * the upright image must equal libvips' autorot of the same file. */
static void test_exif_orientation(void **state)
{
    (void)state;
    for (int o = 1; o <= 8; o++) {
        for (int jpeg = 0; jpeg <= 1; jpeg++) {
            VipsImage *card = test_card(), *copy;
            vips_copy(card, &copy, NULL);
            vips_image_set_int(copy, "orientation", o);
            void *buf;
            size_t len;
            if (jpeg)
                assert_int_equal(vips_jpegsave_buffer(copy, &buf, &len, "Q", 95, NULL), 0);
            else
                assert_int_equal(vips_tiffsave_buffer(copy, &buf, &len, NULL), 0);
            VipsImage *decoded, *expected;
            decoded = vips_image_new_from_buffer(buf, len, "", NULL);
            assert_non_null(decoded);
            assert_int_equal(vips_image_get_orientation(decoded), o);
            assert_int_equal(vips_autorot(decoded, &expected, NULL), 0);
            size_t exp_size;
            uint8_t *exp_px = vips_image_write_to_memory(expected, &exp_size);

            provscan_load_options opts;
            provscan_load_options_default(&opts);
            provscan_image *img;
            provscan_image_info info;
            provscan_error err;
            const char *name = jpeg ? "card.jpg" : "card.tif";
            assert_int_equal(provscan_image_load_memory(buf, len, name, &opts, &img, &info, &err), PROVSCAN_OK);
            assert_int_equal(provscan_image_width(img), vips_image_get_width(expected));
            assert_int_equal(provscan_image_height(img), vips_image_get_height(expected));
            assert_int_equal(info.orientation, o);
            assert_int_equal(info.orientation_applied, o > 1);
            assert_int_equal(info.source_width, vips_image_get_width(expected));
            assert_int_equal(exp_size, (size_t)provscan_image_width(img) * provscan_image_height(img) * 3);
            assert_memory_equal(provscan_image_pixels(img), exp_px, exp_size);
            provscan_image_free(img);

            opts.autorotate = 0;
            assert_int_equal(provscan_image_load_memory(buf, len, name, &opts, &img, &info, &err), PROVSCAN_OK);
            assert_int_equal(provscan_image_width(img), 96);
            assert_int_equal(info.orientation_applied, 0);
            provscan_image_free(img);
            g_free(exp_px);
            g_free(buf);
            g_object_unref(expected);
            g_object_unref(decoded);
            g_object_unref(copy);
            g_object_unref(card);
        }
    }
}

/* JPEG orientation goes through provscan's own EXIF parser and rotation: the exif-rotn vectors are
 * photos whose pixels are stored sideways; the turned image must equal libvips' autorot of them. */
static void test_jpeg_orientation_matches_libvips(void **state)
{
    (void)state;
    static const int tags[] = {3, 6, 8};
    for (size_t i = 0; i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "pdq-vectors/images/pdq-data/reg-test-input/exif-rotn/exif-rotn-%d.jpg", tags[i]);
        char *path = tu_data_path(rel);
        provscan_load_options opts;
        provscan_load_options_default(&opts);
        opts.min_side = 256;
        provscan_image *img;
        provscan_image_info info;
        provscan_error err;
        assert_int_equal(provscan_image_load(path, &opts, &img, &info, &err), PROVSCAN_OK);
        assert_int_equal(info.orientation, tags[i]);
        VipsImage *v, *rot;
        assert_int_equal(vips_jpegload(path, &v, "shrink", 8, NULL), 0);
        assert_int_equal(vips_autorot(v, &rot, NULL), 0);
        assert_int_equal(provscan_image_width(img), vips_image_get_width(rot));
        assert_int_equal(provscan_image_height(img), vips_image_get_height(rot));
        size_t sz;
        uint8_t *px = vips_image_write_to_memory(rot, &sz);
        assert_int_equal(sz, (size_t)provscan_image_width(img) * provscan_image_height(img) * 3);
        assert_memory_equal(provscan_image_pixels(img), px, sz);
        g_free(px);
        g_object_unref(v);
        g_object_unref(rot);
        provscan_image_free(img);
        free(path);
    }
}

static void test_alpha_handling(void **state)
{
    (void)state;
    /* Left half fully transparent over black, right half opaque red. */
    uint8_t px[20 * 10 * 4];
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 20; x++) {
            uint8_t *p = px + (y * 20 + x) * 4;
            int opaque = x >= 10;
            p[0] = opaque ? 200 : 0; p[1] = 0; p[2] = 0; p[3] = opaque ? 255 : 0;
        }
    VipsImage *v = vips_image_new_from_memory(px, sizeof px, 20, 10, 4, VIPS_FORMAT_UCHAR);
    void *buf;
    size_t len;
    assert_int_equal(vips_pngsave_buffer(v, &buf, &len, NULL), 0);
    provscan_load_options opts;
    provscan_load_options_default(&opts);
    provscan_image *img;
    provscan_image_info info;
    provscan_error err;
    assert_int_equal(provscan_image_load_memory(buf, len, "a.png", &opts, &img, &info, &err), PROVSCAN_OK);
    assert_int_equal(provscan_image_channels(img), 3);
    assert_true(info.had_alpha);
    const uint8_t *p = provscan_image_pixels(img);
    assert_int_equal(p[0], 255); assert_int_equal(p[1], 255); assert_int_equal(p[2], 255); /* on white */
    assert_int_equal(p[15 * 3], 200); assert_int_equal(p[15 * 3 + 1], 0);
    provscan_image_free(img);
    opts.alpha = PROVSCAN_ALPHA_IGNORE;
    assert_int_equal(provscan_image_load_memory(buf, len, "a.png", &opts, &img, &info, &err), PROVSCAN_OK);
    p = provscan_image_pixels(img);
    assert_int_equal(p[0], 0); assert_int_equal(p[1], 0); assert_int_equal(p[2], 0); /* colour underneath */
    provscan_image_free(img);
    g_free(buf);
    g_object_unref(v);
}

static void test_shrink_on_load(void **state)
{
    (void)state;
    char *path = tu_data_path("pdq-vectors/images/pdq-data/reg-test-input/exif-rotn/exif-rotn-1.jpg");
    provscan_load_options opts;
    provscan_load_options_default(&opts);
    opts.min_side = 256;
    opts.want_grey = 1;
    provscan_image *img;
    provscan_image_info info;
    provscan_error err;
    assert_int_equal(provscan_image_load(path, &opts, &img, &info, &err), PROVSCAN_OK);
    /* 4032x3024 decoded at 1/8 in the DCT domain: 504x378, one channel. */
    assert_int_equal(provscan_image_width(img), 504);
    assert_int_equal(provscan_image_height(img), 378);
    assert_int_equal(provscan_image_channels(img), 1);
    assert_int_equal(info.source_width, 4032);
    assert_int_equal(info.source_height, 3024);
    assert_string_equal(info.format, "jpeg");
    provscan_image_free(img);
    free(path);
}

static size_t jpeg_segment(uint8_t *buf, size_t len, uint8_t marker, const void *data, size_t n)
{
    buf[len] = 0xFF;
    buf[len + 1] = marker;
    buf[len + 2] = (uint8_t)((n + 2) >> 8);
    buf[len + 3] = (uint8_t)(n + 2);
    memcpy(buf + len + 4, data, n);
    return len + 4 + n;
}

static void test_metadata_scan(void **state)
{
    (void)state;
    ps_metadata md;
    uint8_t buf[1024];
    /* JPEG: EXIF orientation 6 (big-endian TIFF) and an APP11 C2PA manifest declaring AI media. */
    size_t len = 0;
    buf[len++] = 0xFF;
    buf[len++] = 0xD8;
    uint8_t exif[] = {'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                      0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0};
    len = jpeg_segment(buf, len, 0xE1, exif, sizeof exif);
    uint8_t app11[200] = {'J', 'P', 0, 1, 0, 0, 0, 1, 0, 0, 0, 100, 'j', 'u', 'm', 'b', 0, 0, 0, 40,
                          'j', 'u', 'm', 'd', 'c', '2', 'p', 'a'};
    const char *uri = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";
    memcpy(app11 + 60, uri, strlen(uri));
    len = jpeg_segment(buf, len, 0xEB, app11, sizeof app11);
    buf[len++] = 0xFF;
    buf[len++] = 0xDA;
    ps_metadata_scan(buf, len, &md);
    assert_int_equal(md.orientation, 6);
    assert_true(md.c2pa_manifest);
    assert_string_equal(md.source_type, "trainedAlgorithmicMedia");
    assert_string_equal(md.source_type_in, "c2pa");
    /* Every prefix (truncated files) is scanned without reading out of bounds (ASan checks). */
    for (size_t k = 0; k < len; k++)
        ps_metadata_scan(buf, k, &md);

    /* PNG: generator text chunk and XMP declaring a composite with AI media. */
    len = 8;
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0, 0, 0, 8, 0, 0, 0, 8, 8, 2, 0, 0, 0};
    len = png_chunk(buf, len, "IHDR", ihdr, 13);
    len = png_chunk(buf, len, "tEXt", "parameters\0a castle, Steps: 20", 31);
    const char xmp[] = "XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta Iptc4xmpExt:DigitalSourceType="
                       "\"http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia\"/>";
    len = png_chunk(buf, len, "iTXt", xmp, sizeof xmp - 1);
    len = png_chunk(buf, len, "tEXt", "workflow\0{}", 11);
    len = png_chunk(buf, len, "IEND", NULL, 0);
    ps_metadata_scan(buf, len, &md);
    assert_false(md.c2pa_manifest);
    assert_true(md.xmp_packet);
    assert_int_equal(md.generator_chunks, PS_GEN_PARAMETERS | PS_GEN_WORKFLOW);
    assert_string_equal(md.source_type, "compositeWithTrainedAlgorithmicMedia");
    assert_string_equal(md.source_type_in, "xmp");
    for (size_t k = 0; k < len; k++)
        ps_metadata_scan(buf, k, &md);

    /* Random bytes behind each container signature never crash the scanner. */
    uint64_t seed = 99;
    static const char *const magic[] = {"\xFF\xD8\xFF", "\x89PNG\r\n\x1a\n", "RIFF\0\0\0\0WEBP", "\0\0\0\x18" "ftypheic"};
    for (int round = 0; round < 2000; round++) {
        const char *m = magic[round % 4];
        size_t ml = round % 4 == 2 ? 12 : round % 4 == 3 ? 12 : strlen(m);
        size_t total = ml + tu_rand(&seed) % 300;
        memcpy(buf, m, ml);
        for (size_t i = ml; i < total; i++)
            buf[i] = (uint8_t)tu_rand(&seed);
        ps_metadata_scan(buf, total, &md);
        assert_true(md.orientation >= 0 && md.orientation <= 8);
    }
}

static int setup(void **state)
{
    (void)state;
    provscan_error err;
    return provscan_init(&err) == PROVSCAN_OK ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_inputs),       cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_exif_orientation), cmocka_unit_test(test_jpeg_orientation_matches_libvips),
        cmocka_unit_test(test_alpha_handling),   cmocka_unit_test(test_shrink_on_load),
        cmocka_unit_test(test_metadata_scan),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

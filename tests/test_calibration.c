/* test_calibration.c — the calibrated copy-probability model: file round trip, damaged and hostile files, the score's shape. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "index/calibration.h"

static const ps_calibration sample = {-7.0, -18.0, {7.4, 5.5, -1.9, 0.37, -2.1, -1.2}};

static char *sample_text(void)
{
    char *text = ps_calibration_format(&sample, "unit test");
    assert_non_null(text);
    return text;
}

static void test_round_trip(void **state)
{
    (void)state;
    char *text = sample_text();
    ps_calibration m;
    provscan_error err;
    assert_int_equal(ps_calibration_parse(text, strlen(text), "t", &m, &err), PROVSCAN_OK);
    assert_true(fabs(m.global_bias - sample.global_bias) < 1e-6);
    assert_true(fabs(m.local_bias - sample.local_bias) < 1e-6);
    for (int f = 0; f < PS_FEAT_COUNT; f++)
        assert_true(fabs(m.weight[f] - sample.weight[f]) < 1e-6);
    free(text);
}

static void test_every_flipped_byte_is_caught(void **state)
{
    (void)state;
    char *text = sample_text();
    size_t n = strlen(text);
    size_t sum_at = (size_t)(strstr(text, "\nchecksum ") - text) + 1;
    for (size_t i = 0; i < sum_at; i++) {
        char *bad = malloc(n);
        memcpy(bad, text, n);
        bad[i] ^= 0x01;
        ps_calibration m;
        provscan_error err;
        assert_int_not_equal(ps_calibration_parse(bad, n, "t", &m, &err), PROVSCAN_OK);
        free(bad);
    }
    free(text);
}

static void test_every_truncation_is_refused(void **state)
{
    (void)state;
    char *text = sample_text();
    size_t n = strlen(text);
    /* the last byte is the newline after the checksum, which the parser does not need */
    for (size_t len = 0; len + 1 < n; len++) {
        char *cut = malloc(len + 1); /* exactly len bytes are readable, as from a short read */
        memcpy(cut, text, len);
        ps_calibration m;
        provscan_error err;
        assert_int_not_equal(ps_calibration_parse(cut, len, "t", &m, &err), PROVSCAN_OK);
        free(cut);
    }
    free(text);
}

/* Parses BODY followed by a valid checksum line: content errors, not damage. */
static provscan_status parse_body(const char *body, provscan_error *err)
{
    uint64_t h = ps_fnv1a64(body, strlen(body)); /* the checksum line: FNV-1a 64 of all before it */
    char text[2048];
    snprintf(text, sizeof text, "%schecksum %016llx\n", body, (unsigned long long)h);
    ps_calibration m;
    return ps_calibration_parse(text, strlen(text), "t", &m, err);
}

static void test_wrong_content_is_refused(void **state)
{
    (void)state;
    provscan_error err;
    const char *full = "magic provscan-calibration\nversion 3\nglobal bias -7\nglobal weight pdq_similarity 7.4\n"
                       "local bias -18\nlocal weight log_inliers 5.5\nlocal weight work_coverage -1.9\n"
                       "local weight query_coverage 0.37\nlocal weight log_matches -0.6\n"
                       "local weight log_alt_inliers -1.1\n";
    assert_int_equal(parse_body(full, &err), PROVSCAN_OK);

    char body[1024];
    /* a newer format version, and the previous ones (no log_alt_inliers, no log_matches weight) */
    snprintf(body, sizeof body, "%s", full);
    memcpy(strstr(body, "version 3"), "version 4", 9);
    assert_int_equal(parse_body(body, &err), PROVSCAN_E_VERSION);
    for (const char *old = "12"; *old; old++) {
        snprintf(body, sizeof body, "%s", full);
        strstr(body, "version 3")[8] = *old;
        assert_int_equal(parse_body(body, &err), PROVSCAN_E_VERSION);
    }
    /* a feature this version does not know */
    snprintf(body, sizeof body, "%slocal weight sharpness 1.0\n", full);
    assert_int_equal(parse_body(body, &err), PROVSCAN_E_VERSION);
    /* a weight left out */
    snprintf(body, sizeof body, "%s", full);
    char *line = strstr(body, "local weight work_coverage");
    memmove(line, strchr(line, '\n') + 1, strlen(strchr(line, '\n') + 1) + 1);
    assert_int_equal(parse_body(body, &err), PROVSCAN_E_INDEX);
    assert_non_null(strstr(err.message, "lacks a weight"));
    /* not a model at all */
    assert_int_equal(parse_body("version 3\nglobal bias 0\n", &err), PROVSCAN_E_INDEX);
    /* NaN and infinite weights */
    snprintf(body, sizeof body, "%s", full);
    memcpy(strstr(body, "-18"), "nan", 3);
    assert_int_equal(parse_body(body, &err), PROVSCAN_E_INDEX);
    assert_non_null(strstr(err.message, "finite"));
    snprintf(body, sizeof body, "%s", full);
    memcpy(strstr(body, "7.4"), "inf", 3);
    assert_int_equal(parse_body(body, &err), PROVSCAN_E_INDEX);
    /* an overlong line is cut, not overflowed */
    char longline[600];
    memset(longline, 'x', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    snprintf(body, sizeof body, "%s# %s\n", full, longline);
    assert_int_equal(parse_body(body, &err), PROVSCAN_OK);
}

extern const unsigned char ps_builtin_calibration[];
extern const size_t ps_builtin_calibration_size;

static void test_builtin_model_is_sane(void **state)
{
    (void)state;
    /* the shipped model file parses (a damaged one would silently fall back to defaults) */
    ps_calibration shipped;
    provscan_error err;
    assert_int_equal(ps_calibration_parse((const char *)ps_builtin_calibration, ps_builtin_calibration_size,
                                          "models/ps_calibration_v3.txt", &shipped, &err),
                     PROVSCAN_OK);
    const ps_calibration *m = ps_calibration_get();
    double x[PS_FEAT_COUNT], previous = 2.0;
    /* identical hashes are a copy, unrelated ones are not, and the score falls with the distance,
     * strictly all the way (candidates without local evidence are ranked by it, never tied) */
    for (int d = 0; d <= 256; d += 4) {
        ps_calibration_features(d, 100, 100, 0, 0, 0, 0, 0, x);
        double p = ps_calibration_probability(m, x);
        assert_true(p >= 0 && p <= 1);
        assert_true(p < previous);
        previous = p;
        if (d == 0)
            assert_true(p > 0.99);
        if (d >= 64)
            assert_true(p < 0.01);
    }
    /* many verified inliers over much of the work is a copy even with unrelated hashes; none is no
     * local evidence at all */
    ps_calibration_features(128, 100, 100, 200, 400, 0, 0.8, 0.3, x);
    assert_true(ps_calibration_probability(m, x) > 0.99);
    ps_calibration_features(128, 100, 100, 0, 40, 0, 0.8, 0.3, x);
    double pg, pl;
    ps_calibration_parts(m, x, &pg, &pl);
    assert_true(pl == 0.0);
    /* more inliers among the same tentative matches never lower the score */
    previous = -1.0;
    for (int inliers = 1; inliers <= 400; inliers *= 2) {
        ps_calibration_features(128, 100, 100, inliers, 400, 0, 0.3, 0.3, x);
        double p = ps_calibration_probability(m, x);
        assert_true(p >= previous);
        previous = p;
    }
    /* a second model about as strong as the first (repeated structure) lowers the score */
    ps_calibration_features(128, 100, 100, 30, 120, 0, 0.5, 0.5, x);
    double single = ps_calibration_probability(m, x);
    ps_calibration_features(128, 100, 100, 30, 120, 20, 0.5, 0.5, x);
    assert_true(ps_calibration_probability(m, x) < single);
    /* a flat picture's hash is weak evidence: the same distance scores lower at low quality */
    ps_calibration_features(10, 100, 100, 0, 0, 0, 0, 0, x);
    double sharp = ps_calibration_probability(m, x);
    ps_calibration_features(10, 10, 100, 0, 0, 0, 0, 0, x);
    assert_true(ps_calibration_probability(m, x) < sharp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_flipped_byte_is_caught),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_wrong_content_is_refused),
        cmocka_unit_test(test_builtin_model_is_sane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

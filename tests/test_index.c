/* test_index.c — index internals: segment files (and their damage), the CSV reader, paths, key sets, result merging, a query's dark-background reading and retrieval windows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/csv.h"
#include "common/util.h"
#include "decode/decode.h"
#include "index/local.h"
#include "index/segment.h"
#include "testutil.h"

static const ps_segment_algos algos = {1, 1, 1, 0, 0};

static char *write_test_segment(const char *name, uint64_t n, uint32_t *checksum)
{
    uint8_t *codes = malloc(n * 32 + 1), *quality = malloc(n + 1);
    int64_t *ids = malloc(n * 8 + 8);
    uint64_t seed = 5;
    for (uint64_t i = 0; i < n * 32; i++)
        codes[i] = (uint8_t)tu_rand(&seed);
    for (uint64_t i = 0; i < n; i++) {
        ids[i] = (int64_t)i + 1;
        quality[i] = (uint8_t)(i % 101);
    }
    ps_section_in s[3] = {{PS_SEC_CODES, codes, n * 32}, {PS_SEC_IDS, ids, n * 8}, {PS_SEC_QUALITY, quality, n}};
    char *path = tu_tmp_path(name);
    provscan_error err;
    assert_int_equal(ps_segment_write(path, PS_KIND_PDQ, n, &algos, s, 3, checksum, &err), PROVSCAN_OK);
    free(codes);
    free(quality);
    free(ids);
    return path;
}

static provscan_status open_seg(const char *path, uint64_t n, uint32_t checksum, int verify, provscan_error *err)
{
    ps_segment seg;
    provscan_status st = ps_segment_open(path, PS_KIND_PDQ, n, checksum, verify, &seg, err);
    if (st == PROVSCAN_OK)
        ps_segment_close(&seg);
    return st;
}

static void patch(const char *path, long offset, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, offset, SEEK_SET);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void test_segment_round_trip(void **state)
{
    (void)state;
    uint32_t checksum;
    char *path = write_test_segment("ok.pdq", 1000, &checksum);
    ps_segment seg;
    provscan_error err;
    assert_int_equal(ps_segment_open(path, PS_KIND_PDQ, 1000, checksum, 1, &seg, &err), PROVSCAN_OK);
    uint64_t size;
    const int64_t *ids = ps_segment_section(&seg, PS_SEC_IDS, &size);
    assert_int_equal(size, 8000);
    assert_int_equal(ids[999], 1000);
    assert_null(ps_segment_section(&seg, PS_SEC_MIH, &size));
    assert_int_equal(size, 0);
    assert_int_equal(seg.algos.pdq, 1);
    ps_segment_close(&seg);
    /* An empty segment is valid too. */
    char *empty = write_test_segment("empty.pdq", 0, &checksum);
    assert_int_equal(open_seg(empty, 0, checksum, 1, &err), PROVSCAN_OK);
    free(path);
    free(empty);
}

/* Every kind of damage is a clear PROVSCAN_E_INDEX (or E_VERSION) naming the file, never a crash. */
static void test_segment_damage(void **state)
{
    (void)state;
    uint32_t checksum;
    provscan_error err;
    struct { const char *what; long offset; const char *bytes; size_t n; const char *expect; } cases[] = {
        {"magic", 0, "XXXX", 4, "wrong magic"},
        {"version", 8, "\x09\x00\x00\x00", 4, "format version 9"},
        {"record count", 16, "\x01", 1, "header checksum"},
        {"section table", 80, "\xff\xff\xff\x7f", 4, "header checksum"},
        {"data", 700, "\x5a\x5a", 2, "section data checksum mismatch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.pdq", i);
        char *path = write_test_segment(name, 100, &checksum);
        patch(path, cases[i].offset, cases[i].bytes, cases[i].n);
        provscan_status st = open_seg(path, 100, checksum, 1, &err);
        assert_true(st == PROVSCAN_E_INDEX || st == PROVSCAN_E_VERSION);
        assert_non_null(strstr(err.message, path));
        if (!strstr(err.message, cases[i].expect))
            fail_msg("%s: message '%s' lacks '%s'", cases[i].what, err.message, cases[i].expect);
        free(path);
    }
    /* Truncated files, at every interesting length. */
    char *path = write_test_segment("trunc.pdq", 100, &checksum);
    long lengths[] = {0, 10, 511, 512, 600, 512 + 3200, 4000};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        assert_int_equal(truncate(path, lengths[i]), 0);
        assert_int_equal(open_seg(path, 100, checksum, 0, &err), PROVSCAN_E_INDEX);
    }
    free(path);
    /* The catalog's record count and checksum must agree with the file. */
    path = write_test_segment("mismatch.pdq", 100, &checksum);
    assert_int_equal(open_seg(path, 99, checksum, 0, &err), PROVSCAN_E_INDEX);
    assert_non_null(strstr(err.message, "record count"));
    assert_int_equal(open_seg(path, 100, checksum ^ 1, 0, &err), PROVSCAN_E_INDEX);
    free(path);
    char *missing = tu_tmp_path("missing.pdq");
    assert_int_equal(open_seg(missing, 1, 0, 0, &err), PROVSCAN_E_INDEX);
    free(missing);
}

static int csv_rows(const char *text, char out[][4][64], int max)
{
    char *path = tu_tmp_path("t.csv");
    tu_write_file(path, text, strlen(text));
    FILE *f = fopen(path, "r");
    ps_csv c = {.f = f};
    int n = 0, r;
    while ((r = ps_csv_next(&c)) > 0 && n < max) {
        for (size_t i = 0; i < 4; i++)
            snprintf(out[n][i], 64, "%s", i < c.nfields ? c.fields[i] : "<none>");
        n++;
    }
    ps_csv_free(&c);
    fclose(f);
    free(path);
    return r < 0 ? -1 : n;
}

static void test_csv(void **state)
{
    (void)state;
    char rows[8][4][64];
    assert_int_equal(csv_rows("a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\n\"multi\nline\",,z", rows, 8), 3);
    assert_string_equal(rows[0][2], "c");
    assert_string_equal(rows[1][1], "x, y");
    assert_string_equal(rows[1][2], "say \"hi\"");
    assert_string_equal(rows[2][0], "multi\nline");
    assert_string_equal(rows[2][1], "");
    assert_string_equal(rows[2][2], "z");
    assert_string_equal(rows[2][3], "<none>");
    assert_int_equal(csv_rows("a,\"unterminated\n", rows, 8), -1);
    assert_int_equal(csv_rows("", rows, 8), 0);
    assert_int_equal(csv_rows("only\n", rows, 8), 1);
}

static void test_paths_and_sets(void **state)
{
    (void)state;
    struct { const char *in, *out; } cases[] = {
        {"/a/b/../c", "/a/c"}, {"/a//b/./c/", "/a/b/c"}, {"/..", "/"}, {"/", "/"}, {"/a/b/../../..", "/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = ps_path_absolute(cases[i].in);
        assert_string_equal(p, cases[i].out);
        free(p);
    }
    char *rel = ps_path_absolute("x/./y");
    char *cwd = getcwd(NULL, 0);
    assert_true(strncmp(rel, cwd, strlen(cwd)) == 0);
    assert_string_equal(rel + strlen(cwd), "/x/y");
    free(rel);
    free(cwd);

    ps_u64set s = {0};
    for (uint64_t k = 0; k < 10000; k++)
        assert_int_equal(ps_u64set_add(&s, k * 7919), 1);
    assert_int_equal(ps_u64set_add(&s, 0), 0); /* 0 was added as k = 0 */
    assert_int_equal(ps_u64set_add(&s, 7919), 0);
    for (uint64_t k = 0; k < 10000; k++)
        assert_true(ps_u64set_has(&s, k * 7919));
    assert_false(ps_u64set_has(&s, 7918));
    ps_u64set_free(&s);
    assert_false(ps_u64set_has(&s, 1));
    /* CRC-32C check value of "123456789". */
    assert_int_equal(ps_crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t sha[32];
    char hex[65];
    assert_int_equal(ps_sha256("abc", 3, sha), 0);
    ps_hex(sha, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_results_merge(void **state)
{
    (void)state;
    provscan_results a = {0}, b = {0};
    a.nqueries = b.nqueries = 1;
    a.count = calloc(1, sizeof *a.count);
    b.count = calloc(1, sizeof *b.count);
    a.match = calloc(1, sizeof *a.match);
    b.match = calloc(1, sizeof *b.match);
    a.count[0] = 2;
    b.count[0] = 2;
    a.match[0] = calloc(2, sizeof(provscan_match));
    b.match[0] = calloc(2, sizeof(provscan_match));
    a.match[0][0] = (provscan_match){.path = strdup("/z"), .distance = 5};
    a.match[0][1] = (provscan_match){.path = strdup("/b"), .distance = 9};
    b.match[0][0] = (provscan_match){.path = strdup("/a"), .distance = 5};
    b.match[0][1] = (provscan_match){.path = strdup("/c"), .distance = 12};
    assert_int_equal(provscan_results_merge(&a, &b, 3), PROVSCAN_OK);
    assert_int_equal(a.count[0], 3);
    assert_string_equal(a.match[0][0].path, "/a"); /* ties at distance 5 ordered by path */
    assert_string_equal(a.match[0][1].path, "/z");
    assert_string_equal(a.match[0][2].path, "/b");
    provscan_results_free(&a);
    provscan_results_free(&b);
}

/* The dark region joined to the border turns white; a dark island inside the drawing, and the
 * drawing itself, stay as they are; a picture whose border is not mostly dark gets no reading. */
static void test_dark_background(void **state)
{
    (void)state;
    enum { W = 40, H = 30 };
    provscan_image *img = ps_image_new(W, H, 3);
    assert_non_null(img);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *px = img->pixels + ((size_t)y * W + x) * 3;
            int drawing = x >= 10 && x < 30 && y >= 8 && y < 22, island = x >= 18 && x < 22 && y >= 13 && y < 17;
            /* background black with JPEG-like noise, the drawing orange, an island black inside it */
            uint8_t v = (uint8_t)((x * 7 + y * 3) % 30);
            px[0] = drawing && !island ? 230 : v;
            px[1] = drawing && !island ? 120 : v;
            px[2] = drawing && !island ? 20 : v;
        }
    provscan_image *white = ps_whiten_dark_background(img);
    assert_non_null(white);
    assert_int_equal(white->width, W);
    assert_int_equal(white->channels, 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *a = img->pixels + ((size_t)y * W + x) * 3, *b = white->pixels + ((size_t)y * W + x) * 3;
            int drawing = x >= 10 && x < 30 && y >= 8 && y < 22;
            if (drawing)
                assert_memory_equal(a, b, 3); /* the island is not joined to the border */
            else
                assert_true(b[0] == 255 && b[1] == 255 && b[2] == 255);
        }
    provscan_image_free(white);
    /* a light border: nothing to do */
    memset(img->pixels, 200, (size_t)W * H * 3);
    assert_null(ps_whiten_dark_background(img));
    provscan_image_free(img);
}

/* A query's words as retrieval reads them: the same distinct words and counts as the index builds
 * for a work (ps_words_of), and per word how many features of each window hold it, checked against
 * the windows' rectangles counted here. */
static void test_query_windows(void **state)
{
    (void)state;
    enum { W = 480, H = 360 };
    provscan_image *img = ps_image_new(W, H, 3);
    assert_non_null(img);
    uint64_t seed = 11;
    /* random 8 x 8 blocks of grey with noise: corners everywhere */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint64_t b = (uint64_t)(y / 8) * 977 + (uint64_t)(x / 8) * 131 + 7;
            uint8_t v = (uint8_t)(tu_rand(&b) % 256 / 2 + tu_rand(&seed) % 16);
            memset(img->pixels + ((size_t)y * W + x) * 3, v, 3);
        }
    provscan_local *l = NULL;
    assert_int_equal(ps_local_from_image(img, W, H, 750, &l), PROVSCAN_OK);
    assert_non_null(l);
    assert_true(l->f.n > 200);
    uint8_t *mirrored = malloc((size_t)l->f.n * PS_DESC_BYTES);
    assert_non_null(mirrored);
    for (int i = 0; i < l->f.n; i++)
        ps_desc_mirror(l->f.desc + (size_t)i * PS_DESC_BYTES, mirrored + (size_t)i * PS_DESC_BYTES);
    for (int o = 0; o < 2; o++) {
        uint32_t *words = NULL;
        int n = ps_words_of(o ? mirrored : l->f.desc, l->f.n, &words);
        assert_int_equal(n, l->nwords[o]);
        assert_memory_equal(words, l->words[o], (size_t)n * sizeof *words);
        free(words);
        int per_lane[PS_RETRIEVE_LANES] = {0};
        for (int i = 0; i < n; i++) {
            const uint8_t *tf = l->lane_tf[o] + (size_t)i * PS_RETRIEVE_LANES;
            assert_int_equal(tf[0], l->words[o][i] & 0xFF);
            for (int v = 0; v < PS_RETRIEVE_LANES; v++) {
                assert_true(tf[v] <= tf[0]);
                per_lane[v] += tf[v];
            }
        }
        for (int v = 0; v < PS_RETRIEVE_LANES; v++)
            assert_int_equal(per_lane[v], l->lane_features[v]);
    }
    assert_int_equal(l->lane_features[0], l->f.n);
    int covered = 0;
    for (int v = 1; v < PS_RETRIEVE_LANES; v++) {
        int expect = 0;
        if (v <= PS_WINDOWS) {
            double r[4];
            ps_window_rect(v - 1, W, H, r);
            assert_true(r[2] - r[0] > W * 0.5 && r[3] - r[1] > H * 0.5);
            for (int i = 0; i < l->f.n; i++)
                expect += l->f.kp[i].x >= r[0] && l->f.kp[i].x < r[2] && l->f.kp[i].y >= r[1] && l->f.kp[i].y < r[3];
            assert_true(expect >= PS_WINDOW_MIN_FEATURES); /* every window ranks on this picture */
        }
        assert_int_equal(l->lane_features[v], expect);
        covered += expect;
    }
    assert_true(covered >= l->f.n); /* the windows overlap and cover the picture */
    free(mirrored);
    ps_local_free(l);
    provscan_image_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment_round_trip), cmocka_unit_test(test_segment_damage),
        cmocka_unit_test(test_csv),                cmocka_unit_test(test_paths_and_sets),
        cmocka_unit_test(test_results_merge),      cmocka_unit_test(test_dark_background),
        cmocka_unit_test(test_query_windows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

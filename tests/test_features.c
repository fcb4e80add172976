/* test_features.c — local features: known-answer geometry (crop, composite, rotation, scale, mirror), unrelated pairs, SIMD == scalar, hostile inputs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpu/kernels.h"
#include "decode/decode.h"
#include "features/features_internal.h"
#include "testutil.h"

/* ---------------------------------------------------------------------------------------------
 * Synthetic pictures: overlapping rectangles, discs, bars and small strokes of random colours at
 * many sizes over a soft gradient, with a little noise (corners at every pyramid level).
 * ------------------------------------------------------------------------------------------- */
static provscan_image *scene(int w, int h, uint64_t seed)
{
    provscan_image *img = ps_image_new(w, h, 3);
    assert_non_null(img);
    uint64_t s = seed * 7919 + 13;
    int g0 = (int)(tu_rand(&s) % 128), g1 = (int)(tu_rand(&s) % 128);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img->pixels[((size_t)y * w + x) * 3 + c] = (uint8_t)(64 + (g0 * x) / w + (g1 * y) / h + 10 * c);
    int nshapes = 60 + (int)(tu_rand(&s) % 40);
    for (int k = 0; k < nshapes; k++) {
        int kind = (int)(tu_rand(&s) % 4);
        int sz = 6 + (int)(tu_rand(&s) % (k < 20 ? 140 : 40));
        int cx = (int)(tu_rand(&s) % (uint64_t)w), cy = (int)(tu_rand(&s) % (uint64_t)h);
        int sw = sz, sh = kind == 2 ? 2 + sz / 8 : 4 + (int)(tu_rand(&s) % (uint64_t)sz);
        uint8_t col[3] = {(uint8_t)tu_rand(&s), (uint8_t)tu_rand(&s), (uint8_t)tu_rand(&s)};
        for (int y = cy - sh; y <= cy + sh; y++)
            for (int x = cx - sw; x <= cx + sw; x++) {
                if (x < 0 || y < 0 || x >= w || y >= h)
                    continue;
                double dx = (double)(x - cx) / sw, dy = (double)(y - cy) / sh;
                if (kind == 1 && dx * dx + dy * dy > 1)
                    continue;
                if (kind == 3 && fabs(dx) + fabs(dy) > 1)
                    continue;
                memcpy(img->pixels + ((size_t)y * w + x) * 3, col, 3);
            }
    }
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        int v = img->pixels[i] + (int)(tu_rand(&s) % 7) - 3;
        img->pixels[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    return img;
}

/* dst(x) = src(H^-1 x), bilinear, outside = grey 128. H maps source pixels to destination pixels. */
static provscan_image *warp(const provscan_image *src, const double *H, int ow, int oh, const provscan_image *bg)
{
    double a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], hh = H[7], i = H[8];
    double det = a * (e * i - f * hh) - b * (d * i - f * g) + c * (d * hh - e * g);
    double Hi[9] = {(e * i - f * hh) / det, (c * hh - b * i) / det, (b * f - c * e) / det,
                    (f * g - d * i) / det,  (a * i - c * g) / det,  (c * d - a * f) / det,
                    (d * hh - e * g) / det, (b * g - a * hh) / det, (a * e - b * d) / det};
    provscan_image *o = ps_image_new(ow, oh, 3);
    assert_non_null(o);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double W = Hi[6] * x + Hi[7] * y + Hi[8];
            double sx = (Hi[0] * x + Hi[1] * y + Hi[2]) / W, sy = (Hi[3] * x + Hi[4] * y + Hi[5]) / W;
            int x0 = (int)floor(sx), y0 = (int)floor(sy);
            uint8_t *p = o->pixels + ((size_t)y * ow + x) * 3;
            if (x0 < 0 || y0 < 0 || x0 + 1 >= src->width || y0 + 1 >= src->height) {
                for (int ch = 0; ch < 3; ch++)
                    p[ch] = bg ? bg->pixels[((size_t)y * bg->width + x) * 3 + ch] : 128;
                continue;
            }
            double fx = sx - x0, fy = sy - y0;
            for (int ch = 0; ch < 3; ch++) {
                const uint8_t *q = src->pixels + ((size_t)y0 * src->width + x0) * 3 + ch;
                size_t st = (size_t)src->width * 3;
                double v = (q[0] * (1 - fx) + q[3] * fx) * (1 - fy) + (q[st] * (1 - fx) + q[st + 3] * fx) * fy;
                p[ch] = (uint8_t)lround(v);
            }
        }
    return o;
}

static void extract(const provscan_image *img, ps_features *f)
{
    assert_int_equal(ps_features_extract(img, NULL, NULL, f), PROVSCAN_OK);
}

/* Max distance between where the found H and the true T (both query -> work) send points of the
 * region (x0,y0)-(x1,y1) of the query. */
static double h_error(const double *H, const double *T, double x0, double y0, double x1, double y1)
{
    double worst = 0;
    for (int k = 0; k < 9; k++) {
        double x = x0 + (x1 - x0) * (k % 3) / 2.0, y = y0 + (y1 - y0) * (k / 3) / 2.0;
        double W = H[6] * x + H[7] * y + H[8], U = T[6] * x + T[7] * y + T[8];
        double ex = (H[0] * x + H[1] * y + H[2]) / W - (T[0] * x + T[1] * y + T[2]) / U;
        double ey = (H[3] * x + H[4] * y + H[5]) / W - (T[3] * x + T[4] * y + T[5]) / U;
        worst = fmax(worst, hypot(ex, ey));
    }
    return worst;
}

/* Each corner of the expected quad is within tol of some corner of the found one. */
static void assert_quad_near(const float *q, const double *want, double tol)
{
    for (int i = 0; i < 4; i++) {
        double best = 1e30;
        for (int j = 0; j < 4; j++)
            best = fmin(best, hypot(q[2 * j] - want[2 * i], q[2 * j + 1] - want[2 * i + 1]));
        if (best > tol)
            fail_msg("region corner (%.1f, %.1f) off by %.1f px (found %.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f)",
                     want[2 * i], want[2 * i + 1], best, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]);
    }
}

/* Query = work transformed by A (work -> query); checks the match finds T = A^-1 over the query
 * region (x0,y0)-(x1,y1) within tol pixels. */
static void check_pair(const provscan_image *work, const provscan_image *query, const double *A, double x0, double y0,
                       double x1, double y1, double tol, int want_mirror, ps_geo_match *keep)
{
    ps_features fw, fq;
    extract(work, &fw);
    extract(query, &fq);
    ps_geo_match m;
    assert_int_equal(ps_features_match(&fq, &fw, &m), PROVSCAN_OK);
    if (m.inliers < PS_MATCH_INLIERS_COPY || m.mirrored != want_mirror)
        fail_msg("only %d inliers of %d matches (mirrored %d)", m.inliers, m.matches, m.mirrored);
    double a = A[0], b = A[1], c = A[2], d = A[3], e = A[4], f = A[5], g = A[6], hh = A[7], i = A[8];
    double det = a * (e * i - f * hh) - b * (d * i - f * g) + c * (d * hh - e * g);
    double T[9] = {(e * i - f * hh) / det, (c * hh - b * i) / det, (b * f - c * e) / det,
                   (f * g - d * i) / det,  (a * i - c * g) / det,  (c * d - a * f) / det,
                   (d * hh - e * g) / det, (b * g - a * hh) / det, (a * e - b * d) / det};
    double err = h_error(m.H, T, x0, y0, x1, y1);
    if (err > tol)
        fail_msg("homography off by %.2f px (%d inliers)", err, m.inliers);
    if (keep)
        *keep = m;
    else
        ps_geo_match_free(&m);
    ps_features_free(&fw);
    ps_features_free(&fq);
}

static void test_crop(void **state)
{
    (void)state;
    provscan_image *work = scene(640, 480, 1);
    /* Keep 30% of the area: (150,100)-(470,380)... 320 x 280 = 29%. */
    double A[9] = {1, 0, -150, 0, 1, -100, 0, 0, 1};
    provscan_image *q = warp(work, A, 320, 280, NULL);
    ps_geo_match m;
    check_pair(work, q, A, 0, 0, 320, 280, 3.0, 0, &m);
    double want_w[8] = {150, 100, 470, 100, 470, 380, 150, 380}, want_q[8] = {0, 0, 320, 0, 320, 280, 0, 280};
    assert_quad_near(m.work_poly, want_w, 6.0);
    assert_quad_near(m.query_poly, want_q, 6.0);
    assert_true(fabs(m.work_coverage - 320.0 * 280 / (640 * 480)) < 0.03);
    assert_true(m.query_coverage > 0.95);
    ps_geo_match_free(&m);
    provscan_image_free(q);
    provscan_image_free(work);
}

static void test_alternative_model(void **state)
{
    (void)state;
    /* A work pasted twice side by side: either copy explains half the matches, so the other is a
     * second model about as strong (what repeated structure looks like); one crop has no such rival. */
    provscan_image *work = scene(400, 300, 81), *bg = scene(900, 400, 82);
    double A[9] = {1, 0, 40, 0, 1, 50, 0, 0, 1}, B[9] = {1, 0, 470, 0, 1, 50, 0, 0, 1};
    provscan_image *once = warp(work, A, 900, 400, bg), *twice = warp(work, B, 900, 400, once);
    ps_features fw, fq;
    extract(work, &fw);
    extract(twice, &fq);
    ps_geo_match m;
    assert_int_equal(ps_features_match(&fq, &fw, &m), PROVSCAN_OK);
    if (m.inliers < PS_MATCH_INLIERS_COPY || m.alt_inliers < m.inliers / 2)
        fail_msg("twice pasted: %d inliers, the other copy %d", m.inliers, m.alt_inliers);
    ps_geo_match_free(&m);
    ps_features_free(&fq);
    extract(once, &fq);
    assert_int_equal(ps_features_match(&fq, &fw, &m), PROVSCAN_OK);
    if (m.inliers < PS_MATCH_INLIERS_COPY || m.alt_inliers > m.inliers / 4)
        fail_msg("pasted once: %d inliers, yet a second model of %d", m.inliers, m.alt_inliers);
    ps_geo_match_free(&m);
    ps_features_free(&fq);
    ps_features_free(&fw);
    provscan_image_free(twice);
    provscan_image_free(once);
    provscan_image_free(bg);
    provscan_image_free(work);
}

static void test_crop_small(void **state)
{
    (void)state;
    provscan_image *work = scene(800, 600, 2);
    /* 20% of the area, enlarged 2x as a crop shown at full size would be. */
    double A[9] = {2, 0, -2 * 300, 0, 2, -2 * 200, 0, 0, 1};
    provscan_image *q = warp(work, A, 2 * 358, 2 * 268, NULL);
    check_pair(work, q, A, 0, 0, 716, 536, 6.0, 0, NULL);
    provscan_image_free(q);
    provscan_image_free(work);
}

static void test_composite(void **state)
{
    (void)state;
    provscan_image *work = scene(640, 480, 3), *bg = scene(900, 700, 4);
    double A[9] = {0.6, 0, 220, 0, 0.6, 160, 0, 0, 1};
    provscan_image *q = warp(work, A, 900, 700, bg);
    ps_geo_match m;
    check_pair(work, q, A, 220, 160, 220 + 384, 160 + 288, 3.0, 0, &m);
    double want_w[8] = {0, 0, 640, 0, 640, 480, 0, 480};
    double want_q[8] = {220, 160, 604, 160, 604, 448, 220, 448};
    assert_quad_near(m.work_poly, want_w, 8.0);
    assert_quad_near(m.query_poly, want_q, 6.0);
    assert_true(m.work_coverage > 0.9);
    ps_geo_match_free(&m);
    provscan_image_free(q);
    provscan_image_free(bg);
    provscan_image_free(work);
}

/* A part of a work (300 x 250 from (100,80)) pasted at (250,200) into another picture; rows from
 * brighten_from down of the pasted part brightened by brighten (a local edit; 0: none). */
static const double paste_A[9] = {1, 0, 150, 0, 1, 120, 0, 0, 1};

static provscan_image *pasted_part(provscan_image **work, provscan_image **bg, int brighten_from, int brighten)
{
    *work = scene(640, 480, 71);
    *bg = scene(800, 600, 72);
    provscan_image *q = warp(*work, paste_A, 800, 600, *bg);
    for (int y = 0; y < 600; y++)
        for (int x = 0; x < 800; x++) {
            uint8_t *px = q->pixels + ((size_t)y * 800 + x) * 3;
            if (x < 250 || x >= 550 || y < 200 || y >= 450)
                memcpy(px, (*bg)->pixels + ((size_t)y * 800 + x) * 3, 3);
            else if (brighten && y >= brighten_from)
                for (int c = 0; c < 3; c++)
                    px[c] = (uint8_t)(px[c] + brighten > 255 ? 255 : px[c] + brighten);
        }
    return q;
}

static void test_partial_paste_region(void **state)
{
    (void)state;
    /* the feature-based region is refined with the pixels to the pasted rectangle */
    provscan_image *work, *bg, *q = pasted_part(&work, &bg, 0, 0);
    ps_geo_match m;
    check_pair(work, q, paste_A, 250, 200, 550, 450, 3.0, 0, &m);
    assert_int_equal(ps_geo_match_refine_region(q, work, &m), PROVSCAN_OK);
    double want_q[8] = {250, 200, 550, 200, 550, 450, 250, 450}, want_w[8] = {100, 80, 400, 80, 400, 330, 100, 330};
    assert_quad_near(m.query_poly, want_q, 8.0);
    assert_quad_near(m.work_poly, want_w, 8.0);
    assert_true(fabs(m.work_coverage - 300.0 * 250 / (640 * 480)) < 0.04);
    ps_geo_match_free(&m);
    provscan_image_free(q);
    provscan_image_free(bg);
    provscan_image_free(work);
}

static void test_refined_region_keeps_inliers(void **state)
{
    (void)state;
    /* The paste above with its lower third brightened by 60: its features still match (they
     * compare intensities with each other), its pixels disagree with the tone fitted on the rest.
     * Its inliers are still part of the copy, so the refined region must hold them all, not the
     * upper two thirds only. */
    const int edit_from = 370;
    provscan_image *work, *bg, *q = pasted_part(&work, &bg, edit_from, 60);
    ps_geo_match m;
    check_pair(work, q, paste_A, 250, 200, 550, 450, 3.0, 0, &m);
    double iy0 = 1e9, iy1 = -1e9;
    for (int i = 0; i < m.npairs; i++) {
        iy0 = fmin(iy0, m.pairs[4 * i + 1]);
        iy1 = fmax(iy1, m.pairs[4 * i + 1]);
    }
    assert_true(iy1 > edit_from + 20);
    assert_int_equal(ps_geo_match_refine_region(q, work, &m), PROVSCAN_OK);
    double y0 = 1e9, y1 = -1e9;
    for (int i = 0; i < 4; i++) {
        y0 = fmin(y0, m.query_poly[2 * i + 1]);
        y1 = fmax(y1, m.query_poly[2 * i + 1]);
    }
    assert_true(y0 <= iy0 + 2 && y1 >= iy1 - 2);
    ps_geo_match_free(&m);
    provscan_image_free(q);
    provscan_image_free(bg);
    provscan_image_free(work);
}

static void rotated(double deg, double scale, int seed, double tol)
{
    provscan_image *work = scene(640, 480, (uint64_t)seed);
    double a = deg * M_PI / 180, c = cos(a) * scale, s = sin(a) * scale;
    /* Rotate about the work's centre into a canvas that holds all of it. */
    double ow = fabs(640 * c) + fabs(480 * s), oh = fabs(640 * s) + fabs(480 * c);
    double A[9] = {c, -s, 0, s, c, 0, 0, 0, 1};
    A[2] = ow / 2 - (c * 320 - s * 240);
    A[5] = oh / 2 - (s * 320 + c * 240);
    provscan_image *q = warp(work, A, (int)ceil(ow), (int)ceil(oh), NULL);
    /* Check over the middle of the query, where the work's content is. */
    check_pair(work, q, A, ow * 0.3, oh * 0.3, ow * 0.7, oh * 0.7, tol, 0, NULL);
    provscan_image_free(q);
    provscan_image_free(work);
}

static void test_rotation(void **state)
{
    (void)state;
    rotated(15, 1.0, 5, 3.0);
    rotated(-30, 1.0, 6, 3.0);
    rotated(90, 1.0, 7, 3.0);
    rotated(180, 1.0, 8, 3.0);
}

static void test_scale(void **state)
{
    (void)state;
    /* The working size normalises a whole-image resize; these also crop nothing, so check the
     * pyramid by pasting scaled copies into a fixed-size frame (composite at 0.5x and 2x). */
    provscan_image *work = scene(640, 480, 9), *bg = scene(1000, 800, 10);
    double A[9] = {0.5, 0, 300, 0, 0.5, 250, 0, 0, 1};
    provscan_image *q = warp(work, A, 1000, 800, bg);
    check_pair(work, q, A, 300, 250, 620, 490, 4.0, 0, NULL);
    provscan_image_free(q);
    double B[9] = {2, 0, -2 * 200, 0, 2, -2 * 150, 0, 0, 1};
    q = warp(work, B, 600, 450, NULL);
    check_pair(work, q, B, 0, 0, 600, 450, 6.0, 0, NULL);
    provscan_image_free(q);
    rotated(20, 0.7, 11, 4.0);
    provscan_image_free(bg);
    provscan_image_free(work);
}

static void test_mirror(void **state)
{
    (void)state;
    provscan_image *work = scene(640, 480, 12);
    double A[9] = {-1, 0, 639, 0, 1, 0, 0, 0, 1};
    provscan_image *q = warp(work, A, 640, 480, NULL);
    check_pair(work, q, A, 50, 50, 590, 430, 3.0, 1, NULL);
    provscan_image_free(q);
    /* A mirrored crop pasted into another picture. */
    provscan_image *bg = scene(800, 600, 13);
    double B[9] = {-0.8, 0, 600, 0, 0.8, 60, 0, 0, 1};
    q = warp(work, B, 800, 600, bg);
    check_pair(work, q, B, 200, 100, 580, 420, 4.0, 1, NULL);
    /* Matching one reading: the mirrored one finds what both find; the plain one, nothing. */
    ps_features fq, fw;
    extract(q, &fq);
    extract(work, &fw);
    ps_match_query *mq;
    assert_int_equal(ps_match_query_prepare(&fq, &mq), PROVSCAN_OK);
    ps_geo_match both, mir, plain;
    assert_int_equal(ps_features_match_prepared(mq, &fw, PS_READ_BOTH, &both), PROVSCAN_OK);
    assert_int_equal(ps_features_match_prepared(mq, &fw, PS_READ_MIRRORED, &mir), PROVSCAN_OK);
    assert_int_equal(ps_features_match_prepared(mq, &fw, PS_READ_PLAIN, &plain), PROVSCAN_OK);
    assert_true(both.inliers >= PS_MATCH_INLIERS_COPY);
    assert_int_equal(mir.inliers, both.inliers);
    assert_int_equal(mir.mirrored, 1);
    assert_memory_equal(mir.H, both.H, sizeof mir.H);
    assert_true(plain.inliers < PS_MATCH_INLIERS_POSSIBLE);
    assert_int_equal(plain.mirrored, 0);
    ps_geo_match_free(&both);
    ps_geo_match_free(&mir);
    ps_geo_match_free(&plain);
    ps_match_query_free(mq);
    ps_features_free(&fq);
    ps_features_free(&fw);
    provscan_image_free(q);
    provscan_image_free(bg);
    provscan_image_free(work);
}

static void test_unrelated(void **state)
{
    (void)state;
    int worst = 0;
    for (int s = 0; s < 6; s++) {
        provscan_image *a = scene(640, 480, 100 + (uint64_t)s), *b = scene(700, 500, 200 + (uint64_t)s);
        ps_features fa, fb;
        extract(a, &fa);
        extract(b, &fb);
        ps_geo_match m;
        assert_int_equal(ps_features_match(&fa, &fb, &m), PROVSCAN_OK);
        if (m.inliers > worst)
            worst = m.inliers;
        ps_geo_match_free(&m);
        ps_features_free(&fa);
        ps_features_free(&fb);
        provscan_image_free(a);
        provscan_image_free(b);
    }
    if (worst >= PS_MATCH_INLIERS_POSSIBLE)
        fail_msg("unrelated pictures verified with %d inliers", worst);
}

static void test_flat_tiny_banner(void **state)
{
    (void)state;
    provscan_image *flat = ps_image_new(300, 200, 1), *tiny = ps_image_new(8, 8, 3);
    memset(flat->pixels, 90, 300 * 200);
    memset(tiny->pixels, 7, 8 * 8 * 3);
    ps_features f;
    extract(flat, &f);
    assert_int_equal(f.n, 0);
    ps_geo_match m;
    assert_int_equal(ps_features_match(&f, &f, &m), PROVSCAN_OK);
    assert_int_equal(m.inliers, 0);
    ps_features_free(&f);
    extract(tiny, &f);
    assert_int_equal(f.n, 0);
    ps_features_free(&f);
    /* A banner keeps enough rows for features, and a crop of it is found. */
    provscan_image *banner = scene(1600, 120, 61);
    extract(banner, &f);
    assert_true(f.n > 200);
    ps_features_free(&f);
    double A[9] = {1, 0, -500, 0, 1, 0, 0, 0, 1};
    provscan_image *q = warp(banner, A, 500, 120, NULL);
    check_pair(banner, q, A, 0, 0, 500, 120, 3.0, 0, NULL);
    provscan_image_free(q);
    provscan_image_free(banner);
    provscan_image_free(flat);
    provscan_image_free(tiny);
}

/* ---------------------------------------------------------------------------------------------
 * SIMD == scalar, determinism.
 * ------------------------------------------------------------------------------------------- */
static const char *const simd_sets[] = {"avx2", "avx512"};

static void test_kernels_equal(void **state)
{
    (void)state;
    const ps_kernels *s = ps_kernels_by_name("scalar");
    uint64_t seed = 42;
    int w = 301, h = 40;
    uint8_t *img = malloc((size_t)w * h);
    for (int set = 0; set < 2; set++) {
        const ps_kernels *k = ps_kernels_by_name(simd_sets[set]);
        if (!k)
            continue;
        for (int trial = 0; trial < 40; trial++) {
            /* Blocky pictures with noise, so corners of both signs and saturating values occur. */
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    int v = ((x / (3 + trial % 5)) * 37 + (y / 4) * 91 + trial * 17) % 256;
                    if (trial % 3 == 0)
                        v = (int)(tu_rand(&seed) % 256);
                    if (trial % 7 == 1)
                        v = v > 128 ? 255 : 0;
                    img[(size_t)y * w + x] = (uint8_t)v;
                }
            int t = 1 + trial * 7 % 60;
            for (int y = 3; y < h - 3; y++) {
                int x0 = 3 + trial % 4, x1 = w - 3 - trial % 9;
                uint16_t sa[400], sb[400], xa[400], xb[400];
                int na = s->fast9_row(img + (size_t)y * w, w, x0, x1, t, sa, xa);
                int nb = k->fast9_row(img + (size_t)y * w, w, x0, x1, t, sb, xb);
                assert_int_equal(na, nb);
                assert_memory_equal(sa, sb, sizeof(uint16_t) * (size_t)(x1 - x0));
                assert_memory_equal(xa, xb, sizeof(uint16_t) * (size_t)na);
            }
        }
        static const size_t nqs[] = {0, 1, 7, 8, 9, 17, 33, 100};
        static const size_t ncs[] = {0, 1, 2, 3, 31, 200};
        for (size_t a = 0; a < sizeof nqs / sizeof nqs[0]; a++)
            for (size_t b = 0; b < sizeof ncs / sizeof ncs[0]; b++) {
                size_t nq = nqs[a], nc = ncs[b];
                uint8_t *q = malloc(32 * nq + 1), *c = malloc(32 * nc + 1);
                for (size_t i = 0; i < 32 * nq; i++)
                    q[i] = (uint8_t)tu_rand(&seed);
                for (size_t i = 0; i < 32 * nc; i++)
                    c[i] = (uint8_t)tu_rand(&seed);
                /* Duplicates make ties, which must resolve to the same (lowest) index. */
                if (nc > 2)
                    memcpy(c + 64, c + 32, 32);
                if (nq > 1 && nc > 2)
                    memcpy(q, c + 32, 32);
                ps_top2 ra[100], rb[100];
                s->hamming256_top2(q, nq, c, nc, ra);
                k->hamming256_top2(q, nq, c, nc, rb);
                assert_memory_equal(ra, rb, sizeof(ps_top2) * nq);
                free(q);
                free(c);
            }
        {
            /* More codes than one 16-bit index chunk: ties across the chunk boundary keep the lower
             * index, and a best code in the second chunk gets its full index. */
            size_t nq = 19, nc = 70000;
            uint8_t *q = malloc(32 * nq), *c = malloc(32 * nc);
            for (size_t i = 0; i < 32 * nq; i++)
                q[i] = (uint8_t)tu_rand(&seed);
            for (size_t i = 0; i < 32 * nc; i++)
                c[i] = (uint8_t)tu_rand(&seed);
            memcpy(q, c + 32 * 65540, 32);
            memcpy(q + 32, c + 32 * 10, 32);
            memcpy(c + 32 * 65535, c + 32 * 10, 32);
            memcpy(q + 64, c + 32 * 69999, 32);
            ps_top2 ra[19], rb[19];
            s->hamming256_top2(q, nq, c, nc, ra);
            k->hamming256_top2(q, nq, c, nc, rb);
            assert_memory_equal(ra, rb, sizeof ra);
            assert_int_equal(ra[0].idx, 65540);
            assert_int_equal(ra[1].idx, 10);
            assert_int_equal(ra[1].d2, 0);
            assert_int_equal(ra[2].idx, 69999);
            free(q);
            free(c);
        }
        /* The verification gate: random models (some projective, some with W <= 0 over part of the
         * image), points near and far from their images, NaN and infinite points among them. */
        int accepted = 0, rejected = 0;
        for (int trial = 0; trial < 200; trial++) {
            int n = trial % 37;
            double col[5][40], h[9];
            for (int j = 0; j < 9; j++)
                h[j] = ((double)(tu_rand(&seed) % 2001) - 1000.0) / 500.0;
            if (trial % 2) {
                h[6] = h[7] = 0;
                h[8] = 1;
            } else {
                h[6] /= 300.0;
                h[7] /= 300.0;
            }
            for (int i = 0; i < n; i++) {
                col[0][i] = (double)(tu_rand(&seed) % 600);
                col[1][i] = (double)(tu_rand(&seed) % 600);
                double W = h[6] * col[0][i] + h[7] * col[1][i] + h[8];
                double X = h[0] * col[0][i] + h[1] * col[1][i] + h[2], Y = h[3] * col[0][i] + h[4] * col[1][i] + h[5];
                int near = tu_rand(&seed) % 2 && W != 0;
                col[2][i] = near ? X / W + (double)(tu_rand(&seed) % 21) - 10 : (double)(tu_rand(&seed) % 600);
                col[3][i] = near ? Y / W + (double)(tu_rand(&seed) % 21) - 10 : (double)(tu_rand(&seed) % 600);
                col[4][i] = 4.0 + (double)(tu_rand(&seed) % 11);
                if (tu_rand(&seed) % 17 == 0)
                    col[tu_rand(&seed) % 5][i] = tu_rand(&seed) % 2 ? NAN : INFINITY;
            }
            ps_point_pairs pp = {col[0], col[1], col[2], col[3], col[4]};
            int own = trial % 3 != 0;
            double scale = own ? 1.0 + (double)(trial % 4) * 0.25 : 12.0 + (double)(trial % 29);
            int oa[40], ob[40];
            int na = s->geo_gate(h, &pp, n, own, scale, oa);
            int nb = k->geo_gate(h, &pp, n, own, scale, ob);
            assert_int_equal(na, nb);
            assert_memory_equal(oa, ob, sizeof(int) * (size_t)na);
            accepted += na;
            rejected += n - na;
        }
        assert_true(accepted > 100 && rejected > 100); /* both outcomes were exercised */
    }
    free(img);
}

static uint8_t *serialized(const ps_features *f, size_t *n)
{
    *n = ps_features_serialized_size(f);
    uint8_t *b = malloc(*n);
    ps_features_serialize(f, b);
    return b;
}

static void test_simd_extract_and_determinism(void **state)
{
    (void)state;
    provscan_image *img = scene(777, 555, 21);
    size_t n0, n1;
    provscan_simd_force("scalar");
    ps_features f;
    extract(img, &f);
    assert_true(f.n > 300);
    uint8_t *ref = serialized(&f, &n0);
    ps_features_free(&f);
    for (int set = 0; set < 2; set++) {
        if (provscan_simd_force(simd_sets[set]) != PROVSCAN_OK)
            continue;
        for (int rep = 0; rep < 2; rep++) {
            extract(img, &f);
            uint8_t *b = serialized(&f, &n1);
            assert_int_equal(n0, n1);
            assert_memory_equal(ref, b, n0);
            free(b);
            ps_features_free(&f);
        }
    }
    provscan_simd_force(ps_kernels_by_name("avx512") ? "avx512" : ps_kernels_by_name("avx2") ? "avx2" : "scalar");
    free(ref);
    provscan_image_free(img);
}

/* Descriptor matching within vocabulary cells equals its definition (features.h) computed here
 * with plain loops, under every kernel set; the prepared and one-shot matches agree. */
static int popcount256(const uint8_t *a, const uint8_t *b)
{
    int d = 0;
    for (int i = 0; i < 32; i++)
        d += __builtin_popcount((unsigned)(a[i] ^ b[i]));
    return d;
}

static void test_match_cells(void **state)
{
    (void)state;
    const ps_vocab *v = ps_vocab_builtin();
    assert_non_null(v);
    const uint8_t *cen = v->centres + 32 * (size_t)v->first[0];
    int nc = v->nchild[0];
    provscan_image *a = scene(640, 480, 3), *b = scene(500, 500, 4);
    ps_features fq, fw;
    extract(a, &fq);
    extract(b, &fw);
    /* Exact duplicates of query descriptors in the work make ties and sure matches. */
    for (int i = 0; i < 20; i++)
        memcpy(fw.desc + 32 * (size_t)(7 * i), fq.desc + 32 * (size_t)(3 * i), 32);
    memcpy(fw.desc + 32 * 200, fw.desc + 32 * 7, 32);
    int n2 = 2 * fq.n;
    uint8_t *qd = malloc(32 * (size_t)n2);
    memcpy(qd, fq.desc, 32 * (size_t)fq.n);
    for (int i = 0; i < fq.n; i++)
        ps_desc_mirror(fq.desc + 32 * (size_t)i, qd + 32 * (size_t)(fq.n + i));
    int *home = malloc(sizeof(int) * (size_t)fw.n);
    for (int j = 0; j < fw.n; j++) {
        home[j] = 0;
        for (int c = 1; c < nc; c++)
            if (popcount256(fw.desc + 32 * (size_t)j, cen + 32 * c) <
                popcount256(fw.desc + 32 * (size_t)j, cen + 32 * home[j]))
                home[j] = c;
    }
    ps_top2 *want = malloc(sizeof(ps_top2) * (size_t)n2), *got = malloc(sizeof(ps_top2) * (size_t)n2);
    int matched = 0, one_cell = 0;
    for (int i = 0; i < n2; i++) {
        const uint8_t *d = qd + 32 * (size_t)i;
        int c1 = 0, c2 = -1;
        for (int c = 1; c < nc; c++) {
            int dc = popcount256(d, cen + 32 * c);
            if (dc < popcount256(d, cen + 32 * c1)) {
                c2 = c1;
                c1 = c;
            } else if (c2 < 0 || dc < popcount256(d, cen + 32 * c2)) {
                c2 = c;
            }
        }
        if (popcount256(d, cen + 32 * c2) - popcount256(d, cen + 32 * c1) > PS_MATCH_SECOND_PROBE_MARGIN)
            c2 = -1; /* the second cell is probed only when nearly as near */
        one_cell += c2 < 0;
        ps_top2 r = {UINT32_MAX, 0xFFFF, 0xFFFF};
        for (int j = 0; j < fw.n; j++) {
            if (home[j] != c1 && home[j] != c2)
                continue;
            uint16_t x = (uint16_t)popcount256(d, fw.desc + 32 * (size_t)j);
            if (x < r.d1) {
                r.d2 = r.d1;
                r.d1 = x;
                r.idx = (uint32_t)j;
            } else if (x < r.d2) {
                r.d2 = x;
            }
        }
        want[i] = r;
        matched += r.d1 == 0;
    }
    assert_true(matched >= 20);
    assert_true(one_cell > 0 && one_cell < n2); /* both kinds of descriptor are exercised */
    static const char *const sets[] = {"scalar", "avx2", "avx512"};
    for (int set = 0; set < 3; set++) {
        if (provscan_simd_force(sets[set]) != PROVSCAN_OK)
            continue;
        ps_match_query *mq;
        assert_int_equal(ps_match_query_prepare(&fq, &mq), PROVSCAN_OK);
        assert_int_equal(ps_match_query_top2(mq, &fw, PS_READ_BOTH, got), PROVSCAN_OK);
        for (int i = 0; i < n2; i++) {
            assert_int_equal(got[i].idx, want[i].idx);
            assert_int_equal(got[i].d1, want[i].d1);
            assert_int_equal(got[i].d2, want[i].d2);
        }
        /* One reading: its half as with both, the other half empty. */
        ps_top2 *one = malloc(sizeof(ps_top2) * (size_t)n2);
        for (int r = PS_READ_PLAIN; r <= PS_READ_MIRRORED; r++) {
            assert_int_equal(ps_match_query_top2(mq, &fw, r, one), PROVSCAN_OK);
            for (int i = 0; i < n2; i++) {
                int in = (r == PS_READ_PLAIN) == (i < fq.n);
                assert_int_equal(one[i].idx, in ? want[i].idx : UINT32_MAX);
                if (in)
                    assert_int_equal(one[i].d1 * 65536u + one[i].d2, want[i].d1 * 65536u + want[i].d2);
            }
        }
        free(one);
        ps_geo_match m1, m2;
        assert_int_equal(ps_features_match_prepared(mq, &fw, 0, &m1), PROVSCAN_E_ARG);
        assert_int_equal(ps_features_match_prepared(mq, &fw, 4, &m1), PROVSCAN_E_ARG);
        assert_int_equal(ps_features_match_prepared(mq, &fw, PS_READ_BOTH, &m1), PROVSCAN_OK);
        assert_int_equal(ps_features_match(&fq, &fw, &m2), PROVSCAN_OK);
        assert_int_equal(m1.inliers, m2.inliers);
        assert_int_equal(m1.matches, m2.matches);
        assert_memory_equal(m1.H, m2.H, sizeof m1.H);
        ps_geo_match_free(&m1);
        ps_geo_match_free(&m2);
        ps_match_query_free(mq);
    }
    provscan_simd_force(ps_kernels_by_name("avx512") ? "avx512" : ps_kernels_by_name("avx2") ? "avx2" : "scalar");
    free(qd);
    free(home);
    free(want);
    free(got);
    ps_features_free(&fq);
    ps_features_free(&fw);
    provscan_image_free(a);
    provscan_image_free(b);
}

/* ---------------------------------------------------------------------------------------------
 * Serialisation and hostile bytes.
 * ------------------------------------------------------------------------------------------- */
static void test_serialize(void **state)
{
    (void)state;
    provscan_image *img = scene(500, 400, 31);
    ps_features f, g;
    extract(img, &f);
    size_t n;
    uint8_t *b = serialized(&f, &n);
    assert_int_equal(n, 32 + (size_t)f.n * 53);
    assert_int_equal(ps_features_deserialize(b, n, &g), PROVSCAN_OK);
    assert_int_equal(g.n, f.n);
    assert_int_equal(g.width, 500);
    assert_memory_equal(g.desc, f.desc, 32 * (size_t)f.n);
    assert_memory_equal(&g.kp[f.n - 1].x, &f.kp[f.n - 1].x, sizeof(float));
    ps_features_free(&g);
    /* Truncations, bit flips, wrong version, absurd counts: an error, never a crash. */
    for (size_t cut = 0; cut < n; cut += 1 + cut / 3)
        assert_int_not_equal(ps_features_deserialize(b, cut, &g), PROVSCAN_OK);
    uint64_t seed = 5;
    for (int k = 0; k < 300; k++) {
        uint8_t *c = malloc(n);
        memcpy(c, b, n);
        c[tu_rand(&seed) % n] ^= (uint8_t)(1 + tu_rand(&seed) % 255);
        provscan_status st = ps_features_deserialize(c, n, &g);
        assert_int_not_equal(st, PROVSCAN_OK);
        free(c);
    }
    uint8_t *c = malloc(n);
    memcpy(c, b, n);
    c[4] = 9;
    assert_int_equal(ps_features_deserialize(c, n, &g), PROVSCAN_E_VERSION);
    memcpy(c, b, n);
    ps_wr32(c + 16, 0xFFFFFFFFu);
    assert_int_equal(ps_features_deserialize(c, n, &g), PROVSCAN_E_CORRUPT);
    /* A keypoint outside the picture with a valid checksum is still refused. */
    memcpy(c, b, n);
    ps_wrf32(c + 32 + 32 * (size_t)f.n, 1e9f);
    ps_wr64(c + 24, ps_fnv1a64(c + 32, n - 32));
    assert_int_equal(ps_features_deserialize(c, n, &g), PROVSCAN_E_CORRUPT);
    memcpy(c, b, n);
    ps_wrf32(c + 32 + 32 * (size_t)f.n + 12, NAN);
    ps_wr64(c + 24, ps_fnv1a64(c + 32, n - 32));
    assert_int_equal(ps_features_deserialize(c, n, &g), PROVSCAN_E_CORRUPT);
    assert_int_not_equal(ps_features_deserialize(NULL, 0, &g), PROVSCAN_OK);
    /* The index's reader (checksum covered by the segment's CRCs) skips only the checksum: a flipped
     * descriptor bit reads, while every structural check above still refuses. */
    memcpy(c, b, n);
    c[32] ^= 1;
    assert_int_equal(ps_features_deserialize(c, n, &g), PROVSCAN_E_CORRUPT);
    assert_int_equal(ps_features_deserialize_covered(c, n, &g), PROVSCAN_OK);
    ps_features_free(&g);
    for (size_t cut = 0; cut < n; cut += 1 + cut / 3)
        assert_int_not_equal(ps_features_deserialize_covered(b, cut, &g), PROVSCAN_OK);
    memcpy(c, b, n);
    ps_wrf32(c + 32 + 32 * (size_t)f.n, 1e9f);
    assert_int_equal(ps_features_deserialize_covered(c, n, &g), PROVSCAN_E_CORRUPT);
    memcpy(c, b, n);
    ps_wr32(c + 16, 0xFFFFFFFFu);
    assert_int_equal(ps_features_deserialize_covered(c, n, &g), PROVSCAN_E_CORRUPT);
    free(c);
    free(b);
    ps_features_free(&f);
    provscan_image_free(img);
}

static void test_model_files(void **state)
{
    (void)state;
    const ps_feature_model *bm = ps_feature_model_builtin();
    assert_non_null(bm);
    uint8_t *blob;
    size_t n;
    assert_int_equal(ps_feature_model_serialize(bm, &blob, &n), PROVSCAN_OK);
    char *path = tu_tmp_path("pattern.bin");
    tu_write_file(path, blob, n);
    ps_feature_model *m;
    provscan_error err;
    assert_int_equal(ps_feature_model_load(path, &m, &err), PROVSCAN_OK);
    assert_memory_equal(ps_feature_model_tests(m), ps_feature_model_tests(bm), 1024);
    ps_feature_model_free(m);
    for (size_t cut = 0; cut < n; cut += 7)
        assert_int_not_equal(ps_feature_model_parse(blob, cut, "cut", &m, &err), PROVSCAN_OK);
    uint8_t *c = malloc(n);
    memcpy(c, blob, n);
    c[0] = 'X';
    assert_int_equal(ps_feature_model_parse(c, n, "magic", &m, &err), PROVSCAN_E_CORRUPT);
    assert_non_null(strstr(err.message, "magic"));
    memcpy(c, blob, n);
    c[8] = 2;
    assert_int_equal(ps_feature_model_parse(c, n, "version", &m, &err), PROVSCAN_E_VERSION);
    memcpy(c, blob, n);
    c[100] ^= 1;
    assert_int_equal(ps_feature_model_parse(c, n, "flip", &m, &err), PROVSCAN_E_CORRUPT);
    assert_non_null(strstr(err.message, "checksum"));
    /* Valid checksum but a point outside the patch, or a broken mirror pairing. */
    memcpy(c, blob, n);
    c[24 + 4] = 100;
    ps_wr64(c + 16, ps_fnv1a64(c + 24, n - 24));
    assert_int_equal(ps_feature_model_parse(c, n, "radius", &m, &err), PROVSCAN_E_CORRUPT);
    memcpy(c, blob, n);
    c[24 + 4 + 4 + 1] = (uint8_t)(c[24 + 4 + 4 + 1] + 1);
    ps_wr64(c + 16, ps_fnv1a64(c + 24, n - 24));
    assert_int_equal(ps_feature_model_parse(c, n, "pairing", &m, &err), PROVSCAN_E_CORRUPT);
    char *missing = tu_tmp_path("missing.bin");
    assert_int_equal(ps_feature_model_load(missing, &m, &err), PROVSCAN_E_IO);
    free(missing);
    free(c);
    free(blob);
    free(path);
}

static void test_vocab(void **state)
{
    (void)state;
    const ps_vocab *v = ps_vocab_builtin();
    assert_non_null(v);
    int nw = ps_vocab_size(v);
    assert_true(nw > 1000);
    provscan_image *img = scene(640, 480, 41);
    ps_features f;
    extract(img, &f);
    int distinct = 0;
    uint8_t *seen = calloc((size_t)nw, 1);
    for (int i = 0; i < f.n; i++) {
        int w = ps_vocab_word(v, f.desc + 32 * i);
        assert_true(w >= 0 && w < nw);
        assert_int_equal(w, ps_vocab_word(v, f.desc + 32 * i));
        distinct += !seen[w];
        seen[w] = 1;
    }
    /* Words must discriminate: a picture's features spread over many of them. */
    assert_true(distinct > f.n / 3);
    free(seen);
    /* Hostile vocabulary bytes: built from the real one, damaged, checksum fixed. */
    const struct ps_vocab *iv = v;
    ps_vocab_tree t = {iv->nnodes, iv->branching, iv->depth, iv->centres, iv->first, iv->nchild};
    uint8_t *blob;
    size_t n;
    assert_int_equal(ps_vocab_serialize(&t, &blob, &n), PROVSCAN_OK);
    ps_vocab *lv;
    provscan_error err;
    assert_int_equal(ps_vocab_parse(blob, n, "copy", &lv, &err), PROVSCAN_OK);
    for (int i = 0; i < f.n; i++)
        assert_int_equal(ps_vocab_word(lv, f.desc + 32 * i), ps_vocab_word(v, f.desc + 32 * i));
    ps_vocab_free(lv);
    size_t links = 24 + 16 + (size_t)iv->nnodes * 32;
    ps_wr32(blob + links, 0); /* the root's first child = itself: a cycle */
    ps_wr64(blob + 16, ps_fnv1a64(blob + 24, n - 24));
    assert_int_equal(ps_vocab_parse(blob, n, "cycle", &lv, &err), PROVSCAN_E_CORRUPT);
    ps_wr32(blob + links, 0xFFFFFF00u);
    ps_wr64(blob + 16, ps_fnv1a64(blob + 24, n - 24));
    assert_int_equal(ps_vocab_parse(blob, n, "range", &lv, &err), PROVSCAN_E_CORRUPT);
    assert_int_not_equal(ps_vocab_parse(blob, 30, "short", &lv, &err), PROVSCAN_OK);
    free(blob);
    ps_features_free(&f);
    provscan_image_free(img);
}

static void test_evidence_png(void **state)
{
    (void)state;
    provscan_image *work = scene(640, 480, 51);
    double A[9] = {1, 0, -100, 0, 1, -50, 0, 0, 1};
    provscan_image *q = warp(work, A, 400, 300, NULL);
    ps_geo_match m;
    check_pair(work, q, A, 0, 0, 400, 300, 3.0, 0, &m);
    char *path = tu_tmp_path("evidence.png");
    provscan_error err;
    assert_int_equal(ps_evidence_write_png(path, q, work, &m, &err), PROVSCAN_OK);
    size_t n;
    uint8_t *b = tu_read_file(path, &n);
    assert_true(n > 1000);
    assert_memory_equal(b, "\x89PNG\r\n\x1a\n", 8);
    free(b);
    assert_int_equal(ps_evidence_write_png("/nonexistent-dir/x.png", q, work, &m, &err), PROVSCAN_E_IO);
    free(path);
    ps_geo_match_free(&m);
    provscan_image_free(q);
    provscan_image_free(work);
}

int main(void)
{
    provscan_init(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_equal),
        cmocka_unit_test(test_simd_extract_and_determinism),
        cmocka_unit_test(test_match_cells),
        cmocka_unit_test(test_serialize),
        cmocka_unit_test(test_model_files),
        cmocka_unit_test(test_vocab),
        cmocka_unit_test(test_flat_tiny_banner),
        cmocka_unit_test(test_crop),
        cmocka_unit_test(test_crop_small),
        cmocka_unit_test(test_alternative_model),
        cmocka_unit_test(test_composite),
        cmocka_unit_test(test_partial_paste_region),
        cmocka_unit_test(test_refined_region_keeps_inliers),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_mirror),
        cmocka_unit_test(test_unrelated),
        cmocka_unit_test(test_evidence_png),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

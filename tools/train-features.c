/* train-features.c — trains the descriptor's sampling pattern and the binary-word vocabulary from images (models/FEATURES.md). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <vips/vips.h>

#include "cpu/kernels.h"
#include "decode/decode.h"
#include "features/features_internal.h"

/* Packages reserved for the independent evaluation: a path naming one is refused outright. */
static const char *const reserved[] = {
    "plasma-workspace-wallpapers", "gnome-backgrounds", "mate-backgrounds", "ukui-wallpapers", "lomiri-wallpapers",
    "xfdesktop4-data", "desktop-base", "python3-skimage", "opencv-doc", "wesnoth-1.16-data", "stellarium-data",
    "supertux-data", "tuxpaint-data", "tuxpaint-stamps-default", "skimage", "wesnoth", "stellarium", "supertux",
    "tuxpaint"};

/* ---------------------------------------------------------------------------------------------
 * Deterministic random numbers (splitmix64).
 * ------------------------------------------------------------------------------------------- */
static uint64_t rng_state = 1;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double urand(void)
{
    return (rnd() >> 11) * (1.0 / 9007199254740992.0);
}
static double nrand(void)
{
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* ---------------------------------------------------------------------------------------------
 * Image list.
 * ------------------------------------------------------------------------------------------- */
typedef struct strvec {
    char **v;
    size_t n, cap;
} strvec;

static void sv_push(strvec *s, const char *p)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            exit(1);
    }
    s->v[s->n++] = strdup(p);
}

static int is_image_name(const char *n)
{
    const char *e = strrchr(n, '.');
    if (!e)
        return 0;
    return !strcasecmp(e, ".jpg") || !strcasecmp(e, ".jpeg") || !strcasecmp(e, ".png") || !strcasecmp(e, ".gif") ||
           !strcasecmp(e, ".webp");
}

static int path_reserved(const char *p)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strstr(p, reserved[i]))
            return 1;
    return 0;
}

static void walk(const char *dir, strvec *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st))
            continue;
        if (S_ISDIR(st.st_mode))
            walk(p, out);
        else if (S_ISREG(st.st_mode) && is_image_name(e->d_name))
            sv_push(out, p);
    }
    closedir(d);
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---------------------------------------------------------------------------------------------
 * Augmentation: a random homography (scale 0.55-1.6, rotation within 30 degrees, perspective up
 * to 8% of the side) and photometric changes (gain, offset, gamma, blur, noise, JPEG).
 * ------------------------------------------------------------------------------------------- */
static void random_homography(int w, int h, double *H)
{
    double s = exp(log(0.55) + urand() * (log(1.6) - log(0.55)));
    double a = (urand() * 2 - 1) * (30 * M_PI / 180);
    if (urand() < 0.1)
        a += (double)(rnd() % 4) * M_PI / 2;
    double cx = w / 2.0, cy = h / 2.0, c = cos(a) * s, sn = sin(a) * s;
    /* Similarity about the centre, then a perspective tilt. */
    double A[9] = {c, -sn, cx - c * cx + sn * cy + (urand() - 0.5) * 0.2 * w,
                   sn, c, cy - sn * cx - c * cy + (urand() - 0.5) * 0.2 * h,
                   0, 0, 1};
    double px = (urand() * 2 - 1) * 0.16 / w, py = (urand() * 2 - 1) * 0.16 / h;
    double P[9] = {1, 0, 0, 0, 1, 0, px, py, 1 - px * cx - py * cy};
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 3; k++)
            H[3 * r + k] = P[3 * r] * A[k] + P[3 * r + 1] * A[3 + k] + P[3 * r + 2] * A[6 + k];
}

/* Warps grey (w x h) by H (source -> destination) into a w x h picture, bilinear; outside -> fill. */
static uint8_t *warp(const uint8_t *g, int w, int h, const double *H, int fill)
{
    double Hi[9];
    uint8_t *o = malloc((size_t)w * h);
    if (!o || !ps_mat3_invert(H, Hi)) {
        free(o);
        return NULL;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double X = Hi[0] * x + Hi[1] * y + Hi[2], Y = Hi[3] * x + Hi[4] * y + Hi[5],
                   W = Hi[6] * x + Hi[7] * y + Hi[8];
            double sx = X / W, sy = Y / W;
            int x0 = (int)floor(sx), y0 = (int)floor(sy);
            if (W <= 0 || x0 < 0 || y0 < 0 || x0 + 1 >= w || y0 + 1 >= h) {
                o[(size_t)y * w + x] = (uint8_t)fill;
                continue;
            }
            double fx = sx - x0, fy = sy - y0;
            const uint8_t *p = g + (size_t)y0 * w + x0;
            double v = (p[0] * (1 - fx) + p[1] * fx) * (1 - fy) + (p[w] * (1 - fx) + p[w + 1] * fx) * fy;
            o[(size_t)y * w + x] = (uint8_t)lround(v);
        }
    return o;
}

static void box_blur(uint8_t *g, int w, int h, int r)
{
    if (r <= 0)
        return;
    uint8_t *t = malloc((size_t)w * h);
    if (!t)
        return;
    for (int pass = 0; pass < 2; pass++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int s = 0, n = 0;
                for (int k = -r; k <= r; k++) {
                    int xx = pass ? x : x + k, yy = pass ? y + k : y;
                    if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                        continue;
                    s += g[(size_t)yy * w + xx];
                    n++;
                }
                t[(size_t)y * w + x] = (uint8_t)((s + n / 2) / n);
            }
        memcpy(g, t, (size_t)w * h);
    }
    free(t);
}

static void jpeg_roundtrip(uint8_t *g, int w, int h, int q)
{
    VipsImage *im = vips_image_new_from_memory(g, (size_t)w * h, w, h, 1, VIPS_FORMAT_UCHAR);
    void *buf = NULL;
    size_t len = 0;
    if (!im)
        return;
    if (vips_jpegsave_buffer(im, &buf, &len, "Q", q, NULL) == 0) {
        provscan_load_options o;
        provscan_load_options_default(&o);
        o.want_grey = 1;
        provscan_image *img = NULL;
        if (provscan_image_load_memory(buf, len, "aug.jpg", &o, &img, NULL, NULL) == PROVSCAN_OK && img &&
            img->width == w && img->height == h && img->channels == 1)
            memcpy(g, img->pixels, (size_t)w * h);
        provscan_image_free(img);
        g_free(buf);
    }
    g_object_unref(im);
}

static uint8_t *augment(const uint8_t *g, int w, int h, double *H)
{
    random_homography(w, h, H);
    uint8_t *o = warp(g, w, h, H, (int)(urand() * 255));
    if (!o)
        return NULL;
    double gain = 0.7 + 0.6 * urand(), off = (urand() * 2 - 1) * 30, gam = exp((urand() * 2 - 1) * 0.35);
    double noise = urand() < 0.5 ? urand() * 6 : 0;
    uint8_t lut[256];
    for (int i = 0; i < 256; i++) {
        double v = 255 * pow(i / 255.0, gam) * gain + off;
        lut[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
    }
    for (size_t i = 0; i < (size_t)w * h; i++) {
        double v = lut[o[i]] + (noise > 0 ? noise * nrand() : 0);
        o[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
    }
    if (urand() < 0.4)
        box_blur(o, w, h, 1 + (int)(urand() * 1.5));
    if (urand() < 0.7)
        jpeg_roundtrip(o, w, h, 30 + (int)(urand() * 60));
    return o;
}

static int load_working(const char *path, uint8_t **g, int *w, int *h)
{
    provscan_load_options o;
    provscan_load_options_default(&o);
    o.want_grey = 1;
    o.min_side = 2 * PS_WORK_SIDE;
    provscan_image *img = NULL;
    provscan_error err;
    if (provscan_image_load(path, &o, &img, NULL, &err) != PROVSCAN_OK)
        return -1;
    float s;
    int r = ps_features_working_grey(img, g, w, h, &s) == PROVSCAN_OK ? 0 : -1;
    provscan_image_free(img);
    if (!r && (*w < 128 || *h < 128)) {
        free(*g);
        return -1;
    }
    return r;
}

/* ---------------------------------------------------------------------------------------------
 * Pattern training.
 * ------------------------------------------------------------------------------------------- */
#define NCAND 16000  /* candidate mirror-pairs of tests */
#define MAXSAMP 120000
#define CORRSAMP 24000

typedef struct cand_test {
    int a, b;     /* point indices of the test; its mirror uses mirror[a], mirror[b] */
    double mean, flip, q;
} cand_test;

static int cmp_q(const void *x, const void *y)
{
    const cand_test *a = x, *b = y;
    if (a->q != b->q)
        return a->q < b->q ? -1 : 1;
    return a->a != b->a ? a->a - b->a : a->b - b->b;
}

static int train_pattern(const char *out, strvec *imgs, int maximg, int augs)
{
    /* Candidate points: the integer points of the radius-13 disc (steering rounds them to within 15). */
    int8_t pts[2 * 800];
    int npts = 0, mirror_of[800];
    for (int y = -13; y <= 13; y++)
        for (int x = -13; x <= 13; x++)
            if (x * x + y * y <= 13 * 13) {
                pts[2 * npts] = (int8_t)x;
                pts[2 * npts + 1] = (int8_t)y;
                npts++;
            }
    for (int i = 0; i < npts; i++)
        for (int j = 0; j < npts; j++)
            if (pts[2 * j] == pts[2 * i] && pts[2 * j + 1] == -pts[2 * i + 1])
                mirror_of[i] = j;
    /* Bootstrap model: positions and orientations do not depend on the tests. */
    int8_t boot[256][4];
    for (int i = 0; i < 256; i += 2) {
        boot[i][0] = 1;
        boot[i][1] = (int8_t)(1 + i % 10);
        boot[i][2] = -2;
        boot[i][3] = 3;
        boot[i + 1][0] = 1;
        boot[i + 1][1] = (int8_t)-(1 + i % 10);
        boot[i + 1][2] = -2;
        boot[i + 1][3] = -3;
    }
    ps_feature_model *bm;
    if (ps_feature_model_from_tests((const int8_t(*)[4])boot, &bm) != PROVSCAN_OK)
        return 1;
    uint8_t *sa = malloc((size_t)MAXSAMP * npts), *sb = malloc((size_t)MAXSAMP * npts);
    if (!sa || !sb)
        return 1;
    size_t ns = 0;
    ps_feature_params prm = {300};
    size_t step = imgs->n > (size_t)maximg ? imgs->n / (size_t)maximg : 1;
    int used = 0;
    for (size_t ii = 0; ii < imgs->n && ns < MAXSAMP; ii += step) {
        uint8_t *g;
        int w, h;
        if (load_working(imgs->v[ii], &g, &w, &h))
            continue;
        used++;
        ps_features fo;
        if (ps_features_extract_grey(g, w, h, 1.0f, bm, &prm, &fo) != PROVSCAN_OK || fo.n < 10) {
            free(g);
            ps_features_free(&fo);
            continue;
        }
        uint8_t *so = malloc((size_t)fo.n * npts);
        ps_features_sample_points(g, w, h, &fo, pts, npts, so);
        for (int a = 0; a < augs && ns < MAXSAMP; a++) {
            double H[9];
            uint8_t *ga = augment(g, w, h, H);
            if (!ga)
                continue;
            ps_features fa;
            if (ps_features_extract_grey(ga, w, h, 1.0f, bm, &prm, &fa) == PROVSCAN_OK && fa.n > 0) {
                uint8_t *sa2 = malloc((size_t)fa.n * npts);
                ps_features_sample_points(ga, w, h, &fa, pts, npts, sa2);
                for (int k = 0; k < fo.n && ns < MAXSAMP; k++) {
                    const ps_keypoint *p = &fo.kp[k];
                    double X = H[0] * p->x + H[1] * p->y + H[2], Y = H[3] * p->x + H[4] * p->y + H[5],
                           W = H[6] * p->x + H[7] * p->y + H[8];
                    if (W <= 0)
                        continue;
                    X /= W;
                    Y /= W;
                    /* Local scale of H at the point: the expected size of the keypoint there. */
                    double J00 = (H[0] - X * H[6]) / W, J01 = (H[1] - X * H[7]) / W, J10 = (H[3] - Y * H[6]) / W,
                           J11 = (H[4] - Y * H[7]) / W;
                    double ls = sqrt(fabs(J00 * J11 - J01 * J10)), want = p->size * ls;
                    int best = -1;
                    double bd = 1e30;
                    for (int j = 0; j < fa.n; j++) {
                        const ps_keypoint *q = &fa.kp[j];
                        double dx = q->x - X, dy = q->y - Y, d2 = dx * dx + dy * dy;
                        double tol = 2.5 * q->size / 31;
                        if (d2 > tol * tol || fabs(log(q->size / want)) > 0.45)
                            continue;
                        if (d2 < bd) {
                            bd = d2;
                            best = j;
                        }
                    }
                    if (best < 0)
                        continue;
                    memcpy(sa + ns * npts, so + (size_t)k * npts, npts);
                    memcpy(sb + ns * npts, sa2 + (size_t)best * npts, npts);
                    ns++;
                }
                free(sa2);
            }
            ps_features_free(&fa);
            free(ga);
        }
        free(so);
        ps_features_free(&fo);
        free(g);
        if (used % 25 == 0)
            fprintf(stderr, "train-features: %d images, %zu keypoint pairs\n", used, ns);
    }
    fprintf(stderr, "train-features: %d images, %zu keypoint pairs in all\n", used, ns);
    if (ns < 1000) {
        fprintf(stderr, "train-features: too few keypoint pairs to learn from\n");
        return 1;
    }
    /* Point-major copies, so each test reads two contiguous rows. */
    uint8_t *ta = malloc(ns * (size_t)npts), *tb = malloc(ns * (size_t)npts);
    if (!ta || !tb)
        return 1;
    for (size_t s = 0; s < ns; s++)
        for (int p = 0; p < npts; p++) {
            ta[(size_t)p * ns + s] = sa[s * npts + p];
            tb[(size_t)p * ns + s] = sb[s * npts + p];
        }
    free(sa);
    free(sb);
    /* Candidate tests, each with its mirror partner. */
    cand_test *ct = malloc(sizeof *ct * NCAND);
    int nc = 0;
    while (nc < NCAND) {
        int a = (int)(rnd() % npts), b = (int)(rnd() % npts);
        int ax = pts[2 * a], ay = pts[2 * a + 1], bx = pts[2 * b], by = pts[2 * b + 1];
        if ((ax - bx) * (ax - bx) + (ay - by) * (ay - by) < 4)
            continue;
        if (ay == 0 && by == 0)
            continue; /* its own mirror */
        if (mirror_of[a] == b)
            continue; /* mirror would be the inverted test */
        ct[nc].a = a;
        ct[nc].b = b;
        nc++;
    }
    for (int c = 0; c < nc; c++) {
        long ones = 0, flips = 0;
        for (int v = 0; v < 2; v++) {
            int a = v ? mirror_of[ct[c].a] : ct[c].a, b = v ? mirror_of[ct[c].b] : ct[c].b;
            const uint8_t *pa = ta + (size_t)a * ns, *pb = ta + (size_t)b * ns, *qa = tb + (size_t)a * ns,
                          *qb = tb + (size_t)b * ns;
            for (size_t s = 0; s < ns; s++) {
                int x = pa[s] < pb[s], y = qa[s] < qb[s];
                ones += x;
                flips += x != y;
            }
        }
        double m = ones / (2.0 * ns), f = flips / (2.0 * ns);
        ct[c].mean = m;
        ct[c].flip = f;
        /* Flip rate relative to that of two independent bits of the same balance: 0 = perfectly
         * robust, 1 = no better than chance. Unbalanced tests carry little information. */
        double chance = 2 * m * (1 - m);
        ct[c].q = chance > 0.4 ? f / chance : 1e9;
    }
    qsort(ct, (size_t)nc, sizeof *ct, cmp_q);
    /* Greedy decorrelation on bit vectors of the first CORRSAMP samples. */
    size_t nsc = ns < CORRSAMP ? ns : CORRSAMP, words = (nsc + 63) / 64;
    uint64_t *sel = calloc(256 * words, sizeof(uint64_t));
    uint64_t *cur = calloc(2 * words, sizeof(uint64_t));
    int chosen[128], nchosen = 0;
    double thr = 0.2;
    uint8_t *taken = calloc((size_t)nc, 1);
    while (nchosen < 128 && thr < 1.0) {
        for (int c = 0; c < nc && nchosen < 128; c++) {
            if (taken[c] || ct[c].q >= 1e9)
                continue;
            memset(cur, 0, 2 * words * sizeof(uint64_t));
            for (int v = 0; v < 2; v++) {
                int a = v ? mirror_of[ct[c].a] : ct[c].a, b = v ? mirror_of[ct[c].b] : ct[c].b;
                for (size_t s = 0; s < nsc; s++)
                    if (ta[(size_t)a * ns + s] < ta[(size_t)b * ns + s])
                        cur[v * words + s / 64] |= 1ull << (s % 64);
            }
            int ok = 1;
            for (int t = 0; t < 2 * nchosen && ok; t++)
                for (int v = 0; v < 2 && ok; v++) {
                    /* Phi coefficient from counts. */
                    long n11 = 0, n1a = 0, n1b = 0;
                    for (size_t k = 0; k < words; k++) {
                        n11 += __builtin_popcountll(sel[t * words + k] & cur[v * words + k]);
                        n1a += __builtin_popcountll(sel[t * words + k]);
                        n1b += __builtin_popcountll(cur[v * words + k]);
                    }
                    double pa = (double)n1a / nsc, pb = (double)n1b / nsc, p11 = (double)n11 / nsc;
                    double den = sqrt(pa * (1 - pa) * pb * (1 - pb));
                    if (den <= 0 || fabs(p11 - pa * pb) / den > thr)
                        ok = 0;
                }
            if (!ok)
                continue;
            taken[c] = 1;
            memcpy(sel + (size_t)(2 * nchosen) * words, cur, 2 * words * sizeof(uint64_t));
            chosen[nchosen++] = c;
        }
        if (nchosen < 128)
            thr += 0.025;
    }
    if (nchosen < 128) {
        fprintf(stderr, "train-features: could not select 128 decorrelated test pairs\n");
        return 1;
    }
    int8_t tests[256][4];
    double mf = 0, mq = 0;
    for (int i = 0; i < 128; i++) {
        const cand_test *c = &ct[chosen[i]];
        for (int v = 0; v < 2; v++) {
            int a = v ? mirror_of[c->a] : c->a, b = v ? mirror_of[c->b] : c->b;
            tests[2 * i + v][0] = pts[2 * a];
            tests[2 * i + v][1] = pts[2 * a + 1];
            tests[2 * i + v][2] = pts[2 * b];
            tests[2 * i + v][3] = pts[2 * b + 1];
        }
        mf += c->flip;
        mq += c->q;
    }
    double rf = 0, rq = 0;
    int nbal = 0;
    for (int c = 0; c < nc; c++)
        if (ct[c].q < 1e9) {
            rf += ct[c].flip;
            rq += ct[c].q;
            nbal++;
        }
    printf("pattern: %d images, %zu keypoint pairs, %d candidate test pairs, correlation threshold %.2f\n", used, ns,
           nc, thr);
    printf("pattern: mean bit flip rate under augmentation: selected %.4f, all %d balanced candidates %.4f\n"
           "pattern: mean q = flip / chance flip (0 = always survives, 1 = no better than chance): selected %.3f, "
           "balanced candidates %.3f\n", mf / 128, nbal, rf / (nbal ? nbal : 1), mq / 128, rq / (nbal ? nbal : 1));
    ps_feature_model *m;
    if (ps_feature_model_from_tests((const int8_t(*)[4])tests, &m) != PROVSCAN_OK)
        return 1;
    uint8_t *blob;
    size_t size;
    if (ps_feature_model_serialize(m, &blob, &size) != PROVSCAN_OK)
        return 1;
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(blob, 1, size, f) != size || fclose(f)) {
        perror(out);
        return 1;
    }
    printf("pattern: wrote %s (%zu bytes)\n", out, size);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Vocabulary: hierarchical k-majority (binary k-means: Hamming assignment, bitwise majority
 * centres, k-means++ seeding), breadth first.
 * ------------------------------------------------------------------------------------------- */
static void majority(const uint8_t *desc, const uint32_t *ids, size_t n, uint8_t *centre)
{
    uint32_t cnt[256] = {0};
    for (size_t i = 0; i < n; i++) {
        const uint8_t *d = desc + 32 * (size_t)ids[i];
        for (int b = 0; b < 256; b++)
            cnt[b] += (d[b >> 3] >> (b & 7)) & 1;
    }
    memset(centre, 0, 32);
    for (int b = 0; b < 256; b++)
        if (2 * cnt[b] > n)
            centre[b >> 3] |= (uint8_t)(1u << (b & 7));
}

static void kmajority(const uint8_t *desc, uint32_t *ids, size_t n, int k, uint8_t *centres, int *assign)
{
    const ps_kernels *K = ps_kernels_get();
    uint16_t *d = malloc(sizeof(uint16_t) * 64);
    uint32_t *mind = malloc(sizeof(uint32_t) * n);
    /* k-means++ seeding. */
    memcpy(centres, desc + 32 * (size_t)ids[rnd() % n], 32);
    for (size_t i = 0; i < n; i++)
        mind[i] = 1000;
    for (int c = 1; c < k; c++) {
        double tot = 0;
        for (size_t i = 0; i < n; i++) {
            K->hamming256(desc + 32 * (size_t)ids[i], centres + 32 * (c - 1), 1, d);
            if (d[0] < mind[i])
                mind[i] = d[0];
            tot += (double)mind[i] * mind[i];
        }
        double r = urand() * tot;
        size_t pick = n - 1;
        for (size_t i = 0; i < n; i++) {
            r -= (double)mind[i] * mind[i];
            if (r <= 0) {
                pick = i;
                break;
            }
        }
        memcpy(centres + 32 * c, desc + 32 * (size_t)ids[pick], 32);
    }
    uint32_t *tmp = malloc(sizeof(uint32_t) * n);
    for (int it = 0; it < 8; it++) {
        int changed = 0;
        for (size_t i = 0; i < n; i++) {
            K->hamming256(desc + 32 * (size_t)ids[i], centres, (size_t)k, d);
            int b = 0;
            for (int c = 1; c < k; c++)
                if (d[c] < d[b])
                    b = c;
            changed += assign[i] != b;
            assign[i] = b;
        }
        if (!changed && it)
            break;
        for (int c = 0; c < k; c++) {
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (assign[i] == c)
                    tmp[m++] = ids[i];
            if (m)
                majority(desc, tmp, m, centres + 32 * c);
        }
    }
    free(tmp);
    free(mind);
    free(d);
}

static int train_vocab(const char *patpath, const char *out, strvec *imgs, int maximg, int augs, int k, int depth)
{
    ps_feature_model *pm;
    provscan_error err;
    if (ps_feature_model_load(patpath, &pm, &err) != PROVSCAN_OK) {
        fprintf(stderr, "train-features: %s\n", err.message);
        return 1;
    }
    size_t cap = 1 << 20, nd = 0;
    uint8_t *desc = malloc(cap * 32);
    size_t step = imgs->n > (size_t)maximg ? imgs->n / (size_t)maximg : 1;
    int used = 0;
    for (size_t ii = 0; ii < imgs->n; ii += step) {
        uint8_t *g;
        int w, h;
        if (load_working(imgs->v[ii], &g, &w, &h))
            continue;
        used++;
        for (int a = 0; a <= augs; a++) {
            double H[9];
            uint8_t *src = a ? augment(g, w, h, H) : g;
            if (!src)
                continue;
            ps_features f;
            if (ps_features_extract_grey(src, w, h, 1.0f, pm, NULL, &f) == PROVSCAN_OK) {
                if (nd + (size_t)f.n > cap) {
                    cap = 2 * (nd + (size_t)f.n);
                    desc = realloc(desc, cap * 32);
                }
                memcpy(desc + 32 * nd, f.desc, 32 * (size_t)f.n);
                nd += (size_t)f.n;
                /* Mirrored copies are looked up too: train on their descriptors as well. */
                if (nd + (size_t)f.n > cap) {
                    cap = 2 * (nd + (size_t)f.n);
                    desc = realloc(desc, cap * 32);
                }
                for (int i = 0; i < f.n; i += 2)
                    ps_desc_mirror(f.desc + 32 * i, desc + 32 * nd++);
            }
            ps_features_free(&f);
            if (a)
                free(src);
        }
        free(g);
    }
    fprintf(stderr, "train-features: %d images, %zu descriptors\n", used, nd);
    uint32_t maxnodes = 1;
    for (int l = 0, p = 1; l < depth; l++) {
        p *= k;
        maxnodes += (uint32_t)p;
    }
    ps_vocab_tree t = {0};
    t.branching = (uint32_t)k;
    t.depth = (uint32_t)depth;
    t.centres = calloc(maxnodes, 32);
    t.first = calloc(maxnodes, sizeof(uint32_t));
    t.nchild = calloc(maxnodes, 1);
    size_t *lo = calloc(maxnodes, sizeof(size_t)), *hi = calloc(maxnodes, sizeof(size_t));
    uint8_t *lev = calloc(maxnodes, 1);
    uint32_t *ids = malloc(sizeof(uint32_t) * nd), *ids2 = malloc(sizeof(uint32_t) * nd);
    int *assign = malloc(sizeof(int) * nd);
    for (size_t i = 0; i < nd; i++)
        ids[i] = (uint32_t)i;
    t.nnodes = 1;
    lo[0] = 0;
    hi[0] = nd;
    /* A node with fewer than 4 descriptors per child stays a leaf: its centres would be noise. */
    for (uint32_t node = 0; node < t.nnodes; node++) {
        size_t n = hi[node] - lo[node];
        if (lev[node] >= depth || n < (size_t)4 * k)
            continue;
        uint32_t *sub = ids + lo[node];
        uint8_t cen[64 * 32];
        for (size_t i = 0; i < n; i++)
            assign[i] = -1;
        kmajority(desc, sub, n, k, cen, assign);
        t.first[node] = t.nnodes;
        t.nchild[node] = (uint8_t)k;
        size_t pos = lo[node];
        for (int c = 0; c < k; c++) {
            uint32_t ch = t.nnodes++;
            memcpy(t.centres + 32 * (size_t)ch, cen + 32 * c, 32);
            lo[ch] = pos;
            for (size_t i = 0; i < n; i++)
                if (assign[i] == c)
                    ids2[pos++] = sub[i];
            hi[ch] = pos;
            lev[ch] = (uint8_t)(lev[node] + 1);
        }
        memcpy(sub, ids2 + lo[node], n * sizeof(uint32_t));
        if (node % 256 == 0)
            fprintf(stderr, "train-features: node %u of %u\n", node, t.nnodes);
    }
    uint8_t *blob;
    size_t size;
    if (ps_vocab_serialize(&t, &blob, &size) != PROVSCAN_OK)
        return 1;
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(blob, 1, size, f) != size || fclose(f)) {
        perror(out);
        return 1;
    }
    uint32_t leaves = 0;
    for (uint32_t i = 0; i < t.nnodes; i++)
        leaves += t.nchild[i] == 0;
    printf("vocab: %d images (+%d augmentations each), %zu descriptors, branching %d, depth %d: %u nodes, %u "
           "words; wrote %s (%zu bytes)\n", used, augs, nd, k, depth, t.nnodes, leaves, out, size);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: train-features pattern OUT.bin [--images N] [--augs A] [--seed S] DIR...\n"
                    "       train-features vocab PATTERN.bin OUT.bin [--images N] [--augs A] [--seed S] "
                    "[--branching K] [--depth D] DIR...\n");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        usage();
        return 2;
    }
    if (provscan_init(NULL) != PROVSCAN_OK)
        return 1;
    int vocab = !strcmp(argv[1], "vocab");
    if (!vocab && strcmp(argv[1], "pattern")) {
        usage();
        return 2;
    }
    int a = 2;
    const char *pat = vocab ? argv[a++] : NULL;
    if (a >= argc) {
        usage();
        return 2;
    }
    const char *out = argv[a++];
    int maximg = 400, augs = 3, k = 16, depth = 4;
    strvec imgs = {0};
    for (; a < argc; a++) {
        if (!strcmp(argv[a], "--images") && a + 1 < argc)
            maximg = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--augs") && a + 1 < argc)
            augs = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--seed") && a + 1 < argc)
            rng_state = strtoull(argv[++a], NULL, 10);
        else if (!strcmp(argv[a], "--branching") && a + 1 < argc)
            k = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--depth") && a + 1 < argc)
            depth = atoi(argv[++a]);
        else {
            if (path_reserved(argv[a])) {
                fprintf(stderr, "train-features: %s belongs to a package reserved for evaluation\n", argv[a]);
                return 2;
            }
            walk(argv[a], &imgs);
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < imgs.n; i++)
        if (!path_reserved(imgs.v[i]))
            imgs.v[kept++] = imgs.v[i];
    imgs.n = kept;
    qsort(imgs.v, imgs.n, sizeof *imgs.v, cmpstr);
    fprintf(stderr, "train-features: %zu images found\n", imgs.n);
    if (!imgs.n)
        return 1;
    if (k < 2 || k > 64 || depth < 1 || depth > 6) {
        usage();
        return 2;
    }
    return vocab ? train_vocab(pat, out, &imgs, maximg, augs, k, depth) : train_pattern(out, &imgs, maximg, augs);
}

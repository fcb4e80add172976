/* querygen.c — makes the benchmark's query images (DISC21/AugLy-style copies and negatives) and their ground truth, deterministically. */

/*
 * usage: querygen --corpus DIR --outsiders DIR --hardneg CSV --out DIR --seed N --per-family N
 *                 [--families a,b,...] [--jobs N] [--list-families]
 *
 * Writes OUT/<query>.jpg|png and OUT/groundtruth.csv:
 *   query,reference,family,params,ref_x0,ref_y0,ref_x1,ref_y1
 * reference is "corpus/<file>" (the corpus folder's name and the file), empty for negatives; the box
 * is the part of the reference visible in the query, in the reference's own pixel coordinates
 * ([x0,x1) x [y0,y1)), empty for negatives.
 *
 * Determinism: query i of family f draws from its own xoshiro256** stream seeded from (seed, f, i),
 * so the output is byte-identical for the same seed and inputs, whatever --jobs and --families are.
 * The file name is a hash of (seed, f, i), so names do not give the family away.
 *
 * Geometry is tracked as a 3x3 matrix H from query pixels to reference pixels; every operation
 * reports the matrix from its output to its input, and the visible box is intersected with the
 * image of the query rectangle after every step (a composite keeps the box of the pasted region).
 */
#define _GNU_SOURCE
#include <vips/vips.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_SIDE 1600 /* queries are capped to this on the longer side */
#define MIN_SIDE 48   /* and never made smaller than this on the shorter side */

/* ------------------------------------------------------------------ random numbers */

typedef struct {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

static void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static double urand(rng_t *r) /* [0,1) */
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static double uniform(rng_t *r, double a, double b)
{
    return a + (b - a) * urand(r);
}

static int randint(rng_t *r, int n) /* [0,n) */
{
    return n <= 1 ? 0 : (int)(urand(r) * n);
}

static int chance(rng_t *r, double p)
{
    return urand(r) < p;
}

static double sign(rng_t *r)
{
    return chance(r, 0.5) ? -1.0 : 1.0;
}

static double gauss(rng_t *r)
{
    double u = urand(r), v = urand(r);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* --------------------------------------------------------------------- 3x3 matrices */

typedef struct {
    double m[9];
} mat3;

static mat3 mat_id(void)
{
    return (mat3){ { 1, 0, 0, 0, 1, 0, 0, 0, 1 } };
}

static mat3 mat_mul(mat3 a, mat3 b)
{
    mat3 c;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            c.m[i * 3 + j] = a.m[i * 3] * b.m[j] + a.m[i * 3 + 1] * b.m[3 + j] + a.m[i * 3 + 2] * b.m[6 + j];
    return c;
}

static mat3 mat_affine(double a, double b, double c, double d, double e, double f)
{
    return (mat3){ { a, b, c, d, e, f, 0, 0, 1 } };
}

static mat3 mat_translate(double x, double y)
{
    return mat_affine(1, 0, x, 0, 1, y);
}

static mat3 mat_scale(double sx, double sy)
{
    return mat_affine(sx, 0, 0, 0, sy, 0);
}

static int mat_apply(mat3 a, double x, double y, double *ox, double *oy)
{
    double w = a.m[6] * x + a.m[7] * y + a.m[8];
    if (fabs(w) < 1e-12)
        return -1;
    *ox = (a.m[0] * x + a.m[1] * y + a.m[2]) / w;
    *oy = (a.m[3] * x + a.m[4] * y + a.m[5]) / w;
    return w > 0 ? 0 : -1;
}

static int mat_inverse(mat3 a, mat3 *inv)
{
    const double *m = a.m;
    double c0 = m[4] * m[8] - m[5] * m[7], c1 = m[5] * m[6] - m[3] * m[8], c2 = m[3] * m[7] - m[4] * m[6];
    double det = m[0] * c0 + m[1] * c1 + m[2] * c2;
    if (fabs(det) < 1e-15)
        return -1;
    double *o = inv->m;
    o[0] = c0 / det;
    o[1] = (m[2] * m[7] - m[1] * m[8]) / det;
    o[2] = (m[1] * m[5] - m[2] * m[4]) / det;
    o[3] = c1 / det;
    o[4] = (m[0] * m[8] - m[2] * m[6]) / det;
    o[5] = (m[2] * m[3] - m[0] * m[5]) / det;
    o[6] = c2 / det;
    o[7] = (m[1] * m[6] - m[0] * m[7]) / det;
    o[8] = (m[0] * m[4] - m[1] * m[3]) / det;
    return 0;
}

/* Homography taking the 4 points src[] to dst[] (x0,y0,...,x3,y3), by Gaussian elimination. */
static int homography(const double *src, const double *dst, mat3 *h)
{
    double A[8][9];
    for (int i = 0; i < 4; i++) {
        double x = src[2 * i], y = src[2 * i + 1], u = dst[2 * i], v = dst[2 * i + 1];
        double r1[9] = { x, y, 1, 0, 0, 0, -u * x, -u * y, u };
        double r2[9] = { 0, 0, 0, x, y, 1, -v * x, -v * y, v };
        memcpy(A[2 * i], r1, sizeof r1);
        memcpy(A[2 * i + 1], r2, sizeof r2);
    }
    for (int c = 0; c < 8; c++) {
        int p = c;
        for (int r = c + 1; r < 8; r++)
            if (fabs(A[r][c]) > fabs(A[p][c]))
                p = r;
        if (fabs(A[p][c]) < 1e-12)
            return -1;
        if (p != c)
            for (int k = 0; k < 9; k++) {
                double t = A[c][k];
                A[c][k] = A[p][k];
                A[p][k] = t;
            }
        for (int r = 0; r < 8; r++) {
            if (r == c)
                continue;
            double f = A[r][c] / A[c][c];
            for (int k = c; k < 9; k++)
                A[r][k] -= f * A[c][k];
        }
    }
    for (int i = 0; i < 8; i++)
        h->m[i] = A[i][8] / A[i][i];
    h->m[8] = 1;
    return 0;
}

/* ----------------------------------------------------------------------- inputs */

typedef struct {
    char **v;
    int n;
} strlist;

static void sl_add(strlist *l, const char *s)
{
    l->v = realloc(l->v, sizeof(char *) * (size_t)(l->n + 1));
    l->v[l->n++] = strdup(s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *n)
{
    const char *d = strrchr(n, '.');
    if (!d || n[0] == '.')
        return 0;
    static const char *ext[] = { ".png", ".jpg", ".jpeg", ".gif", ".webp", ".tif", ".tiff", NULL };
    for (int i = 0; ext[i]; i++)
        if (!strcasecmp(d, ext[i]))
            return 1;
    return 0;
}

static int is_jpeg_name(const char *n)
{
    const char *d = strrchr(n, '.');
    return d && (!strcasecmp(d, ".jpg") || !strcasecmp(d, ".jpeg"));
}

static void list_dir(const char *dir, strlist *out)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "querygen: cannot open %s: %s\n", dir, strerror(errno));
        exit(1);
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_image_name(e->d_name))
            sl_add(out, e->d_name);
    closedir(d);
    qsort(out->v, (size_t)out->n, sizeof(char *), cmp_str);
}

typedef struct {
    strlist path, similar; /* hard negative path (absolute), similar_to (as written) */
} hnlist;

static void read_hardneg(const char *csv, hnlist *h)
{
    FILE *f = fopen(csv, "r");
    if (!f) {
        fprintf(stderr, "querygen: cannot read %s (no hard negatives)\n", csv);
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", csv);
    char *sl = strrchr(dir, '/');
    if (sl)
        *sl = 0;
    else
        strcpy(dir, ".");
    char line[8192];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (first) {
            first = 0;
            if (!strncmp(line, "path,", 5))
                continue;
        }
        char *c = strchr(line, ',');
        if (!c || line[0] == '"') /* paths made by make-data.sh never need quoting */
            continue;
        *c = 0;
        char p[8300];
        if (line[0] == '/')
            snprintf(p, sizeof p, "%s", line);
        else
            snprintf(p, sizeof p, "%s/%s", dir, line);
        sl_add(&h->path, p);
        sl_add(&h->similar, c + 1);
    }
    fclose(f);
}

/* --------------------------------------------------------------------- the query */

typedef struct {
    VipsImage *im;    /* current image: uchar sRGB, 3 bands (1 after a final greyscale) */
    mat3 H;           /* current pixel -> reference pixel */
    double box[4];    /* visible part of the reference */
    double refw, refh;
    rng_t *r;
    char params[1024];
    int jpeg_q;       /* > 0: the query must be saved as JPEG at this quality */
    int in_combo;
} qstate;

typedef struct {
    const char *corpus_dir, *outsider_dir, *corpus_label;
    strlist corpus, outsiders;
    hnlist hard;
} inputs;

static void padd(qstate *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void padd(qstate *s, const char *fmt, ...)
{
    size_t l = strlen(s->params);
    if (l && l < sizeof s->params - 2)
        s->params[l++] = ';';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->params + l, sizeof s->params - l, fmt, ap);
    va_end(ap);
}

/* Replaces the current image; M maps the new image's pixels to the old one's. */
static void set_image(qstate *s, VipsImage *im, mat3 M)
{
    if (s->im)
        g_object_unref(s->im);
    s->im = im;
    s->H = mat_mul(s->H, M);
    double x0 = 1e30, y0 = 1e30, x1 = -1e30, y1 = -1e30;
    double cx[4] = { 0, im->Xsize, im->Xsize, 0 }, cy[4] = { 0, 0, im->Ysize, im->Ysize };
    for (int i = 0; i < 4; i++) {
        double x, y;
        if (mat_apply(s->H, cx[i], cy[i], &x, &y))
            return; /* a corner maps to infinity: the box is not narrowed */
        x0 = fmin(x0, x);
        y0 = fmin(y0, y);
        x1 = fmax(x1, x);
        y1 = fmax(y1, y);
    }
    s->box[0] = fmax(s->box[0], x0);
    s->box[1] = fmax(s->box[1], y0);
    s->box[2] = fmin(s->box[2], x1);
    s->box[3] = fmin(s->box[3], y1);
}

static void set_pixels(qstate *s, VipsImage *im)
{
    set_image(s, im, mat_id());
}

/* Unrefs a NULL-terminated-by-count array of temporaries. */
static void unref_all(VipsImage **t, int n)
{
    for (int i = 0; i < n; i++)
        if (t[i]) {
            g_object_unref(t[i]);
            t[i] = NULL;
        }
}

/* Loads any image as uchar sRGB, 3 bands, alpha flattened on white, in memory. */
static VipsImage *load_rgb(const char *path)
{
    VipsImage *t[6] = { 0 };
    VipsImage *out = NULL;
    if (!(t[0] = vips_image_new_from_file(path, NULL)))
        goto fail;
    if (vips_colourspace(t[0], &t[1], VIPS_INTERPRETATION_sRGB, NULL))
        goto fail;
    if (vips_image_hasalpha(t[1])) {
        if (vips_flatten(t[1], &t[2], "background", vips_array_double_newv(1, 255.0), NULL))
            goto fail;
    } else if (vips_copy(t[1], &t[2], NULL))
        goto fail;
    if (t[2]->Bands > 3) {
        if (vips_extract_band(t[2], &t[3], 0, "n", 3, NULL))
            goto fail;
    } else if (vips_copy(t[2], &t[3], NULL))
        goto fail;
    if (vips_cast_uchar(t[3], &t[4], NULL) ||
        vips_copy(t[4], &t[5], "interpretation", VIPS_INTERPRETATION_sRGB, NULL))
        goto fail;
    out = vips_image_copy_memory(t[5]);
fail:
    unref_all(t, 6);
    return out;
}

static VipsImage *to_rgb(VipsImage *in) /* 1-band grey back to 3 bands; new reference */
{
    if (in->Bands == 3) {
        g_object_ref(in);
        return in;
    }
    VipsImage *a = NULL, *o = NULL;
    VipsImage *b[3] = { in, in, in };
    if (vips_bandjoin(b, &a, 3, NULL))
        return NULL;
    if (vips_copy(a, &o, "interpretation", VIPS_INTERPRETATION_sRGB, NULL))
        o = NULL;
    g_object_unref(a);
    return o;
}

/* Finishes a chain of lazy operations: cast to uchar, tag sRGB, render to memory. */
static VipsImage *finish(VipsImage *in, int unref_in)
{
    VipsImage *a = NULL, *b = NULL, *o = NULL;
    if (!vips_cast_uchar(in, &a, NULL) &&
        !vips_copy(a, &b, "interpretation", in->Bands == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB,
                   NULL))
        o = vips_image_copy_memory(b);
    if (a)
        g_object_unref(a);
    if (b)
        g_object_unref(b);
    if (unref_in)
        g_object_unref(in);
    return o;
}

static int ensure_rgb(qstate *s)
{
    if (s->im->Bands == 3)
        return 0;
    VipsImage *o = to_rgb(s->im);
    if (!o)
        return -1;
    VipsImage *m = finish(o, 1);
    if (!m)
        return -1;
    set_pixels(s, m);
    return 0;
}

/* Resizes by sx, sy (lanczos3) and records the geometry. */
static int resize_xy(qstate *s, double sx, double sy)
{
    VipsImage *o = NULL;
    if (vips_resize(s->im, &o, sx, "vscale", sy, NULL))
        return -1;
    double rx = (double)o->Xsize / s->im->Xsize, ry = (double)o->Ysize / s->im->Ysize;
    VipsImage *m = finish(o, 1);
    if (!m)
        return -1;
    set_image(s, m, mat_scale(1 / rx, 1 / ry));
    return 0;
}

static int crop(qstate *s, int x, int y, int w, int h)
{
    VipsImage *o = NULL;
    if (vips_extract_area(s->im, &o, x, y, w, h, NULL))
        return -1;
    VipsImage *m = vips_image_copy_memory(o);
    g_object_unref(o);
    if (!m)
        return -1;
    set_image(s, m, mat_translate(x, y));
    return 0;
}

/* Warps through M (output pixel -> input pixel) onto an out_w x out_h canvas filled with bg. */
static int warp(qstate *s, mat3 M, int out_w, int out_h, const double *bg)
{
    size_t n = (size_t)out_w * out_h * 2;
    float *idx = malloc(n * sizeof(float));
    if (!idx)
        return -1;
    for (int y = 0; y < out_h; y++)
        for (int x = 0; x < out_w; x++) {
            double px, py;
            if (mat_apply(M, x + 0.5, y + 0.5, &px, &py))
                px = py = -1e6;
            idx[((size_t)y * out_w + x) * 2] = (float)(px - 0.5);
            idx[((size_t)y * out_w + x) * 2 + 1] = (float)(py - 0.5);
        }
    VipsImage *index = vips_image_new_from_memory_copy(idx, n * sizeof(float), out_w, out_h, 2, VIPS_FORMAT_FLOAT);
    free(idx);
    if (!index)
        return -1;
    VipsImage *o = NULL;
    VipsInterpolate *bil = vips_interpolate_new("bilinear");
    int bands = s->im->Bands;
    int rc = vips_mapim(s->im, &o, index, "interpolate", bil, "background", vips_array_double_new(bg, bands),
                        "extend", VIPS_EXTEND_BACKGROUND, NULL);
    g_object_unref(bil);
    g_object_unref(index);
    if (rc)
        return -1;
    VipsImage *m = finish(o, 1);
    if (!m)
        return -1;
    set_image(s, m, M);
    return 0;
}

/* Pastes an RGBA overlay at (x, y) over the current image. */
static int paste_rgba(qstate *s, VipsImage *rgba, int x, int y)
{
    VipsImage *t[3] = { 0 };
    int rc = -1;
    VipsImage *base = NULL;
    if (vips_copy(s->im, &base, "interpretation", VIPS_INTERPRETATION_sRGB, NULL))
        return -1;
    if (!vips_copy(rgba, &t[0], "interpretation", VIPS_INTERPRETATION_sRGB, NULL) &&
        !vips_composite2(base, t[0], &t[1], VIPS_BLEND_MODE_OVER, "x", x, "y", y, NULL) &&
        !vips_extract_band(t[1], &t[2], 0, "n", 3, NULL)) {
        VipsImage *m = finish(t[2], 0);
        if (m) {
            set_pixels(s, m);
            rc = 0;
        }
    }
    g_object_unref(base);
    unref_all(t, 3);
    return rc;
}

/* A solid colour image of the same bands as the current one. */
static VipsImage *solid(int w, int h, const double *rgb, int bands)
{
    VipsImage *b = NULL, *o = NULL;
    if (vips_black(&b, w, h, "bands", bands, NULL))
        return NULL;
    double one[4] = { 1, 1, 1, 1 };
    int rc = vips_linear(b, &o, one, (double *)rgb, bands, NULL);
    g_object_unref(b);
    if (rc)
        return NULL;
    return finish(o, 1);
}

static void random_colour(rng_t *r, double *c)
{
    int kind = randint(r, 4);
    if (kind == 0)
        c[0] = c[1] = c[2] = 0;
    else if (kind == 1)
        c[0] = c[1] = c[2] = 255;
    else
        for (int i = 0; i < 3; i++)
            c[i] = floor(uniform(r, 0, 256));
}

/* Renders text into a mask that fits w x h (autofit); returns a 1-band uchar image or NULL. */
static VipsImage *text_mask(const char *text, const char *font, int w, int h)
{
    VipsImage *t = NULL;
    if (w < 8 || h < 8)
        return NULL;
    if (vips_text(&t, text, "font", font, "width", w, "height", h, "align", VIPS_ALIGN_CENTRE, "wrap",
                  VIPS_TEXT_WRAP_WORD, NULL))
        return NULL;
    return t;
}

/* RGBA image of a colour with the given mask as alpha (alpha scaled by opacity). */
static VipsImage *colour_with_mask(VipsImage *mask, const double *rgb, double opacity)
{
    VipsImage *c = solid(mask->Xsize, mask->Ysize, rgb, 3);
    VipsImage *a = NULL, *a8 = NULL, *o = NULL;
    if (!c)
        return NULL;
    if (vips_linear1(mask, &a, opacity, 0, NULL) || vips_cast_uchar(a, &a8, NULL) ||
        vips_bandjoin2(c, a8, &o, NULL))
        o = NULL;
    g_object_unref(c);
    if (a)
        g_object_unref(a);
    if (a8)
        g_object_unref(a8);
    if (!o)
        return NULL;
    VipsImage *m = vips_image_copy_memory(o);
    g_object_unref(o);
    return m;
}

static const char *captions[] = {
    "when the code finally compiles", "me at 3 am", "nature is healing", "this is fine", "monday mood",
    "found this today", "look what I made", "#art #inspiration #daily", "best day ever", "guess where I am",
    "AI generated? you decide", "wait for it...", "POV: you found the original", "my new wallpaper",
    "nobody: absolutely nobody:", "tag someone who needs this", "expectation vs reality", "so true",
    "throwback to last summer", "can't unsee it",
};
static const char *stickers[] = {
    "SALE", "NEW!", "@artlover", "(c) 2024", "LIVE", "HOT", "#1", "PROMO", "FREE", "WOW", "OMG", "LOL", "50% OFF",
};
static const char *fonts[] = { "DejaVu Sans Bold", "DejaVu Serif Bold", "DejaVu Sans", "DejaVu Sans Mono Bold" };

/* ----------------------------------------------------------------- the operations */

typedef int (*op_fn)(qstate *s, const inputs *in);

static int op_resize_down(qstate *s, const inputs *in)
{
    (void)in;
    double f = uniform(s->r, 0.15, 0.60);
    double lo = fmin(s->im->Xsize, s->im->Ysize);
    if (f * lo < MIN_SIDE)
        f = fmin(1.0, MIN_SIDE / lo);
    padd(s, "scale=%.2f", f);
    return resize_xy(s, f, f);
}

static int jpeg_roundtrip(qstate *s, int q)
{
    void *buf = NULL;
    size_t len = 0;
    VipsImage *o = NULL;
    if (vips_jpegsave_buffer(s->im, &buf, &len, "Q", q, "strip", TRUE, NULL))
        return -1;
    int rc = vips_jpegload_buffer(buf, len, &o, NULL);
    VipsImage *m = rc ? NULL : vips_image_copy_memory(o);
    if (o)
        g_object_unref(o);
    g_free(buf);
    if (!m)
        return -1;
    set_pixels(s, m);
    return 0;
}

static int op_jpeg_low(qstate *s, const inputs *in)
{
    (void)in;
    int q = (int)floor(uniform(s->r, 5, 26));
    padd(s, "q=%d", q);
    if (!s->in_combo) {
        s->jpeg_q = q; /* saved once, at this quality */
        return 0;
    }
    return jpeg_roundtrip(s, q);
}

static int op_color_shift(qstate *s, const inputs *in)
{
    (void)in;
    if (ensure_rgb(s))
        return -1;
    double hue = 0, sat = 1, bright = 0, contrast = 1, gamma = 1;
    int n = 0;
    while (n < 2) {
        n = 0;
        if (chance(s->r, 0.6))
            hue = sign(s->r) * uniform(s->r, 20, 90), n++;
        if (chance(s->r, 0.5))
            sat = chance(s->r, 0.5) ? uniform(s->r, 0.2, 0.6) : uniform(s->r, 1.4, 2.0), n++;
        if (chance(s->r, 0.5))
            bright = sign(s->r) * uniform(s->r, 20, 50), n++;
        if (chance(s->r, 0.5))
            contrast = chance(s->r, 0.5) ? uniform(s->r, 0.55, 0.8) : uniform(s->r, 1.25, 1.6), n++;
        if (chance(s->r, 0.4))
            gamma = chance(s->r, 0.5) ? uniform(s->r, 0.5, 0.75) : uniform(s->r, 1.35, 1.9), n++;
    }
    VipsImage *t[6] = { 0 };
    VipsImage *cur = s->im;
    int rc = -1;
    if (hue != 0 || sat != 1) {
        double a[3] = { 1, sat, 1 }, b[3] = { 0, 0, hue };
        if (vips_colourspace(cur, &t[0], VIPS_INTERPRETATION_LCH, NULL) || vips_linear(t[0], &t[1], a, b, 3, NULL) ||
            vips_colourspace(t[1], &t[2], VIPS_INTERPRETATION_sRGB, NULL))
            goto done;
        cur = t[2];
        if (hue != 0)
            padd(s, "hue=%+.0f", hue);
        if (sat != 1)
            padd(s, "sat=%.2f", sat);
    }
    {
        /* contrast about mid-grey, then brightness, then gamma */
        double a = contrast, b = 128 * (1 - contrast) + bright;
        if (vips_linear1(cur, &t[3], a, b, NULL))
            goto done;
        if (contrast != 1)
            padd(s, "contrast=%.2f", contrast);
        if (bright != 0)
            padd(s, "brightness=%+.0f", bright);
        if (vips_linear1(t[3], &t[4], 1.0 / 255, 0, NULL) || vips_math2_const1(t[4], &t[5], VIPS_OPERATION_MATH2_POW,
                                                                              gamma, NULL))
            goto done;
        if (gamma != 1)
            padd(s, "gamma=%.2f", gamma);
        VipsImage *g = NULL;
        if (vips_linear1(t[5], &g, 255, 0, NULL))
            goto done;
        VipsImage *m = finish(g, 1);
        if (!m)
            goto done;
        set_pixels(s, m);
        rc = 0;
    }
done:
    unref_all(t, 6);
    return rc;
}

static int op_blur(qstate *s, const inputs *in)
{
    (void)in;
    double sigma = uniform(s->r, 1.5, 5.0);
    padd(s, "sigma=%.1f", sigma);
    VipsImage *o = NULL;
    if (vips_gaussblur(s->im, &o, sigma, NULL))
        return -1;
    VipsImage *m = finish(o, 1);
    if (!m)
        return -1;
    set_pixels(s, m);
    return 0;
}

static int op_noise(qstate *s, const inputs *in)
{
    (void)in;
    size_t len;
    unsigned char *px = vips_image_write_to_memory(s->im, &len);
    if (!px)
        return -1;
    int w = s->im->Xsize, h = s->im->Ysize, b = s->im->Bands;
    if (chance(s->r, 0.6)) {
        double sd = uniform(s->r, 8, 25);
        int mono = chance(s->r, 0.3);
        padd(s, "gaussian_sd=%.0f%s", sd, mono ? ";mono" : "");
        for (size_t i = 0; i < (size_t)w * h; i++) {
            double g0 = gauss(s->r) * sd;
            for (int k = 0; k < b; k++) {
                double g = mono ? g0 : (k ? gauss(s->r) * sd : g0);
                double v = px[i * b + k] + g;
                px[i * b + k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : lrint(v));
            }
        }
    } else {
        double d = uniform(s->r, 0.01, 0.06);
        padd(s, "salt_pepper=%.3f", d);
        for (size_t i = 0; i < (size_t)w * h; i++)
            if (urand(s->r) < d) {
                unsigned char v = chance(s->r, 0.5) ? 255 : 0;
                for (int k = 0; k < b; k++)
                    px[i * b + k] = v;
            }
    }
    VipsImage *o = vips_image_new_from_memory_copy(px, len, w, h, b, VIPS_FORMAT_UCHAR);
    g_free(px);
    if (!o)
        return -1;
    VipsImage *m = finish(o, 1);
    if (!m)
        return -1;
    set_pixels(s, m);
    return 0;
}

static int op_greyscale(qstate *s, const inputs *in)
{
    (void)in;
    padd(s, "grey");
    if (s->im->Bands == 1)
        return 0;
    VipsImage *o = NULL;
    if (vips_colourspace(s->im, &o, VIPS_INTERPRETATION_B_W, NULL))
        return -1;
    VipsImage *m = finish(o, 1);
    if (!m)
        return -1;
    set_pixels(s, m);
    return 0;
}

static int op_mirror(qstate *s, const inputs *in)
{
    (void)in;
    padd(s, "flip=lr");
    VipsImage *o = NULL;
    int w = s->im->Xsize;
    if (vips_flip(s->im, &o, VIPS_DIRECTION_HORIZONTAL, NULL))
        return -1;
    VipsImage *m = vips_image_copy_memory(o);
    g_object_unref(o);
    if (!m)
        return -1;
    set_image(s, m, mat_affine(-1, 0, w, 0, 1, 0));
    return 0;
}

static int op_rotate90(qstate *s, const inputs *in)
{
    (void)in;
    int k = 1 + randint(s->r, 3);
    int w = s->im->Xsize, h = s->im->Ysize;
    VipsAngle a = k == 1 ? VIPS_ANGLE_D90 : k == 2 ? VIPS_ANGLE_D180 : VIPS_ANGLE_D270;
    padd(s, "angle=%d", 90 * k);
    VipsImage *o = NULL;
    if (vips_rot(s->im, &o, a, NULL))
        return -1;
    VipsImage *m = vips_image_copy_memory(o);
    g_object_unref(o);
    if (!m)
        return -1;
    mat3 M; /* vips turns clockwise: D90 sends (x, y) to (h - y, x) */
    if (k == 1)
        M = mat_affine(0, 1, 0, -1, 0, h);
    else if (k == 2)
        M = mat_affine(-1, 0, w, 0, -1, h);
    else
        M = mat_affine(0, -1, w, 1, 0, 0);
    set_image(s, m, M);
    return 0;
}

static int op_small_rotate(qstate *s, const inputs *in)
{
    (void)in;
    double deg = sign(s->r) * uniform(s->r, 3, 20), a = deg * M_PI / 180;
    double w = s->im->Xsize, h = s->im->Ysize, c = cos(a), sn = sin(a);
    int crop_mode = chance(s->r, 0.4);
    double ow, oh;
    if (crop_mode) {
        /* the largest same-aspect rectangle inside the rotated picture */
        double f = fmin(w / (w * fabs(c) + h * fabs(sn)), h / (w * fabs(sn) + h * fabs(c)));
        ow = floor(w * f);
        oh = floor(h * f);
    } else {
        ow = ceil(w * fabs(c) + h * fabs(sn));
        oh = ceil(w * fabs(sn) + h * fabs(c));
    }
    double bg[3];
    random_colour(s->r, bg);
    padd(s, "angle=%+.1f;%s", deg, crop_mode ? "corners=cropped" : "corners=filled");
    if (!crop_mode)
        padd(s, "fill=%.0f,%.0f,%.0f", bg[0], bg[1], bg[2]);
    /* output pixel -> input: translate to the output centre, rotate back, translate to the input centre */
    mat3 M = mat_mul(mat_translate(w / 2, h / 2), mat_mul(mat_affine(c, sn, 0, -sn, c, 0), mat_translate(-ow / 2, -oh / 2)));
    return warp(s, M, (int)ow, (int)oh, bg);
}

static void crop_rect(qstate *s, double lo, double hi, int *x, int *y, int *cw, int *ch, double *area)
{
    double w = s->im->Xsize, h = s->im->Ysize;
    double a = uniform(s->r, lo, hi);
    double fw = sqrt(a) * uniform(s->r, 0.8, 1.25);
    fw = fmin(1.0, fmax(a, fw));
    double fh = fmin(1.0, a / fw);
    *cw = (int)fmax(fmin(w, MIN_SIDE), round(w * fw));
    *ch = (int)fmax(fmin(h, MIN_SIDE), round(h * fh));
    *x = randint(s->r, (int)w - *cw + 1);
    *y = randint(s->r, (int)h - *ch + 1);
    *area = (double)*cw * *ch / (w * h);
}

static int op_mild_crop(qstate *s, const inputs *in)
{
    (void)in;
    int x, y, w, h;
    double area;
    crop_rect(s, 0.5, 0.8, &x, &y, &w, &h, &area);
    padd(s, "area=%.2f", area);
    return crop(s, x, y, w, h);
}

static int op_heavy_crop(qstate *s, const inputs *in)
{
    (void)in;
    int x, y, w, h;
    double area;
    crop_rect(s, 0.2, 0.4, &x, &y, &w, &h, &area);
    padd(s, "area=%.2f", area);
    return crop(s, x, y, w, h);
}

static int op_aspect_change(qstate *s, const inputs *in)
{
    (void)in;
    double f = chance(s->r, 0.5) ? uniform(s->r, 0.6, 0.85) : uniform(s->r, 1.15, 1.6);
    int horiz = chance(s->r, 0.5);
    padd(s, "%s=%.2f", horiz ? "stretch_x" : "stretch_y", f);
    return horiz ? resize_xy(s, f, 1) : resize_xy(s, 1, f);
}

static int op_padding(qstate *s, const inputs *in)
{
    (void)in;
    int w = s->im->Xsize, h = s->im->Ysize;
    double p = uniform(s->r, 0.10, 0.40);
    /* p is the added fraction of each dimension, split unevenly between the two sides */
    int addw = (int)round(w * p * uniform(s->r, 0.5, 1.0)), addh = (int)round(h * p * uniform(s->r, 0.5, 1.0));
    if (chance(s->r, 0.3))
        addw = 0; /* letterbox */
    else if (chance(s->r, 0.3))
        addh = 0; /* pillarbox */
    int x = (int)round(addw * uniform(s->r, 0.2, 0.8)), y = (int)round(addh * uniform(s->r, 0.2, 0.8));
    int nw = w + addw, nh = h + addh;
    VipsImage *canvas = NULL;
    if (chance(s->r, 0.35)) {
        /* blurred fill, as social networks do for off-aspect pictures */
        VipsImage *a = NULL, *b = NULL;
        double sc = fmax((double)nw / w, (double)nh / h) * 1.02;
        if (vips_resize(s->im, &a, sc, NULL))
            return -1;
        int ox = (a->Xsize - nw) / 2, oy = (a->Ysize - nh) / 2;
        if (vips_extract_area(a, &b, ox > 0 ? ox : 0, oy > 0 ? oy : 0, nw < a->Xsize ? nw : a->Xsize,
                              nh < a->Ysize ? nh : a->Ysize, NULL)) {
            g_object_unref(a);
            return -1;
        }
        g_object_unref(a);
        double sigma = fmax(8, 0.03 * fmax(nw, nh));
        if (vips_gaussblur(b, &a, sigma, NULL)) {
            g_object_unref(b);
            return -1;
        }
        g_object_unref(b);
        if (vips_linear1(a, &b, 0.8, 0, NULL)) { /* darken a little */
            g_object_unref(a);
            return -1;
        }
        g_object_unref(a);
        canvas = finish(b, 1);
        padd(s, "pad=%.2f;fill=blurred", p);
    } else {
        double c[3];
        random_colour(s->r, c);
        canvas = solid(nw, nh, c, s->im->Bands);
        padd(s, "pad=%.2f;fill=%.0f,%.0f,%.0f", p, c[0], c[1], c[2]);
    }
    if (!canvas)
        return -1;
    VipsImage *o = NULL;
    int rc = vips_insert(canvas, s->im, &o, x, y, NULL);
    g_object_unref(canvas);
    if (rc)
        return -1;
    VipsImage *m = finish(o, 1);
    if (!m)
        return -1;
    set_image(s, m, mat_translate(-x, -y));
    return 0;
}

static int op_caption(qstate *s, const inputs *in)
{
    (void)in;
    if (ensure_rgb(s))
        return -1;
    int w = s->im->Xsize, h = s->im->Ysize;
    const char *text = captions[randint(s->r, (int)(sizeof captions / sizeof *captions))];
    const char *font = fonts[randint(s->r, 2)];
    if (chance(s->r, 0.7)) {
        /* a band above or below, like a meme template */
        int top = chance(s->r, 0.6);
        int band = (int)round(h * uniform(s->r, 0.12, 0.30));
        if (band < 24)
            band = 24;
        int dark = chance(s->r, 0.3);
        double bgc[3] = { dark ? 0 : 255, dark ? 0 : 255, dark ? 0 : 255 }, fg[3] = { 255 - bgc[0], 255 - bgc[0], 255 - bgc[0] };
        padd(s, "band=%s;height=%.2f;text=%s", top ? "top" : "bottom", (double)band / h, text);
        VipsImage *canvas = solid(w, h + band, bgc, 3);
        if (!canvas)
            return -1;
        VipsImage *o = NULL;
        int iy = top ? band : 0;
        if (vips_insert(canvas, s->im, &o, 0, iy, NULL)) {
            g_object_unref(canvas);
            return -1;
        }
        g_object_unref(canvas);
        VipsImage *m = finish(o, 1);
        if (!m)
            return -1;
        set_image(s, m, mat_translate(0, -iy));
        VipsImage *mask = text_mask(text, font, (int)(w * 0.9), (int)(band * 0.7));
        if (!mask)
            return 0; /* a blank band is still a caption band */
        VipsImage *rgba = colour_with_mask(mask, fg, 1.0);
        int tx = (w - mask->Xsize) / 2, ty = (top ? 0 : h) + (band - mask->Ysize) / 2;
        g_object_unref(mask);
        if (!rgba)
            return -1;
        int rc = paste_rgba(s, rgba, tx, ty);
        g_object_unref(rgba);
        return rc;
    }
    /* white text with a dark outline over the picture, top or bottom */
    int top = chance(s->r, 0.5);
    int bh = (int)round(h * uniform(s->r, 0.12, 0.22));
    padd(s, "overlaid=%s;height=%.2f;text=%s", top ? "top" : "bottom", (double)bh / h, text);
    VipsImage *mask = text_mask(text, "DejaVu Sans Bold", (int)(w * 0.92), bh);
    if (!mask)
        return 0;
    VipsImage *fat = NULL;
    int r = mask->Ysize > 60 ? 5 : 3;
    VipsImage *padded = NULL;
    if (vips_embed(mask, &padded, r, r, mask->Xsize + 2 * r, mask->Ysize + 2 * r, NULL) ||
        vips_rank(padded, &fat, 2 * r + 1, 2 * r + 1, (2 * r + 1) * (2 * r + 1) - 1, NULL)) {
        g_object_unref(mask);
        if (padded)
            g_object_unref(padded);
        return -1;
    }
    double black[3] = { 0, 0, 0 }, white[3] = { 255, 255, 255 };
    VipsImage *o1 = colour_with_mask(fat, black, 1.0), *o2 = colour_with_mask(padded, white, 1.0);
    g_object_unref(fat);
    g_object_unref(padded);
    int tx = (w - mask->Xsize) / 2 - r, ty = top ? (int)(h * 0.03) : h - mask->Ysize - (int)(h * 0.03) - 2 * r;
    g_object_unref(mask);
    int rc = -1;
    if (o1 && o2 && !paste_rgba(s, o1, tx, ty) && !paste_rgba(s, o2, tx, ty))
        rc = 0;
    if (o1)
        g_object_unref(o1);
    if (o2)
        g_object_unref(o2);
    return rc;
}

/* RGBA sticker drawn in C: a smiley, a badge with a word, a ring logo or a star. */
static VipsImage *make_sticker(rng_t *r, int size, char *desc, size_t desclen)
{
    int kind = randint(r, 4);
    int w = size, h = size;
    if (kind == 1)
        h = (int)(size * uniform(r, 0.35, 0.6));
    float *px = calloc((size_t)w * h * 4, sizeof(float));
    if (!px)
        return NULL;
    double c1[3], c2[3];
    for (int i = 0; i < 3; i++) {
        c1[i] = uniform(r, 0, 255);
        c2[i] = uniform(r, 0, 255);
    }
    if (kind == 0) {
        c1[0] = 255, c1[1] = uniform(r, 180, 230), c1[2] = uniform(r, 0, 60);
    }
    double cx = w / 2.0, cy = h / 2.0, R = fmin(w, h) / 2.0 - 1;
    int npts = 5 + randint(r, 3);
    double rot = uniform(r, 0, M_PI);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double acc[4] = { 0 };
            for (int sy = 0; sy < 2; sy++)
                for (int sx = 0; sx < 2; sx++) {
                    double X = x + 0.25 + 0.5 * sx, Y = y + 0.25 + 0.5 * sy;
                    double dx = X - cx, dy = Y - cy, d = sqrt(dx * dx + dy * dy);
                    const double *col = NULL;
                    double black[3] = { 20, 20, 20 };
                    if (kind == 0) { /* smiley */
                        if (d < R) {
                            col = c1;
                            double ex = fabs(dx) - 0.35 * R, ey = dy + 0.25 * R;
                            if (ex * ex + ey * ey < 0.012 * R * R * 1.0)
                                col = black;
                            double md = sqrt(dx * dx + (dy + 0.05 * R) * (dy + 0.05 * R));
                            if (dy > 0.05 * R && md > 0.45 * R && md < 0.58 * R)
                                col = black;
                            if (d > R * 0.94)
                                col = black;
                        }
                    } else if (kind == 1) { /* rounded badge */
                        double rr = h * 0.3;
                        double qx = fmax(fabs(dx) - (w / 2.0 - rr), 0), qy = fmax(fabs(dy) - (h / 2.0 - rr), 0);
                        if (qx * qx + qy * qy < rr * rr)
                            col = c1;
                    } else if (kind == 2) { /* ring logo */
                        double t = d / R;
                        if (t < 1)
                            col = (((int)(t * 4)) % 2) ? c1 : c2;
                    } else { /* star */
                        double ang = atan2(dy, dx) - rot;
                        double seg = 2 * M_PI / npts;
                        double u = fmod(fmod(ang, seg) + seg, seg) / seg; /* 0..1 within a spike */
                        double rad = R * (0.45 + 0.55 * fabs(1 - 2 * u));
                        if (d < rad)
                            col = d < rad * 0.6 ? c2 : c1;
                    }
                    if (col) {
                        for (int k = 0; k < 3; k++)
                            acc[k] += col[k];
                        acc[3] += 255;
                    }
                }
            float *p = px + ((size_t)y * w + x) * 4;
            if (acc[3] > 0) {
                for (int k = 0; k < 3; k++)
                    p[k] = (float)(acc[k] / (acc[3] / 255));
                p[3] = (float)(acc[3] / 4);
            }
        }
    VipsImage *f = vips_image_new_from_memory_copy(px, (size_t)w * h * 4 * sizeof(float), w, h, 4, VIPS_FORMAT_FLOAT);
    free(px);
    if (!f)
        return NULL;
    VipsImage *u = NULL, *o = NULL;
    if (vips_cast_uchar(f, &u, NULL) || vips_copy(u, &o, "interpretation", VIPS_INTERPRETATION_sRGB, NULL))
        o = NULL;
    g_object_unref(f);
    if (u)
        g_object_unref(u);
    static const char *names[] = { "smiley", "badge", "rings", "star" };
    snprintf(desc, desclen, "%s", names[kind]);
    if (kind == 1 && o) {
        /* a word on the badge */
        const char *word = stickers[randint(r, (int)(sizeof stickers / sizeof *stickers))];
        VipsImage *mask = text_mask(word, "DejaVu Sans Bold", (int)(w * 0.8), (int)(h * 0.65));
        if (mask) {
            double lum = 0.3 * c1[0] + 0.59 * c1[1] + 0.11 * c1[2];
            double fg[3] = { lum > 128 ? 0 : 255, lum > 128 ? 0 : 255, lum > 128 ? 0 : 255 };
            VipsImage *t = colour_with_mask(mask, fg, 1.0), *x = NULL;
            if (t && !vips_composite2(o, t, &x, VIPS_BLEND_MODE_OVER, "x", (w - mask->Xsize) / 2, "y",
                                      (h - mask->Ysize) / 2, NULL)) {
                VipsImage *y8 = NULL;
                if (!vips_cast_uchar(x, &y8, NULL)) {
                    g_object_unref(o);
                    o = y8;
                }
                g_object_unref(x);
            }
            if (t)
                g_object_unref(t);
            g_object_unref(mask);
            snprintf(desc, desclen, "badge:%s", word);
        }
    }
    if (!o)
        return NULL;
    VipsImage *m = vips_image_copy_memory(o);
    g_object_unref(o);
    return m;
}

static int op_overlay(qstate *s, const inputs *in)
{
    (void)in;
    if (ensure_rgb(s))
        return -1;
    int w = s->im->Xsize, h = s->im->Ysize;
    double frac = uniform(s->r, 0.05, 0.25);
    char desc[96];
    VipsImage *ov = NULL;
    int tx, ty;
    if (chance(s->r, 0.7)) {
        int size = (int)round(sqrt(frac * w * h));
        if (size > fmin(w, h) * 0.95)
            size = (int)(fmin(w, h) * 0.95);
        if (size < 8)
            size = 8;
        ov = make_sticker(s->r, size, desc, sizeof desc);
        if (!ov)
            return -1;
        double alpha = chance(s->r, 0.25) ? uniform(s->r, 0.5, 0.8) : 1.0;
        if (alpha < 1) {
            VipsImage *a = NULL, *b = NULL;
            double mul[4] = { 1, 1, 1, alpha }, add[4] = { 0, 0, 0, 0 };
            if (!vips_linear(ov, &a, mul, add, 4, NULL) && !vips_cast_uchar(a, &b, NULL)) {
                g_object_unref(ov);
                ov = vips_image_copy_memory(b);
            }
            if (a)
                g_object_unref(a);
            if (b)
                g_object_unref(b);
            if (!ov)
                return -1;
            snprintf(desc + strlen(desc), sizeof desc - strlen(desc), ";opacity=%.2f", alpha);
        }
    } else {
        /* a text block on a translucent dark panel */
        int bw = (int)round(sqrt(frac * w * h) * uniform(s->r, 1.2, 1.8)), bh = (int)round(frac * w * h / bw);
        if (bw > w * 0.95)
            bw = (int)(w * 0.95), bh = (int)fmin(h * 0.9, frac * w * h / bw);
        if (bh < 12)
            bh = 12;
        double dark[3] = { 0, 0, 0 }, white[3] = { 255, 255, 255 };
        VipsImage *panel = solid(bw, bh, dark, 1), *a = NULL;
        if (!panel)
            return -1;
        VipsImage *pm = NULL;
        vips_linear1(panel, &a, 1, 255 * uniform(s->r, 0.45, 0.75), NULL);
        g_object_unref(panel);
        if (!a)
            return -1;
        pm = finish(a, 1);
        if (!pm)
            return -1;
        ov = colour_with_mask(pm, dark, 1.0);
        g_object_unref(pm);
        const char *text = captions[randint(s->r, (int)(sizeof captions / sizeof *captions))];
        VipsImage *mask = text_mask(text, fonts[randint(s->r, 4)], (int)(bw * 0.9), (int)(bh * 0.8));
        if (ov && mask) {
            VipsImage *t = colour_with_mask(mask, white, 1.0), *x = NULL;
            if (t && !vips_composite2(ov, t, &x, VIPS_BLEND_MODE_OVER, "x", (bw - mask->Xsize) / 2, "y",
                                      (bh - mask->Ysize) / 2, NULL)) {
                VipsImage *y8 = NULL;
                if (!vips_cast_uchar(x, &y8, NULL)) {
                    g_object_unref(ov);
                    ov = vips_image_copy_memory(y8);
                    g_object_unref(y8);
                }
                g_object_unref(x);
            }
            if (t)
                g_object_unref(t);
        }
        if (mask)
            g_object_unref(mask);
        if (!ov)
            return -1;
        snprintf(desc, sizeof desc, "textblock");
    }
    tx = randint(s->r, w - ov->Xsize + 1);
    ty = randint(s->r, h - ov->Ysize + 1);
    padd(s, "%s;cover=%.2f;at=%d,%d", desc, (double)ov->Xsize * ov->Ysize / ((double)w * h), tx, ty);
    int rc = paste_rgba(s, ov, tx, ty);
    g_object_unref(ov);
    return rc;
}

static int op_perspective(qstate *s, const inputs *in)
{
    (void)in;
    double w = s->im->Xsize, h = s->im->Ysize;
    double src[8] = { 0, 0, w, 0, w, h, 0, h }, dst[8];
    double amt = uniform(s->r, 0.05, 0.18);
    /* move the corners inwards, more on one side, as a picture taken at an angle */
    int side = randint(s->r, 4);
    for (int i = 0; i < 4; i++) {
        double jx = uniform(s->r, 0, 0.35) * amt, jy = uniform(s->r, 0, 0.35) * amt;
        int near = (side == 0 && (i == 0 || i == 3)) || (side == 1 && (i == 1 || i == 2)) ||
                   (side == 2 && (i == 0 || i == 1)) || (side == 3 && (i == 2 || i == 3));
        if (near) {
            if (side < 2)
                jy += amt;
            else
                jx += amt;
        }
        dst[2 * i] = src[2 * i] + (src[2 * i] < 1 ? jx * w : -jx * w);
        dst[2 * i + 1] = src[2 * i + 1] + (src[2 * i + 1] < 1 ? jy * h : -jy * h);
    }
    mat3 fwd, inv;
    if (homography(src, dst, &fwd) || mat_inverse(fwd, &inv))
        return -1;
    double bg[3];
    random_colour(s->r, bg);
    padd(s, "warp=%.2f;side=%c;fill=%.0f,%.0f,%.0f", amt, "lrtb"[side], bg[0], bg[1], bg[2]);
    return warp(s, inv, (int)w, (int)h, bg);
}

static VipsImage *lut_posterise(int levels)
{
    unsigned char lut[256];
    for (int i = 0; i < 256; i++) {
        int q = i * levels / 256;
        lut[i] = (unsigned char)lrint((q + 0.5) * 255.0 / levels);
    }
    return vips_image_new_from_memory_copy(lut, 256, 256, 1, 1, VIPS_FORMAT_UCHAR);
}

static int op_painterly(qstate *s, const inputs *in)
{
    (void)in;
    if (ensure_rgb(s))
        return -1;
    int style = randint(s->r, 4);
    double longer = fmax(s->im->Xsize, s->im->Ysize);
    int k = 2 * (int)round(fmax(2, longer / 220.0) * uniform(s->r, 0.8, 1.3)) + 1; /* odd window */
    VipsImage *t[12] = { 0 };
    VipsImage *res = NULL;
    int rc = -1;
    if (style == 0) { /* cartoon: median, posterise, dark edges */
        int levels = 3 + randint(s->r, 3);
        padd(s, "style=cartoon;median=%d;levels=%d", k, levels);
        VipsImage *lut = lut_posterise(levels);
        /* edges of the smoothed grey picture, thickened, drawn in black: out = poster * (1 - edge) */
        if (!lut || vips_median(s->im, &t[0], k, NULL) || vips_median(t[0], &t[1], k, NULL) ||
            vips_maplut(t[1], &t[2], lut, NULL) || vips_colourspace(t[1], &t[3], VIPS_INTERPRETATION_B_W, NULL) ||
            vips_sobel(t[3], &t[4], NULL) || vips_moreeq_const1(t[4], &t[5], 40, NULL) ||
            vips_rank(t[5], &t[6], 3, 3, 8, NULL) || vips_linear1(t[6], &t[7], -1.0 / 255, 1, NULL) ||
            vips_multiply(t[2], t[7], &t[8], NULL)) {
            if (lut)
                g_object_unref(lut);
            goto done;
        }
        g_object_unref(lut);
        res = t[8];
    } else if (style == 1) { /* oil: large median, sharpen, saturate */
        double sat = uniform(s->r, 1.2, 1.6);
        padd(s, "style=oil;median=%d;sat=%.2f", k + 2, sat);
        double a[3] = { 1, sat, 1 }, b[3] = { 0, 0, 0 };
        if (vips_median(s->im, &t[0], k + 2, NULL) || vips_sharpen(t[0], &t[1], "sigma", 1.5, "m2", 4.0, NULL) ||
            vips_colourspace(t[1], &t[2], VIPS_INTERPRETATION_LCH, NULL) || vips_linear(t[2], &t[3], a, b, 3, NULL) ||
            vips_colourspace(t[3], &t[4], VIPS_INTERPRETATION_sRGB, NULL))
            goto done;
        res = t[4];
    } else if (style == 2) { /* pencil sketch: colour dodge of the grey by its blurred negative */
        double sig = fmax(2, longer / 150.0) * uniform(s->r, 0.8, 1.5);
        padd(s, "style=sketch;sigma=%.1f", sig);
        /* dodge = grey * 255 / (256 - blur(255 - grey)); finish() clips to 0..255 */
        if (vips_colourspace(s->im, &t[0], VIPS_INTERPRETATION_B_W, NULL) ||
            vips_cast_float(t[0], &t[1], NULL) || vips_linear1(t[1], &t[2], -1, 255, NULL) ||
            vips_gaussblur(t[2], &t[3], sig, NULL) || vips_linear1(t[3], &t[4], -1, 256, NULL) ||
            vips_linear1(t[1], &t[5], 255, 0, NULL) || vips_divide(t[5], t[4], &t[6], NULL))
            goto done;
        res = t[6];
    } else { /* pixelate and posterise */
        int block = (int)round(fmax(6, longer / uniform(s->r, 40, 80)));
        int levels = 4 + randint(s->r, 3);
        padd(s, "style=pixelate;block=%d;levels=%d", block, levels);
        VipsImage *lut = lut_posterise(levels);
        if (!lut || vips_resize(s->im, &t[0], 1.0 / block, "kernel", VIPS_KERNEL_LINEAR, NULL) ||
            vips_maplut(t[0], &t[1], lut, NULL) ||
            vips_resize(t[1], &t[2], (double)s->im->Xsize / t[1]->Xsize, "vscale",
                        (double)s->im->Ysize / t[1]->Ysize, "kernel", VIPS_KERNEL_NEAREST, NULL)) {
            if (lut)
                g_object_unref(lut);
            goto done;
        }
        g_object_unref(lut);
        res = t[2];
        if (res->Xsize != s->im->Xsize || res->Ysize != s->im->Ysize) {
            if (vips_embed(res, &t[3], 0, 0, s->im->Xsize, s->im->Ysize, "extend", VIPS_EXTEND_COPY, NULL))
                goto done;
            res = t[3];
        }
    }
    {
        g_object_ref(res);
        VipsImage *m = finish(res, 1);
        if (m) {
            set_pixels(s, m);
            rc = 0;
        }
    }
done:
    unref_all(t, 12);
    return rc;
}

/* Pastes a region of the current image (20-60% of its area, scaled 0.5-1.5) into the background.
 * The background is resized so that the piece spans 25-70% of its longer side and the background
 * is 640-1600 px; for small works the piece grows up to 2.5x, then the background may stay smaller. */
static int paste_into(qstate *s, const char *bg_path, const char *bg_label)
{
    VipsImage *bg = load_rgb(bg_path);
    if (!bg) {
        fprintf(stderr, "querygen: cannot load background %s: %s", bg_path, vips_error_buffer());
        vips_error_clear();
        return -1;
    }
    int x, y, w, h;
    double area;
    crop_rect(s, 0.2, 0.6, &x, &y, &w, &h, &area);
    double sc = uniform(s->r, 0.5, 1.5), frac = uniform(s->r, 0.25, 0.7);
    double bgl = fmax(bg->Xsize, bg->Ysize);
    double want = fmax(w, h) * sc / frac; /* background longer side */
    if (want < 640) {
        /* small works: grow the piece (at most to 2.5x) rather than leave a tiny background */
        double f = 640 / want;
        if (sc * f > 2.5)
            f = fmax(1.0, 2.5 / sc);
        sc *= f;
        want *= f;
    } else if (want > MAX_SIDE) {
        sc *= MAX_SIDE / want;
        want = MAX_SIDE;
    }
    VipsImage *b2 = NULL;
    if (vips_resize(bg, &b2, want / bgl, NULL)) {
        g_object_unref(bg);
        return -1;
    }
    g_object_unref(bg);
    bg = finish(b2, 1);
    if (!bg)
        return -1;
    /* the piece must fit inside the background */
    if (w * sc > bg->Xsize * 0.9)
        sc = bg->Xsize * 0.9 / w;
    if (h * sc > bg->Ysize * 0.9)
        sc = bg->Ysize * 0.9 / h;
    if (crop(s, x, y, w, h)) {
        g_object_unref(bg);
        return -1;
    }
    if (fabs(sc - 1) > 1e-3 && resize_xy(s, sc, sc)) {
        g_object_unref(bg);
        return -1;
    }
    if (ensure_rgb(s)) {
        g_object_unref(bg);
        return -1;
    }
    int px = randint(s->r, bg->Xsize - s->im->Xsize + 1), py = randint(s->r, bg->Ysize - s->im->Ysize + 1);
    int border = chance(s->r, 0.3) ? (int)fmax(2, fmin(s->im->Xsize, s->im->Ysize) * 0.03) : 0;
    VipsImage *piece_im = s->im, *framed = NULL;
    if (border) {
        if (vips_embed(s->im, &framed, border, border, s->im->Xsize + 2 * border, s->im->Ysize + 2 * border,
                       "extend", VIPS_EXTEND_WHITE, NULL)) {
            g_object_unref(bg);
            return -1;
        }
        piece_im = framed;
        px = randint(s->r, bg->Xsize - framed->Xsize + 1);
        py = randint(s->r, bg->Ysize - framed->Ysize + 1);
    }
    VipsImage *o = NULL;
    int rc = vips_insert(bg, piece_im, &o, px < 0 ? 0 : px, py < 0 ? 0 : py, NULL);
    if (framed)
        g_object_unref(framed);
    g_object_unref(bg);
    if (rc)
        return -1;
    VipsImage *m = finish(o, 1);
    if (!m)
        return -1;
    padd(s, "bg=%s;area=%.2f;scale=%.2f;at=%d,%d%s", bg_label, area, sc, px, py, border ? ";frame" : "");
    set_image(s, m, mat_translate(-(px < 0 ? 0 : px) - border, -(py < 0 ? 0 : py) - border));
    return 0;
}

static const char *g_outsider_dir;
static const strlist *g_outsiders;

static int op_composite(qstate *s, const inputs *in)
{
    (void)in;
    if (!g_outsiders->n)
        return -1;
    /* 2 in 3 backgrounds are JPEG files (mostly photographs), as in real pasted-into-photo cases */
    const char *bgname = g_outsiders->v[randint(s->r, g_outsiders->n)];
    if (chance(s->r, 0.67))
        for (int t = 0; t < 20 && !is_jpeg_name(bgname); t++)
            bgname = g_outsiders->v[randint(s->r, g_outsiders->n)];
    char p[8192];
    snprintf(p, sizeof p, "%s/%s", g_outsider_dir, bgname);
    return paste_into(s, p, bgname);
}

/* --------------------------------------------------------------------- families */

typedef struct {
    const char *name;
    op_fn fn;
    int geometric;
} family_op;

static const family_op ops[] = {
    { "resize_down", op_resize_down, 1 },   { "jpeg_low", op_jpeg_low, 0 },         { "color_shift", op_color_shift, 0 },
    { "blur", op_blur, 0 },                 { "noise", op_noise, 0 },               { "greyscale", op_greyscale, 0 },
    { "mirror", op_mirror, 1 },             { "rotate90", op_rotate90, 1 },         { "small_rotate", op_small_rotate, 1 },
    { "mild_crop", op_mild_crop, 1 },       { "heavy_crop", op_heavy_crop, 1 },     { "aspect_change", op_aspect_change, 1 },
    { "padding", op_padding, 1 },           { "caption", op_caption, 0 },           { "overlay", op_overlay, 0 },
    { "composite", op_composite, 1 },       { "perspective", op_perspective, 1 },   { "painterly", op_painterly, 0 },
};
#define N_OPS ((int)(sizeof ops / sizeof *ops))

static const family_op *find_op(const char *name)
{
    for (int i = 0; i < N_OPS; i++)
        if (!strcmp(ops[i].name, name))
            return &ops[i];
    return NULL;
}

/* Families in output order.  Negatives apply an operation to an outsider (neg_hard: to a hard negative). */
static const char *all_families[] = {
    "resize_down", "jpeg_low", "color_shift", "blur", "noise", "greyscale", "mirror", "rotate90", "small_rotate",
    "mild_crop", "heavy_crop", "aspect_change", "padding", "caption", "overlay", "composite", "perspective",
    "painterly", "combo", "neg_plain", "neg_resize_down", "neg_jpeg_low", "neg_color_shift", "neg_mirror",
    "neg_caption", "neg_heavy_crop", "neg_composite", "neg_hard", NULL,
};

static int op_combo(qstate *s, const inputs *in)
{
    /* 2-4 steps, at least one geometric; no composite, painterly or heavy crop inside a combo */
    static const char *pool[] = { "resize_down", "jpeg_low", "color_shift", "blur", "noise", "greyscale", "mirror",
                                  "rotate90", "small_rotate", "mild_crop", "aspect_change", "padding", "caption",
                                  "overlay", "perspective" };
    int npool = (int)(sizeof pool / sizeof *pool);
    int n = 2 + randint(s->r, 3);
    int chosen[4], have_geo = 0;
    for (int i = 0; i < n; i++) {
        int again;
        do {
            chosen[i] = randint(s->r, npool);
            again = 0;
            for (int j = 0; j < i; j++)
                again |= chosen[j] == chosen[i];
        } while (again);
        have_geo |= find_op(pool[chosen[i]])->geometric;
    }
    if (!have_geo) {
        static const char *geo[] = { "resize_down", "mirror", "rotate90", "small_rotate", "mild_crop", "aspect_change",
                                     "padding", "perspective" };
        chosen[randint(s->r, n)] = -1 - randint(s->r, 8);
        for (int i = 0; i < n; i++)
            if (chosen[i] < 0) {
                const char *g = geo[-1 - chosen[i]];
                for (int j = 0; j < npool; j++)
                    if (!strcmp(pool[j], g))
                        chosen[i] = j;
            }
    }
    s->in_combo = 1;
    for (int i = 0; i < n; i++) {
        padd(s, "%s(", pool[chosen[i]]);
        size_t before = strlen(s->params);
        if (find_op(pool[chosen[i]])->fn(s, in))
            return -1;
        /* "op(;a=1;b=2" -> "op(a=1;b=2)" */
        if (s->params[before] == ';')
            memmove(s->params + before, s->params + before + 1, strlen(s->params + before));
        size_t l = strlen(s->params);
        if (l < sizeof s->params - 1) {
            s->params[l] = ')';
            s->params[l + 1] = 0;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ one query */

typedef struct {
    const char *family;
    int k;
    char name[64];
    char *row;  /* CSV row, or NULL when the query could not be made */
} job_t;

static void csv_quote(char *dst, size_t n, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        snprintf(dst, n, "%s", s);
        return;
    }
    size_t o = 0;
    if (o < n - 1)
        dst[o++] = '"';
    for (; *s && o < n - 3; s++) {
        if (*s == '"')
            dst[o++] = '"';
        dst[o++] = *s == '\n' ? ' ' : *s;
    }
    dst[o++] = '"';
    dst[o] = 0;
}

static int save_query(qstate *s, const char *out_dir, job_t *j, rng_t *r)
{
    /* cap the size */
    double longer = fmax(s->im->Xsize, s->im->Ysize);
    if (longer > MAX_SIDE && resize_xy(s, MAX_SIDE / longer, MAX_SIDE / longer))
        return -1;
    int jpeg = s->jpeg_q > 0 || chance(r, 0.7);
    int q = s->jpeg_q > 0 ? s->jpeg_q : 85 + randint(r, 11);
    snprintf(j->name + strlen(j->name), sizeof j->name - strlen(j->name), "%s", jpeg ? ".jpg" : ".png");
    char path[8192], tmp[8300];
    snprintf(path, sizeof path, "%s/%s", out_dir, j->name);
    snprintf(tmp, sizeof tmp, "%s.tmp%s", path, jpeg ? ".jpg" : ".png");
    int rc = jpeg ? vips_jpegsave(s->im, tmp, "Q", q, "strip", TRUE, NULL)
                  : vips_pngsave(s->im, tmp, "compression", 6, "strip", TRUE, NULL);
    if (rc || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    if (jpeg && s->jpeg_q == 0)
        padd(s, "save=jpeg%d", q);
    return 0;
}

static void make_query(const inputs *in, const char *out_dir, uint64_t seed, job_t *j)
{
    rng_t r;
    uint64_t x = seed ^ (fnv1a(j->family) * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(j->k + 1) * 0xD1B54A32D192ED03ull);
    rng_seed(&r, x);
    {
        uint64_t h = rng_next(&r);
        snprintf(j->name, sizeof j->name, "q%012llx", (unsigned long long)(h >> 16));
    }
    int neg = !strncmp(j->family, "neg_", 4);
    const char *opname = neg ? j->family + 4 : j->family;
    qstate s;
    memset(&s, 0, sizeof s);
    s.r = &r;
    s.H = mat_id();

    char src_path[8192], ref_label[4200] = "", extra[4200] = "";
    VipsImage *im = NULL;
    for (int attempt = 0; attempt < 8 && !im; attempt++) {
        if (!neg) {
            if (!in->corpus.n)
                break;
            const char *n = in->corpus.v[randint(&r, in->corpus.n)];
            snprintf(src_path, sizeof src_path, "%s/%s", in->corpus_dir, n);
            snprintf(ref_label, sizeof ref_label, "%s/%s", in->corpus_label, n);
        } else if (!strcmp(opname, "hard")) {
            if (!in->hard.path.n)
                break;
            int i = randint(&r, in->hard.path.n);
            snprintf(src_path, sizeof src_path, "%s", in->hard.path.v[i]);
            const char *slash = strrchr(in->hard.path.v[i], '/');
            snprintf(extra, sizeof extra, "src=%s;similar_to=%s", slash ? slash + 1 : in->hard.path.v[i],
                     in->hard.similar.v[i]);
        } else {
            if (!in->outsiders.n)
                break;
            const char *n = in->outsiders.v[randint(&r, in->outsiders.n)];
            snprintf(src_path, sizeof src_path, "%s/%s", in->outsider_dir, n);
            snprintf(extra, sizeof extra, "src=%s", n);
        }
        im = load_rgb(src_path);
        if (!im) {
            fprintf(stderr, "querygen: skipping unreadable %s: %s", src_path, vips_error_buffer());
            vips_error_clear();
        }
    }
    if (!im) {
        fprintf(stderr, "querygen: %s #%d: no usable input\n", j->family, j->k);
        return;
    }
    s.refw = im->Xsize;
    s.refh = im->Ysize;
    s.box[0] = s.box[1] = 0;
    s.box[2] = s.refw;
    s.box[3] = s.refh;
    s.im = im;
    int rc = 0;
    /* work at query scale: the reference is brought within MAX_SIDE first (tracked in H) */
    double longer = fmax(s.refw, s.refh);
    if (longer > MAX_SIDE)
        rc = resize_xy(&s, MAX_SIDE / longer, MAX_SIDE / longer);
    s.params[0] = 0;
    if (extra[0])
        padd(&s, "%s", extra);
    if (!rc) {
        if (!strcmp(opname, "plain"))
            ;
        else if (!strcmp(opname, "hard")) {
            int t = randint(&r, 4); /* lightly transformed or plain */
            if (t == 1)
                rc = op_resize_down(&s, in);
            else if (t == 2) {
                int q = 60 + randint(&r, 31);
                padd(&s, "q=%d", q);
                s.jpeg_q = q;
            } else if (t == 3)
                rc = op_mirror(&s, in);
        } else if (!strcmp(opname, "combo"))
            rc = op_combo(&s, in);
        else if (neg && !strcmp(opname, "composite")) {
            /* an outsider region pasted into another outsider */
            const char *bg;
            int tries = 0;
            do
                bg = in->outsiders.v[randint(&r, in->outsiders.n)];
            while (strstr(src_path, bg) && ++tries < 8);
            char p[8192];
            snprintf(p, sizeof p, "%s/%s", in->outsider_dir, bg);
            rc = paste_into(&s, p, bg);
        } else {
            const family_op *op = find_op(opname);
            rc = op ? op->fn(&s, in) : -1;
        }
    }
    if (!rc)
        rc = save_query(&s, out_dir, j, &r);
    if (rc) {
        fprintf(stderr, "querygen: %s #%d from %s failed: %s", j->family, j->k, src_path, vips_error_buffer());
        vips_error_clear();
        if (s.im)
            g_object_unref(s.im);
        return;
    }
    char params[2100], row[12000];
    csv_quote(params, sizeof params, s.params);
    if (!neg) {
        int x0 = (int)floor(fmax(0, s.box[0]) + 1e-6), y0 = (int)floor(fmax(0, s.box[1]) + 1e-6);
        int x1 = (int)ceil(fmin(s.refw, s.box[2]) - 1e-6), y1 = (int)ceil(fmin(s.refh, s.box[3]) - 1e-6);
        snprintf(row, sizeof row, "%s,%s,%s,%s,%d,%d,%d,%d\n", j->name, ref_label, j->family, params, x0, y0, x1, y1);
    } else
        snprintf(row, sizeof row, "%s,,%s,%s,,,,\n", j->name, j->family, params);
    j->row = strdup(row);
    g_object_unref(s.im);
}

/* ------------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr,
            "usage: querygen --corpus DIR --outsiders DIR --hardneg CSV --out DIR --seed N --per-family N\n"
            "                [--families a,b,...] [--jobs N] [--list-families]\n");
    exit(2);
}

static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
    (void)domain;
    (void)level;
    (void)msg;
    (void)data;
}

int main(int argc, char **argv)
{
    const char *corpus = NULL, *outsiders = NULL, *hardneg = NULL, *out = NULL, *families = NULL;
    uint64_t seed = 1;
    int per = 12, jobs = 0, have_seed = 0;
    if (VIPS_INIT(argv[0]))
        vips_error_exit(NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--list-families")) {
            for (int k = 0; all_families[k]; k++)
                printf("%s\n", all_families[k]);
            return 0;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--corpus"))
            corpus = v;
        else if (!strcmp(a, "--outsiders"))
            outsiders = v;
        else if (!strcmp(a, "--hardneg"))
            hardneg = v;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10), have_seed = 1;
        else if (!strcmp(a, "--per-family"))
            per = atoi(v);
        else if (!strcmp(a, "--families"))
            families = v;
        else if (!strcmp(a, "--jobs"))
            jobs = atoi(v);
        else
            usage();
        i++;
    }
    if (!corpus || !outsiders || !out || !have_seed || per < 1)
        usage();
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, quiet_log, NULL);
#ifdef _OPENMP
    if (jobs > 0)
        omp_set_num_threads(jobs);
#else
    (void)jobs;
#endif
    vips_concurrency_set(1);
    vips_cache_set_max(0);

    inputs in;
    memset(&in, 0, sizeof in);
    in.corpus_dir = corpus;
    in.outsider_dir = outsiders;
    {
        /* references are written as "<corpus folder name>/<file>", relative to the data folder */
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", corpus);
        size_t l = strlen(buf);
        while (l > 1 && buf[l - 1] == '/')
            buf[--l] = 0;
        const char *b = strrchr(buf, '/');
        in.corpus_label = strdup(b ? b + 1 : buf);
    }
    list_dir(corpus, &in.corpus);
    list_dir(outsiders, &in.outsiders);
    if (hardneg)
        read_hardneg(hardneg, &in.hard);
    g_outsider_dir = outsiders;
    g_outsiders = &in.outsiders;
    fprintf(stderr, "querygen: %d corpus works, %d outsiders, %d hard negatives\n", in.corpus.n, in.outsiders.n,
            in.hard.path.n);

    /* the job list */
    strlist fam = { 0 };
    if (families) {
        char *copy = strdup(families), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int ok = 0;
            for (int k = 0; all_families[k]; k++)
                ok |= !strcmp(all_families[k], t);
            if (!ok) {
                fprintf(stderr, "querygen: unknown family %s (see --list-families)\n", t);
                return 2;
            }
            sl_add(&fam, t);
        }
        free(copy);
    } else
        for (int k = 0; all_families[k]; k++)
            sl_add(&fam, all_families[k]);
    int nj = fam.n * per;
    job_t *jobsv = calloc((size_t)nj, sizeof *jobsv);
    for (int f = 0; f < fam.n; f++)
        for (int k = 0; k < per; k++) {
            jobsv[f * per + k].family = fam.v[f];
            jobsv[f * per + k].k = k;
        }
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "querygen: cannot create %s\n", out);
        return 1;
    }
    int done = 0, timing = getenv("QUERYGEN_TIMING") != NULL;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < nj; i++) {
        double t0 = timing ? g_get_monotonic_time() / 1e6 : 0;
        make_query(&in, out, seed, &jobsv[i]);
        if (timing)
            fprintf(stderr, "querygen: %-16s #%-3d %6.2f s %s\n", jobsv[i].family, jobsv[i].k,
                    g_get_monotonic_time() / 1e6 - t0, jobsv[i].row ? jobsv[i].row : "(failed)\n");
#pragma omp atomic
        done++;
    }
    (void)done;
    /* name collisions are astronomically unlikely; refuse rather than overwrite silently */
    for (int i = 0; i < nj; i++)
        for (int k = i + 1; k < nj; k++)
            if (jobsv[i].row && jobsv[k].row && !strcmp(jobsv[i].name, jobsv[k].name)) {
                fprintf(stderr, "querygen: name collision %s; change the seed\n", jobsv[i].name);
                return 1;
            }
    char gt[8192];
    snprintf(gt, sizeof gt, "%s/groundtruth.csv", out);
    FILE *f = fopen(gt, "w");
    if (!f) {
        fprintf(stderr, "querygen: cannot write %s\n", gt);
        return 1;
    }
    fputs("query,reference,family,params,ref_x0,ref_y0,ref_x1,ref_y1\n", f);
    int made = 0, failed = 0;
    for (int i = 0; i < nj; i++) {
        if (jobsv[i].row) {
            fputs(jobsv[i].row, f);
            made++;
        } else
            failed++;
    }
    fclose(f);
    fprintf(stderr, "querygen: %d queries written to %s (%d failed)\n", made, out, failed);
    vips_shutdown();
    return failed && !made ? 1 : 0;
}

/* smoke_data.c — makes a tiny synthetic benchmark data set (corpus, outsiders, JPEG photos, queries + ground truth) for bench/run --smoke. */
/*
 * Usage: smoke_data OUT_DIR [--corpus N] [--outsiders N] [--seed S]
 *
 * Writes, in the formats of the real benchmark data (see bench/README.md):
 *   OUT_DIR/data/corpus/wNNN.png + OUT_DIR/data/corpus.csv
 *   OUT_DIR/data/outsiders/oNNN.png
 *   OUT_DIR/data/photos-jpeg/pNNN.jpg        (baseline and progressive JPEGs of mixed sizes)
 *   OUT_DIR/queries/smoke/qNNN.jpg + groundtruth.csv
 * Images are procedural (multi-octave value noise plus random shapes), deterministic for a given seed, and
 * need no data package: only libvips. The point is to exercise the harness end to end in seconds, not to
 * measure accuracy.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <vips/vips.h>

static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static double rndf(void) { return rnd() / 4294967296.0; }
static int rndi(int lo, int hi) { return lo + (int)(rndf() * (hi - lo + 1)); }

static void fail(const char *what)
{
    fprintf(stderr, "smoke_data: %s: %s\n", what, vips_error_buffer());
    exit(1);
}

static void mkdir_p(const char *p)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", p);
    for (char *s = buf + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(buf, 0755);
            *s = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "smoke_data: mkdir %s: %s\n", buf, strerror(errno));
        exit(1);
    }
}

/* A procedural RGB picture: value noise at several octaves per channel, then filled rectangles, discs and
 * stripes in random colours. */
static VipsImage *make_picture(int w, int h)
{
    unsigned char *px = malloc((size_t)w * h * 3);
    float *acc = calloc((size_t)w * h * 3, sizeof *acc);
    if (!px || !acc)
        exit(1);
    double amp = 1.0;
    for (int cell = 128; cell >= 4; cell /= 2, amp *= 0.55) {
        int gw = w / cell + 2, gh = h / cell + 2;
        float *lat = malloc((size_t)gw * gh * 3 * sizeof *lat);
        for (int i = 0; i < gw * gh * 3; i++)
            lat[i] = (float)(rndf() * 2 - 1);
        for (int y = 0; y < h; y++) {
            int gy = y / cell;
            float fy = (float)(y % cell) / cell;
            fy = fy * fy * (3 - 2 * fy);
            for (int x = 0; x < w; x++) {
                int gx = x / cell;
                float fx = (float)(x % cell) / cell;
                fx = fx * fx * (3 - 2 * fx);
                for (int c = 0; c < 3; c++) {
                    float a = lat[((gy * gw) + gx) * 3 + c], b = lat[((gy * gw) + gx + 1) * 3 + c];
                    float d = lat[(((gy + 1) * gw) + gx) * 3 + c], e = lat[(((gy + 1) * gw) + gx + 1) * 3 + c];
                    float v = (a + (b - a) * fx) * (1 - fy) + (d + (e - d) * fx) * fy;
                    acc[((size_t)y * w + x) * 3 + c] += (float)(amp * v);
                }
            }
        }
        free(lat);
    }
    float base[3] = {(float)rndf(), (float)rndf(), (float)rndf()};
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        float v = 128.0f + 60.0f * acc[i] + 60.0f * (base[i % 3] - 0.5f);
        px[i] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    free(acc);
    int nshapes = rndi(8, 18);
    for (int s = 0; s < nshapes; s++) {
        unsigned char col[3] = {(unsigned char)rnd(), (unsigned char)rnd(), (unsigned char)rnd()};
        int kind = rndi(0, 2);
        int cx = rndi(0, w - 1), cy = rndi(0, h - 1), r = rndi(w / 30 + 2, w / 6 + 3);
        int rw = rndi(w / 20 + 2, w / 3), rh = rndi(h / 20 + 2, h / 3);
        int period = rndi(3, 12);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int in;
                if (kind == 0)
                    in = x >= cx && x < cx + rw && y >= cy && y < cy + rh;
                else if (kind == 1)
                    in = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
                else
                    in = x >= cx && x < cx + rw && y >= cy && y < cy + rh && ((x + y) / period) % 2 == 0;
                if (in)
                    memcpy(px + ((size_t)y * w + x) * 3, col, 3);
            }
    }
    VipsImage *im = vips_image_new_from_memory_copy(px, (size_t)w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR);
    free(px);
    if (!im)
        fail("new_from_memory");
    im->Type = VIPS_INTERPRETATION_sRGB;
    return im;
}

static void save(VipsImage *im, const char *path, int q, int progressive)
{
    int r;
    if (strstr(path, ".png"))
        r = vips_pngsave(im, path, "compression", 1, NULL);
    else
        r = vips_jpegsave(im, path, "Q", q, "interlace", progressive, NULL);
    if (r)
        fail(path);
}

typedef struct {
    const char *family;
    int negative;
} fam;

int main(int argc, char **argv)
{
    const char *out = NULL;
    int ncorpus = 12, noutsiders = 6;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--corpus") && i + 1 < argc)
            ncorpus = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--outsiders") && i + 1 < argc)
            noutsiders = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !out)
            out = argv[i];
        else {
            fprintf(stderr, "usage: smoke_data OUT_DIR [--corpus N] [--outsiders N] [--seed S]\n");
            return 2;
        }
    }
    if (!out || ncorpus < 1 || noutsiders < 1) {
        fprintf(stderr, "usage: smoke_data OUT_DIR [--corpus N] [--outsiders N] [--seed S]\n");
        return 2;
    }
    if (VIPS_INIT(argv[0]))
        fail("vips init");
    rng_state = seed * 0x2545F4914F6CDD1Dull + 7;
    char dir[4096], path[4200];
    const char *sub[] = {"data/corpus", "data/outsiders", "data/photos-jpeg", "queries/smoke"};
    for (int i = 0; i < 4; i++) {
        snprintf(dir, sizeof dir, "%s/%s", out, sub[i]);
        mkdir_p(dir);
    }
    snprintf(path, sizeof path, "%s/data/corpus.csv", out);
    FILE *meta = fopen(path, "w");
    snprintf(path, sizeof path, "%s/queries/smoke/groundtruth.csv", out);
    FILE *gt = fopen(path, "w");
    if (!meta || !gt) {
        perror("smoke_data: csv");
        return 1;
    }
    fprintf(meta, "path,title,author,license,source_url,note\n");
    fprintf(gt, "query,reference,family,params,ref_x0,ref_y0,ref_x1,ref_y1\n");
    static const char *fams[] = {"resize_down", "jpeg_low", "mirror",     "rotate90",
                                 "greyscale",   "blur",     "mild_crop", "heavy_crop"};
    const int nf = (int)(sizeof fams / sizeof fams[0]);
    int nq = 0, nphotos = 0;
    for (int i = 0; i < ncorpus; i++) {
        int w = rndi(320, 640), h = rndi(320, 640);
        VipsImage *im = make_picture(w, h);
        snprintf(path, sizeof path, "%s/data/corpus/w%03d.png", out, i);
        save(im, path, 0, 0);
        fprintf(meta, "corpus/w%03d.png,\"Synthetic work %d, procedural\",smoke_data,CC0-1.0,,seed %llu\n", i, i,
                seed);
        if (nphotos < 8) {
            snprintf(path, sizeof path, "%s/data/photos-jpeg/p%03d.jpg", out, nphotos);
            save(im, path, 85, nphotos % 2);
            nphotos++;
        }
        /* Two query families per work, rotating through the list. */
        for (int k = 0; k < 2; k++) {
            const char *f = fams[(i * 2 + k) % nf];
            VipsImage *q = NULL, *t = NULL;
            int x0 = 0, y0 = 0, x1 = w, y1 = h, qual = 90;
            char params[128] = "";
            if (!strcmp(f, "resize_down")) {
                double s = 0.3 + 0.3 * rndf();
                if (vips_resize(im, &q, s, NULL))
                    fail("resize");
                snprintf(params, sizeof params, "scale=%.2f", s);
            } else if (!strcmp(f, "jpeg_low")) {
                q = im;
                g_object_ref(q);
                qual = 20;
                snprintf(params, sizeof params, "q=20");
            } else if (!strcmp(f, "mirror")) {
                if (vips_flip(im, &q, VIPS_DIRECTION_HORIZONTAL, NULL))
                    fail("flip");
                snprintf(params, sizeof params, "horizontal");
            } else if (!strcmp(f, "rotate90")) {
                if (vips_rot(im, &q, VIPS_ANGLE_D90, NULL))
                    fail("rot");
                snprintf(params, sizeof params, "angle=90");
            } else if (!strcmp(f, "greyscale")) {
                if (vips_colourspace(im, &q, VIPS_INTERPRETATION_B_W, NULL))
                    fail("colourspace");
            } else if (!strcmp(f, "blur")) {
                if (vips_gaussblur(im, &q, 2.0, NULL))
                    fail("blur");
                snprintf(params, sizeof params, "sigma=2");
            } else {
                double fr = !strcmp(f, "mild_crop") ? 0.85 : 0.45;
                int cw = (int)(w * fr), ch = (int)(h * fr);
                x0 = rndi(0, w - cw);
                y0 = rndi(0, h - ch);
                x1 = x0 + cw;
                y1 = y0 + ch;
                if (vips_crop(im, &t, x0, y0, cw, ch, NULL) || vips_copy(t, &q, NULL))
                    fail("crop");
                g_object_unref(t);
                snprintf(params, sizeof params, "keep=%.2f", fr);
            }
            snprintf(path, sizeof path, "%s/queries/smoke/q%03d.jpg", out, nq);
            save(q, path, qual, 0);
            g_object_unref(q);
            fprintf(gt, "q%03d.jpg,corpus/w%03d.png,%s,\"%s\",%d,%d,%d,%d\n", nq, i, f, params, x0, y0, x1, y1);
            nq++;
        }
        g_object_unref(im);
    }
    for (int i = 0; i < noutsiders; i++) {
        int w = rndi(300, 600), h = rndi(300, 600);
        VipsImage *im = make_picture(w, h);
        snprintf(path, sizeof path, "%s/data/outsiders/o%03d.png", out, i);
        save(im, path, 0, 0);
        snprintf(path, sizeof path, "%s/queries/smoke/q%03d.jpg", out, nq);
        save(im, path, 88, 0);
        fprintf(gt, "q%03d.jpg,,neg_outsider,,,,,\n", nq);
        nq++;
        if (nphotos < 12) {
            snprintf(path, sizeof path, "%s/data/photos-jpeg/p%03d.jpg", out, nphotos);
            save(im, path, 90, nphotos % 2);
            nphotos++;
        }
        g_object_unref(im);
    }
    if (fclose(meta) || fclose(gt)) {
        perror("smoke_data: csv");
        return 1;
    }
    printf("smoke_data: %d corpus works, %d outsiders, %d photos, %d queries in %s\n", ncorpus, noutsiders, nphotos,
           nq, out);
    vips_shutdown();
    return 0;
}

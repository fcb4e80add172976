/* imgtool.c — makes test images with libvips: distinct synthetic works and edited copies of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

static int usage(void)
{
    fprintf(stderr,
            "usage: imgtool pattern OUT SEED WIDTH HEIGHT   a distinct smooth random picture\n"
            "       imgtool patterns DIR FIRST LAST WIDTH HEIGHT EXT   seeds FIRST..LAST as DIR/wSEED.EXT\n"
            "       imgtool resize IN OUT SCALE\n"
            "       imgtool flip IN OUT                     mirror left-right\n"
            "       imgtool crop IN OUT LEFT TOP WIDTH HEIGHT\n"
            "       imgtool caption IN OUT TEXT             a white band with text under the image\n"
            "       imgtool recolor IN OUT                  warmer, brighter, less contrast\n"
            "       imgtool negate IN OUT                   tones inverted (a photographic negative)\n"
            "       imgtool paste IN OUT SEED WIDTH HEIGHT LEFT TOP SCALE   IN scaled and pasted at LEFT,TOP\n"
            "                                               into a WIDTH x HEIGHT pattern picture\n"
            "       imgtool cutout IN OUT                   IN's brighter half kept on transparency (RGBA;\n"
            "                                               the transparent pixels hide black, as drawings do)\n"
            "       imgtool dropalpha IN OUT                the colour bands only (what hides under alpha shows)\n"
            "The format of OUT follows its extension (.jpg, .png, ...).\n");
    return 2;
}

/* A sum of random cosine waves with amplitude falling as 1/frequency, as in natural images: smooth,
 * photo-like structure at every scale that differs completely from one seed to the next. */
#define WAVES 48
static VipsImage *pattern(unsigned seed, int w, int h)
{
    srand(seed);
    unsigned char *px = malloc((size_t)w * h * 3);
    double kx[3][WAVES], ky[3][WAVES], ph[3][WAVES], amp[3][WAVES];
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < WAVES; k++) {
            double f = 0.5 * __builtin_pow(48.0, (rand() % 1000) / 1000.0); /* 0.5 .. 24 cycles, log-uniform */
            double angle = (rand() % 1000) / 1000.0 * 3.14159;
            kx[c][k] = f * __builtin_cos(angle) / w;
            ky[c][k] = f * __builtin_sin(angle) / h;
            ph[c][k] = (rand() % 1000) / 1000.0 * 6.283;
            amp[c][k] = 60.0 / (1.0 + f);
        }
    /* cos(a + b) = cos a cos b - sin a sin b with a along x and b along y: tables per row and
     * column keep this fast enough to make hundreds of test images in seconds. */
    double *cx = malloc(sizeof(double) * w * WAVES * 3), *sx = malloc(sizeof(double) * w * WAVES * 3);
    double *cy = malloc(sizeof(double) * h * WAVES * 3), *sy = malloc(sizeof(double) * h * WAVES * 3);
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < WAVES; k++) {
            for (int x = 0; x < w; x++) {
                cx[(c * WAVES + k) * w + x] = amp[c][k] * __builtin_cos(6.283 * kx[c][k] * x);
                sx[(c * WAVES + k) * w + x] = amp[c][k] * __builtin_sin(6.283 * kx[c][k] * x);
            }
            for (int y = 0; y < h; y++) {
                cy[(c * WAVES + k) * h + y] = __builtin_cos(6.283 * ky[c][k] * y + ph[c][k]);
                sy[(c * WAVES + k) * h + y] = __builtin_sin(6.283 * ky[c][k] * y + ph[c][k]);
            }
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 128;
                for (int k = 0; k < WAVES; k++) {
                    int i = c * WAVES + k;
                    v += cx[i * w + x] * cy[i * h + y] - sx[i * w + x] * sy[i * h + y];
                }
                px[((size_t)y * w + x) * 3 + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(cx);
    free(sx);
    free(cy);
    free(sy);
    VipsImage *mem = vips_image_new_from_memory_copy(px, (size_t)w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR);
    free(px);
    return mem;
}

int main(int argc, char **argv)
{
    if (VIPS_INIT(argv[0]) || argc < 3)
        return usage();
    const char *cmd = argv[1];
    VipsImage *in = NULL, *out = NULL;
    int rc = -1;
    if (strcmp(cmd, "patterns") == 0 && argc == 8) {
        for (int seed = atoi(argv[3]); seed <= atoi(argv[4]); seed++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/w%d.%s", argv[2], seed, argv[7]);
            VipsImage *img = pattern((unsigned)seed, atoi(argv[5]), atoi(argv[6]));
            if (!img || vips_image_write_to_file(img, path, NULL) != 0) {
                fprintf(stderr, "imgtool: %s\n", vips_error_buffer());
                return 1;
            }
            g_object_unref(img);
        }
        return 0;
    }
    if (strcmp(cmd, "pattern") == 0 && argc == 6) {
        out = pattern((unsigned)atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
        rc = out ? 0 : -1;
    } else {
        if (argc < 4 || !(in = vips_image_new_from_file(argv[2], NULL)))
            return usage();
        if (strcmp(cmd, "resize") == 0 && argc == 5)
            rc = vips_resize(in, &out, atof(argv[4]), NULL);
        else if (strcmp(cmd, "flip") == 0 && argc == 4)
            rc = vips_flip(in, &out, VIPS_DIRECTION_HORIZONTAL, NULL);
        else if (strcmp(cmd, "crop") == 0 && argc == 8)
            rc = vips_crop(in, &out, atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]), NULL);
        else if (strcmp(cmd, "caption") == 0 && argc == 5) {
            VipsImage *text, *band, *inv;
            int h = vips_image_get_height(in) / 5, w = vips_image_get_width(in);
            double white[3] = {255, 255, 255};
            rc = vips_text(&text, argv[4], "width", w - 20, "height", h - 10, NULL) ||
                 vips_invert(text, &inv, NULL) ||
                 vips_embed(inv, &band, 10, 5, w, h, "extend", VIPS_EXTEND_WHITE, NULL) ||
                 vips_join(in, band, &out, VIPS_DIRECTION_VERTICAL, "background", vips_array_double_new(white, 3), NULL);
        } else if (strcmp(cmd, "recolor") == 0 && argc == 4) {
            double a[3] = {0.8, 0.7, 0.55}, b[3] = {50, 40, 20};
            VipsImage *t;
            rc = vips_linear(in, &t, a, b, 3, NULL) || vips_cast_uchar(t, &out, NULL);
        } else if (strcmp(cmd, "negate") == 0 && argc == 4) {
            rc = vips_invert(in, &out, NULL);
        } else if (strcmp(cmd, "paste") == 0 && argc == 10) {
            VipsImage *canvas = pattern((unsigned)atoi(argv[4]), atoi(argv[5]), atoi(argv[6])), *small;
            rc = !canvas || vips_resize(in, &small, atof(argv[9]), NULL) ||
                 vips_insert(canvas, small, &out, atoi(argv[7]), atoi(argv[8]), NULL);
        } else if (strcmp(cmd, "cutout") == 0 && argc == 4) {
            VipsImage *grey, *mask, *keep, *rgb;
            double mean = 0;
            rc = vips_colourspace(in, &grey, VIPS_INTERPRETATION_B_W, NULL) || vips_avg(grey, &mean, NULL) ||
                 vips_relational_const1(grey, &mask, VIPS_OPERATION_RELATIONAL_MORE, mean, NULL) ||
                 vips_ifthenelse(mask, in, vips_image_new_from_image1(in, 0), &keep, NULL) ||
                 vips_cast_uchar(keep, &rgb, NULL) || vips_bandjoin2(rgb, mask, &out, NULL);
        } else if (strcmp(cmd, "dropalpha") == 0 && argc == 4) {
            rc = vips_extract_band(in, &out, 0, "n", 3, NULL);
        } else
            return usage();
    }
    const char *dst = strcmp(cmd, "pattern") == 0 ? argv[2] : argv[3];
    if (rc != 0 || vips_image_write_to_file(out, dst, NULL) != 0) {
        fprintf(stderr, "imgtool: %s\n", vips_error_buffer());
        return 1;
    }
    return 0;
}

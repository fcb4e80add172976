/* evidence.c — the evidence picture of a verified match: query and work side by side, regions outlined, inlier pairs joined (PNG via libpng). */
#include "features/features_internal.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "decode/decode.h"

#define PANEL_H 480 /* both pictures are shown at this height */
#define GAP 12

typedef struct canvas {
    int w, h;
    uint8_t *rgb;
} canvas;

static void put(canvas *c, int x, int y, const uint8_t col[3])
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return;
    memcpy(c->rgb + 3 * ((size_t)y * c->w + x), col, 3);
}

static void line(canvas *c, double x0, double y0, double x1, double y1, const uint8_t col[3], int thick)
{
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1))
        return;
    double len = fmax(fabs(x1 - x0), fabs(y1 - y0));
    if (len > 20000)
        return; /* wildly off-canvas: not worth drawing */
    int steps = (int)len + 1;
    for (int i = 0; i <= steps; i++) {
        double t = (double)i / steps;
        int x = (int)lround(x0 + t * (x1 - x0)), y = (int)lround(y0 + t * (y1 - y0));
        for (int dy = -(thick / 2); dy <= thick / 2; dy++)
            for (int dx = -(thick / 2); dx <= thick / 2; dx++)
                put(c, x + dx, y + dy, col);
    }
}

/* Pastes img scaled by s at (ox, 0), bilinear per channel. */
static void paste(canvas *c, const provscan_image *img, double s, int ox)
{
    int pw = (int)lround(img->width * s), ph = (int)lround(img->height * s);
    for (int y = 0; y < ph && y < c->h; y++) {
        double sy = (y + 0.5) / s - 0.5;
        int y0 = (int)floor(sy);
        double fy = sy - y0;
        int ya = y0 < 0 ? 0 : y0 >= img->height ? img->height - 1 : y0;
        int yb = y0 + 1 < 0 ? 0 : y0 + 1 >= img->height ? img->height - 1 : y0 + 1;
        for (int x = 0; x < pw; x++) {
            double sx = (x + 0.5) / s - 0.5;
            int x0 = (int)floor(sx);
            double fx = sx - x0;
            int xa = x0 < 0 ? 0 : x0 >= img->width ? img->width - 1 : x0;
            int xb = x0 + 1 < 0 ? 0 : x0 + 1 >= img->width ? img->width - 1 : x0 + 1;
            uint8_t col[3];
            for (int ch = 0; ch < 3; ch++) {
                int k = img->channels == 3 ? ch : 0, nc = img->channels;
                double a = img->pixels[((size_t)ya * img->width + xa) * nc + k];
                double b = img->pixels[((size_t)ya * img->width + xb) * nc + k];
                double cc = img->pixels[((size_t)yb * img->width + xa) * nc + k];
                double d = img->pixels[((size_t)yb * img->width + xb) * nc + k];
                double v = (a * (1 - fx) + b * fx) * (1 - fy) + (cc * (1 - fx) + d * fx) * fy;
                /* Dimmed so the overlay stands out. */
                col[ch] = (uint8_t)lround(v * 0.75);
            }
            put(c, ox + x, y, col);
        }
    }
}

static void outline(canvas *c, const float *p, double s, int ox, const uint8_t col[3])
{
    for (int i = 0; i < 4; i++) {
        int j = (i + 1) % 4;
        line(c, ox + p[2 * i] * s, p[2 * i + 1] * s, ox + p[2 * j] * s, p[2 * j + 1] * s, col, 3);
    }
}

typedef struct png_ctx {
    jmp_buf jb;
    char msg[200];
} png_ctx;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    longjmp(ctx->jb, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static provscan_status write_png(const char *path, const canvas *c, provscan_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return ps_fail(err, PROVSCAN_E_IO, "%s: cannot create: %s", path, strerror(errno));
    png_ctx ctx;
    ctx.msg[0] = '\0';
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return ps_fail(err, PROVSCAN_E_NOMEM, "%s: out of memory", path);
    }
    if (setjmp(ctx.jb)) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(path);
        return ps_fail(err, PROVSCAN_E_IO, "%s: cannot write PNG: %s", path, ctx.msg);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    for (int y = 0; y < c->h; y++)
        png_write_row(png, c->rgb + 3 * (size_t)y * c->w);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) {
        remove(path);
        return ps_fail(err, PROVSCAN_E_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return PROVSCAN_OK;
}

provscan_status ps_evidence_write_png(const char *path, const provscan_image *query, const provscan_image *work,
                                      const ps_geo_match *m, provscan_error *err)
{
    if (!path || !query || !work || !m || query->width < 1 || work->width < 1 || query->height < 1 ||
        work->height < 1)
        return ps_fail(err, PROVSCAN_E_ARG, "evidence: missing image or match");
    double sq = (double)PANEL_H / query->height, sw = (double)PANEL_H / work->height;
    /* Very wide pictures are shown smaller so the canvas stays reasonable. */
    if (query->width * sq > 1600)
        sq = 1600.0 / query->width;
    if (work->width * sw > 1600)
        sw = 1600.0 / work->width;
    int qw = (int)lround(query->width * sq), ww = (int)lround(work->width * sw);
    canvas c = {qw + GAP + ww, PANEL_H, NULL};
    c.rgb = calloc((size_t)c.w * c.h, 3);
    if (!c.rgb)
        return ps_fail(err, PROVSCAN_E_NOMEM, "%s: out of memory", path);
    memset(c.rgb, 32, (size_t)c.w * c.h * 3);
    paste(&c, query, sq, 0);
    int ox = qw + GAP;
    paste(&c, work, sw, ox);
    static const uint8_t green[3] = {40, 230, 60}, orange[3] = {255, 150, 0}, cyan[3] = {0, 220, 255};
    if (m->inliers > 0) {
        for (int i = 0; i < m->npairs; i++) {
            const float *p = m->pairs + 4 * i;
            line(&c, p[0] * sq, p[1] * sq, ox + p[2] * sw, p[3] * sw, cyan, 1);
        }
        outline(&c, m->query_poly, sq, 0, m->mirrored ? orange : green);
        outline(&c, m->work_poly, sw, ox, m->mirrored ? orange : green);
    }
    provscan_status st = write_png(path, &c, err);
    free(c.rgb);
    return st;
}

/* phash.c — pHash (32x32 area resize, DCT, 8x8 low band vs median) and dHash (9x8 area resize, gradients). */
#include "hash/hash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Area-average resampling of a float image to ow x oh: every output pixel is the mean of the
 * source area it covers, fractional edge pixels weighted by coverage. Double precision and a
 * fixed order keep it deterministic. */
static int area_resize(const float *in, int w, int h, double *out, int ow, int oh)
{
    double *rows = calloc((size_t)oh * w, sizeof *rows); /* vertical pass first: oh x w */
    if (!rows)
        return -1;
    double sy = (double)h / oh, sx = (double)w / ow;
    for (int oy = 0; oy < oh; oy++) {
        double y0 = oy * sy, y1 = (oy + 1) * sy;
        double *dst = rows + (size_t)oy * w;
        for (int y = (int)y0; y < h && y < y1; y++) {
            double wgt = fmin(y + 1, y1) - fmax(y, y0);
            if (wgt <= 0)
                continue;
            const float *src = in + (size_t)y * w;
            for (int x = 0; x < w; x++)
                dst[x] += wgt * src[x];
        }
        for (int x = 0; x < w; x++)
            dst[x] /= sy;
    }
    for (int oy = 0; oy < oh; oy++) {
        const double *src = rows + (size_t)oy * w;
        for (int ox = 0; ox < ow; ox++) {
            double x0 = ox * sx, x1 = (ox + 1) * sx, acc = 0;
            for (int x = (int)x0; x < w && x < x1; x++) {
                double wgt = fmin(x + 1, x1) - fmax(x, x0);
                if (wgt > 0)
                    acc += wgt * src[x];
            }
            out[oy * ow + ox] = acc / sx;
        }
    }
    free(rows);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t phash_of(const double *img32)
{
    /* Separable 32-point DCT-II; only frequencies 1..8 are needed on each axis (the DC row and
     * column carry brightness, not structure). */
    double basis[9][32];
    for (int u = 1; u <= 8; u++)
        for (int x = 0; x < 32; x++)
            basis[u][x] = cos(M_PI * u * (2 * x + 1) / 64.0);
    double t[9][32]; /* t[u][x] = sum_y basis[u][y] * img[y][x] */
    for (int u = 1; u <= 8; u++)
        for (int x = 0; x < 32; x++) {
            double s = 0;
            for (int y = 0; y < 32; y++)
                s += basis[u][y] * img32[y * 32 + x];
            t[u][x] = s;
        }
    double c[64], sorted[64];
    for (int u = 1; u <= 8; u++)
        for (int v = 1; v <= 8; v++) {
            double s = 0;
            for (int x = 0; x < 32; x++)
                s += t[u][x] * basis[v][x];
            c[(u - 1) * 8 + (v - 1)] = s;
        }
    memcpy(sorted, c, sizeof c);
    qsort(sorted, 64, sizeof *sorted, cmp_double);
    double median = sorted[31];
    uint64_t bits = 0;
    for (int i = 0; i < 64; i++)
        if (c[i] > median)
            bits |= 1ull << i;
    return bits;
}

static uint64_t dhash_of(const double *img9x8)
{
    uint64_t bits = 0;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            if (img9x8[y * 9 + x + 1] > img9x8[y * 9 + x])
                bits |= 1ull << (y * 8 + x);
    return bits;
}

provscan_status ps_phash_dhash_from_luma(const float *luma, int width, int height, uint64_t *phash, uint64_t *dhash)
{
    if (width < 5 || height < 5)
        return PROVSCAN_E_TOO_SMALL;
    double img32[32 * 32], img9[9 * 8];
    if (area_resize(luma, width, height, img32, 32, 32) != 0 || area_resize(luma, width, height, img9, 9, 8) != 0)
        return PROVSCAN_E_NOMEM;
    *phash = phash_of(img32);
    *dhash = dhash_of(img9);
    return PROVSCAN_OK;
}

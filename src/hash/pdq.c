/* pdq.c — PDQ: Jarosz tent blur, 64x64 decimation, quality, 16x16 DCT, median bits, 8 dihedral variants. */
#include "hash/hash.h"
#include "common/error.h"
#include "cpu/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The DCT matrix is built exactly as the reference builds it (float scale, product in double,
 * stored as float): any other rounding would flip bits near the median. */
static float dct_matrix[16 * 64], dct_matrix_t[64 * 16];
static pthread_once_t dct_once = PTHREAD_ONCE_INIT;

static void build_dct(void)
{
    const float scale = (float)sqrt(2.0 / 64.0);
    for (int u = 0; u < 16; u++) {
        for (int x = 0; x < 64; x++) {
            float v = (float)(scale * cos((M_PI / 2 / 64) * (u + 1) * (2 * x + 1)));
            dct_matrix[u * 64 + x] = v;
            dct_matrix_t[x * 16 + u] = v;
        }
    }
}

static int window_for(int dim)
{
    return (dim + 127) / 128;   /* ceil(dim / (2*64)): two box passes span one output cell */
}

static int quality_of(const float *G)
{
    int sum = 0;
    for (int i = 0; i < 63; i++) {
        for (int j = 0; j < 64; j++) {
            float d = ((G[i * 64 + j] - G[(i + 1) * 64 + j]) * 100) / 255;
            sum += (int)fabsf(d);
        }
    }
    for (int i = 0; i < 64; i++) {
        for (int j = 0; j < 63; j++) {
            float d = ((G[i * 64 + j] - G[i * 64 + j + 1]) * 100) / 255;
            sum += (int)fabsf(d);
        }
    }
    int q = sum / 90;
    return q > 100 ? 100 : q;
}

/* The 128th smallest of 256 values (the lower median), by quickselect on a copy. Any exact
 * selection returns the same value, so bits do not depend on the method. */
static float lower_median(const float *values)
{
    float a[256];
    memcpy(a, values, sizeof a);
    int lo = 0, hi = 255, k = 127;
    while (lo < hi) {
        float pivot = a[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                float t = a[i]; a[i] = a[j]; a[j] = t;
                i++; j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break;
    }
    return a[k];
}

/* Bits of one 16x16 coefficient matrix: bit 16u+v is set when C[u][v] > median. */
static void bits_of(const float *C, provscan_pdq *out)
{
    float m = lower_median(C);
    memset(out->bytes, 0, sizeof out->bytes);
    for (int k = 0; k < 256; k++)
        if (C[k] > m)
            out->bytes[31 - k / 8] |= (uint8_t)(1u << (k % 8));
}

/* Dihedral variants from one DCT (docs/hashes.md): a transposition and sign flips of the
 * coefficients of odd frequency along the mirrored axes. */
static void dihedral_hashes(const float *C, provscan_pdq out[PROVSCAN_DIHEDRAL_COUNT])
{
    static const struct { int transpose, neg_u_even, neg_v_even; } spec[PROVSCAN_DIHEDRAL_COUNT] = {
        [PROVSCAN_D_ORIGINAL] = {0, 0, 0},  [PROVSCAN_D_ROT90] = {1, 0, 1},
        [PROVSCAN_D_ROT180] = {0, 1, 1},    [PROVSCAN_D_ROT270] = {1, 1, 0},
        [PROVSCAN_D_FLIPX] = {0, 1, 0},     [PROVSCAN_D_FLIPY] = {0, 0, 1},
        [PROVSCAN_D_FLIPPLUS1] = {1, 0, 0}, [PROVSCAN_D_FLIPMINUS1] = {1, 1, 1},
    };
    for (int t = 0; t < PROVSCAN_DIHEDRAL_COUNT; t++) {
        float V[256];
        for (int u = 0; u < 16; u++) {
            for (int v = 0; v < 16; v++) {
                float c = C[u * 16 + v];
                int neg = (spec[t].neg_u_even && u % 2 == 0) ^ (spec[t].neg_v_even && v % 2 == 0);
                if (neg)
                    c = -c;
                if (spec[t].transpose)
                    V[v * 16 + u] = c;
                else
                    V[u * 16 + v] = c;
            }
        }
        bits_of(V, &out[t]);
    }
}

/* Where output cell i samples a dimension of `dim` pixels that stands for `full` pixels: the
 * reference picks pixel floor((i+0.5)*full/64) of the full-resolution picture; on a smaller
 * picture that pixel's centre falls at a fractional position, read by linear interpolation. */
typedef struct sample_pos {
    int lo, hi;   /* neighbouring pixels */
    float frac;   /* weight of hi */
} sample_pos;

static void sample_positions(int dim, int full, sample_pos pos[64])
{
    for (int i = 0; i < 64; i++) {
        int ref = (int)((i + 0.5) * full / 64);
        if (full == dim) {
            pos[i] = (sample_pos){ref, ref, 0.0f};
            continue;
        }
        double c = (ref + 0.5) * dim / full - 0.5;
        if (c < 0)
            c = 0;
        if (c > dim - 1)
            c = dim - 1;
        int lo = (int)c;
        int hi = lo + 1 < dim ? lo + 1 : lo;
        pos[i] = (sample_pos){lo, hi, (float)(c - lo)};
    }
}

/* Filter window along a dimension: the reference's ceil(full/128), scaled to the decoded size. */
static int window_for_scaled(int dim, int full)
{
    if (full == dim)
        return window_for(dim);
    int w = (int)lround((double)window_for(full) * dim / full);
    if (w < 1)
        w = 1;
    return w > dim ? dim : w;
}

provscan_status ps_pdq_from_luma(float *luma, int width, int height, int full_width, int full_height,
                                 provscan_pdq out[PROVSCAN_DIHEDRAL_COUNT], int *quality)
{
    if (width < 5 || height < 5)
        return PROVSCAN_E_TOO_SMALL;
    if (full_width < width || full_height < height) {
        full_width = width;
        full_height = height;
    }
    pthread_once(&dct_once, build_dct);
    const ps_kernels *k = ps_kernels_get();
    size_t n = (size_t)width * height;
    int wx = window_for_scaled(width, full_width), wy = window_for_scaled(height, full_height);
    sample_pos rows[64], cols[64];
    sample_positions(height, full_height, rows);
    sample_positions(width, full_width, cols);

    float *tmp = malloc(n * sizeof *tmp);
    float *picked = malloc((size_t)height * 128 * sizeof *picked);
    float *picked_out = malloc((size_t)height * 128 * sizeof *picked_out);
    if (!tmp || !picked || !picked_out) {
        free(tmp); free(picked); free(picked_out);
        return PROVSCAN_E_NOMEM;
    }

    /* Passes H, V, H, V. The last vertical pass is only read at the sampled columns (two per
     * output column: the neighbours interpolated between), and each column is filtered
     * independently, so it runs on those columns alone: same values, far less work. */
    k->box_rows(luma, tmp, height, width, wx);
    k->box_cols(tmp, luma, height, width, wy);
    k->box_rows(luma, tmp, height, width, wx);
    for (int r = 0; r < height; r++) {
        const float *row = tmp + (size_t)r * width;
        float *dst = picked + (size_t)r * 128;
        for (int j = 0; j < 64; j++) {
            dst[j] = row[cols[j].lo];
            dst[64 + j] = row[cols[j].hi];
        }
    }
    k->box_cols(picked, picked_out, height, 128, wy);

    float G[64 * 64] __attribute__((aligned(64)));
    for (int i = 0; i < 64; i++) {
        const float *lo = picked_out + (size_t)rows[i].lo * 128, *hi = picked_out + (size_t)rows[i].hi * 128;
        float fy = rows[i].frac;
        for (int j = 0; j < 64; j++) {
            if (fy == 0.0f && cols[j].frac == 0.0f) {
                G[i * 64 + j] = lo[j]; /* the reference's nearest-pixel pick, bit-exact */
                continue;
            }
            float fx = cols[j].frac;
            float top = lo[j] + fx * (lo[64 + j] - lo[j]);
            float bottom = hi[j] + fx * (hi[64 + j] - hi[j]);
            G[i * 64 + j] = top + fy * (bottom - top);
        }
    }
    free(tmp);
    free(picked);
    free(picked_out);

    *quality = quality_of(G);
    float C[256] __attribute__((aligned(64)));
    k->dct16(G, dct_matrix, dct_matrix_t, C);
    dihedral_hashes(C, out);
    return PROVSCAN_OK;
}

float *ps_luma_from_pixels(const uint8_t *pixels, int width, int height, int channels)
{
    size_t n = (size_t)width * height;
    float *luma = malloc(n * sizeof *luma);
    if (!luma)
        return NULL;
    const ps_kernels *k = ps_kernels_get();
    if (channels == 3)
        k->luma_from_rgb(pixels, n, luma);
    else
        k->float_from_grey(pixels, n, luma);
    return luma;
}

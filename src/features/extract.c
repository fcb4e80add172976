/* extract.c — keypoint detection (FAST-9 on a sqrt(2) pyramid, Harris ranking, grid spreading), orientation and the learned binary descriptor. */
#include "features/features_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "decode/decode.h"

#define FAST_T_HIGH 12   /* first FAST threshold; a level short of candidates is retried at FAST_T_LOW */
#define FAST_T_LOW 6
#define BORDER 19        /* patch radius 15, rounding of steered points, Harris window */
#define MIN_LEVEL_SIDE 56
#define HARRIS_R 3       /* 7x7 Harris window, as ORB */
#define CAND_PER_CELL 6  /* FAST-score survivors per grid cell that get a Harris response */

void ps_feature_params_default(ps_feature_params *p)
{
    p->max_features = PS_FEATURES_DEFAULT_MAX;
}

void ps_features_free(ps_features *f)
{
    if (!f)
        return;
    free(f->kp);
    free(f->desc);
    f->kp = NULL;
    f->desc = NULL;
    f->n = 0;
}

/* ---------------------------------------------------------------------------------------------
 * Resampling.
 * ------------------------------------------------------------------------------------------- */
typedef struct taps {
    int *first, *count;
    float *w; /* count[i] weights from first[i], row of maxtaps per output */
    int maxtaps;
} taps;

static int taps_make(taps *t, int in, int out)
{
    double scale = (double)out / in;
    double r = scale < 1.0 ? 1.0 / scale : 1.0; /* tent half-width in input pixels */
    t->maxtaps = (int)ceil(2 * r) + 2;
    t->first = malloc(sizeof(int) * (size_t)out);
    t->count = malloc(sizeof(int) * (size_t)out);
    t->w = malloc(sizeof(float) * (size_t)out * (size_t)t->maxtaps);
    if (!t->first || !t->count || !t->w)
        return -1;
    for (int i = 0; i < out; i++) {
        double c = (i + 0.5) / scale - 0.5;
        int lo = (int)floor(c - r) + 1, hi = (int)ceil(c + r) - 1;
        if (lo < 0)
            lo = 0;
        if (hi > in - 1)
            hi = in - 1;
        if (hi < lo)
            lo = hi = (int)fmin(fmax(floor(c + 0.5), 0), in - 1);
        double sum = 0;
        int n = 0;
        float *w = t->w + (size_t)i * t->maxtaps;
        for (int j = lo; j <= hi && n < t->maxtaps; j++, n++) {
            double d = 1.0 - fabs(j - c) / r;
            w[n] = (float)(d > 0 ? d : 0);
            sum += w[n];
        }
        if (sum <= 0) {
            w[0] = 1.0f;
            n = 1;
            sum = 1;
        }
        for (int k = 0; k < n; k++)
            w[k] = (float)(w[k] / sum);
        t->first[i] = lo;
        t->count[i] = n;
    }
    return 0;
}

static void taps_free(taps *t)
{
    free(t->first);
    free(t->count);
    free(t->w);
}

void ps_resample_grey(const uint8_t *src, int sw, int sh, size_t sstride, uint8_t *dst, int dw, int dh,
                      size_t dstride)
{
    taps tx = {0}, ty = {0};
    float *tmp = malloc(sizeof(float) * (size_t)dw * (size_t)sh);
    if (!tmp || taps_make(&tx, sw, dw) || taps_make(&ty, sh, dh)) {
        /* Out of memory: nearest neighbour keeps the caller going with sane pixels. */
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++)
                dst[(size_t)y * dstride + x] = src[(size_t)(y * sh / dh) * sstride + (size_t)(x * sw / dw)];
        free(tmp);
        taps_free(&tx);
        taps_free(&ty);
        return;
    }
    for (int y = 0; y < sh; y++) {
        const uint8_t *s = src + (size_t)y * sstride;
        float *o = tmp + (size_t)y * dw;
        for (int x = 0; x < dw; x++) {
            const float *w = tx.w + (size_t)x * tx.maxtaps;
            const uint8_t *p = s + tx.first[x];
            float acc = 0;
            for (int k = 0; k < tx.count[x]; k++)
                acc += w[k] * (float)p[k];
            o[x] = acc;
        }
    }
    float *acc = malloc(sizeof(float) * (size_t)dw);
    for (int y = 0; y < dh; y++) {
        const float *w = ty.w + (size_t)y * ty.maxtaps;
        uint8_t *o = dst + (size_t)y * dstride;
        if (acc) {
            memset(acc, 0, sizeof(float) * (size_t)dw);
            for (int k = 0; k < ty.count[y]; k++) {
                const float *r = tmp + (size_t)(ty.first[y] + k) * dw;
                float wk = w[k];
                for (int x = 0; x < dw; x++)
                    acc[x] += wk * r[x];
            }
            for (int x = 0; x < dw; x++) {
                float v = acc[x] + 0.5f;
                o[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : (int)v);
            }
        }
    }
    free(acc);
    free(tmp);
    taps_free(&tx);
    taps_free(&ty);
}

double ps_features_work_scale(int w, int h)
{
    int lo = w < h ? w : h, hi = w > h ? w : h;
    double s = (double)PS_WORK_SIDE / hi;
    /* A banner would keep too few rows for the pyramid: its shorter side is brought to 160 while
     * the longer stays within twice the working side. */
    if (lo * s < 160)
        s = fmin(160.0 / lo, 2.0 * PS_WORK_SIDE / hi);
    return s > 2.0 ? 2.0 : s; /* enlarging further only invents blur */
}

provscan_status ps_features_working_grey(const provscan_image *img, uint8_t **grey, int *w, int *h, float *scale)
{
    *grey = NULL;
    if (!img || img->width < 1 || img->height < 1 || !img->pixels || (img->channels != 1 && img->channels != 3))
        return PROVSCAN_E_ARG;
    int iw = img->width, ih = img->height;
    double s = ps_features_work_scale(iw, ih);
    int ow = (int)lround(iw * s), oh = (int)lround(ih * s);
    if (ow < 1)
        ow = 1;
    if (oh < 1)
        oh = 1;
    size_t npix = (size_t)iw * ih;
    uint8_t *g = NULL;
    const uint8_t *src = img->pixels;
    if (img->channels == 3) {
        g = malloc(npix);
        if (!g)
            return PROVSCAN_E_NOMEM;
        for (size_t i = 0; i < npix; i++) {
            const uint8_t *p = img->pixels + 3 * i;
            g[i] = (uint8_t)((77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8);
        }
        src = g;
    }
    uint8_t *out = malloc((size_t)ow * oh);
    if (!out) {
        free(g);
        return PROVSCAN_E_NOMEM;
    }
    if (ow == iw && oh == ih)
        memcpy(out, src, npix);
    else
        ps_resample_grey(src, iw, ih, (size_t)iw, out, ow, oh, (size_t)ow);
    free(g);
    *grey = out;
    *w = ow;
    *h = oh;
    *scale = (float)((double)ow / iw); /* per-axis rounding differs by < 1 pixel */
    return PROVSCAN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Pyramid: level 1 resampled by 1/sqrt(2), every other level a 2x2 average of the level two above,
 * so only one non-integer resampling is paid.
 * ------------------------------------------------------------------------------------------- */
typedef struct level {
    int w, h;
    uint8_t *img;     /* w x h, stride w */
    uint8_t *smooth;  /* same size, stride = common stride (so steered offsets are shared) */
    double fx, fy;    /* level-0 pixels per level pixel */
} level;

static void halve(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    (void)sh;
    for (int y = 0; y < dh; y++) {
        const uint8_t *a = src + (size_t)(2 * y) * sw, *b = a + sw;
        uint8_t *o = dst + (size_t)y * dw;
        for (int x = 0; x < dw; x++)
            o[x] = (uint8_t)((a[2 * x] + a[2 * x + 1] + b[2 * x] + b[2 * x + 1] + 2) >> 2);
    }
}

/* 7-tap binomial (1 6 15 20 15 6 1)/64 in both directions, edges replicated, exact integer
 * rounding: the descriptor's tests compare these values. Interior loops are branch-free so the
 * compiler vectorises them; integer arithmetic keeps every build bit-identical. */
static inline uint16_t tap7_edge(const uint8_t *s, int w, int x)
{
    int v[7];
    for (int k = -3; k <= 3; k++) {
        int xx = x + k < 0 ? 0 : x + k >= w ? w - 1 : x + k;
        v[k + 3] = s[xx];
    }
    return (uint16_t)(v[0] + v[6] + 6 * (v[1] + v[5]) + 15 * (v[2] + v[4]) + 20 * v[3]);
}

static void smooth7(const uint8_t *src, int w, int h, uint8_t *dst, size_t dstride, uint16_t *tmp)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *s = src + (size_t)y * w;
        uint16_t *t = tmp + (size_t)y * w;
        int e = w < 3 ? w : 3;
        for (int x = 0; x < e; x++)
            t[x] = tap7_edge(s, w, x);
        for (int x = 3; x < w - 3; x++)
            t[x] = (uint16_t)(s[x - 3] + s[x + 3] + 6 * (s[x - 2] + s[x + 2]) + 15 * (s[x - 1] + s[x + 1]) +
                              20 * s[x]);
        for (int x = w - 3 > e ? w - 3 : e; x < w; x++)
            t[x] = tap7_edge(s, w, x);
    }
    for (int y = 0; y < h; y++) {
        int r[7];
        for (int k = -3; k <= 3; k++) {
            int yy = y + k;
            r[k + 3] = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
        }
        const uint16_t *restrict a = tmp + (size_t)r[0] * w, *restrict b = tmp + (size_t)r[1] * w,
                                 *restrict c = tmp + (size_t)r[2] * w, *restrict d = tmp + (size_t)r[3] * w,
                                 *restrict e = tmp + (size_t)r[4] * w, *restrict f = tmp + (size_t)r[5] * w,
                                 *restrict g = tmp + (size_t)r[6] * w;
        uint8_t *restrict o = dst + (size_t)y * dstride;
        for (int x = 0; x < w; x++) {
            uint32_t v = (uint32_t)a[x] + g[x] + 6u * ((uint32_t)b[x] + f[x]) + 15u * ((uint32_t)c[x] + e[x]) +
                         20u * d[x];
            o[x] = (uint8_t)((v + 2048) >> 12);
        }
    }
}

static void levels_free(level *lv, int n)
{
    for (int i = 0; i < n; i++)
        free(lv[i].img);
}

/* Builds the pyramid of grey (w x h); returns the number of levels (0 on allocation failure). */
static int build_pyramid(const uint8_t *grey, int w, int h, level *lv, uint8_t **smooth_block, size_t *sstride)
{
    int n = 0;
    for (int l = 0; l < PS_MAX_LEVELS; l++) {
        int lw, lh;
        if (l == 0) {
            lw = w;
            lh = h;
        } else if (l == 1) {
            lw = (int)lround(w / M_SQRT2);
            lh = (int)lround(h / M_SQRT2);
        } else {
            lw = lv[l - 2].w / 2;
            lh = lv[l - 2].h / 2;
        }
        if (lw < MIN_LEVEL_SIDE || lh < MIN_LEVEL_SIDE)
            break;
        lv[l].w = lw;
        lv[l].h = lh;
        lv[l].img = malloc((size_t)lw * lh);
        if (!lv[l].img) {
            levels_free(lv, l);
            return 0;
        }
        if (l == 0) {
            memcpy(lv[0].img, grey, (size_t)w * h);
            lv[0].fx = lv[0].fy = 1.0;
        } else if (l == 1) {
            ps_resample_grey(grey, w, h, (size_t)w, lv[1].img, lw, lh, (size_t)lw);
            lv[1].fx = (double)w / lw;
            lv[1].fy = (double)h / lh;
        } else {
            halve(lv[l - 2].img, lv[l - 2].w, lv[l - 2].h, lv[l].img, lw, lh);
            lv[l].fx = lv[l - 2].fx * 2;
            lv[l].fy = lv[l - 2].fy * 2;
        }
        n = l + 1;
    }
    if (!n)
        return 0;
    /* All smoothed levels share level 0's stride, so one table of steered offsets serves them all. */
    size_t stride = (size_t)lv[0].w, total = 0;
    for (int l = 0; l < n; l++)
        total += stride * lv[l].h;
    uint8_t *block = malloc(total);
    uint16_t *tmp = malloc(sizeof(uint16_t) * (size_t)lv[0].w * lv[0].h);
    if (!block || !tmp) {
        free(block);
        free(tmp);
        levels_free(lv, n);
        return 0;
    }
    size_t off = 0;
    for (int l = 0; l < n; l++) {
        lv[l].smooth = block + off;
        smooth7(lv[l].img, lv[l].w, lv[l].h, lv[l].smooth, stride, tmp);
        off += stride * lv[l].h;
    }
    free(tmp);
    *smooth_block = block;
    *sstride = stride;
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Detection on one level.
 * ------------------------------------------------------------------------------------------- */
typedef struct cand {
    float response;
    uint16_t x, y;
    uint16_t fast;
    uint8_t level;
    uint8_t pad;
    int rank; /* position within its grid cell after sorting */
    int cell;
} cand;

typedef struct cand_vec {
    cand *v;
    size_t n, cap;
} cand_vec;

static int cand_push(cand_vec *cv, cand c)
{
    if (cv->n == cv->cap) {
        size_t nc = cv->cap ? 2 * cv->cap : 1024;
        cand *nv = realloc(cv->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        cv->v = nv;
        cv->cap = nc;
    }
    cv->v[cv->n++] = c;
    return 0;
}

/* Harris response on a 7x7 window of central differences; integer sums keep it exact. */
static float harris(const uint8_t *img, int w, int x, int y)
{
    int64_t sxx = 0, syy = 0, sxy = 0;
    for (int dy = -HARRIS_R; dy <= HARRIS_R; dy++) {
        const uint8_t *r = img + (size_t)(y + dy) * w + x;
        for (int dx = -HARRIS_R; dx <= HARRIS_R; dx++) {
            int gx = r[dx + 1] - r[dx - 1];
            int gy = r[dx + w] - r[dx - w];
            sxx += gx * gx;
            syy += gy * gy;
            sxy += gx * gy;
        }
    }
    double a = (double)sxx, b = (double)syy, c = (double)sxy;
    double resp = a * b - c * c - 0.04 * (a + b) * (a + b);
    return (float)(resp * (1.0 / (49.0 * 49.0 * 4.0)));
}

/* Corner candidates of one level after 3x3 non-maximum suppression. The FAST kernel lists each
 * row's corners, so suppression visits corners only, not every pixel. */
static int detect_level(const level *L, int li, int t, cand_vec *out, uint16_t *score, uint16_t *xs, int *rowstart)
{
    const ps_kernels *k = ps_kernels_get();
    int w = L->w, h = L->h;
    int x0 = BORDER - 1, x1 = w - BORDER + 1;
    int total = 0;
    for (int y = BORDER - 1; y <= h - BORDER; y++) {
        rowstart[y] = total;
        total += k->fast9_row(L->img + (size_t)y * w, w, x0, x1, t, score + (size_t)y * w + x0, xs + total);
    }
    rowstart[h - BORDER + 1] = total;
    int added = 0;
    /* A corner survives when it beats the neighbours before it (raster order) and is not beaten
     * by those after it, so a plateau keeps exactly one point. */
    for (int y = BORDER; y < h - BORDER; y++) {
        const uint16_t *up = score + (size_t)(y - 1) * w, *mid = score + (size_t)y * w, *dn = mid + w;
        for (int i = rowstart[y]; i < rowstart[y + 1]; i++) {
            int x = xs[i];
            if (x < BORDER || x >= w - BORDER)
                continue;
            unsigned s = mid[x];
            if (s <= up[x - 1] || s <= up[x] || s <= up[x + 1] || s <= mid[x - 1] || s < mid[x + 1] ||
                s < dn[x - 1] || s < dn[x] || s < dn[x + 1])
                continue;
            cand c = {0};
            c.x = (uint16_t)x;
            c.y = (uint16_t)y;
            c.fast = (uint16_t)s;
            c.level = (uint8_t)li;
            if (cand_push(out, c))
                return -1;
            added++;
        }
    }
    return added;
}

static int cmp_fast_desc(const void *a, const void *b)
{
    const cand *p = a, *q = b;
    if (p->cell != q->cell)
        return p->cell < q->cell ? -1 : 1;
    if (p->fast != q->fast)
        return p->fast > q->fast ? -1 : 1;
    if (p->y != q->y)
        return p->y < q->y ? -1 : 1;
    return p->x < q->x ? -1 : p->x > q->x;
}

static int cmp_resp_in_cell(const void *a, const void *b)
{
    const cand *p = a, *q = b;
    if (p->cell != q->cell)
        return p->cell < q->cell ? -1 : 1;
    if (p->response != q->response)
        return p->response > q->response ? -1 : 1;
    if (p->y != q->y)
        return p->y < q->y ? -1 : 1;
    return p->x < q->x ? -1 : p->x > q->x;
}

/* Round-robin over cells: every cell's best first, then every cell's second, ...; within a round
 * the stronger response first. This spreads features over the image yet keeps the strong ones. */
static int cmp_rank(const void *a, const void *b)
{
    const cand *p = a, *q = b;
    if (p->rank != q->rank)
        return p->rank < q->rank ? -1 : 1;
    if (p->response != q->response)
        return p->response > q->response ? -1 : 1;
    if (p->level != q->level)
        return p->level < q->level ? -1 : 1;
    if (p->y != q->y)
        return p->y < q->y ? -1 : 1;
    return p->x < q->x ? -1 : p->x > q->x;
}

/* Ranks the candidates of one level (in place): grid cells sized so the level's quota is about
 * two per cell, the best CAND_PER_CELL by FAST score get a Harris response, and the order becomes
 * round-robin over cells. Returns how many are ranked (the rest are dropped). */
static size_t rank_level(cand *c, size_t n, const level *L, int quota)
{
    if (!n)
        return 0;
    int cells = quota / 2 > 4 ? quota / 2 : 4;
    double aw = L->w - 2 * BORDER, ah = L->h - 2 * BORDER;
    double side = sqrt(aw * ah / cells);
    if (side < 8)
        side = 8;
    int gx = (int)ceil(aw / side), gy = (int)ceil(ah / side);
    if (gx < 1)
        gx = 1;
    if (gy < 1)
        gy = 1;
    for (size_t i = 0; i < n; i++) {
        int cx = (int)((c[i].x - BORDER) / side), cy = (int)((c[i].y - BORDER) / side);
        if (cx >= gx)
            cx = gx - 1;
        if (cy >= gy)
            cy = gy - 1;
        c[i].cell = cy * gx + cx;
    }
    /* Per cell, the CAND_PER_CELL best by FAST score (ties: raster order), found in one pass with a
     * small insertion list per cell instead of sorting every candidate. */
    int ncell = gx * gy;
    cand *top = malloc(sizeof(cand) * (size_t)ncell * CAND_PER_CELL);
    int *cnt = calloc((size_t)ncell, sizeof(int));
    if (!top || !cnt) {
        free(top);
        free(cnt);
        qsort(c, n, sizeof *c, cmp_fast_desc);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        cand *t = top + (size_t)c[i].cell * CAND_PER_CELL;
        int *k = &cnt[c[i].cell];
        int pos = *k;
        while (pos > 0 && cmp_fast_desc(&c[i], &t[pos - 1]) < 0)
            pos--;
        if (pos >= CAND_PER_CELL)
            continue;
        int last = *k < CAND_PER_CELL ? *k : CAND_PER_CELL - 1;
        for (int j = last; j > pos; j--)
            t[j] = t[j - 1];
        t[pos] = c[i];
        if (*k < CAND_PER_CELL)
            (*k)++;
    }
    size_t m = 0;
    for (int cell = 0; cell < ncell; cell++)
        for (int j = 0; j < cnt[cell]; j++) {
            c[m] = top[(size_t)cell * CAND_PER_CELL + j];
            c[m].response = harris(L->img, L->w, c[m].x, c[m].y);
            m++;
        }
    free(top);
    free(cnt);
    qsort(c, m, sizeof *c, cmp_resp_in_cell);
    /* Weak corners (Harris response <= 0: edges, flat) rank after all proper corners. */
    for (size_t i = 0; i < m;) {
        size_t j = i;
        int r = 0;
        while (j < m && c[j].cell == c[i].cell) {
            c[j].rank = c[j].response > 0 ? r++ : 1000000 + (int)(j - i);
            j++;
        }
        i = j;
    }
    qsort(c, m, sizeof *c, cmp_rank);
    return m;
}

/* ---------------------------------------------------------------------------------------------
 * Orientation and descriptor.
 * ------------------------------------------------------------------------------------------- */
static int disc_half[PS_PATCH_RADIUS + 1];

static void disc_init(void)
{
    for (int v = 0; v <= PS_PATCH_RADIUS; v++)
        disc_half[v] = (int)floor(sqrt((double)PS_PATCH_RADIUS * PS_PATCH_RADIUS - (double)v * v) + 1e-9);
}

/* Intensity-centroid orientation in [0, 2*pi) (the disc is symmetric, so a mirrored patch gets
 * pi - angle exactly). */
static float orientation(const uint8_t *img, int w, int x, int y)
{
    int64_t m10 = 0, m01 = 0;
    const uint8_t *c = img + (size_t)y * w + x;
    for (int u = -PS_PATCH_RADIUS; u <= PS_PATCH_RADIUS; u++)
        m10 += (int64_t)u * c[u];
    for (int v = 1; v <= PS_PATCH_RADIUS; v++) {
        int hw = disc_half[v];
        const uint8_t *up = c - (ptrdiff_t)v * w, *dn = c + (ptrdiff_t)v * w;
        int64_t vsum = 0;
        for (int u = -hw; u <= hw; u++) {
            int a = dn[u], b = up[u];
            vsum += a - b;
            m10 += (int64_t)u * (a + b);
        }
        m01 += (int64_t)v * vsum;
    }
    float a = atan2f((float)m01, (float)m10);
    if (a < 0)
        a += (float)(2 * M_PI);
    if (a >= (float)(2 * M_PI))
        a = 0;
    return a;
}

static inline int angle_bin(float a)
{
    int b = (int)lrintf(a * (float)(PS_ANGLE_BINS / (2 * M_PI)));
    return ((b % PS_ANGLE_BINS) + PS_ANGLE_BINS) % PS_ANGLE_BINS;
}

/* Steered sample offsets: for each angle bin and point, dy * stride + dx after rotation. Rounding
 * half away from zero is odd-symmetric, which keeps mirrored descriptors exact permutations. */
static void steer_points(const int8_t *pts, int npts, size_t stride, int bin, int32_t *off)
{
    double a = bin * (2 * M_PI / PS_ANGLE_BINS);
    double ca = cos(a), sa = sin(a);
    for (int i = 0; i < npts; i++) {
        double px = pts[2 * i], py = pts[2 * i + 1];
        long rx = lround(ca * px - sa * py), ry = lround(sa * px + ca * py);
        off[i] = (int32_t)(ry * (long)stride + rx);
    }
}

static void describe(const uint8_t *center, const int32_t *off, uint8_t *d)
{
    for (int byte = 0; byte < 32; byte++) {
        unsigned v = 0;
        for (int bit = 0; bit < 8; bit++) {
            const int32_t *o = off + 2 * (8 * byte + bit);
            v |= (unsigned)(center[o[0]] < center[o[1]]) << bit;
        }
        d[byte] = (uint8_t)v;
    }
}

void ps_desc_mirror(const uint8_t in[32], uint8_t out[32])
{
    /* Test 2i+1 is test 2i reflected: mirroring the image swaps each pair of adjacent bits. */
    for (int i = 0; i < 32; i++)
        out[i] = (uint8_t)(((in[i] & 0x55) << 1) | ((in[i] & 0xAA) >> 1));
}

/* ---------------------------------------------------------------------------------------------
 * Extraction.
 * ------------------------------------------------------------------------------------------- */
typedef struct detected {
    level lv[PS_MAX_LEVELS];
    int nlev;
    uint8_t *smooth_block;
    size_t sstride;
    cand *sel;
    size_t nsel;
} detected;

static void detected_free(detected *d)
{
    levels_free(d->lv, d->nlev);
    free(d->smooth_block);
    free(d->sel);
}

static int cmp_final(const void *a, const void *b)
{
    const cand *p = a, *q = b;
    if (p->level != q->level)
        return p->level < q->level ? -1 : 1;
    if (p->y != q->y)
        return p->y < q->y ? -1 : 1;
    return p->x < q->x ? -1 : p->x > q->x;
}

static pthread_once_t disc_once = PTHREAD_ONCE_INIT;

static provscan_status detect_all(const uint8_t *grey, int w, int h, int maxf, detected *d)
{
    pthread_once(&disc_once, disc_init);
    memset(d, 0, sizeof *d);
    d->nlev = build_pyramid(grey, w, h, d->lv, &d->smooth_block, &d->sstride);
    if (!d->nlev)
        return (w < MIN_LEVEL_SIDE || h < MIN_LEVEL_SIDE) ? PROVSCAN_OK : PROVSCAN_E_NOMEM;
    /* Level quotas fall as 1/sqrt(2) per level (slower than the area), so coarse levels are
     * denser per pixel: a crop's enlarged content is found there. */
    double wsum = 0;
    for (int l = 0; l < d->nlev; l++)
        wsum += pow(M_SQRT1_2, l);
    int quota[PS_MAX_LEVELS];
    for (int l = 0; l < d->nlev; l++)
        quota[l] = (int)ceil(maxf * pow(M_SQRT1_2, l) / wsum);
    uint16_t *score = malloc(sizeof(uint16_t) * (size_t)w * h);
    uint16_t *xs = malloc(sizeof(uint16_t) * (size_t)w * h + 64);
    int *rowstart = malloc(sizeof(int) * ((size_t)h + 2));
    cand_vec lvc[PS_MAX_LEVELS];
    memset(lvc, 0, sizeof lvc);
    size_t nrank[PS_MAX_LEVELS] = {0};
    provscan_status st = PROVSCAN_OK;
    if (!score || !xs || !rowstart) {
        st = PROVSCAN_E_NOMEM;
        goto done;
    }
    for (int l = 0; l < d->nlev; l++) {
        int got = detect_level(&d->lv[l], l, FAST_T_HIGH, &lvc[l], score, xs, rowstart);
        if (got < 0) {
            st = PROVSCAN_E_NOMEM;
            goto done;
        }
        if (got < 2 * quota[l]) {
            /* Low contrast (soft photos, pastel art): retry the level at a lower threshold. */
            lvc[l].n = 0;
            if (detect_level(&d->lv[l], l, FAST_T_LOW, &lvc[l], score, xs, rowstart) < 0) {
                st = PROVSCAN_E_NOMEM;
                goto done;
            }
        }
        nrank[l] = rank_level(lvc[l].v, lvc[l].n, &d->lv[l], quota[l]);
    }
    /* Take each level's quota from the front of its ranking; a shortfall is made up from the
     * other levels' leftovers, finest first. */
    d->sel = malloc(sizeof(cand) * (size_t)maxf);
    if (!d->sel) {
        st = PROVSCAN_E_NOMEM;
        goto done;
    }
    size_t taken[PS_MAX_LEVELS] = {0};
    size_t ns = 0;
    for (int l = 0; l < d->nlev && ns < (size_t)maxf; l++) {
        size_t want = (size_t)quota[l];
        while (taken[l] < nrank[l] && taken[l] < want && ns < (size_t)maxf)
            d->sel[ns++] = lvc[l].v[taken[l]++];
    }
    for (int l = 0; l < d->nlev && ns < (size_t)maxf; l++)
        while (taken[l] < nrank[l] && ns < (size_t)maxf)
            d->sel[ns++] = lvc[l].v[taken[l]++];
    qsort(d->sel, ns, sizeof(cand), cmp_final);
    d->nsel = ns;
done:
    for (int l = 0; l < PS_MAX_LEVELS; l++)
        free(lvc[l].v);
    free(score);
    free(xs);
    free(rowstart);
    if (st != PROVSCAN_OK) {
        detected_free(d);
        memset(d, 0, sizeof *d);
    }
    return st;
}

provscan_status ps_features_extract_grey(const uint8_t *grey, int w, int h, float scale, const ps_feature_model *m,
                                         const ps_feature_params *p, ps_features *out)
{
    memset(out, 0, sizeof *out);
    if (!m)
        m = ps_feature_model_builtin();
    /* Working images are at most 1280 pixels wide; coordinates are kept in 16 bits. */
    if (!m || !grey || w < 1 || h < 1 || w > 16384 || h > 16384 || !(scale > 0))
        return PROVSCAN_E_ARG;
    int maxf = p ? p->max_features : PS_FEATURES_DEFAULT_MAX;
    if (maxf < 16)
        maxf = 16;
    if (maxf > 4000)
        maxf = 4000;
    detected d;
    provscan_status st = detect_all(grey, w, h, maxf, &d);
    if (st != PROVSCAN_OK)
        return st;
    out->width = (int)lroundf(w / scale);
    out->height = (int)lroundf(h / scale);
    if (!d.nsel) {
        detected_free(&d);
        return PROVSCAN_OK;
    }
    out->kp = calloc(d.nsel, sizeof *out->kp);
    out->desc = malloc(d.nsel * PS_DESC_BYTES);
    int32_t *offs = malloc(sizeof(int32_t) * 512 * PS_ANGLE_BINS);
    uint8_t have_bin[PS_ANGLE_BINS] = {0};
    if (!out->kp || !out->desc || !offs) {
        free(offs);
        detected_free(&d);
        ps_features_free(out);
        return PROVSCAN_E_NOMEM;
    }
    for (size_t i = 0; i < d.nsel; i++) {
        const cand *c = &d.sel[i];
        const level *L = &d.lv[c->level];
        float a = orientation(L->img, L->w, c->x, c->y);
        int bin = angle_bin(a);
        if (!have_bin[bin]) {
            steer_points(&m->tests[0][0], 512, d.sstride, bin, offs + 512 * bin);
            have_bin[bin] = 1;
        }
        const uint8_t *center = L->smooth + (size_t)c->y * d.sstride + c->x;
        describe(center, offs + 512 * bin, out->desc + PS_DESC_BYTES * i);
        ps_keypoint *k = &out->kp[i];
        /* Level pixel centre -> level-0 pixel -> input pixel (pixel-centre convention). */
        double x0 = (c->x + 0.5) * L->fx - 0.5, y0 = (c->y + 0.5) * L->fy - 0.5;
        k->x = (float)((x0 + 0.5) / scale - 0.5);
        k->y = (float)((y0 + 0.5) / scale - 0.5);
        k->size = (float)((2 * PS_PATCH_RADIUS + 1) * L->fx / scale);
        k->angle = a;
        k->response = c->response;
        k->octave = c->level;
    }
    out->n = (int)d.nsel;
    free(offs);
    detected_free(&d);
    return PROVSCAN_OK;
}

provscan_status ps_features_extract(const provscan_image *img, const ps_feature_model *m, const ps_feature_params *p,
                                    ps_features *out)
{
    if (!out)
        return PROVSCAN_E_ARG;
    memset(out, 0, sizeof *out);
    uint8_t *grey;
    int w, h;
    float scale;
    provscan_status st = ps_features_working_grey(img, &grey, &w, &h, &scale);
    if (st != PROVSCAN_OK)
        return st;
    st = ps_features_extract_grey(grey, w, h, scale, m, p, out);
    free(grey);
    if (st == PROVSCAN_OK) {
        out->width = img->width;
        out->height = img->height;
    }
    return st;
}

provscan_status ps_features_sample_points(const uint8_t *grey, int w, int h, const ps_features *f,
                                          const int8_t *pts, int npts, uint8_t *out)
{
    detected d;
    memset(&d, 0, sizeof d);
    d.nlev = build_pyramid(grey, w, h, d.lv, &d.smooth_block, &d.sstride);
    if (!d.nlev)
        return PROVSCAN_E_NOMEM;
    int32_t *offs = malloc(sizeof(int32_t) * (size_t)npts);
    if (!offs) {
        detected_free(&d);
        return PROVSCAN_E_NOMEM;
    }
    for (int i = 0; i < f->n; i++) {
        const ps_keypoint *k = &f->kp[i];
        int l = k->octave < d.nlev ? k->octave : d.nlev - 1;
        const level *L = &d.lv[l];
        int x = (int)lround((k->x + 0.5) / L->fx - 0.5), y = (int)lround((k->y + 0.5) / L->fy - 0.5);
        if (x < BORDER)
            x = BORDER;
        if (y < BORDER)
            y = BORDER;
        if (x >= L->w - BORDER)
            x = L->w - BORDER - 1;
        if (y >= L->h - BORDER)
            y = L->h - BORDER - 1;
        steer_points(pts, npts, d.sstride, angle_bin(k->angle), offs);
        const uint8_t *center = L->smooth + (size_t)y * d.sstride + x;
        for (int j = 0; j < npts; j++)
            out[(size_t)i * npts + j] = center[offs[j]];
    }
    free(offs);
    detected_free(&d);
    return PROVSCAN_OK;
}

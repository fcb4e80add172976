/* region.c — tightens a verified match's region with the pixels: where the query agrees with the work warped by H. */
#include "features/features_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"

#define THUMB_SIDE 192 /* the comparison runs on small grey versions of both pictures */

/* Grey thumbnail of img with its longer side THUMB_SIDE (never enlarged); *a = thumb px per input px. */
static uint8_t *thumb(const provscan_image *img, int *tw, int *th, double *a)
{
    uint8_t *g;
    int w, h;
    float s;
    if (ps_features_working_grey(img, &g, &w, &h, &s) != PROVSCAN_OK)
        return NULL;
    double f = (double)THUMB_SIDE / (w > h ? w : h);
    if (f > 1)
        f = 1;
    int ow = (int)lround(w * f), oh = (int)lround(h * f);
    if (ow < 2 || oh < 2) {
        free(g);
        return NULL;
    }
    uint8_t *t = malloc((size_t)ow * oh);
    if (t)
        ps_resample_grey(g, w, h, (size_t)w, t, ow, oh, (size_t)ow);
    free(g);
    *tw = ow;
    *th = oh;
    *a = (double)ow / img->width;
    return t;
}

/* Where inlier p of m lies in the query's thumbnail (a thumbnail px per input px). */
static void inlier_in_thumb(const ps_geo_match *m, int p, double a, double *x, double *y)
{
    *x = (m->pairs[4 * p] + 0.5) * a - 0.5;
    *y = (m->pairs[4 * p + 1] + 0.5) * a - 0.5;
}

provscan_status ps_geo_match_refine_region(const provscan_image *query, const provscan_image *work, ps_geo_match *m)
{
    if (!query || !work || !m)
        return PROVSCAN_E_ARG;
    if (m->inliers <= 0 || m->npairs <= 0 || !m->pairs)
        return PROVSCAN_OK;
    int qw, qh, ww, wh;
    double aq, aw;
    uint8_t *gq = thumb(query, &qw, &qh, &aq), *gw = thumb(work, &ww, &wh, &aw);
    size_t n = (size_t)qw * qh;
    float *vw = malloc(sizeof(float) * n), *res = malloc(sizeof(float) * n);
    uint8_t *valid = calloc(n, 1), *agree = calloc(n, 1);
    int *stack = malloc(sizeof(int) * n);
    provscan_status st = PROVSCAN_OK;
    if (!gq || !gw || !vw || !res || !valid || !agree || !stack) {
        st = (gq && gw) ? PROVSCAN_E_NOMEM : PROVSCAN_OK; /* a picture too small to compare: keep */
        goto done;
    }
    const double *H = m->H;
    /* The work warped into the query's thumbnail (bilinear), where the frames overlap. */
    for (int y = 0; y < qh; y++)
        for (int x = 0; x < qw; x++) {
            double X = (x + 0.5) / aq - 0.5, Y = (y + 0.5) / aq - 0.5;
            double W = H[6] * X + H[7] * Y + H[8];
            if (!(W > 1e-9))
                continue;
            double u = ((H[0] * X + H[1] * Y + H[2]) / W + 0.5) * aw - 0.5;
            double v = ((H[3] * X + H[4] * Y + H[5]) / W + 0.5) * aw - 0.5;
            if (!(u >= 0 && v >= 0 && u <= ww - 1.001 && v <= wh - 1.001))
                continue;
            int u0 = (int)u, v0 = (int)v;
            double fu = u - u0, fv = v - v0;
            const uint8_t *p = gw + (size_t)v0 * ww + u0;
            size_t i = (size_t)y * qw + x;
            vw[i] = (float)((p[0] * (1 - fu) + p[1] * fu) * (1 - fv) + (p[ww] * (1 - fu) + p[ww + 1] * fu) * fv);
            valid[i] = 1;
        }
    /* Seeds: overlap pixels within 2 thumbnail pixels of an inlier, surely inside the copy. */
    for (int p = 0; p < m->npairs; p++) {
        double px, py;
        inlier_in_thumb(m, p, aq, &px, &py);
        int cx = (int)lround(px), cy = (int)lround(py);
        for (int dy = -2; dy <= 2; dy++)
            for (int dx = -2; dx <= 2; dx++) {
                int xx = cx + dx, yy = cy + dy;
                if (xx >= 0 && yy >= 0 && xx < qw && yy < qh && valid[(size_t)yy * qw + xx])
                    agree[(size_t)yy * qw + xx] = 1; /* seed mark (reset below) */
            }
    }
    /* Photometric change as query = alpha * work + beta (colour shifts, greyscale, contrast),
     * fitted on the seeds, then again on the seeds that fit; the noise level is the seeds' median
     * residual. */
    double alpha = 1, beta = 0, sigma = 0;
    float *sr = malloc(sizeof(float) * n);
    if (!sr) {
        st = PROVSCAN_E_NOMEM;
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) {
        double sx = 0, sy = 0, sxx = 0, sxy = 0, cnt = 0;
        for (size_t i = 0; i < n; i++)
            if (agree[i] && (pass == 0 || res[i] < 2.5 * sigma + 3)) {
                double val = vw[i], q = gq[i];
                sx += val;
                sy += q;
                sxx += val * val;
                sxy += val * q;
                cnt++;
            }
        if (cnt < 16) {
            free(sr);
            goto done;
        }
        double den = cnt * sxx - sx * sx;
        alpha = fabs(den) > 1e-9 ? (cnt * sxy - sx * sy) / den : 1;
        if (!(alpha > 0.2 && alpha < 5))
            alpha = 1;
        beta = (sy - alpha * sx) / cnt;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (valid[i]) {
                res[i] = (float)fabs(gq[i] - (alpha * vw[i] + beta));
                if (agree[i])
                    sr[k++] = res[i];
            }
        /* Median by partial selection is not worth the code here: a sort of a few hundred values. */
        for (size_t a2 = 1; a2 < k; a2++) {
            float v = sr[a2];
            size_t b2 = a2;
            while (b2 > 0 && sr[b2 - 1] > v) {
                sr[b2] = sr[b2 - 1];
                b2--;
            }
            sr[b2] = v;
        }
        sigma = k ? 1.4826 * sr[k / 2] : 0;
    }
    free(sr);
    memset(agree, 0, n);
    /* Each overlap pixel votes: where either picture has structure (gradient), +1 if the 3x3 mean
     * residual is within the noise-based threshold, -2 if not; flat pixels abstain (flat areas
     * agree by accident). The region is the rectangle of largest total vote (2-D maximum-sum
     * subarray), so it ends where the pasted pixels end, whatever surrounds them. */
    double thr = fmax(10.0, fmin(32.0, 3 * sigma + 4));
    int *vote = stack; /* reuse: one int per pixel */
    for (int y = 0; y < qh; y++)
        for (int x = 0; x < qw; x++) {
            size_t i = (size_t)y * qw + x;
            vote[i] = 0;
            if (!valid[i] || x == 0 || y == 0 || x == qw - 1 || y == qh - 1)
                continue;
            size_t l = i - 1, r = i + 1, u = i - (size_t)qw, d = i + (size_t)qw;
            if (!valid[l] || !valid[r] || !valid[u] || !valid[d])
                continue;
            double gqv = abs(gq[r] - gq[l]) + abs(gq[d] - gq[u]);
            double gwv = fabs(vw[r] - vw[l]) + fabs(vw[d] - vw[u]);
            if (gqv < 16 && alpha * gwv < 16)
                continue;
            double sres = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    sres += res[(size_t)(y + dy) * qw + (x + dx)];
            vote[i] = sres / 9 < thr ? 1 : -2;
        }
    long best = 0;
    int bx0 = 0, by0 = 0, bx1 = -1, by1 = -1;
    long *col = malloc(sizeof(long) * (size_t)qw);
    if (!col) {
        st = PROVSCAN_E_NOMEM;
        goto done;
    }
    for (int top = 0; top < qh; top++) {
        memset(col, 0, sizeof(long) * (size_t)qw);
        for (int bot = top; bot < qh; bot++) {
            const int *row = vote + (size_t)bot * qw;
            long run = 0;
            int start = 0;
            for (int x = 0; x < qw; x++) {
                col[x] += row[x];
                if (run <= 0) {
                    run = col[x];
                    start = x;
                } else {
                    run += col[x];
                }
                if (run > best) {
                    best = run;
                    bx0 = start;
                    bx1 = x;
                    by0 = top;
                    by1 = bot;
                }
            }
        }
    }
    free(col);
    /* The rectangle must hold most of the inliers; otherwise (a restyled copy, little agreement)
     * the feature-based region stands. */
    int inside = 0;
    for (int p = 0; p < m->npairs; p++) {
        double cx, cy;
        inlier_in_thumb(m, p, aq, &cx, &cy);
        inside += cx >= bx0 - 1 && cx <= bx1 + 1 && cy >= by0 - 1 && cy <= by1 + 1;
    }
    if (bx1 < 0 || best < 16 || 2 * inside < m->npairs)
        goto done;
    /* Every inlier is part of the copy even where its pixels disagree: a model a little off at one
     * end of a large copy (a slight rotation fitted on smooth curves), a local tone change. So the
     * rectangle grows to hold them all; it still ends where the agreeing pixels and the inliers do. */
    for (int p = 0; p < m->npairs; p++) {
        double cx, cy;
        inlier_in_thumb(m, p, aq, &cx, &cy);
        int ix = (int)lround(cx), iy = (int)lround(cy);
        ix = ix < 0 ? 0 : ix >= qw ? qw - 1 : ix;
        iy = iy < 0 ? 0 : iy >= qh ? qh - 1 : iy;
        bx0 = ix < bx0 ? ix : bx0;
        bx1 = ix > bx1 ? ix : bx1;
        by0 = iy < by0 ? iy : by0;
        by1 = iy > by1 ? iy : by1;
    }
    ps_match_set_region(m, query->width, query->height, work->width, work->height, bx0 / aq - 0.5,
                        by0 / aq - 0.5, (bx1 + 1) / aq + 0.5, (by1 + 1) / aq + 0.5);
done:
    free(gq);
    free(gw);
    free(vw);
    free(res);
    free(valid);
    free(agree);
    free(stack);
    return st;
}

/* match.c — descriptor matching (SIMD top-2 within vocabulary cells, ratio test, mirrored query) and geometric verification (seeded LO-RANSAC: similarity -> affine -> homography). */
#include "features/features_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"

/* Tentative matches: nearest work descriptor within MAX_DIST bits and clearly nearer than the
 * second (ratio), or very close whatever the second (repeated motifs in art keep their matches;
 * the geometry decides between the copies). */
#define MAX_DIST 80
#define RATIO_NUM 17 /* d1 <= 0.85 d2 */
#define RATIO_DEN 20
#define CLOSE_DIST 28

#define SEEDS_1PT 30      /* best matches used as one-point similarity seeds */
#define SEEDS_1PT_ALT 120 /* the same for the alternative placement, as calibration v3 was fitted with */
#define SEEDS_2PT 18      /* best matches whose pairs seed two-point similarities */
#define REFINE_TOP 4      /* hypotheses refined by local optimisation */
#define GATE_LOOSE 40.0   /* working pixels, for one-point seeds */
#define ANGLE_GATE 0.866  /* cos 30 degrees: keypoint orientations must agree with the model */
#define SCALE_GATE 1.75   /* keypoint scale ratio within this factor of the model's local scale */
#define MIN_REPORT 4      /* below this many inliers nothing is reported as verified */
#define THIN_CELL 10.0    /* working pixels: inliers are counted once per cell of the query */

typedef struct mt {
    double qx, qy, wx, wy; /* working pixels (query x negated for the mirrored pass) */
    double qc, qs;         /* query orientation unit vector (mirrored when needed) */
    double wc, ws;
    double sq, sw;         /* keypoint scales (level factor, working pixels / 31) */
    double tau;            /* inlier threshold for this match */
    int qi, wi, d;
} mt;

typedef struct model {
    double h[9];
    int kind; /* 0 similarity, 1 affine, 2 homography */
} model;

static double work_scale(int w, int h)
{
    return ps_features_work_scale(w, h);
}

static int project(const double *h, double x, double y, double *ox, double *oy, double J[4])
{
    double X = h[0] * x + h[1] * y + h[2], Y = h[3] * x + h[4] * y + h[5], W = h[6] * x + h[7] * y + h[8];
    if (!(W > 1e-9))
        return 0;
    double iw = 1.0 / W;
    *ox = X * iw;
    *oy = Y * iw;
    if (J) {
        J[0] = (h[0] - *ox * h[6]) * iw;
        J[1] = (h[1] - *ox * h[7]) * iw;
        J[2] = (h[3] - *oy * h[6]) * iw;
        J[3] = (h[4] - *oy * h[7]) * iw;
    }
    return 1;
}

/* Is match m consistent with model h within tau_mul * m->tau (position), and are its keypoints'
 * orientation and scale what the model predicts locally? Returns the squared error or -1. */
static inline __attribute__((always_inline)) double consistent(const double *h, const mt *m, double tau)
{
    /* Position first: most matches fail it, and it needs no Jacobian. */
    double X = h[0] * m->qx + h[1] * m->qy + h[2], Y = h[3] * m->qx + h[4] * m->qy + h[5];
    double W = h[6] * m->qx + h[7] * m->qy + h[8];
    if (!(W > 1e-9))
        return -1;
    double ex = X - m->wx * W, ey = Y - m->wy * W, tw = tau * W;
    if (ex * ex + ey * ey > tw * tw)
        return -1;
    double px, py, J[4];
    project(h, m->qx, m->qy, &px, &py, J);
    ex = px - m->wx;
    ey = py - m->wy;
    double e2 = ex * ex + ey * ey;
    double det = J[0] * J[3] - J[1] * J[2];
    if (!(det > 0))
        return -1;
    double ux = J[0] * m->qc + J[1] * m->qs, uy = J[2] * m->qc + J[3] * m->qs;
    double un = sqrt(ux * ux + uy * uy);
    if (!(un > 0) || (ux * m->wc + uy * m->ws) < ANGLE_GATE * un)
        return -1;
    double ls = sqrt(det), r = m->sw / (m->sq * ls);
    if (r > SCALE_GATE || r < 1.0 / SCALE_GATE)
        return -1;
    return e2;
}

/* The tentative matches of one verification, with their points also as arrays for the gate kernel. */
typedef struct matchset {
    const mt *m;
    int n;
    ps_point_pairs pts;
    int *pass; /* n slots: the gate's output */
    int (*gate)(const double *h, const ps_point_pairs *p, int n, int own_tol, double scale, int *out);
} matchset;

/* Inliers of h, at most one per work keypoint (matches were already made unique per physical
 * location by dedupe()). tau < 0: each match's own threshold times -tau. The position test runs
 * first over all matches at once (most fail it); the rest of consistent() only on those passing. */
static int support(const matchset *s, const double *h, double tau, int *idx, uint8_t *wused)
{
    const mt *m = s->m;
    int np = s->gate(h, &s->pts, s->n, tau < 0, tau < 0 ? -tau : tau, s->pass);
    int k = 0;
    for (int j = 0; j < np; j++) {
        int i = s->pass[j];
        double t = tau < 0 ? -tau * m[i].tau : tau;
        if (wused[m[i].wi])
            continue;
        if (consistent(h, &m[i], t) < 0)
            continue;
        wused[m[i].wi] = 1;
        idx[k++] = i;
    }
    for (int j = 0; j < k; j++)
        wused[m[idx[j]].wi] = 0;
    return k;
}

static void sim_model(double s, double c, double sn, double tx, double ty, double *h)
{
    h[0] = s * c;
    h[1] = -s * sn;
    h[2] = tx;
    h[3] = s * sn;
    h[4] = s * c;
    h[5] = ty;
    h[6] = h[7] = 0;
    h[8] = 1;
}

/* Least-squares weights: a keypoint from a coarse level is localised less precisely. */
static inline double wt(const mt *p)
{
    return 1.0 / (p->tau * p->tau);
}

static int fit_similarity(const mt *m, const int *idx, int n, double *h)
{
    if (n < 2)
        return 0;
    double qx = 0, qy = 0, wx = 0, wy = 0, W = 0;
    for (int i = 0; i < n; i++) {
        const mt *p = &m[idx[i]];
        double w = wt(p);
        qx += w * p->qx;
        qy += w * p->qy;
        wx += w * p->wx;
        wy += w * p->wy;
        W += w;
    }
    qx /= W;
    qy /= W;
    wx /= W;
    wy /= W;
    double sa = 0, sb = 0, sqq = 0;
    for (int i = 0; i < n; i++) {
        const mt *p = &m[idx[i]];
        double w = wt(p);
        double ax = p->qx - qx, ay = p->qy - qy, bx = p->wx - wx, by = p->wy - wy;
        sa += w * (ax * bx + ay * by);
        sb += w * (ax * by - ay * bx);
        sqq += w * (ax * ax + ay * ay);
    }
    if (sqq < 1e-9)
        return 0;
    double a = sa / sqq, b = sb / sqq;
    h[0] = a;
    h[1] = -b;
    h[3] = b;
    h[4] = a;
    h[2] = wx - (a * qx - b * qy);
    h[5] = wy - (b * qx + a * qy);
    h[6] = h[7] = 0;
    h[8] = 1;
    return a * a + b * b > 1e-8;
}

/* Solves the n x n system A x = b in place (partial pivoting); 0 if singular. */
static int solve(double *A, double *b, int n)
{
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r * n + c]) > fabs(A[p * n + c]))
                p = r;
        if (fabs(A[p * n + c]) < 1e-12)
            return 0;
        if (p != c) {
            for (int k = 0; k < n; k++) {
                double t = A[c * n + k];
                A[c * n + k] = A[p * n + k];
                A[p * n + k] = t;
            }
            double t = b[c];
            b[c] = b[p];
            b[p] = t;
        }
        for (int r = c + 1; r < n; r++) {
            double f = A[r * n + c] / A[c * n + c];
            for (int k = c; k < n; k++)
                A[r * n + k] -= f * A[c * n + k];
            b[r] -= f * b[c];
        }
    }
    for (int c = n - 1; c >= 0; c--) {
        double s = b[c];
        for (int k = c + 1; k < n; k++)
            s -= A[c * n + k] * b[k];
        b[c] = s / A[c * n + c];
    }
    return 1;
}

/* Centroid and mean distance of the inliers' query and work points (Hartley normalisation). */
static void norm_params(const mt *m, const int *idx, int n, double *nq, double *nw)
{
    double qx = 0, qy = 0, wx = 0, wy = 0;
    for (int i = 0; i < n; i++) {
        qx += m[idx[i]].qx;
        qy += m[idx[i]].qy;
        wx += m[idx[i]].wx;
        wy += m[idx[i]].wy;
    }
    qx /= n;
    qy /= n;
    wx /= n;
    wy /= n;
    double dq = 0, dw = 0;
    for (int i = 0; i < n; i++) {
        dq += hypot(m[idx[i]].qx - qx, m[idx[i]].qy - qy);
        dw += hypot(m[idx[i]].wx - wx, m[idx[i]].wy - wy);
    }
    dq = dq > 1e-9 ? M_SQRT2 * n / dq : 1;
    dw = dw > 1e-9 ? M_SQRT2 * n / dw : 1;
    nq[0] = qx;
    nq[1] = qy;
    nq[2] = dq;
    nw[0] = wx;
    nw[1] = wy;
    nw[2] = dw;
}

/* h = Tw^-1 * g * Tq, with T = scale about the centroid. */
static void denormalise(const double *g, const double *nq, const double *nw, double *h)
{
    double Tq[9] = {nq[2], 0, -nq[2] * nq[0], 0, nq[2], -nq[2] * nq[1], 0, 0, 1};
    double Twi[9] = {1 / nw[2], 0, nw[0], 0, 1 / nw[2], nw[1], 0, 0, 1};
    double t[9];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            t[3 * r + c] = g[3 * r] * Tq[c] + g[3 * r + 1] * Tq[3 + c] + g[3 * r + 2] * Tq[6 + c];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            h[3 * r + c] = Twi[3 * r] * t[c] + Twi[3 * r + 1] * t[3 + c] + Twi[3 * r + 2] * t[6 + c];
    double s = h[8];
    if (fabs(s) > 1e-12)
        for (int i = 0; i < 9; i++)
            h[i] /= s;
}

static int fit_affine(const mt *m, const int *idx, int n, double *h)
{
    if (n < 3)
        return 0;
    double nq[3], nw[3];
    norm_params(m, idx, n, nq, nw);
    double A[9] = {0}, bx[3] = {0}, by[3] = {0};
    for (int i = 0; i < n; i++) {
        const mt *p = &m[idx[i]];
        double v[3] = {(p->qx - nq[0]) * nq[2], (p->qy - nq[1]) * nq[2], 1};
        double X = (p->wx - nw[0]) * nw[2], Y = (p->wy - nw[1]) * nw[2];
        double w = wt(p);
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++)
                A[3 * r + c] += w * v[r] * v[c];
            bx[r] += w * v[r] * X;
            by[r] += w * v[r] * Y;
        }
    }
    double A2[9];
    memcpy(A2, A, sizeof A);
    if (!solve(A, bx, 3) || !solve(A2, by, 3))
        return 0;
    double g[9] = {bx[0], bx[1], bx[2], by[0], by[1], by[2], 0, 0, 1};
    denormalise(g, nq, nw, h);
    return 1;
}

/* Least-squares homography with h33 = 1 on Hartley-normalised points (8 x 8 normal equations). */
static int fit_homography(const mt *m, const int *idx, int n, double *h)
{
    if (n < 5)
        return 0;
    double nq[3], nw[3];
    norm_params(m, idx, n, nq, nw);
    double A[64] = {0}, b[8] = {0};
    for (int i = 0; i < n; i++) {
        const mt *p = &m[idx[i]];
        double x = (p->qx - nq[0]) * nq[2], y = (p->qy - nq[1]) * nq[2];
        double X = (p->wx - nw[0]) * nw[2], Y = (p->wy - nw[1]) * nw[2];
        double r1[8] = {x, y, 1, 0, 0, 0, -x * X, -y * X}, r2[8] = {0, 0, 0, x, y, 1, -x * Y, -y * Y};
        double w = wt(p);
        for (int r = 0; r < 8; r++) {
            for (int c = 0; c < 8; c++)
                A[8 * r + c] += w * (r1[r] * r1[c] + r2[r] * r2[c]);
            b[r] += w * (r1[r] * X + r2[r] * Y);
        }
    }
    if (!solve(A, b, 8))
        return 0;
    double g[9] = {b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], 1};
    denormalise(g, nq, nw, h);
    return 1;
}

/* A plausible copy transform over the inliers' extent: orientation kept, local scale within 1/8..8
 * and varying by at most 3x across the region (a stronger perspective is not a copy we can see). */
static int model_sane(const double *h, const mt *m, const int *idx, int n)
{
    double x0 = 1e30, y0 = 1e30, x1 = -1e30, y1 = -1e30;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, m[idx[i]].qx);
        y0 = fmin(y0, m[idx[i]].qy);
        x1 = fmax(x1, m[idx[i]].qx);
        y1 = fmax(y1, m[idx[i]].qy);
    }
    double smin = 1e30, smax = 0;
    double cx[4] = {x0, x1, x1, x0}, cy[4] = {y0, y0, y1, y1};
    for (int k = 0; k < 4; k++) {
        double px, py, J[4];
        if (!project(h, cx[k], cy[k], &px, &py, J))
            return 0;
        double det = J[0] * J[3] - J[1] * J[2];
        if (!(det > 0))
            return 0;
        double s = sqrt(det);
        smin = fmin(smin, s);
        smax = fmax(smax, s);
    }
    return smin > 1.0 / 8 && smax < 8 && smax < 3 * smin;
}

/* The inliers must span an area, not a line or a point: smallest spread of the query points and
 * of the work points at least 3 working pixels (standard deviation). */
static int spread_ok(const mt *m, const int *idx, int n)
{
    if (n < 3)
        return 0;
    for (int side = 0; side < 2; side++) {
        double mx = 0, my = 0;
        for (int i = 0; i < n; i++) {
            mx += side ? m[idx[i]].wx : m[idx[i]].qx;
            my += side ? m[idx[i]].wy : m[idx[i]].qy;
        }
        mx /= n;
        my /= n;
        double a = 0, b = 0, c = 0;
        for (int i = 0; i < n; i++) {
            double dx = (side ? m[idx[i]].wx : m[idx[i]].qx) - mx, dy = (side ? m[idx[i]].wy : m[idx[i]].qy) - my;
            a += dx * dx;
            b += dx * dy;
            c += dy * dy;
        }
        a /= n;
        b /= n;
        c /= n;
        double tr = a + c, disc = sqrt(fmax(0, (a - c) * (a - c) / 4 + b * b));
        double lmin = tr / 2 - disc;
        if (lmin < 9.0)
            return 0;
    }
    return 1;
}

typedef struct verdict {
    int inliers;
    int alt_inliers; /* the best model among the matches the winner does not explain (repeated structure) */
    double h[9]; /* working-pixel model (query possibly mirrored) */
    int *idx;
} verdict;

/* Local optimisation from a hypothesis: alternate fitting and re-selecting inliers, moving up to
 * affine and homography only when enough well-spread inliers support them. */
static int refine(const matchset *s, const double *h0, int *idx, int *tmp, uint8_t *wused, double *hout)
{
    const mt *m = s->m;
    double h[9];
    memcpy(h, h0, sizeof h);
    int k = support(s, h, GATE_LOOSE, idx, wused);
    for (int it = 0; it < 3 && k >= 2; it++) {
        double g[9];
        if (!fit_similarity(m, idx, k, g))
            break;
        int k2 = support(s, g, -2.0, tmp, wused);
        if (k2 < 2)
            break;
        memcpy(h, g, sizeof h);
        memcpy(idx, tmp, sizeof(int) * (size_t)k2);
        k = k2;
    }
    k = support(s, h, -1.5, idx, wused);
    if (k >= 6 && spread_ok(m, idx, k)) {
        double g[9];
        for (int it = 0; it < 2; it++) {
            if (!fit_affine(m, idx, k, g) || !model_sane(g, m, idx, k))
                break;
            int k2 = support(s, g, -1.25, tmp, wused);
            /* A more general model must earn its extra freedom with more inliers (otherwise its
             * extrapolation beyond the inliers is worse than the simpler model's). */
            if (k2 < k + (it ? 0 : 1 + k / 20))
                break;
            memcpy(h, g, sizeof h);
            memcpy(idx, tmp, sizeof(int) * (size_t)k2);
            k = k2;
        }
    }
    if (k >= 10 && spread_ok(m, idx, k)) {
        double g[9];
        for (int it = 0; it < 3; it++) {
            if (!fit_homography(m, idx, k, g) || !model_sane(g, m, idx, k))
                break;
            int k2 = support(s, g, -1.0, tmp, wused);
            if (k2 < k + (it ? 0 : 1 + k / 20))
                break;
            memcpy(h, g, sizeof h);
            memcpy(idx, tmp, sizeof(int) * (size_t)k2);
            k = k2;
        }
    }
    /* Final count at the strict threshold with the chosen model. */
    k = support(s, h, -1.0, idx, wused);
    if (k >= 3 && !spread_ok(m, idx, k))
        k = k >= MIN_REPORT ? MIN_REPORT - 1 : k; /* degenerate: a line or a point */
    memcpy(hout, h, sizeof h);
    return k;
}

static int cmp_mt(const void *a, const void *b)
{
    const mt *p = a, *q = b;
    if (p->d != q->d)
        return p->d < q->d ? -1 : 1;
    if (p->qi != q->qi)
        return p->qi < q->qi ? -1 : 1;
    return (p->wi > q->wi) - (p->wi < q->wi);
}

typedef struct hyp {
    int count;
    double h[9];
} hyp;

static void keep_top(hyp *top, int *ntop, const double *h, int count)
{
    int pos = *ntop;
    while (pos > 0 && top[pos - 1].count < count)
        pos--;
    if (pos >= REFINE_TOP)
        return;
    int last = *ntop < REFINE_TOP ? *ntop : REFINE_TOP - 1;
    for (int i = last; i > pos; i--)
        top[i] = top[i - 1];
    top[pos].count = count;
    memcpy(top[pos].h, h, sizeof top[pos].h);
    if (*ntop < REFINE_TOP)
        (*ntop)++;
}

static int cmp_qx(const void *a, const void *b)
{
    const mt *p = a, *q = b;
    if (p->qx != q->qx)
        return p->qx < q->qx ? -1 : 1;
    return cmp_mt(a, b);
}

/* The same corner is often found on two pyramid levels, or matched twice: matches whose query
 * points are within 2 working pixels and whose work points are too are one piece of evidence, so
 * only the best (lowest distance) is kept. Sorted by query x, so only a narrow window is compared. */
static int dedupe(mt *m, int n)
{
    qsort(m, (size_t)n, sizeof *m, cmp_qx);
    uint8_t *drop = calloc((size_t)n, 1);
    if (!drop)
        return n;
    for (int i = 0; i < n; i++) {
        if (drop[i])
            continue;
        for (int j = i + 1; j < n && m[j].qx - m[i].qx < 2.0; j++) {
            if (drop[j] || fabs(m[j].qy - m[i].qy) >= 2.0 || fabs(m[j].wx - m[i].wx) >= 2.0 ||
                fabs(m[j].wy - m[i].wy) >= 2.0)
                continue;
            if (cmp_mt(&m[j], &m[i]) < 0) {
                drop[i] = 1;
                break;
            }
            drop[j] = 1;
        }
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!drop[i])
            m[k++] = m[i];
    free(drop);
    return k;
}

static int verify_one(mt *m, int n, int nwork, int seeds1, verdict *v);

/* Matches at least this far (in their own thresholds) from where the winning model puts them are
 * left for the alternative model: the winner's loose inliers are not another explanation. */
#define ALT_EXCLUDE_TAU 3.0

static void verify(mt *m, int n, int nwork, verdict *v)
{
    n = verify_one(m, n, nwork, SEEDS_1PT, v);
    v->alt_inliers = 0;
    /* for every match that is reported: a threshold here would let a weak match score higher just
     * under it (no rival looked for) than just over it */
    if (v->inliers < MIN_REPORT)
        return;
    /* Repeated structure (a card's pips, a sign's ring, tiles) fits several models about as well: a
     * second model among the matches the winner leaves unexplained measures that ambiguity. A copy
     * has one dominant model and noise besides. */
    mt *rest = malloc(sizeof *rest * (size_t)n);
    if (!rest)
        return;
    int nr = 0;
    for (int i = 0; i < n; i++) {
        double x, y;
        const mt *a = &m[i];
        double reach = ALT_EXCLUDE_TAU * a->tau;
        if (project(v->h, a->qx, a->qy, &x, &y, NULL) &&
            (x - a->wx) * (x - a->wx) + (y - a->wy) * (y - a->wy) <= reach * reach)
            continue;
        rest[nr++] = *a;
    }
    verdict alt = {0};
    /* Searched as thoroughly as when the calibration was fitted: fewer seeds find a weaker rival and
     * would raise every score, unrelated works' too. */
    verify_one(rest, nr, nwork, SEEDS_1PT_ALT, &alt);
    v->alt_inliers = alt.inliers;
    free(alt.idx);
    free(rest);
}

/* Fits the best model among the matches, seeding from the best seeds1 of them one by one (and pairs
 * of the best SEEDS_2PT). Returns how many matches are left in m (deduplicated, best first), which
 * v->idx refers to. */
static int verify_one(mt *m, int n, int nwork, int seeds1, verdict *v)
{
    v->inliers = 0;
    n = dedupe(m, n);
    if (n < 3)
        return n;
    qsort(m, (size_t)n, sizeof *m, cmp_mt);
    int *idx = malloc(sizeof(int) * (size_t)n * 4);
    double *cols = malloc(sizeof(double) * (size_t)n * 5);
    uint8_t *wused = calloc((size_t)nwork, 1);
    if (!idx || !cols || !wused) {
        free(idx);
        free(cols);
        free(wused);
        return n;
    }
    int *tmp = idx + n, *best = idx + 2 * n;
    matchset set = {m, n, {cols, cols + n, cols + 2 * n, cols + 3 * n, cols + 4 * n}, idx + 3 * n,
                    ps_kernels_get()->geo_gate};
    for (int i = 0; i < n; i++) {
        cols[i] = m[i].qx;
        cols[n + i] = m[i].qy;
        cols[2 * n + i] = m[i].wx;
        cols[3 * n + i] = m[i].wy;
        cols[4 * n + i] = m[i].tau;
    }
    hyp top[REFINE_TOP];
    int ntop = 0;
    top[0].count = 0;
    /* One-point seeds: each keypoint pair fixes scale, rotation and translation. */
    int s1 = n < seeds1 ? n : seeds1;
    for (int i = 0; i < s1; i++) {
        const mt *a = &m[i];
        double s = a->sw / a->sq, c = a->wc * a->qc + a->ws * a->qs, sn = a->ws * a->qc - a->wc * a->qs;
        double h[9];
        sim_model(s, c, sn, 0, 0, h);
        h[2] = a->wx - (h[0] * a->qx + h[1] * a->qy);
        h[5] = a->wy - (h[3] * a->qx + h[4] * a->qy);
        int c1 = support(&set, h, GATE_LOOSE, tmp, wused);
        keep_top(top, &ntop, h, c1);
        /* Seeds come best first: stop once a seed from the inliers has almost surely been tried
         * (99.9% for the inlier share seen so far), as RANSAC's stopping rule would. */
        if (i >= 10 && top[0].count >= 8 && i + 1 >= log(0.001) / log(1.0 - (double)top[0].count / n))
            break;
    }
    /* A strong one-point answer needs no two-point seeds. */
    int strong = top[0].count >= 20 && top[0].count >= n / 6;
    /* Two-point seeds among the best matches: exact similarity through both points, which does not
     * depend on the keypoints' own (noisier) scale and orientation. */
    int s2 = strong ? 0 : n < SEEDS_2PT ? n : SEEDS_2PT;
    for (int i = 0; i < s2; i++)
        for (int j = i + 1; j < s2; j++) {
            const mt *a = &m[i], *b = &m[j];
            double dqx = b->qx - a->qx, dqy = b->qy - a->qy, dwx = b->wx - a->wx, dwy = b->wy - a->wy;
            double lq = dqx * dqx + dqy * dqy;
            if (lq < 100 || dwx * dwx + dwy * dwy < 100)
                continue;
            double ca = (dqx * dwx + dqy * dwy) / lq, sa = (dqx * dwy - dqy * dwx) / lq;
            double h[9] = {ca, -sa, 0, sa, ca, 0, 0, 0, 1};
            h[2] = a->wx - (ca * a->qx - sa * a->qy);
            h[5] = a->wy - (sa * a->qx + ca * a->qy);
            /* The similarity passes exactly through both points. When either keypoint's own orientation
             * or scale disagrees with it, that seed is not even an inlier of it: a chance pair, not worth
             * a pass over every match (most pairs of an unrelated work end here). */
            if (consistent(h, a, 12.0) < 0 || consistent(h, b, 12.0) < 0)
                continue;
            keep_top(top, &ntop, h, support(&set, h, 12.0, tmp, wused));
        }
    for (int t = 0; t < ntop; t++) {
        /* A hypothesis with half the support of the best verified one cannot win. */
        if (top[t].count < 2 || (v->inliers >= 20 && top[t].count < v->inliers / 2))
            continue;
        double h[9];
        int k = refine(&set, top[t].h, tmp, idx, wused, h);
        if (k > v->inliers) {
            v->inliers = k;
            memcpy(v->h, h, sizeof h);
            memcpy(best, tmp, sizeof(int) * (size_t)k);
        }
    }
    /* Evidence is counted per location: at most one inlier per THIN_CELL x THIN_CELL working-pixel
     * cell of the query (the best by descriptor distance; they are in that order). A repeated
     * glyph matched at two spots gives a few cells, not dozens of corners; a real copy fills many. */
    if (v->inliers) {
        int kept = 0;
        for (int i = 0; i < v->inliers; i++) {
            const mt *p = &m[best[i]];
            long cx = (long)floor(p->qx / THIN_CELL), cy = (long)floor(p->qy / THIN_CELL);
            int dup = 0;
            for (int j = 0; j < kept && !dup; j++) {
                const mt *o = &m[best[j]];
                dup = (long)floor(o->qx / THIN_CELL) == cx && (long)floor(o->qy / THIN_CELL) == cy;
            }
            if (!dup)
                best[kept++] = best[i];
        }
        v->inliers = kept;
    }
    if (v->inliers) {
        v->idx = malloc(sizeof(int) * (size_t)v->inliers);
        if (v->idx)
            memcpy(v->idx, best, sizeof(int) * (size_t)v->inliers);
        else
            v->inliers = 0;
    }
    free(idx);
    free(cols);
    free(wused);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Regions.
 * ------------------------------------------------------------------------------------------- */
#define MAXV 32

typedef struct poly {
    int n;
    double x[MAXV], y[MAXV];
} poly;

/* Keeps the part of p where a*x + b*y + c >= 0 (Sutherland-Hodgman). */
static void clip_half(poly *p, double a, double b, double c)
{
    poly o = {0};
    for (int i = 0; i < p->n; i++) {
        int j = (i + 1) % p->n;
        double vi = a * p->x[i] + b * p->y[i] + c, vj = a * p->x[j] + b * p->y[j] + c;
        if (vi >= 0 && o.n < MAXV) {
            o.x[o.n] = p->x[i];
            o.y[o.n++] = p->y[i];
        }
        if ((vi >= 0) != (vj >= 0) && o.n < MAXV) {
            double t = vi / (vi - vj);
            o.x[o.n] = p->x[i] + t * (p->x[j] - p->x[i]);
            o.y[o.n++] = p->y[i] + t * (p->y[j] - p->y[i]);
        }
    }
    *p = o;
}

static void clip_rect(poly *p, double x0, double y0, double x1, double y1)
{
    clip_half(p, 1, 0, -x0);
    clip_half(p, -1, 0, x1);
    clip_half(p, 0, 1, -y0);
    clip_half(p, 0, -1, y1);
}

static double area(const poly *p)
{
    double a = 0;
    for (int i = 0; i < p->n; i++) {
        int j = (i + 1) % p->n;
        a += p->x[i] * p->y[j] - p->x[j] * p->y[i];
    }
    return fabs(a) / 2;
}

static int map_poly(const double *h, poly *p)
{
    /* Only the part in front of the camera maps to a finite polygon. */
    clip_half(p, h[6], h[7], h[8] - 1e-6);
    for (int i = 0; i < p->n; i++) {
        double x, y;
        if (!project(h, p->x[i], p->y[i], &x, &y, NULL))
            return 0;
        p->x[i] = x;
        p->y[i] = y;
    }
    return p->n >= 3;
}

int ps_mat3_invert(const double *m, double *o)
{
    double d = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
               m[2] * (m[3] * m[7] - m[4] * m[6]);
    if (fabs(d) < 1e-15)
        return 0;
    o[0] = (m[4] * m[8] - m[5] * m[7]) / d;
    o[1] = (m[2] * m[7] - m[1] * m[8]) / d;
    o[2] = (m[1] * m[5] - m[2] * m[4]) / d;
    o[3] = (m[5] * m[6] - m[3] * m[8]) / d;
    o[4] = (m[0] * m[8] - m[2] * m[6]) / d;
    o[5] = (m[2] * m[3] - m[0] * m[5]) / d;
    o[6] = (m[3] * m[7] - m[4] * m[6]) / d;
    o[7] = (m[1] * m[6] - m[0] * m[7]) / d;
    o[8] = (m[0] * m[4] - m[1] * m[3]) / d;
    return 1;
}

/* Cuts the corner of least area until four vertices remain (a quadrilateral inside p). */
static void to_quad(const poly *p, float *q)
{
    poly r = *p;
    while (r.n > 4) {
        int best = 0;
        double ba = 1e300;
        for (int i = 0; i < r.n; i++) {
            int a = (i + r.n - 1) % r.n, b = (i + 1) % r.n;
            double t = fabs((r.x[i] - r.x[a]) * (r.y[b] - r.y[a]) - (r.x[b] - r.x[a]) * (r.y[i] - r.y[a]));
            if (t < ba) {
                ba = t;
                best = i;
            }
        }
        for (int i = best; i + 1 < r.n; i++) {
            r.x[i] = r.x[i + 1];
            r.y[i] = r.y[i + 1];
        }
        r.n--;
    }
    for (int i = 0; i < 4; i++) {
        int k = r.n ? (i < r.n ? i : r.n - 1) : 0;
        q[2 * i] = r.n ? (float)r.x[k] : 0;
        q[2 * i + 1] = r.n ? (float)r.y[k] : 0;
    }
}

void ps_match_set_region(ps_geo_match *out, int qw, int qh, int ww, int wh, double x0, double y0, double x1,
                         double y1)
{
    double Hi[9];
    out->work_coverage = out->query_coverage = 0;
    memset(out->query_poly, 0, sizeof out->query_poly);
    memset(out->work_poly, 0, sizeof out->work_poly);
    if (!ps_mat3_invert(out->H, Hi))
        return;
    poly pq = {4, {0, qw, qw, 0}, {0, 0, qh, qh}};
    clip_rect(&pq, x0, y0, x1, y1);
    poly pw = pq;
    if (pq.n < 3 || !map_poly(out->H, &pw))
        return;
    clip_rect(&pw, 0, 0, ww, wh);
    poly back = pw;
    if (pw.n < 3 || !map_poly(Hi, &back))
        return;
    out->work_coverage = (float)(area(&pw) / ((double)ww * wh));
    out->query_coverage = (float)(area(&back) / ((double)qw * qh));
    to_quad(&back, out->query_poly);
    for (int i = 0; i < 4; i++) {
        double x, y;
        if (project(out->H, out->query_poly[2 * i], out->query_poly[2 * i + 1], &x, &y, NULL)) {
            out->work_poly[2 * i] = (float)x;
            out->work_poly[2 * i + 1] = (float)y;
        }
    }
}

static void mat3_mul(const double *a, const double *b, double *o)
{
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            o[3 * r + c] = a[3 * r] * b[c] + a[3 * r + 1] * b[3 + c] + a[3 * r + 2] * b[6 + c];
}

/* ---------------------------------------------------------------------------------------------
 * The pair.
 * ------------------------------------------------------------------------------------------- */
void ps_geo_match_free(ps_geo_match *m)
{
    if (!m)
        return;
    free(m->pairs);
    m->pairs = NULL;
    m->npairs = 0;
}

static int collect(const ps_features *q, const ps_features *w, const ps_top2 *t, int mirrored, double sq, double sw,
                   mt *out)
{
    int n = 0;
    for (int i = 0; i < q->n; i++) {
        const ps_top2 *r = &t[i];
        if (r->idx == UINT32_MAX || r->d1 > MAX_DIST)
            continue;
        if (!(RATIO_DEN * r->d1 <= RATIO_NUM * r->d2 || r->d1 <= CLOSE_DIST))
            continue;
        const ps_keypoint *a = &q->kp[i], *b = &w->kp[r->idx];
        mt *m = &out[n++];
        double qa = mirrored ? M_PI - a->angle : a->angle;
        m->qx = (mirrored ? -a->x : a->x) * sq;
        m->qy = a->y * sq;
        m->wx = b->x * sw;
        m->wy = b->y * sw;
        m->qc = cos(qa);
        m->qs = sin(qa);
        m->wc = cos(b->angle);
        m->ws = sin(b->angle);
        m->sq = a->size * sq / 31.0;
        m->sw = b->size * sw / 31.0;
        /* Localisation error grows with the pyramid level the work keypoint came from. */
        m->tau = fmin(4.0 + 2.0 * m->sw, 14.0);
        m->qi = i;
        m->wi = (int)r->idx;
        m->d = r->d1;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Candidate descriptors by vocabulary cell. Comparing every query descriptor and its mirror with
 * every work descriptor (1000 x 500 distances a pair) was most of a scan's time. The vocabulary's
 * first level cuts descriptor space into (at most MAX_CELLS) cells: a work descriptor lives in its
 * nearest cell, and a query descriptor is compared with the work descriptors of its MATCH_PROBES
 * nearest cells only — about an eighth of them. Two descriptors close enough to match almost always
 * share one of those cells (docs/features.md gives the measured effect). The second cell is probed
 * only when its centre is at most PS_MATCH_SECOND_PROBE_MARGIN bits farther than the nearest: beyond
 * that a matching work descriptor almost always lies in the nearest cell too, and skipping it saves
 * about a fifth of the distances. Without a vocabulary every descriptor is one cell.
 * ------------------------------------------------------------------------------------------- */
#define MATCH_PROBES 2
#define MAX_CELLS 64

struct ps_match_query {
    const ps_features *f;
    int n2;                       /* descriptors: f->n originals, then their mirrors */
    const uint8_t *centres;       /* ncells x 32, or NULL (one cell) */
    int ncells;
    int cell_start[2][MAX_CELLS + 1]; /* per reading (originals, mirrors), offsets into member */
    uint32_t *member;             /* descriptor index (into the n2) of each probe, by reading, then cell */
    uint8_t *gathered;            /* the probes' descriptors in the same order */
};

void ps_match_query_free(ps_match_query *q)
{
    if (!q)
        return;
    free(q->member);
    free(q->gathered);
    free(q);
}

/* The MATCH_PROBES nearest of the ncells centres (ties to the lower cell), nearest first; a further
 * cell more than PS_MATCH_SECOND_PROBE_MARGIN bits farther than the first is dropped (-1). */
static void nearest_cells(const uint8_t *desc, const uint8_t *centres, int ncells, int *cells)
{
    uint16_t d[MAX_CELLS];
    ps_kernels_get()->hamming256(desc, centres, (size_t)ncells, d);
    int n = 0;
    for (int c = 0; c < ncells; c++) {
        int pos = n < MATCH_PROBES ? n++ : MATCH_PROBES;
        while (pos > 0 && d[cells[pos - 1]] > d[c]) {
            if (pos < MATCH_PROBES)
                cells[pos] = cells[pos - 1];
            pos--;
        }
        if (pos < MATCH_PROBES)
            cells[pos] = c;
    }
    for (int p = n; p < MATCH_PROBES; p++)
        cells[p] = -1;
    for (int p = 1; p < n; p++)
        if (d[cells[p]] - d[cells[0]] > PS_MATCH_SECOND_PROBE_MARGIN)
            cells[p] = -1;
}

provscan_status ps_match_query_prepare(const ps_features *query, ps_match_query **out)
{
    *out = NULL;
    ps_match_query *q = calloc(1, sizeof *q);
    if (!q)
        return PROVSCAN_E_NOMEM;
    q->f = query;
    q->n2 = 2 * (query->n > 0 ? query->n : 0);
    const ps_vocab *v = ps_vocab_builtin();
    if (v && v->nchild[0] >= 2 && v->nchild[0] <= MAX_CELLS) {
        q->centres = v->centres + 32 * (size_t)v->first[0];
        q->ncells = v->nchild[0];
    } else {
        q->ncells = 1;
    }
    int probes = q->centres ? MATCH_PROBES : 1;
    size_t np = (size_t)q->n2 * probes;
    int *cell = malloc(sizeof(int) * (np ? np : 1));
    uint8_t *desc = malloc(32 * ((size_t)q->n2 + 1));
    q->member = malloc(sizeof(uint32_t) * (np ? np : 1));
    q->gathered = malloc(32 * (np ? np : 1));
    if (!cell || !desc || !q->member || !q->gathered) {
        free(cell);
        free(desc);
        ps_match_query_free(q);
        return PROVSCAN_E_NOMEM;
    }
    int n = q->n2 / 2;
    if (n > 0) /* a featureless query has no descriptor array at all */
        memcpy(desc, query->desc, 32 * (size_t)n);
    for (int i = 0; i < n; i++)
        ps_desc_mirror(query->desc + 32 * (size_t)i, desc + 32 * (size_t)(n + i));
    /* Probes grouped by reading, then by cell, so that a match can compare one reading only. */
    int count[2][MAX_CELLS] = {{0}};
    for (int i = 0; i < q->n2; i++) {
        int *c = cell + (size_t)i * probes;
        if (q->centres)
            nearest_cells(desc + 32 * (size_t)i, q->centres, q->ncells, c);
        else
            c[0] = 0;
        for (int p = 0; p < probes; p++)
            if (c[p] >= 0)
                count[i >= n][c[p]]++;
    }
    int fill[2][MAX_CELLS];
    for (int o = 0, at = 0; o < 2; o++) {
        for (int c = 0; c < q->ncells; c++) {
            q->cell_start[o][c] = fill[o][c] = at;
            at += count[o][c];
        }
        q->cell_start[o][q->ncells] = at;
    }
    for (int i = 0; i < q->n2; i++)
        for (int p = 0; p < probes; p++) {
            int c = cell[(size_t)i * probes + p];
            if (c < 0)
                continue;
            int k = fill[i >= n][c]++;
            q->member[k] = (uint32_t)i;
            memcpy(q->gathered + 32 * (size_t)k, desc + 32 * (size_t)i, 32);
        }
    free(cell);
    free(desc);
    *out = q;
    return PROVSCAN_OK;
}

/* Folds a cell's top-2 (p, its index already mapped to the work's) into a descriptor's result: the
 * top-2 over the union of the cells searched, ties to the lower work index, as one scan would give. */
static inline void top2_merge(ps_top2 *t, uint32_t idx, uint16_t d1, uint16_t d2)
{
    if (d1 < t->d1 || (d1 == t->d1 && idx < t->idx)) {
        t->d2 = t->d1 < d2 ? t->d1 : d2;
        t->d1 = d1;
        t->idx = idx;
    } else if (d1 < t->d2) {
        t->d2 = d1;
    }
}

provscan_status ps_match_query_top2(const ps_match_query *q, const ps_features *work, int readings, ps_top2 *t)
{
    const ps_kernels *k = ps_kernels_get();
    size_t nw = (size_t)work->n;
    for (int i = 0; i < q->n2; i++)
        t[i] = (ps_top2){UINT32_MAX, 0xFFFF, 0xFFFF};
    if (q->ncells == 1) {
        ps_top2 *part = malloc(sizeof *part * (size_t)(q->n2 ? q->n2 : 1));
        if (!part)
            return PROVSCAN_E_NOMEM;
        for (int o = 0; o < 2; o++) {
            int q0 = q->cell_start[o][0], qn = q->cell_start[o][1] - q0;
            if (!(readings & (1 << o)) || !qn)
                continue;
            k->hamming256_top2(q->gathered + 32 * (size_t)q0, (size_t)qn, work->desc, nw, part);
            for (int i = 0; i < qn; i++)
                t[q->member[q0 + i]] = part[i];
        }
        free(part);
        return PROVSCAN_OK;
    }
    /* The work's descriptors in cell order (stable, so lower index stays first within a cell). */
    ps_top2 *home = malloc(sizeof *home * (nw ? nw : 1));
    uint8_t *codes = malloc(32 * (nw ? nw : 1));
    uint32_t *orig = malloc(sizeof *orig * (nw ? nw : 1));
    int maxq = 0;
    for (int o = 0; o < 2; o++)
        for (int c = 0; c < q->ncells; c++)
            if (q->cell_start[o][c + 1] - q->cell_start[o][c] > maxq)
                maxq = q->cell_start[o][c + 1] - q->cell_start[o][c];
    ps_top2 *part = malloc(sizeof *part * (size_t)(maxq ? maxq : 1));
    if (!home || !codes || !orig || !part) {
        free(home);
        free(codes);
        free(orig);
        free(part);
        return PROVSCAN_E_NOMEM;
    }
    k->hamming256_top2(work->desc, nw, q->centres, (size_t)q->ncells, home);
    int start[MAX_CELLS + 1] = {0};
    for (size_t j = 0; j < nw; j++)
        start[home[j].idx + 1]++;
    for (int c = 0; c < q->ncells; c++)
        start[c + 1] += start[c];
    int fill[MAX_CELLS];
    memcpy(fill, start, sizeof(int) * (size_t)q->ncells);
    for (size_t j = 0; j < nw; j++) {
        int pos = fill[home[j].idx]++;
        memcpy(codes + 32 * (size_t)pos, work->desc + 32 * j, 32);
        orig[pos] = (uint32_t)j;
    }
    for (int o = 0; o < 2; o++) {
        if (!(readings & (1 << o)))
            continue;
        for (int c = 0; c < q->ncells; c++) {
            int q0 = q->cell_start[o][c], qn = q->cell_start[o][c + 1] - q0, wn = start[c + 1] - start[c];
            if (!qn || !wn)
                continue;
            k->hamming256_top2(q->gathered + 32 * (size_t)q0, (size_t)qn, codes + 32 * (size_t)start[c], (size_t)wn,
                               part);
            for (int i = 0; i < qn; i++)
                top2_merge(&t[q->member[q0 + i]], orig[start[c] + part[i].idx], part[i].d1, part[i].d2);
        }
    }
    free(home);
    free(codes);
    free(orig);
    free(part);
    return PROVSCAN_OK;
}

provscan_status ps_features_match(const ps_features *query, const ps_features *work, ps_geo_match *out)
{
    if (!query || !work || !out)
        return PROVSCAN_E_ARG;
    ps_match_query *q;
    provscan_status st = ps_match_query_prepare(query, &q);
    if (st != PROVSCAN_OK) {
        memset(out, 0, sizeof *out);
        out->H[0] = out->H[4] = out->H[8] = 1;
        return st;
    }
    st = ps_features_match_prepared(q, work, PS_READ_BOTH, out);
    ps_match_query_free(q);
    return st;
}

provscan_status ps_features_match_prepared(const ps_match_query *prep, const ps_features *work, int readings,
                                           ps_geo_match *out)
{
    if (!prep || !work || !out || readings < PS_READ_PLAIN || readings > PS_READ_BOTH)
        return PROVSCAN_E_ARG;
    memset(out, 0, sizeof *out);
    out->H[0] = out->H[4] = out->H[8] = 1;
    const ps_features *query = prep->f;
    if (query->n < 3 || work->n < 3 || query->width < 1 || work->width < 1)
        return PROVSCAN_OK;
    int nq = query->n;
    ps_top2 *t = malloc(sizeof(ps_top2) * (size_t)nq * 2);
    mt *m = malloc(sizeof(mt) * (size_t)nq * 2);
    if (!t || !m || ps_match_query_top2(prep, work, readings, t) != PROVSCAN_OK) {
        free(t);
        free(m);
        return PROVSCAN_E_NOMEM;
    }
    double sq = work_scale(query->width, query->height), sw = work_scale(work->width, work->height);
    int n0 = collect(query, work, t, 0, sq, sw, m);
    int n1 = collect(query, work, t + nq, 1, sq, sw, m + nq);
    verdict v0 = {0}, v1 = {0};
    verify(m, n0, work->n, &v0);
    verify(m + nq, n1, work->n, &v1);
    /* A symmetric picture matches both ways: the mirrored reading must be strictly better. */
    int mir = v1.inliers > v0.inliers;
    verdict *v = mir ? &v1 : &v0;
    mt *mm = mir ? m + nq : m;
    out->matches = mir ? n1 : n0;
    out->mirrored = mir;
    out->alt_inliers = v->alt_inliers;
    if (v->inliers >= MIN_REPORT) {
        /* H (pixels) = Sw^-1 * h * F * Sq, F the mirror x -> -x for the mirrored pass. */
        double Sq[9] = {(mir ? -sq : sq), 0, 0, 0, sq, 0, 0, 0, 1}, Swi[9] = {1 / sw, 0, 0, 0, 1 / sw, 0, 0, 0, 1};
        double a[9], H[9];
        mat3_mul(v->h, Sq, a);
        mat3_mul(Swi, a, H);
        for (int i = 0; i < 9; i++)
            H[i] /= H[8];
        double Hi[9];
        if (ps_mat3_invert(H, Hi)) {
            out->inliers = v->inliers;
            memcpy(out->H, H, sizeof H);
            out->pairs = malloc(sizeof(float) * 4 * (size_t)v->inliers);
            double bx0 = 1e30, by0 = 1e30, bx1 = -1e30, by1 = -1e30;
            for (int i = 0; i < v->inliers; i++) {
                const mt *p = &mm[v->idx[i]];
                const ps_keypoint *a2 = &query->kp[p->qi], *b2 = &work->kp[p->wi];
                if (out->pairs) {
                    out->pairs[4 * i] = a2->x;
                    out->pairs[4 * i + 1] = a2->y;
                    out->pairs[4 * i + 2] = b2->x;
                    out->pairs[4 * i + 3] = b2->y;
                }
                bx0 = fmin(bx0, a2->x);
                by0 = fmin(by0, a2->y);
                bx1 = fmax(bx1, a2->x);
                by1 = fmax(by1, a2->y);
            }
            out->npairs = out->pairs ? v->inliers : 0;
            /* Region: the overlap of the two frames under H, limited to the inliers' extent grown
             * by a margin (features keep ~20 working pixels from the borders; a pasted part of a
             * work is bounded by where its features stop). ps_geo_match_refine_region() can
             * tighten it with the pixels. */
            double mx = fmax(0.15 * (bx1 - bx0), 48.0 / sq), my = fmax(0.15 * (by1 - by0), 48.0 / sq);
            ps_match_set_region(out, query->width, query->height, work->width, work->height, bx0 - mx, by0 - my,
                                bx1 + mx, by1 + my);
        }
    }
    free(v0.idx);
    free(v1.idx);
    free(t);
    free(m);
    return PROVSCAN_OK;
}

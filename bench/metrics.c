/* metrics.c — scores a method's copy-detection predictions against the benchmark ground truth (ISC2021 micro-AP and more). */
/*
 * Usage: metrics GROUNDTRUTH.csv PREDICTIONS.csv [--threshold S] [--method NAME] [--json OUT.json]
 *                [--pr OUT.tsv] [--shared SHARED.tsv] [--quiet]
 *        metrics --selftest
 *
 * GROUNDTRUTH.csv: header `query,reference,family,params,ref_x0,ref_y0,ref_x1,ref_y1` (columns found by
 * name, extra columns ignored); `reference` empty for negative queries (families prefixed `neg_`).
 * PREDICTIONS.csv: header `query,reference,score`; any number of rows per query; higher = more confident.
 *
 * Definitions (see bench/README.md, "Metrics"):
 *  - per (query, reference) only the maximum score is kept;
 *  - a prediction is a true positive iff (query, reference) is the ground-truth pair of a positive query;
 *  - micro-AP (ISC2021): pool all predictions, sort by score descending with ties ordered false positives
 *    first (the worst order, as the ISC2021 reference code does), compute precision P_i and recall R_i after
 *    each prediction with recall denominator = number of positive queries, and sum (R_i - R_{i-1}) * P_i;
 *  - R@Pp: maximum recall over the operating points whose precision is >= p (0 when none);
 *  - per positive family: the same three numbers on the pool made of that family's predictions plus all the
 *    negative queries' predictions, recall denominator = the family's positive queries;
 *  - at --threshold S: false-positive rate of negative queries (fraction with any prediction scoring >= S),
 *    and for positive queries the fractions whose top prediction (>= S) is right, wrong, or absent;
 *  - --shared SHARED.tsv (bench/data/make-data.sh writes data/shared-content.tsv: source and reference
 *    pictures that share real content, found by bench/peers/shared_content.cpp): a prediction naming a
 *    reference other than the query's own work that shares content with a picture the query was made
 *    from (its work, and the `src=`/`bg=` files of its params) is neither right nor wrong: it is left out
 *    of every pool, as "junk" results are in retrieval benchmarks, and counted as `ignored_shared`.
 */
#define _GNU_SOURCE /* qsort_r, mkstemp */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * Small utilities.
 * ---------------------------------------------------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("metrics: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

static uint64_t hash_str(const char *s, uint64_t seed)
{
    uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* ------------------------------------------------------------------------------------------------
 * CSV reader: RFC 4180 quoting (quoted fields may hold commas, doubled quotes and newlines), LF or CRLF.
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    char **field;
    size_t n, cap;
    char *buf;
    size_t blen, bcap;
} csv_row;

static void row_putc(csv_row *r, char c)
{
    if (r->blen + 1 >= r->bcap) {
        r->bcap = r->bcap ? r->bcap * 2 : 256;
        r->buf = xrealloc(r->buf, r->bcap);
    }
    r->buf[r->blen++] = c;
}

/* Reads one record; returns 0 at end of file. Fields point into r->buf. */
static int csv_read(FILE *f, csv_row *r)
{
    size_t starts[4096];
    size_t nf = 0;
    int c, inq = 0, any = 0;
    r->blen = 0;
    r->n = 0;
    starts[nf++] = 0;
    for (;;) {
        c = getc(f);
        if (c == EOF) {
            if (!any)
                return 0;
            break;
        }
        any = 1;
        if (inq) {
            if (c == '"') {
                int d = getc(f);
                if (d == '"')
                    row_putc(r, '"');
                else {
                    inq = 0;
                    if (d != EOF)
                        ungetc(d, f);
                }
            } else
                row_putc(r, (char)c);
            continue;
        }
        if (c == '"')
            inq = 1;
        else if (c == ',') {
            row_putc(r, '\0');
            if (nf >= sizeof starts / sizeof starts[0])
                die("CSV record with too many fields");
            starts[nf++] = r->blen;
        } else if (c == '\n')
            break;
        else if (c == '\r') {
            int d = getc(f);
            if (d != '\n' && d != EOF)
                ungetc(d, f);
            break;
        } else
            row_putc(r, (char)c);
    }
    row_putc(r, '\0');
    if (nf > r->cap) {
        r->cap = nf;
        r->field = xrealloc(r->field, nf * sizeof *r->field);
    }
    for (size_t i = 0; i < nf; i++)
        r->field[i] = r->buf + starts[i];
    r->n = nf;
    return 1;
}

static void csv_free(csv_row *r)
{
    free(r->field);
    free(r->buf);
}

static int find_col(const csv_row *hdr, const char *name)
{
    for (size_t i = 0; i < hdr->n; i++) {
        const char *h = hdr->field[i];
        if (i == 0 && (unsigned char)h[0] == 0xEF && (unsigned char)h[1] == 0xBB && (unsigned char)h[2] == 0xBF)
            h += 3; /* UTF-8 byte-order mark */
        if (strcmp(h, name) == 0)
            return (int)i;
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------------
 * String -> index hash map (open addressing).
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    char **key;
    int *val;
    size_t cap, n;
} strmap;

static void strmap_init(strmap *m)
{
    m->cap = 1024;
    m->n = 0;
    m->key = calloc(m->cap, sizeof *m->key);
    m->val = xmalloc(m->cap * sizeof *m->val);
    if (!m->key)
        die("out of memory");
}

static int strmap_get(const strmap *m, const char *k)
{
    size_t i = (size_t)hash_str(k, 0) & (m->cap - 1);
    while (m->key[i]) {
        if (strcmp(m->key[i], k) == 0)
            return m->val[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

static void strmap_put(strmap *m, const char *k, int v);

static void strmap_grow(strmap *m)
{
    strmap o = *m;
    m->cap *= 2;
    m->n = 0;
    m->key = calloc(m->cap, sizeof *m->key);
    m->val = xmalloc(m->cap * sizeof *m->val);
    if (!m->key)
        die("out of memory");
    for (size_t i = 0; i < o.cap; i++)
        if (o.key[i]) {
            strmap_put(m, o.key[i], o.val[i]);
            free(o.key[i]);
        }
    free(o.key);
    free(o.val);
}

/* Inserts or overwrites. */
static void strmap_put(strmap *m, const char *k, int v)
{
    if ((m->n + 1) * 2 > m->cap)
        strmap_grow(m);
    size_t i = (size_t)hash_str(k, 0) & (m->cap - 1);
    while (m->key[i]) {
        if (strcmp(m->key[i], k) == 0) {
            m->val[i] = v;
            return;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->key[i] = xstrdup(k);
    m->val[i] = v;
    m->n++;
}

static void strmap_free(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->key[i]);
    free(m->key);
    free(m->val);
}

/* ------------------------------------------------------------------------------------------------
 * Data.
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    char *name;
    char *reference; /* NULL for a negative query */
    int family;
    char *sources[3]; /* base names of the pictures the query was made from: its work, src=, bg= */
} gt_query;

typedef struct {
    char *name;
    int negative;
    int nqueries;
} family;

typedef struct {
    int query;   /* index into gt */
    double score;
    int tp;
} pred;

typedef struct {
    gt_query *q;
    int nq;
    family *fam;
    int nfam;
    pred *p;
    size_t np;
    size_t rows_read, unknown_rows, bad_rows, ignored_shared;
    int unknown_queries;
    strmap shared; /* "source base name\x1freference" of pictures sharing content (--shared) */
    int have_shared;
} dataset;

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The value of key= in a params string (`k=v;k=v;...`), as a new string, or NULL. */
static char *param_value(const char *params, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = params; p && *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char *v = xmalloc(len - kl);
            memcpy(v, p + kl + 1, len - kl - 1);
            v[len - kl - 1] = '\0';
            return v;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

static void load_shared(dataset *d, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    strmap_init(&d->shared);
    d->have_shared = 1;
    char line[8192];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        char *ref = tab + 1, *end = strpbrk(ref, "\t\r\n");
        if (end)
            *end = '\0';
        if (n++ == 0 && !strcmp(line, "source"))
            continue; /* header */
        /* sharing content is symmetric: either picture may be the one a query was made from */
        char key[8192 + 2];
        snprintf(key, sizeof key, "%s\x1f%s", base_name(line), ref);
        strmap_put(&d->shared, key, 1);
        snprintf(key, sizeof key, "%s\x1f%s", base_name(ref), line);
        strmap_put(&d->shared, key, 1);
    }
    fclose(f);
}

/* Does reference ref share content with a picture query q was made from (other than being its work)? */
static int shares_content(const dataset *d, const gt_query *q, const char *ref)
{
    if (!d->have_shared)
        return 0;
    char key[8192 + 2];
    for (int i = 0; i < 3; i++) {
        if (!q->sources[i])
            continue;
        snprintf(key, sizeof key, "%s\x1f%s", q->sources[i], ref);
        if (strmap_get(&d->shared, key) >= 0)
            return 1;
    }
    return 0;
}

static int is_negative_family(const char *f) { return strncmp(f, "neg_", 4) == 0; }

static void load_groundtruth(dataset *d, const char *path, strmap *qmap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open ground truth %s: %s", path, strerror(errno));
    csv_row r = {0};
    if (!csv_read(f, &r))
        die("%s: empty file", path);
    int cq = find_col(&r, "query"), cr = find_col(&r, "reference"), cf = find_col(&r, "family"),
        cp = find_col(&r, "params");
    if (cq < 0 || cr < 0 || cf < 0)
        die("%s: header must have query,reference,family columns", path);
    strmap fmap;
    strmap_init(&fmap);
    int capq = 0, capf = 0;
    size_t line = 1;
    while (csv_read(f, &r)) {
        line++;
        if (r.n == 1 && r.field[0][0] == '\0')
            continue; /* blank line */
        if ((int)r.n <= cq || (int)r.n <= cr || (int)r.n <= cf)
            die("%s:%zu: too few fields", path, line);
        const char *qn = r.field[cq], *ref = r.field[cr], *fn = r.field[cf];
        if (!*qn)
            die("%s:%zu: empty query name", path, line);
        if (strmap_get(qmap, qn) >= 0)
            die("%s:%zu: query %s listed twice", path, line, qn);
        int neg = *ref == '\0';
        if (!*fn)
            fn = neg ? "neg_unlabelled" : "unlabelled";
        if (neg != is_negative_family(fn))
            fprintf(stderr, "metrics: %s:%zu: warning: family %s %s a reference\n", path, line, fn,
                    neg ? "has no" : "has");
        int fi = strmap_get(&fmap, fn);
        if (fi < 0) {
            if (d->nfam == capf) {
                capf = capf ? capf * 2 : 32;
                d->fam = xrealloc(d->fam, (size_t)capf * sizeof *d->fam);
            }
            fi = d->nfam++;
            d->fam[fi].name = xstrdup(fn);
            d->fam[fi].negative = neg;
            d->fam[fi].nqueries = 0;
            strmap_put(&fmap, fn, fi);
        }
        if (d->fam[fi].negative != neg)
            die("%s:%zu: family %s mixes positive and negative queries", path, line, fn);
        if (d->nq == capq) {
            capq = capq ? capq * 2 : 256;
            d->q = xrealloc(d->q, (size_t)capq * sizeof *d->q);
        }
        d->q[d->nq].name = xstrdup(qn);
        d->q[d->nq].reference = neg ? NULL : xstrdup(ref);
        d->q[d->nq].family = fi;
        const char *params = cp >= 0 && (int)r.n > cp ? r.field[cp] : "";
        d->q[d->nq].sources[0] = neg ? NULL : xstrdup(base_name(ref));
        d->q[d->nq].sources[1] = param_value(params, "src");
        d->q[d->nq].sources[2] = param_value(params, "bg");
        d->fam[fi].nqueries++;
        strmap_put(qmap, qn, d->nq);
        d->nq++;
    }
    csv_free(&r);
    strmap_free(&fmap);
    fclose(f);
    if (d->nq == 0)
        die("%s: no queries", path);
}

static void load_predictions(dataset *d, const char *path, const strmap *qmap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open predictions %s: %s", path, strerror(errno));
    csv_row r = {0};
    if (!csv_read(f, &r))
        die("%s: empty file (a header `query,reference,score` is needed)", path);
    int cq = find_col(&r, "query"), cr = find_col(&r, "reference"), cs = find_col(&r, "score");
    if (cq < 0 || cr < 0 || cs < 0)
        die("%s: header must have query,reference,score columns", path);
    strmap pair; /* "qidx\x1freference" -> index into d->p */
    strmap_init(&pair);
    strmap unk;
    strmap_init(&unk);
    size_t cap = 0, line = 1;
    char *key = NULL;
    size_t keycap = 0;
    while (csv_read(f, &r)) {
        line++;
        if (r.n == 1 && r.field[0][0] == '\0')
            continue;
        d->rows_read++;
        if ((int)r.n <= cq || (int)r.n <= cr || (int)r.n <= cs) {
            d->bad_rows++;
            continue;
        }
        char *end;
        errno = 0;
        double s = strtod(r.field[cs], &end);
        if (end == r.field[cs] || *end || errno || isnan(s)) {
            if (d->bad_rows++ < 5)
                fprintf(stderr, "metrics: %s:%zu: bad score '%s', row ignored\n", path, line, r.field[cs]);
            continue;
        }
        int qi = strmap_get(qmap, r.field[cq]);
        if (qi < 0) {
            d->unknown_rows++;
            if (strmap_get(&unk, r.field[cq]) < 0) {
                strmap_put(&unk, r.field[cq], 1);
                if (d->unknown_queries++ < 5)
                    fprintf(stderr, "metrics: %s:%zu: query '%s' is not in the ground truth, ignored\n", path,
                            line, r.field[cq]);
            }
            continue;
        }
        size_t need = strlen(r.field[cr]) + 32;
        if (need > keycap) {
            keycap = need * 2;
            key = xrealloc(key, keycap);
        }
        snprintf(key, keycap, "%d\x1f%s", qi, r.field[cr]);
        int pi = strmap_get(&pair, key);
        if (pi == -2)
            continue;
        if (pi >= 0) {
            if (s > d->p[pi].score)
                d->p[pi].score = s;
            continue;
        }
        if (d->np == cap) {
            cap = cap ? cap * 2 : 1024;
            d->p = xrealloc(d->p, cap * sizeof *d->p);
        }
        const char *gref = d->q[qi].reference;
        if (!(gref && strcmp(gref, r.field[cr]) == 0) && shares_content(d, &d->q[qi], r.field[cr])) {
            d->ignored_shared++;
            strmap_put(&pair, key, -2); /* later rows of the pair are ignored too, not counted again */
            continue;
        }
        d->p[d->np].query = qi;
        d->p[d->np].score = s;
        d->p[d->np].tp = gref && strcmp(gref, r.field[cr]) == 0;
        if (d->np >= (size_t)INT32_MAX)
            die("too many predictions");
        strmap_put(&pair, key, (int)d->np);
        d->np++;
    }
    free(key);
    strmap_free(&unk);
    strmap_free(&pair);
    csv_free(&r);
    fclose(f);
}

/* ------------------------------------------------------------------------------------------------
 * Metrics.
 * ---------------------------------------------------------------------------------------------- */

/* Descending score; among equal scores, false positives first (worst case, as ISC2021). */
static int cmp_pred(const void *a, const void *b)
{
    const pred *x = a, *y = b;
    if (x->score > y->score)
        return -1;
    if (x->score < y->score)
        return 1;
    if (x->tp != y->tp)
        return x->tp - y->tp; /* fp (0) before tp (1) */
    return x->query - y->query; /* deterministic */
}

typedef struct {
    double uap, r_p99, r_p90;
    int npos;
    size_t npred;
} apres;

/* pool must be sorted with cmp_pred. Optionally writes the PR curve (operating points at the end of each
 * score tie group, i.e. the points a threshold can select). */
static apres compute_ap(const pred *pool, size_t n, int npos, FILE *curve)
{
    apres res = {0, 0, 0, npos, n};
    if (npos <= 0)
        return res;
    size_t tp = 0;
    double prev_r = 0;
    for (size_t i = 0; i < n; i++) {
        tp += pool[i].tp ? 1 : 0;
        double p = (double)tp / (double)(i + 1);
        double r = (double)tp / (double)npos;
        res.uap += (r - prev_r) * p;
        prev_r = r;
        if (p >= 0.99 && r > res.r_p99)
            res.r_p99 = r;
        if (p >= 0.90 && r > res.r_p90)
            res.r_p90 = r;
        if (curve && (i + 1 == n || pool[i + 1].score != pool[i].score))
            fprintf(curve, "%.6f\t%.6f\t%.9g\n", r, p, pool[i].score);
    }
    return res;
}

typedef struct {
    int n;             /* queries considered */
    int fp;            /* negative queries with a prediction >= threshold */
    int top_right;     /* positive queries whose top prediction >= threshold is the right work */
    int top_wrong;     /* ... is another work */
    int top_none;      /* ... no prediction >= threshold */
} thrres;

typedef struct {
    double score;
    int tp;
    int has;
} topinfo;

/* Top prediction per query; among equal scores a wrong one wins (conservative). */
static topinfo *top_per_query(const dataset *d)
{
    topinfo *t = calloc((size_t)d->nq, sizeof *t);
    if (!t)
        die("out of memory");
    for (size_t i = 0; i < d->np; i++) {
        topinfo *x = &t[d->p[i].query];
        if (!x->has || d->p[i].score > x->score || (d->p[i].score == x->score && !d->p[i].tp)) {
            x->has = 1;
            x->score = d->p[i].score;
            x->tp = d->p[i].tp;
        }
    }
    return t;
}

static void thr_add(thrres *r, const dataset *d, const topinfo *t, int qi, double thr)
{
    r->n++;
    int hit = t[qi].has && t[qi].score >= thr;
    if (!d->q[qi].reference) {
        if (hit)
            r->fp++;
    } else if (!hit)
        r->top_none++;
    else if (t[qi].tp)
        r->top_right++;
    else
        r->top_wrong++;
}

static double frac(int a, int b) { return b ? (double)a / (double)b : 0.0; }

typedef struct {
    apres overall;
    apres *fam_ap;       /* per family (positive ones meaningful) */
    thrres *fam_thr;     /* per family */
    thrres pos_thr, neg_thr;
    int npos, nneg;
} results;

static results evaluate(dataset *d, double thr, const char *pr_path)
{
    results R;
    memset(&R, 0, sizeof R);
    for (int i = 0; i < d->nq; i++) {
        if (d->q[i].reference)
            R.npos++;
        else
            R.nneg++;
    }
    qsort(d->p, d->np, sizeof *d->p, cmp_pred);
    FILE *curve = NULL;
    if (pr_path) {
        curve = fopen(pr_path, "w");
        if (!curve)
            die("cannot write %s: %s", pr_path, strerror(errno));
        fprintf(curve, "# recall\tprecision\tscore (operating points at the end of each score tie group)\n");
    }
    R.overall = compute_ap(d->p, d->np, R.npos, curve);
    if (curve && fclose(curve) != 0)
        die("write error on %s", pr_path);

    /* Per family pools: family predictions + negatives' predictions, kept in the global sorted order. */
    R.fam_ap = calloc((size_t)d->nfam, sizeof *R.fam_ap);
    R.fam_thr = calloc((size_t)d->nfam, sizeof *R.fam_thr);
    pred *pool = xmalloc(d->np * sizeof *pool);
    for (int f = 0; f < d->nfam; f++) {
        if (d->fam[f].negative)
            continue;
        size_t n = 0;
        for (size_t i = 0; i < d->np; i++) {
            const gt_query *q = &d->q[d->p[i].query];
            if (q->family == f || !q->reference)
                pool[n++] = d->p[i];
        }
        R.fam_ap[f] = compute_ap(pool, n, d->fam[f].nqueries, NULL);
    }
    free(pool);

    topinfo *t = top_per_query(d);
    for (int i = 0; i < d->nq; i++) {
        thr_add(&R.fam_thr[d->q[i].family], d, t, i, thr);
        thr_add(d->q[i].reference ? &R.pos_thr : &R.neg_thr, d, t, i, thr);
    }
    free(t);
    return R;
}

/* Family display order: positive families in the benchmark's canonical order, others alphabetically,
 * then negative families alphabetically. */
static const char *const canon[] = {"resize_down", "jpeg_low", "color_shift", "blur", "noise", "greyscale",
                                    "mirror", "rotate90", "small_rotate", "mild_crop", "heavy_crop",
                                    "aspect_change", "padding", "caption", "overlay", "composite",
                                    "perspective", "painterly", "combo"};

static int canon_rank(const family *f)
{
    if (f->negative)
        return 1000;
    for (size_t i = 0; i < sizeof canon / sizeof canon[0]; i++)
        if (strcmp(canon[i], f->name) == 0)
            return (int)i;
    return 500;
}

static int cmp_family(const void *a, const void *b, void *ctx)
{
    const family *fam = ctx;
    const family *x = &fam[*(const int *)a], *y = &fam[*(const int *)b];
    int rx = canon_rank(x), ry = canon_rank(y);
    if (rx != ry)
        return rx - ry;
    return strcmp(x->name, y->name);
}

static int *family_order(const dataset *d)
{
    int *o = xmalloc((size_t)d->nfam * sizeof *o);
    for (int i = 0; i < d->nfam; i++)
        o[i] = i;
    qsort_r(o, (size_t)d->nfam, sizeof *o, cmp_family, d->fam);
    return o;
}

static void print_report(FILE *out, const dataset *d, const results *R, double thr, const char *method)
{
    fprintf(out, "method: %s   queries: %d (%d positive, %d negative)   predictions: %zu (after dedupe)\n",
            method ? method : "-", d->nq, R->npos, R->nneg, d->np);
    fprintf(out, "%-16s %6s %7s %7s %7s   %s\n", "family", "n", "uAP", "R@P99", "R@P90",
            "at threshold (right/wrong/none or FPR)");
    fprintf(out, "%-16s %6d %7.4f %7.4f %7.4f   top1 right %.3f wrong %.3f none %.3f | neg FPR %.4f\n",
            "OVERALL", d->nq, R->overall.uap, R->overall.r_p99, R->overall.r_p90,
            frac(R->pos_thr.top_right, R->pos_thr.n), frac(R->pos_thr.top_wrong, R->pos_thr.n),
            frac(R->pos_thr.top_none, R->pos_thr.n), frac(R->neg_thr.fp, R->neg_thr.n));
    int *o = family_order(d);
    for (int k = 0; k < d->nfam; k++) {
        int f = o[k];
        const thrres *t = &R->fam_thr[f];
        if (d->fam[f].negative)
            fprintf(out, "%-16s %6d %7s %7s %7s   FPR %.4f (%d/%d)\n", d->fam[f].name, d->fam[f].nqueries, "-",
                    "-", "-", frac(t->fp, t->n), t->fp, t->n);
        else
            fprintf(out, "%-16s %6d %7.4f %7.4f %7.4f   top1 right %.3f wrong %.3f none %.3f\n", d->fam[f].name,
                    d->fam[f].nqueries, R->fam_ap[f].uap, R->fam_ap[f].r_p99, R->fam_ap[f].r_p90,
                    frac(t->top_right, t->n), frac(t->top_wrong, t->n), frac(t->top_none, t->n));
    }
    fprintf(out, "threshold: %g   (FPR = negative queries with any prediction >= threshold)\n", thr);
    if (d->have_shared)
        fprintf(out, "ignored: %zu predictions naming a reference that shares content with the query's sources\n",
                d->ignored_shared);
    free(o);
}

static json_t *thr_json(const thrres *t, int negative)
{
    if (negative)
        return json_pack("{s:i,s:i,s:f}", "n_queries", t->n, "false_positives", t->fp, "fpr", frac(t->fp, t->n));
    return json_pack("{s:i,s:f,s:f,s:f}", "n_queries", t->n, "top1_right", frac(t->top_right, t->n),
                     "top1_wrong", frac(t->top_wrong, t->n), "top1_none", frac(t->top_none, t->n));
}

static void write_json(const char *path, const dataset *d, const results *R, double thr, const char *method,
                       const char *gt_path, const char *pred_path)
{
    json_t *root = json_object();
    json_object_set_new(root, "method", json_string(method ? method : ""));
    json_object_set_new(root, "groundtruth", json_string(gt_path));
    json_object_set_new(root, "predictions", json_string(pred_path));
    json_object_set_new(root, "threshold", json_real(thr));
    json_object_set_new(root, "n_queries", json_integer(d->nq));
    json_object_set_new(root, "n_positive", json_integer(R->npos));
    json_object_set_new(root, "n_negative", json_integer(R->nneg));
    json_object_set_new(root, "n_predictions", json_integer((json_int_t)d->np));
    json_object_set_new(root, "rows_read", json_integer((json_int_t)d->rows_read));
    json_object_set_new(root, "rows_unknown_query", json_integer((json_int_t)d->unknown_rows));
    json_object_set_new(root, "rows_bad", json_integer((json_int_t)d->bad_rows));
    json_object_set_new(root, "ignored_shared", d->have_shared ? json_integer((json_int_t)d->ignored_shared)
                                                               : json_null());
    json_t *ov = json_pack("{s:f,s:f,s:f,s:i}", "uap", R->overall.uap, "r_at_p99", R->overall.r_p99, "r_at_p90",
                           R->overall.r_p90, "n_positive", R->npos);
    json_object_set_new(ov, "positives_at_threshold", thr_json(&R->pos_thr, 0));
    json_object_set_new(ov, "negatives_at_threshold", thr_json(&R->neg_thr, 1));
    json_object_set_new(root, "overall", ov);
    json_t *fams = json_object();
    json_t *order = json_array();
    int *o = family_order(d);
    for (int k = 0; k < d->nfam; k++) {
        int f = o[k];
        json_t *j;
        if (d->fam[f].negative) {
            j = thr_json(&R->fam_thr[f], 1);
            json_object_set_new(j, "kind", json_string("negative"));
        } else {
            j = json_pack("{s:s,s:i,s:f,s:f,s:f}", "kind", "positive", "n_queries", d->fam[f].nqueries, "uap",
                          R->fam_ap[f].uap, "r_at_p99", R->fam_ap[f].r_p99, "r_at_p90", R->fam_ap[f].r_p90);
            json_object_set_new(j, "at_threshold", thr_json(&R->fam_thr[f], 0));
        }
        json_object_set_new(fams, d->fam[f].name, j);
        json_array_append_new(order, json_string(d->fam[f].name));
    }
    free(o);
    json_object_set_new(root, "families", fams);
    json_object_set_new(root, "family_order", order);
    if (json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(8)) != 0)
        die("cannot write %s", path);
    json_decref(root);
}

static void dataset_free(dataset *d)
{
    for (int i = 0; i < d->nq; i++) {
        free(d->q[i].name);
        free(d->q[i].reference);
        for (int k = 0; k < 3; k++)
            free(d->q[i].sources[k]);
    }
    if (d->have_shared)
        strmap_free(&d->shared);
    for (int i = 0; i < d->nfam; i++)
        free(d->fam[i].name);
    free(d->q);
    free(d->fam);
    free(d->p);
}

static void results_free(results *R)
{
    free(R->fam_ap);
    free(R->fam_thr);
}

/* ------------------------------------------------------------------------------------------------
 * Self-test on a hand-computed example.
 * ---------------------------------------------------------------------------------------------- */

static const char selftest_gt[] =
    "query,reference,family,params,ref_x0,ref_y0,ref_x1,ref_y1\r\n"
    "q1.jpg,corpus/a.png,resize_down,\"scale=0.5,q=90\",0,0,100,100\r\n"
    "q2.jpg,corpus/b.png,heavy_crop,frac=0.3,10,10,40,40\r\n"
    "q3.jpg,corpus/c.png,heavy_crop,frac=0.3,0,0,30,30\r\n"
    "q4.jpg,,neg_outsider,,,,,\r\n"
    "q5.jpg,,neg_outsider,,,,,\r\n";

/* Sorted pool with ties false-positive first:
 *   0.9 q1/a TP, 0.8 q4/a FP, 0.8 q2/b TP, 0.5 q1/b FP, 0.4 q3/a FP, 0.2 q3/c TP   (3 positive queries)
 *   precision after each: 1, 1/2, 2/3, 2/4, 2/5, 3/6; recall steps of 1/3 at items 1, 3, 6
 *   uAP = 1/3*1 + 1/3*2/3 + 1/3*1/2 = 13/18 = 0.72222 (ties true-positive first would give 0.8333)
 *   R@P99 = R@P90 = 1/3 (only the first point reaches 0.90)
 * resize_down pool {0.9 TP, 0.8 FP(neg), 0.5 FP}, 1 positive: uAP 1, R@P99 1.
 * heavy_crop pool {0.8 FP(neg), 0.8 TP, 0.4 FP, 0.2 TP}, 2 positives: uAP 1/2*1/2 + 1/2*2/4 = 0.5, R@P99 0.
 * threshold 0.5: negatives FPR 1/2 (q4 0.8; q5 none); positives: q1 right, q2 right, q3 none (0.4 < 0.5).
 * threshold 0.3: q3's top is a (0.4), wrong. */
static const char selftest_pred[] = "query,reference,score\n"
                                    "q1.jpg,corpus/a.png,0.9\n"
                                    "q1.jpg,corpus/b.png,0.5\n"
                                    "q2.jpg,corpus/b.png,0.3\n"
                                    "q2.jpg,corpus/b.png,0.8\n"
                                    "q4.jpg,corpus/a.png,0.8\n"
                                    "q3.jpg,corpus/a.png,0.4\n"
                                    "q3.jpg,\"corpus/c.png\",0.2\n"
                                    "qX.jpg,corpus/a.png,0.99\n";

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

static int nchecks;

static int check(int ok, const char *what, double got, double want)
{
    nchecks++;
    printf("%s %-44s got %.6f want %.6f\n", ok ? "ok  " : "FAIL", what, got, want);
    return ok ? 0 : 1;
}

static int write_tmp(char *tmpl, const char *text)
{
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    return ok ? 0 : -1;
}

static int selftest(void)
{
    char gtp[] = "/tmp/metrics-gt-XXXXXX", prp[] = "/tmp/metrics-pred-XXXXXX", jsp[] = "/tmp/metrics-json-XXXXXX";
    if (write_tmp(gtp, selftest_gt) || write_tmp(prp, selftest_pred) || write_tmp(jsp, ""))
        die("selftest: cannot write temporary files");
    int fails = 0;
    for (int pass = 0; pass < 2; pass++) {
        double thr = pass == 0 ? 0.5 : 0.3;
        dataset d;
        memset(&d, 0, sizeof d);
        strmap qmap;
        strmap_init(&qmap);
        load_groundtruth(&d, gtp, &qmap);
        load_predictions(&d, prp, &qmap);
        results R = evaluate(&d, thr, NULL);
        int fr = -1, fc = -1, fn = -1;
        for (int f = 0; f < d.nfam; f++) {
            if (!strcmp(d.fam[f].name, "resize_down"))
                fr = f;
            if (!strcmp(d.fam[f].name, "heavy_crop"))
                fc = f;
            if (!strcmp(d.fam[f].name, "neg_outsider"))
                fn = f;
        }
        if (fr < 0 || fc < 0 || fn < 0)
            die("selftest: families not parsed");
        if (pass == 0) {
            fails += check(d.nq == 5 && R.npos == 3 && R.nneg == 2, "queries parsed (5, 3 positive)", d.nq, 5);
            fails += check(d.np == 6, "predictions after dedupe (unknown query dropped)", (double)d.np, 6);
            fails += check(d.unknown_rows == 1, "rows for an unknown query", (double)d.unknown_rows, 1);
            fails += check(near(R.overall.uap, 13.0 / 18.0), "overall uAP (ties false-positive first)",
                           R.overall.uap, 13.0 / 18.0);
            fails += check(near(R.overall.r_p99, 1.0 / 3), "overall R@P99", R.overall.r_p99, 1.0 / 3);
            fails += check(near(R.overall.r_p90, 1.0 / 3), "overall R@P90", R.overall.r_p90, 1.0 / 3);
            fails += check(near(R.fam_ap[fr].uap, 1.0), "resize_down uAP", R.fam_ap[fr].uap, 1.0);
            fails += check(near(R.fam_ap[fr].r_p99, 1.0), "resize_down R@P99", R.fam_ap[fr].r_p99, 1.0);
            fails += check(near(R.fam_ap[fc].uap, 0.5), "heavy_crop uAP", R.fam_ap[fc].uap, 0.5);
            fails += check(near(R.fam_ap[fc].r_p99, 0.0), "heavy_crop R@P99", R.fam_ap[fc].r_p99, 0.0);
            fails += check(near(R.fam_ap[fc].r_p90, 0.0), "heavy_crop R@P90", R.fam_ap[fc].r_p90, 0.0);
            fails += check(near(frac(R.neg_thr.fp, R.neg_thr.n), 0.5), "negative FPR at 0.5",
                           frac(R.neg_thr.fp, R.neg_thr.n), 0.5);
            fails += check(near(frac(R.fam_thr[fn].fp, R.fam_thr[fn].n), 0.5), "neg_outsider FPR at 0.5",
                           frac(R.fam_thr[fn].fp, R.fam_thr[fn].n), 0.5);
            fails += check(R.pos_thr.top_right == 2 && R.pos_thr.top_wrong == 0 && R.pos_thr.top_none == 1,
                           "positives at 0.5: right 2 wrong 0 none 1", R.pos_thr.top_right, 2);
            write_json(jsp, &d, &R, thr, "selftest", gtp, prp);
            json_error_t je;
            json_t *j = json_load_file(jsp, 0, &je);
            double u = j ? json_real_value(json_object_get(json_object_get(j, "overall"), "uap")) : -1;
            fails += check(fabs(u - 13.0 / 18.0) < 1e-6, "JSON overall.uap", u, 13.0 / 18.0);
            json_decref(j);
        } else {
            fails += check(R.pos_thr.top_right == 2 && R.pos_thr.top_wrong == 1 && R.pos_thr.top_none == 0,
                           "positives at 0.3: right 2 wrong 1 none 0", R.pos_thr.top_wrong, 1);
            fails += check(near(frac(R.neg_thr.fp, R.neg_thr.n), 0.5), "negative FPR at 0.3",
                           frac(R.neg_thr.fp, R.neg_thr.n), 0.5);
        }
        results_free(&R);
        dataset_free(&d);
        strmap_free(&qmap);
    }
    /* Shared content: b shares content with a and with outsider o.png (q4's src=): q1/b (q1 copies a),
     * q2/a (q2 copies b: the relation is symmetric) and q4/b are ignored, q4/a stays a false positive,
     * and q1/a stays right. Pool: 0.9 q1/a TP, 0.8 q4/a FP, 0.3 q2/b TP: uAP = 1/2 + 1/2 * 2/3. */
    {
        static const char gt2[] = "query,reference,family,params\n"
                                  "q1.jpg,corpus/a.png,resize_down,scale=0.5\n"
                                  "q2.jpg,corpus/b.png,mirror,\n"
                                  "q4.jpg,,neg_plain,src=o.png;save=jpeg90\n";
        static const char pr2[] = "query,reference,score\n"
                                  "q1.jpg,corpus/a.png,0.9\n"
                                  "q1.jpg,corpus/b.png,0.95\n"
                                  "q4.jpg,corpus/a.png,0.8\n"
                                  "q4.jpg,corpus/b.png,0.99\n"
                                  "q4.jpg,corpus/b.png,0.7\n"
                                  "q2.jpg,corpus/a.png,0.4\n"
                                  "q2.jpg,corpus/b.png,0.3\n";
        static const char sh2[] = "source\treference\tmirrored\tinliers\tagreement\n"
                                  "corpus/a.png\tcorpus/b.png\t0\t80\t0.9\n"
                                  "outsiders/o.png\tcorpus/b.png\t1\t50\t0.7\n";
        char g2[] = "/tmp/metrics-gt-XXXXXX", p2[] = "/tmp/metrics-pred-XXXXXX", s2[] = "/tmp/metrics-sh-XXXXXX";
        if (write_tmp(g2, gt2) || write_tmp(p2, pr2) || write_tmp(s2, sh2))
            die("selftest: cannot write temporary files");
        dataset d;
        memset(&d, 0, sizeof d);
        strmap qmap;
        strmap_init(&qmap);
        load_groundtruth(&d, g2, &qmap);
        load_shared(&d, s2);
        load_predictions(&d, p2, &qmap);
        results R = evaluate(&d, 0.5, NULL);
        fails += check(d.ignored_shared == 3 && d.np == 3, "shared content: 3 rows ignored, 3 kept",
                       (double)d.ignored_shared, 3);
        fails += check(near(R.overall.uap, 5.0 / 6.0), "shared content: uAP", R.overall.uap, 5.0 / 6.0);
        results_free(&R);
        dataset_free(&d);
        strmap_free(&qmap);
        unlink(g2);
        unlink(p2);
        unlink(s2);
    }
    /* Tie handling on its own: all scores equal, 1 TP among 4 predictions, 1 positive query: the TP is
     * ranked last, so uAP = 1 * 1/4. */
    {
        pred p[4] = {{0, 1.0, 1}, {1, 1.0, 0}, {2, 1.0, 0}, {3, 1.0, 0}};
        qsort(p, 4, sizeof *p, cmp_pred);
        apres a = compute_ap(p, 4, 1, NULL);
        fails += check(near(a.uap, 0.25) && a.r_p90 == 0, "all-tied pool uAP (TP ranked last)", a.uap, 0.25);
    }
    unlink(gtp);
    unlink(prp);
    unlink(jsp);
    printf("%d passed, %d failed\n", nchecks - fails, fails);
    return fails ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("usage: metrics GROUNDTRUTH.csv PREDICTIONS.csv [--threshold S] [--method NAME] [--json OUT.json]\n"
          "               [--pr OUT.tsv] [--shared SHARED.tsv] [--quiet]\n"
          "       metrics --selftest\n"
          "Scores copy-detection predictions: ISC2021 micro-AP, recall at precision 0.99/0.90 overall and per\n"
          "family (each family's predictions pooled with all negatives'), and rates at the threshold.\n",
          f);
}

int main(int argc, char **argv)
{
    const char *gt = NULL, *pr = NULL, *json = NULL, *curve = NULL, *method = NULL, *shared = NULL;
    double thr = 0.5;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--selftest"))
            return selftest();
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (!strcmp(a, "--threshold") || !strcmp(a, "--method") || !strcmp(a, "--json") || !strcmp(a, "--pr") ||
            !strcmp(a, "--shared")) {
            if (i + 1 >= argc)
                die("%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--threshold")) {
                char *end;
                thr = strtod(v, &end);
                if (end == v || *end)
                    die("bad threshold '%s'", v);
            } else if (!strcmp(a, "--method"))
                method = v;
            else if (!strcmp(a, "--json"))
                json = v;
            else if (!strcmp(a, "--shared"))
                shared = v;
            else
                curve = v;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            usage(stderr);
            die("unknown option %s", a);
        }
        if (!gt)
            gt = a;
        else if (!pr)
            pr = a;
        else
            die("too many arguments");
    }
    if (!gt || !pr) {
        usage(stderr);
        return 2;
    }
    dataset d;
    memset(&d, 0, sizeof d);
    strmap qmap;
    strmap_init(&qmap);
    load_groundtruth(&d, gt, &qmap);
    if (shared)
        load_shared(&d, shared);
    load_predictions(&d, pr, &qmap);
    if (d.unknown_queries)
        fprintf(stderr, "metrics: warning: %zu prediction rows for %d queries not in the ground truth ignored\n",
                d.unknown_rows, d.unknown_queries);
    results R = evaluate(&d, thr, curve);
    if (!quiet)
        print_report(stdout, &d, &R, thr, method);
    if (json)
        write_json(json, &d, &R, thr, method, gt, pr);
    results_free(&R);
    dataset_free(&d);
    strmap_free(&qmap);
    return 0;
}

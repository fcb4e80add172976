/* train-calibration.c — fits the copy-probability model (models/ps_calibration_v3.txt) to labelled batch results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/csv.h"
#include "index/calibration.h"

/* usage: train-calibration --out MODEL.txt [--l2 L] [--shared SHARED.tsv] [--max-wrong-inliers N]
 *                          [--trained-on TEXT] GROUNDTRUTH.csv RESULTS.jsonl [GROUNDTRUTH.csv RESULTS.jsonl ...]
 * RESULTS.jsonl: `provscan batch --top K --max-distance 256` over the queries of GROUNDTRUTH.csv
 * (bench/data/make-queries.sh). Every listed (query, work) pair is an example, labelled 1 when the
 * work is the query's ground-truth reference. The model (a noisy OR of a global and a local
 * logistic model, src/index/calibration.h) is fitted on the L2-regularised log-likelihood.
 * --shared SHARED.tsv (the benchmark's shared-content pairs, bench/README.md "Shared content") leaves
 * out of the fit, as the benchmark's metrics leave out of their figures, the pairs naming a work that
 * shares real content with a picture the query was made from (its work, the src= and bg= files of
 * its params): they are neither copies of the query's work nor unrelated, and would teach the model
 * that shared content is no evidence. --max-wrong-inliers N, a cruder guard, leaves out the pairs
 * labelled "not a copy" whose local match has more than N verified inliers. */

typedef struct example {
    double x[PS_FEAT_COUNT];
    int label;
    int query;      /* index of the query, for per-query statistics */
    int negative;   /* the query is a negative (no reference) */
} example;

typedef struct gt_entry {
    char *query, *reference;
    char *sources[3]; /* base names of the pictures the query was made from: its work, src=, bg= */
} gt_entry;

/* Shared-content pairs, as "source base name\x1freference base name" (sorted, for bsearch). */
static char **shared;
static size_t nshared;

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_shared(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab || !strncmp(line, "source\t", 7))
            continue;
        *tab = '\0';
        char *ref = tab + 1, *end = strpbrk(ref, "\t\r\n");
        if (end)
            *end = '\0';
        /* sharing content is symmetric: either picture may be the one a query was made from */
        for (int k = 0; k < 2; k++) {
            const char *a = base_name(k ? ref : line), *b = base_name(k ? line : ref);
            char *key = malloc(strlen(a) + strlen(b) + 2);
            sprintf(key, "%s\x1f%s", a, b);
            shared = realloc(shared, (nshared + 1) * sizeof *shared);
            shared[nshared++] = key;
        }
    }
    fclose(f);
    qsort(shared, nshared, sizeof *shared, cmp_str);
    return 0;
}

static int shares_content(const gt_entry *g, const char *work_path)
{
    char key[8192];
    for (int i = 0; i < 3 && nshared; i++) {
        if (!g->sources[i] || !g->sources[i][0])
            continue;
        snprintf(key, sizeof key, "%s\x1f%s", g->sources[i], base_name(work_path));
        const char *k = key;
        if (bsearch(&k, shared, nshared, sizeof *shared, cmp_str))
            return 1;
    }
    return 0;
}

/* The value of key= in a params string (`k=v;k=v;...`), as a new string, or NULL. */
static char *param_value(const char *params, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = params; p && *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=')
            return strndup(p + kl + 1, len - kl - 1);
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

static gt_entry *gt;
static size_t ngt;

static const gt_entry *entry_of(const char *query)
{
    for (size_t i = 0; i < ngt; i++)
        if (strcmp(gt[i].query, query) == 0)
            return &gt[i];
    return NULL;
}

static int load_gt(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    ps_csv c = {.f = f};
    int r = ps_csv_next(&c); /* header */
    while (r > 0 && (r = ps_csv_next(&c)) > 0) {
        if (c.nfields < 3)
            continue;
        gt = realloc(gt, (ngt + 1) * sizeof *gt);
        gt[ngt].query = strdup(c.fields[0]);
        gt[ngt].reference = strdup(c.fields[1]);
        const char *params = c.nfields > 3 ? c.fields[3] : "";
        gt[ngt].sources[0] = c.fields[1][0] ? strdup(base_name(c.fields[1])) : NULL;
        gt[ngt].sources[1] = param_value(params, "src");
        gt[ngt].sources[2] = param_value(params, "bg");
        ngt++;
    }
    ps_csv_free(&c);
    fclose(f);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && s[a - b - 1] == '/' && strcmp(s + a - b, suffix) == 0;
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    double l2 = 1.0;
    int max_neg_inliers = -1, fixed_description = 0;
    int left_out = 0, left_shared = 0;
    example *ex = NULL;
    size_t n = 0, cap = 0;
    int nq = 0, nq_neg = 0, nq_pos = 0;
    char trained_on[512] = "";
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
            out = argv[++a];
            continue;
        }
        if (strcmp(argv[a], "--l2") == 0 && a + 1 < argc) {
            l2 = atof(argv[++a]);
            continue;
        }
        if (strcmp(argv[a], "--trained-on") == 0 && a + 1 < argc) {
            snprintf(trained_on, sizeof trained_on, "%s", argv[++a]);
            fixed_description = 1;
            continue;
        }
        if (strcmp(argv[a], "--max-wrong-inliers") == 0 && a + 1 < argc) {
            max_neg_inliers = atoi(argv[++a]);
            continue;
        }
        if (strcmp(argv[a], "--shared") == 0 && a + 1 < argc) {
            if (load_shared(argv[++a]) != 0)
                return 1;
            continue;
        }
        if (a + 1 >= argc) {
            fprintf(stderr,
                    "usage: %s --out MODEL.txt [--l2 L] [--shared SHARED.tsv] [--max-wrong-inliers N] "
                    "GROUNDTRUTH.csv RESULTS.jsonl ...\n",
                    argv[0]);
            return 2;
        }
        const char *gt_path = argv[a], *res_path = argv[a + 1];
        a++;
        for (size_t i = 0; i < ngt; i++) {
            free(gt[i].query);
            free(gt[i].reference);
            for (int k = 0; k < 3; k++)
                free(gt[i].sources[k]);
        }
        ngt = 0;
        if (load_gt(gt_path) != 0)
            return 1;
        FILE *f = fopen(res_path, "r");
        if (!f) {
            perror(res_path);
            return 1;
        }
        char *line = NULL;
        size_t lcap = 0;
        ssize_t len;
        while ((len = getline(&line, &lcap, f)) > 0) {
            json_error_t jerr;
            json_t *rec = json_loadb(line, (size_t)len, 0, &jerr);
            if (!rec || !json_is_true(json_object_get(rec, "ok"))) {
                json_decref(rec);
                continue;
            }
            const char *qpath = json_string_value(json_object_get(rec, "query"));
            const char *base = qpath ? strrchr(qpath, '/') : NULL;
            const gt_entry *g = entry_of(base ? base + 1 : qpath);
            const char *ref = g ? g->reference : NULL;
            if (!ref) {
                json_decref(rec);
                continue;
            }
            int qq = (int)json_integer_value(json_object_get(json_object_get(json_object_get(rec, "fingerprint"), "pdq"), "quality"));
            int negative = ref[0] == '\0';
            nq_neg += negative;
            nq_pos += !negative;
            size_t i;
            json_t *m;
            json_array_foreach(json_object_get(rec, "matches"), i, m) {
                json_t *ev = json_object_get(m, "evidence"), *local = json_object_get(ev, "local");
                json_t *work = json_object_get(m, "work");
                const char *wpath = json_string_value(json_object_get(work, "path"));
                int is_copy = !negative && wpath && ends_with(wpath, ref);
                if (!is_copy && wpath && shares_content(g, wpath)) {
                    left_shared++;
                    continue;
                }
                if (!is_copy && max_neg_inliers >= 0 && local &&
                    json_integer_value(json_object_get(local, "inliers")) > max_neg_inliers) {
                    left_out++;
                    continue;
                }
                if (n == cap) {
                    cap = cap ? cap * 2 : 4096;
                    ex = realloc(ex, cap * sizeof *ex);
                }
                example *e = &ex[n++];
                ps_calibration_features(
                    (int)json_integer_value(json_object_get(json_object_get(ev, "pdq"), "distance")), qq,
                    (int)json_integer_value(json_object_get(work, "quality")),
                    local ? (int)json_integer_value(json_object_get(local, "inliers")) : 0,
                    local ? (int)json_integer_value(json_object_get(local, "matches")) : 0,
                    local ? (int)json_integer_value(json_object_get(local, "alt_inliers")) : 0,
                    local ? json_real_value(json_object_get(local, "work_coverage")) : 0,
                    local ? json_real_value(json_object_get(local, "query_coverage")) : 0, e->x);
                e->label = is_copy;
                e->query = nq;
                e->negative = negative;
            }
            nq++;
            json_decref(rec);
        }
        free(line);
        fclose(f);
        if (!fixed_description)
            snprintf(trained_on + strlen(trained_on), sizeof trained_on - strlen(trained_on), "%s%s",
                     trained_on[0] ? ", " : "", res_path);
    }
    if (!out || n == 0) {
        fprintf(stderr, "train-calibration: no examples (or no --out)\n");
        return 2;
    }
    /* The noisy-OR of two logistic models has no closed-form Newton step worth writing: Adam on the
     * L2-regularised log-likelihood (biases not regularised) converges on these seven parameters in
     * a few thousand passes. theta: global bias, pdq weight, local bias, local weights. */
    enum { P = 3 + PS_FEAT_COUNT - 1 };
    double th[P] = {-6, 6, -6, 2.4}, mo[P] = {0}, ve[P] = {0};
    const double lr = 0.05, b1 = 0.9, b2 = 0.999;
    ps_calibration m;
    for (int it = 1; it <= 6000; it++) {
        double g[P] = {0};
        m.global_bias = th[0];
        m.weight[PS_FEAT_PDQ] = th[1];
        m.local_bias = th[2];
        for (int f = 1; f < PS_FEAT_COUNT; f++)
            m.weight[f] = th[2 + f];
        for (size_t i = 0; i < n; i++) {
            double pg, pl;
            ps_calibration_parts(&m, ex[i].x, &pg, &pl);
            double p = 1 - (1 - pg) * (1 - pl);
            p = p < 1e-12 ? 1e-12 : p > 1 - 1e-12 ? 1 - 1e-12 : p;
            double dp = ex[i].label ? -1 / p : 1 / (1 - p); /* d NLL / d p */
            double dzg = dp * (1 - pl) * pg * (1 - pg);
            g[0] += dzg;
            g[1] += dzg * ex[i].x[PS_FEAT_PDQ];
            if (ex[i].x[PS_FEAT_INLIERS] > 0) {
                double dzl = dp * (1 - pg) * pl * (1 - pl);
                g[2] += dzl;
                for (int f = 1; f < PS_FEAT_COUNT; f++)
                    g[2 + f] += dzl * ex[i].x[f];
            }
        }
        for (int a = 0; a < P; a++) {
            g[a] /= (double)n;
            if (a != 0 && a != 2)
                g[a] += l2 * th[a] / (double)n;
            mo[a] = b1 * mo[a] + (1 - b1) * g[a];
            ve[a] = b2 * ve[a] + (1 - b2) * g[a] * g[a];
            double mh = mo[a] / (1 - pow(b1, it)), vh = ve[a] / (1 - pow(b2, it));
            th[a] -= lr * mh / (sqrt(vh) + 1e-9);
        }
    }
    m.global_bias = th[0];
    m.weight[PS_FEAT_PDQ] = th[1];
    m.local_bias = th[2];
    for (int f = 1; f < PS_FEAT_COUNT; f++)
        m.weight[f] = th[2 + f];
    /* Report: log-loss, and per query at the default thresholds. */
    double loss = 0;
    int *flag = calloc((size_t)nq, sizeof *flag), *right = calloc((size_t)nq, sizeof *right);
    for (size_t i = 0; i < n; i++) {
        double p = ps_calibration_probability(&m, ex[i].x);
        loss -= ex[i].label ? log(p + 1e-12) : log(1 - p + 1e-12);
        if (p >= PROVSCAN_MATCH_PROBABILITY) {
            flag[ex[i].query] = 1;
            right[ex[i].query] |= ex[i].label;
        }
    }
    int fp = 0, tp = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || ex[i].query != ex[i - 1].query) {
            if (ex[i].negative)
                fp += flag[ex[i].query];
            else
                tp += right[ex[i].query];
        }
    printf("examples %zu (%d queries: %d positive, %d negative; left out: %d pairs sharing content, %d wrong "
           "pairs over --max-wrong-inliers); mean log-loss %.4f\n",
           n, nq, nq_pos, nq_neg, left_shared, left_out, loss / n);
    printf("at p >= %.2f: %d/%d positive queries have their work flagged, %d/%d negative queries flagged\n",
           PROVSCAN_MATCH_PROBABILITY, tp, nq_pos, fp, nq_neg);
    printf("global: bias %.4f %s %.4f; local: bias %.4f", m.global_bias, ps_calibration_feature_names[PS_FEAT_PDQ],
           m.weight[PS_FEAT_PDQ], m.local_bias);
    for (int f = 1; f < PS_FEAT_COUNT; f++)
        printf(" %s %.4f", ps_calibration_feature_names[f], m.weight[f]);
    printf("\n");
    char *text = ps_calibration_format(&m, trained_on);
    FILE *o = fopen(out, "w");
    if (!o || fputs(text, o) < 0 || fclose(o) != 0) {
        perror(out);
        return 1;
    }
    free(text);
    free(flag);
    free(right);
    return 0;
}

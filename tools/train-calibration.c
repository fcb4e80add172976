/* train-calibration.c — fits the copy-probability model (models/ps_calibration_v1.txt) to labelled batch results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/csv.h"
#include "index/calibration.h"

/* usage: train-calibration --out MODEL.txt [--l2 L] [--max-wrong-inliers N] [--trained-on TEXT]
 *                          GROUNDTRUTH.csv RESULTS.jsonl [GROUNDTRUTH.csv RESULTS.jsonl ...]
 * RESULTS.jsonl: `provscan batch --top K --max-distance 256` over the queries of GROUNDTRUTH.csv
 * (bench/data/make-queries.sh). Every listed (query, work) pair is an example, labelled 1 when the
 * work is the query's ground-truth reference. The model (a noisy OR of a global and a local
 * logistic model, src/index/calibration.h) is fitted on the L2-regularised log-likelihood.
 * --max-wrong-inliers N leaves out of the fit the pairs labelled "not a copy" whose local match has
 * more than N verified inliers: unrelated pictures give at most about a dozen (docs/features.md), so
 * such a pair shares drawn content with the work after all (derivative art: the same drawing reused
 * in another picture of another package); it stays counted as a false positive in the benchmark, but
 * does not teach the model that shared content is no evidence. */

typedef struct example {
    double x[PS_FEAT_COUNT];
    int label;
    int query;      /* index of the query, for per-query statistics */
    int negative;   /* the query is a negative (no reference) */
} example;

typedef struct gt_entry {
    char *query, *reference;
} gt_entry;

static gt_entry *gt;
static size_t ngt;

static const char *reference_of(const char *query)
{
    for (size_t i = 0; i < ngt; i++)
        if (strcmp(gt[i].query, query) == 0)
            return gt[i].reference;
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
    int left_out = 0;
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
        if (a + 1 >= argc) {
            fprintf(stderr, "usage: %s --out MODEL.txt [--l2 L] GROUNDTRUTH.csv RESULTS.jsonl ...\n", argv[0]);
            return 2;
        }
        const char *gt_path = argv[a], *res_path = argv[a + 1];
        a++;
        for (size_t i = 0; i < ngt; i++) {
            free(gt[i].query);
            free(gt[i].reference);
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
            const char *ref = reference_of(base ? base + 1 : qpath);
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
                int is_copy = !negative && ends_with(json_string_value(json_object_get(work, "path")), ref);
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
     * L2-regularised log-likelihood (biases not regularised) converges on these six parameters in a
     * few thousand passes. theta: global bias, pdq weight, local bias, local weights. */
    enum { P = 3 + PS_FEAT_COUNT - 1 };
    double th[P] = {-6, 6, -6, 2.4, 0, 0}, mo[P] = {0}, ve[P] = {0};
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
    printf("examples %zu (%d queries: %d positive, %d negative; %d wrong pairs with shared content left out); mean log-loss %.4f\n", n,
           nq, nq_pos, nq_neg, left_out, loss / n);
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

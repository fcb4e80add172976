/* features_eval.c — accuracy of provscan's local features on the bench queries: every query verified against every corpus work, per transformation family. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "features/features.h"

/* usage: features_eval DATA_DIR QUERY_DIR [--max-features N] [--threshold T]
 * DATA_DIR holds corpus/ (bench/data/make-data.sh); QUERY_DIR holds the queries and groundtruth.csv
 * (bench/data/make-queries.sh). A positive query counts as found when its true work has the most
 * inliers of all works and at least T (default PS_MATCH_INLIERS_COPY); a negative query is a false
 * alarm when any work reaches T. */

typedef struct work {
    char *rel;
    ps_features f;
} work;

static int load_features(const char *path, int maxf, ps_features *f, double *ms)
{
    provscan_load_options o;
    provscan_load_options_default(&o);
    provscan_image *img = NULL;
    provscan_error err;
    if (provscan_image_load(path, &o, &img, NULL, &err) != PROVSCAN_OK) {
        fprintf(stderr, "features_eval: %s\n", err.message);
        return -1;
    }
    ps_feature_params p;
    ps_feature_params_default(&p);
    p.max_features = maxf;
    uint64_t t0 = ps_now_ns();
    provscan_status st = ps_features_extract(img, NULL, &p, f);
    *ms = (ps_now_ns() - t0) / 1e6;
    provscan_image_free(img);
    return st == PROVSCAN_OK ? 0 : -1;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct fam {
    char name[32];
    int n, found, alarms, sum_true;
} fam;

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DATA_DIR QUERY_DIR [--max-features N] [--threshold T]\n", argv[0]);
        return 2;
    }
    int maxf = PS_FEATURES_DEFAULT_MAX, thr = PS_MATCH_INLIERS_COPY;
    for (int a = 3; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--max-features"))
            maxf = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--threshold"))
            thr = atoi(argv[a + 1]);
    }
    provscan_init(NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/corpus", argv[1]);
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        return 1;
    }
    work *w = NULL;
    size_t nw = 0, cap = 0;
    double *ext_ms = malloc(sizeof(double) * 4096);
    size_t next = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (nw == cap) {
            cap = cap ? 2 * cap : 256;
            w = realloc(w, cap * sizeof *w);
        }
        snprintf(path, sizeof path, "%s/corpus/%s", argv[1], e->d_name);
        double ms;
        if (load_features(path, maxf, &w[nw].f, &ms))
            continue;
        if (next < 4096)
            ext_ms[next++] = ms;
        size_t l = strlen(e->d_name) + 8;
        w[nw].rel = malloc(l);
        snprintf(w[nw].rel, l, "corpus/%s", e->d_name);
        nw++;
    }
    closedir(d);
    snprintf(path, sizeof path, "%s/groundtruth.csv", argv[2]);
    FILE *gt = fopen(path, "r");
    if (!gt) {
        perror(path);
        return 1;
    }
    char line[8192];
    fam fams[64];
    int nf = 0;
    double *match_ms = malloc(sizeof(double) * 2000000);
    size_t nm = 0;
    int hist_neg[64] = {0};
    fgets(line, sizeof line, gt);
    while (fgets(line, sizeof line, gt)) {
        char *q = strtok(line, ","), *ref = strtok(NULL, ","), *family = strtok(NULL, ",");
        if (!q || !ref || !family)
            continue;
        if (!strncmp(ref, "neg_", 4) || !strcmp(ref, "")) {
            /* strtok skips the empty reference field: shift. */
            family = ref;
            ref = "";
        }
        int f;
        for (f = 0; f < nf && strcmp(fams[f].name, family); f++)
            ;
        if (f == nf) {
            memset(&fams[nf], 0, sizeof fams[nf]);
            snprintf(fams[nf].name, sizeof fams[nf].name, "%s", family);
            nf++;
        }
        snprintf(path, sizeof path, "%s/%s", argv[2], q);
        ps_features qf;
        double ms;
        if (load_features(path, maxf, &qf, &ms))
            continue;
        int best = -1, bi = 0, truei = 0;
        /* prepared once per query, as a scan does */
        ps_match_query *mq;
        if (ps_match_query_prepare(&qf, &mq) != PROVSCAN_OK) {
            ps_features_free(&qf);
            continue;
        }
        for (size_t i = 0; i < nw; i++) {
            ps_geo_match m;
            uint64_t t0 = ps_now_ns();
            ps_features_match_prepared(mq, &w[i].f, PS_READ_BOTH, &m);
            if (nm < 2000000)
                match_ms[nm++] = (ps_now_ns() - t0) / 1e6;
            if (m.inliers > bi) {
                bi = m.inliers;
                best = (int)i;
            }
            if (*ref && !strcmp(ref, w[i].rel))
                truei = m.inliers;
            ps_geo_match_free(&m);
        }
        ps_match_query_free(mq);
        fams[f].n++;
        if (*ref) {
            fams[f].sum_true += truei;
            if (best >= 0 && bi >= thr && !strcmp(w[best].rel, ref))
                fams[f].found++;
            else
                printf("miss  %-16s %s true %d best %d (%s)\n", family, q, truei, bi, best >= 0 ? w[best].rel : "-");
        } else {
            fams[f].alarms += bi >= thr;
            hist_neg[bi < 63 ? bi : 63]++;
            if (bi >= thr)
                printf("alarm %-16s %s best %d (%s)\n", family, q, bi, w[best].rel);
        }
        ps_features_free(&qf);
    }
    fclose(gt);
    int pn = 0, pf = 0, nn = 0, na = 0;
    printf("\n%-16s %5s %7s %12s\n", "family", "n", "found", "mean inliers");
    for (int f = 0; f < nf; f++) {
        int neg = !strncmp(fams[f].name, "neg_", 4);
        if (neg) {
            printf("%-16s %5d %7s %12s  false alarms %d\n", fams[f].name, fams[f].n, "-", "-", fams[f].alarms);
            nn += fams[f].n;
            na += fams[f].alarms;
        } else {
            printf("%-16s %5d %7d %12.1f\n", fams[f].name, fams[f].n, fams[f].found,
                   (double)fams[f].sum_true / (fams[f].n ? fams[f].n : 1));
            pn += fams[f].n;
            pf += fams[f].found;
        }
    }
    printf("positives found %d / %d (%.1f%%) at >= %d inliers; negatives with a false alarm %d / %d\n", pf, pn,
           100.0 * pf / (pn ? pn : 1), thr, na, nn);
    printf("negatives' best inlier counts:");
    for (int i = 0; i < 64; i++)
        if (hist_neg[i])
            printf(" %d:%d", i, hist_neg[i]);
    printf("\n");
    qsort(ext_ms, next, sizeof(double), cmpd);
    qsort(match_ms, nm, sizeof(double), cmpd);
    printf("works %zu; extraction median %.2f ms (from decoded pixels, any size); match median %.3f ms/pair\n", nw,
           next ? ext_ms[next / 2] : 0, nm ? match_ms[nm / 2] : 0);
    return 0;
}

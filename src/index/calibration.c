/* calibration.c — parsing, formatting and applying the calibrated copy-probability model. */
#include "index/calibration.h"
#include "common/error.h"
#include "common/util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALIBRATION_MAGIC "provscan-calibration"
#define CALIBRATION_VERSION 3

const char *const ps_calibration_feature_names[PS_FEAT_COUNT] = {"pdq_similarity", "log_inliers", "work_coverage",
                                                                 "query_coverage", "log_matches", "log_alt_inliers"};

extern const unsigned char ps_builtin_calibration[];
extern const size_t ps_builtin_calibration_size;

provscan_status ps_calibration_parse(const char *text, size_t size, const char *name, ps_calibration *out,
                                     provscan_error *err)
{
    memset(out, 0, sizeof *out);
    /* The checksum line covers every byte before it. */
    const char *sum = NULL;
    for (size_t i = 0; i + 9 <= size; i++)
        if ((i == 0 || text[i - 1] == '\n') && memcmp(text + i, "checksum ", 9) == 0)
            sum = text + i;
    if (!sum)
        return ps_fail(err, PROVSCAN_E_INDEX, "%s: calibration model has no checksum line", name);
    char hex[17] = {0};
    memcpy(hex, sum + 9, (size_t)(text + size - sum - 9) < 16 ? (size_t)(text + size - sum - 9) : 16);
    char want[17];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)ps_fnv1a64(text, (size_t)(sum - text)));
    if (strcmp(hex, want) != 0)
        return ps_fail(err, PROVSCAN_E_INDEX, "%s: calibration model checksum mismatch", name);
    int have_magic = 0, version = 0, have_bias[2] = {0}, have[PS_FEAT_COUNT] = {0};
    const char *p = text;
    while (p < sum) {
        const char *end = memchr(p, '\n', (size_t)(sum - p));
        if (!end)
            end = sum;
        char line[256];
        size_t len = (size_t)(end - p) < sizeof line - 1 ? (size_t)(end - p) : sizeof line - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        p = end + 1;
        char key[64], arg[64];
        double v;
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (sscanf(line, "magic %63s", key) == 1 && strcmp(key, CALIBRATION_MAGIC) == 0)
            have_magic = 1;
        else if (sscanf(line, "version %d", &version) == 1)
            ;
        else if (sscanf(line, "%63s bias %lf", key, &v) == 2 && (!strcmp(key, "global") || !strcmp(key, "local"))) {
            int local = !strcmp(key, "local");
            *(local ? &out->local_bias : &out->global_bias) = v;
            have_bias[local] = 1;
        } else if (sscanf(line, "%63s weight %63s %lf", key, arg, &v) == 3) {
            int f;
            for (f = 0; f < PS_FEAT_COUNT && strcmp(arg, ps_calibration_feature_names[f]) != 0; f++)
                ;
            if (f == PS_FEAT_COUNT || strcmp(key, f == PS_FEAT_PDQ ? "global" : "local") != 0)
                return ps_fail(err, PROVSCAN_E_VERSION, "%s: calibration model uses unknown feature '%s %s'", name, key,
                               arg);
            out->weight[f] = v;
            have[f] = 1;
        }
    }
    if (!have_magic)
        return ps_fail(err, PROVSCAN_E_INDEX, "%s: not a provscan calibration model", name);
    if (version != CALIBRATION_VERSION)
        return ps_fail(err, PROVSCAN_E_VERSION, "%s: calibration model version %d, this provscan reads %d", name,
                       version, CALIBRATION_VERSION);
    for (int f = 0; f < PS_FEAT_COUNT; f++)
        if (!have[f] || !have_bias[0] || !have_bias[1])
            return ps_fail(err, PROVSCAN_E_INDEX, "%s: calibration model lacks a weight", name);
    /* NaN or infinite weights would turn every score into NaN or a certainty */
    int finite = isfinite(out->global_bias) && isfinite(out->local_bias);
    for (int f = 0; f < PS_FEAT_COUNT; f++)
        finite = finite && isfinite(out->weight[f]);
    if (!finite)
        return ps_fail(err, PROVSCAN_E_INDEX, "%s: calibration model has a weight that is not a finite number", name);
    return PROVSCAN_OK;
}

char *ps_calibration_format(const ps_calibration *m, const char *trained_on)
{
    char body[2048];
    int n = snprintf(body, sizeof body,
                     "# provscan calibration model (docs/scoring.md): P(copy) = 1 - (1 - p_global)(1 - p_local),\n"
                     "# each p = 1 / (1 + exp(-(bias + sum of weight * feature))); trained on %s\n"
                     "magic " CALIBRATION_MAGIC "\nversion %d\nglobal bias %.6f\n",
                     trained_on, CALIBRATION_VERSION, m->global_bias);
    n += snprintf(body + n, sizeof body - (size_t)n, "global weight %s %.6f\nlocal bias %.6f\n",
                  ps_calibration_feature_names[PS_FEAT_PDQ], m->weight[PS_FEAT_PDQ], m->local_bias);
    for (int f = PS_FEAT_PDQ + 1; f < PS_FEAT_COUNT; f++)
        n += snprintf(body + n, sizeof body - (size_t)n, "local weight %s %.6f\n", ps_calibration_feature_names[f],
                      m->weight[f]);
    char *out = malloc((size_t)n + 32);
    if (out)
        snprintf(out, (size_t)n + 32, "%schecksum %016llx\n", body, (unsigned long long)ps_fnv1a64(body, (size_t)n));
    return out;
}

static ps_calibration active;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load_active(void)
{
    provscan_error err;
    const char *path = getenv("PROVSCAN_CALIBRATION");
    if (path && *path) {
        FILE *f = fopen(path, "rb");
        char buf[4096];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f)
            fclose(f);
        if (n && ps_calibration_parse(buf, n, path, &active, &err) == PROVSCAN_OK)
            return;
        fprintf(stderr, "provscan: PROVSCAN_CALIBRATION=%s unusable (%s); using the built-in model\n", path,
                n ? err.message : "cannot read it");
    }
    if (ps_calibration_parse((const char *)ps_builtin_calibration, ps_builtin_calibration_size,
                             "built-in calibration model", &active, &err) != PROVSCAN_OK) {
        /* A build without models/ps_calibration_v3.txt: PDQ's published threshold (p = 0.5 at
         * distance 31) and the feature engine's (p = 0.5 at 12 inliers), so provscan stays usable. */
        memset(&active, 0, sizeof active);
        active.global_bias = -6.2;
        active.weight[PS_FEAT_PDQ] = 6.0;
        active.local_bias = -6.2;
        active.weight[PS_FEAT_INLIERS] = 2.4;
    }
}

const ps_calibration *ps_calibration_get(void)
{
    pthread_once(&once, load_active);
    return &active;
}

void ps_calibration_features(int distance, int query_quality, int work_quality, int inliers, int matches,
                             int alt_inliers, double work_coverage, double query_coverage, double x[PS_FEAT_COUNT])
{
    /* Global similarity: 2 for identical hashes, 0 at 64 bits (where unrelated pictures begin), and
     * from there a slope 8 times gentler, so that a nearer hash always scores higher (listed
     * candidates without local evidence are ranked by distance rather than tied); damped when either
     * picture has too little structure for its PDQ hash to mean much. */
    double g = distance < 64 ? (64.0 - distance) / 32.0 : (64.0 - distance) / 256.0;
    int q = query_quality < work_quality ? query_quality : work_quality;
    if (q < PROVSCAN_PDQ_MIN_QUALITY)
        g *= (double)(q > 0 ? q : 0) / PROVSCAN_PDQ_MIN_QUALITY;
    x[PS_FEAT_PDQ] = g;
    x[PS_FEAT_INLIERS] = log1p(inliers > 0 ? inliers : 0);
    x[PS_FEAT_WORK_COVERAGE] = inliers > 0 ? fmin(fmax(work_coverage, 0), 1) : 0;
    x[PS_FEAT_QUERY_COVERAGE] = inliers > 0 ? fmin(fmax(query_coverage, 0), 1) : 0;
    /* Repeated structure (a sign's ring, a card's pips) gives hundreds of tentative matches and some
     * chance inliers among them; the model weighs the inliers against how many matches they came from. */
    x[PS_FEAT_MATCHES] = inliers > 0 ? log1p(matches > 0 ? matches : 0) : 0;
    /* A second model about as good as the first is repeated structure, not one copied region. */
    x[PS_FEAT_ALT_INLIERS] = inliers > 0 ? log1p(alt_inliers > 0 ? alt_inliers : 0) : 0;
}

void ps_calibration_parts(const ps_calibration *m, const double x[PS_FEAT_COUNT], double *p_global, double *p_local)
{
    double zg = m->global_bias + m->weight[PS_FEAT_PDQ] * x[PS_FEAT_PDQ];
    double zl = m->local_bias;
    for (int f = PS_FEAT_PDQ + 1; f < PS_FEAT_COUNT; f++)
        zl += m->weight[f] * x[f];
    *p_global = 1.0 / (1.0 + exp(-zg));
    /* no verified local match is no local evidence at all, not weak evidence */
    *p_local = x[PS_FEAT_INLIERS] > 0 ? 1.0 / (1.0 + exp(-zl)) : 0.0;
}

double ps_calibration_probability(const ps_calibration *m, const double x[PS_FEAT_COUNT])
{
    double pg, pl;
    ps_calibration_parts(m, x, &pg, &pl);
    return 1.0 - (1.0 - pg) * (1.0 - pl);
}

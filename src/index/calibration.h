/* calibration.h — the calibrated copy-probability model: a logistic model over the evidence, read from models/. */
#ifndef PROVSCAN_CALIBRATION_H
#define PROVSCAN_CALIBRATION_H

#include <stddef.h>

#include "provscan.h"

/* The evidence features the model weighs (docs/scoring.md has the exact definitions). */
enum {
    PS_FEAT_PDQ = 0,        /* global similarity from the PDQ distance, damped for low-quality images */
    PS_FEAT_INLIERS,        /* log(1 + verified local inliers) */
    PS_FEAT_WORK_COVERAGE,  /* fraction of the work inside the matched region */
    PS_FEAT_QUERY_COVERAGE, /* fraction of the query inside the matched region */
    PS_FEAT_MATCHES,        /* log(1 + tentative descriptor matches) of the local match */
    PS_FEAT_ALT_INLIERS,    /* log(1 + inliers of the best other model among the unexplained matches) */
    PS_FEAT_COUNT
};

/* Two logistic models joined by a noisy OR: the global evidence (PDQ) and the local evidence
 * (features) each give a probability of a copy on their own, and the copy probability is
 * 1 - (1 - p_global)(1 - p_local). Either kind of evidence can carry the decision alone: a flat
 * drawing copied whole has no features to match, a crop has no PDQ similarity. */
typedef struct ps_calibration {
    double global_bias, local_bias;
    double weight[PS_FEAT_COUNT]; /* PS_FEAT_PDQ in the global model, the others in the local one */
} ps_calibration;

extern const char *const ps_calibration_feature_names[PS_FEAT_COUNT];

/* Parses a model file (text: magic, version, weights, FNV-1a-64 checksum). */
provscan_status ps_calibration_parse(const char *text, size_t size, const char *name, ps_calibration *out,
                                     provscan_error *err);
/* Writes a model file's text (caller frees), checksum included. */
char *ps_calibration_format(const ps_calibration *m, const char *trained_on);
/* The model in use: PROVSCAN_CALIBRATION (a file) if set, else the one built in from models/. */
const ps_calibration *ps_calibration_get(void);

/* The feature vector of a piece of evidence, and the probability the model gives it (with the two
 * parts, for training). */
void ps_calibration_features(int distance, int query_quality, int work_quality, int inliers, int matches,
                             int alt_inliers, double work_coverage, double query_coverage, double x[PS_FEAT_COUNT]);
double ps_calibration_probability(const ps_calibration *m, const double x[PS_FEAT_COUNT]);
void ps_calibration_parts(const ps_calibration *m, const double x[PS_FEAT_COUNT], double *p_global, double *p_local);

#endif

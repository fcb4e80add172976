/* features.h — local binary features for partial-copy detection: detector, learned descriptor, matching, vocabulary. */
#ifndef PROVSCAN_FEATURES_H
#define PROVSCAN_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "provscan.h"

/* ---------------------------------------------------------------------------------------------
 * Keypoints and descriptors (docs/features.md).
 * ------------------------------------------------------------------------------------------- */
typedef struct ps_keypoint {
    float x, y;     /* centre, in pixels of the image given to ps_features_extract */
    float size;     /* patch diameter, in the same pixels */
    float angle;    /* orientation in radians, [0, 2*pi) */
    float response; /* Harris response (ranking only) */
    uint8_t octave; /* pyramid level (0 = working size; each level is 1/sqrt(2) of the one before) */
} ps_keypoint;

#define PS_DESC_BYTES 32

typedef struct ps_features {
    int width, height; /* of the image given to extract */
    int n;
    ps_keypoint *kp;
    uint8_t *desc; /* n x 32 bytes */
} ps_features;

/* The learned sampling pattern: 256 point-pair tests in a 31x31 patch, mirror-closed (test 2i+1 is
 * test 2i reflected about the patch's x axis), so a mirrored image's descriptor is the original's
 * with adjacent bits swapped. Loaded from a versioned file (models/FEATURES.md). */
typedef struct ps_feature_model ps_feature_model;

#define PS_PATTERN_MAGIC "PSPATRN1"
#define PS_PATTERN_VERSION 1

provscan_status ps_feature_model_load(const char *path, ps_feature_model **out, provscan_error *err);
/* Parses a model file held in memory (name for messages). */
provscan_status ps_feature_model_parse(const uint8_t *data, size_t size, const char *name, ps_feature_model **out,
                                       provscan_error *err);
/* The shipped model compiled into the library (models/ps_pattern_v1.bin); NULL only in a build made
 * before the model existed. Never free it. */
const ps_feature_model *ps_feature_model_builtin(void);
void ps_feature_model_free(ps_feature_model *m);
/* A model from explicit tests (x1,y1,x2,y2 per test, 256 tests, coordinates within radius 15):
 * used by the training tool. */
provscan_status ps_feature_model_from_tests(const int8_t tests[256][4], ps_feature_model **out);
/* Serialises a model (file layout in models/FEATURES.md); *out malloc'ed. */
provscan_status ps_feature_model_serialize(const ps_feature_model *m, uint8_t **out, size_t *size);
/* Identity of a model: FNV-1a-64 of its tests. The index should store it next to serialised
 * features and refuse to match features made with another pattern. */
uint64_t ps_feature_model_id(const ps_feature_model *m);
/* The model's tests (256 x 4). */
const int8_t (*ps_feature_model_tests(const ps_feature_model *m))[4];

typedef struct ps_feature_params {
    int max_features; /* default 500; clamped to [16, 4000] */
} ps_feature_params;

/* Budgets: a work in an index keeps PS_FEATURES_DEFAULT_MAX features; a query gets
 * PS_QUERY_FEATURES, so that a region pasted or cropped out of a work, a small part of the query,
 * still holds enough of them to be matched (docs/features.md, "Feature budgets"). */
#define PS_FEATURES_DEFAULT_MAX 500
#define PS_QUERY_FEATURES 750

void ps_feature_params_default(ps_feature_params *p);

/* Detects up to max_features keypoints and describes them. m NULL: the built-in model; p NULL:
 * defaults. Deterministic: same pixels in, same bytes out, on every kernel set and thread count.
 * An image too small or too flat gives n == 0 (not an error). */
provscan_status ps_features_extract(const provscan_image *img, const ps_feature_model *m, const ps_feature_params *p,
                                    ps_features *out);
void ps_features_free(ps_features *f);

/* Serialisation for the index's feature store (layout in docs/features.md). */
#define PS_FEATURES_MAGIC "PSFT"
#define PS_FEATURES_VERSION 1
size_t ps_features_serialized_size(const ps_features *f);
void ps_features_serialize(const ps_features *f, uint8_t *out);
provscan_status ps_features_deserialize(const uint8_t *data, size_t size, ps_features *out);
/* The same without the payload checksum, for bytes another checksum already covers (an index
 * segment's section CRCs): the structure is still validated in full, so damage cannot lead to a
 * read out of bounds, only to features that match nothing. */
provscan_status ps_features_deserialize_covered(const uint8_t *data, size_t size, ps_features *out);

/* ---------------------------------------------------------------------------------------------
 * Matching and geometric verification.
 * ------------------------------------------------------------------------------------------- */
typedef struct ps_geo_match {
    int matches, inliers;              /* tentative matches, geometric inliers (0 when nothing verified) */
    int alt_inliers;                   /* inliers of the best other model among the matches left unexplained */
    double H[9];                       /* homography mapping query pixels -> work pixels (row-major) */
    float query_poly[8], work_poly[8]; /* the matched region as a quadrilateral in each image */
    float work_coverage;               /* fraction of the work's area inside the matched region */
    float query_coverage;
    int mirrored;                      /* 1 if the match was found on the mirrored query */
    int npairs;
    float *pairs;                      /* inlier correspondences (qx,qy,wx,wy) */
} ps_geo_match;

/* Inlier counts at and above which a pair is a copy / worth a look (docs/features.md: measured on
 * the bench data, unrelated pairs give 0-5 inliers). */
#define PS_MATCH_INLIERS_COPY 12
#define PS_MATCH_INLIERS_POSSIBLE 8

provscan_status ps_features_match(const ps_features *query, const ps_features *work, ps_geo_match *out);
void ps_geo_match_free(ps_geo_match *m);

/* A query prepared once for matching against many works: its descriptors and their mirrors,
 * grouped by the vocabulary cells each is compared in. It refers to query, which must outlive it.
 * ps_features_match() is prepare + ps_features_match_prepared(PS_READ_BOTH) + free. */
typedef struct ps_match_query ps_match_query;
provscan_status ps_match_query_prepare(const ps_features *query, ps_match_query **out);

/* A query descriptor is compared in its two nearest vocabulary cells, the second only when that
 * centre is at most this many bits farther than the nearest (docs/features.md, "Matching"). */
#define PS_MATCH_SECOND_PROBE_MARGIN 8

/* Readings of the query a match tries (a bit mask): as it is, mirrored, or both (the better wins; a
 * caller that knows the orientation saves half the work). */
enum { PS_READ_PLAIN = 1, PS_READ_MIRRORED = 2, PS_READ_BOTH = 3 };
provscan_status ps_features_match_prepared(const ps_match_query *query, const ps_features *work, int readings,
                                           ps_geo_match *out);
void ps_match_query_free(ps_match_query *q);

/* Tightens m's region (quadrilaterals and coverages; H and inliers unchanged) with the pixels: the
 * work is warped into the query by H on small grey versions of both, the photometric change is
 * fitted, and the region becomes the box of the agreeing area that holds the inliers (a pasted part
 * of a work ends where the pasted pixels end, not where its features do). Leaves m as it was when
 * too little agrees (restyled copies). query and work are the pictures the features came from. */
provscan_status ps_geo_match_refine_region(const provscan_image *query, const provscan_image *work, ps_geo_match *m);

/* Evidence picture (PNG): query left, work right, regions outlined, inlier pairs joined. */
provscan_status ps_evidence_write_png(const char *path, const provscan_image *query, const provscan_image *work,
                                      const ps_geo_match *m, provscan_error *err);

/* Mirrors a descriptor: the descriptor the same keypoint gets in the left-right mirrored image. */
void ps_desc_mirror(const uint8_t in[32], uint8_t out[32]);

/* ---------------------------------------------------------------------------------------------
 * Vocabulary of binary words for candidate retrieval: a k-majority tree (branching 16, depth up
 * to 4, so up to 65536 leaves). Word ids are 0 .. ps_vocab_size()-1.
 * ------------------------------------------------------------------------------------------- */
typedef struct ps_vocab ps_vocab;

#define PS_VOCAB_MAGIC "PSVOCAB1"
#define PS_VOCAB_VERSION 1

provscan_status ps_vocab_load(const char *path, ps_vocab **out, provscan_error *err);
provscan_status ps_vocab_parse(const uint8_t *data, size_t size, const char *name, ps_vocab **out,
                               provscan_error *err);
/* The shipped vocabulary (models/ps_vocab_v1.bin); NULL only in a build made before it existed. */
const ps_vocab *ps_vocab_builtin(void);
void ps_vocab_free(ps_vocab *v);
int ps_vocab_size(const ps_vocab *v);
/* Identity of a vocabulary: FNV-1a-64 of its centres and links (store it with an inverted file). */
uint64_t ps_vocab_id(const ps_vocab *v);
/* The word of a descriptor (tree descent; ties go to the lower child). */
int ps_vocab_word(const ps_vocab *v, const uint8_t desc[32]);

/* Tree as the training tool builds it: nodes in breadth-first order; node i has nchild[i] children
 * starting at first[i] (0 children = leaf); centres n x 32. */
typedef struct ps_vocab_tree {
    uint32_t nnodes;
    uint32_t branching, depth;
    uint8_t *centres;
    uint32_t *first;
    uint8_t *nchild;
} ps_vocab_tree;
provscan_status ps_vocab_serialize(const ps_vocab_tree *t, uint8_t **out, size_t *size);

/* ---------------------------------------------------------------------------------------------
 * Internals shared with the training tool and the tests.
 * ------------------------------------------------------------------------------------------- */

/* Grey working image: the input converted to grey and resized so its longer side is
 * PS_WORK_SIDE (upscaling at most 2x; very elongated pictures keep a shorter side of 160 where
 * possible). *scale = working pixels per input pixel. */
#define PS_WORK_SIDE 640
/* Working pixels per input pixel for a w x h picture (also used to normalise match thresholds). */
double ps_features_work_scale(int w, int h);
/* Inverse of a 3x3 matrix (row-major); 0 when it is singular. */
int ps_mat3_invert(const double *m, double *o);
provscan_status ps_features_working_grey(const provscan_image *img, uint8_t **grey, int *w, int *h, float *scale);

/* Extraction on an already grey working-size image (scale = working pixels per output pixel). */
provscan_status ps_features_extract_grey(const uint8_t *grey, int w, int h, float scale, const ps_feature_model *m,
                                         const ps_feature_params *p, ps_features *out);

/* The descriptor matching of ps_features_match_prepared: for each of the query's 2n descriptors
 * (originals, then mirrors), the nearest work descriptor among those whose nearest vocabulary cell
 * (first level) is one of the query descriptor's 2 nearest cells (the second only within
 * PS_MATCH_SECOND_PROBE_MARGIN bits of the nearest), with the two smallest distances
 * (ties to the lower index; idx UINT32_MAX when those cells hold none, or for a reading not in
 * readings). out has 2n entries. */
struct ps_top2;
provscan_status ps_match_query_top2(const ps_match_query *q, const ps_features *work, int readings,
                                    struct ps_top2 *out);

/* Per-keypoint raw samples for training: for each keypoint of f (extracted with any model), the
 * smoothed values at the npts points pts (x,y pairs within radius 15, rotated by the keypoint's
 * angle), written to out[k * npts + i]. The grey image must be the one f was extracted from
 * (working size, scale 1). */
provscan_status ps_features_sample_points(const uint8_t *grey, int w, int h, const ps_features *f,
                                          const int8_t *pts, int npts, uint8_t *out);

#endif

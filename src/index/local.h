/* local.h — the local-feature stage of a search: query features, visual-word retrieval, verification, probability. */
#ifndef PROVSCAN_LOCAL_H
#define PROVSCAN_LOCAL_H

#include "features/features.h"
#include "index/index_internal.h"

struct provscan_local {
    ps_features f;                    /* in pixels of the decoded query */
    int source_width, source_height;  /* the query's upright full-resolution size */
    uint32_t *words[2];               /* distinct words of the descriptors [0] and of their mirrors [1] */
    int nwords[2];
    ps_match_query *match;            /* f prepared for matching against each candidate */
};

/* Local features of a decoded image, at most max_features of them (*out NULL when the image has
 * none). */
provscan_status ps_local_from_image(const provscan_image *img, int source_width, int source_height, int max_features,
                                    provscan_local **out);
void ps_local_free(provscan_local *l);

/* A candidate work: where its record is, and how strongly the words point at it. */
typedef struct ps_local_candidate {
    uint32_t seg, record;
    float score;
    int readings; /* PS_READ_*: the orientations worth verifying (both unless one clearly wins) */
    uint64_t key; /* the work's PDQ hash prefix: breaks score ties the same way however works are
                     spread over segments and shards */
} ps_local_candidate;

/* The segments of one or more indexes (shards) searched together. */
typedef struct ps_view {
    size_t n;
    const ps_segment **segs;
    const struct ps_mih **mih;            /* each segment's multi-index hashing tables, or NULL */
    const ps_u64set **tombstones; /* of the shard each segment belongs to */
    uint32_t *shard;
} ps_view;

/* The segments of nshards loaded snapshots as one view (ps_snapshot_load first); 0, or -1 when out
 * of memory. Release with ps_view_free. */
int ps_view_build(provscan_index *const *shards, size_t nshards, ps_view *out);
void ps_view_free(ps_view *v);

/* Candidates from the inverted files of every segment: works sharing enough visual words with the
 * query (in either orientation), best first, at most max. Tombstoned records are skipped. */
size_t ps_local_retrieve(const ps_view *view, const provscan_local *q, size_t max, ps_local_candidate *out);

/* Evidence for one (query, work) pair. */
typedef struct ps_evidence {
    int distance;            /* PDQ distance (min over the query's variants) */
    provscan_dihedral transform;
    int inverted;            /* the distance is to the query's inverted hash (hash/hash.h) */
    int query_quality, work_quality;
    int inliers, matches, mirrored;
    float work_coverage, query_coverage;
    float query_region[8];   /* full-resolution query pixels */
    float work_region[8];    /* pixels of the work's decoded image (work_feat_width x height) */
    int work_feat_width, work_feat_height;
    int verified;            /* the local stage ran on this pair */
} ps_evidence;

/* Verifies the pair with local features (work features read from its segment record), trying the
 * query's readings (PS_READ_*). */
void ps_local_verify(const ps_segment *seg, uint32_t record, const provscan_local *q, int readings, ps_evidence *ev);

/* Calibrated probability that the query copies the work, from the evidence (docs/scoring.md). */
double ps_copy_probability(const ps_evidence *ev);
provscan_kind ps_copy_kind(const ps_evidence *ev);

#endif

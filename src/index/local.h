/* local.h — the local-feature stage of a search: query features, visual-word retrieval, verification, probability. */
#ifndef PROVSCAN_LOCAL_H
#define PROVSCAN_LOCAL_H

#include "features/features.h"
#include "index/index_internal.h"

/* Tiles of a query (PROVSCAN_LOCAL_QUERY_TILES): 2 x 2 overlapping parts, each PS_TILE_SHARE of the
 * query's width and height, analysed on their own at the working size, so that a work pasted small
 * into a large picture (a screenshot, a collage, a page) is seen at up to 1 / PS_TILE_SHARE times the
 * resolution the whole query gives it (docs/features.md, "Tiles"). */
#define PS_QUERY_TILES 4
#define PS_TILE_SHARE 0.6
/* Decoded pictures whose longer side is under this get no tiles: their tiles would be enlarged
 * beyond what the working size already does. */
#define PS_TILE_MIN_SIDE 320
/* A query is searched as at most this many parts: whole, its tiles, its dark-background reading. */
#define PS_QUERY_PARTS (2 + PS_QUERY_TILES)
/* Dark-background reading: a picture without alpha whose border is mostly this dark (every channel
 * at most PS_DARK_LEVEL) gets a second reading with the dark area joined to the border made white. */
#define PS_DARK_LEVEL 40
#define PS_DARK_BORDER_SHARE 0.5

/* Retrieval windows (docs/features.md, "Windows"): a region pasted into another picture holds a minority
 * of the query's features, and the rest (the new background) spread chance votes over the corpus, which
 * can outrank the work the region comes from. So the whole query's retrieval also ranks works by the
 * words of its features inside each of PS_WINDOWS overlapping windows (the four corners' and the
 * centre's, each PS_WINDOW_SHARE of the query's width and height), in the same pass over the inverted
 * files; the best PS_WINDOW_CANDIDATES of each window with at least PS_WINDOW_MIN_FEATURES features
 * are verified with the whole query's features, like the whole query's candidates. */
#define PS_WINDOWS 5
#define PS_WINDOW_SHARE 0.6
#define PS_WINDOW_CANDIDATES 4
#define PS_WINDOW_MIN_FEATURES 20
/* Retrieval accumulates lane 0 for the whole part and lane 1 + w for window w: 8 lanes of 16 bits,
 * one 16-byte vector per record and orientation. */
#define PS_RETRIEVE_LANES 8
/* Window w (0 .. PS_WINDOWS - 1) of a part of width x height pixels: x0, y0, x1, y1 (x0 <= x < x1). */
void ps_window_rect(int window, int width, int height, double rect[4]);

struct provscan_local {
    ps_features f;                    /* in pixels of the decoded query (or tile) */
    int source_width, source_height;  /* this part's upright full-resolution size */
    int origin_x, origin_y;           /* where this part starts in the query, full-resolution pixels */
    int query_width, query_height;    /* the whole query's full-resolution size */
    uint32_t *words[2];               /* distinct words of the descriptors [0] and of their mirrors [1] */
    int nwords[2];
    uint8_t *lane_tf[2];              /* per word of words[o], PS_RETRIEVE_LANES counts: how many of this
                                         part's features (lane 0) and of each window's hold the word */
    int lane_features[PS_RETRIEVE_LANES]; /* features in the part (lane 0) and in each window */
    ps_match_query *match;            /* f prepared for matching against each candidate */
    int ntiles;                       /* further parts of a whole query: its tiles (none unless asked
                                         for), then its dark-background reading (if it has one) */
    struct provscan_local *tile[PS_QUERY_PARTS - 1];
};

/* Local features of a decoded image, at most max_features of them (*out NULL when the image has
 * none). */
provscan_status ps_local_from_image(const provscan_image *img, int source_width, int source_height, int max_features,
                                    provscan_local **out);
/* How many tiles a decoded query of w x h pixels gets (0 or PS_QUERY_TILES), and tile t of it: a
 * copy of its pixels, with its top-left corner (x0, y0) in img. The search and the evidence picture
 * cut queries the same way. */
int ps_query_tiles(int w, int h);
provscan_status ps_query_tile(const provscan_image *img, int t, int *x0, int *y0, provscan_image **out);
/* Adds the tiles of img (the decoded query whose features l holds) to l: PROVSCAN_E_NOMEM, else OK
 * (a tile without features is left out; a picture under PS_TILE_MIN_SIDE gets none). */
provscan_status ps_local_add_tiles(provscan_local *l, const provscan_image *img);
/* A work drawn on transparency is indexed on white (decode composites alpha on white), but a copy
 * made by a tool that drops alpha shows what the transparent pixels hide, black in almost every
 * file: its background and outline flip against the work's, and PDQ and the features along the
 * outline no longer match. For a query without alpha whose border is mostly dark, this adds a
 * part: the query with the dark region that touches its border made white, verified like a tile
 * (docs/features.md, "Dark backgrounds"). OK and nothing added when the border is not dark. */
provscan_status ps_local_add_dark_background(provscan_local *l, const provscan_image *img);
/* The dark region of img joined to its border made white, when at least PS_DARK_BORDER_SHARE of
 * the border pixels are dark; NULL otherwise (or out of memory). */
provscan_image *ps_whiten_dark_background(const provscan_image *img);
/* Part p of a query: 0 the whole, 1 .. ntiles its further parts (NULL past them). */
const provscan_local *ps_local_part(const provscan_local *l, int p);
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
 * query (in either orientation), best first, at most max. Tombstoned records are skipped. With
 * window_out (room for PS_WINDOWS x PS_WINDOW_CANDIDATES), also each window's best, window by window
 * and best first within one, their number in *nwindow; a work may be among several lists. */
size_t ps_local_retrieve(const ps_view *view, const provscan_local *q, size_t max, ps_local_candidate *out,
                         ps_local_candidate *window_out, size_t *nwindow);

/* Evidence for one (query, work) pair. */
typedef struct ps_evidence {
    int distance;            /* PDQ distance (min over the query's variants) */
    provscan_dihedral transform;
    int inverted;            /* the distance is to the query's inverted hash (hash/hash.h) */
    int query_quality, work_quality;
    int inliers, matches, mirrored;
    int alt_inliers;         /* the best other model's inliers (ps_geo_match) */
    float work_coverage, query_coverage;
    float query_region[8];   /* full-resolution query pixels */
    float work_region[8];    /* pixels of the work's decoded image (work_feat_width x height) */
    int work_feat_width, work_feat_height;
    int verified;            /* the local stage ran on this pair */
} ps_evidence;

/* Verifies the pair with local features (work features read from its segment record), trying the
 * query's readings (PS_READ_*). */
void ps_local_verify(const ps_segment *seg, uint32_t record, const provscan_local *q, int readings, ps_evidence *ev);

/* Calibrated probability that the query copies the work, from the evidence found with part `part`
 * of the query (ps_local_part; docs/scoring.md). A tile (part > 0) was one of 1 + PS_QUERY_TILES
 * searches of the query, each as likely to meet a chance match, so its local odds count that many
 * times less (docs/scoring.md, "Tiles"). */
double ps_copy_probability(const ps_evidence *ev, int part);
provscan_kind ps_copy_kind(const ps_evidence *ev);

#endif

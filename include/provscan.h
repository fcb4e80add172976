/* provscan.h — public API of libprovscan: image loading, perceptual fingerprints and Hamming search. */
#ifndef PROVSCAN_H
#define PROVSCAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(PROVSCAN_SHARED_BUILD)
#define PROVSCAN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define PROVSCAN_API __attribute__((visibility("default")))
#else
#define PROVSCAN_API
#endif

#define PROVSCAN_VERSION_MAJOR 0
#define PROVSCAN_VERSION_MINOR 1
#define PROVSCAN_VERSION_PATCH 0
#define PROVSCAN_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------------------------------------
 * Errors. Every fallible function returns a provscan_status; when it takes a provscan_error *,
 * the message there names the input and says what is wrong (the pointer may be NULL).
 * ------------------------------------------------------------------------------------------- */
typedef enum provscan_status {
    PROVSCAN_OK = 0,
    PROVSCAN_E_ARG,          /* invalid argument or option */
    PROVSCAN_E_NOMEM,        /* out of memory */
    PROVSCAN_E_IO,           /* a file could not be opened, read or written */
    PROVSCAN_E_NOT_IMAGE,    /* not an image in any supported format */
    PROVSCAN_E_CORRUPT,      /* image data damaged or truncated */
    PROVSCAN_E_TOO_LARGE,    /* more pixels than the configured limit */
    PROVSCAN_E_TOO_SMALL,    /* too small to fingerprint (a side under 5 pixels) */
    PROVSCAN_E_UNSUPPORTED,  /* a known format, but a variant this build cannot decode */
    PROVSCAN_E_INDEX,        /* an index or descriptor file is damaged or inconsistent */
    PROVSCAN_E_VERSION,      /* a file written by an incompatible format version */
    PROVSCAN_E_BUSY,         /* the index is locked by another writer */
    PROVSCAN_E_INTERNAL,     /* a bug: please report it */
    PROVSCAN_STATUS_COUNT
} provscan_status;

typedef struct provscan_error {
    provscan_status status;
    char message[512];
} provscan_error;

/* Stable lower-case token for a status ("io_error", "not_an_image", ...), used in JSON output. */
PROVSCAN_API const char *provscan_error_name(provscan_status status);

/* ---------------------------------------------------------------------------------------------
 * Library set-up and build facts.
 * ------------------------------------------------------------------------------------------- */

/* Initialises the decoders. Call once before any other function (idempotent, thread-safe). */
PROVSCAN_API provscan_status provscan_init(provscan_error *err);

PROVSCAN_API const char *provscan_version(void);
/* The SIMD kernel set in use: "scalar", "avx2" or "avx512". */
PROVSCAN_API const char *provscan_simd_path(void);
/* Space-separated list of the kernel sets this CPU and build can run. */
PROVSCAN_API const char *provscan_simd_available(void);
/* Forces a kernel set ("scalar", "avx2", "avx512"); PROVSCAN_E_UNSUPPORTED when the CPU lacks it.
 * The environment variable PROVSCAN_SIMD does the same at start-up. */
PROVSCAN_API provscan_status provscan_simd_force(const char *name);
/* Version of the image library (libvips) linked in. */
PROVSCAN_API const char *provscan_decoder_version(void);

/* ---------------------------------------------------------------------------------------------
 * Images. A loaded image is 8-bit, 1 (grey) or 3 (RGB) channels, rows packed, orientation and
 * alpha already handled as the load options asked.
 * ------------------------------------------------------------------------------------------- */
typedef struct provscan_image provscan_image;

/* Default decompression-bomb guard: refuse images of more pixels than this (before decoding). */
#define PROVSCAN_DEFAULT_MAX_PIXELS (256ull * 1024 * 1024)

typedef enum provscan_alpha {
    PROVSCAN_ALPHA_WHITE = 0, /* composite onto opaque white (what viewers and exports show) */
    PROVSCAN_ALPHA_IGNORE     /* drop alpha and keep the colour underneath (the PDQ reference) */
} provscan_alpha;

typedef struct provscan_load_options {
    uint64_t max_pixels;      /* 0: PROVSCAN_DEFAULT_MAX_PIXELS */
    int min_side;             /* shrink-on-load: decode at the smallest size whose shorter side is
                                 still >= min_side; 0 decodes at full resolution */
    int autorotate;           /* 1: apply the EXIF orientation tag */
    provscan_alpha alpha;
    int want_grey;            /* 1: a grey image is enough (saves colour conversion) */
} provscan_load_options;

/* Fills opts with the defaults: full resolution, autorotate on, alpha onto white, colour. */
PROVSCAN_API void provscan_load_options_default(provscan_load_options *opts);

typedef struct provscan_image_info {
    int source_width, source_height; /* of the file, after orientation was applied */
    int orientation;                  /* the file's EXIF orientation tag, 1..8 (1 = none or absent) */
    int orientation_applied;          /* 1 when the image was turned to honour that tag */
    int had_alpha;
    char format[16];                  /* "jpeg", "png", "webp", "tiff", "gif", "heif", ... */
} provscan_image_info;

PROVSCAN_API provscan_status provscan_image_load(const char *path, const provscan_load_options *opts,
                                                 provscan_image **out, provscan_image_info *info,
                                                 provscan_error *err);
/* Same, from an encoded file held in memory; name is only used in error messages. */
PROVSCAN_API provscan_status provscan_image_load_memory(const void *data, size_t size, const char *name,
                                                        const provscan_load_options *opts,
                                                        provscan_image **out, provscan_image_info *info,
                                                        provscan_error *err);
/* Wraps a copy of raw 8-bit pixels (channels 1 or 3, stride in bytes). */
PROVSCAN_API provscan_status provscan_image_from_pixels(const uint8_t *pixels, int width, int height,
                                                        int channels, size_t stride,
                                                        provscan_image **out);
PROVSCAN_API int provscan_image_width(const provscan_image *img);
PROVSCAN_API int provscan_image_height(const provscan_image *img);
PROVSCAN_API int provscan_image_channels(const provscan_image *img);
PROVSCAN_API const uint8_t *provscan_image_pixels(const provscan_image *img);
PROVSCAN_API void provscan_image_free(provscan_image *img);

/* ---------------------------------------------------------------------------------------------
 * Fingerprints: PDQ (256 bits, with quality and the 8 dihedral variants), pHash and dHash (64 bits).
 * Definitions and versions: docs/hashes.md.
 * ------------------------------------------------------------------------------------------- */
#define PROVSCAN_PDQ_VERSION 1
#define PROVSCAN_PHASH_VERSION 1
#define PROVSCAN_DHASH_VERSION 1

/* A PDQ hash in exchange order: 32 bytes, byte 0 holds bits 255..248 (as the hex form reads). */
typedef struct provscan_pdq {
    uint8_t bytes[32];
} provscan_pdq;

/* The 8 dihedral transforms, in the PDQ reference's order. */
typedef enum provscan_dihedral {
    PROVSCAN_D_ORIGINAL = 0,
    PROVSCAN_D_ROT90,      /* rotated 90 degrees counter-clockwise */
    PROVSCAN_D_ROT180,
    PROVSCAN_D_ROT270,     /* rotated 90 degrees clockwise */
    PROVSCAN_D_FLIPX,      /* flipped top to bottom */
    PROVSCAN_D_FLIPY,      /* mirrored left to right */
    PROVSCAN_D_FLIPPLUS1,  /* transposed about the main diagonal */
    PROVSCAN_D_FLIPMINUS1, /* transposed about the anti-diagonal */
    PROVSCAN_DIHEDRAL_COUNT
} provscan_dihedral;

PROVSCAN_API const char *provscan_dihedral_name(provscan_dihedral d);

typedef enum provscan_hash_mode {
    PROVSCAN_MODE_FAST = 0,   /* shrink-on-load decode, EXIF orientation applied, alpha onto white */
    PROVSCAN_MODE_COMPATIBLE  /* full-resolution decode as the PDQ reference (bit-exact hashes) */
} provscan_hash_mode;

typedef struct provscan_fingerprint {
    provscan_pdq pdq[PROVSCAN_DIHEDRAL_COUNT]; /* pdq[t]: hash of the image transformed by t */
    int quality;                               /* PDQ quality, 0..100 */
    uint64_t phash;                            /* bit i = 1 << i, printed as 16 hex digits */
    uint64_t dhash;
} provscan_fingerprint;

/* Thresholds on the best dihedral PDQ distance (docs/hashes.md): at most MATCH is a copy, at most
 * POSSIBLE deserves a look; below MIN_QUALITY a hash carries too little structure to be trusted. */
#define PROVSCAN_PDQ_MATCH_DISTANCE 31
#define PROVSCAN_PDQ_POSSIBLE_DISTANCE 47
#define PROVSCAN_PDQ_MIN_QUALITY 50

/* Verdict thresholds on the calibrated probability of a copy (docs/scoring.md). */
#define PROVSCAN_MATCH_PROBABILITY 0.5
#define PROVSCAN_POSSIBLE_PROBABILITY 0.1

/* The load options a hash mode uses. */
PROVSCAN_API void provscan_load_options_for_mode(provscan_hash_mode mode, provscan_load_options *opts);

/* Fingerprints an already loaded image. PROVSCAN_E_TOO_SMALL when a side is under 5 pixels. */
PROVSCAN_API provscan_status provscan_fingerprint_image(const provscan_image *img, provscan_fingerprint *out);

/* Loads path as mode asks and fingerprints it. info may be NULL. */
PROVSCAN_API provscan_status provscan_fingerprint_file(const char *path, provscan_hash_mode mode,
                                                       uint64_t max_pixels, provscan_fingerprint *out,
                                                       provscan_image_info *info, provscan_error *err);

/* 64 lower-case hex digits (out needs 65 bytes). */
PROVSCAN_API void provscan_pdq_to_hex(const provscan_pdq *h, char out[65]);
PROVSCAN_API provscan_status provscan_pdq_from_hex(const char *hex, provscan_pdq *out);

PROVSCAN_API int provscan_pdq_distance(const provscan_pdq *a, const provscan_pdq *b);
PROVSCAN_API int provscan_hash64_distance(uint64_t a, uint64_t b);

/* Distance from a to the closest dihedral variant of b, and which variant that is. */
PROVSCAN_API int provscan_pdq_distance_dihedral(const provscan_pdq *a, const provscan_fingerprint *b,
                                                provscan_dihedral *which);


/* ---------------------------------------------------------------------------------------------
 * Declared provenance: what a file's own metadata claims about its origin. Reported as a claim,
 * never as proof (metadata is stripped by re-encoding and unsigned metadata is easy to forge).
 * ------------------------------------------------------------------------------------------- */
typedef struct provscan_provenance {
    int c2pa_manifest;            /* a C2PA manifest store is embedded (JPEG APP11, PNG caBX, ...) */
    int xmp_packet;               /* an XMP packet is embedded */
    char digital_source_type[48]; /* IPTC DigitalSourceType term, e.g. "trainedAlgorithmicMedia"; "" if none */
    char declared_in[8];          /* "c2pa" or "xmp" */
    int generator_parameters;     /* text chunk "parameters" (Automatic1111-style) */
    int generator_prompt;         /* text chunk "prompt" (ComfyUI) */
    int generator_workflow;       /* text chunk "workflow" (ComfyUI) */
} provscan_provenance;

/* 1 when the provenance claims generative-AI origin (an AI DigitalSourceType or generator chunks). */
PROVSCAN_API int provscan_provenance_declares_ai(const provscan_provenance *p);

/* A query's local features (keypoints and binary descriptors, docs/features.md); opaque. */
typedef struct provscan_local provscan_local;

/* Everything provscan derives from one query file, read once: image facts, fingerprint, local
 * features, provenance. Release with provscan_analysis_free. */
typedef struct provscan_analysis {
    provscan_image_info info;
    provscan_fingerprint fp;
    provscan_provenance provenance;
    provscan_local *local; /* NULL when not asked for, or when the image has no usable features */
} provscan_analysis;

/* What provscan_analyze_file extracts besides the fingerprint. A query gets more local features
 * than a work in an index, so that a small pasted or cropped region of a work still holds enough
 * of them (docs/features.md, "Feature budgets"). */
typedef enum provscan_local_mode {
    PROVSCAN_LOCAL_NONE = 0,  /* fingerprint only */
    PROVSCAN_LOCAL_QUERY = 1, /* local features with a query's budget; a query of PROVSCAN_TILES_AUTO_SIDE
                                 pixels or more on its longer side gets tiles too, as below */
    PROVSCAN_LOCAL_WORK = 2,  /* local features as an index stores them for a work */
    PROVSCAN_LOCAL_QUERY_TILES = 3, /* a query's, and those of its 2 x 2 overlapping tiles (60 % of each
                                       side), whatever its size: a search also verifies what each tile
                                       retrieves, which finds works pasted small into large pictures, at
                                       2-2.5 times the search's cost (docs/features.md, "Tiles") */
    PROVSCAN_LOCAL_QUERY_WHOLE = 4, /* a query's, never with tiles */
} provscan_local_mode;

/* Queries this large (twice the working side of local features) are also searched by tiles. */
#define PROVSCAN_TILES_AUTO_SIDE 1280

/* Reads path once, scans its metadata, decodes it in fast mode, fingerprints it and extracts its
 * local features as want_local (a provscan_local_mode) says. */
PROVSCAN_API provscan_status provscan_analyze_file(const char *path, uint64_t max_pixels, int want_local,
                                                   provscan_analysis *out, provscan_error *err);
PROVSCAN_API void provscan_analysis_free(provscan_analysis *a);

/* Writes the evidence picture for a query and a work (both files): the two side by side, the
 * matched regions outlined and the matching keypoints joined. PROVSCAN_E_NOT_IMAGE... as the loader;
 * when no local match is verified the picture shows both images without outlines. */
PROVSCAN_API provscan_status provscan_evidence_write(const char *query_path, const char *work_path,
                                                     const char *png_path, provscan_error *err);

/* ---------------------------------------------------------------------------------------------
 * Corpus index: a directory holding a SQLite catalog of works (path, content SHA-256, attribution,
 * fingerprints) and memory-mapped descriptor segments for fast search (docs/index-format.md).
 * One writer at a time (a lock file); any number of readers, also while a writer runs.
 * ------------------------------------------------------------------------------------------- */
typedef struct provscan_index provscan_index;

#define PROVSCAN_INDEX_FORMAT_VERSION 1

/* Creates an empty index in dir (created if missing; it must not already hold an index). */
PROVSCAN_API provscan_status provscan_index_create(const char *dir, provscan_error *err);
/* Opens an index. writable takes the writer lock: PROVSCAN_E_BUSY when another writer holds it. */
PROVSCAN_API provscan_status provscan_index_open(const char *dir, int writable, provscan_index **out,
                                                 provscan_error *err);
PROVSCAN_API void provscan_index_close(provscan_index *idx);
/* Maps the index's segments now rather than at the first search, so that a damaged segment is
 * reported before any work starts. */
PROVSCAN_API provscan_status provscan_index_prepare(provscan_index *idx, provscan_error *err);

typedef struct provscan_add_progress {
    uint64_t done, total;   /* files considered so far / in all */
    uint64_t added, failed; /* so far */
} provscan_add_progress;

typedef void (*provscan_progress_fn)(const provscan_add_progress *progress, void *user);
typedef void (*provscan_file_error_fn)(const char *path, const provscan_error *err, void *user);

typedef struct provscan_add_options {
    int jobs;                        /* worker threads; 0: all cores */
    int follow_symlinks;             /* follow symbolic links while walking directories */
    uint64_t max_pixels;             /* 0: PROVSCAN_DEFAULT_MAX_PIXELS */
    const char *meta_csv;            /* attribution CSV to import (docs/index-format.md), or NULL */
    provscan_progress_fn progress;   /* called after each committed batch, or NULL */
    provscan_file_error_fn on_error; /* called for each file that could not be added, or NULL */
    void *user;
} provscan_add_options;

typedef struct provscan_add_stats {
    uint64_t files;           /* regular files found */
    uint64_t non_image;       /* skipped: not an image by name or content */
    uint64_t unchanged;       /* skipped: same path, size and modification time as indexed */
    uint64_t added;           /* new works */
    uint64_t updated;         /* same path, new content */
    uint64_t moved;           /* same content at a new path (the old path is gone) */
    uint64_t failed;          /* could not be read or decoded */
    uint64_t attribution;     /* works whose attribution the CSV set (new works included) or changed */
} provscan_add_stats;

/* Adds files and directories (walked recursively) to a writable index, incrementally: unchanged
 * files are skipped, renamed files are recognised by content. Files are committed in batches; an
 * interrupted add keeps every committed batch and a rerun completes the rest. */
PROVSCAN_API provscan_status provscan_index_add(provscan_index *idx, const char *const *paths, size_t npaths,
                                                const provscan_add_options *opts, provscan_add_stats *stats,
                                                provscan_error *err);
/* Removes works by path (a directory removes everything under it). */
PROVSCAN_API provscan_status provscan_index_remove(provscan_index *idx, const char *const *paths, size_t npaths,
                                                   uint64_t *removed, provscan_error *err);
/* Removes works whose file no longer exists. */
PROVSCAN_API provscan_status provscan_index_prune(provscan_index *idx, uint64_t *removed, provscan_error *err);

typedef struct provscan_index_stats {
    int format_version;
    uint64_t works, segments, records, tombstones, bytes;
    int64_t created_at, updated_at; /* Unix seconds */
    char hash_mode[16];
} provscan_index_stats;

PROVSCAN_API provscan_status provscan_index_info(provscan_index *idx, provscan_index_stats *out, provscan_error *err);

typedef void (*provscan_problem_fn)(const char *problem, void *user);
/* Checks the catalog, every segment's checksums and the agreement between them; each problem is
 * reported through the callback. PROVSCAN_OK with *problems == 0 means the index is sound. */
PROVSCAN_API provscan_status provscan_index_verify(provscan_index *idx, provscan_problem_fn problem, void *user,
                                                   uint64_t *problems, provscan_error *err);

typedef enum provscan_kind {
    PROVSCAN_KIND_NEAR_DUPLICATE = 0, /* the query is the work as a whole, edited */
    PROVSCAN_KIND_PARTIAL             /* the query reuses part of the work, or holds it as a part */
} provscan_kind;

typedef struct provscan_match {
    int64_t work_id;
    char *path;
    char sha256[65];
    char *title, *author, *license, *source_url, *note; /* attribution; NULL when unknown */
    int width, height, quality;
    double probability;          /* calibrated probability that the query copies this work (docs/scoring.md) */
    provscan_kind kind;
    int distance;                /* PDQ Hamming distance to the closest dihedral variant of the query */
    provscan_dihedral transform; /* the query is the work transformed by this */
    int inverted;                /* ... with its tones inverted too (a negative): PDQ matched the inverted hash */
    int inliers, matches;        /* local features: geometrically verified and tentative matches */
    int alt_inliers;             /* inliers of the best other placement among the matches left (repeated structure) */
    int mirrored;                /* the local match holds with the query mirrored */
    float work_coverage;         /* fraction of the work's area inside the matched region */
    float query_coverage;        /* fraction of the query's area inside the matched region */
    float query_region[8];       /* matched region, a quadrilateral (x0,y0,...,x3,y3) in query pixels */
    float work_region[8];        /* the same region in work pixels (full resolution, upright) */
} provscan_match;

typedef struct provscan_search_options {
    int top_k;              /* matches kept per query */
    int max_distance;       /* PDQ distance within which works are listed by the global stage */
    int jobs;               /* worker threads; 0: all cores */
    int local;              /* 1: run the local-feature stage too (queries need local features) */
    double min_probability; /* locally found works below this probability are not listed */
    int local_candidates;   /* works verified per query from visual-word retrieval; 0: the default,
                               PROVSCAN_LOCAL_CANDIDATES (more find more crops and composites, slower) */
    int no_windows;         /* 1: retrieval ranks works by the whole query's words only, not also by those
                               of its windows (docs/features.md, "Windows"): faster, finds fewer
                               regions pasted into other pictures */
} provscan_search_options;

#define PROVSCAN_LOCAL_CANDIDATES 64
#define PROVSCAN_LOCAL_CANDIDATES_MAX 1000

typedef struct provscan_results {
    size_t nqueries;
    size_t *count;          /* matches per query */
    provscan_match **match; /* match[q][0 .. count[q]-1], best first */
} provscan_results;

/* Searches the index for nq analysed queries: the global stage (PDQ over all 8 rotations and
 * mirrors of each query, and their inverted hashes: a negative of a work is found too) and, with opts->local, the local stage (candidates by visual words and the
 * nearest works by PDQ, then geometric verification of local features). Matches are ordered by probability, then PDQ
 * distance, then path: an order that does not depend on how works are spread over shards, so the
 * results of shards merge into those of one index. */
PROVSCAN_API provscan_status provscan_index_search(provscan_index *idx, const provscan_analysis *queries,
                                                   size_t nq, const provscan_search_options *opts,
                                                   provscan_results *out, provscan_error *err);
/* The same over several indexes (shards of one corpus) searched as one: candidates of the local
 * stage are chosen across all of them, so the results are those of one index holding every work. */
PROVSCAN_API provscan_status provscan_index_search_shards(provscan_index *const *shards, size_t nshards,
                                                          const provscan_analysis *queries, size_t nq,
                                                          const provscan_search_options *opts,
                                                          provscan_results *out, provscan_error *err);
/* Merges the results of the same queries against several shards searched separately into the
 * top_k of their union (exact for the global stage; see docs/index-format.md for the local stage). */
PROVSCAN_API provscan_status provscan_results_merge(provscan_results *into, provscan_results *from, int top_k);
PROVSCAN_API void provscan_results_free(provscan_results *r);

/* Compares two analysed images as a search would compare a query with a corpus work: PDQ over the
 * query's 16 variants (8 dihedral, inverted or not), local features (when both have them), calibrated probability, kind, regions.
 * Fills out without path or attribution (those come from an index). */
PROVSCAN_API provscan_status provscan_compare_analyses(const provscan_analysis *query, const provscan_analysis *work,
                                                       provscan_match *out);


#ifdef __cplusplus
}
#endif
#endif

/* index_internal.h — the index handle, catalog helpers and the segment snapshot shared by the index sources. */
#ifndef PROVSCAN_INDEX_INTERNAL_H
#define PROVSCAN_INDEX_INTERNAL_H

#include <sqlite3.h>

#include "common/util.h"
#include "index/segment.h"
#include "features/features.h"
#include "provscan.h"

#define PS_CATALOG_FILE "catalog.sqlite"
#define PS_LOCK_FILE "writer.lock"
/* The radius segments' multi-index hashing tables are built for: PDQ's match threshold. Searches
 * within it use them; wider searches scan. */
#define PS_MIH_RADIUS 31

/* The segments a reader searches, read from the catalog in one transaction. */
typedef struct ps_snapshot {
    size_t n;
    ps_segment *segs;
    int64_t *seq;
    struct ps_mih **mih;  /* multi-index hashing view of each segment's codes, or NULL */
    ps_u64set tombstones; /* work ids whose records in segments are dead */
} ps_snapshot;

struct provscan_index {
    char *dir;
    sqlite3 *db;
    int writable;
    int lock_fd;
    provscan_hash_mode hash_mode;
    ps_snapshot snap;
    int snap_loaded;
};

/* SQLite helpers: each returns PROVSCAN_OK or records the catalog error (busy, corrupt, I/O). */
provscan_status ps_sql_fail(provscan_index *idx, provscan_error *err, const char *what);
provscan_status ps_sql_exec(provscan_index *idx, const char *sql, provscan_error *err);
provscan_status ps_sql_prepare(provscan_index *idx, const char *sql, sqlite3_stmt **st, provscan_error *err);
/* Reads meta value key into out (empty if absent). */
provscan_status ps_meta_get(provscan_index *idx, const char *key, char *out, size_t size, provscan_error *err);
provscan_status ps_meta_set(provscan_index *idx, const char *key, const char *value, provscan_error *err);

/* Path of a file inside the index directory (caller frees). */
char *ps_index_file(const provscan_index *idx, const char *name);

/* Loads (or reloads) the segment snapshot; retries when a concurrent writer replaces segments. */
provscan_status ps_snapshot_load(provscan_index *idx, int verify_data, provscan_error *err);
void ps_snapshot_free(ps_snapshot *s);

/* The records of a segment being built: PDQ code, work id, quality, and optionally the serialised
 * local features and visual words of each record. */
typedef struct ps_seg_builder {
    size_t n, cap;
    uint8_t *codes;
    int64_t *ids;
    uint8_t *quality;
    ps_feat_entry *entries;
    uint8_t *feat;
    size_t feat_len, feat_cap;
    uint32_t *words;
    size_t words_len, words_cap;
} ps_seg_builder;

/* Appends a record. feat may be NULL (no local features); words are uint32 word << 8 | count,
 * ascending by word. Returns 0, or -1 when out of memory. */
int ps_seg_builder_add(ps_seg_builder *b, const uint8_t code[32], int64_t id, uint8_t quality, const uint8_t *feat,
                       size_t feat_size, const uint32_t *words, uint32_t nwords, uint32_t ndesc);
/* Appends a record whose serialised features are those of an earlier record of the same builder
 * (same bytes, stored once): for synthetic corpora in scale benchmarks. */
int ps_seg_builder_add_shared(ps_seg_builder *b, const uint8_t code[32], int64_t id, uint8_t quality,
                              size_t same_features_as, const uint32_t *words, uint32_t nwords, uint32_t ndesc);
void ps_seg_builder_free(ps_seg_builder *b);
/* Writes the records as segment seq (with the inverted file and search tables built from them);
 * file_name receives the file's name inside the index. */
provscan_status ps_seg_builder_write(provscan_index *idx, const ps_seg_builder *b, int64_t seq, char *file_name,
                                     size_t name_size, uint32_t *checksum, provscan_error *err);

/* The distinct visual words of a set of descriptors, as ps_seg_builder_add wants them (caller
 * frees *words). Returns the number of words, or -1 when out of memory. */
int ps_words_of(const uint8_t *desc, int n, uint32_t **words);
/* The same, and with lanes (a bit mask per descriptor, bit v for lane v < nlanes <= 16) each word's
 * count in each lane (*lane_tf: nlanes bytes per word, at most 255; caller frees). */
int ps_words_in_lanes(const uint8_t *desc, int n, const uint16_t *lanes, int nlanes, uint32_t **words,
                      uint8_t **lane_tf);

/* Merges segments by size tier so their number stays logarithmic in the corpus size. */
provscan_status ps_compact(provscan_index *idx, provscan_error *err);

/* Removes segment files in the index directory that the catalog does not list (left by an
 * interrupted writer). Writers only. */
void ps_remove_orphans(provscan_index *idx);

#endif

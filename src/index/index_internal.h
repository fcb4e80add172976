/* index_internal.h — the index handle, catalog helpers and the segment snapshot shared by the index sources. */
#ifndef PROVSCAN_INDEX_INTERNAL_H
#define PROVSCAN_INDEX_INTERNAL_H

#include <sqlite3.h>

#include "common/util.h"
#include "index/segment.h"
#include "provscan.h"

#define PS_CATALOG_FILE "catalog.sqlite"
#define PS_LOCK_FILE "writer.lock"

/* The segments a reader searches, read from the catalog in one transaction. */
typedef struct ps_snapshot {
    size_t n;
    ps_segment *segs;
    int64_t *seq;
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

/* Writes a PDQ segment for the given records and returns its catalog row values. */
provscan_status ps_write_pdq_segment(provscan_index *idx, int64_t seq, const uint8_t *codes, const int64_t *ids,
                                     const uint8_t *quality, size_t n, char *file_name, size_t name_size,
                                     uint32_t *checksum, provscan_error *err);

/* Merges segments by size tier so their number stays logarithmic in the corpus size. */
provscan_status ps_compact(provscan_index *idx, provscan_error *err);

/* Removes segment files in the index directory that the catalog does not list (left by an
 * interrupted writer). Writers only. */
void ps_remove_orphans(provscan_index *idx);

#endif

/* index.c — index lifecycle: create/open/close, catalog helpers, snapshots, info, verify, remove, prune, compaction. */
#include "index/index_internal.h"
#include "common/error.h"
#include "search/search.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const schema_sql =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE works("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  path TEXT NOT NULL UNIQUE,"
    "  sha256 BLOB NOT NULL CHECK(length(sha256) = 32),"
    "  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
    "  width INTEGER NOT NULL, height INTEGER NOT NULL, format TEXT NOT NULL,"
    "  added_at INTEGER NOT NULL,"
    "  quality INTEGER NOT NULL,"
    "  pdq BLOB NOT NULL CHECK(length(pdq) = 32), phash INTEGER NOT NULL, dhash INTEGER NOT NULL,"
    "  segment INTEGER NOT NULL,"
    "  title TEXT, author TEXT, license TEXT, source_url TEXT, note TEXT);"
    "CREATE INDEX works_sha256 ON works(sha256);"
    "CREATE INDEX works_segment ON works(segment);"
    "CREATE TABLE segments(seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, file TEXT NOT NULL UNIQUE,"
    "  records INTEGER NOT NULL, checksum INTEGER NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE tombstones(work_id INTEGER PRIMARY KEY, segment INTEGER NOT NULL);";

char *ps_index_file(const provscan_index *idx, const char *name)
{
    size_t n = strlen(idx->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", idx->dir, name);
    return p;
}

provscan_status ps_sql_fail(provscan_index *idx, provscan_error *err, const char *what)
{
    int code = sqlite3_extended_errcode(idx->db) & 0xFF;
    provscan_status st = code == SQLITE_BUSY || code == SQLITE_LOCKED ? PROVSCAN_E_BUSY
                         : code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? PROVSCAN_E_INDEX
                         : code == SQLITE_NOMEM                           ? PROVSCAN_E_NOMEM
                         : code == SQLITE_IOERR || code == SQLITE_FULL || code == SQLITE_CANTOPEN ||
                                 code == SQLITE_READONLY || code == SQLITE_PERM
                             ? PROVSCAN_E_IO
                             : PROVSCAN_E_INDEX;
    return ps_fail(err, st, "%s: catalog %s failed: %s", idx->dir, what, sqlite3_errmsg(idx->db));
}

provscan_status ps_sql_exec(provscan_index *idx, const char *sql, provscan_error *err)
{
    if (sqlite3_exec(idx->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return ps_sql_fail(idx, err, "update");
    return PROVSCAN_OK;
}

provscan_status ps_sql_prepare(provscan_index *idx, const char *sql, sqlite3_stmt **st, provscan_error *err)
{
    if (sqlite3_prepare_v2(idx->db, sql, -1, st, NULL) != SQLITE_OK)
        return ps_sql_fail(idx, err, "query");
    return PROVSCAN_OK;
}

provscan_status ps_meta_get(provscan_index *idx, const char *key, char *out, size_t size, provscan_error *err)
{
    sqlite3_stmt *st;
    PS_TRY(ps_sql_prepare(idx, "SELECT value FROM meta WHERE key = ?", &st, err));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    out[0] = '\0';
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return ps_sql_fail(idx, err, "read");
    return PROVSCAN_OK;
}

provscan_status ps_meta_set(provscan_index *idx, const char *key, const char *value, provscan_error *err)
{
    sqlite3_stmt *st;
    PS_TRY(ps_sql_prepare(idx, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &st, err));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PROVSCAN_OK : ps_sql_fail(idx, err, "update");
}

static void configure(sqlite3 *db)
{
    sqlite3_busy_timeout(db, 10000);
    sqlite3_exec(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;", NULL, NULL, NULL);
}

/* Identity of the local-feature models this build uses: pattern and vocabulary. Features stored
 * by one model cannot be compared with features another makes. */
static void features_identity(char *out, size_t n)
{
    const ps_feature_model *m = ps_feature_model_builtin();
    const ps_vocab *v = ps_vocab_builtin();
    snprintf(out, n, "%016llx:%016llx", m ? (unsigned long long)ps_feature_model_id(m) : 0ull,
             v ? (unsigned long long)ps_vocab_id(v) : 0ull);
}

provscan_status provscan_index_create(const char *dir, provscan_error *err)
{
    ps_error_clear(err);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return ps_fail(err, PROVSCAN_E_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ps_fail(err, PROVSCAN_E_IO, "%s: not a directory", dir);
    provscan_index tmp = {.dir = (char *)dir};
    char *cat = ps_index_file(&tmp, PS_CATALOG_FILE);
    if (!cat)
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    if (access(cat, F_OK) == 0) {
        free(cat);
        return ps_fail(err, PROVSCAN_E_ARG, "%s: already holds an index", dir);
    }
    sqlite3 *db;
    if (sqlite3_open_v2(cat, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        provscan_status s = ps_fail(err, PROVSCAN_E_IO, "%s: cannot create catalog: %s", cat, sqlite3_errmsg(db));
        sqlite3_close(db);
        free(cat);
        return s;
    }
    free(cat);
    configure(db);
    tmp.db = db;
    char now[32], version[8], features[40];
    snprintf(now, sizeof now, "%lld", (long long)ps_unix_time());
    features_identity(features, sizeof features);
    snprintf(version, sizeof version, "%d", PROVSCAN_INDEX_FORMAT_VERSION);
    provscan_status s = ps_sql_exec(&tmp, "PRAGMA journal_mode = WAL", err);
    if (s == PROVSCAN_OK)
        s = ps_sql_exec(&tmp, "BEGIN", err);
    if (s == PROVSCAN_OK)
        s = ps_sql_exec(&tmp, schema_sql, err);
    const char *const kv[][2] = {
        {"format_version", version}, {"created_at", now}, {"updated_at", now}, {"hash_mode", "fast"},
        {"pdq_version", "1"}, {"phash_version", "1"}, {"dhash_version", "1"}, {"generator", "provscan " PROVSCAN_VERSION_STRING},
        {"features", features},
    };
    for (size_t i = 0; s == PROVSCAN_OK && i < sizeof kv / sizeof kv[0]; i++)
        s = ps_meta_set(&tmp, kv[i][0], kv[i][1], err);
    if (s == PROVSCAN_OK)
        s = ps_sql_exec(&tmp, "COMMIT", err);
    sqlite3_close(db);
    return s;
}

provscan_status provscan_index_open(const char *dir, int writable, provscan_index **out, provscan_error *err)
{
    ps_error_clear(err);
    *out = NULL;
    provscan_index *idx = calloc(1, sizeof *idx);
    if (!idx || !(idx->dir = strdup(dir))) {
        free(idx);
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    }
    idx->lock_fd = -1;
    idx->writable = writable;
    char *cat = ps_index_file(idx, PS_CATALOG_FILE);
    provscan_status s = PROVSCAN_OK;
    struct stat st;
    if (!cat) {
        s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
        goto fail;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        s = ps_fail(err, PROVSCAN_E_IO, "%s: no such index directory", dir);
        goto fail;
    }
    if (access(cat, F_OK) != 0) {
        s = ps_fail(err, PROVSCAN_E_INDEX, "%s: not a provscan index (no %s; create one with 'provscan index create')",
                    dir, PS_CATALOG_FILE);
        goto fail;
    }
    if (writable) {
        char *lock = ps_index_file(idx, PS_LOCK_FILE);
        idx->lock_fd = lock ? open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
        free(lock);
        if (idx->lock_fd < 0) {
            s = ps_fail(err, PROVSCAN_E_IO, "%s: cannot open the writer lock: %s", dir, strerror(errno));
            goto fail;
        }
        if (flock(idx->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            s = ps_fail(err, PROVSCAN_E_BUSY, "%s: another provscan process is writing to this index", dir);
            goto fail;
        }
    }
    int flags = writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(cat, &idx->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        s = ps_fail(err, PROVSCAN_E_IO, "%s: cannot open catalog: %s", cat, sqlite3_errmsg(idx->db));
        goto fail;
    }
    configure(idx->db);
    char value[64];
    if ((s = ps_meta_get(idx, "format_version", value, sizeof value, err)) != PROVSCAN_OK)
        goto fail;
    if (!value[0]) {
        s = ps_fail(err, PROVSCAN_E_INDEX, "%s: catalog has no format version", dir);
        goto fail;
    }
    if (atoi(value) != PROVSCAN_INDEX_FORMAT_VERSION) {
        s = ps_fail(err, PROVSCAN_E_VERSION, "%s: index format version %s, this provscan reads version %d", dir, value,
                    PROVSCAN_INDEX_FORMAT_VERSION);
        goto fail;
    }
    static const char *const algos[][2] = {{"pdq_version", "1"}, {"phash_version", "1"}, {"dhash_version", "1"}};
    for (size_t i = 0; i < 3; i++) {
        if ((s = ps_meta_get(idx, algos[i][0], value, sizeof value, err)) != PROVSCAN_OK)
            goto fail;
        if (strcmp(value, algos[i][1]) != 0) {
            s = ps_fail(err, PROVSCAN_E_VERSION, "%s: hashes made with %s %s, this provscan makes %s", dir, algos[i][0],
                        value, algos[i][1]);
            goto fail;
        }
    }
    char features[40];
    features_identity(features, sizeof features);
    if ((s = ps_meta_get(idx, "features", value, sizeof value, err)) != PROVSCAN_OK)
        goto fail;
    if (strcmp(value, features) != 0) {
        s = ps_fail(err, PROVSCAN_E_VERSION,
                    "%s: local features made with feature models %s, this provscan uses %s: rebuild the index", dir,
                    value[0] ? value : "(none)", features);
        goto fail;
    }
    idx->hash_mode = PROVSCAN_MODE_FAST;
    free(cat);
    *out = idx;
    return PROVSCAN_OK;
fail:
    free(cat);
    provscan_index_close(idx);
    return s;
}

void provscan_index_close(provscan_index *idx)
{
    if (!idx)
        return;
    ps_snapshot_free(&idx->snap);
    if (idx->db)
        sqlite3_close(idx->db);
    if (idx->lock_fd >= 0)
        close(idx->lock_fd); /* releases the flock */
    free(idx->dir);
    free(idx);
}

void ps_snapshot_free(ps_snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->mih && s->mih[i])
            ps_mih_close(s->mih[i]);
        ps_segment_close(&s->segs[i]);
    }
    free(s->segs);
    free(s->seq);
    free(s->mih);
    ps_u64set_free(&s->tombstones);
    memset(s, 0, sizeof *s);
}

/* One consistent read of the segment list and tombstones. */
static provscan_status read_snapshot(provscan_index *idx, int verify_data, ps_snapshot *snap, int *missing,
                                     provscan_error *err)
{
    memset(snap, 0, sizeof *snap);
    *missing = 0;
    PS_TRY(ps_sql_exec(idx, "BEGIN", err));
    sqlite3_stmt *st = NULL;
    provscan_status s = ps_sql_prepare(idx, "SELECT seq, file, records, checksum FROM segments WHERE kind = 1 ORDER BY seq", &st, err);
    size_t cap = 0;
    int rc = SQLITE_DONE;
    while (s == PROVSCAN_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (snap->n == cap) {
            cap = cap ? cap * 2 : 16;
            ps_segment *segs = realloc(snap->segs, cap * sizeof *segs);
            int64_t *seq = segs ? realloc(snap->seq, cap * sizeof *seq) : NULL;
            if (segs)
                snap->segs = segs;
            if (seq)
                snap->seq = seq;
            struct ps_mih **mih = seq ? realloc(snap->mih, cap * sizeof *mih) : NULL;
            if (!mih) {
                s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
                break;
            }
            snap->mih = mih;
        }
        const char *file = (const char *)sqlite3_column_text(st, 1);
        if (!file || strchr(file, '/')) {
            s = ps_fail(err, PROVSCAN_E_INDEX, "%s: catalog names an invalid segment file", idx->dir);
            break;
        }
        char *path = ps_index_file(idx, file);
        if (!path) {
            s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
            break;
        }
        s = ps_segment_open(path, PS_KIND_PDQ, (uint64_t)sqlite3_column_int64(st, 2),
                            (uint32_t)sqlite3_column_int64(st, 3), verify_data, &snap->segs[snap->n], err);
        if (s != PROVSCAN_OK && access(path, F_OK) != 0)
            *missing = 1; /* replaced by a concurrent compaction: the caller retries */
        snap->mih[snap->n] = NULL;
        if (s == PROVSCAN_OK) {
            uint64_t size;
            const void *blob = ps_segment_section(&snap->segs[snap->n], PS_SEC_MIH, &size);
            if (blob && (s = ps_mih_open(blob, size, snap->segs[snap->n].records, &snap->mih[snap->n], err)) != PROVSCAN_OK)
                ps_segment_close(&snap->segs[snap->n]);
        }
        free(path);
        if (s != PROVSCAN_OK)
            break;
        snap->seq[snap->n++] = sqlite3_column_int64(st, 0);
    }
    if (s == PROVSCAN_OK && rc != SQLITE_DONE)
        s = ps_sql_fail(idx, err, "read");
    sqlite3_finalize(st);
    if (s == PROVSCAN_OK && (s = ps_sql_prepare(idx, "SELECT work_id FROM tombstones", &st, err)) == PROVSCAN_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            if (ps_u64set_add(&snap->tombstones, (uint64_t)sqlite3_column_int64(st, 0)) < 0) {
                s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
                break;
            }
        if (s == PROVSCAN_OK && rc != SQLITE_DONE)
            s = ps_sql_fail(idx, err, "read");
        sqlite3_finalize(st);
    }
    sqlite3_exec(idx->db, "COMMIT", NULL, NULL, NULL);
    if (s != PROVSCAN_OK)
        ps_snapshot_free(snap);
    return s;
}

provscan_status provscan_index_prepare(provscan_index *idx, provscan_error *err)
{
    ps_error_clear(err);
    return idx->snap_loaded ? PROVSCAN_OK : ps_snapshot_load(idx, 0, err);
}

provscan_status ps_snapshot_load(provscan_index *idx, int verify_data, provscan_error *err)
{
    ps_snapshot_free(&idx->snap);
    idx->snap_loaded = 0;
    provscan_status s = PROVSCAN_OK;
    for (int attempt = 0; attempt < 20; attempt++) {
        int missing;
        s = read_snapshot(idx, verify_data, &idx->snap, &missing, err);
        if (s == PROVSCAN_OK) {
            idx->snap_loaded = 1;
            return PROVSCAN_OK;
        }
        if (!missing)
            return s;
        usleep(50000); /* a writer swapped segments between our read and open: read again */
    }
    return s;
}

void ps_remove_orphans(provscan_index *idx)
{
    DIR *d = opendir(idx->dir);
    if (!d)
        return;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(idx->db, "SELECT 1 FROM segments WHERE file = ?", -1, &st, NULL) != SQLITE_OK) {
        closedir(d);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        int tmp = len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0;
        if (strncmp(e->d_name, "seg-", 4) != 0)
            continue;
        int listed = 0;
        if (!tmp) {
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, e->d_name, -1, SQLITE_TRANSIENT);
            listed = sqlite3_step(st) == SQLITE_ROW;
        }
        if (!listed) {
            char *path = ps_index_file(idx, e->d_name);
            if (path)
                unlink(path);
            free(path);
        }
    }
    sqlite3_finalize(st);
    closedir(d);
}

provscan_status provscan_index_info(provscan_index *idx, provscan_index_stats *out, provscan_error *err)
{
    ps_error_clear(err);
    memset(out, 0, sizeof *out);
    out->format_version = PROVSCAN_INDEX_FORMAT_VERSION;
    char v[64];
    PS_TRY(ps_meta_get(idx, "created_at", v, sizeof v, err));
    out->created_at = atoll(v);
    PS_TRY(ps_meta_get(idx, "updated_at", v, sizeof v, err));
    out->updated_at = atoll(v);
    PS_TRY(ps_meta_get(idx, "hash_mode", out->hash_mode, sizeof out->hash_mode, err));
    static const char *const counts[] = {
        "SELECT count(*) FROM works", "SELECT count(*) FROM segments",
        "SELECT coalesce(sum(records), 0) FROM segments", "SELECT count(*) FROM tombstones",
    };
    uint64_t *dst[] = {&out->works, &out->segments, &out->records, &out->tombstones};
    for (size_t i = 0; i < 4; i++) {
        sqlite3_stmt *st;
        PS_TRY(ps_sql_prepare(idx, counts[i], &st, err));
        if (sqlite3_step(st) == SQLITE_ROW)
            *dst[i] = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    DIR *d = opendir(idx->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            char *p = ps_index_file(idx, e->d_name);
            struct stat st;
            if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode))
                out->bytes += (uint64_t)st.st_size;
            free(p);
        }
        closedir(d);
    }
    return PROVSCAN_OK;
}

static void problemf(provscan_problem_fn fn, void *user, uint64_t *count, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void problemf(provscan_problem_fn fn, void *user, uint64_t *count, const char *fmt, ...)
{
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    (*count)++;
    if (fn)
        fn(buf, user);
}

provscan_status provscan_index_verify(provscan_index *idx, provscan_problem_fn problem, void *user,
                                      uint64_t *problems, provscan_error *err)
{
    ps_error_clear(err);
    *problems = 0;
    sqlite3_stmt *st;
    PS_TRY(ps_sql_prepare(idx, "PRAGMA quick_check", &st, err));
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r && strcmp(r, "ok") != 0)
            problemf(problem, user, problems, "catalog: %s", r);
    }
    sqlite3_finalize(st);
    /* Every segment, with its data checksums. */
    provscan_error serr;
    provscan_status s = ps_snapshot_load(idx, 1, &serr);
    if (s != PROVSCAN_OK) {
        problemf(problem, user, problems, "%s", serr.message);
        return PROVSCAN_OK;
    }
    /* Every live work has exactly one record, in the segment the catalog names, with its hash. */
    ps_u64set seen = {0};
    uint64_t records_live = 0;
    PS_TRY(ps_sql_prepare(idx, "SELECT segment, pdq FROM works WHERE id = ?", &st, err));
    for (size_t i = 0; i < idx->snap.n; i++) {
        const ps_segment *seg = &idx->snap.segs[i];
        const int64_t *ids = ps_segment_section(seg, PS_SEC_IDS, NULL);
        const uint8_t *codes = ps_segment_section(seg, PS_SEC_CODES, NULL);
        for (uint64_t r = 0; r < seg->records; r++) {
            if (ps_u64set_has(&idx->snap.tombstones, (uint64_t)ids[r]))
                continue;
            records_live++;
            if (ps_u64set_add(&seen, (uint64_t)ids[r]) == 0)
                problemf(problem, user, problems, "work %lld has two live records", (long long)ids[r]);
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, ids[r]);
            if (sqlite3_step(st) != SQLITE_ROW) {
                problemf(problem, user, problems, "segment %lld holds a record of work %lld, which the catalog lacks",
                         (long long)idx->snap.seq[i], (long long)ids[r]);
                continue;
            }
            if (sqlite3_column_int64(st, 0) != idx->snap.seq[i])
                problemf(problem, user, problems, "work %lld: catalog names segment %lld, record is in %lld",
                         (long long)ids[r], (long long)sqlite3_column_int64(st, 0), (long long)idx->snap.seq[i]);
            const void *pdq = sqlite3_column_blob(st, 1);
            if (!pdq || sqlite3_column_bytes(st, 1) != 32 || memcmp(pdq, codes + 32 * r, 32) != 0)
                problemf(problem, user, problems, "work %lld: PDQ hash in segment %lld differs from the catalog",
                         (long long)ids[r], (long long)idx->snap.seq[i]);
        }
    }
    sqlite3_finalize(st);
    ps_u64set_free(&seen);
    PS_TRY(ps_sql_prepare(idx, "SELECT count(*) FROM works", &st, err));
    uint64_t works = sqlite3_step(st) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (works != records_live)
        problemf(problem, user, problems, "catalog lists %llu works but segments hold %llu live records",
                 (unsigned long long)works, (unsigned long long)records_live);
    return PROVSCAN_OK;
}

/* Deletes the works matched by where (with ?1 bound to arg) and tombstones their records. */
static provscan_status delete_works(provscan_index *idx, const char *where, const char *arg, uint64_t *removed,
                                    provscan_error *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO tombstones(work_id, segment) SELECT id, segment FROM works WHERE %s", where);
    sqlite3_stmt *st;
    PS_TRY(ps_sql_prepare(idx, sql, &st, err));
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return ps_sql_fail(idx, err, "update");
    snprintf(sql, sizeof sql, "DELETE FROM works WHERE %s", where);
    PS_TRY(ps_sql_prepare(idx, sql, &st, err));
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return ps_sql_fail(idx, err, "update");
    *removed += (uint64_t)sqlite3_changes(idx->db);
    return PROVSCAN_OK;
}

static provscan_status touch_updated(provscan_index *idx, provscan_error *err)
{
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)ps_unix_time());
    return ps_meta_set(idx, "updated_at", now, err);
}

provscan_status provscan_index_remove(provscan_index *idx, const char *const *paths, size_t npaths,
                                      uint64_t *removed, provscan_error *err)
{
    ps_error_clear(err);
    *removed = 0;
    if (!idx->writable)
        return ps_fail(err, PROVSCAN_E_ARG, "%s: index opened read-only", idx->dir);
    PS_TRY(ps_sql_exec(idx, "BEGIN IMMEDIATE", err));
    provscan_status s = PROVSCAN_OK;
    for (size_t i = 0; i < npaths && s == PROVSCAN_OK; i++) {
        char *abs = ps_path_absolute(paths[i]);
        if (!abs) {
            s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
            break;
        }
        s = delete_works(idx, "path = ?1", abs, removed, err);
        if (s == PROVSCAN_OK) {
            /* everything under a directory: path starts with "abs/" (GLOB with escaped metacharacters) */
            size_t n = strlen(abs);
            char *pattern = malloc(2 * n + 4), *o = pattern;
            if (!pattern) {
                s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
            } else {
                for (const char *c = abs; *c; c++) {
                    if (*c == '*' || *c == '?' || *c == '[') {
                        *o++ = '[';
                        *o++ = *c;
                        *o++ = ']';
                    } else {
                        *o++ = *c;
                    }
                }
                strcpy(o, strcmp(abs, "/") == 0 ? "*" : "/*");
                s = delete_works(idx, "path GLOB ?1", pattern, removed, err);
                free(pattern);
            }
        }
        free(abs);
    }
    if (s == PROVSCAN_OK)
        s = touch_updated(idx, err);
    if (s == PROVSCAN_OK)
        s = ps_sql_exec(idx, "COMMIT", err);
    else
        sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
    if (s == PROVSCAN_OK)
        s = ps_compact(idx, err);
    return s;
}

provscan_status provscan_index_prune(provscan_index *idx, uint64_t *removed, provscan_error *err)
{
    ps_error_clear(err);
    *removed = 0;
    if (!idx->writable)
        return ps_fail(err, PROVSCAN_E_ARG, "%s: index opened read-only", idx->dir);
    /* Collect the missing paths first, then delete them in one transaction. */
    sqlite3_stmt *st;
    PS_TRY(ps_sql_prepare(idx, "SELECT path FROM works", &st, err));
    char **gone = NULL;
    size_t n = 0, cap = 0;
    provscan_status s = PROVSCAN_OK;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(st, 0);
        struct stat sb;
        if (!p || stat(p, &sb) == 0 || errno != ENOENT)
            continue; /* present, or unreachable for another reason (an unmounted disk is not "gone") */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **g = realloc(gone, cap * sizeof *g);
            if (!g) { s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory"); break; }
            gone = g;
        }
        if (!(gone[n] = strdup(p))) { s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory"); break; }
        n++;
    }
    sqlite3_finalize(st);
    if (s == PROVSCAN_OK && n > 0) {
        s = ps_sql_exec(idx, "BEGIN IMMEDIATE", err);
        for (size_t i = 0; i < n && s == PROVSCAN_OK; i++)
            s = delete_works(idx, "path = ?1", gone[i], removed, err);
        if (s == PROVSCAN_OK)
            s = touch_updated(idx, err);
        if (s == PROVSCAN_OK)
            s = ps_sql_exec(idx, "COMMIT", err);
        else
            sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++)
        free(gone[i]);
    free(gone);
    if (s == PROVSCAN_OK)
        s = ps_compact(idx, err);
    return s;
}

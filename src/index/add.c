/* add.c — `index add`: walk, skip unchanged files, fingerprint in parallel, commit in batches, import attribution. */
#include "index/index_internal.h"
#include "index/walk.h"
#include "common/csv.h"
#include "common/error.h"
#include "decode/decode.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <omp.h>

/* Files fingerprinted between two commits: large enough to keep every core busy and amortise a
 * commit, small enough that an interruption loses little work. */
#define ADD_BATCH 256

enum { F_TITLE, F_AUTHOR, F_LICENSE, F_SOURCE_URL, F_NOTE, F_COUNT };
static const char *const field_names[F_COUNT] = {"title", "author", "license", "source_url", "note"};

typedef struct attribution {
    char *path;
    char *field[F_COUNT]; /* NULL when empty */
    size_t row;           /* CSV row, so that the last row for a path wins */
} attribution;

typedef struct attribution_map {
    attribution *v;
    size_t n, cap;
} attribution_map;

static void map_free(attribution_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].path);
        for (int f = 0; f < F_COUNT; f++)
            free(m->v[i].field[f]);
    }
    free(m->v);
    memset(m, 0, sizeof *m);
}

static int cmp_attr(const void *a, const void *b)
{
    return strcmp(((const attribution *)a)->path, ((const attribution *)b)->path);
}

static int cmp_attr_row(const void *a, const void *b)
{
    int c = cmp_attr(a, b);
    if (c)
        return c;
    size_t x = ((const attribution *)a)->row, y = ((const attribution *)b)->row;
    return (x > y) - (x < y);
}

static const attribution *map_find(const attribution_map *m, const char *path)
{
    attribution key = {.path = (char *)path};
    return m->n ? bsearch(&key, m->v, m->n, sizeof key, cmp_attr) : NULL;
}

/* Reads the attribution CSV (docs/index-format.md): a header row naming the columns, "path"
 * required, paths relative to the CSV's own directory unless absolute. */
static provscan_status load_meta(const char *csv_path, attribution_map *map, provscan_error *err)
{
    FILE *f = fopen(csv_path, "r");
    if (!f)
        return ps_fail(err, PROVSCAN_E_IO, "%s: cannot open: %s", csv_path, strerror(errno));
    ps_csv csv = {.f = f};
    provscan_status s = PROVSCAN_OK;
    int col_path = -1, col[F_COUNT];
    for (int i = 0; i < F_COUNT; i++)
        col[i] = -1;
    int r = ps_csv_next(&csv);
    if (r <= 0) {
        s = ps_fail(err, PROVSCAN_E_ARG, "%s: empty or unreadable CSV (a header row with a 'path' column is required)", csv_path);
        goto done;
    }
    for (size_t i = 0; i < csv.nfields; i++) {
        const char *name = csv.fields[i];
        if (i == 0 && (unsigned char)name[0] == 0xEF && (unsigned char)name[1] == 0xBB && (unsigned char)name[2] == 0xBF)
            name += 3; /* UTF-8 byte-order mark */
        int known = 0;
        if (strcasecmp(name, "path") == 0) {
            col_path = (int)i;
            known = 1;
        }
        for (int k = 0; k < F_COUNT; k++)
            if (strcasecmp(name, field_names[k]) == 0 || (k == F_LICENSE && strcasecmp(name, "licence") == 0)) {
                col[k] = (int)i;
                known = 1;
            }
        if (!known) {
            s = ps_fail(err, PROVSCAN_E_ARG, "%s: unknown column '%s' (known: path, title, author, license, source_url, note)",
                        csv_path, name);
            goto done;
        }
    }
    if (col_path < 0) {
        s = ps_fail(err, PROVSCAN_E_ARG, "%s: no 'path' column in the header row", csv_path);
        goto done;
    }
    char *copy = strdup(csv_path);
    char *base = copy ? ps_path_absolute(dirname(copy)) : NULL;
    free(copy);
    if (!base) {
        s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
        goto done;
    }
    while ((r = ps_csv_next(&csv)) > 0) {
        if (csv.nfields == 1 && !csv.fields[0][0])
            continue; /* blank line */
        if ((size_t)col_path >= csv.nfields || !csv.fields[col_path][0]) {
            s = ps_fail(err, PROVSCAN_E_ARG, "%s:%ld: row without a path", csv_path, csv.line);
            break;
        }
        if (map->n == map->cap) {
            size_t cap = map->cap ? map->cap * 2 : 256;
            attribution *v = realloc(map->v, cap * sizeof *v);
            if (!v) {
                s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
                break;
            }
            map->v = v;
            map->cap = cap;
        }
        attribution *a = &map->v[map->n];
        memset(a, 0, sizeof *a);
        a->row = map->n;
        const char *p = csv.fields[col_path];
        if (p[0] == '/') {
            a->path = ps_path_absolute(p);
        } else {
            size_t len = strlen(base) + strlen(p) + 2;
            char *joined = malloc(len);
            if (joined) {
                snprintf(joined, len, "%s/%s", base, p);
                a->path = ps_path_absolute(joined);
                free(joined);
            }
        }
        if (!a->path) {
            s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
            break;
        }
        for (int k = 0; k < F_COUNT; k++)
            if (col[k] >= 0 && (size_t)col[k] < csv.nfields && csv.fields[col[k]][0])
                a->field[k] = strdup(csv.fields[col[k]]);
        map->n++;
    }
    if (s == PROVSCAN_OK && r < 0)
        s = ps_fail(err, PROVSCAN_E_ARG, "%s:%ld: malformed CSV (unterminated quote?)", csv_path, csv.line);
    free(base);
    if (s == PROVSCAN_OK) {
        /* Sort by path then row, and let the last row for a path win. */
        qsort(map->v, map->n, sizeof *map->v, cmp_attr_row);
        size_t w = 0;
        for (size_t i = 0; i < map->n; i++) {
            if (w > 0 && strcmp(map->v[w - 1].path, map->v[i].path) == 0) {
                attribution old = map->v[w - 1];
                free(old.path);
                for (int k = 0; k < F_COUNT; k++)
                    free(old.field[k]);
                map->v[w - 1] = map->v[i];
            } else {
                map->v[w++] = map->v[i];
            }
        }
        map->n = w;
    }
done:
    ps_csv_free(&csv);
    fclose(f);
    return s;
}

typedef struct add_item {
    const ps_walk_entry *file;
    int64_t existing_id; /* same path already indexed (content changed), else 0 */
    provscan_status status;
    provscan_error err;
    uint8_t sha256[32];
    provscan_fingerprint fp;
    provscan_image_info info;
    uint8_t *feat;        /* serialised local features (NULL if none) */
    size_t feat_size;
    uint32_t *words;      /* distinct visual words */
    int nwords, ndesc;
} add_item;

static void item_free(add_item *it)
{
    free(it->feat);
    free(it->words);
    it->feat = NULL;
    it->words = NULL;
}

static void fingerprint_item(add_item *it, uint64_t max_pixels)
{
    uint8_t *data = NULL;
    size_t size = 0;
    it->status = ps_read_file(it->file->path, &data, &size, &it->err);
    if (it->status != PROVSCAN_OK)
        return;
    if (ps_sha256(data, size, it->sha256) != 0) {
        free(data);
        it->status = ps_fail(&it->err, PROVSCAN_E_INTERNAL, "%s: SHA-256 failed", it->file->path);
        return;
    }
    provscan_load_options opts;
    provscan_load_options_for_mode(PROVSCAN_MODE_FAST, &opts);
    if (max_pixels)
        opts.max_pixels = max_pixels;
    provscan_image *img = NULL;
    it->status = provscan_image_load_memory(data, size, it->file->path, &opts, &img, &it->info, &it->err);
    free(data);
    if (it->status != PROVSCAN_OK)
        return;
    it->status = provscan_fingerprint_image(img, &it->fp);
    if (it->status == PROVSCAN_OK) {
        /* Local features from the same decoded pixels; an image too flat for any gives none. */
        ps_features f;
        if (ps_features_extract(img, NULL, NULL, &f) == PROVSCAN_OK) {
            it->ndesc = f.n;
            if (f.n > 0) {
                it->feat_size = ps_features_serialized_size(&f);
                it->feat = malloc(it->feat_size);
                it->nwords = ps_words_of(f.desc, f.n, &it->words);
                if (!it->feat || it->nwords < 0) {
                    item_free(it);
                    it->status = ps_fail(&it->err, PROVSCAN_E_NOMEM, "%s: out of memory", it->file->path);
                } else {
                    ps_features_serialize(&f, it->feat);
                }
            }
            ps_features_free(&f);
        }
    }
    if (it->status == PROVSCAN_E_TOO_SMALL)
        ps_fail(&it->err, it->status, "%s: image of %dx%d pixels is too small to fingerprint", it->file->path,
                provscan_image_width(img), provscan_image_height(img));
    else if (it->status != PROVSCAN_OK)
        ps_fail(&it->err, it->status, "%s: fingerprint failed", it->file->path);
    provscan_image_free(img);
}

typedef struct statements {
    sqlite3_stmt *by_path, *by_sha, *insert, *move, *old_attr, *tomb, *del, *attr;
} statements;

static void finalize_all(statements *q)
{
    sqlite3_stmt **all[] = {&q->by_path, &q->by_sha, &q->insert, &q->move, &q->old_attr, &q->tomb, &q->del, &q->attr};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

static provscan_status prepare_all(provscan_index *idx, statements *q, provscan_error *err)
{
    struct { sqlite3_stmt **st; const char *sql; } list[] = {
        {&q->by_path, "SELECT id, size, mtime_ns FROM works WHERE path = ?"},
        {&q->by_sha, "SELECT id, path FROM works WHERE sha256 = ?"},
        {&q->insert, "INSERT INTO works(path, sha256, size, mtime_ns, width, height, format, added_at, quality, pdq,"
                     " phash, dhash, segment, title, author, license, source_url, note)"
                     " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"},
        {&q->move, "UPDATE works SET path = ?, size = ?, mtime_ns = ? WHERE id = ?"},
        {&q->old_attr, "SELECT title, author, license, source_url, note FROM works WHERE id = ?"},
        {&q->tomb, "INSERT OR IGNORE INTO tombstones(work_id, segment) SELECT id, segment FROM works WHERE id = ?"},
        {&q->del, "DELETE FROM works WHERE id = ?"},
        {&q->attr, "UPDATE works SET title = ?2, author = ?3, license = ?4, source_url = ?5, note = ?6 WHERE path = ?1"
                   " AND (title IS NOT ?2 OR author IS NOT ?3 OR license IS NOT ?4 OR source_url IS NOT ?5 OR note IS NOT ?6)"},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (ps_sql_prepare(idx, list[i].sql, list[i].st, err) != PROVSCAN_OK) {
            finalize_all(q);
            return err ? err->status : PROVSCAN_E_INDEX;
        }
    return PROVSCAN_OK;
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

/* True if a work at old_path can be considered moved: its file is gone. */
static int path_gone(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 && errno == ENOENT;
}

/* Commits the fingerprinted items of one batch: a new segment for new records, catalog rows, all
 * in one transaction. The segment file is written before the commit and only becomes part of the
 * index when the catalog row naming it commits. */
static provscan_status commit_batch(provscan_index *idx, statements *q, add_item *items, size_t n,
                                    const attribution_map *map, provscan_add_stats *stats, provscan_error *err)
{
    ps_seg_builder b = {0};
    uint64_t added = 0, updated = 0, moved = 0, attributed = 0;
    char file[64] = "";
    provscan_status s = ps_sql_exec(idx, "BEGIN IMMEDIATE", err);
    int64_t seq = 0;
    if (s == PROVSCAN_OK) {
        sqlite3_stmt *st;
        s = ps_sql_prepare(idx, "SELECT coalesce(max(seq), 0) + 1 FROM segments", &st, err);
        if (s == PROVSCAN_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                seq = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
    }
    for (size_t i = 0; i < n && s == PROVSCAN_OK; i++) {
        add_item *it = &items[i];
        if (it->status != PROVSCAN_OK)
            continue;
        const attribution *a = map_find(map, it->file->path);
        char *carried[F_COUNT] = {0};
        if (it->existing_id) {
            /* New content at a known path: the old record dies, its attribution carries over. */
            sqlite3_bind_int64(q->old_attr, 1, it->existing_id);
            if (sqlite3_step(q->old_attr) == SQLITE_ROW)
                for (int k = 0; k < F_COUNT; k++)
                    if (sqlite3_column_text(q->old_attr, k))
                        carried[k] = strdup((const char *)sqlite3_column_text(q->old_attr, k));
            sqlite3_reset(q->old_attr);
            sqlite3_bind_int64(q->tomb, 1, it->existing_id);
            sqlite3_bind_int64(q->del, 1, it->existing_id);
            if (!step_done(q->tomb) || !step_done(q->del))
                s = ps_sql_fail(idx, err, "update");
            updated++;
        } else {
            /* Same content under a path that no longer exists: the file moved. */
            sqlite3_bind_blob(q->by_sha, 1, it->sha256, 32, SQLITE_STATIC);
            int64_t moved_id = 0;
            while (sqlite3_step(q->by_sha) == SQLITE_ROW) {
                const char *old = (const char *)sqlite3_column_text(q->by_sha, 1);
                if (old && path_gone(old)) {
                    moved_id = sqlite3_column_int64(q->by_sha, 0);
                    break;
                }
            }
            sqlite3_reset(q->by_sha);
            if (moved_id) {
                sqlite3_bind_text(q->move, 1, it->file->path, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q->move, 2, (sqlite3_int64)it->file->size);
                sqlite3_bind_int64(q->move, 3, it->file->mtime_ns);
                sqlite3_bind_int64(q->move, 4, moved_id);
                if (!step_done(q->move))
                    s = ps_sql_fail(idx, err, "update");
                moved++;
                continue;
            }
            added++;
        }
        if (s != PROVSCAN_OK) {
            for (int k = 0; k < F_COUNT; k++)
                free(carried[k]);
            break;
        }
        sqlite3_stmt *ins = q->insert;
        sqlite3_bind_text(ins, 1, it->file->path, -1, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 2, it->sha256, 32, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)it->file->size);
        sqlite3_bind_int64(ins, 4, it->file->mtime_ns);
        sqlite3_bind_int(ins, 5, it->info.source_width);
        sqlite3_bind_int(ins, 6, it->info.source_height);
        sqlite3_bind_text(ins, 7, it->info.format, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 8, ps_unix_time());
        sqlite3_bind_int(ins, 9, it->fp.quality);
        sqlite3_bind_blob(ins, 10, it->fp.pdq[0].bytes, 32, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 11, (sqlite3_int64)it->fp.phash);
        sqlite3_bind_int64(ins, 12, (sqlite3_int64)it->fp.dhash);
        sqlite3_bind_int64(ins, 13, seq);
        for (int k = 0; k < F_COUNT; k++) {
            const char *v = a ? a->field[k] : carried[k];
            if (v)
                sqlite3_bind_text(ins, 14 + k, v, -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(ins, 14 + k);
        }
        int ok = step_done(ins);
        sqlite3_clear_bindings(ins);
        if (ok && a)
            attributed++; /* set with the new record; the later UPDATE sees no change */
        for (int k = 0; k < F_COUNT; k++)
            free(carried[k]);
        if (!ok) {
            s = ps_sql_fail(idx, err, "insert");
            break;
        }
        if (ps_seg_builder_add(&b, it->fp.pdq[0].bytes, sqlite3_last_insert_rowid(idx->db), (uint8_t)it->fp.quality,
                               it->feat, it->feat_size, it->words, (uint32_t)(it->nwords > 0 ? it->nwords : 0),
                               (uint32_t)it->ndesc) != 0) {
            s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
            break;
        }
    }
    size_t records = b.n;
    uint32_t checksum = 0;
    if (s == PROVSCAN_OK && records > 0) {
        s = ps_seg_builder_write(idx, &b, seq, file, sizeof file, &checksum, err);
        if (s == PROVSCAN_OK) {
            sqlite3_stmt *st;
            s = ps_sql_prepare(idx, "INSERT INTO segments(seq, kind, file, records, checksum, created_at) VALUES(?, 1, ?, ?, ?, ?)",
                               &st, err);
            if (s == PROVSCAN_OK) {
                sqlite3_bind_int64(st, 1, seq);
                sqlite3_bind_text(st, 2, file, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, (sqlite3_int64)records);
                sqlite3_bind_int64(st, 4, checksum);
                sqlite3_bind_int64(st, 5, ps_unix_time());
                if (sqlite3_step(st) != SQLITE_DONE)
                    s = ps_sql_fail(idx, err, "insert");
                sqlite3_finalize(st);
            }
        }
    }
    if (s == PROVSCAN_OK && (added || updated || moved)) {
        char now[32];
        snprintf(now, sizeof now, "%lld", (long long)ps_unix_time());
        s = ps_meta_set(idx, "updated_at", now, err);
    }
    if (s == PROVSCAN_OK)
        s = ps_sql_exec(idx, "COMMIT", err);
    if (s != PROVSCAN_OK) {
        sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
        if (file[0]) {
            char *path = ps_index_file(idx, file);
            if (path)
                unlink(path);
            free(path);
        }
    } else {
        stats->added += added;
        stats->updated += updated;
        stats->moved += moved;
        stats->attribution += attributed;
    }
    ps_seg_builder_free(&b);
    return s;
}

static provscan_status apply_attribution(provscan_index *idx, statements *q, const attribution_map *map,
                                         provscan_add_stats *stats, provscan_error *err)
{
    if (!map->n)
        return PROVSCAN_OK;
    PS_TRY(ps_sql_exec(idx, "BEGIN IMMEDIATE", err));
    for (size_t i = 0; i < map->n; i++) {
        sqlite3_bind_text(q->attr, 1, map->v[i].path, -1, SQLITE_STATIC);
        for (int k = 0; k < F_COUNT; k++) {
            if (map->v[i].field[k])
                sqlite3_bind_text(q->attr, 2 + k, map->v[i].field[k], -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(q->attr, 2 + k);
        }
        if (!step_done(q->attr)) {
            sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
            return ps_sql_fail(idx, err, "update");
        }
        stats->attribution += (uint64_t)sqlite3_changes(idx->db);
    }
    return ps_sql_exec(idx, "COMMIT", err);
}

typedef struct walk_errors {
    const provscan_add_options *opts;
    provscan_add_stats *stats;
} walk_errors;

static void on_walk_error(const char *path, const provscan_error *e, void *user)
{
    walk_errors *w = user;
    w->stats->failed++;
    if (w->opts->on_error)
        w->opts->on_error(path, e, w->opts->user);
}

provscan_status provscan_index_add(provscan_index *idx, const char *const *paths, size_t npaths,
                                   const provscan_add_options *opts, provscan_add_stats *stats, provscan_error *err)
{
    ps_error_clear(err);
    provscan_add_options defaults = {0};
    if (!opts)
        opts = &defaults;
    memset(stats, 0, sizeof *stats);
    if (!idx->writable)
        return ps_fail(err, PROVSCAN_E_ARG, "%s: index opened read-only", idx->dir);
    ps_remove_orphans(idx);

    attribution_map map = {0};
    if (opts->meta_csv)
        PS_TRY(load_meta(opts->meta_csv, &map, err));
    ps_walk_list list;
    walk_errors we = {opts, stats};
    provscan_status s = ps_walk(paths, npaths, opts->follow_symlinks, &list, on_walk_error, &we, err);
    if (s != PROVSCAN_OK) {
        map_free(&map);
        return s;
    }
    stats->files = list.n + list.non_image;
    stats->non_image = list.non_image;
    statements q = {0};
    if ((s = prepare_all(idx, &q, err)) != PROVSCAN_OK) {
        ps_walk_free(&list);
        map_free(&map);
        return s;
    }
    add_item *items = malloc(ADD_BATCH * sizeof *items);
    if (!items)
        s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    int jobs = opts->jobs > 0 ? opts->jobs : omp_get_num_procs();
    provscan_add_progress progress = {.total = list.n};

    for (size_t start = 0; s == PROVSCAN_OK && start < list.n; start += ADD_BATCH) {
        size_t end = start + ADD_BATCH < list.n ? start + ADD_BATCH : list.n, n = 0;
        for (size_t i = start; i < end; i++) {
            const ps_walk_entry *f = &list.v[i];
            int64_t existing = 0;
            int unchanged = 0;
            sqlite3_bind_text(q.by_path, 1, f->path, -1, SQLITE_STATIC);
            if (sqlite3_step(q.by_path) == SQLITE_ROW) {
                existing = sqlite3_column_int64(q.by_path, 0);
                unchanged = (uint64_t)sqlite3_column_int64(q.by_path, 1) == f->size &&
                            sqlite3_column_int64(q.by_path, 2) == f->mtime_ns;
            }
            sqlite3_reset(q.by_path);
            if (unchanged) {
                stats->unchanged++;
                continue;
            }
            memset(&items[n], 0, sizeof items[n]);
            items[n].file = f;
            items[n].existing_id = existing;
            n++;
        }
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
        for (size_t i = 0; i < n; i++)
            fingerprint_item(&items[i], opts->max_pixels);
        s = commit_batch(idx, &q, items, n, &map, stats, err);
        for (size_t i = 0; i < n; i++)
            item_free(&items[i]);
        for (size_t i = 0; i < n; i++)
            if (items[i].status != PROVSCAN_OK) {
                stats->failed++;
                progress.failed++;
                if (opts->on_error)
                    opts->on_error(items[i].file->path, &items[i].err, opts->user);
            }
        if (s == PROVSCAN_OK && n >= ADD_BATCH / 2)
            s = ps_compact(idx, err);
        progress.done = end;
        progress.added = stats->added + stats->updated + stats->moved;
        if (opts->progress)
            opts->progress(&progress, opts->user);
    }
    if (s == PROVSCAN_OK)
        s = apply_attribution(idx, &q, &map, stats, err);
    if (s == PROVSCAN_OK)
        s = ps_compact(idx, err);
    finalize_all(&q);
    free(items);
    ps_walk_free(&list);
    map_free(&map);
    return s;
}

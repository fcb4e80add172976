/* compact.c — writing PDQ segments and merging them by size tier (log-structured, like an LSM tree). */
#include "index/index_internal.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

provscan_status ps_write_pdq_segment(provscan_index *idx, int64_t seq, const uint8_t *codes, const int64_t *ids,
                                     const uint8_t *quality, size_t n, char *file_name, size_t name_size,
                                     uint32_t *checksum, provscan_error *err)
{
    snprintf(file_name, name_size, "seg-%08lld.pdq", (long long)seq);
    char *path = ps_index_file(idx, file_name);
    if (!path)
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    ps_section_in sections[4] = {
        {PS_SEC_CODES, codes, (uint64_t)n * 32},
        {PS_SEC_IDS, ids, (uint64_t)n * 8},
        {PS_SEC_QUALITY, quality, (uint64_t)n},
    };
    int nsections = 3;
    ps_segment_algos algos = {PROVSCAN_PDQ_VERSION, PROVSCAN_PHASH_VERSION, PROVSCAN_DHASH_VERSION, 0,
                              (uint16_t)idx->hash_mode};
    provscan_status s = ps_segment_write(path, PS_KIND_PDQ, n, &algos, sections, nsections, checksum, err);
    free(path);
    return s;
}

static int tier_of(int64_t records)
{
    int t = 0;
    while (records >= 4) {
        records /= 4;
        t++;
    }
    return t;
}

/* Merges the segments seqs[0..n-1] into one, dropping records whose work is tombstoned. */
static provscan_status merge(provscan_index *idx, const int64_t *seqs, size_t n, provscan_error *err)
{
    if (n > 64)
        n = 64; /* the rest are merged in the next round */
    provscan_status s = ps_snapshot_load(idx, 0, err);
    if (s != PROVSCAN_OK)
        return s;
    size_t total = 0;
    for (size_t i = 0; i < idx->snap.n; i++)
        for (size_t j = 0; j < n; j++)
            if (idx->snap.seq[i] == seqs[j])
                total += idx->snap.segs[i].records;
    uint8_t *codes = malloc(total * 32 + 1), *quality = malloc(total + 1);
    int64_t *ids = malloc(total * 8 + 8);
    if (!codes || !quality || !ids) {
        free(codes); free(quality); free(ids);
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory merging segments");
    }
    size_t kept = 0;
    for (size_t i = 0; i < idx->snap.n; i++) {
        int chosen = 0;
        for (size_t j = 0; j < n; j++)
            chosen |= idx->snap.seq[i] == seqs[j];
        if (!chosen)
            continue;
        const ps_segment *seg = &idx->snap.segs[i];
        const uint8_t *c = ps_segment_section(seg, PS_SEC_CODES, NULL), *q = ps_segment_section(seg, PS_SEC_QUALITY, NULL);
        const int64_t *id = ps_segment_section(seg, PS_SEC_IDS, NULL);
        for (uint64_t r = 0; r < seg->records; r++) {
            if (ps_u64set_has(&idx->snap.tombstones, (uint64_t)id[r]))
                continue;
            memcpy(codes + kept * 32, c + r * 32, 32);
            ids[kept] = id[r];
            quality[kept] = q[r];
            kept++;
        }
    }
    /* Ids stay ascending: segments were written in id order and are merged in seq order, except
     * after moves; sort to keep the documented invariant. */
    for (size_t i = 1; i < kept; i++) {
        if (ids[i - 1] <= ids[i])
            continue;
        size_t j = i;
        int64_t id = ids[i];
        uint8_t code[32], qq = quality[i];
        memcpy(code, codes + i * 32, 32);
        while (j > 0 && ids[j - 1] > id) {
            ids[j] = ids[j - 1];
            quality[j] = quality[j - 1];
            memcpy(codes + j * 32, codes + (j - 1) * 32, 32);
            j--;
        }
        ids[j] = id;
        quality[j] = qq;
        memcpy(codes + j * 32, code, 32);
    }
    sqlite3_stmt *st;
    int64_t seq = 0;
    if ((s = ps_sql_prepare(idx, "SELECT coalesce(max(seq), 0) + 1 FROM segments", &st, err)) == PROVSCAN_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            seq = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    char file[64];
    uint32_t checksum = 0;
    if (s == PROVSCAN_OK)
        s = ps_write_pdq_segment(idx, seq, codes, ids, quality, kept, file, sizeof file, &checksum, err);
    free(codes);
    free(quality);
    free(ids);
    if (s != PROVSCAN_OK)
        return s;

    /* Swap in one transaction; the old files go only after the commit (readers holding them mapped
     * keep valid mappings; readers opening later see the new list). */
    char list[1024] = "";
    for (size_t j = 0; j < n; j++) {
        char item[32];
        snprintf(item, sizeof item, "%s%lld", j ? "," : "", (long long)seqs[j]);
        strncat(list, item, sizeof list - strlen(list) - 1);
    }
    char sql[1400];
    s = ps_sql_exec(idx, "BEGIN IMMEDIATE", err);
    if (s == PROVSCAN_OK) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO segments(seq, kind, file, records, checksum, created_at) VALUES(%lld, 1, '%s', %zu, %u, %lld);"
                 "UPDATE works SET segment = %lld WHERE segment IN (%s);"
                 "DELETE FROM tombstones WHERE segment IN (%s);"
                 "DELETE FROM segments WHERE seq IN (%s);",
                 (long long)seq, file, kept, checksum, (long long)ps_unix_time(), (long long)seq, list, list, list);
        s = ps_sql_exec(idx, sql, err);
    }
    if (s == PROVSCAN_OK)
        s = ps_sql_exec(idx, "COMMIT", err);
    if (s != PROVSCAN_OK) {
        sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
        char *path = ps_index_file(idx, file);
        if (path)
            unlink(path);
        free(path);
        return s;
    }
    ps_snapshot_free(&idx->snap);
    idx->snap_loaded = 0;
    ps_remove_orphans(idx);
    return PROVSCAN_OK;
}

provscan_status ps_compact(provscan_index *idx, provscan_error *err)
{
    for (int round = 0; round < 64; round++) {
        sqlite3_stmt *st;
        PS_TRY(ps_sql_prepare(idx, "SELECT seq, records FROM segments WHERE kind = 1 ORDER BY seq", &st, err));
        int64_t seqs[4096];
        int tiers[4096];
        size_t n = 0;
        int64_t records = 0;
        while (sqlite3_step(st) == SQLITE_ROW && n < 4096) {
            seqs[n] = sqlite3_column_int64(st, 0);
            int64_t r = sqlite3_column_int64(st, 1);
            records += r;
            tiers[n++] = tier_of(r);
        }
        sqlite3_finalize(st);
        int64_t dead = 0;
        PS_TRY(ps_sql_prepare(idx, "SELECT count(*) FROM tombstones", &st, err));
        if (sqlite3_step(st) == SQLITE_ROW)
            dead = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);

        /* Many dead records: rewrite everything. Otherwise merge the smallest tier that holds four
         * or more segments, so each record is rewritten O(log n) times over the life of an index. */
        if (n > 0 && dead > 0 && dead * 4 >= records) {
            PS_TRY(merge(idx, seqs, n, err));
            continue;
        }
        int chosen_tier = -1;
        for (int t = 0; t < 64 && chosen_tier < 0; t++) {
            size_t count = 0;
            for (size_t i = 0; i < n; i++)
                count += tiers[i] <= t;
            if (count >= 4)
                chosen_tier = t;
        }
        if (chosen_tier < 0)
            return PROVSCAN_OK;
        int64_t pick[4096];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (tiers[i] <= chosen_tier)
                pick[k++] = seqs[i];
        PS_TRY(merge(idx, pick, k, err));
    }
    return PROVSCAN_OK;
}

/* compact.c — building segment files (codes, ids, local features, inverted file) and merging them by size tier. */
#include "index/index_internal.h"
#include "common/error.h"
#include "search/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

int ps_seg_builder_add(ps_seg_builder *b, const uint8_t code[32], int64_t id, uint8_t quality, const uint8_t *feat,
                       size_t feat_size, const uint32_t *words, uint32_t nwords, uint32_t ndesc)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        uint8_t *codes = realloc(b->codes, cap * 32);
        if (codes)
            b->codes = codes;
        int64_t *ids = codes ? realloc(b->ids, cap * sizeof *ids) : NULL;
        if (ids)
            b->ids = ids;
        uint8_t *q = ids ? realloc(b->quality, cap) : NULL;
        if (q)
            b->quality = q;
        ps_feat_entry *e = q ? realloc(b->entries, cap * sizeof *e) : NULL;
        if (!e)
            return -1;
        b->entries = e;
        b->cap = cap;
    }
    if (!feat) {
        feat_size = 0;
        if (!words)
            nwords = ndesc = 0;
    }
    if (grow((void **)&b->feat, &b->feat_cap, b->feat_len + feat_size, 1) != 0 ||
        grow((void **)&b->words, &b->words_cap, b->words_len + nwords, sizeof *b->words) != 0)
        return -1;
    memcpy(b->codes + b->n * 32, code, 32);
    b->ids[b->n] = id;
    b->quality[b->n] = quality;
    b->entries[b->n] = (ps_feat_entry){b->feat_len, b->words_len, (uint32_t)feat_size, nwords, ndesc, 0};
    if (feat_size)
        memcpy(b->feat + b->feat_len, feat, feat_size);
    if (nwords)
        memcpy(b->words + b->words_len, words, nwords * sizeof *words);
    b->feat_len += feat_size;
    b->words_len += nwords;
    b->n++;
    return 0;
}

int ps_seg_builder_add_shared(ps_seg_builder *b, const uint8_t code[32], int64_t id, uint8_t quality,
                              size_t same_features_as, const uint32_t *words, uint32_t nwords, uint32_t ndesc)
{
    if (same_features_as >= b->n)
        return -1;
    ps_feat_entry shared = b->entries[same_features_as];
    if (ps_seg_builder_add(b, code, id, quality, NULL, 0, words, nwords, ndesc) != 0)
        return -1;
    ps_feat_entry *e = &b->entries[b->n - 1];
    e->data_offset = shared.data_offset;
    e->data_size = shared.data_size;
    return 0;
}

void ps_seg_builder_free(ps_seg_builder *b)
{
    free(b->codes);
    free(b->ids);
    free(b->quality);
    free(b->entries);
    free(b->feat);
    free(b->words);
    memset(b, 0, sizeof *b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int ps_words_in_lanes(const uint8_t *desc, int n, const uint16_t *lanes, int nlanes, uint32_t **words,
                      uint8_t **lane_tf)
{
    *words = NULL;
    if (lane_tf)
        *lane_tf = NULL;
    const ps_vocab *v = ps_vocab_builtin();
    if (!v || n <= 0)
        return 0;
    /* (word, descriptor) pairs in word order: a word's descriptors are adjacent */
    uint64_t *order = malloc((size_t)n * sizeof *order);
    uint32_t *w = malloc((size_t)n * sizeof *w);
    uint8_t *tf = lanes ? calloc((size_t)n, (size_t)nlanes) : NULL;
    if (!order || !w || (lanes && !tf)) {
        free(order);
        free(w);
        free(tf);
        return -1;
    }
    for (int i = 0; i < n; i++)
        order[i] = (uint64_t)ps_vocab_word(v, desc + (size_t)i * PS_DESC_BYTES) << 32 | (uint32_t)i;
    qsort(order, (size_t)n, sizeof *order, cmp_u64);
    int k = 0;
    for (int i = 0; i < n;) {
        uint32_t word = (uint32_t)(order[i] >> 32);
        int j = i;
        while (j < n && (uint32_t)(order[j] >> 32) == word)
            j++;
        for (int d = i; lanes && d < j; d++)
            for (int lane = 0; lane < nlanes; lane++)
                if (lanes[(uint32_t)order[d]] >> lane & 1 && tf[(size_t)k * nlanes + lane] < 255)
                    tf[(size_t)k * nlanes + lane]++;
        uint32_t count = (uint32_t)(j - i) > 255 ? 255 : (uint32_t)(j - i);
        w[k++] = word << 8 | count;
        i = j;
    }
    free(order);
    *words = w;
    if (lane_tf)
        *lane_tf = tf;
    return k;
}

int ps_words_of(const uint8_t *desc, int n, uint32_t **words)
{
    return ps_words_in_lanes(desc, n, NULL, 0, words, NULL);
}

provscan_status ps_seg_builder_write(provscan_index *idx, const ps_seg_builder *b, int64_t seq, char *file_name,
                                     size_t name_size, uint32_t *checksum, provscan_error *err)
{
    snprintf(file_name, name_size, "seg-%08lld.pdq", (long long)seq);
    if (b->n >= (1u << 24))
        return ps_fail(err, PROVSCAN_E_ARG, "segment of %zu records exceeds the format's 16M", b->n);
    const ps_vocab *vocab = ps_vocab_builtin();
    size_t nv = vocab ? (size_t)ps_vocab_size(vocab) : 0;

    /* Inverted file: count postings per word, prefix sums, then fill in record order (so each
     * word's postings are ascending by record). */
    uint32_t *offsets = calloc(nv + 1, sizeof *offsets);
    uint32_t *postings = malloc((b->words_len ? b->words_len : 1) * sizeof *postings);
    if (!offsets || !postings) {
        free(offsets);
        free(postings);
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory building the inverted file");
    }
    for (size_t i = 0; i < b->words_len; i++) {
        uint32_t w = b->words[i] >> 8;
        if (w < nv)
            offsets[w + 1]++;
    }
    for (size_t w = 0; w < nv; w++)
        offsets[w + 1] += offsets[w];
    uint32_t *fill = malloc((nv ? nv : 1) * sizeof *fill);
    if (!fill) {
        free(offsets);
        free(postings);
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory building the inverted file");
    }
    memcpy(fill, offsets, nv * sizeof *fill);
    for (size_t r = 0; r < b->n; r++) {
        const uint32_t *w = b->words + b->entries[r].words_offset;
        for (uint32_t k = 0; k < b->entries[r].nwords; k++)
            if ((w[k] >> 8) < nv)
                postings[fill[w[k] >> 8]++] = (uint32_t)r << 8 | (w[k] & 0xFF);
    }
    free(fill);
    size_t npost = nv ? offsets[nv] : 0;

    /* Multi-index hashing tables when the segment is large enough for them to beat a scan at the
     * match radius (search/search.h decides). */
    void *mih = NULL;
    size_t mih_size = 0;
    int m, bits;
    if (ps_mih_choose(b->n, PS_MIH_RADIUS, &m, &bits) && (mih_size = ps_mih_size(b->n, m, bits)) > 0) {
        mih = aligned_alloc(64, (mih_size + 63) & ~(size_t)63);
        provscan_status ms = mih ? ps_mih_build(b->codes, b->n, m, bits, PS_MIH_RADIUS, 0, mih, mih_size, err)
                                 : ps_fail(err, PROVSCAN_E_NOMEM, "out of memory building search tables");
        if (ms != PROVSCAN_OK) {
            free(mih);
            free(offsets);
            free(postings);
            return ms;
        }
    }
    char *path = ps_index_file(idx, file_name);
    if (!path) {
        free(mih);
        free(offsets);
        free(postings);
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    }
    ps_section_in sections[9] = {
        {PS_SEC_CODES, b->codes, (uint64_t)b->n * 32},
        {PS_SEC_IDS, b->ids, (uint64_t)b->n * 8},
        {PS_SEC_QUALITY, b->quality, (uint64_t)b->n},
        {PS_SEC_FEAT_INDEX, b->entries, (uint64_t)b->n * sizeof(ps_feat_entry)},
        {PS_SEC_FEAT_DATA, b->feat, b->feat_len},
        {PS_SEC_FEAT_WORDS, b->words, (uint64_t)b->words_len * 4},
        {PS_SEC_INV_OFFSETS, offsets, (uint64_t)(nv + 1) * 4},
        {PS_SEC_INV_POSTINGS, postings, (uint64_t)npost * 4},
        {PS_SEC_MIH, mih, mih_size},
    };
    ps_segment_algos algos = {PROVSCAN_PDQ_VERSION, PROVSCAN_PHASH_VERSION, PROVSCAN_DHASH_VERSION,
                              PS_FEATURES_VERSION, (uint16_t)idx->hash_mode};
    provscan_status s = ps_segment_write(path, PS_KIND_PDQ, b->n, &algos, sections, mih ? 9 : 8, checksum, err);
    free(mih);
    free(path);
    free(offsets);
    free(postings);
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
    /* Collect the live records of the chosen segments, ordered by work id (the ids section's
     * invariant), then copy them into the builder in that order. */
    typedef struct { int64_t id; size_t seg; uint64_t rec; } ref;
    size_t total = 0;
    for (size_t i = 0; i < idx->snap.n; i++)
        for (size_t j = 0; j < n; j++)
            if (idx->snap.seq[i] == seqs[j])
                total += idx->snap.segs[i].records;
    ref *refs = malloc((total ? total : 1) * sizeof *refs);
    if (!refs)
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory merging segments");
    size_t kept = 0;
    for (size_t i = 0; i < idx->snap.n; i++) {
        int chosen = 0;
        for (size_t j = 0; j < n; j++)
            chosen |= idx->snap.seq[i] == seqs[j];
        if (!chosen)
            continue;
        const int64_t *id = ps_segment_section(&idx->snap.segs[i], PS_SEC_IDS, NULL);
        for (uint64_t r = 0; r < idx->snap.segs[i].records; r++)
            if (!ps_u64set_has(&idx->snap.tombstones, (uint64_t)id[r]))
                refs[kept++] = (ref){id[r], i, r};
    }
    /* insertion sort is fine: the runs are already sorted, so this is a merge of sorted runs */
    for (size_t i = 1; i < kept; i++) {
        ref x = refs[i];
        size_t j = i;
        while (j > 0 && refs[j - 1].id > x.id) {
            refs[j] = refs[j - 1];
            j--;
        }
        refs[j] = x;
    }
    ps_seg_builder b = {0};
    for (size_t i = 0; i < kept && s == PROVSCAN_OK; i++) {
        const ps_segment *seg = &idx->snap.segs[refs[i].seg];
        uint64_t r = refs[i].rec;
        const uint8_t *codes = ps_segment_section(seg, PS_SEC_CODES, NULL);
        const uint8_t *quality = ps_segment_section(seg, PS_SEC_QUALITY, NULL);
        ps_feat_entry e;
        const uint8_t *feat = NULL;
        const uint32_t *words = NULL;
        if (ps_segment_feat(seg, r, &e, &feat, &words) != 0) {
            s = ps_fail(err, PROVSCAN_E_INDEX, "%s: damaged feature entry in segment %lld", idx->dir,
                        (long long)idx->snap.seq[refs[i].seg]);
            break;
        }
        if (ps_seg_builder_add(&b, codes + r * 32, refs[i].id, quality[r], feat, e.data_size, words, e.nwords,
                               e.ndesc) != 0)
            s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory merging segments");
    }
    free(refs);
    sqlite3_stmt *st;
    int64_t seq = 0;
    if (s == PROVSCAN_OK && (s = ps_sql_prepare(idx, "SELECT coalesce(max(seq), 0) + 1 FROM segments", &st, err)) == PROVSCAN_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            seq = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    char file[64];
    uint32_t checksum = 0;
    if (s == PROVSCAN_OK)
        s = ps_seg_builder_write(idx, &b, seq, file, sizeof file, &checksum, err);
    size_t records = b.n;
    ps_seg_builder_free(&b);
    if (s != PROVSCAN_OK)
        return s;

    /* Swap in one transaction; the old files go only after the commit (readers holding them mapped
     * keep valid mappings; readers opening later see the new list). */
    /* at most 64 seqs of at most 20 characters and a comma each: the list cannot be cut */
    char list[64 * 21 + 1] = "";
    size_t used = 0;
    for (size_t j = 0; j < n; j++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%lld", j ? "," : "", (long long)seqs[j]);
    s = ps_sql_exec(idx, "BEGIN IMMEDIATE", err);
    if (s == PROVSCAN_OK) {
        char *sql = sqlite3_mprintf(
            "INSERT INTO segments(seq, kind, file, records, checksum, created_at) VALUES(%lld, 1, %Q, %llu, %u, %lld);"
            "UPDATE works SET segment = %lld WHERE segment IN (%s);"
            "DELETE FROM tombstones WHERE segment IN (%s);"
            "DELETE FROM segments WHERE seq IN (%s);",
            (long long)seq, file, (unsigned long long)records, checksum, (long long)ps_unix_time(), (long long)seq,
            list, list, list);
        s = sql ? ps_sql_exec(idx, sql, err) : ps_fail(err, PROVSCAN_E_NOMEM, "out of memory merging segments");
        sqlite3_free(sql);
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

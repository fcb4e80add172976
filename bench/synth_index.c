/* synth_index.c — builds a large synthetic corpus index for scale benchmarks: real images' hashes and features, replicated with noise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "common/util.h"
#include "index/index_internal.h"
#include "index/local.h"
#include "index/walk.h"
#include "provscan.h"

/* usage: synth_index INDEX --works N --images DIR [--seed S]
 * The index gets N works in one segment. Work i takes the PDQ hash of real image i mod M with 40
 * random bits flipped (so hashes stay distinct, as different pictures' are) and that image's local
 * features (stored once per real image and shared), with 30 % of its visual words replaced by random
 * ones (so postings lists spread as a large real corpus's do). Catalog rows name synthetic paths
 * that do not exist on disk. What a query costs against it is what it costs against N real works. */

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct base {
    provscan_analysis a;
    uint8_t *feat;
    size_t feat_size;
    uint32_t *words;
    int nwords;
} base;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void print_walk_error(const char *path, const provscan_error *e, void *user)
{
    (void)path;
    (void)user;
    fprintf(stderr, "synth_index: %s\n", e->message);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *index = NULL;
    long works = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--works") && i + 1 < argc)
            works = atol(argv[++i]);
        else if (!strcmp(argv[i], "--images") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else
            index = argv[i];
    }
    if (!index || !dir || works <= 0) {
        fprintf(stderr, "usage: synth_index INDEX --works N --images DIR [--seed S]\n");
        return 2;
    }
    provscan_error err;
    provscan_init(&err);
    /* the real images: the image files of DIR in name order (symbolic links followed), so that
     * work i's source image does not depend on the order the file system lists them */
    ps_walk_list list = {0};
    const char *roots[] = {dir};
    if (ps_walk(roots, 1, 1, &list, print_walk_error, NULL, &err) != PROVSCAN_OK) {
        fprintf(stderr, "synth_index: %s\n", err.message);
        return 1;
    }
    size_t np = list.n;
    base *bases = calloc(np, sizeof *bases);
    int *ok = calloc(np, sizeof *ok);
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < np; i++) {
        provscan_error e2;
        if (provscan_analyze_file(list.v[i].path, 0, PROVSCAN_LOCAL_WORK, &bases[i].a, &e2) != PROVSCAN_OK ||
            !bases[i].a.local)
            continue;
        ps_features *f = &bases[i].a.local->f;
        bases[i].feat_size = ps_features_serialized_size(f);
        bases[i].feat = malloc(bases[i].feat_size);
        ps_features_serialize(f, bases[i].feat);
        bases[i].nwords = ps_words_of(f->desc, f->n, &bases[i].words);
        ok[i] = bases[i].nwords > 0;
    }
    size_t m = 0;
    for (size_t i = 0; i < np; i++)
        if (ok[i])
            bases[m++] = bases[i];
    fprintf(stderr, "synth_index: %zu real images with features\n", m);
    if (m == 0)
        return 1;

    if (provscan_index_create(index, &err) != PROVSCAN_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    provscan_index *idx;
    if (provscan_index_open(index, 1, &idx, &err) != PROVSCAN_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    const ps_vocab *vocab = ps_vocab_builtin();
    uint32_t nv = (uint32_t)ps_vocab_size(vocab);
    ps_seg_builder b = {0};
    sqlite3_stmt *ins;
    ps_sql_exec(idx, "BEGIN", &err);
    ps_sql_prepare(idx,
                   "INSERT INTO works(id, path, sha256, size, mtime_ns, width, height, format, added_at, quality, pdq,"
                   " phash, dhash, segment, title) VALUES(?, ?, ?, 0, 0, ?, ?, 'synthetic', 0, ?, ?, 0, 0, 1, ?)",
                   &ins, &err);
    uint32_t *words = malloc(4096 * sizeof *words);
    for (long i = 0; i < works; i++) {
        const base *src = &bases[i % (long)m];
        uint8_t code[32], sha[32];
        memcpy(code, src->a.fp.pdq[0].bytes, 32);
        for (int k = 0; k < 40; k++) {
            unsigned bit = (unsigned)(rng(&seed) % 256);
            code[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        for (int k = 0; k < 32; k++)
            sha[k] = (uint8_t)rng(&seed);
        int n = src->nwords;
        for (int k = 0; k < n; k++) {
            uint32_t w = src->words[k];
            if (rng(&seed) % 10 < 3)
                w = (uint32_t)(rng(&seed) % nv) << 8 | (w & 0xFF);
            words[k] = w;
        }
        qsort(words, (size_t)n, sizeof *words, cmp_u32);
        int kk = 0; /* merge words made equal by the replacement */
        for (int k = 0; k < n; k++) {
            if (kk > 0 && words[kk - 1] >> 8 == words[k] >> 8) {
                uint32_t c = (words[kk - 1] & 0xFF) + (words[k] & 0xFF);
                words[kk - 1] = (words[k] >> 8) << 8 | (c > 255 ? 255 : c);
            } else {
                words[kk++] = words[k];
            }
        }
        uint32_t ndesc = 0;
        for (int k = 0; k < kk; k++)
            ndesc += words[k] & 0xFF;
        int r = (size_t)i < m ? ps_seg_builder_add(&b, code, i + 1, (uint8_t)src->a.fp.quality, src->feat,
                                                   src->feat_size, words, (uint32_t)kk, ndesc)
                              : ps_seg_builder_add_shared(&b, code, i + 1, (uint8_t)src->a.fp.quality, (size_t)(i % (long)m),
                                                          words, (uint32_t)kk, ndesc);
        if (r != 0) {
            fprintf(stderr, "synth_index: out of memory at work %ld\n", i);
            return 1;
        }
        char path[64], title[64];
        snprintf(path, sizeof path, "/synthetic/%09ld.png", i);
        snprintf(title, sizeof title, "synthetic work %ld", i);
        sqlite3_bind_int64(ins, 1, i + 1);
        sqlite3_bind_text(ins, 2, path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 3, sha, 32, SQLITE_TRANSIENT);
        sqlite3_bind_int(ins, 4, src->a.info.source_width);
        sqlite3_bind_int(ins, 5, src->a.info.source_height);
        sqlite3_bind_int(ins, 6, src->a.fp.quality);
        sqlite3_bind_blob(ins, 7, code, 32, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 8, title, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            fprintf(stderr, "synth_index: insert failed: %s\n", sqlite3_errmsg(idx->db));
            return 1;
        }
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    char file[64];
    uint32_t checksum;
    uint64_t t0 = ps_now_ns();
    if (ps_seg_builder_write(idx, &b, 1, file, sizeof file, &checksum, &err) != PROVSCAN_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO segments(seq, kind, file, records, checksum, created_at) VALUES(1, 1, '%s', %ld, %u, 0)",
             file, works, checksum);
    if (ps_sql_exec(idx, sql, &err) != PROVSCAN_OK || ps_sql_exec(idx, "COMMIT", &err) != PROVSCAN_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    fprintf(stderr, "synth_index: %ld works in %s (segment written in %.1f s)\n", works, index, (ps_now_ns() - t0) / 1e9);
    provscan_index_close(idx);
    return 0;
}

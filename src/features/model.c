/* model.c — the versioned model files: learned sampling pattern and binary-word vocabulary (parse, validate, serialise, built-ins). */
#include "features/features_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "cpu/kernels.h"
#include "decode/decode.h"

/* Common header: magic[8], u32 version, u32 payload size, u64 FNV-1a-64 of the payload. */
#define HDR 24
#define MAX_MODEL_BYTES (64u << 20)

static provscan_status check_header(const uint8_t *data, size_t size, const char *name, const char *magic,
                                    uint32_t version, const uint8_t **payload, size_t *psize, provscan_error *err)
{
    if (!data || size < HDR)
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: model file too short (%zu bytes)", name, size);
    if (memcmp(data, magic, 8) != 0)
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: not a provscan %s model file (bad magic)", name,
                       magic[2] == 'P' ? "pattern" : "vocabulary");
    uint32_t v = ps_rd32(data + 8), n = ps_rd32(data + 12);
    if (v != version)
        return ps_fail(err, PROVSCAN_E_VERSION, "%s: model format version %u, this build reads version %u", name, v,
                       version);
    if ((uint64_t)n + HDR != size)
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: payload size %u does not match the file size %zu", name, n,
                       size);
    if (ps_fnv1a64(data + HDR, n) != ps_rd64(data + 16))
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: checksum mismatch (file damaged)", name);
    *payload = data + HDR;
    *psize = n;
    return PROVSCAN_OK;
}

static uint8_t *with_header(const char *magic, uint32_t version, const uint8_t *payload, size_t n)
{
    uint8_t *out = malloc(HDR + n);
    if (!out)
        return NULL;
    memcpy(out, magic, 8);
    ps_wr32(out + 8, version);
    ps_wr32(out + 12, (uint32_t)n);
    ps_wr64(out + 16, ps_fnv1a64(payload, n));
    memcpy(out + HDR, payload, n);
    return out;
}

static provscan_status read_whole(const char *path, uint8_t **data, size_t *size, provscan_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ps_fail(err, PROVSCAN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_MODEL_BYTES) {
                free(buf);
                fclose(f);
                return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: larger than any model file (%u MiB)", path,
                               MAX_MODEL_BYTES >> 20);
            }
            size_t nc = cap ? 2 * cap : 65536;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                return ps_fail(err, PROVSCAN_E_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return ps_fail(err, PROVSCAN_E_IO, "%s: read error", path);
    }
    *data = buf;
    *size = n;
    return PROVSCAN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Pattern. Payload: u16 ntests (256), u8 radius (15), u8 flags (1: mirror-paired), 256 x int8[4].
 * ------------------------------------------------------------------------------------------- */
#define PATTERN_PAYLOAD (4 + 256 * 4)

static int tests_valid(const int8_t t[256][4])
{
    for (int i = 0; i < 256; i++) {
        for (int k = 0; k < 4; k += 2) {
            int x = t[i][k], y = t[i][k + 1];
            if (x * x + y * y > PS_PATCH_RADIUS * PS_PATCH_RADIUS)
                return 0;
        }
        if (t[i][0] == t[i][2] && t[i][1] == t[i][3])
            return 0;
        if (i & 1) {
            /* Mirror pairing: test 2i+1 is test 2i reflected about the x axis (docs/features.md). */
            const int8_t *a = t[i - 1], *b = t[i];
            if (b[0] != a[0] || b[1] != -a[1] || b[2] != a[2] || b[3] != -a[3])
                return 0;
        }
    }
    return 1;
}

provscan_status ps_feature_model_from_tests(const int8_t tests[256][4], ps_feature_model **out)
{
    *out = NULL;
    if (!tests_valid(tests))
        return PROVSCAN_E_ARG;
    ps_feature_model *m = malloc(sizeof *m);
    if (!m)
        return PROVSCAN_E_NOMEM;
    memcpy(m->tests, tests, sizeof m->tests);
    *out = m;
    return PROVSCAN_OK;
}

provscan_status ps_feature_model_parse(const uint8_t *data, size_t size, const char *name, ps_feature_model **out,
                                       provscan_error *err)
{
    *out = NULL;
    const uint8_t *p = NULL;
    size_t n = 0;
    PS_TRY(check_header(data, size, name, PS_PATTERN_MAGIC, PS_PATTERN_VERSION, &p, &n, err));
    if (n != PATTERN_PAYLOAD)
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: pattern payload of %zu bytes, expected %d", name, n,
                       PATTERN_PAYLOAD);
    if ((p[0] | p[1] << 8) != 256 || p[2] != PS_PATCH_RADIUS || p[3] != 1)
        return ps_fail(err, PROVSCAN_E_UNSUPPORTED, "%s: pattern of %d tests, radius %d, flags %d (this build needs "
                       "256 tests, radius %d, mirror-paired)", name, p[0] | p[1] << 8, p[2], p[3], PS_PATCH_RADIUS);
    int8_t t[256][4];
    memcpy(t, p + 4, sizeof t);
    if (!tests_valid(t))
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: pattern tests out of the patch or not mirror-paired", name);
    provscan_status st = ps_feature_model_from_tests((const int8_t(*)[4])t, out);
    if (st != PROVSCAN_OK)
        return ps_fail(err, st, "%s: out of memory", name);
    return PROVSCAN_OK;
}

provscan_status ps_feature_model_load(const char *path, ps_feature_model **out, provscan_error *err)
{
    if (!out || !path)
        return ps_fail(err, PROVSCAN_E_ARG, "feature model: no path");
    *out = NULL;
    uint8_t *data;
    size_t size;
    PS_TRY(read_whole(path, &data, &size, err));
    provscan_status st = ps_feature_model_parse(data, size, path, out, err);
    free(data);
    return st;
}

provscan_status ps_feature_model_serialize(const ps_feature_model *m, uint8_t **out, size_t *size)
{
    uint8_t payload[PATTERN_PAYLOAD];
    payload[0] = 0;
    payload[1] = 1; /* 256, little-endian */
    payload[2] = PS_PATCH_RADIUS;
    payload[3] = 1;
    memcpy(payload + 4, m->tests, 256 * 4);
    *out = with_header(PS_PATTERN_MAGIC, PS_PATTERN_VERSION, payload, sizeof payload);
    *size = HDR + sizeof payload;
    return *out ? PROVSCAN_OK : PROVSCAN_E_NOMEM;
}

uint64_t ps_feature_model_id(const ps_feature_model *m)
{
    return m ? ps_fnv1a64(m->tests, sizeof m->tests) : 0;
}

const int8_t (*ps_feature_model_tests(const ps_feature_model *m))[4]
{
    return (const int8_t(*)[4])m->tests;
}

void ps_feature_model_free(ps_feature_model *m)
{
    if (m && m != ps_feature_model_builtin())
        free(m);
}

static ps_feature_model *builtin_pattern;
static ps_vocab *builtin_vocab;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_init(void)
{
    provscan_error err;
    if (ps_builtin_pattern_size &&
        ps_feature_model_parse(ps_builtin_pattern, ps_builtin_pattern_size, "built-in pattern", &builtin_pattern,
                               &err) != PROVSCAN_OK)
        fprintf(stderr, "provscan: %s\n", err.message);
    if (ps_builtin_vocab_size &&
        ps_vocab_parse(ps_builtin_vocab, ps_builtin_vocab_size, "built-in vocabulary", &builtin_vocab, &err) !=
            PROVSCAN_OK)
        fprintf(stderr, "provscan: %s\n", err.message);
}

const ps_feature_model *ps_feature_model_builtin(void)
{
    pthread_once(&builtin_once, builtin_init);
    return builtin_pattern;
}

/* ---------------------------------------------------------------------------------------------
 * Vocabulary. Payload: u32 nnodes, branching, depth, nleaves; nnodes x 32 centres; nnodes x
 * (u32 first child, u8 child count).
 * ------------------------------------------------------------------------------------------- */
#define VOCAB_MAX_NODES (1u << 21)

provscan_status ps_vocab_parse(const uint8_t *data, size_t size, const char *name, ps_vocab **out,
                               provscan_error *err)
{
    *out = NULL;
    const uint8_t *p = NULL;
    size_t n = 0;
    PS_TRY(check_header(data, size, name, PS_VOCAB_MAGIC, PS_VOCAB_VERSION, &p, &n, err));
    if (n < 16)
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: vocabulary payload too short", name);
    uint32_t nn = ps_rd32(p), br = ps_rd32(p + 4), depth = ps_rd32(p + 8), nleaves = ps_rd32(p + 12);
    if (nn < 1 || nn > VOCAB_MAX_NODES || br < 2 || br > 64 || depth < 1 || depth > 8)
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: implausible vocabulary shape (%u nodes, branching %u, depth %u)",
                       name, nn, br, depth);
    if (n != 16 + (size_t)nn * 37)
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: vocabulary payload of %zu bytes, expected %zu", name, n,
                       16 + (size_t)nn * 37);
    ps_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return ps_fail(err, PROVSCAN_E_NOMEM, "%s: out of memory", name);
    v->nnodes = nn;
    v->branching = br;
    v->depth = depth;
    v->owned = 1;
    v->centres = malloc((size_t)nn * 32);
    v->first = malloc(sizeof(uint32_t) * nn);
    v->nchild = malloc(nn);
    v->leafid = malloc(sizeof(uint32_t) * nn);
    if (!v->centres || !v->first || !v->nchild || !v->leafid) {
        ps_vocab_free(v);
        return ps_fail(err, PROVSCAN_E_NOMEM, "%s: out of memory", name);
    }
    memcpy(v->centres, p + 16, (size_t)nn * 32);
    const uint8_t *q = p + 16 + (size_t)nn * 32;
    uint32_t leaves = 0;
    for (uint32_t i = 0; i < nn; i++) {
        v->first[i] = ps_rd32(q + 5 * (size_t)i);
        v->nchild[i] = q[5 * (size_t)i + 4];
        if (v->nchild[i]) {
            /* Children after their parent (breadth-first): descent always terminates. */
            if (v->nchild[i] < 2 || v->nchild[i] > br || v->first[i] <= i ||
                (uint64_t)v->first[i] + v->nchild[i] > nn) {
                ps_vocab_free(v);
                return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: vocabulary node %u has bad children", name, i);
            }
            v->leafid[i] = UINT32_MAX;
        } else {
            v->leafid[i] = leaves++;
        }
    }
    if (leaves != nleaves || v->nchild[0] == 0) {
        ps_vocab_free(v);
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: vocabulary has %u leaves, header says %u", name, leaves, nleaves);
    }
    v->nleaves = leaves;
    *out = v;
    return PROVSCAN_OK;
}

provscan_status ps_vocab_load(const char *path, ps_vocab **out, provscan_error *err)
{
    if (!out || !path)
        return ps_fail(err, PROVSCAN_E_ARG, "vocabulary: no path");
    *out = NULL;
    uint8_t *data;
    size_t size;
    PS_TRY(read_whole(path, &data, &size, err));
    provscan_status st = ps_vocab_parse(data, size, path, out, err);
    free(data);
    return st;
}

provscan_status ps_vocab_serialize(const ps_vocab_tree *t, uint8_t **out, size_t *size)
{
    size_t n = 16 + (size_t)t->nnodes * 37;
    uint8_t *p = malloc(n);
    if (!p)
        return PROVSCAN_E_NOMEM;
    uint32_t leaves = 0;
    for (uint32_t i = 0; i < t->nnodes; i++)
        leaves += t->nchild[i] == 0;
    ps_wr32(p, t->nnodes);
    ps_wr32(p + 4, t->branching);
    ps_wr32(p + 8, t->depth);
    ps_wr32(p + 12, leaves);
    memcpy(p + 16, t->centres, (size_t)t->nnodes * 32);
    uint8_t *q = p + 16 + (size_t)t->nnodes * 32;
    for (uint32_t i = 0; i < t->nnodes; i++) {
        ps_wr32(q + 5 * (size_t)i, t->first[i]);
        q[5 * (size_t)i + 4] = t->nchild[i];
    }
    *out = with_header(PS_VOCAB_MAGIC, PS_VOCAB_VERSION, p, n);
    free(p);
    *size = HDR + n;
    return *out ? PROVSCAN_OK : PROVSCAN_E_NOMEM;
}

const ps_vocab *ps_vocab_builtin(void)
{
    pthread_once(&builtin_once, builtin_init);
    return builtin_vocab;
}

void ps_vocab_free(ps_vocab *v)
{
    if (!v || v == builtin_vocab)
        return;
    free(v->centres);
    free(v->first);
    free(v->nchild);
    free(v->leafid);
    free(v);
}

uint64_t ps_vocab_id(const ps_vocab *v)
{
    if (!v)
        return 0;
    uint64_t h = ps_fnv1a64(v->centres, (size_t)v->nnodes * 32);
    return h ^ (ps_fnv1a64(v->first, sizeof(uint32_t) * v->nnodes) * 31) ^ ps_fnv1a64(v->nchild, v->nnodes);
}

int ps_vocab_size(const ps_vocab *v)
{
    return v ? (int)v->nleaves : 0;
}

int ps_vocab_word(const ps_vocab *v, const uint8_t desc[32])
{
    const ps_kernels *k = ps_kernels_get();
    uint32_t node = 0;
    uint16_t d[64];
    while (v->nchild[node]) {
        uint32_t f = v->first[node], nc = v->nchild[node];
        k->hamming256(desc, v->centres + 32 * (size_t)f, nc, d);
        uint32_t best = 0;
        for (uint32_t c = 1; c < nc; c++)
            if (d[c] < d[best])
                best = c;
        node = f + best;
    }
    return (int)v->leafid[node];
}

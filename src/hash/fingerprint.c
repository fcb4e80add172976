/* fingerprint.c — public fingerprint API: image or file to PDQ/pHash/dHash, hex form, distances. */
#include "hash/hash.h"
#include "common/error.h"
#include "cpu/kernels.h"
#include "decode/decode.h"
#include "decode/metadata.h"
#include "index/local.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fast mode decodes at the smallest size whose shorter side keeps this many pixels: PDQ samples
 * a 64x64 grid, and 4 source pixels per cell keep its hash within a few bits of full resolution
 * (measured in docs/hashes.md). */
#define PS_FAST_MIN_SIDE 256

void provscan_load_options_for_mode(provscan_hash_mode mode, provscan_load_options *opts)
{
    provscan_load_options_default(opts);
    if (mode == PROVSCAN_MODE_COMPATIBLE) {
        /* The PDQ reference decodes at full resolution, ignores EXIF orientation and drops alpha. */
        opts->min_side = 0;
        opts->autorotate = 0;
        opts->alpha = PROVSCAN_ALPHA_IGNORE;
        opts->want_grey = 0;
    } else {
        opts->min_side = PS_FAST_MIN_SIDE;
        opts->want_grey = 1;
    }
}

provscan_status provscan_fingerprint_image(const provscan_image *img, provscan_fingerprint *out)
{
    if (!img || !out)
        return PROVSCAN_E_ARG;
    int w = provscan_image_width(img), h = provscan_image_height(img);
    if (w < 5 || h < 5)
        return PROVSCAN_E_TOO_SMALL;
    float *luma = ps_luma_from_pixels(provscan_image_pixels(img), w, h, provscan_image_channels(img));
    if (!luma)
        return PROVSCAN_E_NOMEM;
    memset(out, 0, sizeof *out);
    provscan_status st = ps_phash_dhash_from_luma(luma, w, h, &out->phash, &out->dhash);
    if (st == PROVSCAN_OK)
        st = ps_pdq_from_luma(luma, w, h, img->full_width, img->full_height, out->pdq, &out->quality);
    free(luma);
    return st;
}

provscan_status provscan_fingerprint_file(const char *path, provscan_hash_mode mode, uint64_t max_pixels,
                                          provscan_fingerprint *out, provscan_image_info *info, provscan_error *err)
{
    provscan_load_options opts;
    provscan_load_options_for_mode(mode, &opts);
    if (max_pixels)
        opts.max_pixels = max_pixels;
    provscan_image *img = NULL;
    PS_TRY(provscan_image_load(path, &opts, &img, info, err));
    provscan_status st = provscan_fingerprint_image(img, out);
    int w = provscan_image_width(img), h = provscan_image_height(img);
    provscan_image_free(img);
    if (st == PROVSCAN_E_TOO_SMALL)
        return ps_fail(err, st, "%s: image of %dx%d pixels is too small to fingerprint (5x5 at least)", path, w, h);
    if (st != PROVSCAN_OK)
        return ps_fail(err, st, "%s: fingerprint failed: %s", path, provscan_error_name(st));
    return PROVSCAN_OK;
}

void provscan_pdq_to_hex(const provscan_pdq *h, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[h->bytes[i] >> 4];
        out[2 * i + 1] = digits[h->bytes[i] & 15];
    }
    out[64] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

provscan_status provscan_pdq_from_hex(const char *hex, provscan_pdq *out)
{
    if (!hex || !out || strlen(hex) != 64)
        return PROVSCAN_E_ARG;
    for (int i = 0; i < 32; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return PROVSCAN_E_ARG;
        out->bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    return PROVSCAN_OK;
}

int provscan_pdq_distance(const provscan_pdq *a, const provscan_pdq *b)
{
    uint16_t d;
    ps_kernels_get()->hamming256(a->bytes, b->bytes, 1, &d);
    return d;
}

int provscan_hash64_distance(uint64_t a, uint64_t b)
{
    return __builtin_popcountll(a ^ b);
}

int provscan_pdq_distance_dihedral(const provscan_pdq *a, const provscan_fingerprint *b, provscan_dihedral *which)
{
    uint16_t d[PROVSCAN_DIHEDRAL_COUNT];
    ps_kernels_get()->hamming256(a->bytes, b->pdq[0].bytes, PROVSCAN_DIHEDRAL_COUNT, d);
    int best = 0;
    for (int t = 1; t < PROVSCAN_DIHEDRAL_COUNT; t++)
        if (d[t] < d[best])
            best = t;
    if (which)
        *which = (provscan_dihedral)best;
    return d[best];
}

void ps_pdq_query_variants(const provscan_fingerprint *fp, uint8_t out[PS_PDQ_QUERY_VARIANTS * 32])
{
    for (int v = 0; v < PROVSCAN_DIHEDRAL_COUNT; v++) {
        memcpy(out + 32 * v, fp->pdq[v].bytes, 32);
        for (int b = 0; b < 32; b++)
            out[32 * (PROVSCAN_DIHEDRAL_COUNT + v) + b] = (uint8_t)~fp->pdq[v].bytes[b];
    }
}

int ps_pdq_nearest_variant(const provscan_fingerprint *query, const uint8_t code[32], int *variant)
{
    uint16_t d[PROVSCAN_DIHEDRAL_COUNT];
    ps_kernels_get()->hamming256(code, query->pdq[0].bytes, PROVSCAN_DIHEDRAL_COUNT, d); /* the 8 are contiguous */
    int best = 0, dist = d[0];
    for (int v = 1; v < PS_PDQ_QUERY_VARIANTS; v++) {
        /* popcount(~q ^ c) = 256 - popcount(q ^ c) */
        int dv = v < PROVSCAN_DIHEDRAL_COUNT ? d[v] : 256 - d[v - PROVSCAN_DIHEDRAL_COUNT];
        if (dv < dist) {
            dist = dv;
            best = v;
        }
    }
    if (variant)
        *variant = best;
    return dist;
}

const char *provscan_dihedral_name(provscan_dihedral d)
{
    static const char *const names[PROVSCAN_DIHEDRAL_COUNT] = {
        "original", "rot90", "rot180", "rot270", "flipx", "flipy", "flipplus1", "flipminus1",
    };
    return (unsigned)d < PROVSCAN_DIHEDRAL_COUNT ? names[d] : "unknown";
}

int provscan_provenance_declares_ai(const provscan_provenance *p)
{
    const char *t = p->digital_source_type;
    int ai_term = strstr(t, "lgorithmic") != NULL || strstr(t, "ynthetic") != NULL;
    return ai_term || p->generator_parameters || p->generator_prompt || p->generator_workflow;
}

provscan_status provscan_analyze_file(const char *path, uint64_t max_pixels, int want_local, provscan_analysis *out,
                                      provscan_error *err)
{
    ps_error_clear(err);
    memset(out, 0, sizeof *out);
    uint8_t *data = NULL;
    size_t size = 0;
    PS_TRY(ps_read_file(path, &data, &size, err));
    ps_metadata md;
    ps_metadata_scan(data, size, &md);
    provscan_provenance *p = &out->provenance;
    p->c2pa_manifest = md.c2pa_manifest;
    p->xmp_packet = md.xmp_packet;
    snprintf(p->digital_source_type, sizeof p->digital_source_type, "%s", md.source_type);
    snprintf(p->declared_in, sizeof p->declared_in, "%s", md.source_type_in);
    p->generator_parameters = (md.generator_chunks & PS_GEN_PARAMETERS) != 0;
    p->generator_prompt = (md.generator_chunks & PS_GEN_PROMPT) != 0;
    p->generator_workflow = (md.generator_chunks & PS_GEN_WORKFLOW) != 0;

    provscan_load_options opts;
    provscan_load_options_for_mode(PROVSCAN_MODE_FAST, &opts);
    if (max_pixels)
        opts.max_pixels = max_pixels;
    provscan_image *img = NULL;
    provscan_status st = provscan_image_load_memory(data, size, path, &opts, &img, &out->info, err);
    free(data);
    if (st != PROVSCAN_OK)
        return st;
    st = provscan_fingerprint_image(img, &out->fp);
    if (st == PROVSCAN_OK && want_local != PROVSCAN_LOCAL_NONE)
        st = ps_local_from_image(img, out->info.source_width, out->info.source_height,
                                 want_local == PROVSCAN_LOCAL_WORK ? PS_FEATURES_DEFAULT_MAX : PS_QUERY_FEATURES,
                                 &out->local);
    /* the whole query's analysis shrinks a large picture at least twice: its tiles see more of it */
    int large = out->info.source_width >= PROVSCAN_TILES_AUTO_SIDE || out->info.source_height >= PROVSCAN_TILES_AUTO_SIDE;
    if (st == PROVSCAN_OK && out->local &&
        (want_local == PROVSCAN_LOCAL_QUERY_TILES || (want_local == PROVSCAN_LOCAL_QUERY && large)))
        st = ps_local_add_tiles(out->local, img);
    if (st == PROVSCAN_OK && out->local && want_local != PROVSCAN_LOCAL_WORK && !out->info.had_alpha)
        st = ps_local_add_dark_background(out->local, img);
    int w = provscan_image_width(img), h = provscan_image_height(img);
    provscan_image_free(img);
    if (st == PROVSCAN_E_TOO_SMALL)
        return ps_fail(err, st, "%s: image of %dx%d pixels is too small to fingerprint (5x5 at least)", path, w, h);
    if (st != PROVSCAN_OK) {
        provscan_analysis_free(out);
        return ps_fail(err, st, "%s: analysis failed: %s", path, provscan_error_name(st));
    }
    return PROVSCAN_OK;
}

void provscan_analysis_free(provscan_analysis *a)
{
    if (a) {
        ps_local_free(a->local);
        a->local = NULL;
    }
}

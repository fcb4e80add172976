/* serialize.c — the fixed little-endian layout of one image's features in the index's feature store. */
#include "features/features_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Layout (docs/features.md):
 *   0  "PSFT"            4  u16 version   6  u16 flags (0)
 *   8  u32 width        12  u32 height   16  u32 n       20  u32 reserved (0)
 *  24  u64 FNV-1a-64 of bytes 32 .. end
 *  32  n x 32 descriptor bytes (first, so a 32-byte aligned record can be matched in place)
 *      n x 21 keypoint bytes: f32 x, y, size, angle, response; u8 octave                 */
#define FT_HDR 32
#define FT_KP 21
#define FT_MAX_N 100000
#define FT_MAX_SIDE (1 << 20)

size_t ps_features_serialized_size(const ps_features *f)
{
    return FT_HDR + (size_t)f->n * (PS_DESC_BYTES + FT_KP);
}

void ps_features_serialize(const ps_features *f, uint8_t *out)
{
    size_t n = (size_t)f->n;
    memcpy(out, PS_FEATURES_MAGIC, 4);
    out[4] = PS_FEATURES_VERSION & 0xFF;
    out[5] = PS_FEATURES_VERSION >> 8;
    out[6] = out[7] = 0;
    ps_wr32(out + 8, (uint32_t)f->width);
    ps_wr32(out + 12, (uint32_t)f->height);
    ps_wr32(out + 16, (uint32_t)n);
    ps_wr32(out + 20, 0);
    uint8_t *d = out + FT_HDR;
    if (n)
        memcpy(d, f->desc, n * PS_DESC_BYTES);
    uint8_t *k = d + n * PS_DESC_BYTES;
    for (size_t i = 0; i < n; i++, k += FT_KP) {
        const ps_keypoint *p = &f->kp[i];
        ps_wrf32(k, p->x);
        ps_wrf32(k + 4, p->y);
        ps_wrf32(k + 8, p->size);
        ps_wrf32(k + 12, p->angle);
        ps_wrf32(k + 16, p->response);
        k[20] = p->octave;
    }
    ps_wr64(out + 24, ps_fnv1a64(out + FT_HDR, n * (PS_DESC_BYTES + FT_KP)));
}

static provscan_status deserialize(const uint8_t *data, size_t size, int check_sum, ps_features *out)
{
    if (!out)
        return PROVSCAN_E_ARG;
    memset(out, 0, sizeof *out);
    if (!data || size < FT_HDR || memcmp(data, PS_FEATURES_MAGIC, 4) != 0)
        return PROVSCAN_E_CORRUPT;
    unsigned version = data[4] | data[5] << 8;
    if (version != PS_FEATURES_VERSION)
        return PROVSCAN_E_VERSION;
    uint32_t w = ps_rd32(data + 8), h = ps_rd32(data + 12), n = ps_rd32(data + 16);
    if (data[6] || data[7] || ps_rd32(data + 20) || w < 1 || h < 1 || w > FT_MAX_SIDE || h > FT_MAX_SIDE ||
        n > FT_MAX_N)
        return PROVSCAN_E_CORRUPT;
    if (size != FT_HDR + (size_t)n * (PS_DESC_BYTES + FT_KP))
        return PROVSCAN_E_CORRUPT;
    if (check_sum && ps_fnv1a64(data + FT_HDR, size - FT_HDR) != ps_rd64(data + 24))
        return PROVSCAN_E_CORRUPT;
    out->width = (int)w;
    out->height = (int)h;
    if (!n)
        return PROVSCAN_OK;
    out->kp = malloc(sizeof(ps_keypoint) * n);
    out->desc = malloc((size_t)n * PS_DESC_BYTES);
    if (!out->kp || !out->desc) {
        ps_features_free(out);
        return PROVSCAN_E_NOMEM;
    }
    memcpy(out->desc, data + FT_HDR, (size_t)n * PS_DESC_BYTES);
    const uint8_t *k = data + FT_HDR + (size_t)n * PS_DESC_BYTES;
    for (uint32_t i = 0; i < n; i++, k += FT_KP) {
        ps_keypoint *p = &out->kp[i];
        p->x = ps_rdf32(k);
        p->y = ps_rdf32(k + 4);
        p->size = ps_rdf32(k + 8);
        p->angle = ps_rdf32(k + 12);
        p->response = ps_rdf32(k + 16);
        p->octave = k[20];
        /* Everything downstream trusts these: reject what extraction can never produce. */
        if (!isfinite(p->x) || !isfinite(p->y) || !isfinite(p->size) || !isfinite(p->angle) ||
            !isfinite(p->response) || p->x < -1.0f || p->y < -1.0f || p->x > (float)w || p->y > (float)h ||
            !(p->size > 0.0f) || p->size > 1e6f || p->angle < 0.0f || p->angle > 6.2832f ||
            p->octave >= PS_MAX_LEVELS) {
            ps_features_free(out);
            out->width = out->height = 0;
            return PROVSCAN_E_CORRUPT;
        }
    }
    out->n = (int)n;
    return PROVSCAN_OK;
}

provscan_status ps_features_deserialize(const uint8_t *data, size_t size, ps_features *out)
{
    return deserialize(data, size, 1, out);
}

provscan_status ps_features_deserialize_covered(const uint8_t *data, size_t size, ps_features *out)
{
    return deserialize(data, size, 0, out);
}

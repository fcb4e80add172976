/* features_internal.h — private structures and helpers shared by the files of src/features/. */
#ifndef PROVSCAN_FEATURES_INTERNAL_H
#define PROVSCAN_FEATURES_INTERNAL_H

#include "common/util.h"
#include "features/features.h"

#define PS_PATCH_RADIUS 15 /* pattern points and the orientation disc lie within this radius */
#define PS_ANGLE_BINS 64   /* steering is quantised to 64 angles (5.6 degrees) */
#define PS_MAX_LEVELS 6    /* pyramid levels, each 1/sqrt(2) of the one before: 5.7x of scale */

struct ps_feature_model {
    int8_t tests[256][4]; /* x1, y1, x2, y2; bit = I(p1) < I(p2) */
};

struct ps_vocab {
    uint32_t nnodes, branching, depth, nleaves;
    uint8_t *centres;  /* nnodes x 32 (the root's is unused) */
    uint32_t *first;   /* first child of each node */
    uint8_t *nchild;   /* 0 for leaves */
    uint32_t *leafid;  /* word id of each node (leaves only) */
    int owned;         /* arrays malloc'ed (loaded) rather than pointing into the embedded blob */
};

/* Embedded model blobs (generated at build time from models/ by tools/embed-model.c). */
extern const unsigned char ps_builtin_pattern[];
extern const size_t ps_builtin_pattern_size;
extern const unsigned char ps_builtin_vocab[];
extern const size_t ps_builtin_vocab_size;

/* Little-endian readers/writers for the file formats. */
static inline uint32_t ps_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ps_rd64(const uint8_t *p)
{
    return (uint64_t)ps_rd32(p) | (uint64_t)ps_rd32(p + 4) << 32;
}
static inline void ps_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void ps_wr64(uint8_t *p, uint64_t v)
{
    ps_wr32(p, (uint32_t)v);
    ps_wr32(p + 4, (uint32_t)(v >> 32));
}
static inline float ps_rdf32(const uint8_t *p)
{
    uint32_t u = ps_rd32(p);
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
static inline void ps_wrf32(uint8_t *p, float f)
{
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    ps_wr32(p, u);
}

/* Sets m's quadrilaterals and coverages from m->H: the query rectangle clipped to the box
 * (x0,y0)-(x1,y1), mapped to the work and clipped to its rectangle. */
void ps_match_set_region(ps_geo_match *m, int qw, int qh, int ww, int wh, double x0, double y0, double x1,
                         double y1);

/* Separable resampling of a grey image with a tent filter widened by the reduction factor (so a
 * reduction averages every input pixel; an enlargement is bilinear). */
void ps_resample_grey(const uint8_t *src, int sw, int sh, size_t sstride, uint8_t *dst, int dw, int dh,
                      size_t dstride);

#endif

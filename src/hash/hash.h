/* hash.h — internal entry points of the perceptual hashes (PDQ, pHash, dHash), all functions of luma pixels. */
#ifndef PROVSCAN_HASH_H
#define PROVSCAN_HASH_H

#include "provscan.h"

/* PDQ of a width x height float luma image: the 8 dihedral hashes and the quality. luma is used as
 * a work buffer and is overwritten. PROVSCAN_E_TOO_SMALL under 5 pixels a side.
 * full_width x full_height is the size of the picture before any shrink-on-load. When it equals
 * width x height this is exactly the PDQ reference; otherwise filter windows and sample positions
 * are those of the full-resolution picture, mapped onto the smaller one (docs/hashes.md). */
provscan_status ps_pdq_from_luma(float *luma, int width, int height, int full_width, int full_height,
                                 provscan_pdq out[PROVSCAN_DIHEDRAL_COUNT], int *quality);

/* A search compares a corpus hash with 16 variants of the query's: its 8 dihedral hashes, then the
 * same 8 with every bit inverted — the hashes of the picture with its tones inverted (a negative),
 * since inverting luma negates every PDQ coefficient and its median. Variant v is dihedral v % 8,
 * inverted when v >= 8. */
#define PS_PDQ_QUERY_VARIANTS (2 * PROVSCAN_DIHEDRAL_COUNT)

/* The 16 variant codes of a fingerprint, 32 bytes each, in variant order. */
void ps_pdq_query_variants(const provscan_fingerprint *fp, uint8_t out[PS_PDQ_QUERY_VARIANTS * 32]);

/* Distance from a corpus hash to the nearest of the query's 16 variants; *variant = the lowest
 * variant index at that distance (so a plain reading wins a tie with an inverted one). */
int ps_pdq_nearest_variant(const provscan_fingerprint *query, const uint8_t code[32], int *variant);

/* pHash and dHash (64 bits each) of a float luma image (not modified). Definitions: docs/hashes.md. */
provscan_status ps_phash_dhash_from_luma(const float *luma, int width, int height, uint64_t *phash, uint64_t *dhash);

/* Float luma of an 8-bit grey or RGB image, as PDQ defines it (caller frees). NULL if out of memory. */
float *ps_luma_from_pixels(const uint8_t *pixels, int width, int height, int channels);

#endif

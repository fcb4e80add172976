/* segment.h — immutable, checksummed, memory-mapped descriptor files of an index (format: docs/index-format.md). */
#ifndef PROVSCAN_SEGMENT_H
#define PROVSCAN_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "provscan.h"

#define PS_SEGMENT_MAGIC "PROVSEG"   /* 7 bytes + NUL */
#define PS_SEGMENT_VERSION 1
#define PS_SEGMENT_HEADER_BYTES 512
#define PS_SEGMENT_MAX_SECTIONS 16

/* What a segment holds. */
enum ps_segment_kind {
    PS_KIND_PDQ = 1,      /* PDQ codes of works, with their ids and quality (+ optional MIH tables) */
    PS_KIND_FEATURES = 2, /* local features of works */
};

/* Section ids. A segment of a kind must hold that kind's required sections. */
enum ps_section_id {
    PS_SEC_CODES = 1,    /* n x 32 bytes: PDQ hashes, exchange byte order */
    PS_SEC_IDS = 2,      /* n x int64: work ids, ascending */
    PS_SEC_QUALITY = 3,  /* n x uint8: PDQ quality */
    PS_SEC_MIH = 4,      /* multi-index hashing tables over CODES (src/search, docs/search.md) */
    PS_SEC_FEAT_INDEX = 16, /* features: per-work (id, first, count) table */
    PS_SEC_FEAT_KEYPOINTS = 17,
    PS_SEC_FEAT_DESCRIPTORS = 18,
    PS_SEC_FEAT_WORDS = 19,
    PS_SEC_FEAT_INVERTED = 20,
};

typedef struct ps_section_in {
    uint32_t id;
    const void *data;
    uint64_t size;
} ps_section_in;

/* Versions of the algorithms whose output a segment stores; a reader refuses a mismatch. */
typedef struct ps_segment_algos {
    uint16_t pdq, phash, dhash, features;
    uint16_t hash_mode; /* provscan_hash_mode the hashes were made in */
} ps_segment_algos;

/* Writes a segment atomically: into path + ".tmp", fsync, rename to path, fsync of the directory.
 * checksum receives the CRC-32C over the section checksums (recorded in the catalog). */
provscan_status ps_segment_write(const char *path, uint32_t kind, uint64_t records, const ps_segment_algos *algos,
                                 const ps_section_in *sections, int nsections, uint32_t *checksum,
                                 provscan_error *err);

typedef struct ps_segment {
    void *map;
    size_t map_size;
    uint32_t kind;
    uint64_t records;
    ps_segment_algos algos;
    uint32_t checksum;
    int nsections;
    struct { uint32_t id, crc; uint64_t offset, size; } sections[PS_SEGMENT_MAX_SECTIONS];
} ps_segment;

/* Maps a segment and validates its header, section table and sizes (and, when verify_data is set,
 * every section's CRC). Any inconsistency is PROVSCAN_E_INDEX with the reason; PROVSCAN_E_VERSION
 * for a newer format. expected_records/expected_checksum come from the catalog. */
provscan_status ps_segment_open(const char *path, uint32_t kind, uint64_t expected_records,
                                uint32_t expected_checksum, int verify_data, ps_segment *seg, provscan_error *err);
void ps_segment_close(ps_segment *seg);

/* The bytes of section id, or NULL (size 0) when absent. */
const void *ps_segment_section(const ps_segment *seg, uint32_t id, uint64_t *size);

#endif

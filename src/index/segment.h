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
    PS_SEC_FEAT_INDEX = 16,   /* n x ps_feat_entry: where each record's features and words are */
    PS_SEC_FEAT_DATA = 17,    /* serialised local features (ps_features_serialize), one blob per record */
    PS_SEC_FEAT_WORDS = 18,   /* per record, its distinct visual words: uint32 word << 8 | count, ascending */
    PS_SEC_INV_OFFSETS = 19,  /* inverted file: (vocabulary size + 1) x uint32, postings of word w are [o[w], o[w+1]) */
    PS_SEC_INV_POSTINGS = 20, /* uint32 record << 8 | count, ascending record within a word */
};

/* Where one record's local features are (PS_SEC_FEAT_INDEX entry, 32 bytes, little-endian). */
typedef struct ps_feat_entry {
    uint64_t data_offset;  /* into PS_SEC_FEAT_DATA */
    uint64_t words_offset; /* into PS_SEC_FEAT_WORDS, in uint32 units */
    uint32_t data_size;
    uint32_t nwords;       /* distinct words */
    uint32_t ndesc;        /* descriptors (the sum of the word counts) */
    uint32_t reserved;
} ps_feat_entry;

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

/* The local features (serialised) and visual words of record r. A record without features has
 * e->data_size == 0. Returns 0, or -1 when the entry points outside its sections (damage). */
int ps_segment_feat(const ps_segment *seg, uint64_t r, ps_feat_entry *e, const uint8_t **data, const uint32_t **words);

/* The bytes of section id, or NULL (size 0) when absent. */
const void *ps_segment_section(const ps_segment *seg, uint32_t id, uint64_t *size);

#endif

/* segment.c — writing and validating the immutable segment files of an index. */
#include "index/segment.h"
#include "common/error.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "segment files are little-endian; a big-endian port needs byte swapping here"
#endif

/* On-disk header, 512 bytes, little-endian (docs/index-format.md). */
typedef struct disk_section {
    uint32_t id, crc;
    uint64_t offset, size;
} disk_section;

typedef struct disk_header {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint64_t records;
    uint32_t kind;
    uint32_t nsections;
    uint16_t pdq_version, phash_version, dhash_version, features_version;
    uint16_t hash_mode, reserved16[3];
    uint32_t data_checksum;
    uint32_t reserved32[5];
    disk_section sections[PS_SEGMENT_MAX_SECTIONS];
    uint8_t pad[PS_SEGMENT_HEADER_BYTES - 72 - PS_SEGMENT_MAX_SECTIONS * 24 - 4];
    uint32_t header_crc; /* CRC-32C of every byte before it */
} disk_header;

_Static_assert(sizeof(disk_section) == 24, "section entry layout");
_Static_assert(sizeof(disk_header) == PS_SEGMENT_HEADER_BYTES, "header layout");

#define ALIGN 64

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

provscan_status ps_segment_write(const char *path, uint32_t kind, uint64_t records, const ps_segment_algos *algos,
                                 const ps_section_in *sections, int nsections, uint32_t *checksum,
                                 provscan_error *err)
{
    if (nsections < 0 || nsections > PS_SEGMENT_MAX_SECTIONS)
        return ps_fail(err, PROVSCAN_E_ARG, "%s: too many sections", path);
    disk_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, PS_SEGMENT_MAGIC, 8);
    h.version = PS_SEGMENT_VERSION;
    h.header_bytes = PS_SEGMENT_HEADER_BYTES;
    h.records = records;
    h.kind = kind;
    h.nsections = (uint32_t)nsections;
    h.pdq_version = algos->pdq;
    h.phash_version = algos->phash;
    h.dhash_version = algos->dhash;
    h.features_version = algos->features;
    h.hash_mode = algos->hash_mode;
    uint64_t offset = PS_SEGMENT_HEADER_BYTES;
    uint32_t all = 0;
    for (int i = 0; i < nsections; i++) {
        offset = (offset + ALIGN - 1) / ALIGN * ALIGN;
        h.sections[i].id = sections[i].id;
        h.sections[i].offset = offset;
        h.sections[i].size = sections[i].size;
        h.sections[i].crc = ps_crc32c(0, sections[i].data, sections[i].size);
        all = ps_crc32c(all, &h.sections[i].crc, 4);
        offset += sections[i].size;
    }
    h.data_checksum = all;
    h.header_crc = ps_crc32c(0, &h, offsetof(disk_header, header_crc));

    size_t tlen = strlen(path) + 5;
    char *tmp = malloc(tlen);
    if (!tmp)
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    snprintf(tmp, tlen, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        provscan_status st = ps_fail(err, PROVSCAN_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    static const uint8_t zeros[ALIGN];
    int bad = write_all(fd, &h, sizeof h) != 0;
    uint64_t pos = sizeof h;
    for (int i = 0; i < nsections && !bad; i++) {
        if (h.sections[i].offset > pos)
            bad = write_all(fd, zeros, (size_t)(h.sections[i].offset - pos)) != 0;
        if (!bad && sections[i].size)
            bad = write_all(fd, sections[i].data, (size_t)sections[i].size) != 0;
        pos = h.sections[i].offset + sections[i].size;
    }
    if (!bad)
        bad = fsync(fd) != 0;
    int saved = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    if (bad || rename(tmp, path) != 0) {
        if (!bad)
            saved = errno;
        unlink(tmp);
        provscan_status st = ps_fail(err, PROVSCAN_E_IO, "%s: cannot write: %s", path, strerror(saved));
        free(tmp);
        return st;
    }
    free(tmp);
    fsync_dir_of(path); /* the rename must reach the disk before the catalog names the file */
    *checksum = all;
    return PROVSCAN_OK;
}

static provscan_status bad(provscan_error *err, const char *path, const char *why)
{
    return ps_fail(err, PROVSCAN_E_INDEX, "%s: damaged segment file: %s", path, why);
}

provscan_status ps_segment_open(const char *path, uint32_t kind, uint64_t expected_records,
                                uint32_t expected_checksum, int verify_data, ps_segment *seg, provscan_error *err)
{
    memset(seg, 0, sizeof *seg);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ps_fail(err, errno == ENOENT ? PROVSCAN_E_INDEX : PROVSCAN_E_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return bad(err, path, "not a regular file");
    }
    if ((uint64_t)st.st_size < PS_SEGMENT_HEADER_BYTES) {
        close(fd);
        return bad(err, path, "shorter than its header");
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return ps_fail(err, PROVSCAN_E_IO, "%s: cannot map: %s", path, strerror(errno));
    seg->map = map;
    seg->map_size = (size_t)st.st_size;

    disk_header h;
    memcpy(&h, map, sizeof h);
    provscan_status result = PROVSCAN_OK;
#define CHECK(cond, why)                           \
    if (!(cond)) {                                 \
        result = bad(err, path, why);              \
        goto fail;                                 \
    }
    CHECK(memcmp(h.magic, PS_SEGMENT_MAGIC, 8) == 0, "wrong magic (not a provscan segment)");
    if (h.version != PS_SEGMENT_VERSION) {
        result = ps_fail(err, PROVSCAN_E_VERSION, "%s: segment format version %u, this provscan reads %u", path,
                         h.version, PS_SEGMENT_VERSION);
        goto fail;
    }
    CHECK(h.header_crc == ps_crc32c(0, &h, offsetof(disk_header, header_crc)), "header checksum mismatch");
    CHECK(h.header_bytes == PS_SEGMENT_HEADER_BYTES, "unexpected header size");
    CHECK(h.kind == kind, "segment of another kind");
    CHECK(h.records == expected_records, "record count differs from the catalog");
    CHECK(h.data_checksum == expected_checksum, "checksum differs from the catalog");
    CHECK(h.nsections <= PS_SEGMENT_MAX_SECTIONS, "too many sections");
    uint32_t all = 0;
    for (uint32_t i = 0; i < h.nsections; i++) {
        const disk_section *s = &h.sections[i];
        CHECK(s->offset % ALIGN == 0 && s->offset >= PS_SEGMENT_HEADER_BYTES, "misaligned section");
        CHECK(s->offset <= seg->map_size && s->size <= seg->map_size - s->offset, "section runs past the end");
        all = ps_crc32c(all, &s->crc, 4);
        if (verify_data)
            CHECK(ps_crc32c(0, (const uint8_t *)map + s->offset, s->size) == s->crc, "section data checksum mismatch");
        seg->sections[i].id = s->id;
        seg->sections[i].crc = s->crc;
        seg->sections[i].offset = s->offset;
        seg->sections[i].size = s->size;
    }
    CHECK(all == h.data_checksum, "section checksums do not add up");
    seg->kind = h.kind;
    seg->records = h.records;
    seg->nsections = (int)h.nsections;
    seg->checksum = h.data_checksum;
    seg->algos = (ps_segment_algos){h.pdq_version, h.phash_version, h.dhash_version, h.features_version, h.hash_mode};
    if (kind == PS_KIND_PDQ) {
        uint64_t n;
        CHECK(ps_segment_section(seg, PS_SEC_CODES, &n) && n == h.records * 32, "codes section has the wrong size");
        CHECK(ps_segment_section(seg, PS_SEC_IDS, &n) && n == h.records * 8, "ids section has the wrong size");
        CHECK(ps_segment_section(seg, PS_SEC_QUALITY, &n) && n == h.records, "quality section has the wrong size");
        if (ps_segment_section(seg, PS_SEC_FEAT_INDEX, &n)) {
            CHECK(n == h.records * sizeof(ps_feat_entry), "feature index has the wrong size");
            uint64_t noff, npost;
            const uint32_t *off = ps_segment_section(seg, PS_SEC_INV_OFFSETS, &noff);
            CHECK(off && noff >= 4 && noff % 4 == 0, "inverted file offsets missing");
            CHECK(ps_segment_section(seg, PS_SEC_FEAT_DATA, NULL) && ps_segment_section(seg, PS_SEC_FEAT_WORDS, NULL),
                  "feature sections missing");
            CHECK(ps_segment_section(seg, PS_SEC_INV_POSTINGS, &npost) && npost % 4 == 0, "postings missing");
            uint64_t words = noff / 4 - 1;
            CHECK(off[0] == 0 && off[words] == npost / 4, "inverted file offsets do not add up");
            for (uint64_t w = 0; w < words; w++)
                CHECK(off[w] <= off[w + 1], "inverted file offsets out of order");
        }
    }
#undef CHECK
    return PROVSCAN_OK;
fail:
    ps_segment_close(seg);
    return result;
}

void ps_segment_close(ps_segment *seg)
{
    if (seg->map)
        munmap(seg->map, seg->map_size);
    memset(seg, 0, sizeof *seg);
}

const void *ps_segment_section(const ps_segment *seg, uint32_t id, uint64_t *size)
{
    for (int i = 0; i < seg->nsections; i++)
        if (seg->sections[i].id == id) {
            if (size)
                *size = seg->sections[i].size;
            return (const uint8_t *)seg->map + seg->sections[i].offset;
        }
    if (size)
        *size = 0;
    return NULL;
}

int ps_segment_feat(const ps_segment *seg, uint64_t r, ps_feat_entry *e, const uint8_t **data, const uint32_t **words)
{
    memset(e, 0, sizeof *e);
    *data = NULL;
    *words = NULL;
    uint64_t nidx, ndata, nwords;
    const ps_feat_entry *entries = ps_segment_section(seg, PS_SEC_FEAT_INDEX, &nidx);
    if (!entries)
        return 0; /* a segment without local features */
    if (r >= seg->records)
        return -1;
    memcpy(e, &entries[r], sizeof *e);
    const uint8_t *d = ps_segment_section(seg, PS_SEC_FEAT_DATA, &ndata);
    const uint32_t *w = ps_segment_section(seg, PS_SEC_FEAT_WORDS, &nwords);
    nwords /= 4;
    if (e->data_offset > ndata || e->data_size > ndata - e->data_offset || e->words_offset > nwords ||
        e->nwords > nwords - e->words_offset)
        return -1;
    *data = d + e->data_offset;
    *words = w + e->words_offset;
    return 0;
}

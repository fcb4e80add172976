/* util.h — small shared helpers: checksums, content hashing, time, paths, growable buffers. */
#ifndef PROVSCAN_UTIL_H
#define PROVSCAN_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli) of data, continuing from crc (start with 0). */
uint32_t ps_crc32c(uint32_t crc, const void *data, size_t size);
/* 64-bit FNV-1a of data: the checksum of model files and serialised features. */
uint64_t ps_fnv1a64(const void *data, size_t size);

/* SHA-256 of data into out[32]. Returns 0, or -1 if the crypto library fails. */
int ps_sha256(const void *data, size_t size, uint8_t out[32]);
void ps_hex(const uint8_t *bytes, size_t n, char *out /* 2n+1 */);

/* Monotonic and wall-clock time. */
uint64_t ps_now_ns(void);
int64_t ps_unix_time(void);

/* An absolute, lexically normalised form of path ("." and ".." folded, repeated "/" merged);
 * symlinks are not resolved. Caller frees; NULL if out of memory or the cwd is unknown. */
char *ps_path_absolute(const char *path);

/* 64-bit FNV-1a of a string (for in-memory sets of paths). */
uint64_t ps_hash_string(const char *s);

/* A set of 64-bit keys (open addressing; key 0 is stored out of line). */
typedef struct ps_u64set {
    uint64_t *slots;
    size_t cap, count;
    int has_zero;
} ps_u64set;
int ps_u64set_add(ps_u64set *s, uint64_t key);       /* 1 added, 0 present, -1 no memory */
int ps_u64set_has(const ps_u64set *s, uint64_t key);
void ps_u64set_free(ps_u64set *s);

#endif

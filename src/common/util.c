/* util.c — checksums, SHA-256 (OpenSSL), time, path normalisation and a 64-bit key set. */
#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

uint64_t ps_fnv1a64(const void *data, size_t size)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Slicing-by-8: eight table look-ups per 8 bytes, about 1-2 GB/s, enough for checksumming files
 * that are read from disk anyway. */
uint32_t ps_crc32c(uint32_t crc, const void *data, size_t size)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (size && ((uintptr_t)p & 7)) {
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xFF];
        size--;
    }
    while (size >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= crc; /* little-endian load: the low four bytes meet the running CRC */
        crc = crc_table[7][v & 0xFF] ^ crc_table[6][(v >> 8) & 0xFF] ^ crc_table[5][(v >> 16) & 0xFF] ^
              crc_table[4][(v >> 24) & 0xFF] ^ crc_table[3][(v >> 32) & 0xFF] ^ crc_table[2][(v >> 40) & 0xFF] ^
              crc_table[1][(v >> 48) & 0xFF] ^ crc_table[0][v >> 56];
        p += 8;
        size -= 8;
    }
    while (size--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xFF];
    return ~crc;
}

int ps_sha256(const void *data, size_t size, uint8_t out[32])
{
    unsigned int len = 0;
    return EVP_Digest(data, size, out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

void ps_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

uint64_t ps_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t ps_unix_time(void)
{
    return (int64_t)time(NULL);
}

char *ps_path_absolute(const char *path)
{
    char *joined;
    if (path[0] == '/') {
        joined = strdup(path);
    } else {
        char *cwd = getcwd(NULL, 0);
        if (!cwd)
            return NULL;
        size_t n = strlen(cwd) + strlen(path) + 2;
        joined = malloc(n);
        if (joined)
            snprintf(joined, n, "%s/%s", cwd, path);
        free(cwd);
    }
    if (!joined)
        return NULL;
    /* Fold components in place: out never overtakes the read position. */
    char *out = joined, *p = joined;
    size_t len = 0;
    while (*p) {
        while (*p == '/')
            p++;
        char *end = strchr(p, '/');
        size_t clen = end ? (size_t)(end - p) : strlen(p);
        if (clen == 0)
            break;
        if (clen == 1 && p[0] == '.') {
            /* skip */
        } else if (clen == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--; /* drop the slash before the removed component */
        } else {
            out[len++] = '/';
            memmove(out + len, p, clen);
            len += clen;
        }
        p += clen;
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    return joined;
}

uint64_t ps_hash_string(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static size_t slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

static int grow(ps_u64set *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uint64_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < s->cap; i++) {
        uint64_t k = s->slots[i];
        if (!k)
            continue;
        size_t j = slot_of(k, cap);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = k;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int ps_u64set_add(ps_u64set *s, uint64_t key)
{
    if (key == 0) {
        int added = !s->has_zero;
        s->has_zero = 1;
        return added;
    }
    if ((s->count + 1) * 4 > s->cap * 3 && grow(s) != 0)
        return -1;
    size_t j = slot_of(key, s->cap);
    while (s->slots[j]) {
        if (s->slots[j] == key)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = key;
    s->count++;
    return 1;
}

int ps_u64set_has(const ps_u64set *s, uint64_t key)
{
    if (key == 0)
        return s->has_zero;
    if (!s->cap)
        return 0;
    size_t j = slot_of(key, s->cap);
    while (s->slots[j]) {
        if (s->slots[j] == key)
            return 1;
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}

void ps_u64set_free(ps_u64set *s)
{
    free(s->slots);
    memset(s, 0, sizeof *s);
}

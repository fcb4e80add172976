/* metadata.c — finds EXIF orientation, C2PA manifests, XMP DigitalSourceType and generator text chunks. */
#include "decode/metadata.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]; }

static const uint8_t *find(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    if (m == 0 || n < m)
        return NULL;
    const uint8_t *end = hay + n - m + 1, *first = needle;
    for (const uint8_t *p = hay; p < end; p++) {
        p = memchr(p, first[0], (size_t)(end - p));
        if (!p)
            return NULL;
        if (memcmp(p, needle, m) == 0)
            return p;
    }
    return NULL;
}

/* Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block; 0 if absent or malformed. */
static int exif_orientation(const uint8_t *t, size_t n)
{
    if (n < 8)
        return 0;
    int little = t[0] == 'I' && t[1] == 'I';
    if (!little && !(t[0] == 'M' && t[1] == 'M'))
        return 0;
#define U16(p) (little ? (unsigned)((p)[0] | (p)[1] << 8) : be16(p))
#define U32(p) (little ? le32(p) : be32(p))
    uint32_t ifd = U32(t + 4);
    if (ifd > n - 2 || ifd < 8)
        return 0;
    unsigned count = U16(t + ifd);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
        if (e + 12 > n)
            return 0;
        if (U16(t + e) == 0x0112 && U16(t + e + 2) == 3) {
            unsigned v = U16(t + e + 8);
            return (v >= 1 && v <= 8) ? (int)v : 0;
        }
    }
    return 0;
#undef U16
#undef U32
}

static int has_sd_parameters(const uint8_t *p, size_t n)
{
    /* Automatic1111 writes its parameters into EXIF UserComment, ASCII or UTF-16. */
    return find(p, n, "Steps: ", 7) || find(p, n, "S\0t\0e\0p\0s\0:\0", 12) || find(p, n, "\0S\0t\0e\0p\0s\0:", 12);
}

static void generator_key(ps_metadata *md, const uint8_t *key, size_t n)
{
    if (n == 10 && memcmp(key, "parameters", 10) == 0)
        md->generator_chunks |= PS_GEN_PARAMETERS;
    else if (n == 6 && memcmp(key, "prompt", 6) == 0)
        md->generator_chunks |= PS_GEN_PROMPT;
    else if (n == 8 && memcmp(key, "workflow", 8) == 0)
        md->generator_chunks |= PS_GEN_WORKFLOW;
}

/* Byte ranges holding C2PA payloads, to tell "declared in C2PA" from "declared in XMP". */
typedef struct { size_t begin[16], end[16]; int n; } ranges;

static void add_range(ranges *r, size_t b, size_t e)
{
    if (r->n < 16) {
        r->begin[r->n] = b;
        r->end[r->n] = e;
        r->n++;
    }
}

static void scan_jpeg(const uint8_t *d, size_t n, ps_metadata *md, ranges *c2pa)
{
    static const char xmp_sig[] = "http://ns.adobe.com/xap/1.0/";
    size_t pos = 2;
    while (pos + 4 <= n) {
        if (d[pos] != 0xFF)
            return;
        uint8_t m = d[pos + 1];
        if (m == 0xFF) { pos++; continue; }
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { pos += 2; continue; }
        if (m == 0xDA || m == 0xD9)
            return; /* metadata segments all come before the first scan */
        size_t len = be16(d + pos + 2);
        if (len < 2 || pos + 2 + len > n)
            return;
        const uint8_t *seg = d + pos + 4;
        size_t sn = len - 2;
        if (m == 0xE1 && sn >= 6 && memcmp(seg, "Exif\0\0", 6) == 0) {
            if (!md->orientation)
                md->orientation = exif_orientation(seg + 6, sn - 6);
            if (has_sd_parameters(seg, sn))
                md->generator_chunks |= PS_GEN_PARAMETERS;
        } else if (m == 0xE1 && sn >= sizeof xmp_sig && memcmp(seg, xmp_sig, sizeof xmp_sig) == 0) {
            md->xmp_packet = 1;
        } else if (m == 0xEB && sn >= 16 && seg[0] == 'J' && seg[1] == 'P') {
            /* APP11 carries JUMBF; a C2PA manifest store is labelled "c2pa" in its description box. */
            if (find(seg, sn < 96 ? sn : 96, "jumb", 4) && find(seg, sn < 128 ? sn : 128, "c2pa", 4))
                md->c2pa_manifest = 1;
            if (md->c2pa_manifest)
                add_range(c2pa, (size_t)(seg - d), (size_t)(seg - d) + sn);
        }
        pos += 2 + len;
    }
}

static void scan_png(const uint8_t *d, size_t n, ps_metadata *md, ranges *c2pa)
{
    if (n >= 24 && memcmp(d + 12, "IHDR", 4) == 0) {
        md->width = be32(d + 16);
        md->height = be32(d + 20);
    }
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t len = be32(d + pos);
        const uint8_t *type = d + pos + 4, *data = d + pos + 8;
        if (len > n - pos - 12)
            return;
        if (memcmp(type, "caBX", 4) == 0) {
            md->c2pa_manifest = 1;
            add_range(c2pa, (size_t)(data - d), (size_t)(data - d) + len);
        } else if (memcmp(type, "tEXt", 4) == 0 || memcmp(type, "iTXt", 4) == 0 || memcmp(type, "zTXt", 4) == 0) {
            const uint8_t *nul = memchr(data, 0, len < 80 ? len : 80);
            if (nul) {
                size_t klen = (size_t)(nul - data);
                generator_key(md, data, klen);
                if (klen == 17 && memcmp(data, "XML:com.adobe.xmp", 17) == 0)
                    md->xmp_packet = 1;
            }
        } else if (memcmp(type, "eXIf", 4) == 0 && !md->orientation) {
            md->orientation = exif_orientation(data, len);
        } else if (memcmp(type, "IDAT", 4) == 0 || memcmp(type, "IEND", 4) == 0) {
            /* text chunks may follow IDAT; keep walking (chunk walk is cheap) unless IEND */
            if (type[1] == 'E')
                return;
        }
        pos += 12 + (size_t)len;
    }
}

/* WebP canvas size from the first chunk: VP8X (24-bit sizes minus one), VP8L (14-bit packed), or
 * VP8 (the 14-bit sizes of the key frame header). */
static void webp_size(const uint8_t *d, size_t n, ps_metadata *md)
{
    if (n < 30)
        return;
    const uint8_t *c = d + 12, *p = d + 20;
    if (memcmp(c, "VP8X", 4) == 0) {
        md->width = 1 + (p[4] | p[5] << 8 | (uint32_t)p[6] << 16);
        md->height = 1 + (p[7] | p[8] << 8 | (uint32_t)p[9] << 16);
    } else if (memcmp(c, "VP8L", 4) == 0 && p[0] == 0x2F) {
        uint32_t bits = le32(p + 1);
        md->width = 1 + (bits & 0x3FFF);
        md->height = 1 + ((bits >> 14) & 0x3FFF);
    } else if (memcmp(c, "VP8 ", 4) == 0 && p[3] == 0x9D && p[4] == 0x01 && p[5] == 0x2A) {
        md->width = (p[6] | p[7] << 8) & 0x3FFF;
        md->height = (p[8] | p[9] << 8) & 0x3FFF;
    }
}

static void scan_riff(const uint8_t *d, size_t n, ps_metadata *md, ranges *c2pa)
{
    webp_size(d, n, md);
    size_t pos = 12;
    while (pos + 8 <= n) {
        uint32_t len = le32(d + pos + 4);
        if (len > n - pos - 8)
            return;
        const uint8_t *fourcc = d + pos, *data = d + pos + 8;
        if (memcmp(fourcc, "C2PA", 4) == 0) {
            md->c2pa_manifest = 1;
            add_range(c2pa, (size_t)(data - d), (size_t)(data - d) + len);
        } else if (memcmp(fourcc, "XMP ", 4) == 0) {
            md->xmp_packet = 1;
        } else if (memcmp(fourcc, "EXIF", 4) == 0 && !md->orientation) {
            size_t skip = (len >= 6 && memcmp(data, "Exif\0\0", 6) == 0) ? 6 : 0;
            md->orientation = exif_orientation(data + skip, len - skip);
        }
        pos += 8 + (size_t)len + (len & 1);
    }
}

static void scan_bmff(const uint8_t *d, size_t n, ps_metadata *md, ranges *c2pa)
{
    static const uint8_t c2pa_uuid[16] = {0xd8, 0xfe, 0xc3, 0xd6, 0x1b, 0x0e, 0x48, 0x3c,
                                          0x92, 0x97, 0x58, 0x28, 0x87, 0x7e, 0xc4, 0x81};
    static const uint8_t xmp_uuid[16] = {0xbe, 0x7a, 0xcf, 0xcb, 0x97, 0xa2, 0x42, 0xe8,
                                         0x9c, 0x71, 0x99, 0x94, 0x91, 0xe3, 0xaf, 0xac};
    size_t pos = 0;
    for (int boxes = 0; pos + 8 <= n && boxes < 4096; boxes++) {
        uint64_t len = be32(d + pos);
        size_t header = 8;
        if (len == 1) {
            if (pos + 16 > n)
                return;
            len = (uint64_t)be32(d + pos + 8) << 32 | be32(d + pos + 12);
            header = 16;
        } else if (len == 0) {
            len = n - pos;
        }
        if (len < header || len > n - pos)
            return;
        if (memcmp(d + pos + 4, "uuid", 4) == 0 && len >= header + 16) {
            const uint8_t *u = d + pos + header;
            if (memcmp(u, c2pa_uuid, 16) == 0) {
                md->c2pa_manifest = 1;
                add_range(c2pa, pos, pos + (size_t)len);
            } else if (memcmp(u, xmp_uuid, 16) == 0) {
                md->xmp_packet = 1;
            }
        }
        pos += (size_t)len;
    }
}

/* IPTC DigitalSourceType terms are written as a URI ending ".../digitalsourcetype/<term>", in XMP
 * and inside C2PA assertions (CBOR keeps strings as plain UTF-8), so one bounded search finds both. */
static void find_source_type(const uint8_t *d, size_t n, ps_metadata *md, const ranges *c2pa)
{
    static const char key[] = "digitalsourcetype/";
    const size_t klen = sizeof key - 1;
    size_t pos = 0;
    while (pos + klen < n) {
        const uint8_t *p = memchr(d + pos, 'd', n - pos);
        if (!p || (size_t)(p - d) + klen >= n)
            return;
        pos = (size_t)(p - d) + 1;
        if (strncasecmp((const char *)p, key, klen) != 0)
            continue;
        const uint8_t *t = p + klen;
        size_t len = 0;
        while (t + len < d + n && len < sizeof md->source_type - 1 && isalpha(t[len]))
            len++;
        if (len == 0)
            continue;
        int ai = find(t, len, "lgorithmic", 10) != NULL || find(t, len, "ynthetic", 8) != NULL;
        int have_ai = md->source_type[0] && (strstr(md->source_type, "lgorithmic") || strstr(md->source_type, "ynthetic"));
        if (md->source_type[0] && (have_ai || !ai))
            continue; /* keep the first term, but let an AI term replace a non-AI one */
        memcpy(md->source_type, t, len);
        md->source_type[len] = '\0';
        size_t off = (size_t)(p - d);
        const char *where = "xmp";
        for (int i = 0; i < c2pa->n; i++)
            if (off >= c2pa->begin[i] && off < c2pa->end[i])
                where = "c2pa";
        strcpy(md->source_type_in, where);
    }
}

void ps_metadata_scan(const uint8_t *data, size_t size, ps_metadata *md)
{
    memset(md, 0, sizeof *md);
    ranges c2pa = {.n = 0};
    if (size >= 4 && data[0] == 0xFF && data[1] == 0xD8)
        scan_jpeg(data, size, md, &c2pa);
    else if (size >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0)
        scan_png(data, size, md, &c2pa);
    else if (size >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0)
        scan_riff(data, size, md, &c2pa);
    else if (size >= 12 && memcmp(data + 4, "ftyp", 4) == 0)
        scan_bmff(data, size, md, &c2pa);
    else if (size >= 10 && (memcmp(data, "GIF87a", 6) == 0 || memcmp(data, "GIF89a", 6) == 0)) {
        md->width = data[6] | data[7] << 8; /* logical screen size */
        md->height = data[8] | data[9] << 8;
        return;
    } else
        return;
    find_source_type(data, size, md, &c2pa);
}

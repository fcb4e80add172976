/* mih.c — multi-index hashing over 256-bit codes: parameter choice, the position-independent blob, its validation, exact radius search. */
#include "search/search.h"
#include "common/error.h"
#include "cpu/kernels.h"

#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/*
 * Blob layout (docs/search.md has the full description). All integers little-endian, all offsets
 * relative to the blob's first byte, every section 64-byte aligned relative to it:
 *
 *   header, 64 bytes:
 *     0  char[8] magic "PSMIH256"      8 u32 version (1)         12 u32 header bytes (64)
 *    16  u64 n (records)              24 u32 m (tables)          28 u32 b (bits per substring)
 *    32  u32 max_radius               36 u32 flags (0)           40 u64 table bytes
 *    48  u64 total bytes              56 u64 reserved (0)
 *   then m tables, table t at 64 + t * table_bytes:
 *     u32 off[2^b + 1]   bucket k holds list entries off[k] .. off[k+1]-1 (off[0] = 0, off[2^b] = n),
 *                        padded with zeros to a multiple of 64 bytes
 *     u32 ids[n]         record indices grouped by bucket, ascending within a bucket, padded to 64
 *
 * Substring t of a code is bits t*b .. t*b+b-1, where bit i is bit (i mod 64) of the little-endian
 * 64-bit word i/64 of the code's 32 bytes (so bit 0 is the lowest bit of byte 0). With m*b < 256 the
 * last bits are not indexed; they still count in the verifying distance, so the search stays exact.
 */

/* Smallest corpus for which ps_mih_choose proposes tables. */
#define MIH_MIN_RECORDS ((size_t)1 << 15)

/* Records per build chunk (keys computed ahead) and the prefetch distance of the build's updates. */
#define BUILD_CHUNK 4096
#define BUILD_AHEAD 16

/* Table entries (offsets + ids) below which build, open and check stay on the calling thread. */
#define SERIAL_BELOW ((uint64_t)1 << 22)

#define MAGIC "PSMIH256"
#define VERSION 1u
#define HEADER_BYTES 64u

struct ps_mih {
    size_t n;
    int m, b, max_radius;
    const uint32_t *off[PS_MIH_MAX_TABLES];
    const uint32_t *ids[PS_MIH_MAX_TABLES];
    size_t bytes;  /* size of the blob in use */
    double load;   /* expected records in a probed bucket (data-aware), for the cost model */
};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define PS_BIG_ENDIAN 1
#else
#define PS_BIG_ENDIAN 0
#endif

static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if PS_BIG_ENDIAN
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if PS_BIG_ENDIAN
    v = __builtin_bswap32(v);
#endif
    return v;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t align64(uint64_t x)
{
    return (x + 63) & ~(uint64_t)63;
}

/* The code as four 64-bit words plus a zero word, so that a substring may read one word past its own. */
static inline void code_words(const uint8_t *c, uint64_t w[5])
{
    w[0] = le64(c);
    w[1] = le64(c + 8);
    w[2] = le64(c + 16);
    w[3] = le64(c + 24);
    w[4] = 0;
}

static inline uint32_t substring(const uint64_t w[5], int t, int b)
{
    int start = t * b, wi = start >> 6, sh = start & 63;
    uint64_t v = w[wi] >> sh;
    if (sh + b > 64) /* here sh > 0: b <= 32 */
        v |= w[wi + 1] << (64 - sh);
    return (uint32_t)(v & (((uint64_t)1 << b) - 1));
}

static int valid_params(size_t n, int m, int b)
{
    return n <= UINT32_MAX && m >= 1 && m <= PS_MIH_MAX_TABLES && b >= PS_MIH_MIN_BITS && b <= PS_MIH_MAX_BITS &&
           m * b <= 256;
}

/* Bytes of one table's offset section and of its list section. */
static uint64_t off_bytes(int b)
{
    return align64(4 * (((uint64_t)1 << b) + 1));
}

static uint64_t list_bytes(size_t n)
{
    return align64(4 * (uint64_t)n);
}

size_t ps_mih_size(size_t n, int m, int b)
{
    if (!valid_params(n, m, b))
        return 0;
    uint64_t total = HEADER_BYTES + (uint64_t)m * (off_bytes(b) + list_bytes(n));
    return total > SIZE_MAX ? 0 : (size_t)total;
}

/* ---- parameters and cost model ---------------------------------------------------------------- */

/* Number of b-bit keys within Hamming distance s of a key (the probes of one table). */
static double ball(int b, int s)
{
    double sum = 0, c = 1;
    for (int i = 0; i <= s && i <= b; i++) {
        sum += c;
        c = c * (b - i) / (i + 1);
    }
    return sum;
}

/* Sub-radius of table t for radius r over m tables (Norouzi et al.'s tightened pigeonhole: r = m*r' + a;
 * the first a+1 tables are searched at r', the others at r'-1, and -1 means the table is skipped). If
 * every table differed by more than its sub-radius, the distance would be at least
 * (a+1)(r'+1) + (m-a-1)r' = r+1, so any code within r is found in some table. */
static int sub_radius(int r, int m, int t)
{
    int rp = r / m, a = r % m;
    return t <= a ? rp : rp - 1;
}

/* Per-access costs in nanoseconds, fitted to measurements on the development machine (docs/search.md):
 * a probe reads one offset pair, a non-empty bucket one list line, a candidate one code line. The share
 * of them that miss the last-level cache (taken as 32 MB) pay DRAM latency, overlapped by prefetching. */
static void mih_unit_costs(double footprint, double *probe, double *list, double *cand)
{
    double hit = footprint > 32e6 ? 32e6 / footprint : 1.0;
    *probe = hit * 8.0 + (1 - hit) * 15.0;
    *list = hit * 4.0 + (1 - hit) * 10.0;
    *cand = hit * 8.0 + (1 - hit) * 15.0;
}

static double mih_cost_model(size_t n, int m, int b, int radius, double load, int nvar)
{
    if (radius < 0)
        return 0;
    double keys = ldexp(1.0, b), lambda = (double)n / keys;
    double probe, list, cand;
    double footprint = (double)n * (32 + 4.0 * m) + 4.0 * m * keys;
    mih_unit_costs(footprint, &probe, &list, &cand);
    double probes = 0;
    for (int t = 0; t < m; t++) {
        int s = sub_radius(radius, m, t);
        if (s >= 0)
            probes += ball(b, s);
    }
    double nonempty = probes * (1 - exp(-lambda));
    double cands = probes * (load > lambda ? load : lambda);
    return nvar * (probes * probe + nonempty * list + cands * cand);
}

double ps_mih_cost_ns(const ps_mih *mih, int nvar, int radius)
{
    return mih_cost_model(mih->n, mih->m, mih->b, radius, mih->load, nvar);
}

int ps_mih_choose(size_t n, int radius, int *m, int *b)
{
    *m = *b = 0;
    /* Below 2^15 records a batch brute-force pass costs a few microseconds per query: no tables. */
    if (n < MIH_MIN_RECORDS || n > UINT32_MAX || radius < 0 || radius > 255)
        return 0;
    double best = 0;
    for (int mm = 1; mm <= PS_MIH_MAX_TABLES; mm++) {
        int bb = 256 / mm < PS_MIH_MAX_BITS ? 256 / mm : PS_MIH_MAX_BITS;
        /* Offset tables within 64 bytes per record; with the codes (32) and the lists (4m) a record
         * must stay within 160 bytes resident. */
        while (bb >= PS_MIH_MIN_BITS && 4.0 * mm * ldexp(1.0, bb) > 64.0 * (double)n)
            bb--;
        if (bb < PS_MIH_MIN_BITS || 32.0 + 4.0 * mm + 4.0 * mm * ldexp(1.0, bb) / (double)n > 160.0)
            continue;
        double c = mih_cost_model(n, mm, bb, radius, 0, 1);
        if (*m == 0 || c < best) {
            best = c;
            *m = mm;
            *b = bb;
        }
    }
    /* Brute force at its best: a batch, the pass over the codes shared by many queries. */
    if (*m == 0 || best >= ps_brute_cost_ns(n, 1u << 20, 1)) {
        *m = *b = 0;
        return 0;
    }
    return 1;
}

/* ---- build ------------------------------------------------------------------------------------ */

provscan_status ps_mih_build(const uint8_t *codes, size_t n, int m, int b, int max_radius, int threads, void *blob,
                             size_t blob_size, provscan_error *err)
{
    if (PS_BIG_ENDIAN)
        return ps_fail(err, PROVSCAN_E_UNSUPPORTED, "MIH tables: big-endian hosts are not supported");
    if (!valid_params(n, m, b) || max_radius < 0 || max_radius > 256)
        return ps_fail(err, PROVSCAN_E_ARG, "MIH tables: bad parameters (n %zu, m %d, b %d, radius %d)", n, m, b,
                       max_radius);
    size_t size = ps_mih_size(n, m, b);
    if (!blob || blob_size < size || (n && !codes))
        return ps_fail(err, PROVSCAN_E_ARG, "MIH tables: need a buffer of %zu bytes", size);
    if ((uintptr_t)blob & 3)
        return ps_fail(err, PROVSCAN_E_ARG, "MIH tables: the buffer must be 4-byte aligned");
    uint8_t *base = blob;
    uint64_t ob = off_bytes(b), lb = list_bytes(n), tb = ob + lb;
    memset(base, 0, HEADER_BYTES);
    memcpy(base, MAGIC, 8);
    put32(base + 8, VERSION);
    put32(base + 12, HEADER_BYTES);
    put64(base + 16, n);
    put32(base + 24, (uint32_t)m);
    put32(base + 28, (uint32_t)b);
    put32(base + 32, (uint32_t)max_radius);
    put32(base + 36, 0);
    put64(base + 40, tb);
    put64(base + 48, size);
    size_t keys = (size_t)1 << b;
    /* Small tables are built on the calling thread (a team costs more than it saves). */
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads > 0 ? threads : omp_get_max_threads()) \
    if ((uint64_t)m * (n + keys) >= SERIAL_BELOW)
    for (int t = 0; t < m; t++) {
        uint8_t *tab = base + HEADER_BYTES + (size_t)t * tb;
        uint32_t *off = (uint32_t *)tab, *ids = (uint32_t *)(tab + ob);
        /* Counting sort by key: counts in off[key+1], prefix sums, then scatter with off[] as cursors
         * (records in ascending order, so each bucket lists them ascending), then shift back. Keys are
         * computed a chunk at a time so that the random counter and list updates can be prefetched:
         * without that, each of the 2n updates per table waits for DRAM. */
        uint32_t key[BUILD_CHUNK + BUILD_AHEAD];
        memset(tab, 0, (size_t)tb);
        for (int pass = 0; pass < 2; pass++) {
            for (size_t c0 = 0; c0 < n; c0 += BUILD_CHUNK) {
                size_t len = n - c0 < BUILD_CHUNK ? n - c0 : BUILD_CHUNK;
                uint64_t w[5];
                for (size_t j = 0; j < len; j++) {
                    code_words(codes + 32 * (c0 + j), w);
                    key[j] = substring(w, t, b);
                }
                if (pass == 0) {
                    for (size_t j = 0; j < len; j++) {
                        if (j + BUILD_AHEAD < len)
                            __builtin_prefetch(off + key[j + BUILD_AHEAD] + 1, 1);
                        off[key[j] + 1]++;
                    }
                } else {
                    /* Two-step prefetch: the cursor 2*AHEAD ahead, then the list slot it points to. */
                    for (size_t j = 0; j < len; j++) {
                        if (j + 2 * BUILD_AHEAD < len)
                            __builtin_prefetch(off + key[j + 2 * BUILD_AHEAD], 1);
                        if (j + BUILD_AHEAD < len)
                            __builtin_prefetch(ids + off[key[j + BUILD_AHEAD]], 1);
                        ids[off[key[j]]++] = (uint32_t)(c0 + j);
                    }
                }
            }
            if (pass == 0)
                for (size_t k = 1; k <= keys; k++)
                    off[k] += off[k - 1];
        }
        memmove(off + 1, off, keys * sizeof *off);
        off[0] = 0;
    }
    return PROVSCAN_OK;
}

/* ---- open, check ------------------------------------------------------------------------------ */

/* Structural checks of one table, which are what memory safety needs: offsets run monotonically from 0
 * to n and every record id is < n. Branch-free passes, so that opening runs at memory bandwidth. Returns
 * 0, 1 (offsets) or 2 (ids); *sq = sum of squared bucket sizes (< n^2 < 2^64 when valid). */
static int check_table(const uint32_t *off, const uint32_t *ids, size_t keys, size_t n, double *sq)
{
    if (off[0] != 0 || off[keys] != n)
        return 1;
    unsigned bad = 0;
    uint64_t s = 0;
    for (size_t k = 0; k < keys; k++) {
        uint32_t lo = off[k], hi = off[k + 1];
        bad |= lo > hi;
        s += (uint64_t)(hi - lo) * (hi - lo);
    }
    if (bad)
        return 1;
    for (size_t i = 0; i < n; i++)
        bad |= ids[i] >= n;
    if (bad)
        return 2;
    *sq = (double)s;
    return 0;
}

provscan_status ps_mih_open(const void *blob, size_t blob_size, size_t n, ps_mih **out, provscan_error *err)
{
    if (!out)
        return ps_fail(err, PROVSCAN_E_ARG, "MIH tables: no output pointer");
    *out = NULL;
    if (PS_BIG_ENDIAN)
        return ps_fail(err, PROVSCAN_E_UNSUPPORTED, "MIH tables: big-endian hosts are not supported");
    if (!blob)
        return ps_fail(err, PROVSCAN_E_ARG, "MIH tables: no blob");
    if ((uintptr_t)blob & 3)
        return ps_fail(err, PROVSCAN_E_ARG, "MIH tables: the blob must be 4-byte aligned");
    const uint8_t *p = blob;
    if (blob_size < HEADER_BYTES || memcmp(p, MAGIC, 8) != 0)
        return ps_fail(err, PROVSCAN_E_INDEX, "MIH tables: no MIH header (%zu bytes)", blob_size);
    uint32_t version = le32(p + 8);
    if (version != VERSION)
        return ps_fail(err, PROVSCAN_E_VERSION, "MIH tables: format version %" PRIu32 ", this build reads %u", version,
                       VERSION);
    uint64_t hn = le64(p + 16), tb = le64(p + 40), total = le64(p + 48), reserved = le64(p + 56);
    uint32_t hbytes = le32(p + 12), m = le32(p + 24), b = le32(p + 28), maxr = le32(p + 32), flags = le32(p + 36);
    if (flags != 0)
        return ps_fail(err, PROVSCAN_E_VERSION, "MIH tables: unknown flags 0x%" PRIx32, flags);
    if (hbytes != HEADER_BYTES || reserved != 0 || maxr > 256)
        return ps_fail(err, PROVSCAN_E_INDEX, "MIH tables: damaged header");
    if (hn != n)
        return ps_fail(err, PROVSCAN_E_INDEX, "MIH tables: built for %" PRIu64 " records, the corpus has %zu", hn, n);
    if (m < 1 || m > PS_MIH_MAX_TABLES || b < PS_MIH_MIN_BITS || b > PS_MIH_MAX_BITS || !valid_params(n, (int)m, (int)b))
        return ps_fail(err, PROVSCAN_E_INDEX, "MIH tables: bad parameters m %" PRIu32 ", b %" PRIu32, m, b);
    size_t size = ps_mih_size(n, (int)m, (int)b);
    if (size == 0 || tb != off_bytes((int)b) + list_bytes(n) || total != size)
        return ps_fail(err, PROVSCAN_E_INDEX, "MIH tables: sizes in the header do not match its parameters");
    if (blob_size < size)
        return ps_fail(err, PROVSCAN_E_INDEX, "MIH tables: truncated (%zu of %zu bytes)", blob_size, size);

    ps_mih *h = calloc(1, sizeof *h);
    if (!h)
        return ps_fail(err, PROVSCAN_E_NOMEM, "MIH tables: out of memory");
    h->n = n;
    h->m = (int)m;
    h->b = (int)b;
    h->max_radius = (int)maxr;
    h->bytes = size;
    size_t keys = (size_t)1 << b;
    for (uint32_t t = 0; t < m; t++) {
        const uint8_t *tab = p + HEADER_BYTES + (size_t)t * tb;
        h->off[t] = (const uint32_t *)tab;
        h->ids[t] = (const uint32_t *)(tab + off_bytes((int)b));
    }
    int bad[PS_MIH_MAX_TABLES];
    double sq[PS_MIH_MAX_TABLES];
#pragma omp parallel for schedule(dynamic, 1) if ((uint64_t)m * (n + keys) >= SERIAL_BELOW)
    for (int t = 0; t < (int)m; t++) {
        sq[t] = 0;
        bad[t] = check_table(h->off[t], h->ids[t], keys, n, &sq[t]);
    }
    double sqsum = 0;
    for (uint32_t t = 0; t < m; t++) {
        if (bad[t]) {
            free(h);
            if (bad[t] == 1)
                return ps_fail(err, PROVSCAN_E_INDEX, "MIH tables: table %" PRIu32 " offsets do not rise from 0 to n", t);
            return ps_fail(err, PROVSCAN_E_INDEX, "MIH tables: table %" PRIu32 " lists a record index >= n", t);
        }
        sqsum += sq[t];
    }
    /* Mean number of other records in a record's bucket: the expected bucket size a probe meets when
     * queries look like the data (equal to n / 2^b for uniform codes, larger for clustered ones). */
    h->load = n ? sqsum / ((double)n * m) - 1 : 0;
    *out = h;
    return PROVSCAN_OK;
}

provscan_status ps_mih_check(const ps_mih *mih, const uint8_t *codes, provscan_error *err)
{
    if (!mih || (mih->n && !codes))
        return ps_fail(err, PROVSCAN_E_ARG, "MIH check: no tables or codes");
    size_t keys = (size_t)1 << mih->b;
    int bad = -1;
#pragma omp parallel for schedule(dynamic, 1) if ((uint64_t)mih->m * (mih->n + keys) >= SERIAL_BELOW)
    for (int t = 0; t < mih->m; t++) {
        const uint32_t *off = mih->off[t], *ids = mih->ids[t];
        uint64_t w[5];
        for (size_t k = 0; k < keys; k++)
            for (uint32_t i = off[k]; i < off[k + 1]; i++) {
                code_words(codes + 32 * (size_t)ids[i], w);
                if (substring(w, t, mih->b) != k || (i > off[k] && ids[i] <= ids[i - 1])) {
#pragma omp critical(ps_mih_check)
                    if (bad < 0 || t < bad)
                        bad = t;
                    k = keys - 1;
                    break;
                }
            }
    }
    /* n entries (ps_mih_open), each id in its own key's bucket and strictly ascending within it: so each
     * record is listed exactly once per table, which is what exactness needs. */
    if (bad >= 0)
        return ps_fail(err, PROVSCAN_E_INDEX, "MIH tables: table %d lists a record under the wrong key or twice", bad);
    return PROVSCAN_OK;
}

void ps_mih_close(ps_mih *mih)
{
    free(mih);
}

void ps_mih_params(const ps_mih *mih, int *m, int *b, int *max_radius)
{
    if (m)
        *m = mih->m;
    if (b)
        *b = mih->b;
    if (max_radius)
        *max_radius = mih->max_radius;
}

/* ---- search ----------------------------------------------------------------------------------- */

/* The query is a software pipeline over three kinds of DRAM miss, all in flight at once: (1) a bucket
 * key's offset pair, prefetched AHEAD_OFF keys before it is read; (2) a non-empty bucket's first list
 * line, prefetched as soon as its offsets are read and consumed LAG_LIST buckets later; (3) a candidate's
 * code, prefetched as soon as its id is copied and verified LAG_CAND candidates later. Fusing the stages
 * in one loop keeps their latencies overlapped instead of paying each stage's ramp in turn. Chunks keep
 * every array in L1/L2. */
#define KEY_CHUNK 2048
#define CAND_CHUNK 2048
#define AHEAD_OFF 20
#define LAG_LIST 12
#define LAG_CAND 24
#define VERIFY_BATCH 16

typedef struct range {
    uint32_t t, lo, hi;
} range;

typedef struct scratch {
    uint64_t keys[KEY_CHUNK]; /* table << 32 | key */
    range ranges[KEY_CHUNK];
    uint32_t cand[CAND_CHUNK];
    uint16_t dist[CAND_CHUNK];
    size_t ncand, nver; /* candidates copied, verified */
    uint64_t probes, candidates;
} scratch;

typedef struct qctx {
    const ps_mih *mih;
    const ps_kernels *K;
    const uint8_t *codes;
    const uint8_t *q; /* the variant's code */
    uint32_t query;
    uint8_t variant;
    int radius;
    ps_hits *hits;
    provscan_status status;
} qctx;

/* Verifies candidates [nver, upto) with the full 256-bit distance. */
static void verify(qctx *c, scratch *s, size_t upto)
{
    size_t n = upto - s->nver;
    if (!n)
        return;
    c->K->hamming256_gather(c->q, c->codes, s->cand + s->nver, n, s->dist + s->nver);
    for (size_t i = s->nver; i < upto; i++)
        if (s->dist[i] <= c->radius && c->status == PROVSCAN_OK)
            c->status = ps_hits_push(c->hits, (ps_hit){c->query, s->cand[i], s->dist[i], c->variant});
    s->candidates += n;
    s->nver = upto;
}

/* Copies a bucket's record ids to the candidates, prefetching each one's code. */
static void take_range(qctx *c, scratch *s, const range *r)
{
    const uint32_t *ids = c->mih->ids[r->t];
    for (uint32_t i = r->lo; i < r->hi;) {
        if (s->ncand == CAND_CHUNK) {
            verify(c, s, s->ncand);
            s->ncand = s->nver = 0;
        }
        size_t room = CAND_CHUNK - s->ncand, take = r->hi - i < room ? r->hi - i : room;
        for (size_t k = 0; k < take; k++) {
            uint32_t id = ids[i + k];
            __builtin_prefetch(c->codes + 32 * (size_t)id);
            s->cand[s->ncand + k] = id;
        }
        s->ncand += take;
        i += (uint32_t)take;
    }
}

static inline void prefetch_offsets(const ps_mih *h, uint64_t key)
{
    const uint32_t *p = h->off[key >> 32] + (uint32_t)key;
    __builtin_prefetch(p);
    /* off[k+1] starts the next line once in 16. Unconditional on purpose: GCC 12 at -O2 deletes both
     * prefetches when this one sits under an `if` (dead-code elimination), halving the speed. */
    __builtin_prefetch(p + 1);
}

static void process_keys(qctx *c, scratch *s, size_t nk)
{
    const ps_mih *h = c->mih;
    size_t nr = 0, r = 0;
    for (size_t i = 0; i < nk && i < AHEAD_OFF; i++)
        prefetch_offsets(h, s->keys[i]);
    for (size_t i = 0; i < nk; i++) {
        if (i + AHEAD_OFF < nk)
            prefetch_offsets(h, s->keys[i + AHEAD_OFF]);
        uint32_t t = (uint32_t)(s->keys[i] >> 32), k = (uint32_t)s->keys[i];
        uint32_t lo = h->off[t][k], hi = h->off[t][k + 1];
        if (hi > lo) {
            __builtin_prefetch(h->ids[t] + lo);
            s->ranges[nr++] = (range){t, lo, hi};
            if (nr - r > LAG_LIST)
                take_range(c, s, &s->ranges[r++]);
            if (s->ncand - s->nver >= LAG_CAND + VERIFY_BATCH)
                verify(c, s, s->nver + VERIFY_BATCH);
        }
    }
    s->probes += nk;
    while (r < nr)
        take_range(c, s, &s->ranges[r++]);
}

/* One variant: every bucket within its table's sub-radius of the variant's substrings. */
static void search_variant(qctx *c, scratch *s, const uint32_t *masks, const size_t *nball)
{
    const ps_mih *h = c->mih;
    uint64_t w[5];
    code_words(c->q, w);
    size_t nk = 0;
    for (int t = 0; t < h->m; t++) {
        int sr = sub_radius(c->radius, h->m, t);
        if (sr < 0)
            continue;
        if (sr > h->b) /* the ball already holds every key */
            sr = h->b;
        uint64_t base = (uint64_t)t << 32;
        uint32_t key = substring(w, t, h->b);
        for (size_t i = 0, e = nball[sr]; i < e; i++) {
            s->keys[nk++] = base | (key ^ masks[i]);
            if (nk == KEY_CHUNK) {
                process_keys(c, s, nk);
                nk = 0;
            }
        }
    }
    process_keys(c, s, nk);
    verify(c, s, s->ncand);
    s->ncand = s->nver = 0;
}

static int cmp_hit_full(const void *pa, const void *pb)
{
    const ps_hit *a = pa, *b = pb;
    if (a->query != b->query)
        return a->query < b->query ? -1 : 1;
    if (a->record != b->record)
        return a->record < b->record ? -1 : 1;
    if (a->distance != b->distance)
        return a->distance < b->distance ? -1 : 1;
    return (a->variant > b->variant) - (a->variant < b->variant);
}

/* Sorts by (query, record, distance, variant) and keeps the first of each (query, record): a record
 * found through several tables or variants is reported once, at its smallest distance. */
static void dedup(ps_hits *hv, size_t from)
{
    ps_hit *v = hv->v + from;
    size_t n = hv->n - from, w = 0;
    if (n < 2)
        return;
    qsort(v, n, sizeof *v, cmp_hit_full);
    for (size_t i = 0; i < n; i++)
        if (w == 0 || v[w - 1].query != v[i].query || v[w - 1].record != v[i].record)
            v[w++] = v[i];
    hv->n = from + w;
}

provscan_status ps_mih_radius(const ps_mih *mih, const uint8_t *codes, size_t n, const uint8_t *queries, size_t nq,
                              int nvar, int radius, int threads, ps_hits *out, ps_search_stats *stats)
{
    if (!mih || mih->n != n)
        return PROVSCAN_E_ARG;
    if (radius > 256)
        radius = 256;
    const ps_kernels *K = ps_kernels_get();
    int T = threads > 0 ? threads : omp_get_max_threads();
    int b = mih->b, rmax = radius / mih->m; /* the largest sub-radius */
    if (rmax > b)
        rmax = b;
    /* All b-bit masks of popcount <= rmax, by popcount: the first nball[s] are the ball of radius s. */
    size_t nball[PS_MIH_MAX_BITS + 1];
    double total = ball(b, rmax);
    if (total > (double)(SIZE_MAX / sizeof(uint32_t)) / 2)
        return PROVSCAN_E_NOMEM;
    uint32_t *masks = malloc((size_t)total * sizeof *masks);
    if (!masks)
        return PROVSCAN_E_NOMEM;
    size_t nm = 0;
    masks[nm++] = 0;
    nball[0] = 1;
    for (int p = 1; p <= rmax; p++) {
        /* Gosper's hack: the next larger integer with the same number of set bits. */
        for (uint64_t v = ((uint64_t)1 << p) - 1; v < ((uint64_t)1 << b);) {
            masks[nm++] = (uint32_t)v;
            uint64_t t = v | (v - 1);
            v = (t + 1) | (((~t & (t + 1)) - 1) >> (__builtin_ctzll(v) + 1));
        }
        nball[p] = nm;
    }

    /* Tasks: whole queries when there are enough for every thread, else each query's variants split
     * into groups so that a single query also runs on all threads: four groups per thread, handed out
     * dynamically, so that a thread the OS preempts delays the query by one small group only. */
    size_t groups = nq >= (size_t)T ? 1 : (4 * (size_t)T + nq - 1) / nq;
    if (groups > (size_t)nvar)
        groups = (size_t)nvar;
    size_t ntasks = nq * groups;
    size_t base = out->n;
    uint64_t probes = 0, candidates = 0;
    int failed = PROVSCAN_OK;
    ps_hits *part = calloc((size_t)T, sizeof *part);
    if (!part) {
        free(masks);
        return PROVSCAN_E_NOMEM;
    }
    /* Under ~0.5 ms of estimated work the tasks run on the calling thread (same split, no team): see
     * PARALLEL_PAIRS in brute.c for why a team costs more than it seems. */
    int par = (double)nq * ps_mih_cost_ns(mih, nvar, radius) >= 5e5;
#pragma omp parallel num_threads(T) reduction(+ : probes, candidates) if (par)
    {
        scratch *s = malloc(sizeof *s);
        ps_hits *mine = &part[omp_get_thread_num()];
        if (!s) {
#pragma omp atomic write
            failed = PROVSCAN_E_NOMEM;
        } else {
            s->ncand = s->nver = 0;
            s->probes = s->candidates = 0;
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t task = 0; task < ntasks; task++) {
            if (!s)
                continue;
            size_t q = task / groups, g = task % groups;
            int v0 = (int)(g * (size_t)nvar / groups), v1 = (int)((g + 1) * (size_t)nvar / groups);
            size_t from = mine->n;
            qctx c = {mih, K, codes, NULL, (uint32_t)q, 0, radius, mine, PROVSCAN_OK};
            for (int v = v0; v < v1; v++) {
                c.q = queries + 32 * (q * (size_t)nvar + (size_t)v);
                c.variant = (uint8_t)v;
                search_variant(&c, s, masks, nball);
            }
            if (c.status != PROVSCAN_OK) {
#pragma omp atomic write
                failed = c.status;
            }
            dedup(mine, from);
        }
        if (s) {
            probes += s->probes;
            candidates += s->candidates;
        }
        free(s);
    }
    free(masks);
    provscan_status st = (provscan_status)failed;
    for (int t = 0; t < T; t++) {
        if (st == PROVSCAN_OK)
            st = ps_hits_append(out, part[t].v, part[t].n);
        ps_hits_free(&part[t]);
    }
    free(part);
    if (st != PROVSCAN_OK) {
        out->n = base;
        return st;
    }
    /* Variant groups of one query ran as separate tasks: merge their hits. */
    dedup(out, base);
    if (stats) {
        stats->probes += probes;
        stats->candidates += candidates;
    }
    return PROVSCAN_OK;
}

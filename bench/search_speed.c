/* search_speed.c — speed of provscan's Hamming search (brute force, MIH) on gen_codes corpora, beside FAISS, in one run. */
/*
 * Two modes.
 *
 * Runner mode (bench/methods/search-provscan.sh; the arguments of bench/peers/faiss_search.cpp):
 *   search_speed --codes C.codes --queries Q.queries [--radius 31] [--threads N] [--batch-threads N]
 *                [--variant0] [--mode single|batch|both] [--repeat R] [--out PAIRS.txt] [--json OUT.json]
 *                [--engine auto|brute|mih] [--memory huge|small|file|file-huge] [--blob-cache FILE]
 *   Builds the MIH tables when ps_mih_choose says they pay (engine auto), then times single queries (one
 *   call per query, its 8 variants) with --threads and batches (all queries in one call) with
 *   --batch-threads; writes the result pairs "query id distance" sorted by (query, id) and the JSON fields
 *   the runner reads (build_seconds, rss_*_kb, result_pairs, single.{p50_us,p99_us,queries_per_s},
 *   batch.queries_per_s) plus the engine, MIH parameters and bytes per record.
 *
 * Suite mode (docs/search.md's figures):
 *   search_speed --suite [--sizes 100000,1000000,10000000] [--work DIR] [--repeat R] [--threads T]
 *                [--radius 31] [--memory huge|small|file|file-huge] [--no-faiss] [--json OUT.json] [--md OUT.md]
 *   Per size: bench/gen_codes makes the corpus and queries (seed 42, as bench/run does); then, in this one
 *   process: the memory-read floor (a streaming sum over the codes), brute force with variant 0 only (the
 *   issue's per-thread targets: single-query latency against the floor, batched throughput), brute force
 *   and MIH with all 8 variants (latency at 1 and T threads, batches at T threads), MIH build time, blob
 *   size, RSS, probes and candidates per query, a pair-for-pair cross-check MIH == brute force, and (unless
 *   --no-faiss) bench/faiss_search's IndexBinaryFlat and plain POPCNT scan on the same files, variant 0,
 *   1 thread. Finally the growth exponent of query time in n (least squares on log-log).
 *
 * --memory: where codes and tables live. huge (default): anonymous memory with transparent huge pages
 * (MADV_HUGEPAGE); small: anonymous memory with 4 KiB pages; file: the codes file and a blob file mapped
 * read-only, as the corpus index maps its segments (page-cache pages); file-huge: the same, then
 * MADV_HUGEPAGE + MADV_COLLAPSE on the mappings (read-only file huge pages, Linux 6.1+).
 * Kernel mode: search_speed --kernels — ns per (code, query vector) of the radius kernel in every kernel
 * set, on an L2-resident block, with 1, 8, 32 and 128 vectors per call.
 *
 * --blob-cache FILE (development): load the MIH tables from FILE when it has the right size, else build
 * them and save them there.
 */
#include "cpu/kernels.h"
#include "search/search.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { MEM_HUGE, MEM_SMALL, MEM_FILE, MEM_FILE_HUGE };

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("search_speed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = atol(line + kl + 1);
            break;
        }
    fclose(f);
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of v[0..n) (sorts v). */
static double percentile(double *v, size_t n, double p)
{
    if (!n)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    size_t k = (size_t)ceil(p / 100.0 * (double)n);
    return v[k ? k - 1 : 0];
}

/* ---- memory ----------------------------------------------------------------------------------- */

typedef struct region {
    void *p;
    size_t size;
    int mapped; /* munmap rather than free */
} region;

static region alloc_region(size_t size, int mem)
{
    region r = {NULL, size, 1};
    size_t len = size ? (size + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1) : ((size_t)2 << 20);
    r.size = len;
    r.p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r.p == MAP_FAILED)
        die("out of memory (%zu bytes)", len);
    madvise(r.p, len, mem == MEM_HUGE ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return r;
}

static region map_file(const char *path, size_t *size, int huge)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("cannot stat %s", path);
    region r = {NULL, (size_t)st.st_size, 1};
    *size = (size_t)st.st_size;
    r.p = mmap(NULL, r.size ? r.size : 1, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (r.p == MAP_FAILED)
        die("cannot map %s", path);
    /* file-huge: ask for the page-cache pages to be mapped as 2 MiB pages (read-only file THP; needs a
     * 2 MiB-aligned mapping, which mmap of a large file gives here, and CONFIG_READ_ONLY_THP_FOR_FS). */
    if (huge && (madvise(r.p, r.size, MADV_HUGEPAGE) != 0 || madvise(r.p, r.size, MADV_COLLAPSE) != 0))
        fprintf(stderr, "search_speed: %s: no huge pages for the mapping (%s)\n", path, strerror(errno));
    /* Fault every page in now, so that timings do not include first-touch page faults. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < r.size; i += 4096)
        sink ^= ((const uint8_t *)r.p)[i];
    (void)sink;
    return r;
}

static void free_region(region *r)
{
    if (r->p)
        munmap(r->p, r->size ? r->size : 1);
    r->p = NULL;
}

static region load_file(const char *path, size_t *size, int mem)
{
    if (mem == MEM_FILE || mem == MEM_FILE_HUGE)
        return map_file(path, size, mem == MEM_FILE_HUGE);
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *size = (size_t)len;
    region r = alloc_region((size_t)len, mem);
    if (len > 0 && fread(r.p, 1, (size_t)len, f) != (size_t)len)
        die("cannot read %s", path);
    fclose(f);
    return r;
}

/* ---- engine runs ------------------------------------------------------------------------------ */

typedef struct corpus {
    const uint8_t *codes;
    size_t n;
    const uint8_t *q8; /* nq x 8 variants */
    uint8_t *q1;       /* nq x variant 0 */
    size_t nq;
    const ps_mih *mih;
    int radius;
} corpus;

typedef struct timing {
    double p50_us, p99_us, mean_us, qps; /* single: percentiles over all repeats, q/s = median of repeats */
    double cpu_p50_us;                   /* CPU time of the calling thread (1 thread only): immune to being descheduled */
} timing;

static double cpu_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void search_or_die(const corpus *c, const uint8_t *q, size_t nq, int nvar, int threads, ps_engine e,
                          ps_hits *out, ps_search_stats *st)
{
    provscan_status s = ps_search_radius_ex(c->codes, c->n, e == PS_ENGINE_BRUTE ? NULL : c->mih, q, nq, nvar,
                                            c->radius, threads, e, out, st);
    if (s != PROVSCAN_OK)
        die("search failed: %s", provscan_error_name(s));
}

/* One call per query, each timed; `keep` (if non-NULL) receives the first repeat's hits. */
static timing time_single(const corpus *c, int nvar, size_t nq, int threads, ps_engine e, int repeat, ps_hits *keep)
{
    const uint8_t *q = nvar == 8 ? c->q8 : c->q1;
    double *us = malloc((size_t)repeat * nq * sizeof *us), *qps = malloc((size_t)repeat * sizeof *qps);
    double *cpu = malloc((size_t)repeat * nq * sizeof *cpu);
    ps_hits h;
    ps_hits_init(&h);
    size_t k = 0;
    for (int r = 0; r < repeat; r++) {
        double t0 = now_s();
        for (size_t i = 0; i < nq; i++) {
            h.n = 0;
            double s = now_s(), sc = cpu_s(CLOCK_THREAD_CPUTIME_ID);
            search_or_die(c, q + 32 * (size_t)nvar * i, 1, nvar, threads, e, &h, NULL);
            cpu[k] = (cpu_s(CLOCK_THREAD_CPUTIME_ID) - sc) * 1e6;
            us[k++] = (now_s() - s) * 1e6;
            if (keep && r == 0)
                for (size_t j = 0; j < h.n; j++) {
                    ps_hit x = h.v[j];
                    x.query = (uint32_t)i;
                    ps_hits_push(keep, x);
                }
        }
        qps[r] = (double)nq / (now_s() - t0);
    }
    timing t;
    double sum = 0;
    for (size_t i = 0; i < k; i++)
        sum += us[i];
    t.mean_us = sum / (double)k;
    t.p50_us = percentile(us, k, 50);
    t.p99_us = percentile(us, k, 99);
    t.qps = percentile(qps, (size_t)repeat, 50);
    t.cpu_p50_us = threads == 1 ? percentile(cpu, k, 50) : NAN;
    free(cpu);
    free(us);
    free(qps);
    ps_hits_free(&h);
    return t;
}

/* All queries in one call: median q/s over the repeats; `keep` receives the last repeat's hits. */
static double time_batch(const corpus *c, int nvar, int threads, ps_engine e, int repeat, ps_hits *keep,
                         ps_search_stats *st, double *cpu_qps)
{
    const uint8_t *q = nvar == 8 ? c->q8 : c->q1;
    double *qps = malloc((size_t)repeat * sizeof *qps), *cq = malloc((size_t)repeat * sizeof *cq);
    ps_hits h;
    ps_hits_init(&h);
    for (int r = 0; r < repeat; r++) {
        h.n = 0;
        double t0 = now_s(), c0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
        search_or_die(c, q, c->nq, nvar, threads, e, &h, st);
        qps[r] = (double)c->nq / (now_s() - t0);
        cq[r] = (double)c->nq / (cpu_s(CLOCK_PROCESS_CPUTIME_ID) - c0);
    }
    if (cpu_qps)
        *cpu_qps = percentile(cq, (size_t)repeat, 50);
    free(cq);
    if (keep) {
        keep->n = 0;
        ps_hits_append(keep, h.v, h.n);
    }
    double m = percentile(qps, (size_t)repeat, 50);
    free(qps);
    ps_hits_free(&h);
    return m;
}

static int same_hits(const ps_hits *a, const ps_hits *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].query != b->v[i].query || a->v[i].record != b->v[i].record || a->v[i].distance != b->v[i].distance)
            return 0;
    return 1;
}

/* The memory-read floor: a plain streaming sum over the codes (median seconds of `repeat` passes). */
static double read_floor(const uint8_t *codes, size_t n, int threads, int repeat)
{
    double *t = malloc((size_t)repeat * sizeof *t);
    uint64_t sink = 0;
    size_t words = 4 * n;
    for (int r = 0; r < repeat; r++) {
        double t0 = now_s();
        uint64_t total = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static)
        for (size_t i = 0; i < words / 8; i++) {
            const uint64_t *w = (const uint64_t *)codes + 8 * i;
            total += (w[0] + w[1]) + (w[2] + w[3]) + (w[4] + w[5]) + (w[6] + w[7]);
        }
        t[r] = now_s() - t0;
        sink += total;
    }
    double m = percentile(t, (size_t)repeat, 50);
    free(t);
    if (sink == 42)
        fputc(' ', stderr); /* keeps the sums alive */
    return m;
}

/* Builds and opens the MIH tables; the blob lives as --memory says. */
typedef struct built {
    region blob;
    ps_mih *mih;
    int m, b;
    size_t bytes;
    double build_s, open_s;
} built;

static built build_mih(const uint8_t *codes, size_t n, int radius, int threads, int mem, const char *blob_path,
                       const char *cache)
{
    built r;
    memset(&r, 0, sizeof r);
    if (!ps_mih_choose(n, radius, &r.m, &r.b))
        return r;
    r.bytes = ps_mih_size(n, r.m, r.b);
    int file = mem == MEM_FILE || mem == MEM_FILE_HUGE;
    region tmp = alloc_region(r.bytes, file ? MEM_SMALL : mem);
    provscan_error err;
    struct stat cst;
    FILE *cf = NULL;
    if (cache && stat(cache, &cst) == 0 && (size_t)cst.st_size == r.bytes && (cf = fopen(cache, "rb")) &&
        fread(tmp.p, 1, r.bytes, cf) == r.bytes) {
        /* --blob-cache: tables built by an earlier run (development); build time not measured. */
        fclose(cf);
        r.build_s = NAN;
    } else {
        if (cf)
            fclose(cf);
        double t0 = now_s();
        if (ps_mih_build(codes, n, r.m, r.b, radius, threads, tmp.p, r.bytes, &err) != PROVSCAN_OK)
            die("MIH build: %s", err.message);
        r.build_s = now_s() - t0;
        if (cache) {
            cf = fopen(cache, "wb");
            if (!cf || fwrite(tmp.p, 1, r.bytes, cf) != r.bytes || fclose(cf) != 0)
                die("cannot write %s", cache);
        }
    }
    if (file) {
        /* As the corpus index would: tables written into the segment file, then mapped read-only. */
        FILE *f = fopen(blob_path, "wb");
        if (!f || fwrite(tmp.p, 1, r.bytes, f) != r.bytes || fclose(f) != 0)
            die("cannot write %s", blob_path);
        free_region(&tmp);
        size_t sz;
        r.blob = map_file(blob_path, &sz, mem == MEM_FILE_HUGE);
    } else
        r.blob = tmp;
    double t0 = now_s();
    if (ps_mih_open(r.blob.p, r.bytes, n, &r.mih, &err) != PROVSCAN_OK)
        die("MIH open: %s", err.message);
    r.open_s = now_s() - t0;
    return r;
}

static void free_built(built *b)
{
    if (b->mih)
        ps_mih_close(b->mih);
    free_region(&b->blob);
}

static void write_pairs(const char *path, const ps_hits *h)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write %s", path);
    for (size_t i = 0; i < h->n; i++)
        fprintf(f, "%u %u %u\n", h->v[i].query, h->v[i].record, h->v[i].distance);
    if (fclose(f) != 0)
        die("write error on %s", path);
}

static const char *engine_name(ps_engine e)
{
    return e == PS_ENGINE_MIH ? "mih" : e == PS_ENGINE_BRUTE ? "brute" : "auto";
}

/* ---- runner mode ------------------------------------------------------------------------------ */

typedef struct opts {
    const char *codes, *queries, *out, *json, *mode, *work, *md, *sizes, *blob_cache;
    int radius, threads, batch_threads, repeat, variant0, mem, suite, faiss;
    ps_engine engine;
} opts;

static corpus load_corpus(const opts *o, region *cr, region *qr)
{
    corpus c;
    memset(&c, 0, sizeof c);
    size_t cs, qs;
    *cr = load_file(o->codes, &cs, o->mem);
    *qr = load_file(o->queries, &qs, MEM_SMALL);
    if (cs % 32 || qs % 256)
        die("file sizes must be multiples of 32 (codes) and 256 (queries)");
    c.codes = cr->p;
    c.n = cs / 32;
    c.q8 = qr->p;
    c.nq = qs / 256;
    c.q1 = malloc(c.nq ? 32 * c.nq : 1);
    for (size_t i = 0; i < c.nq; i++)
        memcpy(c.q1 + 32 * i, c.q8 + 256 * i, 32);
    c.radius = o->radius;
    return c;
}

static int runner_mode(const opts *o)
{
    region cr, qr;
    long rss0 = status_kb("VmRSS");
    corpus c = load_corpus(o, &cr, &qr);
    int nvar = o->variant0 ? 1 : 8;
    long rss_before = status_kb("VmRSS");
    built b;
    memset(&b, 0, sizeof b);
    char blob_path[4096];
    snprintf(blob_path, sizeof blob_path, "%s.mih", o->codes);
    if (o->engine != PS_ENGINE_BRUTE) {
        b = build_mih(c.codes, c.n, o->radius, o->batch_threads, o->mem, blob_path, o->blob_cache);
        if (!b.mih && o->engine == PS_ENGINE_MIH)
            die("MIH does not pay at n %zu, radius %d (ps_mih_choose)", c.n, o->radius);
    }
    c.mih = b.mih;
    long rss_after = status_kb("VmRSS"), hwm = status_kb("VmHWM");
    ps_hits res;
    ps_hits_init(&res);
    timing s = {NAN, NAN, NAN, NAN, NAN};
    double bq = NAN, bcq = NAN;
    ps_search_stats st;
    memset(&st, 0, sizeof st);
    int single = strcmp(o->mode, "batch") != 0, batch = strcmp(o->mode, "single") != 0;
    if (single)
        s = time_single(&c, nvar, c.nq, o->threads, o->engine, o->repeat, batch ? NULL : &res);
    if (batch)
        bq = time_batch(&c, nvar, o->batch_threads, o->engine, o->repeat, &res, &st, &bcq);
    if (o->out)
        write_pairs(o->out, &res);
    fprintf(stderr,
            "search_speed n=%zu engine %s (%s): single %.1f q/s, p50 %.1f us (CPU %.1f us), p99 %.1f us; batch %.1f q/s "
            "(%.1f per CPU-second)\n",
            c.n, engine_name(o->engine), b.mih ? "MIH tables built" : "no MIH tables", s.qps, s.p50_us, s.cpu_p50_us,
            s.p99_us, bq, bcq);
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "engine", json_string(b.mih ? "provscan (MIH when it wins, else blocked brute force)"
                                                            : "provscan (blocked brute force)"));
        json_object_set_new(j, "engine_forced", json_string(engine_name(o->engine)));
        json_object_set_new(j, "engine_used_batch", json_string(batch ? engine_name(st.engine) : "-"));
        json_object_set_new(j, "simd", json_string(ps_kernels_get()->name));
        json_object_set_new(j, "n_codes", json_real((double)c.n));
        json_object_set_new(j, "n_queries", json_real((double)c.nq));
        json_object_set_new(j, "variants", json_integer(nvar));
        json_object_set_new(j, "radius", json_integer(o->radius));
        json_object_set_new(j, "threads", json_integer(o->threads));
        json_object_set_new(j, "repeat", json_integer(o->repeat));
        json_object_set_new(j, "mih_m", json_integer(b.m));
        json_object_set_new(j, "mih_b", json_integer(b.b));
        json_object_set_new(j, "mih_blob_bytes", json_real((double)b.bytes));
        json_object_set_new(j, "bytes_per_record", json_real(c.n ? (32.0 * (double)c.n + (double)b.bytes) / (double)c.n : 0));
        json_object_set_new(j, "build_seconds", json_real(b.build_s + b.open_s));
        json_object_set_new(j, "open_seconds", json_real(b.open_s));
        json_object_set_new(j, "rss_start_kb", json_integer(rss0));
        json_object_set_new(j, "rss_before_build_kb", json_integer(rss_before));
        json_object_set_new(j, "rss_after_build_kb", json_integer(rss_after));
        json_object_set_new(j, "hwm_after_build_kb", json_integer(hwm));
        if (single) {
            json_t *sj = json_object();
            json_object_set_new(sj, "queries_per_s", json_real(s.qps));
            json_object_set_new(sj, "mean_us", json_real(s.mean_us));
            json_object_set_new(sj, "p50_us", json_real(s.p50_us));
            json_object_set_new(sj, "p99_us", json_real(s.p99_us));
            json_object_set_new(sj, "cpu_p50_us", json_real(s.cpu_p50_us));
            json_object_set_new(j, "single", sj);
        }
        if (batch) {
            json_t *bj = json_object();
            json_object_set_new(bj, "queries_per_s", json_real(bq));
            json_object_set_new(bj, "threads", json_integer(o->batch_threads));
            json_object_set_new(bj, "queries_per_cpu_s", json_real(bcq));
            json_object_set_new(bj, "probes_per_query", json_real(c.nq ? (double)st.probes / (double)c.nq : 0));
            json_object_set_new(bj, "candidates_per_query", json_real(c.nq ? (double)st.candidates / (double)c.nq : 0));
            json_object_set_new(j, "batch", bj);
        }
        json_object_set_new(j, "result_pairs", json_real((double)res.n));
        json_object_set_new(j, "hwm_end_kb", json_integer(status_kb("VmHWM")));
        if (json_dump_file(j, o->json, JSON_INDENT(1)) != 0)
            die("cannot write %s", o->json);
        json_decref(j);
    }
    ps_hits_free(&res);
    free_built(&b);
    free(c.q1);
    free_region(&cr);
    free_region(&qr);
    if (o->mem == MEM_FILE || o->mem == MEM_FILE_HUGE)
        unlink(blob_path);
    return 0;
}

/* ---- suite mode ------------------------------------------------------------------------------- */

static void self_dir(char *dir, size_t size)
{
    ssize_t l = readlink("/proc/self/exe", dir, size - 1);
    if (l <= 0)
        die("cannot find my own directory");
    dir[l] = '\0';
    char *s = strrchr(dir, '/');
    if (s)
        *s = '\0';
}

static int run_prog(char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

typedef struct faiss_fig {
    int ok;
    double single_qps, p50_us, batch_qps;
} faiss_fig;

/* bench/faiss_search on the same files: variant 0, 1 thread, both modes. */
static faiss_fig run_faiss(const char *bin, const char *index, const char *codes, const char *queries,
                           const char *json, const char *log, int radius, int repeat)
{
    faiss_fig f = {0, NAN, NAN, NAN};
    if (access(bin, X_OK) != 0)
        return f;
    char r[16], rep[16];
    snprintf(r, sizeof r, "%d", radius);
    snprintf(rep, sizeof rep, "%d", repeat);
    char *argv[] = {(char *)bin, "--codes", (char *)codes, "--queries", (char *)queries, "--index", (char *)index,
                    "--radius", r, "--threads", "1", "--variant0", "--mode", "both", "--repeat", rep,
                    "--json", (char *)json, NULL};
    if (run_prog(argv, log) != 0)
        return f;
    json_error_t e;
    json_t *j = json_load_file(json, 0, &e);
    if (!j)
        return f;
    json_t *s = json_object_get(j, "single"), *b = json_object_get(j, "batch");
    f.single_qps = json_number_value(json_object_get(s, "queries_per_s"));
    f.p50_us = json_number_value(json_object_get(s, "p50_us"));
    f.batch_qps = json_number_value(json_object_get(b, "queries_per_s"));
    f.ok = 1;
    json_decref(j);
    return f;
}

typedef struct size_result {
    size_t n, nq, nq_single;
    double floor1_ms, floorT_ms;
    timing b1_single;      /* brute, variant 0, 1 thread */
    double b1_batch_qps;   /* brute, variant 0, 1 thread */
    timing b8_single1, b8_singleT;
    double b8_batchT_qps;
    int m, b;
    size_t blob_bytes;
    double build_s, open_s;
    timing m8_single1, m8_singleT;
    double m8_batchT_qps, m8_batch1_qps, m8_batch_cpu_qps, b8_batch_cpu_qps;
    double probes_per_q, cands_per_q;
    long rss_codes_kb, rss_blob_kb;
    int mih_equal, brute_single_equal;
    size_t pairs, planted, planted_found;
    faiss_fig flat, scan;
} size_result;

/* Least-squares slope of log y against log x. */
static double slope(const double *x, const double *y, int k)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (int i = 0; i < k; i++) {
        if (!(y[i] > 0))
            continue;
        double lx = log(x[i]), ly = log(y[i]);
        sx += lx;
        sy += ly;
        sxx += lx * lx;
        sxy += lx * ly;
        m++;
    }
    if (m < 2)
        return NAN;
    return (m * sxy - sx * sy) / (m * sxx - sx * sx);
}

static size_t queries_for(size_t n)
{
    return n <= 100000 ? 2000 : n <= 1000000 ? 1000 : 400;
}

/* The 1-minute load average: the machine is shared, so the report says how busy it was. */
static double loadavg(void)
{
    double l = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = NAN;
        fclose(f);
    }
    return l;
}

static int suite_mode(const opts *o)
{
    double load0 = loadavg();
    char dir[4096], gen[4200], faiss[4200];
    self_dir(dir, sizeof dir);
    snprintf(gen, sizeof gen, "%s/gen_codes", dir);
    snprintf(faiss, sizeof faiss, "%s/faiss_search", dir);
    if (access(gen, X_OK) != 0)
        die("needs %s (build the bench targets)", gen);
    const char *work = o->work ? o->work : "/tmp/provscan-search-speed";
    mkdir(work, 0755);
    size_t sizes[8];
    int ns = 0;
    for (const char *p = o->sizes; p && *p && ns < 8;) {
        sizes[ns++] = (size_t)strtoull(p, NULL, 10);
        p = strchr(p, ',');
        if (p)
            p++;
    }
    int T = o->threads;
    size_result *R = calloc((size_t)ns, sizeof *R);
    for (int si = 0; si < ns; si++) {
        size_result *r = &R[si];
        r->n = sizes[si];
        r->nq = queries_for(r->n);
        char cpath[4400], qpath[4400], tpath[4400], log[4400], js[4400], bpath[4400];
        snprintf(cpath, sizeof cpath, "%s/codes-%zu", work, r->n);
        snprintf(qpath, sizeof qpath, "%s/queries-%zu", work, r->n);
        snprintf(tpath, sizeof tpath, "%s/truth-%zu.txt", work, r->n);
        snprintf(log, sizeof log, "%s/log-%zu.txt", work, r->n);
        snprintf(bpath, sizeof bpath, "%s/blob-%zu.mih", work, r->n);
        char ns_[32], qs_[32];
        snprintf(ns_, sizeof ns_, "%zu", r->n);
        snprintf(qs_, sizeof qs_, "%zu", r->nq);
        char *gargv[] = {gen, "--n", ns_, "--q", qs_, "--seed", "42", "--codes", cpath, "--queries", qpath,
                         "--truth", tpath, NULL};
        fprintf(stderr, "[suite] n=%zu: generating %zu queries\n", r->n, r->nq);
        if (run_prog(gargv, log) != 0)
            die("gen_codes failed, see %s", log);

        long rss0 = status_kb("VmRSS");
        opts lo = *o;
        lo.codes = cpath;
        lo.queries = qpath;
        region cr, qr;
        corpus c = load_corpus(&lo, &cr, &qr);
        r->rss_codes_kb = status_kb("VmRSS") - rss0;
        r->floor1_ms = 1e3 * read_floor(c.codes, c.n, 1, 2 * o->repeat + 1);
        r->floorT_ms = 1e3 * read_floor(c.codes, c.n, T, 2 * o->repeat + 1);

        /* Brute force, variant 0, 1 thread: the per-thread targets. Single queries are timed on
         * a prefix of the queries (each is a full pass over the codes). */
        r->nq_single = r->n >= 10000000 ? 60 : r->n >= 1000000 ? 200 : r->nq;
        fprintf(stderr, "[suite] n=%zu: brute force\n", r->n);
        r->b1_single = time_single(&c, 1, r->nq_single, 1, PS_ENGINE_BRUTE, o->repeat, NULL);
        r->b1_batch_qps = time_batch(&c, 1, 1, PS_ENGINE_BRUTE, o->repeat, NULL, NULL, NULL);
        ps_hits brute, other;
        ps_hits_init(&brute);
        ps_hits_init(&other);
        r->b8_single1 = time_single(&c, 8, r->nq_single, 1, PS_ENGINE_BRUTE, o->repeat, &other);
        r->b8_singleT = time_single(&c, 8, r->nq_single, T, PS_ENGINE_BRUTE, o->repeat, NULL);
        r->b8_batchT_qps = time_batch(&c, 8, T, PS_ENGINE_BRUTE, o->repeat, &brute, NULL, &r->b8_batch_cpu_qps);
        /* Single-query results equal the batch's on the prefix. */
        size_t pre = 0;
        while (pre < brute.n && brute.v[pre].query < r->nq_single)
            pre++;
        ps_hits head = {brute.v, pre, pre};
        r->brute_single_equal = same_hits(&head, &other);
        r->pairs = brute.n;

        /* Planted neighbours found. */
        FILE *tf = fopen(tpath, "r");
        unsigned long tq, tid;
        int td;
        while (tf && fscanf(tf, "%lu %lu %d", &tq, &tid, &td) == 3) {
            r->planted++;
            for (size_t i = 0; i < brute.n; i++)
                if (brute.v[i].query == tq && brute.v[i].record == tid && brute.v[i].distance <= td) {
                    r->planted_found++;
                    break;
                }
        }
        if (tf)
            fclose(tf);

        /* MIH, 8 variants. */
        fprintf(stderr, "[suite] n=%zu: MIH\n", r->n);
        long rss1 = status_kb("VmRSS");
        built b = build_mih(c.codes, c.n, o->radius, T, o->mem, bpath, NULL);
        r->rss_blob_kb = status_kb("VmRSS") - rss1;
        r->m = b.m;
        r->b = b.b;
        r->blob_bytes = b.bytes;
        r->build_s = b.build_s;
        r->open_s = b.open_s;
        if (b.mih) {
            c.mih = b.mih;
            ps_search_stats st;
            r->m8_single1 = time_single(&c, 8, r->nq, 1, PS_ENGINE_MIH, o->repeat, NULL);
            r->m8_singleT = time_single(&c, 8, r->nq, T, PS_ENGINE_MIH, o->repeat, NULL);
            r->m8_batch1_qps = time_batch(&c, 8, 1, PS_ENGINE_MIH, o->repeat, NULL, NULL, NULL);
            r->m8_batchT_qps = time_batch(&c, 8, T, PS_ENGINE_MIH, o->repeat, &other, &st, &r->m8_batch_cpu_qps);
            r->probes_per_q = (double)st.probes / (double)r->nq; /* counters of the last repeat */
            r->cands_per_q = (double)st.candidates / (double)r->nq;
            r->mih_equal = same_hits(&brute, &other);
        }
        free_built(&b);
        ps_hits_free(&brute);
        ps_hits_free(&other);
        free(c.q1);
        free_region(&cr);
        free_region(&qr);
        if (o->mem == MEM_FILE || o->mem == MEM_FILE_HUGE)
            unlink(bpath);

        if (o->faiss) {
            fprintf(stderr, "[suite] n=%zu: FAISS flat and POPCNT scan (variant 0, 1 thread)\n", r->n);
            snprintf(js, sizeof js, "%s/faiss-flat-%zu.json", work, r->n);
            /* FAISS flat takes ~60 ms per query at 10^6 (Debian's build has no POPCNT): fewer queries. */
            char fq[4400];
            snprintf(fq, sizeof fq, "%s/queries-faiss-%zu", work, r->n);
            size_t nf = r->n >= 10000000 ? 20 : r->n >= 1000000 ? 60 : 400;
            FILE *in = fopen(qpath, "rb"), *out = fopen(fq, "wb");
            uint8_t buf[256];
            for (size_t i = 0; in && out && i < nf && fread(buf, 1, 256, in) == 256; i++)
                fwrite(buf, 1, 256, out);
            if (in)
                fclose(in);
            if (out)
                fclose(out);
            r->flat = run_faiss(faiss, "flat", cpath, fq, js, log, o->radius, o->repeat);
            snprintf(js, sizeof js, "%s/scan-%zu.json", work, r->n);
            r->scan = run_faiss(faiss, "scan", cpath, fq, js, log, o->radius, o->repeat);
            unlink(fq);
        }
        unlink(cpath);
        unlink(qpath);
    }

    /* Report. */
    FILE *md = o->md ? fopen(o->md, "w") : stdout;
    if (!md)
        die("cannot write %s", o->md);
    char cpu[256] = "?";
    FILE *ci = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (ci && fgets(line, sizeof line, ci))
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            snprintf(cpu, sizeof cpu, "%.200s", p ? p + 2 : line);
            cpu[strcspn(cpu, "\n")] = '\0';
            break;
        }
    if (ci)
        fclose(ci);
    fprintf(md,
            "Machine: %s, %ld cores; SIMD %s; memory %s; radius %d; T = %d threads; median of %d repeats; load average "
            "%.2f at the start, %.2f at the end.\n\n",
            cpu, sysconf(_SC_NPROCESSORS_ONLN), ps_kernels_get()->name,
            o->mem == MEM_HUGE    ? "anonymous, huge pages"
            : o->mem == MEM_SMALL ? "anonymous, 4 KiB pages"
            : o->mem == MEM_FILE  ? "mapped files"
                                  : "mapped files, MADV_COLLAPSE to huge pages",
            o->radius, T, o->repeat, load0, loadavg());
    fprintf(md, "Brute force, variant 0 only, 1 thread (the issue's per-thread targets)\n\n");
    fprintf(md, "| codes | read floor (ms) | single p50 (ms) | ÷ floor | single q/s | batch q/s | FAISS flat q/s (single / batch) | POPCNT scan q/s (single / batch) | batch ÷ FAISS flat | batch ÷ scan |\n");
    fprintf(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < ns; i++) {
        size_result *r = &R[i];
        fprintf(md, "| %zu | %.2f | %.2f | %.2f | %.1f | %.1f |", r->n, r->floor1_ms, r->b1_single.p50_us / 1e3,
                r->b1_single.p50_us / 1e3 / r->floor1_ms, r->b1_single.qps, r->b1_batch_qps);
        if (r->flat.ok && r->scan.ok)
            fprintf(md, " %.1f / %.1f | %.1f / %.1f | %.1f× | %.2f× |\n", r->flat.single_qps, r->flat.batch_qps,
                    r->scan.single_qps, r->scan.batch_qps, r->b1_batch_qps / r->flat.batch_qps,
                    r->b1_batch_qps / r->scan.batch_qps);
        else
            fprintf(md, " – | – | – | – |\n");
    }
    fprintf(md, "\nAll 8 variants per query (radius %d)\n\n", o->radius);
    fprintf(md, "| codes | queries | brute p50 ms (1 / %d thr) | brute batch q/s (%d thr; per CPU-s) | MIH m×b | build s (%d thr) | open s | blob MB | bytes/record (codes+blob; RSS) | MIH p50 / p99 ms (1 thr) | MIH p50 ms (%d thr) | MIH batch q/s (1 / %d thr; per CPU-s) | probes, candidates /query | MIH == brute | planted found |\n",
            T, T, T, T, T);
    fprintf(md, "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for (int i = 0; i < ns; i++) {
        size_result *r = &R[i];
        fprintf(md,
                "| %zu | %zu | %.3f / %.3f | %.1f; %.1f | %d×%d | %.2f | %.2f | %.1f | %.1f; %.1f | %.3f / %.3f | %.3f | %.1f / %.1f; %.1f | %.0f, %.0f | %s | %zu/%zu |\n",
                r->n, r->nq, r->b8_single1.p50_us / 1e3, r->b8_singleT.p50_us / 1e3, r->b8_batchT_qps,
                r->b8_batch_cpu_qps, r->m, r->b,
                r->build_s, r->open_s, (double)r->blob_bytes / 1e6,
                (32.0 * (double)r->n + (double)r->blob_bytes) / (double)r->n,
                1024.0 * (double)(r->rss_codes_kb + r->rss_blob_kb) / (double)r->n, r->m8_single1.p50_us / 1e3,
                r->m8_single1.p99_us / 1e3, r->m8_singleT.p50_us / 1e3, r->m8_batch1_qps, r->m8_batchT_qps,
                r->m8_batch_cpu_qps, r->probes_per_q, r->cands_per_q,
                r->m ? (r->mih_equal && r->brute_single_equal ? "yes" : "NO") : (r->brute_single_equal ? "(no MIH)" : "NO"),
                r->planted_found, r->planted);
    }
    double x[8], yb[8], ym[8], ymb[8];
    for (int i = 0; i < ns; i++) {
        x[i] = (double)R[i].n;
        yb[i] = R[i].b8_single1.p50_us;
        ym[i] = R[i].m ? R[i].m8_single1.p50_us : NAN;
        ymb[i] = R[i].m ? 1.0 / R[i].m8_batchT_qps : NAN;
    }
    fprintf(md, "\nGrowth exponent of query time in n (log-log least squares over the sizes): brute single %.2f, MIH single %.2f, MIH batch %.2f\n\n",
            slope(x, yb, ns), slope(x, ym, ns), slope(x, ymb, ns));
    if (md != stdout)
        fclose(md);
    if (o->json) {
        json_t *arr = json_array();
        for (int i = 0; i < ns; i++) {
            size_result *r = &R[i];
            json_t *j = json_object();
            json_object_set_new(j, "n", json_real((double)r->n));
            json_object_set_new(j, "queries", json_real((double)r->nq));
            json_object_set_new(j, "floor_ms_1thread", json_real(r->floor1_ms));
            json_object_set_new(j, "floor_ms_T", json_real(r->floorT_ms));
            json_object_set_new(j, "brute_v0_single_p50_us", json_real(r->b1_single.p50_us));
            json_object_set_new(j, "brute_v0_single_qps", json_real(r->b1_single.qps));
            json_object_set_new(j, "brute_v0_batch_qps_1thread", json_real(r->b1_batch_qps));
            json_object_set_new(j, "brute_v8_single_p50_us_1thread", json_real(r->b8_single1.p50_us));
            json_object_set_new(j, "brute_v8_single_p50_us_T", json_real(r->b8_singleT.p50_us));
            json_object_set_new(j, "brute_v8_batch_qps_T", json_real(r->b8_batchT_qps));
            json_object_set_new(j, "mih_m", json_integer(r->m));
            json_object_set_new(j, "mih_b", json_integer(r->b));
            json_object_set_new(j, "mih_blob_bytes", json_real((double)r->blob_bytes));
            json_object_set_new(j, "mih_build_s", json_real(r->build_s));
            json_object_set_new(j, "mih_open_s", json_real(r->open_s));
            json_object_set_new(j, "mih_single_p50_us_1thread", json_real(r->m8_single1.p50_us));
            json_object_set_new(j, "mih_single_p99_us_1thread", json_real(r->m8_single1.p99_us));
            json_object_set_new(j, "mih_single_p50_us_T", json_real(r->m8_singleT.p50_us));
            json_object_set_new(j, "mih_batch_qps_1thread", json_real(r->m8_batch1_qps));
            json_object_set_new(j, "mih_batch_qps_T", json_real(r->m8_batchT_qps));
            json_object_set_new(j, "mih_batch_queries_per_cpu_s", json_real(r->m8_batch_cpu_qps));
            json_object_set_new(j, "brute_v8_batch_queries_per_cpu_s", json_real(r->b8_batch_cpu_qps));
            json_object_set_new(j, "mih_single_cpu_p50_us_1thread", json_real(r->m8_single1.cpu_p50_us));
            json_object_set_new(j, "brute_v0_single_cpu_p50_us", json_real(r->b1_single.cpu_p50_us));
            json_object_set_new(j, "mih_probes_per_query", json_real(r->probes_per_q));
            json_object_set_new(j, "mih_candidates_per_query", json_real(r->cands_per_q));
            json_object_set_new(j, "rss_codes_kb", json_integer(r->rss_codes_kb));
            json_object_set_new(j, "rss_blob_kb", json_integer(r->rss_blob_kb));
            json_object_set_new(j, "mih_equals_brute", json_boolean(r->mih_equal));
            json_object_set_new(j, "planted", json_real((double)r->planted));
            json_object_set_new(j, "planted_found", json_real((double)r->planted_found));
            json_object_set_new(j, "faiss_flat_v0_single_qps", json_real(r->flat.single_qps));
            json_object_set_new(j, "faiss_flat_v0_batch_qps", json_real(r->flat.batch_qps));
            json_object_set_new(j, "scan_v0_single_qps", json_real(r->scan.single_qps));
            json_object_set_new(j, "scan_v0_batch_qps", json_real(r->scan.batch_qps));
            json_array_append_new(arr, j);
        }
        json_dump_file(arr, o->json, JSON_INDENT(1));
        json_decref(arr);
    }
    int bad = 0;
    for (int i = 0; i < ns; i++)
        if (!R[i].brute_single_equal || (R[i].m && !R[i].mih_equal) || R[i].planted_found != R[i].planted)
            bad = 1;
    free(R);
    return bad;
}

/* ---- kernel mode ------------------------------------------------------------------------------ */

/* --kernels: nanoseconds per (code, query vector) of hamming256_radius in every kernel set, on a block of
 * 4096 random codes (L2-resident) at radius 31, for 1, 8, 32 and 128 vectors per call; best of 7 timings of
 * ~0.2 s of calling-thread CPU time each. */
static int kernel_mode(void)
{
    static const char *const sets[] = {"scalar", "avx2", "avx512"};
    static const size_t nqs[] = {1, 8, 32, 128};
    enum { N = 4096, CAP = 4096 };
    uint8_t *codes = malloc(32 * N), *q = malloc(32 * 128);
    ps_hpair *out = malloc(CAP * sizeof *out);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < 32 * N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        codes[i] = (uint8_t)x;
    }
    for (size_t i = 0; i < 32 * 128; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        q[i] = (uint8_t)x;
    }
    printf("| kernel set | 1 vector | 8 vectors | 32 vectors | 128 vectors |\n|---|---:|---:|---:|---:|\n");
    for (int si = 0; si < 3; si++) {
        const ps_kernels *k = ps_kernels_by_name(sets[si]);
        if (!k)
            continue;
        printf("| %s |", sets[si]);
        for (int qi = 0; qi < 4; qi++) {
            double best = 1e9;
            for (int r = 0; r < 7; r++) {
                double t0 = cpu_s(CLOCK_THREAD_CPUTIME_ID), t;
                long calls = 0;
                size_t np;
                do {
                    for (int j = 0; j < 20; j++, calls++)
                        k->hamming256_radius(q, nqs[qi], codes, N, 31, out, CAP, &np);
                } while ((t = cpu_s(CLOCK_THREAD_CPUTIME_ID) - t0) < 0.2);
                t /= (double)calls * N * (double)nqs[qi];
                if (t < best)
                    best = t;
            }
            printf(" %.3f ns |", best * 1e9);
        }
        printf("\n");
    }
    free(codes);
    free(q);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    o.radius = 31;
    o.threads = omp_get_max_threads();
    o.repeat = 1;
    o.mode = "both";
    o.mem = MEM_HUGE;
    o.faiss = 1;
    o.engine = PS_ENGINE_AUTO;
    o.sizes = "100000,1000000,10000000";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define VAL() (i + 1 < argc ? argv[++i] : (die("%s needs a value", a), ""))
        if (!strcmp(a, "--codes"))
            o.codes = VAL();
        else if (!strcmp(a, "--queries"))
            o.queries = VAL();
        else if (!strcmp(a, "--radius"))
            o.radius = atoi(VAL());
        else if (!strcmp(a, "--threads"))
            o.threads = atoi(VAL());
        else if (!strcmp(a, "--batch-threads"))
            o.batch_threads = atoi(VAL());
        else if (!strcmp(a, "--variant0"))
            o.variant0 = 1;
        else if (!strcmp(a, "--mode"))
            o.mode = VAL();
        else if (!strcmp(a, "--repeat"))
            o.repeat = atoi(VAL());
        else if (!strcmp(a, "--out"))
            o.out = VAL();
        else if (!strcmp(a, "--json"))
            o.json = VAL();
        else if (!strcmp(a, "--md"))
            o.md = VAL();
        else if (!strcmp(a, "--work"))
            o.work = VAL();
        else if (!strcmp(a, "--sizes"))
            o.sizes = VAL();
        else if (!strcmp(a, "--blob-cache"))
            o.blob_cache = VAL();
        else if (!strcmp(a, "--suite"))
            o.suite = 1;
        else if (!strcmp(a, "--kernels"))
            return kernel_mode();
        else if (!strcmp(a, "--no-faiss"))
            o.faiss = 0;
        else if (!strcmp(a, "--engine")) {
            const char *e = VAL();
            o.engine = !strcmp(e, "brute") ? PS_ENGINE_BRUTE : !strcmp(e, "mih") ? PS_ENGINE_MIH : PS_ENGINE_AUTO;
        } else if (!strcmp(a, "--memory")) {
            const char *m = VAL();
            o.mem = !strcmp(m, "small")       ? MEM_SMALL
                    : !strcmp(m, "file")      ? MEM_FILE
                    : !strcmp(m, "file-huge") ? MEM_FILE_HUGE
                                              : MEM_HUGE;
        } else
            die("unknown argument %s (see the comment at the top of bench/search_speed.c)", a);
#undef VAL
    }
    if (o.batch_threads <= 0)
        o.batch_threads = o.threads;
    if (o.threads < 1 || o.repeat < 1 || o.radius < 0 ||
        (strcmp(o.mode, "single") && strcmp(o.mode, "batch") && strcmp(o.mode, "both")))
        die("bad arguments");
    if (o.suite)
        return suite_mode(&o);
    if (!o.codes || !o.queries)
        die("usage: search_speed --codes C --queries Q [...] | --suite [...]");
    return runner_mode(&o);
}

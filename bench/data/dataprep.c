/* dataprep.c — selects, deduplicates, attributes and writes the provscan benchmark data set (see make-data.sh). */

/*
 * Input (written by make-data.sh):
 *   --packages FILE    TSV: package, version, source_url, copyright-file, author-override, licence-override
 *   --candidates FILE  TSV: rule, package, kind, group-mode, quick-quota, full-quota, flags, abs-path, rel-path
 *   --photos FILE      TSV: rule, package, cap, abs-path, rel-path (JPEG photographs for photos-jpeg/)
 * Output under --out DIR: corpus/, corpus.csv, outsiders/, hardneg/, hardneg.csv, photos-jpeg/,
 * distractors/ (full mode), other.csv (attribution of every non-corpus file), selection.tsv, MODE.
 *
 * Every decision is a pure function of the candidate lists and --seed: candidates are visited in a
 * seeded pseudo-random order, near-duplicates (under any of the 8 dihedral transforms) are dropped
 * greedily, then roles are handed out per rule.  Roles do not depend on the mode: the quick set is a
 * subset of the full set in every role, so queries made for quick stay valid against full data.
 * Image features are cached in --cache so that re-runs only look at new files.
 */
#define _GNU_SOURCE
#include <vips/vips.h>

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define TH 16            /* dedup thumbnail side */
#define TN (TH * TH)
#define T4 4
#define T4N (T4 * T4)
#define DH 32            /* detail map side */
#define MIN_ANY_SIDE 96  /* shorter side below this: never used (corpus needs 128, distractors 96) */
#define MAX_SIDE 6000    /* longer side above this: never used (posters of 10000+ px only slow every tool) */
#define DN (DH * DH)

enum { ROLE_NONE, ROLE_CORPUS, ROLE_HARDNEG, ROLE_OUTSIDER, ROLE_DISTRACTOR };
static const char *role_dir[] = { "", "corpus", "hardneg", "outsiders", "distractors" };

typedef struct {
    char *rule, *pkg, *kind, *gmode, *flags, *abs, *rel, *group, *name;
    int qquick, qfull;
    /* features */
    int have, ok, w, h;
    float mean, sd, edge;
    float v[TN];          /* normalised 16x16 grey thumbnail */
    float d[DN];          /* normalised 32x32 detail (thumbnail minus its 3x3 local mean) */
    float *var;           /* 8 dihedral variants of v (8*TN), then 8 variants of the 4x4 (8*T4N) */
    /* selection */
    uint64_t order;
    int usable, kept, role, quick;
    int similar;          /* hard negatives: index of the full-mode corpus work */
    int similar_q;        /* hard negatives: index of the quick-mode corpus work */
    int dup_of;           /* dropped as a near-duplicate of this candidate (-1: not dropped) */
    float sim;
} cand_t;

typedef struct {
    char *pkg, *version, *url, *copyright, *author, *licence;
    /* parsed copyright file */
    int dep5, nst;
    struct stanza { char **globs; int nglobs; char *copyright, *licence; } *st;
    char *fallback_author, *fallback_licence;
} pkg_t;

static int n_cand, n_pkg;
static cand_t *cand;
static pkg_t *pkgs;
static uint64_t seed = 20240601;
static double thr_dup = 0.90, thr_detail = 0.75, thr_pre = 0.70, thr_hn = 0.80;
static int hn_full = 300, hn_quick = 50, out_full = 800, out_quick = 100, distr_max = 9000;
static const char *mode = "quick";
static double report_pairs = 0; /* > 0: write near-pairs.tsv for selected pairs at or above this */

/* ---------------------------------------------------------------- small utilities */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "dataprep: out of memory\n");
        exit(2);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Splits a tab-separated line in place; returns the number of fields. */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    size_t l = strlen(line);
    while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
        line[--l] = 0;
    while (n < max) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t)
            break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", to, (int)getpid());
    FILE *in = fopen(from, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[1 << 16];
    size_t n;
    int err = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            err = 1;
    fclose(in);
    if (fclose(out) || err || rename(tmp, to)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && st.st_size > 0;
}

static const char *ext_of(const char *path)
{
    const char *b = strrchr(path, '/');
    const char *d = strrchr(b ? b : path, '.');
    return d ? d + 1 : "";
}

/* Formats kept byte for byte; anything else is converted to PNG. */
static int keep_format(const char *ext)
{
    static const char *keep[] = { "png", "jpg", "jpeg", "gif", "webp", NULL };
    for (int i = 0; keep[i]; i++)
        if (!strcasecmp(ext, keep[i]))
            return 1;
    return 0;
}

/* --------------------------------------------------------- package copyright files */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\n' || s[l - 1] == '\r' || s[l - 1] == ','))
        s[--l] = 0;
    return s;
}

/* Cleans a DEP-5 "Copyright:" value into a short author list: no years, e-mails or "(c)". */
static char *clean_author(const char *raw)
{
    char *out = xmalloc(strlen(raw) + 8);
    size_t o = 0;
    char *copy = xstrdup(raw), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char buf[1024];
        size_t b = 0;
        for (const char *p = line; *p && b < sizeof buf - 1; p++) {
            if (*p == '<') { /* e-mail */
                const char *e = strchr(p, '>');
                if (e) {
                    p = e;
                    continue;
                }
            }
            buf[b++] = *p;
        }
        buf[b] = 0;
        char *s = buf;
        /* drop leading "Copyright", "(C)", "©", years and year ranges */
        for (;;) {
            s = trim(s);
            if (!strncasecmp(s, "copyright", 9))
                s += 9;
            else if (!strncasecmp(s, "(c)", 3))
                s += 3;
            else if (!strncmp(s, "\xc2\xa9", 2))
                s += 2;
            else if (*s >= '0' && *s <= '9') {
                while ((*s >= '0' && *s <= '9') || *s == '-' || *s == ',' || *s == ' ')
                    s++;
            } else
                break;
        }
        s = trim(s);
        for (char *q = s; *q; q++) /* squeeze runs of blanks */
            while ((q[0] == ' ' || q[0] == '\t') && (q[1] == ' ' || q[1] == '\t'))
                memmove(q, q + 1, strlen(q));
        if (!*s || !strcmp(s, ".") || !strcasecmp(s, "*No copyright*"))
            continue;
        if (o)
            o += (size_t)sprintf(out + o, "; ");
        out = realloc(out, o + strlen(s) + 8);
        o += (size_t)sprintf(out + o, "%s", s);
    }
    free(copy);
    out[o] = 0;
    if (o > 160) {
        strcpy(out + 150, " et al.");
    }
    return out;
}

static void parse_copyright(pkg_t *p)
{
    FILE *f = fopen(p->copyright, "r");
    p->dep5 = 0;
    p->nst = 0;
    p->st = NULL;
    p->fallback_author = NULL;
    p->fallback_licence = NULL;
    if (!f)
        return;
    char *text = NULL;
    size_t len = 0;
    {
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
            text = realloc(text, len + n + 1);
            memcpy(text + len, buf, n);
            len += n;
        }
        fclose(f);
        if (!text)
            return;
        text[len] = 0;
    }
    p->dep5 = !strncmp(text, "Format:", 7);
    if (p->dep5) {
        /* paragraphs separated by blank lines; fields with continuation lines */
        char *save = NULL;
        char *field = NULL, *files = NULL, *copyr = NULL, *lic = NULL;
        char *acc = NULL;
        size_t accl = 0;
        char *lines = xstrdup(text);
        char *line = lines;
        for (;;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = 0;
            int blank = (line[strspn(line, " \t\r")] == 0);
            int cont = (line[0] == ' ' || line[0] == '\t') && !blank;
            if (!cont || blank) {
                /* close current field */
                if (field && acc) {
                    if (!strcasecmp(field, "Files"))
                        files = acc;
                    else if (!strcasecmp(field, "Copyright"))
                        copyr = acc;
                    else if (!strcasecmp(field, "License"))
                        lic = acc;
                    else
                        free(acc);
                    acc = NULL;
                }
                free(field);
                field = NULL;
            }
            if (blank || !nl) {
                if (files && lic) {
                    p->st = realloc(p->st, sizeof *p->st * (size_t)(p->nst + 1));
                    struct stanza *s = &p->st[p->nst++];
                    s->nglobs = 0;
                    s->globs = NULL;
                    for (char *g = strtok_r(files, " \t\n", &save); g; g = strtok_r(NULL, " \t\n", &save)) {
                        s->globs = realloc(s->globs, sizeof(char *) * (size_t)(s->nglobs + 1));
                        s->globs[s->nglobs++] = xstrdup(g);
                    }
                    s->copyright = clean_author(copyr ? copyr : "");
                    char *l1 = lic, *e = strchr(l1, '\n');
                    if (e)
                        *e = 0;
                    s->licence = xstrdup(trim(l1));
                }
                free(files);
                free(copyr);
                free(lic);
                files = copyr = lic = NULL;
                if (!nl)
                    break;
                line = nl + 1;
                continue;
            }
            if (cont) {
                if (acc) {
                    size_t l = strlen(line);
                    acc = realloc(acc, accl + l + 2);
                    acc[accl++] = '\n';
                    memcpy(acc + accl, line, l + 1);
                    accl += l;
                }
            } else {
                char *colon = strchr(line, ':');
                if (colon) {
                    *colon = 0;
                    field = xstrdup(line);
                    acc = xstrdup(trim(colon + 1));
                    accl = strlen(acc);
                }
            }
            line = nl + 1;
        }
        free(field);
        free(acc);
        free(lines);
    } else {
        /* old free-form file: guess the licence by keywords */
        static const struct { const char *kw, *name; } kws[] = {
            { "Public Domain Dedication", "public-domain" },
            { "public domain", "public-domain" },
            { "CC-BY-SA", "CC-BY-SA" },
            { "GPL-3", "GPL-3+" },
            { "GPLv3", "GPL-3+" },
            { "version 3 of the License", "GPL-3+" },
            { "LGPL", "LGPL" },
            { "version 2 of the License", "GPL-2+" },
            { "GPL-2", "GPL-2+" },
            { "General Public License", "GPL" },
            { NULL, NULL },
        };
        for (int i = 0; kws[i].kw; i++)
            if (strcasestr(text, kws[i].kw)) {
                p->fallback_licence = xstrdup(kws[i].name);
                break;
            }
    }
    free(text);
}

/* 1 when glob matches some trailing part of rel; with loose set, trailing parts of the glob that still
 * name a directory (data/images/cosmos/STAR becomes cosmos/STAR) are tried too. */
static int glob_match(const char *glob, const char *rel, int loose)
{
    for (const char *g = glob; g; g = strchr(g, '/') ? strchr(g, '/') + 1 : NULL) {
        if (g != glob && (!loose || !strchr(g, '/')))
            break;
        for (const char *suf = rel; suf; suf = strchr(suf, '/') ? strchr(suf, '/') + 1 : NULL)
            if (!fnmatch(g, suf, 0))
                return 1;
    }
    return 0;
}

/* DEP-5 globs are relative to the source tree, installed paths are not: match every suffix of the
 * installed path; the last matching paragraph wins.  When nothing matches, the globs' own trailing
 * directories are tried (source data/images/cosmos/ installed as backgrounds/cosmos/). */
static void attribution(const pkg_t *p, const char *rel, const char **author, const char **licence)
{
    *author = p->author && *p->author ? p->author : NULL;
    *licence = p->licence && *p->licence ? p->licence : NULL;
    if (p->dep5 && (!*author || !*licence)) {
        const struct stanza *hit = NULL;
        for (int loose = 0; loose < 2 && !hit; loose++)
            for (int i = 0; i < p->nst; i++)
                for (int g = 0; g < p->st[i].nglobs; g++)
                    if (glob_match(p->st[i].globs[g], rel, loose)) {
                        hit = &p->st[i];
                        break;
                    }
        if (hit) {
            if (!*author && *hit->copyright)
                *author = hit->copyright;
            if (!*licence)
                *licence = hit->licence;
        }
    }
    if (!*licence)
        *licence = p->fallback_licence ? p->fallback_licence : "see copyright file";
    if (!*author)
        *author = "see copyright file";
}

static pkg_t *find_pkg(const char *name)
{
    for (int i = 0; i < n_pkg; i++)
        if (!strcmp(pkgs[i].pkg, name))
            return &pkgs[i];
    return NULL;
}

/* ----------------------------------------------------------------------- features */

static int dihedral_src(int k, int y, int x, int n)
{
    int m = n - 1;
    switch (k) {
    case 0: return y * n + x;
    case 1: return y * n + (m - x);
    case 2: return (m - y) * n + x;
    case 3: return (m - y) * n + (m - x);
    case 4: return x * n + y;
    case 5: return (m - x) * n + y;
    case 6: return x * n + (m - y);
    default: return (m - x) * n + (m - y);
    }
}

static void normalise(float *v, int n)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    s /= n;
    for (int i = 0; i < n; i++) {
        v[i] -= (float)s;
        ss += (double)v[i] * v[i];
    }
    double norm = sqrt(ss);
    for (int i = 0; i < n; i++)
        v[i] = norm > 1e-6 ? (float)(v[i] / norm) : 0.0f;
}

static void make_variants(cand_t *c)
{
    c->var = xmalloc(sizeof(float) * (8 * TN + 8 * T4N));
    float v4[T4N];
    for (int y = 0; y < T4; y++)
        for (int x = 0; x < T4; x++) {
            float s = 0;
            for (int yy = 0; yy < 4; yy++)
                for (int xx = 0; xx < 4; xx++)
                    s += c->v[(y * 4 + yy) * TH + x * 4 + xx];
            v4[y * T4 + x] = s;
        }
    normalise(v4, T4N);
    for (int k = 0; k < 8; k++) {
        for (int y = 0; y < TH; y++)
            for (int x = 0; x < TH; x++)
                c->var[k * TN + y * TH + x] = c->v[dihedral_src(k, y, x, TH)];
        for (int y = 0; y < T4; y++)
            for (int x = 0; x < T4; x++)
                c->var[8 * TN + k * T4N + y * T4 + x] = v4[dihedral_src(k, y, x, T4)];
    }
}

/* Loads one candidate: size, grey statistics and the dedup thumbnail. */
static void extract(cand_t *c)
{
    c->have = 1;
    c->ok = 0;
    VipsImage *hdr = vips_image_new_from_file(c->abs, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (!hdr) {
        fprintf(stderr, "dataprep: skip %s: %s", c->rel, vips_error_buffer());
        vips_error_clear();
        return;
    }
    c->w = hdr->Xsize;
    c->h = hdr->Ysize;
    g_object_unref(hdr);
    if ((c->w < c->h ? c->w : c->h) < MIN_ANY_SIDE || (c->w > c->h ? c->w : c->h) > MAX_SIDE)
        return; /* never usable (see usable()): do not spend a full decode on it */

    VipsImage *t[6] = { 0 };
    unsigned char *px = NULL;
    size_t sz = 0;
    int fail = vips_thumbnail(c->abs, &t[0], 128, "height", 128, "size", VIPS_SIZE_FORCE, NULL) ||
               vips_colourspace(t[0], &t[1], VIPS_INTERPRETATION_sRGB, NULL);
    if (!fail) {
        if (vips_image_hasalpha(t[1]))
            fail = vips_flatten(t[1], &t[2], "background", vips_array_double_newv(1, 255.0), NULL);
        else
            fail = vips_copy(t[1], &t[2], NULL);
    }
    if (!fail)
        fail = vips_colourspace(t[2], &t[3], VIPS_INTERPRETATION_B_W, NULL) ||
               vips_extract_band(t[3], &t[4], 0, NULL) || vips_cast_uchar(t[4], &t[5], NULL) ||
               !(px = vips_image_write_to_memory(t[5], &sz));
    for (int i = 0; i < 6; i++)
        if (t[i])
            g_object_unref(t[i]);
    if (fail || sz != 128 * 128) {
        fprintf(stderr, "dataprep: skip %s: %s", c->rel, vips_error_buffer());
        vips_error_clear();
        g_free(px);
        return;
    }
    double s = 0, ss = 0;
    int edges = 0;
    for (int i = 0; i < 128 * 128; i++) {
        s += px[i];
        ss += (double)px[i] * px[i];
    }
    for (int y = 0; y < 127; y++)
        for (int x = 0; x < 127; x++) {
            int g = abs(px[y * 128 + x + 1] - px[y * 128 + x]) + abs(px[(y + 1) * 128 + x] - px[y * 128 + x]);
            edges += g > 24;
        }
    c->mean = (float)(s / 16384);
    c->sd = (float)sqrt(fmax(0, ss / 16384 - (s / 16384) * (s / 16384)));
    c->edge = (float)edges / (127 * 127);
    for (int y = 0; y < TH; y++)
        for (int x = 0; x < TH; x++) {
            float a = 0;
            for (int yy = 0; yy < 8; yy++)
                for (int xx = 0; xx < 8; xx++)
                    a += px[(y * 8 + yy) * 128 + x * 8 + xx];
            c->v[y * TH + x] = a / 64;
        }
    normalise(c->v, TN);
    {
        float m[DN];
        for (int y = 0; y < DH; y++)
            for (int x = 0; x < DH; x++) {
                float a = 0;
                for (int yy = 0; yy < 4; yy++)
                    for (int xx = 0; xx < 4; xx++)
                        a += px[(y * 4 + yy) * 128 + x * 4 + xx];
                m[y * DH + x] = a / 16;
            }
        for (int y = 0; y < DH; y++)
            for (int x = 0; x < DH; x++) {
                float a = 0;
                int n = 0;
                for (int yy = y - 1; yy <= y + 1; yy++)
                    for (int xx = x - 1; xx <= x + 1; xx++)
                        if (yy >= 0 && yy < DH && xx >= 0 && xx < DH) {
                            a += m[yy * DH + xx];
                            n++;
                        }
                c->d[y * DH + x] = m[y * DH + x] - a / n;
            }
        normalise(c->d, DN);
    }
    g_free(px);
    c->ok = 1;
}

/* Feature cache: one binary record per file, keyed by package/path, size and mtime. */
typedef struct {
    char key[480];
    int64_t size, mtime;
    int32_t ok, w, h;
    float mean, sd, edge, v[TN], d[DN];
} cache_rec;

static void cache_key(const cand_t *c, char *key, int64_t *size, int64_t *mtime)
{
    struct stat st;
    snprintf(key, 480, "%s/%s", c->pkg, c->rel);
    *size = *mtime = -1;
    if (!stat(c->abs, &st)) {
        *size = st.st_size;
        *mtime = st.st_mtime;
    }
}

static int cmp_rec_key(const void *a, const void *b)
{
    return strcmp(((const cache_rec *)a)->key, ((const cache_rec *)b)->key);
}

static void features(const char *cache_path, int need_all)
{
    cache_rec *recs = NULL;
    size_t nrec = 0;
    FILE *f = cache_path ? fopen(cache_path, "rb") : NULL;
    if (f) {
        char magic[8];
        if (fread(magic, 1, 8, f) == 8 && !memcmp(magic, "PSDPv2\n", 8)) {
            cache_rec r;
            while (fread(&r, sizeof r, 1, f) == 1) {
                recs = realloc(recs, sizeof r * (nrec + 1));
                recs[nrec++] = r;
            }
        }
        fclose(f);
        qsort(recs, nrec, sizeof *recs, cmp_rec_key);
    }
    int todo = 0, hits = 0;
    for (int i = 0; i < n_cand; i++) {
        cand_t *c = &cand[i];
        if (!need_all && strchr(c->flags, 'd'))
            continue;
        cache_rec key;
        int64_t size, mtime;
        cache_key(c, key.key, &size, &mtime);
        cache_rec *r = nrec ? bsearch(&key, recs, nrec, sizeof *recs, cmp_rec_key) : NULL;
        if (r && r->size == size && r->mtime == mtime) {
            c->have = 1;
            c->ok = r->ok;
            c->w = r->w;
            c->h = r->h;
            c->mean = r->mean;
            c->sd = r->sd;
            c->edge = r->edge;
            memcpy(c->v, r->v, sizeof c->v);
            memcpy(c->d, r->d, sizeof c->d);
            hits++;
        } else
            todo++;
    }
    fprintf(stderr, "dataprep: features: %d cached, %d to compute\n", hits, todo);
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n_cand; i++) {
        cand_t *c = &cand[i];
        if (c->have || (!need_all && strchr(c->flags, 'd')))
            continue;
        extract(c);
    }
    if (todo && cache_path) {
        /* merge: old records not seen now are kept, so quick and full share one cache */
        cache_rec *all = xmalloc(sizeof *all * (nrec + (size_t)n_cand));
        size_t n = 0;
        for (int i = 0; i < n_cand; i++) {
            cand_t *c = &cand[i];
            if (!c->have)
                continue;
            cache_rec *r = &all[n++];
            memset(r, 0, sizeof *r);
            cache_key(c, r->key, &r->size, &r->mtime);
            r->ok = c->ok;
            r->w = c->w;
            r->h = c->h;
            r->mean = c->mean;
            r->sd = c->sd;
            r->edge = c->edge;
            memcpy(r->v, c->v, sizeof r->v);
            memcpy(r->d, c->d, sizeof r->d);
        }
        qsort(all, n, sizeof *all, cmp_rec_key);
        size_t nnew = n;
        for (size_t i = 0; i < nrec; i++)
            if (!bsearch(&recs[i], all, nnew, sizeof *all, cmp_rec_key))
                all[n++] = recs[i];
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", cache_path);
        FILE *o = fopen(tmp, "wb");
        if (o) {
            fwrite("PSDPv2\n", 1, 8, o);
            fwrite(all, sizeof *all, n, o);
            if (fclose(o) == 0)
                rename(tmp, cache_path);
        }
        free(all);
    }
    free(recs);
    for (int i = 0; i < n_cand; i++)
        if (cand[i].have && cand[i].ok)
            make_variants(&cand[i]);
}

/* Correlation of the detail maps of a and of dihedral transform k of b. */
static float detail_corr(const cand_t *a, const cand_t *b, int k)
{
    float e = 0;
    for (int y = 0; y < DH; y++)
        for (int x = 0; x < DH; x++)
            e += a->d[y * DH + x] * b->d[dihedral_src(k, y, x, DH)];
    return e;
}

/* Near-duplicate score of a and b under the best of the 8 dihedral transforms: the 16x16 grey
 * correlation; when detail is set, a pair whose 32x32 detail maps correlate less than thr_detail
 * scores that detail correlation instead, so that two pictures that merely share a layout (a disc
 * on white, a horizon) are not near-duplicates.
 * Returns -1 when the 4x4 pre-test (pre) fails for every transform. */
static float similarity2(const cand_t *a, const cand_t *b, double pre, int detail)
{
    const float *a4 = a->var + 8 * TN, *b4 = b->var + 8 * TN;
    float best = -1;
    for (int k = 0; k < 8; k++) {
        float d = 0;
        for (int i = 0; i < T4N; i++)
            d += a4[i] * b4[k * T4N + i];
        if (d < pre)
            continue;
        const float *bv = b->var + k * TN;
        float e = 0;
        for (int i = 0; i < TN; i++)
            e += a->v[i] * bv[i];
        if (detail && e > best && e >= thr_dup) {
            float dc = detail_corr(a, b, k);
            if (dc < thr_detail)
                e = dc < e ? dc : e;
        }
        if (e > best)
            best = e;
    }
    return best;
}

static float similarity(const cand_t *a, const cand_t *b, double pre)
{
    return similarity2(a, b, pre, 1);
}

/* ---------------------------------------------------------------------- selection */

static void group_of(cand_t *c)
{
    const char *base = strrchr(c->rel, '/');
    base = base ? base + 1 : c->rel;
    char buf[1024];
    if (!strcmp(c->gmode, "pkg"))
        snprintf(buf, sizeof buf, "%s", c->pkg);
    else if (!strcmp(c->gmode, "dir"))
        snprintf(buf, sizeof buf, "%s:%.*s", c->pkg, (int)(base - c->rel), c->rel);
    else if (!strcmp(c->gmode, "stem")) {
        int n = 0;
        while (base[n] && ((base[n] >= 'a' && base[n] <= 'z') || (base[n] >= 'A' && base[n] <= 'Z')))
            n++;
        snprintf(buf, sizeof buf, "%s:%.*s%.*s", c->pkg, (int)(base - c->rel), c->rel, n, base);
    } else
        snprintf(buf, sizeof buf, "-%s", c->rel); /* no group: never a hard negative */
    c->group = xstrdup(buf);
}

/* The name a work's variants share: the file name without digits and without tokens that name a
 * variant (bw, alt, simple, male, ...), in its package. Variants of one drawing or frames of one
 * sprite (cone2/cone3, pear_simple/pear_simple_bw, void-sprite-adult-00/-10) are the same work for
 * copy detection, so none of them may serve as a negative for another. */
static void variant_key(const cand_t *c, char *out, size_t n)
{
    static const char *const variant_tokens[] = {
        "bw", "alt", "simple", "color", "colour", "colored", "coloured", "mono", "outline", "lineart", "black",
        "white", "small", "big", "large", "sm", "lg", "icon", "thumb", "adult", "child", "male", "female", "left",
        "right", "top", "bottom", "front", "back", "v", NULL};
    const char *base = strrchr(c->rel, '/');
    base = base ? base + 1 : c->rel;
    const char *ext = strrchr(base, '.');
    size_t len = ext ? (size_t)(ext - base) : strlen(base), o = (size_t)snprintf(out, n, "%s:", c->pkg);
    char tok[256];
    size_t t = 0;
    for (size_t i = 0; i <= len; i++) {
        char ch = i < len ? base[i] : 0;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch >= 'a' && ch <= 'z') {
            if (t < sizeof tok - 1)
                tok[t++] = ch;
            continue;
        }
        if (ch >= '0' && ch <= '9')
            continue; /* digits number the variants: dropped, the token goes on */
        tok[t] = 0;
        int variant = t == 0;
        for (int k = 0; !variant && variant_tokens[k]; k++)
            variant = !strcmp(tok, variant_tokens[k]);
        if (!variant && o + t + 2 < n)
            o += (size_t)snprintf(out + o, n - o, "%s_", tok);
        t = 0;
    }
}

/* True if c is a variant (by variant_key) of a corpus work. */
static int variant_of_corpus(const cand_t *c, cand_t **ord, int n_main)
{
    char a[512], b[512];
    variant_key(c, a, sizeof a);
    for (int j = 0; j < n_main; j++)
        if (ord[j]->role == ROLE_CORPUS && !strcmp(ord[j]->pkg, c->pkg)) {
            variant_key(ord[j], b, sizeof b);
            if (!strcmp(a, b))
                return 1;
        }
    return 0;
}

static void make_name(cand_t *c)
{
    const char *r = c->rel;
    static const char *strip[] = { "usr/share/games/", "usr/share/doc/", "usr/share/", NULL };
    for (int i = 0; strip[i]; i++)
        if (!strncmp(r, strip[i], strlen(strip[i]))) {
            r += strlen(strip[i]);
            break;
        }
    /* a leading directory named like the package adds nothing */
    size_t pl = strlen(c->pkg);
    if (!strncmp(r, c->pkg, pl) && r[pl] == '/')
        r += pl + 1;
    const char *ext = ext_of(c->rel);
    size_t stemlen = strlen(r) - (*ext ? strlen(ext) + 1 : 0);
    char buf[1200];
    size_t o = (size_t)snprintf(buf, sizeof buf, "%s--", c->pkg);
    for (size_t i = 0; i < stemlen && o < sizeof buf - 16; i++) {
        char ch = r[i];
        if (ch == '/')
            ch = '_';
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                   ch == '_' || ch == '-' || ch == '+'))
            ch = '-';
        buf[o++] = ch;
    }
    buf[o] = 0;
    char e[16];
    snprintf(e, sizeof e, "%s", keep_format(ext) ? ext : "png");
    for (char *p = e; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!strcmp(e, "jpeg"))
        strcpy(e, "jpg");
    strcat(buf, ".");
    strcat(buf, e);
    c->name = xstrdup(buf);
}

static int cmp_order(const void *a, const void *b)
{
    const cand_t *x = *(cand_t *const *)a, *y = *(cand_t *const *)b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return strcmp(x->rel, y->rel);
}

static int usable(const cand_t *c, int min_side)
{
    if (!c->have || !c->ok)
        return 0;
    int lo = c->w < c->h ? c->w : c->h, hi = c->w < c->h ? c->h : c->w;
    if (lo < min_side || hi > MAX_SIDE)
        return 0;
    if ((double)hi / lo > 3.2) /* banners and strips */
        return 0;
    if (c->sd < 12 || c->edge < 0.004) /* near-blank */
        return 0;
    return 1;
}

static void select_roles(void)
{
    int is_full = !strcmp(mode, "full");
    cand_t **ord = xmalloc(sizeof *ord * (size_t)n_cand);
    int n_main = 0;
    for (int i = 0; i < n_cand; i++) {
        cand_t *c = &cand[i];
        uint64_t x = seed ^ fnv1a(c->pkg) ^ (fnv1a(c->rel) * 3);
        c->order = splitmix64(&x);
        c->usable = !strchr(c->flags, 'd') && usable(c, 128);
        if (c->usable)
            ord[n_main++] = c;
    }
    qsort(ord, (size_t)n_main, sizeof *ord, cmp_order);

    /* 1. greedy near-duplicate removal in seeded order (all pairs computed in parallel) */
    unsigned char *dup = calloc((size_t)n_main, 1);
    int *first_dup = xmalloc(sizeof(int) * (size_t)n_main);
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < n_main; i++) {
        first_dup[i] = -1;
        for (int j = 0; j < i; j++)
            if (similarity(ord[i], ord[j], thr_pre) >= thr_dup) {
                /* record all earlier near-duplicates lazily: the greedy pass below re-checks */
                first_dup[i] = j;
                break;
            }
    }
    int kept = 0;
    for (int i = 0; i < n_main; i++) {
        if (first_dup[i] < 0) {
            ord[i]->kept = 1;
            kept++;
            continue;
        }
        /* near-duplicate of something earlier: dropped if any earlier kept one matches */
        int drop = -1;
        for (int j = first_dup[i]; j < i && drop < 0; j++)
            if (ord[j]->kept && similarity(ord[i], ord[j], thr_pre) >= thr_dup)
                drop = j;
        if (drop >= 0) {
            dup[i] = 1;
            ord[i]->dup_of = (int)(ord[drop] - cand);
        }
        else {
            ord[i]->kept = 1;
            kept++;
        }
    }
    fprintf(stderr, "dataprep: %d usable main candidates, %d distinct after dedup\n", n_main, kept);

    /* 2. corpus: the first full-quota kept candidates of every rule; quick takes a prefix */
    int n_rules = 0;
    char **rules = NULL;
    for (int i = 0; i < n_cand; i++) {
        int seen = 0;
        for (int r = 0; r < n_rules; r++)
            if (!strcmp(rules[r], cand[i].rule))
                seen = 1;
        if (!seen) {
            rules = realloc(rules, sizeof(char *) * (size_t)(n_rules + 1));
            rules[n_rules++] = cand[i].rule;
        }
    }
    for (int r = 0; r < n_rules; r++) {
        int nf = 0, nq = 0;
        for (int i = 0; i < n_main; i++) {
            cand_t *c = ord[i];
            if (!c->kept || strcmp(c->rule, rules[r]))
                continue;
            if (nf < c->qfull) {
                c->role = ROLE_CORPUS;
                nf++;
                if (nq < c->qquick) {
                    c->quick = 1;
                    nq++;
                }
            }
        }
    }

    /* 3. hard negatives: other members of a group that holds a corpus work, clearly distinct from
     *    every corpus work of that group; taken round-robin over groups so no group dominates */
    int n_hn = 0, n_hnq = 0;
    {
        int *gid = xmalloc(sizeof(int) * (size_t)n_main);
        int n_groups = 0;
        for (int i = 0; i < n_main; i++) {
            gid[i] = -1;
            for (int j = 0; j < i; j++)
                if (!strcmp(ord[j]->group, ord[i]->group)) {
                    gid[i] = gid[j];
                    break;
                }
            if (gid[i] < 0)
                gid[i] = n_groups++;
        }
        int *next = calloc((size_t)n_groups, sizeof(int)); /* scan position per group */
        cand_t **elig = xmalloc(sizeof *elig * (size_t)(n_main + 1));
        int n_elig = 0;
        int progress = 1;
        while (progress && n_hn < hn_full) {
            progress = 0;
            for (int g = 0; g < n_groups && n_hn < hn_full; g++) {
                for (int i = next[g]; i < n_main; i++) {
                    cand_t *c = ord[i];
                    next[g] = i + 1;
                    if (gid[i] != g || !c->kept || c->role || !strchr(c->flags, 'h') || c->group[0] == '-' ||
                        variant_of_corpus(c, ord, n_main))
                        continue;
                    int best = -1, bestq = -1, too_close = 0;
                    float bs = -2, bsq = -2;
                    for (int j = 0; j < n_main; j++) {
                        cand_t *d = ord[j];
                        if (gid[j] != g || d->role != ROLE_CORPUS)
                            continue;
                        if (similarity(c, d, -2) >= thr_hn)
                            too_close = 1;
                        float s = similarity2(c, d, -2, 0); /* the look-alike: layout similarity */
                        if (s > bs) {
                            bs = s;
                            best = j;
                        }
                        if (d->quick && s > bsq) {
                            bsq = s;
                            bestq = j;
                        }
                    }
                    if (best < 0)
                        break; /* no corpus work in this group */
                    if (too_close)
                        continue; /* too close to a corpus work to be called a different picture */
                    c->role = ROLE_HARDNEG;
                    c->similar = (int)(ord[best] - cand);
                    c->similar_q = bestq >= 0 ? (int)(ord[bestq] - cand) : -1;
                    if (bestq >= 0)
                        elig[n_elig++] = c; /* quick candidates, in selection order */
                    c->sim = bs;
                    n_hn++;
                    progress = 1;
                    break;
                }
            }
        }
        free(next);
        free(gid);
        /* quick mode: alternate photographs and other kinds so both are represented */
        int ip = 0, io = 0;
        for (int turn = 0; n_hnq < hn_quick && (ip < n_elig || io < n_elig); turn++) {
            int want_photo = turn % 2 == 0;
            int *pos = want_photo ? &ip : &io;
            while (*pos < n_elig && (!strcmp(elig[*pos]->kind, "photo")) != want_photo)
                (*pos)++;
            if (*pos < n_elig) {
                elig[*pos]->quick = 1;
                n_hnq++;
                (*pos)++;
            }
        }
        free(elig);
    }

    /* 4. outsiders: round-robin over rules, in seeded order, never near anything in corpus or hardneg */
    int n_out = 0, n_outq = 0;
    {
        int *pos = calloc((size_t)n_rules, sizeof(int));
        int progress = 1;
        while (n_out < out_full && progress) {
            progress = 0;
            for (int r = 0; r < n_rules && n_out < out_full; r++) {
                for (int i = pos[r]; i < n_main; i++) {
                    cand_t *c = ord[i];
                    pos[r] = i + 1;
                    if (!c->kept || c->role || !strchr(c->flags, 'o') || strcmp(c->rule, rules[r]) ||
                        variant_of_corpus(c, ord, n_main))
                        continue;
                    c->role = ROLE_OUTSIDER;
                    c->quick = n_outq < out_quick;
                    n_outq += c->quick;
                    n_out++;
                    progress = 1;
                    break;
                }
            }
        }
        free(pos);
    }

    /* 5. distractors (full mode): what is left, plus distractor-only rules, far from every selected image */
    int n_dis = 0;
    if (is_full) {
        cand_t **sel = xmalloc(sizeof *sel * (size_t)n_cand);
        int n_sel = 0;
        for (int i = 0; i < n_cand; i++)
            if (cand[i].role)
                sel[n_sel++] = &cand[i];
        cand_t **dis = xmalloc(sizeof *dis * (size_t)n_cand);
        int nd = 0;
        for (int i = 0; i < n_cand; i++) {
            cand_t *c = &cand[i];
            if (c->role)
                continue;
            if (strchr(c->flags, 'd') ? usable(c, 96) : (c->kept && c->usable))
                dis[nd++] = c;
        }
        qsort(dis, (size_t)nd, sizeof *dis, cmp_order);
        if (nd > distr_max)
            nd = distr_max;
        unsigned char *bad = calloc((size_t)(nd > 0 ? nd : 1), 1);
#pragma omp parallel for schedule(dynamic, 16)
        for (int i = 0; i < nd; i++)
            for (int j = 0; j < n_sel; j++)
                if (similarity(dis[i], sel[j], thr_pre) >= thr_dup) {
                    bad[i] = 1;
                    break;
                }
        for (int i = 0; i < nd; i++)
            if (!bad[i]) {
                dis[i]->role = ROLE_DISTRACTOR;
                n_dis++;
            }
        free(bad);
        free(dis);
        free(sel);
    }

    int nc = 0, ncq = 0, nh = 0, nhq = 0;
    for (int i = 0; i < n_cand; i++) {
        nc += cand[i].role == ROLE_CORPUS;
        ncq += cand[i].role == ROLE_CORPUS && cand[i].quick;
        nh += cand[i].role == ROLE_HARDNEG;
        nhq += cand[i].role == ROLE_HARDNEG && cand[i].quick;
    }
    fprintf(stderr, "dataprep: corpus %d (quick %d), hardneg %d (quick %d), outsiders %d (quick %d), distractors %d\n",
            nc, ncq, nh, nhq, n_out, n_outq, n_dis);
    free(dup);
    free(first_dup);
    free(ord);
    free(rules);
}

/* ------------------------------------------------------------------------- output */

static int in_mode(const cand_t *c)
{
    if (!c->role)
        return 0;
    if (!strcmp(mode, "full"))
        return 1;
    return c->quick && c->role != ROLE_DISTRACTOR;
}

static int write_image(const char *src, const char *dst, int keep)
{
    if (file_exists(dst))
        return 0;
    if (keep)
        return copy_file(src, dst);
    VipsImage *in = NULL, *x = NULL;
    int rc;
    const char *e = ext_of(src);
    if (!strcasecmp(e, "svg") || !strcasecmp(e, "svgz"))
        rc = vips_thumbnail(src, &in, 1600, "height", 1600, "size", VIPS_SIZE_DOWN, NULL);
    else
        rc = !(in = vips_image_new_from_file(src, NULL));
    if (!rc)
        rc = vips_copy(in, &x, NULL); /* drops nothing; keeps ICC/metadata as loaded */
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp%d.png", dst, (int)getpid());
    if (!rc)
        rc = vips_pngsave(x, tmp, "strip", TRUE, NULL);
    if (in)
        g_object_unref(in);
    if (x)
        g_object_unref(x);
    if (!rc && rename(tmp, dst))
        rc = -1;
    if (rc) {
        unlink(tmp);
        fprintf(stderr, "dataprep: cannot convert %s: %s", src, vips_error_buffer());
        vips_error_clear();
    }
    return rc;
}

static void csv_field(FILE *f, const char *s, int last)
{
    if (strpbrk(s, ",\"\n\r")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
        }
        fputc('"', f);
    } else
        fputs(s, f);
    fputc(last ? '\n' : ',', f);
}

static void title_of(const char *rel, char *out, size_t n)
{
    const char *b = strrchr(rel, '/');
    b = b ? b + 1 : rel;
    const char *dot = strrchr(b, '.');
    size_t l = dot ? (size_t)(dot - b) : strlen(b);
    size_t o = 0;
    int sp = 0;
    for (size_t i = 0; i < l && o < n - 1; i++) {
        char ch = b[i];
        if (ch == '_' || ch == '-' || ch == ' ') {
            sp = o > 0;
            continue;
        }
        if (sp && o < n - 2)
            out[o++] = ' ';
        sp = 0;
        out[o++] = ch;
    }
    out[o] = 0;
}

static void attribution_row(FILE *f, const char *path, const cand_t *c)
{
    pkg_t *p = find_pkg(c->pkg);
    const char *author = "see copyright file", *licence = "see copyright file";
    char title[512];
    title_of(c->rel, title, sizeof title);
    if (p)
        attribution(p, c->rel, &author, &licence);
    csv_field(f, path, 0);
    csv_field(f, title, 0);
    csv_field(f, author, 0);
    csv_field(f, licence, 0);
    csv_field(f, p && p->url[0] ? p->url : c->pkg, 0);
    char note[256];
    snprintf(note, sizeof note, "%s %s", c->pkg, p ? p->version : "?");
    csv_field(f, note, 1);
}

/* Removes files in dir that are not listed (the data set is exactly the current selection). */
static void prune_dir(const char *dir, char **keep, int nkeep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int found = 0;
        for (int i = 0; i < nkeep && !found; i++)
            found = !strcmp(keep[i], e->d_name);
        if (!found) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

static int cmp_cand_name(const void *a, const void *b)
{
    return strcmp((*(cand_t *const *)a)->name, (*(cand_t *const *)b)->name);
}

static void write_outputs(const char *out)
{
    char path[4200];
    for (int r = ROLE_CORPUS; r <= ROLE_DISTRACTOR; r++) {
        snprintf(path, sizeof path, "%s/%s", out, role_dir[r]);
        if (mkdirs(path)) {
            fprintf(stderr, "dataprep: cannot create %s\n", path);
            exit(1);
        }
    }
    /* unique names */
    cand_t **sel = xmalloc(sizeof *sel * (size_t)n_cand);
    int ns = 0;
    for (int i = 0; i < n_cand; i++)
        if (cand[i].role)
            sel[ns++] = &cand[i];
    qsort(sel, (size_t)ns, sizeof *sel, cmp_cand_name);
    for (int i = 1; i < ns; i++)
        if (!strcmp(sel[i]->name, sel[i - 1]->name)) {
            char buf[1400];
            const char *e = ext_of(sel[i]->name);
            snprintf(buf, sizeof buf, "%.*s~%d.%s", (int)(strlen(sel[i]->name) - strlen(e) - 1), sel[i]->name, i, e);
            sel[i]->name = xstrdup(buf);
        }

    int nerr = 0;
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : nerr)
    for (int i = 0; i < ns; i++) {
        cand_t *c = sel[i];
        if (!in_mode(c))
            continue;
        char dst[4200];
        snprintf(dst, sizeof dst, "%s/%s/%s", out, role_dir[c->role], c->name);
        if (write_image(c->abs, dst, keep_format(ext_of(c->rel)))) {
            c->role = -c->role; /* failed: leave it out of the CSV files */
            nerr++;
        }
    }
    if (nerr)
        fprintf(stderr, "dataprep: %d files could not be written (left out)\n", nerr);

    for (int r = ROLE_CORPUS; r <= ROLE_DISTRACTOR; r++) {
        char **names = xmalloc(sizeof(char *) * (size_t)(ns + 1));
        int nn = 0;
        for (int i = 0; i < ns; i++)
            if (sel[i]->role == r && in_mode(sel[i]))
                names[nn++] = sel[i]->name;
        snprintf(path, sizeof path, "%s/%s", out, role_dir[r]);
        prune_dir(path, names, nn);
        free(names);
    }

    FILE *fc, *fh, *fo, *fs;
    snprintf(path, sizeof path, "%s/corpus.csv", out);
    fc = fopen(path, "w");
    snprintf(path, sizeof path, "%s/hardneg.csv", out);
    fh = fopen(path, "w");
    snprintf(path, sizeof path, "%s/other.csv", out);
    fo = fopen(path, "w");
    snprintf(path, sizeof path, "%s/selection.tsv", out);
    fs = fopen(path, "w");
    if (!fc || !fh || !fo || !fs) {
        fprintf(stderr, "dataprep: cannot write CSV files in %s\n", out);
        exit(1);
    }
    fputs("path,title,author,license,source_url,note\n", fc);
    fputs("path,title,author,license,source_url,note\n", fo);
    fputs("path,similar_to\n", fh);
    fputs("role\trule\tkind\tgroup\tpath\tsource\twidth\theight\tsimilar_to\tsimilarity\tgrey_sd\tedge_density\n", fs);
    for (int i = 0; i < ns; i++) {
        cand_t *c = sel[i];
        if (c->role <= 0 || !in_mode(c))
            continue;
        char rel[1400];
        snprintf(rel, sizeof rel, "%s/%s", role_dir[c->role], c->name);
        attribution_row(c->role == ROLE_CORPUS ? fc : fo, rel, c);
        const char *sim = "";
        char simbuf[1400] = "";
        if (c->role == ROLE_HARDNEG) {
            int s = !strcmp(mode, "full") ? c->similar : c->similar_q;
            snprintf(simbuf, sizeof simbuf, "corpus/%s", cand[s].name);
            sim = simbuf;
            fprintf(fh, "%s,%s\n", rel, sim);
        }
        fprintf(fs, "%s\t%s\t%s\t%s\t%s\t%s/%s\t%d\t%d\t%s\t%.3f\t%.1f\t%.4f\n", role_dir[c->role], c->rule, c->kind,
                c->group, rel, c->pkg, c->rel, c->w, c->h, sim, c->role == ROLE_HARDNEG ? c->sim : 0.0, c->sd, c->edge);
    }
    fclose(fc);
    fclose(fh);
    fclose(fo);
    fclose(fs);
    snprintf(path, sizeof path, "%s/duplicates.tsv", out);
    FILE *fd = fopen(path, "w");
    if (fd) {
        fputs("dropped\tnear_duplicate_of\tsimilarity\tlayout_similarity\n", fd);
        for (int i = 0; i < n_cand; i++)
            if (cand[i].dup_of >= 0)
                fprintf(fd, "%s/%s\t%s/%s\t%.3f\t%.3f\n", cand[i].pkg, cand[i].rel, cand[cand[i].dup_of].pkg,
                        cand[cand[i].dup_of].rel, similarity(&cand[i], &cand[cand[i].dup_of], -2),
                        similarity2(&cand[i], &cand[cand[i].dup_of], -2, 0));
        fclose(fd);
    }
    if (report_pairs > 0) {
        /* audit aid: selected images that are close to each other but were not merged */
        snprintf(path, sizeof path, "%s/near-pairs.tsv", out);
        FILE *fp = fopen(path, "w");
        if (fp) {
            fputs("a\tb\tsimilarity\tlayout_similarity\n", fp);
            for (int i = 0; i < ns; i++)
                for (int j = i + 1; j < ns; j++) {
                    if (sel[i]->role <= 0 || sel[j]->role <= 0 || !in_mode(sel[i]) || !in_mode(sel[j]) ||
                        sel[i]->role == ROLE_DISTRACTOR || sel[j]->role == ROLE_DISTRACTOR)
                        continue;
                    float sv = similarity(sel[i], sel[j], -2);
                    if (sv >= report_pairs)
                        fprintf(fp, "%s/%s\t%s/%s\t%.3f\t%.3f\n", role_dir[sel[i]->role], sel[i]->name,
                                role_dir[sel[j]->role], sel[j]->name, sv, similarity2(sel[i], sel[j], -2, 0));
                }
            fclose(fp);
        }
    }
    snprintf(path, sizeof path, "%s/MODE", out);
    FILE *fm = fopen(path, "w");
    if (fm) {
        fprintf(fm, "%s\n", mode);
        fclose(fm);
    }
    free(sel);
}

/* ---------------------------------------------------------------- photos-jpeg/ */

/* 1 progressive, 0 baseline/extended, -1 not a JPEG we can parse. */
static int jpeg_progressive(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int res = -1;
    unsigned char h[4];
    if (fread(h, 1, 2, f) != 2 || h[0] != 0xFF || h[1] != 0xD8)
        goto done;
    for (;;) {
        int c = fgetc(f);
        if (c == EOF)
            break;
        if (c != 0xFF)
            continue;
        int m;
        do
            m = fgetc(f);
        while (m == 0xFF);
        if (m == EOF)
            break;
        if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01)
            continue;
        if (m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE) {
            res = 1;
            break;
        }
        if (m == 0xC0 || m == 0xC1 || m == 0xC3 || m == 0xC9 || m == 0xCB) {
            res = 0;
            break;
        }
        if (m == 0xDA || m == 0xD9)
            break;
        if (fread(h, 1, 2, f) != 2)
            break;
        long len = (h[0] << 8) | h[1];
        if (len < 2 || fseek(f, len - 2, SEEK_CUR))
            break;
    }
done:
    fclose(f);
    return res;
}

typedef struct {
    char *rule, *pkg, *abs, *rel, *name;
    int cap, w, h, prog, reencode;
    uint64_t order;
} photo_t;

static int cmp_photo(const void *a, const void *b)
{
    const photo_t *x = a, *y = b;
    int r = strcmp(x->rule, y->rule);
    if (r)
        return r;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return strcmp(x->rel, y->rel);
}

static int cmp_photo_area(const void *a, const void *b)
{
    const photo_t *x = *(photo_t *const *)a, *y = *(photo_t *const *)b;
    long ax = (long)x->w * x->h, ay = (long)y->w * y->h;
    if (ax != ay)
        return ax > ay ? -1 : 1;
    return strcmp(x->rel, y->rel);
}

static void photos(const char *list, const char *out, int min_prog)
{
    FILE *f = fopen(list, "r");
    if (!f) {
        fprintf(stderr, "dataprep: cannot read %s\n", list);
        exit(1);
    }
    photo_t *ph = NULL;
    int n = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        char *fl[8] = { 0 };
        if (line[0] == '#' || split_tabs(line, fl, 8) < 5)
            continue;
        ph = realloc(ph, sizeof *ph * (size_t)(n + 1));
        photo_t *p = &ph[n++];
        memset(p, 0, sizeof *p);
        p->rule = xstrdup(fl[0]);
        p->pkg = xstrdup(fl[1]);
        p->cap = atoi(fl[2]);
        p->abs = xstrdup(fl[3]);
        p->rel = xstrdup(fl[4]);
        uint64_t x = seed ^ fnv1a(p->pkg) ^ (fnv1a(p->rel) * 5);
        p->order = splitmix64(&x);
    }
    fclose(f);
    qsort(ph, (size_t)n, sizeof *ph, cmp_photo);
    /* cap per rule */
    photo_t **sel = xmalloc(sizeof *sel * (size_t)(n + 1));
    int ns = 0, taken = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || strcmp(ph[i].rule, ph[i - 1].rule))
            taken = 0;
        if (taken >= ph[i].cap)
            continue;
        VipsImage *im = vips_image_new_from_file(ph[i].abs, NULL);
        if (!im) {
            vips_error_clear();
            continue;
        }
        ph[i].w = im->Xsize;
        ph[i].h = im->Ysize;
        g_object_unref(im);
        ph[i].prog = jpeg_progressive(ph[i].abs);
        if (ph[i].prog < 0)
            continue;
        cand_t tmp = { 0 };
        tmp.pkg = ph[i].pkg;
        tmp.rel = ph[i].rel;
        make_name(&tmp);
        ph[i].name = tmp.name;
        sel[ns++] = &ph[i];
        taken++;
    }
    int nprog = 0;
    for (int i = 0; i < ns; i++)
        nprog += sel[i]->prog == 1;
    /* too few progressive files in the archive: re-encode some baseline ones, mixed sizes */
    if (nprog < min_prog) {
        photo_t **by = xmalloc(sizeof *by * (size_t)(ns + 1));
        int nb = 0;
        for (int i = 0; i < ns; i++)
            if (sel[i]->prog == 0)
                by[nb++] = sel[i];
        qsort(by, (size_t)nb, sizeof *by, cmp_photo_area);
        int need = min_prog - nprog, need0 = need;
        for (int k = 0; k < nb && need > 0; k++) {
            /* evenly spaced in size order, so large and small files alike become progressive */
            int idx = (int)((long)k * nb / need0);
            if (idx >= nb || by[idx]->reencode)
                continue;
            by[idx]->reencode = 1;
            char buf[1400];
            snprintf(buf, sizeof buf, "%.*s--progressive-q90.jpg", (int)(strlen(by[idx]->name) - 4), by[idx]->name);
            by[idx]->name = xstrdup(buf);
            need--;
        }
        free(by);
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/photos-jpeg", out);
    mkdirs(dir);
    char **names = xmalloc(sizeof(char *) * (size_t)(ns + 1));
    int big = 0, prog = 0;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < ns; i++) {
        char dst[4400];
        snprintf(dst, sizeof dst, "%s/%s", dir, sel[i]->name);
        if (file_exists(dst))
            continue;
        if (!sel[i]->reencode)
            copy_file(sel[i]->abs, dst);
        else {
            VipsImage *im = vips_image_new_from_file(sel[i]->abs, NULL);
            char tmp[4500];
            snprintf(tmp, sizeof tmp, "%s.tmp.jpg", dst);
            if (!im || vips_jpegsave(im, tmp, "Q", 90, "interlace", TRUE, "optimize_coding", TRUE, NULL) ||
                rename(tmp, dst)) {
                fprintf(stderr, "dataprep: cannot re-encode %s: %s", sel[i]->abs, vips_error_buffer());
                vips_error_clear();
                unlink(tmp);
            }
            if (im)
                g_object_unref(im);
        }
    }
    FILE *fl = NULL;
    {
        char p[4400];
        snprintf(p, sizeof p, "%s/photos-jpeg.csv", out);
        fl = fopen(p, "w");
        if (fl)
            fputs("path,width,height,progressive,reencoded,source\n", fl);
    }
    for (int i = 0; i < ns; i++) {
        names[i] = sel[i]->name;
        int pr = sel[i]->reencode || sel[i]->prog == 1;
        big += sel[i]->w >= 2000;
        prog += pr;
        if (fl)
            fprintf(fl, "photos-jpeg/%s,%d,%d,%d,%d,%s/%s\n", sel[i]->name, sel[i]->w, sel[i]->h, pr, sel[i]->reencode,
                    sel[i]->pkg, sel[i]->rel);
    }
    if (fl)
        fclose(fl);
    prune_dir(dir, names, ns);
    fprintf(stderr, "dataprep: photos-jpeg: %d files, %d at least 2000 px wide, %d progressive (%d re-encoded)\n", ns,
            big, prog, prog - nprog);
    free(names);
    free(sel);
}

/* --------------------------------------------------------------------------- main */

static void read_packages(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dataprep: cannot read %s\n", path);
        exit(1);
    }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        char *fl[8] = { 0 };
        int nf = split_tabs(line, fl, 8);
        if (line[0] == '#' || nf < 4)
            continue;
        pkgs = realloc(pkgs, sizeof *pkgs * (size_t)(n_pkg + 1));
        pkg_t *p = &pkgs[n_pkg++];
        memset(p, 0, sizeof *p);
        p->pkg = xstrdup(fl[0]);
        p->version = xstrdup(fl[1]);
        p->url = xstrdup(fl[2]);
        p->copyright = xstrdup(fl[3]);
        p->author = xstrdup(nf > 4 ? fl[4] : "");
        p->licence = xstrdup(nf > 5 ? fl[5] : "");
        parse_copyright(p);
    }
    fclose(f);
}

static void read_candidates(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dataprep: cannot read %s\n", path);
        exit(1);
    }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        char *fl[10] = { 0 };
        if (line[0] == '#' || split_tabs(line, fl, 10) < 9)
            continue;
        cand = realloc(cand, sizeof *cand * (size_t)(n_cand + 1));
        cand_t *c = &cand[n_cand++];
        memset(c, 0, sizeof *c);
        c->rule = xstrdup(fl[0]);
        c->pkg = xstrdup(fl[1]);
        c->kind = xstrdup(fl[2]);
        c->gmode = xstrdup(fl[3]);
        c->qquick = atoi(fl[4]);
        c->qfull = atoi(fl[5]);
        c->flags = xstrdup(fl[6]);
        c->abs = xstrdup(fl[7]);
        c->rel = xstrdup(fl[8]);
        c->similar = c->similar_q = c->dup_of = -1;
        group_of(c);
        make_name(c);
    }
    fclose(f);
}

static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
    (void)domain;
    (void)level;
    (void)msg;
    (void)data;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: dataprep --packages TSV --candidates TSV --photos TSV --out DIR [--mode quick|full]\n"
            "                [--cache FILE] [--seed N] [--jobs N] [--hardneg N] [--hardneg-quick N] [--outsiders N]\n"
            "                [--outsiders-quick N] [--distractors-max N] [--dup T] [--detail T] [--hn T] [--report-pairs T]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *packages = NULL, *candidates = NULL, *photolist = NULL, *out = NULL, *cache = NULL;
    int jobs = 0;
    if (VIPS_INIT(argv[0]))
        vips_error_exit(NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--packages"))
            packages = v;
        else if (!strcmp(a, "--candidates"))
            candidates = v;
        else if (!strcmp(a, "--photos"))
            photolist = v;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--cache"))
            cache = v;
        else if (!strcmp(a, "--mode"))
            mode = v;
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--jobs"))
            jobs = atoi(v);
        else if (!strcmp(a, "--hardneg"))
            hn_full = atoi(v);
        else if (!strcmp(a, "--hardneg-quick"))
            hn_quick = atoi(v);
        else if (!strcmp(a, "--outsiders"))
            out_full = atoi(v);
        else if (!strcmp(a, "--outsiders-quick"))
            out_quick = atoi(v);
        else if (!strcmp(a, "--distractors-max"))
            distr_max = atoi(v);
        else if (!strcmp(a, "--dup"))
            thr_dup = atof(v);
        else if (!strcmp(a, "--report-pairs"))
            report_pairs = atof(v);
        else if (!strcmp(a, "--detail"))
            thr_detail = atof(v);
        else if (!strcmp(a, "--hn"))
            thr_hn = atof(v);
        else
            usage();
        i++;
    }
    if (!packages || !candidates || !out || (strcmp(mode, "quick") && strcmp(mode, "full")))
        usage();
#ifdef _OPENMP
    if (jobs > 0)
        omp_set_num_threads(jobs);
#endif
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, quiet_log, NULL); /* libpng/lcms chatter on odd files */
    vips_concurrency_set(1);
    vips_cache_set_max(0);
    read_packages(packages);
    read_candidates(candidates);
    fprintf(stderr, "dataprep: %d packages, %d candidate files, mode %s\n", n_pkg, n_cand, mode);
    features(cache, !strcmp(mode, "full"));
    select_roles();
    write_outputs(out);
    if (photolist)
        photos(photolist, out, 16);
    vips_shutdown();
    return 0;
}

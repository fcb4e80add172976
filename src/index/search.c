/* search.c — index search: the global stage (PDQ), the local stage (features), probabilities, top-K. */
#include "index/index_internal.h"
#include "index/local.h"
#include "common/error.h"
#include "cpu/kernels.h"
#include "hash/hash.h"
#include "search/search.h"

#include <stdlib.h>
#include <string.h>

#include <omp.h>

/* Candidates kept from the global stage per query (beyond top_k, so that the local stage and the
 * probability can reorder them); the nearest works by PDQ, however far, that the local stage
 * verifies; and works retrieved by visual words and verified per query (PROVSCAN_LOCAL_CANDIDATES:
 * on negatives at 10^5 works their 64 verifications take about 4 ms on one core, docs/features.md). */
#define GLOBAL_KEEP 16
#define LOCAL_PDQ_NEAREST 8

typedef struct cand {
    int64_t work_id;
    uint32_t seg, record;
    uint16_t distance;
    uint8_t variant; /* of the query's PDQ variants (hash/hash.h) */
} cand;

/* Per-query global candidates, pruned as they arrive to the `keep` best distances plus every tie
 * at the boundary (ties are decided later, which needs the catalog). */
typedef struct cand_list {
    cand *v;
    size_t n, cap;
    uint32_t hist[257];
    int bound;
} cand_list;

static void cand_bound_update(cand_list *c, int keep)
{
    uint32_t acc = 0;
    for (int d = 0; d <= 256; d++) {
        acc += c->hist[d];
        if (acc >= (uint32_t)keep) {
            c->bound = d;
            return;
        }
    }
}

static int cand_push(cand_list *c, int keep, cand x)
{
    if (x.distance > c->bound)
        return 0;
    if (c->n == c->cap) {
        size_t w = 0;
        for (size_t i = 0; i < c->n; i++)
            if (c->v[i].distance <= c->bound)
                c->v[w++] = c->v[i];
        c->n = w;
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 64;
            cand *v = realloc(c->v, cap * sizeof *v);
            if (!v)
                return -1;
            c->v = v;
            c->cap = cap;
        }
    }
    c->v[c->n++] = x;
    c->hist[x.distance]++;
    cand_bound_update(c, keep);
    return 0;
}

/* Searches within this PDQ distance are radius searches (all hits, multi-index hashing where it
 * pays); wider ones, which would list most of the corpus, ask for the nearest works instead. */
#define RADIUS_SEARCH_MAX 64

/* Global stage over one segment: the records within max_distance of each query (min over its nvar
 * variant codes), or its `keep` nearest when max_distance is wide, into the queries' candidate lists. */
static provscan_status global_segment(const ps_view *view, uint32_t s, const uint8_t *qcodes, size_t nq, int nvar,
                                      int max_distance, int keep, cand_list *lists, int jobs, provscan_error *err)
{
    const ps_segment *seg = view->segs[s];
    const uint8_t *codes = ps_segment_section(seg, PS_SEC_CODES, NULL);
    const int64_t *ids = ps_segment_section(seg, PS_SEC_IDS, NULL);
    ps_hits hits;
    ps_hits_init(&hits);
    provscan_status st =
        max_distance <= RADIUS_SEARCH_MAX
            ? ps_search_radius(codes, seg->records, view->mih[s], qcodes, nq, nvar, max_distance, jobs, &hits)
            : ps_search_knn(codes, seg->records, qcodes, nq, nvar, keep, max_distance, jobs, &hits);
    for (size_t i = 0; st == PROVSCAN_OK && i < hits.n; i++) {
        const ps_hit *h = &hits.v[i];
        int64_t id = ids[h->record];
        if (ps_u64set_has(view->tombstones[s], (uint64_t)id))
            continue;
        if (cand_push(&lists[h->query], keep, (cand){id, s, h->record, h->distance, h->variant}) != 0)
            st = PROVSCAN_E_NOMEM;
    }
    ps_hits_free(&hits);
    if (st != PROVSCAN_OK)
        return ps_fail(err, st, "global search failed: %s", provscan_error_name(st));
    return PROVSCAN_OK;
}

/* One (query, work) pair to score. */
typedef struct task {
    uint32_t query, seg, record;
    int64_t work_id;
    int part;     /* the query's part verified: 0 the whole, 1.. its tiles (ps_local_part) */
    int readings; /* PS_READ_*: the query orientations to verify */
    ps_evidence ev;
    double probability;
} task;

/* Appends the pair (query part, record) unless one of tasks[first .. *n) is already that. */
static void add_task(task *tasks, size_t *n, size_t first, uint32_t query, int part, uint32_t seg, uint32_t record,
                     int64_t work_id, int distance, uint8_t variant, int readings)
{
    for (size_t j = first; j < *n; j++)
        if (tasks[j].seg == seg && tasks[j].record == record && tasks[j].part == part)
            return;
    task *t = &tasks[(*n)++];
    *t = (task){.query = query, .seg = seg, .record = record, .work_id = work_id, .part = part, .readings = readings};
    t->ev.distance = distance;
    t->ev.transform = (provscan_dihedral)(variant % PROVSCAN_DIHEDRAL_COUNT);
    t->ev.inverted = variant >= PROVSCAN_DIHEDRAL_COUNT;
}

/* A candidate of visual-word retrieval, verified with part `part` of the query: its PDQ distance is
 * not known from the global stage, so it is computed when the pair is scored. */
static void add_retrieved(task *tasks, size_t *n, size_t first, uint32_t query, int part, const ps_view *vw,
                          const ps_local_candidate *c)
{
    const int64_t *ids = ps_segment_section(vw->segs[c->seg], PS_SEC_IDS, NULL);
    add_task(tasks, n, first, query, part, c->seg, c->record, ids[c->record], -1, 0, c->readings);
}

static int cmp_match(const void *a, const void *b)
{
    const provscan_match *x = a, *y = b;
    if (x->probability != y->probability)
        return x->probability > y->probability ? -1 : 1;
    if (x->distance != y->distance)
        return x->distance - y->distance;
    return strcmp(x->path ? x->path : "", y->path ? y->path : "");
}

static char *dup_column(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? strdup((const char *)t) : NULL;
}

static void match_free(provscan_match *m)
{
    free(m->path);
    free(m->title);
    free(m->author);
    free(m->license);
    free(m->source_url);
    free(m->note);
}

/* Fills a match from the catalog row of its work; 0 if the work was deleted since the snapshot. */
static int fill_match(sqlite3_stmt *row, const task *t, provscan_match *x)
{
    sqlite3_bind_int64(row, 1, t->work_id);
    int found = sqlite3_step(row) == SQLITE_ROW;
    if (found) {
        memset(x, 0, sizeof *x);
        x->work_id = t->work_id;
        x->path = dup_column(row, 0);
        const void *sha = sqlite3_column_blob(row, 1);
        if (sha && sqlite3_column_bytes(row, 1) == 32)
            ps_hex(sha, 32, x->sha256);
        x->width = sqlite3_column_int(row, 2);
        x->height = sqlite3_column_int(row, 3);
        x->quality = sqlite3_column_int(row, 4);
        x->title = dup_column(row, 5);
        x->author = dup_column(row, 6);
        x->license = dup_column(row, 7);
        x->source_url = dup_column(row, 8);
        x->note = dup_column(row, 9);
        x->probability = t->probability;
        x->kind = ps_copy_kind(&t->ev);
        x->distance = t->ev.distance;
        x->transform = t->ev.transform;
        x->inverted = t->ev.inverted;
        x->inliers = t->ev.inliers;
        x->matches = t->ev.matches;
        x->alt_inliers = t->ev.alt_inliers;
        x->mirrored = t->ev.mirrored;
        x->work_coverage = t->ev.work_coverage;
        x->query_coverage = t->ev.query_coverage;
        double ws = t->ev.work_feat_width > 0 ? (double)x->width / t->ev.work_feat_width : 1;
        for (int i = 0; i < 8; i++) {
            x->query_region[i] = t->ev.query_region[i];
            x->work_region[i] = (float)(t->ev.work_region[i] * ws);
        }
    }
    sqlite3_reset(row);
    return found;
}

provscan_status provscan_index_search(provscan_index *idx, const provscan_analysis *queries, size_t nq,
                                      const provscan_search_options *opts, provscan_results *out, provscan_error *err)
{
    return provscan_index_search_shards(&idx, 1, queries, nq, opts, out, err);
}

provscan_status provscan_index_search_shards(provscan_index *const *shards, size_t nshards,
                                             const provscan_analysis *queries, size_t nq,
                                             const provscan_search_options *opts, provscan_results *out,
                                             provscan_error *err)
{
    ps_error_clear(err);
    memset(out, 0, sizeof *out);
    int k = opts && opts->top_k > 0 ? opts->top_k : 5;
    int max_distance = opts && opts->max_distance >= 0 ? opts->max_distance : PROVSCAN_PDQ_POSSIBLE_DISTANCE;
    if (max_distance > 256)
        max_distance = 256;
    int jobs = opts && opts->jobs > 0 ? opts->jobs : omp_get_num_procs();
    int local = opts && opts->local, no_windows = opts && opts->no_windows;
    double min_probability = opts ? opts->min_probability : 0.0;
    size_t ncand = PROVSCAN_LOCAL_CANDIDATES;
    if (opts && opts->local_candidates > 0)
        ncand = (size_t)(opts->local_candidates < PROVSCAN_LOCAL_CANDIDATES_MAX ? opts->local_candidates
                                                                                : PROVSCAN_LOCAL_CANDIDATES_MAX);
    /* All shards' segments as one list: every stage below sees one corpus. */
    for (size_t i = 0; i < nshards; i++)
        if (!shards[i]->snap_loaded)
            PS_TRY(ps_snapshot_load(shards[i], 0, err));
    ps_view view;
    /* The listing compares all 16 variants (inverted tones included); the nearest works for the
     * local stage come from the 8 plain ones (a restyle is rarely also a negative). */
    uint8_t *qcodes = malloc((nq ? nq : 1) * PS_PDQ_QUERY_VARIANTS * 32);
    uint8_t *qplain = malloc((nq ? nq : 1) * PROVSCAN_DIHEDRAL_COUNT * 32);
    if (ps_view_build(shards, nshards, &view) != 0 || !qcodes || !qplain) {
        ps_view_free(&view);
        free(qcodes);
        free(qplain);
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    }
    for (size_t q = 0; q < nq; q++) {
        ps_pdq_query_variants(&queries[q].fp, qcodes + q * PS_PDQ_QUERY_VARIANTS * 32);
        memcpy(qplain + q * PROVSCAN_DIHEDRAL_COUNT * 32, qcodes + q * PS_PDQ_QUERY_VARIANTS * 32,
               PROVSCAN_DIHEDRAL_COUNT * 32);
    }
    const ps_view *vw = &view;
    int keep = k > GLOBAL_KEEP ? k : GLOBAL_KEEP;

    out->nqueries = nq;
    out->count = calloc(nq ? nq : 1, sizeof *out->count);
    out->match = calloc(nq ? nq : 1, sizeof *out->match);
    cand_list *lists = calloc(nq ? nq : 1, sizeof *lists);
    /* The nearest works by PDQ beyond the listing distance, for the local stage: a restyled copy (a
     * sketch, a cartoon filter, a heavy edit) keeps the layout PDQ sees while it loses most of the
     * visual words retrieval relies on. A wide listing distance already asks for the nearest. */
    int want_nearest = local && max_distance <= RADIUS_SEARCH_MAX;
    cand_list *nearest = want_nearest ? calloc(nq ? nq : 1, sizeof *nearest) : NULL;
    /* retrieval per query part: the whole query, then its tiles if it has them */
    enum { PARTS = PS_QUERY_PARTS };
    ps_local_candidate *retrieved = local ? calloc((nq ? nq : 1) * PARTS * ncand, sizeof *retrieved) : NULL;
    size_t *nretrieved = calloc((nq ? nq : 1) * PARTS, sizeof *nretrieved);
    /* and the whole query's windows (PS_WINDOWS), each verified with the whole query's features */
    enum { WINDOWED = PS_WINDOWS * PS_WINDOW_CANDIDATES };
    ps_local_candidate *windowed = local ? calloc((nq ? nq : 1) * WINDOWED, sizeof *windowed) : NULL;
    size_t *nwindowed = calloc(nq ? nq : 1, sizeof *nwindowed);
    task *tasks = NULL;
    size_t ntasks = 0;
    provscan_status s = PROVSCAN_OK;
    if (!out->count || !out->match || !lists || !nretrieved || !nwindowed || (local && (!retrieved || !windowed)) ||
        (want_nearest && !nearest))
        s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");

    /* Global stage: every record's PDQ distance to the query's 8 variants. */
    for (size_t q = 0; q < nq; q++) {
        if (lists)
            lists[q].bound = max_distance;
        if (nearest)
            nearest[q].bound = 256;
    }
    for (uint32_t i = 0; s == PROVSCAN_OK && i < vw->n; i++) {
        s = global_segment(vw, i, qcodes, nq, PS_PDQ_QUERY_VARIANTS, max_distance, keep, lists, jobs, err);
        if (s == PROVSCAN_OK && nearest)
            s = global_segment(vw, i, qplain, nq, PROVSCAN_DIHEDRAL_COUNT, 256, LOCAL_PDQ_NEAREST, nearest, jobs, err);
    }

    /* Local stage, retrieval: works sharing visual words with the query. */
    if (s == PROVSCAN_OK && local) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
        for (size_t qp = 0; qp < nq * PARTS; qp++) {
            const provscan_local *part = ps_local_part(queries[qp / PARTS].local, (int)(qp % PARTS));
            int windows = qp % PARTS == 0 && !no_windows; /* the whole query's, not a tile's */
            nretrieved[qp] = part ? ps_local_retrieve(vw, part, ncand, retrieved + qp * ncand,
                                                      windows ? windowed + qp / PARTS * WINDOWED : NULL,
                                                      windows ? &nwindowed[qp / PARTS] : NULL)
                                  : 0;
        }
    }
    /* Every (query, candidate) pair once: global candidates first (distinct records already), then
     * the nearest by PDQ and the retrieved ones not among them; then, for a query with tiles, what
     * each tile retrieved, verified with that tile's features; then what the whole query's windows
     * retrieved, verified with the whole query's features. */
    size_t cap_tasks = 0;
    for (size_t q = 0; s == PROVSCAN_OK && q < nq; q++) {
        size_t need = ntasks + lists[q].n + (nearest ? nearest[q].n : 0);
        for (int p = 0; p < PARTS; p++)
            need += nretrieved[q * PARTS + (size_t)p];
        need += nwindowed[q];
        if (need > cap_tasks) {
            cap_tasks = need * 2 + 64;
            task *t = realloc(tasks, cap_tasks * sizeof *t);
            if (!t) {
                s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
                break;
            }
            tasks = t;
        }
        size_t first = ntasks;
        for (size_t i = 0; i < lists[q].n; i++) {
            const cand *c = &lists[q].v[i];
            if (c->distance <= lists[q].bound)
                add_task(tasks, &ntasks, ntasks, (uint32_t)q, 0, c->seg, c->record, c->work_id, c->distance,
                         c->variant, PS_READ_BOTH);
        }
        for (size_t i = 0; nearest && i < nearest[q].n; i++) {
            const cand *c = &nearest[q].v[i];
            if (c->distance <= nearest[q].bound)
                add_task(tasks, &ntasks, first, (uint32_t)q, 0, c->seg, c->record, c->work_id, c->distance,
                         c->variant, PS_READ_BOTH);
        }
        for (int p = 0; p < PARTS; p++)
            for (size_t i = 0; i < nretrieved[q * PARTS + (size_t)p]; i++)
                add_retrieved(tasks, &ntasks, first, (uint32_t)q, p, vw, &retrieved[(q * PARTS + (size_t)p) * ncand + i]);
        for (size_t i = 0; i < nwindowed[q]; i++)
            add_retrieved(tasks, &ntasks, first, (uint32_t)q, 0, vw, &windowed[q * WINDOWED + i]);
    }

    /* Score every pair: the PDQ distance when the global stage did not give it, local verification,
     * probability. Pairs are independent, so a single query's candidates also spread over cores. */
    if (s == PROVSCAN_OK) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
        for (size_t i = 0; i < ntasks; i++) {
            task *t = &tasks[i];
            const ps_segment *seg = vw->segs[t->seg];
            const provscan_analysis *qa = &queries[t->query];
            if (t->ev.distance < 0) {
                const uint8_t *code = (const uint8_t *)ps_segment_section(seg, PS_SEC_CODES, NULL) + (size_t)t->record * 32;
                int variant;
                t->ev.distance = ps_pdq_nearest_variant(&qa->fp, code, &variant);
                t->ev.transform = (provscan_dihedral)(variant % PROVSCAN_DIHEDRAL_COUNT);
                t->ev.inverted = variant >= PROVSCAN_DIHEDRAL_COUNT;
            }
            t->ev.query_quality = qa->fp.quality;
            t->ev.work_quality = ((const uint8_t *)ps_segment_section(seg, PS_SEC_QUALITY, NULL))[t->record];
            if (local)
                ps_local_verify(seg, t->record, ps_local_part(qa->local, t->part), t->readings, &t->ev);
            t->probability = ps_copy_probability(&t->ev, t->part);
        }
    }

    /* Per query: what to list, ordered by (probability, distance, path), cut to k. */
    sqlite3_stmt **rows = calloc(nshards, sizeof *rows);
    if (!rows && s == PROVSCAN_OK)
        s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
    for (size_t i = 0; i < nshards && s == PROVSCAN_OK; i++)
        s = ps_sql_prepare(shards[i],
                           "SELECT path, sha256, width, height, quality, title, author, license, source_url, note"
                           " FROM works WHERE id = ?",
                           &rows[i], err);
    size_t t0 = 0;
    for (size_t q = 0; q < nq && s == PROVSCAN_OK; q++) {
        size_t t1 = t0;
        while (t1 < ntasks && tasks[t1].query == q)
            t1++;
        provscan_match *m = calloc(t1 - t0 + 1, sizeof *m);
        if (!m) {
            s = ps_fail(err, PROVSCAN_E_NOMEM, "out of memory");
            break;
        }
        size_t got = 0;
        int tiled = queries[q].local && queries[q].local->ntiles > 0;
        for (size_t i = t0; i < t1; i++) {
            const task *t = &tasks[i];
            int listed = t->ev.distance <= max_distance || (t->ev.verified && t->probability >= min_probability &&
                                                            t->ev.inliers > 0);
            /* a work verified with several parts of the query is listed once, with its best evidence
             * (the earlier part on a tie: the whole query before its tiles) */
            for (size_t j = t0; tiled && listed && j < t1; j++)
                if (j != i && tasks[j].seg == t->seg && tasks[j].record == t->record &&
                    (tasks[j].probability > t->probability || (tasks[j].probability == t->probability && j < i)))
                    listed = 0;
            if (listed && fill_match(rows[vw->shard[t->seg]], t, &m[got]))
                got++;
        }
        qsort(m, got, sizeof *m, cmp_match);
        for (size_t i = (size_t)k; i < got; i++)
            match_free(&m[i]);
        out->match[q] = m;
        out->count[q] = got < (size_t)k ? got : (size_t)k;
        t0 = t1;
    }
    for (size_t i = 0; rows && i < nshards; i++)
        sqlite3_finalize(rows[i]);
    free(rows);
    ps_view_free(&view);
    free(qcodes);
    free(qplain);
    if (lists)
        for (size_t q = 0; q < nq; q++)
            free(lists[q].v);
    free(lists);
    if (nearest)
        for (size_t q = 0; q < nq; q++)
            free(nearest[q].v);
    free(nearest);
    free(retrieved);
    free(nretrieved);
    free(windowed);
    free(nwindowed);
    free(tasks);
    if (s != PROVSCAN_OK)
        provscan_results_free(out);
    return s;
}

provscan_status provscan_results_merge(provscan_results *into, provscan_results *from, int top_k)
{
    if (into->nqueries != from->nqueries)
        return PROVSCAN_E_ARG;
    for (size_t q = 0; q < into->nqueries; q++) {
        size_t n = into->count[q] + from->count[q];
        if (n == 0)
            continue;
        provscan_match *m = malloc(n * sizeof *m);
        if (!m)
            return PROVSCAN_E_NOMEM;
        if (into->count[q])
            memcpy(m, into->match[q], into->count[q] * sizeof *m);
        if (from->count[q])
            memcpy(m + into->count[q], from->match[q], from->count[q] * sizeof *m);
        qsort(m, n, sizeof *m, cmp_match);
        for (size_t i = (size_t)top_k; i < n; i++)
            match_free(&m[i]);
        free(into->match[q]);
        free(from->match[q]);
        from->match[q] = NULL;
        from->count[q] = 0;
        into->match[q] = m;
        into->count[q] = n < (size_t)top_k ? n : (size_t)top_k;
    }
    return PROVSCAN_OK;
}

void provscan_results_free(provscan_results *r)
{
    if (!r)
        return;
    for (size_t q = 0; r->match && q < r->nqueries; q++) {
        for (size_t i = 0; r->count && i < r->count[q]; i++)
            match_free(&r->match[q][i]);
        free(r->match[q]);
    }
    free(r->match);
    free(r->count);
    memset(r, 0, sizeof *r);
}

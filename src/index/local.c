/* local.c — local-feature stage: query features, visual-word retrieval over segments, verification, probability. */
#include "index/local.h"
#include "index/calibration.h"
#include "common/error.h"
#include "decode/decode.h"
#include "hash/hash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Retrieval keeps works whose word overlap, normalised by the geometric mean of the two feature
 * counts, is at least this: a little above what two unrelated images share by chance (about 4
 * words of 500 x 500 descriptors over a 64k vocabulary, 0.008); partial copies can share as few as
 * 5-10 words, because only a quarter to a half of the true matching pairs land in the same leaf. */
#define PS_RETRIEVE_MIN_SCORE 0.01f
/* records per accumulator block, within a core's L2: 2 x 2 bytes each without windows (256 KiB), 2
 * orientations x PS_RETRIEVE_LANES x 2 bytes with them (256 KiB; at 10^5 works 8192 retrieved 10 %
 * faster than 16384 in 3 interleaved runs, 4096 no faster) */
#define RETRIEVE_BLOCK 65536
#define RETRIEVE_BLOCK_LANES 8192
/* lists ahead whose next postings are fetched while one is walked */
#define RETRIEVE_PREFETCH 8

/* The windows, as shares of the part's width and height (x0, y0, x1, y1): the four corners' and the
 * centre's, each PS_WINDOW_SHARE on a side. */
static const double window_rect[PS_WINDOWS][4] = {
    {0, 0, PS_WINDOW_SHARE, PS_WINDOW_SHARE},
    {1 - PS_WINDOW_SHARE, 0, 1, PS_WINDOW_SHARE},
    {0, 1 - PS_WINDOW_SHARE, PS_WINDOW_SHARE, 1},
    {1 - PS_WINDOW_SHARE, 1 - PS_WINDOW_SHARE, 1, 1},
    {(1 - PS_WINDOW_SHARE) / 2, (1 - PS_WINDOW_SHARE) / 2, (1 + PS_WINDOW_SHARE) / 2, (1 + PS_WINDOW_SHARE) / 2},
};

void ps_window_rect(int window, int width, int height, double rect[4])
{
    rect[0] = window_rect[window][0] * width;
    rect[1] = window_rect[window][1] * height;
    rect[2] = window_rect[window][2] * width;
    rect[3] = window_rect[window][3] * height;
}

/* The lanes (bit v = lane v) each feature of f counts in: lane 0, and lane 1 + w for each window w
 * holding its centre. */
static void feature_lanes(const ps_features *f, uint16_t *lanes)
{
    double rect[PS_WINDOWS][4];
    for (int w = 0; w < PS_WINDOWS; w++)
        ps_window_rect(w, f->width, f->height, rect[w]);
    for (int i = 0; i < f->n; i++) {
        uint16_t m = 1;
        double x = f->kp[i].x, y = f->kp[i].y;
        for (int w = 0; w < PS_WINDOWS; w++)
            if (x >= rect[w][0] && x < rect[w][2] && y >= rect[w][1] && y < rect[w][3])
                m |= (uint16_t)(1u << (1 + w));
        lanes[i] = m;
    }
}

provscan_status ps_local_from_image(const provscan_image *img, int source_width, int source_height, int max_features,
                                    provscan_local **out)
{
    *out = NULL;
    provscan_local *l = calloc(1, sizeof *l);
    if (!l)
        return PROVSCAN_E_NOMEM;
    ps_feature_params fp = {.max_features = max_features};
    provscan_status st = ps_features_extract(img, NULL, &fp, &l->f);
    if (st != PROVSCAN_OK || l->f.n == 0) {
        ps_local_free(l);
        return st;
    }
    l->source_width = l->query_width = source_width;
    l->source_height = l->query_height = source_height;
    uint8_t *mirrored = malloc((size_t)l->f.n * PS_DESC_BYTES);
    uint16_t *lanes = malloc((size_t)l->f.n * sizeof *lanes);
    if (!mirrored || !lanes) {
        free(mirrored);
        free(lanes);
        ps_local_free(l);
        return PROVSCAN_E_NOMEM;
    }
    for (int i = 0; i < l->f.n; i++)
        ps_desc_mirror(l->f.desc + (size_t)i * PS_DESC_BYTES, mirrored + (size_t)i * PS_DESC_BYTES);
    /* a mirrored descriptor keeps its feature's place, so both orientations share the lanes */
    feature_lanes(&l->f, lanes);
    for (int i = 0; i < l->f.n; i++)
        for (int lane = 0; lane < PS_RETRIEVE_LANES; lane++)
            l->lane_features[lane] += lanes[i] >> lane & 1;
    l->nwords[0] = ps_words_in_lanes(l->f.desc, l->f.n, lanes, PS_RETRIEVE_LANES, &l->words[0], &l->lane_tf[0]);
    l->nwords[1] = ps_words_in_lanes(mirrored, l->f.n, lanes, PS_RETRIEVE_LANES, &l->words[1], &l->lane_tf[1]);
    free(mirrored);
    free(lanes);
    if (l->nwords[0] < 0 || l->nwords[1] < 0 || ps_match_query_prepare(&l->f, &l->match) != PROVSCAN_OK) {
        ps_local_free(l);
        return PROVSCAN_E_NOMEM;
    }
    *out = l;
    return PROVSCAN_OK;
}

int ps_query_tiles(int w, int h)
{
    return (w > h ? w : h) < PS_TILE_MIN_SIDE ? 0 : PS_QUERY_TILES;
}

provscan_status ps_query_tile(const provscan_image *img, int t, int *x0, int *y0, provscan_image **out)
{
    int w = img->width, h = img->height;
    int tw = (int)ceil(w * PS_TILE_SHARE), th = (int)ceil(h * PS_TILE_SHARE);
    *x0 = t & 1 ? w - tw : 0;
    *y0 = t & 2 ? h - th : 0;
    size_t row = (size_t)w * img->channels;
    return provscan_image_from_pixels(img->pixels + (size_t)*y0 * row + (size_t)*x0 * img->channels, tw, th,
                                      img->channels, row, out);
}

provscan_status ps_local_add_tiles(provscan_local *l, const provscan_image *img)
{
    if (!l || l->ntiles)
        return PROVSCAN_OK;
    int w = img->width, h = img->height, n = ps_query_tiles(w, h);
    double sx = (double)l->source_width / w, sy = (double)l->source_height / h;
    for (int t = 0; t < n; t++) {
        int x0, y0;
        provscan_image *part = NULL;
        provscan_status st = ps_query_tile(img, t, &x0, &y0, &part);
        if (st != PROVSCAN_OK)
            return st;
        int tw = part->width, th = part->height;
        /* the tile's size and place in full-resolution pixels, so regions and coverages come out in
         * the query's own terms */
        int ox = (int)lround(x0 * sx), oy = (int)lround(y0 * sy);
        int sw = (int)lround((x0 + tw) * sx) - ox, sh = (int)lround((y0 + th) * sy) - oy;
        provscan_local *tl = NULL;
        st = ps_local_from_image(part, sw > 0 ? sw : 1, sh > 0 ? sh : 1, PS_QUERY_FEATURES, &tl);
        provscan_image_free(part);
        if (st != PROVSCAN_OK && st != PROVSCAN_E_TOO_SMALL)
            return st;
        if (!tl)
            continue;
        tl->origin_x = ox;
        tl->origin_y = oy;
        tl->query_width = l->query_width;
        tl->query_height = l->query_height;
        l->tile[l->ntiles++] = tl;
    }
    return PROVSCAN_OK;
}

static int is_dark(const uint8_t *px, int channels)
{
    for (int c = 0; c < channels; c++)
        if (px[c] > PS_DARK_LEVEL)
            return 0;
    return 1;
}

/* Pixel index of the k-th of the 2w + 2h - 4 border pixels of a w x h picture (w, h >= 2): the top
 * row, the bottom row, then the left and right columns between them. */
static size_t border_pixel(size_t w, size_t h, size_t k)
{
    if (k < w)
        return k;
    if (k < 2 * w)
        return (h - 1) * w + (k - w);
    k -= 2 * w;
    return (1 + k / 2) * w + (k % 2 ? w - 1 : 0);
}

provscan_image *ps_whiten_dark_background(const provscan_image *img)
{
    int w = img->width, h = img->height, ch = img->channels;
    if (w < 3 || h < 3)
        return NULL;
    size_t n = (size_t)w * h, dark_border = 0, border = 2 * (size_t)w + 2 * (size_t)h - 4;
    for (size_t k = 0; k < border; k++)
        dark_border += is_dark(img->pixels + border_pixel((size_t)w, (size_t)h, k) * ch, ch);
    if ((double)dark_border < PS_DARK_BORDER_SHARE * (double)border)
        return NULL;
    provscan_image *out = ps_image_new(w, h, ch);
    uint32_t *queue = malloc(n * sizeof *queue);
    uint8_t *seen = calloc(n, 1);
    if (!out || !queue || !seen) {
        provscan_image_free(out);
        free(queue);
        free(seen);
        return NULL;
    }
    memcpy(out->pixels, img->pixels, n * (size_t)ch);
    out->full_width = img->full_width;
    out->full_height = img->full_height;
    /* breadth-first over 4-neighbours from every dark border pixel */
    size_t head = 0, tail = 0;
    for (size_t k = 0; k < border; k++) {
        size_t i = border_pixel((size_t)w, (size_t)h, k);
        if (is_dark(img->pixels + i * ch, ch)) {
            seen[i] = 1;
            queue[tail++] = (uint32_t)i;
        }
    }
    while (head < tail) {
        size_t i = queue[head++], x = i % (size_t)w, y = i / (size_t)w;
        memset(out->pixels + i * ch, 255, (size_t)ch);
        size_t next[4] = {x > 0 ? i - 1 : i, x + 1 < (size_t)w ? i + 1 : i, y > 0 ? i - (size_t)w : i,
                          y + 1 < (size_t)h ? i + (size_t)w : i};
        for (int k = 0; k < 4; k++)
            if (!seen[next[k]] && is_dark(img->pixels + next[k] * ch, ch)) {
                seen[next[k]] = 1;
                queue[tail++] = (uint32_t)next[k];
            }
    }
    free(queue);
    free(seen);
    return out;
}

provscan_status ps_local_add_dark_background(provscan_local *l, const provscan_image *img)
{
    if (!l || l->ntiles >= PS_QUERY_PARTS - 1)
        return PROVSCAN_OK;
    provscan_image *white = ps_whiten_dark_background(img);
    if (!white)
        return PROVSCAN_OK;
    provscan_local *part = NULL;
    provscan_status st = ps_local_from_image(white, l->source_width, l->source_height, PS_QUERY_FEATURES, &part);
    provscan_image_free(white);
    if (st != PROVSCAN_OK && st != PROVSCAN_E_TOO_SMALL)
        return st;
    if (part) {
        part->query_width = l->query_width;
        part->query_height = l->query_height;
        l->tile[l->ntiles++] = part;
    }
    return PROVSCAN_OK;
}

const provscan_local *ps_local_part(const provscan_local *l, int p)
{
    if (!l || p < 0 || p > l->ntiles)
        return NULL;
    return p == 0 ? l : l->tile[p - 1];
}

void ps_local_free(provscan_local *l)
{
    if (!l)
        return;
    for (int t = 0; t < l->ntiles; t++)
        ps_local_free(l->tile[t]);
    ps_match_query_free(l->match);
    ps_features_free(&l->f);
    free(l->words[0]);
    free(l->words[1]);
    free(l->lane_tf[0]);
    free(l->lane_tf[1]);
    free(l);
}

int ps_view_build(provscan_index *const *shards, size_t nshards, ps_view *out)
{
    memset(out, 0, sizeof *out);
    size_t nsegs = 0;
    for (size_t i = 0; i < nshards; i++)
        nsegs += shards[i]->snap.n;
    size_t cap = nsegs ? nsegs : 1;
    out->segs = calloc(cap, sizeof *out->segs);
    out->tombstones = calloc(cap, sizeof *out->tombstones);
    out->shard = calloc(cap, sizeof *out->shard);
    out->mih = calloc(cap, sizeof *out->mih);
    if (!out->segs || !out->tombstones || !out->shard || !out->mih) {
        ps_view_free(out);
        return -1;
    }
    for (size_t i = 0; i < nshards; i++)
        for (size_t j = 0; j < shards[i]->snap.n; j++) {
            out->segs[out->n] = &shards[i]->snap.segs[j];
            out->mih[out->n] = shards[i]->snap.mih[j];
            out->tombstones[out->n] = &shards[i]->snap.tombstones;
            out->shard[out->n] = (uint32_t)i;
            out->n++;
        }
    return 0;
}

void ps_view_free(ps_view *v)
{
    free(v->segs);
    free(v->tombstones);
    free(v->shard);
    free(v->mih);
    memset(v, 0, sizeof *v);
}

/* Min-heap of the best candidates, by score; ties go to the lower PDQ prefix (then segment and
 * record), so the choice does not depend on how works are spread over segments or shards. */
static int worse(const ps_local_candidate *a, const ps_local_candidate *b)
{
    if (a->score != b->score)
        return a->score < b->score;
    if (a->key != b->key)
        return a->key > b->key;
    if (a->seg != b->seg)
        return a->seg > b->seg;
    return a->record > b->record;
}

static void heap_push(ps_local_candidate *h, size_t *n, size_t max, ps_local_candidate c)
{
    if (*n < max) {
        size_t i = (*n)++;
        h[i] = c;
        while (i > 0 && worse(&h[i], &h[(i - 1) / 2])) {
            ps_local_candidate t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
        return;
    }
    if (!worse(&h[0], &c))
        return;
    h[0] = c;
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && worse(&h[l], &h[m]))
            m = l;
        if (r < *n && worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        ps_local_candidate t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Retrieval weighs each query word by its rarity in the whole view (every segment of every shard,
 * so the candidates do not depend on how works are spread over segments): a word most works hold
 * (flat skies, text strokes) says little about which work a pasted or cropped region comes from.
 * idf = ln(1 + N / df). The weights are integers, scaled so that the largest possible sum per
 * record and orientation fits the 16-bit accumulators (a window's sums are parts of the whole's);
 * scale[lane] turns an accumulated sum back into shared words weighted relative to the mean idf of
 * the lane's features, so scores keep the scale of a plain word overlap (PS_RETRIEVE_MIN_SCORE). */
static void retrieval_weights(const ps_view *view, const provscan_local *q, uint16_t *weight,
                              double scale[PS_RETRIEVE_LANES])
{
    uint64_t nrec = 0;
    for (size_t s = 0; s < view->n; s++)
        nrec += view->segs[s]->records;
    double sum_idf_tf[2] = {0, 0}, max_sum = 0, lane_idf_tf[PS_RETRIEVE_LANES] = {0},
           lane_tf[PS_RETRIEVE_LANES] = {0};
    int nlists = q->nwords[0] + q->nwords[1];
    double *idf = malloc(((size_t)nlists + 1) * sizeof *idf);
    if (!idf) {
        memset(weight, 0, ((size_t)nlists + 1) * sizeof *weight);
        memset(scale, 0, PS_RETRIEVE_LANES * sizeof *scale);
        return;
    }
    for (int o = 0, l = 0; o < 2; o++) {
        for (int i = 0; i < q->nwords[o]; i++, l++) {
            uint32_t w = q->words[o][i] >> 8, tq = q->words[o][i] & 0xFF;
            uint64_t df = 0;
            for (size_t s = 0; s < view->n; s++) {
                uint64_t noff;
                const uint32_t *off = ps_segment_section(view->segs[s], PS_SEC_INV_OFFSETS, &noff);
                if (off && noff / 4 >= 2 && w < noff / 4 - 1 && off[w + 1] >= off[w])
                    df += off[w + 1] - off[w];
            }
            idf[l] = df ? log(1.0 + (double)nrec / (double)df) : 0;
            sum_idf_tf[o] += idf[l] * tq;
            const uint8_t *tf = q->lane_tf[o] + (size_t)i * PS_RETRIEVE_LANES;
            for (int lane = 0; lane < PS_RETRIEVE_LANES; lane++) {
                lane_idf_tf[lane] += idf[l] * tf[lane];
                lane_tf[lane] += tf[lane];
            }
        }
        if (sum_idf_tf[o] > max_sum)
            max_sum = sum_idf_tf[o];
    }
    /* integer weights: the sum over one orientation's words of weight x tf stays <= 65535 */
    double k = max_sum > 0 ? fmin(64.0, 65535.0 / max_sum) : 1;
    for (int l = 0; l < nlists; l++)
        weight[l] = (uint16_t)floor(idf[l] * k);
    free(idf);
    for (int lane = 0; lane < PS_RETRIEVE_LANES; lane++) {
        double mean_idf = lane_tf[lane] > 0 ? lane_idf_tf[lane] / lane_tf[lane] : lane == 0 ? 1 : 0;
        scale[lane] = mean_idf > 0 ? 1.0 / (k * mean_idf) : 0;
    }
}

static int best_first(const void *a, const void *b)
{
    const ps_local_candidate *x = a, *y = b;
    return worse(x, y) ? 1 : worse(y, x) ? -1 : 0;
}

/* A candidate is verified in one orientation only when that orientation's word overlap is more than
 * READ_MARGIN_NUM / READ_MARGIN_DEN times the other's: half the matching, and on the bench a little
 * more precise, since the losing reading of an unrelated work only adds chance inliers
 * (docs/features.md, "Readings"). */
#define READ_MARGIN_NUM 13u
#define READ_MARGIN_DEN 10u

static int readings_of(unsigned plain, unsigned mirrored)
{
    unsigned shared = plain > mirrored ? plain : mirrored, weaker = plain > mirrored ? mirrored : plain;
    return shared * READ_MARGIN_DEN <= weaker * READ_MARGIN_NUM ? PS_READ_BOTH
           : plain >= mirrored                                  ? PS_READ_PLAIN
                                                                : PS_READ_MIRRORED;
}

/* One ranking of retrieval: the whole part's (lane 0) or one window's, each a heap of the best. */
typedef struct ranking {
    ps_local_candidate *heap;
    size_t found, max;
    double scale, scale2_per_nq, nq;
} ranking;

/* The score a record must reach to enter the ranking's heap. */
static float ranking_floor(const ranking *k)
{
    return k->found < k->max ? PS_RETRIEVE_MIN_SCORE : fmaxf(PS_RETRIEVE_MIN_SCORE, k->heap[0].score);
}

/* Offers record r of segment s with word overlaps plain / mirrored (accumulated, weighted) to a
 * ranking; *live (-1 = not yet known) and *key, the record's PDQ prefix, are read once per record. 1
 * when the record went to the heap, whose floor may then have risen. */
static int offer(ranking *k, const ps_view *view, size_t s, uint32_t r, double nd, unsigned plain, unsigned mirrored,
                 int *live, uint64_t *key)
{
    unsigned shared = plain > mirrored ? plain : mirrored;
    if (!shared)
        return 0;
    /* Almost every record is touched and few can enter a heap: a square-root-free bound (with a
     * margin far above rounding) rejects the rest before the exact score. */
    float floor_score = ranking_floor(k);
    if ((double)shared * shared * k->scale2_per_nq < (double)floor_score * floor_score * nd * 0.999)
        return 0;
    float score = (float)(shared * k->scale / sqrt(k->nq * nd));
    if (score < PS_RETRIEVE_MIN_SCORE)
        return 0;
    if (*live < 0) {
        const int64_t *ids = ps_segment_section(view->segs[s], PS_SEC_IDS, NULL);
        const uint8_t *codes = ps_segment_section(view->segs[s], PS_SEC_CODES, NULL);
        *live = !ps_u64set_has(view->tombstones[s], (uint64_t)ids[r]);
        for (int b = 0; b < 8; b++)
            *key = *key << 8 | codes[(size_t)r * 32 + b];
    }
    if (*live)
        heap_push(k->heap, &k->found, k->max,
                  (ps_local_candidate){(uint32_t)s, r, score, readings_of(plain, mirrored), *key});
    return *live;
}

/* The least overlap per lane that can pass offer()'s bound for a record of nd descriptors, rounded
 * down and at least 1 (offer() decides exactly); lanes that do not rank get the largest value. */
static void pass_floors(const ranking *rank, int nrank, const int *lane_of, double nd, uint16_t *floors)
{
    for (int v = 0; v < PS_RETRIEVE_LANES; v++)
        floors[v] = UINT16_MAX;
    for (int j = 0; j < nrank; j++) {
        double least = ranking_floor(&rank[j]) * sqrt(nd * 0.999 / rank[j].scale2_per_nq);
        floors[lane_of[j]] = least >= UINT16_MAX ? UINT16_MAX : least < 1 ? 1 : (uint16_t)least;
    }
}

_Static_assert(PS_WINDOWS + 1 <= PS_RETRIEVE_LANES, "a lane per window and one for the whole part");

/* A record's lanes in one orientation, added as one vector (GCC and Clang lower it to the target's
 * vector instructions, or to scalar code where it has none). */
typedef uint16_t lane_vec __attribute__((vector_size(PS_RETRIEVE_LANES * sizeof(uint16_t))));

/* One retrieval over the segments: the query's lists and their cursors in the segment at hand. */
typedef struct retrieval_pass {
    const ps_view *view;
    size_t s; /* the segment */
    const provscan_local *q;
    const uint16_t *weight, *step;
    const uint32_t *post;
    const ps_feat_entry *entries;
    uint32_t *cursor, *stop;
    ranking *rank;
    const int *lane_of;
    int nrank;
    lane_vec floors;  /* pass_floors() for records of floors_nd descriptors */
    double floors_nd; /* -1 when to recompute */
} retrieval_pass;

/* Adds the postings of records b0 .. b0 + span - 1 to acc: nl = 1, the whole part's count per record
 * and orientation, the plain orientation's block then the mirrored one's; nl = PS_RETRIEVE_LANES, per
 * record a vector of lanes for each orientation. Inlined with nl constant, so each layout gets its
 * own loop. */
static inline __attribute__((always_inline)) void accumulate(retrieval_pass *ps, uint16_t *acc, size_t block,
                                                             uint32_t b0, uint32_t span, const int nl)
{
    const provscan_local *q = ps->q;
    int nlists = q->nwords[0] + q->nwords[1];
    for (int o = 0, l = 0; o < 2; o++)
        for (int i = 0; i < q->nwords[o]; i++, l++) {
            uint32_t tq = q->words[o][i] & 0xFF, p = ps->cursor[l], end = ps->stop[l];
            uint16_t wt = ps->weight[l];
            if (p >= end)
                continue;
            const uint32_t *post = ps->post;
            /* one orientation's counts side by side (its lists touch half the memory); a record's two
             * vectors of lanes side by side (the sweep reads them together) */
            uint16_t *acc_o = nl == 1 ? acc + (size_t)o * block : acc + (size_t)o * PS_RETRIEVE_LANES;
            /* each list resumes once per block, most often out of cache: the read of a list a few
             * ahead starts now */
            if (l + RETRIEVE_PREFETCH < nlists)
                __builtin_prefetch(post + ps->cursor[l + RETRIEVE_PREFETCH]);
            /* t outside the block: its end, or damaged postings (out of order), where the list
             * stops rather than misreads. A work holding the word once (min(tq, tr) = 1 when either
             * is 1) adds the word's weight, the common case, without the multiply. */
            if (nl == 1 && tq == 1) {
                for (; p < end; p++) {
                    uint32_t t = (post[p] >> 8) - b0;
                    if (t >= span)
                        break;
                    acc_o[t] += wt;
                }
            } else if (nl == 1) {
                for (; p < end; p++) {
                    uint32_t t = (post[p] >> 8) - b0, tr = post[p] & 0xFF;
                    if (t >= span)
                        break;
                    acc_o[t] += (uint16_t)(wt * (tq < tr ? tq : tr));
                }
            } else {
                lane_vec add1;
                memcpy(&add1, ps->step + (size_t)l * PS_RETRIEVE_LANES, sizeof add1);
                const uint8_t *tf = q->lane_tf[o] + (size_t)i * PS_RETRIEVE_LANES;
                for (; p < end; p++) {
                    uint32_t t = (post[p] >> 8) - b0, tr = post[p] & 0xFF;
                    if (t >= span)
                        break;
                    uint16_t *a = acc_o + (size_t)t * 2 * PS_RETRIEVE_LANES;
                    if (tq == 1 || tr == 1)
                        *(lane_vec *)a += add1;
                    else
                        for (int v = 0; v < PS_RETRIEVE_LANES; v++)
                            a[v] += (uint16_t)(add1[v] ? wt * (tf[v] < tr ? tf[v] : tr) : 0);
                }
            }
            ps->cursor[l] = p;
        }
}

/* Offers every record of the block that some ranking may take, and clears acc for the next block
 * (a sequential sweep finds the records touched, cheaper than tracking them per posting). */
static inline __attribute__((always_inline)) void sweep(retrieval_pass *ps, uint16_t *acc, size_t block, uint32_t b0,
                                                        uint32_t span, const int nl)
{
    for (uint32_t t = 0; t < span; t++) {
        uint32_t r = b0 + t;
        int live = -1, pushed = 0;
        uint64_t key = 0;
        double nd = ps->entries[r].ndesc ? ps->entries[r].ndesc : 1;
        if (nl == 1) {
            uint16_t *a = acc + t, *m = acc + block + t;
            if (!(*a | *m))
                continue;
            offer(&ps->rank[0], ps->view, ps->s, r, nd, *a, *m, &live, &key);
            *a = *m = 0;
            continue;
        }
        lane_vec *a = (lane_vec *)(acc + (size_t)t * 2 * PS_RETRIEVE_LANES), *m = a + 1;
        /* most records reach no ranking's floor: one vector test rules them out */
        if (nd != ps->floors_nd) {
            pass_floors(ps->rank, ps->nrank, ps->lane_of, nd, (uint16_t *)&ps->floors);
            ps->floors_nd = nd;
        }
        lane_vec plain = *a, mirrored = *m, up = (lane_vec)(plain > mirrored);
        lane_vec pass = (lane_vec)(((plain & up) | (mirrored & ~up)) >= ps->floors);
        uint64_t words[sizeof(lane_vec) / sizeof(uint64_t)], any = 0;
        memcpy(words, &pass, sizeof words);
        for (size_t u = 0; u < sizeof words / sizeof *words; u++)
            any |= words[u];
        if (any) {
            for (int j = 0; j < ps->nrank; j++)
                pushed |= offer(&ps->rank[j], ps->view, ps->s, r, nd, plain[ps->lane_of[j]], mirrored[ps->lane_of[j]],
                                &live, &key);
            if (pushed)
                ps->floors_nd = -1; /* a floor rose */
        }
        *a = *m = (lane_vec){0};
    }
}

/* Each layout's block in a function of its own, so each hot loop gets the registers to itself. */
static __attribute__((noinline)) void retrieve_block_whole(retrieval_pass *ps, uint16_t *acc, size_t block,
                                                           uint32_t b0, uint32_t span)
{
    accumulate(ps, acc, block, b0, span, 1);
    sweep(ps, acc, block, b0, span, 1);
}

static __attribute__((noinline)) void retrieve_block_lanes(retrieval_pass *ps, uint16_t *acc, size_t block,
                                                           uint32_t b0, uint32_t span)
{
    accumulate(ps, acc, block, b0, span, PS_RETRIEVE_LANES);
    sweep(ps, acc, block, b0, span, PS_RETRIEVE_LANES);
}

size_t ps_local_retrieve(const ps_view *view, const provscan_local *q, size_t max, ps_local_candidate *out,
                         ps_local_candidate *window_out, size_t *nwindow)
{
    enum { L = PS_RETRIEVE_LANES };
    if (nwindow)
        *nwindow = 0;
    if (!q || max == 0)
        return 0;
    int nlists = q->nwords[0] + q->nwords[1];
    uint16_t *weight = malloc(((size_t)nlists + 1) * sizeof *weight);
    /* per word list, what a posting of a work holding the word once adds to each lane */
    uint16_t *step = malloc(((size_t)nlists + 1) * L * sizeof *step);
    /* a list's walk in the segment at hand: from cursor to stop, both read once per segment rather
     * than from its offsets per block (out of cache by then) */
    uint32_t *cursor = malloc(((size_t)nlists + 1) * 2 * sizeof *cursor);
    if (!weight || !step || !cursor) {
        free(weight);
        free(step);
        free(cursor);
        return 0;
    }
    double scale[L];
    retrieval_weights(view, q, weight, scale);
    /* the rankings: the whole part's (lane 0), then each window's that has features enough (lane v),
     * whose heap is window_out's slot for that window */
    ranking rank[1 + PS_WINDOWS];
    int lane_of[1 + PS_WINDOWS] = {0}, nrank = 1;
    rank[0] = (ranking){out, 0, max, scale[0], scale[0] * scale[0] / q->f.n, q->f.n};
    for (int v = 1; window_out && v <= PS_WINDOWS; v++)
        if (q->lane_features[v] >= PS_WINDOW_MIN_FEATURES && scale[v] > 0) {
            double nq = q->lane_features[v];
            lane_of[nrank] = v;
            rank[nrank++] = (ranking){window_out + (size_t)(v - 1) * PS_WINDOW_CANDIDATES, 0, PS_WINDOW_CANDIDATES,
                                      scale[v], scale[v] * scale[v] / nq, nq};
        }
    for (int o = 0, l = 0; o < 2; o++)
        for (int i = 0; i < q->nwords[o]; i++, l++) {
            const uint8_t *tf = q->lane_tf[o] + (size_t)i * L;
            uint16_t *st = step + (size_t)l * L;
            memset(st, 0, L * sizeof *st);
            for (int j = 0; j < nrank; j++)
                st[lane_of[j]] = tf[lane_of[j]] ? weight[l] : 0;
        }
    retrieval_pass ps = {.view = view, .q = q, .weight = weight, .step = step, .cursor = cursor,
                         .stop = cursor + nlists + 1, .rank = rank, .lane_of = lane_of, .nrank = nrank,
                         .floors_nd = -1};
    for (size_t s = 0; s < view->n; s++) {
        const ps_segment *seg = view->segs[s];
        uint64_t noff, npost, nentries;
        const uint32_t *off = ps_segment_section(seg, PS_SEC_INV_OFFSETS, &noff);
        ps.post = ps_segment_section(seg, PS_SEC_INV_POSTINGS, &npost);
        ps.entries = ps_segment_section(seg, PS_SEC_FEAT_INDEX, &nentries);
        ps.s = s;
        size_t n = (size_t)seg->records;
        if (!off || !ps.post || !ps.entries || n == 0)
            continue;
        uint32_t nv = (uint32_t)(noff / 4 - 1);
        /* Word overlap per record, orientation and lane, over blocks of records small enough for the
         * accumulators to stay in cache: each word's postings ascend by record, so a cursor per query
         * word walks its list once over all blocks. Without windows a record holds 2 counts, with them
         * one vector of lanes per orientation. */
        int nl = nrank > 1 ? L : 1;
        size_t block_max = nl > 1 ? RETRIEVE_BLOCK_LANES : RETRIEVE_BLOCK, block = n < block_max ? n : block_max;
        size_t acc_bytes = (block * 2 * (size_t)nl * sizeof(uint16_t) + sizeof(lane_vec) - 1) / sizeof(lane_vec) *
                           sizeof(lane_vec);
        uint16_t *acc = aligned_alloc(sizeof(lane_vec), acc_bytes);
        if (!acc)
            continue;
        memset(acc, 0, acc_bytes);
        for (int o = 0, l = 0; o < 2; o++)
            for (int i = 0; i < q->nwords[o]; i++, l++) {
                uint32_t w = q->words[o][i] >> 8;
                ps.cursor[l] = w < nv && weight[l] ? off[w] : 0;
                ps.stop[l] = w < nv && weight[l] ? off[w + 1] : 0;
            }
        for (size_t b0 = 0; b0 < n; b0 += block) {
            uint32_t span = (uint32_t)((n - b0 < block ? n : b0 + block) - b0);
            if (nl > 1)
                retrieve_block_lanes(&ps, acc, block, (uint32_t)b0, span);
            else
                retrieve_block_whole(&ps, acc, block, (uint32_t)b0, span);
        }
        free(acc);
    }
    free(weight);
    free(step);
    free(cursor);
    qsort(out, rank[0].found, sizeof *out, best_first);
    /* each window's best moved up to follow the previous window's (slots only move down) */
    for (int j = 1; j < nrank; j++) {
        qsort(rank[j].heap, rank[j].found, sizeof *rank[j].heap, best_first);
        memmove(window_out + *nwindow, rank[j].heap, rank[j].found * sizeof *window_out);
        *nwindow += rank[j].found;
    }
    return rank[0].found;
}

/* Local verification of a query against a work's features; regions: query in full-resolution
 * pixels, work in the pixels of its features (scaled by the caller, who knows the work's size). */
static void verify_features(const provscan_local *q, const ps_features *wf, int readings, ps_evidence *ev)
{
    ps_geo_match m;
    if (ps_features_match_prepared(q->match, wf, readings, &m) != PROVSCAN_OK)
        return;
    ev->inliers = m.inliers;
    ev->matches = m.matches;
    ev->alt_inliers = m.alt_inliers;
    ev->mirrored = m.mirrored;
    ev->work_coverage = m.work_coverage;
    /* a tile's region in the whole query's pixels, and its coverage as a share of the whole query */
    double part_share = q->query_width > 0 && q->query_height > 0
                            ? (double)q->source_width * q->source_height / ((double)q->query_width * q->query_height)
                            : 1;
    ev->query_coverage = (float)(m.query_coverage * (part_share < 1 ? part_share : 1));
    double qs = q->f.width > 0 ? (double)q->source_width / q->f.width : 1;
    for (int i = 0; i < 8; i++) {
        ev->query_region[i] = (float)(m.query_poly[i] * qs + (i % 2 ? q->origin_y : q->origin_x));
        ev->work_region[i] = m.work_poly[i];
    }
    ev->work_feat_width = wf->width;
    ev->work_feat_height = wf->height;
    ps_geo_match_free(&m);
}

void ps_local_verify(const ps_segment *seg, uint32_t record, const provscan_local *q, int readings, ps_evidence *ev)
{
    ev->verified = 1;
    ev->inliers = ev->matches = ev->mirrored = ev->alt_inliers = 0;
    ev->work_coverage = ev->query_coverage = 0;
    if (!q)
        return;
    ps_feat_entry e;
    const uint8_t *data;
    const uint32_t *words;
    if (ps_segment_feat(seg, record, &e, &data, &words) != 0 || e.data_size == 0)
        return;
    ps_features wf;
    /* the segment's section CRCs cover the blob (index verify checks them), so its own checksum
     * is not recomputed for every candidate of every query */
    if (ps_features_deserialize_covered(data, e.data_size, &wf) != PROVSCAN_OK)
        return;
    verify_features(q, &wf, readings, ev);
    ps_features_free(&wf);
}

double ps_copy_probability(const ps_evidence *ev, int part)
{
    double x[PS_FEAT_COUNT], pg, pl;
    ps_calibration_features(ev->distance, ev->query_quality, ev->work_quality, ev->inliers, ev->matches,
                            ev->alt_inliers, ev->work_coverage, ev->query_coverage, x);
    ps_calibration_parts(ps_calibration_get(), x, &pg, &pl);
    if (part > 0 && pl > 0 && pl < 1) {
        double odds = pl / (1 - pl) / (1 + PS_QUERY_TILES);
        pl = odds / (1 + odds);
    }
    return 1.0 - (1.0 - pg) * (1.0 - pl);
}

provscan_kind ps_copy_kind(const ps_evidence *ev)
{
    if (ev->distance <= PROVSCAN_PDQ_POSSIBLE_DISTANCE)
        return PROVSCAN_KIND_NEAR_DUPLICATE;
    if (ev->inliers > 0 && ev->work_coverage >= 0.75f && ev->query_coverage >= 0.75f)
        return PROVSCAN_KIND_NEAR_DUPLICATE;
    return PROVSCAN_KIND_PARTIAL;
}

/* Matches part, a picture made from the query whose (0, 0) is the query's (x0, y0), with work's
 * features; when that verifies more inliers than *best, *best becomes it, in the whole query's
 * pixels. */
static void part_match(const provscan_image *part, int x0, int y0, const ps_features *work, ps_geo_match *best)
{
    ps_features f;
    memset(&f, 0, sizeof f);
    ps_feature_params budget = {.max_features = PS_QUERY_FEATURES};
    ps_geo_match m;
    memset(&m, 0, sizeof m);
    if (ps_features_extract(part, NULL, &budget, &f) == PROVSCAN_OK && ps_features_match(&f, work, &m) == PROVSCAN_OK &&
        m.inliers > best->inliers) {
        for (int i = 0; i < 8; i++)
            m.query_poly[i] += (float)(i % 2 ? y0 : x0);
        for (int i = 0; i < m.npairs; i++) {
            m.pairs[4 * i] += (float)x0;
            m.pairs[4 * i + 1] += (float)y0;
        }
        /* H maps part pixels to work pixels: H . translate(-x0, -y0) maps the query's */
        for (int r = 0; r < 3; r++)
            m.H[3 * r + 2] -= m.H[3 * r] * x0 + m.H[3 * r + 1] * y0;
        ps_geo_match_free(best);
        *best = m;
        memset(&m, 0, sizeof m);
    }
    ps_geo_match_free(&m);
    ps_features_free(&f);
}

provscan_status provscan_evidence_write(const char *query_path, const char *work_path, const char *png_path,
                                        provscan_error *err)
{
    ps_error_clear(err);
    provscan_load_options opts;
    provscan_load_options_for_mode(PROVSCAN_MODE_FAST, &opts);
    opts.want_grey = 0; /* the picture is for people: colour */
    provscan_image *img[2] = {NULL, NULL};
    const char *paths[2] = {query_path, work_path};
    provscan_status st = PROVSCAN_OK;
    provscan_image_info query_info;
    memset(&query_info, 0, sizeof query_info);
    for (int i = 0; i < 2 && st == PROVSCAN_OK; i++)
        st = provscan_image_load(paths[i], &opts, &img[i], i == 0 ? &query_info : NULL, err);
    ps_features f[2];
    memset(f, 0, sizeof f);
    ps_geo_match m;
    memset(&m, 0, sizeof m);
    ps_feature_params budget[2] = {{.max_features = PS_QUERY_FEATURES}, {.max_features = PS_FEATURES_DEFAULT_MAX}};
    if (st == PROVSCAN_OK && (st = ps_features_extract(img[0], NULL, &budget[0], &f[0])) == PROVSCAN_OK &&
        (st = ps_features_extract(img[1], NULL, &budget[1], &f[1])) == PROVSCAN_OK &&
        (st = ps_features_match(&f[0], &f[1], &m)) == PROVSCAN_OK) {
        /* a work pasted small into a large query may only verify within a tile, as `--tiles` found it */
        int ntiles = ps_query_tiles(img[0]->width, img[0]->height);
        for (int t = 0; m.inliers < PS_MATCH_INLIERS_COPY && t < ntiles; t++) {
            int x0, y0;
            provscan_image *tile = NULL;
            if (ps_query_tile(img[0], t, &x0, &y0, &tile) == PROVSCAN_OK)
                part_match(tile, x0, y0, &f[1], &m);
            provscan_image_free(tile);
        }
        /* as the search reads a query whose background is dark (a drawing whose alpha was dropped):
         * the same pixel grid, nothing to shift */
        provscan_image *white =
            m.inliers < PS_MATCH_INLIERS_COPY && !query_info.had_alpha ? ps_whiten_dark_background(img[0]) : NULL;
        if (white)
            part_match(white, 0, 0, &f[1], &m);
        provscan_image_free(white);
        if (m.inliers > 0)
            ps_geo_match_refine_region(img[0], img[1], &m);
        st = ps_evidence_write_png(png_path, img[0], img[1], &m, err);
    } else if (st != PROVSCAN_OK && err && err->status == PROVSCAN_OK) {
        ps_fail(err, st, "%s: local features failed: %s", query_path, provscan_error_name(st));
    }
    ps_geo_match_free(&m);
    ps_features_free(&f[0]);
    ps_features_free(&f[1]);
    provscan_image_free(img[0]);
    provscan_image_free(img[1]);
    return st;
}

provscan_status provscan_compare_analyses(const provscan_analysis *query, const provscan_analysis *work,
                                          provscan_match *out)
{
    if (!query || !work || !out)
        return PROVSCAN_E_ARG;
    memset(out, 0, sizeof *out);
    ps_evidence ev;
    memset(&ev, 0, sizeof ev);
    /* as in a search: the query's 16 variants against the work as stored */
    int variant;
    ev.distance = ps_pdq_nearest_variant(&query->fp, work->fp.pdq[0].bytes, &variant);
    ev.transform = (provscan_dihedral)(variant % PROVSCAN_DIHEDRAL_COUNT);
    ev.inverted = variant >= PROVSCAN_DIHEDRAL_COUNT;
    ev.query_quality = query->fp.quality;
    ev.work_quality = work->fp.quality;
    double probability = ps_copy_probability(&ev, 0);
    /* the whole query, then its tiles if it has them, as a search weighs them: the best evidence wins */
    for (int p = 0; query->local && work->local && p <= query->local->ntiles; p++) {
        ps_evidence e = ev;
        e.verified = 1;
        verify_features(ps_local_part(query->local, p), &work->local->f, PS_READ_BOTH, &e);
        double pe = ps_copy_probability(&e, p);
        if (p == 0 || pe > probability) {
            ev = e;
            probability = pe;
        }
    }
    out->width = work->info.source_width;
    out->height = work->info.source_height;
    out->quality = work->fp.quality;
    out->probability = probability;
    out->kind = ps_copy_kind(&ev);
    out->distance = ev.distance;
    out->transform = ev.transform;
    out->inverted = ev.inverted;
    out->inliers = ev.inliers;
    out->matches = ev.matches;
    out->alt_inliers = ev.alt_inliers;
    out->mirrored = ev.mirrored;
    out->work_coverage = ev.work_coverage;
    out->query_coverage = ev.query_coverage;
    double ws = ev.work_feat_width > 0 ? (double)out->width / ev.work_feat_width : 1;
    for (int i = 0; i < 8; i++) {
        out->query_region[i] = ev.query_region[i];
        out->work_region[i] = (float)(ev.work_region[i] * ws);
    }
    return PROVSCAN_OK;
}

/* report.c — verdicts and the scan result record (JSON and text), shared by scan, batch and merge. */
#include "cli/report.h"
#include "cli/cli.h"

#include <string.h>

void scan_policy_default(scan_policy *p)
{
    p->match_probability = PROVSCAN_MATCH_PROBABILITY;
    p->possible_probability = PROVSCAN_POSSIBLE_PROBABILITY;
    p->list_distance = PROVSCAN_PDQ_POSSIBLE_DISTANCE;
    p->local = 1;
    p->local_candidates = PROVSCAN_LOCAL_CANDIDATES;
    p->top_k = 5;
}

int scan_policy_local_mode(const scan_policy *p)
{
    return !p->local         ? PROVSCAN_LOCAL_NONE
           : p->tiles > 0  ? PROVSCAN_LOCAL_QUERY_TILES
           : p->tiles < 0  ? PROVSCAN_LOCAL_QUERY_WHOLE
                           : PROVSCAN_LOCAL_QUERY;
}

const char *verdict_name(verdict v)
{
    return v == VERDICT_MATCH ? "match" : v == VERDICT_POSSIBLE ? "possible" : "none";
}

verdict match_verdict(double probability, const scan_policy *p)
{
    return probability >= p->match_probability      ? VERDICT_MATCH
           : probability >= p->possible_probability ? VERDICT_POSSIBLE
                                                    : VERDICT_NONE;
}

const char *kind_name(provscan_kind k)
{
    return k == PROVSCAN_KIND_PARTIAL ? "partial" : "near-duplicate";
}

static json_t *text_or_null(const char *s)
{
    return s ? cli_json_text(s) : json_null();
}

static json_t *declared_json(const provscan_provenance *p)
{
    json_t *gen = json_array();
    if (p->generator_parameters)
        json_array_append_new(gen, json_string("parameters"));
    if (p->generator_prompt)
        json_array_append_new(gen, json_string("prompt"));
    if (p->generator_workflow)
        json_array_append_new(gen, json_string("workflow"));
    const char *claim = provscan_provenance_declares_ai(p) ? "declares-ai" : p->c2pa_manifest ? "c2pa-present" : "none";
    return json_pack("{s:s, s:b, s:b, s:o, s:o, s:o}", "claim", claim, "c2pa_manifest", p->c2pa_manifest, "xmp",
                     p->xmp_packet, "digital_source_type",
                     p->digital_source_type[0] ? json_string(p->digital_source_type) : json_null(), "declared_in",
                     p->declared_in[0] ? json_string(p->declared_in) : json_null(), "generator_chunks", gen);
}

/* A quadrilateral as [[x, y], ...], rounded to tenths of a pixel. */
static json_t *region_json(const float *r)
{
    json_t *a = json_array();
    for (int i = 0; i < 4; i++)
        json_array_append_new(a, json_pack("[f, f]", (double)(long)(r[2 * i] * 10 + 0.5) / 10,
                                           (double)(long)(r[2 * i + 1] * 10 + 0.5) / 10));
    return a;
}

static double round3(double v)
{
    return (double)(long long)(v * 1000 + (v >= 0 ? 0.5 : -0.5)) / 1000;
}

static json_t *match_json(const provscan_match *m, int rank, const scan_policy *p)
{
    json_t *work = json_pack("{s:I, s:o, s:s, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)m->work_id,
                             "path", cli_json_text(m->path), "sha256", m->sha256, "width", m->width, "height",
                             m->height, "quality", m->quality, "title", text_or_null(m->title), "author",
                             text_or_null(m->author), "license", text_or_null(m->license), "source_url",
                             text_or_null(m->source_url), "note", text_or_null(m->note));
    json_t *local = m->inliers > 0
                        ? json_pack("{s:i, s:i, s:i, s:b, s:f, s:f, s:o, s:o}", "inliers", m->inliers, "matches",
                                    m->matches, "alt_inliers", m->alt_inliers, "mirrored", m->mirrored,
                                    "work_coverage", round3(m->work_coverage), "query_coverage",
                                    round3(m->query_coverage), "query_region",
                                    region_json(m->query_region), "work_region", region_json(m->work_region))
                        : json_null();
    /* The score keeps its full precision: rounding would tie strong matches at 1.0 and lose the
     * ranking between them. */
    return json_pack("{s:i, s:s, s:s, s:f, s:{s:{s:i, s:s, s:b}, s:o}, s:o}", "rank", rank, "verdict",
                     verdict_name(match_verdict(m->probability, p)), "kind", kind_name(m->kind), "score",
                     m->probability, "evidence", "pdq", "distance", m->distance, "transform",
                     provscan_dihedral_name(m->transform), "inverted", m->inverted, "local", local, "work", work);
}

json_t *report_json(const char *query, const provscan_analysis *a, const provscan_error *err,
                    const provscan_match *matches, size_t n, const scan_policy *p, const char *evidence_picture,
                    verdict *overall)
{
    *overall = VERDICT_NONE;
    if (!a)
        return json_pack("{s:s, s:o, s:b, s:o}", "schema", SCAN_SCHEMA, "query", cli_json_text(query), "ok", 0,
                         "error", cli_json_error(err));
    char hex[65];
    provscan_pdq_to_hex(&a->fp.pdq[0], hex);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        verdict v = match_verdict(matches[i].probability, p);
        if (v > *overall)
            *overall = v;
        json_array_append_new(list, match_json(&matches[i], (int)i + 1, p));
    }
    json_t *rec = json_pack("{s:s, s:o, s:b, s:s, s:{s:i, s:i, s:s, s:i, s:b}, s:{s:{s:s, s:i, s:s, s:s, s:i}},"
                            " s:b, s:o, s:o}",
                            "schema", SCAN_SCHEMA, "query", cli_json_text(query), "ok", 1, "verdict",
                            verdict_name(*overall), "image", "width", a->info.source_width, "height",
                            a->info.source_height, "format", a->info.format, "orientation", a->info.orientation,
                            "orientation_applied", a->info.orientation_applied, "fingerprint", "pdq", "algorithm",
                            "pdq", "version", PROVSCAN_PDQ_VERSION, "mode", "fast", "hash", hex, "quality",
                            a->fp.quality, "low_quality", a->fp.quality < PROVSCAN_PDQ_MIN_QUALITY, "declared",
                            declared_json(&a->provenance), "matches", list);
    json_object_set_new(rec, "evidence_picture", evidence_picture ? cli_json_text(evidence_picture) : json_null());
    return rec;
}

static const char *transform_words(provscan_dihedral t)
{
    switch (t) {
    case PROVSCAN_D_ROT90: return ", rotated 90° counter-clockwise";
    case PROVSCAN_D_ROT180: return ", rotated 180°";
    case PROVSCAN_D_ROT270: return ", rotated 90° clockwise";
    case PROVSCAN_D_FLIPX: return ", flipped upside down";
    case PROVSCAN_D_FLIPY: return ", mirrored left to right";
    case PROVSCAN_D_FLIPPLUS1: return ", transposed";
    case PROVSCAN_D_FLIPMINUS1: return ", anti-transposed";
    default: return "";
    }
}

void report_text(FILE *f, const char *query, const provscan_analysis *a, const provscan_match *matches, size_t n,
                 const scan_policy *p, const char *evidence_picture, verdict *overall)
{
    *overall = VERDICT_NONE;
    for (size_t i = 0; i < n; i++) {
        verdict v = match_verdict(matches[i].probability, p);
        if (v > *overall)
            *overall = v;
    }
    static const char *const colours[] = {"\033[1;32m", "\033[1;33m", "\033[1;31m"};
    static const char *const labels[] = {"no copy found", "POSSIBLE copy", "MATCH"};
    fprintf(f, "%s: %s%s%s\n", query, cli_color(f, colours[*overall]), labels[*overall], cli_color_reset(f));
    for (size_t i = 0; i < n; i++) {
        const provscan_match *m = &matches[i];
        verdict v = match_verdict(m->probability, p);
        fprintf(f, "  %zu. %-8s %s\n", i + 1, verdict_name(v), m->path);
        if (m->kind == PROVSCAN_KIND_PARTIAL && m->inliers > 0)
            fprintf(f, "     partial copy: %.0f%% of the work, %d matching features%s; PDQ distance %d; score %.2f\n",
                    100.0 * m->work_coverage, m->inliers, m->mirrored ? ", mirrored" : "", m->distance, m->probability);
        else
            fprintf(f, "     near-duplicate: PDQ distance %d/256%s%s%s; score %.2f\n", m->distance,
                    transform_words(m->transform), m->inverted ? ", tones inverted" : "",
                    m->inliers > 0 ? (m->mirrored ? ", features agree (mirrored)" : ", features agree") : "",
                    m->probability);
        if (m->title || m->author || m->license || m->source_url)
            fprintf(f, "     \"%s\"%s%s%s%s%s%s\n", m->title ? m->title : "(untitled)", m->author ? " by " : "",
                    m->author ? m->author : "", m->license ? ", " : "", m->license ? m->license : "",
                    m->source_url ? ", " : "", m->source_url ? m->source_url : "");
        if (m->note)
            fprintf(f, "     note: %s\n", m->note);
    }
    if (evidence_picture)
        fprintf(f, "  evidence: %s\n", evidence_picture);
    if (a->fp.quality < PROVSCAN_PDQ_MIN_QUALITY)
        fprintf(f, "  (the query has little structure, PDQ quality %d: its hash alone proves little)\n", a->fp.quality);
    const provscan_provenance *pv = &a->provenance;
    if (provscan_provenance_declares_ai(pv) || pv->c2pa_manifest) {
        fprintf(f, "  declared in its metadata (a claim, not proof):");
        if (pv->c2pa_manifest)
            fprintf(f, " C2PA manifest present;");
        if (pv->digital_source_type[0])
            fprintf(f, " DigitalSourceType %s (%s);", pv->digital_source_type, pv->declared_in);
        if (pv->generator_parameters || pv->generator_prompt || pv->generator_workflow)
            fprintf(f, " generator text chunks%s%s%s;", pv->generator_parameters ? " parameters" : "",
                    pv->generator_prompt ? " prompt" : "", pv->generator_workflow ? " workflow" : "");
        fputc('\n', f);
    }
}

verdict report_reverdict(json_t *record, const scan_policy *p)
{
    verdict overall = VERDICT_NONE;
    json_t *matches = json_object_get(record, "matches");
    size_t i;
    json_t *m;
    json_array_foreach(matches, i, m) {
        verdict v = match_verdict(json_real_value(json_object_get(m, "score")), p);
        if (v > overall)
            overall = v;
        json_object_set_new(m, "rank", json_integer((json_int_t)i + 1));
        json_object_set_new(m, "verdict", json_string(verdict_name(v)));
    }
    if (json_is_true(json_object_get(record, "ok")))
        json_object_set_new(record, "verdict", json_string(verdict_name(overall)));
    return overall;
}

/* cmd_compare.c — `provscan compare A B`: does A copy B, as a whole or in part? Distances, features, score, verdict, evidence. */
#include "cli/cli.h"
#include "cli/report.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: provscan compare [OPTIONS] A B\n"
            "Compares image A (the query) with image B (a work) as 'scan' compares a query with a corpus\n"
            "work: PDQ distance over A's 8 rotations/mirrors, pHash and dHash distances, local features\n"
            "(matching points verified geometrically, the matched region in each image), a calibrated\n"
            "score, whether A copies B whole or in part, and a plain-language verdict.\n\n"
            "  -j, --json            one JSON object instead of text\n"
            "  -e, --evidence PNG    write a side-by-side picture: both images, the matched regions\n"
            "                        outlined, the matching points joined\n"
            "      --no-local        PDQ only\n"
            "      --tiles           also match A's 2 x 2 tiles with B, as scan --tiles does (by default\n"
            "                        only when A is 1280 pixels or more); --no-tiles: never\n"
            "      --max-pixels N    refuse larger images before decoding (default %llu)\n"
            "  -h, --help            this help\n\n"
            "Verdicts: match (score >= %.1f), possible (>= %.1f), different. Exit status: 0 compared\n"
            "(whatever the verdict); 1 an image could not be read or the picture not written; 2 usage error.\n",
            (unsigned long long)PROVSCAN_DEFAULT_MAX_PIXELS, PROVSCAN_MATCH_PROBABILITY, PROVSCAN_POSSIBLE_PROBABILITY);
}

/* How A relates to B when A is B transformed by t. */
static const char *transform_phrase(provscan_dihedral t)
{
    switch (t) {
    case PROVSCAN_D_ROT90: return ", rotated 90 degrees counter-clockwise";
    case PROVSCAN_D_ROT180: return ", rotated 180 degrees";
    case PROVSCAN_D_ROT270: return ", rotated 90 degrees clockwise";
    case PROVSCAN_D_FLIPX: return ", flipped upside down";
    case PROVSCAN_D_FLIPY: return ", mirrored left to right";
    case PROVSCAN_D_FLIPPLUS1: return ", transposed (mirrored and rotated)";
    case PROVSCAN_D_FLIPMINUS1: return ", anti-transposed (mirrored and rotated)";
    default: return "";
    }
}

static json_t *region_json(const float *r)
{
    json_t *a = json_array();
    for (int i = 0; i < 4; i++)
        json_array_append_new(a, json_pack("[f, f]", (double)(long)(r[2 * i] * 10 + 0.5) / 10,
                                           (double)(long)(r[2 * i + 1] * 10 + 0.5) / 10));
    return a;
}

int cmd_compare(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},         {"evidence", required_argument, NULL, 'e'},
        {"no-local", no_argument, NULL, 'G'},     {"max-pixels", required_argument, NULL, 'P'},
        {"tiles", no_argument, NULL, 'L'},        {"no-tiles", no_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int json = 0, local = 1, tiles = PROVSCAN_LOCAL_QUERY, c;
    const char *evidence = NULL;
    unsigned long long max_pixels = PROVSCAN_DEFAULT_MAX_PIXELS;
    optind = 0;
    while ((c = getopt_long(argc, argv, "je:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'e': evidence = optarg; break;
        case 'G': local = 0; break;
        case 'L': tiles = PROVSCAN_LOCAL_QUERY_TILES; break;
        case 'W': tiles = PROVSCAN_LOCAL_QUERY_WHOLE; break;
        case 'P':
            if (cli_parse_u64(optarg, &max_pixels) != 0 || max_pixels == 0)
                return cli_usage_error("compare", "--max-pixels needs a positive number, not '%s'", optarg);
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: return cli_usage_error("compare", "unknown option");
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("compare", "needs exactly two images, A and B");
    const char *path[2] = {argv[optind], argv[optind + 1]};
    provscan_analysis an[2];
    provscan_error err[2];
    provscan_status st[2];
    memset(an, 0, sizeof an);
#pragma omp parallel for num_threads(2)
    for (int i = 0; i < 2; i++)
        st[i] = provscan_analyze_file(path[i], max_pixels,
                                      !local ? PROVSCAN_LOCAL_NONE : i == 0 ? tiles : PROVSCAN_LOCAL_WORK,
                                      &an[i], &err[i]);
    if (st[0] != PROVSCAN_OK || st[1] != PROVSCAN_OK) {
        for (int i = 0; i < 2; i++)
            if (st[i] != PROVSCAN_OK)
                cli_error("%s", err[i].message);
        if (json) {
            json_t *o = json_pack("{s:b, s:[]}", "ok", 0, "errors");
            for (int i = 0; i < 2; i++)
                if (st[i] != PROVSCAN_OK)
                    json_array_append_new(json_object_get(o, "errors"),
                                          json_pack("{s:o, s:o}", "path", cli_json_text(path[i]), "error",
                                                    cli_json_error(&err[i])));
            cli_json_line(stdout, o);
        }
        for (int i = 0; i < 2; i++)
            provscan_analysis_free(&an[i]);
        return EXIT_INPUT_FAILED;
    }

    provscan_match m;
    provscan_compare_analyses(&an[0], &an[1], &m);
    int pdq_plain = provscan_pdq_distance(&an[0].fp.pdq[0], &an[1].fp.pdq[0]);
    int ph = provscan_hash64_distance(an[0].fp.phash, an[1].fp.phash);
    int dh = provscan_hash64_distance(an[0].fp.dhash, an[1].fp.dhash);
    scan_policy policy;
    scan_policy_default(&policy);
    verdict v = match_verdict(m.probability, &policy);
    const char *word = v == VERDICT_MATCH ? "match" : v == VERDICT_POSSIBLE ? "possible" : "different";
    char explanation[320];
    if (v == VERDICT_NONE)
        snprintf(explanation, sizeof explanation, "no sign that A copies B, as a whole or in part");
    else if (m.kind == PROVSCAN_KIND_PARTIAL)
        snprintf(explanation, sizeof explanation, "A %s part of B: %.0f%% of B's area is matched%s%s",
                 v == VERDICT_MATCH ? "copies" : "may copy", 100.0 * m.work_coverage,
                 m.mirrored ? ", mirrored" : "", v == VERDICT_POSSIBLE ? "; check by eye" : "");
    else {
        /* PDQ's best variant says how A was turned only when PDQ itself finds the pair near; a
         * near-duplicate found by the features alone is described by them */
        int by_pdq = m.distance <= PROVSCAN_PDQ_POSSIBLE_DISTANCE;
        snprintf(explanation, sizeof explanation, "A %s B%s%s (the same picture: resized, recompressed or edited)%s",
                 v == VERDICT_MATCH ? "is a copy of" : "may be a heavily edited copy of",
                 by_pdq ? transform_phrase(m.transform) : m.mirrored ? ", mirrored" : "",
                 by_pdq && m.inverted ? ", with its tones inverted (a negative)" : "",
                 v == VERDICT_POSSIBLE ? "; check by eye" : "");
    }

    int failed = 0;
    char *picture = NULL;
    if (evidence) {
        provscan_error e;
        if (provscan_evidence_write(path[0], path[1], evidence, &e) != PROVSCAN_OK) {
            cli_error("%s: evidence picture not written: %s", evidence, e.message);
            failed = 1;
        } else {
            picture = (char *)evidence;
        }
    }
    if (json) {
        json_t *local_ev = m.inliers > 0
                               ? json_pack("{s:i, s:i, s:i, s:b, s:f, s:f, s:o, s:o}", "inliers", m.inliers, "matches",
                                           m.matches, "alt_inliers", m.alt_inliers, "mirrored", m.mirrored,
                                           "work_coverage", m.work_coverage, "query_coverage", m.query_coverage,
                                           "query_region", region_json(m.query_region), "work_region",
                                           region_json(m.work_region))
                               : json_null();
        json_t *o = json_pack("{s:b, s:[], s:{s:i, s:s, s:b, s:i, s:i, s:i}, s:{s:i, s:i}, s:{s:i, s:i}, s:o, s:f,"
                              " s:s, s:s, s:b, s:s, s:o}",
                              "ok", 1, "images", "pdq", "distance", m.distance, "transform",
                              provscan_dihedral_name(m.transform), "inverted", m.inverted, "distance_untransformed",
                              pdq_plain, "bits", 256,
                              "version", PROVSCAN_PDQ_VERSION, "phash", "distance", ph, "bits", 64, "dhash",
                              "distance", dh, "bits", 64, "local", local_ev, "score", m.probability, "kind",
                              kind_name(m.kind), "verdict", word,
                              "low_quality", an[0].fp.quality < PROVSCAN_PDQ_MIN_QUALITY ||
                                                 an[1].fp.quality < PROVSCAN_PDQ_MIN_QUALITY,
                              "explanation", explanation, "evidence_picture",
                              picture ? cli_json_text(picture) : json_null());
        for (int i = 0; i < 2; i++) {
            char hex[65];
            provscan_pdq_to_hex(&an[i].fp.pdq[0], hex);
            json_array_append_new(json_object_get(o, "images"),
                                  json_pack("{s:o, s:i, s:i, s:s, s:i, s:s}", "path", cli_json_text(path[i]), "width",
                                            an[i].info.source_width, "height", an[i].info.source_height, "format",
                                            an[i].info.format, "quality", an[i].fp.quality, "pdq", hex));
        }
        cli_json_line(stdout, o);
    } else {
        for (int i = 0; i < 2; i++)
            printf("%c: %s (%dx%d %s, PDQ quality %d)\n", 'A' + i, path[i], an[i].info.source_width,
                   an[i].info.source_height, an[i].info.format, an[i].fp.quality);
        printf("PDQ distance   %3d / 256 (best transform of A: %s%s; untransformed %d)\n", m.distance,
               provscan_dihedral_name(m.transform), m.inverted ? ", tones inverted" : "", pdq_plain);
        printf("pHash distance %3d / 64\n", ph);
        printf("dHash distance %3d / 64\n", dh);
        if (m.inliers > 0)
            printf("Local features %d verified matches (of %d)%s; matched region: %.0f%% of A, %.0f%% of B; "
                   "another placement fits %d\n",
                   m.inliers, m.matches, m.mirrored ? ", mirrored" : "", 100.0 * m.query_coverage,
                   100.0 * m.work_coverage, m.alt_inliers);
        else if (local)
            printf("Local features no verified match\n");
        printf("Score %.3f (%s)\n", m.probability, kind_name(m.kind));
        const char *col = v == VERDICT_MATCH ? "\033[1;31m" : v == VERDICT_POSSIBLE ? "\033[1;33m" : "\033[1;32m";
        printf("Verdict: %s%s%s: %s\n", cli_color(stdout, col), word, cli_color_reset(stdout), explanation);
        if (an[0].fp.quality < PROVSCAN_PDQ_MIN_QUALITY || an[1].fp.quality < PROVSCAN_PDQ_MIN_QUALITY)
            printf("(an image has little structure, PDQ quality under %d: its hash alone proves little)\n",
                   PROVSCAN_PDQ_MIN_QUALITY);
        if (picture)
            printf("Evidence: %s\n", picture);
    }
    for (int i = 0; i < 2; i++)
        provscan_analysis_free(&an[i]);
    return failed ? EXIT_INPUT_FAILED : EXIT_OK;
}

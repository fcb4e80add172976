/* cmd_compare.c — `provscan compare A B`: hash distances, the best dihedral transform and a verdict. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: provscan compare [OPTIONS] A B\n"
            "Compares two images: PDQ distance over the 8 rotations/mirrors of B, pHash and dHash\n"
            "distances, and a plain-language verdict on whether one is a copy of the other.\n\n"
            "  -j, --json           one JSON object instead of text\n"
            "  -m, --mode MODE      fast (default) or compatible (see 'provscan hash --help')\n"
            "      --max-pixels N   refuse larger images before decoding (default %llu)\n"
            "  -h, --help           this help\n\n"
            "Verdicts: 'match' (PDQ distance <= %d of 256), 'possible' (<= %d), 'different'; when either\n"
            "image has PDQ quality under %d the verdict says it is unreliable.\n"
            "Exit status: 0 compared (whatever the verdict); 1 an image could not be read; 2 usage error.\n",
            (unsigned long long)PROVSCAN_DEFAULT_MAX_PIXELS, PROVSCAN_PDQ_MATCH_DISTANCE,
            PROVSCAN_PDQ_POSSIBLE_DISTANCE, PROVSCAN_PDQ_MIN_QUALITY);
}

/* How B relates to A when A matched B's variant t (A is t applied to B). */
static const char *transform_phrase(provscan_dihedral t)
{
    switch (t) {
    case PROVSCAN_D_ORIGINAL: return "";
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

int cmd_compare(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"mode", required_argument, NULL, 'm'},
        {"max-pixels", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    unsigned long long max_pixels = PROVSCAN_DEFAULT_MAX_PIXELS;
    provscan_hash_mode mode = PROVSCAN_MODE_FAST;
    optind = 0;
    while ((c = getopt_long(argc, argv, "jm:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'm':
            if (cli_parse_mode(optarg, &mode) != 0)
                return cli_usage_error("compare", "--mode must be 'fast' or 'compatible', not '%s'", optarg);
            break;
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
    provscan_fingerprint fp[2];
    provscan_image_info info[2];
    provscan_error err[2];
    provscan_status st[2];
#pragma omp parallel for num_threads(2)
    for (int i = 0; i < 2; i++)
        st[i] = provscan_fingerprint_file(path[i], mode, max_pixels, &fp[i], &info[i], &err[i]);
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
        return EXIT_INPUT_FAILED;
    }

    provscan_dihedral best;
    int pdq = provscan_pdq_distance_dihedral(&fp[0].pdq[0], &fp[1], &best);
    int pdq_plain = provscan_pdq_distance(&fp[0].pdq[0], &fp[1].pdq[0]);
    int ph = provscan_hash64_distance(fp[0].phash, fp[1].phash);
    int dh = provscan_hash64_distance(fp[0].dhash, fp[1].dhash);
    int low_quality = fp[0].quality < PROVSCAN_PDQ_MIN_QUALITY || fp[1].quality < PROVSCAN_PDQ_MIN_QUALITY;
    const char *verdict = pdq <= PROVSCAN_PDQ_MATCH_DISTANCE      ? "match"
                          : pdq <= PROVSCAN_PDQ_POSSIBLE_DISTANCE ? "possible"
                                                                  : "different";
    char explanation[256];
    if (strcmp(verdict, "match") == 0)
        snprintf(explanation, sizeof explanation, "A is a copy of B%s (same picture: resized, recompressed or edited)",
                 transform_phrase(best));
    else if (strcmp(verdict, "possible") == 0)
        snprintf(explanation, sizeof explanation, "A may be a heavily edited copy of B%s; check by eye",
                 transform_phrase(best));
    else
        snprintf(explanation, sizeof explanation, "no sign that one image copies the other as a whole");
    if (low_quality)
        strncat(explanation, " (unreliable: an image has little structure, PDQ quality under 50)",
                sizeof explanation - strlen(explanation) - 1);

    if (json) {
        json_t *o = json_pack("{s:b, s:[], s:{s:i, s:s, s:i, s:i, s:i}, s:{s:i, s:i}, s:{s:i, s:i}, s:s, s:b, s:s}",
                              "ok", 1, "images", "pdq", "distance", pdq, "transform", provscan_dihedral_name(best),
                              "distance_untransformed", pdq_plain, "bits", 256, "version", PROVSCAN_PDQ_VERSION,
                              "phash", "distance", ph, "bits", 64, "dhash", "distance", dh, "bits", 64, "verdict",
                              verdict, "low_quality", low_quality, "explanation", explanation);
        for (int i = 0; i < 2; i++) {
            char hex[65];
            provscan_pdq_to_hex(&fp[i].pdq[0], hex);
            json_array_append_new(json_object_get(o, "images"),
                                  json_pack("{s:o, s:i, s:i, s:s, s:i, s:s}", "path", cli_json_text(path[i]), "width",
                                            info[i].source_width, "height", info[i].source_height, "format",
                                            info[i].format, "quality", fp[i].quality, "pdq", hex));
        }
        cli_json_line(stdout, o);
    } else {
        printf("A: %s (%dx%d %s, PDQ quality %d)\n", path[0], info[0].source_width, info[0].source_height,
               info[0].format, fp[0].quality);
        printf("B: %s (%dx%d %s, PDQ quality %d)\n", path[1], info[1].source_width, info[1].source_height,
               info[1].format, fp[1].quality);
        printf("PDQ distance   %3d / 256 (best transform of B: %s; untransformed %d)\n", pdq,
               provscan_dihedral_name(best), pdq_plain);
        printf("pHash distance %3d / 64\n", ph);
        printf("dHash distance %3d / 64\n", dh);
        const char *col = strcmp(verdict, "match") == 0 ? "\033[1;31m" : strcmp(verdict, "possible") == 0 ? "\033[1;33m" : "\033[1;32m";
        printf("Verdict: %s%s%s: %s\n", cli_color(stdout, col), verdict, cli_color_reset(stdout), explanation);
    }
    return EXIT_OK;
}

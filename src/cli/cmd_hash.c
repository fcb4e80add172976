/* cmd_hash.c — `provscan hash`: fingerprints many files in parallel, printing results in input order. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

/* Files are hashed in chunks so output keeps input order while memory stays bounded. */
#define HASH_CHUNK 256

typedef struct hash_result {
    provscan_status status;
    provscan_fingerprint fp;
    provscan_image_info info;
    provscan_error err;
} hash_result;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: provscan hash [OPTIONS] FILE...\n"
            "Fingerprints image files: PDQ (256 bits, with its 0-100 quality), pHash and dHash (64 bits).\n\n"
            "  -j, --json           one JSON object per file (JSON Lines) instead of text\n"
            "  -m, --mode MODE      fast (default): shrink-on-load, EXIF orientation applied, alpha on white;\n"
            "                       compatible: full resolution as the PDQ reference (bit-exact hashes)\n"
            "  -d, --dihedral       also give the PDQ hashes of the 8 rotations/mirrors\n"
            "  -J, --jobs N         files hashed in parallel (default: all cores)\n"
            "      --max-pixels N   refuse larger images before decoding (default %llu)\n"
            "  -h, --help           this help\n\n"
            "Text output, one line per file, tab-separated:\n"
            "  PDQ-HEX QUALITY PHASH DHASH WIDTHxHEIGHT ORIENTATION PATH\n"
            "Exit status: 0 all files hashed; 1 some file failed (named on stderr; the others are\n"
            "still hashed); 2 usage error.\n",
            (unsigned long long)PROVSCAN_DEFAULT_MAX_PIXELS);
}

static json_t *hash_json(const char *path, const hash_result *r, provscan_hash_mode mode, int dihedral)
{
    if (r->status != PROVSCAN_OK)
        return json_pack("{s:o, s:b, s:o}", "path", cli_json_text(path), "ok", 0, "error", cli_json_error(&r->err));
    char hex[65], ph[17], dh[17];
    provscan_pdq_to_hex(&r->fp.pdq[0], hex);
    snprintf(ph, sizeof ph, "%016llx", (unsigned long long)r->fp.phash);
    snprintf(dh, sizeof dh, "%016llx", (unsigned long long)r->fp.dhash);
    json_t *pdq = json_pack("{s:s, s:i, s:s, s:s, s:i}", "algorithm", "pdq", "version", PROVSCAN_PDQ_VERSION, "mode",
                            mode == PROVSCAN_MODE_FAST ? "fast" : "compatible", "hash", hex, "quality", r->fp.quality);
    if (dihedral) {
        json_t *d = json_object();
        for (int t = 0; t < PROVSCAN_DIHEDRAL_COUNT; t++) {
            provscan_pdq_to_hex(&r->fp.pdq[t], hex);
            json_object_set_new(d, provscan_dihedral_name((provscan_dihedral)t), json_string(hex));
        }
        json_object_set_new(pdq, "dihedral", d);
    }
    return json_pack("{s:o, s:b, s:i, s:i, s:s, s:i, s:b, s:o, s:{s:s, s:i, s:s}, s:{s:s, s:i, s:s}}", "path",
                     cli_json_text(path), "ok", 1, "width", r->info.source_width, "height", r->info.source_height,
                     "format", r->info.format, "orientation", r->info.orientation, "orientation_applied",
                     r->info.orientation_applied, "pdq", pdq, "phash", "algorithm", "phash", "version",
                     PROVSCAN_PHASH_VERSION, "hash", ph, "dhash", "algorithm", "dhash", "version",
                     PROVSCAN_DHASH_VERSION, "hash", dh);
}

static void hash_text(const char *path, const hash_result *r, int dihedral)
{
    char hex[65], orient[32] = "-";
    provscan_pdq_to_hex(&r->fp.pdq[0], hex);
    if (r->info.orientation > 1)
        snprintf(orient, sizeof orient, "exif%d%s", r->info.orientation, r->info.orientation_applied ? "" : "-ignored");
    printf("%s\t%d\t%016llx\t%016llx\t%dx%d\t%s\t%s\n", hex, r->fp.quality, (unsigned long long)r->fp.phash,
           (unsigned long long)r->fp.dhash, r->info.source_width, r->info.source_height, orient, path);
    if (dihedral) {
        for (int t = 1; t < PROVSCAN_DIHEDRAL_COUNT; t++) {
            provscan_pdq_to_hex(&r->fp.pdq[t], hex);
            printf("  %-10s %s\n", provscan_dihedral_name((provscan_dihedral)t), hex);
        }
    }
}

int cmd_hash(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},     {"mode", required_argument, NULL, 'm'},
        {"dihedral", no_argument, NULL, 'd'}, {"jobs", required_argument, NULL, 'J'},
        {"max-pixels", required_argument, NULL, 'P'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, dihedral = 0;
    long jobs = cli_default_jobs();
    unsigned long long max_pixels = PROVSCAN_DEFAULT_MAX_PIXELS;
    provscan_hash_mode mode = PROVSCAN_MODE_FAST;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "jm:dJ:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'd': dihedral = 1; break;
        case 'm':
            if (cli_parse_mode(optarg, &mode) != 0)
                return cli_usage_error("hash", "--mode must be 'fast' or 'compatible', not '%s'", optarg);
            break;
        case 'J':
            if (cli_parse_int(optarg, 1, 4096, &jobs) != 0)
                return cli_usage_error("hash", "--jobs needs a number from 1 to 4096, not '%s'", optarg);
            break;
        case 'P':
            if (cli_parse_u64(optarg, &max_pixels) != 0 || max_pixels == 0)
                return cli_usage_error("hash", "--max-pixels needs a positive number, not '%s'", optarg);
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: return cli_usage_error("hash", "unknown option");
        }
    }
    int nfiles = argc - optind;
    if (nfiles <= 0)
        return cli_usage_error("hash", "no FILE given");
    char **files = argv + optind;

    hash_result *results = malloc(HASH_CHUNK * sizeof *results);
    if (!results) {
        cli_error("out of memory");
        return EXIT_USAGE;
    }
    int failures = 0;
    for (int start = 0; start < nfiles; start += HASH_CHUNK) {
        int n = nfiles - start < HASH_CHUNK ? nfiles - start : HASH_CHUNK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
        for (int i = 0; i < n; i++) {
            hash_result *r = &results[i];
            r->status = provscan_fingerprint_file(files[start + i], mode, max_pixels, &r->fp, &r->info, &r->err);
        }
        for (int i = 0; i < n; i++) {
            const char *path = files[start + i];
            hash_result *r = &results[i];
            if (r->status != PROVSCAN_OK) {
                failures++;
                cli_error("%s", r->err.message);
            }
            if (json)
                cli_json_line(stdout, hash_json(path, r, mode, dihedral));
            else if (r->status == PROVSCAN_OK)
                hash_text(path, r, dihedral);
        }
        fflush(stdout);
    }
    free(results);
    if (ferror(stdout)) {
        cli_error("writing the output failed");
        return EXIT_USAGE;
    }
    return failures ? EXIT_INPUT_FAILED : EXIT_OK;
}

/* main.c — the provscan command: global options and dispatch to sub-commands. */
#include "cli/cli.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include <omp.h>

typedef struct command {
    const char *name;
    ps_command_fn run;
    const char *summary;
} command;

static const command commands[] = {
    {"hash", cmd_hash, "fingerprint image files (PDQ, pHash, dHash)"},
    {"compare", cmd_compare, "compare two images and say whether one copies the other"},
    {"index", cmd_index, "create, fill and maintain a corpus index (create|add|info|remove|prune|verify)"},
    {"scan", cmd_scan, "check images against a corpus index: which work do they copy?"},
    {"batch", cmd_batch, "scan many images as a resumable streaming job (JSON Lines out)"},
    {"merge", cmd_merge, "merge batch outputs of shards into the answer of one index"},
};

static void print_help(FILE *f)
{
    fprintf(f, "Usage: provscan [--help | --version] COMMAND [OPTIONS] [ARGS]\n"
               "Checks whether images copy (all or part of) works in a reference corpus.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'provscan COMMAND --help' for the options of a command.\n"
               "Exit status: 0 success, 1 some input failed (scan/batch: a copy was found), 2 usage or fatal error.\n"
               "Environment: PROVSCAN_SIMD=scalar|avx2|avx512 forces a kernel set; NO_COLOR turns colour off.\n");
}

static void print_version(void)
{
    printf("provscan %s\n", provscan_version());
    printf("simd: %s (available: %s)\n", provscan_simd_path(), provscan_simd_available());
    printf("decoders: %s\n", provscan_decoder_version());
    printf("openmp: %d threads by default\n", cli_default_jobs());
}

int main(int argc, char **argv)
{
    /* Every image allocates and frees decode and filter buffers of a few megabytes. By default glibc
     * serves such sizes with mmap and returns them to the kernel on free, so the next image pays
     * page faults on all of it again (measured: a third of the hashing time). Keeping them in the
     * heap lets the next image reuse the same pages. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0 || strcmp(name, "version") == 0) {
        print_version();
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            provscan_error err;
            if (provscan_init(&err) != PROVSCAN_OK) {
                cli_error("%s", err.message);
                return EXIT_USAGE;
            }
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "provscan: unknown command '%s'\n", name);
    print_help(stderr);
    return EXIT_USAGE;
}

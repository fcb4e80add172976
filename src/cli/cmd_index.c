/* cmd_index.c — `provscan index create|add|info|remove|prune|verify`: building and maintaining a corpus index. */
#include "cli/cli.h"
#include "cli/progress.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: provscan index create INDEX\n"
            "       provscan index add [OPTIONS] INDEX PATH...\n"
            "       provscan index info [--json] INDEX\n"
            "       provscan index remove INDEX PATH...\n"
            "       provscan index prune INDEX\n"
            "       provscan index verify INDEX\n"
            "Builds and maintains a corpus index: a directory holding the catalog of works (path, SHA-256,\n"
            "attribution, fingerprints) and the descriptor files searched by 'scan' and 'batch'.\n\n"
            "add walks directories recursively and is incremental: unchanged files are skipped, a file with\n"
            "new content is re-fingerprinted, a moved file (same content, old path gone) keeps its entry.\n"
            "  -m, --meta FILE.csv     import attribution: columns path,title,author,license,source_url,note\n"
            "                          (header row required; paths relative to the CSV's folder)\n"
            "  -T, --files-from FILE   also add the paths listed in FILE, one per line (- for stdin)\n"
            "  -J, --jobs N            files fingerprinted in parallel (default: all cores)\n"
            "  -L, --follow-symlinks   follow symbolic links inside directories (not followed by default)\n"
            "      --max-pixels N      refuse larger images before decoding (default %llu)\n"
            "  -q, --quiet             no progress bar and no summary\n"
            "remove deletes works by path (a directory: everything under it); prune deletes works whose\n"
            "file no longer exists; verify checks every checksum and the catalog against the segments.\n\n"
            "Exit status: 0 success; 1 some files could not be added (listed on stderr) or verify found\n"
            "problems; 2 usage error or the index could not be opened or written.\n",
            (unsigned long long)PROVSCAN_DEFAULT_MAX_PIXELS);
}

static int open_index(const char *dir, int writable, provscan_index **idx)
{
    provscan_error err;
    if (provscan_index_open(dir, writable, idx, &err) != PROVSCAN_OK) {
        cli_error("%s", err.message);
        return -1;
    }
    return 0;
}

typedef struct add_ui {
    cli_progress bar;
} add_ui;

static void on_progress(const provscan_add_progress *p, void *user)
{
    add_ui *ui = user;
    char extra[64] = "";
    if (p->failed)
        snprintf(extra, sizeof extra, "%llu failed", (unsigned long long)p->failed);
    cli_progress_update(&ui->bar, p->done, p->total, extra[0] ? extra : NULL);
}

static void on_file_error(const char *path, const provscan_error *err, void *user)
{
    add_ui *ui = user;
    (void)path;
    cli_progress_finish(&ui->bar); /* keep the message on its own line */
    cli_error("%s", err->message);
}

static int cmd_add(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"meta", required_argument, NULL, 'm'},       {"jobs", required_argument, NULL, 'J'},
        {"follow-symlinks", no_argument, NULL, 'L'}, {"max-pixels", required_argument, NULL, 'P'},
        {"quiet", no_argument, NULL, 'q'},           {"help", no_argument, NULL, 'h'},
        {"files-from", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0},
    };
    provscan_add_options opts = {0};
    const char *files_from = NULL;
    int quiet = 0, c;
    long jobs = 0;
    unsigned long long max_pixels = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "m:T:J:Lqh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': opts.meta_csv = optarg; break;
        case 'T': files_from = optarg; break;
        case 'J':
            if (cli_parse_int(optarg, 1, 4096, &jobs) != 0)
                return cli_usage_error("index add", "--jobs needs a number from 1 to 4096, not '%s'", optarg);
            break;
        case 'L': opts.follow_symlinks = 1; break;
        case 'P':
            if (cli_parse_u64(optarg, &max_pixels) != 0 || max_pixels == 0)
                return cli_usage_error("index add", "--max-pixels needs a positive number, not '%s'", optarg);
            break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: return cli_usage_error("index", "unknown option");
        }
    }
    if (argc - optind < 1 || (argc - optind < 2 && !files_from))
        return cli_usage_error("index", "add needs INDEX and at least one PATH (or --files-from)");
    /* The writer lock is taken before the list is read, so a list streamed through a pipe is read
     * while this process already owns the index. */
    provscan_index *idx;
    if (open_index(argv[optind], 1, &idx) != 0)
        return EXIT_USAGE;
    /* The paths: those on the command line, then those listed in --files-from. */
    size_t npaths = (size_t)(argc - optind - 1), cap = npaths + 16;
    char **paths = malloc(cap * sizeof *paths);
    if (!paths)
        return cli_error("out of memory"), EXIT_USAGE;
    for (size_t i = 0; i < npaths; i++)
        paths[i] = strdup(argv[optind + 1 + (int)i]);
    if (files_from) {
        FILE *f = strcmp(files_from, "-") == 0 ? stdin : fopen(files_from, "r");
        if (!f) {
            cli_error("%s: cannot open: %s", files_from, strerror(errno));
            provscan_index_close(idx);
            return EXIT_USAGE;
        }
        char *line = NULL;
        size_t lcap = 0;
        ssize_t n;
        while ((n = getline(&line, &lcap, f)) >= 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
            if (n == 0)
                continue;
            if (npaths == cap) {
                char **p = realloc(paths, (cap *= 2) * sizeof *p);
                if (!p)
                    return cli_error("out of memory"), EXIT_USAGE;
                paths = p;
            }
            paths[npaths++] = strdup(line);
        }
        free(line);
        if (f != stdin)
            fclose(f);
    }
    add_ui ui;
    cli_progress_start(&ui.bar, "indexing", quiet);
    opts.jobs = (int)jobs;
    opts.max_pixels = max_pixels;
    opts.progress = on_progress;
    opts.on_error = on_file_error;
    opts.user = &ui;
    provscan_add_stats st;
    provscan_error err;
    provscan_status s = provscan_index_add(idx, (const char *const *)paths, npaths, &opts, &st, &err);
    for (size_t i = 0; i < npaths; i++)
        free(paths[i]);
    free(paths);
    cli_progress_finish(&ui.bar);
    double secs = cli_progress_elapsed(&ui.bar);
    provscan_index_close(idx);
    if (s != PROVSCAN_OK) {
        cli_error("%s", err.message);
        return EXIT_USAGE;
    }
    if (!quiet) {
        uint64_t done = st.added + st.updated + st.moved;
        fprintf(stderr,
                "provscan: %llu files: %llu added, %llu updated, %llu moved, %llu unchanged, %llu not images, "
                "%llu failed; %llu attributions set; %.1f s (%.1f images/s)\n",
                (unsigned long long)st.files, (unsigned long long)st.added, (unsigned long long)st.updated,
                (unsigned long long)st.moved, (unsigned long long)st.unchanged, (unsigned long long)st.non_image,
                (unsigned long long)st.failed, (unsigned long long)st.attribution, secs,
                secs > 0 ? (double)(done + st.failed) / secs : 0.0);
    }
    return st.failed ? EXIT_INPUT_FAILED : EXIT_OK;
}

static void print_time(const char *label, int64_t t)
{
    char buf[64];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    printf("%-16s %s\n", label, buf);
}

static int cmd_info(int argc, char **argv)
{
    int json = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0)
            json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else if (!dir)
            dir = argv[i];
        else
            return cli_usage_error("index", "info takes one INDEX");
    }
    if (!dir)
        return cli_usage_error("index", "info needs INDEX");
    provscan_index *idx;
    if (open_index(dir, 0, &idx) != 0)
        return EXIT_USAGE;
    provscan_index_stats st;
    provscan_error err;
    provscan_status s = provscan_index_info(idx, &st, &err);
    provscan_index_close(idx);
    if (s != PROVSCAN_OK) {
        cli_error("%s", err.message);
        return EXIT_USAGE;
    }
    if (json) {
        cli_json_line(stdout, json_pack("{s:o, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:{s:i, s:i, s:i}}",
                                        "index", cli_json_text(dir), "format_version", st.format_version, "works",
                                        (json_int_t)st.works, "segments", (json_int_t)st.segments, "records",
                                        (json_int_t)st.records, "dead_records", (json_int_t)st.tombstones, "bytes",
                                        (json_int_t)st.bytes, "created_at", (json_int_t)st.created_at, "updated_at",
                                        (json_int_t)st.updated_at, "hash_mode", st.hash_mode, "algorithms", "pdq",
                                        PROVSCAN_PDQ_VERSION, "phash", PROVSCAN_PHASH_VERSION, "dhash",
                                        PROVSCAN_DHASH_VERSION));
    } else {
        printf("%-16s %s\n", "index", dir);
        printf("%-16s %d\n", "format version", st.format_version);
        printf("%-16s %llu\n", "works", (unsigned long long)st.works);
        printf("%-16s %llu (%llu records, %llu dead awaiting compaction)\n", "segments",
               (unsigned long long)st.segments, (unsigned long long)st.records, (unsigned long long)st.tombstones);
        printf("%-16s %.1f MB\n", "size on disk", (double)st.bytes / 1e6);
        printf("%-16s pdq/%d (%s mode), phash/%d, dhash/%d\n", "hashes", PROVSCAN_PDQ_VERSION, st.hash_mode,
               PROVSCAN_PHASH_VERSION, PROVSCAN_DHASH_VERSION);
        print_time("created", st.created_at);
        print_time("updated", st.updated_at);
    }
    return EXIT_OK;
}

static void on_problem(const char *problem, void *user)
{
    (void)user;
    printf("problem: %s\n", problem);
}

int cmd_index(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    const char *sub = argv[1];
    argc--;
    argv++;
    if (strcmp(sub, "add") == 0)
        return cmd_add(argc, argv);
    if (strcmp(sub, "info") == 0)
        return cmd_info(argc, argv);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
    provscan_error err;
    if (strcmp(sub, "create") == 0) {
        if (argc != 2)
            return cli_usage_error("index", "create takes one INDEX directory");
        if (provscan_index_create(argv[1], &err) != PROVSCAN_OK) {
            cli_error("%s", err.message);
            return EXIT_USAGE;
        }
        fprintf(stderr, "provscan: created index %s\n", argv[1]);
        return EXIT_OK;
    }
    if (strcmp(sub, "remove") == 0 || strcmp(sub, "prune") == 0 || strcmp(sub, "verify") == 0) {
        int is_remove = strcmp(sub, "remove") == 0;
        if (is_remove ? argc < 3 : argc != 2)
            return cli_usage_error("index", is_remove ? "remove needs INDEX and PATH..." : "%s takes one INDEX", sub);
        provscan_index *idx;
        int verify = strcmp(sub, "verify") == 0;
        if (open_index(argv[1], !verify, &idx) != 0)
            return EXIT_USAGE;
        uint64_t n = 0;
        provscan_status s;
        if (is_remove)
            s = provscan_index_remove(idx, (const char *const *)argv + 2, (size_t)(argc - 2), &n, &err);
        else if (!verify)
            s = provscan_index_prune(idx, &n, &err);
        else
            s = provscan_index_verify(idx, on_problem, NULL, &n, &err);
        provscan_index_close(idx);
        if (s != PROVSCAN_OK) {
            cli_error("%s", err.message);
            return EXIT_USAGE;
        }
        if (verify) {
            printf("%s: %s\n", argv[1], n ? "problems found" : "ok");
            return n ? EXIT_INPUT_FAILED : EXIT_OK;
        }
        fprintf(stderr, "provscan: %s %llu works\n", is_remove ? "removed" : "pruned", (unsigned long long)n);
        return EXIT_OK;
    }
    fprintf(stderr, "provscan index: unknown sub-command '%s'\n", sub);
    usage(stderr);
    return EXIT_USAGE;
}

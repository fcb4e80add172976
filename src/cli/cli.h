/* cli.h — shared pieces of the provscan command: sub-command entry points, messages, JSON output. */
#ifndef PROVSCAN_CLI_H
#define PROVSCAN_CLI_H

#include <stdio.h>

#include <jansson.h>

#include "provscan.h"

/* Exit codes (docs/cli.md). scan and batch give EXIT_FLAGGED a meaning of its own. */
enum {
    EXIT_OK = 0,
    EXIT_INPUT_FAILED = 1, /* hash/compare/index: some input could not be processed */
    EXIT_FLAGGED = 1,      /* scan/batch: a copy was found */
    EXIT_USAGE = 2,        /* bad command line (and scan/batch: an error stopped the command) */
};

typedef int (*ps_command_fn)(int argc, char **argv);

int cmd_hash(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_merge(int argc, char **argv);

/* "provscan: <message>" on stderr; "error:" in red when stderr is a terminal and NO_COLOR is unset. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "provscan <cmd>: <message>" and a pointer to --help; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Colour escape sequences for stream f, or "" when colour is off for it. */
const char *cli_color(FILE *f, const char *sgr);
const char *cli_color_reset(FILE *f);

/* A JSON string for text that may not be valid UTF-8 (file names): invalid bytes become U+FFFD. */
json_t *cli_json_text(const char *s);
/* Writes obj as one compact line to f and releases it. Returns 0, or -1 on a write error. */
int cli_json_line(FILE *f, json_t *obj);
/* {"code": ..., "message": ...} for an error. */
json_t *cli_json_error(const provscan_error *err);

/* Parses a positive integer option value; returns 0 on success. */
int cli_parse_int(const char *s, long min, long max, long *out);
int cli_parse_u64(const char *s, unsigned long long *out);
int cli_parse_double(const char *s, double min, double max, double *out);
/* Parses --mode: "fast" or "compatible". */
int cli_parse_mode(const char *s, provscan_hash_mode *mode);
/* Default worker count: every core the process may use. */
int cli_default_jobs(void);

#endif

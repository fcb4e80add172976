/* progress.h — the CLI's progress bar (stderr, terminals only). */
#ifndef PROVSCAN_PROGRESS_H
#define PROVSCAN_PROGRESS_H

#include <stdint.h>

typedef struct cli_progress {
    int enabled, drawn;
    const char *label;
    uint64_t start_ms, last_ms;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *label, int quiet);
/* total 0: unknown (count and rate only). extra: a short status such as "3 failed", or NULL. */
void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total, const char *extra);
/* Clears the bar so that the summary that follows starts on a clean line. */
void cli_progress_finish(cli_progress *p);
double cli_progress_elapsed(const cli_progress *p);

#endif

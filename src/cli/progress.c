/* progress.c — a progress bar on stderr (done/total, rate, ETA), drawn only when stderr is a terminal. */
#include "cli/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cli_progress_start(cli_progress *p, const char *label, int quiet)
{
    memset(p, 0, sizeof *p);
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->label = label;
    p->start_ms = now_ms();
}

static void format_duration(char *buf, size_t n, double seconds)
{
    if (seconds < 0 || seconds > 99 * 3600.0) {
        snprintf(buf, n, "--:--");
        return;
    }
    unsigned s = (unsigned)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, n, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, n, "%u:%02u", s / 60, s % 60);
}

void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total, const char *extra)
{
    if (!p->enabled)
        return;
    uint64_t t = now_ms();
    if (done < total && t - p->last_ms < 100)
        return; /* redraw at most ten times a second */
    p->last_ms = t;
    double elapsed = (double)(t - p->start_ms) / 1000.0;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char eta[16] = "--:--";
    if (total && rate > 0)
        format_duration(eta, sizeof eta, (double)(total - done) / rate);
    char bar[31];
    int width = 30, filled = total ? (int)((double)done / (double)total * width) : 0;
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    if (total)
        fprintf(stderr, "\r\033[K%s [%s] %llu/%llu  %.1f/s  ETA %s%s%s", p->label, bar, (unsigned long long)done,
                (unsigned long long)total, rate, eta, extra ? "  " : "", extra ? extra : "");
    else
        fprintf(stderr, "\r\033[K%s %llu  %.1f/s%s%s", p->label, (unsigned long long)done, rate, extra ? "  " : "",
                extra ? extra : "");
    fflush(stderr);
    p->drawn = 1;
}

void cli_progress_finish(cli_progress *p)
{
    if (p->enabled && p->drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
    p->drawn = 0;
}

double cli_progress_elapsed(const cli_progress *p)
{
    return (double)(now_ms() - p->start_ms) / 1000.0;
}

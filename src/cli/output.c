/* output.c — messages on stderr, colour rules, JSON Lines output and option parsing for the CLI. */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

static int color_on(FILE *f)
{
    const char *no = getenv("NO_COLOR");
    if (no && *no)
        return 0;
    const char *term = getenv("TERM");
    if (term && strcmp(term, "dumb") == 0)
        return 0;
    return isatty(fileno(f));
}

const char *cli_color(FILE *f, const char *sgr)
{
    return color_on(f) ? sgr : "";
}

const char *cli_color_reset(FILE *f)
{
    return color_on(f) ? "\033[0m" : "";
}

static void vmessage(const char *label, const char *sgr, const char *fmt, va_list ap)
{
    fprintf(stderr, "provscan: %s%s%s ", cli_color(stderr, sgr), label, cli_color_reset(stderr));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("error:", "\033[1;31m", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("warning:", "\033[1;33m", fmt, ap);
    va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "provscan %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'provscan %s --help'.\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not valid. */
static int utf8_sequence(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    int n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (n == 2 && s[0] < 0xC2) || (n == 4 && s[0] > 0xF4))
        return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    unsigned cp = s[0] & (0x7F >> n);
    for (int i = 1; i < n; i++)
        cp = cp << 6 | (s[i] & 0x3F);
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

json_t *cli_json_text(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t len = strlen(s);
    char *buf = malloc(len * 3 + 1), *o = buf;
    if (!buf)
        return json_null();
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = utf8_sequence(p);
        if (n > 0) {
            memcpy(o, p, (size_t)n);
            o += n;
            p += n;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
        }
    }
    *o = '\0';
    j = json_string(buf);
    free(buf);
    return j ? j : json_null();
}

int cli_json_line(FILE *f, json_t *obj)
{
    int r = json_dumpf(obj, f, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (r != 0 || fputc('\n', f) == EOF)
        return -1;
    return 0;
}

json_t *cli_json_error(const provscan_error *err)
{
    return json_pack("{s:s, s:o}", "code", provscan_error_name(err->status), "message", cli_json_text(err->message));
}

int cli_parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_u64(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (*s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

int cli_parse_mode(const char *s, provscan_hash_mode *mode)
{
    if (strcmp(s, "fast") == 0)
        *mode = PROVSCAN_MODE_FAST;
    else if (strcmp(s, "compatible") == 0)
        *mode = PROVSCAN_MODE_COMPATIBLE;
    else
        return -1;
    return 0;
}

int cli_default_jobs(void)
{
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
}

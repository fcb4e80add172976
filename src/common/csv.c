/* csv.c — an RFC 4180 CSV reader. */
#include "common/csv.h"

#include <stdlib.h>
#include <string.h>

static int push_char(ps_csv *c, size_t *len, char ch)
{
    if (*len + 1 >= c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        char *b = realloc(c->buf, cap);
        if (!b)
            return -1;
        c->buf = b;
        c->cap = cap;
    }
    c->buf[(*len)++] = ch;
    return 0;
}

int ps_csv_next(ps_csv *c)
{
    size_t len = 0, nstarts = 0;
    size_t starts_cap = 16;
    size_t *starts = malloc(starts_cap * sizeof *starts);
    if (!starts)
        return -1;
    int ch = fgetc(c->f);
    if (ch == EOF) {
        free(starts);
        return 0;
    }
    c->line++;
    long start_line = c->line;
    int result = 1;
    for (;;) { /* one field per iteration */
        if (nstarts == starts_cap) {
            size_t *s = realloc(starts, (starts_cap *= 2) * sizeof *starts);
            if (!s) { result = -1; break; }
            starts = s;
        }
        starts[nstarts++] = len;
        if (ch == '"') {
            for (;;) {
                ch = fgetc(c->f);
                if (ch == EOF) { result = -1; break; } /* unterminated quoted field */
                if (ch == '\n')
                    c->line++;
                if (ch == '"') {
                    ch = fgetc(c->f);
                    if (ch != '"')
                        break; /* closing quote; ch is what follows */
                }
                if (push_char(c, &len, (char)ch) != 0) { result = -1; break; }
            }
            if (result < 0)
                break;
        } else {
            while (ch != EOF && ch != ',' && ch != '\n' && ch != '\r') {
                if (push_char(c, &len, (char)ch) != 0) { result = -1; break; }
                ch = fgetc(c->f);
            }
            if (result < 0)
                break;
        }
        if (push_char(c, &len, '\0') != 0) { result = -1; break; }
        if (ch == ',') {
            ch = fgetc(c->f);
            continue;
        }
        if (ch == '\r') {
            ch = fgetc(c->f);
            if (ch != '\n' && ch != EOF)
                ungetc(ch, c->f);
        }
        /* '\n', "\r\n" or EOF (or stray text after a closing quote, read up to the line end) */
        while (ch != '\n' && ch != EOF)
            ch = fgetc(c->f);
        break;
    }
    if (result > 0) {
        if (nstarts > c->fields_cap) {
            char **f = realloc(c->fields, nstarts * sizeof *f);
            if (!f) {
                free(starts);
                return -1;
            }
            c->fields = f;
            c->fields_cap = nstarts;
        }
        for (size_t i = 0; i < nstarts; i++)
            c->fields[i] = c->buf + starts[i];
        c->nfields = nstarts;
    }
    c->line = c->line < start_line ? start_line : c->line;
    free(starts);
    return result;
}

void ps_csv_free(ps_csv *c)
{
    free(c->buf);
    free(c->fields);
    c->buf = NULL;
    c->fields = NULL;
    c->cap = c->fields_cap = c->nfields = 0;
}

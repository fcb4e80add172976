/* csv.h — an RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF or LF line ends). */
#ifndef PROVSCAN_CSV_H
#define PROVSCAN_CSV_H

#include <stddef.h>
#include <stdio.h>

typedef struct ps_csv {
    FILE *f;
    char *buf;          /* current record's fields, NUL-separated */
    size_t cap;
    char **fields;
    size_t nfields, fields_cap;
    long line;          /* line number where the current record started */
} ps_csv;

/* Reads the next record into csv->fields. Returns 1 for a record, 0 at the end, -1 on a malformed
 * record (an unterminated quote) or out of memory. */
int ps_csv_next(ps_csv *csv);
void ps_csv_free(ps_csv *csv);

#endif

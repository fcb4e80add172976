/* report.h — verdicts and the scan result record, shared by scan, batch and merge (schema: docs/cli.md). */
#ifndef PROVSCAN_REPORT_H
#define PROVSCAN_REPORT_H

#include <stdio.h>

#include <jansson.h>

#include "provscan.h"

#define SCAN_SCHEMA "provscan-scan/1"

typedef enum verdict { VERDICT_NONE = 0, VERDICT_POSSIBLE, VERDICT_MATCH } verdict;

typedef struct scan_policy {
    int match_distance;    /* PDQ distance at most this: match */
    int possible_distance; /* at most this: possible */
    int list_distance;     /* farthest candidate reported (the search radius), verdict "none" beyond possible */
    int min_quality;       /* below it (query or work) a match is only "possible" */
    int top_k;
} scan_policy;

void scan_policy_default(scan_policy *p);
const char *verdict_name(verdict v);
verdict match_verdict(int distance, int query_quality, int work_quality, const scan_policy *p);
/* PDQ similarity in [0, 1]: 1 - distance/128, clamped (unrelated images sit near distance 128). */
double pdq_score(int distance);

/* One result record (ok or error). matches may be NULL when n is 0. */
json_t *report_json(const char *query, const provscan_analysis *a, const provscan_error *err,
                    const provscan_match *matches, size_t n, const scan_policy *p, verdict *overall);
/* The same, for people. */
void report_text(FILE *f, const char *query, const provscan_analysis *a, const provscan_match *matches, size_t n,
                 const scan_policy *p, verdict *overall);
/* Recomputes the verdicts of a record (after merging matches) and returns the overall one. */
verdict report_reverdict(json_t *record, const scan_policy *p);

#endif

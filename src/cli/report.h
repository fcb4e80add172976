/* report.h — verdicts and the scan result record, shared by scan, batch and merge (schema: docs/cli.md). */
#ifndef PROVSCAN_REPORT_H
#define PROVSCAN_REPORT_H

#include <stdio.h>

#include <jansson.h>

#include "provscan.h"

#define SCAN_SCHEMA "provscan-scan/4"

typedef enum verdict { VERDICT_NONE = 0, VERDICT_POSSIBLE, VERDICT_MATCH } verdict;

typedef struct scan_policy {
    double match_probability;    /* calibrated probability at least this: match */
    double possible_probability; /* at least this: possible */
    int list_distance;           /* PDQ distance within which the global stage lists works */
    int local;                   /* run the local-feature stage */
    int local_candidates;        /* works verified per query from visual-word retrieval */
    int tiles;                   /* search queries' tiles: 1 always, -1 never, 0 for large queries only */
    int no_windows;              /* retrieval without the query's windows */
    int top_k;
} scan_policy;

void scan_policy_default(scan_policy *p);
/* What provscan_analyze_file extracts from a query under this policy (a provscan_local_mode). */
int scan_policy_local_mode(const scan_policy *p);
const char *verdict_name(verdict v);
verdict match_verdict(double probability, const scan_policy *p);
const char *kind_name(provscan_kind k);

/* One result record (ok or error). matches may be NULL when n is 0. evidence_picture: path of the
 * evidence PNG written for the first match, or NULL. */
json_t *report_json(const char *query, const provscan_analysis *a, const provscan_error *err,
                    const provscan_match *matches, size_t n, const scan_policy *p, const char *evidence_picture,
                    verdict *overall);
/* The same, for people. */
void report_text(FILE *f, const char *query, const provscan_analysis *a, const provscan_match *matches, size_t n,
                 const scan_policy *p, const char *evidence_picture, verdict *overall);
/* Recomputes the ranks and verdicts of a record (after merging matches) and returns the overall one. */
verdict report_reverdict(json_t *record, const scan_policy *p);

#endif

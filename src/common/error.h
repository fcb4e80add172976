/* error.h — the one error convention inside libprovscan: status codes plus a formatted message. */
#ifndef PROVSCAN_ERROR_H
#define PROVSCAN_ERROR_H

#include "provscan.h"

/* Records status and a printf-style message in err (if non-NULL) and returns status, so that a
 * failing function can `return ps_fail(err, PROVSCAN_E_IO, "%s: cannot open: %s", path, why);`. */
provscan_status ps_fail(provscan_error *err, provscan_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err to PROVSCAN_OK with an empty message. */
void ps_error_clear(provscan_error *err);

/* Returns from the calling function if expr yields a status other than PROVSCAN_OK. */
#define PS_TRY(expr)                                    \
    do {                                                \
        provscan_status ps_try_status_ = (expr);        \
        if (ps_try_status_ != PROVSCAN_OK)              \
            return ps_try_status_;                      \
    } while (0)

#endif

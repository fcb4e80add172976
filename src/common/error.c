/* error.c — status names and message formatting for provscan_error. */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const status_names[PROVSCAN_STATUS_COUNT] = {
    [PROVSCAN_OK] = "ok",
    [PROVSCAN_E_ARG] = "invalid_argument",
    [PROVSCAN_E_NOMEM] = "out_of_memory",
    [PROVSCAN_E_IO] = "io_error",
    [PROVSCAN_E_NOT_IMAGE] = "not_an_image",
    [PROVSCAN_E_CORRUPT] = "corrupt_image",
    [PROVSCAN_E_TOO_LARGE] = "too_large",
    [PROVSCAN_E_TOO_SMALL] = "too_small",
    [PROVSCAN_E_UNSUPPORTED] = "unsupported",
    [PROVSCAN_E_INDEX] = "index_damaged",
    [PROVSCAN_E_VERSION] = "version_mismatch",
    [PROVSCAN_E_BUSY] = "busy",
    [PROVSCAN_E_INTERNAL] = "internal_error",
};

const char *provscan_error_name(provscan_status status)
{
    if ((unsigned)status >= PROVSCAN_STATUS_COUNT)
        return "unknown_status";
    return status_names[status];
}

provscan_status ps_fail(provscan_error *err, provscan_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void ps_error_clear(provscan_error *err)
{
    if (err) {
        err->status = PROVSCAN_OK;
        err->message[0] = '\0';
    }
}

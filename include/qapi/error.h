/*
 * Error objects for the control path (open, create, reopen, QMP handlers).
 *
 * Contract, as in QEMU: a function that can fail takes `Error **errp` as
 * its last argument and also returns a failure value. On failure it sets
 * *errp exactly once (unless errp is NULL: the caller does not care). The
 * caller owns the Error and either propagates it, reports it or frees it.
 * Passing &error_abort aborts on error (for "cannot happen" cases), and
 * &error_fatal prints the message and exits(1).
 *
 * Each Error carries a class that maps onto a QMP error class.
 */
#ifndef QAPI_ERROR_H
#define QAPI_ERROR_H

#include "qemu/osdep.h"

typedef enum ErrorClass {
    ERROR_CLASS_GENERIC_ERROR,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
    ERROR_CLASS_KVM_MISSING_CAP,
} ErrorClass;

typedef struct Error Error;

extern Error *error_abort;
extern Error *error_fatal;

/* Set *errp to a new GenericError with a printf-style message. */
void error_setg(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Same, appending ": strerror(os_errno)". */
void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* Set an error of a specific QMP class. */
void error_set(Error **errp, ErrorClass cls, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Move local_err into *dst_errp (or free it when dst_errp is NULL). */
void error_propagate(Error **dst_errp, Error *local_err);
/* Like error_propagate, prefixing the message with fmt. */
void error_propagate_prepend(Error **dst_errp, Error *local_err,
                             const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Prefix the message of *errp (no-op if errp or *errp is NULL). */
void error_prepend(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Add a hint printed after the message by error_report_err(). */
void error_append_hint(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

const char *error_get_pretty(const Error *err);
ErrorClass error_get_class(const Error *err);
void error_free(Error *err);
void error_free_or_abort(Error **errp);

/* Print "PROGNAME: message" on stderr and free err. */
void error_report_err(Error *err);
/* Print "PROGNAME: message" on stderr. */
void error_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void warn_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Program name used as prefix by error_report(); defaults to "qblk". */
void error_set_progname(const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Error, error_free)

#endif /* QAPI_ERROR_H */

/*
 * A byte-rate limiter in time slices (block-job speed): each slice of
 * slice_ns may carry speed * slice_ns / 1e9 bytes; a caller that used up
 * the slice is told how long to wait. Only bytes actually copied are
 * charged. speed 0 = unlimited. (util/ratelimit.c)
 */
#ifndef QEMU_RATELIMIT_H
#define QEMU_RATELIMIT_H

#include "qemu/osdep.h"

typedef struct RateLimit {
    int64_t slice_start_ns;
    int64_t slice_end_ns;
    uint64_t slice_quota;       /* bytes per slice; 0 = unlimited */
    uint64_t dispatched;        /* bytes charged in the current slice */
    int64_t slice_ns;           /* nominal slice length */
} RateLimit;

/* speed in bytes per second; slice_ns e.g. 100 ms. */
void ratelimit_set_speed(RateLimit *limit, uint64_t speed, int64_t slice_ns);
/* Charge n bytes at now_ns; returns ns to wait before continuing (0 = go). */
int64_t ratelimit_calculate_delay(RateLimit *limit, uint64_t n,
                                  int64_t now_ns);

#endif /* QEMU_RATELIMIT_H */

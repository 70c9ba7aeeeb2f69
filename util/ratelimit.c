/*
 * Byte-rate limiting in time slices (include/qemu/ratelimit.h).
 *
 * A slice [slice_start, slice_end) may carry slice_quota bytes. Bytes
 * are charged after they were moved; while the slice has room the
 * caller goes on at once. Once a charge fills the slice, its end is
 * pushed to where the bytes dispatched in it are paid for at the set
 * speed (start + dispatched / quota slices) and the caller waits until
 * then. The next slice starts where the previous one ended when the
 * caller comes back within a slice of that (continuous accounting, so
 * the long-run rate is exact and timer lateness is not lost); after a
 * longer idle period it starts afresh at "now", which bounds the burst
 * to one slice. Pure arithmetic on the caller's clock: no locking, the
 * owner (one job) serialises calls.
 */
#include "qemu/osdep.h"
#include "qemu/ratelimit.h"

void ratelimit_set_speed(RateLimit *limit, uint64_t speed, int64_t slice_ns)
{
    g_assert(slice_ns > 0);
    limit->slice_ns = slice_ns;
    if (!speed) {
        limit->slice_quota = 0;
        return;
    }
    /* speed * slice_ns / 1e9 without overflow; at least one byte. */
    limit->slice_quota = MAX((uint64_t)((double)speed * slice_ns / 1e9), 1);
}

/* Start a new slice at start_ns with nothing charged. */
static void ratelimit_new_slice(RateLimit *limit, int64_t start_ns)
{
    limit->slice_start_ns = start_ns;
    limit->slice_end_ns = start_ns + limit->slice_ns;
    limit->dispatched = 0;
}

int64_t ratelimit_calculate_delay(RateLimit *limit, uint64_t n,
                                  int64_t now_ns)
{
    double slices;

    if (!limit->slice_quota) {
        return 0;
    }
    if (now_ns >= limit->slice_end_ns) {
        if (limit->slice_end_ns &&
            now_ns - limit->slice_end_ns < limit->slice_ns) {
            ratelimit_new_slice(limit, limit->slice_end_ns);
        } else {
            ratelimit_new_slice(limit, now_ns);
        }
    }
    limit->dispatched += n;
    if (limit->dispatched < limit->slice_quota) {
        return 0;
    }
    /* The slice is full: it lasts as long as its bytes take at speed. */
    slices = (double)limit->dispatched / limit->slice_quota;
    limit->slice_end_ns = limit->slice_start_ns +
                          (int64_t)(slices * limit->slice_ns);
    return MAX(limit->slice_end_ns - now_ns, 0);
}

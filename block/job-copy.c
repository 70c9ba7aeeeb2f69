/*
 * The copy engine of block jobs (include/block/job-copy.h).
 *
 * State: one BlockJobCopier per job, embedded in the job. The dispatcher
 * is the job's run() coroutine; each copy is a coroutine of its own that,
 * when it ends, drops in_flight and wakes the dispatcher if it waits for
 * room (waiting is set only while it is yielded in
 * block_job_copier_co_wait, so no other wake-up can reach it there: the
 * job stays busy meanwhile, job_enter leaves it alone). The walk keeps a
 * cursor and a queue of ranges stopped by the on-error policy, retried
 * first after the resume. With a remote source (set_parallel) more
 * copies run at once and the walk reuses the last block-status extent
 * (each status call there is a round trip; the copy path re-checks the
 * target's allocation under its serialising request anyway). Main loop
 * thread only: no locks.
 */
#include "qemu/osdep.h"
#include "block/job-copy.h"
#include "qemu/aio.h"
#include "trace.h"

/* One copy coroutine's work. */
typedef struct BlockJobCopy {
    BlockJobCopier *c;
    BlockJobCopyRange r;
} BlockJobCopy;

/* ---- Set-up and limits */

/* Most copies in flight for a remote source, whatever its hint. */
#define BLOCK_JOB_COPIER_PARALLEL_MAX 64

/* Largest copy for speed bytes/s: about half a 100 ms slice's quota. */
static int64_t block_job_copier_chunk_for_speed(const BlockJobCopyLimits *l,
                                                int64_t speed)
{
    if (speed <= 0) {
        return l->chunk_max;
    }
    return MIN(l->chunk_max,
               MAX(l->chunk_min, QEMU_ALIGN_DOWN(speed / 20, l->chunk_min)));
}

/* Limits and ops are static tables; the chunk follows the current speed. */
void block_job_copier_init(BlockJobCopier *c, BlockJob *job,
                           const BlockJobCopyLimits *limits,
                           const BlockJobCopyOps *ops)
{
    c->job = job;
    c->limits = limits;
    c->ops = ops;
    c->chunk_limit = block_job_copier_chunk_for_speed(limits, job->speed);
    g_queue_init(&c->retry);
    job->copier = c;
}

void block_job_copier_set_parallel(BlockJobCopier *c, uint32_t hint)
{
    c->parallel = MIN(hint, BLOCK_JOB_COPIER_PARALLEL_MAX);
    c->status_from = c->status_end = 0;
    trace_block_job_copy_parallel(c->job, hint, c->parallel);
}

/* Only the walk's retry queue owns memory (each copy frees its own). */
void block_job_copier_cleanup(BlockJobCopier *c)
{
    BlockJobCopyRange *r;

    while ((r = g_queue_pop_head(&c->retry))) {
        g_free(r);
    }
}

void block_job_copier_set_speed(BlockJob *job, int64_t speed)
{
    BlockJobCopier *c = job->copier;

    /* block_job_create sets the speed before the job can call init. */
    if (c) {
        c->chunk_limit = block_job_copier_chunk_for_speed(c->limits, speed);
    }
}

/* Jobs whose node guests never use leave ops->guest_busy NULL. */
bool block_job_copier_guest_busy(BlockJobCopier *c)
{
    return c->ops->guest_busy && c->ops->guest_busy(c);
}

/*
 * A remote source: each copy mostly waits for a round trip, so its
 * parallelism sets the pace; guests keep half of it while busy.
 */
int block_job_copier_limit(BlockJobCopier *c)
{
    bool busy = block_job_copier_guest_busy(c);
    int limit = busy ? c->limits->in_flight_busy : c->limits->in_flight_idle;

    if (c->parallel > 0) {
        limit = MAX(limit, busy ? c->parallel / 2 : c->parallel);
    }
    return limit;
}

/* The speed's chunk, capped at chunk_busy while guests are busy. */
int64_t block_job_copier_chunk(BlockJobCopier *c)
{
    int64_t chunk = c->chunk_limit;

    if (block_job_copier_guest_busy(c)) {
        chunk = MIN(chunk, c->limits->chunk_busy);
    }
    return chunk;
}

/* ---- Copy coroutines */

/*
 * The walk's accounting of a finished copy: progress on success, else
 * the on-error policy (stop: the range is queued for retry after the
 * resume; ignore: the job goes on but ends failed; report: it fails).
 */
static void block_job_copier_walk_done(BlockJobCopier *c,
                                       const BlockJobCopyRange *r, int ret,
                                       bool is_read)
{
    Job *job = &c->job->job;
    BlockErrorAction action;

    if (ret == 0) {
        job_progress_update(job, r->bytes);
        return;
    }
    /*
     * Several copies may fail from one cause (a server gone): the first
     * one applies the policy and emits BLOCK_JOB_ERROR, as the single
     * copy in flight of QEMU's jobs would; the others follow its verdict
     * quietly (already failing: nothing more; already stopped for an
     * error: queued for the retry after the resume).
     */
    if (c->failed) {
        return;
    }
    if (job->user_paused && c->job->iostatus != BLOCK_DEVICE_IO_STATUS_OK) {
        if (!job_is_cancelled(job)) {
            g_queue_push_tail(&c->retry, g_memdup2(r, sizeof(*r)));
        }
        return;
    }
    action = block_job_error_action(c->job, ret, is_read);
    trace_block_job_copy_error(c->job, r->offset, r->bytes, ret, action);
    if (action == BLOCK_ERROR_ACTION_STOP) {
        if (!job_is_cancelled(job)) {
            g_queue_push_tail(&c->retry, g_memdup2(r, sizeof(*r)));
        }
        return;
    }
    if (c->ret == 0) {
        c->ret = ret;
    }
    if (action == BLOCK_ERROR_ACTION_REPORT) {
        c->failed = true;
    } else {
        job_progress_update(job, r->bytes);
    }
}

/* Wake the dispatcher if it waits for a copy to finish. */
static void block_job_copier_wake(BlockJobCopier *c)
{
    if (c->waiting) {
        c->waiting = false;
        aio_co_wake(c->co);
    }
}

/* Body of a copy coroutine: copy, account, make room. */
static void coroutine_fn block_job_copier_co_entry(void *opaque)
{
    BlockJobCopy *cp = opaque;
    BlockJobCopier *c = cp->c;
    bool is_read = true;
    int ret;

    ret = c->ops->co_copy(c, &cp->r, &is_read);
    c->in_flight--;
    c->bytes_in_flight -= cp->r.bytes;
    if (c->ops->done) {
        c->ops->done(c, &cp->r, ret, is_read);
    } else {
        block_job_copier_walk_done(c, &cp->r, ret, is_read);
    }
    g_free(cp);
    block_job_copier_wake(c);
}

/* Counted before the coroutine first runs: the limit holds at once. */
void block_job_copier_start(BlockJobCopier *c, const BlockJobCopyRange *r)
{
    BlockJobCopy *cp = g_new(BlockJobCopy, 1);

    cp->c = c;
    cp->r = *r;
    c->in_flight++;
    c->bytes_in_flight += r->bytes;
    aio_co_wake(qemu_coroutine_create(block_job_copier_co_entry, cp));
}

/* Parking with copies in flight would let them move while paused. */
void coroutine_fn block_job_copier_co_pause(Job *job)
{
    block_job_copier_co_wait(((BlockJob *)job)->copier, 1);
}

/* Busy waiting (this is I/O): the job stays busy while it yields. */
void coroutine_fn block_job_copier_co_wait(BlockJobCopier *c, int limit)
{
    while (c->in_flight >= limit && c->in_flight > 0) {
        c->co = qemu_coroutine_self();
        c->waiting = true;
        qemu_coroutine_yield();
    }
}

/* A job sleep: block-job-set-speed wakes it to re-plan. */
void coroutine_fn block_job_copier_co_throttle(BlockJobCopier *c,
                                               int64_t bytes)
{
    int64_t delay = block_job_ratelimit_get_delay(c->job, bytes);

    if (delay > 0) {
        trace_block_job_copy_throttle(c->job, bytes, delay);
        job_sleep_ns(&c->job->job, delay);
    }
}

/* ---- The walk */

/*
 * co_needs_copy for [offset, offset + *n), answered from the remembered
 * extent when the source is remote and it covers offset.
 */
static int coroutine_fn block_job_copier_co_status(BlockJobCopier *c,
                                                   int64_t offset,
                                                   int64_t *n)
{
    int ret;

    if (c->parallel > 0 && offset >= c->status_from &&
        offset < c->status_end) {
        *n = MIN(*n, c->status_end - offset);
        return c->status_ret;
    }
    ret = c->ops->co_needs_copy(c, offset, n);
    if (c->parallel > 0 && ret >= 0 && *n > 0) {
        c->status_from = offset;
        c->status_end = offset + *n;
        c->status_ret = ret;
    }
    return ret;
}

/*
 * Find the next range to copy from c->cursor on, advancing the progress
 * over skipped ranges. 1 with *r set, 0 at the end, -errno when the job
 * could not tell (*r then is the range that could not be examined).
 */
static int coroutine_fn block_job_copier_co_next(BlockJobCopier *c,
                                                 BlockJobCopyRange *r)
{
    while (c->cursor < c->len) {
        int64_t n = MIN(c->len - c->cursor, c->limits->status_max);
        int ret = block_job_copier_co_status(c, c->cursor, &n);

        if (ret < 0 || n <= 0) {
            r->offset = c->cursor;
            r->bytes = MIN(c->len - c->cursor, block_job_copier_chunk(c));
            c->cursor += r->bytes;
            return ret < 0 ? ret : -EIO;
        }
        if (ret == 1) {
            r->offset = c->cursor;
            r->bytes = MIN(n, block_job_copier_chunk(c));
            c->cursor += r->bytes;
            return 1;
        }
        trace_block_job_copy_skip(c->job, c->cursor, n);
        job_progress_update(&c->job->job, n);
        c->cursor += n;
    }
    return 0;
}

/*
 * The next range to copy: a retried one first, else a new one. 1 with
 * *r set, 0 when done, 2 when a status error went through the on-error
 * policy (look again after a pause point).
 */
static int coroutine_fn block_job_copier_co_pick(BlockJobCopier *c,
                                                 BlockJobCopyRange *r)
{
    BlockJobCopyRange *q = g_queue_pop_head(&c->retry);
    int ret;

    if (q) {
        *r = *q;
        g_free(q);
        return 1;
    }
    ret = block_job_copier_co_next(c, r);
    if (ret < 0) {
        block_job_copier_walk_done(c, r, ret, true);
        return c->failed ? 0 : 2;
    }
    return ret;
}

/* Should the walk stop (cancelled, or a copy failed for good)? */
static bool block_job_copier_stopped(BlockJobCopier *c)
{
    return job_is_cancelled(&c->job->job) || c->failed;
}

/*
 * One iteration: pause point, pick a range, pay the rate limit, wait for
 * room, start the copy. The job's own callbacks decide what a range is
 * worth; everything else (order, limits, retries) is the same for all.
 */
int coroutine_fn block_job_copier_co_walk(BlockJobCopier *c, int64_t len)
{
    BlockJobCopyRange r;

    c->len = len;
    job_progress_set_remaining(&c->job->job, len);
    for (;;) {
        int ret;

        job_pause_point(&c->job->job);
        if (block_job_copier_stopped(c)) {
            break;
        }
        ret = block_job_copier_co_pick(c, &r);
        if (ret == 0 && c->in_flight > 0) {
            /*
             * Nothing new to start, but copies still run and one may yet
             * fail and stop the job, queueing its range for a retry after
             * the resume: let them settle, then look again (through the
             * pause point) rather than end with that range uncopied.
             */
            block_job_copier_co_wait(c, 1);
            continue;
        }
        if (ret == 0) {
            break;
        }
        if (ret == 2) {
            continue;           /* a status error, maybe a stop: pause now */
        }
        block_job_copier_co_throttle(c, r.bytes);
        if (job_is_cancelled(&c->job->job)) {
            break;
        }
        block_job_copier_co_wait(c, block_job_copier_limit(c));
        if (block_job_copier_stopped(c)) {
            /* r was never started: a stopped job would lose it. */
            break;
        }
        block_job_copier_start(c, &r);
        if (c->ops->co_dispatched) {
            c->ops->co_dispatched(c);
        }
        if (!g_queue_is_empty(&c->retry)) {
            /* Let stopped copies settle (and queue their retries). */
            block_job_copier_co_wait(c, 1);
        }
    }
    block_job_copier_co_wait(c, 1);
    if (c->ret == 0 && job_is_cancelled(&c->job->job)) {
        return -ECANCELED;
    }
    return c->ret;
}

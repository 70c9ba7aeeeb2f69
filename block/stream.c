/*
 * The stream job (block-stream): pull the data of a backing chain, down
 * to an optional base, into the node that uses it, then drop the
 * streamed-out images from the chain.
 *
 * State: one StreamJob per job. run() is the dispatcher: it walks the
 * target from offset 0 asking block status in large extents; ranges the
 * target already holds, and ranges no layer between the target's backing
 * node and the base allocates, cost no I/O and no rate-limit charge (they
 * only advance the progress). Every other range is handed in chunks to a
 * copy coroutine, which reads it through the job's root child with
 * BDRV_REQ_COPY_ON_READ | BDRV_REQ_PREFETCH: the request path populates
 * the target under a serialising tracked request, so a guest write that
 * lands meanwhile is never overwritten by older backing data, and data
 * the target gained in between is not copied again. A few copies run at
 * once; while guests have requests in flight on the target only one does
 * (and smaller), so their latency stays low. Everything runs on the main
 * loop thread, so the counters below need no lock.
 *
 * Zero ranges: streaming to a base changes the backing link at the end,
 * so a range that reads as zeroes because of an intermediate layer must
 * hide the base afterwards; BDRV_REQ_COR_HIDE_BACKING makes the
 * copy-on-read path store such zeroes even where the format cannot
 * record a zero cluster. Without a base nothing shows through at the end,
 * so unallocated zeroes can stay unallocated.
 *
 * Crash safety (prepare): the target is flushed before its header names
 * the new backing file, and the header update itself is the driver's
 * crash-safe bdrv_change_backing_file; a crash before it leaves the old,
 * still valid chain (the data copied so far is just redundant), so a new
 * stream resumes where the last one stopped. Streamed-out images are not
 * touched and stay valid.
 *
 * qblk inserts no copy-on-read filter node (QEMU 7.2 does, named by
 * filter-node-name): the request path's copy-on-read does its work. A
 * read-only target (a backing image, say) is reopened read-write for the
 * job and back to read-only in clean, however the job ends.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/blockjob.h"
#include "qemu/aio.h"
#include "sysemu/blockdev.h"
#include "qapi/qapi-commands.h"
#include "trace.h"

/* Largest copy request (the copy-on-read bounce buffer is 1 MiB). */
#define STREAM_CHUNK_MAX (1 * MiB)
/* Copy request size while guest requests are in flight on the target. */
#define STREAM_CHUNK_BUSY (256 * KiB)
/* Smallest copy request, and the alignment of throttled ones. */
#define STREAM_CHUNK_MIN (64 * KiB)
/* Copies in flight at once while the target has no guest requests... */
#define STREAM_IN_FLIGHT_IDLE 4
/* ...and while it has some. */
#define STREAM_IN_FLIGHT_BUSY 1
/*
 * How often the target is flushed while copying: a crash then loses at
 * most this much work (the metadata of copied clusters reaches the disk),
 * so a stream restarted after a crash copies only what is still missing.
 */
#define STREAM_CHECKPOINT_NS (3 * 1000000000LL)
/* Bytes asked per block-status call (extents are as large as they come). */
#define STREAM_STATUS_MAX (1 * GiB)

typedef struct StreamRange {
    int64_t offset;
    int64_t bytes;
} StreamRange;

typedef struct StreamJob {
    BlockJob common;
    BlockDriverState *target;
    /*
     * The lowest node whose data is copied: its backing node is the base
     * (NULL: the whole chain). The target itself when the base is the
     * target's backing node, and there is nothing to copy.
     */
    BlockDriverState *above_base;
    char *backing_file;         /* header string; NULL: base's filename */
    bool to_base;               /* a base stays below (hide its data) */

    int64_t len;                /* target length when the job started */
    int64_t cursor;             /* next offset to look at */
    int64_t chunk_limit;        /* largest copy for the current speed */
    GQueue retry;               /* StreamRange *: failed under on-error stop */
    int in_flight;              /* copy coroutines running */
    Coroutine *co;              /* the dispatcher, while it waits for copies */
    bool waiting;               /* co is yielded until in_flight drops */
    int ret;                    /* first error reported or ignored */
    bool failed;                /* a copy failed with action report */
    int64_t checkpoint_ns;      /* when the target was last flushed */
    bool target_was_ro;         /* reopened read-write for the job */
} StreamJob;

/* One copy coroutine's work. */
typedef struct StreamCopy {
    StreamJob *s;
    StreamRange r;
} StreamCopy;

static const BlockJobDriver stream_job_driver;

/*
 * The next node down the chain: the backing node, or for a filter node
 * (blkdebug, copy-on-read) the node it filters.
 */
static BlockDriverState *stream_chain_next(BlockDriverState *bs)
{
    if (bs->backing) {
        return bs->backing->bs;
    }
    if (bs->drv && bs->drv->is_filter && bs->file) {
        return bs->file->bs;
    }
    return NULL;
}

/* ---- Chunking and throttling */

/* Largest copy for speed bytes/s: about half a 100 ms slice's quota. */
static int64_t stream_chunk_for_speed(int64_t speed)
{
    if (speed <= 0) {
        return STREAM_CHUNK_MAX;
    }
    return MIN(STREAM_CHUNK_MAX,
               MAX(STREAM_CHUNK_MIN,
                   QEMU_ALIGN_DOWN(speed / 20, STREAM_CHUNK_MIN)));
}

static void stream_set_speed(BlockJob *job, int64_t speed)
{
    StreamJob *s = container_of(job, StreamJob, common);

    s->chunk_limit = stream_chunk_for_speed(speed);
}

/* Guest (non-job) requests in flight on the target. */
static bool stream_guest_busy(StreamJob *s)
{
    return (int64_t)s->target->in_flight > s->in_flight;
}

/* Copies allowed in flight now. */
static int stream_in_flight_limit(StreamJob *s)
{
    return stream_guest_busy(s) ? STREAM_IN_FLIGHT_BUSY
                                : STREAM_IN_FLIGHT_IDLE;
}

/* Size of the next copy request. */
static int64_t stream_chunk(StreamJob *s)
{
    int64_t chunk = s->chunk_limit;

    if (stream_guest_busy(s)) {
        chunk = MIN(chunk, STREAM_CHUNK_BUSY);
    }
    return chunk;
}

/* ---- Copy coroutines */

/* Wake the dispatcher if it waits for a copy to finish. */
static void stream_wake(StreamJob *s)
{
    if (s->waiting) {
        s->waiting = false;
        aio_co_wake(s->co);
    }
}

/*
 * Account a finished copy: progress on success, else the on-error
 * policy (stop: the range is queued for retry after the resume; ignore:
 * the job goes on but ends failed; report: the job fails).
 */
static void stream_copy_done(StreamJob *s, StreamRange *r, int ret)
{
    BlockErrorAction action;

    if (ret == 0) {
        job_progress_update(&s->common.job, r->bytes);
        return;
    }
    action = block_job_error_action(&s->common, ret, true);
    trace_stream_copy_error(s, r->offset, r->bytes, ret, action);
    if (action == BLOCK_ERROR_ACTION_STOP) {
        if (!job_is_cancelled(&s->common.job)) {
            g_queue_push_tail(&s->retry, g_memdup2(r, sizeof(*r)));
        }
        return;
    }
    if (s->ret == 0) {
        s->ret = ret;
    }
    if (action == BLOCK_ERROR_ACTION_REPORT) {
        s->failed = true;
    } else {
        job_progress_update(&s->common.job, r->bytes);
    }
}

/* Body of a copy coroutine: populate the target over one range. */
static void coroutine_fn stream_co_copy(void *opaque)
{
    StreamCopy *c = opaque;
    StreamJob *s = c->s;
    BdrvRequestFlags flags = BDRV_REQ_COPY_ON_READ | BDRV_REQ_PREFETCH;
    int ret;

    if (s->to_base) {
        flags |= BDRV_REQ_COR_HIDE_BACKING;
    }
    trace_stream_co_copy(s, c->r.offset, c->r.bytes);
    ret = bdrv_co_preadv(s->common.root, c->r.offset, c->r.bytes, NULL,
                         flags);
    stream_copy_done(s, &c->r, ret);
    g_free(c);
    s->in_flight--;
    stream_wake(s);
}

/* Start a copy coroutine on r (the dispatcher keeps running). */
static void stream_start_copy(StreamJob *s, const StreamRange *r)
{
    StreamCopy *c = g_new(StreamCopy, 1);
    Coroutine *co;

    c->s = s;
    c->r = *r;
    s->in_flight++;
    co = qemu_coroutine_create(stream_co_copy, c);
    aio_co_wake(co);
}

/* Wait (busy: this is I/O) until fewer than limit copies are in flight. */
static void coroutine_fn stream_co_wait_copies(StreamJob *s, int limit)
{
    while (s->in_flight >= limit && s->in_flight > 0) {
        s->co = qemu_coroutine_self();
        s->waiting = true;
        qemu_coroutine_yield();
    }
}

/* ---- The dispatcher */

/*
 * Is [offset, offset + *n) to be copied? 1 (copy the first *n bytes),
 * 0 (skip them) or -errno. Allocated in the target: skip. Otherwise copy
 * what a layer from the target's backing node down to above_base
 * allocates (past the end of a shorter layer counts: it reads zeroes).
 */
static int coroutine_fn stream_co_needs_copy(StreamJob *s, int64_t offset,
                                             int64_t *n)
{
    BlockDriverState *backing = bdrv_backing_bs(s->target);
    int64_t bytes = *n;
    int ret;

    ret = bdrv_co_is_allocated(s->target, offset, bytes, n);
    if (ret != 0 || *n <= 0) {
        return ret < 0 ? ret : 0;
    }
    bytes = *n;
    if (!backing) {
        return 0;
    }
    ret = bdrv_co_is_allocated_above(backing, s->above_base, true, offset,
                                     bytes, n);
    if (ret >= 0 && *n <= 0) {
        /* Past the end of the backing node: zeroes that must hide a base. */
        *n = bytes;
        ret = s->to_base;
    }
    return ret;
}

/*
 * Find the next range to copy from s->cursor on, advancing the progress
 * over skipped ranges. 1 with *r set, 0 at the end, -errno when block
 * status fails (*r then is the range that could not be examined).
 */
static int coroutine_fn stream_co_next_range(StreamJob *s, StreamRange *r)
{
    while (s->cursor < s->len) {
        int64_t n = MIN(s->len - s->cursor, STREAM_STATUS_MAX);
        int ret = stream_co_needs_copy(s, s->cursor, &n);

        if (ret < 0 || n <= 0) {
            r->offset = s->cursor;
            r->bytes = MIN(s->len - s->cursor, stream_chunk(s));
            s->cursor += r->bytes;
            return ret < 0 ? ret : -EIO;
        }
        if (ret == 1) {
            r->offset = s->cursor;
            r->bytes = MIN(n, stream_chunk(s));
            s->cursor += r->bytes;
            return 1;
        }
        trace_stream_skip(s, s->cursor, n);
        job_progress_update(&s->common.job, n);
        s->cursor += n;
    }
    return 0;
}

/*
 * The next range to copy: a retried one first, else a new one. 1 with
 * *r set, 0 when done; status errors go through the on-error policy
 * here (retry/skip/fail as for a failed copy) and the search goes on.
 */
static int coroutine_fn stream_co_pick(StreamJob *s, StreamRange *r)
{
    StreamRange *q = g_queue_pop_head(&s->retry);
    int ret;

    if (q) {
        *r = *q;
        g_free(q);
        return 1;
    }
    ret = stream_co_next_range(s, r);
    if (ret < 0) {
        stream_copy_done(s, r, ret);
        return s->failed ? 0 : 2;   /* 2: look again after a pause point */
    }
    return ret;
}

/* Charge r to the rate limit and sleep as long as it says. */
static void coroutine_fn stream_co_throttle(StreamJob *s, StreamRange *r)
{
    int64_t delay = block_job_ratelimit_get_delay(&s->common, r->bytes);

    if (delay > 0) {
        trace_stream_throttle(s, r->bytes, delay);
        job_sleep_ns(&s->common.job, delay);
    }
}

/*
 * Flush the target when the last checkpoint is old enough. A failing
 * flush is not an error of the stream: prepare flushes again and fails
 * then if the target still cannot be flushed.
 */
static void coroutine_fn stream_co_checkpoint(StreamJob *s)
{
    int64_t now = qemu_clock_get_ns();
    int ret;

    if (now - s->checkpoint_ns < STREAM_CHECKPOINT_NS) {
        return;
    }
    ret = bdrv_co_flush(s->target);
    trace_stream_checkpoint(s, ret);
    s->checkpoint_ns = qemu_clock_get_ns();
}

/* Copy every range that needs it, several at once. 0 or -errno. */
static int coroutine_fn stream_co_copy_all(StreamJob *s)
{
    Job *job = &s->common.job;
    StreamRange r;

    for (;;) {
        int ret;

        job_pause_point(job);
        if (job_is_cancelled(job) || s->failed) {
            break;
        }
        ret = stream_co_pick(s, &r);
        if (ret == 0) {
            break;
        }
        if (ret == 2) {
            continue;
        }
        stream_co_throttle(s, &r);
        if (job_is_cancelled(job)) {
            break;
        }
        stream_co_wait_copies(s, stream_in_flight_limit(s));
        if (job_is_cancelled(job) || s->failed) {
            break;
        }
        stream_start_copy(s, &r);
        stream_co_checkpoint(s);
        if (!g_queue_is_empty(&s->retry) && s->in_flight > 0) {
            /* Retry only after the failing copies have settled. */
            stream_co_wait_copies(s, 1);
        }
        if (s->cursor >= s->len && g_queue_is_empty(&s->retry)) {
            /* Last dispatch: the stopped copies may still queue retries. */
            stream_co_wait_copies(s, 1);
        }
    }
    stream_co_wait_copies(s, 1);
    return s->ret;
}

static int coroutine_fn stream_run(Job *job, Error **errp)
{
    StreamJob *s = container_of(job, StreamJob, common.job);
    int64_t len = bdrv_getlength(s->target);
    int ret;

    s->co = qemu_coroutine_self();
    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get the length of '%s'",
                         bdrv_get_node_name(s->target));
        return len;
    }
    trace_stream_run(s, s->target, s->above_base, len);
    if (s->above_base == s->target) {
        /* The base is the target's backing node: nothing to copy. */
        return 0;
    }
    s->len = len;
    s->checkpoint_ns = qemu_clock_get_ns();
    job_progress_set_remaining(job, len);
    ret = stream_co_copy_all(s);
    trace_stream_run_done(s, ret, job_is_cancelled(job));
    if (ret == 0 && job_is_cancelled(job)) {
        ret = -ECANCELED;
    }
    return ret;
}

/* .pause: park only once no copy is in flight (nothing moves then). */
static void coroutine_fn stream_pause(Job *job)
{
    StreamJob *s = container_of(job, StreamJob, common.job);

    stream_co_wait_copies(s, 1);
}

/* ---- Finalization */

/*
 * Success: flush the target, write its new backing reference (the base
 * as qblk opened it, or the user's string, with its format; or none),
 * then link it to the base in the graph, dropping the streamed nodes.
 */
static int stream_prepare(Job *job)
{
    StreamJob *s = container_of(job, StreamJob, common.job);
    BlockDriverState *base = stream_chain_next(s->above_base);
    const char *file = NULL, *fmt = NULL;
    Error *local_err = NULL;
    int ret;

    ret = bdrv_flush(s->target);
    if (ret < 0) {
        trace_stream_prepare_error(s, "flush", ret);
        return ret;
    }
    if (base) {
        file = s->backing_file ? s->backing_file : bdrv_get_filename(base);
        fmt = bdrv_get_format_name(base);
    }
    trace_stream_prepare(s, s->target, base, file ? file : "");
    ret = bdrv_change_backing_file(s->target, file, fmt, &local_err);
    if (ret < 0) {
        trace_stream_prepare_error(s, error_get_pretty(local_err), ret);
        error_free(local_err);
        return ret;
    }
    block_job_remove_all_bdrv(&s->common);
    ret = bdrv_set_backing_hd(s->target, base, &local_err);
    if (ret < 0) {
        trace_stream_prepare_error(s, error_get_pretty(local_err), ret);
        error_free(local_err);
    }
    return ret;
}

static void stream_clean(Job *job)
{
    StreamJob *s = container_of(job, StreamJob, common.job);
    StreamRange *r;

    while ((r = g_queue_pop_head(&s->retry))) {
        g_free(r);
    }
    g_free(s->backing_file);
    s->backing_file = NULL;
    if (s->target_was_ro) {
        Error *local_err = NULL;

        if (bdrv_reopen_set_read_only(s->target, true, &local_err) < 0) {
            warn_report("%s", error_get_pretty(local_err));
            error_free(local_err);
        }
        s->target_was_ro = false;
    }
}

static const BlockJobDriver stream_job_driver = {
    .job_driver = {
        .instance_size = sizeof(StreamJob),
        .job_type = JOB_TYPE_STREAM,
        .run = stream_run,
        .pause = stream_pause,
        .prepare = stream_prepare,
        .clean = stream_clean,
    },
    .set_speed = stream_set_speed,
};

/* ---- block-stream */

/* QEMU's checks of the mutually exclusive base selectors. */
static bool stream_check_exclusive(BlockStreamArgs *a, Error **errp)
{
    if (a->base && a->base_node) {
        error_setg(errp, "'base' and 'base-node' cannot be specified at the "
                   "same time");
        return false;
    }
    if (a->base && a->bottom) {
        error_setg(errp, "'base' and 'bottom' cannot be specified at the "
                   "same time");
        return false;
    }
    if (a->bottom && a->base_node) {
        error_setg(errp, "'bottom' and 'base-node' cannot be specified at "
                   "the same time");
        return false;
    }
    return true;
}

/* True if node is bs or below it in bs's backing chain. */
static bool stream_chain_contains(BlockDriverState *bs,
                                  BlockDriverState *node)
{
    for (; bs; bs = stream_chain_next(bs)) {
        if (bs == node) {
            return true;
        }
    }
    return false;
}

/* Resolve base / base-node to the base node (NULL if none given). */
static bool stream_find_base(BlockStreamArgs *a, BlockDriverState *bs,
                             BlockDriverState **base, Error **errp)
{
    *base = NULL;
    if (a->base) {
        *base = bdrv_find_backing_image(bs, a->base);
        if (!*base || *base == bs) {
            error_setg(errp, "Can't find '%s' in the backing chain", a->base);
            return false;
        }
    }
    if (a->base_node) {
        *base = blockdev_lookup_bs(NULL, a->base_node, errp);
        if (!*base) {
            return false;
        }
        if (*base == bs || !stream_chain_contains(bs, *base)) {
            error_setg(errp, "Node '%s' is not a backing image of '%s'",
                       a->base_node, a->device);
            return false;
        }
    }
    return true;
}

/* Resolve bottom to the lowest node to copy from (NULL if not given). */
static bool stream_find_bottom(BlockStreamArgs *a, BlockDriverState *bs,
                               BlockDriverState **bottom, Error **errp)
{
    *bottom = NULL;
    if (!a->bottom) {
        return true;
    }
    *bottom = blockdev_lookup_bs(NULL, a->bottom, errp);
    if (!*bottom) {
        return false;
    }
    if ((*bottom)->drv && (*bottom)->drv->is_filter) {
        error_setg(errp, "Node '%s' is a filter, use a non-filter node as "
                   "'bottom'", a->bottom);
        return false;
    }
    if (!stream_chain_contains(bs, *bottom)) {
        error_setg(errp, "Node '%s' is not in a chain starting from '%s'",
                   a->bottom, a->device);
        return false;
    }
    return true;
}

/*
 * The node whose backing node is base (bs itself when base is bs's
 * backing node; the last node of the chain when base is NULL).
 */
static BlockDriverState *stream_above_base(BlockDriverState *bs,
                                           BlockDriverState *base)
{
    while (stream_chain_next(bs) && stream_chain_next(bs) != base) {
        bs = stream_chain_next(bs);
    }
    return bs;
}

/* Refuse when a node from bs down to above_base is held by a job. */
static bool stream_check_busy(BlockDriverState *bs,
                              BlockDriverState *above_base, Error **errp)
{
    for (;; bs = stream_chain_next(bs)) {
        if (block_job_node_is_busy(bs, errp)) {
            return false;
        }
        if (bs == above_base) {
            return true;
        }
    }
}

typedef struct StreamDriveName {
    BlockDriverState *bs;
    const char *id;
} StreamDriveName;

static void stream_drive_name_cb(const char *id, BlockDriverState *bs,
                                 void *opaque)
{
    StreamDriveName *d = opaque;

    if (bs == d->bs && !d->id) {
        d->id = id;
    }
}

/*
 * The default job id, as QEMU: the name of the drive whose top node is bs,
 * else "" (which job creation refuses: "Invalid job ID ''").
 */
static const char *stream_default_job_id(BlockDriverState *bs)
{
    StreamDriveName d = { .bs = bs };

    blockdev_foreach_drive(stream_drive_name_cb, &d);
    return d.id ? d.id : "";
}

/* Job creation flags from auto-finalize / auto-dismiss. */
static int stream_job_flags(BlockStreamArgs *a)
{
    int flags = JOB_DEFAULT;

    if (a->has_auto_finalize && !a->auto_finalize) {
        flags |= JOB_MANUAL_FINALIZE;
    }
    if (a->has_auto_dismiss && !a->auto_dismiss) {
        flags |= JOB_MANUAL_DISMISS;
    }
    return flags;
}

/*
 * Create and start the job on bs, blocking bs and the nodes down to
 * above_base (not the base: jobs below may use it).
 */
static void stream_start(BlockStreamArgs *a, BlockDriverState *bs,
                         BlockDriverState *above_base, Error **errp)
{
    BlockdevOnError on_error = a->has_on_error ? a->on_error
                                               : BLOCKDEV_ON_ERROR_REPORT;
    int64_t speed = a->has_speed ? a->speed : 0;
    const char *job_id = a->job_id ? a->job_id : stream_default_job_id(bs);
    bool was_ro = bdrv_is_read_only(bs);
    StreamJob *s;

    if (was_ro && bdrv_reopen_set_read_only(bs, false, errp) < 0) {
        return;
    }
    s = block_job_create(job_id, &stream_job_driver, bs, speed, on_error,
                         stream_job_flags(a), errp);
    if (!s) {
        if (was_ro) {
            bdrv_reopen_set_read_only(bs, true, NULL);
        }
        return;
    }
    s->target_was_ro = was_ro;
    for (BlockDriverState *n = bs; n != above_base;) {
        n = stream_chain_next(n);
        if (!block_job_add_bdrv(&s->common, n, errp)) {
            /* Checked just before: cannot happen on one thread. */
            job_early_fail(&s->common.job);
            return;
        }
    }
    s->target = bs;
    s->above_base = above_base;
    s->to_base = stream_chain_next(above_base) != NULL;
    s->backing_file = g_strdup(a->backing_file);
    s->chunk_limit = stream_chunk_for_speed(speed);
    g_queue_init(&s->retry);
    trace_stream_start(s, bs, above_base, speed);
    job_start(&s->common.job);
}

void qmp_block_stream(BlockStreamArgs *a, Error **errp)
{
    BlockDriverState *bs, *base, *bottom, *above_base;

    if (!stream_check_exclusive(a, errp)) {
        return;
    }
    bs = blockdev_lookup_bs(a->device, a->device, errp);
    if (!bs) {
        return;
    }
    if (!stream_find_base(a, bs, &base, errp) ||
        !stream_find_bottom(a, bs, &bottom, errp)) {
        return;
    }
    above_base = bottom ? bottom : stream_above_base(bs, base);
    if (!stream_check_busy(bs, above_base, errp)) {
        return;
    }
    if (!base && a->backing_file) {
        error_setg(errp, "backing file specified, but streaming the entire "
                   "chain");
        return;
    }
    stream_start(a, bs, above_base, errp);
}

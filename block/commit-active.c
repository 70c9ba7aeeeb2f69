/*
 * Active commit (block-commit whose top is the active layer): copy the
 * active layer and the images down to the base into the base while the
 * guest keeps writing, then, on block-job-complete, move the guest onto
 * the base (the pivot).
 *
 * Graph: at start a "commit-top" filter node is inserted above top; every
 * user of top (drive roots, NBD exports) now goes through it. The filter
 * has two children: "file" on top (reads and writes pass through) and
 * "base" on the base (write-blocking mode writes there too). It is not in
 * the driver table, so users cannot create one.
 *
 * State: one CommitActiveJob. Its anonymous dirty bitmap on top says what
 * base still lacks. The bitmap is disabled for the request path: the
 * filter sets bits itself, after a guest write to top has completed, so
 * that a copy that read top before the write landed is always redone
 * (marking before the write could be cleared by a copy reading old data).
 * The dispatcher (run) picks dirty ranges, clears their bits and hands
 * each to a copy coroutine of the shared copy engine (block/job-copy.c:
 * in-flight limits, chunk sizes, rate limit), which runs
 * commit_copy_range through the filter's own children (so that a drained
 * section never parks a copy half way); a write racing a copy re-dirties
 * the range.
 *
 * Ordering: copies and write-blocking guest writes register as ops in
 * arrival order and each waits for every older overlapping op, so base
 * receives the writes to one range in the order top did: a copy that read
 * old data cannot land after a newer synchronous write. Background guest
 * writes need no op: their dirty bit (set at completion) covers them.
 *
 * Convergence: if the amount still to copy (dirty + in flight) reaches
 * no new minimum for COMMIT_ACTIVE_STALL_NS (or over many passes), the
 * guest dirties faster than the job copies; the job then switches for
 * good to write-blocking mode: guest writes go to top and base before
 * they complete and mark nothing, so the dirty set only shrinks and
 * ready is always reached. query-block-jobs shows it as actively-synced.
 *
 * Ending: complete (or a soft cancel of a ready job) waits for a clean
 * bitmap, drains the filter (guest requests park), copies what the last
 * writes dirtied, flushes base, and returns holding the drained section;
 * prepare then either pivots (every user of the filter moves to base,
 * top is dropped, base stays read-write) or, for a soft cancel, puts top
 * back. Any other ending removes the filter and reopens base read-only.
 * Headers are never rewritten. Everything runs on the main loop thread.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/io-internal.h"
#include "block/blockjob.h"
#include "block/commit.h"
#include "block/dirty-bitmap.h"
#include "block/job-copy.h"
#include "qemu/aio.h"
#include "sysemu/blockdev.h"
#include "trace.h"

/* Largest copy request, while the guest is idle on the filter... */
#define COMMIT_ACTIVE_CHUNK_MAX (1 * MiB)
/* ...and while it has requests in flight there. */
#define COMMIT_ACTIVE_CHUNK_BUSY (1 * MiB)
/* Smallest throttled chunk. */
#define COMMIT_ACTIVE_CHUNK_MIN (64 * KiB)
/* Copies in flight at once: guest idle / busy. */
#define COMMIT_ACTIVE_IN_FLIGHT_IDLE 4
#define COMMIT_ACTIVE_IN_FLIGHT_BUSY 3
/* Bytes asked per block-status call while marking the initial set. */
#define COMMIT_ACTIVE_STATUS_MAX (1 * GiB)
/* No new minimum of the work left for this long: switch modes. */
#define COMMIT_ACTIVE_STALL_NS (400 * 1000 * 1000LL)
/* Or this many full passes over the bitmap, after at least ... */
#define COMMIT_ACTIVE_STALL_PASSES 10
/* ... this long. */
#define COMMIT_ACTIVE_STALL_PASSES_NS (250 * 1000 * 1000LL)
/* Ready with nothing to copy: look again after this long (or a kick). */
#define COMMIT_ACTIVE_IDLE_NS (100 * 1000 * 1000LL)
/* After an ignored error: wait before retrying. */
#define COMMIT_ACTIVE_RETRY_NS (100 * 1000 * 1000LL)

typedef struct CommitActiveJob CommitActiveJob;

/* The filter node's state. */
typedef struct CommitTopState {
    CommitActiveJob *job;       /* NULL once the job has let go */
    BdrvChild *base;            /* child on base (non-root: never parks) */
} CommitTopState;

/* A range being copied or written synchronously (see "Ordering"). */
typedef struct CommitOp {
    int64_t offset;
    int64_t bytes;
    CoQueue waiters;            /* newer overlapping ops */
} CommitOp;

struct CommitActiveJob {
    BlockJob common;
    BlockDriverState *top;
    BlockDriverState *base;
    BlockDriverState *filter;   /* our reference until clean */
    BdrvDirtyBitmap *bitmap;    /* on top; disabled, the filter sets it */

    int64_t len;                /* top's length */
    int64_t cursor;             /* next offset the dispatcher looks at */
    BlockJobCopier copier;      /* copies of dirty ranges in flight */
    GQueue ops;                 /* CommitOp *, oldest first */
    bool idle;                  /* run() sleeps with nothing to copy */

    bool write_blocking;        /* guest writes go to both layers */

    bool flushed_for_ready;     /* base flushed once before ready */
    bool should_complete;       /* job-complete was accepted */
    bool filter_inserted;       /* the users of top go through filter */
    bool in_drain;              /* we hold a drained section of filter */
    bool pivoted;               /* the users now use base */
    bool failed;                /* an error with action report */
    bool retry_later;           /* an error was ignored: back off */
    int ret;                    /* that error */

    int64_t stall_min;          /* least work left seen in this window */
    int64_t stall_since;        /* when stall_min was reached */
    int stall_passes;           /* bitmap passes since then */
};

static const BlockJobDriver commit_active_job_driver;
static const BlockDriver bdrv_commit_top;

/* ---- Op ordering */

/* Whether op's byte range meets [offset, offset + bytes). */
static bool commit_op_overlaps(const CommitOp *op, int64_t offset,
                               int64_t bytes)
{
    return op->offset < offset + bytes && offset < op->offset + op->bytes;
}

/* Register op (arrival order) and wait for older overlapping ops. */
static void coroutine_fn commit_co_op_begin(CommitActiveJob *s, CommitOp *op,
                                            int64_t offset, int64_t bytes)
{
    op->offset = offset;
    op->bytes = bytes;
    qemu_co_queue_init(&op->waiters);
    g_queue_push_tail(&s->ops, op);
restart:
    for (GList *l = s->ops.head; l && l->data != op; l = l->next) {
        CommitOp *older = l->data;

        if (commit_op_overlaps(older, offset, bytes)) {
            qemu_co_queue_wait(&older->waiters, NULL);
            goto restart;
        }
    }
}

/* Unregister op; the newer ops that waited for it look again. */
static void commit_op_end(CommitActiveJob *s, CommitOp *op)
{
    g_queue_remove(&s->ops, op);
    qemu_co_queue_restart_all(&op->waiters);
}

/* ---- Dirty tracking */

/* A guest write to top completed: base lacks it. Wakes an idle job. */
static void commit_active_mark_dirty(CommitActiveJob *s, int64_t offset,
                                     int64_t bytes)
{
    bdrv_set_dirty_bitmap(s->bitmap, offset, bytes);
    if (s->idle) {
        job_enter(&s->common.job);
    }
}

/* Work left: dirty bytes plus bytes being copied. */
static int64_t commit_active_pending(CommitActiveJob *s)
{
    return bdrv_get_dirty_count(s->bitmap) + s->copier.bytes_in_flight;
}

/* Publish the remaining work; offset == len only once ready. */
static void commit_active_update_remaining(CommitActiveJob *s)
{
    int64_t left = commit_active_pending(s);

    if (left == 0 && !s->common.job.ready) {
        left = 1;
    }
    job_progress_set_remaining(&s->common.job, left);
}

/* Restart the stall window (converged, progress, or after a pause). */
static void commit_active_stall_reset(CommitActiveJob *s, int64_t min)
{
    s->stall_min = min;
    s->stall_since = qemu_clock_get_ns();
    s->stall_passes = 0;
}

/*
 * The convergence rule: no new minimum of the work left for
 * COMMIT_ACTIVE_STALL_NS, or for COMMIT_ACTIVE_STALL_PASSES passes (and
 * a little time), switches to write-blocking mode once and for all.
 */
static void commit_active_check_stall(CommitActiveJob *s)
{
    int64_t left = commit_active_pending(s);
    int64_t elapsed;

    if (s->write_blocking) {
        return;
    }
    if (left == 0) {
        commit_active_stall_reset(s, INT64_MAX);
        return;
    }
    if (left < s->stall_min) {
        commit_active_stall_reset(s, left);
        return;
    }
    elapsed = qemu_clock_get_ns() - s->stall_since;
    if (elapsed >= COMMIT_ACTIVE_STALL_NS ||
        (s->stall_passes >= COMMIT_ACTIVE_STALL_PASSES &&
         elapsed >= COMMIT_ACTIVE_STALL_PASSES_NS)) {
        trace_commit_active_write_blocking(s, left, elapsed / 1000000,
                                           s->stall_passes);
        s->write_blocking = true;
    }
}

/* ---- The filter driver */

/*
 * Children by node name: "file" (top: the data) and "base" (where
 * write-blocking mode also writes). The filter reports top's file name.
 */
static int commit_top_open(BlockDriverState *bs, QDict *options, int flags,
                           Error **errp)
{
    CommitTopState *st = bs->opaque;

    bs->file = bdrv_open_child(NULL, options, "file", bs,
                               BDRV_CHILD_FILTERED | BDRV_CHILD_FILE, false,
                               errp);
    if (!bs->file) {
        return -EINVAL;
    }
    /* Role 0: an extra data child, neither file nor backing. */
    st->base = bdrv_open_child(NULL, options, "base", bs, 0, false, errp);
    if (!st->base) {
        return -EINVAL;
    }
    g_strlcpy(bs->filename, bs->file->bs->filename, sizeof(bs->filename));
    return 0;
}

/* The guest sees top's length. */
static int64_t commit_top_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

/* Top's cluster size, so that overlap grains match. */
static int commit_top_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return bdrv_get_info(bs->file->bs, bdi);
}

/* Reads pass through, with their flags (a drive's copy-on-read). */
static int coroutine_fn commit_top_co_preadv(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             QEMUIOVector *qiov,
                                             BdrvRequestFlags flags)
{
    return bdrv_co_preadv(bs->file, offset, bytes, qiov, flags);
}

/* One guest write (qiov) or zero write (qiov NULL) to child. */
static int coroutine_fn commit_top_co_write_child(BdrvChild *child,
                                                  int64_t offset,
                                                  int64_t bytes,
                                                  QEMUIOVector *qiov,
                                                  BdrvRequestFlags flags)
{
    if (qiov) {
        return bdrv_co_pwritev(child, offset, bytes, qiov, flags);
    }
    return bdrv_co_pwrite_zeroes(child, offset, bytes, flags);
}

static void commit_active_copy_done(BlockJobCopier *c,
                                    const BlockJobCopyRange *r, int ret,
                                    bool is_read);

/*
 * Write-blocking mode: top, then base, under an op. The guest's result
 * is top's; a failed base write leaves the range dirty for the job.
 * Base never unmaps: what shows through below it is not top's zeroes.
 */
static int coroutine_fn commit_top_co_write_both(BlockDriverState *bs,
                                                 CommitActiveJob *s,
                                                 int64_t offset,
                                                 int64_t bytes,
                                                 QEMUIOVector *qiov,
                                                 BdrvRequestFlags flags)
{
    CommitTopState *st = bs->opaque;
    CommitOp op;
    int ret, base_ret;

    commit_co_op_begin(s, &op, offset, bytes);
    ret = commit_top_co_write_child(bs->file, offset, bytes, qiov, flags);
    if (ret == 0) {
        base_ret = commit_top_co_write_child(st->base, offset, bytes, qiov,
                                             flags & ~BDRV_REQ_MAY_UNMAP);
        if (base_ret < 0) {
            BlockJobCopyRange r = { .offset = offset, .bytes = bytes };

            /*
             * The guest's write is safe in top; the range goes back to
             * the job (dirty) and the failure through its on-error
             * policy, as a failed copy would (QEMU's active mirror too).
             */
            trace_commit_top_base_write_error(bs, offset, bytes, base_ret);
            commit_active_copy_done(&s->copier, &r, base_ret, false);
        }
    } else {
        commit_active_mark_dirty(s, offset, bytes);
    }
    commit_op_end(s, &op);
    return ret;
}

/* Background mode: write top, then mark (also on failure: top may differ). */
static int coroutine_fn commit_top_co_write(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            QEMUIOVector *qiov,
                                            BdrvRequestFlags flags)
{
    CommitTopState *st = bs->opaque;
    CommitActiveJob *s = st->job;
    int ret;

    trace_commit_top_co_write(bs, offset, bytes, qiov == NULL,
                              s && s->write_blocking);
    if (s && s->write_blocking) {
        return commit_top_co_write_both(bs, s, offset, bytes, qiov, flags);
    }
    ret = commit_top_co_write_child(bs->file, offset, bytes, qiov, flags);
    if (st->job) {
        commit_active_mark_dirty(st->job, offset, bytes);
    }
    return ret;
}

/* Data and zero writes: see commit_top_co_write. */
static int coroutine_fn commit_top_co_pwritev(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              QEMUIOVector *qiov,
                                              BdrvRequestFlags flags)
{
    return commit_top_co_write(bs, offset, bytes, qiov, flags);
}

static int coroutine_fn commit_top_co_pwrite_zeroes(BlockDriverState *bs,
                                                    int64_t offset,
                                                    int64_t bytes,
                                                    BdrvRequestFlags flags)
{
    return commit_top_co_write(bs, offset, bytes, NULL, flags);
}

/* Discards are rare: top only, and the job copies what top reads then. */
static int coroutine_fn commit_top_co_pdiscard(BlockDriverState *bs,
                                               int64_t offset, int64_t bytes)
{
    CommitTopState *st = bs->opaque;
    int ret = bdrv_co_pdiscard(bs->file, offset, bytes);

    if (st->job) {
        commit_active_mark_dirty(st->job, offset, bytes);
    }
    return ret;
}

/* The bitmap and base follow top's size: no resizing during the job. */
static int coroutine_fn commit_top_co_truncate(BlockDriverState *bs,
                                               int64_t offset, bool exact,
                                               PreallocMode prealloc,
                                               BdrvRequestFlags flags,
                                               Error **errp)
{
    error_setg(errp, "Cannot resize '%s' while a commit job is running",
               bs->file->bs->node_name);
    return -EBUSY;
}

static const BlockDriver bdrv_commit_top = {
    .format_name = "commit-top",
    .instance_size = sizeof(CommitTopState),
    .is_filter = true,

    .bdrv_open = commit_top_open,
    .bdrv_getlength = commit_top_getlength,
    .bdrv_get_info = commit_top_get_info,

    .bdrv_co_preadv = commit_top_co_preadv,
    .bdrv_co_pwritev = commit_top_co_pwritev,
    .bdrv_co_pwrite_zeroes = commit_top_co_pwrite_zeroes,
    .bdrv_co_pdiscard = commit_top_co_pdiscard,
    .bdrv_co_truncate = commit_top_co_truncate,

    .supported_write_flags = BDRV_REQ_FUA,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK |
                            BDRV_REQ_FUA,
};

/* ---- Copying */

static const BlockJobCopyLimits commit_active_copy_limits = {
    .chunk_max = COMMIT_ACTIVE_CHUNK_MAX,
    .chunk_min = COMMIT_ACTIVE_CHUNK_MIN,
    .chunk_busy = COMMIT_ACTIVE_CHUNK_BUSY,
    .in_flight_idle = COMMIT_ACTIVE_IN_FLIGHT_IDLE,
    .in_flight_busy = COMMIT_ACTIVE_IN_FLIGHT_BUSY,
};

static CommitActiveJob *commit_active_of(BlockJobCopier *c)
{
    return container_of(c, CommitActiveJob, copier);
}

/* Guest requests in flight on the filter. */
static bool commit_active_guest_busy(BlockJobCopier *c)
{
    CommitActiveJob *s = commit_active_of(c);

    return s->filter_inserted && s->filter->in_flight > 0;
}

/* Size of the next copy: the copier's, at least a bitmap grain. */
static int64_t commit_active_chunk(CommitActiveJob *s)
{
    return MAX(block_job_copier_chunk(&s->copier),
               bdrv_dirty_bitmap_granularity(s->bitmap));
}

/*
 * Copy r from top (and the images down to base) into base with the
 * shared copy loop. 0 or -errno, *is_read telling which side failed.
 */
static int coroutine_fn commit_active_co_copy_range(CommitActiveJob *s,
                                                    const BlockJobCopyRange *r,
                                                    bool *is_read)
{
    CommitTopState *st = s->filter->opaque;
    int64_t done = 0;

    *is_read = false;
    while (done < r->bytes) {
        int64_t n = 0;
        int ret = commit_copy_range(s->filter->file, st->base, s->base,
                                    r->offset + done, r->bytes - done, &n,
                                    NULL, is_read);

        if (ret < 0) {
            return ret;
        }
        if (n <= 0) {
            *is_read = true;
            return -EIO;
        }
        done += n;
    }
    return 0;
}

/*
 * Account a finished copy: progress on success; otherwise the range is
 * dirty again and the on-error policy decides (stop: paused, retried
 * after resume; ignore: retried after a short wait; report: the job
 * fails).
 */
static void commit_active_copy_done(BlockJobCopier *c,
                                    const BlockJobCopyRange *r, int ret,
                                    bool is_read)
{
    CommitActiveJob *s = commit_active_of(c);
    BlockErrorAction action;

    if (ret == 0) {
        job_progress_update(&s->common.job, r->bytes);
        commit_active_update_remaining(s);
        return;
    }
    bdrv_set_dirty_bitmap(s->bitmap, r->offset, r->bytes);
    action = block_job_error_action(&s->common, ret, is_read);
    trace_commit_active_copy_error(s, r->offset, r->bytes, ret, is_read,
                                   action);
    if (action == BLOCK_ERROR_ACTION_REPORT) {
        if (!s->failed) {
            s->ret = ret;
        }
        s->failed = true;
    } else if (action == BLOCK_ERROR_ACTION_IGNORE) {
        s->retry_later = true;
    }
}

/* Body of a copy coroutine: one range, ordered against other ops. */
static int coroutine_fn commit_active_co_copy(BlockJobCopier *c,
                                              const BlockJobCopyRange *r,
                                              bool *is_read)
{
    CommitActiveJob *s = commit_active_of(c);
    CommitOp op;
    int ret;

    commit_co_op_begin(s, &op, r->offset, r->bytes);
    trace_commit_active_co_copy(s, r->offset, r->bytes);
    ret = commit_active_co_copy_range(s, r, is_read);
    commit_op_end(s, &op);
    return ret;
}

static const BlockJobCopyOps commit_active_copy_ops = {
    .co_copy = commit_active_co_copy,
    .done = commit_active_copy_done,
    .guest_busy = commit_active_guest_busy,
};

/*
 * Take the next dirty range from the cursor on (wrapping once), clearing
 * its bits. False when the bitmap is clean.
 */
static bool commit_active_pick(CommitActiveJob *s, BlockJobCopyRange *r)
{
    int64_t max = commit_active_chunk(s);

    if (!bdrv_dirty_bitmap_next_dirty_area(s->bitmap, s->cursor, s->len,
                                           max, &r->offset, &r->bytes)) {
        if (s->cursor == 0 ||
            !bdrv_dirty_bitmap_next_dirty_area(s->bitmap, 0, s->len, max,
                                               &r->offset, &r->bytes)) {
            return false;
        }
        s->stall_passes++;
    }
    bdrv_reset_dirty_bitmap(s->bitmap, r->offset, r->bytes);
    s->cursor = r->offset + r->bytes;
    if (s->cursor >= s->len) {
        s->cursor = 0;
    }
    return true;
}

/* ---- Phases */

/* Phase 1: every range allocated in top or down to base is dirty. */
static int coroutine_fn commit_active_co_mark_all(CommitActiveJob *s)
{
    int64_t offset = 0;

    while (offset < s->len) {
        int64_t n = 0;
        int ret = bdrv_co_is_allocated_above(s->top, s->base, false, offset,
                                             MIN(s->len - offset,
                                                 COMMIT_ACTIVE_STATUS_MAX),
                                             &n);

        if (ret < 0) {
            return ret;
        }
        if (n <= 0) {
            break;
        }
        if (ret) {
            bdrv_set_dirty_bitmap(s->bitmap, offset, n);
        }
        offset += n;
    }
    trace_commit_active_mark_all(s, bdrv_get_dirty_count(s->bitmap));
    return 0;
}

/* A soft cancel of a ready job ends like a complete, without the pivot. */
static bool commit_active_soft_cancelled(CommitActiveJob *s)
{
    return s->common.job.cancelled && !s->common.job.force_cancel;
}

/* Ready, and asked to finish (complete or soft cancel). */
static bool commit_active_should_end(CommitActiveJob *s)
{
    return s->common.job.ready &&
           (s->should_complete || commit_active_soft_cancelled(s));
}

/*
 * The last step before pivoting: drain the filter (guest requests park,
 * the last writes set their bits), copy what is dirty, flush base. On
 * success the drained section stays held for prepare. On failure it is
 * ended and the on-error policy has decided (the range is dirty again).
 */
static int coroutine_fn commit_active_co_final_sync(CommitActiveJob *s)
{
    BlockJobCopyRange r;
    bool is_read = false;
    int ret = 0;

    /*
     * Flush base while the guest still runs: the flush inside the
     * drained section below then only has the last few writes to push,
     * so the guest is held for milliseconds, not for a whole writeback.
     * Its error, if any, is seen again by that second flush.
     */
    bdrv_co_flush(s->base);
    bdrv_drained_begin(s->filter);
    trace_commit_active_final_sync(s, bdrv_get_dirty_count(s->bitmap));
    while (bdrv_dirty_bitmap_next_dirty_area(s->bitmap, 0, s->len,
                                             COMMIT_ACTIVE_CHUNK_MAX,
                                             &r.offset, &r.bytes)) {
        bdrv_reset_dirty_bitmap(s->bitmap, r.offset, r.bytes);
        ret = commit_active_co_copy_range(s, &r, &is_read);
        if (ret < 0) {
            break;
        }
        job_progress_update(&s->common.job, r.bytes);
    }
    if (ret == 0) {
        r.offset = 0;
        r.bytes = 0;
        is_read = false;
        ret = bdrv_co_flush(s->base);
    }
    trace_commit_active_final_sync_done(s, ret);
    if (ret < 0) {
        bdrv_drained_end(s->filter);
        commit_active_copy_done(&s->copier, &r, ret, is_read);
        return ret;
    }
    job_progress_set_remaining(&s->common.job, 0);
    s->in_drain = true;
    return 0;
}

/*
 * Nothing to pick: wait for copies, become ready once clean, or idle
 * until a guest write (or a verb) wakes us. True when the job should
 * run its final sync now.
 */
static bool coroutine_fn commit_active_co_clean(CommitActiveJob *s)
{
    Job *job = &s->common.job;

    if (s->copier.in_flight > 0) {
        block_job_copier_co_wait(&s->copier, s->copier.in_flight);
        return false;
    }
    commit_active_check_stall(s);
    if (bdrv_get_dirty_count(s->bitmap) > 0) {
        return false;
    }
    if (!job->ready && !s->flushed_for_ready) {
        /*
         * Flush base once before announcing ready, while the guest runs:
         * the flush at completion (with the guest held) then has little
         * left to write back. Errors show up again at that flush.
         */
        s->flushed_for_ready = true;
        bdrv_co_flush(s->base);
        return false;       /* look again: the guest may have written */
    }
    if (!job->ready) {
        job_progress_set_remaining(job, 0);
        trace_commit_active_ready(s, job->progress_total);
        job_transition_to_ready(job);
        return false;
    }
    if (commit_active_should_end(s)) {
        return true;
    }
    s->idle = true;
    job_sleep_ns(job, COMMIT_ACTIVE_IDLE_NS);
    s->idle = false;
    return false;
}

/* One dispatch step: wait for room, pass drains, start a copy, throttle. */
static void coroutine_fn commit_active_co_dispatch(CommitActiveJob *s)
{
    BlockJobCopyRange r;

    block_job_copier_co_wait(&s->copier, block_job_copier_limit(&s->copier));
    /* A drained section of top's subtree holds back new copies. */
    bdrv_co_wait_unquiesced(s->common.root);
    if (job_is_cancelled(&s->common.job) || s->failed) {
        return;
    }
    commit_active_check_stall(s);
    if (!commit_active_pick(s, &r)) {
        return;
    }
    block_job_copier_start(&s->copier, &r);
    block_job_copier_co_throttle(&s->copier, r.bytes);
}

/* The copy loop, through ready, until complete/cancel/failure. */
static int coroutine_fn commit_active_co_loop(CommitActiveJob *s)
{
    Job *job = &s->common.job;

    for (;;) {
        job_pause_point(job);
        if (job_is_cancelled(job) || s->failed) {
            break;
        }
        if (s->retry_later) {
            s->retry_later = false;
            job_sleep_ns(job, COMMIT_ACTIVE_RETRY_NS);
            continue;
        }
        if (bdrv_get_dirty_count(s->bitmap) == 0) {
            if (commit_active_co_clean(s) &&
                commit_active_co_final_sync(s) == 0) {
                break;
            }
            continue;
        }
        commit_active_co_dispatch(s);
    }
    block_job_copier_co_wait(&s->copier, 1);
    return s->failed ? s->ret : 0;
}

/*
 * .run: grow base, mark what base lacks, then copy until the job ends.
 * 0 with the filter drained (complete / soft cancel), or -errno.
 */
static int coroutine_fn commit_active_run(Job *job, Error **errp)
{
    CommitActiveJob *s = container_of(job, CommitActiveJob, common.job);
    CommitTopState *st = s->filter->opaque;
    int ret;

    s->len = bdrv_getlength_err(s->top, errp);
    if (s->len < 0) {
        return s->len;
    }
    trace_commit_active_run(s, s->top, s->base, s->len);
    /* Base grows to top's size (never shrinks), through the filter. */
    ret = bdrv_co_grow(st->base, s->len, errp);
    if (ret < 0) {
        return ret;
    }
    ret = commit_active_co_mark_all(s);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the allocation status "
                         "of '%s'", bdrv_get_node_name(s->top));
        return ret;
    }
    commit_active_update_remaining(s);
    commit_active_stall_reset(s, INT64_MAX);
    ret = commit_active_co_loop(s);
    trace_commit_active_run_done(s, ret, job->cancelled, job->force_cancel);
    if (ret == 0 && job_is_cancelled(job)) {
        ret = -ECANCELED;
    }
    return block_job_finish_run(&s->common, ret, errp);
}

/* .resume: time spent paused is no stall. */
static void coroutine_fn commit_active_resume(Job *job)
{
    CommitActiveJob *s = container_of(job, CommitActiveJob, common.job);

    commit_active_stall_reset(s, s->stall_min);
}

/* ---- Verbs */

/* job-complete in ready or standby: run() finishes (after a resume). */
static void commit_active_complete(Job *job, Error **errp)
{
    CommitActiveJob *s = container_of(job, CommitActiveJob, common.job);

    trace_commit_active_complete(s);
    s->should_complete = true;
    job_enter(job);
}

/* A non-forced cancel of a ready job is a soft one (no pivot). */
static bool commit_active_cancel(Job *job, bool force)
{
    return force || !job->ready;
}

/* .query: actively-synced = ready and in write-blocking mode. */
static void commit_active_query(BlockJob *job, BlockJobInfo *info)
{
    CommitActiveJob *s = container_of(job, CommitActiveJob, common);

    info->has_actively_synced = true;
    info->actively_synced = s->write_blocking && s->common.job.ready;
}

/* ---- Graph changes */

/* End the drained section of the filter if we hold one. */
static void commit_active_end_drain(CommitActiveJob *s)
{
    if (s->in_drain) {
        s->in_drain = false;
        bdrv_drained_end(s->filter);
    }
}

/*
 * Move the users of from (drive roots, exports) onto to, inside a
 * drained section of from; the filter stops tracking writes first.
 */
static int commit_active_switch_users(CommitActiveJob *s,
                                      BlockDriverState *to)
{
    CommitTopState *st = s->filter->opaque;
    Error *local_err = NULL;
    int ret;

    if (!s->in_drain) {
        bdrv_drained_begin(s->filter);
        s->in_drain = true;
    }
    st->job = NULL;
    ret = bdrv_replace_node(s->filter, to, &local_err);
    trace_commit_active_switch_users(s, s->filter, to, ret);
    if (ret < 0) {
        error_report_err(local_err);
        st->job = s;
        return ret;
    }
    blockdev_drives_follow(s->filter, to);
    s->filter_inserted = false;
    commit_active_end_drain(s);
    return 0;
}

/* Non-pivot endings: the guest goes back to top. */
static void commit_active_remove_filter(CommitActiveJob *s)
{
    if (s->filter_inserted) {
        commit_active_switch_users(s, s->top);
    }
    commit_active_end_drain(s);
}

/* Success: pivot (or, for a soft cancel, keep the guest on top). */
static int commit_active_prepare(Job *job)
{
    CommitActiveJob *s = container_of(job, CommitActiveJob, common.job);
    int ret;

    if (commit_active_soft_cancelled(s)) {
        commit_active_remove_filter(s);
        return 0;
    }
    block_job_remove_all_bdrv(&s->common);
    ret = commit_active_switch_users(s, s->base);
    if (ret < 0) {
        return ret;
    }
    s->pivoted = true;
    return 0;
}

/* Failure or (forced) cancel: the guest goes back to top. */
static void commit_active_abort(Job *job)
{
    CommitActiveJob *s = container_of(job, CommitActiveJob, common.job);

    commit_active_remove_filter(s);
}

/* Base back to read-only unless it is the active layer now. */
static void commit_active_restore_base(CommitActiveJob *s)
{
    Error *local_err = NULL;
    int ret;

    if (s->pivoted || bdrv_is_read_only(s->base)) {
        return;
    }
    bdrv_drained_begin(s->base);
    ret = bdrv_reopen_set_read_only(s->base, true, &local_err);
    bdrv_drained_end(s->base);
    trace_commit_active_restore_base(s, s->base, ret);
    if (ret < 0) {
        error_report_err(local_err);
    }
}

/*
 * Always: the filter (already out of the graph) and the bitmap go; after
 * a pivot top is dropped at once (its file and header untouched) rather
 * than when the job is dismissed.
 */
static void commit_active_clean(Job *job)
{
    CommitActiveJob *s = container_of(job, CommitActiveJob, common.job);

    commit_active_remove_filter(s);
    if (s->bitmap) {
        bdrv_release_dirty_bitmap(s->bitmap);
        s->bitmap = NULL;
    }
    bdrv_unref(s->filter);
    s->filter = NULL;
    commit_active_restore_base(s);
    if (s->pivoted) {
        bdrv_root_unref_child(s->common.root);
        s->common.root = NULL;
    }
}

static const BlockJobDriver commit_active_job_driver = {
    .job_driver = {
        .instance_size = sizeof(CommitActiveJob),
        .job_type = JOB_TYPE_COMMIT,
        .run = commit_active_run,
        .pause = block_job_copier_co_pause,
        .resume = commit_active_resume,
        .complete = commit_active_complete,
        .cancel = commit_active_cancel,
        .prepare = commit_active_prepare,
        .abort = commit_active_abort,
        .clean = commit_active_clean,
    },
    .set_speed = block_job_copier_set_speed,
    .query = commit_active_query,
};

/* ---- Start */

/* The filter node over top, with its second child on base. */
static BlockDriverState *commit_active_open_filter(BlockDriverState *top,
                                                   BlockDriverState *base,
                                                   Error **errp)
{
    QDict *opts = qdict_new();

    BlockDriverState *filter;

    qdict_put_str(opts, "file", bdrv_get_node_name(top));
    qdict_put_str(opts, "base", bdrv_get_node_name(base));
    filter = bdrv_new_open_driver(&bdrv_commit_top, NULL, opts, BDRV_O_RDWR,
                                  errp);
    if (filter) {
        filter->implicit = true;
    }
    return filter;
}

/* Hold the filter, the images between top and base, and base. */
static bool commit_active_hold_nodes(CommitActiveJob *s, Error **errp)
{
    if (!block_job_add_bdrv(&s->common, s->filter, errp)) {
        return false;
    }
    return block_job_add_chain(&s->common, bdrv_chain_next(s->top), s->base,
                               errp);
}

/*
 * Put the filter above top: every parent of top moves onto it except the
 * filter's own child, the job's root (pinned for the move) and pinned
 * monitor references.
 */
static bool commit_active_insert_filter(CommitActiveJob *s, Error **errp)
{
    BdrvChild *root = s->common.root, *file = s->filter->file;
    int ret;

    root->pinned = true;
    file->pinned = true;
    bdrv_drained_begin(s->top);
    ret = bdrv_replace_node(s->top, s->filter, errp);
    bdrv_drained_end(s->top);
    root->pinned = false;
    file->pinned = false;
    if (ret < 0) {
        return false;
    }
    blockdev_drives_follow(s->top, s->filter);
    s->filter_inserted = true;
    return true;
}

/* Create the bitmap, hold the nodes, insert the filter. */
static bool commit_active_setup(CommitActiveJob *s, Error **errp)
{
    CommitTopState *st = s->filter->opaque;

    s->bitmap = bdrv_create_dirty_bitmap(s->top, 0, NULL, errp);
    if (!s->bitmap) {
        return false;
    }
    bdrv_dirty_bitmap_set_enabled(s->bitmap, false);
    if (!commit_active_hold_nodes(s, errp)) {
        return false;
    }
    st->job = s;
    return commit_active_insert_filter(s, errp);
}

/*
 * Order: the filter node (not yet in the graph), the job on top (its
 * root child stays on top: copies pass drains only through the gate in
 * commit_active_co_dispatch), the bitmap and held nodes, then the
 * insertion; any failure undoes all of it and no job event but created /
 * null is seen. On success the job owns base's read-write mode.
 */
bool commit_active_start(const char *job_id, BlockDriverState *top,
                         BlockDriverState *base, int64_t speed,
                         BlockdevOnError on_error, int flags, Error **errp)
{
    /* The default job id: top's drive name, else its node name. */
    g_autofree char *id = g_strdup(job_id ? job_id
                                          : block_job_default_id(top,
                                              bdrv_get_node_name(top)));
    BlockDriverState *filter;
    CommitActiveJob *s;

    filter = commit_active_open_filter(top, base, errp);
    if (!filter) {
        return false;
    }
    s = block_job_create(id, &commit_active_job_driver, top, speed,
                         on_error, flags, errp);
    if (!s) {
        bdrv_unref(filter);
        return false;
    }
    s->top = top;
    s->base = base;
    s->filter = filter;
    block_job_copier_init(&s->copier, &s->common, &commit_active_copy_limits,
                          &commit_active_copy_ops);
    g_queue_init(&s->ops);
    if (!commit_active_setup(s, errp)) {
        ((CommitTopState *)filter->opaque)->job = NULL;
        if (s->bitmap) {
            bdrv_release_dirty_bitmap(s->bitmap);
            s->bitmap = NULL;
        }
        s->filter = NULL;
        job_early_fail(&s->common.job);
        bdrv_unref(filter);
        return false;
    }
    trace_commit_active_start(s, top, base, filter, speed);
    job_start(&s->common.job);
    return true;
}

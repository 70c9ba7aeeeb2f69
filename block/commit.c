/*
 * Commit: merge the data of an image (top) and of the images between it
 * and a lower image (base) down into base.
 *
 * Three users share commit_copy_range(), the one copy step: the
 * block-commit job for an intermediate image (here), the active commit
 * job (commit-active.c) and the synchronous HMP "commit" (here, also
 * used by qblk-img commit's loop). A step asks block status across
 * top..above-base for the first extent of its range; data is read
 * through top and written to base, ranges that read as zeroes become
 * zero writes (never unmapping: base's own backing may not read zero),
 * and ranges no layer above base decides are left alone.
 *
 * The intermediate job (state: CommitJob) works like the stream job: a
 * dispatcher walks top's length by block status, hands chunks to a few
 * copy coroutines, charges the rate limit per chunk, applies on-error
 * (a failed read of top is a 'read' error, a failed write of base a
 * 'write' error) and parks at pause points once no copy is in flight.
 * Guest I/O never writes top or the images below it (the chain above
 * top is frozen for it: only the active layer takes writes), and the
 * base only gains what top..above-base already show, so reads through
 * the chain return the same bytes at every moment of the job.
 *
 * Crash safety (prepare): base is flushed first, then the overlay's
 * header names base through the driver's crash-safe
 * bdrv_change_backing_file, and only then the graph drops top..above
 * base. A crash before the header update leaves the old chain valid
 * (base just holds redundant copies); after it the overlay reads base,
 * which already holds everything. The dropped images stay untouched.
 *
 * Node modes: base (and the overlay, whose header changes) may be
 * read-only; they are reopened read-write when the command runs (a
 * failure refuses it, nothing changed) and back to read-only in clean,
 * whatever the outcome. Everything runs on the main loop thread, so the
 * counters below need no lock.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/blockjob.h"
#include "block/commit.h"
#include "qemu/aio.h"
#include "sysemu/blockdev.h"
#include "qapi/qapi-commands.h"
#include "trace.h"

/* Largest data copy one commit_copy_range step does (its buffer). */
#define COMMIT_STEP_MAX (2 * MiB)
/* Largest chunk a copy coroutine takes. */
#define COMMIT_CHUNK_MAX (1 * MiB)
/* Smallest chunk, and the alignment of throttled ones. */
#define COMMIT_CHUNK_MIN (64 * KiB)
/* Copy coroutines in flight at once. */
#define COMMIT_IN_FLIGHT 4
/* Bytes asked per block-status call of the dispatcher. */
#define COMMIT_STATUS_MAX (1 * GiB)

/* ------------------------------------------------------------------ */
/* The shared copy step                                                */

/* Write n bytes at offset of top's view into base as a zero range. */
static int coroutine_fn commit_co_zero(BdrvChild *base_child, int64_t offset,
                                       int64_t n)
{
    return bdrv_co_pwrite_zeroes(base_child, offset, n, 0);
}

/*
 * Copy n data bytes at offset from top to base through a bounce buffer.
 * *is_read tells which side failed.
 */
static int coroutine_fn commit_co_data(BdrvChild *top_child,
                                       BdrvChild *base_child, int64_t offset,
                                       int64_t n, bool *is_read)
{
    BlockDriverState *base = bdrv_child_bs(base_child);
    int64_t cap;
    void *buf = bdrv_bounce_get(base, n, &cap);
    int ret;

    if (!buf) {
        *is_read = true;
        return -ENOMEM;
    }
    ret = bdrv_co_pread(top_child, offset, n, buf, 0);
    if (ret < 0) {
        *is_read = true;
    } else {
        ret = bdrv_co_pwrite(base_child, offset, n, buf, 0);
        *is_read = false;
    }
    bdrv_bounce_put(base, buf, cap);
    return ret < 0 ? ret : 0;
}

int coroutine_fn commit_copy_range(BdrvChild *top_child,
                                   BdrvChild *base_child,
                                   BlockDriverState *base,
                                   int64_t offset, int64_t bytes,
                                   int64_t *pnum, int64_t *copied,
                                   bool *is_read)
{
    BlockDriverState *top = bdrv_child_bs(top_child);
    bool read_side = true;
    int64_t n = 0;
    int st, ret = 0;

    *pnum = 0;
    if (copied) {
        *copied = 0;
    }
    st = bdrv_co_block_status_above(top, base, offset, bytes, &n, NULL,
                                    NULL, NULL);
    if (st < 0 || n <= 0) {
        /* Status failed, or offset is at/after top's end: nothing left. */
        ret = st < 0 ? st : 0;
        *pnum = st < 0 ? 0 : bytes;
        goto out;
    }
    if (!(st & (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_ZERO))) {
        /* Base decides these bytes: they stay as they are. */
        trace_commit_copy_skip(top, offset, n);
        *pnum = n;
        goto out;
    }
    if (st & BDRV_BLOCK_ZERO) {
        trace_commit_copy_zero(top, offset, n);
        read_side = false;
        ret = commit_co_zero(base_child, offset, n);
    } else {
        n = MIN(n, COMMIT_STEP_MAX);
        trace_commit_copy_data(top, offset, n);
        ret = commit_co_data(top_child, base_child, offset, n, &read_side);
    }
    if (ret == 0) {
        *pnum = n;
        if (copied) {
            *copied = n;
        }
    }
out:
    if (ret < 0) {
        trace_commit_copy_error(top, offset, n, ret, read_side);
    }
    if (is_read) {
        *is_read = read_side;
    }
    return ret;
}

/* ------------------------------------------------------------------ */
/* Chain helpers                                                       */

/* The next node down: the backing node, or what a filter filters. */
static BlockDriverState *commit_chain_next(BlockDriverState *bs)
{
    if (bs->backing) {
        return bs->backing->bs;
    }
    if (bs->drv && bs->drv->is_filter && bs->file) {
        return bs->file->bs;
    }
    return NULL;
}

/* True if node is bs or below it in bs's chain. */
static bool commit_chain_contains(BlockDriverState *bs,
                                  BlockDriverState *node)
{
    for (; bs; bs = commit_chain_next(bs)) {
        if (bs == node) {
            return true;
        }
    }
    return false;
}

/* The lowest node of bs's chain (QEMU's bdrv_find_base). */
static BlockDriverState *commit_chain_bottom(BlockDriverState *bs)
{
    while (commit_chain_next(bs)) {
        bs = commit_chain_next(bs);
    }
    return bs;
}

/* The node directly above node in bs's chain, or NULL. */
static BlockDriverState *commit_chain_above(BlockDriverState *bs,
                                            BlockDriverState *node)
{
    for (; bs; bs = commit_chain_next(bs)) {
        if (commit_chain_next(bs) == node) {
            return bs;
        }
    }
    return NULL;
}

/* Switch bs's mode inside a drained section. 0 or -errno with errp. */
static int commit_reopen(BlockDriverState *bs, bool read_only, Error **errp)
{
    int ret;

    if (bdrv_is_read_only(bs) == read_only) {
        return 0;
    }
    trace_commit_reopen(bs, read_only);
    bdrv_drained_begin(bs);
    ret = bdrv_reopen_set_read_only(bs, read_only, errp);
    bdrv_drained_end(bs);
    return ret;
}

/* Back to read-only after a commit; a failure is only traced. */
static void commit_restore_ro(BlockDriverState *bs)
{
    Error *err = NULL;

    if (bs && commit_reopen(bs, true, &err) < 0) {
        trace_commit_reopen_error(bs, error_get_pretty(err));
        error_free(err);
    }
}

/* Grow base to len if it is shorter (never shrink). 0 or -errno. */
static int coroutine_fn commit_co_grow_base(BdrvChild *base_child,
                                            int64_t len, Error **errp)
{
    BlockDriverState *base = bdrv_child_bs(base_child);
    int64_t base_len = bdrv_getlength(base);

    if (base_len < 0) {
        error_setg_errno(errp, -base_len, "Could not get the length of '%s'",
                         bdrv_get_node_name(base));
        return base_len;
    }
    if (base_len >= len) {
        return 0;
    }
    trace_commit_grow_base(base, base_len, len);
    return bdrv_co_truncate(base_child, len, false, PREALLOC_MODE_OFF, 0,
                            errp);
}

/* ------------------------------------------------------------------ */
/* The intermediate commit job                                         */

typedef struct CommitRange {
    int64_t offset;
    int64_t bytes;
} CommitRange;

typedef struct CommitJob {
    BlockJob common;            /* common.root: reads through top */
    BdrvChild *base_child;      /* writes into base */
    BlockDriverState *top;
    BlockDriverState *base;
    BlockDriverState *overlay;  /* the image above top: its header changes */
    char *backing_file;         /* header string; NULL: base's file name */
    bool base_was_ro;           /* reopened read-write for the job */
    bool overlay_was_ro;

    int64_t len;                /* top's length when the job started */
    int64_t cursor;             /* next offset the dispatcher looks at */
    int64_t chunk_limit;        /* largest chunk for the current speed */
    GQueue retry;               /* CommitRange *: stopped, retried later */
    int in_flight;              /* copy coroutines running */
    Coroutine *co;              /* the dispatcher */
    bool waiting;               /* co yielded until a copy finishes */
    int ret;                    /* first error reported or ignored */
    bool failed;                /* a copy failed with action report */
} CommitJob;

typedef struct CommitCopy {
    CommitJob *s;
    CommitRange r;
} CommitCopy;

/* Largest chunk for speed bytes/s: about half a 100 ms slice. */
static int64_t commit_chunk_for_speed(int64_t speed)
{
    if (speed <= 0) {
        return COMMIT_CHUNK_MAX;
    }
    return MIN(COMMIT_CHUNK_MAX,
               MAX(COMMIT_CHUNK_MIN,
                   QEMU_ALIGN_DOWN(speed / 20, COMMIT_CHUNK_MIN)));
}

/* .set_speed: re-split chunks so one stays within a slice's quota. */
static void commit_set_speed(BlockJob *job, int64_t speed)
{
    CommitJob *s = container_of(job, CommitJob, common);

    s->chunk_limit = commit_chunk_for_speed(speed);
}

/*
 * Account a finished chunk: progress on success, else on-error (stop:
 * queue it for a retry after the resume; ignore: go on, end failed;
 * report: fail the job).
 */
static void commit_chunk_done(CommitJob *s, CommitRange *r, int ret,
                              bool is_read)
{
    BlockErrorAction action;

    if (ret == 0) {
        job_progress_update(&s->common.job, r->bytes);
        return;
    }
    action = block_job_error_action(&s->common, ret, is_read);
    trace_commit_chunk_error(s, r->offset, r->bytes, ret, action);
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

/* Copy one chunk step by step. 0 or -errno, *is_read on failure. */
static int coroutine_fn commit_co_copy_chunk(CommitJob *s, CommitRange *r,
                                             bool *is_read)
{
    int64_t off = r->offset, end = r->offset + r->bytes;

    while (off < end) {
        int64_t n;
        int ret = commit_copy_range(s->common.root, s->base_child, s->base,
                                    off, end - off, &n, NULL, is_read);
        if (ret < 0) {
            return ret;
        }
        if (n <= 0) {
            break;
        }
        off += n;
    }
    return 0;
}

/* Wake the dispatcher if it waits for a copy to finish. */
static void commit_wake(CommitJob *s)
{
    if (s->waiting) {
        s->waiting = false;
        aio_co_wake(s->co);
    }
}

/* Body of a copy coroutine. */
static void coroutine_fn commit_co_copy(void *opaque)
{
    CommitCopy *c = opaque;
    CommitJob *s = c->s;
    bool is_read = true;
    int ret;

    trace_commit_co_copy(s, c->r.offset, c->r.bytes);
    ret = commit_co_copy_chunk(s, &c->r, &is_read);
    commit_chunk_done(s, &c->r, ret, is_read);
    g_free(c);
    s->in_flight--;
    commit_wake(s);
}

/* Start a copy coroutine on r; the dispatcher keeps running. */
static void commit_start_copy(CommitJob *s, const CommitRange *r)
{
    CommitCopy *c = g_new(CommitCopy, 1);

    c->s = s;
    c->r = *r;
    s->in_flight++;
    aio_co_wake(qemu_coroutine_create(commit_co_copy, c));
}

/* Wait until fewer than limit copies are in flight. */
static void coroutine_fn commit_co_wait_copies(CommitJob *s, int limit)
{
    while (s->in_flight >= limit && s->in_flight > 0) {
        s->co = qemu_coroutine_self();
        s->waiting = true;
        qemu_coroutine_yield();
    }
}

/*
 * The next chunk to copy from s->cursor on; skipped ranges only advance
 * the progress. 1 with *r set, 0 at the end, -errno when block status
 * fails (*r is then the range that could not be examined).
 */
static int coroutine_fn commit_co_next_range(CommitJob *s, CommitRange *r)
{
    while (s->cursor < s->len) {
        int64_t n = 0;
        int st = bdrv_co_block_status_above(s->top, s->base, s->cursor,
                                            MIN(s->len - s->cursor,
                                                COMMIT_STATUS_MAX),
                                            &n, NULL, NULL, NULL);

        if (st < 0 || n <= 0) {
            r->offset = s->cursor;
            r->bytes = MIN(s->len - s->cursor, s->chunk_limit);
            s->cursor += r->bytes;
            return st < 0 ? st : -EIO;
        }
        if (st & (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_ZERO)) {
            r->offset = s->cursor;
            r->bytes = MIN(n, s->chunk_limit);
            s->cursor += r->bytes;
            return 1;
        }
        trace_commit_copy_skip(s->top, s->cursor, n);
        job_progress_update(&s->common.job, n);
        s->cursor += n;
    }
    return 0;
}

/*
 * The next chunk: a retried one first, else a new one. 1 with *r set,
 * 0 when done, 2 when a status error went through on-error (look again
 * after a pause point).
 */
static int coroutine_fn commit_co_pick(CommitJob *s, CommitRange *r)
{
    CommitRange *q = g_queue_pop_head(&s->retry);
    int ret;

    if (q) {
        *r = *q;
        g_free(q);
        return 1;
    }
    ret = commit_co_next_range(s, r);
    if (ret < 0) {
        commit_chunk_done(s, r, ret, true);
        return s->failed ? 0 : 2;
    }
    return ret;
}

/* Charge r to the rate limit and sleep as long as it says. */
static void coroutine_fn commit_co_throttle(CommitJob *s, CommitRange *r)
{
    int64_t delay = block_job_ratelimit_get_delay(&s->common, r->bytes);

    if (delay > 0) {
        trace_commit_throttle(s, r->bytes, delay);
        job_sleep_ns(&s->common.job, delay);
    }
}

/* Copy every chunk that needs it, several at once. 0 or -errno. */
static int coroutine_fn commit_co_copy_all(CommitJob *s)
{
    Job *job = &s->common.job;
    CommitRange r;

    for (;;) {
        int ret;

        job_pause_point(job);
        if (job_is_cancelled(job) || s->failed) {
            break;
        }
        ret = commit_co_pick(s, &r);
        if (ret == 0) {
            break;
        }
        if (ret == 2) {
            continue;
        }
        commit_co_throttle(s, &r);
        commit_co_wait_copies(s, COMMIT_IN_FLIGHT);
        if (job_is_cancelled(job) || s->failed) {
            /* r was never started: a stopped job would lose it. */
            break;
        }
        commit_start_copy(s, &r);
        if (!g_queue_is_empty(&s->retry) ||
            s->cursor >= s->len) {
            /* Let stopped copies settle (and queue their retries). */
            commit_co_wait_copies(s, 1);
        }
    }
    commit_co_wait_copies(s, 1);
    return s->ret;
}

/*
 * .run: grow base to top's length, then copy everything top..above-base
 * decides. -ECANCELED when cancelled; the chain changes only in prepare.
 */
static int coroutine_fn commit_run(Job *job, Error **errp)
{
    CommitJob *s = container_of(job, CommitJob, common.job);
    int64_t len = bdrv_getlength(s->top);
    int ret;

    s->co = qemu_coroutine_self();
    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get the length of '%s'",
                         bdrv_get_node_name(s->top));
        return len;
    }
    ret = commit_co_grow_base(s->base_child, len, errp);
    if (ret < 0) {
        return ret;
    }
    trace_commit_run(s, s->top, s->base, len);
    s->len = len;
    job_progress_set_remaining(job, len);
    ret = commit_co_copy_all(s);
    trace_commit_run_done(s, ret, job_is_cancelled(job));
    if (ret == 0 && job_is_cancelled(job)) {
        ret = -ECANCELED;
    }
    return ret;
}

/* .pause: park only once no copy is in flight. */
static void coroutine_fn commit_pause(Job *job)
{
    commit_co_wait_copies(container_of(job, CommitJob, common.job), 1);
}

/*
 * Success: flush base, make the overlay's header name base (the user's
 * string or base's file name, with base's format), then link the
 * overlay to base in the graph, dropping top..above-base.
 */
static int commit_prepare(Job *job)
{
    CommitJob *s = container_of(job, CommitJob, common.job);
    BlockDriverState *image = bdrv_skip_filters(s->base);
    const char *file = s->backing_file ? s->backing_file
                                       : bdrv_get_filename(image);
    Error *err = NULL;
    int ret;

    ret = bdrv_flush(s->base);
    if (ret < 0) {
        trace_commit_prepare_error(s, "flush", ret);
        return ret;
    }
    trace_commit_prepare(s, s->overlay, s->base, file);
    ret = bdrv_change_backing_file(s->overlay, file,
                                   bdrv_get_format_name(image), &err);
    if (ret < 0) {
        trace_commit_prepare_error(s, error_get_pretty(err), ret);
        error_free(err);
        return ret;
    }
    block_job_remove_all_bdrv(&s->common);
    ret = bdrv_set_backing_hd(s->overlay, s->base, &err);
    if (ret < 0) {
        trace_commit_prepare_error(s, error_get_pretty(err), ret);
        error_free(err);
    }
    return ret;
}

/* Always: release base's handle, restore the modes, free the queue. */
static void commit_clean(Job *job)
{
    CommitJob *s = container_of(job, CommitJob, common.job);
    CommitRange *r;

    while ((r = g_queue_pop_head(&s->retry))) {
        g_free(r);
    }
    bdrv_root_unref_child(s->base_child);
    s->base_child = NULL;
    if (s->base_was_ro) {
        commit_restore_ro(s->base);
    }
    if (s->overlay_was_ro) {
        commit_restore_ro(s->overlay);
    }
    g_free(s->backing_file);
    s->backing_file = NULL;
}

static const BlockJobDriver commit_job_driver = {
    .job_driver = {
        .instance_size = sizeof(CommitJob),
        .job_type = JOB_TYPE_COMMIT,
        .run = commit_run,
        .pause = commit_pause,
        .prepare = commit_prepare,
        .clean = commit_clean,
    },
    .set_speed = commit_set_speed,
};

/* ------------------------------------------------------------------ */
/* block-commit                                                        */

/* What qmp_block_commit resolved. */
typedef struct CommitPlan {
    BlockDriverState *bs;       /* the device's (root) node */
    BlockDriverState *top;
    BlockDriverState *base;
    const char *job_id;
    int flags;                  /* JOB_* */
    int64_t speed;
    BlockdevOnError on_error;
} CommitPlan;

/*
 * QEMU's device lookup: a root node by drive id or node name; a known
 * node with parents is "Need a root block node", anything else
 * DeviceNotFound (libvirt probes the class).
 */
static BlockDriverState *commit_find_device(const char *device,
                                            Error **errp)
{
    BlockDriverState *bs = blockdev_lookup_bs(device, device, NULL);
    int node_parents = 0;

    if (!bs) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                  "Device '%s' not found", device);
        return NULL;
    }
    bdrv_count_parents(bs, &node_parents, NULL);
    if (node_parents > 0) {
        error_setg(errp, "Need a root block node");
        return NULL;
    }
    return bs;
}

/* Resolve top-node / top (default: the active layer). */
static BlockDriverState *commit_find_top(BlockCommitArgs *a,
                                         BlockDriverState *bs, Error **errp)
{
    BlockDriverState *top = bs;

    if (a->top_node && a->top) {
        error_setg(errp, "'top-node' and 'top' are mutually exclusive");
        return NULL;
    }
    if (a->top_node) {
        top = blockdev_lookup_bs(NULL, a->top_node, errp);
        if (!top) {
            return NULL;
        }
        if (!commit_chain_contains(bs, top)) {
            error_setg(errp, "'%s' is not in this backing file chain",
                       a->top_node);
            return NULL;
        }
    } else if (a->top && strcmp(bdrv_get_filename(bs), a->top) != 0) {
        top = bdrv_find_backing_image(bs, a->top);
    }
    if (!top) {
        error_setg(errp, "Top image file %s not found",
                   a->top ? a->top : "NULL");
    }
    return top;
}

/* Resolve base-node / base (default: the bottom of top's chain). */
static BlockDriverState *commit_find_base(BlockCommitArgs *a,
                                          BlockDriverState *top,
                                          Error **errp)
{
    BlockDriverState *base;

    if (a->base_node && a->base) {
        error_setg(errp, "'base-node' and 'base' are mutually exclusive");
        return NULL;
    }
    if (a->base_node) {
        base = blockdev_lookup_bs(NULL, a->base_node, errp);
        if (base && !commit_chain_contains(top, base)) {
            error_setg(errp, "'%s' is not in this backing file chain",
                       a->base_node);
            return NULL;
        }
        return base;
    }
    if (a->base) {
        base = bdrv_find_backing_image(top, a->base);
        if (!base) {
            error_setg(errp, "Can't find '%s' in the backing chain", a->base);
        }
        return base;
    }
    base = commit_chain_bottom(top);
    if (!base) {
        error_setg(errp, "There is no backimg image");
    }
    return base;
}

/* Refuse when a node from top down to base (included) is held. */
static bool commit_check_busy(BlockDriverState *top, BlockDriverState *base,
                              Error **errp)
{
    BlockDriverState *stop = commit_chain_next(base);

    for (BlockDriverState *n = top; n && n != stop;
         n = commit_chain_next(n)) {
        if (bdrv_op_is_blocked(n, errp)) {
            return false;
        }
    }
    return true;
}

typedef struct CommitDriveName {
    BlockDriverState *bs;
    const char *id;
} CommitDriveName;

static void commit_drive_name_cb(const char *id, BlockDriverState *bs,
                                 void *opaque)
{
    CommitDriveName *d = opaque;

    if (bs == d->bs && !d->id) {
        d->id = id;
    }
}

/*
 * QEMU's default job id: the drive name of the device node, else ""
 * (which job creation refuses: "Invalid job ID ''").
 */
static const char *commit_default_job_id(BlockDriverState *bs)
{
    CommitDriveName d = { .bs = bs };

    blockdev_foreach_drive(commit_drive_name_cb, &d);
    return d.id ? d.id : "";
}

/*
 * Create the intermediate job (the reopens follow creation, as in
 * QEMU: a failure ends the job created -> null), hold the device node,
 * top..above-base and base, then start it.
 */
static void commit_start(CommitPlan *p, BlockDriverState *overlay,
                         const char *backing_file, Error **errp)
{
    CommitJob *s;

    s = block_job_create(p->job_id, &commit_job_driver, p->top, p->speed,
                         p->on_error, p->flags, errp);
    if (!s) {
        return;
    }
    s->top = p->top;
    s->base = p->base;
    s->overlay = overlay;
    g_queue_init(&s->retry);
    if (!block_job_add_bdrv(&s->common, p->bs, errp)) {
        goto fail;
    }
    for (BlockDriverState *n = p->top; n != p->base;
         n = commit_chain_next(n)) {
        if (!block_job_add_bdrv(&s->common, n, errp)) {
            goto fail;
        }
    }
    if (!block_job_add_bdrv(&s->common, p->base, errp)) {
        goto fail;
    }
    s->base_was_ro = bdrv_is_read_only(p->base);
    if (commit_reopen(p->base, false, errp) < 0) {
        s->base_was_ro = false;
        goto fail;
    }
    s->overlay_was_ro = bdrv_is_read_only(overlay);
    if (commit_reopen(overlay, false, errp) < 0) {
        s->overlay_was_ro = false;
        goto fail;
    }
    s->base_child = bdrv_root_attach(p->base, "commit-base", errp);
    if (!s->base_child) {
        goto fail;
    }
    s->backing_file = g_strdup(backing_file);
    s->chunk_limit = commit_chunk_for_speed(p->speed);
    trace_commit_start(s, p->top, p->base, overlay, p->speed);
    job_start(&s->common.job);
    return;

fail:
    /* clean does not run for a job that never started: undo here. */
    if (s->base_was_ro) {
        commit_restore_ro(p->base);
    }
    if (s->overlay_was_ro) {
        commit_restore_ro(overlay);
    }
    job_early_fail(&s->common.job);
}

/* Active commit: base read-write for commit_active_start, which owns it
 * from its success on; restored here when it fails. */
static void commit_start_active(CommitPlan *p, Error **errp)
{
    bool base_was_ro = bdrv_is_read_only(p->base);

    if (commit_reopen(p->base, false, errp) < 0) {
        return;
    }
    if (!commit_active_start(p->job_id, p->top, p->base, p->speed,
                             p->on_error, p->flags, errp) && base_was_ro) {
        commit_restore_ro(p->base);
    }
}

/* Job creation flags from auto-finalize / auto-dismiss. */
static int commit_job_flags(BlockCommitArgs *a)
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
 * QEMU 7.2's checks in its order (each refusal changes nothing), then
 * the active job when top is the device's active layer, else the
 * intermediate one.
 */
void qmp_block_commit(BlockCommitArgs *a, Error **errp)
{
    CommitPlan p = {
        .flags = commit_job_flags(a),
        .speed = a->has_speed ? a->speed : 0,
        .on_error = a->has_on_error ? a->on_error : BLOCKDEV_ON_ERROR_REPORT,
    };
    BlockDriverState *overlay;

    p.bs = commit_find_device(a->device, errp);
    if (!p.bs || bdrv_op_is_blocked(p.bs, errp)) {
        return;
    }
    p.top = commit_find_top(a, p.bs, errp);
    if (!p.top) {
        return;
    }
    p.base = commit_find_base(a, p.top, errp);
    if (!p.base || !commit_check_busy(p.top, p.base, errp)) {
        return;
    }
    if (p.top == p.base) {
        error_setg(errp, "cannot commit an image into itself");
        return;
    }
    p.job_id = a->job_id ? a->job_id : commit_default_job_id(p.bs);
    if (bdrv_skip_filters(p.top) == bdrv_skip_filters(p.bs)) {
        if (a->backing_file) {
            error_setg(errp, "'backing-file' specified, but 'top' is the "
                       "active layer");
            return;
        }
        trace_qmp_block_commit(p.bs, p.top, p.base, 1);
        commit_start_active(&p, errp);
        return;
    }
    overlay = commit_chain_above(p.bs, p.top);
    if (!overlay || bdrv_op_is_blocked(overlay, errp)) {
        if (!overlay) {
            error_setg(errp, "Could not find overlay image for %s:",
                       bdrv_get_filename(p.top));
        }
        return;
    }
    trace_qmp_block_commit(p.bs, p.top, p.base, 0);
    commit_start(&p, overlay, a->backing_file, errp);
}

/* ------------------------------------------------------------------ */
/* Synchronous commit (HMP "commit")                                   */

typedef struct CommitSync {
    BdrvChild *top_child;
    BdrvChild *base_child;
    BlockDriverState *base;
} CommitSync;

/* Grow base, copy everything top allocates, flush base. 0 or -errno. */
static int coroutine_fn commit_co_sync_body(void *opaque)
{
    CommitSync *c = opaque;
    int64_t len = bdrv_getlength(bdrv_child_bs(c->top_child));
    Error *err = NULL;
    int ret;

    if (len < 0) {
        return len;
    }
    ret = commit_co_grow_base(c->base_child, len, &err);
    if (ret < 0) {
        error_free(err);
        return ret;
    }
    for (int64_t off = 0; off < len;) {
        int64_t n;

        ret = commit_copy_range(c->top_child, c->base_child, c->base, off,
                                MIN(len - off, COMMIT_STATUS_MAX), &n, NULL,
                                NULL);
        if (ret < 0) {
            return ret;
        }
        if (n <= 0) {
            break;
        }
        off += n;
    }
    return bdrv_co_flush(c->base);
}

/*
 * The copy, with handles that a drained section does not park (role
 * without BDRV_CHILD_ROOT): this operation owns the section.
 */
static int commit_sync_copy(BlockDriverState *bs, BlockDriverState *base)
{
    CommitSync c = { .base = base };
    int ret = -EIO;

    c.top_child = bdrv_attach_child(NULL, bs, "commit-sync-top", 0, NULL);
    c.base_child = bdrv_attach_child(NULL, base, "commit-sync-base", 0,
                                     NULL);
    if (c.top_child && c.base_child) {
        ret = qemu_coroutine_call_sync(commit_co_sync_body, &c);
    }
    if (c.top_child) {
        bdrv_unref_child(NULL, c.top_child);
    }
    if (c.base_child) {
        bdrv_unref_child(NULL, c.base_child);
    }
    return ret;
}

/*
 * Order: drain bs (guests wait), base read-write, copy + flush base, only
 * then empty bs (a failure before leaves bs's data in place), base back.
 */
int commit_sync(BlockDriverState *bs)
{
    BlockDriverState *base = bs ? bdrv_backing_bs(bs) : NULL;
    bool base_was_ro;
    Error *err = NULL;
    int ret;

    if (!base) {
        return -ENOTSUP;
    }
    if (bdrv_op_is_blocked(bs, NULL) || bdrv_op_is_blocked(base, NULL)) {
        return -EBUSY;
    }
    trace_commit_sync(bs, base);
    bdrv_ref(bs);
    bdrv_ref(base);
    bdrv_drained_begin(bs);
    base_was_ro = bdrv_is_read_only(base);
    if (commit_reopen(base, false, &err) < 0) {
        trace_commit_reopen_error(base, error_get_pretty(err));
        error_free(err);
        ret = -EACCES;
        goto out;
    }
    ret = commit_sync_copy(bs, base);
    if (ret == 0) {
        /* Best effort, as QEMU: a format that cannot empty keeps it. */
        if (bdrv_make_empty(bs, &err) < 0) {
            trace_commit_reopen_error(bs, error_get_pretty(err));
            error_free(err);
            err = NULL;
        }
        bdrv_flush(bs);
    }
    if (base_was_ro) {
        commit_restore_ro(base);
    }
out:
    bdrv_drained_end(bs);
    bdrv_unref(base);
    bdrv_unref(bs);
    return ret;
}

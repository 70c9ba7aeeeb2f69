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
 * The intermediate job (state: CommitJob) works like the stream job, on
 * the same copy engine (block/job-copy.c): its dispatcher walks top's
 * length by block status, hands chunks to a few copy coroutines,
 * charges the rate limit per chunk, applies on-error
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
#include "block/job-copy.h"
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
/* Node modes and size                                                */

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

/* ------------------------------------------------------------------ */
/* The intermediate commit job                                         */

/* Guests never write top..base: no busy mode, a fixed number of copies. */
static const BlockJobCopyLimits commit_copy_limits = {
    .chunk_max = COMMIT_CHUNK_MAX,
    .chunk_min = COMMIT_CHUNK_MIN,
    .chunk_busy = COMMIT_CHUNK_MAX,
    .in_flight_idle = COMMIT_IN_FLIGHT,
    .in_flight_busy = COMMIT_IN_FLIGHT,
    .status_max = COMMIT_STATUS_MAX,
};

typedef struct CommitJob {
    BlockJob common;            /* common.root: reads through top */
    BdrvChild *base_child;      /* writes into base */
    BlockDriverState *top;
    BlockDriverState *base;
    BlockDriverState *overlay;  /* the image above top: its header changes */
    char *backing_file;         /* header string; NULL: base's file name */
    bool base_was_ro;           /* reopened read-write for the job */
    bool overlay_was_ro;
    BlockJobCopier copier;      /* the walk over top */
} CommitJob;

static CommitJob *commit_of(BlockJobCopier *c)
{
    return container_of(c, CommitJob, copier);
}

/*
 * Body of a copy coroutine: copy one chunk step by step. 0 or -errno;
 * *is_read tells a failed read of top from a failed write of base.
 */
static int coroutine_fn commit_co_copy(BlockJobCopier *c,
                                       const BlockJobCopyRange *r,
                                       bool *is_read)
{
    CommitJob *s = commit_of(c);
    int64_t off = r->offset, end = r->offset + r->bytes;

    trace_commit_co_copy(s, r->offset, r->bytes);
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

/*
 * Does [offset, offset + *n) need a copy? 1 where top..above-base
 * allocates it or reads it as zeroes, 0 where base decides, or -errno.
 */
static int coroutine_fn commit_co_needs_copy(BlockJobCopier *c,
                                             int64_t offset, int64_t *n)
{
    CommitJob *s = commit_of(c);
    int64_t bytes = *n;
    int st;

    *n = 0;
    st = bdrv_co_block_status_above(s->top, s->base, offset, bytes, n, NULL,
                                    NULL, NULL);
    if (st < 0) {
        return st;
    }
    return (st & (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_ZERO)) != 0;
}

static const BlockJobCopyOps commit_copy_ops = {
    .co_copy = commit_co_copy,
    .co_needs_copy = commit_co_needs_copy,
};

/*
 * .run: grow base to top's length, then copy everything top..above-base
 * decides. -ECANCELED when cancelled; the chain changes only in prepare.
 */
static int coroutine_fn commit_run(Job *job, Error **errp)
{
    CommitJob *s = container_of(job, CommitJob, common.job);
    int64_t len = bdrv_getlength_err(s->top, errp);
    int ret;

    if (len < 0) {
        return len;
    }
    ret = bdrv_co_grow(s->base_child, len, errp);
    if (ret < 0) {
        return ret;
    }
    trace_commit_run(s, s->top, s->base, len);
    ret = block_job_copier_co_walk(&s->copier, len);
    trace_commit_run_done(s, ret, job_is_cancelled(job));
    return block_job_finish_run(&s->common, ret, errp);
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
    int ret;

    ret = bdrv_flush(s->base);
    if (ret < 0) {
        trace_commit_prepare_error(s, "flush", ret);
        return ret;
    }
    trace_commit_prepare(s, s->overlay, s->base, file);
    return block_job_relink(&s->common, s->overlay, s->base, file,
                            bdrv_get_format_name(image));
}

/* Always: release base's handle, restore the modes, free the queue. */
static void commit_clean(Job *job)
{
    CommitJob *s = container_of(job, CommitJob, common.job);

    block_job_copier_cleanup(&s->copier);
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
        .pause = block_job_copier_co_pause,
        .prepare = commit_prepare,
        .clean = commit_clean,
    },
    .set_speed = block_job_copier_set_speed,
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
        if (!bdrv_chain_contains(bs, top)) {
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
        if (base && !bdrv_chain_contains(top, base)) {
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
    base = bdrv_chain_bottom(top);
    if (!base) {
        error_setg(errp, "There is no backimg image");
    }
    return base;
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
    block_job_copier_init(&s->copier, &s->common, &commit_copy_limits,
                          &commit_copy_ops);
    if (!block_job_add_bdrv(&s->common, p->bs, errp) ||
        !block_job_add_chain(&s->common, p->top, p->base, errp)) {
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

/*
 * QEMU 7.2's checks in its order (each refusal changes nothing), then
 * the active job when top is the device's active layer, else the
 * intermediate one.
 */
void qmp_block_commit(BlockCommitArgs *a, Error **errp)
{
    CommitPlan p = {
        .flags = block_job_flags(a->has_auto_finalize, a->auto_finalize,
                                 a->has_auto_dismiss, a->auto_dismiss),
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
    /* Refuse when a node from top down to base (included) is held. */
    if (!p.base || block_job_chain_is_busy(p.top, p.base, errp)) {
        return;
    }
    if (p.top == p.base) {
        error_setg(errp, "cannot commit an image into itself");
        return;
    }
    /* QEMU's default job id: the device node's drive name, else "". */
    p.job_id = a->job_id ? a->job_id : block_job_default_id(p.bs, "");
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
    overlay = bdrv_chain_above(p.bs, p.top);
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
    ret = bdrv_co_grow(c->base_child, len, &err);
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

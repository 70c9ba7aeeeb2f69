/*
 * The stream job (block-stream): pull the data of a backing chain, down
 * to an optional base, into the node that uses it, then drop the
 * streamed-out images from the chain.
 *
 * State: one StreamJob per job, whose copy engine (block/job-copy.c)
 * walks the target from offset 0; the callbacks here ask block status in
 * large extents. Ranges the target already holds, and ranges no layer
 * between the target's backing node and the base allocates, cost no I/O
 * and no rate-limit charge (they only advance the progress). Every other range is handed in chunks to a
 * copy coroutine, which reads it through the job's root child with
 * BDRV_REQ_COPY_ON_READ | BDRV_REQ_PREFETCH: the request path populates
 * the target under a serialising tracked request, so a guest write that
 * lands meanwhile is never overwritten by older backing data, and data
 * the target gained in between is not copied again. A few copies run at
 * once; while guests have requests in flight on the target only one does
 * (and smaller), so their latency stays low. With a remote chain
 * (bdrv_chain_parallel_hint > 0) each copy mostly waits for a round
 * trip, so as many run as the server takes (half of it while guests are
 * busy) and the walk reuses its block-status extents (see job-copy.c).
 * Everything runs on the main loop thread, so the state below needs no
 * lock.
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
#include "block/job-copy.h"
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

static const BlockJobCopyLimits stream_copy_limits = {
    .chunk_max = STREAM_CHUNK_MAX,
    .chunk_min = STREAM_CHUNK_MIN,
    .chunk_busy = STREAM_CHUNK_BUSY,
    .in_flight_idle = STREAM_IN_FLIGHT_IDLE,
    .in_flight_busy = STREAM_IN_FLIGHT_BUSY,
    .status_max = STREAM_STATUS_MAX,
};

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

    BlockJobCopier copier;      /* the walk over the target */
    int64_t checkpoint_ns;      /* when the target was last flushed */
    bool target_was_ro;         /* reopened read-write for the job */
} StreamJob;

static const BlockJobDriver stream_job_driver;

/* ---- What and how to copy (the copier's callbacks) */

static StreamJob *stream_of(BlockJobCopier *c)
{
    return container_of(c, StreamJob, copier);
}

/* Guest (non-job) requests in flight on the target. */
static bool stream_guest_busy(BlockJobCopier *c)
{
    return (int64_t)stream_of(c)->target->in_flight > c->in_flight;
}

/* Body of a copy coroutine: populate the target over one range. */
static int coroutine_fn stream_co_copy(BlockJobCopier *c,
                                       const BlockJobCopyRange *r,
                                       bool *is_read)
{
    StreamJob *s = stream_of(c);
    BdrvRequestFlags flags = BDRV_REQ_COPY_ON_READ | BDRV_REQ_PREFETCH;

    if (s->to_base) {
        flags |= BDRV_REQ_COR_HIDE_BACKING;
    }
    trace_stream_co_copy(s, r->offset, r->bytes);
    return bdrv_co_preadv(s->common.root, r->offset, r->bytes, NULL, flags);
}

/*
 * Is [offset, offset + *n) to be copied? 1 (copy the first *n bytes),
 * 0 (skip them) or -errno. Allocated in the target: skip. Otherwise copy
 * what a layer from the target's backing node down to above_base
 * allocates (past the end of a shorter layer counts: it reads zeroes).
 */
static int coroutine_fn stream_co_needs_copy(BlockJobCopier *c,
                                             int64_t offset, int64_t *n)
{
    StreamJob *s = stream_of(c);
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
 * After each dispatched copy: flush the target when the last checkpoint
 * is old enough. A failing flush is not an error of the stream: prepare
 * flushes again and fails then if the target still cannot be flushed.
 */
static void coroutine_fn stream_co_checkpoint(BlockJobCopier *c)
{
    StreamJob *s = stream_of(c);
    int64_t now = qemu_clock_get_ns();
    int ret;

    if (now - s->checkpoint_ns < STREAM_CHECKPOINT_NS) {
        return;
    }
    ret = bdrv_co_flush(s->target);
    trace_stream_checkpoint(s, ret);
    s->checkpoint_ns = qemu_clock_get_ns();
}

/* Copy errors are reads of the chain (the default on-error accounting). */
static const BlockJobCopyOps stream_copy_ops = {
    .co_copy = stream_co_copy,
    .guest_busy = stream_guest_busy,
    .co_needs_copy = stream_co_needs_copy,
    .co_dispatched = stream_co_checkpoint,
};

/* ---- Running */

static int coroutine_fn stream_run(Job *job, Error **errp)
{
    StreamJob *s = container_of(job, StreamJob, common.job);
    int64_t len = bdrv_getlength_err(s->target, errp);
    int ret;

    if (len < 0) {
        return len;
    }
    trace_stream_run(s, s->target, s->above_base, len);
    if (s->above_base == s->target) {
        /* The base is the target's backing node: nothing to copy. */
        return 0;
    }
    s->checkpoint_ns = qemu_clock_get_ns();
    block_job_copier_set_parallel(&s->copier,
                                  bdrv_chain_parallel_hint(s->target));
    ret = block_job_copier_co_walk(&s->copier, len);
    trace_stream_run_done(s, ret, job_is_cancelled(job));
    return block_job_finish_run(&s->common, ret, errp);
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
    BlockDriverState *base = bdrv_chain_next(s->above_base);
    const char *file = NULL, *fmt = NULL;
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
    return block_job_relink(&s->common, s->target, base, file, fmt);
}

static void stream_clean(Job *job)
{
    StreamJob *s = container_of(job, StreamJob, common.job);

    block_job_copier_cleanup(&s->copier);
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
        .pause = block_job_copier_co_pause,
        .prepare = stream_prepare,
        .clean = stream_clean,
    },
    .set_speed = block_job_copier_set_speed,
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
        if (*base == bs || !bdrv_chain_contains(bs, *base)) {
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
    if (!bdrv_chain_contains(bs, *bottom)) {
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
    BlockDriverState *above = bdrv_chain_above(bs, base);

    return above ? above : bdrv_chain_bottom(bs);
}

/*
 * Create and start the job on bs, blocking bs and the nodes down to
 * above_base (not the base: jobs below may use it). The default job id,
 * as QEMU: the name of the drive whose top node is bs, else "" (which
 * job creation refuses: "Invalid job ID ''").
 */
static void stream_start(BlockStreamArgs *a, BlockDriverState *bs,
                         BlockDriverState *above_base, Error **errp)
{
    BlockdevOnError on_error = a->has_on_error ? a->on_error
                                               : BLOCKDEV_ON_ERROR_REPORT;
    int64_t speed = a->has_speed ? a->speed : 0;
    const char *job_id = a->job_id ? a->job_id
                                   : block_job_default_id(bs, "");
    bool was_ro = bdrv_is_read_only(bs);
    StreamJob *s;

    if (was_ro && bdrv_reopen_set_read_only(bs, false, errp) < 0) {
        return;
    }
    s = block_job_create(job_id, &stream_job_driver, bs, speed, on_error,
                         block_job_flags(a->has_auto_finalize,
                                         a->auto_finalize,
                                         a->has_auto_dismiss,
                                         a->auto_dismiss), errp);
    if (!s) {
        if (was_ro) {
            bdrv_reopen_set_read_only(bs, true, NULL);
        }
        return;
    }
    s->target_was_ro = was_ro;
    if (!block_job_add_chain(&s->common, bs, above_base, errp)) {
        /* Checked just before: cannot happen on one thread. */
        job_early_fail(&s->common.job);
        return;
    }
    s->target = bs;
    s->above_base = above_base;
    s->to_base = bdrv_chain_next(above_base) != NULL;
    s->backing_file = g_strdup(a->backing_file);
    block_job_copier_init(&s->copier, &s->common, &stream_copy_limits,
                          &stream_copy_ops);
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
    /* Refuse when a node from bs down to above_base is held by a job. */
    if (block_job_chain_is_busy(bs, above_base, errp)) {
        return;
    }
    if (!base && a->backing_file) {
        error_setg(errp, "backing file specified, but streaming the entire "
                   "chain");
        return;
    }
    stream_start(a, bs, above_base, errp);
}

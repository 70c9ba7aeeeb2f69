/*
 * Block jobs (include/block/blockjob.h): jobs that work on block nodes.
 *
 * On top of a Job (job.c) a BlockJob keeps: a root child on its main node
 * through which the driver's I/O goes (so request tracking, copy-on-read
 * and drained sections treat the job like any other user), the list of
 * nodes it holds with an op blocker and a reference each, its rate limit
 * and speed, its on-error policy and io-status. The framework reaches
 * this layer only through the JobLayerHooks installed on each block job
 * (events, io-status reset on user resume, freeing), so job drivers need
 * no wiring of their own.
 *
 * The QMP block-job-* commands and query-block-jobs are here too: they
 * find a job by id (DeviceNotActive "Block job 'X' not found" when
 * unknown) and go through job.c's verbs, which check the verb table.
 * Main loop thread only.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "block/blockjob.h"
#include "block/block_int.h"
#include "sysemu/blockdev.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "trace.h"

/* Rate-limit slice (QEMU's BLOCK_JOB_SLICE_TIME). */
#define BLOCK_JOB_SLICE_NS (100 * 1000 * 1000LL)

static const JobLayerHooks block_job_hooks;

static bool block_job_is_internal(BlockJob *job)
{
    return job->job.id == NULL;
}

/* ---- Device names (busy messages, default job ids) and flags */

typedef struct DriveNameSearch {
    BlockDriverState *bs;
    const char *name;
} DriveNameSearch;

static void block_job_drive_name_cb(const char *id, BlockDriverState *bs,
                                    void *opaque)
{
    DriveNameSearch *s = opaque;

    if (!s->name && bs == s->bs) {
        s->name = id;
    }
}

const char *block_job_default_id(BlockDriverState *bs, const char *fallback)
{
    DriveNameSearch s = { .bs = bs };

    blockdev_foreach_drive(block_job_drive_name_cb, &s);
    return s.name ? s.name : fallback;
}

/* The drive whose top node is bs, or NULL (bdrv_set_device_name_fn hook). */
static const char *block_job_device_name(BlockDriverState *bs)
{
    return block_job_default_id(bs, NULL);
}

int block_job_flags(bool has_auto_finalize, bool auto_finalize,
                    bool has_auto_dismiss, bool auto_dismiss)
{
    int flags = JOB_DEFAULT;

    if (has_auto_finalize && !auto_finalize) {
        flags |= JOB_MANUAL_FINALIZE;
    }
    if (has_auto_dismiss && !auto_dismiss) {
        flags |= JOB_MANUAL_DISMISS;
    }
    return flags;
}

/* ---- Events (JobLayerHooks) */

static void block_job_event_completed(Job *job)
{
    BlockJob *bjob = (BlockJob *)job;

    if (block_job_is_internal(bjob)) {
        return;
    }
    if (job_is_cancelled(job)) {
        qapi_event_send_block_job_cancelled(job->driver->job_type, job->id,
                                            job->progress_total,
                                            job->progress_current,
                                            bjob->speed);
    } else {
        qapi_event_send_block_job_completed(job->driver->job_type, job->id,
                                            job->progress_total,
                                            job->progress_current,
                                            bjob->speed,
                                            job_error_message(job));
    }
}

static void block_job_event_pending(Job *job)
{
    if (!block_job_is_internal((BlockJob *)job)) {
        qapi_event_send_block_job_pending(job->driver->job_type, job->id);
    }
}

static void block_job_event_ready(Job *job)
{
    BlockJob *bjob = (BlockJob *)job;

    if (!block_job_is_internal(bjob)) {
        qapi_event_send_block_job_ready(job->driver->job_type, job->id,
                                        job->progress_total,
                                        job->progress_current, bjob->speed);
    }
}

/* A user resume clears the error that stopped the job. */
static void block_job_user_resume(Job *job)
{
    ((BlockJob *)job)->iostatus = BLOCK_DEVICE_IO_STATUS_OK;
}

/* Last reference gone: release the nodes, the root, the blocker. */
static void block_job_free(Job *job)
{
    BlockJob *bjob = (BlockJob *)job;

    trace_block_job_free(bjob);
    block_job_remove_all_bdrv(bjob);
    bdrv_root_unref_child(bjob->root);
    bjob->root = NULL;
    error_free(bjob->blocker);
    bjob->blocker = NULL;
}

static const JobLayerHooks block_job_hooks = {
    .completed_event = block_job_event_completed,
    .pending_event   = block_job_event_pending,
    .ready_event     = block_job_event_ready,
    .user_resume     = block_job_user_resume,
    .free            = block_job_free,
};

/* ---- Creation and the nodes a job holds */

bool block_job_add_bdrv(BlockJob *job, BlockDriverState *bs, Error **errp)
{
    if (g_slist_find(job->nodes, bs)) {
        return true;
    }
    if (bdrv_op_is_blocked(bs, errp)) {
        return false;
    }
    trace_block_job_add_bdrv(job, bdrv_get_node_name(bs));
    bdrv_ref(bs);
    bdrv_op_block_all(bs, job->blocker);
    job->nodes = g_slist_prepend(job->nodes, bs);
    return true;
}

/* Lift the blocker from every held node and drop its reference. */
void block_job_remove_all_bdrv(BlockJob *job)
{
    while (job->nodes) {
        BlockDriverState *bs = job->nodes->data;

        job->nodes = g_slist_delete_link(job->nodes, job->nodes);
        bdrv_op_unblock_all(bs, job->blocker);
        bdrv_unref(bs);
    }
}

bool block_job_node_is_busy(BlockDriverState *bs, Error **errp)
{
    return bdrv_op_is_blocked(bs, errp);
}

bool block_job_chain_is_busy(BlockDriverState *top, BlockDriverState *bottom,
                             Error **errp)
{
    for (BlockDriverState *n = top; n; n = bdrv_chain_next(n)) {
        if (block_job_node_is_busy(n, errp)) {
            return true;
        }
        if (n == bottom) {
            break;
        }
    }
    return false;
}

int block_job_relink(BlockJob *job, BlockDriverState *overlay,
                     BlockDriverState *base, const char *file,
                     const char *fmt)
{
    Error *local_err = NULL;
    int ret = bdrv_change_backing_file(overlay, file, fmt, &local_err);

    if (ret >= 0) {
        block_job_remove_all_bdrv(job);
        ret = bdrv_set_backing_hd(overlay, base, &local_err);
    }
    if (ret < 0) {
        trace_block_job_relink_error(job, error_get_pretty(local_err), ret);
        error_free(local_err);
    }
    return ret;
}

bool block_job_add_chain(BlockJob *job, BlockDriverState *top,
                         BlockDriverState *bottom, Error **errp)
{
    for (BlockDriverState *n = top; n; n = bdrv_chain_next(n)) {
        if (!block_job_add_bdrv(job, n, errp)) {
            return false;
        }
        if (n == bottom) {
            break;
        }
    }
    return true;
}

/*
 * QEMU's order: the id defaults to the device (or node) name, the job is
 * created (event), then the node is held and the speed checked; a failure
 * after creation ends it with created -> null and no block-job event.
 */
void *block_job_create(const char *job_id, const BlockJobDriver *driver,
                       BlockDriverState *bs, int64_t speed,
                       BlockdevOnError on_error, int flags, Error **errp)
{
    JobType type = driver->job_driver.job_type;
    BlockJob *job;

    bdrv_set_device_name_fn(block_job_device_name);
    if (!job_id && !(flags & JOB_INTERNAL)) {
        job_id = bdrv_get_device_or_node_name(bs);
    }
    job = job_create(job_id, &driver->job_driver, flags, errp);
    if (!job) {
        return NULL;
    }
    job->job.hooks = &block_job_hooks;
    job->on_error = on_error;
    job->iostatus = BLOCK_DEVICE_IO_STATUS_OK;
    error_setg(&job->blocker, "block device is in use by block job: %s",
               JobType_str(type));
    ratelimit_set_speed(&job->limit, 0, BLOCK_JOB_SLICE_NS);
    trace_block_job_create(job, job->job.id ? job->job.id : "",
                           bdrv_get_node_name(bs), (long long)speed);

    job->io_error_seq = bdrv_io_error_seq();
    if (!block_job_add_bdrv(job, bs, errp)) {
        goto fail;
    }
    job->root = bdrv_root_attach(bs, job_id ? job_id : "internal-job",
                                 errp);
    if (!job->root) {
        goto fail;
    }
    if (!block_job_set_speed(job, speed, errp)) {
        goto fail;
    }
    return job;

fail:
    job_early_fail(&job->job);
    return NULL;
}

/* ---- Speed */

bool block_job_set_speed(BlockJob *job, int64_t speed, Error **errp)
{
    if (!job_apply_verb(&job->job, JOB_VERB_SET_SPEED, errp)) {
        return false;
    }
    if (speed < 0) {
        error_setg(errp, "Parameter 'speed' expects a non-negative value");
        return false;
    }
    trace_block_job_set_speed(job, (long long)speed);
    ratelimit_set_speed(&job->limit, speed, BLOCK_JOB_SLICE_NS);
    job->speed = speed;
    if (job->job.driver && ((const BlockJobDriver *)job->job.driver)->set_speed) {
        ((const BlockJobDriver *)job->job.driver)->set_speed(job, speed);
    }
    /* A job sleeping under the old limit re-plans under the new one. */
    if (timer_pending(job->job.sleep_timer)) {
        job_enter(&job->job);
    }
    return true;
}

/* Charge n copied bytes; the delay before the next chunk. */
int64_t block_job_ratelimit_get_delay(BlockJob *job, uint64_t n)
{
    if (!job->speed) {
        return 0;
    }
    return ratelimit_calculate_delay(&job->limit, n, qemu_clock_get_ns());
}

/* ---- Errors */

BlockErrorAction block_job_error_action(BlockJob *job, int error,
                                        bool is_read)
{
    BlockErrorAction action;
    int err = error < 0 ? -error : error;

    switch (job->on_error) {
    case BLOCKDEV_ON_ERROR_ENOSPC:
    case BLOCKDEV_ON_ERROR_AUTO:
        action = err == ENOSPC ? BLOCK_ERROR_ACTION_STOP
                               : BLOCK_ERROR_ACTION_REPORT;
        break;
    case BLOCKDEV_ON_ERROR_STOP:
        action = BLOCK_ERROR_ACTION_STOP;
        break;
    case BLOCKDEV_ON_ERROR_IGNORE:
        action = BLOCK_ERROR_ACTION_IGNORE;
        break;
    case BLOCKDEV_ON_ERROR_REPORT:
    default:
        action = BLOCK_ERROR_ACTION_REPORT;
        break;
    }
    /* A forced cancel never retries: report instead of stopping. */
    if (action == BLOCK_ERROR_ACTION_STOP && job_is_cancelled(&job->job)) {
        action = BLOCK_ERROR_ACTION_REPORT;
    }
    trace_block_job_error_action(job, err, is_read, BlockErrorAction_str(action));
    if (!block_job_is_internal(job)) {
        qapi_event_send_block_job_error(job->job.id,
                                        is_read ? IO_OPERATION_TYPE_READ
                                                : IO_OPERATION_TYPE_WRITE,
                                        action);
    }
    if (action == BLOCK_ERROR_ACTION_STOP) {
        if (!job->job.user_paused) {
            /* A user pause: block-job-resume is the way out. */
            job_pause(&job->job);
            job->job.user_paused = true;
        }
        if (job->iostatus == BLOCK_DEVICE_IO_STATUS_OK) {
            job->iostatus = err == ENOSPC ? BLOCK_DEVICE_IO_STATUS_NOSPACE
                                          : BLOCK_DEVICE_IO_STATUS_FAILED;
        }
    }
    return action;
}

/* ---- Lookup and QMP */

BlockJob *block_job_get(const char *id)
{
    Job *job = job_get(id);

    return job && job->hooks == &block_job_hooks ? (BlockJob *)job : NULL;
}

/* The block job called id, or NULL with DeviceNotActive set. */
static BlockJob *block_job_find(const char *id, Error **errp)
{
    BlockJob *job = block_job_get(id);

    if (!job) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_ACTIVE,
                  "Block job '%s' not found", id);
    }
    return job;
}

/* One query-block-jobs entry. */
static BlockJobInfo *block_job_query(BlockJob *bjob)
{
    Job *job = &bjob->job;
    BlockJobInfo *info = g_new0(BlockJobInfo, 1);
    const char *msg = job_error_message(job);

    info->type = g_strdup(JobType_str(job->driver->job_type));
    info->device = g_strdup(job->id);
    info->len = job->progress_total;
    info->offset = job->progress_current;
    info->busy = job->busy;
    info->paused = job->pause_count > 0;
    info->speed = bjob->speed;
    info->io_status = bjob->iostatus;
    info->ready = job->status == JOB_STATUS_READY ||
                  job->status == JOB_STATUS_STANDBY;
    info->status = job->status;
    info->auto_finalize = job->auto_finalize;
    info->auto_dismiss = job->auto_dismiss;
    info->error = msg ? g_strdup(msg) : NULL;
    if (((const BlockJobDriver *)job->driver)->query) {
        ((const BlockJobDriver *)job->driver)->query(bjob, info);
    }
    return info;
}

BlockJobInfoList *qmp_query_block_jobs(Error **errp)
{
    BlockJobInfoList *head = NULL, **tail = &head;

    for (Job *job = job_next(NULL); job; job = job_next(job)) {
        BlockJobInfoList *elem;

        if (job->hooks != &block_job_hooks || !job->id) {
            continue;
        }
        elem = g_new0(BlockJobInfoList, 1);
        elem->value = block_job_query((BlockJob *)job);
        *tail = elem;
        tail = &elem->next;
    }
    return head;
}

void qmp_block_job_set_speed(const char *device, int64_t speed, Error **errp)
{
    BlockJob *job = block_job_find(device, errp);

    if (job) {
        block_job_set_speed(job, speed, errp);
    }
}

/* A user-paused job needs force (QEMU's rule), then the cancel verb. */
void qmp_block_job_cancel(const char *device, bool has_force, bool force,
                          Error **errp)
{
    BlockJob *job = block_job_find(device, errp);

    if (!job) {
        return;
    }
    if (job->job.user_paused && !(has_force && force)) {
        error_setg(errp, "The block job for device '%s' is currently paused",
                   device);
        return;
    }
    trace_qmp_block_job_cancel(job);
    job_user_cancel(&job->job, has_force && force, errp);
}

void qmp_block_job_pause(const char *device, Error **errp)
{
    BlockJob *job = block_job_find(device, errp);

    if (job) {
        trace_qmp_block_job_pause(job);
        job_user_pause(&job->job, errp);
    }
}

void qmp_block_job_resume(const char *device, Error **errp)
{
    BlockJob *job = block_job_find(device, errp);

    if (job) {
        trace_qmp_block_job_resume(job);
        job_user_resume(&job->job, errp);
    }
}

void qmp_block_job_complete(const char *device, Error **errp)
{
    BlockJob *job = block_job_find(device, errp);

    if (job) {
        job_complete(&job->job, errp);
    }
}

/* Finalizing may free the job: hold a reference across the verb. */
void qmp_block_job_finalize(const char *id, Error **errp)
{
    BlockJob *job = block_job_find(id, errp);

    if (job) {
        job_ref(&job->job);
        job_finalize(&job->job, errp);
        job_unref(&job->job);
    }
}

void qmp_block_job_dismiss(const char *id, Error **errp)
{
    BlockJob *job = block_job_find(id, errp);

    if (job) {
        job_dismiss(&job->job, errp);
    }
}

int block_job_finish_run(BlockJob *job, int ret, Error **errp)
{
    char *msg;

    if (ret >= 0 || ret == -ECANCELED || !errp || *errp) {
        return ret;
    }
    msg = bdrv_io_error_message(job->root ? job->root->bs : NULL, ret,
                                job->io_error_seq);
    error_setg(errp, "%s", msg);
    g_free(msg);
    return ret;
}

/*
 * Block jobs: jobs that work on block nodes (stream, commit, ...), on top
 * of the generic job framework (include/qemu/job.h). Implemented in
 * blockjob.c; QMP block-job-* and query-block-jobs there too.
 *
 * A block job adds to a Job: a root child on its main node through which
 * its I/O goes (so request tracking, copy-on-read and drained sections
 * apply to it like to any user), the nodes it holds with op blockers
 * ("Node 'X' is busy: block device is in use by block job: stream"), a
 * rate limit (speed, bytes per second, 100 ms slices), the on-error
 * policy with io-status, and QEMU's BLOCK_JOB_* events:
 * BLOCK_JOB_COMPLETED / BLOCK_JOB_CANCELLED at finalization,
 * BLOCK_JOB_READY on job_transition_to_ready, BLOCK_JOB_PENDING in
 * pending with auto-finalize off, BLOCK_JOB_ERROR from
 * block_job_error_action.
 */
#ifndef BLOCK_BLOCKJOB_H
#define BLOCK_BLOCKJOB_H

#include "qemu/osdep.h"
#include "qemu/job.h"
#include "qemu/ratelimit.h"
#include "block/block.h"

typedef struct BlockJob BlockJob;

typedef struct BlockJobDriver {
    JobDriver job_driver;       /* first: a BlockJobDriver is a JobDriver */
    /* Optional: the speed changed (e.g. to re-split chunks). */
    void (*set_speed)(BlockJob *job, int64_t speed);
    /*
     * Optional: fill the driver's own members of a query-block-jobs
     * entry (e.g. active commit's actively-synced).
     */
    void (*query)(BlockJob *job, BlockJobInfo *info);
} BlockJobDriver;

struct BlockJob {
    Job job;                    /* first */
    BdrvChild *root;            /* I/O of the job's main node goes here */
    RateLimit limit;
    int64_t speed;              /* bytes/s, 0 = unlimited */
    BlockdevOnError on_error;   /* as given (report by default) */
    BlockDeviceIoStatus iostatus;
    GSList *nodes;              /* BlockDriverState * blocked by the job */
    Error *blocker;             /* "block device is in use by block job: T" */
    struct BlockJobCopier *copier;  /* its copy engine (job-copy.h), if any */
    uint64_t io_error_seq;      /* bdrv_io_error_seq() at creation */
};

/*
 * Create a block job (state created) working on bs: attaches job->root
 * on bs and blocks bs (block_job_add_bdrv). speed < 0: "Parameter
 * 'speed' expects a non-negative value" (GenericError). flags: JOB_*.
 * job_id NULL: named after bs's drive (or node) name. Returns the
 * driver's struct (instance_size bytes, BlockJob first) or NULL.
 */
void *block_job_create(const char *job_id, const BlockJobDriver *driver,
                       BlockDriverState *bs, int64_t speed,
                       BlockdevOnError on_error, int flags, Error **errp);
/*
 * Put bs under the job's blocker (it will be unblocked when the job is
 * freed). Fails with QEMU's busy message if another job holds bs.
 */
bool block_job_add_bdrv(BlockJob *job, BlockDriverState *bs, Error **errp);
/*
 * The end of a run(): returns ret; a failure other than -ECANCELED sets
 * *errp (if not set yet) to the errno text plus the detail a driver
 * noted below the job's node since the job was created (the server or
 * URL that failed), e.g. "Input/output error (nbd://h:1/x: ...)".
 */
int block_job_finish_run(BlockJob *job, int ret, Error **errp);
/* Unblock every node the job holds (before graph changes in prepare). */
void block_job_remove_all_bdrv(BlockJob *job);

/* Change speed (block-job-set-speed); wakes a sleeping job. */
bool block_job_set_speed(BlockJob *job, int64_t speed, Error **errp);
/* Nanoseconds to wait before copying n more bytes (0 = go now). */
int64_t block_job_ratelimit_get_delay(BlockJob *job, uint64_t n);

/*
 * Apply the on-error policy to an I/O error (-errno) of a read or write:
 * emits BLOCK_JOB_ERROR {device, operation, action}; for stop (or enospc
 * with ENOSPC) sets io-status failed/nospace and user-pauses the job so
 * that block-job-resume continues (the caller retries the chunk after
 * its next pause point). Returns the action taken.
 */
BlockErrorAction block_job_error_action(BlockJob *job, int error,
                                        bool is_read);

/* The job called id if it is a block job, else NULL. */
BlockJob *block_job_get(const char *id);
/* Is bs held by some job? errp gets QEMU's busy message. */
bool block_job_node_is_busy(BlockDriverState *bs, Error **errp);
/*
 * Is a node from top down to bottom (included; bdrv_chain_next steps)
 * held by some job? errp gets QEMU's busy message for the first one.
 */
bool block_job_chain_is_busy(BlockDriverState *top, BlockDriverState *bottom,
                             Error **errp);
/*
 * The end of a job that drops part of a chain: overlay's header names
 * file (format fmt; NULL: no backing file), then the job releases its
 * nodes and overlay's backing link moves to base in the graph. 0 or
 * -errno (traced); a failed header update changes nothing.
 */
int block_job_relink(BlockJob *job, BlockDriverState *overlay,
                     BlockDriverState *base, const char *file,
                     const char *fmt);
/* block_job_add_bdrv for every node from top down to bottom (included). */
bool block_job_add_chain(BlockJob *job, BlockDriverState *top,
                         BlockDriverState *bottom, Error **errp);

/*
 * QEMU's default id for a job on bs: the name of the drive whose top
 * node is bs, else fallback (may be NULL).
 */
const char *block_job_default_id(BlockDriverState *bs, const char *fallback);
/* JOB_* creation flags from a command's auto-finalize / auto-dismiss. */
int block_job_flags(bool has_auto_finalize, bool auto_finalize,
                    bool has_auto_dismiss, bool auto_dismiss);

#endif /* BLOCK_BLOCKJOB_H */

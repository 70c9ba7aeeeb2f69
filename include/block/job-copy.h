/*
 * The copy engine of block jobs (block/job-copy.c): a dispatcher
 * coroutine (the job's run()) hands ranges to copy coroutines, a few in
 * flight at once, and yields while the limit is reached; copies are
 * charged to the job's rate limit and split into chunks that fit the
 * speed. Fewer and smaller copies run while guests are busy on the
 * job's node, so their latency stays low.
 *
 * A job embeds one BlockJobCopier and keeps only what is its own in a
 * BlockJobCopyOps table: how one range is copied, how a finished copy
 * is accounted, when guests count as busy. Two ways to use it:
 *  - the walk (block_job_copier_co_walk: stream, intermediate commit):
 *    from offset 0 to len, ranges the job's co_needs_copy says to skip
 *    only advance the progress; failed copies go through the on-error
 *    policy (stop: retried after the resume, ignore: the job ends
 *    failed, report: it fails now);
 *  - the primitives (active commit, which picks dirty ranges itself):
 *    block_job_copier_co_wait, _start, _co_throttle, _chunk, _limit.
 * Everything runs on the main loop thread: the counters need no lock.
 */
#ifndef BLOCK_JOB_COPY_H
#define BLOCK_JOB_COPY_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "block/blockjob.h"

typedef struct BlockJobCopier BlockJobCopier;

typedef struct BlockJobCopyRange {
    int64_t offset;
    int64_t bytes;
} BlockJobCopyRange;

/* Per-job constants (performance tuning stays with each job). */
typedef struct BlockJobCopyLimits {
    int64_t chunk_max;          /* largest copy without a speed limit */
    int64_t chunk_min;          /* smallest throttled copy, its alignment */
    int64_t chunk_busy;         /* largest copy while guests are busy */
    int in_flight_idle;         /* copies at once while guests are idle */
    int in_flight_busy;         /* ... and while they are busy */
    int64_t status_max;         /* walk: bytes per co_needs_copy call */
} BlockJobCopyLimits;

typedef struct BlockJobCopyOps {
    /*
     * Copy r, in its own coroutine. 0 or -errno; *is_read (preset to
     * true) tells whether a failure was a read.
     */
    int coroutine_fn (*co_copy)(BlockJobCopier *c, const BlockJobCopyRange *r,
                                bool *is_read);
    /*
     * Account a finished copy (in_flight and bytes_in_flight already
     * dropped). NULL: the walk's accounting (progress, on-error policy).
     */
    void (*done)(BlockJobCopier *c, const BlockJobCopyRange *r, int ret,
                 bool is_read);
    /* Do guests have requests in flight on the job's node? NULL: never. */
    bool (*guest_busy)(BlockJobCopier *c);
    /*
     * Walk: does [offset, offset + *n) need a copy? 1 (copy the first *n
     * bytes), 0 (skip them) or -errno; *n <= 0 counts as -EIO.
     */
    int coroutine_fn (*co_needs_copy)(BlockJobCopier *c, int64_t offset,
                                      int64_t *n);
    /* Walk, optional: called after each copy is started (checkpoints). */
    void coroutine_fn (*co_dispatched)(BlockJobCopier *c);
} BlockJobCopyOps;

struct BlockJobCopier {
    BlockJob *job;
    const BlockJobCopyLimits *limits;
    const BlockJobCopyOps *ops;
    int64_t chunk_limit;        /* largest copy for the current speed */
    int in_flight;              /* copy coroutines running */
    int64_t bytes_in_flight;    /* bytes they copy */
    Coroutine *co;              /* the dispatcher, while it waits */
    bool waiting;               /* co is yielded until in_flight drops */

    /* The walk's state */
    int64_t len;                /* bytes to walk */
    int64_t cursor;             /* next offset to look at */
    GQueue retry;               /* BlockJobCopyRange *: stopped copies */
    int ret;                    /* first error reported or ignored */
    bool failed;                /* a copy failed with action report */

    /*
     * Remote source (block_job_copier_set_parallel): requests its server
     * takes at once, 0 for local storage. Each copy then waits a round
     * trip, so more run at once, and the walk remembers the last status
     * extent [status_from, status_end) instead of asking again per chunk.
     */
    int parallel;
    int64_t status_from;
    int64_t status_end;
    int status_ret;             /* what co_needs_copy said for it */
};

/*
 * Set c up for job (chunks follow job->speed) and make it job->copier.
 * limits and ops are static per job type. Call once, after
 * block_job_create.
 */
void block_job_copier_init(BlockJobCopier *c, BlockJob *job,
                           const BlockJobCopyLimits *limits,
                           const BlockJobCopyOps *ops);
/* BlockJobDriver.set_speed of a job with a copier: re-split the chunks. */
void block_job_copier_set_speed(BlockJob *job, int64_t speed);
/* JobDriver.pause of a job with a copier: park once no copy is in flight. */
void coroutine_fn block_job_copier_co_pause(Job *job);
/*
 * The source is remote and takes hint requests at once
 * (bdrv_chain_parallel_hint; 0 = local: the job's limits as they are).
 */
void block_job_copier_set_parallel(BlockJobCopier *c, uint32_t hint);
/* Free what the walk left queued (the job's clean). */
void block_job_copier_cleanup(BlockJobCopier *c);

/* Do guests count as busy now (ops->guest_busy)? */
bool block_job_copier_guest_busy(BlockJobCopier *c);
/* Copies allowed in flight now. */
int block_job_copier_limit(BlockJobCopier *c);
/* Size of the next copy: the speed's chunk, smaller for busy guests. */
int64_t block_job_copier_chunk(BlockJobCopier *c);

/* Start a copy coroutine on r (ops->co_copy); the caller goes on. */
void block_job_copier_start(BlockJobCopier *c, const BlockJobCopyRange *r);
/* The dispatcher waits until fewer than limit copies are in flight. */
void coroutine_fn block_job_copier_co_wait(BlockJobCopier *c, int limit);
/* Charge bytes to the job's rate limit and sleep as long as it says. */
void coroutine_fn block_job_copier_co_throttle(BlockJobCopier *c,
                                               int64_t bytes);

/*
 * The walk over [0, len): sets the progress total to len, copies every
 * range co_needs_copy asks for, until done, cancelled or failed, and
 * returns once no copy is in flight: 0, the first error reported or
 * ignored, or -ECANCELED for a (forced) cancel without error.
 */
int coroutine_fn block_job_copier_co_walk(BlockJobCopier *c, int64_t len);

#endif /* BLOCK_JOB_COPY_H */

/*
 * Long-running background jobs (QEMU 7.2's job model; implemented in
 * job.c, QMP commands in job-qmp.c).
 *
 * A job is a coroutine on the main loop running its driver's run()
 * callback, plus a state machine (JobStatus: created, running, paused,
 * ready, standby, waiting, pending, aborting, concluded, null) with the
 * transition table and per-state verb table of the reference (section 4).
 * Every state change emits JOB_STATUS_CHANGE. After run() returns the
 * framework finalizes: waiting -> pending (BLOCK_JOB_PENDING when
 * auto-finalize is off, then the job waits for job-finalize) ->
 * prepare() -> commit() or abort() -> clean() -> terminal event (set by
 * the block-job layer through JobDriver hooks) -> concluded -> (auto or
 * job-dismiss) null, freed.
 *
 * Drivers never touch Job fields directly except those marked "driver
 * reads"; they call the functions below. Main loop thread only.
 */
#ifndef QEMU_JOB_H
#define QEMU_JOB_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qapi/error.h"
#include "qapi/qapi-types.h"

typedef struct Job Job;
typedef struct JobDriver JobDriver;

/*
 * Hooks of a layer built on jobs (the block-job layer sets them on each of
 * its jobs in block_job_create), so that job drivers need not wire them:
 * all optional. A driver's own completed_event/free take precedence /
 * run first.
 */
typedef struct JobLayerHooks {
    void (*completed_event)(Job *job);  /* terminal event at finalization */
    void (*pending_event)(Job *job);    /* pending with auto-finalize off */
    void (*ready_event)(Job *job);      /* job_transition_to_ready */
    void (*user_resume)(Job *job);      /* a user resume (io-status reset) */
    void (*free)(Job *job);             /* the job is being freed */
} JobLayerHooks;

/* Job creation flags. */
enum {
    JOB_DEFAULT         = 0x00,
    JOB_INTERNAL        = 0x01,  /* no id, no events, not listed */
    JOB_MANUAL_FINALIZE = 0x02,  /* auto-finalize=false */
    JOB_MANUAL_DISMISS  = 0x04,  /* auto-dismiss=false */
};

struct JobDriver {
    /* Size of the driver's job struct (which embeds Job first). */
    size_t instance_size;
    JobType job_type;

    /*
     * The job's work, in coroutine context. Call job_pause_point() (or
     * job_sleep_ns/job_yield) between chunks so that pause and cancel
     * take effect; return early when job_is_cancelled(). Returns 0 or
     * -errno (with errp set for a specific message; otherwise the
     * strerror text is used).
     */
    int coroutine_fn (*run)(Job *job, Error **errp);

    /* Optional: the job parks / continues (pause points). */
    void coroutine_fn (*pause)(Job *job);
    void coroutine_fn (*resume)(Job *job);

    /*
     * Optional: the user asked to complete a ready job (job-complete):
     * the driver makes run() finish. Absent: "cannot be completed".
     */
    void (*complete)(Job *job, Error **errp);

    /*
     * Optional: a cancel was requested. Returns true if the job is to
     * end as cancelled; a driver may turn a non-forced cancel of a ready
     * job into a normal completion (soft cancel) by returning false.
     */
    bool (*cancel)(Job *job, bool force);

    /* Finalization, on the main loop, outside the job coroutine. */
    int (*prepare)(Job *job);   /* success path: graph changes; may fail */
    void (*commit)(Job *job);   /* after a successful prepare */
    void (*abort)(Job *job);    /* on failure or cancel */
    void (*clean)(Job *job);    /* always, after commit/abort */

    /* Optional: emit the type's terminal event (block jobs). */
    void (*completed_event)(Job *job);
    /* Optional: extra cleanup when the job is freed. */
    void (*free)(Job *job);
};

struct Job {
    char *id;                   /* NULL for internal jobs */
    const JobDriver *driver;
    JobStatus status;           /* driver reads */
    int refcnt;
    Coroutine *co;

    int pause_count;            /* user and internal pauses, nested */
    bool user_paused;
    bool paused;                /* parked at a pause point */
    bool busy;                  /* false while parked/sleeping */
    bool cancelled;             /* driver reads via job_is_cancelled */
    bool force_cancel;
    bool deferred_to_main_loop;
    bool auto_finalize;
    bool auto_dismiss;
    bool ready;                 /* reached ready at least once */
    /*
     * prepare/commit/abort are running. They may run a nested main loop
     * (a flush), in which a monitor command can arrive: cancel and
     * finalize then find the job already finalizing and leave it alone.
     */
    bool finalizing;

    int ret;                    /* run()'s result; then finalization's */
    Error *err;                 /* why it failed (for "error" fields) */

    uint64_t progress_current;  /* "offset" / "current-progress" */
    uint64_t progress_total;    /* "len" / "total-progress" */

    void *sleep_timer;          /* the framework's wake-up timer */

    const JobLayerHooks *hooks; /* the layer's hooks, or NULL */
    bool started;               /* job_start() ran (events are due) */
};

/*
 * Create a job in state "created" (id checked: letters first, then
 * letters, digits, '-', '.', '_': "Invalid job ID 'X'"; duplicates: "Job
 * ID 'X' already in use"). flags: JOB_*. The job is not started.
 */
void *job_create(const char *job_id, const JobDriver *driver, int flags,
                 Error **errp);
/*
 * Drop a job that was created but will never start (setup failed after
 * job_create): created -> null, no block-job event, freed.
 */
void job_early_fail(Job *job);
/* Start the coroutine: created -> running. */
void job_start(Job *job);
void job_ref(Job *job);
void job_unref(Job *job);

/* ---- For drivers, in the job coroutine */
bool job_is_cancelled(Job *job);
/* Park here while paused; returns at once otherwise. */
void coroutine_fn job_pause_point(Job *job);
/* Sleep ns (not busy), waking early for cancel/pause/resume/kick. */
void coroutine_fn job_sleep_ns(Job *job, int64_t ns);
/* Yield until job_enter(); not busy meanwhile. */
void coroutine_fn job_yield(Job *job);
/* Wake a sleeping/yielded job (no-op if busy). */
void job_enter(Job *job);

void job_progress_update(Job *job, uint64_t done);
void job_progress_set_remaining(Job *job, uint64_t remaining);
void job_progress_increase_remaining(Job *job, uint64_t delta);
/* running -> ready (BLOCK_JOB_READY from the block-job layer). */
void job_transition_to_ready(Job *job);

/* ---- Verbs (QMP job-* and block-job-*), with the verb table checks */
Job *job_get(const char *id);
/*
 * Is verb allowed in the job's status (the verb table)? If not, errp gets
 * "Job 'X' in state 'S' cannot accept command verb 'V'".
 */
bool job_apply_verb(Job *job, JobVerb verb, Error **errp);
/* Iterate jobs: job_next(NULL) is the first. */
Job *job_next(Job *job);
bool job_user_pause(Job *job, Error **errp);
bool job_user_resume(Job *job, Error **errp);
bool job_user_cancel(Job *job, bool force, Error **errp);
bool job_complete(Job *job, Error **errp);
bool job_finalize(Job *job, Error **errp);
bool job_dismiss(Job *job, Error **errp);
/* Internal pauses (drain, graph changes): nest with user pauses. */
void job_pause(Job *job);
void job_resume(Job *job);
/* Force-cancel every job and wait until all are gone (shutdown). */
void job_cancel_sync_all(void);
/*
 * The same from a coroutine (QMP quit): force-cancel every job and yield
 * until all are gone, so that their events precede the command's reply.
 * The main loop must keep running meanwhile (job_cancel_sync_all() at
 * shutdown finishes the jobs if it has stopped).
 */
void coroutine_fn job_co_cancel_all(void);
/* Message for a failed/cancelled job ("Operation canceled"), or NULL. */
const char *job_error_message(Job *job);

#endif /* QEMU_JOB_H */

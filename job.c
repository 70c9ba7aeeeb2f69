/*
 * The generic job framework (include/qemu/job.h): QEMU 7.2's job model.
 *
 * State: one list of jobs (creation order) and, per job, its status, pause
 * count, cancel flags and result. Two literal tables are the whole life
 * cycle: job_stt (which status may follow which) and job_verb_table
 * (which user verb each status accepts); every transition and verb goes
 * through them.
 *
 * Execution: a job's run() is a coroutine on the main loop. The
 * coroutine only ever parks in job_do_yield() (busy = false), and only
 * job_enter() wakes it from there, through aio_co_wake(), so a wake-up
 * never nests into a QMP handler's coroutine and never doubles. When
 * run() returns, the rest (waiting -> pending -> prepare/commit or abort
 * -> clean -> terminal event -> concluded -> null) is deferred to a
 * bottom half: finalization makes graph changes that must not run inside
 * the job's own coroutine.
 *
 * Lifetime: the job list holds one reference (dropped when the job is
 * dismissed into "null"); a started coroutine holds another until its
 * completion bottom half has run. Main loop thread only: no locks.
 */
#include "qemu/osdep.h"
#include "qemu/id.h"
#include "qemu/job.h"
#include "qemu/aio.h"
#include "qapi/qapi-events.h"
#include "trace.h"

/* Every job with or without id, in creation order. */
static GList *jobs;
/* Coroutines waiting in job_co_cancel_all() for the list to empty. */
static CoQueue jobs_gone_waiters = { G_QUEUE_INIT };

/* job_stt[from][to]: the allowed status transitions (reference 4.1). */
static const bool job_stt[JobStatus__MAX][JobStatus__MAX] = {
    /*                     U  C  R  P  Y  S  W  D  A  X  N */
    /* undefined */      { 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    /* created */        { 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1 },
    /* running */        { 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0 },
    /* paused */         { 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    /* ready */          { 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0 },
    /* standby */        { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0 },
    /* waiting */        { 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0 },
    /* pending */        { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0 },
    /* aborting */       { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0 },
    /* concluded */      { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
    /* null */           { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
};

/* job_verb_table[verb][status]: the verbs each status accepts (4.2). */
static const bool job_verb_table[JobVerb__MAX][JobStatus__MAX] = {
    /*                     U  C  R  P  Y  S  W  D  A  X  N */
    /* cancel */         { 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0 },
    /* pause */          { 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 },
    /* resume */         { 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 },
    /* set-speed */      { 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 },
    /* complete */       { 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0 },
    /* dismiss */        { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 },
    /* finalize */       { 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 },
};

static void job_sleep_timer_cb(void *opaque);

/* ---- Identity and lifetime */

Job *job_get(const char *id)
{
    for (GList *l = jobs; l; l = l->next) {
        Job *job = l->data;

        if (job->id && !strcmp(job->id, id)) {
            return job;
        }
    }
    return NULL;
}

Job *job_next(Job *job)
{
    GList *l;

    if (!job) {
        return jobs ? jobs->data : NULL;
    }
    l = g_list_find(jobs, job);
    return l && l->next ? l->next->data : NULL;
}

/* Apply a status change; it must be in job_stt. Announces it if named. */
static void job_state_transition(Job *job, JobStatus s1)
{
    JobStatus s0 = job->status;

    g_assert(s1 >= 0 && s1 < JobStatus__MAX);
    trace_job_state_transition(job, job->id ? job->id : "",
                               JobStatus_str(s0), JobStatus_str(s1));
    if (!job_stt[s0][s1]) {
        error_report("job '%s': illegal transition %s -> %s",
                     job->id ? job->id : "", JobStatus_str(s0),
                     JobStatus_str(s1));
        abort();
    }
    job->status = s1;
    if (job->id && s0 != s1) {
        qapi_event_send_job_status_change(job->id, s1);
    }
}

/* The verb table check; the refusal text is QEMU's. */
bool job_apply_verb(Job *job, JobVerb verb, Error **errp)
{
    if (job_verb_table[verb][job->status]) {
        trace_job_apply_verb(job, JobStatus_str(job->status),
                             JobVerb_str(verb), 1);
        return true;
    }
    trace_job_apply_verb(job, JobStatus_str(job->status), JobVerb_str(verb),
                         0);
    error_setg(errp, "Job '%s' in state '%s' cannot accept command verb '%s'",
               job->id ? job->id : "", JobStatus_str(job->status),
               JobVerb_str(verb));
    return false;
}

/*
 * QEMU's checks in its order (internal with id, malformed id, duplicate),
 * then a zeroed instance on the list, announced as created.
 */
void *job_create(const char *job_id, const JobDriver *driver, int flags,
                 Error **errp)
{
    Job *job;

    if (job_id) {
        if (flags & JOB_INTERNAL) {
            error_setg(errp, "Cannot specify job ID for internal job");
            return NULL;
        }
        if (!id_wellformed(job_id)) {
            error_setg(errp, "Invalid job ID '%s'", job_id);
            return NULL;
        }
        if (job_get(job_id)) {
            error_setg(errp, "Job ID '%s' already in use", job_id);
            return NULL;
        }
    } else if (!(flags & JOB_INTERNAL)) {
        error_setg(errp, "An explicit job ID is required");
        return NULL;
    }
    g_assert(driver->instance_size >= sizeof(Job));
    job = g_malloc0(driver->instance_size);
    job->id = g_strdup(job_id);
    job->driver = driver;
    job->refcnt = 1;
    job->auto_finalize = !(flags & JOB_MANUAL_FINALIZE);
    job->auto_dismiss = !(flags & JOB_MANUAL_DISMISS);
    job->sleep_timer = timer_new_ns(job_sleep_timer_cb, job);
    job->status = JOB_STATUS_UNDEFINED;
    jobs = g_list_append(jobs, job);
    trace_job_create(job, job_id ? job_id : "", JobType_str(driver->job_type));
    job_state_transition(job, JOB_STATUS_CREATED);
    return job;
}

void job_ref(Job *job)
{
    job->refcnt++;
}

/* The last reference frees: only a job already dismissed into null. */
void job_unref(Job *job)
{
    g_assert(job->refcnt > 0);
    if (--job->refcnt > 0) {
        return;
    }
    g_assert(job->status == JOB_STATUS_NULL);
    g_assert(!g_list_find(jobs, job));
    trace_job_free(job);
    if (job->driver->free) {
        job->driver->free(job);
    }
    if (job->hooks && job->hooks->free) {
        job->hooks->free(job);
    }
    timer_free(job->sleep_timer);
    error_free(job->err);
    g_free(job->id);
    g_free(job);
}

/* concluded (or never started) -> null: leave the list, drop its ref. */
static void job_do_dismiss(Job *job)
{
    job->busy = false;
    job->paused = false;
    job->deferred_to_main_loop = true;
    jobs = g_list_remove(jobs, job);
    job_state_transition(job, JOB_STATUS_NULL);
    job_unref(job);
    if (!jobs) {
        qemu_co_queue_restart_all(&jobs_gone_waiters);
    }
}

void job_early_fail(Job *job)
{
    g_assert(job->status == JOB_STATUS_CREATED && !job->started);
    job_do_dismiss(job);
}

/* ---- Entering and parking the coroutine */

static void job_sleep_timer_cb(void *opaque)
{
    job_enter(opaque);
}

/* Wake the parked coroutine if it is parked and cond (if given) agrees. */
static void job_enter_cond(Job *job, bool (*cond)(Job *job))
{
    if (!job->started || job->deferred_to_main_loop || job->busy) {
        return;
    }
    if (cond && !cond(job)) {
        return;
    }
    timer_del(job->sleep_timer);
    job->busy = true;
    trace_job_enter(job);
    aio_co_wake(job->co);
}

/* Unconditional wake: cuts a rate-limit sleep short (cancel, pause). */
void job_enter(Job *job)
{
    job_enter_cond(job, NULL);
}

/* Not sleeping on the timer (a resume must not cut a rate-limit sleep). */
static bool job_timer_not_pending(Job *job)
{
    return !timer_pending(job->sleep_timer);
}

/* Park (not busy) until job_enter(); deadline_ns >= 0 arms the timer. */
static void coroutine_fn job_do_yield(Job *job, int64_t deadline_ns)
{
    if (deadline_ns >= 0) {
        timer_mod_ns(job->sleep_timer, deadline_ns);
    }
    job->busy = false;
    qemu_coroutine_yield();
    g_assert(job->busy);
}

/* True for a forced cancel only: the job must stop copying. */
bool job_is_cancelled(Job *job)
{
    /* A soft cancel (driver's cancel hook said no) is not a cancel. */
    return job->cancelled && job->force_cancel;
}

static bool job_should_pause(Job *job)
{
    return job->pause_count > 0;
}

/*
 * Park while a pause is requested (paused, or standby for a ready job) and
 * return to the previous status afterwards. A forced cancel skips it.
 */
void coroutine_fn job_pause_point(Job *job)
{
    JobStatus status;

    if (!job_should_pause(job) || job_is_cancelled(job)) {
        return;
    }
    if (job->driver->pause) {
        job->driver->pause(job);
    }
    status = job->status;
    if (job_should_pause(job) && !job_is_cancelled(job)) {
        job_state_transition(job, status == JOB_STATUS_READY
                                  ? JOB_STATUS_STANDBY : JOB_STATUS_PAUSED);
        job->paused = true;
        /* Spurious kicks (e.g. set-speed) must not end the pause. */
        while (job_should_pause(job) && !job_is_cancelled(job)) {
            job_do_yield(job, -1);
        }
        job->paused = false;
        job_state_transition(job, status);
    }
    if (job->driver->resume) {
        job->driver->resume(job);
    }
}

/* Sleep (not busy) unless a pause is due; either way a pause point. */
void coroutine_fn job_sleep_ns(Job *job, int64_t ns)
{
    g_assert(job->busy);
    if (job_is_cancelled(job)) {
        return;
    }
    if (!job_should_pause(job)) {
        job_do_yield(job, qemu_clock_get_ns() + ns);
    }
    job_pause_point(job);
}

void coroutine_fn job_yield(Job *job)
{
    g_assert(job->busy);
    if (job_is_cancelled(job)) {
        return;
    }
    if (!job_should_pause(job)) {
        job_do_yield(job, -1);
    }
    job_pause_point(job);
}

/* ---- Progress */

void job_progress_update(Job *job, uint64_t done)
{
    job->progress_current += done;
}

void job_progress_set_remaining(Job *job, uint64_t remaining)
{
    job->progress_total = job->progress_current + remaining;
}

void job_progress_increase_remaining(Job *job, uint64_t delta)
{
    job->progress_total += delta;
}

/* running -> ready, then BLOCK_JOB_READY through the layer's hook. */
void job_transition_to_ready(Job *job)
{
    job_state_transition(job, JOB_STATUS_READY);
    job->ready = true;
    if (job->hooks && job->hooks->ready_event) {
        job->hooks->ready_event(job);
    }
}

/* The "error" member: present once the job has a failure result. */
const char *job_error_message(Job *job)
{
    if (!job->ret) {
        return NULL;
    }
    return job->err ? error_get_pretty(job->err) : g_strerror(-job->ret);
}

/* ---- Completion and finalization (main loop, outside the coroutine) */

/* A cancelled job's result is -ECANCELED; a failure goes to aborting. */
static void job_update_rc(Job *job)
{
    if (!job->ret && job_is_cancelled(job)) {
        job->ret = -ECANCELED;
    }
    if (job->ret) {
        if (!job->err) {
            if (job->ret == -ECANCELED) {
                error_setg(&job->err, "Operation canceled");
            } else {
                error_setg(&job->err, "%s", g_strerror(-job->ret));
            }
        }
        job_state_transition(job, JOB_STATUS_ABORTING);
    }
}

/* The type's terminal event: the driver's, else the layer's. */
static void job_event_completed(Job *job)
{
    if (job->driver->completed_event) {
        job->driver->completed_event(job);
    } else if (job->hooks && job->hooks->completed_event) {
        job->hooks->completed_event(job);
    }
}

/* commit() or abort(), clean(), the event, concluded (and maybe null). */
static void job_finalize_single(Job *job)
{
    bool was_finalizing = job->finalizing;

    job_update_rc(job);
    trace_job_finalize_single(job, job->ret);
    job->finalizing = true;
    if (!job->ret) {
        if (job->driver->commit) {
            job->driver->commit(job);
        }
    } else if (job->driver->abort) {
        job->driver->abort(job);
    }
    if (job->driver->clean) {
        job->driver->clean(job);
    }
    job->finalizing = was_finalizing;
    if (job->started) {
        job_event_completed(job);
    }
    job_state_transition(job, JOB_STATUS_CONCLUDED);
    if (job->auto_dismiss || !job->started) {
        job_do_dismiss(job);
    }
}

/* pending -> prepare() -> commit path, or abort path if prepare fails. */
static void job_do_finalize(Job *job)
{
    job_ref(job);
    job->finalizing = true;
    if (job->driver->prepare && !job->ret) {
        job->ret = job->driver->prepare(job);
    }
    job_finalize_single(job);
    job->finalizing = false;
    job_unref(job);
}

/* run() returned (or the job never started): go down one of the paths. */
static void job_completed(Job *job)
{
    trace_job_completed(job, job->ret, job->cancelled);
    job_update_rc(job);
    if (job->ret) {
        job_finalize_single(job);
        return;
    }
    job_state_transition(job, JOB_STATUS_WAITING);
    job_state_transition(job, JOB_STATUS_PENDING);
    if (!job->auto_finalize) {
        if (job->hooks && job->hooks->pending_event) {
            job->hooks->pending_event(job);
        }
        return;
    }
    job_do_finalize(job);
}

/* Bottom half after run(): finalize unless a cancel already did. */
static void job_exit(void *opaque)
{
    Job *job = opaque;

    job->co = NULL;
    if (job->status != JOB_STATUS_ABORTING &&
        job->status != JOB_STATUS_CONCLUDED &&
        job->status != JOB_STATUS_NULL &&
        job->status != JOB_STATUS_PENDING) {
        job_completed(job);
    }
    job_unref(job);
}

/* The job coroutine: a pause point (pauses requested early), run(). */
static void coroutine_fn job_co_entry(void *opaque)
{
    Job *job = opaque;
    int ret;

    job_pause_point(job);
    ret = job->driver->run(job, &job->err);
    trace_job_run_done(job, ret);
    job->ret = ret;
    if (ret < 0 && !job->err) {
        error_setg(&job->err, "%s", g_strerror(-ret));
    }
    job->deferred_to_main_loop = true;
    job->busy = true;
    aio_bh_schedule_oneshot(job_exit, job);
}

/*
 * created -> running now (before the command's reply); the coroutine is
 * entered from the loop, never nested in the caller's coroutine.
 */
void job_start(Job *job)
{
    g_assert(job->status == JOB_STATUS_CREATED && !job->started);
    job_ref(job);       /* the coroutine's, dropped by job_exit() */
    job->co = qemu_coroutine_create(job_co_entry, job);
    job->started = true;
    job->busy = true;
    job->paused = false;
    job_state_transition(job, JOB_STATUS_RUNNING);
    aio_co_wake(job->co);
}

/* ---- Pause, resume, cancel */

void job_pause(Job *job)
{
    job->pause_count++;
    if (!job->paused) {
        job_enter(job);
    }
}

/* The last pause gone: wake a parked job (not one sleeping on a timer). */
void job_resume(Job *job)
{
    g_assert(job->pause_count > 0);
    job->pause_count--;
    if (job->pause_count) {
        return;
    }
    job_enter_cond(job, job_timer_not_pending);
}

/* A user pause nests with internal ones but is not repeatable. */
bool job_user_pause(Job *job, Error **errp)
{
    if (!job_apply_verb(job, JOB_VERB_PAUSE, errp)) {
        return false;
    }
    if (job->user_paused) {
        error_setg(errp, "Job is already paused");
        return false;
    }
    job->user_paused = true;
    job_pause(job);
    return true;
}

/* Only a user pause can be resumed; io-status goes back to ok. */
bool job_user_resume(Job *job, Error **errp)
{
    if (!job->user_paused || job->pause_count <= 0) {
        error_setg(errp, "Can't resume a job that was not paused");
        return false;
    }
    if (!job_apply_verb(job, JOB_VERB_RESUME, errp)) {
        return false;
    }
    if (job->hooks && job->hooks->user_resume) {
        job->hooks->user_resume(job);
    }
    job->user_paused = false;
    job_resume(job);
    return true;
}

/* Mark the cancel (the driver decides force/soft); lift a user pause. */
static void job_cancel_async(Job *job, bool force)
{
    if (job->driver->cancel) {
        force = job->driver->cancel(job, force);
    } else {
        force = true;
    }
    if (job->user_paused) {
        if (job->hooks && job->hooks->user_resume) {
            job->hooks->user_resume(job);
        }
        job->user_paused = false;
        g_assert(job->pause_count > 0);
        job->pause_count--;
    }
    /* A finished job ignores soft cancels. */
    if (!force && job->deferred_to_main_loop) {
        return;
    }
    job->cancelled = true;
    job->force_cancel |= force;
}

/* Cancel in any state: concluded is dismissed, the rest is aborted. */
static void job_cancel(Job *job, bool force)
{
    trace_job_cancel(job, force, JobStatus_str(job->status));
    if (job->finalizing) {
        return;     /* too late: the job is being finalized right now */
    }
    if (job->status == JOB_STATUS_CONCLUDED) {
        job_do_dismiss(job);
        return;
    }
    job_cancel_async(job, force);
    if (!job->started) {
        job_completed(job);
    } else if (job->deferred_to_main_loop) {
        /* Waiting or pending: abort now. Before job_exit: it will. */
        if (job_is_cancelled(job) &&
            (job->status == JOB_STATUS_PENDING ||
             job->status == JOB_STATUS_WAITING)) {
            job_finalize_single(job);
        }
    } else {
        job_enter(job);
    }
}

bool job_user_cancel(Job *job, bool force, Error **errp)
{
    if (!job_apply_verb(job, JOB_VERB_CANCEL, errp)) {
        return false;
    }
    job_cancel(job, force);
    return true;
}

/*
 * Ready/standby only; the driver's hook makes run() finish (on resume for
 * a standby job). No hook, or a cancel pending: QEMU's refusal.
 */
bool job_complete(Job *job, Error **errp)
{
    Error *local_err = NULL;

    if (!job_apply_verb(job, JOB_VERB_COMPLETE, errp)) {
        return false;
    }
    if (job->cancelled || !job->driver->complete) {
        error_setg(errp, "The active block job '%s' cannot be completed",
                   job->id ? job->id : "");
        return false;
    }
    job->driver->complete(job, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return false;
    }
    return true;
}

/* A pending job (auto-finalize off) runs prepare/commit and concludes. */
bool job_finalize(Job *job, Error **errp)
{
    if (!job_apply_verb(job, JOB_VERB_FINALIZE, errp)) {
        return false;
    }
    if (!job->finalizing) {
        job_do_finalize(job);
    }
    return true;
}

/* A concluded job (auto-dismiss off) goes to null and is freed. */
bool job_dismiss(Job *job, Error **errp)
{
    if (!job_apply_verb(job, JOB_VERB_DISMISS, errp)) {
        return false;
    }
    job_do_dismiss(job);
    return true;
}

/* The job is gone (null) or concluded waiting for a dismiss. */
static bool job_is_done(Job *job)
{
    return job->status == JOB_STATUS_NULL ||
           job->status == JOB_STATUS_CONCLUDED;
}

/* Cancel concluded/live jobs, then wait on jobs_gone_waiters. */
void coroutine_fn job_co_cancel_all(void)
{
    /* Cancel everything first: the events come out before we return. */
    for (Job *job = job_next(NULL); job; ) {
        Job *next = job_next(job);

        if (job->status == JOB_STATUS_CONCLUDED) {
            job_do_dismiss(job);
        } else if (job->status != JOB_STATUS_ABORTING) {
            job_cancel(job, true);
        }
        job = next;
    }
    while (jobs) {
        qemu_co_queue_wait(&jobs_gone_waiters, NULL);
    }
}

/*
 * Outside coroutines (shutdown): one job at a time, force-cancelled and
 * driven by the loop until it is gone or concluded (then dismissed).
 */
void job_cancel_sync_all(void)
{
    Job *job;

    while ((job = job_next(NULL))) {
        job_ref(job);
        job_cancel(job, true);
        AIO_WAIT_WHILE(!job_is_done(job));
        if (job->status == JOB_STATUS_CONCLUDED) {
            job_do_dismiss(job);
        }
        job_unref(job);
    }
}

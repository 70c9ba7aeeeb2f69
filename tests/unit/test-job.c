/*
 * Unit tests of the job framework (job.c, job-qmp.c, blockjob.c).
 *
 * A mock block-job driver (TestJob) runs N steps of "chunk" bytes with a
 * pause point (job_sleep_ns with the rate-limit delay) before each; it
 * can be told to fail at a step (through block_job_error_action, so the
 * on-error policies apply), to become ready and wait for a complete, and
 * it counts its finalization callbacks. Every event is recorded by a test
 * emitter as "status" for JOB_STATUS_CHANGE and the event name otherwise,
 * so whole sequences compare as one string. The jobs work on a raw node
 * over a small temporary file.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/job.h"
#include "block/blockjob.h"
#include "block/block_int.h"
#include "qapi/qmp-event.h"
#include "qapi/qapi-commands.h"

#define MIB (1024 * 1024)

typedef struct TestJob {
    BlockJob common;
    int steps;              /* chunks to do */
    int step;               /* chunks done */
    int64_t chunk;          /* bytes per chunk */
    int fail_step;          /* chunk that fails (-1: none) ... */
    int fail_count;         /* ... this many times */
    int fail_errno;
    bool become_ready;      /* after the steps: ready, wait for complete */
    bool should_complete;
    bool ignored_error;     /* an error was ignored: end failed */
    int prepare_ret;
    bool prepare_reenters;  /* prepare runs cancel/finalize on the job */
} TestJob;

/* Finalization callbacks of the latest job (it may be freed already). */
static struct {
    int n_prepare, n_commit, n_abort, n_clean;
} calls;

static GString *events;
static BlockDriverState *test_bs;
static char *test_file;

/* ---- Event recording */

static void record_event(const char *name, JsonObject *data)
{
    if (events->len) {
        g_string_append_c(events, ',');
    }
    if (!strcmp(name, "JOB_STATUS_CHANGE")) {
        g_string_append(events, json_object_get_string_member(data,
                                                              "status"));
    } else if (!strcmp(name, "BLOCK_JOB_ERROR")) {
        g_string_append_printf(events, "ERROR:%s",
                               json_object_get_string_member(data, "action"));
    } else if (!strcmp(name, "BLOCK_JOB_COMPLETED") &&
               json_object_has_member(data, "error")) {
        g_string_append_printf(events, "COMPLETED{%s}",
                               json_object_get_string_member(data, "error"));
    } else {
        /* BLOCK_JOB_X -> X */
        g_string_append(events, g_str_has_prefix(name, "BLOCK_JOB_")
                                ? name + 10 : name);
    }
}

static void events_reset(void)
{
    g_string_truncate(events, 0);
}

#define assert_events(expected) \
    do { \
        g_assert_cmpstr(events->str, ==, (expected)); \
        events_reset(); \
    } while (0)

/* Run the loop until the job called id is gone (or a bound passes). */
static void run_until_gone(const char *id)
{
    int64_t deadline = qemu_clock_get_ns() + 10LL * 1000 * 1000 * 1000;

    while (job_get(id) && qemu_clock_get_ns() < deadline) {
        aio_poll(true);
    }
    g_assert_null(job_get(id));
}

/* Run the loop until the job reaches status. */
static void run_until_status(Job *job, JobStatus status)
{
    int64_t deadline = qemu_clock_get_ns() + 10LL * 1000 * 1000 * 1000;

    while (job->status != status && qemu_clock_get_ns() < deadline) {
        aio_poll(true);
    }
    g_assert_cmpstr(JobStatus_str(job->status), ==, JobStatus_str(status));
}

/* Run the loop for about ms milliseconds. */
static void run_for_ms(int ms)
{
    int64_t end = qemu_clock_get_ns() + ms * 1000000LL;
    QEMUTimer *t = timer_new_ns((QEMUTimerCB *)aio_notify, NULL);

    timer_mod_ns(t, end);
    while (qemu_clock_get_ns() < end) {
        aio_poll(true);
    }
    timer_free(t);
}

/* ---- The mock driver */

/* One chunk; returns <0 to end the job, 1 to retry, 0 when done. */
static int coroutine_fn test_job_step(TestJob *s)
{
    BlockErrorAction action;

    if (s->fail_count > 0 && s->step == s->fail_step) {
        s->fail_count--;
        action = block_job_error_action(&s->common, -s->fail_errno, true);
        if (action == BLOCK_ERROR_ACTION_REPORT) {
            return -s->fail_errno;
        }
        if (action == BLOCK_ERROR_ACTION_STOP) {
            return 1;
        }
        s->ignored_error = true;
    }
    s->step++;
    job_progress_update(&s->common.job, s->chunk);
    return 0;
}

static int coroutine_fn test_job_run(Job *job, Error **errp)
{
    TestJob *s = (TestJob *)job;
    int64_t delay_ns = 0;

    job_progress_set_remaining(job, s->steps * s->chunk);
    while (s->step < s->steps) {
        int ret;

        job_sleep_ns(job, delay_ns);
        if (job_is_cancelled(job)) {
            return 0;
        }
        ret = test_job_step(s);
        if (ret < 0) {
            return ret;
        }
        delay_ns = ret ? 0 : block_job_ratelimit_get_delay(&s->common,
                                                           s->chunk);
    }
    if (s->become_ready) {
        job_transition_to_ready(job);
        while (!s->should_complete && !job->cancelled) {
            job_yield(job);
        }
    }
    return s->ignored_error ? -EIO : 0;
}

static void test_job_complete(Job *job, Error **errp)
{
    TestJob *s = (TestJob *)job;

    s->should_complete = true;
    job_enter(job);
}

/* A ready job cancelled without force completes (soft cancel). */
static bool test_job_cancel(Job *job, bool force)
{
    return force || !(job->status == JOB_STATUS_READY ||
                      job->status == JOB_STATUS_STANDBY);
}

static int test_job_prepare(Job *job)
{
    TestJob *s = (TestJob *)job;

    calls.n_prepare++;
    if (s->prepare_reenters) {
        /*
         * As a monitor command arriving in a nested main loop (a flush
         * in prepare) would: both verbs are allowed in pending and must
         * leave the finalization in progress alone.
         */
        g_assert_true(job_user_cancel(job, true, &error_abort));
        g_assert_true(job_finalize(job, &error_abort));
    }
    return s->prepare_ret;
}

static void test_job_commit(Job *job)
{
    calls.n_commit++;
}

static void test_job_abort(Job *job)
{
    calls.n_abort++;
}

static void test_job_clean(Job *job)
{
    calls.n_clean++;
}

static int test_freed;

static void test_job_free(Job *job)
{
    test_freed++;
}

static const BlockJobDriver test_job_driver = {
    .job_driver = {
        .instance_size = sizeof(TestJob),
        .job_type = JOB_TYPE_STREAM,
        .run = test_job_run,
        .complete = test_job_complete,
        .cancel = test_job_cancel,
        .prepare = test_job_prepare,
        .commit = test_job_commit,
        .abort = test_job_abort,
        .clean = test_job_clean,
        .free = test_job_free,
    },
};

/* The same without a complete hook (like stream). */
static const BlockJobDriver test_job_driver_nocomplete = {
    .job_driver = {
        .instance_size = sizeof(TestJob),
        .job_type = JOB_TYPE_STREAM,
        .run = test_job_run,
        .prepare = test_job_prepare,
        .commit = test_job_commit,
        .abort = test_job_abort,
        .clean = test_job_clean,
        .free = test_job_free,
    },
};

/* A job "job0" of steps chunks on the test node, not started. */
static TestJob *test_job_new(int steps, int flags, BlockdevOnError on_error)
{
    TestJob *s = block_job_create("job0", &test_job_driver, test_bs, 0,
                                  on_error, flags, &error_abort);

    memset(&calls, 0, sizeof(calls));
    s->steps = steps;
    s->chunk = 64 * 1024;
    s->fail_step = -1;
    s->fail_errno = EIO;
    return s;
}

/* ---- Tests: the success path and finalization */

static void test_run_to_completion(void)
{
    TestJob *s = test_job_new(5, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);

    assert_events("created");
    job_start(&s->common.job);
    assert_events("running");
    test_freed = 0;
    run_until_gone("job0");
    assert_events("waiting,pending,COMPLETED,concluded,null");
    g_assert_cmpint(test_freed, ==, 1);
}

static void test_manual_finalize_dismiss(void)
{
    TestJob *s = test_job_new(3, JOB_MANUAL_FINALIZE | JOB_MANUAL_DISMISS,
                              BLOCKDEV_ON_ERROR_REPORT);
    Job *job = &s->common.job;
    Error *err = NULL;

    job_start(job);
    run_until_status(job, JOB_STATUS_PENDING);
    assert_events("created,running,waiting,pending,PENDING");
    g_assert_cmpint(calls.n_prepare, ==, 0);
    /* Dismiss is refused in pending. */
    qmp_job_dismiss("job0", &err);
    g_assert_cmpstr(error_get_pretty(err), ==, "Job 'job0' in state "
                    "'pending' cannot accept command verb 'dismiss'");
    error_free(err);
    err = NULL;
    qmp_block_job_finalize("job0", &error_abort);
    assert_events("COMPLETED,concluded");
    g_assert_cmpint(calls.n_prepare, ==, 1);
    g_assert_cmpint(calls.n_commit, ==, 1);
    g_assert_cmpint(calls.n_abort, ==, 0);
    g_assert_cmpint(calls.n_clean, ==, 1);
    g_assert_cmpint(job->status, ==, JOB_STATUS_CONCLUDED);
    /* Finalize is refused in concluded. */
    qmp_job_finalize("job0", &err);
    g_assert_cmpstr(error_get_pretty(err), ==, "Job 'job0' in state "
                    "'concluded' cannot accept command verb 'finalize'");
    error_free(err);
    qmp_block_job_dismiss("job0", &error_abort);
    assert_events("null");
    g_assert_null(job_get("job0"));
}

static void test_prepare_fails(void)
{
    TestJob *s = test_job_new(2, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);

    s->prepare_ret = -ENOSPC;
    job_start(&s->common.job);
    run_until_gone("job0");
    assert_events("created,running,waiting,pending,aborting,"
                  "COMPLETED{No space left on device},concluded,null");
}

/* A cancel/finalize arriving while prepare runs changes nothing. */
static void test_reentry_during_prepare(void)
{
    TestJob *s = test_job_new(2, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);

    s->prepare_reenters = true;
    job_start(&s->common.job);
    test_freed = 0;
    run_until_gone("job0");
    assert_events("created,running,waiting,pending,COMPLETED,concluded,"
                  "null");
    g_assert_cmpint(calls.n_prepare, ==, 1);
    g_assert_cmpint(calls.n_commit, ==, 1);
    g_assert_cmpint(calls.n_abort, ==, 0);
    g_assert_cmpint(calls.n_clean, ==, 1);
    g_assert_cmpint(test_freed, ==, 1);
}

/* ---- Tests: cancel */

static void test_cancel_running(void)
{
    TestJob *s = test_job_new(1000, JOB_MANUAL_DISMISS,
                              BLOCKDEV_ON_ERROR_REPORT);
    Job *job = &s->common.job;
    g_autoptr(JobInfoList) list = NULL;

    block_job_set_speed(&s->common, 1 * MIB, &error_abort);
    job_start(job);
    run_for_ms(20);
    qmp_block_job_cancel("job0", false, false, &error_abort);
    run_until_status(job, JOB_STATUS_CONCLUDED);
    assert_events("created,running,aborting,CANCELLED,concluded");
    g_assert_cmpint(calls.n_abort, ==, 1);
    g_assert_cmpint(calls.n_prepare, ==, 0);
    g_assert_cmpint(calls.n_clean, ==, 1);
    list = qmp_query_jobs(&error_abort);
    g_assert_cmpstr(list->value->error, ==, "Operation canceled");
    g_assert_cmpint(list->value->status, ==, JOB_STATUS_CONCLUDED);
    qmp_job_dismiss("job0", &error_abort);
    assert_events("null");
}

static void test_cancel_created(void)
{
    TestJob *s = test_job_new(3, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);

    qmp_job_cancel("job0", &error_abort);
    /* Never started: no block-job event. */
    assert_events("created,aborting,concluded,null");
    (void)s;
}

static void test_cancel_paused(void)
{
    TestJob *s = test_job_new(1000, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);
    Job *job = &s->common.job;
    Error *err = NULL;

    job_start(job);
    qmp_block_job_pause("job0", &error_abort);
    run_until_status(job, JOB_STATUS_PAUSED);
    assert_events("created,running,paused");
    qmp_block_job_cancel("job0", false, false, &err);
    g_assert_cmpint(error_get_class(err), ==, ERROR_CLASS_GENERIC_ERROR);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "The block job for device 'job0' is currently paused");
    error_free(err);
    qmp_block_job_cancel("job0", true, true, &error_abort);
    run_until_gone("job0");
    assert_events("running,aborting,CANCELLED,concluded,null");
}

static void test_cancel_pending(void)
{
    TestJob *s = test_job_new(1, JOB_MANUAL_FINALIZE,
                              BLOCKDEV_ON_ERROR_REPORT);
    Job *job = &s->common.job;

    job_start(job);
    run_until_status(job, JOB_STATUS_PENDING);
    events_reset();
    qmp_job_cancel("job0", &error_abort);
    assert_events("aborting,CANCELLED,concluded,null");
    g_assert_cmpint(calls.n_prepare, ==, 0);
}

static void test_cancel_concluded_refused(void)
{
    TestJob *s = test_job_new(1, JOB_MANUAL_DISMISS,
                              BLOCKDEV_ON_ERROR_REPORT);
    Job *job = &s->common.job;
    g_autoptr(JobInfoList) list = NULL;
    Error *err = NULL;

    job_start(job);
    run_until_status(job, JOB_STATUS_CONCLUDED);
    events_reset();
    qmp_job_cancel("job0", &err);
    g_assert_cmpstr(error_get_pretty(err), ==, "Job 'job0' in state "
                    "'concluded' cannot accept command verb 'cancel'");
    error_free(err);
    list = qmp_query_jobs(&error_abort);
    g_assert_null(list->value->error);
    qmp_job_dismiss("job0", &error_abort);
    assert_events("null");
}

/* ---- Tests: pause and resume */

static void test_pause_resume_nesting(void)
{
    TestJob *s = test_job_new(40, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);
    Job *job = &s->common.job;
    Error *err = NULL;
    g_autoptr(BlockJobInfoList) info = NULL;
    int step;

    block_job_set_speed(&s->common, 4 * MIB, &error_abort);
    job_start(job);
    run_for_ms(10);
    job_pause(job);                        /* internal */
    qmp_block_job_pause("job0", &error_abort);
    qmp_job_pause("job0", &err);           /* second user pause */
    g_assert_cmpstr(error_get_pretty(err), ==, "Job is already paused");
    error_free(err);
    err = NULL;
    info = qmp_query_block_jobs(&error_abort);
    g_assert_true(info->value->paused);    /* requested counts */
    run_until_status(job, JOB_STATUS_PAUSED);
    step = s->step;
    qmp_block_job_resume("job0", &error_abort);
    run_for_ms(100);
    /* Still held by the internal pause. */
    g_assert_cmpint(job->status, ==, JOB_STATUS_PAUSED);
    g_assert_cmpint(s->step, ==, step);
    qmp_block_job_resume("job0", &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Can't resume a job that was not paused");
    error_free(err);
    job_resume(job);
    run_until_gone("job0");
    assert_events("created,running,paused,running,waiting,pending,COMPLETED,"
                  "concluded,null");
}

static void test_ready_standby_complete(void)
{
    TestJob *s = test_job_new(2, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);
    Job *job = &s->common.job;
    Error *err = NULL;

    s->become_ready = true;
    qmp_job_complete("job0", &err);
    g_assert_cmpstr(error_get_pretty(err), ==, "Job 'job0' in state "
                    "'created' cannot accept command verb 'complete'");
    error_free(err);
    job_start(job);
    run_until_status(job, JOB_STATUS_READY);
    assert_events("created,running,ready,READY");
    qmp_block_job_pause("job0", &error_abort);
    run_until_status(job, JOB_STATUS_STANDBY);
    /* Complete in standby is accepted and applied on resume. */
    qmp_block_job_complete("job0", &error_abort);
    run_for_ms(20);
    g_assert_cmpint(job->status, ==, JOB_STATUS_STANDBY);
    qmp_block_job_resume("job0", &error_abort);
    run_until_gone("job0");
    assert_events("standby,ready,waiting,pending,COMPLETED,concluded,null");
}

/* The READY event is a status change away from ready. */
static void test_soft_cancel_ready(void)
{
    TestJob *s = test_job_new(2, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);

    s->become_ready = true;
    job_start(&s->common.job);
    run_until_status(&s->common.job, JOB_STATUS_READY);
    events_reset();
    qmp_block_job_cancel("job0", false, false, &error_abort);
    run_until_gone("job0");
    assert_events("waiting,pending,COMPLETED,concluded,null");
    g_assert_cmpint(calls.n_commit, ==, 1);
}

static void test_force_cancel_ready(void)
{
    TestJob *s = test_job_new(2, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);

    s->become_ready = true;
    job_start(&s->common.job);
    run_until_status(&s->common.job, JOB_STATUS_READY);
    events_reset();
    qmp_block_job_cancel("job0", true, true, &error_abort);
    run_until_gone("job0");
    assert_events("aborting,CANCELLED,concluded,null");
}

static void test_complete_without_hook(void)
{
    TestJob *s = block_job_create("job0", &test_job_driver_nocomplete,
                                  test_bs, 0, BLOCKDEV_ON_ERROR_REPORT,
                                  JOB_DEFAULT, &error_abort);
    Error *err = NULL;

    s->steps = 1;
    s->chunk = 1;
    s->fail_step = -1;
    s->become_ready = true;
    job_start(&s->common.job);
    run_until_status(&s->common.job, JOB_STATUS_READY);
    qmp_block_job_complete("job0", &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "The active block job 'job0' cannot be completed");
    error_free(err);
    qmp_job_cancel("job0", &error_abort);
    run_until_gone("job0");
    events_reset();
}

/* ---- Tests: verbs, ids, lookups */

static void test_verb_table(void)
{
    /* (status, verb, allowed) rows of the reference's table. */
    static const struct { JobStatus s; JobVerb v; bool ok; } rows[] = {
        { JOB_STATUS_CREATED, JOB_VERB_CANCEL, true },
        { JOB_STATUS_CREATED, JOB_VERB_SET_SPEED, true },
        { JOB_STATUS_CREATED, JOB_VERB_COMPLETE, false },
        { JOB_STATUS_RUNNING, JOB_VERB_PAUSE, true },
        { JOB_STATUS_RUNNING, JOB_VERB_FINALIZE, false },
        { JOB_STATUS_PAUSED, JOB_VERB_RESUME, true },
        { JOB_STATUS_READY, JOB_VERB_COMPLETE, true },
        { JOB_STATUS_STANDBY, JOB_VERB_COMPLETE, true },
        { JOB_STATUS_WAITING, JOB_VERB_CANCEL, true },
        { JOB_STATUS_WAITING, JOB_VERB_PAUSE, false },
        { JOB_STATUS_PENDING, JOB_VERB_FINALIZE, true },
        { JOB_STATUS_PENDING, JOB_VERB_SET_SPEED, false },
        { JOB_STATUS_ABORTING, JOB_VERB_CANCEL, false },
        { JOB_STATUS_CONCLUDED, JOB_VERB_DISMISS, true },
        { JOB_STATUS_CONCLUDED, JOB_VERB_PAUSE, false },
        { JOB_STATUS_NULL, JOB_VERB_DISMISS, false },
    };
    Job fake = { .id = (char *)"j" };

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        Error *err = NULL;

        fake.status = rows[i].s;
        g_assert_cmpint(job_apply_verb(&fake, rows[i].v, &err), ==,
                        rows[i].ok);
        if (!rows[i].ok) {
            g_autofree char *want = g_strdup_printf(
                "Job 'j' in state '%s' cannot accept command verb '%s'",
                JobStatus_str(rows[i].s), JobVerb_str(rows[i].v));
            g_assert_cmpstr(error_get_pretty(err), ==, want);
            error_free(err);
        }
    }
}

static void test_ids_and_lookup(void)
{
    Error *err = NULL;
    TestJob *s;

    g_assert_null(block_job_create("9bad", &test_job_driver, test_bs, 0,
                                   BLOCKDEV_ON_ERROR_REPORT, 0, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Invalid job ID '9bad'");
    error_free(err);
    err = NULL;
    s = test_job_new(1, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);
    g_assert_null(block_job_create("job0", &test_job_driver, test_bs, 0,
                                   BLOCKDEV_ON_ERROR_REPORT, 0, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Job ID 'job0' already in use");
    error_free(err);
    err = NULL;
    /* The node is held: a second job on it is refused. */
    g_assert_null(block_job_create("job1", &test_job_driver, test_bs, 0,
                                   BLOCKDEV_ON_ERROR_REPORT, 0, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Node 'jobnode' is busy: "
                    "block device is in use by block job: stream");
    error_free(err);
    err = NULL;
    g_assert_true(block_job_node_is_busy(test_bs, NULL));
    /* Unknown ids: DeviceNotActive for block-job-*, generic for job-*. */
    qmp_block_job_pause("nope", &err);
    g_assert_cmpint(error_get_class(err), ==, ERROR_CLASS_DEVICE_NOT_ACTIVE);
    g_assert_cmpstr(error_get_pretty(err), ==, "Block job 'nope' not found");
    error_free(err);
    err = NULL;
    qmp_job_pause("nope", &err);
    g_assert_cmpint(error_get_class(err), ==, ERROR_CLASS_GENERIC_ERROR);
    g_assert_cmpstr(error_get_pretty(err), ==, "Job not found");
    error_free(err);
    err = NULL;
    /* Negative speed, at creation and later. */
    qmp_block_job_set_speed("job0", -1, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'speed' expects a non-negative value");
    error_free(err);
    err = NULL;
    job_early_fail(&s->common.job);
    g_assert_false(block_job_node_is_busy(test_bs, NULL));
    events_reset();
    g_assert_null(block_job_create("job2", &test_job_driver, test_bs, -5,
                                   BLOCKDEV_ON_ERROR_REPORT, 0, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'speed' expects a non-negative value");
    error_free(err);
    assert_events("created,null");
    g_assert_false(block_job_node_is_busy(test_bs, NULL));
    /* No id: named after the node. */
    s = block_job_create(NULL, &test_job_driver, test_bs, 0,
                         BLOCKDEV_ON_ERROR_REPORT, 0, &error_abort);
    g_assert_cmpstr(s->common.job.id, ==, "jobnode");
    job_early_fail(&s->common.job);
    events_reset();
}

static void test_query_shape(void)
{
    TestJob *s = test_job_new(100, JOB_MANUAL_DISMISS,
                              BLOCKDEV_ON_ERROR_REPORT);
    g_autoptr(BlockJobInfoList) b = NULL;
    g_autoptr(JobInfoList) j = NULL;

    block_job_set_speed(&s->common, 2 * MIB, &error_abort);
    job_start(&s->common.job);
    run_for_ms(30);
    b = qmp_query_block_jobs(&error_abort);
    g_assert_nonnull(b);
    g_assert_null(b->next);
    g_assert_cmpstr(b->value->type, ==, "stream");
    g_assert_cmpstr(b->value->device, ==, "job0");
    g_assert_cmpint(b->value->len, ==, 100 * 64 * 1024);
    g_assert_cmpint(b->value->offset, >, 0);
    g_assert_cmpint(b->value->offset, <, b->value->len);
    g_assert_cmpint(b->value->speed, ==, 2 * MIB);
    g_assert_false(b->value->paused);
    g_assert_false(b->value->ready);
    g_assert_cmpint(b->value->status, ==, JOB_STATUS_RUNNING);
    g_assert_cmpint(b->value->io_status, ==, BLOCK_DEVICE_IO_STATUS_OK);
    g_assert_true(b->value->auto_finalize);
    g_assert_false(b->value->auto_dismiss);
    g_assert_null(b->value->error);
    j = qmp_query_jobs(&error_abort);
    g_assert_cmpstr(j->value->id, ==, "job0");
    g_assert_cmpint(j->value->type, ==, JOB_TYPE_STREAM);
    g_assert_cmpint(j->value->total_progress, ==, 100 * 64 * 1024);
    qmp_job_cancel("job0", &error_abort);
    run_until_status(&s->common.job, JOB_STATUS_CONCLUDED);
    qmp_job_dismiss("job0", &error_abort);
    events_reset();
}

/* ---- Tests: on-error policies */

static void test_on_error_report(void)
{
    TestJob *s = test_job_new(5, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);

    s->fail_step = 2;
    s->fail_count = 1;
    job_start(&s->common.job);
    run_until_gone("job0");
    assert_events("created,running,ERROR:report,aborting,"
                  "COMPLETED{Input/output error},concluded,null");
}

static void test_on_error_ignore(void)
{
    TestJob *s = test_job_new(5, JOB_DEFAULT, BLOCKDEV_ON_ERROR_IGNORE);

    s->fail_step = 2;
    s->fail_count = 1;
    job_start(&s->common.job);
    run_until_gone("job0");
    /* The job goes on, but an ignored error still fails it. */
    assert_events("created,running,ERROR:ignore,aborting,"
                  "COMPLETED{Input/output error},concluded,null");
}

static void test_on_error_stop_resume(void)
{
    TestJob *s = test_job_new(5, JOB_DEFAULT, BLOCKDEV_ON_ERROR_STOP);
    Job *job = &s->common.job;
    g_autoptr(BlockJobInfoList) info = NULL;

    s->fail_step = 2;
    s->fail_count = 1;
    job_start(job);
    run_until_status(job, JOB_STATUS_PAUSED);
    assert_events("created,running,ERROR:stop,paused");
    g_assert_cmpint(s->step, ==, 2);
    info = qmp_query_block_jobs(&error_abort);
    g_assert_cmpint(info->value->io_status, ==,
                    BLOCK_DEVICE_IO_STATUS_FAILED);
    g_assert_true(info->value->paused);
    g_assert_true(job->user_paused);
    qmp_block_job_resume("job0", &error_abort);
    g_assert_cmpint(s->common.iostatus, ==, BLOCK_DEVICE_IO_STATUS_OK);
    run_until_gone("job0");
    /* The failed chunk was retried: all 5 done. */
    assert_events("running,waiting,pending,COMPLETED,concluded,null");
}

static void test_on_error_enospc(void)
{
    TestJob *s = test_job_new(5, JOB_DEFAULT, BLOCKDEV_ON_ERROR_ENOSPC);
    Job *job = &s->common.job;

    s->fail_step = 1;
    s->fail_count = 1;
    s->fail_errno = ENOSPC;
    job_start(job);
    run_until_status(job, JOB_STATUS_PAUSED);
    g_assert_cmpint(s->common.iostatus, ==, BLOCK_DEVICE_IO_STATUS_NOSPACE);
    qmp_job_resume("job0", &error_abort);
    run_until_gone("job0");
    events_reset();
    /* enospc with another errno reports. */
    s = test_job_new(5, JOB_DEFAULT, BLOCKDEV_ON_ERROR_AUTO);
    s->fail_step = 1;
    s->fail_count = 1;
    job_start(&s->common.job);
    run_until_gone("job0");
    assert_events("created,running,ERROR:report,aborting,"
                  "COMPLETED{Input/output error},concluded,null");
}

/* ---- Tests: rate limit */

/* Elapsed ms for a job of bytes at speed (the last chunk needs no wait). */
static int64_t timed_job(int64_t speed, int steps)
{
    TestJob *s = test_job_new(steps, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);
    int64_t start = qemu_clock_get_ns();

    block_job_set_speed(&s->common, speed, &error_abort);
    job_start(&s->common.job);
    run_until_gone("job0");
    events_reset();
    return (qemu_clock_get_ns() - start) / 1000000;
}

static void test_rate_limit_delays(void)
{
    /* 32 x 64 KiB = 2 MiB at 4 MiB/s: about 0.5 s. */
    int64_t ms = timed_job(4 * MIB, 32);

    g_assert_cmpint(ms, >=, 420);
    g_assert_cmpint(ms, <=, 600);
    /* Unlimited: quick. */
    ms = timed_job(0, 32);
    g_assert_cmpint(ms, <, 200);
}

static void test_set_speed_kicks(void)
{
    TestJob *s = test_job_new(64, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);
    int64_t start = qemu_clock_get_ns();

    /* 64 KiB/s would take a minute; lifting the limit ends it at once. */
    block_job_set_speed(&s->common, 64 * 1024, &error_abort);
    job_start(&s->common.job);
    run_for_ms(150);
    g_assert_cmpint(s->step, <, 10);
    qmp_block_job_set_speed("job0", 0, &error_abort);
    run_until_gone("job0");
    g_assert_cmpint((qemu_clock_get_ns() - start) / 1000000, <, 1000);
    events_reset();
}

/* ---- Tests: shutdown */

static void test_cancel_sync_all(void)
{
    TestJob *a = test_job_new(1000, JOB_MANUAL_DISMISS,
                              BLOCKDEV_ON_ERROR_REPORT);

    block_job_set_speed(&a->common, 1 * MIB, &error_abort);
    job_start(&a->common.job);
    qmp_block_job_pause("job0", &error_abort);
    run_for_ms(10);
    events_reset();
    job_cancel_sync_all();
    g_assert_null(job_next(NULL));
    assert_events("running,aborting,CANCELLED,concluded,null");
}

static bool quit_done;

/* What QMP quit does: cancel all, then reply ("RETURN"). */
static void coroutine_fn quit_co(void *opaque)
{
    job_co_cancel_all();
    record_event("RETURN", NULL);
    quit_done = true;
}

static void test_co_cancel_all(void)
{
    TestJob *a = test_job_new(1000, JOB_DEFAULT, BLOCKDEV_ON_ERROR_REPORT);

    block_job_set_speed(&a->common, 1 * MIB, &error_abort);
    job_start(&a->common.job);
    run_for_ms(10);
    events_reset();
    quit_done = false;
    qemu_coroutine_enter(qemu_coroutine_create(quit_co, NULL));
    /* As qblk's shutdown: the loop stopped, the jobs are finished here. */
    job_cancel_sync_all();
    while (qemu_coroutine_wakes_pending()) {
        aio_poll(false);
    }
    g_assert_true(quit_done);
    assert_events("aborting,CANCELLED,concluded,null,RETURN");
    /* Without jobs it returns at once. */
    quit_done = false;
    qemu_coroutine_enter(qemu_coroutine_create(quit_co, NULL));
    g_assert_true(quit_done);
    assert_events("RETURN");
}

/* ---- Setup */

static void open_test_node(void)
{
    QDict *opts = qdict_new();
    g_autofree char *zeros = g_malloc0(MIB);
    int fd = g_file_open_tmp("test-job-XXXXXX", &test_file, NULL);

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    g_assert_true(g_file_set_contents(test_file, zeros, MIB, NULL));
    qdict_put_str(opts, "driver", "raw");
    qdict_put_str(opts, "node-name", "jobnode");
    test_bs = bdrv_open(test_file, opts, BDRV_O_RDWR, &error_abort);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    qemu_init_main_loop();
    bdrv_init();
    events = g_string_new("");
    qapi_event_set_emitter(record_event);
    open_test_node();

    g_test_add_func("/job/run/to-completion", test_run_to_completion);
    g_test_add_func("/job/finalize/manual-finalize-and-dismiss",
                    test_manual_finalize_dismiss);
    g_test_add_func("/job/finalize/prepare-fails", test_prepare_fails);
    g_test_add_func("/job/finalize/reentry-during-prepare",
                    test_reentry_during_prepare);
    g_test_add_func("/job/cancel/while-running", test_cancel_running);
    g_test_add_func("/job/cancel/while-created", test_cancel_created);
    g_test_add_func("/job/cancel/while-paused", test_cancel_paused);
    g_test_add_func("/job/cancel/while-pending", test_cancel_pending);
    g_test_add_func("/job/cancel/concluded-refused",
                    test_cancel_concluded_refused);
    g_test_add_func("/job/pause/user-and-internal-nest",
                    test_pause_resume_nesting);
    g_test_add_func("/job/ready/standby-complete-on-resume",
                    test_ready_standby_complete);
    g_test_add_func("/job/ready/soft-cancel-completes",
                    test_soft_cancel_ready);
    g_test_add_func("/job/ready/force-cancel", test_force_cancel_ready);
    g_test_add_func("/job/verbs/complete-without-hook",
                    test_complete_without_hook);
    g_test_add_func("/job/verbs/table", test_verb_table);
    g_test_add_func("/job/verbs/ids-and-lookup", test_ids_and_lookup);
    g_test_add_func("/job/query/shape", test_query_shape);
    g_test_add_func("/job/on-error/report", test_on_error_report);
    g_test_add_func("/job/on-error/ignore", test_on_error_ignore);
    g_test_add_func("/job/on-error/stop-then-resume-retries",
                    test_on_error_stop_resume);
    g_test_add_func("/job/on-error/enospc", test_on_error_enospc);
    g_test_add_func("/job/speed/rate-limit-delays", test_rate_limit_delays);
    g_test_add_func("/job/speed/set-speed-kicks-sleeper",
                    test_set_speed_kicks);
    g_test_add_func("/job/shutdown/cancel-sync-all", test_cancel_sync_all);
    g_test_add_func("/job/shutdown/co-cancel-all-events-before-reply",
                    test_co_cancel_all);
    ret = g_test_run();

    bdrv_unref(test_bs);
    unlink(test_file);
    g_free(test_file);
    qapi_event_set_emitter(NULL);
    g_string_free(events, true);
    return ret;
}

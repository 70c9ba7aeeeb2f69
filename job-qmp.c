/*
 * QMP commands for all jobs (job-* and query-jobs; qapi/job.json).
 *
 * Thin wrappers over job.c's verbs: find the job by id (GenericError
 * "Job not found" when unknown, unlike block-job-*'s DeviceNotActive)
 * and apply the verb, which checks the verb table. job-cancel is always
 * a forced cancel. Internal jobs have no id and are never found.
 * Main loop thread only.
 */
#include "qemu/osdep.h"
#include "qemu/job.h"
#include "qapi/qapi-commands.h"
#include "trace.h"

/* The job called id, or NULL with "Job not found" set. */
static Job *job_find(const char *id, Error **errp)
{
    Job *job = job_get(id);

    if (!job) {
        error_setg(errp, "Job not found");
    }
    return job;
}

/* A job.c verb: applies to job, or fails with errp set. */
typedef bool JobVerbFn(Job *job, Error **errp);

/* Find the job called id and apply verb (named name in the trace). */
static void job_qmp_apply(const char *id, const char *name, JobVerbFn *verb,
                          Error **errp)
{
    Job *job = job_find(id, errp);

    if (job) {
        trace_qmp_job_verb(job, name);
        verb(job, errp);
    }
}

/* job-cancel is always a forced cancel. */
static bool job_qmp_cancel_forced(Job *job, Error **errp)
{
    return job_user_cancel(job, true, errp);
}

/* Finalizing may free the job: hold it until the verb returns. */
static bool job_qmp_finalize_held(Job *job, Error **errp)
{
    bool ok;

    job_ref(job);
    ok = job_finalize(job, errp);
    job_unref(job);
    return ok;
}

void qmp_job_pause(const char *id, Error **errp)
{
    job_qmp_apply(id, "pause", job_user_pause, errp);
}

void qmp_job_resume(const char *id, Error **errp)
{
    job_qmp_apply(id, "resume", job_user_resume, errp);
}

void qmp_job_cancel(const char *id, Error **errp)
{
    job_qmp_apply(id, "cancel", job_qmp_cancel_forced, errp);
}

void qmp_job_complete(const char *id, Error **errp)
{
    job_qmp_apply(id, "complete", job_complete, errp);
}

void qmp_job_finalize(const char *id, Error **errp)
{
    job_qmp_apply(id, "finalize", job_qmp_finalize_held, errp);
}

void qmp_job_dismiss(const char *id, Error **errp)
{
    job_qmp_apply(id, "dismiss", job_dismiss, errp);
}

/* One query-jobs entry. */
static JobInfo *job_query_single(Job *job)
{
    JobInfo *info = g_new0(JobInfo, 1);
    const char *msg = job_error_message(job);

    info->id = g_strdup(job->id);
    info->type = job->driver->job_type;
    info->status = job->status;
    info->current_progress = job->progress_current;
    info->total_progress = job->progress_total;
    info->error = msg ? g_strdup(msg) : NULL;
    return info;
}

JobInfoList *qmp_query_jobs(Error **errp)
{
    JobInfoList *head = NULL, **tail = &head;

    for (Job *job = job_next(NULL); job; job = job_next(job)) {
        JobInfoList *elem;

        if (!job->id) {
            continue;
        }
        elem = g_new0(JobInfoList, 1);
        elem->value = job_query_single(job);
        *tail = elem;
        tail = &elem->next;
    }
    return head;
}

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

void qmp_job_pause(const char *id, Error **errp)
{
    Job *job = job_find(id, errp);

    if (job) {
        trace_qmp_job_verb(job, "pause");
        job_user_pause(job, errp);
    }
}

void qmp_job_resume(const char *id, Error **errp)
{
    Job *job = job_find(id, errp);

    if (job) {
        trace_qmp_job_verb(job, "resume");
        job_user_resume(job, errp);
    }
}

void qmp_job_cancel(const char *id, Error **errp)
{
    Job *job = job_find(id, errp);

    if (job) {
        trace_qmp_job_verb(job, "cancel");
        job_user_cancel(job, true, errp);
    }
}

void qmp_job_complete(const char *id, Error **errp)
{
    Job *job = job_find(id, errp);

    if (job) {
        trace_qmp_job_verb(job, "complete");
        job_complete(job, errp);
    }
}

void qmp_job_finalize(const char *id, Error **errp)
{
    Job *job = job_find(id, errp);

    if (job) {
        trace_qmp_job_verb(job, "finalize");
        /* Finalizing may free the job: hold it until the verb returns. */
        job_ref(job);
        job_finalize(job, errp);
        job_unref(job);
    }
}

void qmp_job_dismiss(const char *id, Error **errp)
{
    Job *job = job_find(id, errp);

    if (job) {
        trace_qmp_job_verb(job, "dismiss");
        job_dismiss(job, errp);
    }
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

/*
 * QMP commands for trace events: trace-event-get-state and
 * trace-event-set-state (qapi/trace.json).
 *
 * State: none of its own; the enable flags live in the generated
 * trace.c table and are read and written through qemu/trace-control.h.
 * The log backend reads each flag every time its event fires, so a
 * change made here shows in the very next occurrence. Everything runs
 * on the main loop thread.
 *
 * As in QEMU, a name containing '*' is a pattern (matching nothing is
 * not an error); any other name must be an existing event. Every qblk
 * event is compiled in, so none is "unavailable". qblk has no vCPUs,
 * so a 'vcpu' argument is refused as an invalid index.
 */
#include "qemu/osdep.h"
#include "qemu/trace-control.h"
#include "qapi/qapi-commands.h"

/* Refuse a vCPU index (qblk has none); true when there was none. */
static bool trace_qmp_check_vcpu(bool has_vcpu, int64_t vcpu, Error **errp)
{
    if (has_vcpu) {
        error_setg(errp, "invalid vCPU index %u", (unsigned)vcpu);
        return false;
    }
    return true;
}

/* An exact (non-pattern) name must name an event. */
static bool trace_qmp_check_name(const char *name, Error **errp)
{
    if (!trace_event_is_pattern(name)) {
        for (int i = 0; trace_event_names[i]; i++) {
            if (strcmp(trace_event_names[i], name) == 0) {
                return true;
            }
        }
        error_setg(errp, "unknown event \"%s\"", name);
        return false;
    }
    return true;
}

/*
 * Index of the next event at or after start that name selects: the
 * event itself for an exact name, glob matches for a pattern; -1 at end.
 */
static int trace_qmp_next(const char *name, int start)
{
    if (trace_event_is_pattern(name)) {
        return trace_event_next_match(name, start);
    }
    for (int i = start; trace_event_names[i]; i++) {
        if (strcmp(trace_event_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

TraceEventInfoList *qmp_trace_event_get_state(const char *name,
                                              bool has_vcpu, int64_t vcpu,
                                              Error **errp)
{
    TraceEventInfoList *head = NULL, **tail = &head;

    if (!trace_qmp_check_vcpu(has_vcpu, vcpu, errp) ||
        !trace_qmp_check_name(name, errp)) {
        return NULL;
    }
    for (int i = trace_qmp_next(name, 0); i >= 0;
         i = trace_qmp_next(name, i + 1)) {
        TraceEventInfo *info = g_new0(TraceEventInfo, 1);

        info->name = g_strdup(trace_event_names[i]);
        info->state = trace_event_get_state_id(i) ?
                      TRACE_EVENT_STATE_ENABLED : TRACE_EVENT_STATE_DISABLED;
        info->vcpu = false;
        *tail = g_new0(TraceEventInfoList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    return head;
}

void qmp_trace_event_set_state(const char *name, bool enable,
                               bool has_ignore_unavailable,
                               bool ignore_unavailable,
                               bool has_vcpu, int64_t vcpu, Error **errp)
{
    /* ignore_unavailable changes nothing: no event is unavailable. */
    if (!trace_qmp_check_vcpu(has_vcpu, vcpu, errp) ||
        !trace_qmp_check_name(name, errp)) {
        return;
    }
    for (int i = trace_qmp_next(name, 0); i >= 0;
         i = trace_qmp_next(name, i + 1)) {
        trace_event_set_state_id(i, enable);
    }
}

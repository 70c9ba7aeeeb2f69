/*
 * The daemon's run state (include/sysemu/runstate.h).
 *
 * State: one RunState and the cause of the first shutdown request, both
 * touched only on the main loop thread (signals arrive through qblk.c's
 * signalfd, never in a signal handler), so no locking is needed. The
 * SHUTDOWN event is emitted from inside the request, so when quit asks
 * for a shutdown the event is on the wire before quit's reply.
 */
#include "qemu/osdep.h"
#include "qapi/qapi-events.h"
#include "sysemu/runstate.h"
#include "trace.h"

static RunState current_run_state = RUN_STATE_RUNNING;
static ShutdownCause shutdown_cause = SHUTDOWN_CAUSE_NONE;

void qemu_system_shutdown_request(ShutdownCause reason)
{
    trace_qemu_system_shutdown_request(ShutdownCause_str(reason));
    if (shutdown_cause != SHUTDOWN_CAUSE_NONE) {
        return;     /* already stopping: one event only */
    }
    shutdown_cause = reason;
    current_run_state = RUN_STATE_SHUTDOWN;
    qapi_event_send_shutdown(false, reason);
}

bool qemu_shutdown_requested(void)
{
    return shutdown_cause != SHUTDOWN_CAUSE_NONE;
}

RunState runstate_get(void)
{
    return current_run_state;
}

/*
 * The daemon's run state and shutdown requests.
 *
 * qblk runs no guest CPU: its state is "running" from start-up until a
 * shutdown is requested (QMP quit, SIGTERM/SIGINT/SIGHUP), then
 * "shutdown". A request emits the SHUTDOWN event at once (so it precedes
 * quit's reply, as in QEMU) and makes the main loop in qblk.c stop.
 */
#ifndef SYSEMU_RUNSTATE_H
#define SYSEMU_RUNSTATE_H

#include "qemu/osdep.h"
#include "qapi/qapi-types.h"

/* Request an orderly shutdown; idempotent (only the first emits). */
void qemu_system_shutdown_request(ShutdownCause reason);
bool qemu_shutdown_requested(void);
RunState runstate_get(void);

#endif /* SYSEMU_RUNSTATE_H */

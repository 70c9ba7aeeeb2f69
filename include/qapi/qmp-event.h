/*
 * Emitting QMP events.
 *
 * Generated emitters (qapi_event_send_*, qapi-events.c) build the event's
 * data object and call qapi_event_emit(). Who receives events is set by
 * the program: the daemon's monitor layer installs an emitter that stamps
 * and broadcasts them to every negotiated QMP monitor; without one (tools,
 * unit tests) events are dropped, or counted by a test's own emitter.
 */
#ifndef QAPI_QMP_EVENT_H
#define QAPI_QMP_EVENT_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>

/*
 * name: "BLOCK_JOB_COMPLETED"; data: the event's members, or NULL for an
 * event without data. data is borrowed: the emitter takes its own
 * reference if it keeps it.
 */
typedef void QapiEventEmitter(const char *name, JsonObject *data);

/* Install the emitter (NULL: drop events). Main loop thread only. */
void qapi_event_set_emitter(QapiEventEmitter *fn);
void qapi_event_emit(const char *name, JsonObject *data);

#endif /* QAPI_QMP_EVENT_H */

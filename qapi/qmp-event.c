/*
 * Routing QMP events from the generated emitters to their receiver.
 *
 * State: one function pointer, set by the program (the daemon's monitor
 * layer) and read by qapi_event_emit(). Both happen on the main loop
 * thread only, so no locking is needed. Without an emitter events are
 * dropped: tools and unit tests that do not care pay nothing.
 */
#include "qemu/osdep.h"
#include "qapi/qmp-event.h"

static QapiEventEmitter *qapi_event_emitter;

void qapi_event_set_emitter(QapiEventEmitter *fn)
{
    qapi_event_emitter = fn;
}

void qapi_event_emit(const char *name, JsonObject *data)
{
    if (qapi_event_emitter) {
        qapi_event_emitter(name, data);
    }
}

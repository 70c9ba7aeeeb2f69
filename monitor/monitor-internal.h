/*
 * What the QMP and HMP monitors share (monitor/monitor.c) and how each
 * plugs in (monitor/qmp.c, monitor/hmp.c). Private to monitor/.
 *
 * A Monitor is the common part embedded first in MonitorQMP (qmp.c) and
 * MonitorHMP (hmp.c). monitor.c keeps the list of live monitors, the
 * output buffer and its flushing to the chardev, and the event emitter
 * (events go to negotiated QMP monitors only, through ->emit_event).
 */
#ifndef MONITOR_MONITOR_INTERNAL_H
#define MONITOR_MONITOR_INTERNAL_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "monitor/monitor.h"
#include "qemu/coroutine.h"

struct Monitor {
    Chardev *chr;       /* NULL for a buffer monitor (human-monitor-command) */
    bool is_qmp;
    bool is_hmp_crlf;   /* HMP: '\n' is written as "\r\n" */
    GString *outbuf;    /* chardev monitor: not yet written;
                           buffer monitor: everything printed */
    /* QMP only: deliver one stamped event line; NULL for HMP. */
    void (*emit_event)(Monitor *mon, const char *line);
    /* Type-specific teardown (detach from chr, free the container). */
    void (*destroy)(Monitor *mon);
};

/* Initialise the common part; chr may be NULL (buffer monitor). */
void monitor_common_init(Monitor *mon, Chardev *chr, bool is_qmp);
/* Add to / remove from the list of live monitors (events, cleanup). */
void monitor_list_add(Monitor *mon);
void monitor_list_remove(Monitor *mon);
/* Free the common part's resources (not mon itself). */
void monitor_common_finalize(Monitor *mon);
/* Write outbuf to the chardev's client (no-op for buffer monitors). */
void monitor_flush(Monitor *mon);

/*
 * The monitor whose command runs in the calling coroutine, or NULL (not
 * in a monitor command). The QMP dispatcher sets it around each command
 * with monitor_set_cur(co, mon) and clears it with mon == NULL.
 */
Monitor *monitor_cur(void);
void monitor_set_cur(Coroutine *co, Monitor *mon);

/* QMP: whether capabilities negotiation is complete on mon's session. */
bool monitor_qmp_is_negotiated(Monitor *mon);
/* QMP: leave negotiation mode (qmp_capabilities succeeded). */
void monitor_qmp_set_negotiated(Monitor *mon);

/*
 * ---- For unit tests and the QMP fuzz target (monitor/qmp.c) ----
 * A QMP monitor without a chardev: the greeting and every reply/event
 * accumulate in mon->outbuf (the caller may truncate it). Fed bytes are
 * handled as if a client sent them; commands run in coroutines, so call
 * aio_poll(false) until it returns false to let them finish.
 * Free with mon->destroy(mon).
 */
Monitor *monitor_qmp_new_buffered(void);
void monitor_qmp_feed(Monitor *mon, const uint8_t *buf, size_t len);

#endif /* MONITOR_MONITOR_INTERNAL_H */

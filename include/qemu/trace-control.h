/*
 * Run-time control of trace events (declared in trace-events, generated
 * into trace.h by scripts/tracetool.py).
 *
 * Every program accepts --trace PATTERN (a glob over event names, may be
 * repeated, "-PATTERN" disables); enabled events are printed on stderr
 * by the log backend.
 */
#ifndef QEMU_TRACE_CONTROL_H
#define QEMU_TRACE_CONTROL_H

#include "qemu/osdep.h"

/* Names of all events, NULL-terminated (generated trace.c). */
extern const char *const trace_event_names[];

/*
 * Enable (or, with a leading '-', disable) all events matching the glob.
 * "help" lists every event on stdout. Returns the number of events
 * matched, or -1 when none matched.
 */
int trace_enable_pattern(const char *pattern);
/*
 * Parse a --trace argument: "PATTERN" or "enable=PATTERN[,file=F]".
 * "help" lists every event on stdout and exits(0), as QEMU does.
 */
bool trace_opt_parse(const char *optarg);
/* The log backend: "PID@SEC.USEC:name " then the formatted args. */
void trace_log_line(const char *name, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

/*
 * Event states by index into trace_event_names (QMP trace-event-*).
 * Changes take effect at once: every trace_NAME() reads the live flag.
 */
/* True if name is a pattern (contains '*') rather than an event name. */
bool trace_event_is_pattern(const char *name);
/* Index of the first event at or after start matching glob, or -1. */
int trace_event_next_match(const char *glob, int start);
bool trace_event_get_state_id(int id);
void trace_event_set_state_id(int id, bool enable);

#endif /* QEMU_TRACE_CONTROL_H */

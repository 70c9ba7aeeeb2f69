/*
 * Monitors: the QMP (JSON, for programs) and HMP (text, for people)
 * front ends attached to chardevs (--monitor chardev=ID[,mode=...],
 * -qmp, -monitor).
 *
 * Every monitor runs on the main loop. QMP commands run one at a time per
 * monitor, each in a coroutine; HMP commands likewise. Output written
 * with monitor_printf() goes to the monitor's client; on an HMP monitor
 * '\n' is sent as "\r\n", as QEMU does.
 */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "chardev/char.h"

typedef struct Monitor Monitor;

/* Attach a QMP monitor to chr (monitor/qmp.c). pretty: indent replies. */
bool monitor_init_qmp(Chardev *chr, bool pretty, Error **errp);
/* Attach an HMP monitor to chr (monitor/hmp.c). */
bool monitor_init_hmp(Chardev *chr, Error **errp);
/*
 * Parse --monitor [chardev=]ID[,mode=control|readline][,pretty=on|off]
 * [,id=...] and attach the monitor (monitor/monitor.c). Errors in QEMU's
 * words (Parameter 'chardev' is missing, chardev "X" not found, ...).
 */
bool monitor_new_from_opts(const char *optstr, Error **errp);
/* Detach and free every monitor, flushing pending output (shutdown). */
void monitor_cleanup_all(void);

/* Output to a monitor's client (QMP monitors: for internal use only). */
int monitor_printf(Monitor *mon, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void monitor_puts(Monitor *mon, const char *str);

/*
 * Run one HMP command line on a temporary monitor and return its output
 * ("" when none; line ends "\r\n"), as QMP's human-monitor-command does
 * (monitor/hmp.c). Errors of the command itself are part of the output
 * ("Error: ..."); errp is set only when the line cannot be run at all.
 */
char *hmp_run_command_line(const char *line, Error **errp);

#endif /* MONITOR_MONITOR_H */

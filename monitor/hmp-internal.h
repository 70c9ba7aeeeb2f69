/*
 * The human monitor's command tables and handlers (monitor/hmp.c,
 * monitor/hmp-cmds.c). Private to monitor/.
 *
 * The tables are generated from hmp-commands.hx and hmp-commands-info.hx
 * by scripts/hxtool.py: one HMPCommand initializer per command. args_type
 * says how hmp.c parses the rest of the line into the QDict handed to the
 * handler (comma-separated "key:type" items):
 *   s  a word or a quoted string         S  the rest of the line
 *   B  a block device name               F  a file name
 *   o  a byte count: a number with an optional suffix b/B (bytes),
 *      k/K, m/M, g/G, t/T, p/P, e/E (2^10 .. 2^60); a bare number
 *      counts MiB, as in QEMU
 *   i  a 32-bit integer                  l  a 64-bit integer
 *   b  on|off
 *   -x a flag "-x" (must come before the positional arguments)
 *   a trailing '?' makes an argument optional (absent from the QDict).
 * Strings are stored as strings, o/i/l as decimal integers, b and flags
 * as booleans: read them with qdict_get_try_str / qdict_get_uint /
 * qdict_get_bool.
 */
#ifndef MONITOR_HMP_INTERNAL_H
#define MONITOR_HMP_INTERNAL_H

#include "qemu/osdep.h"
#include "qemu/qdict.h"
#include "monitor/monitor.h"

typedef void HMPCommandFunc(Monitor *mon, const QDict *qdict);

typedef struct HMPCommand {
    const char *name;           /* "quit|q": alternatives split by '|' */
    const char *args_type;
    const char *params;         /* shown by help */
    const char *help;
    HMPCommandFunc *cmd;
    const struct HMPCommand *sub_table;     /* "info": its subcommands */
} HMPCommand;

/* The top-level and "info" tables (hmp.c), each ended by a NULL name. */
extern const HMPCommand hmp_cmds[];
extern const HMPCommand hmp_info_cmds[];

/*
 * hmp-args.c: parse the text after the command name per cmd->args_type.
 * Returns a new QDict, or NULL with error lines ("...\n") appended to err.
 */
QDict *hmp_parse_args(const HMPCommand *cmd, const char *args, GString *err);
/* The next word or quoted string at *pp (advanced), or NULL. */
char *hmp_get_word(const char **pp, GString *err);
/* An 'o' argument: a byte count with an optional unit suffix. */
bool hmp_parse_size(const char *s, uint64_t *out);

/* Print err as "Error: <desc>" and free it; no-op when err is NULL. */
void hmp_handle_error(Monitor *mon, Error *err);

/* hmp.c: help and "info" without a subcommand. */
void hmp_help(Monitor *mon, const QDict *qdict);
void hmp_info_help(Monitor *mon, const QDict *qdict);

/* hmp-cmds.c: each parses nothing more and calls the QMP handler. */
void hmp_info_version(Monitor *mon, const QDict *qdict);
void hmp_info_status(Monitor *mon, const QDict *qdict);
void hmp_info_block(Monitor *mon, const QDict *qdict);
void hmp_snapshot_blkdev(Monitor *mon, const QDict *qdict);
void hmp_quit(Monitor *mon, const QDict *qdict);
/* Block jobs (hmp-cmds.c): block_stream, block_job_*, info block-jobs. */
void hmp_block_stream(Monitor *mon, const QDict *qdict);
void hmp_block_job_set_speed(Monitor *mon, const QDict *qdict);
void hmp_block_job_cancel(Monitor *mon, const QDict *qdict);
void hmp_block_job_pause(Monitor *mon, const QDict *qdict);
void hmp_block_job_resume(Monitor *mon, const QDict *qdict);
void hmp_block_job_complete(Monitor *mon, const QDict *qdict);
void hmp_info_block_jobs(Monitor *mon, const QDict *qdict);
void hmp_commit(Monitor *mon, const QDict *qdict);

#endif /* MONITOR_HMP_INTERNAL_H */

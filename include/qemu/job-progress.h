/*
 * Human-readable job progress, one formatter for every program that shows
 * it: HMP's "info block-jobs" (monitor/hmp-cmds.c) and qblk-img -p
 * (convert, commit, rebase, compare). Implemented in util/job-progress.c; pure string functions,
 * safe from any thread.
 */
#ifndef QEMU_JOB_PROGRESS_H
#define QEMU_JOB_PROGRESS_H

#include "qemu/osdep.h"

/*
 * One "info block-jobs" line, byte for byte as QEMU prints it (no line
 * end): "Streaming device ID: Completed OFFSET of LEN bytes, speed limit
 * SPEED bytes/s" when type is "stream", else "Type TYPE, device ID:
 * Completed ...". libvirt's HMP parser matches these bytes. g_free() it.
 */
char *job_progress_hmp_line(const char *type, const char *id,
                            int64_t offset, int64_t len, int64_t speed);

/*
 * done out of total as qemu-img -p shows it: "(45.50/100%)" (two
 * decimals; total 0 counts as complete). g_free() it.
 */
char *job_progress_percent(uint64_t done, uint64_t total);

/*
 * A percentage already computed by the caller, in the same "(45.50/100%)"
 * form: values outside 0..100 are clamped. g_free() it.
 */
char *job_progress_percent_value(double percent);

/*
 * qemu-img -p's whole progress line for percent: "    (45.50/100%)\r"
 * (four spaces, the figure, a carriage return so the next line overwrites
 * it). g_free() it.
 */
char *job_progress_img_line(double percent);

#endif /* QEMU_JOB_PROGRESS_H */

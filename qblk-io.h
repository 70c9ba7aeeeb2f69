/*
 * qblk-io: the interface between the program shell (qblk-io.c: options,
 * opening the image, reading command lines) and the command set
 * (qblk-io-cmds.c: the table of commands and their implementations).
 *
 * The command set owns the image handle between qio_cmds_attach() and
 * qio_cmds_detach(); all state lives on the main loop thread.
 */
#ifndef QBLK_IO_H
#define QBLK_IO_H

#include "qemu/osdep.h"
#include "block/block.h"

/* How the image was opened, as far as commands care. */
typedef struct QioImageOptions {
    bool writethrough;   /* flush after every completed write */
    bool copy_on_read;   /* -C: reads populate the top image */
} QioImageOptions;

/* Give the command set the root child of the open image (may be NULL). */
void qio_cmds_attach(BdrvChild *root, const QioImageOptions *opts);

/*
 * Wait for outstanding aio requests, then hand the root child back to
 * the caller (who releases it). Returns NULL if none was attached.
 */
BdrvChild *qio_cmds_detach(void);

/*
 * Parse and run one command line. Returns false when the command asks
 * the program to quit. *failed is set to true (never reset) when the
 * command failed, which makes the program exit with status 1.
 */
bool qio_cmds_run_line(const char *line, bool *failed);

/* Requests started by aio_read/aio_write that have not completed yet. */
int qio_cmds_aio_in_flight(void);

/* ---- qemu-io's output and argument conventions (qblk-io.c) */

/* The largest request qemu-io accepts: INT_MAX rounded down to sectors. */
#define QIO_MAX_REQUEST_BYTES \
    ((int64_t)(INT_MAX & ~(int)(BDRV_SECTOR_SIZE - 1)))

/* "64 KiB", "1.500 KiB", "9.344672 bytes": qemu-io's size notation. */
void qio_size_str(double value, char *buf, size_t size);
/*
 * "VERB N/N bytes at offset X" and the statistics line (one CSV line
 * instead when csv; nothing when quiet). ns is the elapsed time.
 */
void qio_report(const char *verb, int64_t offset, int64_t bytes,
                int64_t ns, bool quiet, bool csv);
/* Hex dump of buf, 16 bytes a line, labelled from image offset. */
void qio_dump(const uint8_t *buf, int64_t offset, int64_t len);
/* 0 if buf[0..len) is all pattern, else report it and return -EINVAL. */
int qio_verify(const uint8_t *buf, int64_t len, int pattern,
               int64_t offset);

/*
 * Argument parsers; on failure they print qemu-io's message on stdout and
 * return false. Numbers take k/M/G/T/P/E suffixes; lengths are also
 * limited to QIO_MAX_REQUEST_BYTES; patterns are one byte (0x, 0 octal).
 */
bool qio_parse_num(const char *str, int64_t *out);
bool qio_parse_len(const char *str, int64_t *out);
bool qio_parse_pattern(const char *str, int *out);

#endif /* QBLK_IO_H */

/*
 * blockdev: turning user-facing descriptions of images (tool arguments,
 * later -drive / --blockdev and the QMP block commands) into open nodes.
 *
 * The tools (qblk-img, qblk-io) open their images through here so that
 * --image-opts, -f and json: filenames behave the same in every program.
 */
#ifndef SYSEMU_BLOCKDEV_H
#define SYSEMU_BLOCKDEV_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "block/block.h"

/*
 * Open an image the way qemu-img and qemu-io do.
 *  image_opts: filename is a keyval option string
 *              ("driver=qcow2,file.filename=a.qcow2"); fmt must be NULL
 *              ("--image-opts and --format are mutually exclusive").
 *  otherwise:  filename is a file name or "json:{...}"; fmt, when not
 *              NULL, forces the format driver (no probing).
 *  flags:      BDRV_O_*.
 * Returns the new node (one reference) or NULL with errp set. The error
 * is not prefixed with the file name: each tool adds its own prefix
 * ("Could not open 'x': " in qemu-img, "can't open: " in qemu-io).
 */
BlockDriverState *blockdev_open_image(const char *filename, const char *fmt,
                                      bool image_opts, int flags,
                                      Error **errp);

/*
 * Apply a qemu-img -t/-T cache mode to *flags and *writethrough:
 *   none/off      O_DIRECT, writeback     writeback     write cache
 *   writethrough  write cache, flush after every write
 *   directsync    O_DIRECT + writethrough unsafe        never flush
 * BDRV_O_NOCACHE and BDRV_O_NO_FLUSH are cleared first, then set as the
 * mode says. Returns 0, or -EINVAL for an unknown mode, in which case the
 * caller reports "Invalid cache option: MODE" and *flags is unchanged.
 */
int blockdev_parse_cache_mode(const char *mode, int *flags,
                              bool *writethrough);

#endif /* SYSEMU_BLOCKDEV_H */

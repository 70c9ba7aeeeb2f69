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

/* ---- The daemon's drives and nodes (-drive, --blockdev) */

/*
 * --blockdev OPTS: open a node from keyval or JSON options (QEMU's
 * -blockdev: "node-name" is mandatory, "driver" names the driver, children
 * are given inline as file.driver=... or by reference as file=NODE).
 * The node stays open, owned by the daemon, until blockdev_close_all().
 */
BlockDriverState *blockdev_add(const char *optstr, Error **errp);

/*
 * -drive OPTS: QEMU's legacy drive option (file=, format=, id=,
 * node-name=, copy-on-read=on|off, readonly=on|off,
 * cache=writeback|none|unsafe|writethrough|directsync,
 * aio=threads|native|io_uring, if=none, plus driver options passed
 * through). The drive is reachable by its id (and its node by node-name,
 * or the id when no node-name is given). copy-on-read=on makes every read
 * through the drive populate its top image; on a read-only drive it is
 * disabled with the warning "disabling copy-on-read on read-only drive".
 */
BlockDriverState *drive_new(const char *optstr, Error **errp);

/*
 * The root the daemon holds for a drive or --blockdev node: I/O on behalf
 * of users of the node (NBD exports) goes through it, so that drive
 * properties (copy-on-read) apply. NULL if no such drive/node.
 */
BdrvChild *blockdev_find_root(const char *name);

/*
 * The node a user means by name: the node of the drive with that id, or
 * the node with that node name; NULL if neither exists. No reference is
 * taken and no root is created (compare blockdev_find_root).
 */
BlockDriverState *blockdev_find_bs(const char *name);

/* ---- For the QMP block commands (blockdev-cmds.c) */

/* Called with each drive's id and current top node, in creation order. */
typedef void BlockdevDriveFunc(const char *id, BlockDriverState *bs,
                               void *opaque);
void blockdev_foreach_drive(BlockdevDriveFunc *fn, void *opaque);

/*
 * QEMU's bdrv_lookup_bs: the top node of the drive called device, else
 * the node called node_name (either may be NULL); otherwise errp gets
 * "Cannot find device='D' nor node-name='N'".
 */
BlockDriverState *blockdev_lookup_bs(const char *device,
                                     const char *node_name, Error **errp);
/* True if name is a drive id or a node name. */
bool blockdev_name_in_use(const char *name);

/*
 * After a graph change moved drives from old_top onto new_top: drive
 * properties (copy-on-read) follow them.
 */
void blockdev_drives_follow(BlockDriverState *old_top,
                            BlockDriverState *new_top);

/*
 * Make the monitor the owner of bs, as if it had been added with
 * blockdev-add: takes over the caller's reference (also on failure).
 */
bool blockdev_adopt_node(BlockDriverState *bs, Error **errp);

/*
 * blockdev-del: close a node added by --blockdev / blockdev-add that
 * nobody else uses (QEMU 7.2's checks and texts).
 */
bool blockdev_del(const char *node_name, Error **errp);

/* Flush every drive and node, then close them (shutdown). */
void blockdev_close_all(void);

#endif /* SYSEMU_BLOCKDEV_H */

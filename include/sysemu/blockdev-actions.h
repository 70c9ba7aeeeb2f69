/*
 * Block graph actions in steps (blockdev-cmds.c), shared by the plain
 * QMP commands and the transaction command (blockdev-transaction.c).
 *
 * An action is prepared (every check, new nodes, the graph switch; all
 * undoable), then either committed (what cannot be undone: flushes) or
 * aborted (the graph back as it was), then cleaned (drained sections
 * end, references dropped). A plain command is a transaction of one.
 * Main loop thread, in the monitor's coroutine.
 */
#ifndef SYSEMU_BLOCKDEV_ACTIONS_H
#define SYSEMU_BLOCKDEV_ACTIONS_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-types.h"

typedef struct SnapshotAction SnapshotAction;

/*
 * blockdev-snapshot-sync / blockdev-snapshot, prepared: on success the
 * overlay is on top of the node (drained until clean) and the returned
 * state must be committed or aborted, then cleaned. NULL with errp set
 * (QEMU 7.2's texts) when any check fails; nothing changed then.
 */
SnapshotAction *snapshot_sync_prepare(BlockdevSnapshotSync *args,
                                      Error **errp);
SnapshotAction *snapshot_prepare(BlockdevSnapshot *args, Error **errp);
/* Flush the old top: its file is a complete image from now on. */
void snapshot_action_commit(SnapshotAction *s);
/* Put the node's users back on it and detach the overlay. */
void snapshot_action_abort(SnapshotAction *s);
/* End the drained section, drop the references; frees s. */
void snapshot_action_clean(SnapshotAction *s);

#endif /* SYSEMU_BLOCKDEV_ACTIONS_H */

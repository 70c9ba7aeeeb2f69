/*
 * QMP transaction: several block graph actions applied all or nothing.
 *
 * Each action kind is a row of four steps (TxnActionDriver):
 *  prepare  every check and every reversible change (new nodes, graph
 *           switches, new bitmaps); fails with QEMU 7.2's text;
 *  commit   what cannot be undone and cannot fail (flushes);
 *  abort    undo prepare exactly;
 *  clean    end drained sections, drop references, free the state.
 * qmp_transaction prepares the actions in order. If one fails, the ones
 * prepared before it are aborted in reverse order (a later action may
 * stand on an earlier one's overlay) and cleaned, and the failing
 * action's error is returned: nothing observable remains but a file an
 * overlay creation left on disk, as in QEMU. Otherwise all commit, then
 * all clean.
 *
 * Safety: the snapshot actions keep their nodes drained from prepare to
 * clean, so no guest request sees the graph between a switch and its
 * undo. Everything runs in the monitor's coroutine on the main loop
 * thread; nothing else changes the graph while an action step runs
 * except requests parked by the drained sections.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "sysemu/blockdev.h"
#include "sysemu/blockdev-actions.h"
#include "qapi/qapi-commands.h"
#include "trace.h"

/* One action of a running transaction and the state its prepare made. */
typedef struct TxnAction {
    const struct TxnActionDriver *drv;
    TransactionAction *args;
    void *state;
} TxnAction;

typedef struct TxnActionDriver {
    /* Returns the action's state, or NULL with errp set. */
    void *(*prepare)(TransactionAction *act, Error **errp);
    void (*commit)(void *state);
    void (*abort)(void *state);
    void (*clean)(void *state);
} TxnActionDriver;

/* ---- abort: fails on purpose */

static void *txn_abort_prepare(TransactionAction *act, Error **errp)
{
    error_setg(errp, "Transaction aborted using Abort action");
    return NULL;
}

/* ---- block-dirty-bitmap-add: the command, undone by a release */

/* The state is the new bitmap. */
static void *txn_bitmap_add_prepare(TransactionAction *act, Error **errp)
{
    BlockDirtyBitmapAdd *arg = act->u.block_dirty_bitmap_add.data;
    Error *err = NULL;
    BlockDriverState *bs;
    BdrvDirtyBitmap *bitmap;

    qmp_block_dirty_bitmap_add(arg, &err);
    if (err) {
        error_propagate(errp, err);
        return NULL;
    }
    bs = blockdev_lookup_bs(arg->node, arg->node, &error_abort);
    bitmap = bdrv_find_dirty_bitmap(bs, arg->name);
    g_assert(bitmap);
    return bitmap;
}

static void txn_bitmap_add_abort(void *state)
{
    bdrv_release_dirty_bitmap(state);
}

/* ---- blockdev-snapshot-sync, blockdev-snapshot (blockdev-cmds.c) */

static void *txn_snapshot_sync_prepare(TransactionAction *act, Error **errp)
{
    return snapshot_sync_prepare(act->u.blockdev_snapshot_sync.data, errp);
}

static void *txn_snapshot_prepare(TransactionAction *act, Error **errp)
{
    return snapshot_prepare(act->u.blockdev_snapshot.data, errp);
}

static void txn_snapshot_commit(void *state)
{
    snapshot_action_commit(state);
}

static void txn_snapshot_abort(void *state)
{
    snapshot_action_abort(state);
}

static void txn_snapshot_clean(void *state)
{
    snapshot_action_clean(state);
}

/* ---- The action table */

static const TxnActionDriver txn_drivers[TransactionActionKind__MAX] = {
    [TRANSACTION_ACTION_KIND_ABORT] = {
        .prepare = txn_abort_prepare,
    },
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_ADD] = {
        .prepare = txn_bitmap_add_prepare,
        .abort = txn_bitmap_add_abort,
    },
    [TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT] = {
        .prepare = txn_snapshot_prepare,
        .commit = txn_snapshot_commit,
        .abort = txn_snapshot_abort,
        .clean = txn_snapshot_clean,
    },
    [TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT_SYNC] = {
        .prepare = txn_snapshot_sync_prepare,
        .commit = txn_snapshot_commit,
        .abort = txn_snapshot_abort,
        .clean = txn_snapshot_clean,
    },
};

/* Undo actions[0..n) in reverse order and free their states. */
static void txn_roll_back(TxnAction *actions, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        trace_qmp_transaction_abort(i, TransactionActionKind_str(
                                        actions[i].args->type));
        if (actions[i].drv->abort) {
            actions[i].drv->abort(actions[i].state);
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        if (actions[i].drv->clean) {
            actions[i].drv->clean(actions[i].state);
        }
    }
}

/* Commit actions[0..n) in order, then clean them. */
static void txn_commit_all(TxnAction *actions, int n)
{
    for (int i = 0; i < n; i++) {
        if (actions[i].drv->commit) {
            actions[i].drv->commit(actions[i].state);
        }
    }
    for (int i = 0; i < n; i++) {
        if (actions[i].drv->clean) {
            actions[i].drv->clean(actions[i].state);
        }
    }
}

void qmp_transaction(TransactionActionList *list, Error **errp)
{
    g_autofree TxnAction *actions = NULL;
    int count = 0, n = 0;

    for (TransactionActionList *l = list; l; l = l->next) {
        count++;
    }
    trace_qmp_transaction(count);
    actions = g_new0(TxnAction, count ? count : 1);
    for (TransactionActionList *l = list; l; l = l->next, n++) {
        TransactionAction *act = l->value;
        TxnAction *a = &actions[n];

        a->drv = &txn_drivers[act->type];
        a->args = act;
        trace_qmp_transaction_prepare(n, TransactionActionKind_str(act->type));
        a->state = a->drv->prepare(act, errp);
        if (!a->state) {
            trace_qmp_transaction_failed(n);
            txn_roll_back(actions, n);
            return;
        }
    }
    txn_commit_all(actions, n);
    trace_qmp_transaction_done(n);
}

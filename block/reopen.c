/*
 * Switching a node between read-only and read-write (reopen).
 *
 * What switches: the node itself and the nodes below it through "file"
 * children (a format node and its protocol node, a filter and what it
 * filters), never backing images or other parents. That list is built
 * top-down; each node's driver may stage the switch (prepare), then all
 * are committed or all aborted, so a failure leaves every node exactly as
 * it was.
 *
 * Order matters because a format driver does I/O on its file while it
 * prepares:
 *  - to read-only, the format nodes prepare first (qcow2 flushes its
 *    caches and clears its dirty bit) while the files below are still
 *    writable; then the files prepare (open a read-only descriptor) and
 *    everything commits together;
 *  - to read-write, the files switch first (prepare and commit, bottom
 *    up), then the format nodes prepare on writable files (qcow2 repairs a
 *    dirty image as a read-write open would). If a format node fails, the
 *    files already switched are switched back to read-only, which needs
 *    no permission and so does not fail in practice.
 *
 * The whole switch runs in a drained section of the top node: no request
 * is in flight while descriptors and flags change. Main loop thread.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qapi/error.h"
#include "trace.h"

/* Nodes to switch: bs and its "file" descendants, top first. */
static GPtrArray *reopen_collect(BlockDriverState *bs)
{
    GPtrArray *nodes = g_ptr_array_new();

    for (; bs; bs = child_bs(bs->file)) {
        g_ptr_array_add(nodes, bs);
    }
    return nodes;
}

/* Refuse nodes that cannot switch at all, before anything changes. */
static bool reopen_check(GPtrArray *nodes, Error **errp)
{
    for (guint i = 0; i < nodes->len; i++) {
        BlockDriverState *bs = nodes->pdata[i];

        if (!bs->drv) {
            error_setg(errp, "Node '%s' is not open", bs->node_name);
            return false;
        }
        if (bs->drv->protocol && !bs->drv->bdrv_reopen_prepare) {
            error_setg(errp, "Driver '%s' of node '%s' does not support "
                       "reopening", bs->drv->format_name, bs->node_name);
            return false;
        }
    }
    return true;
}

/* Stage the switch of one node; false with errp set on failure. */
static bool reopen_prepare_one(BlockDriverState *bs, bool read_only,
                               Error **errp)
{
    int ret = 0;

    if (bs->read_only == read_only) {
        return true;
    }
    if (bs->drv->bdrv_reopen_prepare) {
        ret = bs->drv->bdrv_reopen_prepare(bs, read_only, errp);
    }
    trace_bdrv_reopen_prepare(bs, read_only, ret);
    return ret >= 0;
}

/* Make one staged switch effective: driver state, then the node's flags. */
static void reopen_commit_one(BlockDriverState *bs, bool read_only)
{
    if (bs->read_only == read_only) {
        return;
    }
    if (bs->drv->bdrv_reopen_commit) {
        bs->drv->bdrv_reopen_commit(bs);
    }
    bs->read_only = read_only;
    if (read_only) {
        bs->open_flags &= ~BDRV_O_RDWR;
    } else {
        bs->open_flags |= BDRV_O_RDWR;
    }
    trace_bdrv_reopen_commit(bs, read_only);
}

/* Forget one staged switch. */
static void reopen_abort_one(BlockDriverState *bs, bool read_only)
{
    if (bs->read_only == read_only) {
        return;
    }
    if (bs->drv->bdrv_reopen_abort) {
        bs->drv->bdrv_reopen_abort(bs);
    }
    trace_bdrv_reopen_abort(bs, read_only);
}

/* To read-only: prepare all top-down, then commit all or abort all. */
static bool reopen_to_ro(GPtrArray *nodes, Error **errp)
{
    guint i;

    for (i = 0; i < nodes->len; i++) {
        if (!reopen_prepare_one(nodes->pdata[i], true, errp)) {
            break;
        }
    }
    if (i < nodes->len) {
        while (i-- > 0) {
            reopen_abort_one(nodes->pdata[i], true);
        }
        return false;
    }
    for (i = 0; i < nodes->len; i++) {
        reopen_commit_one(nodes->pdata[i], true);
    }
    return true;
}

/* Switch nodes[from..] (bottom part of the list) back to read-only. */
static void reopen_undo_rw(GPtrArray *nodes, guint from)
{
    for (guint i = from; i < nodes->len; i++) {
        BlockDriverState *bs = nodes->pdata[i];
        Error *local_err = NULL;

        if (reopen_prepare_one(bs, true, &local_err)) {
            reopen_commit_one(bs, true);
        } else {
            /* Stays writable; nothing above it writes, so no harm done. */
            warn_report("%s", error_get_pretty(local_err));
            error_free(local_err);
        }
    }
}

/*
 * To read-write: bottom-up, each node prepares (with its children already
 * writable) and commits; on failure the switched nodes go back.
 */
static bool reopen_to_rw(GPtrArray *nodes, Error **errp)
{
    guint i = nodes->len;

    while (i-- > 0) {
        BlockDriverState *bs = nodes->pdata[i];

        if (!reopen_prepare_one(bs, false, errp)) {
            reopen_undo_rw(nodes, i + 1);
            return false;
        }
        reopen_commit_one(bs, false);
    }
    return true;
}

int bdrv_reopen_set_read_only(BlockDriverState *bs, bool read_only,
                              Error **errp)
{
    g_autoptr(GPtrArray) nodes = reopen_collect(bs);
    bool ok;

    trace_bdrv_reopen_set_read_only(bs, read_only, bs->read_only);
    if (!reopen_check(nodes, errp)) {
        return -ENOTSUP;
    }
    bdrv_drained_begin(bs);
    ok = read_only ? reopen_to_ro(nodes, errp) : reopen_to_rw(nodes, errp);
    bdrv_drained_end(bs);
    return ok ? 0 : -EACCES;
}

/*
 * QMP commands on the block graph: query-block, query-named-block-nodes,
 * blockdev-add, blockdev-del, blockdev-snapshot-sync, blockdev-snapshot.
 *
 * State: none of its own. Drives and monitor-owned nodes live in
 * blockdev.c, the graph in block/block.c; the handlers here check their
 * arguments in QEMU 7.2's order and with its texts, then call one graph
 * operation. Every check that can fail runs before the graph changes, so
 * a failing command leaves query-named-block-nodes as it was (a snapshot
 * file created in absolute-paths mode may remain, as in QEMU).
 *
 * The snapshots are actions in steps (sysemu/blockdev-actions.h): the
 * prepare step does every check and the graph switch, abort undoes the
 * switch, so the transaction command (blockdev-transaction.c) can roll a
 * group back; the plain commands prepare, commit and clean at once.
 *
 * Handlers run in the monitor's coroutine on the main loop thread; a
 * snapshot waits there (draining the node) without blocking the loop.
 */
#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "block/block_int.h"
#include "block/qapi.h"
#include "sysemu/blockdev.h"
#include "sysemu/blockdev-actions.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-visit.h"
#include "trace.h"

/* ---- Queries */

/* Context of qmp_query_block's walk over the drives. */
typedef struct QueryBlockState {
    BlockInfoList **tail;
    Error *err;
} QueryBlockState;

/* Append the BlockInfo of one drive (stops adding after an error). */
static void query_block_one(const char *id, BlockDriverState *bs,
                            void *opaque)
{
    QueryBlockState *s = opaque;
    BlockInfo *info;

    if (s->err) {
        return;
    }
    info = bdrv_query_drive_info(id, bs, &s->err);
    if (info) {
        *s->tail = g_new0(BlockInfoList, 1);
        (*s->tail)->value = info;
        s->tail = &(*s->tail)->next;
    }
}

BlockInfoList *qmp_query_block(Error **errp)
{
    BlockInfoList *head = NULL;
    QueryBlockState s = { .tail = &head };

    blockdev_foreach_drive(query_block_one, &s);
    if (s.err) {
        error_propagate(errp, s.err);
        qapi_free_BlockInfoList(head);
        return NULL;
    }
    return head;
}

BlockDeviceInfoList *qmp_query_named_block_nodes(bool has_flat, bool flat,
                                                 Error **errp)
{
    BlockDeviceInfoList *head = NULL, **tail = &head;

    flat = has_flat && flat;
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        BlockDeviceInfo *info = bdrv_block_device_info(bs, flat, errp);

        if (!info) {
            qapi_free_BlockDeviceInfoList(head);
            return NULL;
        }
        *tail = g_new0(BlockDeviceInfoList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    return head;
}

/* ---- blockdev-add / blockdev-del */

/*
 * The typed options go back to JSON text and through the very path of
 * --blockdev, so both accept exactly the same and fail the same way.
 */
void qmp_blockdev_add(BlockdevOptions *options, Error **errp)
{
    JsonNode *node = qapi_BlockdevOptions_to_json(options);
    g_autofree char *text = json_to_string(node, FALSE);

    json_node_unref(node);
    trace_qmp_blockdev_add(options->node_name ? options->node_name : "",
                           BlockdevDriver_str(options->driver));
    blockdev_add(text, errp);
}

void qmp_blockdev_del(const char *node_name, Error **errp)
{
    BlockDriverState *bs = bdrv_find_node(node_name);

    trace_qmp_blockdev_del(node_name);
    /*
     * A node held by a block job is busy. In QEMU the job's own user sits
     * on a filter above the node, so the busy text comes before "in use".
     */
    if (bs && bdrv_op_is_blocked(bs, errp)) {
        return;
    }
    blockdev_del(node_name, errp);
}

/* ---- Snapshots */

/* True when a root user reaches bs directly or through filters only. */
static bool snapshot_seen_by_root(BlockDriverState *bs)
{
    for (GSList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        BlockDriverState *p = c->parent;

        if (!p || (p->drv && p->drv->is_filter && p->file == c &&
                   snapshot_seen_by_root(p))) {
            return true;
        }
    }
    return false;
}

/*
 * QEMU's bdrv_is_first_non_filter: bs is not a filter and is what some
 * user (a root, the monitor's included) sees first once filters are
 * skipped. Stricter than QEMU: a node that is a format node's child is
 * refused even when the monitor owns it.
 */
static bool snapshot_is_first_non_filter(BlockDriverState *bs)
{
    for (GSList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;

        if (c->parent && c->parent->drv && !c->parent->drv->is_filter) {
            return false;       /* the data child of a format node */
        }
    }
    return !(bs->drv && bs->drv->is_filter) && snapshot_seen_by_root(bs);
}

/* The node a snapshot goes on: found, and not hidden below a format. */
static BlockDriverState *snapshot_find_node(const char *device,
                                            const char *node_name,
                                            Error **errp)
{
    BlockDriverState *bs = blockdev_lookup_bs(device, node_name, errp);

    if (!bs) {
        return NULL;
    }
    /* A block job's blocker is the newest, so QEMU names it first. */
    if (bdrv_op_is_blocked(bs, errp) || !bdrv_check_not_backing(bs, errp)) {
        return NULL;
    }
    /*
     * QEMU 7.2 would also put an overlay between a format node and a
     * monitor-owned protocol node below it, so that the format's next
     * metadata write goes into the overlay; qblk refuses that.
     */
    if (!snapshot_is_first_non_filter(bs)) {
        error_setg(errp, "The feature 'snapshot' is not enabled");
        return NULL;
    }
    return bs;
}

/* bs's file name as an overlay header should record it: absolute. */
static char *snapshot_backing_name(BlockDriverState *bs)
{
    const char *name = bdrv_get_filename(bs);
    const char *sep = strpbrk(name, ":/");

    /* absolute, json: and "proto:" names are kept as they are */
    if (name[0] == '/' || (sep && *sep == ':')) {
        return g_strdup(name);
    }
    return g_canonicalize_filename(name, NULL);
}

/*
 * absolute-paths mode: create file in format fmt with bs as its recorded
 * backing file and bs's size (an existing file is overwritten).
 */
static bool snapshot_create_overlay(BlockDriverState *bs, const char *file,
                                    const char *fmt, Error **errp)
{
    const BlockDriver *drv = bdrv_find_format(fmt);
    g_autoptr(QDict) opts = NULL;
    g_autofree char *backing = NULL;
    int64_t size;

    if (!drv || drv->protocol) {
        error_setg(errp, "Unknown file format '%s'", fmt);
        return false;
    }
    if (!drv->supports_backing) {
        error_setg(errp, "Backing file not supported for file format '%s'",
                   fmt);
        return false;
    }
    size = bdrv_getlength(bs);
    if (size < 0) {
        error_setg_errno(errp, -size, "bdrv_getlength failed");
        return false;
    }
    backing = snapshot_backing_name(bs);
    opts = qdict_new();
    qdict_put_int(opts, "size", size);
    qdict_put_str(opts, "backing_file", backing);
    qdict_put_str(opts, "backing_fmt", bdrv_get_format_name(bs));
    trace_qmp_snapshot_create(file, fmt, backing, bdrv_get_format_name(bs),
                              size);
    return bdrv_create(drv, file, opts, errp) == 0;
}

/* QEMU's checks on a new overlay, in its order. */
static bool snapshot_check_overlay(BlockDriverState *overlay, Error **errp)
{
    int roots;

    bdrv_count_parents(overlay, NULL, &roots);
    if (roots) {
        error_setg(errp, "The overlay is already in use");
        return false;
    }
    if (!bdrv_check_not_backing(overlay, errp)) {
        return false;
    }
    if (overlay->backing) {
        error_setg(errp, "The overlay already has a backing image");
        return false;
    }
    if (!overlay->drv || !overlay->drv->supports_backing) {
        error_setg(errp, "The overlay does not support backing images");
        return false;
    }
    return true;
}

/* ---- Snapshot actions: prepare / commit / abort / clean */

/*
 * A prepared snapshot. From a successful prepare to clean it holds a
 * reference to both nodes and keeps bs drained, so no request runs
 * while the transaction may still switch the graph back.
 */
struct SnapshotAction {
    BlockDriverState *bs;       /* the node that got the overlay */
    BlockDriverState *overlay;  /* the new top */
    bool adopted;               /* overlay became monitor-owned */
};

/*
 * Put overlay on top of bs (drives follow with their properties). A new
 * overlay that got no user (bs was only monitor-owned) becomes
 * monitor-owned itself rather than vanish. Consumes the caller's
 * reference to overlay; on success the action holds it until clean.
 */
static SnapshotAction *snapshot_attach(BlockDriverState *bs,
                                       BlockDriverState *overlay,
                                       Error **errp)
{
    SnapshotAction *s;
    int ret;

    bdrv_ref(bs);
    bdrv_drained_begin(bs);
    ret = bdrv_append(overlay, bs, errp);
    trace_qmp_snapshot_done(bs, overlay, ret);
    if (ret < 0) {
        bdrv_drained_end(bs);
        bdrv_unref(bs);
        bdrv_unref(overlay);
        return NULL;
    }
    blockdev_drives_follow(bs, overlay);
    s = g_new0(SnapshotAction, 1);
    s->bs = bs;
    s->overlay = overlay;
    if (!overlay->parents) {
        bdrv_ref(overlay);      /* taken over by the monitor */
        if (!blockdev_adopt_node(overlay, errp)) {
            snapshot_action_abort(s);
            snapshot_action_clean(s);
            return NULL;
        }
        s->adopted = true;
    }
    return s;
}

void snapshot_action_commit(SnapshotAction *s)
{
    /*
     * From now on bs only changes if someone writes it directly; flush
     * its cached metadata so that its file is a complete image for
     * whoever copies or backs it up (the usual reason for a snapshot).
     */
    int ret = bdrv_flush(s->bs);

    trace_qmp_snapshot_commit(s->bs, s->overlay, ret);
    if (ret < 0) {
        warn_report("Failed to flush '%s' after the snapshot: %s",
                    s->bs->filename, g_strerror(-ret));
    }
}

void snapshot_action_abort(SnapshotAction *s)
{
    Error *err = NULL;

    trace_qmp_snapshot_abort(s->bs, s->overlay);
    /* users of the overlay (drives, exports) go back down to bs */
    if (bdrv_replace_node(s->overlay, s->bs, &err) < 0) {
        error_report_err(err);
        err = NULL;
    }
    blockdev_drives_follow(s->overlay, s->bs);
    if (bdrv_set_backing_hd(s->overlay, NULL, &err) < 0) {
        error_report_err(err);
        err = NULL;
    }
    if (s->adopted && !blockdev_del(s->overlay->node_name, &err)) {
        error_report_err(err);
    }
    s->adopted = false;
}

void snapshot_action_clean(SnapshotAction *s)
{
    bdrv_drained_end(s->bs);
    bdrv_unref(s->overlay);
    bdrv_unref(s->bs);
    g_free(s);
}

/* Open the overlay file without its backing chain, as bs is opened. */
static BlockDriverState *snapshot_open_overlay(BlockDriverState *bs,
                                               const char *file,
                                               const char *fmt,
                                               const char *node_name,
                                               Error **errp)
{
    QDict *opts = qdict_new();
    int flags = (bs->open_flags | BDRV_O_NO_BACKING) & ~BDRV_O_CHECK;

    qdict_put_str(opts, "driver", fmt);
    if (node_name) {
        qdict_put_str(opts, "node-name", node_name);
    }
    return bdrv_open(file, opts, flags, errp);
}

SnapshotAction *snapshot_sync_prepare(BlockdevSnapshotSync *args,
                                      Error **errp)
{
    const char *fmt = args->format ? args->format : "qcow2";
    NewImageMode mode = args->has_mode ? args->mode
                                       : NEW_IMAGE_MODE_ABSOLUTE_PATHS;
    const char *ov_name = args->snapshot_node_name;
    BlockDriverState *bs, *overlay;

    bs = snapshot_find_node(args->device, args->node_name, errp);
    if (!bs) {
        return NULL;
    }
    trace_qmp_snapshot_prepare(bs, args->snapshot_file,
                               ov_name ? ov_name : "", mode);
    if (args->node_name && !ov_name) {
        error_setg(errp, "New overlay node-name missing");
        return NULL;
    }
    if (ov_name && blockdev_name_in_use(ov_name)) {
        error_setg(errp, "New overlay node-name already in use");
        return NULL;
    }
    if (mode != NEW_IMAGE_MODE_EXISTING &&
        !snapshot_create_overlay(bs, args->snapshot_file, fmt, errp)) {
        return NULL;
    }
    overlay = snapshot_open_overlay(bs, args->snapshot_file, fmt, ov_name,
                                    errp);
    if (!overlay) {
        return NULL;
    }
    if (!snapshot_check_overlay(overlay, errp)) {
        bdrv_unref(overlay);
        return NULL;
    }
    return snapshot_attach(bs, overlay, errp);
}

SnapshotAction *snapshot_prepare(BlockdevSnapshot *args, Error **errp)
{
    BlockDriverState *bs, *ov;

    bs = snapshot_find_node(args->node, args->node, errp);
    if (!bs) {
        return NULL;
    }
    ov = blockdev_lookup_bs(args->overlay, args->overlay, errp);
    if (!ov || !snapshot_check_overlay(ov, errp)) {
        return NULL;
    }
    trace_qmp_snapshot_prepare(bs, "", args->overlay, -1);
    /* the monitor keeps owning the overlay; the switch adds users */
    bdrv_ref(ov);
    return snapshot_attach(bs, ov, errp);
}

/* A plain snapshot command: a transaction of one action. */
static void snapshot_finish(SnapshotAction *s)
{
    if (s) {
        snapshot_action_commit(s);
        snapshot_action_clean(s);
    }
}

void qmp_blockdev_snapshot_sync(const char *device, const char *node_name,
                                const char *snapshot_file,
                                const char *snapshot_node_name,
                                const char *format, bool has_mode,
                                NewImageMode mode, Error **errp)
{
    BlockdevSnapshotSync args = {
        .device = (char *)device,
        .node_name = (char *)node_name,
        .snapshot_file = (char *)snapshot_file,
        .snapshot_node_name = (char *)snapshot_node_name,
        .format = (char *)format,
        .has_mode = has_mode,
        .mode = mode,
    };

    snapshot_finish(snapshot_sync_prepare(&args, errp));
}

void qmp_blockdev_snapshot(const char *node, const char *overlay,
                           Error **errp)
{
    BlockdevSnapshot args = {
        .node = (char *)node,
        .overlay = (char *)overlay,
    };

    snapshot_finish(snapshot_prepare(&args, errp));
}

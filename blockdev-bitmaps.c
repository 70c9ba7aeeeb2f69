/*
 * QMP commands on dirty bitmaps: block-dirty-bitmap-add, -remove, -clear,
 * -enable and -disable (qapi/block-dirty-bitmap.json).
 *
 * State: none of its own; the bitmaps hang off their nodes
 * (block/dirty-bitmap.c). Each handler checks its arguments in QEMU 7.2's
 * order and with its texts, then makes one change, so a failing command
 * changes nothing. A busy bitmap (used by an operation such as a job)
 * refuses every change, as in QEMU. The bitmaps are reported by
 * query-block and query-named-block-nodes (block/qapi.c). Handlers run
 * on the main loop thread and never yield.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "sysemu/blockdev.h"
#include "qapi/qapi-commands.h"
#include "trace.h"

/*
 * The bitmap name on node (a drive id or node name), as QEMU's
 * block_dirty_bitmap_lookup answers: "Node 'N' not found" or "Dirty
 * bitmap 'B' not found".
 */
static BdrvDirtyBitmap *bitmap_lookup(const char *node, const char *name,
                                      Error **errp)
{
    BlockDriverState *bs = blockdev_lookup_bs(node, node, NULL);
    BdrvDirtyBitmap *bitmap;

    if (!bs) {
        error_setg(errp, "Node '%s' not found", node);
        return NULL;
    }
    bitmap = bdrv_find_dirty_bitmap(bs, name);
    if (!bitmap) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return NULL;
    }
    return bitmap;
}

/* False with QEMU's text when an operation holds the bitmap. */
static bool bitmap_check_not_busy(BdrvDirtyBitmap *bitmap, Error **errp)
{
    if (bdrv_dirty_bitmap_busy(bitmap)) {
        error_setg(errp, "Bitmap '%s' is currently in use by another "
                   "operation and cannot be used",
                   bdrv_dirty_bitmap_name(bitmap));
        return false;
    }
    return true;
}

void qmp_block_dirty_bitmap_add(BlockDirtyBitmapAdd *arg, Error **errp)
{
    BlockDriverState *bs;
    BdrvDirtyBitmap *bitmap;

    trace_qmp_block_dirty_bitmap("add", arg->node, arg->name);
    if (!arg->name[0]) {
        error_setg(errp, "Bitmap name cannot be empty");
        return;
    }
    bs = blockdev_lookup_bs(arg->node, arg->node, errp);
    if (!bs) {
        return;
    }
    if (arg->has_granularity &&
        (arg->granularity < 512 ||
         (arg->granularity & (arg->granularity - 1)))) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return;
    }
    if (arg->has_persistent && arg->persistent) {
        error_setg(errp, "Persistent bitmaps are not supported");
        return;
    }
    bitmap = bdrv_create_dirty_bitmap(bs, arg->has_granularity ?
                                      arg->granularity : 0,
                                      arg->name, errp);
    if (bitmap && arg->has_disabled && arg->disabled) {
        bdrv_dirty_bitmap_set_enabled(bitmap, false);
    }
}

void qmp_block_dirty_bitmap_remove(BlockDirtyBitmap *arg, Error **errp)
{
    BdrvDirtyBitmap *bitmap;

    trace_qmp_block_dirty_bitmap("remove", arg->node, arg->name);
    bitmap = bitmap_lookup(arg->node, arg->name, errp);
    if (bitmap && bitmap_check_not_busy(bitmap, errp)) {
        bdrv_release_dirty_bitmap(bitmap);
    }
}

void qmp_block_dirty_bitmap_clear(BlockDirtyBitmap *arg, Error **errp)
{
    BdrvDirtyBitmap *bitmap;

    trace_qmp_block_dirty_bitmap("clear", arg->node, arg->name);
    bitmap = bitmap_lookup(arg->node, arg->name, errp);
    if (bitmap && bitmap_check_not_busy(bitmap, errp)) {
        bdrv_clear_dirty_bitmap(bitmap);
    }
}

void qmp_block_dirty_bitmap_enable(BlockDirtyBitmap *arg, Error **errp)
{
    BdrvDirtyBitmap *bitmap;

    trace_qmp_block_dirty_bitmap("enable", arg->node, arg->name);
    bitmap = bitmap_lookup(arg->node, arg->name, errp);
    if (bitmap && bitmap_check_not_busy(bitmap, errp)) {
        bdrv_dirty_bitmap_set_enabled(bitmap, true);
    }
}

void qmp_block_dirty_bitmap_disable(BlockDirtyBitmap *arg, Error **errp)
{
    BdrvDirtyBitmap *bitmap;

    trace_qmp_block_dirty_bitmap("disable", arg->node, arg->name);
    bitmap = bitmap_lookup(arg->node, arg->name, errp);
    if (bitmap && bitmap_check_not_busy(bitmap, errp)) {
        bdrv_dirty_bitmap_set_enabled(bitmap, false);
    }
}

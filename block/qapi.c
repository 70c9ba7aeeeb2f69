/*
 * The block graph as QAPI data (query-block, query-named-block-nodes).
 *
 * State: none. Each call reads the nodes as they are now and builds new
 * QAPI objects from them; nothing here keeps a pointer to a node, so the
 * results stay valid whatever happens to the graph afterwards. Main loop
 * thread only (the graph does not change under a running query: the
 * functions here never yield).
 *
 * Member choices follow QEMU 7.2's bdrv_query_image_info and
 * bdrv_block_device_info: optional image members appear only when the
 * driver can tell them; throttling limits are all 0 (qblk has none),
 * detect_zeroes is "off" and the write cache is always on.
 */
#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "block/qapi.h"
#include "qapi/qapi-visit.h"
#include "trace.h"

/* A filter shows its file child's data, an image its backing node's. */
BlockDriverState *bdrv_filter_or_cow_bs(BlockDriverState *bs)
{
    if (!bs || !bs->drv) {
        return NULL;
    }
    if (bs->drv->is_filter) {
        return bdrv_file_bs(bs);
    }
    return bdrv_backing_bs(bs);
}

/*
 * The driver's format-specific facts, converted through the schema type
 * (so what the monitor prints is what the schema declares); NULL when the
 * driver has none or they do not fit the schema.
 */
static ImageInfoSpecific *bdrv_query_specific(BlockDriverState *bs)
{
    g_autofree char *text = bdrv_get_specific_info_json(bs, NULL);
    ImageInfoSpecific *spec = NULL;
    JsonNode *node;

    if (!text) {
        return NULL;
    }
    node = json_from_string(text, NULL);
    if (node) {
        spec = qapi_ImageInfoSpecific_from_json(node, NULL);
        json_node_unref(node);
    }
    return spec;
}

/* Fill the backing-file members of info from bs's header. */
static void bdrv_query_backing_names(BlockDriverState *bs, ImageInfo *info)
{
    const char *backing = bdrv_get_backing_filename(bs);
    const char *fmt = bdrv_get_backing_format(bs);

    if (!backing[0]) {
        return;
    }
    info->backing_filename = g_strdup(backing);
    info->full_backing_filename = bdrv_get_full_backing_filename(bs, NULL);
    if (fmt[0]) {
        info->backing_filename_format = g_strdup(fmt);
    }
}

/* ImageInfo of bs alone (no backing-image). */
static ImageInfo *bdrv_query_one_image(BlockDriverState *bs, Error **errp)
{
    int64_t size = bdrv_getlength(bs);
    BlockDriverInfo bdi;
    ImageInfo *info;
    int64_t used;

    if (size < 0) {
        error_setg_errno(errp, -size, "Can't get image size '%s'",
                         bs->filename);
        return NULL;
    }
    info = g_new0(ImageInfo, 1);
    info->filename = g_strdup(bs->filename);
    info->format = g_strdup(bdrv_get_format_name(bs));
    info->virtual_size = size;
    used = bdrv_get_allocated_file_size(bs);
    if (used >= 0) {
        info->has_actual_size = true;
        info->actual_size = used;
    }
    if (bdrv_get_info(bs, &bdi) >= 0) {
        if (bdi.cluster_size) {
            info->has_cluster_size = true;
            info->cluster_size = bdi.cluster_size;
        }
        info->has_dirty_flag = true;
        info->dirty_flag = bdi.is_dirty;
    }
    info->format_specific = bdrv_query_specific(bs);
    bdrv_query_backing_names(bs, info);
    return info;
}

/*
 * One ImageInfo per node down the chain, each linked into the previous
 * one's backing-image; a failure anywhere frees what was built.
 */
ImageInfo *bdrv_query_image_info(BlockDriverState *bs, bool chain,
                                 Error **errp)
{
    ImageInfo *top = NULL;
    ImageInfo **tail = &top;

    trace_bdrv_query_image_info(bs, chain);
    for (; bs; bs = chain ? bdrv_filter_or_cow_bs(bs) : NULL) {
        *tail = bdrv_query_one_image(bs, errp);
        if (!*tail) {
            qapi_free_ImageInfo(top);
            return NULL;
        }
        tail = &(*tail)->backing_image;
    }
    return top;
}

/* Nodes below bs in its chain (backing or filtered), as QEMU counts. */
static int64_t bdrv_query_depth(BlockDriverState *bs)
{
    int64_t depth = 0;

    for (bs = bdrv_filter_or_cow_bs(bs); bs; bs = bdrv_filter_or_cow_bs(bs)) {
        depth++;
    }
    return depth;
}

/* The node's dirty bitmaps as BlockDirtyInfo, in creation order. */
static BlockDirtyInfoList *bdrv_query_dirty_bitmaps(BlockDriverState *bs)
{
    BlockDirtyInfoList *head = NULL, **tail = &head;

    for (BdrvDirtyBitmap *b = bdrv_dirty_bitmap_next(bs, NULL); b;
         b = bdrv_dirty_bitmap_next(bs, b)) {
        BlockDirtyInfo *info = g_new0(BlockDirtyInfo, 1);

        info->name = g_strdup(bdrv_dirty_bitmap_name(b));
        info->count = bdrv_get_dirty_count(b);
        info->granularity = bdrv_dirty_bitmap_granularity(b);
        info->recording = bdrv_dirty_bitmap_enabled(b);
        info->busy = bdrv_dirty_bitmap_busy(b);
        info->persistent = false;
        *tail = g_new0(BlockDirtyInfoList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    return head;
}

/*
 * The node's own facts; the cache mode comes from its open flags (the
 * write cache is always on in qblk, so writeback is true).
 */
BlockDeviceInfo *bdrv_block_device_info(BlockDriverState *bs, bool flat,
                                        Error **errp)
{
    ImageInfo *image = bdrv_query_image_info(bs, !flat, errp);
    BlockDeviceInfo *info;

    if (!image) {
        return NULL;
    }
    info = g_new0(BlockDeviceInfo, 1);
    info->file = g_strdup(bs->filename);
    info->node_name = g_strdup(bdrv_get_node_name(bs));
    info->ro = bdrv_is_read_only(bs);
    info->drv = g_strdup(bdrv_get_format_name(bs));
    if (bdrv_get_backing_filename(bs)[0]) {
        info->backing_file = g_strdup(bdrv_get_backing_filename(bs));
    }
    info->backing_file_depth = bdrv_query_depth(bs);
    info->encrypted = false;
    info->detect_zeroes = BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF;
    info->image = image;
    info->cache = g_new0(BlockdevCacheInfo, 1);
    info->cache->writeback = true;
    info->cache->direct = !!(bs->open_flags & BDRV_O_NOCACHE);
    info->cache->no_flush = !!(bs->open_flags & BDRV_O_NO_FLUSH);
    info->write_threshold = 0;
    info->dirty_bitmaps = bdrv_query_dirty_bitmaps(bs);
    return info;
}

/* A drive without a node (no medium) would have no @inserted. */
BlockInfo *bdrv_query_drive_info(const char *id, BlockDriverState *bs,
                                 Error **errp)
{
    BlockInfo *info = g_new0(BlockInfo, 1);

    info->device = g_strdup(id);
    info->type = g_strdup("unknown");
    info->removable = false;
    info->locked = false;
    while (bs && bs->implicit && bs->file) {
        bs = bs->file->bs;      /* a job's own filter is not shown */
    }
    if (bs) {
        info->inserted = bdrv_block_device_info(bs, false, errp);
        if (!info->inserted) {
            qapi_free_BlockInfo(info);
            return NULL;
        }
    }
    return info;
}

/*
 * The block graph as QAPI data: ImageInfo, BlockDeviceInfo and BlockInfo
 * built from open nodes, for query-block and query-named-block-nodes
 * (and HMP's info block, through those commands).
 *
 * Every function returns a new object the caller frees with the
 * generated qapi_free_*(), or NULL with errp set.
 */
#ifndef BLOCK_QAPI_H
#define BLOCK_QAPI_H

#include "block/block.h"
#include "qapi/qapi-types.h"

/*
 * QEMU's ImageInfo of bs. With chain, the node below bs (its backing
 * node, or a filter's child) is described in backing-image, recursively.
 */
ImageInfo *bdrv_query_image_info(BlockDriverState *bs, bool chain,
                                 Error **errp);

/* QEMU's BlockDeviceInfo of bs; flat leaves out the nested chain. */
BlockDeviceInfo *bdrv_block_device_info(BlockDriverState *bs, bool flat,
                                        Error **errp);

/* QEMU's BlockInfo of the drive called id whose top node is bs. */
BlockInfo *bdrv_query_drive_info(const char *id, BlockDriverState *bs,
                                 Error **errp);

/* The node below bs in the sense of query-block: backing, or filtered. */
BlockDriverState *bdrv_filter_or_cow_bs(BlockDriverState *bs);

#endif /* BLOCK_QAPI_H */

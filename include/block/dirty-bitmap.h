/*
 * Dirty bitmaps: which ranges of a node were written since a point in
 * time (block/dirty-bitmap.c).
 *
 * A bitmap belongs to one node and has a granularity (a power of two
 * >= 512 bytes); a bit set means "some byte of this granule changed".
 * Every write, zero write and discard that completes on the node marks
 * all of its enabled bitmaps (the request path calls bdrv_set_dirty()).
 * Named bitmaps are the user's (QMP block-dirty-bitmap-add/-remove,
 * never persistent in qblk); anonymous ones (name NULL) belong to jobs,
 * e.g. active commit, which may also set/reset bits itself.
 * Main loop thread only; no locking.
 */
#ifndef BLOCK_DIRTY_BITMAP_H
#define BLOCK_DIRTY_BITMAP_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "block/block.h"

typedef struct BdrvDirtyBitmap BdrvDirtyBitmap;

/*
 * New, empty, enabled bitmap on bs. granularity 0 = default (64 KiB or
 * the node's cluster size). A name already used on bs: "Bitmap already
 * exists: NAME" (QEMU's text); a bad granularity: "Granularity must be
 * power of 2 and at least 512" (QEMU 7.2's text, no comma).
 */
BdrvDirtyBitmap *bdrv_create_dirty_bitmap(BlockDriverState *bs,
                                          uint32_t granularity,
                                          const char *name, Error **errp);
void bdrv_release_dirty_bitmap(BdrvDirtyBitmap *bitmap);
/* Release every bitmap of bs (node close). */
void bdrv_release_all_dirty_bitmaps(BlockDriverState *bs);
BdrvDirtyBitmap *bdrv_find_dirty_bitmap(BlockDriverState *bs,
                                        const char *name);
/* Bitmaps of bs in creation order: next(bs, NULL) is the first. */
BdrvDirtyBitmap *bdrv_dirty_bitmap_next(BlockDriverState *bs,
                                        BdrvDirtyBitmap *bitmap);

const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *bitmap);
uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *bitmap);
/* The node size the bitmap covers (follows the node when it grows). */
int64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *bitmap);
/* Disabled bitmaps are not marked by writes (block-dirty-bitmap-disable). */
void bdrv_dirty_bitmap_set_enabled(BdrvDirtyBitmap *bitmap, bool enabled);
bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *bitmap);
/* A bitmap in use by an operation cannot be removed ("busy"). */
void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *bitmap, bool busy);
bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *bitmap);

/* Set / clear every granule touching [offset, offset + bytes). */
void bdrv_set_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                           int64_t bytes);
void bdrv_reset_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                             int64_t bytes);
void bdrv_clear_dirty_bitmap(BdrvDirtyBitmap *bitmap);
bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *bitmap, int64_t offset);
/* Number of dirty bytes (dirty granules x granularity, capped at size). */
int64_t bdrv_get_dirty_count(const BdrvDirtyBitmap *bitmap);
/*
 * The first dirty range in [offset, end): true with *start and *count
 * (granule-aligned, clipped to end and to max_bytes when > 0), false if
 * the range is clean. Cost proportional to the words scanned.
 */
bool bdrv_dirty_bitmap_next_dirty_area(const BdrvDirtyBitmap *bitmap,
                                       int64_t offset, int64_t end,
                                       int64_t max_bytes, int64_t *start,
                                       int64_t *count);

/* The request path: a write/zero/discard of bs completed (or started). */
void bdrv_set_dirty(BlockDriverState *bs, int64_t offset, int64_t bytes);
/* The request path: bs was resized to size bytes (bitmaps follow). */
void bdrv_dirty_bitmap_truncate(BlockDriverState *bs, int64_t size);

#endif /* BLOCK_DIRTY_BITMAP_H */

/*
 * Block status: what a node holds at an offset (data, zeroes, nothing)
 * and where, for one node and across a backing chain.
 *
 * Follows QEMU's semantics so that "qblk-img map" and "qemu-img map"
 * agree: a driver answers for one node, this file resolves BDRV_BLOCK_RAW
 * delegation and RECURSE refinement, derives ALLOCATED, and walks backing
 * chains without ever iterating per cluster.
 *
 * Stateless: every answer is computed from the drivers on demand.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/io-internal.h"
#include "trace.h"

/*
 * Length of bs for status answers. A protocol node's total_bytes is kept
 * current by the request path (writes past EOF, truncate), so it is used
 * as is rather than asking the driver (an fstat per call, and status is
 * asked per request); formats answer from their metadata anyway.
 */
static int64_t bdrv_status_length(BlockDriverState *bs)
{
    if (bs->drv && bs->drv->protocol && bs->total_bytes > 0) {
        return bs->total_bytes;
    }
    return bdrv_getlength(bs);
}

/* The node whose data shows through where bs allocates nothing. */
static BlockDriverState *bdrv_cow_or_filtered(BlockDriverState *bs)
{
    if (bs->backing) {
        return bs->backing->bs;
    }
    if (bs->drv && bs->drv->is_filter && bs->file) {
        return bs->file->bs;
    }
    return NULL;
}

/* Status without a driver callback: protocols hold data, filters defer. */
static int bdrv_block_status_default(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, int64_t *pnum,
                                     int64_t *map, BlockDriverState **file)
{
    *pnum = bytes;
    *map = offset;
    if (bs->drv->protocol) {
        *file = bs;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    if (bs->drv->is_filter && bs->file) {
        *file = bs->file->bs;
        return BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
    }
    return BDRV_BLOCK_DATA;
}

/* Ask the driver about an aligned superset of the range and trim back. */
static int coroutine_fn bdrv_block_status_driver(BlockDriverState *bs,
                                                 bool want_zero,
                                                 int64_t offset,
                                                 int64_t bytes, int64_t total,
                                                 int64_t *pnum, int64_t *map,
                                                 BlockDriverState **file)
{
    int64_t align = bs->bl.request_alignment;
    int64_t aoff = QEMU_ALIGN_DOWN(offset, align);
    int64_t aend = MIN(QEMU_ALIGN_UP(offset + bytes, align),
                       QEMU_ALIGN_UP(total, align));
    int64_t n = 0;
    int ret;

    ret = bs->drv->bdrv_co_block_status(bs, want_zero, aoff, aend - aoff, &n,
                                        map, file);
    if (ret < 0) {
        return ret;
    }
    n = MIN(n, aend - aoff);
    if (n <= offset - aoff) {
        return -EIO;    /* the driver made no progress */
    }
    *pnum = MIN(n - (offset - aoff), bytes);
    if (ret & BDRV_BLOCK_OFFSET_VALID) {
        *map += offset - aoff;
    }
    return ret;
}

/*
 * Refine a DATA answer by asking the file where it is stored: holes
 * there (or bytes past its end) read as zeroes.
 */
static int coroutine_fn bdrv_block_status_refine(BlockDriverState *file,
                                                 int ret, int64_t map,
                                                 int64_t *pnum);

/*
 * Status of bs alone (see bdrv_co_block_status), with the driver's
 * want_zero hint.
 */
static int coroutine_fn bdrv_co_status_one(BlockDriverState *bs,
                                           bool want_zero, int64_t offset,
                                           int64_t bytes, int64_t *pnum,
                                           int64_t *map,
                                           BlockDriverState **file)
{
    BlockDriverState *local_file = NULL, *cow;
    int64_t local_map = 0, total;
    int ret;

    *pnum = 0;
    if (!bs || !bs->drv) {
        return -ENOMEDIUM;
    }
    total = bdrv_status_length(bs);
    if (total < 0) {
        return total;
    }
    if (offset < 0 || bytes < 0) {
        return -EIO;
    }
    if (offset >= total) {
        return BDRV_BLOCK_EOF;
    }
    bytes = MIN(bytes, total - offset);
    if (bytes == 0) {
        return 0;
    }
    if (bs->drv->bdrv_co_block_status) {
        ret = bdrv_block_status_driver(bs, want_zero, offset, bytes, total,
                                       pnum, &local_map, &local_file);
    } else {
        ret = bdrv_block_status_default(bs, offset, bytes, pnum, &local_map,
                                        &local_file);
    }
    if (ret < 0) {
        return ret;
    }
    if (ret & BDRV_BLOCK_RAW) {
        if (!local_file) {
            return -EIO;
        }
        ret = bdrv_co_status_one(local_file, want_zero, local_map, *pnum,
                                 pnum, &local_map, &local_file);
        if (ret < 0) {
            return ret;
        }
        ret &= ~BDRV_BLOCK_EOF;
        goto out;
    }
    if ((ret & BDRV_BLOCK_RECURSE) && want_zero && local_file &&
        (ret & BDRV_BLOCK_OFFSET_VALID) && (ret & BDRV_BLOCK_DATA) &&
        !(ret & BDRV_BLOCK_ZERO)) {
        ret = bdrv_block_status_refine(local_file, ret, local_map, pnum);
    }
    ret &= ~(BDRV_BLOCK_RECURSE | BDRV_BLOCK_EOF);
    if (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO)) {
        ret |= BDRV_BLOCK_ALLOCATED;
    } else if (!bs->drv->is_filter) {
        /* Unallocated: zeroes unless a backing node supplies the data. */
        cow = bdrv_cow_or_filtered(bs);
        if (!cow || offset >= bdrv_status_length(cow)) {
            ret |= BDRV_BLOCK_ZERO;
        }
    }
out:
    if (offset + *pnum >= total) {
        ret |= BDRV_BLOCK_EOF;
    }
    if (map) {
        *map = local_map;
    }
    if (file) {
        *file = local_file;
    }
    return ret;
}

/*
 * RECURSE refinement of a format's DATA answer: ask its file about the
 * host range at map. Where the file has a hole (or ends) the data reads
 * as zeroes, so ZERO is added and *pnum shrinks to the file's answer; if
 * the file cannot tell, ret is returned unchanged. Coroutine context.
 */
static int coroutine_fn bdrv_block_status_refine(BlockDriverState *file,
                                                 int ret, int64_t map,
                                                 int64_t *pnum)
{
    int64_t file_pnum = 0;
    int ret2 = bdrv_co_status_one(file, true, map, *pnum, &file_pnum, NULL,
                                  NULL);

    if (ret2 < 0) {
        return ret;
    }
    if (file_pnum == 0) {
        return ret | BDRV_BLOCK_ZERO;
    }
    *pnum = file_pnum;
    return ret | (ret2 & BDRV_BLOCK_ZERO);
}

/* Status of one node with precise zero detection (see block.h). */
int coroutine_fn bdrv_co_block_status(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum,
                                      int64_t *map, BlockDriverState **file)
{
    int64_t local_pnum;
    int ret;

    pnum = pnum ? pnum : &local_pnum;
    ret = bdrv_co_status_one(bs, true, offset, bytes, pnum, map, file);
    trace_bdrv_co_block_status(bs, offset, bytes, ret, *pnum);
    return ret;
}

/*
 * Walk from bs towards base. Each lower layer is only asked about the
 * prefix that all upper layers leave unallocated, so *pnum only shrinks
 * and a sparse chain is answered in a handful of driver calls however big
 * it is. The walk stops at the first layer that allocates the range or
 * knows it reads as zeroes; qemu-img map reports the same depth.
 */
int coroutine_fn bdrv_co_block_status_above(BlockDriverState *bs,
                                            BlockDriverState *base,
                                            int64_t offset, int64_t bytes,
                                            int64_t *pnum, int64_t *map,
                                            BlockDriverState **file,
                                            int *depth)
{
    int64_t total = bdrv_status_length(bs), local_pnum;
    BlockDriverState *p = bs, *next;
    int d = 0, ret;

    pnum = pnum ? pnum : &local_pnum;
    if (total < 0) {
        return total;
    }
    for (;;) {
        ret = bdrv_co_status_one(p, true, offset, bytes, pnum, map, file);
        if (ret < 0) {
            return ret;
        }
        if (*pnum == 0 && p != bs) {
            /* Past the end of a shorter lower layer: its EOF reads zero. */
            *pnum = bytes;
            ret = BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED;
            if (file) {
                *file = p;
            }
            break;
        }
        if (*pnum == 0 || (ret & (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_ZERO))) {
            break;
        }
        next = bdrv_cow_or_filtered(p);
        if (!next || next == base) {
            break;
        }
        bytes = *pnum;
        p = next;
        d++;
    }
    ret &= ~BDRV_BLOCK_EOF;
    if (offset + *pnum >= total) {
        ret |= BDRV_BLOCK_EOF;
    }
    if (depth) {
        *depth = d;
    }
    trace_bdrv_co_block_status_above(bs, base, offset, ret, *pnum, d);
    return ret;
}

/* Allocation only (drivers may skip zero detection): 1, 0 or -errno. */
int coroutine_fn bdrv_co_is_allocated(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum)
{
    int64_t local_pnum;
    int ret;

    pnum = pnum ? pnum : &local_pnum;
    ret = bdrv_co_status_one(bs, false, offset, bytes, pnum, NULL, NULL);
    if (ret < 0) {
        return ret;
    }
    return !!(ret & BDRV_BLOCK_ALLOCATED);
}

/*
 * Like the walk above, but for jobs deciding what to copy: a range past
 * the end of a shorter intermediate layer counts as allocated there (it
 * reads as zeroes because of that layer, whatever lies below), as in
 * QEMU. Layers between top and base are asked; base too if include_base.
 */
int coroutine_fn bdrv_co_is_allocated_above(BlockDriverState *top,
                                            BlockDriverState *base,
                                            bool include_base,
                                            int64_t offset, int64_t bytes,
                                            int64_t *pnum)
{
    int64_t n = bytes, local_pnum;
    BlockDriverState *p = top;

    pnum = pnum ? pnum : &local_pnum;
    for (;;) {
        int ret = bdrv_co_is_allocated(p, offset, n, pnum);
        BlockDriverState *next;

        if (ret < 0) {
            return ret;
        }
        if (*pnum == 0 && p != top) {
            /* Past the end of a shorter layer, which thus decides: zero. */
            *pnum = n;
            return 1;
        }
        if (ret == 1 || *pnum == 0) {
            return ret;
        }
        n = *pnum;
        next = bdrv_cow_or_filtered(p);
        if (p == base || !next || (next == base && !include_base)) {
            return 0;
        }
        p = next;
    }
}

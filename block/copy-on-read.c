/*
 * Filter driver "copy-on-read": every read through this node becomes a
 * copy-on-read of its child, as with QEMU's
 *   --blockdev driver=copy-on-read,file=NODE,node-name=X
 *
 * State: none. The node has one "file" child (a node reference or inline
 * options) and forwards every call to it; reads additionally carry
 * BDRV_REQ_COPY_ON_READ, so the core (block/io.c) populates the child
 * from its backing chain, serialised against overlapping requests on
 * the child. All data safety therefore lives in the core: this file
 * holds no buffers and no ordering of its own. Flushes reach the child
 * through the core (it flushes a node's non-backing children).
 *
 * QEMU 7.2's "bottom" option (limit copying to the chain above a node)
 * is refused as not supported.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qapi/error.h"
#include "qemu/qdict.h"
#include "trace.h"

/* Open the one child; refuse options this filter does not implement. */
static int cor_open(BlockDriverState *bs, QDict *options, int flags,
                    Error **errp)
{
    if (qdict_haskey(options, "bottom")) {
        error_setg(errp, "copy-on-read: option 'bottom' is not supported");
        return -ENOTSUP;
    }
    bs->file = bdrv_open_child(NULL, options, "file", bs,
                               BDRV_CHILD_FILTERED | BDRV_CHILD_FILE, false,
                               errp);
    if (!bs->file) {
        return -EINVAL;
    }
    g_strlcpy(bs->filename, bs->file->bs->filename, sizeof(bs->filename));
    trace_cor_open(bs, bs->file->bs);
    return 0;
}

/* The child's guest-visible length. */
static int64_t cor_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

/* Reads (and prefetches, qiov NULL) become copy-on-read on the child. */
static int coroutine_fn cor_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, QEMUIOVector *qiov,
                                      BdrvRequestFlags flags)
{
    trace_cor_co_preadv(bs, offset, bytes, flags);
    return bdrv_co_preadv(bs->file, offset, bytes, qiov,
                          flags | BDRV_REQ_COPY_ON_READ);
}

static int coroutine_fn cor_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    return bdrv_co_pwritev(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn cor_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    return bdrv_co_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int coroutine_fn cor_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    return bdrv_co_pdiscard(bs->file, offset, bytes);
}

static int coroutine_fn cor_co_truncate(BlockDriverState *bs, int64_t offset,
                                        bool exact, PreallocMode prealloc,
                                        BdrvRequestFlags flags, Error **errp)
{
    return bdrv_co_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

/* The child's cluster size, so overlap grains match below and here. */
static int cor_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return bdrv_get_info(bs->file->bs, bdi);
}

const BlockDriver bdrv_copy_on_read = {
    .format_name = "copy-on-read",
    .is_filter = true,

    .bdrv_open = cor_open,
    .bdrv_getlength = cor_getlength,
    .bdrv_get_info = cor_get_info,

    .bdrv_co_preadv = cor_co_preadv,
    .bdrv_co_pwritev = cor_co_pwritev,
    .bdrv_co_pwrite_zeroes = cor_co_pwrite_zeroes,
    .bdrv_co_pdiscard = cor_co_pdiscard,
    .bdrv_co_truncate = cor_co_truncate,

    /* Everything is passed through; the child's core emulates the rest. */
    .supported_write_flags = BDRV_REQ_FUA,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK |
                            BDRV_REQ_FUA,
};

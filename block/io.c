/*
 * The request path: the one place that calls drivers' data callbacks.
 *
 * Every read, write, zero write, discard, flush and truncate enters here
 * through a BdrvChild, is range-checked, counted in bs->in_flight and
 * shaped to the driver's contract (block_int.h): aligned to
 * bl.request_alignment (partial blocks are read into an aligned bounce
 * buffer; writes do read-modify-write), split at bl.max_transfer, clamped
 * at the end of the node (reads beyond EOF return zeroes; only protocol
 * nodes may grow by writing past EOF).
 *
 * Each data request (and discard, truncate) is tracked from entry to
 * completion (io-tracking.c): a read-modify-write, a copy-on-read and a
 * truncate are serialising, so they never interleave with an overlapping
 * request. Copy-on-read reads go to io-copy-on-read.c once tracked; block
 * status lives in io-block-status.c. io-internal.h is the seam between
 * these files.
 *
 * Everything runs in coroutines on the main loop thread, so lists and
 * counters need no locking; nothing here holds a lock across a yield.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "block/io-internal.h"
#include "qemu/aio.h"
#include "trace.h"

/* Largest zero buffer written at once when zeroes are emulated. */
#define BDRV_ZERO_BUF_MAX (1 * MiB)

/* Read flags a filter driver receives, to forward to its child. */
#define BDRV_REQ_READ_FLAGS (BDRV_REQ_COPY_ON_READ | BDRV_REQ_PREFETCH | \
                             BDRV_REQ_COR_HIDE_BACKING)

/* Flags that only this layer handles and drivers never see on writes. */
#define BDRV_REQ_CORE_ONLY (BDRV_REQ_ZERO_WRITE | BDRV_REQ_NO_FALLBACK | \
                            BDRV_REQ_COPY_ON_READ | BDRV_REQ_PREFETCH | \
                            BDRV_REQ_COR_HIDE_BACKING)

/* -EIO for negative or overflowing ranges, -EINVAL for a short qiov. */
static int bdrv_check_request(int64_t offset, int64_t bytes,
                              QEMUIOVector *qiov)
{
    if (offset < 0 || bytes < 0 || offset > INT64_MAX - bytes) {
        return -EIO;
    }
    if (qiov && qiov->size < (uint64_t)bytes) {
        return -EINVAL;
    }
    return 0;
}

/* The node behind child, or NULL when it has no driver (no medium). */
static BlockDriverState *bdrv_child_node(BdrvChild *child)
{
    return child && child->bs && child->bs->drv ? child->bs : NULL;
}

/* Largest chunk the driver takes: max_transfer rounded to the alignment. */
static int64_t bdrv_max_chunk(int64_t max, int64_t align)
{
    if (!max) {
        return INT64_MAX / 2;
    }
    return MAX(QEMU_ALIGN_DOWN(max, align), align);
}

/* True when every buffer of qiov suits bs's min_mem_alignment (O_DIRECT). */
static bool bdrv_qiov_is_aligned(BlockDriverState *bs, QEMUIOVector *qiov)
{
    size_t align = bs->bl.min_mem_alignment;

    if (align <= 1) {
        return true;
    }
    for (int i = 0; i < qiov->niov; i++) {
        if ((uintptr_t)qiov->iov[i].iov_base % align ||
            qiov->iov[i].iov_len % align) {
            return false;
        }
    }
    return true;
}

/* Call the driver's read or write callback with qiov as it is. */
static int coroutine_fn bdrv_driver_call(BlockDriverState *bs, bool write,
                                         int64_t offset, int64_t bytes,
                                         QEMUIOVector *qiov,
                                         BdrvRequestFlags flags)
{
    return write ? bs->drv->bdrv_co_pwritev(bs, offset, bytes, qiov, flags)
                 : bs->drv->bdrv_co_preadv(bs, offset, bytes, qiov, flags);
}

/*
 * Driver I/O through an aligned bounce buffer, for callers whose buffers
 * do not meet the node's memory alignment.
 */
static int coroutine_fn bdrv_driver_bounce(BlockDriverState *bs, bool write,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov,
                                           BdrvRequestFlags flags)
{
    void *buf = qemu_try_blockalign(bs, bytes);
    QEMUIOVector bq;
    int ret;

    if (!buf) {
        return -ENOMEM;
    }
    qemu_iovec_init_buf(&bq, buf, bytes);
    if (write) {
        qemu_iovec_to_buf(qiov, 0, buf, bytes);
    }
    ret = bdrv_driver_call(bs, write, offset, bytes, &bq, flags);
    if (ret == 0 && !write) {
        qemu_iovec_from_buf(qiov, 0, buf, bytes);
    }
    qemu_vfree(buf);
    return ret;
}

/* Driver I/O on bytes [qoff, qoff + bytes) of qiov, bouncing if needed. */
static int coroutine_fn bdrv_driver_rw(BlockDriverState *bs, bool write,
                                       int64_t offset, int64_t bytes,
                                       QEMUIOVector *qiov, size_t qoff,
                                       BdrvRequestFlags flags)
{
    const BlockDriver *drv = bs->drv;
    QEMUIOVector local;
    int ret;

    if (!(write ? drv->bdrv_co_pwritev : drv->bdrv_co_preadv)) {
        return -ENOTSUP;
    }
    qemu_iovec_init_slice(&local, qiov, qoff, bytes);
    if (bdrv_qiov_is_aligned(bs, &local)) {
        ret = bdrv_driver_call(bs, write, offset, bytes, &local, flags);
    } else {
        ret = bdrv_driver_bounce(bs, write, offset, bytes, &local, flags);
    }
    qemu_iovec_destroy(&local);
    return ret;
}

/* ---- Reads */

/*
 * Read an aligned range into qiov at qoff: the driver sees the part up to
 * EOF (rounded up to the alignment), split at max_transfer; the rest reads
 * as zeroes.
 */
static int coroutine_fn bdrv_aligned_preadv(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            QEMUIOVector *qiov, size_t qoff,
                                            BdrvRequestFlags flags)
{
    int64_t align = bs->bl.request_alignment;
    int64_t chunk = bdrv_max_chunk(bs->bl.max_transfer, align);
    int64_t in_file = MAX(0, MIN(bytes, bs->total_bytes - offset));
    int64_t done = 0;

    /* Only filters see read flags: they forward copy-on-read below. */
    flags = bs->drv->is_filter ? flags & BDRV_REQ_READ_FLAGS : 0;
    in_file = MIN(QEMU_ALIGN_UP(in_file, align), bytes);
    while (done < in_file) {
        int64_t n = MIN(in_file - done, chunk);
        int ret = bdrv_driver_rw(bs, false, offset + done, n, qiov,
                                 qoff + done, flags);

        if (ret < 0) {
            return ret;
        }
        done += n;
    }
    if (in_file < bytes) {
        qemu_iovec_memset(qiov, qoff + in_file, 0, bytes - in_file);
    }
    return 0;
}

/*
 * Read the aligned block at blk into a new bounce buffer of
 * request_alignment bytes. *buf must be qemu_vfree()d, also on error.
 */
static int coroutine_fn bdrv_co_read_block(BlockDriverState *bs,
                                           int64_t blk, uint8_t **buf,
                                           BdrvRequestFlags flags)
{
    int64_t align = bs->bl.request_alignment;
    QEMUIOVector bq;

    *buf = qemu_try_blockalign(bs, align);
    if (!*buf) {
        return -ENOMEM;
    }
    qemu_iovec_init_buf(&bq, *buf, align);
    return bdrv_aligned_preadv(bs, blk, align, &bq, 0, flags);
}

/* Read part [head, head + n) of the aligned block at blk into qiov. */
static int coroutine_fn bdrv_co_read_partial(BlockDriverState *bs,
                                             int64_t blk, int64_t head,
                                             int64_t n, QEMUIOVector *qiov,
                                             size_t qoff,
                                             BdrvRequestFlags flags)
{
    uint8_t *buf;
    int ret = bdrv_co_read_block(bs, blk, &buf, flags);

    if (ret == 0) {
        qemu_iovec_from_buf(qiov, qoff, buf + head, n);
    }
    qemu_vfree(buf);
    return ret;
}

/*
 * Split [offset, offset + bytes) into an unaligned head block, an aligned
 * middle and an unaligned tail block, and feed them to partial / whole.
 */
typedef int coroutine_fn BdrvPartialFn(BlockDriverState *bs, int64_t blk,
                                       int64_t head, int64_t n,
                                       QEMUIOVector *qiov, size_t qoff,
                                       BdrvRequestFlags flags);
typedef int coroutine_fn BdrvWholeFn(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, QEMUIOVector *qiov,
                                     size_t qoff, BdrvRequestFlags flags);

/*
 * Coroutine context; returns the first error or 0. partial gets each
 * unaligned edge (blk is the block's aligned offset, [head, head + n) the
 * part inside the request), whole gets the aligned middle in one call.
 */
static int coroutine_fn bdrv_co_split_aligned(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              QEMUIOVector *qiov, size_t qoff,
                                              BdrvRequestFlags flags,
                                              BdrvPartialFn *partial,
                                              BdrvWholeFn *whole)
{
    int64_t align = bs->bl.request_alignment;
    int64_t head = offset % align;
    int64_t done = 0, middle;
    int ret;

    if (head) {
        done = MIN(bytes, align - head);
        ret = partial(bs, offset - head, head, done, qiov, qoff, flags);
        if (ret < 0) {
            return ret;
        }
    }
    middle = QEMU_ALIGN_DOWN(bytes - done, align);
    if (middle) {
        ret = whole(bs, offset + done, middle, qiov, qoff + done, flags);
        if (ret < 0) {
            return ret;
        }
        done += middle;
    }
    if (done < bytes) {
        return partial(bs, offset + done, 0, bytes - done, qiov, qoff + done,
                       flags);
    }
    return 0;
}

/* The read side of bdrv_co_split_aligned(): head/tail and middle. */
static int coroutine_fn bdrv_read_partial_cb(BlockDriverState *bs,
                                             int64_t blk, int64_t head,
                                             int64_t n, QEMUIOVector *qiov,
                                             size_t qoff,
                                             BdrvRequestFlags flags)
{
    return bdrv_co_read_partial(bs, blk, head, n, qiov, qoff, flags);
}

static int coroutine_fn bdrv_read_whole_cb(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov, size_t qoff,
                                           BdrvRequestFlags flags)
{
    return bdrv_aligned_preadv(bs, offset, bytes, qiov, qoff, flags);
}

/* Read any range of bs into qiov at qoff (see io-internal.h). */
int coroutine_fn bdrv_co_untracked_preadv(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes,
                                          QEMUIOVector *qiov, size_t qoff,
                                          BdrvRequestFlags flags)
{
    return bdrv_co_split_aligned(bs, offset, bytes, qiov, qoff, flags,
                                 bdrv_read_partial_cb, bdrv_read_whole_cb);
}

/* ---- Writes */

/* Bookkeeping after data reached [offset, offset + bytes) of bs. */
static void bdrv_co_write_done(BlockDriverState *bs, int64_t offset,
                               int64_t bytes)
{
    bs->write_gen++;
    if (offset + bytes > bs->total_bytes) {
        bs->total_bytes = offset + bytes;
    }
    if (bs->dirty_bitmaps) {
        bdrv_set_dirty(bs, offset, bytes);
    }
}

/*
 * Emulate FUA with a flush when the driver lacks it; returns the flags to
 * pass down (only bits the driver supports).
 */
static BdrvRequestFlags bdrv_write_flags(BlockDriverState *bs,
                                         BdrvRequestFlags flags,
                                         BdrvRequestFlags supported,
                                         bool *need_flush)
{
    *need_flush = (flags & BDRV_REQ_FUA) && !(supported & BDRV_REQ_FUA);
    return flags & supported & ~BDRV_REQ_CORE_ONLY;
}

/* Write an aligned range from qiov at qoff, split at max_transfer. */
static int coroutine_fn bdrv_aligned_pwritev(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             QEMUIOVector *qiov, size_t qoff,
                                             BdrvRequestFlags flags)
{
    int64_t chunk = bdrv_max_chunk(bs->bl.max_transfer,
                                   bs->bl.request_alignment);
    bool need_flush;
    BdrvRequestFlags dflags =
        bdrv_write_flags(bs, flags, bs->drv->supported_write_flags,
                         &need_flush);
    int64_t done = 0;

    while (done < bytes) {
        int64_t n = MIN(bytes - done, chunk);
        int ret = bdrv_driver_rw(bs, true, offset + done, n, qiov,
                                 qoff + done, dflags);

        if (ret < 0) {
            /* A failed write may have changed part of the range. */
            if (bs->dirty_bitmaps) {
                bdrv_set_dirty(bs, offset + done, n);
            }
            return ret;
        }
        bdrv_co_write_done(bs, offset + done, n);
        done += n;
    }
    return need_flush ? bdrv_co_flush(bs) : 0;
}

/*
 * Read-modify-write of one aligned block: bytes [head, head + n) come
 * from qiov at qoff (or are zeroes when qiov is NULL). The caller's
 * tracked request is serialising, so nothing else touches the block.
 */
static int coroutine_fn bdrv_write_partial_cb(BlockDriverState *bs,
                                              int64_t blk, int64_t head,
                                              int64_t n, QEMUIOVector *qiov,
                                              size_t qoff,
                                              BdrvRequestFlags flags)
{
    int64_t align = bs->bl.request_alignment;
    uint8_t *buf;
    QEMUIOVector bq;
    int ret;

    trace_bdrv_co_rmw(bs, blk, align);
    ret = bdrv_co_read_block(bs, blk, &buf, 0);
    if (ret == 0) {
        if (qiov) {
            qemu_iovec_to_buf(qiov, qoff, buf + head, n);
        } else {
            memset(buf + head, 0, n);
        }
        qemu_iovec_init_buf(&bq, buf, align);
        ret = bdrv_aligned_pwritev(bs, blk, align, &bq, 0, flags);
    }
    qemu_vfree(buf);
    return ret;
}

/* Aligned middle of a write; partial blocks go through the RMW above. */
static int coroutine_fn bdrv_write_whole_cb(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            QEMUIOVector *qiov, size_t qoff,
                                            BdrvRequestFlags flags)
{
    return bdrv_aligned_pwritev(bs, offset, bytes, qiov, qoff, flags);
}

/* Write qiov (from qoff) to any range of bs (see io-internal.h). */
int coroutine_fn bdrv_co_untracked_pwritev(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov, size_t qoff,
                                           BdrvRequestFlags flags)
{
    return bdrv_co_split_aligned(bs, offset, bytes, qiov, qoff, flags,
                                 bdrv_write_partial_cb, bdrv_write_whole_cb);
}

/* Common entry checks for every modifying request on bs. */
static int bdrv_check_write(BlockDriverState *bs, int64_t offset,
                            int64_t bytes, QEMUIOVector *qiov)
{
    int ret = bdrv_check_request(offset, bytes, qiov);

    if (ret < 0) {
        return ret;
    }
    if (bs->read_only) {
        return -EPERM;
    }
    /* A filter leaves the check to its child (it may be a protocol). */
    if (!bs->drv->protocol && !bs->drv->is_filter &&
        offset + bytes > bs->total_bytes) {
        return -EIO;
    }
    return 0;
}

/* Write zeroes through explicit zero buffers (the fallback path). */
static int coroutine_fn bdrv_co_zeroes_fallback(BlockDriverState *bs,
                                                int64_t offset, int64_t bytes,
                                                BdrvRequestFlags flags)
{
    int64_t chunk = MIN(bytes, bdrv_max_chunk(bs->bl.max_transfer,
                                              BDRV_ZERO_BUF_MAX));
    uint8_t *buf;
    int ret = 0;

    trace_bdrv_co_zeroes_fallback(bs, offset, bytes);
    chunk = MIN(chunk, BDRV_ZERO_BUF_MAX);
    buf = qemu_try_blockalign(bs, chunk);
    if (!buf) {
        return -ENOMEM;
    }
    memset(buf, 0, chunk);
    flags &= ~(BDRV_REQ_MAY_UNMAP | BDRV_REQ_CORE_ONLY);
    for (int64_t done = 0; done < bytes && ret == 0; done += chunk) {
        QEMUIOVector qiov;

        chunk = MIN(chunk, bytes - done);
        qemu_iovec_init_buf(&qiov, buf, chunk);
        ret = bdrv_co_untracked_pwritev(bs, offset + done, chunk, &qiov, 0,
                                        flags);
    }
    qemu_vfree(buf);
    return ret;
}

/*
 * Zero one piece: ask the driver when the piece is request-aligned, and
 * fall back to zero buffers on -ENOTSUP (unless NO_FALLBACK).
 */
static int coroutine_fn bdrv_co_zero_piece(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           BdrvRequestFlags flags)
{
    const BlockDriver *drv = bs->drv;
    int64_t align = bs->bl.request_alignment;
    int64_t chunk = bdrv_max_chunk(bs->bl.max_pwrite_zeroes, align);
    int ret = -ENOTSUP;

    if (drv->bdrv_co_pwrite_zeroes && QEMU_IS_ALIGNED(offset, align) &&
        QEMU_IS_ALIGNED(bytes, align)) {
        bool need_flush;
        BdrvRequestFlags dflags =
            bdrv_write_flags(bs, flags, drv->supported_zero_flags,
                             &need_flush);

        ret = 0;
        for (int64_t done = 0; done < bytes && ret == 0; done += chunk) {
            int64_t n = MIN(bytes - done, chunk);

            ret = drv->bdrv_co_pwrite_zeroes(bs, offset + done, n, dflags);
            if (ret == 0) {
                bdrv_co_write_done(bs, offset + done, n);
            }
        }
        if (ret == 0 && need_flush) {
            ret = bdrv_co_flush(bs);
        }
    }
    if (ret != -ENOTSUP) {
        return ret;
    }
    if (flags & BDRV_REQ_NO_FALLBACK) {
        return -ENOTSUP;
    }
    return bdrv_co_zeroes_fallback(bs, offset, bytes, flags);
}

/* Zero any range: head and tail pieces up to pwrite_zeroes_alignment. */
int coroutine_fn bdrv_co_untracked_pwrite_zeroes(BlockDriverState *bs,
                                                 int64_t offset,
                                                 int64_t bytes,
                                                 BdrvRequestFlags flags)
{
    int64_t zalign = MAX(bs->bl.pwrite_zeroes_alignment,
                         (int64_t)bs->bl.request_alignment);
    int64_t end = offset + bytes;
    int64_t mid_start = MIN(end, QEMU_ALIGN_UP(offset, zalign));
    int64_t mid_end = MAX(mid_start, QEMU_ALIGN_DOWN(end, zalign));
    int ret = 0;

    if (!(bs->open_flags & BDRV_O_UNMAP)) {
        flags &= ~BDRV_REQ_MAY_UNMAP;
    }
    if (mid_start > offset) {
        ret = bdrv_co_zero_piece(bs, offset, mid_start - offset, flags);
    }
    if (ret == 0 && mid_end > mid_start) {
        ret = bdrv_co_zero_piece(bs, mid_start, mid_end - mid_start, flags);
    }
    if (ret == 0 && end > mid_end) {
        ret = bdrv_co_zero_piece(bs, mid_end, end - mid_end, flags);
    }
    return ret;
}

/* ---- Entry points of the data requests */

/* The requests that share bdrv_co_data_request()'s entry sequence. */
typedef enum BdrvDataOp {
    BDRV_DATA_READ,
    BDRV_DATA_WRITE,
    BDRV_DATA_ZERO,
} BdrvDataOp;

/* True when [offset, offset + bytes) does not fit bs's request alignment. */
static bool bdrv_is_unaligned(BlockDriverState *bs, int64_t offset,
                              int64_t bytes)
{
    int64_t align = bs->bl.request_alignment;

    return align > 1 && (offset % align || (offset + bytes) % align);
}

/*
 * A read, tracked. It is a copy-on-read when asked for (flags, or
 * bdrv_enable_copy_on_read) on a writable node that is not a filter:
 * then it is serialising on whole grains. Filters never copy themselves;
 * they get the flags (bdrv_aligned_preadv) and pass them to their child.
 */
static int coroutine_fn bdrv_co_do_preadv(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes,
                                          QEMUIOVector *qiov,
                                          BdrvRequestFlags flags)
{
    bool filter = bs->drv->is_filter, cor;
    BdrvTrackedRequest req;
    int ret;

    if (bs->copy_on_read) {
        flags |= BDRV_REQ_COPY_ON_READ;
    }
    cor = (flags & (BDRV_REQ_COPY_ON_READ | BDRV_REQ_PREFETCH)) && !filter &&
          !bs->read_only;
    if ((flags & BDRV_REQ_PREFETCH) && !cor && !filter) {
        return -EPERM;      /* a prefetch cannot populate a read-only node */
    }
    bdrv_co_tracked_start(&req, bs, offset, bytes, cor, false);
    if (cor) {
        ret = bdrv_co_copy_on_readv(bs, offset, bytes, qiov, flags);
    } else if (!qiov) {
        /* A prefetch through a filter: nothing to align, no data back. */
        int64_t n = MIN(bytes, MAX(0, bs->total_bytes - offset));

        ret = n ? bs->drv->bdrv_co_preadv(bs, offset, n, NULL, flags) : 0;
    } else {
        ret = bdrv_co_untracked_preadv(bs, offset, bytes, qiov, 0, flags);
    }
    bdrv_tracked_end(&req);
    return ret;
}

/*
 * A write or zero write, tracked; serialising when it needs a
 * read-modify-write of a partial alignment block.
 */
static int coroutine_fn bdrv_co_do_write_req(BlockDriverState *bs,
                                             BdrvDataOp op, int64_t offset,
                                             int64_t bytes,
                                             QEMUIOVector *qiov,
                                             BdrvRequestFlags flags)
{
    BdrvTrackedRequest req;
    int ret;

    bdrv_co_tracked_start(&req, bs, offset, bytes,
                          bdrv_is_unaligned(bs, offset, bytes), true);
    if (op == BDRV_DATA_WRITE) {
        ret = bdrv_co_untracked_pwritev(bs, offset, bytes, qiov, 0, flags);
    } else {
        ret = bdrv_co_untracked_pwrite_zeroes(bs, offset, bytes, flags);
    }
    bdrv_tracked_end(&req);
    return ret;
}

/*
 * What reads, writes and zero writes do on entry: refuse a missing
 * medium and bad ranges (and, for the modifying ones, read-only nodes and
 * writes past a format node's end), park external requests during a
 * drained section, fire the request's trace point and count the request
 * in bs->in_flight while it runs. Empty requests succeed without reaching
 * the driver. qiov is NULL for zero writes (and prefetches).
 */
static int coroutine_fn bdrv_co_data_request(BdrvChild *child, BdrvDataOp op,
                                             int64_t offset, int64_t bytes,
                                             QEMUIOVector *qiov,
                                             BdrvRequestFlags flags)
{
    static const char *const op_names[] = {
        [BDRV_DATA_READ] = "read", [BDRV_DATA_WRITE] = "write",
        [BDRV_DATA_ZERO] = "zero",
    };
    BlockDriverState *bs;
    int ret;

    /* Park first: a drained section may move child onto another node. */
    bdrv_co_wait_unquiesced(child);
    bs = bdrv_child_node(child);
    if (!bs) {
        return -ENOMEDIUM;
    }
    ret = op == BDRV_DATA_READ ? bdrv_check_request(offset, bytes, qiov)
                               : bdrv_check_write(bs, offset, bytes, qiov);
    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (op == BDRV_DATA_READ && !qiov && !(flags & BDRV_REQ_PREFETCH)) {
        return -EINVAL;
    }
    bdrv_inc_in_flight(bs);
    switch (op) {
    case BDRV_DATA_READ:
        trace_bdrv_co_preadv(bs, offset, bytes, flags);
        ret = bdrv_co_do_preadv(bs, offset, bytes, qiov, flags);
        break;
    case BDRV_DATA_WRITE:
        trace_bdrv_co_pwritev(bs, offset, bytes, flags);
        ret = bdrv_co_do_write_req(bs, op, offset, bytes, qiov, flags);
        break;
    case BDRV_DATA_ZERO:
        trace_bdrv_co_pwrite_zeroes(bs, offset, bytes, flags);
        ret = bdrv_co_do_write_req(bs, op, offset, bytes, NULL, flags);
        break;
    }
    bdrv_dec_in_flight(bs);
    trace_bdrv_co_request_done(bs, op_names[op], offset, bytes, ret);
    return ret;
}

/*
 * Entry point of every read. COPY_ON_READ (or bdrv_enable_copy_on_read)
 * populates bs from its backing chain; PREFETCH does so without returning
 * data (qiov may be NULL). Drivers see these flags only when they are
 * filters. Bytes past EOF read as zeroes.
 */
int coroutine_fn bdrv_co_preadv(BdrvChild *child, int64_t offset,
                                int64_t bytes, QEMUIOVector *qiov,
                                BdrvRequestFlags flags)
{
    return bdrv_co_data_request(child, BDRV_DATA_READ, offset, bytes, qiov,
                                flags);
}

/*
 * Entry point of every zero write. MAY_UNMAP is dropped unless the node
 * was opened with discard=unmap, as in QEMU; FUA is emulated by a flush
 * when the driver lacks it.
 */
int coroutine_fn bdrv_co_pwrite_zeroes(BdrvChild *child, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags)
{
    return bdrv_co_data_request(child, BDRV_DATA_ZERO, offset, bytes, NULL,
                                flags);
}

/*
 * Entry point of every write. A ZERO_WRITE request (qiov NULL) becomes a
 * zero write; anything else is aligned and split here. Protocol nodes may
 * be written past EOF (the file grows, total_bytes follows); format nodes
 * may not (-EIO), since their size lives in their metadata.
 */
int coroutine_fn bdrv_co_pwritev(BdrvChild *child, int64_t offset,
                                 int64_t bytes, QEMUIOVector *qiov,
                                 BdrvRequestFlags flags)
{
    BdrvDataOp op = flags & BDRV_REQ_ZERO_WRITE ? BDRV_DATA_ZERO
                                                : BDRV_DATA_WRITE;

    return bdrv_co_data_request(child, op, offset, bytes,
                                op == BDRV_DATA_ZERO ? NULL : qiov, flags);
}

/* Flat-buffer conveniences over the vector versions. */
int coroutine_fn bdrv_co_pread(BdrvChild *child, int64_t offset,
                               int64_t bytes, void *buf,
                               BdrvRequestFlags flags)
{
    QEMUIOVector qiov;

    if (bytes < 0) {
        return -EIO;
    }
    qemu_iovec_init_buf(&qiov, buf, bytes);
    return bdrv_co_preadv(child, offset, bytes, &qiov, flags);
}

int coroutine_fn bdrv_co_pwrite(BdrvChild *child, int64_t offset,
                                int64_t bytes, const void *buf,
                                BdrvRequestFlags flags)
{
    QEMUIOVector qiov;

    if (bytes < 0) {
        return -EIO;
    }
    qemu_iovec_init_buf(&qiov, (void *)buf, bytes);
    return bdrv_co_pwritev(child, offset, bytes, &qiov, flags);
}

int coroutine_fn bdrv_co_pwrite_sync(BdrvChild *child, int64_t offset,
                                     int64_t bytes, const void *buf,
                                     BdrvRequestFlags flags)
{
    int ret = bdrv_co_pwrite(child, offset, bytes, buf, flags);

    return ret < 0 ? ret : bdrv_co_flush(bdrv_child_bs(child));
}

/* ---- Discard, flush, truncate */

/*
 * Discard whole aligned blocks inside the node. A no-op unless the node
 * was opened with BDRV_O_UNMAP (discard=unmap), as in QEMU; a driver's
 * -ENOTSUP counts as success since discarding is only a hint.
 */
int coroutine_fn bdrv_co_pdiscard(BdrvChild *child, int64_t offset,
                                  int64_t bytes)
{
    BlockDriverState *bs;
    int64_t align, chunk, start, end;
    BdrvTrackedRequest req;
    int ret;

    bdrv_co_wait_unquiesced(child);
    bs = bdrv_child_node(child);
    if (!bs) {
        return -ENOMEDIUM;
    }
    ret = bdrv_check_request(offset, bytes, NULL);
    if (ret < 0) {
        return ret;
    }
    if (bs->read_only) {
        return -EPERM;
    }
    /* Discard is advisory: only whole aligned blocks inside the node. */
    align = MAX(bs->bl.pdiscard_alignment,
                (int64_t)bs->bl.request_alignment);
    start = QEMU_ALIGN_UP(offset, align);
    end = QEMU_ALIGN_DOWN(MIN(offset + bytes, bs->total_bytes), align);
    if (!(bs->open_flags & BDRV_O_UNMAP) || !bs->drv->bdrv_co_pdiscard ||
        end <= start) {
        return 0;
    }
    trace_bdrv_co_pdiscard(bs, start, end - start);
    chunk = bdrv_max_chunk(bs->bl.max_pdiscard, align);
    bdrv_inc_in_flight(bs);
    bdrv_co_tracked_start(&req, bs, start, end - start, false, true);
    for (int64_t pos = start; pos < end && ret == 0; pos += chunk) {
        ret = bs->drv->bdrv_co_pdiscard(bs, pos, MIN(chunk, end - pos));
        ret = ret == -ENOTSUP ? 0 : ret;
    }
    bs->write_gen++;
    if (bs->dirty_bitmaps) {
        bdrv_set_dirty(bs, start, end - start);
    }
    bdrv_tracked_end(&req);
    bdrv_dec_in_flight(bs);
    trace_bdrv_co_request_done(bs, "discard", offset, bytes, ret);
    return ret;
}

/*
 * Flush bs and then its non-backing children, depth first.
 * flush_to_os always runs (a format's metadata cache may be dirty without
 * a write through this node); flush_to_disk is skipped when no write
 * happened since the last successful flush or with cache.no-flush.
 * flushed_gen only advances when the whole subtree flushed.
 */
int coroutine_fn bdrv_co_flush(BlockDriverState *bs)
{
    uint64_t gen;
    int ret = 0;

    if (!bs || !bs->drv) {
        return 0;
    }
    gen = bs->write_gen;
    trace_bdrv_co_flush(bs, gen);
    bdrv_inc_in_flight(bs);
    /* Metadata caches go down to the children whatever the generation. */
    if (bs->drv->bdrv_co_flush_to_os) {
        ret = bs->drv->bdrv_co_flush_to_os(bs);
    }
    if (ret == 0 && !(bs->open_flags & BDRV_O_NO_FLUSH) &&
        gen != bs->flushed_gen && bs->drv->bdrv_co_flush_to_disk) {
        ret = bs->drv->bdrv_co_flush_to_disk(bs);
    }
    for (GSList *l = bs->children; l && ret == 0; l = l->next) {
        BdrvChild *c = l->data;

        if (!(c->role & BDRV_CHILD_BACKING)) {
            ret = bdrv_co_flush(c->bs);
        }
    }
    if (ret == 0) {
        bs->flushed_gen = gen;
    }
    bdrv_dec_in_flight(bs);
    trace_bdrv_co_request_done(bs, "flush", 0, 0, ret);
    return ret;
}

/*
 * Resize the node. The driver does the work; afterwards total_bytes is
 * re-read from the driver when it can report a length, and otherwise
 * taken to be the requested size. The request is serialising from the
 * lower of the two sizes to the end of the world, so no request on the
 * bytes that appear or disappear runs at the same time.
 */
int coroutine_fn bdrv_co_truncate(BdrvChild *child, int64_t offset,
                                  bool exact, PreallocMode prealloc,
                                  BdrvRequestFlags flags, Error **errp)
{
    BlockDriverState *bs;
    BdrvTrackedRequest req;
    int64_t from;
    int ret;

    bdrv_co_wait_unquiesced(child);
    bs = bdrv_child_node(child);
    if (!bs) {
        error_setg(errp, "No medium inserted");
        return -ENOMEDIUM;
    }
    if (offset < 0) {
        error_setg(errp, "Image size cannot be negative");
        return -EINVAL;
    }
    if (bs->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    if (!bs->drv->bdrv_co_truncate) {
        error_setg(errp, "Image format driver does not support resize");
        return -ENOTSUP;
    }
    trace_bdrv_co_truncate(bs, offset, prealloc);
    bdrv_inc_in_flight(bs);
    from = MIN(offset, bs->total_bytes);
    bdrv_co_tracked_start(&req, bs, from, INT64_MAX - from, true, true);
    ret = bs->drv->bdrv_co_truncate(bs, offset, exact, prealloc, flags, errp);
    if (ret == 0) {
        if (bs->drv->bdrv_getlength) {
            bdrv_getlength(bs);
        } else {
            bs->total_bytes = offset;
        }
        if (bs->dirty_bitmaps) {
            bdrv_dirty_bitmap_truncate(bs, bs->total_bytes);
        }
    }
    bs->write_gen++;
    bdrv_tracked_end(&req);
    bdrv_dec_in_flight(bs);
    return ret;
}


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
 * Request tracking: every data request (and discard, truncate) is a
 * BdrvTrackedRequest on its coroutine's stack, listed on the node oldest
 * first from entry to completion. Overlap is judged on ranges widened to
 * the node's cluster size (else request_alignment). A serialising request
 * (copy-on-read, a read-modify-write, a truncate) conflicts with every
 * overlapping request, others only with serialising ones; a request
 * waits, before touching any data, for each older conflicting request.
 * Waits thus always point to older requests: no cycle, no deadlock, and
 * conflicting requests run in arrival order, so a copy-on-read and a
 * guest write to one cluster can never interleave.
 *
 * Copy-on-read (BDRV_REQ_COPY_ON_READ, bdrv_enable_copy_on_read):
 * parts the node does not allocate are read through its driver (from the
 * backing chain) into a bounce buffer, written back (all-zero clusters as
 * zero writes that must not fall back to zero data), then copied to the
 * caller; allocated parts are read directly.
 *
 * Drain: bdrv_drain waits for in-flight requests; a drained section also
 * parks new requests from root children until it ends.
 *
 * Block status follows QEMU's semantics so that "qblk-img map" and
 * "qemu-img map" agree: a driver answers for one node, this file resolves
 * BDRV_BLOCK_RAW delegation and RECURSE refinement, derives ALLOCATED, and
 * walks backing chains without ever iterating per cluster.
 *
 * Everything runs in coroutines on the main loop thread, so lists and
 * counters need no locking; nothing here holds a lock across a yield.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qemu/aio.h"
#include "trace.h"

/* Largest zero buffer written at once when zeroes are emulated. */
#define BDRV_ZERO_BUF_MAX (1 * MiB)

/* Largest bounce buffer of one copy-on-read step. */
#define BDRV_COR_BOUNCE_MAX (1 * MiB)

/* Read flags a filter driver receives, to forward to its child. */
#define BDRV_REQ_READ_FLAGS (BDRV_REQ_COPY_ON_READ | BDRV_REQ_PREFETCH)

/* Flags that only this layer handles and drivers never see on writes. */
#define BDRV_REQ_CORE_ONLY (BDRV_REQ_ZERO_WRITE | BDRV_REQ_NO_FALLBACK | \
                            BDRV_REQ_COPY_ON_READ | BDRV_REQ_PREFETCH)

static int coroutine_fn bdrv_co_do_pwritev(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov, size_t qoff,
                                           BdrvRequestFlags flags);

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

/* ---- In-flight counting and drained sections */

/* Coroutines in bdrv_drain*() waiting for some in_flight to reach 0. */
static CoQueue bdrv_drain_waitq;
static unsigned int bdrv_drain_waiters;
/* External requests parked by a drained section, and how many sections. */
static CoQueue bdrv_quiesce_parked;
static unsigned int bdrv_quiesce_total;

static void bdrv_inc_in_flight(BlockDriverState *bs)
{
    bs->in_flight++;
}

/* Count a request out; a node going idle wakes coroutines in drain. */
static void bdrv_dec_in_flight(BlockDriverState *bs)
{
    g_assert(bs->in_flight > 0);
    if (--bs->in_flight == 0 && bdrv_drain_waiters) {
        qemu_co_queue_restart_all(&bdrv_drain_waitq);
    }
}

/* True if bs or any node below it is in a drained section. */
static bool bdrv_subtree_quiesced(BlockDriverState *bs)
{
    if (bs->quiesce_counter) {
        return true;
    }
    for (GSList *l = bs->children; l; l = l->next) {
        if (bdrv_subtree_quiesced(((BdrvChild *)l->data)->bs)) {
            return true;
        }
    }
    return false;
}

/*
 * Park a request from an external user (a root child) while a drained
 * section covers its node or any node below. Requests from parent nodes
 * pass: they belong to requests already in flight, which drain waits for.
 * Costs one test when nothing is drained anywhere.
 */
static void coroutine_fn bdrv_co_wait_unquiesced(BdrvChild *child)
{
    while (bdrv_quiesce_total && (child->role & BDRV_CHILD_ROOT) &&
           bdrv_subtree_quiesced(child->bs)) {
        trace_bdrv_co_request_parked(child->bs);
        qemu_co_queue_wait(&bdrv_quiesce_parked, NULL);
    }
}

/* ---- Request tracking */

/*
 * The grain overlaps are computed on: the cluster size (cached at the
 * first request; a node's cluster size never changes while open), else
 * the request alignment.
 */
static int64_t bdrv_tracking_grain(BlockDriverState *bs)
{
    int64_t align = MAX(bs->bl.request_alignment, 1);

    if (!bs->tracking_align) {
        BlockDriverInfo bdi;

        bs->tracking_align = -1;
        if (bdrv_get_info(bs, &bdi) == 0 && bdi.cluster_size > 0) {
            bs->tracking_align = bdi.cluster_size;
        }
    }
    return MAX(bs->tracking_align, align);
}

/* Start tracking req on bs; the caller then waits for its turn. */
static void bdrv_tracked_begin(BdrvTrackedRequest *req, BlockDriverState *bs,
                               int64_t offset, int64_t bytes,
                               bool serialising, bool is_write)
{
    int64_t grain = bdrv_tracking_grain(bs);
    int64_t end = offset + bytes;

    *req = (BdrvTrackedRequest) {
        .bs = bs, .offset = offset, .bytes = bytes,
        .serialising = serialising, .is_write = is_write,
        .co = qemu_coroutine_self(),
        .prev = bs->tracked_tail,
    };
    qemu_co_queue_init(&req->wait_queue);
    req->overlap_offset = QEMU_ALIGN_DOWN(offset, grain);
    end = end > INT64_MAX - grain ? INT64_MAX : QEMU_ALIGN_UP(end, grain);
    req->overlap_bytes = end - req->overlap_offset;
    if (bs->tracked_tail) {
        bs->tracked_tail->next = req;
    } else {
        bs->tracked_head = req;
    }
    bs->tracked_tail = req;
    bs->serialising_in_flight += serialising;
    trace_bdrv_tracked_begin(bs, req, offset, bytes, serialising);
}

/* Stop tracking req and let every request parked on it re-check. */
static void bdrv_tracked_end(BdrvTrackedRequest *req)
{
    BlockDriverState *bs = req->bs;

    *(req->prev ? &req->prev->next : &bs->tracked_head) = req->next;
    *(req->next ? &req->next->prev : &bs->tracked_tail) = req->prev;
    bs->serialising_in_flight -= req->serialising;
    if (!qemu_co_queue_empty(&req->wait_queue)) {
        /* Waiters run later: clear their link to req before it is gone. */
        for (BdrvTrackedRequest *r = bs->tracked_head; r; r = r->next) {
            if (r->waiting_for == req) {
                r->waiting_for = NULL;
            }
        }
        qemu_co_queue_restart_all(&req->wait_queue);
    }
    trace_bdrv_tracked_end(bs, req);
}

static bool bdrv_tracked_overlap(const BdrvTrackedRequest *a,
                                 const BdrvTrackedRequest *b)
{
    return a->overlap_offset < b->overlap_offset + b->overlap_bytes &&
           b->overlap_offset < a->overlap_offset + a->overlap_bytes;
}

/* True if a waits, directly or down a chain of waits, for b. */
static bool bdrv_tracked_waits_for(const BdrvTrackedRequest *a,
                                   const BdrvTrackedRequest *b)
{
    for (; a; a = a->waiting_for) {
        if (a == b) {
            return true;
        }
    }
    return false;
}

/*
 * Wait until no earlier request that conflicts with self is in flight.
 * Two requests conflict when their grain-aligned ranges overlap and one
 * of them is serialising. Only requests that arrived earlier (are ahead
 * of self in the list) are waited for, so waits always point from a newer
 * request to an older one: no cycle, hence no deadlock, can form however
 * long the chains are, and conflicting requests run in arrival order.
 * A request calls this once, before it touches any data.
 */
static void coroutine_fn bdrv_co_wait_serialising(BdrvTrackedRequest *self)
{
    BlockDriverState *bs = self->bs;
    BdrvTrackedRequest *r;

    if (!bs->serialising_in_flight) {
        return;     /* nothing serialising here: the common case */
    }
restart:
    for (r = bs->tracked_head; r && r != self; r = r->next) {
        if ((self->serialising || r->serialising) &&
            bdrv_tracked_overlap(self, r)) {
            g_assert(!bdrv_tracked_waits_for(r, self));
            trace_bdrv_co_wait_serialising(bs, self, r, r->offset, r->bytes);
            self->waiting_for = r;
            qemu_co_queue_wait(&r->wait_queue, NULL);
            self->waiting_for = NULL;
            goto restart;   /* r is gone; the list may have changed */
        }
    }
}

/* Track a request and wait for its turn (see bdrv_co_wait_serialising). */
static void coroutine_fn bdrv_co_tracked_start(BdrvTrackedRequest *req,
                                               BlockDriverState *bs,
                                               int64_t offset, int64_t bytes,
                                               bool serialising,
                                               bool is_write)
{
    bdrv_tracked_begin(req, bs, offset, bytes, serialising, is_write);
    bdrv_co_wait_serialising(req);
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

/* ---- Writes */

/* Bookkeeping after data reached [offset, offset + bytes) of bs. */
static void bdrv_co_write_done(BlockDriverState *bs, int64_t offset,
                               int64_t bytes)
{
    bs->write_gen++;
    if (offset + bytes > bs->total_bytes) {
        bs->total_bytes = offset + bytes;
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

/* Write qiov (from qoff) to any range of bs; handles alignment. */
static int coroutine_fn bdrv_co_do_pwritev(BlockDriverState *bs,
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
    if (!bs->drv->protocol && offset + bytes > bs->total_bytes) {
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
        ret = bdrv_co_do_pwritev(bs, offset + done, chunk, &qiov, 0, flags);
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
static int coroutine_fn bdrv_co_do_pwrite_zeroes(BlockDriverState *bs,
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

/* ---- Copy-on-read */

/*
 * Copy-on-read bounce buffers are recycled through a small free list
 * (main loop thread only), up to BDRV_COR_POOL_BYTES in all: a fresh
 * buffer of this size is mmap()ed and page-faulted in anew each time,
 * which costs more than the copy itself. Nodes that need more than page
 * alignment, and buffers above BDRV_COR_BOUNCE_MAX, bypass the pool.
 */
#define BDRV_COR_POOL_MAX 64
#define BDRV_COR_POOL_BYTES (16 * MiB)
#define BDRV_COR_POOL_ALIGN 4096

typedef struct BdrvCorBuf {
    void *buf;
    int64_t size;
} BdrvCorBuf;

static BdrvCorBuf bdrv_cor_pool[BDRV_COR_POOL_MAX];
static int bdrv_cor_pool_len;
static int64_t bdrv_cor_pool_bytes;

/* True if a bounce buffer of size bytes for bs may come from the pool. */
static bool bdrv_cor_pooled(BlockDriverState *bs, int64_t size)
{
    return size <= BDRV_COR_BOUNCE_MAX &&
           bdrv_opt_mem_align(bs) <= BDRV_COR_POOL_ALIGN;
}

/* A buffer of at least size bytes; *cap gets its real size. */
static void *bdrv_cor_bounce_get(BlockDriverState *bs, int64_t size,
                                 int64_t *cap)
{
    *cap = size;
    if (!bdrv_cor_pooled(bs, size)) {
        return qemu_try_blockalign(bs, size);
    }
    for (int i = bdrv_cor_pool_len - 1; i >= 0; i--) {
        if (bdrv_cor_pool[i].size >= size) {
            void *buf = bdrv_cor_pool[i].buf;

            *cap = bdrv_cor_pool[i].size;
            bdrv_cor_pool_bytes -= *cap;
            bdrv_cor_pool[i] = bdrv_cor_pool[--bdrv_cor_pool_len];
            return buf;
        }
    }
    return qemu_try_memalign(BDRV_COR_POOL_ALIGN, size);
}

static void bdrv_cor_bounce_put(BlockDriverState *bs, void *buf, int64_t cap)
{
    if (bdrv_cor_pooled(bs, cap) && bdrv_cor_pool_len < BDRV_COR_POOL_MAX &&
        bdrv_cor_pool_bytes + cap <= BDRV_COR_POOL_BYTES) {
        bdrv_cor_pool[bdrv_cor_pool_len++] = (BdrvCorBuf) { buf, cap };
        bdrv_cor_pool_bytes += cap;
    } else {
        qemu_vfree(buf);
    }
}

/* Copy bytes of bounce (holding [pos, pos + n)) that the caller asked for. */
static void bdrv_cor_to_caller(int64_t pos, int64_t n, const uint8_t *bounce,
                               int64_t offset, int64_t bytes,
                               QEMUIOVector *qiov)
{
    int64_t s = MAX(pos, offset), e = MIN(pos + n, offset + bytes);

    if (qiov && s < e) {
        qemu_iovec_from_buf(qiov, s - offset, bounce + (s - pos), e - s);
    }
}

/*
 * Make [pos, pos + n) of bs read as zeroes without storing zero data:
 * a zero write the driver must do natively (qcow2 v3: zero clusters).
 * When it cannot (-ENOTSUP, e.g. qcow2 v2 with a backing file), the
 * range already reads as zeroes through the chain, so nothing is written.
 */
static int coroutine_fn bdrv_co_cor_zero(BlockDriverState *bs, int64_t pos,
                                         int64_t n)
{
    int ret = bdrv_co_do_pwrite_zeroes(bs, pos, n, BDRV_REQ_NO_FALLBACK);

    trace_bdrv_co_copy_on_read_zero(bs, pos, n, ret);
    return ret == -ENOTSUP ? 0 : ret;
}

/*
 * Write the fetched bounce data bq (holding [pos, pos + n)) into bs:
 * runs of all-zero grains as zero writes, the rest as data.
 */
static int coroutine_fn bdrv_co_cor_write_back(BlockDriverState *bs,
                                               int64_t pos, int64_t n,
                                               QEMUIOVector *bq,
                                               int64_t grain)
{
    const uint8_t *buf = bq->iov[0].iov_base;
    int64_t done = 0;
    int ret = 0;

    while (done < n && ret == 0) {
        bool zero = buffer_is_zero(buf + done, MIN(grain, n - done));
        int64_t run = MIN(grain, n - done);

        while (done + run < n &&
               buffer_is_zero(buf + done + run, MIN(grain, n - done - run))
               == zero) {
            run += MIN(grain, n - done - run);
        }
        ret = zero ? bdrv_co_cor_zero(bs, pos + done, run)
                   : bdrv_co_do_pwritev(bs, pos + done, run, bq, done, 0);
        done += run;
    }
    return ret;
}

/*
 * Populate the unallocated range [pos, pos + *n) of bs (*n may shrink to
 * one bounce buffer): read it through bs's driver (i.e. from the backing
 * chain) into a bounce buffer, write that back into bs (zero grains as
 * zero writes) and copy the caller's part into qiov.
 */
static int coroutine_fn bdrv_co_cor_fetch(BlockDriverState *bs, int64_t pos,
                                          int64_t *n, int64_t offset,
                                          int64_t bytes, QEMUIOVector *qiov)
{
    int64_t grain = bdrv_tracking_grain(bs), cap;
    QEMUIOVector bq;
    uint8_t *bounce;
    int ret;

    *n = MIN(*n, MAX(QEMU_ALIGN_DOWN(BDRV_COR_BOUNCE_MAX, grain), grain));
    bounce = bdrv_cor_bounce_get(bs, *n, &cap);
    if (!bounce) {
        return -ENOMEM;
    }
    qemu_iovec_init_buf(&bq, bounce, *n);
    trace_bdrv_co_copy_on_read_fetch(bs, pos, *n);
    ret = bdrv_co_split_aligned(bs, pos, *n, &bq, 0, 0, bdrv_read_partial_cb,
                                bdrv_read_whole_cb);
    if (ret == 0) {
        ret = bdrv_co_cor_write_back(bs, pos, *n, &bq, grain);
    }
    if (ret == 0) {
        bdrv_cor_to_caller(pos, *n, bounce, offset, bytes, qiov);
    }
    bdrv_cor_bounce_put(bs, bounce, cap);
    return ret;
}

/*
 * Read [offset, offset + bytes) of bs into qiov (NULL for PREFETCH),
 * populating bs with whatever it does not allocate. The caller tracks
 * the request as serialising, so the grain-aligned range [start, end)
 * worked on here cannot change under us. As in QEMU, a failure to write
 * the copy fails the read.
 */
static int coroutine_fn bdrv_co_copy_on_readv(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              QEMUIOVector *qiov)
{
    int64_t grain = bdrv_tracking_grain(bs);
    int64_t start = QEMU_ALIGN_DOWN(offset, grain);
    int64_t end = MIN(QEMU_ALIGN_UP(offset + bytes, grain), bs->total_bytes);
    int64_t pos, n;
    int ret = 0;

    trace_bdrv_co_copy_on_readv(bs, offset, bytes, start, end - start);
    for (pos = start; pos < end && ret == 0; pos += n) {
        ret = bdrv_co_is_allocated(bs, pos, end - pos, &n);
        if (ret < 0) {
            break;
        }
        if (n <= 0) {
            ret = -EIO;     /* the driver made no progress */
        } else if (ret == 0) {
            ret = bdrv_co_cor_fetch(bs, pos, &n, offset, bytes, qiov);
        } else if (qiov) {
            /* Allocated in bs: read straight into the caller's buffer. */
            int64_t s = MAX(pos, offset), e = MIN(pos + n, offset + bytes);

            ret = s >= e ? 0
                : bdrv_co_split_aligned(bs, s, e - s, qiov, s - offset, 0,
                                        bdrv_read_partial_cb,
                                        bdrv_read_whole_cb);
        } else {
            ret = 0;
        }
    }
    if (ret == 0 && qiov && offset + bytes > MAX(end, offset)) {
        /* Past the end of the node: zeroes, as for any read. */
        int64_t s = MAX(end, offset);

        qemu_iovec_memset(qiov, s - offset, 0, offset + bytes - s);
    }
    if (ret < 0) {
        trace_bdrv_co_copy_on_read_error(bs, pos, ret);
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
    cor = (flags & BDRV_REQ_READ_FLAGS) && !filter && !bs->read_only;
    if ((flags & BDRV_REQ_PREFETCH) && !cor && !filter) {
        return -EPERM;      /* a prefetch cannot populate a read-only node */
    }
    bdrv_co_tracked_start(&req, bs, offset, bytes, cor, false);
    if (cor) {
        ret = bdrv_co_copy_on_readv(bs, offset, bytes, qiov);
    } else if (!qiov) {
        /* A prefetch through a filter: nothing to align, no data back. */
        int64_t n = MIN(bytes, MAX(0, bs->total_bytes - offset));

        ret = n ? bs->drv->bdrv_co_preadv(bs, offset, n, NULL, flags) : 0;
    } else {
        ret = bdrv_co_split_aligned(bs, offset, bytes, qiov, 0, flags,
                                    bdrv_read_partial_cb, bdrv_read_whole_cb);
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
        ret = bdrv_co_do_pwritev(bs, offset, bytes, qiov, 0, flags);
    } else {
        ret = bdrv_co_do_pwrite_zeroes(bs, offset, bytes, flags);
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
    BlockDriverState *bs = bdrv_child_node(child);
    int ret;

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
    bdrv_co_wait_unquiesced(child);
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
    BlockDriverState *bs = bdrv_child_node(child);
    int64_t align, chunk, start, end;
    BdrvTrackedRequest req;
    int ret;

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
    bdrv_co_wait_unquiesced(child);
    bdrv_inc_in_flight(bs);
    bdrv_co_tracked_start(&req, bs, start, end - start, false, true);
    for (int64_t pos = start; pos < end && ret == 0; pos += chunk) {
        ret = bs->drv->bdrv_co_pdiscard(bs, pos, MIN(chunk, end - pos));
        ret = ret == -ENOTSUP ? 0 : ret;
    }
    bs->write_gen++;
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
    BlockDriverState *bs = bdrv_child_node(child);
    BdrvTrackedRequest req;
    int64_t from;
    int ret;

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
    bdrv_co_wait_unquiesced(child);
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
    }
    bs->write_gen++;
    bdrv_tracked_end(&req);
    bdrv_dec_in_flight(bs);
    return ret;
}

/* ---- Block status */

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
    total = bdrv_getlength(bs);
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
        if (!cow || offset >= bdrv_getlength(cow)) {
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
    int64_t total = bdrv_getlength(bs), local_pnum;
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

/* ---- Copy-on-read switch and drain */

void bdrv_enable_copy_on_read(BlockDriverState *bs)
{
    bs->copy_on_read++;
}

void bdrv_disable_copy_on_read(BlockDriverState *bs)
{
    g_assert(bs->copy_on_read > 0);
    bs->copy_on_read--;
}

/* What a drain waits for. */
typedef enum BdrvDrainScope {
    BDRV_DRAIN_SUBTREE,     /* bs and every node below it */
    BDRV_DRAIN_SECTION,     /* that, and every node above bs */
    BDRV_DRAIN_ALL,         /* every node */
} BdrvDrainScope;

/* True if bs or a node below it has a request in flight. */
static bool bdrv_subtree_busy(BlockDriverState *bs)
{
    if (bs->in_flight) {
        return true;
    }
    for (GSList *l = bs->children; l; l = l->next) {
        if (bdrv_subtree_busy(((BdrvChild *)l->data)->bs)) {
            return true;
        }
    }
    return false;
}

/* True if a node above bs (a parent, recursively) has a request in flight. */
static bool bdrv_ancestors_busy(BlockDriverState *bs)
{
    for (GSList *l = bs->parents; l; l = l->next) {
        BlockDriverState *p = ((BdrvChild *)l->data)->parent;

        if (p && (p->in_flight || bdrv_ancestors_busy(p))) {
            return true;
        }
    }
    return false;
}

static bool bdrv_drain_busy(BlockDriverState *bs, BdrvDrainScope scope)
{
    switch (scope) {
    case BDRV_DRAIN_SUBTREE:
        return bdrv_subtree_busy(bs);
    case BDRV_DRAIN_SECTION:
        return bdrv_subtree_busy(bs) || bdrv_ancestors_busy(bs);
    case BDRV_DRAIN_ALL:
        for (bs = bdrv_next_node(NULL); bs; bs = bdrv_next_node(bs)) {
            if (bs->in_flight) {
                return true;
            }
        }
        return false;
    }
    return false;
}

/*
 * Wait until nothing in scope is in flight: in a coroutine, park until a
 * node goes idle and look again; outside, run the main loop meanwhile.
 * A coroutine must not drain a node it has a request in flight on.
 */
static void bdrv_drain_wait(BlockDriverState *bs, BdrvDrainScope scope)
{
    while (bdrv_drain_busy(bs, scope)) {
        if (qemu_in_coroutine()) {
            bdrv_drain_waiters++;
            qemu_co_queue_wait(&bdrv_drain_waitq, NULL);
            bdrv_drain_waiters--;
        } else {
            aio_poll(true);
        }
    }
}

void bdrv_drain(BlockDriverState *bs)
{
    trace_bdrv_drain(bs, bs->in_flight);
    bdrv_drain_wait(bs, BDRV_DRAIN_SUBTREE);
}

/*
 * New external requests on bs (and on any node above it, whose requests
 * would reach bs) park from here on; then wait for those in flight.
 */
void bdrv_drained_begin(BlockDriverState *bs)
{
    trace_bdrv_drained_begin(bs, bs->quiesce_counter);
    bs->quiesce_counter++;
    bdrv_quiesce_total++;
    bdrv_drain_wait(bs, BDRV_DRAIN_SECTION);
}

/* Leave a drained section; the last one on bs lets parked requests go. */
void bdrv_drained_end(BlockDriverState *bs)
{
    g_assert(bs->quiesce_counter > 0 && bdrv_quiesce_total > 0);
    trace_bdrv_drained_end(bs, bs->quiesce_counter);
    bdrv_quiesce_total--;
    if (--bs->quiesce_counter == 0) {
        qemu_co_queue_restart_all(&bdrv_quiesce_parked);
    }
}

void bdrv_drain_all(void)
{
    trace_bdrv_drain_all();
    bdrv_drain_wait(NULL, BDRV_DRAIN_ALL);
}

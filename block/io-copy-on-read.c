/*
 * Copy-on-read: a read of a range the node does not allocate fetches it
 * from the backing chain and also writes it into the node, so it is never
 * fetched again (BDRV_REQ_COPY_ON_READ, bdrv_enable_copy_on_read).
 *
 * The request path (io.c) comes here with a serialising tracked request
 * over the grain-aligned range, so no other request on those clusters
 * runs until this one ends: a guest write cannot be overwritten by backing
 * data fetched before it. Unallocated parts are read through the node's
 * driver (i.e. from the backing chain) into a bounce buffer, never into
 * the caller's buffer (which the guest may change meanwhile), written
 * back (all-zero grains as zero writes that must not fall back to zero
 * data), then copied to the caller; allocated parts are read directly.
 * A guest's read also tells io-cor-prefetch.c, which copies ahead of
 * sequential readers when the chain is remote.
 *
 * State: a small pool of bounce buffers, used from the main loop thread
 * only, so it needs no lock.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/io-internal.h"
#include "trace.h"

/* Largest bounce buffer of one copy-on-read step. */
#define BDRV_COR_BOUNCE_MAX (1 * MiB)

/* ---- Bounce-buffer pool (also used by block jobs: commit) */

/*
 * Bounce buffers of copy-on-read and of the jobs' copy loops are recycled
 * through a small free list (main loop thread only), up to
 * BDRV_COR_POOL_BYTES in all: a fresh buffer of a megabyte or two is
 * mmap()ed and page-faulted in anew each time, which costs more than the
 * copy itself. Nodes that need more than page alignment, and buffers
 * above BDRV_BOUNCE_POOLED_MAX, bypass the pool.
 */
#define BDRV_BOUNCE_POOLED_MAX (2 * MiB)
#define BDRV_COR_POOL_MAX 64
#define BDRV_COR_POOL_BYTES (32 * MiB)
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
    return size <= BDRV_BOUNCE_POOLED_MAX &&
           bdrv_opt_mem_align(bs) <= BDRV_COR_POOL_ALIGN;
}

void *bdrv_bounce_get(BlockDriverState *bs, int64_t size, int64_t *cap)
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

void bdrv_bounce_put(BlockDriverState *bs, void *buf, int64_t cap)
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
 * range already reads as zeroes through the chain, so nothing is written
 * -- unless hide_backing: the caller (block-stream to a base) is about to
 * change the backing link, and the zeroes must then be stored as data
 * (bq, holding [pos, pos + n) at qoff, is all zero).
 */
static int coroutine_fn bdrv_co_cor_zero(BlockDriverState *bs, int64_t pos,
                                         int64_t n, QEMUIOVector *bq,
                                         size_t qoff, bool hide_backing)
{
    int ret = bdrv_co_untracked_pwrite_zeroes(bs, pos, n,
                                              BDRV_REQ_NO_FALLBACK);

    trace_bdrv_co_copy_on_read_zero(bs, pos, n, ret);
    if (ret == -ENOTSUP && hide_backing) {
        return bdrv_co_untracked_pwritev(bs, pos, n, bq, qoff, 0);
    }
    return ret == -ENOTSUP ? 0 : ret;
}

/*
 * Write the fetched bounce data bq (holding [pos, pos + n)) into bs:
 * runs of all-zero grains as zero writes, the rest as data.
 */
static int coroutine_fn bdrv_co_cor_write_back(BlockDriverState *bs,
                                               int64_t pos, int64_t n,
                                               QEMUIOVector *bq,
                                               int64_t grain,
                                               bool hide_backing)
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
        ret = zero ? bdrv_co_cor_zero(bs, pos + done, run, bq, done,
                                      hide_backing)
                   : bdrv_co_untracked_pwritev(bs, pos + done, run, bq, done,
                                               0);
        done += run;
    }
    return ret;
}

/*
 * Populate the unallocated range [pos, pos + *n) of bs (*n may shrink to
 * one bounce buffer): read it through bs's driver (i.e. from the backing
 * chain) into a bounce buffer, write that back into bs (zero grains as
 * zero writes; see bdrv_co_cor_zero for hide_backing) and copy the
 * caller's part into qiov.
 */
static int coroutine_fn bdrv_co_cor_fetch(BlockDriverState *bs, int64_t pos,
                                          int64_t *n, int64_t offset,
                                          int64_t bytes, QEMUIOVector *qiov,
                                          bool hide_backing)
{
    int64_t grain = bdrv_tracking_grain(bs), cap;
    QEMUIOVector bq;
    uint8_t *bounce;
    int ret;

    *n = MIN(*n, MAX(QEMU_ALIGN_DOWN(BDRV_COR_BOUNCE_MAX, grain), grain));
    bounce = bdrv_bounce_get(bs, *n, &cap);
    if (!bounce) {
        return -ENOMEM;
    }
    qemu_iovec_init_buf(&bq, bounce, *n);
    trace_bdrv_co_copy_on_read_fetch(bs, pos, *n);
    ret = bdrv_co_untracked_preadv(bs, pos, *n, &bq, 0, 0);
    if (ret == 0) {
        ret = bdrv_co_cor_write_back(bs, pos, *n, &bq, grain, hide_backing);
    }
    if (ret == 0) {
        bdrv_cor_to_caller(pos, *n, bounce, offset, bytes, qiov);
    }
    bdrv_bounce_put(bs, bounce, cap);
    return ret;
}

/*
 * Read [offset, offset + bytes) of bs into qiov (NULL for PREFETCH),
 * populating bs with whatever it does not allocate. The caller tracks
 * the request as serialising, so the grain-aligned range [start, end)
 * worked on here cannot change under us. As in QEMU, a failure to write
 * the copy fails the read.
 */
int coroutine_fn bdrv_co_copy_on_readv(BlockDriverState *bs,
                                       int64_t offset, int64_t bytes,
                                       QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    bool hide_backing = flags & BDRV_REQ_COR_HIDE_BACKING;
    int64_t grain = bdrv_tracking_grain(bs);
    int64_t start = QEMU_ALIGN_DOWN(offset, grain);
    int64_t end = MIN(QEMU_ALIGN_UP(offset + bytes, grain), bs->total_bytes);
    int64_t pos, n;
    int ret = 0;

    trace_bdrv_co_copy_on_readv(bs, offset, bytes, start, end - start);
    if (qiov && !(flags & BDRV_REQ_PREFETCH)) {
        /* A guest's read: maybe fetch what it reads next ahead of it. */
        bdrv_cor_prefetch_note(bs, offset, bytes);
    }
    for (pos = start; pos < end && ret == 0; pos += n) {
        ret = bdrv_co_is_allocated(bs, pos, end - pos, &n);
        if (ret < 0) {
            break;
        }
        if (n <= 0) {
            ret = -EIO;     /* the driver made no progress */
        } else if (ret == 0) {
            ret = bdrv_co_cor_fetch(bs, pos, &n, offset, bytes, qiov,
                                    hide_backing);
        } else if (qiov) {
            /* Allocated in bs: read straight into the caller's buffer. */
            int64_t s = MAX(pos, offset), e = MIN(pos + n, offset + bytes);

            ret = s >= e ? 0
                : bdrv_co_untracked_preadv(bs, s, e - s, qiov, s - offset,
                                           0);
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

/* ---- Copy-on-read switch */

void bdrv_enable_copy_on_read(BlockDriverState *bs)
{
    bs->copy_on_read++;
}

void bdrv_disable_copy_on_read(BlockDriverState *bs)
{
    g_assert(bs->copy_on_read > 0);
    bs->copy_on_read--;
}


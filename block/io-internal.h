/*
 * Internal interfaces between the files of the request path:
 *
 *   io.c              entry points, range checks, alignment, splitting,
 *                     the driver calls, discard/flush/truncate
 *   io-tracking.c     in-flight counts, tracked requests and their
 *                     serialisation, drain and drained sections
 *   io-copy-on-read.c the copy-on-read path and its bounce-buffer pool
 *   io-cor-prefetch.c copy-on-read's prefetch ahead of sequential reads
 *   io-block-status.c block status of one node and across a chain
 *
 * Not for drivers or users: everything here assumes the caller is the
 * request path itself, on the main loop thread, with the preconditions
 * stated per function.
 */
#ifndef BLOCK_IO_INTERNAL_H
#define BLOCK_IO_INTERNAL_H

#include "block/block_int.h"

/* ---- io-tracking.c */

/* Count a request in / out of bs->in_flight (out may wake drainers). */
void bdrv_inc_in_flight(BlockDriverState *bs);
void bdrv_dec_in_flight(BlockDriverState *bs);

/* The grain tracked requests overlap on: cluster size, else alignment. */
int64_t bdrv_tracking_grain(BlockDriverState *bs);

/*
 * Track req (on the caller's stack) on bs and wait until no older
 * conflicting request is in flight; end it with bdrv_tracked_end().
 */
void coroutine_fn bdrv_co_tracked_start(BdrvTrackedRequest *req,
                                        BlockDriverState *bs,
                                        int64_t offset, int64_t bytes,
                                        bool serialising, bool is_write);
void bdrv_tracked_end(BdrvTrackedRequest *req);

/* ---- io.c: data I/O under a tracked request the caller holds */

/*
 * Read [offset, offset + bytes) of bs, any alignment, into qiov at qoff
 * (read-side flags only reach filter drivers). 0 or -errno.
 */
int coroutine_fn bdrv_co_untracked_preadv(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes,
                                          QEMUIOVector *qiov, size_t qoff,
                                          BdrvRequestFlags flags);

/*
 * Write qiov from qoff to [offset, offset + bytes) of bs, any alignment
 * (partial blocks by read-modify-write: the caller's tracked request
 * must then be serialising). 0 or -errno.
 */
int coroutine_fn bdrv_co_untracked_pwritev(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov, size_t qoff,
                                           BdrvRequestFlags flags);

/* Zero [offset, offset + bytes) of bs, any alignment. 0 or -errno. */
int coroutine_fn bdrv_co_untracked_pwrite_zeroes(BlockDriverState *bs,
                                                 int64_t offset,
                                                 int64_t bytes,
                                                 BdrvRequestFlags flags);

/* ---- io-copy-on-read.c */

/*
 * Read [offset, offset + bytes) of bs into qiov (NULL for a prefetch),
 * populating bs from its backing chain wherever it allocates nothing.
 * The caller holds a serialising tracked request over the range. flags:
 * the request's; BDRV_REQ_COR_HIDE_BACKING is the one that matters here.
 */
int coroutine_fn bdrv_co_copy_on_readv(BlockDriverState *bs,
                                       int64_t offset, int64_t bytes,
                                       QEMUIOVector *qiov,
                                       BdrvRequestFlags flags);

/* ---- io-cor-prefetch.c */

/*
 * A guest's copy-on-read of [offset, offset + bytes) on bs is running
 * (the caller holds its serialising request): when it continues a
 * sequential reader and the chain below is remote, start copying what
 * follows in the background (tracked, serialising, counted in in_flight).
 */
void bdrv_cor_prefetch_note(BlockDriverState *bs, int64_t offset,
                            int64_t bytes);

#endif /* BLOCK_IO_INTERNAL_H */

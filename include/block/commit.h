/*
 * Committing an image's data down into its base (block/commit.c,
 * block/commit-active.c).
 *
 * Three users share one copy loop (commit_copy_range):
 *  - the block-commit job for an intermediate image (block/commit.c);
 *  - HMP "commit DEVICE|all" and qblk-img commit: synchronous, no job;
 *  - the active commit job (block/commit-active.c), which also tracks the
 *    guest's writes and pivots the drive onto the base at completion.
 * qmp_block_commit (block/commit.c) checks the arguments and starts the
 * intermediate job itself or calls commit_active_start().
 */
#ifndef BLOCK_COMMIT_H
#define BLOCK_COMMIT_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-types.h"
#include "block/block.h"

/*
 * Copy into base (through base_child) every part of [offset, offset +
 * bytes) that is allocated in top or in any image between top and base
 * (exclusive), reading through top_child: data as data, ranges that read
 * as zero as zero writes (never as data). *pnum gets how many bytes from
 * offset were handled (copied or skipped: the caller loops); *copied (may
 * be NULL) how many of them were actually written to base. Returns 0 or
 * -errno; is_read (may be NULL) tells whether a failure was a read.
 */
int coroutine_fn commit_copy_range(BdrvChild *top_child,
                                   BdrvChild *base_child,
                                   BlockDriverState *base,
                                   int64_t offset, int64_t bytes,
                                   int64_t *pnum, int64_t *copied,
                                   bool *is_read);

/*
 * Start the active commit job: top is the active layer (it has a drive
 * or export writing to it), base below it in top's chain. flags: JOB_*.
 * base is already reopened read-write by the caller; on failure the
 * caller restores it.
 */
bool commit_active_start(const char *job_id, BlockDriverState *top,
                         BlockDriverState *base, int64_t speed,
                         BlockdevOnError on_error, int flags, Error **errp);

/*
 * HMP "commit" (and "commit all", per drive): copy everything bs (a
 * drive's active layer) allocates into its backing node, synchronously
 * and with bs drained (guest requests wait), flush it, then empty bs
 * where its format can. The backing node is reopened read-write for it
 * and back. Returns 0 or -errno: -ENOTSUP without a backing node, -EBUSY
 * when a job holds bs or its backing node, -EACCES when the backing node
 * cannot be reopened read-write.
 */
int commit_sync(BlockDriverState *bs);

#endif /* BLOCK_COMMIT_H */

/*
 * Synchronous wrappers around the coroutine I/O functions of block.h.
 *
 * Each wrapper packs its arguments into one BdrvSyncCall, names a small
 * trampoline that makes the real bdrv_co_*() call, and lets
 * bdrv_run_sync() run it in a coroutine while the main loop turns
 * (qemu_coroutine_call_sync; called from a coroutine, it runs directly).
 * The call struct lives on the caller's stack, which stays valid because
 * the caller does not return before the coroutine has finished.
 *
 * Adding a wrapper: write a trampoline that maps BdrvSyncCall fields to
 * the coroutine function's parameters (add a field if none fits), then a
 * wrapper that fills those fields and returns bdrv_run_sync(). Errors are
 * passed through unchanged, so the wrapper keeps the coroutine version's
 * contract (0 or -errno, Error ** where it has one).
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qemu/coroutine.h"

typedef struct BdrvSyncCall BdrvSyncCall;

/* Makes the coroutine call described by c and returns its result. */
typedef int coroutine_fn BdrvSyncFn(BdrvSyncCall *c);

/*
 * Arguments of any wrapped call; each trampoline uses what it needs and
 * the rest stay zero. Pointer fields are the caller's out-parameters.
 */
struct BdrvSyncCall {
    BdrvSyncFn *fn;             /* the trampoline */
    BdrvChild *child;           /* data requests and truncate */
    BlockDriverState *bs;       /* node-level calls (flush, status) */
    BlockDriverState *base;     /* *_above calls: where the walk stops */
    int64_t offset;
    int64_t bytes;
    QEMUIOVector *qiov;
    void *buf;
    BdrvRequestFlags flags;
    int64_t *pnum;
    int64_t *map;
    BlockDriverState **file;
    int *depth;
    bool exact;
    bool include_base;
    PreallocMode prealloc;
    Error **errp;
};

/* Coroutine body: run the trampoline. */
static int coroutine_fn bdrv_sync_entry(void *opaque)
{
    BdrvSyncCall *c = opaque;

    return c->fn(c);
}

/* Run c->fn in coroutine context and wait for it. */
static int bdrv_run_sync(BdrvSyncCall *c)
{
    return qemu_coroutine_call_sync(bdrv_sync_entry, c);
}

/* ---- Trampolines: one line each, from BdrvSyncCall to the real call. */

static int coroutine_fn co_preadv(BdrvSyncCall *c)
{
    return bdrv_co_preadv(c->child, c->offset, c->bytes, c->qiov, c->flags);
}

static int coroutine_fn co_pwritev(BdrvSyncCall *c)
{
    return bdrv_co_pwritev(c->child, c->offset, c->bytes, c->qiov, c->flags);
}

static int coroutine_fn co_pread(BdrvSyncCall *c)
{
    return bdrv_co_pread(c->child, c->offset, c->bytes, c->buf, c->flags);
}

static int coroutine_fn co_pwrite(BdrvSyncCall *c)
{
    return bdrv_co_pwrite(c->child, c->offset, c->bytes, c->buf, c->flags);
}

static int coroutine_fn co_pwrite_zeroes(BdrvSyncCall *c)
{
    return bdrv_co_pwrite_zeroes(c->child, c->offset, c->bytes, c->flags);
}

static int coroutine_fn co_pdiscard(BdrvSyncCall *c)
{
    return bdrv_co_pdiscard(c->child, c->offset, c->bytes);
}

static int coroutine_fn co_flush(BdrvSyncCall *c)
{
    return bdrv_co_flush(c->bs);
}

static int coroutine_fn co_truncate(BdrvSyncCall *c)
{
    return bdrv_co_truncate(c->child, c->offset, c->exact, c->prealloc,
                            c->flags, c->errp);
}

/*
 * bdrv_block_status() has neither base nor depth: it asks only the node
 * itself, which the chain walk of the _above version would not do.
 */
static int coroutine_fn co_block_status_above(BdrvSyncCall *c)
{
    if (!c->base && !c->depth) {
        return bdrv_co_block_status(c->bs, c->offset, c->bytes, c->pnum,
                                    c->map, c->file);
    }
    return bdrv_co_block_status_above(c->bs, c->base, c->offset, c->bytes,
                                      c->pnum, c->map, c->file, c->depth);
}

static int coroutine_fn co_is_allocated_above(BdrvSyncCall *c)
{
    return bdrv_co_is_allocated_above(c->bs, c->base, c->include_base,
                                      c->offset, c->bytes, c->pnum);
}

/*
 * ---- The wrappers: same parameters and results as the bdrv_co_*()
 * functions they call; declared and documented in block/block.h.
 */

int bdrv_preadv(BdrvChild *child, int64_t offset, int64_t bytes,
                QEMUIOVector *qiov, BdrvRequestFlags flags)
{
    BdrvSyncCall c = { .fn = co_preadv, .child = child, .offset = offset,
                       .bytes = bytes, .qiov = qiov, .flags = flags };

    return bdrv_run_sync(&c);
}

int bdrv_pwritev(BdrvChild *child, int64_t offset, int64_t bytes,
                 QEMUIOVector *qiov, BdrvRequestFlags flags)
{
    BdrvSyncCall c = { .fn = co_pwritev, .child = child, .offset = offset,
                       .bytes = bytes, .qiov = qiov, .flags = flags };

    return bdrv_run_sync(&c);
}

int bdrv_pread(BdrvChild *child, int64_t offset, int64_t bytes, void *buf,
               BdrvRequestFlags flags)
{
    BdrvSyncCall c = { .fn = co_pread, .child = child, .offset = offset,
                       .bytes = bytes, .buf = buf, .flags = flags };

    return bdrv_run_sync(&c);
}

int bdrv_pwrite(BdrvChild *child, int64_t offset, int64_t bytes,
                const void *buf, BdrvRequestFlags flags)
{
    BdrvSyncCall c = { .fn = co_pwrite, .child = child, .offset = offset,
                       .bytes = bytes, .buf = (void *)buf, .flags = flags };

    return bdrv_run_sync(&c);
}

int bdrv_pwrite_zeroes(BdrvChild *child, int64_t offset, int64_t bytes,
                       BdrvRequestFlags flags)
{
    BdrvSyncCall c = { .fn = co_pwrite_zeroes, .child = child,
                       .offset = offset, .bytes = bytes, .flags = flags };

    return bdrv_run_sync(&c);
}

int bdrv_pdiscard(BdrvChild *child, int64_t offset, int64_t bytes)
{
    BdrvSyncCall c = { .fn = co_pdiscard, .child = child, .offset = offset,
                       .bytes = bytes };

    return bdrv_run_sync(&c);
}

int bdrv_flush(BlockDriverState *bs)
{
    BdrvSyncCall c = { .fn = co_flush, .bs = bs };

    return bdrv_run_sync(&c);
}

int bdrv_truncate(BdrvChild *child, int64_t offset, bool exact,
                  PreallocMode prealloc, BdrvRequestFlags flags, Error **errp)
{
    BdrvSyncCall c = { .fn = co_truncate, .child = child, .offset = offset,
                       .exact = exact, .prealloc = prealloc, .flags = flags,
                       .errp = errp };

    return bdrv_run_sync(&c);
}

int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BdrvSyncCall c = { .fn = co_block_status_above, .bs = bs,
                       .offset = offset, .bytes = bytes, .pnum = pnum,
                       .map = map, .file = file };

    return bdrv_run_sync(&c);
}

int bdrv_block_status_above(BlockDriverState *bs, BlockDriverState *base,
                            int64_t offset, int64_t bytes, int64_t *pnum,
                            int64_t *map, BlockDriverState **file,
                            int *depth)
{
    int local_depth;
    BdrvSyncCall c = { .fn = co_block_status_above, .bs = bs, .base = base,
                       .offset = offset, .bytes = bytes, .pnum = pnum,
                       .map = map, .file = file,
                       .depth = depth ? depth : &local_depth };

    return bdrv_run_sync(&c);
}

int bdrv_is_allocated_above(BlockDriverState *top, BlockDriverState *base,
                            bool include_base, int64_t offset, int64_t bytes,
                            int64_t *pnum)
{
    BdrvSyncCall c = { .fn = co_is_allocated_above, .bs = top, .base = base,
                       .include_base = include_base, .offset = offset,
                       .bytes = bytes, .pnum = pnum };

    return bdrv_run_sync(&c);
}

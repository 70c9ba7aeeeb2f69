/*
 * Copy-on-read sequential prefetch: when a guest reads a node with
 * copy-on-read sequentially and the backing chain is remote (its
 * parallel-request hint is not 0), copy the ranges just ahead of the
 * reader in the background, so its next reads find them local (or wait
 * for the prefetch already fetching them) instead of paying one round
 * trip each.
 *
 * State: per node, a few readers (bs->cor_streams: where each would read
 * next, its window, how far prefetch got) and the prefetches running
 * (bs->cor_prefetch_in_flight). Main loop thread only: no locks.
 *
 * Why it is safe:
 *  - a prefetch is an ordinary copy-on-read of the node under a
 *    serialising tracked request (bdrv_co_copy_on_readv with no buffer):
 *    a guest write that overlaps waits for it or runs before it (and the
 *    copy-on-read path then finds the range allocated and skips it), so
 *    no prefetched old data ever covers a guest write; a guest read of a
 *    range being prefetched waits for that prefetch, not for others;
 *  - each prefetch counts in bs->in_flight from before its coroutine is
 *    created until it has ended, so drain waits for it and the node
 *    (which bdrv_unref drains before closing) outlives it;
 *  - more prefetch is started only by a guest read or a finished
 *    prefetch, never beyond the reader's window, never while the node is
 *    drained or closing, and never after an error (the reader must be
 *    seen again): everything ends on its own.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/io-internal.h"
#include "qemu/aio.h"
#include "trace.h"

/* The window ahead of a reader: starts small, doubles per sequential read. */
#define COR_PREFETCH_WINDOW_MIN (256 * KiB)
#define COR_PREFETCH_WINDOW_MAX (8 * MiB)
/* Largest prefetch request (the copy-on-read bounce buffer). */
#define COR_PREFETCH_CHUNK (1 * MiB)
/* Most prefetches in flight per node, whatever the hint. */
#define COR_PREFETCH_PARALLEL_MAX 32

typedef struct BdrvCorPrefetch {
    BlockDriverState *bs;
    int slot;                   /* bs->cor_streams index it works for */
    int64_t offset;
    int64_t bytes;
} BdrvCorPrefetch;

/* Prefetches allowed in flight on bs now (0: none). */
static int bdrv_cor_prefetch_limit(BlockDriverState *bs)
{
    if (!bs->drv || bs->read_only || bs->quiesce_counter > 0 ||
        bs->refcnt == 0) {
        return 0;
    }
    return MIN(bdrv_chain_parallel_hint(bs), COR_PREFETCH_PARALLEL_MAX);
}

static void coroutine_fn bdrv_cor_prefetch_co_entry(void *opaque);

/*
 * Start prefetches for reader slot of bs from where it got up to its
 * window ahead of the reader, while the in-flight limit allows.
 */
static void bdrv_cor_prefetch_pump(BlockDriverState *bs, int slot)
{
    BdrvCorStream *st = &bs->cor_streams[slot];
    int64_t grain = bdrv_tracking_grain(bs);
    int64_t chunk = QEMU_ALIGN_UP(COR_PREFETCH_CHUNK, grain);
    int limit = bdrv_cor_prefetch_limit(bs);
    int64_t from, until;

    if (!st->live || st->window <= 0) {
        return;
    }
    from = MAX(QEMU_ALIGN_UP(st->next, grain), st->pf_end);
    until = MIN(QEMU_ALIGN_UP(st->next + st->window, grain), bs->total_bytes);
    while (from < until && bs->cor_prefetch_in_flight < limit) {
        BdrvCorPrefetch *p = g_new(BdrvCorPrefetch, 1);

        p->bs = bs;
        p->slot = slot;
        p->offset = from;
        p->bytes = MIN(chunk, until - from);
        from += p->bytes;
        st->pf_end = from;
        bs->cor_prefetch_in_flight++;
        bdrv_inc_in_flight(bs);
        trace_bdrv_cor_prefetch_start(bs, p->offset, p->bytes,
                                      bs->cor_prefetch_in_flight);
        aio_co_wake(qemu_coroutine_create(bdrv_cor_prefetch_co_entry, p));
    }
}

/*
 * Body of a prefetch: a copy-on-read without a buffer, serialised like
 * any; then more prefetch for the same reader, or none after an error.
 */
static void coroutine_fn bdrv_cor_prefetch_co_entry(void *opaque)
{
    BdrvCorPrefetch *p = opaque;
    BlockDriverState *bs = p->bs;
    BdrvTrackedRequest req;
    int ret;

    bdrv_co_tracked_start(&req, bs, p->offset, p->bytes, true, false);
    ret = bdrv_co_copy_on_readv(bs, p->offset, p->bytes, NULL,
                                BDRV_REQ_PREFETCH);
    bdrv_tracked_end(&req);
    trace_bdrv_cor_prefetch_done(bs, p->offset, p->bytes, ret);
    bs->cor_prefetch_in_flight--;
    if (ret < 0) {
        /* No retry: the reader must be recognised again first. */
        bs->cor_streams[p->slot].live = false;
        trace_bdrv_cor_prefetch_stop(bs, "error");
    } else {
        bdrv_cor_prefetch_pump(bs, p->slot);
    }
    g_free(p);
    bdrv_dec_in_flight(bs);     /* last: may let a drain finish */
}

/*
 * The reader slot that a read at offset continues, or -1: it starts
 * where the reader's last read ended, or, once prefetch runs for it,
 * anywhere from a window behind that to where prefetch got (a reader
 * keeps several reads in flight, and those overlapping a prefetch reach
 * us only after it, since they serialise first).
 */
static int bdrv_cor_stream_find(BlockDriverState *bs, int64_t offset)
{
    for (int i = 0; i < BDRV_COR_STREAMS; i++) {
        BdrvCorStream *st = &bs->cor_streams[i];

        if (!st->live) {
            continue;
        }
        if (offset == st->next ||
            (st->window > 0 && offset >= st->next - st->window &&
             offset <= MAX(st->pf_end, st->next))) {
            return i;
        }
    }
    return -1;
}

/* A read that continues no reader: it may start one (oldest slot goes). */
static void bdrv_cor_stream_new(BlockDriverState *bs, int64_t end)
{
    int slot = bs->cor_stream_victim;
    BdrvCorStream *st = &bs->cor_streams[slot];

    if (st->live && st->window > 0) {
        trace_bdrv_cor_prefetch_stop(bs, "not sequential");
    }
    bs->cor_stream_victim = (slot + 1) % BDRV_COR_STREAMS;
    *st = (BdrvCorStream) { .live = true, .next = end };
}

void bdrv_cor_prefetch_note(BlockDriverState *bs, int64_t offset,
                            int64_t bytes)
{
    int slot;
    BdrvCorStream *st;

    if (bdrv_cor_prefetch_limit(bs) <= 0) {
        return;
    }
    slot = bdrv_cor_stream_find(bs, offset);
    if (slot < 0) {
        bdrv_cor_stream_new(bs, offset + bytes);
        return;
    }
    st = &bs->cor_streams[slot];
    st->next = MAX(st->next, offset + bytes);
    st->window = st->window ? MIN(st->window * 2, COR_PREFETCH_WINDOW_MAX)
                            : COR_PREFETCH_WINDOW_MIN;
    trace_bdrv_cor_prefetch_window(bs, st->next, st->window);
    bdrv_cor_prefetch_pump(bs, slot);
}

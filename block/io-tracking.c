/*
 * Request tracking and drain: which requests are in flight on a node,
 * and who has to wait for whom.
 *
 * State, all on the node (block_int.h) plus a few globals here:
 *  - bs->in_flight counts every request from entry to completion; drain
 *    waits for it (and its children's) to reach zero.
 *  - bs->tracked_head/tail list every data request (and discard,
 *    truncate) oldest first; each BdrvTrackedRequest lives on the stack
 *    of the coroutine that issued it.
 *  - bs->quiesce_counter > 0 marks a drained section: new requests from
 *    root children (exports, tools, jobs) park until it ends.
 *
 * Overlap is judged on ranges widened to the node's cluster size (else
 * request_alignment). A serialising request (copy-on-read, a
 * read-modify-write, a truncate) conflicts with every overlapping
 * request, others only with serialising ones; a request waits, before
 * touching any data, for each older conflicting request. Waits thus
 * always point to older requests: no cycle, no deadlock, and conflicting
 * requests run in arrival order, so a copy-on-read and a guest write to
 * one cluster can never interleave.
 *
 * Safe without locks: everything runs in coroutines on the main loop
 * thread and the lists only change between yields.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/io-internal.h"
#include "qemu/aio.h"
#include "trace.h"

/* ---- In-flight counting and drained sections */

/* Coroutines in bdrv_drain*() waiting for some in_flight to reach 0. */
static CoQueue bdrv_drain_waitq;
static unsigned int bdrv_drain_waiters;
/* External requests parked by a drained section, and how many sections. */
static CoQueue bdrv_quiesce_parked;
static unsigned int bdrv_quiesce_total;

void bdrv_inc_in_flight(BlockDriverState *bs)
{
    bs->in_flight++;
}

/* Count a request out; a node going idle wakes coroutines in drain. */
void bdrv_dec_in_flight(BlockDriverState *bs)
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
void coroutine_fn bdrv_co_wait_unquiesced(BdrvChild *child)
{
    while (bdrv_quiesce_total && (child->role & BDRV_CHILD_ROOT) &&
           child->bs && bdrv_subtree_quiesced(child->bs)) {
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
int64_t bdrv_tracking_grain(BlockDriverState *bs)
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
void bdrv_tracked_end(BdrvTrackedRequest *req)
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
void coroutine_fn bdrv_co_tracked_start(BdrvTrackedRequest *req,
                                        BlockDriverState *bs,
                                        int64_t offset, int64_t bytes,
                                        bool serialising, bool is_write)
{
    bdrv_tracked_begin(req, bs, offset, bytes, serialising, is_write);
    bdrv_co_wait_serialising(req);
}


/* ---- Drain */

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

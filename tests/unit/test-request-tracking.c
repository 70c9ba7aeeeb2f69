/*
 * Unit tests of request tracking and drain (block/io-tracking.c) and of
 * closing a node with requests in flight (block/block.c).
 *
 * A mock driver defined here logs every data call it receives and, while
 * its gate is closed, parks the calling coroutine inside the driver until
 * the test releases it. A request that has reached the driver has thus
 * passed tracking; one that has not is waiting (for an overlapping
 * request, or in a drained section). Requests run in coroutines started
 * by the test, which then turns the main loop without blocking.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qemu/aio.h"

#define MOCK_SIZE (1 * MiB)
#define MOCK_LOG_MAX 64

/* One data call that reached the mock driver. */
typedef struct MockCall {
    bool write;
    int64_t offset;
    int64_t bytes;
} MockCall;

typedef struct GateState {
    uint8_t *data;
    bool hold;              /* calls park in the driver until released */
    GQueue parked;          /* Coroutine * parked in the driver */
    MockCall log[MOCK_LOG_MAX];
    int n_log;
} GateState;

/* Set before creating a node: its cluster size (0: none) and alignment. */
static int mock_cluster_size;
static uint32_t mock_align = 1;

/* Log the call, then park while the gate is closed. */
static void coroutine_fn gate_co_enter(BlockDriverState *bs, bool write,
                                       int64_t offset, int64_t bytes)
{
    GateState *s = bs->opaque;

    if (s->n_log < MOCK_LOG_MAX) {  /* the tests look at the first few */
        s->log[s->n_log] = (MockCall) { write, offset, bytes };
    }
    s->n_log++;
    if (s->hold) {
        g_queue_push_tail(&s->parked, qemu_coroutine_self());
        qemu_coroutine_yield();
    }
}

static int coroutine_fn gate_co_preadv(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    GateState *s = bs->opaque;

    gate_co_enter(bs, false, offset, bytes);
    qemu_iovec_from_buf(qiov, 0, s->data + offset, bytes);
    return 0;
}

static int coroutine_fn gate_co_pwritev(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, QEMUIOVector *qiov,
                                        BdrvRequestFlags flags)
{
    GateState *s = bs->opaque;

    gate_co_enter(bs, true, offset, bytes);
    qemu_iovec_to_buf(qiov, 0, s->data + offset, bytes);
    return 0;
}

/* Everything is allocated: copy-on-read reads straight from the node. */
static int coroutine_fn gate_co_block_status(BlockDriverState *bs,
                                             bool want_zero, int64_t offset,
                                             int64_t bytes, int64_t *pnum,
                                             int64_t *map,
                                             BlockDriverState **file)
{
    *pnum = bytes;
    return BDRV_BLOCK_DATA;
}

static int gate_open(BlockDriverState *bs, QDict *options, int flags,
                     Error **errp)
{
    GateState *s = bs->opaque;

    s->data = g_malloc0(MOCK_SIZE);
    g_queue_init(&s->parked);
    bs->total_bytes = MOCK_SIZE;
    return 0;
}

/* In-flight requests the last gate_close() saw on its node (-1: none). */
static int gate_close_in_flight = -1;

static void gate_close(BlockDriverState *bs)
{
    GateState *s = bs->opaque;

    gate_close_in_flight = bs->in_flight;
    g_assert(g_queue_is_empty(&s->parked));
    g_free(s->data);
}

static void gate_refresh_limits(BlockDriverState *bs, Error **errp)
{
    bs->bl.request_alignment = mock_align;
}

static int gate_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    bdi->cluster_size = mock_cluster_size;
    return 0;
}

#define GATE_DRIVER_FIELDS \
    .instance_size = sizeof(GateState), \
    .bdrv_open = gate_open, \
    .bdrv_close = gate_close, \
    .bdrv_refresh_limits = gate_refresh_limits, \
    .bdrv_get_info = gate_get_info, \
    .bdrv_co_preadv = gate_co_preadv, \
    .bdrv_co_pwritev = gate_co_pwritev, \
    .bdrv_co_block_status = gate_co_block_status

static const BlockDriver gate_drv = {
    .format_name = "gate",
    GATE_DRIVER_FIELDS,
};

/* The same, taking a backing node (it never reads from it). */
static const BlockDriver gate_overlay_drv = {
    .format_name = "gate-overlay",
    .supports_backing = true,
    GATE_DRIVER_FIELDS,
};

/* ---- Requests started by the tests */

typedef enum { REQ_READ, REQ_COR_READ, REQ_WRITE } ReqKind;

typedef struct TestReq {
    BdrvChild *child;
    ReqKind kind;
    int64_t offset;
    int64_t bytes;
    uint8_t buf[128 * KiB];
    bool done;
    int ret;
    int finish_order;       /* 1-based position among finished requests */
} TestReq;

static int finished_count;

static void coroutine_fn test_req_entry(void *opaque)
{
    TestReq *r = opaque;

    switch (r->kind) {
    case REQ_READ:
    case REQ_COR_READ:
        r->ret = bdrv_co_pread(r->child, r->offset, r->bytes, r->buf,
                               r->kind == REQ_COR_READ ?
                               BDRV_REQ_COPY_ON_READ : 0);
        break;
    case REQ_WRITE:
        r->ret = bdrv_co_pwrite(r->child, r->offset, r->bytes, r->buf, 0);
        break;
    }
    r->done = true;
    r->finish_order = ++finished_count;
}

/* Turn the main loop until nothing more is ready to run. */
static void run_pending(void)
{
    while (aio_poll(false)) {
        /* keep going */
    }
}

/* Start a request in a new coroutine; it runs until it parks or ends. */
static TestReq *start_req(BdrvChild *child, ReqKind kind, int64_t offset,
                          int64_t bytes)
{
    TestReq *r = g_new0(TestReq, 1);

    g_assert_cmpint(bytes, <=, sizeof(r->buf));
    r->child = child;
    r->kind = kind;
    r->offset = offset;
    r->bytes = bytes;
    memset(r->buf, 0xa5, bytes);
    qemu_coroutine_enter(qemu_coroutine_create(test_req_entry, r));
    run_pending();
    return r;
}

/* The tracked request of r on bs (NULL if it is not tracked). */
static BdrvTrackedRequest *tracked_of(BlockDriverState *bs, TestReq *r)
{
    for (BdrvTrackedRequest *t = bs->tracked_head; t; t = t->next) {
        if (t->offset == r->offset && t->bytes == r->bytes && !t->is_write ==
            (r->kind != REQ_WRITE)) {
            return t;
        }
    }
    return NULL;
}

/* Release the oldest coroutine parked in the driver. */
static void release_one(BlockDriverState *bs)
{
    GateState *s = bs->opaque;
    Coroutine *co = g_queue_pop_head(&s->parked);

    g_assert(co);
    qemu_coroutine_enter(co);
    run_pending();
}

/* Open the gate and release everything parked, until all settle. */
static void release_all(BlockDriverState *bs)
{
    GateState *s = bs->opaque;

    s->hold = false;
    while (!g_queue_is_empty(&s->parked)) {
        release_one(bs);
    }
}

static int n_calls(BlockDriverState *bs)
{
    return ((GateState *)bs->opaque)->n_log;
}

/* A fresh gate node (closed gate) with a root child for the requests. */
static BlockDriverState *gate_node(int cluster, uint32_t align,
                                   BdrvChild **root)
{
    BlockDriverState *bs;

    mock_cluster_size = cluster;
    mock_align = align;
    bs = bdrv_new_open_driver(&gate_drv, NULL, NULL, BDRV_O_RDWR,
                              &error_abort);
    ((GateState *)bs->opaque)->hold = true;
    *root = bdrv_root_attach(bs, "test", &error_abort);
    finished_count = 0;
    return bs;
}

static void gate_free(BlockDriverState *bs, BdrvChild *root, TestReq **reqs,
                      int n)
{
    for (int i = 0; i < n; i++) {
        g_assert(reqs[i]->done);
        g_assert_cmpint(reqs[i]->ret, ==, 0);
        g_free(reqs[i]);
    }
    g_assert_cmpint(bs->in_flight, ==, 0);
    g_assert(!bs->tracked_head && !bs->tracked_tail);
    g_assert_cmpuint(bs->serialising_in_flight, ==, 0);
    bdrv_root_unref_child(root);
    bdrv_unref(bs);
}

/* ---- Tests */

/*
 * A copy-on-read in the same 64 KiB cluster as a write to other bytes
 * still waits for it; one in the next cluster does not.
 */
static void test_overlap_aligned(void)
{
    BdrvChild *root;
    BlockDriverState *bs = gate_node(64 * KiB, 1, &root);
    TestReq *r[3];

    r[0] = start_req(root, REQ_WRITE, 0, 4 * KiB);
    g_assert_cmpint(n_calls(bs), ==, 1);
    r[1] = start_req(root, REQ_COR_READ, 32 * KiB, 4 * KiB);
    g_assert_cmpint(n_calls(bs), ==, 1);        /* waits: same cluster */
    g_assert(tracked_of(bs, r[1])->waiting_for == tracked_of(bs, r[0]));
    g_assert_cmpint(tracked_of(bs, r[1])->overlap_offset, ==, 0);
    g_assert_cmpint(tracked_of(bs, r[1])->overlap_bytes, ==, 64 * KiB);
    r[2] = start_req(root, REQ_COR_READ, 64 * KiB, 4 * KiB);
    g_assert_cmpint(n_calls(bs), ==, 2);        /* next cluster: runs */
    release_one(bs);                            /* the write ends */
    g_assert(r[0]->done && !r[1]->done);
    g_assert_cmpint(n_calls(bs), ==, 3);        /* now r[1] reads */
    release_all(bs);
    gate_free(bs, root, r, 3);
}

/* A serialising request waits for an earlier overlapping plain one. */
static void test_serialising_waits_for_earlier(void)
{
    BdrvChild *root;
    BlockDriverState *bs = gate_node(0, 512, &root);
    TestReq *r[2];

    r[0] = start_req(root, REQ_READ, 0, 4 * KiB);
    /* An unaligned write needs read-modify-write: it is serialising. */
    r[1] = start_req(root, REQ_WRITE, 600, 100);
    g_assert_cmpint(n_calls(bs), ==, 1);
    g_assert(tracked_of(bs, r[1])->serialising);
    g_assert(tracked_of(bs, r[1])->waiting_for == tracked_of(bs, r[0]));
    release_one(bs);
    g_assert(r[0]->done && !r[1]->done);
    g_assert_cmpint(n_calls(bs), ==, 2);        /* the RMW's read */
    release_all(bs);
    g_assert(r[1]->done);
    g_assert_cmpint(n_calls(bs), ==, 3);        /* read, then write 512 */
    g_assert(((GateState *)bs->opaque)->log[2].write);
    g_assert_cmpint(((GateState *)bs->opaque)->log[2].offset, ==, 512);
    g_assert_cmpint(((GateState *)bs->opaque)->log[2].bytes, ==, 512);
    gate_free(bs, root, r, 2);
}

/*
 * Later overlapping requests, serialising or not, wait for a serialising
 * one; a later request elsewhere does not.
 */
static void test_later_waits_for_serialising(void)
{
    BdrvChild *root;
    BlockDriverState *bs = gate_node(64 * KiB, 1, &root);
    TestReq *r[4];

    r[0] = start_req(root, REQ_COR_READ, 0, 8 * KiB);
    g_assert_cmpint(n_calls(bs), ==, 1);
    r[1] = start_req(root, REQ_WRITE, 60 * KiB, 8 * KiB);
    r[2] = start_req(root, REQ_READ, 16 * KiB, 4 * KiB);
    g_assert_cmpint(n_calls(bs), ==, 1);
    r[3] = start_req(root, REQ_WRITE, 256 * KiB, 4 * KiB);
    g_assert_cmpint(n_calls(bs), ==, 2);
    release_one(bs);
    g_assert(r[0]->done);
    /* Neither waiter is serialising: both reached the driver together. */
    g_assert_cmpint(n_calls(bs), ==, 4);
    release_all(bs);
    g_assert_cmpint(r[0]->finish_order, ==, 1);
    gate_free(bs, root, r, 4);
}

/* Overlapping plain requests, and serialising ones apart, all run at once. */
static void test_non_overlapping(void)
{
    BdrvChild *root;
    BlockDriverState *bs = gate_node(64 * KiB, 1, &root);
    TestReq *r[5];

    r[0] = start_req(root, REQ_WRITE, 0, 8 * KiB);
    r[1] = start_req(root, REQ_WRITE, 4 * KiB, 8 * KiB);
    r[2] = start_req(root, REQ_READ, 0, 16 * KiB);
    r[3] = start_req(root, REQ_COR_READ, 128 * KiB, 4 * KiB);
    r[4] = start_req(root, REQ_COR_READ, 192 * KiB, 64 * KiB);
    g_assert_cmpint(n_calls(bs), ==, 5);
    release_all(bs);
    gate_free(bs, root, r, 5);
}

/*
 * Chains of waits: A (plain, in the driver) <- B (serialising) <- C
 * (serialising, overlapping both) <- D (plain, overlapping C only), and E
 * (serialising) overlapping B and D. Each waits only for older requests,
 * so the chain drains in arrival order with no deadlock.
 */
static void test_no_deadlock(void)
{
    BdrvChild *root;
    BlockDriverState *bs = gate_node(64 * KiB, 1, &root);
    TestReq *r[5];

    r[0] = start_req(root, REQ_WRITE, 0, 4 * KiB);
    r[1] = start_req(root, REQ_COR_READ, 8 * KiB, 4 * KiB);
    r[2] = start_req(root, REQ_COR_READ, 60 * KiB, 8 * KiB);
    r[3] = start_req(root, REQ_WRITE, 100 * KiB, 4 * KiB);
    r[4] = start_req(root, REQ_COR_READ, 16 * KiB, 112 * KiB);
    g_assert_cmpint(n_calls(bs), ==, 1);
    g_assert(tracked_of(bs, r[1])->waiting_for == tracked_of(bs, r[0]));
    g_assert(tracked_of(bs, r[2])->waiting_for == tracked_of(bs, r[0]));
    g_assert(tracked_of(bs, r[3])->waiting_for == tracked_of(bs, r[2]));
    g_assert(tracked_of(bs, r[4])->waiting_for == tracked_of(bs, r[0]));
    for (int i = 0; i < 5; i++) {
        g_assert_cmpint(n_calls(bs), ==, i + 1);
        release_one(bs);
        g_assert(r[i]->done);
        g_assert_cmpint(r[i]->finish_order, ==, i + 1);
    }
    gate_free(bs, root, r, 5);
}

/* Timer: resume the oldest coroutine parked in the node in opaque. */
static void release_cb(void *opaque)
{
    GateState *s = ((BlockDriverState *)opaque)->opaque;

    qemu_coroutine_enter(g_queue_pop_head(&s->parked));
}

static bool drain_co_done;

static void coroutine_fn drain_co_entry(void *opaque)
{
    bdrv_drain(opaque);
    drain_co_done = true;
}

/* bdrv_drain returns only once in-flight requests have completed. */
static void test_drain_waits(void)
{
    BdrvChild *root;
    BlockDriverState *bs = gate_node(0, 1, &root);
    QEMUTimer *t = timer_new_ns(release_cb, bs);
    TestReq *r[2];

    /* Outside coroutines: the main loop runs until the timer releases. */
    r[0] = start_req(root, REQ_WRITE, 0, 4 * KiB);
    g_assert_cmpuint(bs->in_flight, ==, 1);
    timer_mod_ns(t, qemu_clock_get_ns() + 5 * 1000 * 1000);
    bdrv_drain(bs);
    g_assert(r[0]->done);
    g_assert_cmpuint(bs->in_flight, ==, 0);

    /* In a coroutine: it yields until the last request wakes it. */
    r[1] = start_req(root, REQ_READ, 0, 4 * KiB);
    drain_co_done = false;
    qemu_coroutine_enter(qemu_coroutine_create(drain_co_entry, bs));
    run_pending();
    g_assert(!drain_co_done);
    release_one(bs);
    g_assert(r[1]->done && drain_co_done);
    timer_free(t);
    gate_free(bs, root, r, 2);
}

/*
 * In a drained section new external requests park before being counted;
 * sections nest; the last drained_end lets them run. A section on a node
 * below holds off requests entering above it too.
 */
static void test_drained_section(void)
{
    BdrvChild *root;
    BlockDriverState *bs = gate_node(0, 1, &root);
    BlockDriverState *top = bdrv_new_open_driver(&gate_drv, NULL, NULL,
                                                 BDRV_O_RDWR, &error_abort);
    BdrvChild *top_root = bdrv_root_attach(top, "top", &error_abort);
    TestReq *r[2];

    ((GateState *)bs->opaque)->hold = false;
    bdrv_attach_child(top, bs, "file", BDRV_CHILD_FILE, &error_abort);
    bdrv_drained_begin(bs);
    bdrv_drained_begin(bs);
    r[0] = start_req(root, REQ_WRITE, 0, 4 * KiB);
    r[1] = start_req(top_root, REQ_READ, 0, 4 * KiB);
    g_assert(!r[0]->done && !r[1]->done);
    g_assert_cmpuint(bs->in_flight, ==, 0);
    g_assert_cmpuint(top->in_flight, ==, 0);
    bdrv_drained_end(bs);
    run_pending();
    g_assert(!r[0]->done && !r[1]->done);
    g_assert_cmpint(n_calls(bs), ==, 0);
    bdrv_drained_end(bs);
    run_pending();
    g_assert(r[0]->done && r[1]->done);
    g_assert_cmpint(n_calls(bs), ==, 1);
    g_assert_cmpint(n_calls(top), ==, 1);
    bdrv_root_unref_child(top_root);
    bdrv_unref(top);
    gate_free(bs, root, r, 2);
}

/*
 * Dropping the last reference to a node with a request parked in its
 * driver drains first: the driver closes only after the request ended.
 */
static void test_close_drains(void)
{
    BdrvChild *root;
    BlockDriverState *bs = gate_node(0, 1, &root);
    QEMUTimer *t = timer_new_ns(release_cb, bs);
    TestReq *r = start_req(root, REQ_WRITE, 0, 4 * KiB);

    g_assert(!r->done);
    g_assert_cmpuint(bs->in_flight, ==, 1);
    bdrv_root_unref_child(root);
    gate_close_in_flight = -1;
    timer_mod_ns(t, qemu_clock_get_ns() + 5 * 1000 * 1000);
    bdrv_unref(bs);         /* the last reference: must wait for r */
    g_assert(r->done);
    g_assert_cmpint(r->ret, ==, 0);
    g_assert_cmpint(gate_close_in_flight, ==, 0);
    timer_free(t);
    g_free(r);
}

/*
 * A guest that is never idle: every millisecond the oldest request
 * parked in the driver ends and a new one starts, so a request is in
 * flight at every turn of the loop, until the watchdog stops the load.
 */
typedef struct SteadyLoad {
    BlockDriverState *bs;
    BdrvChild *root;
    QEMUTimer *tick, *watchdog;
    GPtrArray *reqs;
    bool stopped;
} SteadyLoad;

static void steady_start_one(SteadyLoad *l)
{
    TestReq *r = g_new0(TestReq, 1);

    r->child = l->root;
    r->kind = l->reqs->len % 2 ? REQ_WRITE : REQ_READ;
    r->offset = (l->reqs->len % 64) * 4 * KiB;
    r->bytes = 4 * KiB;
    g_ptr_array_add(l->reqs, r);
    qemu_coroutine_enter(qemu_coroutine_create(test_req_entry, r));
}

static void steady_tick(void *opaque)
{
    SteadyLoad *l = opaque;
    GateState *s = l->bs->opaque;

    if (l->stopped) {
        return;
    }
    if (!g_queue_is_empty(&s->parked)) {
        qemu_coroutine_enter(g_queue_pop_head(&s->parked));
    }
    steady_start_one(l);
    timer_mod_ns(l->tick, qemu_clock_get_ns() + 1000 * 1000);
}

/* Stop the load: no new requests, the driver lets the parked ones go. */
static void steady_watchdog(void *opaque)
{
    SteadyLoad *l = opaque;
    GateState *s = l->bs->opaque;

    l->stopped = true;
    s->hold = false;
    while (!g_queue_is_empty(&s->parked)) {
        qemu_coroutine_enter(g_queue_pop_head(&s->parked));
    }
}

/*
 * bdrv_append (what a snapshot does) under a guest that is never idle:
 * its drained section parks the new requests, the ones in flight end,
 * and the graph changes while the load is still running. Waiting for
 * an idle moment first would only return once the watchdog stopped the
 * load. The parked requests then go to the overlay.
 */
static void test_append_under_steady_load(void)
{
    SteadyLoad l = { .reqs = g_ptr_array_new_with_free_func(g_free) };
    BlockDriverState *overlay;
    GateState *os;

    l.bs = gate_node(0, 1, &l.root);
    overlay = bdrv_new_open_driver(&gate_overlay_drv, NULL, NULL,
                                   BDRV_O_RDWR, &error_abort);
    os = overlay->opaque;
    for (int i = 0; i < 4; i++) {
        steady_start_one(&l);
    }
    g_assert_cmpuint(l.bs->in_flight, ==, 4);
    l.tick = timer_new_ns(steady_tick, &l);
    l.watchdog = timer_new_ns(steady_watchdog, &l);
    timer_mod_ns(l.tick, qemu_clock_get_ns() + 1000 * 1000);
    timer_mod_ns(l.watchdog, qemu_clock_get_ns() + 2000LL * 1000 * 1000);

    g_assert_cmpint(bdrv_append(overlay, l.bs, &error_abort), ==, 0);
    g_assert(!l.stopped);
    g_assert(l.root->bs == overlay);

    /* The parked requests reach overlay; stop the load. */
    run_pending();
    steady_watchdog(&l);
    run_pending();
    g_assert_cmpint(os->n_log, >, 0);
    for (guint i = 0; i < l.reqs->len; i++) {
        TestReq *r = g_ptr_array_index(l.reqs, i);

        g_assert(r->done);
        g_assert_cmpint(r->ret, ==, 0);
    }
    timer_free(l.tick);
    timer_free(l.watchdog);
    g_ptr_array_free(l.reqs, true);
    bdrv_root_unref_child(l.root);
    bdrv_unref(l.bs);
    bdrv_unref(overlay);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qemu_init_main_loop();
    bdrv_init();
    g_test_add_func("/request-tracking/overlap-uses-aligned-ranges",
                    test_overlap_aligned);
    g_test_add_func("/request-tracking/serialising-waits-for-earlier-overlap",
                    test_serialising_waits_for_earlier);
    g_test_add_func("/request-tracking/later-request-waits-for-serialising",
                    test_later_waits_for_serialising);
    g_test_add_func("/request-tracking/non-overlapping-do-not-wait",
                    test_non_overlapping);
    g_test_add_func("/request-tracking/no-deadlock-on-mutual-wait",
                    test_no_deadlock);
    g_test_add_func("/drain/waits-for-in-flight", test_drain_waits);
    g_test_add_func("/drain/drained-section-queues-new-requests",
                    test_drained_section);
    g_test_add_func("/drain/close-waits-for-in-flight", test_close_drains);
    g_test_add_func("/drain/append-under-steady-load",
                    test_append_under_steady_load);
    return g_test_run();
}

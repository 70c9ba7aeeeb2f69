/*
 * Unit tests of copy-on-read (block/io.c) and the copy-on-read filter
 * driver (block/copy-on-read.c), on real qcow2 images in a temporary
 * directory.
 *
 * The base image (4 MiB, 64 KiB clusters) holds, in order: 256 KiB of
 * patterned data, 256 KiB of zero-filled data clusters, 512 KiB of
 * patterned data, and 3 MiB never written. After a copy-on-read of all of
 * it, the top image must hold the data as DATA clusters and both zero
 * ranges as zero clusters (ALLOCATED|ZERO, never zero-filled data).
 * Where qemu-img is installed it judges the images afterwards.
 *
 * The race test puts a mock backing node under a qcow2 top; its reads
 * park until the test releases them, so a guest write can be issued
 * while a copy-on-read is fetching the same cluster.
 */
#include "qemu/osdep.h"
#include "block-test-util.h"
#include "block/block_int.h"
#include "qemu/aio.h"
#include "qemu/trace-control.h"

#define IMG_SIZE (4 * MiB)
#define CLUSTER (64 * KiB)

/* ---- Images */

typedef struct Fixture {
    char *dir;
    char *base;     /* base.qcow2 */
    char *top;      /* top.qcow2, backed by base.qcow2 */
} Fixture;

/* The byte base.qcow2 holds at offset o. */
static uint8_t base_byte(int64_t o)
{
    if (o < 256 * KiB) {
        return 1 + (o / 4096) % 200;
    }
    if (o >= 512 * KiB && o < 1 * MiB) {
        return 2 + (o / 512) % 199;
    }
    return 0;
}

static void fill_expected(uint8_t *buf, int64_t offset, int64_t bytes)
{
    for (int64_t i = 0; i < bytes; i++) {
        buf[i] = base_byte(offset + i);
    }
}

/* Create a qcow2 image at path: size, optional backing, compat level. */
static void create_qcow2(const char *path, int64_t size, const char *backing,
                         const char *compat)
{
    g_autoptr(QDict) opts = qdict_new();
    g_autofree char *sz = g_strdup_printf("%" PRId64, size);

    qdict_put_str(opts, "size", sz);
    if (backing) {
        qdict_put_str(opts, "backing_file", backing);
        qdict_put_str(opts, "backing_fmt", "qcow2");
    }
    if (compat) {
        qdict_put_str(opts, "compat", compat);
    }
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), path, opts,
                                &error_abort), ==, 0);
}

/* Open a qcow2 image read-write, optionally named. */
static BlockDriverState *open_qcow2(const char *path, const char *node_name,
                                    bool no_backing)
{
    QDict *opts = qdict_new();

    qdict_put_str(opts, "driver", "qcow2");
    if (node_name) {
        qdict_put_str(opts, "node-name", node_name);
    }
    if (no_backing) {
        qdict_put_str(opts, "backing", "");
    }
    return bdrv_open(path, opts, BDRV_O_RDWR, &error_abort);
}

/* Fill base.qcow2 with the layout described at the top of the file. */
static void write_base(const char *path)
{
    BlockDriverState *bs = open_qcow2(path, NULL, false);
    BdrvChild *root = bdrv_root_attach(bs, "setup", &error_abort);
    g_autofree uint8_t *buf = g_malloc(1 * MiB);

    fill_expected(buf, 0, 1 * MiB);
    g_assert_cmpint(bdrv_pwrite(root, 0, 1 * MiB, buf, 0), ==, 0);
    bdrv_root_unref_child(root);
    bdrv_unref(bs);
}

static void fixture_setup(Fixture *f, const char *top_compat)
{
    f->dir = g_dir_make_tmp("test-cor-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
    f->base = g_build_filename(f->dir, "base.qcow2", NULL);
    f->top = g_build_filename(f->dir, "top.qcow2", NULL);
    create_qcow2(f->base, IMG_SIZE, NULL, NULL);
    write_base(f->base);
    create_qcow2(f->top, IMG_SIZE, "base.qcow2", top_compat);
}

static void fixture_teardown(Fixture *f)
{
    block_test_qemu_img_check(f->top);
    block_test_qemu_img_check(f->base);
    unlink(f->top);
    unlink(f->base);
    rmdir(f->dir);
    g_free(f->top);
    g_free(f->base);
    g_free(f->dir);
}

/* Status flags of bs at offset (ALLOCATED/DATA/ZERO) and their extent. */
static int status_at(BlockDriverState *bs, int64_t offset, int64_t *pnum)
{
    int ret = bdrv_block_status(bs, offset, IMG_SIZE, pnum, NULL, NULL);

    g_assert_cmpint(ret, >=, 0);
    return ret & (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO);
}

/* Assert [offset, offset + bytes) of bs has status want throughout. */
static void assert_status(BlockDriverState *bs, int64_t offset,
                          int64_t bytes, int want)
{
    int64_t pos = offset, pnum;

    while (pos < offset + bytes) {
        g_assert_cmphex(status_at(bs, pos, &pnum), ==, want);
        g_assert_cmpint(pnum, >, 0);
        pos += pnum;
    }
}

/* Read [offset, offset + bytes) through root and compare with the base. */
static void assert_reads_base(BdrvChild *root, int64_t offset, int64_t bytes,
                              BdrvRequestFlags flags)
{
    g_autofree uint8_t *buf = g_malloc(bytes);
    g_autofree uint8_t *want = g_malloc(bytes);

    memset(buf, 0xcc, bytes);
    fill_expected(want, offset, bytes);
    g_assert_cmpint(bdrv_pread(root, offset, bytes, buf, flags), ==, 0);
    for (int64_t i = 0; i < bytes; i++) {
        if (buf[i] != want[i]) {
            g_error("read at %" PRId64 "+%" PRId64 ": byte %" PRId64
                    " is 0x%x, want 0x%x", offset, bytes, i, buf[i], want[i]);
        }
    }
}

#define DATA_ALLOC (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_DATA)
#define ZERO_ALLOC (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_ZERO)

/* ---- Tests */

/* Unaligned copy-on-read reads populate whole clusters of the top. */
static void test_populates_top(void)
{
    Fixture f;
    BlockDriverState *top;
    BdrvChild *root;

    fixture_setup(&f, NULL);
    top = open_qcow2(f.top, NULL, false);
    root = bdrv_root_attach(top, "guest", &error_abort);
    assert_reads_base(root, 1000, 3000, BDRV_REQ_COPY_ON_READ);
    assert_status(top, 0, CLUSTER, DATA_ALLOC);
    g_assert_cmphex(status_at(top, CLUSTER, NULL), ==, 0);
    /* A read spanning clusters 8..10 (data) in odd pieces. */
    assert_reads_base(root, 8 * CLUSTER + 77, 2 * CLUSTER + 5,
                      BDRV_REQ_COPY_ON_READ);
    assert_status(top, 8 * CLUSTER, 3 * CLUSTER, DATA_ALLOC);
    /* A prefetch populates without a buffer. */
    g_assert_cmpint(bdrv_preadv(root, 2 * CLUSTER, CLUSTER, NULL,
                                BDRV_REQ_PREFETCH), ==, 0);
    assert_status(top, 2 * CLUSTER, CLUSTER, DATA_ALLOC);
    bdrv_root_unref_child(root);
    bdrv_unref(top);

    /* The top alone now holds those clusters. */
    top = open_qcow2(f.top, NULL, true);
    root = bdrv_root_attach(top, "check", &error_abort);
    assert_reads_base(root, 0, CLUSTER, 0);
    assert_reads_base(root, 2 * CLUSTER, CLUSTER, 0);
    assert_reads_base(root, 8 * CLUSTER, 3 * CLUSTER, 0);
    bdrv_root_unref_child(root);
    bdrv_unref(top);
    fixture_teardown(&f);
}

/*
 * Zero-filled data and unallocated ranges of the base become zero
 * clusters in a v3 top; a v2 top cannot store them and leaves them
 * unallocated (they read as zeroes through the chain anyway).
 */
static void test_zero_range(void)
{
    static const char *const compat[] = { "1.1", "0.10" };

    for (int i = 0; i < 2; i++) {
        bool v3 = i == 0;
        Fixture f;
        BlockDriverState *top;
        BdrvChild *root;

        fixture_setup(&f, compat[i]);
        top = open_qcow2(f.top, NULL, false);
        root = bdrv_root_attach(top, "guest", &error_abort);
        assert_reads_base(root, 0, IMG_SIZE, BDRV_REQ_COPY_ON_READ);
        assert_status(top, 0, 256 * KiB, DATA_ALLOC);
        assert_status(top, 256 * KiB, 256 * KiB, v3 ? ZERO_ALLOC : 0);
        assert_status(top, 512 * KiB, 512 * KiB, DATA_ALLOC);
        assert_status(top, 1 * MiB, 3 * MiB, v3 ? ZERO_ALLOC : 0);
        assert_reads_base(root, 0, IMG_SIZE, 0);
        bdrv_root_unref_child(root);
        bdrv_unref(top);
        fixture_teardown(&f);
    }
}

/* Clusters the top already holds are read from it, never overwritten. */
static void test_allocated_parts(void)
{
    Fixture f;
    BlockDriverState *top;
    BdrvChild *root;
    g_autofree uint8_t *buf = g_malloc(4 * CLUSTER);
    g_autofree uint8_t *want = g_malloc(4 * CLUSTER);

    fixture_setup(&f, NULL);
    top = open_qcow2(f.top, NULL, false);
    root = bdrv_root_attach(top, "guest", &error_abort);
    memset(buf, 0xee, CLUSTER);
    g_assert_cmpint(bdrv_pwrite(root, CLUSTER, CLUSTER, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_pwrite(root, 3 * CLUSTER + 100, 50, buf, 0), ==, 0);

    bdrv_enable_copy_on_read(top);
    g_assert_cmpint(bdrv_pread(root, 0, 4 * CLUSTER, buf, 0), ==, 0);
    bdrv_disable_copy_on_read(top);
    fill_expected(want, 0, 4 * CLUSTER);
    memset(want + CLUSTER, 0xee, CLUSTER);
    memset(want + 3 * CLUSTER + 100, 0xee, 50);
    g_assert_cmpmem(buf, 4 * CLUSTER, want, 4 * CLUSTER);
    assert_status(top, 0, 4 * CLUSTER, DATA_ALLOC);
    g_assert_cmpint(top->copy_on_read, ==, 0);
    /* Copy-on-read is off again: plain reads leave the top alone. */
    assert_reads_base(root, 4 * CLUSTER, CLUSTER, 0);
    g_assert_cmphex(status_at(top, 4 * CLUSTER, NULL), ==, 0);
    bdrv_root_unref_child(root);
    bdrv_unref(top);

    top = open_qcow2(f.top, NULL, true);
    root = bdrv_root_attach(top, "check", &error_abort);
    memset(buf, 0, 4 * CLUSTER);
    g_assert_cmpint(bdrv_pread(root, 0, 4 * CLUSTER, buf, 0), ==, 0);
    g_assert_cmpmem(buf, 4 * CLUSTER, want, 4 * CLUSTER);
    bdrv_root_unref_child(root);
    bdrv_unref(top);
    fixture_teardown(&f);
}

/* ---- A backing node whose reads wait for the test */

typedef struct SlowState {
    bool hold;
    GQueue parked;      /* Coroutine * parked in a read */
    int reads;
} SlowState;

#define SLOW_BYTE 0x77

static int coroutine_fn slow_co_preadv(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    SlowState *s = bs->opaque;

    s->reads++;
    if (s->hold) {
        g_queue_push_tail(&s->parked, qemu_coroutine_self());
        qemu_coroutine_yield();
    }
    qemu_iovec_memset(qiov, 0, SLOW_BYTE, bytes);
    return 0;
}

static int coroutine_fn slow_co_block_status(BlockDriverState *bs,
                                             bool want_zero, int64_t offset,
                                             int64_t bytes, int64_t *pnum,
                                             int64_t *map,
                                             BlockDriverState **file)
{
    *pnum = bytes;
    return BDRV_BLOCK_DATA;
}

static int slow_open(BlockDriverState *bs, QDict *options, int flags,
                     Error **errp)
{
    g_queue_init(&((SlowState *)bs->opaque)->parked);
    bs->total_bytes = IMG_SIZE;
    return 0;
}

static const BlockDriver slow_drv = {
    .format_name = "slow",
    .instance_size = sizeof(SlowState),
    .bdrv_open = slow_open,
    .bdrv_co_preadv = slow_co_preadv,
    .bdrv_co_block_status = slow_co_block_status,
};

typedef struct RaceReq {
    BdrvChild *child;
    bool write;
    int64_t offset;
    int64_t bytes;
    uint8_t *buf;
    bool done;
    int ret;
} RaceReq;

static void coroutine_fn race_entry(void *opaque)
{
    RaceReq *r = opaque;

    r->ret = r->write ? bdrv_co_pwrite(r->child, r->offset, r->bytes, r->buf,
                                       0)
                      : bdrv_co_pread(r->child, r->offset, r->bytes, r->buf,
                                      BDRV_REQ_COPY_ON_READ);
    r->done = true;
}

static void run_pending(void)
{
    while (aio_poll(false)) {
        /* keep going */
    }
}

static void race_start(RaceReq *r)
{
    qemu_coroutine_enter(qemu_coroutine_create(race_entry, r));
    run_pending();
}

/* Open the gate of the slow node and let every parked read go on. */
static void slow_release(BlockDriverState *slow)
{
    SlowState *s = slow->opaque;

    s->hold = false;
    while (!g_queue_is_empty(&s->parked)) {
        qemu_coroutine_enter(g_queue_pop_head(&s->parked));
        run_pending();
    }
}

/* True if some request tracked on bs waits for another one. */
static bool has_waiter(BlockDriverState *bs)
{
    for (BdrvTrackedRequest *t = bs->tracked_head; t; t = t->next) {
        if (t->waiting_for) {
            return true;
        }
    }
    return false;
}

/*
 * One round of the race in cluster c: first (a copy-on-read or a partial
 * guest write, both fetching backing data) parks in the slow backing
 * read; second arrives for the same cluster and must wait; after release
 * the cluster holds the guest's bytes over the backing data.
 */
static void race_round(BlockDriverState *top, BdrvChild *root,
                       BlockDriverState *slow, int64_t c, bool cor_first)
{
    uint8_t *rbuf = g_malloc(CLUSTER), *wbuf = g_malloc(4 * KiB);
    uint8_t *want = g_malloc(CLUSTER);
    RaceReq cor = { root, false, c * CLUSTER, CLUSTER, rbuf };
    RaceReq w = { root, true, c * CLUSTER + 8 * KiB, 4 * KiB, wbuf };
    RaceReq *first = cor_first ? &cor : &w, *second = cor_first ? &w : &cor;
    GQueue *parked = &((SlowState *)slow->opaque)->parked;

    memset(wbuf, 0x5a, 4 * KiB);
    ((SlowState *)slow->opaque)->hold = true;
    race_start(first);
    /* first may do metadata I/O on the file before it reads backing data */
    AIO_WAIT_WHILE(g_queue_is_empty(parked));
    g_assert(!first->done);
    race_start(second);
    g_assert(!second->done);
    /* second waits in tracking, not in the backing read */
    g_assert_true(has_waiter(top));
    g_assert_cmpint(g_queue_get_length(parked), ==, 1);
    slow_release(slow);
    AIO_WAIT_WHILE(!first->done || !second->done);
    g_assert_cmpint(first->ret, ==, 0);
    g_assert_cmpint(second->ret, ==, 0);

    memset(want, SLOW_BYTE, CLUSTER);
    if (!cor_first) {
        /* The read came second: it sees the guest's bytes. */
        memset(want + 8 * KiB, 0x5a, 4 * KiB);
    }
    g_assert_cmpmem(rbuf, CLUSTER, want, CLUSTER);
    memset(want + 8 * KiB, 0x5a, 4 * KiB);
    g_assert_cmpint(bdrv_pread(root, c * CLUSTER, CLUSTER, rbuf, 0), ==, 0);
    g_assert_cmpmem(rbuf, CLUSTER, want, CLUSTER);
    g_free(rbuf);
    g_free(wbuf);
    g_free(want);
}

static void test_guest_write_not_clobbered(void)
{
    g_autofree char *dir = g_dir_make_tmp("test-cor-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "top.qcow2", NULL);
    BlockDriverState *top, *slow;
    BdrvChild *root;

    create_qcow2(path, IMG_SIZE, NULL, NULL);
    top = open_qcow2(path, NULL, false);
    slow = bdrv_new_open_driver(&slow_drv, NULL, NULL, 0, &error_abort);
    g_assert_cmpint(bdrv_set_backing_hd(top, slow, &error_abort), ==, 0);
    bdrv_unref(slow);
    root = bdrv_root_attach(top, "guest", &error_abort);
    race_round(top, root, slow, 0, true);
    race_round(top, root, slow, 5, false);
    assert_status(top, 0, CLUSTER, DATA_ALLOC);
    assert_status(top, 5 * CLUSTER, CLUSTER, DATA_ALLOC);
    bdrv_root_unref_child(root);
    bdrv_unref(top);

    /* Without the slow backing node, the top alone holds both clusters. */
    top = open_qcow2(path, NULL, true);
    root = bdrv_root_attach(top, "check", &error_abort);
    for (int c = 0; c < 6; c += 5) {
        uint8_t buf[4 * KiB];

        g_assert_cmpint(bdrv_pread(root, c * CLUSTER + 4 * KiB, 4 * KiB, buf,
                                   0), ==, 0);
        g_assert_cmpint(buf[0], ==, SLOW_BYTE);
        g_assert_cmpint(bdrv_pread(root, c * CLUSTER + 8 * KiB, 4 * KiB, buf,
                                   0), ==, 0);
        g_assert_cmpint(buf[4095], ==, 0x5a);
    }
    bdrv_root_unref_child(root);
    bdrv_unref(top);
    block_test_qemu_img_check(path);
    unlink(path);
    rmdir(dir);
}

/* ---- Random concurrent copy-on-read reads and guest writes */

#define HOT_BYTES (1 * MiB)     /* 16 clusters everyone fights over */
#define BLK (4 * KiB)
#define WORKERS 8
#define OPS_PER_WORKER 40

/*
 * Worker w owns the 4 KiB blocks b with b % WORKERS == w: only it writes
 * them, so their content is known (model) even while other workers write
 * the rest of each cluster and copy-on-read fetches whole clusters.
 */
typedef struct Worker {
    BdrvChild *root;
    uint8_t *model;         /* HOT_BYTES: expected content of the image */
    int id;
    bool done;
} Worker;

static void coroutine_fn worker_entry(void *opaque)
{
    Worker *w = opaque;
    g_autofree uint8_t *buf = g_malloc(3 * CLUSTER);

    for (int op = 0; op < OPS_PER_WORKER; op++) {
        if (g_test_rand_bit()) {
            int64_t b = g_test_rand_int_range(0, HOT_BYTES / BLK / WORKERS) *
                        WORKERS + w->id;

            memset(buf, g_test_rand_int_range(1, 256), BLK);
            g_assert_cmpint(bdrv_co_pwrite(w->root, b * BLK, BLK, buf, 0),
                            ==, 0);
            memcpy(w->model + b * BLK, buf, BLK);
        } else {
            int64_t len = g_test_rand_int_range(1, 3 * CLUSTER);
            int64_t off = g_test_rand_int_range(0, HOT_BYTES - len);

            g_assert_cmpint(bdrv_co_pread(w->root, off, len, buf,
                                          BDRV_REQ_COPY_ON_READ), ==, 0);
            /* Our own blocks must read as we last wrote them. */
            for (int64_t i = 0; i < len; i++) {
                if ((off + i) / BLK % WORKERS == w->id &&
                    buf[i] != w->model[off + i]) {
                    g_error("worker %d: byte %" PRId64 " is 0x%x, want "
                            "0x%x", w->id, off + i, buf[i],
                            w->model[off + i]);
                }
            }
        }
    }
    w->done = true;
}

static void test_concurrent_random(void)
{
    Fixture f;
    BlockDriverState *top;
    BdrvChild *root;
    Worker w[WORKERS];
    g_autofree uint8_t *model = g_malloc(HOT_BYTES);
    g_autofree uint8_t *buf = g_malloc(HOT_BYTES);
    bool all_done = false;

    fixture_setup(&f, NULL);
    fill_expected(model, 0, HOT_BYTES);
    top = open_qcow2(f.top, NULL, false);
    root = bdrv_root_attach(top, "guest", &error_abort);
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (Worker) { .root = root, .model = model, .id = i };
        qemu_coroutine_enter(qemu_coroutine_create(worker_entry, &w[i]));
    }
    while (!all_done) {
        aio_poll(true);
        all_done = true;
        for (int i = 0; i < WORKERS; i++) {
            all_done &= w[i].done;
        }
    }
    g_assert_cmpuint(top->in_flight, ==, 0);
    g_assert_null(top->tracked_head);
    g_assert_cmpint(bdrv_pread(root, 0, HOT_BYTES, buf, 0), ==, 0);
    g_assert_cmpmem(buf, HOT_BYTES, model, HOT_BYTES);
    bdrv_root_unref_child(root);
    bdrv_unref(top);
    fixture_teardown(&f);
}

/* Open a copy-on-read filter named "cor0" over the node called file. */
static BlockDriverState *open_filter(const char *file, const char *extra,
                                     Error **errp)
{
    QDict *opts = qdict_new();

    qdict_put_str(opts, "driver", "copy-on-read");
    qdict_put_str(opts, "file", file);
    qdict_put_str(opts, "node-name", "cor0");
    if (extra) {
        qdict_put_str(opts, extra, "x");
    }
    return bdrv_open(NULL, opts, BDRV_O_RDWR, errp);
}

/* --blockdev driver=copy-on-read,file=NODE: reads through it populate. */
static void test_filter_node(void)
{
    Fixture f;
    BlockDriverState *top, *cor;
    BdrvChild *root;
    Error *err = NULL;
    uint8_t buf[4 * KiB];

    fixture_setup(&f, NULL);
    top = open_qcow2(f.top, "top0", false);
    g_assert_null(open_filter("top0", "bottom", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "not supported"));
    error_free(err);

    cor = open_filter("top0", NULL, &error_abort);
    g_assert_true(bdrv_skip_filters(cor) == top);
    g_assert_cmpint(bdrv_getlength(cor), ==, IMG_SIZE);
    root = bdrv_root_attach(cor, "guest", &error_abort);
    assert_reads_base(root, CLUSTER + 10, 100, 0);
    assert_status(top, CLUSTER, CLUSTER, DATA_ALLOC);
    g_assert_cmphex(status_at(top, 0, NULL), ==, 0);
    /* Status through the filter is the top's. */
    assert_status(cor, CLUSTER, CLUSTER, DATA_ALLOC);
    g_assert_cmphex(status_at(cor, 0, NULL), ==, 0);
    /* Writes pass through. */
    memset(buf, 0x42, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(root, 6 * CLUSTER, sizeof(buf), buf, 0), ==,
                    0);
    g_assert_cmpint(bdrv_pwrite_zeroes(root, 7 * CLUSTER, CLUSTER, 0), ==, 0);
    assert_status(top, 7 * CLUSTER, CLUSTER, ZERO_ALLOC);
    memset(buf, 0, sizeof(buf));
    g_assert_cmpint(bdrv_pread(root, 6 * CLUSTER, sizeof(buf), buf, 0), ==,
                    0);
    g_assert_cmpint(buf[100], ==, 0x42);
    g_assert_cmpint(bdrv_flush(cor), ==, 0);
    bdrv_root_unref_child(root);
    bdrv_unref(cor);
    bdrv_unref(top);
    fixture_teardown(&f);
}

int main(int argc, char **argv)
{
    block_test_init(&argc, &argv);
    g_test_add_func("/copy-on-read/populates-top", test_populates_top);
    g_test_add_func("/copy-on-read/zero-range-becomes-zero-cluster",
                    test_zero_range);
    g_test_add_func("/copy-on-read/allocated-parts-read-directly",
                    test_allocated_parts);
    g_test_add_func("/copy-on-read/guest-write-not-clobbered",
                    test_guest_write_not_clobbered);
    g_test_add_func("/copy-on-read/filter-node", test_filter_node);
    g_test_add_func("/copy-on-read/concurrent-reads-and-writes",
                    test_concurrent_random);
    return g_test_run();
}

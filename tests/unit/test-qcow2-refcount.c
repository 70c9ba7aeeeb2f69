/*
 * Unit tests of qcow2 refcounting (block/qcow2-refcount.c) and of the
 * consistency check and repair (block/qcow2-check.c).
 *
 * Every test creates a real qcow2 image in a temporary file through the
 * public API (bdrv_create, bdrv_open, I/O on a root child) and reaches
 * into the driver's internals (block/qcow2.h) only to allocate, free or
 * poke refcounts directly. Where Debian's qemu-img is installed it is
 * used as an independent judge of the repaired images.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/qcow2.h"
#include "qemu/aio.h"

/* A temporary qcow2 image; removed by image_free. */
typedef struct TestImage {
    char *path;
} TestImage;

/* Create an image of size bytes with the given cluster size. */
static TestImage *image_new(const char *size, const char *cluster_size)
{
    TestImage *img = g_new0(TestImage, 1);
    g_autoptr(GError) gerr = NULL;
    g_autoptr(QDict) opts = qdict_new();
    Error *err = NULL;
    int fd;

    fd = g_file_open_tmp("qblk-refcount-XXXXXX.qcow2", &img->path, &gerr);
    g_assert_no_error(gerr);
    close(fd);
    qdict_put_str(opts, "size", size);
    qdict_put_str(opts, "cluster_size", cluster_size);
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), img->path, opts,
                                &err), ==, 0);
    g_assert_null(err);
    return img;
}

/* Delete the image file. */
static void image_free(TestImage *img)
{
    unlink(img->path);
    g_free(img->path);
    g_free(img);
}

/* Open img with driver=qcow2 (read-write if rw). */
static BlockDriverState *image_open(TestImage *img, bool rw)
{
    QDict *opts = qdict_new();
    Error *err = NULL;
    BlockDriverState *bs;

    qdict_put_str(opts, "driver", "qcow2");
    bs = bdrv_open(img->path, opts, rw ? BDRV_O_RDWR : 0, &err);
    g_assert_null(err);
    g_assert_nonnull(bs);
    return bs;
}

/* Write len bytes of pattern at offset through a root child. */
static void image_write(BlockDriverState *bs, int64_t offset, int64_t len,
                        int pattern)
{
    g_autofree uint8_t *buf = g_malloc(len);
    Error *err = NULL;
    BdrvChild *child = bdrv_root_attach(bs, "test", &err);

    g_assert_null(err);
    memset(buf, pattern, len);
    g_assert_cmpint(bdrv_pwrite(child, offset, len, buf, 0), ==, 0);
    bdrv_root_unref_child(child);
}

/*
 * Write host bytes [offset, offset + len) of bs's file so that clusters
 * allocated past the end of the file exist (the check only judges
 * clusters inside the file, like qemu-img).
 */
static void file_touch(BlockDriverState *bs, int64_t offset, int64_t len)
{
    g_autofree uint8_t *buf = g_malloc0(len);

    g_assert_cmpint(bdrv_pwrite(bs->file, offset, len, buf, 0), ==, 0);
}

/* ---- Running driver internals (coroutine_fn, s->lock) synchronously */

typedef enum RcOp {
    RC_GET, RC_SET, RC_UPDATE, RC_ALLOC, RC_FREE,
} RcOp;

typedef struct RcCall {
    BlockDriverState *bs;
    RcOp op;
    int64_t arg1;            /* cluster index, offset or size */
    int64_t arg2;            /* value, length or addend */
    int64_t arg3;
    uint64_t out;
    int64_t ret;
    bool done;
} RcCall;

/* Run one refcount operation under s->lock, then flush the metadata. */
static void coroutine_fn rc_call_entry(void *opaque)
{
    RcCall *c = opaque;
    BDRVQcow2State *s = c->bs->opaque;

    qemu_co_mutex_lock(&s->lock);
    switch (c->op) {
    case RC_GET:
        c->ret = qcow2_co_get_refcount(c->bs, c->arg1, &c->out);
        break;
    case RC_SET:
        c->ret = qcow2_co_set_refcount(c->bs, c->arg1, c->arg2);
        break;
    case RC_UPDATE:
        c->ret = qcow2_co_update_refcount(c->bs, c->arg1, c->arg2, c->arg3);
        break;
    case RC_ALLOC:
        c->ret = qcow2_co_alloc_clusters(c->bs, c->arg1);
        break;
    case RC_FREE:
        c->ret = qcow2_co_free_clusters(c->bs, c->arg1, c->arg2);
        break;
    }
    if (c->ret >= 0 && c->op != RC_GET) {
        int fr = qcow2_co_flush_metadata(c->bs);
        c->ret = fr < 0 ? fr : c->ret;
    }
    qemu_co_mutex_unlock(&s->lock);
    c->done = true;
}

/* Synchronous wrapper of rc_call_entry; returns its result. */
static int64_t rc_call(BlockDriverState *bs, RcOp op, int64_t a1, int64_t a2,
                       int64_t a3, uint64_t *out)
{
    RcCall c = { .bs = bs, .op = op, .arg1 = a1, .arg2 = a2, .arg3 = a3 };

    qemu_coroutine_run_sync(rc_call_entry, &c, &c.done);
    if (out) {
        *out = c.out;
    }
    return c.ret;
}

/* Refcount of the host cluster containing offset. */
static uint64_t get_refcount(BlockDriverState *bs, int64_t offset)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t rc = 0;

    g_assert_cmpint(rc_call(bs, RC_GET, offset >> s->cluster_bits, 0, 0,
                            &rc), ==, 0);
    return rc;
}

/* Check bs and assert on the counts of problems found. */
static void assert_check(BlockDriverState *bs, BdrvCheckMode fix,
                         int corruptions, int leaks, BdrvCheckResult *out)
{
    BdrvCheckResult res;

    g_assert_cmpint(bdrv_check(bs, &res, fix), ==, 0);
    g_assert_cmpint(res.check_errors, ==, 0);
    g_assert_cmpint(res.corruptions, ==, corruptions);
    g_assert_cmpint(res.leaks, ==, leaks);
    if (out) {
        *out = res;
    }
}

/* If qemu-img is installed, it must find img clean. */
static void assert_qemu_img_clean(TestImage *img)
{
    g_autofree char *prog = g_find_program_in_path("qemu-img");
    g_autofree char *cmd = NULL;
    int status;

    if (!prog) {
        return;
    }
    cmd = g_strdup_printf("%s check -q '%s'", prog, img->path);
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, &status, NULL));
    g_assert_true(g_spawn_check_wait_status(status, NULL));
}

/* ---- Refcount tests */

/* Allocation sets refcount 1 on exactly the clusters handed out. */
static void test_alloc_increments(void)
{
    TestImage *img = image_new("4M", "65536");
    BlockDriverState *bs = image_open(img, true);
    int64_t off = rc_call(bs, RC_ALLOC, 3 * 65536, 0, 0, NULL);

    g_assert_cmpint(off, >, 0);
    g_assert_cmpint(off % 65536, ==, 0);
    file_touch(bs, off, 3 * 65536);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpuint(get_refcount(bs, off + i * 65536), ==, 1);
    }
    g_assert_cmpuint(get_refcount(bs, off + 3 * 65536), ==, 0);
    g_assert_cmpuint(get_refcount(bs, 0), ==, 1);        /* header */
    /* Allocated but referenced by nothing: the check sees three leaks. */
    assert_check(bs, 0, 0, 3, NULL);
    g_assert_cmpint(rc_call(bs, RC_FREE, off, 3 * 65536, 0, NULL), ==, 0);
    assert_check(bs, 0, 0, 0, NULL);
    bdrv_unref(bs);
    image_free(img);
}

/* Freeing counts down to 0, never below, and the cluster is reused. */
static void test_free_decrements_and_reuses(void)
{
    TestImage *img = image_new("4M", "65536");
    BlockDriverState *bs = image_open(img, true);
    int64_t off = rc_call(bs, RC_ALLOC, 65536, 0, 0, NULL), again;

    g_assert_cmpint(off, >, 0);
    g_assert_cmpint(rc_call(bs, RC_UPDATE, off, 65536, 1, NULL), ==, 0);
    g_assert_cmpuint(get_refcount(bs, off), ==, 2);
    g_assert_cmpint(rc_call(bs, RC_FREE, off, 65536, 0, NULL), ==, 0);
    g_assert_cmpuint(get_refcount(bs, off), ==, 1);
    g_assert_cmpint(rc_call(bs, RC_FREE, off, 65536, 0, NULL), ==, 0);
    g_assert_cmpuint(get_refcount(bs, off), ==, 0);
    /* Underflow is refused, not wrapped. */
    g_assert_cmpint(rc_call(bs, RC_FREE, off, 65536, 0, NULL), <, 0);
    g_assert_cmpuint(get_refcount(bs, off), ==, 0);
    /* The freed cluster is handed out again. */
    again = rc_call(bs, RC_ALLOC, 65536, 0, 0, NULL);
    g_assert_cmpint(again, ==, off);
    g_assert_cmpint(rc_call(bs, RC_FREE, again, 65536, 0, NULL), ==, 0);
    assert_check(bs, 0, 0, 0, NULL);
    bdrv_unref(bs);
    image_free(img);
}

/* At the 16-bit maximum an increment fails and changes nothing. */
static void test_overflow_refused(void)
{
    TestImage *img = image_new("4M", "65536");
    BlockDriverState *bs = image_open(img, true);
    BDRVQcow2State *s = bs->opaque;
    int64_t off = rc_call(bs, RC_ALLOC, 65536, 0, 0, NULL);
    int64_t c = off >> s->cluster_bits;

    g_assert_cmpint(s->refcount_bits, ==, 16);
    g_assert_cmpint(rc_call(bs, RC_SET, c, 0xffff, 0, NULL), ==, 0);
    g_assert_cmpuint(get_refcount(bs, off), ==, 0xffff);
    g_assert_cmpint(rc_call(bs, RC_UPDATE, off, 65536, 1, NULL), ==,
                    -ERANGE);
    g_assert_cmpuint(get_refcount(bs, off), ==, 0xffff);
    g_assert_cmpint(rc_call(bs, RC_SET, c, 0x10000, 0, NULL), ==, -ERANGE);
    g_assert_cmpuint(get_refcount(bs, off), ==, 0xffff);
    /* A two-cluster update failing on its second cluster changes nothing. */
    g_assert_cmpint(rc_call(bs, RC_UPDATE, off - 65536, 2 * 65536, 1, NULL),
                    ==, -ERANGE);
    g_assert_cmpuint(get_refcount(bs, off - 65536), ==, 1);
    g_assert_cmpint(rc_call(bs, RC_SET, c, 0, 0, NULL), ==, 0);
    assert_check(bs, 0, 0, 0, NULL);
    bdrv_unref(bs);
    image_free(img);
}

/* Growing past one refcount block allocates another; still clean. */
static void test_new_refblock_allocation(void)
{
    /* 512-byte clusters: one refcount block describes 256 clusters. */
    TestImage *img = image_new("1M", "512");
    BlockDriverState *bs = image_open(img, true);
    BDRVQcow2State *s = bs->opaque;
    int blocks = 0;
    BdrvCheckResult res;

    image_write(bs, 0, 400 * 512, 0x5a);
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        blocks += s->refcount_table[i] != 0;
    }
    g_assert_cmpint(blocks, >=, 2);
    assert_check(bs, 0, 0, 0, &res);
    g_assert_cmpuint(res.bfi.allocated_clusters, ==, 400);
    bdrv_unref(bs);
    assert_qemu_img_clean(img);
    image_free(img);
}

/* ---- Check tests */

/* A freshly written image checks clean with exact bfi numbers. */
static void test_check_clean(void)
{
    TestImage *img = image_new("8M", "65536");
    BlockDriverState *bs = image_open(img, true);
    BdrvCheckResult res;

    image_write(bs, 0, 3 * 65536, 1);
    image_write(bs, 4 * 1024 * 1024, 65536, 2);
    assert_check(bs, 0, 0, 0, &res);
    g_assert_cmpuint(res.bfi.total_clusters, ==, 128);
    g_assert_cmpuint(res.bfi.allocated_clusters, ==, 4);
    g_assert_cmpuint(res.bfi.compressed_clusters, ==, 0);
    g_assert_cmpint(res.image_end_offset, >, 0);
    g_assert_cmpint(res.image_end_offset % 65536, ==, 0);
    bdrv_unref(bs);
    /* Read-only check of the closed image agrees. */
    bs = image_open(img, false);
    assert_check(bs, 0, 0, 0, NULL);
    bdrv_unref(bs);
    image_free(img);
}

/* Allocated-but-unused clusters are leaks; FIX_LEAKS frees them. */
static void test_check_leak_repair(void)
{
    TestImage *img = image_new("8M", "65536");
    BlockDriverState *bs = image_open(img, true);
    BdrvCheckResult res;
    int64_t off;


    image_write(bs, 0, 65536, 1);
    off = rc_call(bs, RC_ALLOC, 2 * 65536, 0, 0, NULL);
    g_assert_cmpint(off, >, 0);
    file_touch(bs, off, 2 * 65536);
    bdrv_unref(bs);

    bs = image_open(img, false);
    assert_check(bs, 0, 0, 2, NULL);
    bdrv_unref(bs);

    bs = image_open(img, true);
    assert_check(bs, BDRV_FIX_LEAKS, 0, 0, &res);
    g_assert_cmpint(res.leaks_fixed, ==, 2);
    assert_check(bs, 0, 0, 0, NULL);
    bdrv_unref(bs);
    assert_qemu_img_clean(img);
    image_free(img);
}

/*
 * Refcount 0 on a used data cluster is corruption: FIX_LEAKS refuses
 * (needs a rebuild), FIX_ERRORS raises the refcount.
 */
static void test_check_corruption(void)
{
    TestImage *img = image_new("8M", "65536");
    BlockDriverState *bs = image_open(img, true);
    BDRVQcow2State *s = bs->opaque;
    BdrvCheckResult res;
    uint64_t l2e;

    image_write(bs, 0, 65536, 1);
    g_assert_cmpint(bdrv_flush(bs), ==, 0);
    /* The data cluster of guest offset 0, via the L2 table on disk. */
    g_assert_cmpint(bdrv_pread(bs->file, (s->l1_table[0] & L1E_OFFSET_MASK),
                               8, &l2e, 0), ==, 0);
    l2e = be64_to_cpu(l2e) & L2E_OFFSET_MASK;
    g_assert_cmpuint(l2e, !=, 0);
    g_assert_cmpint(rc_call(bs, RC_SET, l2e >> s->cluster_bits, 0, 0, NULL),
                    ==, 0);
    bdrv_unref(bs);

    /* refcount 0 for a used cluster, and its COPIED flag is now wrong. */
    bs = image_open(img, false);
    assert_check(bs, 0, 2, 0, NULL);
    /* Leaks-only repair must not touch it. */
    bdrv_unref(bs);
    bs = image_open(img, true);
    g_assert_cmpint(bdrv_check(bs, &res, BDRV_FIX_LEAKS), <, 0);
    assert_check(bs, BDRV_FIX_ERRORS | BDRV_FIX_LEAKS, 0, 0, &res);
    g_assert_cmpint(res.corruptions_fixed, ==, 1);
    assert_check(bs, 0, 0, 0, NULL);
    bdrv_unref(bs);
    assert_qemu_img_clean(img);
    image_free(img);
}

int main(int argc, char **argv)
{
    qemu_init_main_loop();
    bdrv_init();
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qcow2/refcount/alloc-increments",
                    test_alloc_increments);
    g_test_add_func("/qcow2/refcount/free-decrements-and-reuses",
                    test_free_decrements_and_reuses);
    g_test_add_func("/qcow2/refcount/overflow-refused",
                    test_overflow_refused);
    g_test_add_func("/qcow2/refcount/new-refcount-block-allocation",
                    test_new_refblock_allocation);
    g_test_add_func("/qcow2/check/clean-image-no-errors", test_check_clean);
    g_test_add_func("/qcow2/check/detects-leak-and-repairs",
                    test_check_leak_repair);
    g_test_add_func("/qcow2/check/detects-corruption",
                    test_check_corruption);
    return g_test_run();
}

/*
 * Unit tests of dirty bitmaps (block/dirty-bitmap.c) and of the request
 * path marking them (block/io.c).
 *
 * A mock node (defined here) has a settable length and accepts every
 * write, zero write, discard and truncate without storing anything: the
 * bitmaps only see offsets and lengths. Bit-level cases use a small
 * granularity so that ranges cross 64-bit word boundaries.
 */
#include "qemu/osdep.h"
#include "block-test-util.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "qemu/aio.h"
#include "qemu/trace-control.h"

/* ---- Mock node */

typedef struct MockState {
    int64_t size;
} MockState;

static int mock_open(BlockDriverState *bs, QDict *options, int flags,
                     Error **errp)
{
    MockState *s = bs->opaque;

    s->size = 1 * MiB;
    return 0;
}

static int64_t mock_getlength(BlockDriverState *bs)
{
    return ((MockState *)bs->opaque)->size;
}

static int coroutine_fn mock_co_rw(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes, QEMUIOVector *qiov,
                                   BdrvRequestFlags flags)
{
    return 0;
}

static int coroutine_fn mock_co_zeroes(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags)
{
    return 0;
}

static int coroutine_fn mock_co_discard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    return 0;
}

static int coroutine_fn mock_co_truncate(BlockDriverState *bs,
                                         int64_t offset, bool exact,
                                         PreallocMode prealloc,
                                         BdrvRequestFlags flags,
                                         Error **errp)
{
    ((MockState *)bs->opaque)->size = offset;
    return 0;
}

static const BlockDriver mock_drv = {
    .format_name = "mock",
    .instance_size = sizeof(MockState),
    .bdrv_open = mock_open,
    .bdrv_getlength = mock_getlength,
    .bdrv_co_preadv = mock_co_rw,
    .bdrv_co_pwritev = mock_co_rw,
    .bdrv_co_pwrite_zeroes = mock_co_zeroes,
    .bdrv_co_pdiscard = mock_co_discard,
    .bdrv_co_truncate = mock_co_truncate,
};

/* A mock node of size bytes, writable, discard allowed. */
static BlockDriverState *mock_node(int64_t size)
{
    BlockDriverState *bs = bdrv_new_open_driver(&mock_drv, NULL, NULL,
                                                BDRV_O_RDWR | BDRV_O_UNMAP,
                                                &error_abort);

    ((MockState *)bs->opaque)->size = size;
    bs->total_bytes = size;
    return bs;
}

/* Assert the next dirty area from offset (to end, max) is [s, s + n). */
static void check_area(BdrvDirtyBitmap *b, int64_t offset, int64_t end,
                       int64_t max, int64_t want_start, int64_t want_count)
{
    int64_t start = -1, count = -1;

    g_assert_true(bdrv_dirty_bitmap_next_dirty_area(b, offset, end, max,
                                                    &start, &count));
    g_assert_cmpint(start, ==, want_start);
    g_assert_cmpint(count, ==, want_count);
}

static void check_clean(BdrvDirtyBitmap *b, int64_t offset, int64_t end)
{
    int64_t start, count;

    g_assert_false(bdrv_dirty_bitmap_next_dirty_area(b, offset, end, 0,
                                                     &start, &count));
}

/* ---- Tests */

/* Default granularity, duplicate names, bad granularities, long names. */
static void test_create_errors(void)
{
    BlockDriverState *bs = mock_node(1 * MiB);
    g_autofree char *long_name = g_strnfill(1024, 'x');
    BdrvDirtyBitmap *a, *b;
    Error *err = NULL;

    a = bdrv_create_dirty_bitmap(bs, 0, "a", &error_abort);
    g_assert_cmpuint(bdrv_dirty_bitmap_granularity(a), ==, 64 * KiB);
    g_assert_cmpint(bdrv_dirty_bitmap_size(a), ==, 1 * MiB);
    g_assert_true(bdrv_dirty_bitmap_enabled(a));
    g_assert_false(bdrv_dirty_bitmap_busy(a));
    g_assert_cmpstr(bdrv_dirty_bitmap_name(a), ==, "a");

    g_assert_null(bdrv_create_dirty_bitmap(bs, 0, "a", &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Bitmap already exists: a");
    error_free(err);
    err = NULL;
    for (int i = 0; i < 3; i++) {
        uint32_t bad[] = { 256, 1000, 3 * 4096 };

        g_assert_null(bdrv_create_dirty_bitmap(bs, bad[i], "c", &err));
        g_assert_cmpstr(error_get_pretty(err), ==,
                        "Granularity must be power of 2 and at least 512");
        error_free(err);
        err = NULL;
    }
    g_assert_null(bdrv_create_dirty_bitmap(bs, 0, long_name, &err));
    g_assert_true(g_str_has_prefix(error_get_pretty(err),
                                   "Bitmap name too long: xxx"));
    error_free(err);

    /* Anonymous bitmaps never clash and are never found by name. */
    b = bdrv_create_dirty_bitmap(bs, 512, NULL, &error_abort);
    g_assert_nonnull(bdrv_create_dirty_bitmap(bs, 512, NULL, &error_abort));
    g_assert_true(bdrv_find_dirty_bitmap(bs, "a") == a);
    g_assert_null(bdrv_find_dirty_bitmap(bs, NULL));
    g_assert_true(bdrv_dirty_bitmap_next(bs, NULL) == a);
    g_assert_true(bdrv_dirty_bitmap_next(bs, a) == b);
    bdrv_release_dirty_bitmap(a);
    g_assert_true(bdrv_dirty_bitmap_next(bs, NULL) == b);
    g_assert_null(bdrv_find_dirty_bitmap(bs, "a"));
    /* The remaining two are released when the node closes. */
    bdrv_unref(bs);
}

/* Unaligned set/reset touch every granule they overlap; counts follow. */
static void test_set_reset_unaligned(void)
{
    BlockDriverState *bs = mock_node(1 * MiB);
    BdrvDirtyBitmap *b = bdrv_create_dirty_bitmap(bs, 4096, NULL,
                                                  &error_abort);

    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 0);
    bdrv_set_dirty_bitmap(b, 100, 10);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 4096);
    bdrv_set_dirty_bitmap(b, 4095, 2);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 8192);
    g_assert_true(bdrv_dirty_bitmap_get(b, 0));
    g_assert_true(bdrv_dirty_bitmap_get(b, 8191));
    g_assert_false(bdrv_dirty_bitmap_get(b, 8192));
    /* Setting again changes nothing; empty and outside ranges neither. */
    bdrv_set_dirty_bitmap(b, 0, 8192);
    bdrv_set_dirty_bitmap(b, 50000, 0);
    bdrv_set_dirty_bitmap(b, 2 * MiB, 4096);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 8192);
    bdrv_reset_dirty_bitmap(b, 4096, 1);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 4096);
    g_assert_false(bdrv_dirty_bitmap_get(b, 4096));
    /* A range crossing a word boundary (granules 60..70). */
    bdrv_set_dirty_bitmap(b, 60 * 4096 + 1, 10 * 4096);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 12 * 4096);
    bdrv_clear_dirty_bitmap(b);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 0);
    check_clean(b, 0, 1 * MiB);
    bdrv_unref(bs);
}

/* The last granule is partial: counts stop at the node's end. */
static void test_last_partial_granule(void)
{
    int64_t size = 1 * MiB + 1000;
    BlockDriverState *bs = mock_node(size);
    BdrvDirtyBitmap *b = bdrv_create_dirty_bitmap(bs, 4096, NULL,
                                                  &error_abort);

    bdrv_set_dirty_bitmap(b, size - 1, 1);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 1000);
    g_assert_true(bdrv_dirty_bitmap_get(b, size - 1));
    g_assert_false(bdrv_dirty_bitmap_get(b, size));
    check_area(b, 0, INT64_MAX, 0, 1 * MiB, 1000);
    bdrv_set_dirty_bitmap(b, 0, size);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, size);
    check_area(b, 0, INT64_MAX, 0, 0, size);
    bdrv_reset_dirty_bitmap(b, 1 * MiB, 1000);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 1 * MiB);
    bdrv_unref(bs);
}

/* next_dirty_area: start/end clipping, max_bytes, runs across words. */
static void test_next_dirty_area(void)
{
    BlockDriverState *bs = mock_node(1 * MiB);
    BdrvDirtyBitmap *b = bdrv_create_dirty_bitmap(bs, 512, NULL,
                                                  &error_abort);

    check_clean(b, 0, 1 * MiB);
    bdrv_set_dirty_bitmap(b, 3 * 512, 3 * 512);       /* granules 3-5 */
    bdrv_set_dirty_bitmap(b, 60 * 512, 71 * 512);     /* 60-130 */
    bdrv_set_dirty_bitmap(b, 1 * MiB - 512, 512);     /* the last one */
    check_area(b, 0, 1 * MiB, 0, 3 * 512, 3 * 512);
    check_area(b, 4 * 512 + 10, 1 * MiB, 0, 4 * 512 + 10, 2 * 512 - 10);
    check_area(b, 6 * 512, 1 * MiB, 0, 60 * 512, 71 * 512);
    check_area(b, 6 * 512, 1 * MiB, 1000, 60 * 512, 1000);
    check_area(b, 6 * 512, 64 * 512, 0, 60 * 512, 4 * 512);
    check_area(b, 131 * 512, 1 * MiB, 0, 1 * MiB - 512, 512);
    check_clean(b, 131 * 512, 1 * MiB - 512);
    check_clean(b, 6 * 512, 60 * 512);
    check_clean(b, 1 * MiB, 2 * MiB);
    check_clean(b, 5000, 5000);
    bdrv_unref(bs);
}

/* A sparse bitmap of a large node: one dirty granule found at the end. */
static void test_next_dirty_area_sparse(void)
{
    int64_t size = 1LL << 40;
    BlockDriverState *bs = mock_node(size);
    BdrvDirtyBitmap *b = bdrv_create_dirty_bitmap(bs, 64 * KiB, NULL,
                                                  &error_abort);
    int64_t t0 = g_get_monotonic_time();

    bdrv_set_dirty_bitmap(b, size - 1, 1);
    for (int i = 0; i < 10; i++) {
        check_area(b, 0, INT64_MAX, 0, size - 64 * KiB, 64 * KiB);
    }
    /*
     * Fully dirty: a loop taking 1 MiB at a time must not rescan the
     * whole run on every call (it would take minutes here).
     */
    bdrv_set_dirty_bitmap(b, 0, size);
    for (int64_t off = 0; off < 4096 * MiB; off += 1 * MiB) {
        check_area(b, off, INT64_MAX, 1 * MiB, off, 1 * MiB);
    }
    /* Generous bound for slow machines. */
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 2 * G_USEC_PER_SEC);
    bdrv_unref(bs);
}

/* Writes, zero writes and discards through the core mark enabled bitmaps. */
static void test_request_path(void)
{
    BlockDriverState *bs = mock_node(1 * MiB);
    BdrvChild *root = bdrv_root_attach(bs, "guest", &error_abort);
    BdrvDirtyBitmap *on, *off;
    uint8_t buf[4096] = { 0 };

    /* Without bitmaps nothing is marked (and nothing can be). */
    g_assert_cmpint(bdrv_pwrite(root, 0, 512, buf, 0), ==, 0);
    on = bdrv_create_dirty_bitmap(bs, 64 * KiB, "on", &error_abort);
    off = bdrv_create_dirty_bitmap(bs, 64 * KiB, "off", &error_abort);
    bdrv_dirty_bitmap_set_enabled(off, false);
    g_assert_cmpint(bdrv_pwrite(root, 65536 + 100, 4096, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_get_dirty_count(on), ==, 64 * KiB);
    g_assert_cmpint(bdrv_pwrite_zeroes(root, 4 * 65536, 2 * 65536, 0), ==, 0);
    g_assert_cmpint(bdrv_get_dirty_count(on), ==, 3 * 64 * KiB);
    g_assert_cmpint(bdrv_pdiscard(root, 8 * 65536, 65536), ==, 0);
    g_assert_cmpint(bdrv_get_dirty_count(on), ==, 4 * 64 * KiB);
    check_area(on, 0, INT64_MAX, 0, 65536, 65536);
    check_area(on, 2 * 65536, INT64_MAX, 0, 4 * 65536, 2 * 65536);
    check_area(on, 6 * 65536, INT64_MAX, 0, 8 * 65536, 65536);
    /* Reads do not mark; the disabled bitmap saw nothing. */
    g_assert_cmpint(bdrv_pread(root, 0, 4096, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_get_dirty_count(on), ==, 4 * 64 * KiB);
    g_assert_cmpint(bdrv_get_dirty_count(off), ==, 0);
    bdrv_dirty_bitmap_set_enabled(off, true);
    g_assert_cmpint(bdrv_pwrite(root, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_get_dirty_count(off), ==, 64 * KiB);
    bdrv_root_unref_child(root);
    bdrv_unref(bs);
}

/* A resize shrinks (dropping bits) and grows (new range clean) bitmaps. */
static void test_truncate(void)
{
    BlockDriverState *bs = mock_node(1 * MiB);
    BdrvChild *root = bdrv_root_attach(bs, "guest", &error_abort);
    BdrvDirtyBitmap *b = bdrv_create_dirty_bitmap(bs, 4096, "b",
                                                  &error_abort);

    bdrv_set_dirty_bitmap(b, 0, 1 * MiB);
    g_assert_cmpint(bdrv_truncate(root, 512 * KiB + 512, true,
                                  PREALLOC_MODE_OFF, 0, &error_abort), ==, 0);
    g_assert_cmpint(bdrv_dirty_bitmap_size(b), ==, 512 * KiB + 512);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 512 * KiB + 512);
    g_assert_cmpint(bdrv_truncate(root, 2 * MiB, true, PREALLOC_MODE_OFF, 0,
                                  &error_abort), ==, 0);
    g_assert_cmpint(bdrv_dirty_bitmap_size(b), ==, 2 * MiB);
    /* The granule that was partial is still dirty, now whole. */
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 512 * KiB + 4096);
    check_area(b, 0, INT64_MAX, 0, 0, 512 * KiB + 4096);
    check_clean(b, 512 * KiB + 4096, 2 * MiB);
    bdrv_set_dirty_bitmap(b, 2 * MiB - 1, 1);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 512 * KiB + 8192);
    bdrv_root_unref_child(root);
    bdrv_unref(bs);
}

int main(int argc, char **argv)
{
    block_test_init(&argc, &argv);
    g_test_add_func("/dirty-bitmap/create/defaults-and-errors",
                    test_create_errors);
    g_test_add_func("/dirty-bitmap/set-reset/unaligned-ranges",
                    test_set_reset_unaligned);
    g_test_add_func("/dirty-bitmap/set-reset/last-partial-granule",
                    test_last_partial_granule);
    g_test_add_func("/dirty-bitmap/next-dirty-area/edges",
                    test_next_dirty_area);
    g_test_add_func("/dirty-bitmap/next-dirty-area/sparse-terabyte",
                    test_next_dirty_area_sparse);
    g_test_add_func("/dirty-bitmap/request-path/marks-enabled-bitmaps",
                    test_request_path);
    g_test_add_func("/dirty-bitmap/truncate/shrink-and-grow",
                    test_truncate);
    return g_test_run();
}

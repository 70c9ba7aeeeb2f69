/*
 * Unit tests of the block layer core: block status across backing chains
 * and the request path's EOF and alignment handling (block/io.c).
 *
 * A mock format driver defined here (not in the global driver table)
 * answers block status from an explicit extent list and keeps its data in
 * memory, asserting on every call that the core honoured the driver
 * contract (aligned requests, nothing past the end on reads).
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qemu/aio.h"

#define MOCK_MAX_EXTENTS 8

/* One run of the allocation map: [start, start + len) has status flags. */
typedef struct MockExtent {
    int64_t start;
    int64_t len;
    int flags;       /* BDRV_BLOCK_DATA / BDRV_BLOCK_ZERO, 0 = unallocated */
} MockExtent;

typedef struct MockState {
    MockExtent ext[MOCK_MAX_EXTENTS];
    int n_ext;
    uint8_t *data;   /* guest data, total_bytes long (small images only) */
    BlockDriverState *recurse_file;  /* DATA answers ask for refinement */
} MockState;

/* Calls the core made into the mock, for the "few calls" tests. */
static int mock_status_calls;
static int mock_rw_calls;

/* Status from the extent list; gaps are unallocated up to the next run. */
static int coroutine_fn mock_co_block_status(BlockDriverState *bs,
                                             bool want_zero, int64_t offset,
                                             int64_t bytes, int64_t *pnum,
                                             int64_t *map,
                                             BlockDriverState **file)
{
    MockState *s = bs->opaque;
    int64_t end = offset + bytes;

    mock_status_calls++;
    g_assert(QEMU_IS_ALIGNED(offset, bs->bl.request_alignment));
    for (int i = 0; i < s->n_ext; i++) {
        MockExtent *e = &s->ext[i];

        if (offset >= e->start && offset < e->start + e->len) {
            *pnum = MIN(end, e->start + e->len) - offset;
            if (s->recurse_file && (e->flags & BDRV_BLOCK_DATA)) {
                *map = offset;
                *file = s->recurse_file;
                return e->flags | BDRV_BLOCK_OFFSET_VALID |
                       BDRV_BLOCK_RECURSE;
            }
            return e->flags;
        }
        if (e->start > offset) {
            end = MIN(end, e->start);
        }
    }
    *pnum = end - offset;
    return 0;
}

/* Check the core's guarantees for a data request. */
static void mock_check_request(BlockDriverState *bs, int64_t offset,
                               int64_t bytes, QEMUIOVector *qiov)
{
    mock_rw_calls++;
    g_assert(QEMU_IS_ALIGNED(offset, bs->bl.request_alignment));
    g_assert(QEMU_IS_ALIGNED(bytes, bs->bl.request_alignment));
    g_assert(!bs->bl.max_transfer || bytes <= bs->bl.max_transfer);
    g_assert_cmpint(offset + bytes, <=, bs->total_bytes);
    g_assert_cmpuint(qiov->size, ==, bytes);
}

static int coroutine_fn mock_co_preadv(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    MockState *s = bs->opaque;

    mock_check_request(bs, offset, bytes, qiov);
    qemu_iovec_from_buf(qiov, 0, s->data + offset, bytes);
    return 0;
}

static int coroutine_fn mock_co_pwritev(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, QEMUIOVector *qiov,
                                        BdrvRequestFlags flags)
{
    MockState *s = bs->opaque;

    mock_check_request(bs, offset, bytes, qiov);
    qemu_iovec_to_buf(qiov, 0, s->data + offset, bytes);
    return 0;
}

/* Opens a "file" child when options name one (for backing-chain tests). */
static int mock_open(BlockDriverState *bs, QDict *options, int flags,
                     Error **errp)
{
    if (qdict_has_prefixed_entries(options, "file.") &&
        !bdrv_open_child(NULL, options, "file", bs, BDRV_CHILD_FILE, false,
                         errp)) {
        return -EINVAL;
    }
    return 0;
}

static void mock_close(BlockDriverState *bs)
{
    MockState *s = bs->opaque;

    g_free(s->data);
}

static const BlockDriver mock_drv = {
    .format_name = "mock",
    .instance_size = sizeof(MockState),
    .supports_backing = true,
    .bdrv_open = mock_open,
    .bdrv_close = mock_close,
    .bdrv_co_preadv = mock_co_preadv,
    .bdrv_co_pwritev = mock_co_pwritev,
    .bdrv_co_block_status = mock_co_block_status,
};

/* A mock layer of size bytes with up to MOCK_MAX_EXTENTS runs. */
static BlockDriverState *mock_layer(int64_t size, const MockExtent *ext,
                                    int n_ext)
{
    BlockDriverState *bs = bdrv_new_open_driver(&mock_drv, NULL, NULL,
                                                BDRV_O_RDWR, &error_abort);
    MockState *s = bs->opaque;

    g_assert(n_ext <= MOCK_MAX_EXTENTS);
    if (n_ext) {
        memcpy(s->ext, ext, n_ext * sizeof(*ext));
    }
    s->n_ext = n_ext;
    bs->total_bytes = size;
    return bs;
}

/* Put base under top; the chain now holds the only reference to base. */
static void mock_chain(BlockDriverState *top, BlockDriverState *base)
{
    g_assert_cmpint(bdrv_set_backing_hd(top, base, &error_abort), ==, 0);
    bdrv_unref(base);
}

/* Assert one block_status_above answer. */
static void check_above(BlockDriverState *bs, BlockDriverState *base,
                        int64_t offset, int want_ret, int64_t want_pnum,
                        int want_depth)
{
    int64_t pnum = -1;
    int depth = -1;
    int ret = bdrv_block_status_above(bs, base, offset, INT64_MAX / 4, &pnum,
                                      NULL, NULL, &depth);

    g_assert_cmphex(ret, ==, want_ret);
    g_assert_cmpint(pnum, ==, want_pnum);
    g_assert_cmpint(depth, ==, want_depth);
}

static void test_single_layer_extents(void)
{
    static const MockExtent ext[] = {
        { 0, 64 * KiB, BDRV_BLOCK_DATA },
        { 64 * KiB, 64 * KiB, BDRV_BLOCK_ZERO },
    };
    BlockDriverState *bs = mock_layer(1 * MiB, ext, 2);
    int64_t pnum;

    g_assert_cmphex(bdrv_block_status(bs, 0, 1 * MiB, &pnum, NULL, NULL), ==,
                    BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 64 * KiB);
    g_assert_cmphex(bdrv_block_status(bs, 64 * KiB, 1 * MiB, &pnum, NULL,
                                      NULL), ==,
                    BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 64 * KiB);
    /* Unallocated without backing reads as zero, up to EOF. */
    g_assert_cmphex(bdrv_block_status(bs, 128 * KiB, 4 * MiB, &pnum, NULL,
                                      NULL), ==,
                    BDRV_BLOCK_ZERO | BDRV_BLOCK_EOF);
    g_assert_cmpint(pnum, ==, 896 * KiB);
    /* Mid-extent start, and a start at EOF. */
    g_assert_cmphex(bdrv_block_status(bs, 4 * KiB, 8 * KiB, &pnum, NULL,
                                      NULL), ==,
                    BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 8 * KiB);
    g_assert_cmphex(bdrv_block_status(bs, 1 * MiB, 1, &pnum, NULL, NULL), ==,
                    BDRV_BLOCK_EOF);
    g_assert_cmpint(pnum, ==, 0);
    bdrv_unref(bs);
}

static void test_recurse_refines_zero(void)
{
    static const MockExtent file_ext[] = {
        { 0, 64 * KiB, BDRV_BLOCK_DATA },
        { 64 * KiB, 960 * KiB, BDRV_BLOCK_ZERO },
    };
    static const MockExtent top_ext[] = { { 0, 1 * MiB, BDRV_BLOCK_DATA } };
    BlockDriverState *file = mock_layer(1 * MiB, file_ext, 2);
    BlockDriverState *top = mock_layer(1 * MiB, top_ext, 1);
    int64_t pnum, map;

    ((MockState *)top->opaque)->recurse_file = file;
    g_assert_cmphex(bdrv_block_status(top, 0, 1 * MiB, &pnum, &map, NULL),
                    ==, BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED |
                    BDRV_BLOCK_OFFSET_VALID);
    g_assert_cmpint(pnum, ==, 64 * KiB);
    /* A hole in the file under a data cluster reads as zeroes. */
    g_assert_cmphex(bdrv_block_status(top, 64 * KiB, 1 * MiB, &pnum, &map,
                                      NULL), ==,
                    BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED |
                    BDRV_BLOCK_OFFSET_VALID | BDRV_BLOCK_EOF);
    g_assert_cmpint(pnum, ==, 960 * KiB);
    g_assert_cmpint(map, ==, 64 * KiB);
    bdrv_unref(top);
    bdrv_unref(file);
}

static void test_above_top_wins(void)
{
    static const MockExtent top_ext[] = { { 0, 64 * KiB, BDRV_BLOCK_DATA } };
    static const MockExtent base_ext[] = {
        { 0, 128 * KiB, BDRV_BLOCK_DATA },
    };
    BlockDriverState *top = mock_layer(1 * MiB, top_ext, 1);

    mock_chain(top, mock_layer(1 * MiB, base_ext, 1));
    check_above(top, NULL, 0, BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED,
                64 * KiB, 0);
    check_above(top, NULL, 64 * KiB, BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED,
                64 * KiB, 1);
    bdrv_unref(top);
}

static void test_above_falls_through(void)
{
    static const MockExtent base_ext[] = {
        { 256 * KiB, 256 * KiB, BDRV_BLOCK_DATA },
    };
    BlockDriverState *top = mock_layer(1 * MiB, NULL, 0);
    int64_t pnum;

    mock_chain(top, mock_layer(1 * MiB, base_ext, 1));
    check_above(top, NULL, 0, BDRV_BLOCK_ZERO, 256 * KiB, 1);
    check_above(top, NULL, 256 * KiB, BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED,
                256 * KiB, 1);
    check_above(top, NULL, 512 * KiB, BDRV_BLOCK_ZERO | BDRV_BLOCK_EOF,
                512 * KiB, 1);
    g_assert_cmpint(bdrv_is_allocated_above(top, NULL, false, 300 * KiB,
                                            1 * MiB, &pnum), ==, 1);
    g_assert_cmpint(pnum, ==, 212 * KiB);
    bdrv_unref(top);
}

static void test_above_unallocated_is_zero(void)
{
    BlockDriverState *top = mock_layer(2 * MiB, NULL, 0);
    BlockDriverState *mid = mock_layer(2 * MiB, NULL, 0);
    int64_t pnum;

    mock_chain(mid, mock_layer(2 * MiB, NULL, 0));
    mock_chain(top, mid);
    check_above(top, NULL, 0, BDRV_BLOCK_ZERO | BDRV_BLOCK_EOF, 2 * MiB, 2);
    g_assert_cmpint(bdrv_is_allocated_above(top, NULL, true, 0, 2 * MiB,
                                            &pnum), ==, 0);
    g_assert_cmpint(pnum, ==, 2 * MiB);
    bdrv_unref(top);
}

static void test_above_backing_shorter(void)
{
    static const MockExtent data[] = { { 0, 2 * MiB, BDRV_BLOCK_DATA } };
    BlockDriverState *top = mock_layer(2 * MiB, NULL, 0);
    BlockDriverState *mid = mock_layer(1 * MiB, NULL, 0);
    int64_t pnum;

    mock_chain(mid, mock_layer(2 * MiB, data, 1));
    mock_chain(top, mid);
    /* Below mid's end the base shows through; past it, mid's EOF zeroes. */
    check_above(top, NULL, 0, BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED,
                1 * MiB, 2);
    check_above(top, NULL, 1 * MiB, BDRV_BLOCK_ZERO | BDRV_BLOCK_EOF,
                1 * MiB, 0);
    /* For jobs, the short layer decides (its EOF counts as allocated). */
    g_assert_cmpint(bdrv_is_allocated_above(top, NULL, false, 1 * MiB,
                                            1 * MiB, &pnum), ==, 1);
    g_assert_cmpint(pnum, ==, 1 * MiB);
    bdrv_unref(top);
}

static void test_above_base_excluded(void)
{
    static const MockExtent data[] = { { 0, 1 * MiB, BDRV_BLOCK_DATA } };
    BlockDriverState *top = mock_layer(1 * MiB, NULL, 0);
    BlockDriverState *mid = mock_layer(1 * MiB, NULL, 0);
    BlockDriverState *base = mock_layer(1 * MiB, data, 1);
    int64_t pnum;

    mock_chain(mid, base);
    mock_chain(top, mid);
    check_above(top, base, 0, BDRV_BLOCK_EOF, 1 * MiB, 1);
    check_above(top, NULL, 0,
                BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_EOF,
                1 * MiB, 2);
    g_assert_cmpint(bdrv_is_allocated_above(top, base, false, 0, 1 * MiB,
                                            &pnum), ==, 0);
    g_assert_cmpint(bdrv_is_allocated_above(top, base, true, 0, 1 * MiB,
                                            &pnum), ==, 1);
    bdrv_unref(top);
}

static void test_large_sparse_few_calls(void)
{
    static const MockExtent data[] = { { 512 * GiB, 64 * KiB,
                                         BDRV_BLOCK_DATA } };
    BlockDriverState *top = mock_layer(1 * TiB, NULL, 0);
    int64_t offset = 0, pnum;
    int extents = 0;

    mock_chain(top, mock_layer(1 * TiB, data, 1));
    mock_status_calls = 0;
    while (offset < 1 * TiB) {
        int ret = bdrv_block_status_above(top, NULL, offset, 1 * TiB - offset,
                                          &pnum, NULL, NULL, NULL);

        g_assert_cmpint(ret, >=, 0);
        g_assert_cmpint(pnum, >, 0);
        offset += pnum;
        extents++;
    }
    g_assert_cmpint(extents, ==, 3);
    g_assert_cmpint(mock_status_calls, <=, 6);
    bdrv_unref(top);
}

/* A mock layer with data: byte i holds (i & 0xff) ^ 0x5a. */
static BlockDriverState *mock_data_layer(int64_t size, uint32_t align,
                                         bool protocol_like)
{
    BlockDriverState *bs = mock_layer(size, NULL, 0);
    MockState *s = bs->opaque;

    s->data = g_malloc(MAX(size, 1));
    for (int64_t i = 0; i < size; i++) {
        s->data[i] = (i & 0xff) ^ 0x5a;
    }
    bs->bl.request_alignment = align;
    return bs;
}

static void test_read_past_eof(void)
{
    BlockDriverState *bs = mock_data_layer(1000, 1, false);
    BdrvChild *root = bdrv_root_attach(bs, "test", &error_abort);
    g_autofree uint8_t *buf = g_malloc(4096);

    memset(buf, 0xff, 4096);
    g_assert_cmpint(bdrv_pread(root, 0, 4096, buf, 0), ==, 0);
    for (int i = 0; i < 4096; i++) {
        g_assert_cmpint(buf[i], ==, i < 1000 ? ((i & 0xff) ^ 0x5a) : 0);
    }
    memset(buf, 0xff, 4096);
    g_assert_cmpint(bdrv_pread(root, 8192, 4096, buf, 0), ==, 0);
    g_assert_true(buffer_is_zero(buf, 4096));
    /* A format node cannot grow by writing; bad ranges are rejected. */
    g_assert_cmpint(bdrv_pwrite(root, 900, 200, buf, 0), ==, -EIO);
    g_assert_cmpint(bdrv_pread(root, -1, 10, buf, 0), ==, -EIO);
    g_assert_cmpint(bdrv_pread(root, INT64_MAX, 10, buf, 0), ==, -EIO);
    bdrv_root_unref_child(root);
    bdrv_unref(bs);
}

static void test_unaligned_rmw(void)
{
    BlockDriverState *bs = mock_data_layer(4096, 512, false);
    MockState *s = bs->opaque;
    BdrvChild *root = bdrv_root_attach(bs, "test", &error_abort);
    g_autofree uint8_t *expect = g_memdup2(s->data, 4096);
    uint8_t buf[1500];

    /* Crosses a block boundary: two read-modify-write cycles. */
    g_assert_cmpint(bdrv_pwrite(root, 510, 3, "abc", 0), ==, 0);
    memcpy(expect + 510, "abc", 3);
    /* Head, aligned middle and tail in one request. */
    memset(buf, 0x11, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(root, 1000, 1500, buf, 0), ==, 0);
    memset(expect + 1000, 0x11, 1500);
    /* Zeroes without driver support go through the same path. */
    g_assert_cmpint(bdrv_pwrite_zeroes(root, 3000, 100, 0), ==, 0);
    memset(expect + 3000, 0, 100);
    g_assert_cmpmem(s->data, 4096, expect, 4096);
    g_assert_cmpint(bdrv_pwrite_zeroes(root, 0, 512, BDRV_REQ_NO_FALLBACK),
                    ==, -ENOTSUP);
    /* An unaligned read sees exactly the bytes written. */
    g_assert_cmpint(bdrv_pread(root, 505, 1200, buf, 0), ==, 0);
    g_assert_cmpmem(buf, 1200, expect + 505, 1200);
    bdrv_root_unref_child(root);
    bdrv_unref(bs);
}

static void test_split_max_transfer(void)
{
    BlockDriverState *bs = mock_data_layer(8192, 512, false);
    MockState *s = bs->opaque;
    BdrvChild *root = bdrv_root_attach(bs, "test", &error_abort);
    uint8_t buf[5000];

    bs->bl.max_transfer = 2048;
    mock_rw_calls = 0;
    g_assert_cmpint(bdrv_pread(root, 100, 5000, buf, 0), ==, 0);
    g_assert_cmpmem(buf, 5000, s->data + 100, 5000);
    /* head block, 4096 aligned bytes in two chunks, tail block */
    g_assert_cmpint(mock_rw_calls, ==, 4);
    bdrv_root_unref_child(root);
    bdrv_unref(bs);
}

/* Scratch directory with an empty raw file "base.raw" in it. */
static char *make_scratch_dir(void)
{
    char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *base = g_build_filename(dir, "base.raw", NULL);

    g_assert_nonnull(dir);
    g_assert_true(g_file_set_contents(base, "", 0, NULL));
    return dir;
}

/* A read-only mock image over file dir/name, naming backing/format. */
static BlockDriverState *mock_overlay(const char *dir, const char *name,
                                      const char *backing, const char *fmt)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    QDict *opts = qdict_new();
    BlockDriverState *bs;

    g_assert_true(g_file_set_contents(path, "", 0, NULL));
    qdict_put_str(opts, "file.filename", path);
    bs = bdrv_new_open_driver(&mock_drv, NULL, opts, 0, &error_abort);
    g_strlcpy(bs->filename, path, sizeof(bs->filename));
    g_strlcpy(bs->backing_file, backing, sizeof(bs->backing_file));
    g_strlcpy(bs->backing_format, fmt, sizeof(bs->backing_format));
    return bs;
}

/* Remove the scratch files and directory. */
static void remove_scratch_dir(char *dir)
{
    const char *names[] = { "base.raw", "top.img" };

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        g_autofree char *p = g_build_filename(dir, names[i], NULL);

        unlink(p);
    }
    rmdir(dir);
    g_free(dir);
}

static void test_backing_relative_to_overlay(void)
{
    char *dir = make_scratch_dir();
    BlockDriverState *top = mock_overlay(dir, "top.img", "base.raw", "raw");
    g_autofree char *want = g_build_filename(dir, "base.raw", NULL);

    g_assert_cmpint(bdrv_open_backing_file(top, NULL, &error_abort), ==, 0);
    g_assert_nonnull(bdrv_backing_bs(top));
    g_assert_cmpstr(top->full_backing_filename, ==, want);
    g_assert_cmpstr(bdrv_get_format_name(bdrv_backing_bs(top)), ==, "raw");
    g_assert_true(bdrv_is_read_only(bdrv_backing_bs(top)));
    g_assert_cmpint(bdrv_chain_length(top), ==, 2);
    g_assert_true(bdrv_find_backing_image(top, "base.raw") ==
                  bdrv_backing_bs(top));
    bdrv_unref(top);
    remove_scratch_dir(dir);
}

/* Expect bdrv_open_backing_file to fail with a message containing msg. */
static void check_backing_error(const char *backing, const char *fmt,
                                const char *msg)
{
    char *dir = make_scratch_dir();
    BlockDriverState *top = mock_overlay(dir, "top.img", backing, fmt);
    Error *err = NULL;

    g_assert_cmpint(bdrv_open_backing_file(top, NULL, &err), <, 0);
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), msg)) {
        g_error("unexpected error: %s", error_get_pretty(err));
    }
    g_assert_null(bdrv_backing_bs(top));
    error_free(err);
    bdrv_unref(top);
    remove_scratch_dir(dir);
}

static void test_backing_missing_format(void)
{
    check_backing_error("base.raw", "", "backing format is not recorded");
}

static void test_backing_missing_file(void)
{
    check_backing_error("nope.raw", "raw", "Could not open backing file: "
                        "Could not open '");
}

static void test_backing_self_loop(void)
{
    check_backing_error("top.img", "raw", "loops: '");
}

int main(int argc, char **argv)
{
    qemu_init_main_loop();
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/block-status/single-layer-extents",
                    test_single_layer_extents);
    g_test_add_func("/block-status/recurse-refines-holes-to-zero",
                    test_recurse_refines_zero);
    g_test_add_func("/block-status/above/top-wins", test_above_top_wins);
    g_test_add_func("/block-status/above/falls-through-to-base",
                    test_above_falls_through);
    g_test_add_func("/block-status/above/unallocated-everywhere-is-zero",
                    test_above_unallocated_is_zero);
    g_test_add_func("/block-status/above/backing-shorter-than-top-reads-zero",
                    test_above_backing_shorter);
    g_test_add_func("/block-status/above/base-excluded",
                    test_above_base_excluded);
    g_test_add_func("/block-status/large-sparse-extents-few-calls",
                    test_large_sparse_few_calls);
    g_test_add_func("/io/read-past-eof-zero-fills", test_read_past_eof);
    g_test_add_func("/io/unaligned-rmw", test_unaligned_rmw);
    g_test_add_func("/io/split-at-max-transfer", test_split_max_transfer);
    g_test_add_func("/block/backing/relative-to-overlay-dir",
                    test_backing_relative_to_overlay);
    g_test_add_func("/block/backing/format-not-recorded-is-refused",
                    test_backing_missing_format);
    g_test_add_func("/block/backing/missing-file-error",
                    test_backing_missing_file);
    g_test_add_func("/block/backing/self-loop-detected",
                    test_backing_self_loop);
    return g_test_run();
}

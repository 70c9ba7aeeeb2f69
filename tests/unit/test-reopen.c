/*
 * Unit tests of bdrv_reopen_set_read_only() (block/reopen.c) and the
 * reopen hooks of the file and qcow2 drivers, on real images in a
 * temporary directory. Where qemu-img is installed it judges every qcow2
 * image at the end of a test.
 *
 * The permission test needs a file the process cannot open for writing:
 * as root, CAP_DAC_OVERRIDE is dropped from the effective set for its
 * duration (and restored), so a 0444 file really is read-only to us.
 */
#include "qemu/osdep.h"
#include "block-test-util.h"
#include "block/block_int.h"
#include "qemu/aio.h"
#include "qemu/coroutine.h"
#include "qemu/trace-control.h"

#include <linux/capability.h>
#include <sys/syscall.h>

#define IMG_SIZE (4 * MiB)

typedef struct Fixture {
    char *dir;
} Fixture;

static char *fixture_path(Fixture *f, const char *name)
{
    return g_build_filename(f->dir, name, NULL);
}

static void fixture_setup(Fixture *f)
{
    f->dir = g_dir_make_tmp("test-reopen-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
}

/* Remove every file of the fixture directory, then the directory. */
static void fixture_teardown(Fixture *f)
{
    g_autoptr(GDir) d = g_dir_open(f->dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = fixture_path(f, name);
        chmod(p, 0644);
        unlink(p);
    }
    rmdir(f->dir);
    g_free(f->dir);
}

/* Create an image: fmt "qcow2" or "raw"; backing (qcow2) and compat opt. */
static void create_image(const char *fmt, const char *path,
                         const char *backing, const char *lazy)
{
    g_autoptr(QDict) opts = qdict_new();

    qdict_put_str(opts, "size", "4194304");
    if (backing) {
        qdict_put_str(opts, "backing_file", backing);
        qdict_put_str(opts, "backing_fmt", "qcow2");
    }
    if (lazy) {
        qdict_put_str(opts, "lazy_refcounts", lazy);
    }
    g_assert_cmpint(bdrv_create(bdrv_find_format(fmt), path, opts,
                                &error_abort), ==, 0);
}

static BlockDriverState *open_image(const char *fmt, const char *path,
                                    int flags)
{
    QDict *opts = qdict_new();

    qdict_put_str(opts, "driver", fmt);
    return bdrv_open(path, opts, flags, &error_abort);
}

/* Write bytes of value v at offset through a root child of bs. */
static int write_pattern(BlockDriverState *bs, int64_t offset, int64_t bytes,
                         uint8_t v)
{
    BdrvChild *root = bdrv_root_attach(bs, "test", &error_abort);
    g_autofree uint8_t *buf = g_malloc(bytes);
    int ret;

    memset(buf, v, bytes);
    ret = bdrv_pwrite(root, offset, bytes, buf, 0);
    bdrv_root_unref_child(root);
    return ret;
}

/* Assert that bs reads v over [offset, offset + bytes). */
static void check_pattern(BlockDriverState *bs, int64_t offset, int64_t bytes,
                          uint8_t v)
{
    BdrvChild *root = bdrv_root_attach(bs, "test", &error_abort);
    g_autofree uint8_t *buf = g_malloc(bytes);

    g_assert_cmpint(bdrv_pread(root, offset, bytes, buf, 0), ==, 0);
    for (int64_t i = 0; i < bytes; i++) {
        if (buf[i] != v) {
            g_error("offset %" PRId64 ": 0x%02x, expected 0x%02x",
                    offset + i, buf[i], v);
        }
    }
    bdrv_root_unref_child(root);
}

/* The incompatible feature bits of a qcow2 file, read from disk. */
static uint64_t qcow2_disk_incompat(const char *path)
{
    g_autofree char *buf = NULL;
    gsize len = 0;
    uint64_t v;

    g_assert_true(g_file_get_contents(path, &buf, &len, NULL));
    g_assert_cmpuint(len, >=, 80);
    memcpy(&v, buf + 72, 8);
    return GUINT64_FROM_BE(v);
}

/* Both the node and its file child have the mode read_only. */
static void assert_mode(BlockDriverState *bs, bool read_only)
{
    g_assert_cmpint(bdrv_is_read_only(bs), ==, read_only);
    g_assert_cmpint(!!(bs->open_flags & BDRV_O_RDWR), ==, !read_only);
    if (bdrv_file_bs(bs)) {
        g_assert_cmpint(bdrv_is_read_only(bdrv_file_bs(bs)), ==, read_only);
    }
}

/*
 * The backing node of a chain (opened read-only by the core) becomes
 * writable, takes a write, goes back: data right, image clean.
 */
static void test_qcow2_backing_rw_ro(void)
{
    Fixture f;
    g_autofree char *base = NULL, *top = NULL;
    BlockDriverState *bs, *backing;

    fixture_setup(&f);
    base = fixture_path(&f, "base.qcow2");
    top = fixture_path(&f, "top.qcow2");
    create_image("qcow2", base, NULL, NULL);
    create_image("qcow2", top, "base.qcow2", NULL);

    bs = open_image("qcow2", top, BDRV_O_RDWR);
    backing = bdrv_backing_bs(bs);
    g_assert_nonnull(backing);
    assert_mode(backing, true);
    g_assert_cmpint(write_pattern(backing, 0, 64 * KiB, 0xaa), ==, -EPERM);

    g_assert_cmpint(bdrv_reopen_set_read_only(backing, false, &error_abort),
                    ==, 0);
    assert_mode(backing, false);
    assert_mode(bs, false);
    g_assert_cmpint(write_pattern(backing, 64 * KiB, 128 * KiB, 0xaa), ==, 0);
    g_assert_cmpint(bdrv_reopen_set_read_only(backing, true, &error_abort),
                    ==, 0);
    assert_mode(backing, true);
    g_assert_cmpint(write_pattern(backing, 0, 64 * KiB, 0xbb), ==, -EPERM);
    /* The top reads the new data through its backing file. */
    check_pattern(bs, 64 * KiB, 128 * KiB, 0xaa);
    check_pattern(bs, 0, 64 * KiB, 0);
    bdrv_unref(bs);

    block_test_qemu_img_check(base);
    bs = open_image("qcow2", base, 0);
    check_pattern(bs, 64 * KiB, 128 * KiB, 0xaa);
    bdrv_unref(bs);
    fixture_teardown(&f);
}

/* A raw image: the same round trip through format and file node. */
static void test_raw_rw_ro(void)
{
    Fixture f;
    g_autofree char *img = NULL;
    BlockDriverState *bs;

    fixture_setup(&f);
    img = fixture_path(&f, "disk.raw");
    create_image("raw", img, NULL, NULL);
    bs = open_image("raw", img, 0);
    assert_mode(bs, true);
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, false, &error_abort),
                    ==, 0);
    assert_mode(bs, false);
    g_assert_cmpint(write_pattern(bs, 4096, 8192, 0x5a), ==, 0);
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, true, &error_abort), ==, 0);
    assert_mode(bs, true);
    g_assert_cmpint(write_pattern(bs, 0, 512, 1), ==, -EPERM);
    check_pattern(bs, 4096, 8192, 0x5a);
    /* Already in the asked mode: nothing to do, no error. */
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, true, &error_abort), ==, 0);
    bdrv_unref(bs);
    fixture_teardown(&f);
}

/* Set or clear CAP_DAC_OVERRIDE in our effective set (root only). */
static void set_dac_override(bool on)
{
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];

    g_assert_cmpint(syscall(SYS_capget, &hdr, data), ==, 0);
    if (on) {
        data[0].effective |= 1u << CAP_DAC_OVERRIDE;
    } else {
        data[0].effective &= ~(1u << CAP_DAC_OVERRIDE);
    }
    g_assert_cmpint(syscall(SYS_capset, &hdr, data), ==, 0);
}

/* A file without write permission: refused, nothing changed. */
static void test_permission_denied(void)
{
    Fixture f;
    g_autofree char *img = NULL, *want = NULL;
    BlockDriverState *bs;
    Error *err = NULL;

    fixture_setup(&f);
    img = fixture_path(&f, "ro.qcow2");
    create_image("qcow2", img, NULL, NULL);
    bs = open_image("qcow2", img, BDRV_O_RDWR);
    g_assert_cmpint(write_pattern(bs, 0, 64 * KiB, 0x11), ==, 0);
    bdrv_unref(bs);
    g_assert_cmpint(chmod(img, 0444), ==, 0);
    bs = open_image("qcow2", img, 0);

    if (geteuid() == 0) {
        set_dac_override(false);
    }
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, false, &err), <, 0);
    if (geteuid() == 0) {
        set_dac_override(true);
    }
    want = g_strdup_printf("Could not reopen '%s': Permission denied", img);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, want);
    error_free(err);
    assert_mode(bs, true);
    check_pattern(bs, 0, 64 * KiB, 0x11);
    g_assert_cmpint(write_pattern(bs, 0, 512, 1), ==, -EPERM);
    bdrv_unref(bs);
    block_test_qemu_img_check(img);
    fixture_teardown(&f);
}

/*
 * Lazy refcounts: a write sets the dirty bit; reopening read-only clears
 * it on disk as a clean close does. A copy taken while dirty (a crash
 * image) opened read-only and reopened read-write is repaired and clean.
 */
static void test_qcow2_dirty_bit(void)
{
    Fixture f;
    g_autofree char *img = NULL, *crash = NULL, *data = NULL;
    BlockDriverState *bs;
    gsize len;

    fixture_setup(&f);
    img = fixture_path(&f, "lazy.qcow2");
    crash = fixture_path(&f, "crash.qcow2");
    create_image("qcow2", img, NULL, "on");
    bs = open_image("qcow2", img, BDRV_O_RDWR);
    g_assert_cmpint(write_pattern(bs, 0, 256 * KiB, 0x77), ==, 0);
    g_assert_cmpuint(qcow2_disk_incompat(img) & 1, ==, 1);
    g_assert_true(g_file_get_contents(img, &data, &len, NULL));
    g_assert_true(g_file_set_contents(crash, data, len, NULL));

    g_assert_cmpint(bdrv_reopen_set_read_only(bs, true, &error_abort), ==, 0);
    g_assert_cmpuint(qcow2_disk_incompat(img) & 1, ==, 0);
    block_test_qemu_img_check(img);
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, false, &error_abort),
                    ==, 0);
    g_assert_cmpint(write_pattern(bs, 256 * KiB, 64 * KiB, 0x78), ==, 0);
    check_pattern(bs, 0, 256 * KiB, 0x77);
    bdrv_unref(bs);
    block_test_qemu_img_check(img);

    bs = open_image("qcow2", crash, 0);
    g_assert_cmpuint(qcow2_disk_incompat(crash) & 1, ==, 1);
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, false, &error_abort),
                    ==, 0);
    g_assert_cmpuint(qcow2_disk_incompat(crash) & 1, ==, 0);
    /* The crash lost the unflushed data; the image must be usable. */
    g_assert_cmpint(write_pattern(bs, 0, 64 * KiB, 0x79), ==, 0);
    check_pattern(bs, 0, 64 * KiB, 0x79);
    bdrv_unref(bs);
    block_test_qemu_img_check(crash);
    fixture_teardown(&f);
}

/* A filter passes the switch down: filter, format and file nodes flip. */
static void test_filter_passes_through(void)
{
    Fixture f;
    g_autofree char *img = NULL;
    BlockDriverState *bs, *fmt;
    QDict *opts = qdict_new();

    fixture_setup(&f);
    img = fixture_path(&f, "cor.qcow2");
    create_image("qcow2", img, NULL, NULL);
    qdict_put_str(opts, "driver", "copy-on-read");
    qdict_put_str(opts, "file.driver", "qcow2");
    qdict_put_str(opts, "file.file.driver", "file");
    qdict_put_str(opts, "file.file.filename", img);
    bs = bdrv_open(NULL, opts, 0, &error_abort);
    fmt = bdrv_file_bs(bs);
    g_assert_cmpstr(bdrv_get_format_name(fmt), ==, "qcow2");
    assert_mode(bs, true);
    assert_mode(fmt, true);
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, false, &error_abort),
                    ==, 0);
    assert_mode(bs, false);
    assert_mode(fmt, false);
    g_assert_cmpint(write_pattern(bs, 0, 64 * KiB, 0x42), ==, 0);
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, true, &error_abort), ==, 0);
    assert_mode(bs, true);
    assert_mode(fmt, true);
    check_pattern(bs, 0, 64 * KiB, 0x42);
    bdrv_unref(bs);
    block_test_qemu_img_check(img);
    fixture_teardown(&f);
}

/*
 * The format refuses after its file was switched (a corrupt qcow2): the
 * file goes back to read-only, so both nodes are as before.
 */
static void test_format_refusal_rolls_back_file(void)
{
    Fixture f;
    g_autofree char *img = NULL;
    BlockDriverState *bs;
    Error *err = NULL;
    uint8_t bits[8] = { 0, 0, 0, 0, 0, 0, 0, 2 };   /* corrupt bit */
    FILE *fp;

    fixture_setup(&f);
    img = fixture_path(&f, "corrupt.qcow2");
    create_image("qcow2", img, NULL, NULL);
    fp = fopen(img, "r+b");
    g_assert_nonnull(fp);
    g_assert_cmpint(fseek(fp, 72, SEEK_SET), ==, 0);
    g_assert_cmpuint(fwrite(bits, 1, 8, fp), ==, 8);
    fclose(fp);

    bs = open_image("qcow2", img, 0);
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, false, &err), <, 0);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "qcow2: Image is corrupt; cannot be opened read/write");
    error_free(err);
    assert_mode(bs, true);
    g_assert_cmpint(write_pattern(bs, 0, 512, 1),
                    ==, -EPERM);
    bdrv_unref(bs);
    g_assert_cmpuint(qcow2_disk_incompat(img), ==, 2);
    fixture_teardown(&f);
}

typedef struct InFlight {
    BdrvChild *root;
    int64_t offset;
    int ret;
    bool done;
} InFlight;

static void coroutine_fn in_flight_write(void *opaque)
{
    InFlight *w = opaque;
    g_autofree uint8_t *buf = g_malloc(64 * KiB);

    memset(buf, 0x30 + w->offset / (64 * KiB), 64 * KiB);
    w->ret = bdrv_co_pwrite(w->root, w->offset, 64 * KiB, buf, 0);
    w->done = true;
}

/*
 * Writes in flight when the node is reopened read-only all complete
 * (the switch drains them first) and their data is intact.
 */
static void test_in_flight(void)
{
    Fixture f;
    g_autofree char *img = NULL;
    BlockDriverState *bs;
    BdrvChild *root;
    InFlight w[16];

    fixture_setup(&f);
    img = fixture_path(&f, "busy.qcow2");
    create_image("qcow2", img, NULL, NULL);
    bs = open_image("qcow2", img, BDRV_O_RDWR);
    root = bdrv_root_attach(bs, "guest", &error_abort);
    for (int i = 0; i < 16; i++) {
        w[i] = (InFlight) { .root = root, .offset = i * 64 * KiB };
        qemu_coroutine_enter(qemu_coroutine_create(in_flight_write, &w[i]));
    }
    g_assert_cmpuint(bs->in_flight, >, 0);
    g_assert_cmpint(bdrv_reopen_set_read_only(bs, true, &error_abort), ==, 0);
    for (int i = 0; i < 16; i++) {
        g_assert_true(w[i].done);
        g_assert_cmpint(w[i].ret, ==, 0);
    }
    bdrv_root_unref_child(root);
    for (int i = 0; i < 16; i++) {
        check_pattern(bs, i * 64 * KiB, 64 * KiB, 0x30 + i);
    }
    bdrv_unref(bs);
    block_test_qemu_img_check(img);
    fixture_teardown(&f);
}

int main(int argc, char **argv)
{
    block_test_init(&argc, &argv);
    g_test_add_func("/reopen/qcow2/backing-rw-then-ro",
                    test_qcow2_backing_rw_ro);
    g_test_add_func("/reopen/raw/rw-then-ro", test_raw_rw_ro);
    g_test_add_func("/reopen/permission-denied-changes-nothing",
                    test_permission_denied);
    g_test_add_func("/reopen/qcow2/dirty-bit-like-close-and-open",
                    test_qcow2_dirty_bit);
    g_test_add_func("/reopen/in-flight-writes-complete", test_in_flight);
    g_test_add_func("/reopen/qcow2/refusal-rolls-back-file",
                    test_format_refusal_rolls_back_file);
    g_test_add_func("/reopen/filter-passes-through",
                    test_filter_passes_through);
    return g_test_run();
}

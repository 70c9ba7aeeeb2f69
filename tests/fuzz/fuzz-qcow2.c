/*
 * libFuzzer target: open an arbitrary byte string as a qcow2 image and
 * exercise the read-only paths a user reaches with qemu-img info/map/
 * check/convert: header and extension parsing, snapshot table, L1/L2
 * walks (block status), data reads including compressed clusters, the
 * consistency check and the format-specific info.
 *
 * The input lives in a memfd opened as /proc/self/fd/N, so no file is
 * left behind. The backing file is never opened (backing=""), but its
 * name is still parsed from the header. Work per input is bounded: at
 * most FUZZ_MAX_STATUS block status calls and a few small reads.
 */
#include "qemu/osdep.h"
#include "block/block.h"
#include "qemu/aio.h"
#include <sys/mman.h>

#define FUZZ_MAX_STATUS 1000
#define FUZZ_READ_SIZE (64 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    qemu_init_main_loop();
    bdrv_init();
    return 0;
}

/* Write the whole input to a new memfd; -1 on failure. */
static int fuzz_memfd(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
    size_t done = 0;

    if (fd < 0) {
        return -1;
    }
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += n;
    }
    return fd;
}

/* Walk the allocation map in extents, up to FUZZ_MAX_STATUS calls. */
static void fuzz_block_status(BlockDriverState *bs, int64_t len)
{
    int64_t offset = 0;

    for (int i = 0; i < FUZZ_MAX_STATUS && offset < len; i++) {
        int64_t pnum = 0, map = 0;
        BlockDriverState *file = NULL;
        int ret = bdrv_block_status(bs, offset, len - offset, &pnum, &map,
                                    &file);
        if (ret < 0 || pnum <= 0) {
            break;
        }
        offset += pnum;
    }
}

/* Read a few ranges: the start, the middle and the end of the disk. */
static void fuzz_reads(BlockDriverState *bs, int64_t len)
{
    int64_t starts[3] = { 0, len / 2, len - FUZZ_READ_SIZE };
    g_autofree uint8_t *buf = g_malloc(FUZZ_READ_SIZE);
    BdrvChild *child = bdrv_root_attach(bs, "fuzz", NULL);

    if (!child) {
        return;
    }
    for (int i = 0; i < 3; i++) {
        int64_t off = QEMU_ALIGN_DOWN(MAX(starts[i], 0), 512);
        int64_t n = MIN(FUZZ_READ_SIZE, len - off);
        if (n > 0) {
            bdrv_pread(child, off, n, buf, 0);
        }
    }
    bdrv_root_unref_child(child);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *path = NULL;
    g_autofree char *info = NULL;
    BlockDriverState *bs;
    BdrvCheckResult res;
    QDict *opts;
    Error *err = NULL;
    int64_t len;
    int fd = fuzz_memfd(data, size);

    if (fd < 0) {
        return 0;
    }
    path = g_strdup_printf("/proc/self/fd/%d", fd);
    opts = qdict_new();
    qdict_put_str(opts, "driver", "qcow2");
    qdict_put_str(opts, "backing", "");
    bs = bdrv_open(path, opts, BDRV_O_FORCE_SHARE, &err);
    if (!bs) {
        error_free(err);
        close(fd);
        return 0;
    }
    len = bdrv_getlength(bs);
    if (len > 0) {
        fuzz_block_status(bs, len);
        fuzz_reads(bs, len);
    }
    bdrv_check(bs, &res, 0);
    info = bdrv_get_specific_info_json(bs, &err);
    error_free(err);
    bdrv_unref(bs);
    close(fd);
    return 0;
}

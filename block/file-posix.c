/*
 * Protocol drivers "file" (regular files) and "host_device" (block
 * devices) on POSIX hosts.
 *
 * State: one file descriptor per node (BDRVRawState), opened read-only
 * unless BDRV_O_RDWR, with O_DIRECT for cache.direct=on. Data goes
 * through the I/O back-end seam (block/raw-aio.h: io_uring or the thread
 * pool); fallocate/ftruncate/ioctl calls go through worker threads too,
 * so the main loop never blocks on the disk. The driver keeps no cache
 * of its own: a write is in the host page cache (or on the device with
 * O_DIRECT) when it completes, and bdrv_co_flush_to_disk makes it stable
 * with fdatasync. There is no metadata, so there is no ordering to keep.
 *
 * Capability bits (has_zero_range, has_punch_hole, has_seek_data) start
 * true and are cleared the first time the kernel says "not supported",
 * so fallbacks are found once per node.
 *
 * Locking: image locking (QEMU's byte-range OFD locks) is not implemented.
 * locking=auto and locking=off both mean "take no locks", which also
 * means we never conflict with a QEMU process that has the image open;
 * locking=on is rejected as not supported.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/raw-aio.h"
#include "qapi/error.h"
#include "qemu/qdict.h"
#include "trace.h"

#include <sys/ioctl.h>
#include <linux/falloc.h>
#include <linux/fs.h>

typedef struct BDRVRawState {
    int fd;
    bool is_blockdev;       /* S_ISBLK/S_ISCHR: fixed size, no fallocate grow */
    bool direct;            /* opened with O_DIRECT */
    bool no_flush;          /* cache.no-flush=on: flush is a no-op */
    bool discard_unmap;     /* discard=unmap: punch holes on discard */
    int aio_flags;          /* QEMU_AIO_THREADS when the pool is forced */
    /*
     * With aio left at its default on a buffered (non-O_DIRECT) file,
     * transfers of at least RAW_POOL_MIN_BYTES go to the thread pool: a
     * buffered transfer is a kernel memory copy, which io_uring performs
     * inline on the submitting (main loop) thread, so large copies would
     * use one core; the pool spreads them over all cores. Small transfers
     * stay on io_uring, whose inline completion is the lower latency.
     * O_DIRECT files and aio=io_uring use io_uring for everything.
     */
    bool pool_for_large;
    bool has_zero_range;
    bool has_punch_hole;
    bool has_seek_data;
    uint32_t req_align;     /* request alignment (1 without O_DIRECT) */
    uint32_t buf_align;     /* buffer alignment (1 without O_DIRECT) */
    char *path;             /* the file opened, for reopen */
    int reopen_fd;          /* descriptor staged by reopen prepare, or -1 */
} BDRVRawState;

/* Chunk used for writing explicit zeroes (preallocation=full). */
#define RAW_ZERO_CHUNK (1 * MiB)

/* ------------------------------------------------------------------ */
/* Open and close                                                       */

/* Parse the aio= option into a back-end kind; false with errp set. */
static bool raw_parse_aio(const char *str, IOBackendKind *kind, Error **errp)
{
    if (!str || !strcmp(str, "native")) {
        /* QEMU's native (linux-aio) maps onto our preferred back end */
        *kind = IO_BACKEND_AUTO;
    } else if (!strcmp(str, "threads")) {
        *kind = IO_BACKEND_THREADS;
    } else if (!strcmp(str, "io_uring")) {
        *kind = IO_BACKEND_IO_URING;
    } else {
        error_setg(errp, "invalid parameter value: %s", str);
        return false;
    }
    return true;
}

/* Parse discard=ignore|off|unmap|on into *unmap; false with errp set. */
static bool raw_parse_discard(const char *str, bool *unmap, Error **errp)
{
    if (!str) {
        return true;
    }
    if (!strcmp(str, "ignore") || !strcmp(str, "off")) {
        *unmap = false;
    } else if (!strcmp(str, "unmap") || !strcmp(str, "on")) {
        *unmap = true;
    } else {
        error_setg(errp, "Invalid discard option");
        return false;
    }
    return true;
}

/* Check locking=; only the lock-free behaviour exists (see top). */
static bool raw_check_locking(const char *str, Error **errp)
{
    if (!str || !strcmp(str, "auto") || !strcmp(str, "off")) {
        return true;
    }
    if (!strcmp(str, "on")) {
        error_setg(errp, "locking=on is not supported yet");
    } else {
        error_setg(errp, "invalid parameter value: %s", str);
    }
    return false;
}

/*
 * Take this driver's options out of options (so the core does not report
 * them as unknown) into s; *kind gets the wanted I/O back end.
 */
static bool raw_take_options(BDRVRawState *s, QDict *options, int flags,
                             IOBackendKind *kind, Error **errp)
{
    bool ok;

    ok = raw_parse_aio(qdict_get_try_str(options, "aio"), kind, errp) &&
         qdict_get_bool(options, "cache.direct", flags & BDRV_O_NOCACHE,
                        &s->direct, errp) &&
         qdict_get_bool(options, "cache.no-flush", flags & BDRV_O_NO_FLUSH,
                        &s->no_flush, errp) &&
         raw_parse_discard(qdict_get_try_str(options, "discard"),
                           &s->discard_unmap, errp) &&
         raw_check_locking(qdict_get_try_str(options, "locking"), errp);
    qdict_del(options, "aio");
    qdict_del(options, "aio-max-batch");
    qdict_del(options, "cache.direct");
    qdict_del(options, "cache.no-flush");
    qdict_del(options, "discard");
    qdict_del(options, "locking");
    return ok;
}

/*
 * Find the request and buffer alignment O_DIRECT needs by trying reads
 * at offset 0: the smallest length that works, then the smallest buffer
 * misalignment that works. Blocking; only called at open.
 */
static bool raw_probe_alignment(BlockDriverState *bs, BDRVRawState *s,
                                Error **errp)
{
    size_t max_align = MAX(4096, (size_t)getpagesize());
    uint8_t *buf = qemu_memalign(max_align, 2 * max_align);
    size_t align;

    s->req_align = 0;
    s->buf_align = 0;
    for (align = 512; align <= max_align && !s->req_align; align <<= 1) {
        if (pread(s->fd, buf, align, 0) >= 0) {
            s->req_align = align;
        }
    }
    for (align = 512; align <= max_align && !s->buf_align; align <<= 1) {
        if (pread(s->fd, buf + align, max_align, 0) >= 0) {
            s->buf_align = align;
        }
    }
    qemu_vfree(buf);
    trace_file_probe_alignment(bs, s->req_align, s->buf_align);
    if (!s->req_align || !s->buf_align) {
        error_setg(errp, "Could not find working O_DIRECT alignment");
        error_append_hint(errp, "Try cache.direct=off\n");
        return false;
    }
    return true;
}

/* Check that the opened fd is the kind of file drv serves. */
static bool raw_check_file_type(BlockDriverState *bs, const char *filename,
                                bool want_dev, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    struct stat st;

    if (fstat(s->fd, &st) < 0) {
        error_setg_errno(errp, errno, "Could not stat '%s'", filename);
        return false;
    }
    s->is_blockdev = S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode);
    if (want_dev && !s->is_blockdev) {
        error_setg(errp, "'host_device' driver requires '%s' to be either "
                   "a character or block device", filename);
        return false;
    }
    if (!want_dev && !S_ISREG(st.st_mode)) {
        error_setg(errp, "'file' driver requires '%s' to be a regular file",
                   filename);
        return false;
    }
    return true;
}

/* Common open for both drivers; prefix is "file:" or "host_device:". */
static int raw_open_common(BlockDriverState *bs, QDict *options, int flags,
                           bool want_dev, const char *prefix, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    IOBackendKind kind = IO_BACKEND_AUTO;
    g_autofree char *filename = NULL;
    const char *name = qdict_get_try_str(options, "filename");
    int oflags, got;

    if (!name) {
        error_setg(errp, "The '%s' block driver requires a file name",
                   bs->drv->format_name);
        return -EINVAL;
    }
    if (g_str_has_prefix(name, prefix)) {
        name += strlen(prefix);
    }
    filename = g_strdup(name);
    qdict_del(options, "filename");
    s->fd = s->reopen_fd = -1;
    s->has_zero_range = s->has_punch_hole = s->has_seek_data = true;
    s->discard_unmap = flags & BDRV_O_UNMAP;
    if (!raw_take_options(s, options, flags, &kind, errp)) {
        return -EINVAL;
    }
    got = io_backend_select(kind, errp);
    if (got < 0) {
        return -EINVAL;
    }
    s->aio_flags = got == IO_BACKEND_THREADS ? QEMU_AIO_THREADS : 0;
    s->pool_for_large = kind == IO_BACKEND_AUTO && !s->direct;

    /* Read-only unless asked: a read-only user can never corrupt it */
    oflags = O_CLOEXEC | ((flags & BDRV_O_RDWR) ? O_RDWR : O_RDONLY);
    if (s->direct) {
        oflags |= O_DIRECT;
    }
    trace_file_open(bs, filename, flags, io_backend_kind_str(got), s->direct);
    s->fd = open(filename, oflags);
    if (s->fd < 0) {
        int err = errno;

        trace_file_open_failed(filename, -err);
        error_setg_errno(errp, err, "Could not open '%s'", filename);
        return -err;
    }
    if (!raw_check_file_type(bs, filename, want_dev, errp) ||
        (s->direct && !raw_probe_alignment(bs, s, errp))) {
        close(s->fd);
        s->fd = -1;
        return -EINVAL;
    }
    if (!s->direct) {
        s->req_align = s->buf_align = 1;
    }
    s->path = g_strdup(filename);
    if (!bs->filename[0]) {
        g_strlcpy(bs->filename, filename, sizeof(bs->filename));
    }
    bs->total_bytes = bs->drv->bdrv_getlength(bs);
    return 0;
}

/* Open a regular file ("file" driver). */
static int raw_open(BlockDriverState *bs, QDict *options, int flags,
                    Error **errp)
{
    return raw_open_common(bs, options, flags, false, "file:", errp);
}

/* Open a block or character device ("host_device" driver). */
static int hdev_open(BlockDriverState *bs, QDict *options, int flags,
                     Error **errp)
{
    return raw_open_common(bs, options, flags, true, "host_device:", errp);
}

/* Close the descriptor; in-flight requests were drained by the core. */
static void raw_close(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;

    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    g_free(s->path);
    s->path = NULL;
}

/*
 * .bdrv_reopen_prepare: open a second descriptor of the same file with
 * the new access mode (and the same O_DIRECT choice). A writable
 * descriptor of a file without write permission fails here, before
 * anything changed. The new descriptor must be the same file: a file
 * renamed over ours since open is refused.
 */
static int raw_reopen_prepare(BlockDriverState *bs, bool read_only,
                              Error **errp)
{
    BDRVRawState *s = bs->opaque;
    int oflags = O_CLOEXEC | (read_only ? O_RDONLY : O_RDWR) |
                 (s->direct ? O_DIRECT : 0);
    struct stat old_st, new_st;
    int fd, err = 0;

    g_assert(s->reopen_fd < 0);
    fd = open(s->path, oflags);
    if (fd < 0) {
        err = errno;
    } else if (fstat(fd, &new_st) < 0 || fstat(s->fd, &old_st) < 0) {
        err = errno;
    } else if (new_st.st_dev != old_st.st_dev ||
               new_st.st_ino != old_st.st_ino) {
        err = ESTALE;
    }
    trace_file_reopen_prepare(bs, s->path, read_only, fd, -err);
    if (err) {
        if (fd >= 0) {
            close(fd);
        }
        error_setg_errno(errp, err, "Could not reopen '%s'", s->path);
        return -err;
    }
    s->reopen_fd = fd;
    return 0;
}

/* .bdrv_reopen_commit: the staged descriptor replaces the old one. */
static void raw_reopen_commit(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;

    trace_file_reopen_commit(bs, s->fd, s->reopen_fd);
    close(s->fd);
    s->fd = s->reopen_fd;
    s->reopen_fd = -1;
}

/* .bdrv_reopen_abort: drop the staged descriptor. */
static void raw_reopen_abort(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;

    if (s->reopen_fd >= 0) {
        close(s->reopen_fd);
        s->reopen_fd = -1;
    }
}

/* Advertise the O_DIRECT alignment (1 when buffered) to the core. */
static void raw_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVRawState *s = bs->opaque;

    bs->bl.request_alignment = s->req_align;
    bs->bl.min_mem_alignment = s->buf_align;
    bs->bl.opt_mem_alignment = MAX(s->buf_align, (uint32_t)getpagesize());
}

/* ------------------------------------------------------------------ */
/* Size queries                                                         */

/* Current length of the file or device in bytes, or -errno. */
static int64_t raw_getlength(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    struct stat st;
    uint64_t size;
    off_t end;

    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    if (S_ISREG(st.st_mode)) {
        return st.st_size;
    }
    if (S_ISBLK(st.st_mode) && ioctl(s->fd, BLKGETSIZE64, &size) == 0) {
        return size;
    }
    end = lseek(s->fd, 0, SEEK_END);
    return end < 0 ? -errno : end;
}

/* Host bytes allocated to the file (st_blocks), or -errno. */
static int64_t raw_get_allocated_file_size(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    struct stat st;

    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

/* Remember that the file now reaches at least end (writes past EOF). */
static void raw_note_end(BlockDriverState *bs, int64_t end)
{
    if (end > bs->total_bytes) {
        bs->total_bytes = end;
    }
}

/* ------------------------------------------------------------------ */
/* Data path                                                            */

/*
 * Buffered transfers this large use the thread pool (see pool_for_large).
 * Bulk copies (qblk-img convert's 2 MiB chunks) gain from copying on all
 * cores; NBD-sized requests (256 KiB .. 1 MiB, copy-on-read bounce
 * buffers) do not: there the client process needs the other core, and
 * the pool's thread hand-offs and the workers' contention on the inode
 * lock of a file being written cost more than the inline copy (measured:
 * a copy-on-read pass over NBD needs a third less CPU on io_uring).
 */
#define RAW_POOL_MIN_BYTES (2 * MiB)

/* Read or write exactly bytes of qiov at offset; see raw-aio.h. */
static int64_t coroutine_fn raw_co_rw(BlockDriverState *bs, int type,
                                      int64_t offset, int64_t bytes,
                                      QEMUIOVector *qiov)
{
    BDRVRawState *s = bs->opaque;
    int flags = s->aio_flags;
    QEMUIOVector slice;
    int64_t ret;

    if (s->pool_for_large && bytes >= RAW_POOL_MIN_BYTES) {
        flags |= QEMU_AIO_THREADS;
    }
    if (qiov->size == (size_t)bytes) {
        return io_backend_co_rw(s->fd, type | flags, offset, qiov);
    }
    qemu_iovec_init_slice(&slice, qiov, 0, bytes);
    ret = io_backend_co_rw(s->fd, type | flags, offset, &slice);
    qemu_iovec_destroy(&slice);
    return ret;
}

/* Read; bytes past the end of the file read as zeroes. */
static int coroutine_fn raw_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, QEMUIOVector *qiov,
                                      BdrvRequestFlags flags)
{
    int64_t ret;

    trace_file_co_preadv(bs, offset, bytes);
    ret = raw_co_rw(bs, QEMU_AIO_READ, offset, bytes, qiov);
    if (ret < 0) {
        trace_file_co_io_error(bs, QEMU_AIO_READ, offset, bytes, ret);
        return ret;
    }
    if (ret < bytes) {
        /* The file ends inside the request: the rest reads as zeroes */
        trace_file_co_read_eof(bs, offset, ret, bytes);
        qemu_iovec_memset(qiov, ret, 0, bytes - ret);
    }
    return 0;
}

/* Write; may extend the file (formats grow their file this way). */
static int coroutine_fn raw_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    int64_t ret;

    trace_file_co_pwritev(bs, offset, bytes);
    ret = raw_co_rw(bs, QEMU_AIO_WRITE, offset, bytes, qiov);
    if (ret < 0) {
        trace_file_co_io_error(bs, QEMU_AIO_WRITE, offset, bytes, ret);
        return ret;
    }
    raw_note_end(bs, offset + bytes);
    return 0;
}

/* fdatasync through the back end, unless cache.no-flush=on. */
static int coroutine_fn raw_co_flush_to_disk(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    if (s->no_flush) {
        return 0;
    }
    ret = io_backend_co_rw(s->fd, QEMU_AIO_FLUSH | s->aio_flags, 0, NULL);
    trace_file_co_flush(bs, ret);
    return ret;
}

/*
 * fallocate through the pool; clears the capability bit *cap when the
 * file system does not support mode (then returns -ENOTSUP).
 */
static int coroutine_fn raw_co_fallocate(BDRVRawState *s, bool *cap,
                                         int mode, int64_t offset,
                                         int64_t len)
{
    int ret;

    if (cap && !*cap) {
        return -ENOTSUP;
    }
    ret = io_backend_co_fallocate(s->fd, mode, offset, len);
    if (ret == -EOPNOTSUPP || ret == -ENOSYS || ret == -ENODEV ||
        ret == -ESPIPE) {
        if (cap) {
            *cap = false;
        }
        ret = -ENOTSUP;
    }
    return ret;
}

/* Zero [offset, offset + len) that lies inside the file or device. */
static int coroutine_fn raw_co_zero_inside(BDRVRawState *s, int64_t offset,
                                           int64_t len, bool may_unmap)
{
    const int keep = FALLOC_FL_KEEP_SIZE;
    int ret = -ENOTSUP;

    /* Preferred: a hole when unmapping is allowed, else unwritten extents */
    if (may_unmap) {
        ret = raw_co_fallocate(s, &s->has_punch_hole,
                               FALLOC_FL_PUNCH_HOLE | keep, offset, len);
    }
    if (ret == -ENOTSUP) {
        ret = raw_co_fallocate(s, &s->has_zero_range,
                               FALLOC_FL_ZERO_RANGE | keep, offset, len);
    }
    if (ret == -ENOTSUP && !s->is_blockdev) {
        /* Punch, then allocate again unless unmapping is fine */
        ret = raw_co_fallocate(s, &s->has_punch_hole,
                               FALLOC_FL_PUNCH_HOLE | keep, offset, len);
        if (ret == 0 && !may_unmap) {
            ret = raw_co_fallocate(s, NULL, keep, offset, len);
            ret = ret == -ENOTSUP ? 0 : ret;
        }
    }
    /* Devices without fallocate support: let the kernel write zeroes */
    if (ret == -ENOTSUP && s->is_blockdev) {
        ret = io_backend_co_blk_range_ioctl(s->fd, BLKZEROOUT, offset, len);
        ret = (ret == -EINVAL || ret == -ENOTTY) ? -ENOTSUP : ret;
    }
    return ret;
}

/*
 * Grow the file with zeroes to cover [offset, offset + len), which lies
 * beyond the current end. fallocate(ZERO_RANGE) never shrinks, so it is
 * safe against concurrent extending writes; ftruncate is the fallback
 * and re-checks the size right before it.
 */
static int coroutine_fn raw_co_zero_beyond(BlockDriverState *bs,
                                           int64_t offset, int64_t len)
{
    BDRVRawState *s = bs->opaque;
    int64_t size;
    int ret;

    ret = raw_co_fallocate(s, &s->has_zero_range, FALLOC_FL_ZERO_RANGE,
                           offset, len);
    if (ret != -ENOTSUP) {
        return ret;
    }
    size = raw_getlength(bs);
    if (size < 0) {
        return size;
    }
    if (size >= offset + len) {
        return 0;   /* someone else extended it meanwhile: already zero */
    }
    return io_backend_co_ftruncate(s->fd, offset + len);
}

/*
 * Zero a range without writing buffers (never a data fallback: -ENOTSUP
 * when the file system offers nothing), growing the file when needed.
 */
static int coroutine_fn raw_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    BDRVRawState *s = bs->opaque;
    bool may_unmap = flags & BDRV_REQ_MAY_UNMAP;
    int64_t size = s->is_blockdev ? INT64_MAX : raw_getlength(bs);
    int64_t inside;
    int ret = 0;

    if (size < 0) {
        return size;
    }
    /* Split at EOF: inside needs zeroing, beyond only needs the size */
    inside = MAX(0, MIN(bytes, size - offset));
    if (inside > 0) {
        ret = raw_co_zero_inside(s, offset, inside, may_unmap);
    }
    if (ret == 0 && inside < bytes) {
        ret = raw_co_zero_beyond(bs, offset + inside, bytes - inside);
    }
    if (ret == 0) {
        raw_note_end(bs, offset + bytes);
    }
    trace_file_co_pwrite_zeroes(bs, offset, bytes, flags, ret);
    return ret;
}

/* Punch a hole when discards are enabled (discard=unmap); else a no-op. */
static int coroutine_fn raw_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    if (!s->discard_unmap) {
        return 0;
    }
    ret = raw_co_fallocate(s, &s->has_punch_hole,
                           FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           offset, bytes);
    if (ret == -ENOTSUP && s->is_blockdev) {
        ret = io_backend_co_blk_range_ioctl(s->fd, BLKDISCARD, offset, bytes);
    }
    trace_file_co_pdiscard(bs, offset, bytes, ret);
    /* Discard is advisory: not being able to unmap is not an error */
    if (ret == -ENOTSUP || ret == -EINVAL || ret == -ENOTTY) {
        ret = 0;
    }
    return ret;
}

/* ------------------------------------------------------------------ */
/* Allocation status                                                    */

/*
 * Classify the extent at offset with SEEK_DATA/SEEK_HOLE: returns
 * BDRV_BLOCK_DATA or BDRV_BLOCK_ZERO and sets *pnum (unaligned), or
 * -ENOTSUP when the file system cannot tell.
 */
static int raw_seek_extent(BDRVRawState *s, int64_t offset, int64_t bytes,
                           int64_t *pnum)
{
    off_t data, hole;

    if (!s->has_seek_data) {
        return -ENOTSUP;
    }
    data = lseek(s->fd, offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) {
            *pnum = bytes;  /* a hole runs to the end of the file */
            return BDRV_BLOCK_ZERO;
        }
        s->has_seek_data = false;
        return -ENOTSUP;
    }
    if (data > offset) {
        *pnum = MIN(bytes, data - offset);
        return BDRV_BLOCK_ZERO;
    }
    hole = lseek(s->fd, offset, SEEK_HOLE);
    if (hole < 0 || hole <= offset) {
        *pnum = bytes;  /* file shrank under us or odd fs: say data */
        return BDRV_BLOCK_DATA;
    }
    *pnum = MIN(bytes, hole - offset);
    return BDRV_BLOCK_DATA;
}

/*
 * Data/hole map from SEEK_DATA/SEEK_HOLE, always OFFSET_VALID with *map =
 * offset in this same node. Without want_zero: one DATA extent.
 */
static int coroutine_fn raw_co_block_status(BlockDriverState *bs,
                                            bool want_zero, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            int64_t *map,
                                            BlockDriverState **file)
{
    BDRVRawState *s = bs->opaque;
    int64_t align = MAX(1, s->req_align);
    int ret = -ENOTSUP;

    /* Devices have no holes we could see; callers not asking get DATA */
    *pnum = bytes;
    if (want_zero && !s->is_blockdev) {
        ret = raw_seek_extent(s, offset, bytes, pnum);
    }
    if (ret < 0) {
        *pnum = bytes;
        ret = BDRV_BLOCK_DATA;
    } else if (*pnum < bytes && !QEMU_IS_ALIGNED(*pnum, align)) {
        /* Keep extents aligned: a partly-data block counts as data */
        if (ret == BDRV_BLOCK_DATA) {
            *pnum = MIN(bytes, QEMU_ALIGN_UP(*pnum, align));
        } else if (*pnum >= align) {
            *pnum = QEMU_ALIGN_DOWN(*pnum, align);
        } else {
            *pnum = align;
            ret = BDRV_BLOCK_DATA;
        }
    }
    *map = offset;
    *file = bs;
    trace_file_co_block_status(bs, offset, bytes, *pnum, ret);
    return ret | BDRV_BLOCK_OFFSET_VALID;
}

/* ------------------------------------------------------------------ */
/* Resizing and creation                                                */

/* Write zeroes into [start, end) with explicit buffers (prealloc=full). */
static int coroutine_fn raw_co_write_zero_bufs(int fd, int aio_flags,
                                               size_t align,
                                               int64_t start, int64_t end)
{
    void *buf = qemu_memalign(MAX(align, 4096), RAW_ZERO_CHUNK);
    QEMUIOVector qiov;
    int64_t ret = 0;

    memset(buf, 0, RAW_ZERO_CHUNK);
    while (start < end && ret >= 0) {
        /* O_DIRECT: whole blocks; the caller truncates the excess */
        int64_t n = QEMU_ALIGN_UP(MIN(end - start, RAW_ZERO_CHUNK), align);

        qemu_iovec_init_buf(&qiov, buf, n);
        ret = io_backend_co_rw(fd, QEMU_AIO_WRITE | aio_flags, start, &qiov);
        start += n;
    }
    qemu_vfree(buf);
    return ret < 0 ? ret : 0;
}

/*
 * Make the file [cur, offset) -> offset bytes long using prealloc for the
 * new part (cur < offset), or shrink it (prealloc must be off). Works in
 * and outside coroutine context (create is synchronous).
 */
static int coroutine_fn raw_co_resize(int fd, int aio_flags, size_t align,
                                      int64_t cur, int64_t offset,
                                      PreallocMode prealloc, Error **errp)
{
    int ret;

    if (prealloc != PREALLOC_MODE_OFF && offset < cur) {
        error_setg(errp, "Preallocation can only be used for growing images");
        return -ENOTSUP;
    }
    switch (prealloc) {
    case PREALLOC_MODE_OFF:
        ret = io_backend_co_ftruncate(fd, offset);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not resize file");
        }
        return ret;
    case PREALLOC_MODE_FALLOC:
        if (offset == cur) {
            return 0;
        }
        ret = io_backend_co_fallocate(fd, 0, cur, offset - cur);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not preallocate new data");
        }
        return ret;
    case PREALLOC_MODE_FULL:
        if (!QEMU_IS_ALIGNED(cur, align)) {
            error_setg(errp, "preallocation=full with cache.direct=on from "
                       "an unaligned size is not supported");
            return -ENOTSUP;
        }
        ret = raw_co_write_zero_bufs(fd, aio_flags, align, cur, offset);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not write zeros for "
                             "preallocation");
            return ret;
        }
        /* O_DIRECT may have written whole blocks past the new end */
        ret = io_backend_co_ftruncate(fd, offset);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not resize file");
        }
        return ret;
    default:
        error_setg(errp, "Unsupported preallocation mode: %s",
                   prealloc_mode_str(prealloc));
        return -ENOTSUP;
    }
}

/* Resize a file (devices: only check that the size fits). */
static int coroutine_fn raw_co_truncate(BlockDriverState *bs, int64_t offset,
                                        bool exact, PreallocMode prealloc,
                                        BdrvRequestFlags flags, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    int64_t cur = raw_getlength(bs);
    int ret;

    if (cur < 0) {
        error_setg_errno(errp, -cur, "Could not get the size of '%s'",
                         bs->filename);
        return cur;
    }
    /* A device's size is fixed: only accept sizes that already fit */
    if (s->is_blockdev) {
        if (offset > cur) {
            error_setg(errp, "Cannot grow device files");
            return -EINVAL;
        }
        if (exact && offset != cur) {
            error_setg(errp, "Cannot resize device files");
            return -ENOTSUP;
        }
        return 0;
    }
    ret = raw_co_resize(s->fd, s->aio_flags, MAX(s->req_align, s->buf_align),
                        cur, offset, prealloc, errp);
    if (ret == 0) {
        bs->total_bytes = offset;
    }
    trace_file_co_truncate(bs, offset, prealloc, ret);
    return ret;
}

/* Set the no-copy-on-write attribute (btrfs); failures are ignored. */
static void raw_set_nocow(int fd)
{
    int attr;

    if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
        attr |= FS_NOCOW_FL;
        (void)ioctl(fd, FS_IOC_SETFLAGS, &attr);
    }
}

/* Parse the creation options of the file driver; false with errp set. */
static bool raw_create_take_opts(QDict *opts, uint64_t *size,
                                 PreallocMode *prealloc, bool *nocow,
                                 Error **errp)
{
    const char *p = qdict_get_try_str(opts, "preallocation");

    if (!qdict_get_size(opts, "size", 0, size, errp) ||
        !qdict_get_bool(opts, "nocow", false, nocow, errp)) {
        return false;
    }
    if (*size > INT64_MAX) {
        error_setg(errp, "Image size must be less than 8 EiB!");
        return false;
    }
    *prealloc = PREALLOC_MODE_OFF;
    if (p && prealloc_mode_parse(p, prealloc) < 0) {
        error_setg(errp, "invalid parameter value: %s", p);
        return false;
    }
    if (*prealloc == PREALLOC_MODE_METADATA) {
        error_setg(errp, "Unsupported preallocation mode: %s", p);
        return false;
    }
    qdict_del(opts, "size");
    qdict_del(opts, "preallocation");
    qdict_del(opts, "nocow");
    return true;
}

/* Create (or truncate) a regular file of the given size. Synchronous. */
static int raw_create(const char *filename, QDict *opts, Error **errp)
{
    PreallocMode prealloc;
    uint64_t size;
    bool nocow;
    int fd, ret;

    if (!raw_create_take_opts(opts, &size, &prealloc, &nocow, errp)) {
        return -EINVAL;
    }
    if (g_str_has_prefix(filename, "file:")) {
        filename += strlen("file:");
    }
    trace_file_create(filename, size, prealloc);
    /* As QEMU: an existing file is truncated, not refused */
    fd = open(filename, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not create '%s'", filename);
        return ret;
    }
    if (nocow) {
        raw_set_nocow(fd);
    }
    /* Not in a coroutine: the back-end helpers run inline here */
    ret = raw_co_resize(fd, QEMU_AIO_THREADS, 1, 0, size, prealloc, errp);
    if (close(fd) < 0 && ret == 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not close the new file");
    }
    return ret;
}

static const char *const raw_create_opts[] = {
    "size", "preallocation", "nocow", NULL
};

/*
 * The callbacks file and host_device share: all but open and create
 * (a device is opened differently and never created).
 */
#define RAW_POSIX_DRIVER_COMMON                                         \
    .instance_size = sizeof(BDRVRawState),                              \
    .protocol = true,                                                   \
    .bdrv_close = raw_close,                                            \
    .bdrv_reopen_prepare = raw_reopen_prepare,                          \
    .bdrv_reopen_commit = raw_reopen_commit,                            \
    .bdrv_reopen_abort = raw_reopen_abort,                              \
    .bdrv_refresh_limits = raw_refresh_limits,                          \
    .bdrv_co_preadv = raw_co_preadv,                                    \
    .bdrv_co_pwritev = raw_co_pwritev,                                  \
    .bdrv_co_pwrite_zeroes = raw_co_pwrite_zeroes,                      \
    .bdrv_co_pdiscard = raw_co_pdiscard,                                \
    .bdrv_co_flush_to_disk = raw_co_flush_to_disk,                      \
    .bdrv_co_block_status = raw_co_block_status,                        \
    .bdrv_co_truncate = raw_co_truncate,                                \
    .bdrv_getlength = raw_getlength,                                    \
    .bdrv_get_allocated_file_size = raw_get_allocated_file_size,        \
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK

/* Regular files (and anything else not a block or character device). */
const BlockDriver bdrv_file = {
    .format_name = "file",
    RAW_POSIX_DRIVER_COMMON,
    .bdrv_open = raw_open,
    .bdrv_create = raw_create,
    .create_opts = raw_create_opts,
};

/* Block and character devices: fixed size, no create. */
const BlockDriver bdrv_host_device = {
    .format_name = "host_device",
    RAW_POSIX_DRIVER_COMMON,
    .bdrv_open = hdev_open,
};

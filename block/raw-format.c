/*
 * Format driver "raw": the image is the bytes of its file child, or a
 * window [offset, offset + size) of them (options "offset" and "size",
 * as in QEMU).
 *
 * State: only the window (BDRVRawFormatState). There is no metadata, so
 * every request is forwarded to bs->file with the window offset added
 * and crash safety is exactly that of the file below; flushing is left
 * to the core, which flushes the file child after us.
 *
 * A raw image whose format was probed (bs->probed) refuses writes to
 * block 0 that would make it probe as another format next time, as
 * QEMU does; the warning about it is printed by the core at open.
 *
 * Without "size" the window reaches the end of the file, so the image
 * follows the file when it grows (e.g. another writer extended it).
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qapi/error.h"
#include "qemu/qdict.h"
#include "trace.h"

typedef struct BDRVRawFormatState {
    uint64_t offset;        /* start of the window in the file */
    uint64_t size;          /* window length when has_size */
    bool has_size;
} BDRVRawFormatState;

/* Bytes of block 0 checked before writing to a probed raw image. */
#define RAW_PROBE_BYTES 512

/* Anything can be a raw image: the lowest possible nonzero score. */
static int raw_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return 1;
}

/* Read the "offset"/"size" options into s and check them against len. */
static bool raw_take_window(BDRVRawFormatState *s, QDict *options,
                            int64_t len, Error **errp)
{
    s->has_size = qdict_haskey(options, "size");
    if (!qdict_get_size(options, "offset", 0, &s->offset, errp) ||
        !qdict_get_size(options, "size", 0, &s->size, errp)) {
        return false;
    }
    qdict_del(options, "offset");
    qdict_del(options, "size");
    if (s->has_size && !QEMU_IS_ALIGNED(s->size, BDRV_SECTOR_SIZE)) {
        error_setg(errp, "Specified size is not multiple of %llu",
                   BDRV_SECTOR_SIZE);
        return false;
    }
    if (s->offset > (uint64_t)len) {
        error_setg(errp, "Offset (%" PRIu64 ") cannot be greater than size "
                   "of the containing file (%" PRId64 ")", s->offset, len);
        return false;
    }
    if (s->has_size && s->offset + s->size > (uint64_t)len) {
        error_setg(errp, "The sum of offset (%" PRIu64 ") and size (%" PRIu64
                   ") has to be smaller or equal to the  actual size of the "
                   "containing file (%" PRId64 ")", s->offset, s->size, len);
        return false;
    }
    return true;
}

/* The window size, or what the file holds past the window start. */
static int64_t raw_getlength(BlockDriverState *bs)
{
    BDRVRawFormatState *s = bs->opaque;
    int64_t len;

    if (s->has_size) {
        return s->size;
    }
    len = bdrv_getlength(bs->file->bs);
    if (len < 0) {
        return len;
    }
    return MAX(0, len - (int64_t)s->offset);
}

/* Open the file child and set up the window. */
static int raw_open(BlockDriverState *bs, QDict *options, int flags,
                    Error **errp)
{
    BDRVRawFormatState *s = bs->opaque;
    int64_t len;

    bs->file = bdrv_open_child(NULL, options, "file", bs, BDRV_CHILD_FILE,
                               false, errp);
    if (!bs->file) {
        return -EINVAL;
    }
    len = bdrv_getlength(bs->file->bs);
    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get the size of '%s'",
                         bs->file->bs->filename);
        return len;
    }
    if (!raw_take_window(s, options, len, errp)) {
        return -EINVAL;
    }
    if (s->offset && !QEMU_IS_ALIGNED(s->offset,
                                      bs->file->bs->bl.request_alignment)) {
        error_setg(errp, "offset %" PRIu64 " is not a multiple of the "
                   "request alignment %u of '%s'", s->offset,
                   bs->file->bs->bl.request_alignment, bs->file->bs->filename);
        return -EINVAL;
    }
    bs->total_bytes = raw_getlength(bs);
    trace_raw_open(bs, s->offset, s->size, s->has_size);
    return 0;
}

/* Pass-through read, shifted by the window offset. */
static int coroutine_fn raw_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, QEMUIOVector *qiov,
                                      BdrvRequestFlags flags)
{
    BDRVRawFormatState *s = bs->opaque;

    trace_raw_co_preadv(bs, offset, bytes);
    return bdrv_co_preadv(bs->file, offset + s->offset, bytes, qiov, flags);
}

/* Probe state for raw_write_changes_format(). */
typedef struct RawProbeCtx {
    const uint8_t *buf;
    bool other_format;
} RawProbeCtx;

/* bdrv_iterate_format() callback: does another format claim ctx->buf? */
static void raw_probe_one(void *opaque, const char *name)
{
    RawProbeCtx *ctx = opaque;
    const BlockDriver *drv = bdrv_find_format(name);

    if (drv && drv != &bdrv_raw && drv->bdrv_probe &&
        drv->bdrv_probe(ctx->buf, RAW_PROBE_BYTES, NULL) > 1) {
        ctx->other_format = true;
    }
}

/*
 * True if writing qiov's first RAW_PROBE_BYTES at offset 0 would make
 * the image probe as another format (e.g. a guest writing a qcow2
 * header that would make the next open use the file as qcow2).
 */
static bool raw_write_changes_format(QEMUIOVector *qiov)
{
    uint8_t buf[RAW_PROBE_BYTES];
    RawProbeCtx ctx = { .buf = buf };

    qemu_iovec_to_buf(qiov, 0, buf, sizeof(buf));
    bdrv_iterate_format(raw_probe_one, &ctx);
    return ctx.other_format;
}

static int coroutine_fn raw_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    BDRVRawFormatState *s = bs->opaque;

    trace_raw_co_pwritev(bs, offset, bytes);
    /* refresh_limits made probed images 512-aligned: block 0 is whole */
    if (bs->probed && offset == 0 && raw_write_changes_format(qiov)) {
        trace_raw_co_pwritev_refused(bs);
        return -EPERM;
    }
    return bdrv_co_pwritev(bs->file, offset + s->offset, bytes, qiov, flags);
}

/*
 * A probed image gets 512-byte requests so that a write of block 0 is
 * always seen whole by the format check in raw_co_pwritev.
 */
static void raw_refresh_limits(BlockDriverState *bs, Error **errp)
{
    if (bs->probed) {
        bs->bl.request_alignment = MAX(bs->bl.request_alignment,
                                       RAW_PROBE_BYTES);
    }
}

/* Pass-through zero write; the core emulates flags the file lacks. */
static int coroutine_fn raw_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    BDRVRawFormatState *s = bs->opaque;

    return bdrv_co_pwrite_zeroes(bs->file, offset + s->offset, bytes, flags);
}

/* Pass-through discard. */
static int coroutine_fn raw_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    BDRVRawFormatState *s = bs->opaque;

    return bdrv_co_pdiscard(bs->file, offset + s->offset, bytes);
}

/* Delegate to the file: the core then asks it about the same range. */
static int coroutine_fn raw_co_block_status(BlockDriverState *bs,
                                            bool want_zero, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            int64_t *map,
                                            BlockDriverState **file)
{
    BDRVRawFormatState *s = bs->opaque;

    *pnum = bytes;
    *map = offset + s->offset;
    *file = bs->file->bs;
    return BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
}

/* Resize the file so that the window (without "size") gets offset bytes. */
static int coroutine_fn raw_co_truncate(BlockDriverState *bs, int64_t offset,
                                        bool exact, PreallocMode prealloc,
                                        BdrvRequestFlags flags, Error **errp)
{
    BDRVRawFormatState *s = bs->opaque;
    int ret;

    if (s->has_size) {
        error_setg(errp, "Cannot resize fixed-size raw disks");
        return -ENOTSUP;
    }
    if (offset < 0 || offset > INT64_MAX - (int64_t)s->offset) {
        error_setg(errp, "Invalid new size %" PRId64, offset);
        return -EINVAL;
    }
    ret = bdrv_co_truncate(bs->file, offset + s->offset, exact, prealloc,
                           flags, errp);
    if (ret == 0) {
        bs->total_bytes = offset;
    }
    trace_raw_co_truncate(bs, offset, ret);
    return ret;
}

/* Raw has no clusters or VM state: all fields zero. */
static int raw_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    memset(bdi, 0, sizeof(*bdi));
    return 0;
}

/* The file protocol creates the file; raw has nothing to add. */
static int raw_create(const char *filename, QDict *opts, Error **errp)
{
    trace_raw_create(filename);
    return bdrv_create_file(filename, opts, errp);
}

static const char *const raw_create_opts[] = {
    "size", "preallocation", "nocow", NULL
};

const BlockDriver bdrv_raw = {
    .format_name = "raw",
    .instance_size = sizeof(BDRVRawFormatState),

    .bdrv_probe = raw_probe,
    .bdrv_open = raw_open,
    .bdrv_refresh_limits = raw_refresh_limits,

    .bdrv_co_preadv = raw_co_preadv,
    .bdrv_co_pwritev = raw_co_pwritev,
    .bdrv_co_pwrite_zeroes = raw_co_pwrite_zeroes,
    .bdrv_co_pdiscard = raw_co_pdiscard,
    .bdrv_co_block_status = raw_co_block_status,
    .bdrv_co_truncate = raw_co_truncate,
    .bdrv_getlength = raw_getlength,
    .bdrv_get_info = raw_get_info,

    .bdrv_create = raw_create,
    .create_opts = raw_create_opts,

    /* Passed through unchanged; the core emulates what the file lacks */
    .supported_write_flags = BDRV_REQ_FUA,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK |
                            BDRV_REQ_FUA,
};

/*
 * Filter driver "blklogwrites": passes every request to its "file" child
 * and records every modification that reached it in a second node, the
 * "log", for crash-consistency replay (tests/crash/replay.py), as QEMU's
 *   --blockdev driver=blklogwrites,node-name=X,file=NODE,log=NODE
 *       [,log-sector-size=512][,log-append=off]
 *       [,log-super-update-interval=4096]
 *
 * Log format (Linux dm-log-writes, version 1; all integers little endian,
 * S = log-sector-size bytes, a power of two >= 512):
 *  - sector 0 of the log is the super block: u64 magic 0x6a736677736872,
 *    u64 version 1, u64 nr_entries (entries valid in the log), u32 S;
 *    the rest of the sector is zero.
 *  - entries follow from sector 1 on, back to back. An entry is one
 *    header sector (u64 sector, u64 nr_sectors, u64 flags, u64 data_len,
 *    u64 seq, rest zero) and then its payload, padded to whole sectors.
 *    seq is a qblk addition in what dm-log-writes leaves as padding (its
 *    readers ignore it): a process-wide counter shared by every
 *    blklogwrites node, 1 for the first entry. If request Y was issued
 *    after request X's completion was seen, seq(X) < seq(Y) even when X
 *    and Y went to different nodes, so replaying several logs merged by
 *    seq respects the order the program relied on (e.g. a job flushing
 *    base before rewriting an overlay's header). Entries:
 *      write:    flags 0 (or FUA 2), nr_sectors sectors of data written
 *                at byte sector * S of the file child; data_len is 0;
 *      zero write: logged as a plain write whose payload is zeroes (so a
 *                replay needs no special case);
 *      discard:  flags DISCARD 4, no payload; a replay may zero the range
 *                (the content of discarded bytes is unspecified);
 *      flush:    flags FLUSH 1, sector and nr_sectors 0, no payload;
 *      mark:     flags MARK 8, data_len bytes of a label as the payload.
 *                This filter writes no marks yet (nothing needs them);
 *                readers skip them, and log-append walks past them.
 *    Units of sector and nr_sectors are S (as QEMU's filter does), so
 *    every request must be S-aligned: the filter sets request_alignment.
 * Truncate passes through and is not logged (a replay grows the file as
 * writes need).
 *
 * Ordering (what makes the log a faithful history): an entry is appended
 * only after its request completed on the file child, and appends are
 * serialised by log_lock (FIFO), so entries appear in completion order.
 * A flush takes log_lock BEFORE flushing the file child and appends its
 * FLUSH entry after the child's flush completed: writes that completed
 * before the flush started are logged before it; writes completing while
 * it runs queue behind it and are logged after it, since the flush does
 * not promise them. A request's completion reaches the caller only after
 * its entry is in the log, so a client that reads nr_entries in the super
 * block right after an acknowledged flush gets a count covering it.
 *
 * The super block is rewritten every log-super-update-interval entries,
 * after every flush and at close. Reads, block status and length pass
 * through untouched. All state is touched on the main loop thread only,
 * by coroutines holding log_lock (or at open/close), so no other lock is
 * needed.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qapi/error.h"
#include "qemu/qdict.h"
#include "qemu/iov.h"
#include "trace.h"

#define BLW_MAGIC 0x6a736677736872ULL
#define BLW_VERSION 1
#define BLW_FLAG_FLUSH 1
#define BLW_FLAG_FUA 2
#define BLW_FLAG_DISCARD 4
#define BLW_FLAG_MARK 8
/* The largest log sector size accepted (QEMU's limit too). */
#define BLW_MAX_SECTOR_SIZE (1 << 20)

/*
 * Sequence number of the last entry appended by any node (see "seq" in
 * the format). Only main-loop coroutines append, so a plain counter is
 * enough.
 */
static uint64_t blw_global_seq;

/* Per-node state (bs->opaque). */
typedef struct BDRVBlkLogWritesState {
    BdrvChild *log;
    uint32_t sector_size;       /* S, a power of two */
    int sector_bits;            /* log2(S) */
    uint64_t update_interval;   /* super block every this many entries */
    uint64_t nr_entries;        /* entries appended so far */
    uint64_t next_sector;       /* where the next entry header goes */
    CoMutex log_lock;           /* serialises appends (and flushes) */
    bool log_error;             /* an append failed: the log is useless */
} BDRVBlkLogWritesState;

/* ---- Little-endian encoding */

static void blw_st64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = v >> (8 * i);
    }
}

static uint64_t blw_ld64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Encode the super block into buf (S bytes). */
static void blw_encode_super(BDRVBlkLogWritesState *s, uint8_t *buf)
{
    memset(buf, 0, s->sector_size);
    blw_st64(buf, BLW_MAGIC);
    blw_st64(buf + 8, BLW_VERSION);
    blw_st64(buf + 16, s->nr_entries);
    for (int i = 0; i < 4; i++) {
        buf[24 + i] = s->sector_size >> (8 * i);
    }
}

/* Sectors of payload after the entry header hdr (see the format). */
static uint64_t blw_payload_sectors(BDRVBlkLogWritesState *s,
                                    const uint8_t *hdr)
{
    uint64_t flags = blw_ld64(hdr + 16);

    if (flags & BLW_FLAG_MARK) {
        return DIV_ROUND_UP(blw_ld64(hdr + 24), s->sector_size);
    }
    if (flags & (BLW_FLAG_FLUSH | BLW_FLAG_DISCARD)) {
        return 0;
    }
    return blw_ld64(hdr + 8);
}

/* ---- Open: options, a new or continued log */

/* Parse log-sector-size and log-super-update-interval (consumed). */
static bool blw_parse_options(BDRVBlkLogWritesState *s, QDict *options,
                              bool *append, Error **errp)
{
    uint64_t size, interval;

    if (!qdict_get_uint(options, "log-sector-size", 512, &size, errp) ||
        !qdict_get_uint(options, "log-super-update-interval", 4096,
                        &interval, errp) ||
        !qdict_get_bool(options, "log-append", false, append, errp)) {
        return false;
    }
    qdict_del(options, "log-sector-size");
    qdict_del(options, "log-super-update-interval");
    qdict_del(options, "log-append");
    if (size < 512 || size > BLW_MAX_SECTOR_SIZE || (size & (size - 1))) {
        error_setg(errp, "Invalid log sector size %" PRIu64, size);
        return false;
    }
    s->sector_size = size;
    s->sector_bits = __builtin_ctz(size);
    s->update_interval = interval ? interval : 1;
    return true;
}

/* Write the super block (main loop, outside coroutines: open/close). */
static int blw_write_super_sync(BDRVBlkLogWritesState *s)
{
    g_autofree uint8_t *buf = g_malloc(s->sector_size);

    blw_encode_super(s, buf);
    return bdrv_pwrite(s->log, 0, s->sector_size, buf, 0);
}

/*
 * Continue an existing log: check its super block and walk its entries
 * to find where the next one goes.
 */
static int blw_open_append(BlockDriverState *bs, Error **errp)
{
    BDRVBlkLogWritesState *s = bs->opaque;
    g_autofree uint8_t *buf = g_malloc(s->sector_size);
    uint64_t n, sector = 1;
    int ret;

    ret = bdrv_pread(s->log, 0, s->sector_size, buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read log super block of '%s'",
                         s->log->bs->filename);
        return ret;
    }
    if (blw_ld64(buf) != BLW_MAGIC || blw_ld64(buf + 8) != BLW_VERSION ||
        (blw_ld64(buf + 24) & 0xffffffffULL) != s->sector_size) {
        error_setg(errp, "Log '%s' is not a write log of sector size %u",
                   s->log->bs->filename, s->sector_size);
        return -EINVAL;
    }
    n = blw_ld64(buf + 16);
    for (uint64_t i = 0; i < n; i++) {
        ret = bdrv_pread(s->log, sector << s->sector_bits, s->sector_size,
                         buf, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read log entry %" PRIu64
                             " of '%s'", i, s->log->bs->filename);
            return ret;
        }
        sector += 1 + blw_payload_sectors(s, buf);
    }
    s->nr_entries = n;
    s->next_sector = sector;
    return 0;
}

static int blk_log_writes_open(BlockDriverState *bs, QDict *options,
                               int flags, Error **errp)
{
    BDRVBlkLogWritesState *s = bs->opaque;
    bool append;
    int ret;

    qemu_co_mutex_init(&s->log_lock);
    if (!blw_parse_options(s, options, &append, errp)) {
        return -EINVAL;
    }
    bs->file = bdrv_open_child(NULL, options, "file", bs,
                               BDRV_CHILD_FILTERED | BDRV_CHILD_FILE, false,
                               errp);
    if (!bs->file) {
        return -EINVAL;
    }
    /* The log is neither data nor filtered: no role bit (still flushed). */
    s->log = bdrv_open_child(NULL, options, "log", bs, 0, false, errp);
    if (!s->log) {
        return -EINVAL;
    }
    g_strlcpy(bs->filename, bs->file->bs->filename, sizeof(bs->filename));
    s->next_sector = 1;
    if (append) {
        ret = blw_open_append(bs, errp);
    } else if (!bs->read_only) {
        ret = blw_write_super_sync(s);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not write log super block "
                             "of '%s'", s->log->bs->filename);
        }
    } else {
        ret = 0;
    }
    trace_blk_log_writes_open(bs, bs->file->bs, s->log->bs, s->sector_size,
                              s->nr_entries);
    return ret < 0 ? ret : 0;
}

/* Leave a super block that counts every entry appended. */
static void blk_log_writes_close(BlockDriverState *bs)
{
    BDRVBlkLogWritesState *s = bs->opaque;

    if (s->log && !bs->read_only && !s->log_error) {
        blw_write_super_sync(s);
    }
}

/* Requests must be whole log sectors. */
static void blk_log_writes_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVBlkLogWritesState *s = bs->opaque;

    if (s->sector_size > bs->bl.request_alignment) {
        bs->bl.request_alignment = s->sector_size;
    }
}

/* ---- Appending entries (log_lock held) */

/* An append failed: note it on the node and stop logging. */
static int blw_fail(BlockDriverState *bs, int ret)
{
    BDRVBlkLogWritesState *s = bs->opaque;

    s->log_error = true;
    bdrv_note_io_error(bs, "write log '%s': %s", s->log->bs->filename,
                       strerror(-ret));
    trace_blk_log_writes_error(bs, ret);
    return ret;
}

/* Rewrite the super block with the current entry count. */
static int coroutine_fn blw_co_write_super(BlockDriverState *bs)
{
    BDRVBlkLogWritesState *s = bs->opaque;
    g_autofree uint8_t *buf = g_malloc(s->sector_size);
    int ret;

    blw_encode_super(s, buf);
    ret = bdrv_co_pwrite(s->log, 0, s->sector_size, buf, 0);
    return ret < 0 ? blw_fail(bs, ret) : 0;
}

/*
 * Append one entry: header for [offset, offset + bytes) with flags, then
 * payload (qiov, or zeroes when zero is set, or nothing), then maybe the
 * super block. Returns 0 or -errno (the log is then marked broken).
 */
static int coroutine_fn blw_co_append(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, uint64_t flags,
                                      QEMUIOVector *qiov, bool zero)
{
    BDRVBlkLogWritesState *s = bs->opaque;
    int64_t payload = (qiov || zero) ? bytes : 0;
    g_autofree uint8_t *hdr = g_malloc0(s->sector_size);
    int64_t pos = s->next_sector << s->sector_bits;
    int ret;

    if (s->log_error) {
        return -EIO;
    }
    blw_st64(hdr, offset >> s->sector_bits);
    blw_st64(hdr + 8, bytes >> s->sector_bits);
    blw_st64(hdr + 16, flags);
    blw_st64(hdr + 32, ++blw_global_seq);
    trace_blk_log_writes_append(bs, s->nr_entries, offset, bytes, flags);
    ret = bdrv_co_pwrite(s->log, pos, s->sector_size, hdr, 0);
    if (ret >= 0 && qiov) {
        ret = bdrv_co_pwritev(s->log, pos + s->sector_size, bytes, qiov, 0);
    } else if (ret >= 0 && zero) {
        ret = bdrv_co_pwrite_zeroes(s->log, pos + s->sector_size, bytes, 0);
    }
    if (ret < 0) {
        return blw_fail(bs, ret);
    }
    s->next_sector += 1 + (payload >> s->sector_bits);
    s->nr_entries++;
    if (s->nr_entries % s->update_interval == 0 || (flags & BLW_FLAG_FLUSH)) {
        return blw_co_write_super(bs);
    }
    return 0;
}

/* ---- Data path */

static int coroutine_fn blk_log_writes_co_preadv(BlockDriverState *bs,
                                                 int64_t offset,
                                                 int64_t bytes,
                                                 QEMUIOVector *qiov,
                                                 BdrvRequestFlags flags)
{
    return bdrv_co_preadv(bs->file, offset, bytes, qiov, flags);
}

/*
 * Completion of a modification on the file child: log it (in completion
 * order) before the caller hears of it. A failed request is not logged.
 */
static int coroutine_fn blw_co_log_done(BlockDriverState *bs, int ret,
                                        int64_t offset, int64_t bytes,
                                        uint64_t flags, QEMUIOVector *qiov,
                                        bool zero)
{
    BDRVBlkLogWritesState *s = bs->opaque;

    if (ret < 0) {
        return ret;
    }
    qemu_co_mutex_lock(&s->log_lock);
    ret = blw_co_append(bs, offset, bytes, flags, qiov, zero);
    qemu_co_mutex_unlock(&s->log_lock);
    return ret;
}

static int coroutine_fn blk_log_writes_co_pwritev(BlockDriverState *bs,
                                                  int64_t offset,
                                                  int64_t bytes,
                                                  QEMUIOVector *qiov,
                                                  BdrvRequestFlags flags)
{
    int ret = bdrv_co_pwritev(bs->file, offset, bytes, qiov, flags);

    return blw_co_log_done(bs, ret, offset, bytes,
                           (flags & BDRV_REQ_FUA) ? BLW_FLAG_FUA : 0, qiov,
                           false);
}

/* Zero writes are logged as writes of zeroes (see the format). */
static int coroutine_fn blk_log_writes_co_pwrite_zeroes(BlockDriverState *bs,
                                                        int64_t offset,
                                                        int64_t bytes,
                                                        BdrvRequestFlags flags)
{
    int ret = bdrv_co_pwrite_zeroes(bs->file, offset, bytes, flags);

    return blw_co_log_done(bs, ret, offset, bytes,
                           (flags & BDRV_REQ_FUA) ? BLW_FLAG_FUA : 0, NULL,
                           true);
}

static int coroutine_fn blk_log_writes_co_pdiscard(BlockDriverState *bs,
                                                   int64_t offset,
                                                   int64_t bytes)
{
    int ret = bdrv_co_pdiscard(bs->file, offset, bytes);

    return blw_co_log_done(bs, ret, offset, bytes, BLW_FLAG_DISCARD, NULL,
                           false);
}

/*
 * Flush the file child with log_lock held, then log the FLUSH entry: see
 * the ordering rule in the design note. The core flushes the log node
 * (a child) afterwards.
 */
static int coroutine_fn blk_log_writes_co_flush_to_disk(BlockDriverState *bs)
{
    BDRVBlkLogWritesState *s = bs->opaque;
    int ret;

    qemu_co_mutex_lock(&s->log_lock);
    ret = bdrv_co_flush(bs->file->bs);
    if (ret == 0) {
        ret = blw_co_append(bs, 0, 0, BLW_FLAG_FLUSH, NULL, false);
    }
    qemu_co_mutex_unlock(&s->log_lock);
    return ret;
}

/* Resizes pass through unlogged (see the design note). */
static int coroutine_fn blk_log_writes_co_truncate(BlockDriverState *bs,
                                                   int64_t offset, bool exact,
                                                   PreallocMode prealloc,
                                                   BdrvRequestFlags flags,
                                                   Error **errp)
{
    return bdrv_co_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

static int64_t blk_log_writes_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

/* The child's cluster size, so overlap grains match below and here. */
static int blk_log_writes_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return bdrv_get_info(bs->file->bs, bdi);
}

const BlockDriver bdrv_blklogwrites = {
    .format_name = "blklogwrites",
    .instance_size = sizeof(BDRVBlkLogWritesState),
    .is_filter = true,

    .bdrv_open = blk_log_writes_open,
    .bdrv_close = blk_log_writes_close,
    .bdrv_refresh_limits = blk_log_writes_refresh_limits,
    .bdrv_getlength = blk_log_writes_getlength,
    .bdrv_get_info = blk_log_writes_get_info,

    .bdrv_co_preadv = blk_log_writes_co_preadv,
    .bdrv_co_pwritev = blk_log_writes_co_pwritev,
    .bdrv_co_pwrite_zeroes = blk_log_writes_co_pwrite_zeroes,
    .bdrv_co_pdiscard = blk_log_writes_co_pdiscard,
    .bdrv_co_flush_to_disk = blk_log_writes_co_flush_to_disk,
    .bdrv_co_truncate = blk_log_writes_co_truncate,

    /* FUA is passed down and recorded; zero flags pass unchanged. */
    .supported_write_flags = BDRV_REQ_FUA,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK |
                            BDRV_REQ_FUA,
};

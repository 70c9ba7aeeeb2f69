/*
 * qcow2 guest-to-host mapping and the request path: L1/L2 lookups,
 * allocating writes, zero clusters, discard, compressed clusters, and the
 * driver's read/write/zero/discard/flush/block-status callbacks.
 *
 * State: the active L1 table (s->l1_table, CPU order, written through
 * entry by entry) and L2 tables in the bounded L2 cache (as on disk).
 *
 * Crash-safe ordering (a crash leaves at most leaked clusters):
 *  1. refcount before reference: clusters come from
 *     qcow2_co_alloc_clusters() whose refcount update sits in the
 *     refcount cache; the L2 cache depends on it, and new L2 tables / L1
 *     copies are flushed together with refcounts before anything points
 *     to them;
 *  2. data before reference: guest data and the copy-on-write head/tail
 *     of a newly allocated cluster are written before its L2 entry is
 *     set, and the L2 cache is told to flush the file before writing that
 *     table back (depends_on_flush);
 *  3. a new (or copied) L2 table is written and flushed before the L1
 *     entry points to it; a new L1 table before the header does;
 *  4. freeing: the L2 (or L1) change that drops a reference is flushed
 *     before the refcount is decreased.
 * A cluster whose L2 entry lacks the COPIED flag (shared with a snapshot,
 * or compressed) is never written in place: writes allocate a new
 * cluster and copy the untouched parts.
 *
 * Callers hold s->lock. An allocating write drops it during its data
 * I/O (COW head/tail reads and the data write) after listing its guest
 * range in s->inflight_allocs; every change to L2 entries (allocation,
 * zero, discard, preallocation) first waits for in-flight allocations
 * overlapping its range, so two writers never allocate the same guest
 * cluster and old entries stay valid until the writer links its own.
 * Data writes to different clusters thus run in parallel; metadata
 * updates stay serialised under the lock and go to the caches, which
 * flush only where the ordering above requires it.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include "trace.h"
#include <zlib.h>

/* Write L1 entry idx (from s->l1_table) to disk. */
static int coroutine_fn l1_write_entry(BlockDriverState *bs, uint64_t idx)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t be = cpu_to_be64(s->l1_table[idx]);

    return bdrv_co_pwrite(bs->file, s->l1_table_offset + idx * 8, 8, &be, 0);
}

/* Check that a table offset is cluster aligned and inside the file. */
static int coroutine_fn check_table_offset(BlockDriverState *bs,
                                           uint64_t off, const char *what)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t fsize = qcow2_file_size(bs);

    if (qcow2_offset_into_cluster(s, off) ||
        (fsize >= 0 && off + s->cluster_size > (uint64_t)fsize &&
         !qcow2_cache_contains(s->l2_table_cache, off))) {
        return qcow2_co_signal_corruption(bs, off, s->cluster_size,
            "%s offset %#" PRIx64 " unaligned or past the end of the file",
            what, off);
    }
    return 0;
}

/* Allocate a new L2 table for L1 index idx, copying `old` (0: zeroed). */
static int coroutine_fn l2_allocate(BlockDriverState *bs, uint64_t idx,
                                    uint64_t old, void **l2)
{
    BDRVQcow2State *s = bs->opaque;
    void *old_table = NULL;
    int64_t new_off;
    int ret;

    new_off = qcow2_co_alloc_clusters(bs, s->cluster_size);
    if (new_off < 0) {
        return new_off;
    }
    trace_qcow2_l2_alloc(bs, idx, new_off, old != 0);
    if (old) {
        ret = qcow2_cache_get(s->l2_table_cache, old, &old_table);
        if (ret < 0) {
            goto fail;
        }
    }
    ret = qcow2_cache_get_empty(s->l2_table_cache, new_off, l2);
    if (ret < 0) {
        goto fail;
    }
    if (old_table) {
        memcpy(*l2, old_table, s->cluster_size);
        qcow2_cache_put(s->l2_table_cache, &old_table);
    } else {
        memset(*l2, 0, s->cluster_size);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, *l2);
    /* Table (and, by dependency, its refcount) on disk before L1 points. */
    ret = qcow2_cache_flush(s->l2_table_cache);
    if (ret < 0) {
        goto fail_put;
    }
    s->l1_table[idx] = new_off | QCOW_OFLAG_COPIED;
    ret = l1_write_entry(bs, idx);
    if (ret < 0) {
        s->l1_table[idx] = old ? old : 0;
        goto fail_put;
    }
    if (old) {
        /* The L1 change must be durable before the old refcount drops. */
        ret = bdrv_co_flush(bs->file->bs);
        if (ret == 0) {
            qcow2_co_free_clusters(bs, old, s->cluster_size);
        }
    }
    return 0;

fail_put:
    qcow2_cache_put(s->l2_table_cache, l2);
fail:
    if (old_table) {
        qcow2_cache_put(s->l2_table_cache, &old_table);
    }
    qcow2_cache_discard(s->l2_table_cache, new_off);
    qcow2_co_free_clusters(bs, new_off, s->cluster_size);
    return ret;
}

int coroutine_fn qcow2_co_get_l2(BlockDriverState *bs, uint64_t offset,
                                 bool allocate, void **l2)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t idx = qcow2_offset_to_l1_index(s, offset);
    uint64_t l1e, l2_off;
    int ret;

    *l2 = NULL;
    if (idx >= s->l1_size) {
        return allocate ? -EIO : 0;
    }
    l1e = s->l1_table[idx];
    l2_off = l1e & L1E_OFFSET_MASK;
    if (!l2_off) {
        return allocate ? l2_allocate(bs, idx, 0, l2) : 0;
    }
    ret = check_table_offset(bs, l2_off, "L2 table");
    if (ret < 0) {
        return ret;
    }
    if (allocate && !(l1e & QCOW_OFLAG_COPIED)) {
        /* Shared with a snapshot: copy before modifying. */
        return l2_allocate(bs, idx, l2_off, l2);
    }
    return qcow2_cache_get(s->l2_table_cache, l2_off, l2);
}

/* Type of the unit (subcluster, or cluster) u of L2 entry idx. */
static Qcow2ClusterType unit_type(BDRVQcow2State *s, void *l2, int idx,
                                  int sc)
{
    uint64_t l2e = qcow2_l2e_get(s, l2, idx);

    if (s->extended_l2) {
        return qcow2_extl2_type(l2e, qcow2_l2_bitmap_get(s, l2, idx), sc);
    }
    if ((l2e & QCOW_OFLAG_ZERO) && s->qcow_version < 3 &&
        !(l2e & QCOW_OFLAG_COMPRESSED)) {
        return QCOW2_CLUSTER_INVALID;
    }
    return qcow2_l2e_type(l2e);
}

/* Validate the host cluster of a NORMAL/ZERO_ALLOC entry. */
static int coroutine_fn check_data_offset(BlockDriverState *bs,
                                          uint64_t l2e, uint64_t guest)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t host = l2e & L2E_OFFSET_MASK;
    int64_t fsize = qcow2_file_size(bs);

    if (qcow2_offset_into_cluster(s, host)) {
        return qcow2_co_signal_corruption(bs, host, s->cluster_size,
            "Cluster allocation offset %#" PRIx64 " unaligned (L2 entry of "
            "guest offset %#" PRIx64 ")", host, guest);
    }
    if (fsize >= 0 && host >= (uint64_t)fsize) {
        return qcow2_co_signal_corruption(bs, host, s->cluster_size,
            "Data cluster %#" PRIx64 " for guest offset %#" PRIx64
            " is past the end of the file", host, guest);
    }
    return 0;
}

int coroutine_fn qcow2_co_get_host_offset(BlockDriverState *bs,
                                          uint64_t offset, uint64_t *bytes,
                                          uint64_t *host,
                                          Qcow2ClusterType *type)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t unit = s->subcluster_size;
    uint64_t in_unit = offset & (unit - 1);
    uint64_t table_end = (qcow2_offset_to_l1_index(s, offset) + 1) <<
                         (s->l2_bits + s->cluster_bits);
    uint64_t max = MIN(*bytes, table_end - offset);
    uint64_t pos, first_l2e = 0, base_host = 0;
    void *l2;
    int ret;

    *host = 0;
    ret = qcow2_co_get_l2(bs, offset, false, &l2);
    if (ret < 0) {
        return ret;
    }
    if (!l2) {
        *type = QCOW2_CLUSTER_UNALLOCATED;
        *bytes = max;
        return 0;
    }
    /* Walk units from the one holding offset while type and host match. */
    for (pos = offset - in_unit; pos < offset + max; pos += unit) {
        int idx = qcow2_offset_to_l2_index(s, pos);
        int sc = s->extended_l2 ? qcow2_offset_to_sc_index(s, pos) : 0;
        Qcow2ClusterType t = unit_type(s, l2, idx, sc);
        uint64_t l2e = qcow2_l2e_get(s, l2, idx);
        uint64_t h = (l2e & L2E_OFFSET_MASK) +
                     qcow2_offset_into_cluster(s, pos);

        if (pos == offset - in_unit) {
            *type = t;
            first_l2e = l2e;
            base_host = h;
            if (t == QCOW2_CLUSTER_INVALID) {
                qcow2_cache_put(s->l2_table_cache, &l2);
                return qcow2_co_signal_corruption(bs, -1, -1,
                    "Invalid L2 entry %#" PRIx64 " for guest offset %#"
                    PRIx64, l2e, offset);
            }
            if (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) {
                ret = check_data_offset(bs, l2e, pos);
                if (ret < 0) {
                    qcow2_cache_put(s->l2_table_cache, &l2);
                    return ret;
                }
            }
            continue;
        }
        if (t != *type) {
            break;
        }
        if (t == QCOW2_CLUSTER_COMPRESSED && l2e != first_l2e) {
            break;
        }
        if ((t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) &&
            (h != base_host + (pos - (offset - in_unit)) ||
             check_data_offset(bs, l2e, pos) < 0)) {
            break;
        }
    }
    qcow2_cache_put(s->l2_table_cache, &l2);
    *bytes = MIN(max, pos - offset);
    if (*type == QCOW2_CLUSTER_COMPRESSED) {
        *host = first_l2e;
    } else if (*type == QCOW2_CLUSTER_NORMAL ||
               *type == QCOW2_CLUSTER_ZERO_ALLOC) {
        *host = base_host + in_unit;
    }
    return 0;
}

int coroutine_fn qcow2_co_decompress(BlockDriverState *bs, uint64_t l2e,
                                     uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t host, csize;
    g_autofree uint8_t *in = NULL;
    z_stream zs = { 0 };
    int ret, zret;

    qcow2_compressed_decode(s->cluster_bits, l2e, &host, &csize);
    if (csize > 2 * (uint64_t)s->cluster_size + 512 || host == 0) {
        return qcow2_co_signal_corruption(bs, host, csize,
            "Invalid compressed cluster descriptor %#" PRIx64, l2e);
    }
    in = g_malloc(csize);
    ret = bdrv_co_pread(bs->file, host, csize, in, 0);
    if (ret < 0) {
        return ret;
    }
    if (inflateInit2(&zs, -12) != Z_OK) {
        return -ENOMEM;
    }
    zs.next_in = in;
    zs.avail_in = csize;
    zs.next_out = buf;
    zs.avail_out = s->cluster_size;
    zret = inflate(&zs, Z_FINISH);
    inflateEnd(&zs);
    /* Trailing bytes after the stream end are allowed; short output not. */
    if ((zret != Z_STREAM_END && zret != Z_BUF_ERROR) || zs.avail_out != 0) {
        error_report("qcow2: could not decompress cluster at %#" PRIx64
                     " of '%s'", host, bs->filename);
        return -EIO;
    }
    return 0;
}

/*
 * Fill buf with `len` bytes at offset `in` within the guest cluster at
 * guest_cluster whose old L2 entry is l2e (copy-on-write source).
 */
static int coroutine_fn read_old_contents(BlockDriverState *bs, uint64_t l2e,
                                          uint64_t guest_cluster,
                                          uint64_t in, uint64_t len,
                                          uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *tmp = NULL;
    int ret;

    if (!len) {
        return 0;
    }
    switch (qcow2_l2e_type(l2e)) {
    case QCOW2_CLUSTER_NORMAL:
        return bdrv_co_pread(bs->file, (l2e & L2E_OFFSET_MASK) + in, len,
                             buf, 0);
    case QCOW2_CLUSTER_COMPRESSED:
        tmp = g_malloc(s->cluster_size);
        ret = qcow2_co_decompress(bs, l2e, tmp);
        if (ret == 0) {
            memcpy(buf, tmp + in, len);
        }
        return ret;
    case QCOW2_CLUSTER_UNALLOCATED:
        if (bs->backing) {
            return bdrv_co_pread(bs->backing, guest_cluster + in, len, buf, 0);
        }
        /* fall through */
    default:
        memset(buf, 0, len);
        return 0;
    }
}

/*
 * Lock held. Wait until no in-flight allocating write overlaps the
 * clusters of [offset, offset + bytes); the lock is dropped while
 * waiting, so the caller must look the mapping up afresh afterwards.
 */
static void coroutine_fn wait_inflight_allocs(BlockDriverState *bs,
                                              uint64_t offset, uint64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t start = qcow2_start_of_cluster(s, offset);
    uint64_t end = offset + bytes;

restart:
    for (Qcow2InflightAlloc *a = s->inflight_allocs; a; a = a->next) {
        if (a->start < end && start < a->end) {
            trace_qcow2_wait_inflight_alloc(bs, offset, bytes, a->start);
            qemu_co_queue_wait(&a->waiters, &s->lock);
            goto restart;   /* a is gone; the list may have changed */
        }
    }
}

/* Lock held. List a (on the caller's stack) as in flight over [start, end). */
static void inflight_alloc_begin(BDRVQcow2State *s, Qcow2InflightAlloc *a,
                                 uint64_t start, uint64_t end)
{
    *a = (Qcow2InflightAlloc) { .start = start, .end = end,
                                .next = s->inflight_allocs };
    qemu_co_queue_init(&a->waiters);
    s->inflight_allocs = a;
}

/* Lock held. Unlist a and wake whoever waits for it. */
static void inflight_alloc_end(BDRVQcow2State *s, Qcow2InflightAlloc *a)
{
    Qcow2InflightAlloc **p = &s->inflight_allocs;

    while (*p != a) {
        p = &(*p)->next;
    }
    *p = a->next;
    qemu_co_queue_restart_all(&a->waiters);
}

/*
 * Lock dropped. Write the n new clusters at host: COW head (from old
 * entry head_l2e) + guest data + COW tail (from tail_l2e), in one write.
 */
static int coroutine_fn alloc_write_data(BlockDriverState *bs,
                                         uint64_t offset, uint64_t bytes,
                                         QEMUIOVector *qiov,
                                         size_t qiov_offset, int64_t host,
                                         uint64_t head_l2e, uint64_t tail_l2e)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t first = qcow2_start_of_cluster(s, offset);
    uint64_t last_end = QEMU_ALIGN_UP(offset + bytes, s->cluster_size);
    uint64_t head = offset - first, tail = last_end - (offset + bytes);
    uint8_t *head_buf = NULL, *tail_buf = NULL;
    QEMUIOVector hd_qiov;
    int ret = 0;

    qemu_iovec_init(&hd_qiov, qiov->niov + 2);
    if (head) {
        head_buf = qemu_blockalign(head);
        ret = read_old_contents(bs, head_l2e, first, 0, head, head_buf);
        qemu_iovec_add(&hd_qiov, head_buf, head);
    }
    if (ret >= 0 && tail) {
        tail_buf = qemu_blockalign(tail);
        ret = read_old_contents(bs, tail_l2e, last_end - s->cluster_size,
                                s->cluster_size - tail, tail, tail_buf);
    }
    qemu_iovec_concat(&hd_qiov, qiov, qiov_offset, bytes);
    if (tail) {
        qemu_iovec_add(&hd_qiov, tail_buf, tail);
    }
    if (ret >= 0) {
        ret = bdrv_co_pwritev(bs->file, host, last_end - first, &hd_qiov, 0);
    }
    qemu_iovec_destroy(&hd_qiov);
    qemu_vfree(head_buf);
    qemu_vfree(tail_buf);
    return ret;
}

/*
 * Lock held, data written. Point the n L2 entries from guest cluster
 * first on at host (the L2 table is written back only after a flush of
 * the file: data before reference), then release what old[] referenced.
 */
static int coroutine_fn alloc_link(BlockDriverState *bs, uint64_t first,
                                   uint64_t n, int64_t host,
                                   const uint64_t *old, bool need_free)
{
    BDRVQcow2State *s = bs->opaque;
    int idx0 = qcow2_offset_to_l2_index(s, first);
    void *l2;
    int ret = qcow2_co_get_l2(bs, first, true, &l2);

    if (ret < 0) {
        return ret;
    }
    for (uint64_t i = 0; i < n; i++) {
        qcow2_l2e_set(s, l2, idx0 + i,
                      (host + (i << s->cluster_bits)) | QCOW_OFLAG_COPIED);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_depends_on_flush(s->l2_table_cache);
    qcow2_cache_put(s->l2_table_cache, &l2);
    if (need_free) {
        /* The new L2 entries must be on disk before old refcounts drop. */
        ret = qcow2_cache_flush(s->l2_table_cache);
        if (ret < 0) {
            return ret;
        }
        for (uint64_t i = 0; i < n; i++) {
            qcow2_co_free_l2e_clusters(bs, old[i]);
        }
    }
    return 0;
}

int coroutine_fn qcow2_co_alloc_write(BlockDriverState *bs, uint64_t offset,
                                      uint64_t bytes, QEMUIOVector *qiov,
                                      size_t qiov_offset)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t first = qcow2_start_of_cluster(s, offset);
    uint64_t last_end = QEMU_ALIGN_UP(offset + bytes, s->cluster_size);
    uint64_t n = (last_end - first) >> s->cluster_bits;
    int idx0 = qcow2_offset_to_l2_index(s, first);
    g_autofree uint64_t *old = g_new(uint64_t, n);
    Qcow2InflightAlloc inflight;
    bool need_free = false;
    int64_t host;
    void *l2;
    int ret;

    /* Allocates the L2 table itself if needed, so linking cannot fail on
     * a missing table later. */
    ret = qcow2_co_get_l2(bs, offset, true, &l2);
    if (ret < 0) {
        return ret;
    }
    for (uint64_t i = 0; i < n; i++) {
        old[i] = qcow2_l2e_get(s, l2, idx0 + i);
        need_free |= qcow2_l2e_type(old[i]) != QCOW2_CLUSTER_UNALLOCATED &&
                     qcow2_l2e_type(old[i]) != QCOW2_CLUSTER_ZERO_PLAIN;
    }
    qcow2_cache_put(s->l2_table_cache, &l2);
    host = qcow2_co_alloc_clusters(bs, n << s->cluster_bits);
    if (host < 0) {
        return host;
    }
    trace_qcow2_alloc_write(bs, offset, bytes, host);

    /* The data I/O runs unlocked: other requests proceed in parallel. */
    inflight_alloc_begin(s, &inflight, first, last_end);
    qemu_co_mutex_unlock(&s->lock);
    ret = alloc_write_data(bs, offset, bytes, qiov, qiov_offset, host,
                           old[0], old[n - 1]);
    qemu_co_mutex_lock(&s->lock);
    if (ret >= 0) {
        ret = alloc_link(bs, first, n, host, old, need_free);
    } else {
        qcow2_co_free_clusters(bs, host, n << s->cluster_bits);
    }
    inflight_alloc_end(s, &inflight);
    return ret;
}

/* New L2 entry for a zero/discard request, given the old one. */
static uint64_t zero_discard_entry(BlockDriverState *bs, uint64_t old,
                                   Qcow2ZeroMode mode)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2ClusterType t = qcow2_l2e_type(old);

    switch (mode) {
    case QCOW2_DISCARD_FULL:
        return 0;
    case QCOW2_DISCARD_GUEST:
        /*
         * As QEMU: v2 cannot hide the backing file (no zero flag), so
         * there discard only works without one; unallocated stays so.
         */
        if (s->qcow_version < 3) {
            return bs->backing ? old : 0;
        }
        return t == QCOW2_CLUSTER_UNALLOCATED && !bs->backing
               ? 0 : QCOW_OFLAG_ZERO;
    case QCOW2_ZERO_KEEP:
        if ((old & QCOW_OFLAG_COPIED) &&
            (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC)) {
            /* Exclusively owned: keep the cluster as preallocated zeroes. */
            return (old & L2E_OFFSET_MASK) | QCOW_OFLAG_ZERO |
                   QCOW_OFLAG_COPIED;
        }
        return QCOW_OFLAG_ZERO;
    default:
        return QCOW_OFLAG_ZERO;
    }
}

/* Zero/discard whole clusters [offset, offset+bytes) within one L2 table. */
static int coroutine_fn zero_discard_in_table(BlockDriverState *bs,
                                              uint64_t offset, uint64_t n,
                                              Qcow2ZeroMode mode)
{
    BDRVQcow2State *s = bs->opaque;
    int idx0 = qcow2_offset_to_l2_index(s, offset);
    g_autofree uint64_t *freed = g_new0(uint64_t, n);
    bool changed = false, any_free = false;
    void *l2;
    int ret;

    ret = qcow2_co_get_l2(bs, offset, false, &l2);
    if (ret < 0) {
        return ret;
    }
    if (!l2) {
        if (mode == QCOW2_DISCARD_FULL ||
            (mode == QCOW2_DISCARD_GUEST && !bs->backing)) {
            return 0;   /* already reads as the request wants */
        }
    } else {
        qcow2_cache_put(s->l2_table_cache, &l2);
    }
    ret = qcow2_co_get_l2(bs, offset, true, &l2);
    if (ret < 0) {
        return ret;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t old = qcow2_l2e_get(s, l2, idx0 + i);
        uint64_t new = zero_discard_entry(bs, old, mode);
        if (new == old) {
            continue;
        }
        qcow2_l2e_set(s, l2, idx0 + i, new);
        changed = true;
        if ((old & L2E_OFFSET_MASK) && !(new & L2E_OFFSET_MASK)) {
            freed[i] = old;
            any_free = true;
        }
    }
    if (changed) {
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    }
    qcow2_cache_put(s->l2_table_cache, &l2);
    if (any_free) {
        /* Drop references on disk first, then the refcounts. */
        ret = qcow2_cache_flush(s->l2_table_cache);
        if (ret < 0) {
            return ret;
        }
        for (uint64_t i = 0; i < n; i++) {
            if (freed[i]) {
                qcow2_co_free_l2e_clusters(bs, freed[i]);
            }
        }
    }
    return 0;
}

int coroutine_fn qcow2_co_zero_or_discard(BlockDriverState *bs,
                                          uint64_t offset, uint64_t bytes,
                                          Qcow2ZeroMode mode)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t end = offset + bytes;

    g_assert(qcow2_offset_into_cluster(s, offset) == 0);
    trace_qcow2_zero_or_discard(bs, offset, bytes, mode);
    if ((mode == QCOW2_ZERO_KEEP || mode == QCOW2_ZERO_UNMAP) &&
        s->qcow_version < 3) {
        /* v2 has no zero flag, but unallocated reads as zero without
         * a backing file (QEMU does the same). */
        if (bs->backing) {
            return -ENOTSUP;
        }
        mode = QCOW2_DISCARD_FULL;
    }
    while (offset < end) {
        uint64_t table_end = (qcow2_offset_to_l1_index(s, offset) + 1) <<
                             (s->l2_bits + s->cluster_bits);
        uint64_t chunk_end = MIN(end, table_end);
        uint64_t n = DIV_ROUND_UP(chunk_end - offset, s->cluster_size);
        int ret;

        if (qcow2_offset_to_l1_index(s, offset) >= s->l1_size) {
            break;
        }
        wait_inflight_allocs(bs, offset, chunk_end - offset);
        ret = zero_discard_in_table(bs, offset, n, mode);
        if (ret < 0) {
            return ret;
        }
        offset = chunk_end;
    }
    return 0;
}

int coroutine_fn qcow2_co_grow_l1(BlockDriverState *bs, uint64_t min_size)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old_off = s->l1_table_offset;
    uint32_t old_size = s->l1_size;
    uint64_t bytes = QEMU_ALIGN_UP(min_size * 8, s->cluster_size);
    uint64_t *new_table, *be_table;
    int64_t new_off;
    int ret;

    if (min_size <= s->l1_size) {
        return 0;
    }
    if (min_size * 8 > QCOW2_MAX_L1_BYTES) {
        return -EFBIG;
    }
    new_off = qcow2_co_alloc_clusters(bs, bytes);
    if (new_off < 0) {
        return new_off;
    }
    trace_qcow2_l1_grow(bs, old_size, min_size, new_off);
    be_table = qemu_memalign(4096, bytes);
    memset(be_table, 0, bytes);
    for (uint32_t i = 0; i < old_size; i++) {
        be_table[i] = cpu_to_be64(s->l1_table[i]);
    }
    /* Refcounts and the new table on disk before the header points. */
    ret = qcow2_cache_flush(s->refcount_block_cache);
    if (ret >= 0) {
        ret = bdrv_co_pwrite(bs->file, new_off, bytes, be_table, 0);
    }
    if (ret >= 0) {
        ret = bdrv_co_flush(bs->file->bs);
    }
    qemu_vfree(be_table);
    if (ret < 0) {
        qcow2_co_free_clusters(bs, new_off, bytes);
        return ret;
    }
    s->l1_table_offset = new_off;
    s->l1_size = min_size;
    ret = qcow2_co_update_header(bs);
    if (ret < 0) {
        s->l1_table_offset = old_off;
        s->l1_size = old_size;
        qcow2_co_free_clusters(bs, new_off, bytes);
        return ret;
    }
    new_table = g_new0(uint64_t, min_size);
    if (old_size) {
        memcpy(new_table, s->l1_table, old_size * 8);
    }
    g_free(s->l1_table);
    s->l1_table = new_table;
    if (old_size) {
        qcow2_co_free_clusters(bs, old_off,
                               QEMU_ALIGN_UP(old_size * 8, s->cluster_size));
    }
    return 0;
}

int coroutine_fn qcow2_co_preallocate_metadata(BlockDriverState *bs,
                                               uint64_t offset,
                                               uint64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t end = offset + bytes;
    int ret;

    offset = qcow2_start_of_cluster(s, offset);
    while (offset < end) {
        uint64_t table_end = (qcow2_offset_to_l1_index(s, offset) + 1) <<
                             (s->l2_bits + s->cluster_bits);
        uint64_t chunk_end = MIN(end, table_end);
        uint64_t n = DIV_ROUND_UP(chunk_end - offset, s->cluster_size);
        int idx0 = qcow2_offset_to_l2_index(s, offset);
        int64_t host;
        void *l2;

        wait_inflight_allocs(bs, offset, chunk_end - offset);
        ret = qcow2_co_get_l2(bs, offset, true, &l2);
        if (ret < 0) {
            return ret;
        }
        host = qcow2_co_alloc_clusters(bs, n << s->cluster_bits);
        if (host < 0) {
            qcow2_cache_put(s->l2_table_cache, &l2);
            return host;
        }
        for (uint64_t i = 0; i < n; i++) {
            if (qcow2_l2e_get(s, l2, idx0 + i) == 0) {
                qcow2_l2e_set(s, l2, idx0 + i,
                              (host + (i << s->cluster_bits)) |
                              QCOW_OFLAG_COPIED);
            } else {
                qcow2_co_free_clusters(bs, host + (i << s->cluster_bits),
                                       s->cluster_size);
            }
        }
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        qcow2_cache_put(s->l2_table_cache, &l2);
        /* Make the file cover the clusters so entries are not past EOF. */
        if (host + (n << s->cluster_bits) > (uint64_t)qcow2_file_size(bs)) {
            ret = bdrv_co_truncate(bs->file, host + (n << s->cluster_bits),
                                   false, PREALLOC_MODE_OFF, 0, NULL);
            if (ret < 0) {
                return ret;
            }
        }
        offset = chunk_end;
    }
    return 0;
}

/* ---- Request callbacks (the driver struct is in qcow2.c) */

/* Lock held: fail writes after corruption; set the dirty bit if lazy. */
int coroutine_fn qcow2_co_prepare_write(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->corrupt_signalled) {
        return -EIO;
    }
    if (s->use_lazy_refcounts &&
        !(s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        return qcow2_co_mark_dirty(bs);
    }
    return 0;
}

/* Read one mapped extent of n bytes into qiov[qiov_off..] (lock dropped). */
static int coroutine_fn read_extent(BlockDriverState *bs, uint64_t offset,
                                    uint64_t n, Qcow2ClusterType type,
                                    uint64_t host, QEMUIOVector *qiov,
                                    size_t qiov_off)
{
    BDRVQcow2State *s = bs->opaque;
    QEMUIOVector sub;
    uint8_t *buf;
    int ret = 0;

    switch (type) {
    case QCOW2_CLUSTER_UNALLOCATED:
        if (!bs->backing) {
            qemu_iovec_memset(qiov, qiov_off, 0, n);
            return 0;
        }
        qemu_iovec_init_slice(&sub, qiov, qiov_off, n);
        ret = bdrv_co_preadv(bs->backing, offset, n, &sub, 0);
        qemu_iovec_destroy(&sub);
        return ret;
    case QCOW2_CLUSTER_NORMAL:
        qemu_iovec_init_slice(&sub, qiov, qiov_off, n);
        ret = bdrv_co_preadv(bs->file, host, n, &sub, 0);
        qemu_iovec_destroy(&sub);
        return ret;
    case QCOW2_CLUSTER_COMPRESSED:
        buf = qemu_blockalign(s->cluster_size);
        ret = qcow2_co_decompress(bs, host, buf);
        if (ret == 0) {
            qemu_iovec_from_buf(qiov, qiov_off,
                                buf + qcow2_offset_into_cluster(s, offset), n);
        }
        qemu_vfree(buf);
        return ret;
    default:
        qemu_iovec_memset(qiov, qiov_off, 0, n);
        return 0;
    }
}

/*
 * .bdrv_co_preadv: map the request extent by extent under s->lock and
 * read each extent with the lock dropped (data, backing, zeroes or
 * decompressed data).
 */
int coroutine_fn qcow2_co_preadv(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, QEMUIOVector *qiov,
                                        BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    size_t qiov_off = 0;
    int ret = 0;

    trace_qcow2_co_preadv(bs, offset, bytes);
    while (bytes > 0) {
        uint64_t n = bytes, host;
        Qcow2ClusterType type;

        qemu_co_mutex_lock(&s->lock);
        ret = qcow2_co_get_host_offset(bs, offset, &n, &host, &type);
        qemu_co_mutex_unlock(&s->lock);
        if (ret < 0) {
            return ret;
        }
        ret = read_extent(bs, offset, n, type, host, qiov, qiov_off);
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        qiov_off += n;
    }
    return 0;
}

/*
 * Lock held. Length of the extent at offset (within one L2 table) that
 * can be overwritten in place (*host set), or that needs allocation
 * (*host = 0).
 */
static int coroutine_fn writable_extent(BlockDriverState *bs, uint64_t offset,
                                        uint64_t *bytes, uint64_t *host)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t n = *bytes, h, first;
    int idx;
    void *l2;
    int ret;

    ret = qcow2_co_get_host_offset(bs, offset, &n, &h, &(Qcow2ClusterType){0});
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_co_get_l2(bs, offset, false, &l2);
    if (ret < 0) {
        return ret;
    }
    *host = 0;
    first = qcow2_start_of_cluster(s, offset);
    idx = qcow2_offset_to_l2_index(s, offset);
    if (l2) {
        uint64_t l2e = qcow2_l2e_get(s, l2, idx);
        bool in_place = qcow2_l2e_type(l2e) == QCOW2_CLUSTER_NORMAL &&
                        (l2e & QCOW_OFLAG_COPIED);
        uint64_t pos = first + s->cluster_size;
        /* Extend over clusters of the same kind (contiguous for in-place). */
        while (pos < offset + n) {
            uint64_t e = qcow2_l2e_get(s, l2, qcow2_offset_to_l2_index(s, pos));
            bool ip = qcow2_l2e_type(e) == QCOW2_CLUSTER_NORMAL &&
                      (e & QCOW_OFLAG_COPIED);
            if (ip != in_place || (ip && (e & L2E_OFFSET_MASK) !=
                (l2e & L2E_OFFSET_MASK) + (pos - first))) {
                break;
            }
            pos += s->cluster_size;
        }
        n = MIN(n, pos - offset);
        if (in_place) {
            *host = (l2e & L2E_OFFSET_MASK) + (offset - first);
        }
        qcow2_cache_put(s->l2_table_cache, &l2);
    }
    *bytes = n;
    return 0;
}

/* Write part of a request at offset; lock held on entry and exit. */
static int coroutine_fn write_step(BlockDriverState *bs, uint64_t offset,
                                   uint64_t *bytes, QEMUIOVector *qiov,
                                   size_t qiov_off)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t host;
    QEMUIOVector sub;
    int ret;

    wait_inflight_allocs(bs, offset, *bytes);
    ret = writable_extent(bs, offset, bytes, &host);
    if (ret < 0) {
        return ret;
    }
    if (!host) {
        return qcow2_co_alloc_write(bs, offset, *bytes, qiov, qiov_off);
    }
    qemu_co_mutex_unlock(&s->lock);
    qemu_iovec_init_slice(&sub, qiov, qiov_off, *bytes);
    ret = bdrv_co_pwritev(bs->file, host, *bytes, &sub, 0);
    qemu_iovec_destroy(&sub);
    qemu_co_mutex_lock(&s->lock);
    return ret;
}

/*
 * .bdrv_co_pwritev: in-place writes to exclusively owned clusters drop the
 * lock during the data write; everything else goes through the allocating
 * path with the lock held (see qcow2-cluster.c for the ordering).
 */
int coroutine_fn qcow2_co_pwritev(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes, QEMUIOVector *qiov,
                                         BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    size_t qiov_off = 0;
    int ret;

    trace_qcow2_co_pwritev(bs, offset, bytes);
    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_co_prepare_write(bs);
    while (ret >= 0 && bytes > 0) {
        uint64_t n = bytes;
        ret = write_step(bs, offset, &n, qiov, qiov_off);
        offset += n;
        bytes -= n;
        qiov_off += n;
    }
    qemu_co_mutex_unlock(&s->lock);
    return ret < 0 ? ret : 0;
}

/* Write explicit zeroes to [offset, offset + bytes) (partial clusters). */
static int coroutine_fn write_zero_buffer(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes)
{
    QEMUIOVector qiov;
    uint8_t *buf;
    int ret;

    if (bytes <= 0) {
        return 0;
    }
    buf = qemu_blockalign(bytes);
    memset(buf, 0, bytes);
    qemu_iovec_init_buf(&qiov, buf, bytes);
    ret = qcow2_co_pwritev(bs, offset, bytes, &qiov, 0);
    qemu_vfree(buf);
    return ret;
}

/* Cluster-aligned part [*start, *end) of a request; image end counts. */
static void aligned_part(BlockDriverState *bs, int64_t offset, int64_t bytes,
                         int64_t *start, int64_t *end)
{
    BDRVQcow2State *s = bs->opaque;

    *start = QEMU_ALIGN_UP(offset, s->cluster_size);
    *end = offset + bytes == bs->total_bytes
           ? QEMU_ALIGN_UP(offset + bytes, s->cluster_size)
           : QEMU_ALIGN_DOWN(offset + bytes, s->cluster_size);
    if (*end < *start) {
        *end = *start;
    }
}

/* Apply a zero mode to whole clusters [start, end) under the lock. */
static int coroutine_fn zero_clusters(BlockDriverState *bs, int64_t start,
                                      int64_t end, Qcow2ZeroMode mode)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_co_prepare_write(bs);
    if (ret >= 0) {
        ret = qcow2_co_zero_or_discard(bs, start, end - start, mode);
    }
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/*
 * Zero [off, off + len), a strict part of the cluster at c. If the cluster
 * already reads as zero in this layer, zero the whole cluster through
 * metadata (as QEMU does); else write zero data (-ENOTSUP with
 * NO_FALLBACK).
 */
static int coroutine_fn zero_partial_cluster(BlockDriverState *bs, int64_t c,
                                             int64_t off, int64_t len,
                                             Qcow2ZeroMode mode,
                                             BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t n = s->cluster_size, host;
    Qcow2ClusterType type;
    int ret;

    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_co_get_host_offset(bs, c, &n, &host, &type);
    qemu_co_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    if (type == QCOW2_CLUSTER_ZERO_PLAIN || type == QCOW2_CLUSTER_ZERO_ALLOC ||
        (type == QCOW2_CLUSTER_UNALLOCATED && !bs->backing)) {
        return zero_clusters(bs, c, c + s->cluster_size, mode);
    }
    if (flags & BDRV_REQ_NO_FALLBACK) {
        return -ENOTSUP;
    }
    return write_zero_buffer(bs, off, len);
}

/*
 * .bdrv_co_pwrite_zeroes: whole clusters become zero clusters (v3 only;
 * with MAY_UNMAP their host clusters are freed); partial clusters at the
 * edges are written as explicit zeroes. v2 returns -ENOTSUP so the core
 * writes zero buffers.
 */
int coroutine_fn qcow2_co_pwrite_zeroes(BlockDriverState *bs,
                                        int64_t offset, int64_t bytes,
                                        BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t end = offset + bytes, cs = s->cluster_size;
    Qcow2ZeroMode mode = (flags & BDRV_REQ_MAY_UNMAP) ? QCOW2_ZERO_UNMAP
                                                      : QCOW2_ZERO_KEEP;
    int ret;

    trace_qcow2_co_pwrite_zeroes(bs, offset, bytes, flags);
    if (s->qcow_version < 3 && bs->backing) {
        return -ENOTSUP;
    }
    if (!QEMU_IS_ALIGNED(offset, cs)) {
        int64_t head_end = MIN(QEMU_ALIGN_UP(offset, cs), end);
        ret = zero_partial_cluster(bs, QEMU_ALIGN_DOWN(offset, cs), offset,
                                   head_end - offset, mode, flags);
        if (ret < 0 || head_end == end) {
            return ret;
        }
        offset = head_end;
    }
    if (!QEMU_IS_ALIGNED(end, cs) && end != bs->total_bytes) {
        int64_t tail = QEMU_ALIGN_DOWN(end, cs);
        ret = zero_partial_cluster(bs, tail, tail, end - tail, mode, flags);
        if (ret < 0 || tail == offset) {
            return ret;
        }
        end = tail;
    }
    return zero_clusters(bs, offset, QEMU_ALIGN_UP(end, cs), mode);
}

/*
 * .bdrv_co_pdiscard: whole clusters only. Like QEMU, discarded clusters
 * read as zeroes on v3 (zero flag); v2 images with a backing file keep
 * their data (the backing file must not show through).
 */
int coroutine_fn qcow2_co_pdiscard(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t start, end;
    int ret;

    trace_qcow2_co_pdiscard(bs, offset, bytes);
    aligned_part(bs, offset, bytes, &start, &end);
    if (start >= end) {
        return 0;   /* discard is advisory: partial clusters are kept */
    }
    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_co_prepare_write(bs);
    if (ret >= 0) {
        ret = qcow2_co_zero_or_discard(bs, start, end - start,
                                       QCOW2_DISCARD_GUEST);
    }
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/* .bdrv_co_flush_to_os: write back both caches in dependency order. */
int coroutine_fn qcow2_co_flush_to_os(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    trace_qcow2_co_flush(bs);
    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_co_flush_metadata(bs);
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/* BDRV_BLOCK_* status of a cluster type. */
static int type_status(Qcow2ClusterType type)
{
    switch (type) {
    case QCOW2_CLUSTER_NORMAL:
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID;
    case QCOW2_CLUSTER_ZERO_PLAIN:
        return BDRV_BLOCK_ZERO;
    case QCOW2_CLUSTER_COMPRESSED:
        return BDRV_BLOCK_DATA;
    default:
        return 0;
    }
}

/*
 * Lock held. True when many more clusters are referenced than the file
 * has allocated on the host: metadata preallocation left holes behind
 * data clusters, so their status must be refined by the file.
 */
static bool coroutine_fn detect_metadata_prealloc(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t real = bdrv_get_allocated_file_size(bs->file->bs);
    int64_t fsize = qcow2_file_size(bs);
    int64_t real_clusters, threshold, nb;

    if (real < 0 || fsize < 0) {
        return false;
    }
    real_clusters = real / s->cluster_size;
    threshold = MAX(real_clusters * 10 / 9, real_clusters + 2);
    nb = DIV_ROUND_UP(fsize, s->cluster_size);
    for (int64_t i = 0; i < nb && threshold > 0; i++) {
        uint64_t rc;
        if (qcow2_co_get_refcount(bs, i, &rc) < 0) {
            return false;
        }
        threshold -= rc != 0;
    }
    return threshold == 0;
}

/*
 * .bdrv_co_block_status with QEMU semantics: normal -> DATA|OFFSET_VALID
 * (host offset in *map, *file = the file node), zero -> ZERO (plus
 * OFFSET_VALID when preallocated), compressed -> DATA, unallocated -> 0.
 * Extents of the same kind are merged across L2 tables.
 */
int coroutine_fn qcow2_co_block_status(BlockDriverState *bs,
                                              bool want_zero, int64_t offset,
                                              int64_t bytes, int64_t *pnum,
                                              int64_t *map,
                                              BlockDriverState **file)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t n = bytes, host, first_host = 0, pos;
    Qcow2ClusterType type, t;
    int ret, status;

    qemu_co_mutex_lock(&s->lock);
    if (!s->metadata_prealloc_checked) {
        s->metadata_prealloc = detect_metadata_prealloc(bs);
        s->metadata_prealloc_checked = true;
    }
    ret = qcow2_co_get_host_offset(bs, offset, &n, &first_host, &type);
    status = type_status(type);
    /* Merge following extents of the same kind, across L2 tables. */
    for (pos = offset + n; ret >= 0 && pos < (uint64_t)offset + bytes;
         pos += n) {
        n = offset + bytes - pos;
        if (qcow2_co_get_host_offset(bs, pos, &n, &host, &t) < 0 ||
            type_status(t) != status ||
            ((status & BDRV_BLOCK_OFFSET_VALID) &&
             host != first_host + (pos - offset))) {
            break;
        }
    }
    qemu_co_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    *pnum = pos - offset;
    if (status & BDRV_BLOCK_OFFSET_VALID) {
        *map = first_host;
        *file = bs->file->bs;
        if (s->metadata_prealloc && (status & BDRV_BLOCK_DATA)) {
            status |= BDRV_BLOCK_RECURSE;
        }
    }
    return status;
}

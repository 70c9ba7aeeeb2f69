/*
 * qcow2 refcounts: the refcount table, refcount blocks and cluster
 * allocation.
 *
 * State: s->refcount_table (CPU order, fully in memory) maps a block index
 * to the host offset of a refcount block; blocks live in the bounded
 * refcount cache. A cluster whose block is missing, or that lies beyond
 * the table, has refcount 0.
 *
 * Allocation searches for a run of free clusters from a hint
 * (s->free_cluster_index) and extends the file when the run lies past
 * its end. Refcount blocks needed to describe the run are created first
 * (self-describing when the block's own cluster is in its range), and
 * the search is retried, so a cluster is never handed out twice.
 *
 * Crash safety:
 *  - a new refcount block is written and flushed before the table entry
 *    pointing to it is written (and flushed);
 *  - a grown refcount table (with the new blocks it needs) is written and
 *    flushed before the header points to it; only then is the old table
 *    freed;
 *  - refcount increases sit in the refcount cache, on which the L2 cache
 *    depends: they reach the disk before any L2 entry using the cluster.
 *    Decreases are issued by callers only after the L2/L1 change that
 *    dropped the reference is on disk, so at worst a crash leaks.
 * Refcounts never wrap: an update beyond refcount_max or below 0 fails
 * with -ERANGE and leaves all refcounts unchanged.
 *
 * All functions expect s->lock held (or exclusive access, as in open).
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include "trace.h"

/* Clusters described by one refcount block. */
static inline uint64_t refblock_entries(const BDRVQcow2State *s)
{
    return 1ULL << s->refcount_block_bits;
}

int coroutine_fn qcow2_co_refcount_init(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t bytes = (uint64_t)s->refcount_table_size * 8;
    int ret;

    s->refcount_table = g_try_malloc0(MAX(bytes, 8));
    if (!s->refcount_table) {
        error_setg(errp, "Could not allocate refcount table");
        return -ENOMEM;
    }
    ret = bdrv_co_pread(bs->file, s->refcount_table_offset, bytes,
                        s->refcount_table, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read refcount table");
        return ret;
    }
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        s->refcount_table[i] = be64_to_cpu(s->refcount_table[i]);
    }
    s->free_cluster_index = 0;
    return 0;
}

void qcow2_refcount_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    g_free(s->refcount_table);
    s->refcount_table = NULL;
}

/*
 * Get the refcount block describing cluster_index into *block (cache
 * reference), or *block = NULL when there is none. -EIO if the table
 * entry is corrupt.
 */
static int coroutine_fn refblock_get(BlockDriverState *bs,
                                     int64_t cluster_index, void **block)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t ti;
    int64_t off = qcow2_refblock_offset(s, cluster_index, &ti);

    *block = NULL;
    if (!off) {
        return 0;
    }
    if (off < 0) {
        off = s->refcount_table[ti] & REFT_OFFSET_MASK;
        return qcow2_co_signal_corruption(bs, off, s->cluster_size,
            "Refblock offset %#" PRIx64 " unaligned (reftable index %#"
            PRIx64 ")", off, ti);
    }
    return qcow2_cache_get(s->refcount_block_cache, off, block);
}

int coroutine_fn qcow2_co_get_refcount(BlockDriverState *bs,
                                       int64_t cluster_index,
                                       uint64_t *refcount)
{
    BDRVQcow2State *s = bs->opaque;
    void *block;
    int ret;

    ret = refblock_get(bs, cluster_index, &block);
    if (ret < 0) {
        return ret;
    }
    if (!block) {
        *refcount = 0;
        return 0;
    }
    *refcount = qcow2_refblock_get(block, s->refcount_order,
                                   cluster_index & (refblock_entries(s) - 1));
    qcow2_cache_put(s->refcount_block_cache, &block);
    return 0;
}

/*
 * First cluster index of a run of n free clusters at or after the hint.
 * Pure search: nothing is changed but the hint.
 */
static int coroutine_fn find_free_run(BlockDriverState *bs, uint64_t n,
                                      int64_t *start)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t idx = s->free_cluster_index;
    int64_t run_start = idx;
    uint64_t run_len = 0;
    bool hint_fixed = false;

    while (run_len < n) {
        uint64_t rc;
        int ret = qcow2_co_get_refcount(bs, idx, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc == 0) {
            if (!hint_fixed) {
                s->free_cluster_index = idx;
                hint_fixed = true;
            }
            run_len++;
        } else {
            run_start = idx + 1;
            run_len = 0;
        }
        idx++;
        if (idx > (int64_t)(L2E_OFFSET_MASK >> s->cluster_bits)) {
            return -EFBIG;
        }
    }
    *start = run_start;
    return 0;
}

/* Write the in-memory refcount table entry ti to disk and flush. */
static int coroutine_fn reftable_write_entry(BlockDriverState *bs,
                                             uint64_t ti)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t be = cpu_to_be64(s->refcount_table[ti]);
    int ret;

    ret = bdrv_co_pwrite(bs->file, s->refcount_table_offset + ti * 8, 8,
                         &be, 0);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_flush(bs->file->bs);
}

/*
 * Create the refcount block for table index ti at free cluster c, which
 * lies in ti's range, so the block describes itself (refcount 1).
 */
static int coroutine_fn refblock_create_self(BlockDriverState *bs,
                                             uint64_t ti, int64_t c)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t off = (uint64_t)c << s->cluster_bits;
    void *block;
    int ret;

    trace_qcow2_refblock_alloc(bs, ti, off);
    ret = qcow2_cache_get_empty(s->refcount_block_cache, off, &block);
    if (ret < 0) {
        return ret;
    }
    memset(block, 0, s->cluster_size);
    qcow2_refblock_set(block, s->refcount_order,
                       c & (refblock_entries(s) - 1), 1);
    qcow2_cache_entry_mark_dirty(s->refcount_block_cache, block);
    qcow2_cache_put(s->refcount_block_cache, &block);
    /* The block must be on disk before the table points to it. */
    ret = qcow2_cache_flush(s->refcount_block_cache);
    if (ret < 0) {
        return ret;
    }
    s->refcount_table[ti] = off;
    ret = reftable_write_entry(bs, ti);
    if (ret < 0) {
        s->refcount_table[ti] = 0;
        qcow2_cache_discard(s->refcount_block_cache, off);
    }
    return ret;
}

/* Plan sizes for a grown table at cluster base: B blocks then T clusters. */
static void reftable_grow_plan(BDRVQcow2State *s, uint64_t needed_ti,
                               uint64_t base, uint64_t *nb_blocks,
                               uint64_t *nb_table_clusters)
{
    uint64_t per_cluster = s->cluster_size / 8;
    uint64_t old_clusters = DIV_ROUND_UP((uint64_t)s->refcount_table_size,
                                         per_cluster);
    uint64_t b = 1, t = 1;

    for (;;) {
        uint64_t last_ti = (base + b + t - 1) >> s->refcount_block_bits;
        uint64_t entries = MAX(needed_ti, last_ti) + 1;
        uint64_t t2 = MAX(DIV_ROUND_UP(entries, per_cluster),
                          old_clusters + old_clusters / 2 + 1);
        uint64_t b2 = last_ti - (base >> s->refcount_block_bits) + 1;
        if (t2 == t && b2 == b) {
            break;
        }
        t = MAX(t, t2);
        b = MAX(b, b2);
    }
    *nb_blocks = b;
    *nb_table_clusters = t;
}

/*
 * Grow the refcount table so that index needed_ti exists. The new table
 * and the refcount blocks describing it are placed past both the end of
 * the file and the area the old table covers, written and flushed, then
 * the header is switched and the old table freed.
 */
static int coroutine_fn reftable_grow(BlockDriverState *bs, uint64_t needed_ti)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t file_size = qcow2_file_size(bs);
    uint64_t base, nb_blocks, nb_tc, first_ti, new_entries, end;
    uint64_t old_offset = s->refcount_table_offset;
    uint32_t old_size = s->refcount_table_size;
    uint64_t *new_table = NULL, *old_table;
    uint8_t *blocks = NULL;
    int ret;

    if (file_size < 0) {
        return file_size;
    }
    base = MAX(DIV_ROUND_UP((uint64_t)file_size, s->cluster_size),
               (uint64_t)old_size << s->refcount_block_bits);
    reftable_grow_plan(s, needed_ti, base, &nb_blocks, &nb_tc);
    new_entries = nb_tc * (s->cluster_size / 8);
    if (new_entries * 8 > QCOW2_MAX_REFTABLE_BYTES) {
        return -EFBIG;
    }
    first_ti = base >> s->refcount_block_bits;
    end = base + nb_blocks + nb_tc;

    /* Refcount blocks: refcount 1 for every new cluster they describe. */
    blocks = qemu_memalign(4096, nb_blocks * s->cluster_size);
    memset(blocks, 0, nb_blocks * s->cluster_size);
    for (uint64_t c = base; c < end; c++) {
        uint64_t b = (c >> s->refcount_block_bits) - first_ti;
        qcow2_refblock_set(blocks + b * s->cluster_size, s->refcount_order,
                           c & (refblock_entries(s) - 1), 1);
    }
    new_table = qemu_memalign(4096, nb_tc * s->cluster_size);
    memset(new_table, 0, nb_tc * s->cluster_size);
    for (uint32_t i = 0; i < old_size; i++) {
        new_table[i] = cpu_to_be64(s->refcount_table[i]);
    }
    for (uint64_t b = 0; b < nb_blocks; b++) {
        new_table[first_ti + b] = cpu_to_be64((base + b) << s->cluster_bits);
    }
    trace_qcow2_reftable_grow(bs, old_size, new_entries,
                              (base + nb_blocks) << s->cluster_bits);

    ret = bdrv_co_pwrite(bs->file, base << s->cluster_bits,
                         nb_blocks * s->cluster_size, blocks, 0);
    if (ret >= 0) {
        ret = bdrv_co_pwrite(bs->file, (base + nb_blocks) << s->cluster_bits,
                             nb_tc * s->cluster_size, new_table, 0);
    }
    if (ret >= 0) {
        ret = bdrv_co_flush(bs->file->bs);
    }
    if (ret < 0) {
        goto out;
    }

    /* Switch the header to the new table (one write, then flush). */
    s->refcount_table_offset = (base + nb_blocks) << s->cluster_bits;
    s->refcount_table_size = new_entries;
    ret = qcow2_co_update_header(bs);
    if (ret < 0) {
        s->refcount_table_offset = old_offset;
        s->refcount_table_size = old_size;
        goto out;
    }
    old_table = s->refcount_table;
    s->refcount_table = g_new0(uint64_t, new_entries);
    for (uint64_t i = 0; i < new_entries; i++) {
        s->refcount_table[i] = be64_to_cpu(new_table[i]);
    }
    g_free(old_table);

    /* Nothing references the old table any more: free it (may leak). */
    qcow2_co_free_clusters(bs, old_offset, (uint64_t)old_size * 8);
    ret = 0;
out:
    qemu_vfree(blocks);
    qemu_vfree(new_table);
    return ret;
}

/*
 * Make sure table index ti has a refcount block, creating (and growing
 * the table) as needed. The block is placed at the first free cluster.
 */
static int coroutine_fn refblock_ensure(BlockDriverState *bs, uint64_t ti)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    for (int guard = 0; guard < 64; guard++) {
        int64_t c;
        uint64_t cti;
        void *block;

        if (ti >= s->refcount_table_size) {
            ret = reftable_grow(bs, ti);
            if (ret < 0) {
                return ret;
            }
            continue;
        }
        if (s->refcount_table[ti]) {
            return 0;
        }
        ret = find_free_run(bs, 1, &c);
        if (ret < 0) {
            return ret;
        }
        cti = c >> s->refcount_block_bits;
        if (cti == ti) {
            return refblock_create_self(bs, ti, c);
        }
        if (cti >= s->refcount_table_size || !s->refcount_table[cti]) {
            ret = refblock_ensure(bs, cti);
            if (ret < 0) {
                return ret;
            }
            continue;
        }
        /* c is described by an existing block: take it for ti's block. */
        ret = qcow2_co_update_refcount(bs, c << s->cluster_bits, 1, 1);
        if (ret < 0) {
            return ret;
        }
        trace_qcow2_refblock_alloc(bs, ti, (uint64_t)c << s->cluster_bits);
        ret = qcow2_cache_get_empty(s->refcount_block_cache,
                                    (uint64_t)c << s->cluster_bits, &block);
        if (ret < 0) {
            return ret;
        }
        memset(block, 0, s->cluster_size);
        qcow2_cache_entry_mark_dirty(s->refcount_block_cache, block);
        qcow2_cache_put(s->refcount_block_cache, &block);
        ret = qcow2_cache_flush(s->refcount_block_cache);
        if (ret < 0) {
            return ret;
        }
        s->refcount_table[ti] = (uint64_t)c << s->cluster_bits;
        return reftable_write_entry(bs, ti);
    }
    return -EIO;
}

/*
 * Add addend to the refcount of cluster index c. The block must exist
 * when addend > 0 (refblock_ensure). -ERANGE on overflow/underflow.
 */
static int coroutine_fn refcount_add_one(BlockDriverState *bs, int64_t c,
                                         int64_t addend)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t idx = c & (refblock_entries(s) - 1);
    uint64_t old, new;
    void *block;
    int ret;

    ret = refblock_get(bs, c, &block);
    if (ret < 0) {
        return ret;
    }
    if (!block) {
        return addend > 0 ? -EIO : -ERANGE;
    }
    old = qcow2_refblock_get(block, s->refcount_order, idx);
    if (addend > 0 ? (uint64_t)addend > s->refcount_max - old
                   : (uint64_t)-addend > old) {
        qcow2_cache_put(s->refcount_block_cache, &block);
        return -ERANGE;
    }
    new = old + addend;
    qcow2_refblock_set(block, s->refcount_order, idx, new);
    qcow2_cache_entry_mark_dirty(s->refcount_block_cache, block);
    qcow2_cache_put(s->refcount_block_cache, &block);
    if (new == 0) {
        uint64_t off = (uint64_t)c << s->cluster_bits;
        if (c < s->free_cluster_index) {
            s->free_cluster_index = c;
        }
        /* A freed table must never be written back over reused space. */
        qcow2_cache_discard(s->l2_table_cache, off);
        qcow2_cache_discard(s->refcount_block_cache, off);
    }
    return 0;
}

int coroutine_fn qcow2_co_update_refcount(BlockDriverState *bs,
                                          int64_t offset, int64_t length,
                                          int64_t addend)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t first, last, c;
    int ret = 0;

    if (length <= 0 || offset < 0) {
        return length == 0 ? 0 : -EINVAL;
    }
    first = offset >> s->cluster_bits;
    last = (offset + length - 1) >> s->cluster_bits;
    if (addend > 0) {
        for (c = first; c <= last; c++) {
            ret = refblock_ensure(bs, c >> s->refcount_block_bits);
            if (ret < 0) {
                return ret;
            }
        }
    }
    for (c = first; c <= last; c++) {
        ret = refcount_add_one(bs, c, addend);
        if (ret < 0) {
            break;
        }
    }
    if (ret < 0) {
        int64_t bad = c;
        /* Roll back what was applied so the update is all-or-nothing. */
        while (--c >= first) {
            refcount_add_one(bs, c, -addend);
        }
        if (ret == -ERANGE) {
            error_report("qcow2: refcount %s for cluster %" PRId64
                         " of '%s'", addend > 0 ? "overflow" : "underflow",
                         bad, bs->filename);
        }
    }
    return ret;
}

int coroutine_fn qcow2_co_set_refcount(BlockDriverState *bs,
                                       int64_t cluster_index, uint64_t value)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old;
    int ret;

    if (value > s->refcount_max) {
        return -ERANGE;
    }
    ret = qcow2_co_get_refcount(bs, cluster_index, &old);
    if (ret < 0 || old == value) {
        return ret;
    }
    if (value > old) {
        ret = refblock_ensure(bs, cluster_index >> s->refcount_block_bits);
        if (ret < 0) {
            return ret;
        }
    }
    return refcount_add_one(bs, cluster_index,
                            value > old ? (int64_t)(value - old)
                                        : -(int64_t)(old - value));
}

int64_t coroutine_fn qcow2_co_alloc_clusters(BlockDriverState *bs,
                                             uint64_t size)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t n = DIV_ROUND_UP(size, s->cluster_size);
    int64_t start;
    int ret;

    if (s->corrupt_signalled) {
        return -EIO;
    }
    for (int guard = 0; guard < 1024; guard++) {
        bool missing = false;

        ret = find_free_run(bs, n, &start);
        if (ret < 0) {
            return ret;
        }
        /* Create missing refcount blocks first, then search again. */
        for (uint64_t ti = start >> s->refcount_block_bits;
             ti <= (start + n - 1) >> s->refcount_block_bits; ti++) {
            if (ti >= s->refcount_table_size || !s->refcount_table[ti]) {
                ret = refblock_ensure(bs, ti);
                if (ret < 0) {
                    return ret;
                }
                missing = true;
                break;
            }
        }
        if (missing) {
            continue;
        }
        ret = qcow2_co_update_refcount(bs, start << s->cluster_bits,
                                       n << s->cluster_bits, 1);
        if (ret < 0) {
            return ret;
        }
        if (start == s->free_cluster_index) {
            s->free_cluster_index = start + n;
        }
        trace_qcow2_alloc_clusters(bs, size, start << s->cluster_bits);
        return start << s->cluster_bits;
    }
    return -EIO;
}

int coroutine_fn qcow2_co_free_clusters(BlockDriverState *bs,
                                        int64_t offset, int64_t size)
{
    int ret;

    trace_qcow2_free_clusters(bs, offset, size);
    ret = qcow2_co_update_refcount(bs, offset, size, -1);
    if (ret < 0) {
        warn_report("qcow2: could not free clusters of '%s' at %#" PRIx64
                    " (%s); they leak", bs->filename, (uint64_t)offset,
                    strerror(-ret));
    }
    return ret;
}

int coroutine_fn qcow2_co_free_l2e_clusters(BlockDriverState *bs,
                                            uint64_t l2e)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t host, csize;

    switch (qcow2_l2e_type(l2e)) {
    case QCOW2_CLUSTER_COMPRESSED:
        qcow2_compressed_decode(s->cluster_bits, l2e, &host, &csize);
        return qcow2_co_free_clusters(bs, host, csize);
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return qcow2_co_free_clusters(bs, l2e & L2E_OFFSET_MASK,
                                      s->cluster_size);
    default:
        return 0;
    }
}

int64_t coroutine_fn qcow2_co_refcount_end(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    for (int64_t ti = (int64_t)s->refcount_table_size - 1; ti >= 0; ti--) {
        int64_t base = ti << s->refcount_block_bits;
        if (!s->refcount_table[ti]) {
            continue;
        }
        for (int64_t i = refblock_entries(s) - 1; i >= 0; i--) {
            uint64_t rc;
            int ret = qcow2_co_get_refcount(bs, base + i, &rc);
            if (ret < 0) {
                return ret;
            }
            if (rc) {
                return (base + i + 1) << s->cluster_bits;
            }
        }
    }
    return 0;
}

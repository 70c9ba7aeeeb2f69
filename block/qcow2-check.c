/*
 * qcow2 consistency check and repair (`qemu-img check` semantics).
 *
 * State: the check builds its own array of expected refcounts, one
 * counter per host cluster of the file, by walking every structure that
 * references clusters: the header, the active L1 table and its L2 tables,
 * every snapshot's L1/L2 tables (shared clusters count once per
 * reference), the snapshot table, the refcount table and its blocks and,
 * while the autoclear bit says they are valid, persistent bitmaps. It
 * then compares the array with the stored refcounts, which it reads from
 * disk itself (the driver's refcount cache is flushed first), so that a
 * corrupt refcount table entry is reported rather than "signalled".
 * Output lines on stderr follow qemu-img's wording so that tools and
 * people can compare the two.
 *
 * Repair order and crash safety:
 *  1. L1/L2 entries pointing past the end of the file (FIX_ERRORS) are
 *     cleared and flushed before any refcount changes: dropping a
 *     reference can only turn the cluster into a leak;
 *  2. refcounts that are too low are raised, then everything is flushed;
 *  3. only then are leaked refcounts lowered (and flushed). A crash
 *     between 2 and 3 leaves leaks, never a used cluster with a too-low
 *     refcount. New refcount blocks needed by step 2 are allocated above
 *     every referenced cluster (the allocation hint is raised first), so
 *     a cluster whose stored refcount is wrongly 0 is never handed out;
 *  4. OFLAG_COPIED flags are fixed against the repaired refcounts.
 * Rebuilding refcount structures that are themselves broken (unaligned
 * or misplaced refcount blocks) is not supported and fails loudly.
 *
 * Locking: runs in a coroutine with s->lock held (taken here unless the
 * caller, e.g. open, already holds it).
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include "trace.h"

/* Everything one check run needs; lives on the coroutine's stack. */
typedef struct Qcow2CheckState {
    BlockDriverState *bs;
    BDRVQcow2State *s;
    BdrvCheckResult *res;
    BdrvCheckMode fix;
    int64_t file_size;
    uint64_t nb_clusters;        /* clusters of the file (rounded up) */
    uint32_t *expected;          /* references found, per host cluster */
    uint64_t expected_size;      /* entries allocated in expected */
    uint64_t expected_used;      /* entries the comparison covers */
    uint32_t expected_max;       /* saturation value (refcount_max) */
    bool rebuild;                /* refcount structures are broken */
    bool zero_refcount;          /* a used cluster has stored refcount 0 */
    bool tables_changed;         /* L1/L2 entries were repaired */
    int64_t highest_cluster;     /* highest cluster used or referenced */
    /* One-block cache of the stored-refcount reader. */
    uint8_t *rb_buf;
    int64_t rb_index;
} Qcow2CheckState;

/* A refcount the repair pass will change. */
typedef struct Qcow2RefcountFix {
    int64_t cluster;
    uint64_t stored;
    uint64_t expected;
} Qcow2RefcountFix;

/* ---- Reading metadata */

/*
 * Read size bytes at offset of the image file into buf; bytes at or past
 * the end of the file read as zeroes (as an unwritten tail would).
 */
static int coroutine_fn check_co_read(Qcow2CheckState *cs, uint64_t offset,
                                      uint64_t size, void *buf)
{
    uint64_t avail = 0;
    int ret;

    if (offset < (uint64_t)cs->file_size) {
        avail = MIN(size, (uint64_t)cs->file_size - offset);
    }
    memset((uint8_t *)buf + avail, 0, size - avail);
    if (avail == 0) {
        return 0;
    }
    ret = bdrv_co_pread(cs->bs->file, offset, avail, buf, 0);
    if (ret < 0) {
        trace_qcow2_check_io_error(cs->bs, offset, size, ret);
    }
    return ret < 0 ? ret : 0;
}

/*
 * Stored refcount of cluster c, read from the refcount block on disk.
 * -EIO if the refcount table entry for c is not cluster aligned.
 */
static int coroutine_fn check_co_stored_refcount(Qcow2CheckState *cs,
                                                 int64_t c, uint64_t *rc)
{
    BDRVQcow2State *s = cs->s;
    uint64_t ti;
    int64_t off = qcow2_refblock_offset(s, c, &ti);
    int ret;

    *rc = 0;
    if (off <= 0) {
        return off;
    }
    if (cs->rb_index != (int64_t)ti) {
        cs->rb_index = -1;
        ret = check_co_read(cs, off, s->cluster_size, cs->rb_buf);
        if (ret < 0) {
            return ret;
        }
        cs->rb_index = ti;
    }
    *rc = qcow2_refblock_get(cs->rb_buf, s->refcount_order,
                             c & ((1ULL << s->refcount_block_bits) - 1));
    return 0;
}

/* ---- Counting references */

/*
 * Count one reference to every cluster touched by [offset, offset+size).
 * A range ending a cluster or more past the end of the file is reported
 * as corruption and not counted (as qemu-img does).
 */
static void check_inc_refs(Qcow2CheckState *cs, uint64_t offset,
                           uint64_t size)
{
    BDRVQcow2State *s = cs->s;
    uint64_t end = offset + size;
    uint64_t first, last;

    if (size == 0) {
        return;
    }
    if (end < offset || (end > (uint64_t)cs->file_size &&
                         end - cs->file_size >= (uint64_t)s->cluster_size)) {
        fprintf(stderr, "ERROR: counting reference for region exceeding the "
                "end of the file by one cluster or more: offset 0x%" PRIx64
                " size 0x%" PRIx64 "\n", offset, size);
        cs->res->corruptions++;
        return;
    }
    first = offset >> s->cluster_bits;
    last = (end - 1) >> s->cluster_bits;
    /* expected has nb_clusters + 1 entries: enough for the bound above. */
    for (uint64_t c = first; c <= last && c < cs->expected_size; c++) {
        if (cs->expected[c] >= cs->expected_max) {
            fprintf(stderr, "ERROR: overflow cluster offset=0x%" PRIx64 "\n",
                    c << s->cluster_bits);
            fprintf(stderr, "Use a wider refcount_bits (qemu-img amend) or "
                    "convert the image to a clean copy\n");
            cs->res->corruptions++;
            continue;
        }
        cs->expected[c]++;
        cs->expected_used = MAX(cs->expected_used, c + 1);
    }
}

/* True if a cluster at host offset lies wholly past the end of file. */
static bool check_past_eof(Qcow2CheckState *cs, uint64_t offset)
{
    return offset >= (uint64_t)cs->file_size;
}

/* ---- L2 tables */

/*
 * Cluster-level type of an L2 entry as the check sees it: with extended
 * L2 entries bit 0 is no zero flag (the bitmap is judged separately).
 */
static Qcow2ClusterType check_l2e_type(const BDRVQcow2State *s, uint64_t l2e)
{
    if (!s->extended_l2) {
        return qcow2_l2e_type(l2e);
    }
    if (l2e & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    return (l2e & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_NORMAL
                                   : QCOW2_CLUSTER_UNALLOCATED;
}

/* Per-L2-table walk state (fragmentation is judged within one table). */
typedef struct Qcow2L2Walk {
    uint64_t l2_offset;
    bool frag_info;              /* count bfi (active L1 only) */
    uint64_t next_contiguous;    /* expected host offset of next cluster */
} Qcow2L2Walk;

/*
 * Replace entry idx of the (cluster-aligned) L2 table at l2_offset with
 * new_entry through the L2 cache. 0 or -errno.
 */
static int coroutine_fn check_co_set_l2e(Qcow2CheckState *cs,
                                         uint64_t l2_offset, int idx,
                                         uint64_t new_entry)
{
    BDRVQcow2State *s = cs->s;
    void *table;
    int ret;

    if (qcow2_offset_into_cluster(s, l2_offset)) {
        return -EINVAL;
    }
    ret = qcow2_cache_get(s->l2_table_cache, l2_offset, &table);
    if (ret < 0) {
        return ret;
    }
    qcow2_l2e_set(s, table, idx, new_entry);
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, table);
    qcow2_cache_put(s->l2_table_cache, &table);
    cs->tables_changed = true;
    return 0;
}

/*
 * Repair one L2 entry (FIX_ERRORS only) to new_entry; what names the
 * problem. Counts a fixed corruption, or a check error on failure.
 */
static void coroutine_fn check_co_fix_l2e(Qcow2CheckState *cs,
                                          Qcow2L2Walk *w, int idx,
                                          uint64_t new_entry)
{
    int ret = check_co_set_l2e(cs, w->l2_offset, idx, new_entry);

    if (ret < 0) {
        fprintf(stderr, "ERROR: could not repair L2 entry %d of table at "
                "0x%" PRIx64 ": %s\n", idx, w->l2_offset, strerror(-ret));
        cs->res->check_errors++;
        cs->res->corruptions++;
        return;
    }
    cs->res->corruptions_fixed++;
}

/* Check a normal or preallocated-zero L2 entry (index idx). */
static void coroutine_fn check_co_l2e_data(Qcow2CheckState *cs,
                                           Qcow2L2Walk *w, int idx,
                                           uint64_t l2e, uint64_t bitmap)
{
    BDRVQcow2State *s = cs->s;
    uint64_t offset = l2e & L2E_OFFSET_MASK;
    bool fix = cs->fix & BDRV_FIX_ERRORS;

    if (s->extended_l2 && ((bitmap >> 32) & bitmap & 0xffffffffULL)) {
        fprintf(stderr, "ERROR: Invalid cluster entry: the same subcluster "
                "is marked as allocated and zero (L2 entry %d at 0x%" PRIx64
                ")\n", idx, w->l2_offset);
        cs->res->corruptions++;
    }
    if (w->frag_info) {
        cs->res->bfi.allocated_clusters++;
        if (w->next_contiguous && offset != w->next_contiguous) {
            cs->res->bfi.fragmented_clusters++;
        }
        w->next_contiguous = offset + s->cluster_size;
    }
    if (fix && check_past_eof(cs, offset)) {
        /* The data is gone anyway; make the guest see zeroes, not garbage. */
        fprintf(stderr, "Repairing offset=%" PRIx64 ": cluster lies past the "
                "end of the file; L2 entry cleared\n", offset);
        check_co_fix_l2e(cs, w, idx, 0);
        return;
    }
    if (qcow2_offset_into_cluster(s, offset)) {
        bool has_data = s->extended_l2 ? (bitmap & 0xffffffffULL) != 0
                                       : !(l2e & QCOW_OFLAG_ZERO);
        if (has_data) {
            fprintf(stderr, "ERROR offset=%" PRIx64 ": Data cluster is not "
                    "properly aligned; L2 entry corrupted.\n", offset);
            cs->res->corruptions++;
        } else {
            fprintf(stderr, "%s offset=%" PRIx64 ": Preallocated cluster is "
                    "not properly aligned; L2 entry corrupted.\n",
                    fix ? "Repairing" : "ERROR", offset);
            if (fix) {
                /* Reads as zero either way: drop the bogus host offset. */
                check_co_fix_l2e(cs, w, idx, QCOW_OFLAG_ZERO);
                return;
            }
            cs->res->corruptions++;
        }
    }
    check_inc_refs(cs, offset, s->cluster_size);
}

/* Check a compressed L2 entry (index idx). */
static void coroutine_fn check_co_l2e_compressed(Qcow2CheckState *cs,
                                                 Qcow2L2Walk *w, int idx,
                                                 uint64_t l2e,
                                                 uint64_t bitmap)
{
    BDRVQcow2State *s = cs->s;
    uint64_t host, csize;

    if (l2e & QCOW_OFLAG_COPIED) {
        fprintf(stderr, "ERROR: coffset=0x%" PRIx64 ": copied flag must never "
                "be set for compressed clusters\n",
                l2e & s->cluster_offset_mask);
        l2e &= ~QCOW_OFLAG_COPIED;
        cs->res->corruptions++;
    }
    if (bitmap) {
        fprintf(stderr, "ERROR compressed cluster %d with non-zero subcluster "
                "allocation bitmap, entry=0x%" PRIx64 "\n", idx, l2e);
        cs->res->corruptions++;
    }
    qcow2_compressed_decode(s->cluster_bits, l2e, &host, &csize);
    if ((cs->fix & BDRV_FIX_ERRORS) && check_past_eof(cs, host)) {
        fprintf(stderr, "Repairing coffset=0x%" PRIx64 ": compressed data "
                "lies past the end of the file; L2 entry cleared\n", host);
        check_co_fix_l2e(cs, w, idx, 0);
        return;
    }
    check_inc_refs(cs, host, csize);
    /* Compressed clusters count as fragmented by nature (qemu-img). */
    if (w->frag_info) {
        cs->res->bfi.allocated_clusters++;
        cs->res->bfi.compressed_clusters++;
        cs->res->bfi.fragmented_clusters++;
    }
}

/* Walk the L2 table at l2_offset, counting the clusters it references. */
static int coroutine_fn check_co_l2_table(Qcow2CheckState *cs,
                                          uint64_t l2_offset, bool frag_info)
{
    BDRVQcow2State *s = cs->s;
    Qcow2L2Walk w = { .l2_offset = l2_offset, .frag_info = frag_info };
    g_autofree uint8_t *l2 = g_malloc(s->cluster_size);
    int ret;

    ret = check_co_read(cs, l2_offset, s->cluster_size, l2);
    if (ret < 0) {
        fprintf(stderr, "ERROR: could not read L2 table at 0x%" PRIx64
                ": %s\n", l2_offset, strerror(-ret));
        cs->res->check_errors++;
        return ret;
    }
    for (int i = 0; i < s->l2_size; i++) {
        uint64_t l2e = qcow2_l2e_get(s, l2, i);
        uint64_t bitmap = qcow2_l2_bitmap_get(s, l2, i);

        switch (check_l2e_type(s, l2e)) {
        case QCOW2_CLUSTER_COMPRESSED:
            check_co_l2e_compressed(cs, &w, i, l2e, bitmap);
            break;
        case QCOW2_CLUSTER_NORMAL:
        case QCOW2_CLUSTER_ZERO_ALLOC:
            check_co_l2e_data(cs, &w, i, l2e, bitmap);
            break;
        default:
            if (bitmap & 0xffffffffULL) {
                fprintf(stderr, "ERROR: Unallocated cluster has non-zero "
                        "subcluster allocation bitmap (L2 entry %d at 0x%"
                        PRIx64 ")\n", i, l2_offset);
                cs->res->corruptions++;
            }
            break;
        }
    }
    return 0;
}

/* ---- L1 tables */

/*
 * Clear entry idx of the L1 table at l1_offset on disk (and in memory
 * for the active table). FIX_ERRORS only.
 */
static void coroutine_fn check_co_clear_l1e(Qcow2CheckState *cs,
                                            uint64_t l1_offset, uint32_t idx,
                                            bool active)
{
    uint64_t zero = 0;
    int ret;

    ret = bdrv_co_pwrite(cs->bs->file, l1_offset + (uint64_t)idx * 8, 8,
                         &zero, 0);
    if (ret < 0) {
        fprintf(stderr, "ERROR: could not clear L1 entry %" PRIu32 ": %s\n",
                idx, strerror(-ret));
        cs->res->check_errors++;
        cs->res->corruptions++;
        return;
    }
    if (active) {
        cs->s->l1_table[idx] = 0;
    }
    cs->tables_changed = true;
    cs->res->corruptions_fixed++;
}

/*
 * Count the L1 table at l1_offset (l1_size entries) and every L2 table
 * it references. frag_info: this is the active table (fills res->bfi).
 */
static int coroutine_fn check_co_l1_table(Qcow2CheckState *cs,
                                          uint64_t l1_offset,
                                          uint32_t l1_size, bool active)
{
    BDRVQcow2State *s = cs->s;
    g_autofree uint64_t *l1 = NULL;
    int ret;

    if (l1_size == 0) {
        return 0;
    }
    check_inc_refs(cs, l1_offset, (uint64_t)l1_size * 8);
    l1 = g_try_new(uint64_t, l1_size);
    if (!l1) {
        cs->res->check_errors++;
        return -ENOMEM;
    }
    ret = check_co_read(cs, l1_offset, (uint64_t)l1_size * 8, l1);
    if (ret < 0) {
        fprintf(stderr, "ERROR: could not read L1 table at 0x%" PRIx64
                ": %s\n", l1_offset, strerror(-ret));
        cs->res->check_errors++;
        return ret;
    }
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_offset = be64_to_cpu(l1[i]) & L1E_OFFSET_MASK;

        if (!l2_offset) {
            continue;
        }
        if ((cs->fix & BDRV_FIX_ERRORS) && check_past_eof(cs, l2_offset)) {
            fprintf(stderr, "Repairing l2_offset=%" PRIx64 ": L2 table lies "
                    "past the end of the file; L1 entry cleared\n",
                    l2_offset);
            check_co_clear_l1e(cs, l1_offset, i, active);
            continue;
        }
        check_inc_refs(cs, l2_offset, s->cluster_size);
        if (qcow2_offset_into_cluster(s, l2_offset)) {
            fprintf(stderr, "ERROR l2_offset=%" PRIx64 ": Table is not "
                    "cluster aligned; L1 entry corrupted\n", l2_offset);
            cs->res->corruptions++;
        }
        if (check_past_eof(cs, l2_offset)) {
            continue;           /* nothing to read: it would be all zero */
        }
        ret = check_co_l2_table(cs, l2_offset, active);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/* Count the L1/L2 tables of every internal snapshot. */
static int coroutine_fn check_co_snapshots(Qcow2CheckState *cs)
{
    BDRVQcow2State *s = cs->s;
    int ret;

    for (uint32_t i = 0; i < s->nb_snapshots && s->snapshots; i++) {
        QCowSnapshot *sn = &s->snapshots[i];

        if (qcow2_offset_into_cluster(s, sn->l1_table_offset)) {
            fprintf(stderr, "ERROR snapshot %s (%s) l1_offset=%#" PRIx64
                    ": L1 table is not cluster aligned; snapshot table "
                    "entry corrupted\n", sn->id_str, sn->name,
                    sn->l1_table_offset);
            cs->res->corruptions++;
            continue;
        }
        if (sn->l1_size > QCOW2_MAX_L1_BYTES / 8) {
            fprintf(stderr, "ERROR snapshot %s (%s) l1_size=%#" PRIx32
                    ": L1 table is too large; snapshot table entry "
                    "corrupted\n", sn->id_str, sn->name, sn->l1_size);
            cs->res->corruptions++;
            continue;
        }
        ret = check_co_l1_table(cs, sn->l1_table_offset, sn->l1_size, false);
        if (ret < 0) {
            return ret;
        }
    }
    check_inc_refs(cs, s->snapshots_offset, s->snapshots_size);
    return 0;
}

/* ---- Persistent bitmaps (counted only while the autoclear bit is set) */

/* Count one bitmap table and the bitmap data clusters it lists. */
static int coroutine_fn check_co_bitmap_table(Qcow2CheckState *cs,
                                              uint64_t offset, uint32_t size)
{
    BDRVQcow2State *s = cs->s;
    g_autofree uint64_t *table = NULL;
    int ret;

    if ((uint64_t)size * 8 > QCOW2_MAX_L1_BYTES) {
        fprintf(stderr, "ERROR bitmap table at 0x%" PRIx64 " is too large\n",
                offset);
        cs->res->corruptions++;
        return 0;
    }
    check_inc_refs(cs, offset, (uint64_t)size * 8);
    table = g_new(uint64_t, MAX(size, 1));
    ret = check_co_read(cs, offset, (uint64_t)size * 8, table);
    if (ret < 0) {
        cs->res->check_errors++;
        return ret;
    }
    for (uint32_t i = 0; i < size; i++) {
        uint64_t data = be64_to_cpu(table[i]) & L1E_OFFSET_MASK;
        if (data) {
            check_inc_refs(cs, data, s->cluster_size);
        }
    }
    return 0;
}

/* Count the bitmap directory named by extension data ext (24 bytes). */
static int coroutine_fn check_co_bitmaps(Qcow2CheckState *cs,
                                         const Qcow2UnknownExt *ext)
{
    uint32_t nb_bitmaps;
    uint64_t dir_size, dir_offset, pos = 0;
    g_autofree uint8_t *dir = NULL;
    int ret;

    if (ext->len < 24) {
        return 0;
    }
    nb_bitmaps = ldbe32_p(ext->data);
    dir_size = ldbe64_p(ext->data + 8);
    dir_offset = ldbe64_p(ext->data + 16);
    if (dir_size > QCOW2_MAX_HEADER_EXT_BYTES * 16) {
        fprintf(stderr, "ERROR bitmap directory is too large\n");
        cs->res->corruptions++;
        return 0;
    }
    check_inc_refs(cs, dir_offset, dir_size);
    dir = g_malloc0(dir_size + 1);
    ret = check_co_read(cs, dir_offset, dir_size, dir);
    if (ret < 0) {
        cs->res->check_errors++;
        return ret;
    }
    /* Entry: table offset(8) size(4) flags(4) type(1) gran(1) name(2) extra(4) */
    for (uint32_t i = 0; i < nb_bitmaps && pos + 24 <= dir_size; i++) {
        uint64_t table_offset = ldbe64_p(dir + pos);
        uint32_t table_size = ldbe32_p(dir + pos + 8);
        uint16_t name_size = ldbe16_p(dir + pos + 18);
        uint32_t extra_size = ldbe32_p(dir + pos + 20);

        ret = check_co_bitmap_table(cs, table_offset, table_size);
        if (ret < 0) {
            return ret;
        }
        pos += ROUND_UP_POW2(24 + (uint64_t)name_size + extra_size, 8);
    }
    return 0;
}

/* ---- Refcount structures */

/*
 * Write refcount table entry i as value, on disk and in memory
 * (FIX_ERRORS only). Counts a fixed corruption, or a check error.
 */
static int coroutine_fn check_co_set_reftable_entry(Qcow2CheckState *cs,
                                                    uint64_t i,
                                                    uint64_t value)
{
    BDRVQcow2State *s = cs->s;
    uint64_t old = s->refcount_table[i] & REFT_OFFSET_MASK;
    uint64_t be = cpu_to_be64(value);
    int ret;

    ret = bdrv_co_pwrite_sync(cs->bs->file,
                              s->refcount_table_offset + i * 8, 8, &be, 0);
    if (ret < 0) {
        fprintf(stderr, "ERROR could not write refcount table entry %" PRIu64
                ": %s\n", i, strerror(-ret));
        cs->res->check_errors++;
        cs->res->corruptions++;
        return ret;
    }
    if (old && !qcow2_offset_into_cluster(s, old)) {
        qcow2_cache_discard(s->refcount_block_cache, old);
    }
    s->refcount_table[i] = value;
    cs->rb_index = -1;
    cs->res->corruptions_fixed++;
    return 0;
}

/*
 * Judge refcount table entry i before it is used: reserved bits, an
 * unaligned or out-of-image block. With FIX_ERRORS the entry is
 * repaired (bits cleared, or the entry dropped so that the refcount
 * repair recreates the block); otherwise the refcount structures are
 * flagged for a rebuild. Returns true if the entry may be counted.
 */
static bool coroutine_fn check_co_reftable_entry(Qcow2CheckState *cs,
                                                 uint64_t i)
{
    BDRVQcow2State *s = cs->s;
    bool fix = cs->fix & BDRV_FIX_ERRORS;
    uint64_t off = s->refcount_table[i] & REFT_OFFSET_MASK;
    const char *what = NULL;

    if (s->refcount_table[i] & REFT_RESERVED_MASK) {
        fprintf(stderr, "%s refcount table entry %" PRIu64 " has reserved "
                "bits set\n", fix ? "Repairing" : "ERROR", i);
        if (!fix) {
            cs->res->corruptions++;
            cs->rebuild = true;
            return false;
        }
        if (check_co_set_reftable_entry(cs, i, off) < 0) {
            return false;
        }
    }
    if (qcow2_offset_into_cluster(s, off)) {
        what = "is not cluster aligned; refcount table entry corrupted";
    } else if ((off >> s->cluster_bits) >= cs->nb_clusters) {
        what = "is outside image";
    }
    if (!what) {
        return off != 0;
    }
    fprintf(stderr, "%s refcount block %" PRIu64 " %s%s\n",
            fix ? "Repairing" : "ERROR", i, what,
            fix ? " (entry dropped)" : "");
    if (!fix) {
        cs->res->corruptions++;
        cs->rebuild = true;
    } else {
        check_co_set_reftable_entry(cs, i, 0);
    }
    return false;
}

/* Count the refcount blocks and flag those that cannot be trusted. */
static void coroutine_fn check_co_refblocks(Qcow2CheckState *cs)
{
    BDRVQcow2State *s = cs->s;

    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t off = s->refcount_table[i] & REFT_OFFSET_MASK;
        uint64_t c = off >> s->cluster_bits;

        if (!check_co_reftable_entry(cs, i)) {
            continue;
        }
        check_inc_refs(cs, off, s->cluster_size);
        if (cs->expected[c] != 1) {
            /* Shared with other metadata or data: needs a real rebuild. */
            fprintf(stderr, "ERROR refcount block %" PRIu64
                    " refcount=%" PRIu32 "\n", i, cs->expected[c]);
            cs->res->corruptions++;
            cs->rebuild = true;
        }
    }
}

/* Build the expected-refcount array from every metadata structure. */
static int coroutine_fn check_co_calculate(Qcow2CheckState *cs)
{
    BDRVQcow2State *s = cs->s;
    int ret;

    check_inc_refs(cs, 0, s->cluster_size);                  /* header */
    ret = check_co_l1_table(cs, s->l1_table_offset, s->l1_size, true);
    if (ret < 0) {
        return ret;
    }
    ret = check_co_snapshots(cs);
    if (ret < 0) {
        return ret;
    }
    check_inc_refs(cs, s->refcount_table_offset,
                   (uint64_t)s->refcount_table_size * 8);
    if (s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) {
        for (GSList *l = s->unknown_header_ext; l; l = l->next) {
            Qcow2UnknownExt *ext = l->data;
            if (ext->magic == QCOW2_EXT_BITMAPS) {
                ret = check_co_bitmaps(cs, ext);
                if (ret < 0) {
                    return ret;
                }
            }
        }
    }
    check_co_refblocks(cs);
    return 0;
}

/*
 * Compare stored and expected refcounts of every cluster and print one
 * line per mismatch. With fix, mismatches that may be repaired are
 * printed as "Repairing" and appended to raise/lower instead of being
 * counted (the caller applies and counts them).
 */
static void coroutine_fn check_co_compare(Qcow2CheckState *cs,
                                          BdrvCheckMode fix, GArray *raise,
                                          GArray *lower)
{
    BdrvCheckResult *res = cs->res;

    for (uint64_t i = 0; i < MAX(cs->nb_clusters, cs->expected_used); i++) {
        Qcow2RefcountFix f = { .cluster = i, .expected = cs->expected[i] };
        GArray *queue = NULL;
        int ret = check_co_stored_refcount(cs, i, &f.stored);

        if (ret < 0) {
            fprintf(stderr, "Can't get refcount for cluster %" PRIu64 ": %s\n",
                    i, strerror(-ret));
            res->check_errors++;
            continue;
        }
        if (f.stored || f.expected) {
            cs->highest_cluster = i;
        }
        if (f.stored == f.expected) {
            continue;
        }
        if (f.stored == 0) {
            cs->zero_refcount = true;
        }
        if (f.stored > f.expected && (fix & BDRV_FIX_LEAKS)) {
            queue = lower;
        } else if (f.stored < f.expected && (fix & BDRV_FIX_ERRORS)) {
            queue = raise;
        }
        fprintf(stderr, "%s cluster %" PRIu64 " refcount=%" PRIu64
                " reference=%" PRIu64 "\n",
                queue ? "Repairing" : f.stored < f.expected ? "ERROR"
                                                             : "Leaked",
                i, f.stored, f.expected);
        if (queue) {
            g_array_append_val(queue, f);
        } else if (f.stored < f.expected) {
            res->corruptions++;
        } else {
            res->leaks++;
        }
    }
}

/*
 * Set the refcounts queued in fixes to their expected values; counted in
 * *fixed, or as an unfixed corruption/leak on failure.
 */
static void coroutine_fn check_co_apply(Qcow2CheckState *cs, GArray *fixes,
                                        int *fixed)
{
    for (guint k = 0; k < fixes->len; k++) {
        Qcow2RefcountFix *f = &g_array_index(fixes, Qcow2RefcountFix, k);
        int ret = qcow2_co_set_refcount(cs->bs, f->cluster, f->expected);

        trace_qcow2_check_fix_refcount(cs->bs, f->cluster, f->stored,
                                       f->expected, ret);
        if (ret < 0) {
            fprintf(stderr, "ERROR could not fix cluster %" PRId64
                    " refcount: %s\n", f->cluster, strerror(-ret));
            cs->res->check_errors++;
            if (f->stored < f->expected) {
                cs->res->corruptions++;
            } else {
                cs->res->leaks++;
            }
            continue;
        }
        (*fixed)++;
    }
}

/* Flush the driver's metadata; counts a check error on failure. */
static int coroutine_fn check_co_flush(Qcow2CheckState *cs)
{
    int ret = qcow2_co_flush_metadata(cs->bs);

    if (ret < 0) {
        fprintf(stderr, "ERROR could not flush repaired metadata: %s\n",
                strerror(-ret));
        cs->res->check_errors++;
    }
    cs->rb_index = -1;          /* the disk changed under the reader */
    if (ret == 0) {
        /* Repairs may have grown the file (new refcount blocks). */
        int64_t size = qcow2_file_size(cs->bs);
        cs->file_size = size < 0 ? cs->file_size : size;
    }
    return ret;
}

/*
 * Repair refcounts: raise the too-low ones, flush, then lower the leaked
 * ones and flush (see the crash-safety note at the top).
 */
static int coroutine_fn check_co_repair_refcounts(Qcow2CheckState *cs,
                                                  GArray *raise,
                                                  GArray *lower)
{
    BDRVQcow2State *s = cs->s;
    int ret;

    /* New refcount blocks go above every cluster anything references. */
    s->free_cluster_index = MAX(s->free_cluster_index,
                                (int64_t)MAX(cs->nb_clusters,
                                             cs->expected_used));
    check_co_apply(cs, raise, &cs->res->corruptions_fixed);
    ret = check_co_flush(cs);
    if (ret < 0) {
        return ret;
    }
    check_co_apply(cs, lower, &cs->res->leaks_fixed);
    return check_co_flush(cs);
}

/* ---- OFLAG_COPIED */

/* Write entry idx of the active L1 table (from s->l1_table) to disk. */
static int coroutine_fn check_co_write_l1e(Qcow2CheckState *cs, uint32_t idx)
{
    BDRVQcow2State *s = cs->s;
    uint64_t be = cpu_to_be64(s->l1_table[idx]);

    return bdrv_co_pwrite_sync(cs->bs->file,
                               s->l1_table_offset + (uint64_t)idx * 8, 8,
                               &be, 0);
}

/*
 * True if the COPIED flag of entry (stored refcount refcount) is wrong;
 * prints the qemu-img line (kind: "L2 cluster" or "data cluster").
 */
static bool check_copied_wrong(uint64_t entry, uint64_t refcount,
                               bool repair, const char *what)
{
    if ((refcount == 1) == !!(entry & QCOW_OFLAG_COPIED)) {
        return false;
    }
    fprintf(stderr, "%s OFLAG_COPIED %s refcount=%" PRIu64 "\n",
            repair ? "Repairing" : "ERROR", what, refcount);
    return true;
}

/* Check (and with repair, fix) COPIED in the L2 table of L1 entry i. */
static int coroutine_fn check_co_copied_l2(Qcow2CheckState *cs,
                                           uint64_t l2_offset, bool repair,
                                           uint8_t *l2)
{
    BDRVQcow2State *s = cs->s;
    int ret = check_co_read(cs, l2_offset, s->cluster_size, l2);

    if (ret < 0) {
        fprintf(stderr, "ERROR: Could not read L2 table: %s\n",
                strerror(-ret));
        cs->res->check_errors++;
        return ret;
    }
    for (int j = 0; j < s->l2_size; j++) {
        uint64_t l2e = qcow2_l2e_get(s, l2, j);
        uint64_t data = l2e & L2E_OFFSET_MASK;
        Qcow2ClusterType type = check_l2e_type(s, l2e);
        uint64_t rc;
        g_autofree char *what = NULL;

        if ((type != QCOW2_CLUSTER_NORMAL && type != QCOW2_CLUSTER_ZERO_ALLOC)
            || check_co_stored_refcount(cs, data >> s->cluster_bits,
                                        &rc) < 0) {
            continue;
        }
        what = g_strdup_printf("data cluster: l2_entry=%" PRIx64, l2e);
        if (!check_copied_wrong(l2e, rc, repair, what)) {
            continue;
        }
        if (!repair) {
            cs->res->corruptions++;
            continue;
        }
        l2e = rc == 1 ? l2e | QCOW_OFLAG_COPIED : l2e & ~QCOW_OFLAG_COPIED;
        ret = check_co_set_l2e(cs, l2_offset, j, l2e);
        if (ret < 0) {
            cs->res->corruptions++;
            cs->res->check_errors++;
            continue;
        }
        cs->res->corruptions_fixed++;
    }
    return 0;
}

/*
 * COPIED must be set exactly on active L1/L2 entries whose cluster has
 * refcount 1. Repaired with FIX_ERRORS, or with FIX_LEAKS when the
 * refcounts are known good (no remaining errors or leaks).
 */
static int coroutine_fn check_co_oflag_copied(Qcow2CheckState *cs)
{
    BDRVQcow2State *s = cs->s;
    BdrvCheckResult *res = cs->res;
    bool repair = (cs->fix & BDRV_FIX_ERRORS) ||
                  ((cs->fix & BDRV_FIX_LEAKS) && !res->check_errors &&
                   !res->corruptions && !res->leaks);
    g_autofree uint8_t *l2 = g_malloc(s->cluster_size);
    int ret;

    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l1e = s->l1_table[i];
        uint64_t l2_offset = l1e & L1E_OFFSET_MASK;
        uint64_t rc;
        g_autofree char *what = NULL;

        if (!l2_offset ||
            check_co_stored_refcount(cs, l2_offset >> s->cluster_bits,
                                     &rc) < 0) {
            continue;
        }
        what = g_strdup_printf("L2 cluster: l1_index=%" PRIu32
                               " l1_entry=%" PRIx64, i, l1e);
        if (check_copied_wrong(l1e, rc, repair, what)) {
            if (!repair) {
                res->corruptions++;
            } else {
                s->l1_table[i] = rc == 1 ? l1e | QCOW_OFLAG_COPIED
                                         : l1e & ~QCOW_OFLAG_COPIED;
                ret = check_co_write_l1e(cs, i);
                if (ret < 0) {
                    s->l1_table[i] = l1e;
                    res->check_errors++;
                    return ret;
                }
                res->corruptions_fixed++;
            }
        }
        if (check_past_eof(cs, l2_offset)) {
            continue;
        }
        ret = check_co_copied_l2(cs, l2_offset, repair, l2);
        if (ret < 0) {
            return ret;
        }
    }
    if (cs->tables_changed) {
        return check_co_flush(cs);
    }
    return 0;
}

/* ---- Top level */

/* Clear the dirty and corrupt header bits after a successful repair. */
static int coroutine_fn check_co_mark_consistent(Qcow2CheckState *cs)
{
    BDRVQcow2State *s = cs->s;
    int ret;

    if (s->incompatible_features & QCOW2_INCOMPAT_DIRTY) {
        ret = qcow2_co_mark_clean(cs->bs);
        if (ret < 0) {
            return ret;
        }
    }
    if (s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) {
        s->incompatible_features &= ~QCOW2_INCOMPAT_CORRUPT;
        ret = qcow2_co_update_header(cs->bs);
        if (ret < 0) {
            s->incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
            return ret;
        }
    }
    s->corrupt_signalled = false;
    return 0;
}

/*
 * Refcount comparison and repair after the references were counted:
 * report first, then (with fix) repair what may be repaired.
 */
static int coroutine_fn check_co_refcounts(Qcow2CheckState *cs)
{
    BdrvCheckResult pre = *cs->res;
    g_autoptr(GArray) raise = g_array_new(false, false,
                                          sizeof(Qcow2RefcountFix));
    g_autoptr(GArray) lower = g_array_new(false, false,
                                          sizeof(Qcow2RefcountFix));

    check_co_compare(cs, 0, raise, lower);
    if (!cs->fix || (!cs->res->leaks && !cs->res->corruptions)) {
        return 0;
    }
    if (cs->rebuild || (cs->zero_refcount && !(cs->fix & BDRV_FIX_ERRORS))) {
        fprintf(stderr, "ERROR need to rebuild refcount structures\n");
        if (cs->rebuild && (cs->fix & BDRV_FIX_ERRORS)) {
            fprintf(stderr, "ERROR rebuilding qcow2 refcount structures is "
                    "not supported\n");
        }
        cs->res->check_errors++;
        return -EIO;
    }
    /* Second pass with repair; its counts replace the first pass's. */
    *cs->res = pre;
    check_co_compare(cs, cs->fix, raise, lower);
    return check_co_repair_refcounts(cs, raise, lower);
}

/* Flush everything the driver holds so the disk is what we check. */
static int coroutine_fn check_co_prepare(Qcow2CheckState *cs)
{
    if (bdrv_is_read_only(cs->bs)) {
        return 0;
    }
    return qcow2_co_flush_metadata(cs->bs);
}

/* The whole check; s->lock held. */
static int coroutine_fn qcow2_co_check_locked(BlockDriverState *bs,
                                              BdrvCheckResult *res,
                                              BdrvCheckMode fix)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2CheckState cs = { .bs = bs, .s = s, .res = res, .fix = fix,
                           .rb_index = -1 };
    bool was_corrupt = s->corrupt_signalled;
    int ret;

    memset(res, 0, sizeof(*res));
    if (fix && bdrv_is_read_only(bs)) {
        return -EACCES;
    }
    cs.file_size = qcow2_file_size(bs);
    if (cs.file_size < 0) {
        res->check_errors++;
        return cs.file_size;
    }
    cs.nb_clusters = DIV_ROUND_UP((uint64_t)cs.file_size, s->cluster_size);
    if (cs.nb_clusters > INT_MAX) {
        res->check_errors++;
        return -EFBIG;
    }
    res->bfi.total_clusters = DIV_ROUND_UP((uint64_t)bs->total_bytes,
                                           s->cluster_size);
    ret = check_co_prepare(&cs);
    if (ret < 0) {
        res->check_errors++;
        return ret;
    }
    cs.expected_size = cs.nb_clusters + 1;
    cs.expected = g_try_new0(uint32_t, cs.expected_size);
    cs.rb_buf = g_malloc(s->cluster_size);
    cs.expected_max = MIN(s->refcount_max, UINT32_MAX);
    cs.highest_cluster = -1;
    if (!cs.expected) {
        res->check_errors++;
        ret = -ENOMEM;
        goto out;
    }
    /* Repairs may need allocations, which a corrupt node refuses. */
    s->corrupt_signalled = false;
    ret = check_co_calculate(&cs);
    if (ret == 0 && cs.tables_changed) {
        ret = check_co_flush(&cs);
    }
    if (ret == 0) {
        ret = check_co_refcounts(&cs);
    }
    if (ret == 0) {
        ret = check_co_oflag_copied(&cs);
    }
    res->image_end_offset = (cs.highest_cluster + 1) * s->cluster_size;
    if (ret == 0 && fix && !res->check_errors && !res->corruptions) {
        ret = check_co_mark_consistent(&cs);
        was_corrupt = false;
    }
out:
    s->corrupt_signalled = was_corrupt || s->corrupt_signalled;
    trace_qcow2_check_done(bs, fix, res->corruptions, res->leaks,
                           res->check_errors, res->corruptions_fixed,
                           res->leaks_fixed, ret);
    g_free(cs.expected);
    g_free(cs.rb_buf);
    return ret;
}

typedef struct Qcow2CheckCo {
    BlockDriverState *bs;
    BdrvCheckResult *res;
    BdrvCheckMode fix;
} Qcow2CheckCo;

/* Coroutine body of qcow2_check: take s->lock unless we hold it already. */
static int coroutine_fn qcow2_check_entry(void *opaque)
{
    Qcow2CheckCo *c = opaque;
    BDRVQcow2State *s = c->bs->opaque;
    bool locked = s->lock.locked && s->lock.holder == qemu_coroutine_self();
    int ret;

    if (!locked) {
        qemu_co_mutex_lock(&s->lock);
    }
    ret = qcow2_co_check_locked(c->bs, c->res, c->fix);
    if (!locked) {
        qemu_co_mutex_unlock(&s->lock);
    }
    return ret;
}

int qcow2_check(BlockDriverState *bs, BdrvCheckResult *res,
                BdrvCheckMode fix)
{
    Qcow2CheckCo c = { .bs = bs, .res = res, .fix = fix };

    trace_qcow2_check(bs, fix);
    return qemu_coroutine_call_sync(qcow2_check_entry, &c);
}

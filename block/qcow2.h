/*
 * qcow2 format driver: on-disk layout, in-memory state, internal API.
 *
 * Shared by block/qcow2*.c (the driver) and block/qcow2-check.c (check and
 * repair). On-disk values are big-endian; everything in BDRVQcow2State is
 * in CPU order except the table buffers held by the caches, which are
 * kept exactly as on disk (use the qcow2_l2e_get/... helpers).
 *
 * Locking: every function below marked coroutine_fn that touches metadata
 * (caches, L1, refcount table, header) expects s->lock to be held by the
 * caller unless its comment says otherwise.
 *
 * The pure arithmetic/decoding helpers are static inline so unit tests can
 * check them without an image.
 */
#ifndef BLOCK_QCOW2_H
#define BLOCK_QCOW2_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "block/block_int.h"

/* ---- On-disk constants */

#define QCOW_MAGIC 0x514649fbU                /* "QFI\xfb" */

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_DEFAULT_CLUSTER_BITS 16

#define QCOW2_V2_HEADER_LENGTH 72             /* fixed header of version 2 */
#define QCOW2_V3_MIN_HEADER_LENGTH 104        /* up to refcount_order+len */
#define QCOW2_V3_HEADER_LENGTH 112            /* what we write for v3 */

/* Sane limits, checked before any allocation driven by header fields. */
#define QCOW2_MAX_L1_BYTES (32 * MiB)
#define QCOW2_MAX_REFTABLE_BYTES (8 * MiB)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_SNAPSHOT_TABLE_BYTES (64 * MiB)
#define QCOW2_MAX_SNAPSHOT_EXTRA_DATA 1024
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_HEADER_EXT_BYTES (64 * KiB)

/* L1/L2/refcount-table entry fields. */
#define QCOW_OFLAG_COPIED     (1ULL << 63)    /* refcount is exactly 1 */
#define QCOW_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW_OFLAG_ZERO       (1ULL << 0)     /* v3 standard L2 entry */
#define L1E_OFFSET_MASK       0x00fffffffffffe00ULL
#define L1E_RESERVED_MASK     0x7f000000000001ffULL
#define L2E_OFFSET_MASK       0x00fffffffffffe00ULL
#define L2E_STD_RESERVED_MASK 0x3f000000000001feULL
#define REFT_OFFSET_MASK      0xfffffffffffffe00ULL
#define REFT_RESERVED_MASK    0x1ffULL

/* Compressed data is addressed in 512-byte sectors. */
#define QCOW2_COMPRESSED_SECTOR_SIZE 512

/* Incompatible / compatible / autoclear feature bits. */
#define QCOW2_INCOMPAT_DIRTY       (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ULL << 4)
#define QCOW2_INCOMPAT_KNOWN       0x1fULL
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define QCOW2_AUTOCLEAR_BITMAPS       (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)

/* Header extension magics. */
#define QCOW2_EXT_END            0x00000000U
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acaU
#define QCOW2_EXT_FEATURE_TABLE  0x6803f857U
#define QCOW2_EXT_BITMAPS        0x23852875U
#define QCOW2_EXT_CRYPTO         0x0537be77U
#define QCOW2_EXT_DATA_FILE      0x44415441U

/* Feature name table entry: type (0 incompat, 1 compat, 2 autoclear), bit, name. */
#define QCOW2_FEATURE_ENTRY_SIZE 48
#define QCOW2_FEATURE_NAME_LEN   46

/* Extended L2: 32 subclusters per cluster, 16-byte entries. */
#define QCOW2_EXTL2_SUBCLUSTERS 32

/* Compression types (header byte 104). */
#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* ---- Decoded header (CPU byte order) */
typedef struct Qcow2Header {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    /* v3 fields; for v2 set to the implied defaults by the decoder. */
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
} Qcow2Header;

/* ---- Cluster types as decoded from an L2 entry (and subcluster bitmap). */
typedef enum Qcow2ClusterType {
    QCOW2_CLUSTER_UNALLOCATED,   /* reads from backing (or zeroes) */
    QCOW2_CLUSTER_ZERO_PLAIN,    /* reads zeroes, no host cluster */
    QCOW2_CLUSTER_ZERO_ALLOC,    /* reads zeroes, host cluster preallocated */
    QCOW2_CLUSTER_NORMAL,        /* data at the host offset */
    QCOW2_CLUSTER_COMPRESSED,    /* compressed data descriptor */
    QCOW2_CLUSTER_INVALID,       /* inconsistent entry (corruption) */
} Qcow2ClusterType;

/* ---- Internal snapshot, as parsed from the snapshot table. */
typedef struct QCowSnapshot {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    char *id_str;
    char *name;
    uint64_t disk_size;          /* from extra data; else image size */
    uint64_t vm_state_size;      /* 64-bit extra field, else 32-bit one */
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;             /* UINT64_MAX when absent */
    uint32_t extra_data_size;
} QCowSnapshot;

/* A header extension we do not interpret, preserved on header rewrites. */
typedef struct Qcow2UnknownExt {
    uint32_t magic;
    uint32_t len;
    uint8_t *data;
} Qcow2UnknownExt;

typedef struct Qcow2Cache Qcow2Cache;
typedef struct Qcow2CacheOps Qcow2CacheOps;

/* ---- Per-node driver state (bs->opaque). */
/*
 * An allocating write running with s->lock dropped (qcow2-cluster.c):
 * its clusters are allocated but its L2 entries not yet set. Any other
 * change to the L2 entries of [start, end) waits on waiters until it is
 * done. Lives on the writer's stack, linked in s->inflight_allocs.
 */
typedef struct Qcow2InflightAlloc {
    uint64_t start;                /* guest range, cluster aligned */
    uint64_t end;
    CoQueue waiters;
    struct Qcow2InflightAlloc *next;
} Qcow2InflightAlloc;

typedef struct BDRVQcow2State {
    BlockDriverState *bs;          /* back pointer */
    int qcow_version;              /* 2 or 3 */

    /* Geometry. */
    int cluster_bits;
    int cluster_size;
    int l2_bits;                   /* log2(entries per L2 table) */
    int l2_size;                   /* entries per L2 table */
    int l2_entry_size;             /* 8, or 16 with extended L2 */
    bool extended_l2;
    int subcluster_bits;           /* log2 subcluster size (= cluster_bits
                                      without extended L2) */
    int subcluster_size;

    /* Compressed descriptor decoding. */
    int csize_shift;
    uint64_t csize_mask;
    uint64_t cluster_offset_mask;

    /* Active L1 table (CPU order, always fully in memory). */
    uint64_t l1_table_offset;
    uint32_t l1_size;
    uint64_t *l1_table;

    /* Refcount structures. */
    uint64_t refcount_table_offset;
    uint32_t refcount_table_size;  /* entries (clusters * cluster_size/8) */
    uint64_t *refcount_table;      /* CPU order */
    int refcount_order;
    int refcount_bits;
    uint64_t refcount_max;
    int refcount_block_bits;       /* log2(entries per refcount block) */
    int64_t free_cluster_index;    /* search hint: no free cluster below */

    Qcow2Cache *l2_table_cache;
    Qcow2Cache *refcount_block_cache;

    /* Header state. */
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t header_length;        /* as read (rewritten as 72 or 112) */
    uint8_t compression_type;
    uint32_t crypt_method;
    bool use_lazy_refcounts;       /* this session defers refcount safety */
    GSList *unknown_header_ext;    /* of Qcow2UnknownExt *, in file order */

    /* Internal snapshots (read-only for this driver). */
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t snapshots_size;       /* bytes of the table on disk */
    QCowSnapshot *snapshots;

    /*
     * Data clusters may be unwritten holes in the file (metadata
     * preallocation), detected once: block status then asks the file.
     */
    bool metadata_prealloc;
    bool metadata_prealloc_checked;

    /* Set once corruption was signalled: no more writes. */
    bool corrupt_signalled;

    /* Protects all metadata: L1, caches, refcount table, header. */
    CoMutex lock;
    /* Allocating writes between allocation and L2 update (under lock). */
    Qcow2InflightAlloc *inflight_allocs;
} BDRVQcow2State;

/* ---- Pure helpers (unit-tested) */

static inline uint64_t qcow2_offset_into_cluster(const BDRVQcow2State *s,
                                                 uint64_t offset)
{
    return offset & (s->cluster_size - 1);
}

/*
 * The host offset of the refcount block describing cluster_index, from the
 * in-memory refcount table: 0 when the table has no block for it (the
 * cluster's refcount is 0), -EIO when the entry is not cluster aligned
 * (corrupt); *ti receives the table index either way.
 */
static inline int64_t qcow2_refblock_offset(const BDRVQcow2State *s,
                                            int64_t cluster_index,
                                            uint64_t *ti)
{
    uint64_t off;

    *ti = (uint64_t)cluster_index >> s->refcount_block_bits;
    if (*ti >= s->refcount_table_size) {
        return 0;
    }
    off = s->refcount_table[*ti] & REFT_OFFSET_MASK;
    if (off & (s->cluster_size - 1)) {
        return -EIO;
    }
    return off;
}

static inline uint64_t qcow2_start_of_cluster(const BDRVQcow2State *s,
                                              uint64_t offset)
{
    return offset & ~(uint64_t)(s->cluster_size - 1);
}

static inline uint64_t qcow2_offset_to_l1_index(const BDRVQcow2State *s,
                                                uint64_t offset)
{
    return offset >> (s->l2_bits + s->cluster_bits);
}

static inline int qcow2_offset_to_l2_index(const BDRVQcow2State *s,
                                           uint64_t offset)
{
    return (offset >> s->cluster_bits) & (s->l2_size - 1);
}

static inline int qcow2_offset_to_sc_index(const BDRVQcow2State *s,
                                           uint64_t offset)
{
    return (offset >> s->subcluster_bits) & (QCOW2_EXTL2_SUBCLUSTERS - 1);
}

/* L1 entries needed to map a guest disk of `size` bytes. */
static inline uint64_t qcow2_l1_entries_for_size(int cluster_bits,
                                                 int l2_bits, uint64_t size)
{
    int shift = cluster_bits + l2_bits;
    return (size + (1ULL << shift) - 1) >> shift;
}

/*
 * Fill the geometry fields of s from cluster_bits and extended_l2 (and
 * refcount fields from refcount_order). Used by open, create and tests.
 */
static inline void qcow2_set_geometry(BDRVQcow2State *s, int cluster_bits,
                                      bool extended_l2, int refcount_order)
{
    s->cluster_bits = cluster_bits;
    s->cluster_size = 1 << cluster_bits;
    s->extended_l2 = extended_l2;
    s->l2_entry_size = extended_l2 ? 16 : 8;
    s->l2_bits = cluster_bits - (extended_l2 ? 4 : 3);
    s->l2_size = 1 << s->l2_bits;
    s->subcluster_bits = extended_l2 ? cluster_bits - 5 : cluster_bits;
    s->subcluster_size = 1 << s->subcluster_bits;
    s->csize_shift = 62 - (cluster_bits - 8);
    s->csize_mask = (1ULL << (cluster_bits - 8)) - 1;
    s->cluster_offset_mask = (1ULL << s->csize_shift) - 1;
    s->refcount_order = refcount_order;
    s->refcount_bits = 1 << refcount_order;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX
                      : (1ULL << s->refcount_bits) - 1;
    s->refcount_block_bits = cluster_bits + 3 - refcount_order;
}

/* Type of a standard (non-extended) L2 entry. */
static inline Qcow2ClusterType qcow2_l2e_type(uint64_t l2e)
{
    if (l2e & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    if (l2e & QCOW_OFLAG_ZERO) {
        return (l2e & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_ZERO_ALLOC
                                       : QCOW2_CLUSTER_ZERO_PLAIN;
    }
    return (l2e & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_NORMAL
                                   : QCOW2_CLUSTER_UNALLOCATED;
}

/*
 * Type of subcluster sc of an extended L2 entry (l2e, bitmap): the low
 * 32 bitmap bits say "allocated", the high 32 "reads as zero".
 */
static inline Qcow2ClusterType qcow2_extl2_type(uint64_t l2e, uint64_t bitmap,
                                                int sc)
{
    bool alloc = (bitmap >> sc) & 1;
    bool zero = (bitmap >> (32 + sc)) & 1;

    if (l2e & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    if (alloc && zero) {
        return QCOW2_CLUSTER_INVALID;
    }
    if (zero) {
        return (l2e & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_ZERO_ALLOC
                                       : QCOW2_CLUSTER_ZERO_PLAIN;
    }
    if (alloc) {
        return (l2e & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_NORMAL
                                       : QCOW2_CLUSTER_INVALID;
    }
    return QCOW2_CLUSTER_UNALLOCATED;
}

/* Host offset and byte length of the data of a compressed L2 entry. */
static inline void qcow2_compressed_decode(int cluster_bits, uint64_t l2e,
                                           uint64_t *host_offset,
                                           uint64_t *csize)
{
    int shift = 62 - (cluster_bits - 8);
    uint64_t nb_sectors = ((l2e >> shift) &
                           ((1ULL << (cluster_bits - 8)) - 1)) + 1;

    *host_offset = l2e & ((1ULL << shift) - 1);
    *csize = nb_sectors * QCOW2_COMPRESSED_SECTOR_SIZE -
             (*host_offset & (QCOW2_COMPRESSED_SECTOR_SIZE - 1));
}

/* Read / write entry idx of a refcount block of 2^order-bit entries. */
static inline uint64_t qcow2_refblock_get(const void *block, int order,
                                          uint64_t idx)
{
    const uint8_t *p = block;

    switch (order) {
    case 0: case 1: case 2: {
        int bits = 1 << order;
        int per_byte = 8 / bits;
        return (p[idx / per_byte] >> ((idx % per_byte) * bits)) &
               ((1U << bits) - 1);
    }
    case 3:
        return p[idx];
    case 4:
        return ldbe16_p(p + idx * 2);
    case 5:
        return ldbe32_p(p + idx * 4);
    default:
        return ldbe64_p(p + idx * 8);
    }
}

static inline void qcow2_refblock_set(void *block, int order, uint64_t idx,
                                      uint64_t value)
{
    uint8_t *p = block;

    switch (order) {
    case 0: case 1: case 2: {
        int bits = 1 << order;
        int per_byte = 8 / bits;
        int shift = (idx % per_byte) * bits;
        uint8_t mask = ((1U << bits) - 1) << shift;
        p[idx / per_byte] = (p[idx / per_byte] & ~mask) |
                            ((value << shift) & mask);
        break;
    }
    case 3:
        p[idx] = value;
        break;
    case 4:
        stbe16_p(p + idx * 2, value);
        break;
    case 5:
        stbe32_p(p + idx * 4, value);
        break;
    default:
        stbe64_p(p + idx * 8, value);
        break;
    }
}

/* Entry idx of an L2 table buffer (as cached: big-endian). */
static inline uint64_t qcow2_l2e_get(const BDRVQcow2State *s,
                                     const void *l2, int idx)
{
    return ldbe64_p((const uint8_t *)l2 + (size_t)idx * s->l2_entry_size);
}

/* Subcluster bitmap of entry idx (0 without extended L2). */
static inline uint64_t qcow2_l2_bitmap_get(const BDRVQcow2State *s,
                                           const void *l2, int idx)
{
    if (!s->extended_l2) {
        return 0;
    }
    return ldbe64_p((const uint8_t *)l2 + (size_t)idx * 16 + 8);
}

static inline void qcow2_l2e_set(const BDRVQcow2State *s, void *l2, int idx,
                                 uint64_t v)
{
    stbe64_p((uint8_t *)l2 + (size_t)idx * s->l2_entry_size, v);
}

/* ---- qcow2.c */

/* Decode len bytes of header (>= 72) into h; -EINVAL if too short. */
int qcow2_header_decode(const uint8_t *buf, size_t len, Qcow2Header *h);
/*
 * Range-check every header field (file_size: size of the image file).
 * Returns 0, or -EINVAL/-ENOTSUP/-EFBIG with errp saying what is wrong.
 * Feature bits are not judged here (open does, with the name table).
 */
int qcow2_header_validate(const Qcow2Header *h, uint64_t file_size,
                          Error **errp);
/* Rewrite the whole header cluster from s (one write; then flush). */
int coroutine_fn qcow2_co_update_header(BlockDriverState *bs);
/* Set/clear the dirty bit (lazy refcounts) on disk. */
int coroutine_fn qcow2_co_mark_dirty(BlockDriverState *bs);
int coroutine_fn qcow2_co_mark_clean(BlockDriverState *bs);
/*
 * Report metadata corruption found at [offset, offset+size) (-1: unknown).
 * On a read-write node the corrupt bit is set on disk and every further
 * write fails; read-only nodes are never written. Always returns -EIO.
 */
int coroutine_fn qcow2_co_signal_corruption(BlockDriverState *bs,
                                            int64_t offset, int64_t size,
                                            const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);
/* Flush caches in dependency order and the file (lock held). */
int coroutine_fn qcow2_co_flush_metadata(BlockDriverState *bs);
/* Size of the image file in bytes (bs->file), or -errno. */
int64_t qcow2_file_size(BlockDriverState *bs);
/* Cache backend on bs->file (opaque is the qcow2 BlockDriverState). */
extern const Qcow2CacheOps qcow2_file_cache_ops;

/* ---- qcow2-check.c (written by the check helper). */
int qcow2_check(BlockDriverState *bs, BdrvCheckResult *res,
                BdrvCheckMode fix);

/* ---- qcow2-refcount.c */

/* Load and validate the refcount table; create the refcount cache. */
int coroutine_fn qcow2_co_refcount_init(BlockDriverState *bs, Error **errp);
void qcow2_refcount_close(BlockDriverState *bs);
/* Refcount of host cluster cluster_index (0 beyond the table). */
int coroutine_fn qcow2_co_get_refcount(BlockDriverState *bs,
                                       int64_t cluster_index,
                                       uint64_t *refcount);
/*
 * Set the refcount of one host cluster, allocating a refcount block if
 * needed (for repair). value must be <= s->refcount_max.
 */
int coroutine_fn qcow2_co_set_refcount(BlockDriverState *bs,
                                       int64_t cluster_index, uint64_t value);
/*
 * Add addend to the refcount of every cluster touched by
 * [offset, offset + length). Fails with -ERANGE rather than overflow or
 * underflow (no refcount is changed then... for the failing cluster; the
 * earlier ones are rolled back).
 */
int coroutine_fn qcow2_co_update_refcount(BlockDriverState *bs,
                                          int64_t offset, int64_t length,
                                          int64_t addend);
/*
 * Allocate `size` bytes of contiguous host clusters (refcount 1 each).
 * Returns the host offset or -errno. The refcount update is in the
 * refcount cache; the L2 cache depends on it, so nothing may point to
 * the clusters on disk before their refcounts are.
 */
int64_t coroutine_fn qcow2_co_alloc_clusters(BlockDriverState *bs,
                                             uint64_t size);
/* Decrease the refcounts of the clusters of [offset, offset + size). */
int coroutine_fn qcow2_co_free_clusters(BlockDriverState *bs,
                                        int64_t offset, int64_t size);
/* Free the host cluster(s) an L2 entry references (normal/compressed). */
int coroutine_fn qcow2_co_free_l2e_clusters(BlockDriverState *bs,
                                            uint64_t l2e);
/* Host file end as the refcounts see it (last used cluster + 1), bytes. */
int64_t coroutine_fn qcow2_co_refcount_end(BlockDriverState *bs);

/* ---- qcow2-cluster.c */

/*
 * Map guest [offset, offset + *bytes): on return *bytes is shortened to
 * the extent (within one L2 table) of the same type and, for NORMAL /
 * ZERO_ALLOC, contiguous host offsets; *host is the host offset of
 * `offset` for those types (or the raw L2 entry for COMPRESSED).
 * Entries that are unaligned or point past the end of the file are
 * reported through qcow2_co_signal_corruption (-EIO).
 */
int coroutine_fn qcow2_co_get_host_offset(BlockDriverState *bs,
                                          uint64_t offset, uint64_t *bytes,
                                          uint64_t *host,
                                          Qcow2ClusterType *type);
/*
 * Get the L2 table for guest offset into *l2 (cache reference, release
 * with qcow2_cache_put). With allocate, a missing or shared L2 table is
 * allocated (COW for shared ones) and linked into L1 crash-safely;
 * without it *l2 is NULL when no table exists.
 */
int coroutine_fn qcow2_co_get_l2(BlockDriverState *bs, uint64_t offset,
                                 bool allocate, void **l2);
/* Grow the active L1 table to at least min_size entries (crash-safe). */
int coroutine_fn qcow2_co_grow_l1(BlockDriverState *bs, uint64_t min_size);
/* Read and inflate the compressed cluster of l2e into buf (cluster size). */
int coroutine_fn qcow2_co_decompress(BlockDriverState *bs, uint64_t l2e,
                                     uint8_t *buf);
/* What qcow2_co_zero_or_discard does to each whole cluster. */
typedef enum Qcow2ZeroMode {
    QCOW2_ZERO_KEEP,      /* zero flag; owned host clusters stay allocated */
    QCOW2_ZERO_UNMAP,     /* zero flag; host clusters are freed */
    QCOW2_DISCARD_GUEST,  /* guest discard: v3 reads zeroes, v2 backing */
    QCOW2_DISCARD_FULL,   /* entries cleared: reads the backing file */
} Qcow2ZeroMode;

/*
 * Apply mode to the whole clusters of [offset, offset + bytes) (offset
 * cluster aligned). Zero modes need v3 (-ENOTSUP on v2). Crash-safe: L2
 * updates reach the disk before any refcount decrease.
 */
int coroutine_fn qcow2_co_zero_or_discard(BlockDriverState *bs,
                                          uint64_t offset, uint64_t bytes,
                                          Qcow2ZeroMode mode);
/*
 * Write [offset, offset + bytes) of guest data from qiov at qiov_offset
 * into clusters that need allocation; the range lies within one L2 table
 * and no in-flight allocation overlaps it. Fills head/tail from the old
 * contents. Lock held on entry and exit, dropped during the data I/O
 * (the range is then listed in s->inflight_allocs).
 */
int coroutine_fn qcow2_co_alloc_write(BlockDriverState *bs, uint64_t offset,
                                      uint64_t bytes, QEMUIOVector *qiov,
                                      size_t qiov_offset);
/* Allocate (without writing data) every cluster of [offset, offset+bytes). */
int coroutine_fn qcow2_co_preallocate_metadata(BlockDriverState *bs,
                                               uint64_t offset,
                                               uint64_t bytes);

/*
 * Request callbacks of the driver (qcow2-cluster.c); see block_int.h for
 * their contracts. They take s->lock themselves.
 */
int coroutine_fn qcow2_co_preadv(BlockDriverState *bs, int64_t offset,
                                 int64_t bytes, QEMUIOVector *qiov,
                                 BdrvRequestFlags flags);
int coroutine_fn qcow2_co_pwritev(BlockDriverState *bs, int64_t offset,
                                  int64_t bytes, QEMUIOVector *qiov,
                                  BdrvRequestFlags flags);
int coroutine_fn qcow2_co_pwrite_zeroes(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, BdrvRequestFlags flags);
int coroutine_fn qcow2_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes);
int coroutine_fn qcow2_co_flush_to_os(BlockDriverState *bs);
int coroutine_fn qcow2_co_block_status(BlockDriverState *bs, bool want_zero,
                                       int64_t offset, int64_t bytes,
                                       int64_t *pnum, int64_t *map,
                                       BlockDriverState **file);
/*
 * Lock held: before any metadata change. Fails after corruption was
 * signalled; with lazy refcounts sets the dirty bit first.
 */
int coroutine_fn qcow2_co_prepare_write(BlockDriverState *bs);

/* ---- qcow2-cache.c: a bounded LRU cache of cluster-sized tables. */

/* Backend I/O for a cache: whole-table reads/writes and a flush. */
struct Qcow2CacheOps {
    int coroutine_fn (*read)(void *opaque, uint64_t offset, void *buf,
                             size_t size);
    int coroutine_fn (*write)(void *opaque, uint64_t offset, const void *buf,
                              size_t size);
    int coroutine_fn (*flush)(void *opaque);
};

/* A cache of num_tables tables of table_size bytes each (>= 2 tables). */
Qcow2Cache *qcow2_cache_create(const char *name, const Qcow2CacheOps *ops,
                               void *opaque, int num_tables,
                               size_t table_size);
/* Free the cache; dirty entries are dropped (flush first). */
void qcow2_cache_destroy(Qcow2Cache *c);
/*
 * Get a reference to the table at offset, reading it on a miss (evicting
 * the least recently used unreferenced entry, writing it back if dirty).
 * -ENOSPC if every slot is referenced.
 */
int coroutine_fn qcow2_cache_get(Qcow2Cache *c, uint64_t offset,
                                 void **table);
/* Same, without reading: the caller fills the whole table. */
int coroutine_fn qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset,
                                       void **table);
/* Drop the reference; sets *table to NULL. */
void qcow2_cache_put(Qcow2Cache *c, void **table);
/* Mark a referenced table dirty (it will be written back). */
void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table);
/*
 * Before this cache writes any table, `dependency` is flushed (written
 * back and the backend flushed). Replaces a previous dependency.
 */
void qcow2_cache_set_dependency(Qcow2Cache *c, Qcow2Cache *dependency);
/* Before the next table write-back, flush the backend (data first). */
void qcow2_cache_depends_on_flush(Qcow2Cache *c);
/* Write back all dirty tables (honouring dependencies), no backend flush. */
int coroutine_fn qcow2_cache_write(Qcow2Cache *c);
/* qcow2_cache_write then flush the backend. */
int coroutine_fn qcow2_cache_flush(Qcow2Cache *c);
/* Forget the table at offset without writing it (its cluster was freed). */
void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset);
/* Forget every unreferenced table (clean or not: flush first). */
void qcow2_cache_empty(Qcow2Cache *c);
/* Statistics and introspection for tests. */
int qcow2_cache_num_tables(const Qcow2Cache *c);
int qcow2_cache_num_dirty(const Qcow2Cache *c);
bool qcow2_cache_contains(const Qcow2Cache *c, uint64_t offset);

/* ---- qcow2-snapshot.c */

/* Read and validate the snapshot table into s->snapshots. */
int coroutine_fn qcow2_co_read_snapshots(BlockDriverState *bs, Error **errp);
void qcow2_free_snapshots(BlockDriverState *bs);
/* The parsed snapshots (read-only view, valid while the node is open). */
int qcow2_snapshot_list(BlockDriverState *bs, const QCowSnapshot **list);

#endif /* BLOCK_QCOW2_H */

/*
 * qcow2 format driver: header, open/close, image-level operations
 * (truncate, info, make_empty, backing file change, create) and the
 * driver struct. The request callbacks live in qcow2-cluster.c.
 *
 * On disk: a header cluster (fixed header, extensions, backing file name),
 * an L1 table of L2 table offsets, L2 tables of cluster descriptors, and
 * refcounts (a refcount table of refcount block offsets). In memory: see
 * BDRVQcow2State in qcow2.h; L2 tables and refcount blocks are cached in
 * two bounded caches (qcow2-cache.c).
 *
 * Crash safety: metadata is written in an order that leaves at most
 * leaked clusters after a crash at any point (refcount before reference,
 * data before L2 entry, new tables before the pointer to them, pointer
 * removal before refcount decrease): see qcow2-cluster.c and
 * qcow2-refcount.c. The header is always rewritten as one write inside
 * the first cluster. With lazy refcounts the refcount ordering is relaxed
 * and the dirty bit is set before the first change instead; a dirty image
 * opened read-write is repaired (qcow2_check) before use.
 *
 * Corruption found at run time is reported through
 * qcow2_co_signal_corruption(): on a read-write node the corrupt bit is
 * set and further writes fail; a read-only node is never written.
 *
 * Concurrency: s->lock (CoMutex) protects all metadata. Reads and writes
 * to already-allocated clusters drop it during data I/O; allocating
 * writes drop it too, their guest range listed as in flight until their
 * L2 entries are set (see qcow2-cluster.c).
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include "qemu/qdict.h"
#include "trace.h"

/* Default cache budget: L2 tables covering this much guest data... */
#define QCOW2_DEFAULT_L2_COVERAGE (8 * GiB)
/* ...but never more than this many bytes of L2 tables. */
#define QCOW2_DEFAULT_L2_CACHE_MAX (1 * MiB)
#define QCOW2_MIN_CACHE_TABLES 4
#define QCOW2_MAX_CACHE_TABLES 65536

/* ---- Cache backend on bs->file */

static int coroutine_fn file_cache_read(void *opaque, uint64_t offset,
                                        void *buf, size_t size)
{
    BlockDriverState *bs = opaque;
    return bdrv_co_pread(bs->file, offset, size, buf, 0);
}

/* Cache backend write: one whole table to the image file. */
static int coroutine_fn file_cache_write(void *opaque, uint64_t offset,
                                         const void *buf, size_t size)
{
    BlockDriverState *bs = opaque;
    return bdrv_co_pwrite(bs->file, offset, size, buf, 0);
}

/* Cache backend flush: make earlier writes to the file stable. */
static int coroutine_fn file_cache_flush(void *opaque)
{
    BlockDriverState *bs = opaque;
    return bdrv_co_flush(bs->file->bs);
}

const Qcow2CacheOps qcow2_file_cache_ops = {
    .read = file_cache_read,
    .write = file_cache_write,
    .flush = file_cache_flush,
};

/*
 * Current size of the image file, which grows as clusters are appended.
 * The file node's total_bytes is kept current by the request path (every
 * completed write past EOF, every truncate), so no fstat is needed: this
 * is asked for every cluster a request maps. Only a node that has not
 * learnt its length yet asks the driver.
 */
int64_t qcow2_file_size(BlockDriverState *bs)
{
    BlockDriverState *file = bs->file->bs;

    return file->total_bytes > 0 ? file->total_bytes : bdrv_getlength(file);
}

/* ---- Header decoding and validation */

int qcow2_header_decode(const uint8_t *buf, size_t len, Qcow2Header *h)
{
    memset(h, 0, sizeof(*h));
    if (len < QCOW2_V2_HEADER_LENGTH) {
        return -EINVAL;
    }
    h->magic = ldbe32_p(buf);
    h->version = ldbe32_p(buf + 4);
    h->backing_file_offset = ldbe64_p(buf + 8);
    h->backing_file_size = ldbe32_p(buf + 16);
    h->cluster_bits = ldbe32_p(buf + 20);
    h->size = ldbe64_p(buf + 24);
    h->crypt_method = ldbe32_p(buf + 32);
    h->l1_size = ldbe32_p(buf + 36);
    h->l1_table_offset = ldbe64_p(buf + 40);
    h->refcount_table_offset = ldbe64_p(buf + 48);
    h->refcount_table_clusters = ldbe32_p(buf + 56);
    h->nb_snapshots = ldbe32_p(buf + 60);
    h->snapshots_offset = ldbe64_p(buf + 64);
    h->refcount_order = 4;
    h->header_length = QCOW2_V2_HEADER_LENGTH;
    if (h->version < 3) {
        return 0;
    }
    if (len < QCOW2_V3_MIN_HEADER_LENGTH) {
        return -EINVAL;
    }
    h->incompatible_features = ldbe64_p(buf + 72);
    h->compatible_features = ldbe64_p(buf + 80);
    h->autoclear_features = ldbe64_p(buf + 88);
    h->refcount_order = ldbe32_p(buf + 96);
    h->header_length = ldbe32_p(buf + 100);
    if (h->header_length > QCOW2_V3_MIN_HEADER_LENGTH &&
        len > QCOW2_V3_MIN_HEADER_LENGTH) {
        h->compression_type = buf[104];
    }
    return 0;
}

/* Is [off, off + len) a cluster-aligned area inside the file? */
static bool area_ok(uint64_t off, uint64_t len, uint32_t cluster_bits,
                    uint64_t file_size)
{
    return (off & ((1ULL << cluster_bits) - 1)) == 0 &&
           off + len >= off && off + len <= file_size;
}

/* Range checks of the tables the header points to. */
static int header_validate_tables(const Qcow2Header *h, uint64_t file_size,
                                  Error **errp)
{
    uint64_t cs = 1ULL << h->cluster_bits;
    int l2_bits = h->cluster_bits - 3;

    if (h->size > (uint64_t)QCOW2_MAX_L1_BYTES / 8 <<
        (h->cluster_bits + l2_bits)) {
        error_setg(errp, "Image is too big (virtual size %" PRIu64 ")",
                   h->size);
        return -EFBIG;
    }
    if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        error_setg(errp, "Active L1 table too large");
        return -EFBIG;
    }
    if (h->l1_size < qcow2_l1_entries_for_size(h->cluster_bits, l2_bits,
                                               h->size)) {
        error_setg(errp, "L1 table is too small");
        return -EINVAL;
    }
    if (h->l1_size && !area_ok(h->l1_table_offset, (uint64_t)h->l1_size * 8,
                               h->cluster_bits, file_size)) {
        error_setg(errp, "Invalid L1 table offset");
        return -EINVAL;
    }
    if (h->refcount_table_clusters == 0) {
        error_setg(errp, "Image does not contain a reference count table");
        return -EINVAL;
    }
    if ((uint64_t)h->refcount_table_clusters * cs > QCOW2_MAX_REFTABLE_BYTES) {
        error_setg(errp, "Reference count table too large");
        return -EFBIG;
    }
    if (!area_ok(h->refcount_table_offset,
                 (uint64_t)h->refcount_table_clusters * cs, h->cluster_bits,
                 file_size)) {
        error_setg(errp, "Invalid reference count table offset");
        return -EINVAL;
    }
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        error_setg(errp, "Too many snapshots");
        return -EFBIG;
    }
    if (h->nb_snapshots && !area_ok(h->snapshots_offset, 40, h->cluster_bits,
                                    file_size)) {
        error_setg(errp, "Invalid snapshot table offset");
        return -EINVAL;
    }
    return 0;
}

int qcow2_header_validate(const Qcow2Header *h, uint64_t file_size,
                          Error **errp)
{
    uint64_t cs;

    if (h->magic != QCOW_MAGIC) {
        error_setg(errp, "Image is not in qcow2 format");
        return -EINVAL;
    }
    if (h->version < 2 || h->version > 3) {
        error_setg(errp, "Unsupported qcow2 version %" PRIu32, h->version);
        return -ENOTSUP;
    }
    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        error_setg(errp, "Unsupported cluster size: 2^%" PRIu32,
                   h->cluster_bits);
        return -EINVAL;
    }
    cs = 1ULL << h->cluster_bits;
    if (h->header_length < (h->version < 3 ? QCOW2_V2_HEADER_LENGTH
                                            : QCOW2_V3_MIN_HEADER_LENGTH) ||
        h->header_length > cs || (h->version >= 3 && h->header_length % 8)) {
        error_setg(errp, "qcow2 header length %" PRIu32 " is invalid",
                   h->header_length);
        return -EINVAL;
    }
    if (h->refcount_order > 6) {
        error_setg(errp, "Reference count entry width too large; may not "
                   "exceed 64 bits");
        return -EINVAL;
    }
    if (h->backing_file_offset &&
        (h->backing_file_size > QCOW2_MAX_BACKING_NAME ||
         h->backing_file_offset > cs ||
         h->backing_file_offset + h->backing_file_size > cs ||
         h->backing_file_offset + h->backing_file_size > file_size)) {
        error_setg(errp, "Backing file name is invalid or too long");
        return -EINVAL;
    }
    if (h->compression_type > QCOW2_COMPRESSION_ZSTD ||
        (h->compression_type != QCOW2_COMPRESSION_ZLIB &&
         !(h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION))) {
        error_setg(errp, "Invalid compression type %u", h->compression_type);
        return -EINVAL;
    }
    return header_validate_tables(h, file_size, errp);
}

/* ---- Header writing */

/* Names of the features we know, for the feature name table. */
static const struct {
    uint8_t type;
    uint8_t bit;
    const char *name;
} qcow2_feature_names[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};

/* Append extension (magic, data) at buf+*pos; false if it does not fit. */
static bool header_ext_add(uint8_t *buf, size_t *pos, size_t cap,
                           uint32_t magic, const void *data, uint32_t len)
{
    size_t need = 8 + QEMU_ALIGN_UP(len, 8);

    if (*pos + need > cap) {
        return false;
    }
    stbe32_p(buf + *pos, magic);
    stbe32_p(buf + *pos + 4, len);
    memcpy(buf + *pos + 8, data, len);
    memset(buf + *pos + 8 + len, 0, need - 8 - len);
    *pos += need;
    return true;
}

/* Encode the fixed header fields from s into buf. */
static void header_encode(BlockDriverState *bs, uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;

    stbe32_p(buf, QCOW_MAGIC);
    stbe32_p(buf + 4, s->qcow_version);
    stbe32_p(buf + 20, s->cluster_bits);
    stbe64_p(buf + 24, bs->total_bytes);
    stbe32_p(buf + 32, s->crypt_method);
    stbe32_p(buf + 36, s->l1_size);
    stbe64_p(buf + 40, s->l1_table_offset);
    stbe64_p(buf + 48, s->refcount_table_offset);
    stbe32_p(buf + 56, (uint64_t)s->refcount_table_size * 8 /
             s->cluster_size);
    stbe32_p(buf + 60, s->nb_snapshots);
    stbe64_p(buf + 64, s->snapshots_offset);
    if (s->qcow_version >= 3) {
        stbe64_p(buf + 72, s->incompatible_features);
        stbe64_p(buf + 80, s->compatible_features);
        stbe64_p(buf + 88, s->autoclear_features);
        stbe32_p(buf + 96, s->refcount_order);
        stbe32_p(buf + 100, QCOW2_V3_HEADER_LENGTH);
        buf[104] = s->compression_type;
    }
}

/* Append all extensions and the end marker; -ENOSPC if they do not fit. */
static int header_encode_exts(BlockDriverState *bs, uint8_t *buf,
                              size_t *pos, size_t cap)
{
    BDRVQcow2State *s = bs->opaque;
    size_t n = strlen(bs->backing_format);

    if (n && !header_ext_add(buf, pos, cap, QCOW2_EXT_BACKING_FORMAT,
                             bs->backing_format, n)) {
        return -ENOSPC;
    }
    for (GSList *l = s->unknown_header_ext; l; l = l->next) {
        Qcow2UnknownExt *e = l->data;
        if (!header_ext_add(buf, pos, cap, e->magic, e->data, e->len)) {
            return -ENOSPC;
        }
    }
    if (s->qcow_version >= 3) {
        uint8_t table[ARRAY_SIZE(qcow2_feature_names) *
                      QCOW2_FEATURE_ENTRY_SIZE] = { 0 };
        for (size_t i = 0; i < ARRAY_SIZE(qcow2_feature_names); i++) {
            uint8_t *e = table + i * QCOW2_FEATURE_ENTRY_SIZE;
            e[0] = qcow2_feature_names[i].type;
            e[1] = qcow2_feature_names[i].bit;
            strncpy((char *)e + 2, qcow2_feature_names[i].name,
                    QCOW2_FEATURE_NAME_LEN);
        }
        /* Optional: left out when it would not fit (small clusters). */
        size_t keep = *pos;
        if (!header_ext_add(buf, pos, cap - 8 - strlen(bs->backing_file),
                            QCOW2_EXT_FEATURE_TABLE, table, sizeof(table))) {
            *pos = keep;
        }
    }
    if (*pos + 8 > cap) {
        return -ENOSPC;
    }
    memset(buf + *pos, 0, 8);
    *pos += 8;
    return 0;
}

int coroutine_fn qcow2_co_update_header(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    size_t cap = s->cluster_size, pos, name_len = strlen(bs->backing_file);
    uint8_t *buf = qemu_blockalign(cap);
    int ret;

    trace_qcow2_header_update(bs, s->incompatible_features);
    memset(buf, 0, cap);
    header_encode(bs, buf);
    pos = s->qcow_version >= 3 ? QCOW2_V3_HEADER_LENGTH
                               : QCOW2_V2_HEADER_LENGTH;
    ret = header_encode_exts(bs, buf, &pos, cap);
    if (ret == 0 && pos + name_len > cap) {
        ret = -ENOSPC;
    }
    if (ret < 0) {
        goto out;
    }
    if (name_len) {
        stbe64_p(buf + 8, pos);
        stbe32_p(buf + 16, name_len);
        memcpy(buf + pos, bs->backing_file, name_len);
        pos += name_len;
    }
    ret = bdrv_co_pwrite(bs->file, 0, QEMU_ALIGN_UP(pos, 512), buf, 0);
    if (ret >= 0) {
        ret = bdrv_co_flush(bs->file->bs);
    }
out:
    qemu_vfree(buf);
    return ret < 0 ? ret : 0;
}

/* Set or clear incompatible feature bits on disk (v3 only). */
static int coroutine_fn update_incompat(BlockDriverState *bs, uint64_t set,
                                        uint64_t clear)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old = s->incompatible_features;
    int ret;

    if (s->qcow_version < 3) {
        return 0;
    }
    s->incompatible_features = (old | set) & ~clear;
    if (s->incompatible_features == old) {
        return 0;
    }
    ret = qcow2_co_update_header(bs);
    if (ret < 0) {
        s->incompatible_features = old;
    }
    return ret;
}

int coroutine_fn qcow2_co_mark_dirty(BlockDriverState *bs)
{
    return update_incompat(bs, QCOW2_INCOMPAT_DIRTY, 0);
}

int coroutine_fn qcow2_co_mark_clean(BlockDriverState *bs)
{
    return update_incompat(bs, 0, QCOW2_INCOMPAT_DIRTY);
}

int coroutine_fn qcow2_co_signal_corruption(BlockDriverState *bs,
                                            int64_t offset, int64_t size,
                                            const char *fmt, ...)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    trace_qcow2_corruption(bs, offset, size, msg);
    if (s->corrupt_signalled) {
        return -EIO;
    }
    if (bs->read_only) {
        error_report("qcow2: Image '%s' is corrupt: %s", bs->filename, msg);
        return -EIO;
    }
    error_report("qcow2: Marking image '%s' as corrupt: %s; further "
                 "corruption events will be suppressed", bs->filename, msg);
    s->corrupt_signalled = true;
    update_incompat(bs, QCOW2_INCOMPAT_CORRUPT, 0);
    return -EIO;
}

int coroutine_fn qcow2_co_flush_metadata(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    /* The L2 cache flushes the refcount cache first (dependency). */
    ret = qcow2_cache_flush(s->l2_table_cache);
    if (ret >= 0) {
        ret = qcow2_cache_flush(s->refcount_block_cache);
    }
    if (ret >= 0) {
        ret = bdrv_co_flush(bs->file->bs);
    }
    return ret;
}

/* ---- Open */

/* "Unsupported qcow2 feature(s): ..." naming bits from the name table. */
static void report_unsupported(BlockDriverState *bs, const uint8_t *table,
                               uint32_t table_len, uint64_t mask,
                               Error **errp)
{
    g_autoptr(GString) str = g_string_new("");

    for (int bit = 0; bit < 64; bit++) {
        const char *name = NULL;
        char buf[QCOW2_FEATURE_NAME_LEN + 1];
        if (!(mask & (1ULL << bit))) {
            continue;
        }
        for (uint32_t i = 0; table && i + QCOW2_FEATURE_ENTRY_SIZE <= table_len;
             i += QCOW2_FEATURE_ENTRY_SIZE) {
            if (table[i] == 0 && table[i + 1] == bit) {
                memcpy(buf, table + i + 2, QCOW2_FEATURE_NAME_LEN);
                buf[QCOW2_FEATURE_NAME_LEN] = 0;
                name = buf;
            }
        }
        if (str->len) {
            g_string_append(str, ", ");
        }
        if (name) {
            g_string_append(str, name);
        } else {
            g_string_append_printf(str, "Unknown incompatible feature: %llx",
                                   1ULL << bit);
        }
    }
    error_setg(errp, "Unsupported qcow2 feature(s): %s", str->str);
}

/*
 * Parse header extensions in hdr[start, end) (hdr is the first cluster).
 * Fills backing format, keeps unknown extensions and points *ftable at
 * the feature name table (inside hdr).
 */
static int parse_header_exts(BlockDriverState *bs, const uint8_t *hdr,
                             uint64_t start, uint64_t end,
                             const uint8_t **ftable, uint32_t *ftable_len,
                             Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t pos = start;

    *ftable = NULL;
    *ftable_len = 0;
    while (pos + 8 <= end) {
        uint32_t magic = ldbe32_p(hdr + pos);
        uint32_t len = ldbe32_p(hdr + pos + 4);
        const uint8_t *data = hdr + pos + 8;

        if (magic == QCOW2_EXT_END) {
            return 0;
        }
        if (len > end - pos - 8) {
            error_setg(errp, "Invalid header extension length %" PRIu32
                       " in '%s'", len, bs->filename);
            return -EINVAL;
        }
        if (magic == QCOW2_EXT_BACKING_FORMAT) {
            if (len >= sizeof(bs->backing_format)) {
                error_setg(errp, "ERROR: ext_backing_format: len=%" PRIu32
                           " too large", len);
                return -EINVAL;
            }
            memcpy(bs->backing_format, data, len);
            bs->backing_format[len] = 0;
        } else if (magic == QCOW2_EXT_FEATURE_TABLE) {
            *ftable = data;
            *ftable_len = len;
        } else if (magic == QCOW2_EXT_CRYPTO) {
            error_setg(errp, "Opening encrypted images is not supported");
            return -ENOTSUP;
        } else if (magic == QCOW2_EXT_DATA_FILE) {
            error_setg(errp, "External data files are not supported");
            return -ENOTSUP;
        } else {
            Qcow2UnknownExt *e = g_new0(Qcow2UnknownExt, 1);
            e->magic = magic;
            e->len = len;
            e->data = g_memdup2(data, len);
            s->unknown_header_ext = g_slist_append(s->unknown_header_ext, e);
        }
        pos += 8 + QEMU_ALIGN_UP((uint64_t)len, 8);
    }
    return 0;
}

/* Refuse what this driver cannot handle, with QEMU-style messages. */
static int check_features(BlockDriverState *bs, const Qcow2Header *h,
                          const uint8_t *ftable, uint32_t ftable_len,
                          int flags, Error **errp)
{
    if (h->crypt_method) {
        error_setg(errp, "Opening encrypted images is not supported");
        return -ENOTSUP;
    }
    if (h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN) {
        report_unsupported(bs, ftable, ftable_len,
                           h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN,
                           errp);
        return -ENOTSUP;
    }
    if (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) {
        error_setg(errp, "External data files are not supported");
        return -ENOTSUP;
    }
    if (h->compression_type == QCOW2_COMPRESSION_ZSTD) {
        error_setg(errp, "Compression type 'zstd' is not supported");
        return -ENOTSUP;
    }
    if ((h->incompatible_features & QCOW2_INCOMPAT_CORRUPT) &&
        (flags & BDRV_O_RDWR)) {
        error_setg(errp, "qcow2: Image is corrupt; cannot be opened "
                   "read/write");
        return -EACCES;
    }
    if ((h->incompatible_features & QCOW2_INCOMPAT_EXTL2) &&
        (flags & BDRV_O_RDWR)) {
        error_setg(errp, "Writing to images with extended L2 entries "
                   "(subclusters) is not supported; open read-only");
        return -ENOTSUP;
    }
    return 0;
}

/* Read the first cluster and decode/validate the header. */
static int coroutine_fn read_header(BlockDriverState *bs, Qcow2Header *h,
                                    uint8_t **hdr, Error **errp)
{
    int64_t fsize = qcow2_file_size(bs);
    uint8_t fixed[QCOW2_V3_MIN_HEADER_LENGTH] = { 0 };
    uint64_t cs;
    int ret;

    if (fsize < 0) {
        error_setg_errno(errp, -fsize, "Could not get size of '%s'",
                         bs->filename);
        return fsize;
    }
    if (fsize < QCOW2_V2_HEADER_LENGTH) {
        error_setg(errp, "Image is not in qcow2 format");
        return -EINVAL;
    }
    ret = bdrv_co_pread(bs->file, 0, MIN(fsize, (int64_t)sizeof(fixed)),
                        fixed, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        return ret;
    }
    qcow2_header_decode(fixed, sizeof(fixed), h);
    ret = qcow2_header_validate(h, fsize, errp);
    if (ret < 0) {
        return ret;
    }
    cs = 1ULL << h->cluster_bits;
    *hdr = g_malloc0(cs);
    ret = bdrv_co_pread(bs->file, 0, MIN((uint64_t)fsize, cs), *hdr, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        return ret;
    }
    qcow2_header_decode(*hdr, cs, h);
    return 0;
}

/* Take the runtime options out of options and size the caches. */
static int open_options(BlockDriverState *bs, QDict *options,
                        const Qcow2Header *h, int *l2_tables,
                        int *rb_tables, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l2_bytes, rb_bytes, covered;
    bool lazy;

    covered = MIN(h->size, QCOW2_DEFAULT_L2_COVERAGE);
    l2_bytes = MIN(DIV_ROUND_UP(covered, (uint64_t)s->cluster_size *
                                s->l2_size) * s->cluster_size,
                   QCOW2_DEFAULT_L2_CACHE_MAX);
    if (!qdict_get_size(options, "l2-cache-size", l2_bytes, &l2_bytes, errp) ||
        !qdict_get_size(options, "refcount-cache-size", l2_bytes / 4,
                        &rb_bytes, errp) ||
        !qdict_get_bool(options, "lazy-refcounts",
                        h->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS,
                        &lazy, errp)) {
        return -EINVAL;
    }
    qdict_del(options, "l2-cache-size");
    qdict_del(options, "refcount-cache-size");
    qdict_del(options, "lazy-refcounts");
    if (lazy && h->version < 3) {
        error_setg(errp, "Lazy refcounts require a qcow2 image with at least "
                   "qemu 1.1 compatibility level");
        return -EINVAL;
    }
    s->use_lazy_refcounts = lazy;
    *l2_tables = CLAMP(l2_bytes / s->cluster_size, QCOW2_MIN_CACHE_TABLES,
                       QCOW2_MAX_CACHE_TABLES);
    *rb_tables = CLAMP(rb_bytes / s->cluster_size, QCOW2_MIN_CACHE_TABLES,
                       QCOW2_MAX_CACHE_TABLES);
    return 0;
}

/* Copy header fields into s and load the L1 table. */
static int coroutine_fn load_l1(BlockDriverState *bs, const Qcow2Header *h,
                                Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    s->l1_size = h->l1_size;
    s->l1_table_offset = h->l1_table_offset;
    s->l1_table = g_try_new0(uint64_t, MAX(s->l1_size, 1));
    if (!s->l1_table) {
        error_setg(errp, "Could not allocate L1 table");
        return -ENOMEM;
    }
    if (!s->l1_size) {
        return 0;
    }
    ret = bdrv_co_pread(bs->file, s->l1_table_offset,
                        (uint64_t)s->l1_size * 8, s->l1_table, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read L1 table");
        return ret;
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        s->l1_table[i] = be64_to_cpu(s->l1_table[i]);
    }
    return 0;
}

/* Read-write open: repair a dirty image, drop unknown autoclear bits. */
static int coroutine_fn open_rw_fixups(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (s->incompatible_features & QCOW2_INCOMPAT_DIRTY) {
        BdrvCheckResult res = { 0 };
        ret = qcow2_check(bs, &res, BDRV_FIX_ERRORS | BDRV_FIX_LEAKS);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not repair dirty image '%s'",
                             bs->filename);
            return ret;
        }
        ret = qcow2_co_mark_clean(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            return ret;
        }
    }
    if (s->autoclear_features) {
        /* We do not maintain bitmaps: invalidate them as the spec says. */
        s->autoclear_features = 0;
        ret = qcow2_co_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            return ret;
        }
    }
    return 0;
}

/* Build the caches from the sizes chosen by open_options. */
static void create_caches(BlockDriverState *bs, int l2_tables, int rb_tables)
{
    BDRVQcow2State *s = bs->opaque;

    s->l2_table_cache = qcow2_cache_create("l2", &qcow2_file_cache_ops, bs,
                                           l2_tables, s->cluster_size);
    s->refcount_block_cache = qcow2_cache_create("refcount",
                                                 &qcow2_file_cache_ops, bs,
                                                 rb_tables, s->cluster_size);
    if (!s->use_lazy_refcounts) {
        qcow2_cache_set_dependency(s->l2_table_cache,
                                   s->refcount_block_cache);
    }
}

typedef struct Qcow2OpenCo {
    BlockDriverState *bs;
    QDict *options;
    int flags;
    Error **errp;
} Qcow2OpenCo;

/* The body of open, in coroutine context (see qcow2_open). */
static int coroutine_fn qcow2_co_do_open(BlockDriverState *bs, QDict *options,
                                         int flags, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *hdr = NULL;
    const uint8_t *ftable;
    uint32_t ftable_len;
    Qcow2Header h;
    int l2_tables, rb_tables, ret;

    ret = read_header(bs, &h, &hdr, errp);
    if (ret < 0) {
        return ret;
    }
    ret = parse_header_exts(bs, hdr, h.header_length,
                            h.backing_file_offset ? h.backing_file_offset
                                                  : 1ULL << h.cluster_bits,
                            &ftable, &ftable_len, errp);
    if (ret < 0) {
        return ret;
    }
    ret = check_features(bs, &h, ftable, ftable_len, flags, errp);
    if (ret < 0) {
        return ret;
    }
    s->qcow_version = h.version;
    qcow2_set_geometry(s, h.cluster_bits,
                       h.incompatible_features & QCOW2_INCOMPAT_EXTL2,
                       h.refcount_order);
    s->incompatible_features = h.incompatible_features;
    s->compatible_features = h.compatible_features;
    s->autoclear_features = h.autoclear_features;
    s->header_length = h.header_length;
    s->compression_type = h.compression_type;
    s->crypt_method = h.crypt_method;
    s->refcount_table_offset = h.refcount_table_offset;
    s->refcount_table_size = (uint64_t)h.refcount_table_clusters *
                             s->cluster_size / 8;
    s->nb_snapshots = h.nb_snapshots;
    s->snapshots_offset = h.snapshots_offset;
    bs->total_bytes = h.size;
    if (h.backing_file_offset) {
        memcpy(bs->backing_file, hdr + h.backing_file_offset,
               h.backing_file_size);
        bs->backing_file[h.backing_file_size] = 0;
    }

    ret = open_options(bs, options, &h, &l2_tables, &rb_tables, errp);
    if (ret < 0) {
        return ret;
    }
    ret = load_l1(bs, &h, errp);
    if (ret < 0) {
        return ret;
    }
    create_caches(bs, l2_tables, rb_tables);
    ret = qcow2_co_refcount_init(bs, errp);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_co_read_snapshots(bs, errp);
    if (ret < 0) {
        return ret;
    }
    if (flags & BDRV_O_RDWR) {
        ret = open_rw_fixups(bs, errp);
        if (ret < 0) {
            return ret;
        }
    }
    trace_qcow2_open(bs, s->qcow_version, s->cluster_bits, h.size, flags);
    return 0;
}

/* Coroutine trampoline for qcow2_open (run_sync). */
static int coroutine_fn qcow2_open_entry(void *opaque)
{
    Qcow2OpenCo *oc = opaque;

    return qcow2_co_do_open(oc->bs, oc->options, oc->flags, oc->errp);
}

/* Free everything open allocated (also used on open failure). */
static void qcow2_free_state(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    qcow2_cache_destroy(s->l2_table_cache);
    qcow2_cache_destroy(s->refcount_block_cache);
    s->l2_table_cache = s->refcount_block_cache = NULL;
    qcow2_refcount_close(bs);
    qcow2_free_snapshots(bs);
    g_free(s->l1_table);
    s->l1_table = NULL;
    for (GSList *l = s->unknown_header_ext; l; l = l->next) {
        Qcow2UnknownExt *e = l->data;
        g_free(e->data);
        g_free(e);
    }
    g_slist_free(s->unknown_header_ext);
    s->unknown_header_ext = NULL;
}

/*
 * .bdrv_open: open the "file" child, then parse and validate everything
 * in a coroutine. On failure all driver state is freed again.
 */
static int qcow2_open(BlockDriverState *bs, QDict *options, int flags,
                      Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2OpenCo oc = { .bs = bs, .options = options, .flags = flags,
                       .errp = errp };
    int ret;

    bs->file = bdrv_open_child(NULL, options, "file", bs, BDRV_CHILD_FILE,
                               false, errp);
    if (!bs->file) {
        return -EINVAL;
    }
    s->bs = bs;
    qemu_co_mutex_init(&s->lock);
    ret = qemu_coroutine_call_sync(qcow2_open_entry, &oc);
    if (ret < 0) {
        qcow2_free_state(bs);
    }
    return ret;
}

/* ---- Close */

/* Write back caches, flush, and clear the dirty bit (lazy refcounts). */
static int coroutine_fn qcow2_close_entry(void *opaque)
{
    BlockDriverState *bs = opaque;
    BDRVQcow2State *s = bs->opaque;
    int ret;

    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_co_flush_metadata(bs);
    if (ret >= 0) {
        ret = bdrv_co_flush(bs->file->bs);
    }
    /* Refcounts are consistent again once everything is on disk. */
    if (ret >= 0 && !s->corrupt_signalled &&
        (s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        ret = qcow2_co_mark_clean(bs);
    }
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/* .bdrv_close: flush metadata of read-write nodes, free all state. */
static void qcow2_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    trace_qcow2_close(bs);
    if (!bs->read_only && s->l2_table_cache) {
        int ret = qemu_coroutine_call_sync(qcow2_close_entry, bs);
        if (ret < 0) {
            error_report("qcow2: failed to flush metadata of '%s' on close: "
                         "%s", bs->filename, strerror(-ret));
        }
    }
    qcow2_free_state(bs);
}

/* ---- Reopen (block/reopen.c drives these; the node is drained) */

/* Becoming read-write: the open-time refusals and fixups, in a coroutine. */
static int coroutine_fn qcow2_reopen_rw_entry(void *opaque)
{
    Qcow2OpenCo *oc = opaque;
    BDRVQcow2State *s = oc->bs->opaque;

    if (s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) {
        error_setg(oc->errp, "qcow2: Image is corrupt; cannot be opened "
                   "read/write");
        return -EACCES;
    }
    if (s->incompatible_features & QCOW2_INCOMPAT_EXTL2) {
        error_setg(oc->errp, "Writing to images with extended L2 entries "
                   "(subclusters) is not supported; open read-only");
        return -ENOTSUP;
    }
    return open_rw_fixups(oc->bs, oc->errp);
}

/*
 * .bdrv_reopen_prepare. To read-only: everything cached reaches the disk
 * and the dirty bit is cleared, exactly as a clean close leaves the image.
 * To read-write (the file below is writable already): refuse corrupt
 * images and repair a dirty one as a read-write open does; the fixups
 * need the node writable, so it is for their duration (it is drained).
 * Nothing to commit or abort: the on-disk changes are valid in both modes.
 */
static int qcow2_reopen_prepare(BlockDriverState *bs, bool read_only,
                                Error **errp)
{
    Qcow2OpenCo oc = { .bs = bs, .errp = errp };
    int ret;

    if (read_only) {
        ret = qemu_coroutine_call_sync(qcow2_close_entry, bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not flush '%s' before "
                             "reopening it read-only", bs->filename);
        }
    } else {
        bs->read_only = false;
        ret = qemu_coroutine_call_sync(qcow2_reopen_rw_entry, &oc);
        bs->read_only = true;
    }
    trace_qcow2_reopen_prepare(bs, read_only, ret);
    return ret;
}

/* ---- Image-level operations */

static int coroutine_fn qcow2_co_truncate(BlockDriverState *bs, int64_t offset,
                                          bool exact, PreallocMode prealloc,
                                          BdrvRequestFlags flags, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t old = bs->total_bytes;
    int ret;

    if (prealloc != PREALLOC_MODE_OFF && prealloc != PREALLOC_MODE_METADATA) {
        error_setg(errp, "Unsupported preallocation mode '%s'",
                   prealloc_mode_str(prealloc));
        return -ENOTSUP;
    }
    if (offset % BDRV_SECTOR_SIZE) {
        error_setg(errp, "The new size must be a multiple of 512");
        return -EINVAL;
    }
    if (s->nb_snapshots && s->qcow_version < 3) {
        error_setg(errp, "Can't resize a v2 image which has snapshots");
        return -ENOTSUP;
    }
    if (offset < old) {
        if (!exact) {
            return 0;
        }
        error_setg(errp, "qcow2 doesn't support shrinking images yet");
        return -ENOTSUP;
    }
    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_co_prepare_write(bs);
    if (ret >= 0) {
        ret = qcow2_co_grow_l1(bs, qcow2_l1_entries_for_size(
                                   s->cluster_bits, s->l2_bits, offset));
    }
    if (ret >= 0 && prealloc == PREALLOC_MODE_METADATA && offset > old) {
        ret = qcow2_co_preallocate_metadata(bs, old, offset - old);
    }
    if (ret >= 0) {
        ret = qcow2_co_flush_metadata(bs);
    }
    if (ret >= 0) {
        bs->total_bytes = offset;
        ret = qcow2_co_update_header(bs);
        if (ret < 0) {
            bs->total_bytes = old;
        }
    }
    qemu_co_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to resize '%s'", bs->filename);
    }
    return ret;
}

/* .bdrv_getlength: the virtual disk size from the header. */
static int64_t qcow2_getlength(BlockDriverState *bs)
{
    return bs->total_bytes;
}

/* .bdrv_get_info: cluster size, dirty flag, VM state offset. */
static int qcow2_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVQcow2State *s = bs->opaque;

    bdi->cluster_size = s->cluster_size;
    bdi->is_dirty = s->incompatible_features & QCOW2_INCOMPAT_DIRTY;
    bdi->vm_state_offset = qcow2_l1_entries_for_size(
        s->cluster_bits, s->l2_bits, bs->total_bytes) <<
        (s->cluster_bits + s->l2_bits);
    return 0;
}

/* .bdrv_get_specific_info_json: the fields `qemu-img info` prints. */
static char *qcow2_get_specific_info_json(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->qcow_version < 3) {
        return g_strdup_printf("{\"type\": \"qcow2\", \"data\": {"
                               "\"compat\": \"0.10\", \"compression-type\": "
                               "\"zlib\", \"refcount-bits\": %d}}",
                               s->refcount_bits);
    }
    return g_strdup_printf(
        "{\"type\": \"qcow2\", \"data\": {\"compat\": \"1.1\", "
        "\"compression-type\": \"%s\", \"lazy-refcounts\": %s, "
        "\"refcount-bits\": %d, \"corrupt\": %s, \"extended-l2\": %s}}",
        s->compression_type ? "zstd" : "zlib",
        (s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS) ? "true"
                                                                : "false",
        s->refcount_bits,
        (s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) ? "true" : "false",
        s->extended_l2 ? "true" : "false");
}

/* Clear every L2 entry (freeing clusters after the L2 flush). */
static int coroutine_fn make_empty_entry(void *opaque)
{
    BlockDriverState *bs = opaque;
    BDRVQcow2State *s = bs->opaque;
    int ret;

    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_co_prepare_write(bs);
    if (ret >= 0) {
        ret = qcow2_co_zero_or_discard(
            bs, 0, QEMU_ALIGN_UP(bs->total_bytes, s->cluster_size),
            QCOW2_DISCARD_FULL);
    }
    if (ret >= 0) {
        ret = qcow2_co_flush_metadata(bs);
    }
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/* .bdrv_make_empty: the image reads as its backing file afterwards. */
static int qcow2_make_empty(BlockDriverState *bs)
{
    return qemu_coroutine_call_sync(make_empty_entry, bs);
}

typedef struct Qcow2BackingCo {
    BlockDriverState *bs;
    const char *file;
    const char *fmt;
} Qcow2BackingCo;

/* Rewrite the header with the new name/format; restore on failure. */
static int coroutine_fn change_backing_entry(void *opaque)
{
    Qcow2BackingCo *bc = opaque;
    BlockDriverState *bs = bc->bs;
    BDRVQcow2State *s = bs->opaque;
    g_autofree char *old_file = g_strdup(bs->backing_file);
    g_autofree char *old_fmt = g_strdup(bs->backing_format);
    int ret;

    qemu_co_mutex_lock(&s->lock);
    /*
     * Data copied for the new backing file (rebase) must be mapped on
     * disk before the header names that file: write the metadata caches
     * back and flush, so a crash leaves either the old name with the old
     * data or the new name with the copies mapped.
     */
    ret = qcow2_co_flush_metadata(bs);
    if (ret >= 0) {
        ret = bdrv_co_flush(bs->file->bs);
    }
    if (ret < 0) {
        qemu_co_mutex_unlock(&s->lock);
        return ret;
    }
    g_strlcpy(bs->backing_file, bc->file ? bc->file : "",
              sizeof(bs->backing_file));
    g_strlcpy(bs->backing_format, bc->file && bc->fmt ? bc->fmt : "",
              sizeof(bs->backing_format));
    ret = qcow2_co_update_header(bs);
    if (ret < 0) {
        g_strlcpy(bs->backing_file, old_file, sizeof(bs->backing_file));
        g_strlcpy(bs->backing_format, old_fmt, sizeof(bs->backing_format));
    }
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/*
 * .bdrv_change_backing_file: one header write inside the first cluster;
 * -ENOSPC when the name and extensions do not fit there.
 */
static int qcow2_change_backing_file(BlockDriverState *bs,
                                     const char *backing_file,
                                     const char *backing_fmt)
{
    Qcow2BackingCo bc = { .bs = bs, .file = backing_file, .fmt = backing_fmt };

    if ((backing_file && strlen(backing_file) > QCOW2_MAX_BACKING_NAME) ||
        (backing_fmt && strlen(backing_fmt) >= sizeof(bs->backing_format))) {
        return -EINVAL;
    }
    return qemu_coroutine_call_sync(change_backing_entry, &bc);
}

/* .bdrv_probe: the magic and a version we understand. */
static int qcow2_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    if (buf_size >= 8 && ldbe32_p(buf) == QCOW_MAGIC &&
        (ldbe32_p(buf + 4) == 2 || ldbe32_p(buf + 4) == 3)) {
        return 100;
    }
    return 0;
}

/* Byte-granular requests; zeroing and discard work on whole clusters. */
static void qcow2_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;

    bs->bl.request_alignment = 1;
    bs->bl.pwrite_zeroes_alignment = s->cluster_size;
    bs->bl.pdiscard_alignment = s->cluster_size;
}

/* ---- Image creation */

typedef struct Qcow2CreateOpts {
    uint64_t size;
    int version;
    uint64_t cluster_size;
    int refcount_order;
    bool lazy_refcounts;
    PreallocMode prealloc;
    char *backing_file;
    char *backing_fmt;
} Qcow2CreateOpts;

/* Parse the string option key with allowed values; *out = index. */
static bool create_opt_choice(QDict *opts, const char *key,
                              const char *const *values, int def, int *out,
                              Error **errp)
{
    const char *v = qdict_get_try_str(opts, key);

    *out = def;
    if (!v) {
        return true;
    }
    for (int i = 0; values[i]; i++) {
        if (!strcmp(v, values[i])) {
            *out = i;
            qdict_del(opts, key);
            return true;
        }
    }
    error_setg(errp, "Parameter '%s' does not accept value '%s'", key, v);
    return false;
}

/* Features we cannot create: refuse loudly. */
static bool create_refuse_unsupported(QDict *opts, Error **errp)
{
    bool extl2 = false, enc = false;
    int ctype;
    static const char *const ctypes[] = { "zlib", "zstd", NULL };

    if (!qdict_get_bool(opts, "extended_l2", false, &extl2, errp) ||
        !qdict_get_bool(opts, "encryption", false, &enc, errp) ||
        !create_opt_choice(opts, "compression_type", ctypes, 0, &ctype,
                           errp)) {
        return false;
    }
    qdict_del(opts, "extended_l2");
    qdict_del(opts, "encryption");
    if (extl2) {
        error_setg(errp, "Creating images with extended L2 entries is not "
                   "supported");
    } else if (enc) {
        error_setg(errp, "Encrypted images are not supported");
    } else if (ctype) {
        error_setg(errp, "Compression type 'zstd' is not supported");
    }
    return !extl2 && !enc && !ctype;
}

/* Parse and check creation options (consumed from opts). */
static bool create_parse_opts(QDict *opts, Qcow2CreateOpts *o, Error **errp)
{
    static const char *const compats[] = { "0.10", "v2", "1.1", "v3", NULL };
    static const char *const preallocs[] = { "off", "metadata", NULL };
    uint64_t rb = 16;
    int c, p;

    if (!qdict_haskey(opts, "size")) {
        error_setg(errp, "Parameter 'size' is required");
        return false;
    }
    if (!qdict_get_size(opts, "size", 0, &o->size, errp) ||
        !create_opt_choice(opts, "compat", compats, 2, &c, errp) ||
        !qdict_get_size(opts, "cluster_size", 64 * KiB, &o->cluster_size,
                        errp) ||
        !qdict_get_uint(opts, "refcount_bits", 16, &rb, errp) ||
        !qdict_get_bool(opts, "lazy_refcounts", false, &o->lazy_refcounts,
                        errp) ||
        !create_opt_choice(opts, "preallocation", preallocs, 0, &p, errp) ||
        !create_refuse_unsupported(opts, errp)) {
        return false;
    }
    qdict_del(opts, "size");
    qdict_del(opts, "cluster_size");
    qdict_del(opts, "refcount_bits");
    qdict_del(opts, "lazy_refcounts");
    o->version = c < 2 ? 2 : 3;
    o->prealloc = p ? PREALLOC_MODE_METADATA : PREALLOC_MODE_OFF;
    o->size = QEMU_ALIGN_UP(o->size, BDRV_SECTOR_SIZE);
    o->backing_file = g_strdup(qdict_get_try_str(opts, "backing_file"));
    o->backing_fmt = g_strdup(qdict_get_try_str(opts, "backing_fmt"));
    qdict_del(opts, "backing_file");
    qdict_del(opts, "backing_fmt");
    if (!is_power_of_2(o->cluster_size) || o->cluster_size < 512 ||
        o->cluster_size > 2 * MiB) {
        error_setg(errp, "Cluster size must be a power of two between 512 "
                   "and 2048k");
        return false;
    }
    if (!is_power_of_2(rb) || rb > 64) {
        error_setg(errp, "Refcount width must be a power of two and may not "
                   "exceed 64 bits");
        return false;
    }
    o->refcount_order = ctz64(rb);
    if (o->version < 3 && rb != 16) {
        error_setg(errp, "Different refcount widths than 16 bits require "
                   "compatibility level 1.1 or above (use version=v3 or "
                   "greater)");
        return false;
    }
    if (o->version < 3 && o->lazy_refcounts) {
        error_setg(errp, "Lazy refcounts only supported with compatibility "
                   "level 1.1 and above (use version=v3 or greater)");
        return false;
    }
    if (o->backing_fmt && !o->backing_file) {
        error_setg(errp, "Backing format cannot be used without backing "
                   "file");
        return false;
    }
    if (o->backing_file && strlen(o->backing_file) > QCOW2_MAX_BACKING_NAME) {
        error_setg(errp, "Backing file name too long");
        return false;
    }
    return true;
}

/*
 * Write the smallest valid image: header (cluster 0), refcount table
 * (cluster 1), refcount block (cluster 2), an empty L1 table. Size, L1,
 * backing file and the feature table are filled in through the driver.
 */
static int create_write_skeleton(const char *filename, Qcow2CreateOpts *o,
                                 Error **errp)
{
    size_t cs = o->cluster_size;
    g_autoptr(QDict) fopts = qdict_new();
    g_autofree uint8_t *buf = g_malloc0(3 * cs);
    BlockDriverState *file;
    BdrvChild *child;
    QDict *fopts2;
    int ret;

    ret = bdrv_create_file(filename, fopts, errp);
    if (ret < 0) {
        return ret;
    }
    fopts2 = qdict_new();
    qdict_put_str(fopts2, "driver", "file");
    file = bdrv_open(filename, fopts2, BDRV_O_RDWR, errp);
    if (!file) {
        return -EIO;
    }
    child = bdrv_root_attach(file, "qcow2-create", errp);
    bdrv_unref(file);
    if (!child) {
        return -EIO;
    }
    stbe32_p(buf, QCOW_MAGIC);
    stbe32_p(buf + 4, o->version);
    stbe32_p(buf + 20, ctz64(cs));
    stbe64_p(buf + 40, 3 * cs);              /* L1 (size 0) goes here */
    stbe64_p(buf + 48, cs);                  /* refcount table */
    stbe32_p(buf + 56, 1);
    if (o->version >= 3) {
        stbe32_p(buf + 96, o->refcount_order);
        stbe32_p(buf + 100, QCOW2_V3_HEADER_LENGTH);
    }
    stbe64_p(buf + cs, 2 * cs);              /* refcount block */
    for (int i = 0; i < 3; i++) {
        qcow2_refblock_set(buf + 2 * cs, o->refcount_order, i, 1);
    }
    ret = bdrv_pwrite(child, 0, 3 * cs, buf, 0);
    if (ret >= 0) {
        ret = bdrv_flush(bdrv_child_bs(child));
    }
    bdrv_root_unref_child(child);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write qcow2 header to '%s'",
                         filename);
    }
    return ret < 0 ? ret : 0;
}

typedef struct Qcow2CreateCo {
    BlockDriverState *bs;
    Qcow2CreateOpts *o;
    Error **errp;
} Qcow2CreateCo;

/* Through the driver: features, backing file, size, preallocation. */
static int coroutine_fn create_finish_entry(void *opaque)
{
    Qcow2CreateCo *cc = opaque;
    BlockDriverState *bs = cc->bs;
    BDRVQcow2State *s = bs->opaque;
    Qcow2CreateOpts *o = cc->o;
    int ret;

    qemu_co_mutex_lock(&s->lock);
    if (o->lazy_refcounts) {
        s->compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
    }
    g_strlcpy(bs->backing_file, o->backing_file ?: "",
              sizeof(bs->backing_file));
    g_strlcpy(bs->backing_format, o->backing_fmt ?: "",
              sizeof(bs->backing_format));
    ret = qcow2_co_update_header(bs);
    qemu_co_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(cc->errp, -ret, "Could not write qcow2 header "
                         "(backing file name too long?)");
        return ret;
    }
    return qcow2_co_truncate(bs, o->size, true, o->prealloc, 0, cc->errp);
}

/*
 * .bdrv_create: parse options, write a minimal image, then open it with
 * this driver to set features, the backing file and the size, so all
 * metadata is laid out by the same crash-safe code as at run time.
 */
static int qcow2_create(const char *filename, QDict *opts, Error **errp)
{
    Qcow2CreateOpts o = { 0 };
    Qcow2CreateCo cc = { .o = &o, .errp = errp };
    QDict *qopts;
    int ret = -EINVAL;

    if (!create_parse_opts(opts, &o, errp)) {
        goto out;
    }
    ret = create_write_skeleton(filename, &o, errp);
    if (ret < 0) {
        goto out;
    }
    qopts = qdict_new();
    qdict_put_str(qopts, "driver", "qcow2");
    cc.bs = bdrv_open(filename, qopts, BDRV_O_RDWR | BDRV_O_NO_BACKING, errp);
    if (!cc.bs) {
        ret = -EIO;
        goto out;
    }
    ret = qemu_coroutine_call_sync(create_finish_entry, &cc);
    bdrv_unref(cc.bs);
out:
    g_free(o.backing_file);
    g_free(o.backing_fmt);
    return ret;
}

/* Creation options, named as qemu-img -o names them. */
static const char *const qcow2_create_opts[] = {
    "size", "compat", "backing_file", "backing_fmt", "cluster_size",
    "preallocation", "lazy_refcounts", "refcount_bits", "extended_l2",
    "encryption", "compression_type", NULL,
};

/* The qcow2 format driver (listed in block/block.c's driver table). */
const BlockDriver bdrv_qcow2 = {
    .format_name = "qcow2",
    .instance_size = sizeof(BDRVQcow2State),
    .supports_backing = true,
    .bdrv_probe = qcow2_probe,
    .bdrv_open = qcow2_open,
    .bdrv_close = qcow2_close,
    .bdrv_reopen_prepare = qcow2_reopen_prepare,
    .bdrv_refresh_limits = qcow2_refresh_limits,
    .bdrv_co_preadv = qcow2_co_preadv,
    .bdrv_co_pwritev = qcow2_co_pwritev,
    .bdrv_co_pwrite_zeroes = qcow2_co_pwrite_zeroes,
    .bdrv_co_pdiscard = qcow2_co_pdiscard,
    .bdrv_co_flush_to_os = qcow2_co_flush_to_os,
    .bdrv_co_block_status = qcow2_co_block_status,
    .bdrv_co_truncate = qcow2_co_truncate,
    .bdrv_getlength = qcow2_getlength,
    .bdrv_get_info = qcow2_get_info,
    .bdrv_get_specific_info_json = qcow2_get_specific_info_json,
    .bdrv_check = qcow2_check,
    .bdrv_make_empty = qcow2_make_empty,
    .bdrv_change_backing_file = qcow2_change_backing_file,
    .bdrv_create = qcow2_create,
    .create_opts = qcow2_create_opts,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK,
};

/*
 * I/O vectors (QEMUIOVector): scatter/gather lists with a cached total size.
 *
 * State: an iovec array that is either owned (nalloc > 0, allocated with
 * g_new and grown by doubling) or borrowed (nalloc == 0: the vector's own
 * local_iov entry, or an array belonging to someone else). Only owned
 * arrays are ever written to or freed; adding to a borrowed vector first
 * copies its entries into a fresh owned array. The data buffers
 * themselves are never owned: slicing and concatenating only record
 * pointers, so no payload byte is copied except by the explicit
 * to_buf/from_buf/memset helpers.
 *
 * Not thread-safe; a vector belongs to one request at a time.
 */
#include "qemu/osdep.h"
#include "qemu/iov.h"

/* Owned, empty array; the hint only sizes the first allocation. */
void qemu_iovec_init(QEMUIOVector *qiov, int alloc_hint)
{
    if (alloc_hint < 1) {
        alloc_hint = 1;
    }
    memset(qiov, 0, sizeof(*qiov));
    qiov->iov = g_new(struct iovec, alloc_hint);
    qiov->nalloc = alloc_hint;
}

/*
 * Borrowed single entry stored inside the struct itself: the vector must
 * not be moved (copied by value) while in use, or iov would dangle.
 */
void qemu_iovec_init_buf(QEMUIOVector *qiov, void *buf, size_t len)
{
    memset(qiov, 0, sizeof(*qiov));
    qiov->local_iov.iov_base = buf;
    qiov->local_iov.iov_len = len;
    qiov->iov = &qiov->local_iov;
    qiov->niov = 1;
    qiov->size = len;
}

/* Make sure qiov owns an array with room for at least one more entry. */
static void qemu_iovec_reserve_one(QEMUIOVector *qiov)
{
    if (qiov->nalloc == 0) {
        /* Borrowed: copy the entries into an owned array first. */
        int nalloc = MAX(4, qiov->niov * 2);
        struct iovec *iov = g_new(struct iovec, nalloc);

        if (qiov->niov) {
            memcpy(iov, qiov->iov, qiov->niov * sizeof(*iov));
        }
        qiov->iov = iov;
        qiov->nalloc = nalloc;
    } else if (qiov->niov == qiov->nalloc) {
        qiov->nalloc *= 2;
        qiov->iov = g_renew(struct iovec, qiov->iov, qiov->nalloc);
    }
}

/* Append one buffer; zero-length entries are kept (harmless to preadv). */
void qemu_iovec_add(QEMUIOVector *qiov, void *base, size_t len)
{
    qemu_iovec_reserve_one(qiov);
    qiov->iov[qiov->niov].iov_base = base;
    qiov->iov[qiov->niov].iov_len = len;
    qiov->niov++;
    qiov->size += len;
}

/*
 * Record pointers into src's buffers for [offset, offset + len); the range
 * must lie within src (asserted). Entries are split at the range edges.
 */
void qemu_iovec_concat(QEMUIOVector *dst, QEMUIOVector *src,
                       size_t offset, size_t len)
{
    int i;

    g_assert(offset <= src->size && len <= src->size - offset);
    for (i = 0; i < src->niov && len > 0; i++) {
        size_t ilen = src->iov[i].iov_len;
        size_t chunk;

        if (offset >= ilen) {
            offset -= ilen;
            continue;
        }
        chunk = MIN(ilen - offset, len);
        qemu_iovec_add(dst, (char *)src->iov[i].iov_base + offset, chunk);
        offset = 0;
        len -= chunk;
    }
    g_assert(len == 0);
}

/* The new vector owns only its iovec array; the bytes stay source's. */
void qemu_iovec_init_slice(QEMUIOVector *qiov, QEMUIOVector *source,
                           size_t offset, size_t len)
{
    qemu_iovec_init(qiov, MAX(1, source->niov));
    qemu_iovec_concat(qiov, source, offset, len);
}

/* Empty the vector but keep an owned array for reuse. */
void qemu_iovec_reset(QEMUIOVector *qiov)
{
    if (qiov->nalloc == 0) {
        /* Forget the borrowed array; the next add allocates. */
        qiov->iov = &qiov->local_iov;
    }
    qiov->niov = 0;
    qiov->size = 0;
}

/* Free an owned array (never the data); leaves the vector zeroed. */
void qemu_iovec_destroy(QEMUIOVector *qiov)
{
    if (qiov->nalloc > 0) {
        g_free(qiov->iov);
    }
    memset(qiov, 0, sizeof(*qiov));
}

/*
 * Call fn on each piece of the vector overlapping [offset, offset + bytes),
 * passing the piece and its position relative to offset. Stops early when
 * fn returns false. Returns the number of bytes visited.
 */
typedef bool IovPieceFunc(void *base, size_t len, size_t pos, void *opaque);

static size_t qemu_iovec_walk(QEMUIOVector *qiov, size_t offset, size_t bytes,
                              IovPieceFunc *fn, void *opaque)
{
    size_t done = 0;
    int i;

    for (i = 0; i < qiov->niov && done < bytes; i++) {
        size_t ilen = qiov->iov[i].iov_len;
        size_t chunk;

        if (offset >= ilen) {
            offset -= ilen;
            continue;
        }
        chunk = MIN(ilen - offset, bytes - done);
        if (!fn((char *)qiov->iov[i].iov_base + offset, chunk, done, opaque)) {
            return done;
        }
        done += chunk;
        offset = 0;
    }
    return done;
}

static bool piece_to_buf(void *base, size_t len, size_t pos, void *opaque)
{
    memcpy((char *)opaque + pos, base, len);
    return true;
}

static bool piece_from_buf(void *base, size_t len, size_t pos, void *opaque)
{
    memcpy(base, (const char *)opaque + pos, len);
    return true;
}

static bool piece_memset(void *base, size_t len, size_t pos, void *opaque)
{
    memset(base, *(int *)opaque, len);
    return true;
}

static bool piece_is_zero(void *base, size_t len, size_t pos, void *opaque)
{
    return buffer_is_zero(base, len);
}

/*
 * The copy helpers below stop at the end of the vector and return how
 * many bytes they actually handled, which is less than asked only when
 * the range runs past qiov->size.
 */
size_t qemu_iovec_to_buf(QEMUIOVector *qiov, size_t offset,
                         void *buf, size_t bytes)
{
    return qemu_iovec_walk(qiov, offset, bytes, piece_to_buf, buf);
}

size_t qemu_iovec_from_buf(QEMUIOVector *qiov, size_t offset,
                           const void *buf, size_t bytes)
{
    return qemu_iovec_walk(qiov, offset, bytes, piece_from_buf, (void *)buf);
}

size_t qemu_iovec_memset(QEMUIOVector *qiov, size_t offset, int c,
                         size_t bytes)
{
    return qemu_iovec_walk(qiov, offset, bytes, piece_memset, &c);
}

/* Bytes beyond the end of the vector do not exist, so they count as zero. */
bool qemu_iovec_is_zero(QEMUIOVector *qiov, size_t offset, size_t bytes)
{
    size_t avail;

    if (offset >= qiov->size) {
        return true;
    }
    avail = MIN(bytes, qiov->size - offset);
    return qemu_iovec_walk(qiov, offset, avail, piece_is_zero, NULL) == avail;
}

/*
 * I/O vectors: a scatter/gather list of buffers with its total size.
 *
 * The block layer's data path carries every request's payload as a
 * QEMUIOVector so that slicing a request (per cluster, per extent) never
 * copies data. A vector either owns its iovec array (qemu_iovec_init) or
 * borrows one (qemu_iovec_init_buf, qemu_iovec_init_slice); destroy both
 * with qemu_iovec_destroy().
 */
#ifndef QEMU_IOV_H
#define QEMU_IOV_H

#include "qemu/osdep.h"
#include <sys/uio.h>

typedef struct QEMUIOVector {
    struct iovec *iov;
    int niov;
    int nalloc;        /* 0 when iov is borrowed or the local entry */
    size_t size;       /* sum of iov[i].iov_len */
    struct iovec local_iov;  /* storage for single-buffer vectors */
} QEMUIOVector;

/* An empty, owning vector with room for alloc_hint entries. */
void qemu_iovec_init(QEMUIOVector *qiov, int alloc_hint);
/* A vector of one buffer (not owned; nothing to free but the vector). */
void qemu_iovec_init_buf(QEMUIOVector *qiov, void *buf, size_t len);
/* Borrow bytes [offset, offset + len) of source as a new owning vector. */
void qemu_iovec_init_slice(QEMUIOVector *qiov, QEMUIOVector *source,
                           size_t offset, size_t len);
void qemu_iovec_add(QEMUIOVector *qiov, void *base, size_t len);
/* Append bytes [offset, offset + len) of src's buffers to dst. */
void qemu_iovec_concat(QEMUIOVector *dst, QEMUIOVector *src,
                       size_t offset, size_t len);
void qemu_iovec_reset(QEMUIOVector *qiov);
void qemu_iovec_destroy(QEMUIOVector *qiov);

/* Copy between a vector (starting at offset) and a flat buffer. */
size_t qemu_iovec_to_buf(QEMUIOVector *qiov, size_t offset,
                         void *buf, size_t bytes);
size_t qemu_iovec_from_buf(QEMUIOVector *qiov, size_t offset,
                           const void *buf, size_t bytes);
/* Fill bytes [offset, offset + bytes) of the vector with c. */
size_t qemu_iovec_memset(QEMUIOVector *qiov, size_t offset, int c,
                         size_t bytes);
/* True when bytes [offset, offset + bytes) of the vector are all zero. */
bool qemu_iovec_is_zero(QEMUIOVector *qiov, size_t offset, size_t bytes);

#endif /* QEMU_IOV_H */

/*
 * The I/O back-end seam for local files (block/io-backend.c).
 *
 * file-posix issues every data request through this small interface and
 * never talks to io_uring or the thread pool itself. The back end is
 * chosen at run time:
 *  - io_uring (liburing, when built with CONFIG_LINUX_IO_URING): one ring
 *    per process, submissions batched once per main loop iteration,
 *    completions signalled through an eventfd watched by the main loop;
 *  - the thread pool running preadv/pwritev/fdatasync, used when the ring
 *    cannot be set up (old kernel, seccomp), when a node asks for
 *    aio=threads, or when the environment says QBLK_AIO=threads.
 *
 * Both back ends resubmit short transfers for the remainder and retry
 * -EAGAIN/-EINTR, so callers see either the full transfer, a short read
 * that stopped at end of file, or -errno.
 */
#ifndef BLOCK_RAW_AIO_H
#define BLOCK_RAW_AIO_H

#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qapi/error.h"

/* Request types for io_backend_co_rw(). */
#define QEMU_AIO_READ   0x0001
#define QEMU_AIO_WRITE  0x0002
#define QEMU_AIO_FLUSH  0x0004   /* fdatasync; offset and qiov ignored */
#define QEMU_AIO_TYPE_MASK (QEMU_AIO_READ | QEMU_AIO_WRITE | QEMU_AIO_FLUSH)
/* Modifier: use the thread pool even when io_uring is available. */
#define QEMU_AIO_THREADS 0x0100

typedef enum IOBackendKind {
    IO_BACKEND_AUTO,       /* io_uring if it works, else threads */
    IO_BACKEND_THREADS,
    IO_BACKEND_IO_URING,
} IOBackendKind;

/*
 * Decide which back end a node opened with aio=wanted uses, setting up
 * the process-wide ring on first use. QBLK_AIO=threads in the
 * environment forces IO_BACKEND_THREADS. Returns the effective kind
 * (never AUTO), or -1 with errp set when io_uring was asked for
 * explicitly and is unavailable.
 */
int io_backend_select(IOBackendKind wanted, Error **errp);
const char *io_backend_kind_str(IOBackendKind kind);

/*
 * Read, write or flush fd. type is one QEMU_AIO_* type, optionally or-ed
 * with QEMU_AIO_THREADS. Returns the number of bytes transferred for reads
 * and writes (a read returns less than qiov->size only at end of file),
 * 0 for a flush, or -errno. Meant for coroutine context; called outside
 * a coroutine (synchronous image creation) it runs the thread-pool
 * variant inline, blocking the caller. The same holds for the helpers
 * below.
 */
int64_t coroutine_fn io_backend_co_rw(int fd, int type, int64_t offset,
                                      QEMUIOVector *qiov);

/* fallocate(fd, mode, offset, len) on a worker thread; 0 or -errno. */
int coroutine_fn io_backend_co_fallocate(int fd, int mode, int64_t offset,
                                         int64_t len);
/* ftruncate(fd, len) on a worker thread; 0 or -errno. */
int coroutine_fn io_backend_co_ftruncate(int fd, int64_t len);
/*
 * ioctl(fd, request, range) for BLKZEROOUT/BLKDISCARD on a worker
 * thread, range = {offset, len}; 0 or -errno.
 */
int coroutine_fn io_backend_co_blk_range_ioctl(int fd, unsigned long request,
                                               int64_t offset, int64_t len);

#endif /* BLOCK_RAW_AIO_H */

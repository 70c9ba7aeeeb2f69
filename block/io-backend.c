/*
 * I/O back ends for local files: io_uring with a thread-pool fallback.
 *
 * State: at most one io_uring per process (`uring` below), created on
 * the first io_backend_select() that wants it and kept until exit. Its
 * completion eventfd is watched by the main loop; a bottom half submits
 * all SQEs queued during one loop iteration with a single
 * io_uring_submit() call (or earlier when the SQ is full). Requests that
 * find the SQ full even after submitting wait in `overflow` and are
 * queued by the next bottom half.
 *
 * Safety: everything here except the worker functions runs on the main
 * loop thread, so the ring needs no lock. A request (UringReq) lives on
 * the stack of the coroutine that waits for it; the coroutine only
 * returns once the request is marked complete, and a completion is only
 * processed from the eventfd handler, i.e. after the coroutine yielded.
 * Short transfers and -EAGAIN/-EINTR are requeued for the remainder, so
 * the caller sees all or nothing (except a short read at end of file).
 *
 * The thread-pool path does the same with preadv/pwritev loops on a
 * worker; the worker only touches its own copy of the iovec array.
 */
#include "qemu/osdep.h"
#include "block/raw-aio.h"
#include "block/thread-pool.h"
#include "qemu/aio.h"
#include "qemu/coroutine.h"
#include "trace.h"

#include <sys/ioctl.h>
#include <sys/uio.h>
#include <linux/fs.h>

#ifdef CONFIG_LINUX_IO_URING
#include <liburing.h>
#include <sys/eventfd.h>
#endif

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* Name of a back end, for traces and messages. */
const char *io_backend_kind_str(IOBackendKind kind)
{
    switch (kind) {
    case IO_BACKEND_THREADS:
        return "threads";
    case IO_BACKEND_IO_URING:
        return "io_uring";
    default:
        return "auto";
    }
}

/* ------------------------------------------------------------------ */
/* Thread pool back end                                                 */

typedef struct ThreadRwReq {
    int fd;
    int type;
    int64_t offset;
    QEMUIOVector *qiov;
    size_t done;            /* bytes transferred (set by the worker) */
} ThreadRwReq;

/* Drop n transferred bytes from the front of iov[*idx..niov). */
static void iov_advance(struct iovec *iov, int *idx, int niov, size_t n)
{
    while (n && *idx < niov) {
        if (n >= iov[*idx].iov_len) {
            n -= iov[*idx].iov_len;
            (*idx)++;
        } else {
            iov[*idx].iov_base = (char *)iov[*idx].iov_base + n;
            iov[*idx].iov_len -= n;
            n = 0;
        }
    }
}

/*
 * True if a read that came back short stopped at the end of regular file
 * fd: reading on from pos would only return 0, or fail with O_DIRECT
 * because pos is no longer block aligned.
 */
static bool read_reached_eof(int fd, int64_t pos)
{
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pos >= st.st_size;
}

/* Worker: transfer all of req or stop at EOF; 0 or -errno. */
static int thread_rw_fn(void *opaque)
{
    ThreadRwReq *r = opaque;
    struct iovec *iov;
    int niov, idx = 0;
    int ret = 0;

    if ((r->type & QEMU_AIO_TYPE_MASK) == QEMU_AIO_FLUSH) {
        return fdatasync(r->fd) < 0 ? -errno : 0;
    }
    niov = r->qiov->niov;
    /* A private copy: advancing it never touches the caller's vector */
    iov = g_memdup2(r->qiov->iov, niov * sizeof(*iov));
    while (r->done < r->qiov->size && idx < niov) {
        int cnt = MIN(niov - idx, IOV_MAX);
        ssize_t n;

        if (r->type & QEMU_AIO_READ) {
            n = preadv(r->fd, iov + idx, cnt, r->offset + r->done);
        } else {
            n = pwritev(r->fd, iov + idx, cnt, r->offset + r->done);
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            ret = -errno;
            break;
        }
        if (n == 0) {
            /* EOF for reads; a write that makes no progress is an error */
            ret = (r->type & QEMU_AIO_READ) ? 0 : -EIO;
            break;
        }
        r->done += n;
        iov_advance(iov, &idx, niov, n);
        if ((r->type & QEMU_AIO_READ) && r->done < r->qiov->size &&
            read_reached_eof(r->fd, r->offset + r->done)) {
            break;
        }
    }
    g_free(iov);
    return ret;
}

/* Run one read/write/flush on a worker (or inline outside coroutines). */
static int64_t coroutine_fn thread_co_rw(int fd, int type, int64_t offset,
                                         QEMUIOVector *qiov)
{
    ThreadRwReq r = { .fd = fd, .type = type, .offset = offset,
                      .qiov = qiov };
    int ret;

    if (qemu_in_coroutine()) {
        ret = thread_pool_submit_co(thread_rw_fn, &r);
    } else {
        ret = thread_rw_fn(&r);
    }
    if (ret < 0) {
        return ret;
    }
    return (type & QEMU_AIO_TYPE_MASK) == QEMU_AIO_FLUSH ? 0 : (int64_t)r.done;
}

/* ------------------------------------------------------------------ */
/* io_uring back end                                                    */

#ifdef CONFIG_LINUX_IO_URING

#define URING_ENTRIES 128

typedef struct UringReq {
    Coroutine *co;
    int fd;
    int type;
    int64_t offset;
    QEMUIOVector *qiov;
    QEMUIOVector rest;      /* the not yet transferred tail, if done > 0 */
    bool has_rest;
    size_t done;
    int64_t ret;
    bool complete;
} UringReq;

static struct {
    int state;              /* 0 untried, 1 usable, -1 unavailable */
    struct io_uring ring;
    int efd;
    QEMUBH *submit_bh;
    unsigned queued;        /* SQEs prepared since the last submit */
    GQueue overflow;        /* UringReq * waiting for a free SQE */
} uring;

/* Submit everything prepared so far; keeps them queued on -EBUSY. */
static void uring_submit_now(void)
{
    int ret;

    if (!uring.queued) {
        return;
    }
    ret = io_uring_submit(&uring.ring);
    trace_io_backend_uring_submit(uring.queued, ret);
    if (ret >= 0) {
        uring.queued -= MIN((unsigned)ret, uring.queued);
    }
    if (uring.queued) {
        /* -EBUSY/-EAGAIN: the CQ is full; retry after reaping */
        qemu_bh_schedule(uring.submit_bh);
    }
}

/* Prepare an SQE for the remaining part of req; false if the SQ is full. */
static bool uring_prep(UringReq *req)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&uring.ring);
    QEMUIOVector *q = req->qiov;
    int niov;

    if (!sqe) {
        /* SQ full: hand the batch to the kernel now to make room */
        uring_submit_now();
        sqe = io_uring_get_sqe(&uring.ring);
        if (!sqe) {
            return false;
        }
    }
    if ((req->type & QEMU_AIO_TYPE_MASK) == QEMU_AIO_FLUSH) {
        io_uring_prep_fsync(sqe, req->fd, IORING_FSYNC_DATASYNC);
    } else {
        if (req->done) {
            if (req->has_rest) {
                qemu_iovec_destroy(&req->rest);
            }
            qemu_iovec_init_slice(&req->rest, req->qiov, req->done,
                                  req->qiov->size - req->done);
            req->has_rest = true;
            q = &req->rest;
        }
        /* Beyond IOV_MAX the kernel refuses; the rest goes as a short IO */
        niov = MIN(q->niov, IOV_MAX);
        if (req->type & QEMU_AIO_READ) {
            io_uring_prep_readv(sqe, req->fd, q->iov, niov,
                                req->offset + req->done);
        } else {
            io_uring_prep_writev(sqe, req->fd, q->iov, niov,
                                 req->offset + req->done);
        }
    }
    io_uring_sqe_set_data(sqe, req);
    uring.queued++;
    qemu_bh_schedule(uring.submit_bh);
    return true;
}

/* Queue req for (re)submission, in order behind any waiting requests. */
static void uring_queue(UringReq *req)
{
    if (!g_queue_is_empty(&uring.overflow) || !uring_prep(req)) {
        g_queue_push_tail(&uring.overflow, req);
        qemu_bh_schedule(uring.submit_bh);
    }
}

/* Bottom half: move waiting requests into the SQ, then submit once. */
static void uring_submit_bh(void *opaque)
{
    while (!g_queue_is_empty(&uring.overflow)) {
        if (!uring_prep(g_queue_peek_head(&uring.overflow))) {
            break;
        }
        g_queue_pop_head(&uring.overflow);
    }
    uring_submit_now();
}

/* Finish req with ret and resume its coroutine. */
static void uring_finish(UringReq *req, int64_t ret)
{
    req->ret = ret;
    req->complete = true;
    /*
     * From the eventfd handler (main loop, no coroutine) enter directly;
     * from a coroutine that requeued work, defer to avoid nesting.
     */
    if (qemu_in_coroutine()) {
        aio_co_wake(req->co);
    } else {
        qemu_coroutine_enter(req->co);
    }
}

/* Account one CQE result for req: finish it or requeue the remainder. */
static void uring_complete_one(UringReq *req, int res)
{
    int type = req->type & QEMU_AIO_TYPE_MASK;

    if (res == -EAGAIN || res == -EINTR) {
        trace_io_backend_uring_resubmit(req, res, req->done);
        uring_queue(req);
        return;
    }
    if (res < 0) {
        uring_finish(req, res);
        return;
    }
    if (type == QEMU_AIO_FLUSH) {
        uring_finish(req, 0);
        return;
    }
    if (res == 0) {
        /* EOF on read; a write without progress would loop forever */
        uring_finish(req, type == QEMU_AIO_READ ? (int64_t)req->done : -EIO);
        return;
    }
    req->done += res;
    if (req->done >= req->qiov->size ||
        (type == QEMU_AIO_READ &&
         read_reached_eof(req->fd, req->offset + req->done))) {
        uring_finish(req, req->done);
        return;
    }
    trace_io_backend_uring_resubmit(req, res, req->done);
    uring_queue(req);
}

/* eventfd handler: reap every available completion. */
static void uring_completion_handler(void *opaque)
{
    struct io_uring_cqe *cqe;
    eventfd_t val;

    /*
     * Reset the counter before reaping: a CQE posted after this point
     * signals the eventfd again, so none can be left behind unseen.
     */
    (void)eventfd_read(uring.efd, &val);
    while (io_uring_peek_cqe(&uring.ring, &cqe) == 0) {
        UringReq *req = io_uring_cqe_get_data(cqe);
        int res = cqe->res;

        io_uring_cqe_seen(&uring.ring, cqe);
        uring_complete_one(req, res);
    }
}

/* True if the kernel ring supports every opcode we use. */
static bool uring_ops_supported(void)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(&uring.ring);
    bool ok;

    if (!probe) {
        return false;
    }
    ok = io_uring_opcode_supported(probe, IORING_OP_READV) &&
         io_uring_opcode_supported(probe, IORING_OP_WRITEV) &&
         io_uring_opcode_supported(probe, IORING_OP_FSYNC);
    io_uring_free_probe(probe);
    return ok;
}

/* Set up the process ring once; 0 or -errno (then never retried). */
static int uring_init(void)
{
    int ret;

    if (uring.state) {
        return uring.state > 0 ? 0 : -ENOTSUP;
    }
    /* Pessimistic until fully set up: a failure here is final */
    uring.state = -1;
    ret = io_uring_queue_init(URING_ENTRIES, &uring.ring, 0);
    if (ret < 0) {
        trace_io_backend_uring_init_failed(ret);
        return ret;
    }
    uring.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (uring.efd < 0 || !uring_ops_supported() ||
        io_uring_register_eventfd(&uring.ring, uring.efd) < 0) {
        ret = uring.efd < 0 ? -errno : -ENOTSUP;
        trace_io_backend_uring_init_failed(ret);
        if (uring.efd >= 0) {
            close(uring.efd);
        }
        io_uring_queue_exit(&uring.ring);
        return ret;
    }
    qemu_init_main_loop();
    g_queue_init(&uring.overflow);
    uring.submit_bh = qemu_bh_new(uring_submit_bh, NULL);
    aio_set_fd_handler(uring.efd, uring_completion_handler, NULL, NULL);
    uring.state = 1;
    return 0;
}

/* Run one request through the ring and wait for it. */
static int64_t coroutine_fn uring_co_rw(int fd, int type, int64_t offset,
                                        QEMUIOVector *qiov)
{
    UringReq req = {
        .co = qemu_coroutine_self(), .fd = fd, .type = type,
        .offset = offset, .qiov = qiov,
    };

    uring_queue(&req);
    /* Only uring_finish() enters us; loop anyway against stray wake-ups */
    while (!req.complete) {
        qemu_coroutine_yield();
    }
    if (req.has_rest) {
        qemu_iovec_destroy(&req.rest);
    }
    return req.ret;
}

#else /* !CONFIG_LINUX_IO_URING */

/* Built without liburing: the ring is never available. */
static int uring_init(void)
{
    return -ENOTSUP;
}

#endif

/* ------------------------------------------------------------------ */
/* Selection and the public entry points                                */

int io_backend_select(IOBackendKind wanted, Error **errp)
{
    const char *env = getenv("QBLK_AIO");
    int kind = IO_BACKEND_THREADS;
    int ret;

    /* Tests force the fallback to cover both paths on any kernel */
    if (env && !strcmp(env, "threads")) {
        wanted = IO_BACKEND_THREADS;
    }
    if (wanted != IO_BACKEND_THREADS) {
        ret = uring_init();
        if (ret == 0) {
            kind = IO_BACKEND_IO_URING;
        } else if (wanted == IO_BACKEND_IO_URING) {
            error_setg_errno(errp, -ret, "Unable to use io_uring");
            return -1;
        }
    }
    trace_io_backend_select(io_backend_kind_str(wanted),
                            io_backend_kind_str(kind));
    return kind;
}

int64_t coroutine_fn io_backend_co_rw(int fd, int type, int64_t offset,
                                      QEMUIOVector *qiov)
{
    int64_t ret;

    /* Nothing to transfer: the kernel would return 0, i.e. "EOF" */
    if ((type & QEMU_AIO_TYPE_MASK) != QEMU_AIO_FLUSH && qiov->size == 0) {
        return 0;
    }
    trace_io_backend_co_rw(fd, type, offset,
                           qiov ? (unsigned long long)qiov->size : 0);
#ifdef CONFIG_LINUX_IO_URING
    /*
     * The ring needs a coroutine to park; synchronous callers (image
     * creation) and nodes on aio=threads take the pool path.
     */
    if (!(type & QEMU_AIO_THREADS) && uring.state > 0 && qemu_in_coroutine()) {
        ret = uring_co_rw(fd, type, offset, qiov);
    } else
#endif
    {
        ret = thread_co_rw(fd, type, offset, qiov);
    }
    trace_io_backend_co_rw_done(fd, type, ret);
    return ret;
}

/* Arguments of the small blocking helpers below. */
typedef struct ThreadMiscReq {
    int fd;
    int mode;
    unsigned long request;
    int64_t offset;
    int64_t len;
} ThreadMiscReq;

/* Worker: fallocate(2). */
static int thread_fallocate_fn(void *opaque)
{
    ThreadMiscReq *r = opaque;

    return fallocate(r->fd, r->mode, r->offset, r->len) < 0 ? -errno : 0;
}

/* Worker: ftruncate(2). */
static int thread_ftruncate_fn(void *opaque)
{
    ThreadMiscReq *r = opaque;

    return ftruncate(r->fd, r->len) < 0 ? -errno : 0;
}

/* Worker: a BLK* ioctl taking a {start, length} range. */
static int thread_blk_ioctl_fn(void *opaque)
{
    ThreadMiscReq *r = opaque;
    uint64_t range[2] = { r->offset, r->len };

    return ioctl(r->fd, r->request, range) < 0 ? -errno : 0;
}

/* Run func on a worker in coroutine context, inline otherwise. */
static int coroutine_fn thread_co_call(ThreadPoolFunc *func, ThreadMiscReq *r)
{
    int ret;

    do {
        ret = qemu_in_coroutine() ? thread_pool_submit_co(func, r) : func(r);
    } while (ret == -EINTR);
    return ret;
}

int coroutine_fn io_backend_co_fallocate(int fd, int mode, int64_t offset,
                                         int64_t len)
{
    ThreadMiscReq r = { .fd = fd, .mode = mode, .offset = offset,
                        .len = len };
    int ret = thread_co_call(thread_fallocate_fn, &r);

    trace_io_backend_co_fallocate(fd, mode, offset, len, ret);
    return ret;
}

int coroutine_fn io_backend_co_ftruncate(int fd, int64_t len)
{
    ThreadMiscReq r = { .fd = fd, .len = len };
    int ret = thread_co_call(thread_ftruncate_fn, &r);

    trace_io_backend_co_ftruncate(fd, len, ret);
    return ret;
}

int coroutine_fn io_backend_co_blk_range_ioctl(int fd, unsigned long request,
                                               int64_t offset, int64_t len)
{
    ThreadMiscReq r = { .fd = fd, .request = request, .offset = offset,
                        .len = len };
    int ret = thread_co_call(thread_blk_ioctl_fn, &r);

    trace_io_backend_co_blk_ioctl(fd, request, offset, len, ret);
    return ret;
}

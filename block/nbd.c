/*
 * NBD client protocol driver: a node whose data lives on an NBD server.
 *
 * Connecting and the handshake (block/nbd-connect.c) are blocking code
 * run on a worker thread; the sockets then turn non-blocking for
 * transmission, which is all coroutines on the main loop thread.
 *
 * State: one to x-connections connections (NBDConn, the same code for
 * each; several only when the server advertises multi-conn). Each has a
 * fixed slot table, the cookie on the wire being the slot index. A
 * request coroutine picks the connection with fewest requests in flight,
 * sends its header under that connection's send_lock (headers and
 * payloads never interleave) and parks; the connection's one reader
 * coroutine receives every reply, copies payload into the waiting
 * request's buffer and wakes it after the final chunk. Slots are only
 * touched between yields on the one thread: no locking beyond send_lock.
 *
 * Reconnect: when any connection breaks, the node leaves CONNECTED. All
 * connections are shut down; their unanswered requests are marked lost
 * and retried (NBD requests are idempotent at the same offset). With
 * reconnect-delay > 0 the node is in WAIT: requests park until the
 * connections are back or the delay timer moves the node to FAIL, where
 * requests fail at once with -EIO. One reconnect coroutine waits until
 * the old connections are idle, closes them and retries with backoff
 * until it succeeds (back to CONNECTED), the export's size changed
 * (DEAD, for good) or the node closes (QUIT).
 */
#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/iov.h"
#include "qemu/coroutine.h"
#include "qemu/aio.h"
#include "qemu/qdict.h"
#include "qemu/sockets.h"
#include "block/block_int.h"
#include "block/thread-pool.h"
#include "block/nbd-client.h"
#include "nbd/nbd-internal.h"
#include "trace.h"

#include <sys/socket.h>

#define NBD_CLIENT_SLOTS       16
#define NBD_CLIENT_MAX_CONNS   16
#define NBD_CLIENT_MAX_XFER    (32 * MiB)
#define NBD_HANDSHAKE_TIMEOUT  30                   /* seconds per socket op */
#define NBD_RETRY_MIN_NS       (100 * 1000 * 1000LL)
#define NBD_RETRY_MAX_NS       (1000 * 1000 * 1000LL)
#define NBD_IDLE_POLL_NS       (10 * 1000 * 1000LL)
#define NBD_NS_PER_SEC         (1000 * 1000 * 1000LL)

typedef enum NBDClientState {
    NBD_CLIENT_CONNECTED,       /* requests go out */
    NBD_CLIENT_WAIT,            /* reconnecting, requests wait */
    NBD_CLIENT_FAIL,            /* reconnecting, requests fail at once */
    NBD_CLIENT_DEAD,            /* export changed: fail for good */
    NBD_CLIENT_QUIT,            /* closing */
} NBDClientState;

/* One request on the wire, from send to its final reply chunk. */
typedef struct NBDClientSlot {
    bool in_use;
    bool done;
    bool parked;                /* its coroutine yielded waiting for done */
    bool lost;                  /* connection broke before the reply */
    Coroutine *co;
    uint16_t cmd;
    int64_t offset;
    int64_t bytes;
    QEMUIOVector *qiov;         /* READ destination */
    int ret;
    /* BLOCK_STATUS result: first extent */
    bool got_extent;
    uint32_t ext_len;
    uint32_t ext_flags;
} NBDClientSlot;

typedef struct BDRVNBDState BDRVNBDState;

/* One connection to the server and the requests on it. */
typedef struct NBDConn {
    BDRVNBDState *s;
    int index;
    int fd;                     /* -1 when closed */
    bool broken;                /* fd unusable: no new sends, reader ends */
    CoMutex send_lock;
    Coroutine *send_waiter;     /* sender parked on a full socket */
    Coroutine *reader;          /* NULL once it finished */
    bool reader_parked;         /* reader waits for readable */
    int in_flight;
    NBDClientSlot slots[NBD_CLIENT_SLOTS];
} NBDConn;

struct BDRVNBDState {
    BlockDriverState *bs;
    char *desc;                 /* URI-like name for messages */
    char *export;
    NBDServerAddr addr;
    NBDExportInfo info;
    uint32_t reconnect_delay;   /* seconds */
    uint32_t open_timeout;      /* seconds */
    int nconns;
    NBDConn conns[NBD_CLIENT_MAX_CONNS];

    NBDClientState state;
    char *last_error;           /* why we are not connected */
    CoQueue free_slots;         /* requests waiting for a slot */
    CoQueue reconnect_waiters;  /* requests waiting in WAIT */
    QEMUTimer *delay_timer;     /* WAIT -> FAIL */
    Coroutine *reconnect_co;    /* NULL when not reconnecting */
    Coroutine *sleeper;         /* reconnect_co parked on sleep_timer */
    QEMUTimer *sleep_timer;
};

/* ---- Wire helpers */

/* Host errno for an NBD wire error number. */
static int nbd_errno_to_host(uint32_t err)
{
    switch (err) {
    case NBD_EPERM:     return EPERM;
    case NBD_EIO:       return EIO;
    case NBD_ENOMEM:    return ENOMEM;
    case NBD_ENOSPC:    return ENOSPC;
    case NBD_EOVERFLOW: return EOVERFLOW;
    case NBD_ENOTSUP:   return ENOTSUP;
    case NBD_ESHUTDOWN: return ESHUTDOWN;
    case NBD_EINVAL:    return EINVAL;
    default:            return EIO;
    }
}

/* The command's name for messages. */
static const char *nbd_cmd_name(uint16_t cmd)
{
    switch (cmd) {
    case NBD_CMD_READ:         return "READ";
    case NBD_CMD_WRITE:        return "WRITE";
    case NBD_CMD_FLUSH:        return "FLUSH";
    case NBD_CMD_TRIM:         return "TRIM";
    case NBD_CMD_WRITE_ZEROES: return "WRITE_ZEROES";
    case NBD_CMD_BLOCK_STATUS: return "BLOCK_STATUS";
    default:                   return "command";
    }
}

/* ---- Transmission: non-blocking socket, coroutines */

static void nbd_fd_read_ready(void *opaque);
static void nbd_fd_write_ready(void *opaque);
static void nbd_client_lost(BDRVNBDState *s, int ret);

/* Watch the socket for whatever parked coroutine needs it. */
static void nbd_update_handlers(NBDConn *c)
{
    bool rd = c->reader_parked, wr = c->send_waiter != NULL;

    aio_set_fd_handler(c->fd, rd ? nbd_fd_read_ready : NULL,
                       wr ? nbd_fd_write_ready : NULL, c);
}

/* Readable: resume the parked reader. */
static void nbd_fd_read_ready(void *opaque)
{
    NBDConn *c = opaque;

    c->reader_parked = false;
    nbd_update_handlers(c);
    qemu_coroutine_enter(c->reader);
}

/* Writable: resume the sender parked on a full socket. */
static void nbd_fd_write_ready(void *opaque)
{
    NBDConn *c = opaque;
    Coroutine *co = c->send_waiter;

    c->send_waiter = NULL;
    nbd_update_handlers(c);
    qemu_coroutine_enter(co);
}

/* Reader: exact read, parking while the socket is empty. 0 or -errno. */
static int coroutine_fn nbd_client_co_recv(NBDConn *c, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t r;

        if (c->broken) {
            return -ESHUTDOWN;
        }
        r = read(c->fd, p, len);
        if (r > 0) {
            p += r;
            len -= r;
        } else if (r == 0) {
            return -ECONNRESET;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->reader_parked = true;
            nbd_update_handlers(c);
            qemu_coroutine_yield();
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* Sender (send_lock held): exact write, parking on a full socket. */
static int coroutine_fn nbd_client_co_send(NBDConn *c, const void *buf,
                                           size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t r;

        if (c->broken) {
            return -ESHUTDOWN;
        }
        r = send(c->fd, p, len, MSG_NOSIGNAL);
        if (r >= 0) {
            p += r;
            len -= r;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->send_waiter = qemu_coroutine_self();
            nbd_update_handlers(c);
            qemu_coroutine_yield();
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* Finish a slot with ret and wake its coroutine if it is parked. */
static void nbd_slot_complete(NBDClientSlot *slot, int ret)
{
    if (!slot->ret) {
        slot->ret = ret;
    }
    slot->done = true;
    if (slot->parked) {
        slot->parked = false;
        aio_co_wake(slot->co);
    }
}

/* Read len payload bytes into slot's qiov at qoff (or discard them). */
static int coroutine_fn nbd_co_recv_into(NBDConn *c, NBDClientSlot *slot,
                                         uint64_t qoff, uint32_t len)
{
    g_autofree uint8_t *buf = g_malloc(MAX(len, 1));
    int ret = nbd_client_co_recv(c, buf, len);

    if (ret == 0 && slot->qiov && qoff + len <= slot->qiov->size) {
        qemu_iovec_from_buf(slot->qiov, qoff, buf, len);
    } else if (ret == 0 && slot->qiov) {
        ret = -EPROTO;
    }
    return ret;
}

/* Handle a simple reply whose 16-byte header is hdr. */
static int coroutine_fn nbd_co_simple_reply(NBDConn *c,
                                            const uint8_t *hdr)
{
    uint32_t err = ldbe32_p(hdr + 4);
    uint64_t cookie = ldbe64_p(hdr + 8);
    NBDClientSlot *slot;
    int ret = 0;

    if (cookie >= NBD_CLIENT_SLOTS || !c->slots[cookie].in_use) {
        return -EPROTO;
    }
    slot = &c->slots[cookie];
    if (!err && slot->cmd == NBD_CMD_READ) {
        ret = nbd_co_recv_into(c, slot, 0, slot->bytes);
    }
    if (ret < 0) {
        return ret;
    }
    nbd_slot_complete(slot, err ? -nbd_errno_to_host(err) : 0);
    return 0;
}

/* Apply one structured chunk payload (already in data) to slot. */
static int nbd_apply_chunk(NBDConn *c, NBDClientSlot *slot,
                           uint16_t type, const uint8_t *data, uint32_t len)
{
    if (type == NBD_REPLY_TYPE_OFFSET_HOLE && len == 12) {
        uint64_t off = ldbe64_p(data);
        uint32_t hlen = ldbe32_p(data + 8);

        if (!slot->qiov || off < slot->offset ||
            off - slot->offset + hlen > slot->qiov->size) {
            return -EPROTO;
        }
        qemu_iovec_memset(slot->qiov, off - slot->offset, 0, hlen);
    } else if (type == NBD_REPLY_TYPE_BLOCK_STATUS && len >= 12) {
        if (ldbe32_p(data) == c->s->info.meta_id && !slot->got_extent) {
            slot->got_extent = true;
            slot->ext_len = ldbe32_p(data + 4);
            slot->ext_flags = ldbe32_p(data + 8);
        }
    } else if ((type == NBD_REPLY_TYPE_ERROR ||
                type == NBD_REPLY_TYPE_ERROR_OFFSET) && len >= 6) {
        uint32_t err = ldbe32_p(data);

        trace_nbd_client_error_chunk(c->s->desc, err);
        slot->ret = slot->ret ? slot->ret : -nbd_errno_to_host(err);
    } else if (type != NBD_REPLY_TYPE_NONE) {
        return -EPROTO;
    }
    return 0;
}

/* Handle a structured chunk whose 20-byte header is hdr. */
static int coroutine_fn nbd_co_chunk(NBDConn *c, const uint8_t *hdr)
{
    uint16_t flags = ldbe16_p(hdr + 4), type = ldbe16_p(hdr + 6);
    uint64_t cookie = ldbe64_p(hdr + 8);
    uint32_t len = ldbe32_p(hdr + 16);
    NBDClientSlot *slot;
    g_autofree uint8_t *data = NULL;
    int ret;

    if (cookie >= NBD_CLIENT_SLOTS || !c->slots[cookie].in_use ||
        len > NBD_CLIENT_MAX_XFER + 8) {
        return -EPROTO;
    }
    slot = &c->slots[cookie];
    if (type == NBD_REPLY_TYPE_OFFSET_DATA) {
        uint8_t offb[8];
        uint64_t off;

        ret = len < 8 ? -EPROTO : nbd_client_co_recv(c, offb, 8);
        if (ret < 0) {
            return ret;
        }
        off = ldbe64_p(offb);
        if (off < slot->offset) {
            return -EPROTO;
        }
        ret = nbd_co_recv_into(c, slot, off - slot->offset, len - 8);
    } else {
        data = g_malloc(MAX(len, 1));
        ret = nbd_client_co_recv(c, data, len);
        if (ret == 0) {
            ret = nbd_apply_chunk(c, slot, type, data, len);
        }
    }
    if (ret < 0) {
        return ret;
    }
    if (flags & NBD_REPLY_FLAG_DONE) {
        nbd_slot_complete(slot, 0);
    }
    return 0;
}

/* Reader coroutine: dispatch replies until close or a broken stream. */
static void coroutine_fn nbd_co_reader(void *opaque)
{
    NBDConn *c = opaque;
    BDRVNBDState *s = c->s;
    int ret = 0;

    while (!c->broken) {
        uint8_t hdr[NBD_CHUNK_HEADER_SIZE];

        ret = nbd_client_co_recv(c, hdr, 4);
        if (ret < 0) {
            break;
        }
        if (ldbe32_p(hdr) == NBD_SIMPLE_REPLY_MAGIC) {
            ret = nbd_client_co_recv(c, hdr + 4, NBD_SIMPLE_REPLY_SIZE - 4);
            ret = ret < 0 ? ret : nbd_co_simple_reply(c, hdr);
        } else if (ldbe32_p(hdr) == NBD_STRUCTURED_REPLY_MAGIC &&
                   s->info.structured) {
            ret = nbd_client_co_recv(c, hdr + 4, NBD_CHUNK_HEADER_SIZE - 4);
            ret = ret < 0 ? ret : nbd_co_chunk(c, hdr);
        } else {
            ret = -EPROTO;
        }
        if (ret < 0) {
            break;
        }
    }
    c->broken = true;
    for (int i = 0; i < NBD_CLIENT_SLOTS; i++) {
        if (c->slots[i].in_use && !c->slots[i].done) {
            c->slots[i].lost = true;
            nbd_slot_complete(&c->slots[i], -EIO);
        }
    }
    if (c->send_waiter) {
        aio_co_wake(c->send_waiter);
        c->send_waiter = NULL;
    }
    c->reader_parked = false;
    nbd_update_handlers(c);
    c->reader = NULL;
    nbd_client_lost(s, ret ? ret : -ESHUTDOWN);
}

/* Start transmission on fd as connection c (fd already connected). */
static void nbd_conn_start(NBDConn *c, int fd)
{
    NBDClientSlot zero = { 0 };

    c->fd = fd;
    c->broken = false;
    c->in_flight = 0;
    c->reader_parked = false;
    c->send_waiter = NULL;
    for (int i = 0; i < NBD_CLIENT_SLOTS; i++) {
        c->slots[i] = zero;
    }
    qemu_co_mutex_init(&c->send_lock);
    qemu_socket_set_nonblock(fd);
    c->reader = qemu_coroutine_create(nbd_co_reader, c);
    aio_co_wake(c->reader);
}

/* Stop using c's socket: the reader sees EOF and ends. */
static void nbd_conn_shutdown(NBDConn *c)
{
    if (c->fd >= 0 && !c->broken) {
        c->broken = true;
        shutdown(c->fd, SHUT_RDWR);
    }
}

/* True once nothing uses c's socket any more (reader ended, no sender). */
static bool nbd_conn_idle(NBDConn *c)
{
    return !c->reader && !c->send_lock.locked && c->in_flight == 0;
}

/* Close c's socket; only when nbd_conn_idle(c). */
static void nbd_conn_close(NBDConn *c)
{
    if (c->fd >= 0) {
        aio_set_fd_handler(c->fd, NULL, NULL, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

/* ---- Connection state and reconnect */

/* Move to state and wake everyone who waits for a change. */
static void nbd_client_set_state(BDRVNBDState *s, NBDClientState state)
{
    trace_nbd_client_state(s->desc, s->state, state);
    s->state = state;
    qemu_co_queue_restart_all(&s->reconnect_waiters);
    qemu_co_queue_restart_all(&s->free_slots);
}

/* Replace the words for why we are not connected. */
static void nbd_client_set_error(BDRVNBDState *s, char *msg)
{
    g_free(s->last_error);
    s->last_error = msg;
}

/* reconnect-delay expired: waiting requests fail, later ones at once. */
static void nbd_delay_expired(void *opaque)
{
    BDRVNBDState *s = opaque;

    if (s->state == NBD_CLIENT_WAIT) {
        nbd_client_set_state(s, NBD_CLIENT_FAIL);
    }
}

/* Sleep timer of the reconnect coroutine. */
static void nbd_sleep_done(void *opaque)
{
    BDRVNBDState *s = opaque;
    Coroutine *co = s->sleeper;

    s->sleeper = NULL;
    if (co) {
        aio_co_wake(co);
    }
}

/* Sleep ns unless the node closes (nbd_close wakes us early). */
static void coroutine_fn nbd_co_sleep(BDRVNBDState *s, int64_t ns)
{
    if (s->state == NBD_CLIENT_QUIT) {
        return;
    }
    s->sleeper = qemu_coroutine_self();
    timer_mod_ns(s->sleep_timer, qemu_clock_get_ns() + ns);
    qemu_coroutine_yield();
}

/* One connect + handshake on a worker thread. */
typedef struct NBDConnectJob {
    BDRVNBDState *s;
    NBDExportInfo info;
    Error *err;
} NBDConnectJob;

/* Worker thread: reads only s's immutable address and names. */
static int nbd_connect_job_fn(void *opaque)
{
    NBDConnectJob *job = opaque;
    BDRVNBDState *s = job->s;

    return nbd_connect_export(&s->addr, s->export, s->desc,
                              NBD_HANDSHAKE_TIMEOUT, &job->info, &job->err);
}

/* Connect and handshake off the main loop; fd or -errno with errp set. */
static int coroutine_fn nbd_co_connect_one(BDRVNBDState *s,
                                           NBDExportInfo *info, Error **errp)
{
    NBDConnectJob job = { .s = s };
    int fd = thread_pool_submit_co(nbd_connect_job_fn, &job);

    if (fd < 0) {
        if (!job.err) {
            error_setg_errno(&job.err, -fd, "Could not connect to '%s'",
                             s->desc);
        }
        error_propagate(errp, job.err);
        return fd;
    }
    *info = job.info;
    return fd;
}

/* Open n connections into fds[]; all or none. 0 or -errno, errp set. */
static int coroutine_fn nbd_co_connect_n(BDRVNBDState *s, int n, int *fds,
                                         NBDExportInfo *info, Error **errp)
{
    for (int i = 0; i < n; i++) {
        NBDExportInfo other;

        fds[i] = nbd_co_connect_one(s, i ? &other : info, errp);
        if (fds[i] < 0) {
            int ret = fds[i];

            while (i-- > 0) {
                close(fds[i]);
            }
            return ret;
        }
    }
    return 0;
}

/* After a reconnect: the server must still export the same size. */
static bool nbd_reconnect_check(BDRVNBDState *s, const NBDExportInfo *info)
{
    if (info->size == s->info.size) {
        return true;
    }
    nbd_client_set_error(s, g_strdup_printf(
        "export size changed (was %llu, now %llu)",
        (unsigned long long)s->info.size, (unsigned long long)info->size));
    bdrv_note_io_error(s->bs, "%s: %s", s->desc, s->last_error);
    return false;
}

/* One reconnect attempt; true when done (connected, dead or quitting). */
static bool coroutine_fn nbd_co_reconnect_once(BDRVNBDState *s)
{
    int fds[NBD_CLIENT_MAX_CONNS];
    NBDExportInfo info;
    Error *err = NULL;
    int ret = nbd_co_connect_n(s, s->nconns, fds, &info, &err);

    trace_nbd_client_reconnect_attempt(s->desc, ret);
    if (ret < 0) {
        nbd_client_set_error(s, g_strdup(error_get_pretty(err)));
        error_free(err);
        return s->state == NBD_CLIENT_QUIT;
    }
    if (s->state == NBD_CLIENT_QUIT || !nbd_reconnect_check(s, &info)) {
        for (int i = 0; i < s->nconns; i++) {
            close(fds[i]);
        }
        if (s->state != NBD_CLIENT_QUIT) {
            nbd_client_set_state(s, NBD_CLIENT_DEAD);
        }
        return true;
    }
    for (int i = 0; i < s->nconns; i++) {
        nbd_conn_start(&s->conns[i], fds[i]);
    }
    timer_del(s->delay_timer);
    nbd_client_set_state(s, NBD_CLIENT_CONNECTED);
    return true;
}

/* Reconnect coroutine: retire the old sockets, retry with backoff. */
static void coroutine_fn nbd_co_reconnect(void *opaque)
{
    BDRVNBDState *s = opaque;
    int64_t backoff = NBD_RETRY_MIN_NS;

    for (int i = 0; i < s->nconns; i++) {
        while (s->state != NBD_CLIENT_QUIT && !nbd_conn_idle(&s->conns[i])) {
            nbd_co_sleep(s, NBD_IDLE_POLL_NS);
        }
        if (s->state != NBD_CLIENT_QUIT) {
            nbd_conn_close(&s->conns[i]);
        }
    }
    while (s->state != NBD_CLIENT_QUIT && !nbd_co_reconnect_once(s)) {
        nbd_co_sleep(s, backoff);
        backoff = MIN(backoff * 2, NBD_RETRY_MAX_NS);
    }
    s->reconnect_co = NULL;
}

/*
 * A connection broke (ret says how): leave CONNECTED, shut every
 * connection down and start reconnecting. No-op unless CONNECTED.
 */
static void nbd_client_lost(BDRVNBDState *s, int ret)
{
    if (s->state != NBD_CLIENT_CONNECTED) {
        return;
    }
    trace_nbd_client_broken(s->desc, ret);
    nbd_client_set_error(s, g_strdup_printf("connection lost: %s",
                                            strerror(-ret)));
    bdrv_note_io_error(s->bs, "%s: %s", s->desc, s->last_error);
    for (int i = 0; i < s->nconns; i++) {
        nbd_conn_shutdown(&s->conns[i]);
    }
    if (s->reconnect_delay) {
        timer_mod_ns(s->delay_timer, qemu_clock_get_ns() +
                     (int64_t)s->reconnect_delay * NBD_NS_PER_SEC);
        nbd_client_set_state(s, NBD_CLIENT_WAIT);
    } else {
        nbd_client_set_state(s, NBD_CLIENT_FAIL);
    }
    if (!s->reconnect_co) {
        s->reconnect_co = qemu_coroutine_create(nbd_co_reconnect, s);
        aio_co_wake(s->reconnect_co);
    }
}

/* ---- Requests */

/* A request cannot go out: note why and return -EIO. */
static int nbd_not_connected(BDRVNBDState *s)
{
    const char *why = s->last_error ? s->last_error : "unknown error";

    if (s->state == NBD_CLIENT_FAIL) {
        bdrv_note_io_error(s->bs, "%s: not connected (reconnect-delay %u "
                           "expired; %s)", s->desc, s->reconnect_delay, why);
    } else if (s->state == NBD_CLIENT_DEAD) {
        bdrv_note_io_error(s->bs, "%s: %s", s->desc, why);
    } else {
        bdrv_note_io_error(s->bs, "%s: node is closing", s->desc);
    }
    return -EIO;
}

/*
 * Wait until connected with a free slot; *pc and *pi name it. The least
 * busy connection wins. 0, or -EIO when the node cannot connect.
 */
static int coroutine_fn nbd_co_get_slot(BDRVNBDState *s, NBDConn **pc,
                                        int *pi)
{
    for (;;) {
        NBDConn *best = NULL;

        while (s->state == NBD_CLIENT_WAIT) {
            qemu_co_queue_wait(&s->reconnect_waiters, NULL);
        }
        if (s->state != NBD_CLIENT_CONNECTED) {
            return nbd_not_connected(s);
        }
        for (int k = 0; k < s->nconns; k++) {
            NBDConn *c = &s->conns[k];

            if (!c->broken && c->in_flight < NBD_CLIENT_SLOTS &&
                (!best || c->in_flight < best->in_flight)) {
                best = c;
            }
        }
        for (int i = 0; best && i < NBD_CLIENT_SLOTS; i++) {
            if (!best->slots[i].in_use) {
                *pc = best;
                *pi = i;
                return 0;
            }
        }
        qemu_co_queue_wait(&s->free_slots, NULL);
    }
}

/* Send a request header (+ WRITE payload) for the slot at index i. */
static int coroutine_fn nbd_co_send_request(NBDConn *c, int i, uint16_t flags,
                                            QEMUIOVector *qiov)
{
    NBDClientSlot *slot = &c->slots[i];
    uint8_t req[NBD_REQUEST_SIZE];
    int ret;

    stbe32_p(req, NBD_REQUEST_MAGIC);
    stbe16_p(req + 4, flags);
    stbe16_p(req + 6, slot->cmd);
    stbe64_p(req + 8, i);
    stbe64_p(req + 16, slot->offset);
    stbe32_p(req + 24, slot->bytes);
    qemu_co_mutex_lock(&c->send_lock);
    ret = nbd_client_co_send(c, req, sizeof(req));
    for (int k = 0; ret == 0 && qiov && k < qiov->niov; k++) {
        ret = nbd_client_co_send(c, qiov->iov[k].iov_base,
                                 qiov->iov[k].iov_len);
    }
    qemu_co_mutex_unlock(&c->send_lock);
    return ret;
}

/*
 * One attempt on one slot: send and wait for the final reply. *lost is
 * set when the connection broke first (the caller retries).
 */
static int coroutine_fn nbd_co_attempt(NBDConn *c, int i, uint16_t flags,
                                       QEMUIOVector *qiov,
                                       NBDClientSlot *ext, bool *lost)
{
    NBDClientSlot *slot = &c->slots[i];
    int ret;

    trace_nbd_client_request(c->s->desc, slot->cmd, slot->offset,
                             slot->bytes, c->index, i);
    c->in_flight++;
    ret = nbd_co_send_request(c, i, flags,
                              slot->cmd == NBD_CMD_WRITE ? qiov : NULL);
    if (ret < 0) {
        nbd_client_lost(c->s, ret);
        slot->lost = true;
    }
    /* The reader sets done and wakes us after the final chunk */
    while (!slot->lost && !slot->done) {
        slot->parked = true;
        qemu_coroutine_yield();
    }
    *lost = slot->lost;
    ret = slot->ret;
    if (ext) {
        *ext = *slot;
    }
    slot->in_use = false;
    c->in_flight--;
    qemu_co_queue_next(&c->s->free_slots);
    return ret;
}

/*
 * One round trip: send cmd for [offset, offset + bytes) and wait for the
 * final reply, again after a reconnect if the connection broke. qiov:
 * READ destination or WRITE source. *ext (optional) receives the first
 * block status extent. 0 or -errno, with the failure noted on the node.
 */
static int coroutine_fn nbd_co_request(BlockDriverState *bs, uint16_t cmd,
                                       uint16_t flags, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       NBDClientSlot *ext)
{
    BDRVNBDState *s = bs->opaque;
    bool lost = true;
    int ret = 0;

    while (lost) {
        NBDConn *c;
        int i;

        ret = nbd_co_get_slot(s, &c, &i);
        if (ret < 0) {
            trace_nbd_client_request_failed(s->desc, cmd, offset, ret);
            return ret;
        }
        c->slots[i] = (NBDClientSlot) {
            .in_use = true, .co = qemu_coroutine_self(), .cmd = cmd,
            .offset = offset, .bytes = bytes,
            .qiov = cmd == NBD_CMD_READ ? qiov : NULL,
        };
        ret = nbd_co_attempt(c, i, flags, qiov, ext, &lost);
        if (lost) {
            trace_nbd_client_retry(s->desc, cmd, offset);
        }
    }
    if (ret < 0) {
        trace_nbd_client_request_failed(s->desc, cmd, offset, ret);
        bdrv_note_io_error(bs, "%s: server replied to %s at %lld: %s",
                           s->desc, nbd_cmd_name(cmd), (long long)offset,
                           strerror(-ret));
    }
    return ret;
}
/* READ: the reader copies the reply's data (or holes) into qiov. */
static int coroutine_fn nbd_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, QEMUIOVector *qiov,
                                      BdrvRequestFlags flags)
{
    return nbd_co_request(bs, NBD_CMD_READ, 0, offset, bytes, qiov, NULL);
}

/* WRITE: FUA is passed on when the server advertises it. */
static int coroutine_fn nbd_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    BDRVNBDState *s = bs->opaque;
    bool fua = (flags & BDRV_REQ_FUA) && (s->info.eflags & NBD_FLAG_SEND_FUA);
    uint16_t f = fua ? NBD_CMD_FLAG_FUA : 0;

    return nbd_co_request(bs, NBD_CMD_WRITE, f, offset, bytes, qiov, NULL);
}

/*
 * WRITE_ZEROES when the server has it (else the core writes a zeroed
 * buffer); without MAY_UNMAP the server must keep the range allocated.
 */
static int coroutine_fn nbd_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    BDRVNBDState *s = bs->opaque;
    uint16_t f = 0;

    if (!(s->info.eflags & NBD_FLAG_SEND_WRITE_ZEROES)) {
        return -ENOTSUP;
    }
    if (!(flags & BDRV_REQ_MAY_UNMAP)) {
        f |= NBD_CMD_FLAG_NO_HOLE;
    }
    if ((flags & BDRV_REQ_FUA) && (s->info.eflags & NBD_FLAG_SEND_FUA)) {
        f |= NBD_CMD_FLAG_FUA;
    }
    return nbd_co_request(bs, NBD_CMD_WRITE_ZEROES, f, offset, bytes, NULL,
                          NULL);
}

/* TRIM when advertised; discard is advisory, so a no-op otherwise. */
static int coroutine_fn nbd_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    BDRVNBDState *s = bs->opaque;

    if (!(s->info.eflags & NBD_FLAG_SEND_TRIM)) {
        return 0;
    }
    return nbd_co_request(bs, NBD_CMD_TRIM, 0, offset, bytes, NULL, NULL);
}

/* FLUSH when advertised; a server without it has nothing to flush. */
static int coroutine_fn nbd_co_flush(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    if (!(s->info.eflags & NBD_FLAG_SEND_FLUSH)) {
        return 0;
    }
    return nbd_co_request(bs, NBD_CMD_FLUSH, 0, 0, 0, NULL, NULL);
}

/* Allocation from base:allocation; everything is data without it. */
static int coroutine_fn nbd_co_block_status(BlockDriverState *bs,
                                            bool want_zero, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            int64_t *map,
                                            BlockDriverState **file)
{
    BDRVNBDState *s = bs->opaque;
    NBDClientSlot res;
    int ret;

    *map = offset;
    *file = bs;
    *pnum = bytes;
    if (!s->info.has_meta) {
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    bytes = MIN(bytes, NBD_CLIENT_MAX_XFER);
    ret = nbd_co_request(bs, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE,
                         offset, bytes, NULL, &res);
    if (ret < 0) {
        return ret;
    }
    if (!res.got_extent || res.ext_len == 0) {
        return -EIO;
    }
    *pnum = MIN((int64_t)res.ext_len, bytes);
    trace_nbd_client_block_status(s->desc, offset, *pnum, res.ext_flags);
    return (res.ext_flags & NBD_STATE_HOLE ? 0 : BDRV_BLOCK_DATA) |
           (res.ext_flags & NBD_STATE_ZERO ? BDRV_BLOCK_ZERO : 0) |
           BDRV_BLOCK_OFFSET_VALID;
}

/* ---- Options, open/close */

/* reconnect-delay, open-timeout, x-connections; false with errp set. */
static bool nbd_take_options(BDRVNBDState *s, QDict *options, int *nconns,
                             Error **errp)
{
    uint64_t delay, timeout, conns;

    if (!qdict_get_uint(options, "reconnect-delay", 0, &delay, errp) ||
        !qdict_get_uint(options, "open-timeout", 0, &timeout, errp) ||
        !qdict_get_uint(options, "x-connections", 1, &conns, errp)) {
        return false;
    }
    if (delay > UINT32_MAX || timeout > UINT32_MAX) {
        error_setg(errp, "Parameter '%s' expects uint32_t",
                   delay > UINT32_MAX ? "reconnect-delay" : "open-timeout");
        return false;
    }
    if (conns < 1 || conns > NBD_CLIENT_MAX_CONNS) {
        error_setg(errp, "x-connections must be between 1 and %d",
                   NBD_CLIENT_MAX_CONNS);
        return false;
    }
    s->reconnect_delay = delay;
    s->open_timeout = timeout;
    *nconns = conns;
    qdict_del(options, "reconnect-delay");
    qdict_del(options, "open-timeout");
    qdict_del(options, "x-connections");
    return true;
}

/* What nbd_co_open_connect works on. */
typedef struct NBDOpenCtx {
    BDRVNBDState *s;
    int want;                   /* x-connections */
    int fds[NBD_CLIENT_MAX_CONNS];
    Error *err;
} NBDOpenCtx;

/*
 * Open's connect: the first connection, retried until open-timeout;
 * then the others if the server allows multi-conn. 0 or -errno.
 */
static int coroutine_fn nbd_co_open_connect(void *opaque)
{
    NBDOpenCtx *o = opaque;
    BDRVNBDState *s = o->s;
    int64_t deadline = qemu_clock_get_ns() +
                       (int64_t)s->open_timeout * NBD_NS_PER_SEC;
    int n = o->want, ret;

    for (;;) {
        o->fds[0] = nbd_co_connect_one(s, &s->info, &o->err);
        if (o->fds[0] >= 0 || qemu_clock_get_ns() >= deadline) {
            break;
        }
        trace_nbd_client_reconnect_attempt(s->desc, o->fds[0]);
        error_free(o->err);
        o->err = NULL;
        qemu_co_sleep_ns(NBD_RETRY_MIN_NS);
    }
    if (o->fds[0] < 0) {
        return o->fds[0];
    }
    if (n > 1 && !(s->info.eflags & NBD_FLAG_CAN_MULTI_CONN)) {
        n = 1;
    }
    trace_nbd_client_connections(s->desc, o->want, n,
                                 !!(s->info.eflags & NBD_FLAG_CAN_MULTI_CONN));
    if (n > 1) {
        NBDExportInfo other;

        ret = nbd_co_connect_n(s, n - 1, o->fds + 1, &other, &o->err);
        if (ret < 0) {
            close(o->fds[0]);
            return ret;
        }
    }
    s->nconns = n;
    return 0;
}

/* Free what open set up (connections already closed). */
static void nbd_free_state(BDRVNBDState *s)
{
    if (s->delay_timer) {
        timer_free(s->delay_timer);
    }
    if (s->sleep_timer) {
        timer_free(s->sleep_timer);
    }
    nbd_server_addr_clear(&s->addr);
    g_free(s->desc);
    g_free(s->export);
    g_free(s->last_error);
}

/* Parse the options into s; 0 or -errno with errp set. */
static int nbd_parse_options(BDRVNBDState *s, QDict *options, int *nconns,
                             Error **errp)
{
    Error *local_err = NULL;

    if (!qdict_haskey(options, "server.type") &&
        qdict_get_try_str(options, "filename")) {
        nbd_parse_filename(qdict_get_try_str(options, "filename"), options,
                           &local_err);
        if (local_err) {
            error_propagate(errp, local_err);
            return -EINVAL;
        }
    }
    if (!nbd_take_options(s, options, nconns, errp)) {
        return -EINVAL;
    }
    s->export = g_strdup(qdict_get_try_str(options, "export"));
    if (!s->export) {
        s->export = g_strdup("");
    }
    qdict_del(options, "export");
    qdict_del(options, "filename");
    if (!nbd_server_addr_take(options, s->export, &s->addr, &s->desc, errp)) {
        return -EINVAL;
    }
    return 0;
}

/*
 * Open: options (or the filename) name the server; connect (retrying
 * until open-timeout), handshake, check writability, then start the
 * readers on the non-blocking sockets.
 */
static int nbd_open(BlockDriverState *bs, QDict *options, int flags,
                    Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    NBDOpenCtx o = { .s = s };
    int ret;

    s->bs = bs;
    for (int i = 0; i < NBD_CLIENT_MAX_CONNS; i++) {
        s->conns[i] = (NBDConn) { .s = s, .index = i, .fd = -1 };
    }
    ret = nbd_parse_options(s, options, &o.want, errp);
    if (ret == 0) {
        ret = qemu_coroutine_call_sync(nbd_co_open_connect, &o);
        error_propagate(errp, o.err);
    }
    if (ret == 0 && (flags & BDRV_O_RDWR) &&
        (s->info.eflags & NBD_FLAG_READ_ONLY)) {
        error_setg(errp, "Export '%s' of '%s' is read-only; open it "
                   "read-only", s->export, s->desc);
        for (int i = 0; i < s->nconns; i++) {
            close(o.fds[i]);
        }
        ret = -EACCES;
    }
    trace_nbd_client_open(s->desc ? s->desc : "", ret,
                          (unsigned long long)s->info.size, s->info.eflags,
                          s->info.structured, s->info.has_meta);
    if (ret < 0) {
        nbd_free_state(s);
        return ret;
    }
    g_strlcpy(bs->filename, s->desc, sizeof(bs->filename));
    bs->total_bytes = s->info.size;
    qemu_co_queue_init(&s->free_slots);
    qemu_co_queue_init(&s->reconnect_waiters);
    s->delay_timer = timer_new_ns(nbd_delay_expired, s);
    s->sleep_timer = timer_new_ns(nbd_sleep_done, s);
    s->state = NBD_CLIENT_CONNECTED;
    for (int i = 0; i < s->nconns; i++) {
        nbd_conn_start(&s->conns[i], o.fds[i]);
    }
    return 0;
}

/* True while a reader or the reconnect coroutine still runs. */
static bool nbd_busy(BDRVNBDState *s)
{
    for (int i = 0; i < s->nconns; i++) {
        if (s->conns[i].reader) {
            return true;
        }
    }
    return s->reconnect_co != NULL;
}

/*
 * Close (requests already drained): stop reconnecting, tell the server
 * goodbye (best effort), let every reader end, close the sockets.
 */
static void nbd_close(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;
    uint8_t req[NBD_REQUEST_SIZE] = { 0 };

    nbd_client_set_state(s, NBD_CLIENT_QUIT);
    timer_del(s->delay_timer);
    timer_del(s->sleep_timer);
    nbd_sleep_done(s);
    stbe32_p(req, NBD_REQUEST_MAGIC);
    stbe16_p(req + 6, NBD_CMD_DISC);
    for (int i = 0; i < s->nconns; i++) {
        NBDConn *c = &s->conns[i];

        if (c->fd >= 0 && !c->broken) {
            (void)!send(c->fd, req, sizeof(req), MSG_NOSIGNAL);
        }
        nbd_conn_shutdown(c);
        if (c->reader && c->reader_parked) {
            c->reader_parked = false;
            qemu_coroutine_enter(c->reader);
        }
    }
    AIO_WAIT_WHILE(nbd_busy(s));
    for (int i = 0; i < s->nconns; i++) {
        nbd_conn_close(&s->conns[i]);
    }
    nbd_free_state(s);
}

/* Limits from NBD_INFO_BLOCK_SIZE, capped at the 32 MiB we accept. */
static void nbd_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    uint32_t max = s->info.max_block ?
                   MIN(s->info.max_block, NBD_CLIENT_MAX_XFER) :
                   NBD_CLIENT_MAX_XFER;

    bs->bl.request_alignment = s->info.min_block ? s->info.min_block : 1;
    bs->bl.max_transfer = max;
    bs->bl.max_pwrite_zeroes = max;
    bs->bl.max_pdiscard = max;
    bs->bl.parallel_requests = NBD_CLIENT_SLOTS * MAX(s->nconns, 1);
}

static int64_t nbd_getlength(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    return s->info.size;
}

const BlockDriver bdrv_nbd = {
    .format_name = "nbd",
    .instance_size = sizeof(BDRVNBDState),
    .protocol = true,
    .bdrv_parse_filename = nbd_parse_filename,
    .bdrv_open = nbd_open,
    .bdrv_close = nbd_close,
    .bdrv_refresh_limits = nbd_refresh_limits,
    .bdrv_co_preadv = nbd_co_preadv,
    .bdrv_co_pwritev = nbd_co_pwritev,
    .bdrv_co_pwrite_zeroes = nbd_co_pwrite_zeroes,
    .bdrv_co_pdiscard = nbd_co_pdiscard,
    .bdrv_co_flush_to_disk = nbd_co_flush,
    .bdrv_co_block_status = nbd_co_block_status,
    .bdrv_getlength = nbd_getlength,
    .supported_write_flags = BDRV_REQ_FUA,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_FUA,
};

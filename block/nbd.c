/*
 * NBD client protocol driver: a node whose data lives on an NBD server.
 *
 * Open does the fixed-newstyle handshake synchronously on a blocking
 * socket (structured replies and base:allocation when offered, then
 * NBD_OPT_GO); the socket then turns non-blocking for transmission.
 *
 * State: one connection per node (BDRVNBDState). Requests are slots of
 * a fixed table; the cookie on the wire is the slot index. A request
 * coroutine sends its header (under send_lock, so headers and payloads
 * never interleave) and parks; one reader coroutine receives every
 * reply, copies payload straight into the waiting request's buffer and
 * wakes it when its last chunk arrived. Everything runs on the main loop
 * thread, so slots are only touched between yields: no locking beyond
 * send_lock. When the connection breaks every parked request fails with
 * -EIO and later requests fail at once.
 */
#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/iov.h"
#include "qemu/coroutine.h"
#include "qemu/aio.h"
#include "qemu/qdict.h"
#include "qemu/sockets.h"
#include "block/block_int.h"
#include "nbd/nbd-internal.h"
#include "trace.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#define NBD_CLIENT_SLOTS     16
#define NBD_DEFAULT_PORT     "10809"
#define NBD_CLIENT_MAX_XFER  (32 * MiB)

/* One request on the wire, from send to its final reply chunk. */
typedef struct NBDClientSlot {
    bool in_use;
    bool done;
    bool parked;                /* its coroutine yielded waiting for done */
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

typedef struct BDRVNBDState {
    int fd;
    char *desc;                 /* URI-like name for messages */
    char *export;
    uint64_t size;
    uint16_t eflags;
    bool structured;
    bool has_meta;
    uint32_t meta_id;
    uint32_t min_block;
    uint32_t max_block;

    CoMutex send_lock;
    Coroutine *send_waiter;     /* sender parked on a full socket */
    Coroutine *reader;          /* NULL once it finished */
    bool reader_parked;         /* reader waits for readable */
    bool quit;                  /* close in progress */
    int broken;                 /* -errno once the connection is unusable */
    NBDClientSlot slots[NBD_CLIENT_SLOTS];
    CoQueue free_slots;
} BDRVNBDState;

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

/* ---- Connecting and the handshake (blocking socket) */

/* Blocking exact write; 0 or -errno. */
static int nbd_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t r = send(fd, p, len, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += r;
        len -= r;
    }
    return 0;
}

/* Blocking exact read; 0, -errno, or -ECONNRESET on EOF. */
static int nbd_read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            return -ECONNRESET;
        }
        p += r;
        len -= r;
    }
    return 0;
}

/* Connect to a unix socket path; fd or -errno. */
static int nbd_connect_unix(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        return -ENAMETOOLONG;
    }
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Connect to host:port over TCP, trying each address; fd or -errno. */
static int nbd_connect_inet(const char *host, const char *port, Error **errp)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    struct addrinfo *res, *ai;
    int ret = -ECONNREFUSED;
    int rc = getaddrinfo(host, port, &hints, &res);

    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s",
                   host, port, gai_strerror(rc));
        return -EINVAL;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            ret = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            ret = fd;
            break;
        }
        ret = -errno;
        close(fd);
    }
    freeaddrinfo(res);
    return ret;
}

/* Send one option with its data. */
static int nbd_send_option(int fd, uint32_t opt, const void *data,
                           uint32_t len)
{
    uint8_t hdr[16];
    int ret;

    stbe64_p(hdr, NBD_OPTS_MAGIC);
    stbe32_p(hdr + 8, opt);
    stbe32_p(hdr + 12, len);
    ret = nbd_write_all(fd, hdr, sizeof(hdr));
    if (ret == 0 && len) {
        ret = nbd_write_all(fd, data, len);
    }
    return ret;
}

/*
 * Receive one option reply for opt: *type and a g_malloc'ed *data of
 * *len bytes (NUL-terminated for convenience). 0 or -errno, errp set.
 */
static int nbd_recv_option_reply(BDRVNBDState *s, uint32_t opt,
                                 uint32_t *type, uint8_t **data,
                                 uint32_t *len, Error **errp)
{
    uint8_t hdr[20];
    int ret = nbd_read_all(s->fd, hdr, sizeof(hdr));

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read option reply from '%s'",
                         s->desc);
        return ret;
    }
    *type = ldbe32_p(hdr + 12);
    *len = ldbe32_p(hdr + 16);
    if (ldbe64_p(hdr) != NBD_REP_MAGIC || ldbe32_p(hdr + 8) != opt ||
        *len > NBD_MAX_OPTION_LEN) {
        error_setg(errp, "Invalid option reply from '%s'", s->desc);
        return -EPROTO;
    }
    *data = g_malloc0(*len + 1);
    ret = nbd_read_all(s->fd, *data, *len);
    if (ret < 0) {
        g_free(*data);
        *data = NULL;
        error_setg_errno(errp, -ret, "Failed to read option reply from '%s'",
                         s->desc);
    }
    return ret;
}

/* Ask for structured replies; s->structured tells if the server agreed. */
static int nbd_negotiate_structured(BDRVNBDState *s, Error **errp)
{
    uint32_t type, len;
    g_autofree uint8_t *data = NULL;
    int ret = nbd_send_option(s->fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to send option to '%s'", s->desc);
        return ret;
    }
    ret = nbd_recv_option_reply(s, NBD_OPT_STRUCTURED_REPLY, &type, &data,
                                &len, errp);
    if (ret < 0) {
        return ret;
    }
    s->structured = (type == NBD_REP_ACK);
    return 0;
}

/* Select base:allocation for the export; sets has_meta/meta_id if offered. */
static int nbd_negotiate_meta(BDRVNBDState *s, Error **errp)
{
    static const char query[] = "base:allocation";
    size_t nlen = strlen(s->export), qlen = strlen(query);
    g_autofree uint8_t *buf = g_malloc(4 + nlen + 4 + 4 + qlen);
    int ret;

    stbe32_p(buf, nlen);
    memcpy(buf + 4, s->export, nlen);
    stbe32_p(buf + 4 + nlen, 1);
    stbe32_p(buf + 8 + nlen, qlen);
    memcpy(buf + 12 + nlen, query, qlen);
    ret = nbd_send_option(s->fd, NBD_OPT_SET_META_CONTEXT, buf,
                          12 + nlen + qlen);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to send option to '%s'", s->desc);
        return ret;
    }
    for (;;) {
        uint32_t type, len;
        g_autofree uint8_t *data = NULL;

        ret = nbd_recv_option_reply(s, NBD_OPT_SET_META_CONTEXT, &type, &data,
                                    &len, errp);
        if (ret < 0) {
            return ret;
        }
        if (type == NBD_REP_META_CONTEXT && len > 4 &&
            !strcmp((char *)data + 4, query)) {
            s->has_meta = true;
            s->meta_id = ldbe32_p(data);
        } else if (type != NBD_REP_META_CONTEXT) {
            return 0;           /* ACK or an error: done either way */
        }
    }
}

/* Parse one NBD_REP_INFO payload into s. */
static void nbd_parse_info(BDRVNBDState *s, const uint8_t *data, uint32_t len)
{
    uint16_t info = len >= 2 ? ldbe16_p(data) : 0xffff;

    if (info == NBD_INFO_EXPORT && len >= 12) {
        s->size = ldbe64_p(data + 2);
        s->eflags = ldbe16_p(data + 10);
    } else if (info == NBD_INFO_BLOCK_SIZE && len >= 14) {
        s->min_block = ldbe32_p(data + 2);
        s->max_block = ldbe32_p(data + 10);
    }
}

/* NBD_OPT_GO: select the export and learn its size and flags. */
static int nbd_negotiate_go(BDRVNBDState *s, Error **errp)
{
    size_t nlen = strlen(s->export);
    g_autofree uint8_t *buf = g_malloc(4 + nlen + 4);
    int ret;

    stbe32_p(buf, nlen);
    memcpy(buf + 4, s->export, nlen);
    stbe16_p(buf + 4 + nlen, 1);
    stbe16_p(buf + 6 + nlen, NBD_INFO_BLOCK_SIZE);
    ret = nbd_send_option(s->fd, NBD_OPT_GO, buf, 8 + nlen);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to send option to '%s'", s->desc);
        return ret;
    }
    for (;;) {
        uint32_t type, len;
        g_autofree uint8_t *data = NULL;

        ret = nbd_recv_option_reply(s, NBD_OPT_GO, &type, &data, &len, errp);
        if (ret < 0) {
            return ret;
        }
        if (type == NBD_REP_INFO) {
            nbd_parse_info(s, data, len);
        } else if (type == NBD_REP_ACK) {
            return 0;
        } else if (type == NBD_REP_ERR_UNKNOWN) {
            error_setg(errp, "Requested export not available: '%s' on "
                       "'%s'%s%s", s->export, s->desc, len ? ": " : "",
                       (char *)data);
            return -ENOENT;
        } else if (type == NBD_REP_ERR_UNSUP) {
            error_setg(errp, "Server '%s' does not support NBD_OPT_GO "
                       "(not supported)", s->desc);
            return -ENOTSUP;
        } else if (type & (1U << 31)) {
            error_setg(errp, "Server '%s' refused export '%s' "
                       "(error 0x%x)%s%s", s->desc, s->export, type,
                       len ? ": " : "", (char *)data);
            return -EINVAL;
        }
    }
}

/* The whole handshake on the connected s->fd. */
static int nbd_handshake(BDRVNBDState *s, Error **errp)
{
    uint8_t hello[18], cflags[4];
    uint16_t hflags;
    int ret = nbd_read_all(s->fd, hello, sizeof(hello));

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read handshake from '%s'",
                         s->desc);
        return ret;
    }
    if (ldbe64_p(hello) != NBD_INIT_MAGIC ||
        ldbe64_p(hello + 8) != NBD_OPTS_MAGIC) {
        error_setg(errp, "'%s' is not a newstyle NBD server (not supported)",
                   s->desc);
        return -EPROTO;
    }
    hflags = ldbe16_p(hello + 16);
    if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE)) {
        error_setg(errp, "'%s' does not support fixed newstyle NBD "
                   "(not supported)", s->desc);
        return -EPROTO;
    }
    stbe32_p(cflags, NBD_FLAG_C_FIXED_NEWSTYLE |
              (hflags & NBD_FLAG_NO_ZEROES ? NBD_FLAG_C_NO_ZEROES : 0));
    ret = nbd_write_all(s->fd, cflags, sizeof(cflags));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write to '%s'", s->desc);
        return ret;
    }
    ret = nbd_negotiate_structured(s, errp);
    if (ret == 0 && s->structured) {
        ret = nbd_negotiate_meta(s, errp);
    }
    if (ret == 0) {
        ret = nbd_negotiate_go(s, errp);
    }
    return ret;
}

/* ---- Transmission: non-blocking socket, coroutines */

static void nbd_fd_read_ready(void *opaque);
static void nbd_fd_write_ready(void *opaque);

/* Watch the socket for whatever parked coroutine needs it. */
static void nbd_update_handlers(BDRVNBDState *s)
{
    bool rd = s->reader_parked, wr = s->send_waiter != NULL;

    aio_set_fd_handler(s->fd, rd ? nbd_fd_read_ready : NULL,
                       wr ? nbd_fd_write_ready : NULL, s);
}

/* Readable: resume the parked reader. */
static void nbd_fd_read_ready(void *opaque)
{
    BDRVNBDState *s = opaque;

    s->reader_parked = false;
    nbd_update_handlers(s);
    qemu_coroutine_enter(s->reader);
}

/* Writable: resume the sender parked on a full socket. */
static void nbd_fd_write_ready(void *opaque)
{
    BDRVNBDState *s = opaque;
    Coroutine *co = s->send_waiter;

    s->send_waiter = NULL;
    nbd_update_handlers(s);
    qemu_coroutine_enter(co);
}

/* Reader: exact read, parking while the socket is empty. 0 or -errno. */
static int coroutine_fn nbd_client_co_recv(BDRVNBDState *s, void *buf,
                                           size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t r;

        if (s->quit) {
            return -ESHUTDOWN;
        }
        r = read(s->fd, p, len);
        if (r > 0) {
            p += r;
            len -= r;
        } else if (r == 0) {
            return -ECONNRESET;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s->reader_parked = true;
            nbd_update_handlers(s);
            qemu_coroutine_yield();
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* Sender (send_lock held): exact write, parking on a full socket. */
static int coroutine_fn nbd_client_co_send(BDRVNBDState *s, const void *buf,
                                    size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t r = send(s->fd, p, len, MSG_NOSIGNAL);

        if (r >= 0) {
            p += r;
            len -= r;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s->send_waiter = qemu_coroutine_self();
            nbd_update_handlers(s);
            qemu_coroutine_yield();
            if (s->broken) {
                return s->broken;
            }
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
static int coroutine_fn nbd_co_recv_into(BDRVNBDState *s, NBDClientSlot *slot,
                                         uint64_t qoff, uint32_t len)
{
    g_autofree uint8_t *buf = g_malloc(MAX(len, 1));
    int ret = nbd_client_co_recv(s, buf, len);

    if (ret == 0 && slot->qiov && qoff + len <= slot->qiov->size) {
        qemu_iovec_from_buf(slot->qiov, qoff, buf, len);
    } else if (ret == 0 && slot->qiov) {
        ret = -EPROTO;
    }
    return ret;
}

/* Handle a simple reply whose 16-byte header is hdr. */
static int coroutine_fn nbd_co_simple_reply(BDRVNBDState *s,
                                            const uint8_t *hdr)
{
    uint32_t err = ldbe32_p(hdr + 4);
    uint64_t cookie = ldbe64_p(hdr + 8);
    NBDClientSlot *slot;
    int ret = 0;

    if (cookie >= NBD_CLIENT_SLOTS || !s->slots[cookie].in_use) {
        return -EPROTO;
    }
    slot = &s->slots[cookie];
    if (!err && slot->cmd == NBD_CMD_READ) {
        ret = nbd_co_recv_into(s, slot, 0, slot->bytes);
    }
    if (ret < 0) {
        return ret;
    }
    nbd_slot_complete(slot, err ? -nbd_errno_to_host(err) : 0);
    return 0;
}

/* Apply one structured chunk payload (already in data) to slot. */
static int nbd_apply_chunk(BDRVNBDState *s, NBDClientSlot *slot,
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
        if (ldbe32_p(data) == s->meta_id && !slot->got_extent) {
            slot->got_extent = true;
            slot->ext_len = ldbe32_p(data + 4);
            slot->ext_flags = ldbe32_p(data + 8);
        }
    } else if ((type == NBD_REPLY_TYPE_ERROR ||
                type == NBD_REPLY_TYPE_ERROR_OFFSET) && len >= 6) {
        uint32_t err = ldbe32_p(data);

        trace_nbd_client_error_chunk(s->desc, err);
        slot->ret = slot->ret ? slot->ret : -nbd_errno_to_host(err);
    } else if (type != NBD_REPLY_TYPE_NONE) {
        return -EPROTO;
    }
    return 0;
}

/* Handle a structured chunk whose 20-byte header is hdr. */
static int coroutine_fn nbd_co_chunk(BDRVNBDState *s, const uint8_t *hdr)
{
    uint16_t flags = ldbe16_p(hdr + 4), type = ldbe16_p(hdr + 6);
    uint64_t cookie = ldbe64_p(hdr + 8);
    uint32_t len = ldbe32_p(hdr + 16);
    NBDClientSlot *slot;
    g_autofree uint8_t *data = NULL;
    int ret;

    if (cookie >= NBD_CLIENT_SLOTS || !s->slots[cookie].in_use ||
        len > NBD_CLIENT_MAX_XFER + 8) {
        return -EPROTO;
    }
    slot = &s->slots[cookie];
    if (type == NBD_REPLY_TYPE_OFFSET_DATA) {
        uint8_t offb[8];
        uint64_t off;

        ret = len < 8 ? -EPROTO : nbd_client_co_recv(s, offb, 8);
        if (ret < 0) {
            return ret;
        }
        off = ldbe64_p(offb);
        if (off < slot->offset) {
            return -EPROTO;
        }
        ret = nbd_co_recv_into(s, slot, off - slot->offset, len - 8);
    } else {
        data = g_malloc(MAX(len, 1));
        ret = nbd_client_co_recv(s, data, len);
        if (ret == 0) {
            ret = nbd_apply_chunk(s, slot, type, data, len);
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
    BDRVNBDState *s = opaque;
    int ret = 0;

    while (!s->quit) {
        uint8_t hdr[NBD_CHUNK_HEADER_SIZE];

        ret = nbd_client_co_recv(s, hdr, 4);
        if (ret < 0) {
            break;
        }
        if (ldbe32_p(hdr) == NBD_SIMPLE_REPLY_MAGIC) {
            ret = nbd_client_co_recv(s, hdr + 4, NBD_SIMPLE_REPLY_SIZE - 4);
            ret = ret < 0 ? ret : nbd_co_simple_reply(s, hdr);
        } else if (ldbe32_p(hdr) == NBD_STRUCTURED_REPLY_MAGIC &&
                   s->structured) {
            ret = nbd_client_co_recv(s, hdr + 4, NBD_CHUNK_HEADER_SIZE - 4);
            ret = ret < 0 ? ret : nbd_co_chunk(s, hdr);
        } else {
            ret = -EPROTO;
        }
        if (ret < 0) {
            break;
        }
    }
    if (!s->quit) {
        trace_nbd_client_broken(s->desc, ret);
    }
    s->broken = -EIO;
    for (int i = 0; i < NBD_CLIENT_SLOTS; i++) {
        if (s->slots[i].in_use && !s->slots[i].done) {
            nbd_slot_complete(&s->slots[i], -EIO);
        }
    }
    if (s->send_waiter) {
        aio_co_wake(s->send_waiter);
        s->send_waiter = NULL;
    }
    s->reader_parked = false;
    nbd_update_handlers(s);
    s->reader = NULL;
}

/* Send a request header (+ WRITE payload) for the slot at index i. */
static int coroutine_fn nbd_co_send_request(BDRVNBDState *s, int i,
                                            uint16_t flags, QEMUIOVector *qiov)
{
    NBDClientSlot *slot = &s->slots[i];
    uint8_t req[NBD_REQUEST_SIZE];
    int ret;

    stbe32_p(req, NBD_REQUEST_MAGIC);
    stbe16_p(req + 4, flags);
    stbe16_p(req + 6, slot->cmd);
    stbe64_p(req + 8, i);
    stbe64_p(req + 16, slot->offset);
    stbe32_p(req + 24, slot->bytes);
    qemu_co_mutex_lock(&s->send_lock);
    ret = s->broken ? s->broken : nbd_client_co_send(s, req, sizeof(req));
    for (int k = 0; ret == 0 && qiov && k < qiov->niov; k++) {
        ret = nbd_client_co_send(s, qiov->iov[k].iov_base,
                                 qiov->iov[k].iov_len);
    }
    qemu_co_mutex_unlock(&s->send_lock);
    return ret;
}

/*
 * One round trip: send cmd for [offset, offset + bytes) and wait for the
 * final reply. qiov: READ destination or WRITE source. *ext (optional)
 * receives the first block status extent. 0 or -errno.
 */
static int coroutine_fn nbd_co_request(BlockDriverState *bs, uint16_t cmd,
                                       uint16_t flags, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       NBDClientSlot *ext)
{
    BDRVNBDState *s = bs->opaque;
    NBDClientSlot *slot = NULL;
    int i, ret;

    /* A free slot, or wait for one (at most NBD_CLIENT_SLOTS on the wire) */
    for (;;) {
        if (s->broken) {
            return s->broken;
        }
        for (i = 0; i < NBD_CLIENT_SLOTS && s->slots[i].in_use; i++) {
            continue;
        }
        if (i < NBD_CLIENT_SLOTS) {
            break;
        }
        qemu_co_queue_wait(&s->free_slots, NULL);
    }
    slot = &s->slots[i];
    *slot = (NBDClientSlot) {
        .in_use = true, .co = qemu_coroutine_self(), .cmd = cmd,
        .offset = offset, .bytes = bytes,
        .qiov = cmd == NBD_CMD_READ ? qiov : NULL,
    };
    trace_nbd_client_request(s->desc, cmd, offset, bytes, i);
    ret = nbd_co_send_request(s, i, flags,
                              cmd == NBD_CMD_WRITE ? qiov : NULL);
    /* The reader sets done and wakes us after the final chunk */
    while (ret == 0 && !slot->done) {
        slot->parked = true;
        qemu_coroutine_yield();
    }
    if (ret == 0) {
        ret = slot->ret;
    }
    if (ext) {
        *ext = *slot;
    }
    slot->in_use = false;
    qemu_co_queue_next(&s->free_slots);
    if (ret < 0) {
        trace_nbd_client_request_failed(s->desc, cmd, offset, ret);
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
    uint16_t f = (flags & BDRV_REQ_FUA) && (s->eflags & NBD_FLAG_SEND_FUA) ?
                 NBD_CMD_FLAG_FUA : 0;

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

    if (!(s->eflags & NBD_FLAG_SEND_WRITE_ZEROES)) {
        return -ENOTSUP;
    }
    if (!(flags & BDRV_REQ_MAY_UNMAP)) {
        f |= NBD_CMD_FLAG_NO_HOLE;
    }
    if ((flags & BDRV_REQ_FUA) && (s->eflags & NBD_FLAG_SEND_FUA)) {
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

    if (!(s->eflags & NBD_FLAG_SEND_TRIM)) {
        return 0;
    }
    return nbd_co_request(bs, NBD_CMD_TRIM, 0, offset, bytes, NULL, NULL);
}

/* FLUSH when advertised; a server without it has nothing to flush. */
static int coroutine_fn nbd_co_flush(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    if (!(s->eflags & NBD_FLAG_SEND_FLUSH)) {
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
    if (!s->has_meta) {
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

/* ---- Options, filenames, open/close */

/*
 * "nbd+unix:///NAME?socket=P", "nbd://H[:N]/NAME", "nbd+tcp://..." into
 * server.* and export options.
 */
static void nbd_parse_filename(const char *filename, QDict *options,
                               Error **errp)
{
    const char *rest, *slash, *q;
    bool is_unix = false;

    if (g_str_has_prefix(filename, "nbd+unix://")) {
        is_unix = true;
        rest = filename + strlen("nbd+unix://");
    } else if (g_str_has_prefix(filename, "nbd://")) {
        rest = filename + strlen("nbd://");
    } else if (g_str_has_prefix(filename, "nbd+tcp://")) {
        rest = filename + strlen("nbd+tcp://");
    } else {
        error_setg(errp, "Invalid NBD URI '%s' (only nbd://, nbd+tcp:// and "
                   "nbd+unix:// are supported)", filename);
        return;
    }
    slash = strchr(rest, '/');
    q = strchr(rest, '?');
    if (is_unix) {
        g_autofree char *name = NULL;

        if (rest[0] != '/' || !q || !g_str_has_prefix(q, "?socket=")) {
            error_setg(errp, "Invalid NBD URI '%s': nbd+unix:// needs an "
                       "empty host and ?socket=PATH", filename);
            return;
        }
        name = g_uri_unescape_segment(rest + 1, q, NULL);
        qdict_put_str(options, "server.type", "unix");
        qdict_put_str(options, "server.path", q + strlen("?socket="));
        qdict_put_str(options, "export", name ? name : "");
    } else {
        const char *hend = slash ? slash : rest + strlen(rest);
        g_autofree char *hostport = g_strndup(rest, hend - rest);
        char *colon = strrchr(hostport, ':');

        if (q || !hostport[0]) {
            error_setg(errp, "Invalid NBD URI '%s'", filename);
            return;
        }
        if (colon && !strchr(colon, ']')) {
            *colon = '\0';
            qdict_put_str(options, "server.port", colon + 1);
        }
        if (hostport[0] == '[' && hostport[strlen(hostport) - 1] == ']') {
            hostport[strlen(hostport) - 1] = '\0';
            memmove(hostport, hostport + 1, strlen(hostport));
        }
        qdict_put_str(options, "server.type", "inet");
        qdict_put_str(options, "server.host", hostport);
        if (slash && slash[1]) {
            g_autofree char *name = g_uri_unescape_string(slash + 1, NULL);
            qdict_put_str(options, "export", name ? name : slash + 1);
        }
    }
}

/* Take a string option out of options (g_strdup'ed, or NULL). */
static char *nbd_take_str(QDict *options, const char *key)
{
    char *v = g_strdup(qdict_get_try_str(options, key));

    qdict_del(options, key);
    return v;
}

/* Connect per the server.* options; sets s->fd and s->desc. */
static int nbd_connect(BDRVNBDState *s, QDict *options, Error **errp)
{
    g_autofree char *type = nbd_take_str(options, "server.type");
    g_autofree char *path = nbd_take_str(options, "server.path");
    g_autofree char *host = nbd_take_str(options, "server.host");
    g_autofree char *port = nbd_take_str(options, "server.port");
    Error *local_err = NULL;
    int fd;

    if (type && !strcmp(type, "unix") && path) {
        s->desc = g_strdup_printf("nbd+unix:///%s?socket=%s", s->export, path);
        fd = nbd_connect_unix(path);
    } else if (type && !strcmp(type, "inet") && host) {
        const char *p = port ? port : NBD_DEFAULT_PORT;

        s->desc = g_strdup_printf(strchr(host, ':') ? "nbd://[%s]:%s/%s" :
                                  "nbd://%s:%s/%s", host, p, s->export);
        fd = nbd_connect_inet(host, p, &local_err);
    } else {
        error_setg(errp, "NBD server address needs server.type=unix with "
                   "server.path, or server.type=inet with server.host");
        return -EINVAL;
    }
    if (fd < 0) {
        if (local_err) {
            error_propagate_prepend(errp, local_err, "Could not connect to "
                                    "'%s': ", s->desc);
        } else {
            error_setg_errno(errp, -fd, "Could not connect to '%s'", s->desc);
        }
        return fd;
    }
    s->fd = fd;
    return 0;
}

/*
 * Open: options (or the filename) name the server; connect, handshake,
 * check writability, then start the reader on the non-blocking socket.
 */
static int nbd_open(BlockDriverState *bs, QDict *options, int flags,
                    Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    int ret;

    s->fd = -1;
    if (!qdict_haskey(options, "server.type") &&
        qdict_get_try_str(options, "filename")) {
        Error *local_err = NULL;

        nbd_parse_filename(qdict_get_try_str(options, "filename"), options,
                           &local_err);
        if (local_err) {
            error_propagate(errp, local_err);
            return -EINVAL;
        }
    }
    if (qdict_haskey(options, "reconnect-delay")) {
        error_setg(errp, "nbd: option 'reconnect-delay' is not supported");
        return -ENOTSUP;
    }
    s->export = nbd_take_str(options, "export");
    if (!s->export) {
        s->export = g_strdup("");
    }
    qdict_del(options, "filename");
    ret = nbd_connect(s, options, errp);
    if (ret == 0) {
        ret = nbd_handshake(s, errp);
    }
    if (ret == 0 && (flags & BDRV_O_RDWR) &&
        (s->eflags & NBD_FLAG_READ_ONLY)) {
        error_setg(errp, "Export '%s' of '%s' is read-only; open it "
                   "read-only", s->export, s->desc);
        ret = -EACCES;
    }
    trace_nbd_client_open(s->desc, ret, (unsigned long long)s->size,
                          s->eflags, s->structured, s->has_meta);
    if (ret < 0) {
        if (s->fd >= 0) {
            close(s->fd);
        }
        g_free(s->desc);
        g_free(s->export);
        return ret;
    }
    g_strlcpy(bs->filename, s->desc, sizeof(bs->filename));
    bs->total_bytes = s->size;
    qemu_socket_set_nonblock(s->fd);
    qemu_co_mutex_init(&s->send_lock);
    qemu_co_queue_init(&s->free_slots);
    s->reader = qemu_coroutine_create(nbd_co_reader, s);
    qemu_coroutine_enter(s->reader);
    return 0;
}

/* Tell the server goodbye (best effort), stop the reader, close. */
static void nbd_close(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;
    uint8_t req[NBD_REQUEST_SIZE] = { 0 };

    s->quit = true;
    if (!s->broken) {
        stbe32_p(req, NBD_REQUEST_MAGIC);
        stbe16_p(req + 6, NBD_CMD_DISC);
        (void)!send(s->fd, req, sizeof(req), MSG_NOSIGNAL);
    }
    if (s->reader && s->reader_parked) {
        s->reader_parked = false;
        qemu_coroutine_enter(s->reader);
    }
    aio_set_fd_handler(s->fd, NULL, NULL, NULL);
    close(s->fd);
    g_free(s->desc);
    g_free(s->export);
}

/* Limits from NBD_INFO_BLOCK_SIZE, capped at the 32 MiB we accept. */
static void nbd_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    uint32_t max = s->max_block ? MIN(s->max_block, NBD_CLIENT_MAX_XFER) :
                   NBD_CLIENT_MAX_XFER;

    bs->bl.request_alignment = s->min_block ? s->min_block : 1;
    bs->bl.max_transfer = max;
    bs->bl.max_pwrite_zeroes = max;
    bs->bl.max_pdiscard = max;
}

static int64_t nbd_getlength(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    return s->size;
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

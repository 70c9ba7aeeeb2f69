/*
 * The NBD server: listening socket, exports, client life cycle and the
 * non-blocking socket I/O every client coroutine uses.
 *
 * State: one global server (listen fd, address, every client), a list of
 * exports. Each accepted connection gets an NBDClient and one reader
 * coroutine that runs the handshake (server-handshake.c) and then reads
 * requests, spawning a coroutine per request (server-requests.c).
 *
 * Why it is safe: everything runs on the main loop thread. The reader
 * coroutine owns its client; it frees it only after every request
 * coroutine of the client has finished (they hold the client and the
 * export's root child). A client in transmission holds a reference on
 * its BlockExport (include/block/export.h), so the export, its NBD
 * state and its root outlive every client using them. Closing a client
 * from outside (export removal, server stop) only marks it and shuts
 * its socket down: blocked reads see EOF and blocked sends fail, so the
 * reader winds down by itself and drops its reference; the registry
 * deletes the export after the last one. Sockets are
 * non-blocking; a coroutine that would block parks itself and the fd
 * handler re-enters it when the socket is ready. fd handlers are
 * removed lazily (when they fire with nobody waiting) so a busy
 * connection does not re-register its handler on every request.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/sockets.h"
#include "nbd/nbd.h"
#include "nbd-internal.h"
#include "trace.h"

#include <sys/socket.h>

typedef struct NBDServer {
    int listen_fd;
    QDict *addr;
    int max_connections;        /* 0: unlimited */
    GList *clients;             /* every NBDClient, handshake included */
    int nb_clients;
    bool stopping;
} NBDServer;

/* Per-client fd handler state, kept beside the client in one block. */
typedef struct NBDClientConn {
    NBDClient client;
    bool rd_on, wr_on;          /* handlers currently registered */
} NBDClientConn;

static NBDServer *nbd_server;
static GList *nbd_exports;      /* NBDExport * */

/* A server being stopped no longer counts as running. */
bool nbd_server_is_running(void)
{
    return nbd_server != NULL && !nbd_server->stopping;
}

/* Also true when no server runs (a client outliving it is closing). */
bool nbd_server_shutting_down(void)
{
    return !nbd_server || nbd_server->stopping;
}

/* ---- socket I/O ---------------------------------------------------- */

static void nbd_client_rd_event(void *opaque);
static void nbd_client_wr_event(void *opaque);

/*
 * Register the wanted handlers with the loop; a call that changes
 * nothing is skipped, which keeps the per-request cost of a busy
 * connection at zero loop bookkeeping.
 */
static void nbd_client_set_handlers(NBDClient *client, bool rd, bool wr)
{
    NBDClientConn *conn = container_of(client, NBDClientConn, client);

    if (conn->rd_on == rd && conn->wr_on == wr) {
        return;
    }
    conn->rd_on = rd;
    conn->wr_on = wr;
    aio_set_fd_handler(client->fd, rd ? nbd_client_rd_event : NULL,
                       wr ? nbd_client_wr_event : NULL, client);
}

/*
 * Readable (or hung up): enter the reader if it waits, else drop the
 * read handler so that a paused reader does not make the loop spin.
 */
static void nbd_client_rd_event(void *opaque)
{
    NBDClient *client = opaque;
    NBDClientConn *conn = container_of(client, NBDClientConn, client);

    if (client->recv_waiting) {
        client->recv_waiting = false;
        qemu_coroutine_enter(client->co);
        return;
    }
    nbd_client_set_handlers(client, false, conn->wr_on);
}

/* Writable: enter the sender that waits, else drop the write handler. */
static void nbd_client_wr_event(void *opaque)
{
    NBDClient *client = opaque;
    NBDClientConn *conn = container_of(client, NBDClientConn, client);
    Coroutine *co = client->send_waiter;

    if (co) {
        client->send_waiter = NULL;
        qemu_coroutine_enter(co);
        return;
    }
    nbd_client_set_handlers(client, conn->rd_on, false);
}

/* Park the calling coroutine until the socket is readable. */
static void coroutine_fn nbd_co_wait_readable(NBDClient *client)
{
    NBDClientConn *conn = container_of(client, NBDClientConn, client);

    client->recv_waiting = true;
    nbd_client_set_handlers(client, true, conn->wr_on);
    qemu_coroutine_yield();
}

/* Park the calling coroutine (the send_lock holder) until writable. */
static void coroutine_fn nbd_co_wait_writable(NBDClient *client)
{
    NBDClientConn *conn = container_of(client, NBDClientConn, client);

    client->send_waiter = qemu_coroutine_self();
    nbd_client_set_handlers(client, conn->rd_on, true);
    qemu_coroutine_yield();
}

/* One read(2) into buf; >0 bytes, 0 after waiting, or -errno/-ECONNRESET. */
static ssize_t coroutine_fn nbd_co_read_some(NBDClient *client, void *buf,
                                             size_t len)
{
    ssize_t r = read(client->fd, buf, len);

    if (r > 0) {
        return r;
    }
    if (r == 0) {
        return -ECONNRESET;
    }
    if (errno == EINTR) {
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        nbd_co_wait_readable(client);
        return 0;
    }
    return -errno;
}

/*
 * Small reads (headers, options, small payloads) are served from the
 * client's receive buffer, refilled with one large read(2): a burst of
 * pipelined requests costs one syscall. Large payloads bypass the
 * buffer once it is drained, avoiding a copy.
 */
int coroutine_fn nbd_co_recv(NBDClient *client, void *buf, size_t len)
{
    uint8_t *p = buf;
    ssize_t r;

    while (len) {
        size_t avail = client->rend - client->rpos;

        if (avail) {
            size_t n = MIN(avail, len);
            memcpy(p, client->rbuf + client->rpos, n);
            client->rpos += n;
            p += n;
            len -= n;
            continue;
        }
        client->rpos = client->rend = 0;
        if (len >= NBD_RECV_BUF_SIZE / 2) {
            /* Big payload: read straight into the caller's buffer. */
            r = nbd_co_read_some(client, p, len);
            if (r > 0) {
                p += r;
                len -= r;
            }
        } else {
            r = nbd_co_read_some(client, client->rbuf, NBD_RECV_BUF_SIZE);
            if (r > 0) {
                client->rend = r;
            }
        }
        if (r < 0) {
            trace_nbd_co_recv_error(client, (int)r);
            return client->closing && r == -ECONNRESET ? -ESHUTDOWN : r;
        }
    }
    return 0;
}

/* Used for payloads of refused writes, which must still be consumed. */
int coroutine_fn nbd_co_skip(NBDClient *client, uint64_t len)
{
    uint8_t tmp[4096];
    int ret;

    while (len) {
        size_t n = MIN(len, sizeof(tmp));

        ret = nbd_co_recv(client, tmp, n);
        if (ret < 0) {
            return ret;
        }
        len -= n;
    }
    return 0;
}

/*
 * One sendmsg for header and data; short writes advance through the
 * caller's iovec array, which is therefore consumed (modified).
 * MSG_NOSIGNAL: a peer that went away yields EPIPE, never SIGPIPE.
 */
int coroutine_fn nbd_co_sendv(NBDClient *client, struct iovec *iov,
                              int niov)
{
    struct msghdr msg = { 0 };
    ssize_t r;

    while (niov > 0) {
        msg.msg_iov = iov;
        msg.msg_iovlen = niov;
        r = sendmsg(client->fd, &msg, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                nbd_co_wait_writable(client);
                continue;
            }
            trace_nbd_co_send_error(client, -errno);
            return -errno;
        }
        /* Skip what was sent: whole entries, then part of one. */
        while (niov > 0 && (size_t)r >= iov->iov_len) {
            r -= iov->iov_len;
            iov++;
            niov--;
        }
        if (niov > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + r;
            iov->iov_len -= r;
        }
    }
    return 0;
}

int coroutine_fn nbd_co_send(NBDClient *client, const void *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return nbd_co_sendv(client, &iov, 1);
}

/* ---- exports ------------------------------------------------------- */

NBDExport *nbd_export_find(const char *name)
{
    GList *l;

    for (l = nbd_exports; l; l = l->next) {
        NBDExport *exp = l->data;
        if (!exp->removing && strcmp(exp->name, name) == 0) {
            return exp;
        }
    }
    return NULL;
}

GList *nbd_export_list(void)
{
    return nbd_exports;
}

/* Asked at negotiation time, so a resized node shows its new size. */
int64_t nbd_export_size(NBDExport *exp)
{
    return bdrv_getlength(bdrv_child_bs(exp->root));
}

/*
 * Write-side commands are only advertised on writable exports (clients
 * then do not try them). DF needs structured replies to mean anything,
 * so it is only offered once they are negotiated.
 */
uint16_t nbd_export_tx_flags(NBDClient *client, NBDExport *exp)
{
    uint16_t flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                     NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE;

    if (exp->writable) {
        flags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                 NBD_FLAG_SEND_FAST_ZERO;
    } else {
        flags |= NBD_FLAG_READ_ONLY;
    }
    /*
     * Every connection goes through the same node in one process, so a
     * flush on one covers writes completed on all: multi-conn is safe.
     */
    flags |= NBD_FLAG_CAN_MULTI_CONN;
    if (client->structured) {
        flags |= NBD_FLAG_SEND_DF;
    }
    return flags;
}

int nbd_client_attach_export(NBDClient *client, NBDExport *exp)
{
    if (exp->removing) {
        return -ESHUTDOWN;
    }
    blk_exp_ref(exp->common);
    client->exp = exp;
    exp->clients = g_list_prepend(exp->clients, client);
    trace_nbd_client_attach(client, exp->name);
    return 0;
}

void nbd_export_get(NBDExport *exp)
{
    blk_exp_ref(exp->common);
}

void nbd_export_put(NBDExport *exp)
{
    blk_exp_unref(exp->common);
}

/* Stop a client: new reads see EOF, pending sends fail; it exits itself. */
void nbd_client_kick(NBDClient *client)
{
    if (!client->closing) {
        trace_nbd_client_kick(client);
        client->closing = true;
        shutdown(client->fd, SHUT_RDWR);
    }
}

/* Run the loop (or sleep, in a coroutine) until *list is empty. */
static void nbd_wait_list_empty(GList **list)
{
    if (qemu_in_coroutine()) {
        while (*list) {
            qemu_co_sleep_ns(1000 * 1000);
        }
    } else {
        AIO_WAIT_WHILE(*list != NULL);
    }
}

/*
 * BlockExportDriver.create: the NBD checks, in QEMU's order and words,
 * all before anything is created. The name defaults to the node name.
 */
static bool nbd_export_create(BlockExport *blk_exp, BlockExportOptions *opts,
                              Error **errp)
{
    BlockExportOptionsNbd *nbd = &opts->u.nbd;
    const char *name = nbd->name ? nbd->name : opts->node_name;
    NBDExport *exp;

    if (nbd_server_shutting_down()) {
        error_setg(errp, "NBD server not running");
        return false;
    }
    if (strlen(name) > NBD_MAX_STRING) {
        error_setg(errp, "export name '%s' too long", name);
        return false;
    }
    if (nbd->description && strlen(nbd->description) > NBD_MAX_STRING) {
        error_setg(errp, "description '%s' too long", nbd->description);
        return false;
    }
    if (nbd_export_find(name)) {
        error_setg(errp, "NBD server already has export named '%s'", name);
        return false;
    }
    exp = g_new0(NBDExport, 1);
    exp->common = blk_exp;
    exp->name = g_strdup(name);
    exp->description = g_strdup(nbd->description);
    exp->root = blk_exp->root;
    exp->writable = blk_exp->writable;
    exp->writethrough = blk_exp->writethrough;
    blk_exp->opaque = exp;
    nbd_exports = g_list_append(nbd_exports, exp);
    trace_nbd_export_add(exp, blk_exp->id, name, exp->writable);
    return true;
}

/* BlockExportDriver.request_shutdown: hide exp, disconnect its clients. */
static void nbd_export_request_shutdown(BlockExport *blk_exp)
{
    NBDExport *exp = blk_exp->opaque;

    exp->removing = true;
    for (GList *l = exp->clients; l; l = l->next) {
        nbd_client_kick(l->data);
    }
}

/* BlockExportDriver.delete: no client is left (each held a reference). */
static void nbd_export_delete(BlockExport *blk_exp)
{
    NBDExport *exp = blk_exp->opaque;

    g_assert(!exp->clients);
    nbd_exports = g_list_remove(nbd_exports, exp);
    trace_nbd_export_remove(exp, blk_exp->id);
    g_free(exp->name);
    g_free(exp->description);
    g_free(exp);
}

const BlockExportDriver blk_exp_nbd = {
    .type               = BLOCK_EXPORT_TYPE_NBD,
    .create             = nbd_export_create,
    .request_shutdown   = nbd_export_request_shutdown,
    .delete             = nbd_export_delete,
};

/* ---- clients ------------------------------------------------------- */

/* Close the socket and free the client; all its requests are done. */
static void nbd_client_free(NBDClient *client)
{
    /*
     * Called at the very end of the reader coroutine: inflight is 0 and
     * nobody waits on the fd, so nothing can touch client afterwards.
     */
    NBDClientConn *conn = container_of(client, NBDClientConn, client);

    trace_nbd_client_close(client);
    aio_set_fd_handler(client->fd, NULL, NULL, NULL);
    close(client->fd);
    if (client->exp) {
        client->exp->clients = g_list_remove(client->exp->clients, client);
        /* May be the export's last reference: deleted from a BH. */
        blk_exp_unref(client->exp->common);
        client->exp = NULL;
    }
    if (nbd_server) {
        nbd_server->clients = g_list_remove(nbd_server->clients, client);
        nbd_server->nb_clients--;
    }
    nbd_client_free_requests(client);
    g_free(client->meta_export);
    g_free(client->rbuf);
    g_free(conn);
}

/* The reader coroutine: handshake, transmission, then cleanup. */
static void coroutine_fn nbd_client_co_run(void *opaque)
{
    NBDClient *client = opaque;
    int ret = nbd_co_handshake(client);

    trace_nbd_client_handshake_done(client, ret);
    if (ret > 0) {
        nbd_co_transmission(client);
    }
    nbd_client_free(client);
}

/*
 * Accept one connection and start its coroutine. Over max_connections
 * (or while stopping) the connection is closed at once: the client sees
 * EOF before the greeting, which every client reports as an error.
 */
static void nbd_server_new_client(int fd)
{
    NBDClientConn *conn;
    NBDClient *client;

    if (nbd_server->stopping ||
        (nbd_server->max_connections > 0 &&
         nbd_server->nb_clients >= nbd_server->max_connections)) {
        trace_nbd_server_refuse(fd, nbd_server->nb_clients);
        close(fd);
        return;
    }
    conn = g_new0(NBDClientConn, 1);
    client = &conn->client;
    client->fd = fd;
    client->rbuf = g_malloc(NBD_RECV_BUF_SIZE);
    qemu_co_mutex_init(&client->send_lock);
    nbd_server->clients = g_list_prepend(nbd_server->clients, client);
    nbd_server->nb_clients++;
    trace_nbd_server_accept(client, fd, nbd_server->nb_clients);
    client->co = qemu_coroutine_create(nbd_client_co_run, client);
    qemu_coroutine_enter(client->co);
}

/* fd handler of the listening socket: accept everything pending. */
static void nbd_server_accept(void *opaque)
{
    int fd;

    /* The listening socket is non-blocking: drain the backlog. */
    while (nbd_server && (fd = socket_accept_nonblock(nbd_server->listen_fd))
           >= 0) {
        nbd_server_new_client(fd);
    }
}

bool nbd_server_start(QDict *addr, int max_connections, Error **errp)
{
    int fd;

    if (nbd_server) {
        error_setg(errp, "NBD server already running");
        return false;
    }
    qemu_init_main_loop();
    fd = socket_listen(addr, 128, errp);
    if (fd < 0) {
        return false;
    }
    nbd_server = g_new0(NBDServer, 1);
    nbd_server->listen_fd = fd;
    nbd_server->addr = qdict_clone(addr);
    nbd_server->max_connections = max_connections;
    aio_set_fd_handler(fd, nbd_server_accept, NULL, NULL);
    trace_nbd_server_start(fd, max_connections);
    return true;
}

/*
 * Order matters: stop accepting first, then kick every client (those
 * still negotiating may pin an export), then remove the exports and
 * wait until they are deleted (their events emitted) and every client
 * is gone, and only then forget the server.
 */
void nbd_server_stop(void)
{
    GList *l;

    if (!nbd_server || nbd_server->stopping) {
        return;
    }
    trace_nbd_server_stop(nbd_server->nb_clients);
    nbd_server->stopping = true;
    aio_set_fd_handler(nbd_server->listen_fd, NULL, NULL, NULL);
    for (l = nbd_server->clients; l; l = l->next) {
        nbd_client_kick(l->data);
    }
    blk_exp_close_all_type(BLOCK_EXPORT_TYPE_NBD);
    nbd_wait_list_empty(&nbd_server->clients);
    socket_listen_cleanup(nbd_server->listen_fd, nbd_server->addr);
    close(nbd_server->listen_fd);
    qdict_unref(nbd_server->addr);
    g_free(nbd_server);
    nbd_server = NULL;
}

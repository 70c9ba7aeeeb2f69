/*
 * The socket chardev backend: --chardev socket,id=ID,path=P,server=on or
 * host=H,port=N,server=on, with wait=on|off.
 *
 * State: a listening socket, at most one connected client, and a buffer
 * of bytes queued for the client. As QEMU does, the listener is watched
 * only while no client is connected: a second client waits in the listen
 * backlog until the first one goes away. The client is always watched,
 * so its hang-up frees the chardev even when no front end is attached;
 * bytes arriving then have no reader and are dropped. Front ends attach
 * while the options are processed, before the main loop first runs, so
 * in the daemon no byte reaches the chardev before its monitor exists.
 *
 * Writes never block: qemu_chr_write() appends to the buffer and sends
 * what the socket takes; the rest goes out from a writability handler. A
 * send error shuts the socket down, so the read handler sees the hang-up
 * and does the one disconnect path (front end told, listener re-armed);
 * the front end is thus never called back from inside its own write.
 * All of it runs on the main loop thread.
 */
#include "qemu/osdep.h"
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include "qemu/aio.h"
#include "qemu/sockets.h"
#include "chardev/chardev-internal.h"
#include "trace.h"

/* Listen backlog: one client served, one waiting, as QEMU's chardev. */
#define CHR_SOCKET_BACKLOG 1
/* Bytes read from the client per handler call. */
#define CHR_SOCKET_READ_SIZE 4096
/* At shutdown, how long queued output may take to reach the client. */
#define CHR_SOCKET_CLOSE_FLUSH_MS 1000

typedef struct SocketChardev {
    Chardev *chr;
    QDict *addr;            /* "type"=unix+"path" or "type"=inet+host+port */
    char *addr_str;         /* for messages: "unix:/path" */
    int listen_fd;
    int fd;                 /* the connected client, or -1 */
    GByteArray *out;        /* queued for the client */
    bool input_paused;      /* the front end asked us to stop reading */
} SocketChardev;

static void chr_socket_accept(void *opaque);
static void chr_socket_read(void *opaque);
static void chr_socket_writable(void *opaque);

/* Watch the client fd for what is needed now: bytes in, queue out. */
static void chr_socket_update_handlers(SocketChardev *s)
{
    if (s->fd < 0) {
        return;
    }
    if (s->input_paused && !s->out->len) {
        aio_set_fd_handler(s->fd, NULL, NULL, NULL);
        return;
    }
    aio_set_fd_handler(s->fd, s->input_paused ? NULL : chr_socket_read,
                       s->out->len ? chr_socket_writable : NULL, s);
}

/* Take client fd as the connection; stop listening until it goes. */
static void chr_socket_set_client(SocketChardev *s, int fd)
{
    trace_chr_socket_accept(s->chr, s->chr->id, fd);
    aio_set_fd_handler(s->listen_fd, NULL, NULL, NULL);
    s->fd = fd;
    chr_socket_update_handlers(s);
    qemu_chr_be_connected(s->chr);
}

/* Listener readable: accept one client (none if it already left). */
static void chr_socket_accept(void *opaque)
{
    SocketChardev *s = opaque;
    int fd = socket_accept_nonblock(s->listen_fd);

    if (fd >= 0) {
        chr_socket_set_client(s, fd);
    }
}

/* Drop the client: close it, tell the front end, listen again. */
static void chr_socket_drop_client(SocketChardev *s, int err)
{
    int fd = s->fd;

    if (fd < 0) {
        return;
    }
    trace_chr_socket_disconnect(s->chr, s->chr->id, fd, err);
    aio_set_fd_handler(fd, NULL, NULL, NULL);
    close(fd);
    s->fd = -1;
    s->input_paused = false;
    g_byte_array_set_size(s->out, 0);
    aio_set_fd_handler(s->listen_fd, chr_socket_accept, NULL, s);
    qemu_chr_be_disconnected(s->chr);
}

/*
 * Client readable: pass its bytes to the front end (dropped if none);
 * EOF or an error disconnects.
 */
static void chr_socket_read(void *opaque)
{
    SocketChardev *s = opaque;
    uint8_t buf[CHR_SOCKET_READ_SIZE];
    ssize_t n;

    do {
        n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    trace_chr_socket_read(s->chr, s->fd, n);
    if (n > 0) {
        qemu_chr_be_receive(s->chr, buf, n);
    } else if (n == 0) {
        chr_socket_drop_client(s, 0);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        chr_socket_drop_client(s, errno);
    }
}

/*
 * Send as much of the queue as the socket takes. On a send error the
 * queue is dropped and the socket shut down (the read side then sees
 * the hang-up and disconnects).
 */
static void chr_socket_flush(SocketChardev *s)
{
    ssize_t n = 0;

    while (s->out->len) {
        n = send(s->fd, s->out->data, s->out->len,
                 MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        g_byte_array_remove_range(s->out, 0, n);
    }
    trace_chr_socket_write(s->chr, s->fd, n, s->out->len);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        g_byte_array_set_size(s->out, 0);
        shutdown(s->fd, SHUT_RDWR);
    }
    chr_socket_update_handlers(s);
}

/* Socket writable again: send more of the queue. */
static void chr_socket_writable(void *opaque)
{
    chr_socket_flush(opaque);
}

/* Queue buf for the client and send what the socket takes right now. */
static void chr_socket_write(Chardev *chr, const void *buf, size_t len)
{
    SocketChardev *s = chr->opaque;

    if (s->fd < 0) {
        return;     /* no client: dropped, as the API says */
    }
    g_byte_array_append(s->out, buf, len);
    chr_socket_flush(s);
}

/* Local disconnect: the front end's disconnected() runs before return. */
static void chr_socket_disconnect(Chardev *chr)
{
    chr_socket_drop_client(chr->opaque, 0);
}

/* Connected means accepted and not yet dropped (hang-ups are seen on read). */
static bool chr_socket_is_connected(const Chardev *chr)
{
    const SocketChardev *s = chr->opaque;

    return s->fd >= 0;
}

/* The client is watched already; only the connection event is owed. */
static void chr_socket_frontend_attached(Chardev *chr)
{
    SocketChardev *s = chr->opaque;

    if (s->fd >= 0) {
        qemu_chr_be_connected(chr);
    }
}

/*
 * wait=on: block start-up until the first client connects, as QEMU does.
 * Termination signals are unblocked while waiting, so Ctrl-C still works.
 */
static bool chr_socket_wait_client(SocketChardev *s, Error **errp)
{
    struct pollfd pfd = { .fd = s->listen_fd, .events = POLLIN };
    sigset_t none;
    int fd;

    sigemptyset(&none);
    error_report("waiting for connection on: disconnected:%s,server=on",
                 s->addr_str);
    for (;;) {
        if (ppoll(&pfd, 1, NULL, &none) < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "chardev '%s': waiting for a "
                             "client failed", s->chr->id);
            return false;
        }
        fd = socket_accept_nonblock(s->listen_fd);
        if (fd >= 0) {
            chr_socket_set_client(s, fd);
            return true;
        }
    }
}

/*
 * Take the address keys out of opts into s->addr: path= (unix, with
 * the socket file's x-mode= if given) or host=,port= (inet); false with errp set when neither is complete.
 */
static bool chr_socket_take_addr(SocketChardev *s, QDict *opts,
                                 Error **errp)
{
    const char *path = qdict_get_try_str(opts, "path");
    const char *host = qdict_get_try_str(opts, "host");
    const char *port = qdict_get_try_str(opts, "port");
    const char *mode = qdict_get_try_str(opts, "x-mode");

    s->addr = qdict_new();
    if (mode && !path) {
        error_setg(errp, "chardev: socket: x-mode is only valid with path=");
        return false;
    }
    if (path) {
        qdict_put_str(s->addr, "type", "unix");
        qdict_put_str(s->addr, "path", path);
        if (mode) {
            /* the socket file's mode; socket_listen() checks it */
            qdict_put_str(s->addr, "x-mode", mode);
        }
    } else if (port) {
        qdict_put_str(s->addr, "type", "inet");
        qdict_put_str(s->addr, "host", host ? host : "");
        qdict_put_str(s->addr, "port", port);
    } else if (host) {
        error_setg(errp, "chardev: socket: no port given");
        return false;
    } else {
        error_setg(errp, "chardev: socket: no address given (path= or "
                   "host=,port=)");
        return false;
    }
    qdict_del(opts, "path");
    qdict_del(opts, "host");
    qdict_del(opts, "port");
    qdict_del(opts, "x-mode");
    s->addr_str = socket_address_to_string(s->addr);
    return true;
}

/* Refuse the socket features qblk lacks (client mode, telnet, ...). */
static bool chr_socket_check_features(QDict *opts, bool *wait, Error **errp)
{
    static const char *const unsupported[] = { "telnet", "tn3270",
                                               "websocket", NULL };
    bool server, on;

    if (!qdict_get_bool(opts, "server", false, &server, errp) ||
        !qdict_get_bool(opts, "wait", true, wait, errp) ||
        !qdict_get_bool(opts, "nodelay", false, &on, errp)) {
        return false;
    }
    if (!server) {
        error_setg(errp, "chardev: socket: only server=on is supported");
        return false;
    }
    for (size_t i = 0; unsupported[i]; i++) {
        if (!qdict_get_bool(opts, unsupported[i], false, &on, errp)) {
            return false;
        }
        if (on) {
            error_setg(errp, "chardev: socket: %s=on is not supported",
                       unsupported[i]);
            return false;
        }
        qdict_del(opts, unsupported[i]);
    }
    if (qdict_haskey(opts, "reconnect")) {
        error_setg(errp, "chardev: socket: 'reconnect' is for client "
                   "sockets, which are not supported");
        return false;
    }
    qdict_del(opts, "server");
    qdict_del(opts, "wait");
    qdict_del(opts, "nodelay");
    return true;
}

/* Pause or resume reading; the hang-up is then seen on resume. */
static void chr_socket_set_input_paused(Chardev *chr, bool paused)
{
    SocketChardev *s = chr->opaque;

    s->input_paused = paused;
    chr_socket_update_handlers(s);
}

/*
 * Shutdown: give the client what is still queued (a quit reply), waiting
 * for the socket at most CHR_SOCKET_CLOSE_FLUSH_MS in all.
 */
static void chr_socket_flush_at_close(SocketChardev *s)
{
    int64_t deadline = g_get_monotonic_time() +
                       CHR_SOCKET_CLOSE_FLUSH_MS * 1000;
    struct pollfd pfd = { .fd = s->fd, .events = POLLOUT };

    while (s->out->len && g_get_monotonic_time() < deadline) {
        ssize_t n;

        if (poll(&pfd, 1, 10) <= 0) {
            continue;
        }
        n = send(s->fd, s->out->data, s->out->len,
                 MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        g_byte_array_remove_range(s->out, 0, n);
    }
}

/* Close client and listener, remove the socket file, free s. */
static void chr_socket_free(SocketChardev *s)
{
    if (s->fd >= 0) {
        chr_socket_flush_at_close(s);
        aio_set_fd_handler(s->fd, NULL, NULL, NULL);
        close(s->fd);
    }
    if (s->listen_fd >= 0) {
        aio_set_fd_handler(s->listen_fd, NULL, NULL, NULL);
        socket_listen_cleanup(s->listen_fd, s->addr);
        close(s->listen_fd);
    }
    if (s->addr) {
        qdict_unref(s->addr);
    }
    g_free(s->addr_str);
    g_byte_array_unref(s->out);
    g_free(s);
}

/*
 * Options first (all checked before any socket exists), then listen, then
 * either wait for the first client (wait=on) or watch the listener.
 */
static bool chr_socket_open(Chardev *chr, QDict *opts, Error **errp)
{
    SocketChardev *s = g_new0(SocketChardev, 1);
    bool wait;

    s->chr = chr;
    s->fd = -1;
    s->listen_fd = -1;
    s->out = g_byte_array_new();
    chr->opaque = s;
    if (!chr_socket_check_features(opts, &wait, errp) ||
        !chr_socket_take_addr(s, opts, errp) ||
        !qemu_chr_check_no_leftover(opts, errp)) {
        goto fail;
    }
    s->listen_fd = socket_listen(s->addr, CHR_SOCKET_BACKLOG, errp);
    if (s->listen_fd < 0) {
        goto fail;
    }
    trace_chr_socket_listen(chr, chr->id, s->listen_fd, s->addr_str);
    if (wait) {
        if (!chr_socket_wait_client(s, errp)) {
            goto fail;
        }
    } else {
        aio_set_fd_handler(s->listen_fd, chr_socket_accept, NULL, s);
    }
    return true;

fail:
    chr_socket_free(s);
    chr->opaque = NULL;
    return false;
}

static void chr_socket_close(Chardev *chr)
{
    if (chr->opaque) {
        chr_socket_free(chr->opaque);
        chr->opaque = NULL;
    }
}

const ChardevBackend chardev_backend_socket = {
    .name = "socket",
    .open = chr_socket_open,
    .frontend_attached = chr_socket_frontend_attached,
    .write = chr_socket_write,
    .disconnect = chr_socket_disconnect,
    .is_connected = chr_socket_is_connected,
    .close = chr_socket_close,
    .set_input_paused = chr_socket_set_input_paused,
};

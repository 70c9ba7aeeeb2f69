/*
 * NBD client: server addresses, connecting and the handshake.
 *
 * Everything here is blocking code on a socket it owns; block/nbd.c runs
 * it on a worker thread (thread_pool_submit_co) so that a slow or silent
 * server never stalls the main loop. SO_RCVTIMEO/SO_SNDTIMEO bound every
 * socket operation (connect included), so a server that accepts and
 * never speaks fails the attempt with ETIMEDOUT instead of hanging it.
 * Nothing here touches the node or shared state: results go to the
 * caller's NBDExportInfo, errors to its Error.
 */
#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/qdict.h"
#include "nbd/nbd-internal.h"
#include "block/nbd-client.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#define NBD_DEFAULT_PORT     "10809"

/* One handshake in progress: the socket, names for messages, results. */
typedef struct NBDHandshake {
    int fd;
    const char *desc;
    const char *export;
    NBDExportInfo *info;
} NBDHandshake;

/* A timed-out blocking socket call reports EAGAIN/EINPROGRESS. */
static int nbd_sock_errno(void)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS) {
        return -ETIMEDOUT;
    }
    return -errno;
}

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
            return nbd_sock_errno();
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
            return nbd_sock_errno();
        }
        if (r == 0) {
            return -ECONNRESET;
        }
        p += r;
        len -= r;
    }
    return 0;
}

/* Bound every blocking operation on fd to timeout_s seconds. */
static void nbd_set_timeouts(int fd, int timeout_s)
{
    struct timeval tv = { .tv_sec = timeout_s };

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Connect to a unix socket path; fd or -errno. */
static int nbd_connect_unix(const char *path, int timeout_s)
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
    nbd_set_timeouts(fd, timeout_s);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int err = nbd_sock_errno();
        close(fd);
        return err;
    }
    return fd;
}

/* Connect to host:port over TCP, trying each address; fd or -errno. */
static int nbd_connect_inet(const char *host, const char *port,
                            int timeout_s, Error **errp)
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
        nbd_set_timeouts(fd, timeout_s);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            ret = fd;
            break;
        }
        ret = nbd_sock_errno();
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

/* Send option opt; on failure set errp naming the server. */
static int nbd_send_option_err(NBDHandshake *h, uint32_t opt,
                               const void *data, uint32_t len, Error **errp)
{
    int ret = nbd_send_option(h->fd, opt, data, len);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to send option to '%s'",
                         h->desc);
    }
    return ret;
}

/*
 * Receive one option reply for opt: *type and a g_malloc'ed *data of
 * *len bytes (NUL-terminated for convenience). 0 or -errno, errp set.
 */
static int nbd_recv_option_reply(NBDHandshake *h, uint32_t opt,
                                 uint32_t *type, uint8_t **data,
                                 uint32_t *len, Error **errp)
{
    uint8_t hdr[20];
    int ret = nbd_read_all(h->fd, hdr, sizeof(hdr));

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read option reply from '%s'",
                         h->desc);
        return ret;
    }
    *type = ldbe32_p(hdr + 12);
    *len = ldbe32_p(hdr + 16);
    if (ldbe64_p(hdr) != NBD_REP_MAGIC || ldbe32_p(hdr + 8) != opt ||
        *len > NBD_MAX_OPTION_LEN) {
        error_setg(errp, "Invalid option reply from '%s'", h->desc);
        return -EPROTO;
    }
    *data = g_malloc0(*len + 1);
    ret = nbd_read_all(h->fd, *data, *len);
    if (ret < 0) {
        g_free(*data);
        *data = NULL;
        error_setg_errno(errp, -ret, "Failed to read option reply from '%s'",
                         h->desc);
    }
    return ret;
}

/* Ask for structured replies; info->structured tells if the server agreed. */
static int nbd_negotiate_structured(NBDHandshake *h, Error **errp)
{
    uint32_t type, len;
    g_autofree uint8_t *data = NULL;
    int ret = nbd_send_option_err(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0, errp);

    if (ret < 0) {
        return ret;
    }
    ret = nbd_recv_option_reply(h, NBD_OPT_STRUCTURED_REPLY, &type, &data,
                                &len, errp);
    if (ret < 0) {
        return ret;
    }
    h->info->structured = (type == NBD_REP_ACK);
    return 0;
}

/* Select base:allocation for the export; sets has_meta/meta_id if offered. */
static int nbd_negotiate_meta(NBDHandshake *h, Error **errp)
{
    static const char query[] = "base:allocation";
    size_t nlen = strlen(h->export), qlen = strlen(query);
    g_autofree uint8_t *buf = g_malloc(4 + nlen + 4 + 4 + qlen);
    int ret;

    stbe32_p(buf, nlen);
    memcpy(buf + 4, h->export, nlen);
    stbe32_p(buf + 4 + nlen, 1);
    stbe32_p(buf + 8 + nlen, qlen);
    memcpy(buf + 12 + nlen, query, qlen);
    ret = nbd_send_option_err(h, NBD_OPT_SET_META_CONTEXT, buf,
                              12 + nlen + qlen, errp);
    if (ret < 0) {
        return ret;
    }
    for (;;) {
        uint32_t type, len;
        g_autofree uint8_t *data = NULL;

        ret = nbd_recv_option_reply(h, NBD_OPT_SET_META_CONTEXT, &type, &data,
                                    &len, errp);
        if (ret < 0) {
            return ret;
        }
        if (type == NBD_REP_META_CONTEXT && len > 4 &&
            !strcmp((char *)data + 4, query)) {
            h->info->has_meta = true;
            h->info->meta_id = ldbe32_p(data);
        } else if (type != NBD_REP_META_CONTEXT) {
            return 0;           /* ACK or an error: done either way */
        }
    }
}

/* Parse one NBD_REP_INFO payload into the export info. */
static void nbd_parse_info(NBDExportInfo *info, const uint8_t *data,
                           uint32_t len)
{
    uint16_t type = len >= 2 ? ldbe16_p(data) : 0xffff;

    if (type == NBD_INFO_EXPORT && len >= 12) {
        info->size = ldbe64_p(data + 2);
        info->eflags = ldbe16_p(data + 10);
    } else if (type == NBD_INFO_BLOCK_SIZE && len >= 14) {
        info->min_block = ldbe32_p(data + 2);
        info->max_block = ldbe32_p(data + 10);
    }
}

/* Turn an error reply to NBD_OPT_GO into a message; returns -errno. */
static int nbd_go_error(NBDHandshake *h, uint32_t type, const char *data,
                        uint32_t len, Error **errp)
{
    if (type == NBD_REP_ERR_UNKNOWN) {
        error_setg(errp, "Requested export not available: '%s' on "
                   "'%s'%s%s", h->export, h->desc, len ? ": " : "", data);
        return -ENOENT;
    }
    if (type == NBD_REP_ERR_UNSUP) {
        error_setg(errp, "Server '%s' does not support NBD_OPT_GO "
                   "(not supported)", h->desc);
        return -ENOTSUP;
    }
    error_setg(errp, "Server '%s' refused export '%s' (error 0x%x)%s%s",
               h->desc, h->export, type, len ? ": " : "", data);
    return -EINVAL;
}

/* NBD_OPT_GO: select the export and learn its size and flags. */
static int nbd_negotiate_go(NBDHandshake *h, Error **errp)
{
    size_t nlen = strlen(h->export);
    g_autofree uint8_t *buf = g_malloc(4 + nlen + 4);
    int ret;

    stbe32_p(buf, nlen);
    memcpy(buf + 4, h->export, nlen);
    stbe16_p(buf + 4 + nlen, 1);
    stbe16_p(buf + 6 + nlen, NBD_INFO_BLOCK_SIZE);
    ret = nbd_send_option_err(h, NBD_OPT_GO, buf, 8 + nlen, errp);
    if (ret < 0) {
        return ret;
    }
    for (;;) {
        uint32_t type, len;
        g_autofree uint8_t *data = NULL;

        ret = nbd_recv_option_reply(h, NBD_OPT_GO, &type, &data, &len, errp);
        if (ret < 0) {
            return ret;
        }
        if (type == NBD_REP_INFO) {
            nbd_parse_info(h->info, data, len);
        } else if (type == NBD_REP_ACK) {
            return 0;
        } else if (type & (1U << 31)) {
            return nbd_go_error(h, type, (char *)data, len, errp);
        }
    }
}

/* The whole handshake on the connected h->fd. */
static int nbd_handshake(NBDHandshake *h, Error **errp)
{
    uint8_t hello[18], cflags[4];
    uint16_t hflags;
    int ret = nbd_read_all(h->fd, hello, sizeof(hello));

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read handshake from '%s'",
                         h->desc);
        return ret;
    }
    if (ldbe64_p(hello) != NBD_INIT_MAGIC ||
        ldbe64_p(hello + 8) != NBD_OPTS_MAGIC) {
        error_setg(errp, "'%s' is not a newstyle NBD server (not supported)",
                   h->desc);
        return -EPROTO;
    }
    hflags = ldbe16_p(hello + 16);
    if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE)) {
        error_setg(errp, "'%s' does not support fixed newstyle NBD "
                   "(not supported)", h->desc);
        return -EPROTO;
    }
    stbe32_p(cflags, NBD_FLAG_C_FIXED_NEWSTYLE |
              (hflags & NBD_FLAG_NO_ZEROES ? NBD_FLAG_C_NO_ZEROES : 0));
    ret = nbd_write_all(h->fd, cflags, sizeof(cflags));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write to '%s'", h->desc);
        return ret;
    }
    ret = nbd_negotiate_structured(h, errp);
    if (ret == 0 && h->info->structured) {
        ret = nbd_negotiate_meta(h, errp);
    }
    if (ret == 0) {
        ret = nbd_negotiate_go(h, errp);
    }
    return ret;
}

int nbd_connect_export(const NBDServerAddr *addr, const char *export,
                       const char *desc, int timeout_s, NBDExportInfo *info,
                       Error **errp)
{
    NBDHandshake h = { .fd = -1, .desc = desc, .export = export,
                       .info = info };
    Error *local_err = NULL;
    int ret;

    *info = (NBDExportInfo) { 0 };
    if (addr->is_unix) {
        h.fd = nbd_connect_unix(addr->path, timeout_s);
    } else {
        h.fd = nbd_connect_inet(addr->host, addr->port, timeout_s,
                                &local_err);
    }
    if (h.fd < 0) {
        if (local_err) {
            error_propagate_prepend(errp, local_err, "Could not connect to "
                                    "'%s': ", desc);
        } else {
            error_setg_errno(errp, -h.fd, "Could not connect to '%s'", desc);
        }
        return h.fd;
    }
    ret = nbd_handshake(&h, errp);
    if (ret < 0) {
        close(h.fd);
        return ret;
    }
    return h.fd;
}

/* ---- Addresses and filenames */

void nbd_parse_filename(const char *filename, QDict *options, Error **errp)
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

bool nbd_server_addr_take(QDict *options, const char *export,
                          NBDServerAddr *addr, char **desc, Error **errp)
{
    g_autofree char *type = nbd_take_str(options, "server.type");

    *addr = (NBDServerAddr) {
        .path = nbd_take_str(options, "server.path"),
        .host = nbd_take_str(options, "server.host"),
        .port = nbd_take_str(options, "server.port"),
    };
    if (type && !strcmp(type, "unix") && addr->path) {
        addr->is_unix = true;
        *desc = g_strdup_printf("nbd+unix:///%s?socket=%s", export,
                                addr->path);
        return true;
    }
    if (type && !strcmp(type, "inet") && addr->host) {
        if (!addr->port) {
            addr->port = g_strdup(NBD_DEFAULT_PORT);
        }
        *desc = g_strdup_printf(strchr(addr->host, ':') ? "nbd://[%s]:%s/%s" :
                                "nbd://%s:%s/%s", addr->host, addr->port,
                                export);
        return true;
    }
    nbd_server_addr_clear(addr);
    error_setg(errp, "NBD server address needs server.type=unix with "
               "server.path, or server.type=inet with server.host");
    return false;
}

void nbd_server_addr_clear(NBDServerAddr *addr)
{
    g_free(addr->path);
    g_free(addr->host);
    g_free(addr->port);
    *addr = (NBDServerAddr) { 0 };
}

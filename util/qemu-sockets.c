/*
 * Listening sockets for the NBD server and the chardevs.
 *
 * Addresses are flat QDicts ("type"=unix + "path", or "type"=inet +
 * "host" + "port"). No state is kept here: every descriptor returned is
 * owned by the caller. All descriptors are non-blocking and
 * close-on-exec so that a listening loop never blocks and a child
 * process (e.g. --daemonize helpers) never inherits them.
 *
 * Permissions: a unix socket file is a monitor's or NBD server's front
 * door, so it is owner-only (0600) whatever the umask, unless the
 * address carries "x-mode" (octal, e.g. "0660"; the chardev option of
 * the same name). The mode is set between bind() and listen(): until
 * listen() the kernel refuses every connect(), so no other user can get
 * in through the brief window where the file has the umask's mode.
 */
#include "qemu/osdep.h"
#include "qemu/sockets.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

/*
 * Callers normally get non-blocking descriptors already; this is for fds
 * handed over from elsewhere (e.g. a socket inherited from a parent).
 */
void qemu_socket_set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags >= 0 && !(flags & O_NONBLOCK)) {
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    }
}

/*
 * A short human-readable form for messages and traces. Never fails: a
 * malformed dict still yields something printable.
 */
char *socket_address_to_string(QDict *addr)
{
    const char *type = qdict_get_try_str(addr, "type");

    if (type && strcmp(type, "unix") == 0) {
        const char *path = qdict_get_try_str(addr, "path");
        return g_strdup_printf("unix:%s", path ? path : "");
    }
    if (type && strcmp(type, "inet") == 0) {
        const char *host = qdict_get_try_str(addr, "host");
        const char *port = qdict_get_try_str(addr, "port");
        return g_strdup_printf("inet:%s:%s", host ? host : "",
                               port ? port : "");
    }
    return g_strdup_printf("%s:?", type ? type : "unknown");
}

/*
 * Fill a sockaddr_un for path (abstract: leading NUL); false if too long.
 * The returned length covers exactly the name: for abstract sockets the
 * kernel compares all of it, so no trailing NUL may be counted.
 */
static bool unix_fill_addr(struct sockaddr_un *un, socklen_t *len,
                           const char *path, bool abstract)
{
    size_t plen = strlen(path);
    size_t off = abstract ? 1 : 0;

    if (plen + off >= sizeof(un->sun_path)) {
        return false;
    }
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path + off, path, plen);
    *len = offsetof(struct sockaddr_un, sun_path) + off + plen +
           (abstract ? 0 : 1);
    return true;
}

/* Default mode of a unix socket file: owner read/write only. */
#define UNIX_SOCKET_DEFAULT_MODE 0600

/*
 * The "x-mode" of addr (octal string, or a number) into *mode; the
 * default when absent. False with errp set when it is not a mode.
 */
static bool unix_socket_mode(QDict *addr, mode_t *mode, Error **errp)
{
    const char *s = qdict_get_try_str(addr, "x-mode");
    unsigned long v;
    char *end;

    *mode = UNIX_SOCKET_DEFAULT_MODE;
    if (!s) {
        return true;
    }
    errno = 0;
    v = strtoul(s, &end, 8);
    if (!*s || *end || errno || v > 0777) {
        error_setg(errp, "Parameter 'x-mode' expects an octal file mode "
                   "(0000 to 0777), not '%s'", s);
        return false;
    }
    *mode = (mode_t)v;
    return true;
}

/* Listen on a unix socket path, replacing a stale socket file. */
static int unix_listen(QDict *addr, int backlog, Error **errp)
{
    const char *path = qdict_get_try_str(addr, "path");
    struct sockaddr_un un;
    socklen_t len;
    bool abstract = false;
    struct stat st;
    mode_t mode;
    int fd;

    if (!path || !*path) {
        error_setg(errp, "Parameter 'path' is missing");
        return -1;
    }
    if (!qdict_get_bool(addr, "abstract", false, &abstract, errp)) {
        return -1;
    }
    if (!unix_socket_mode(addr, &mode, errp)) {
        return -1;
    }
    if (!unix_fill_addr(&un, &len, path, abstract)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create Unix socket");
        return -1;
    }
    /*
     * A socket file left by a previous run would make bind() fail with
     * EADDRINUSE. Only sockets are removed: a regular file of that name
     * is the user's mistake and must not be deleted.
     */
    if (!abstract && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&un, len) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
        close(fd);
        return -1;
    }
    if (!abstract && chmod(path, mode) < 0) {
        error_setg_errno(errp, errno, "Failed to set the mode of socket %s",
                         path);
        unlink(path);
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) < 0) {
        error_setg_errno(errp, errno, "Failed to listen on socket");
        if (!abstract) {
            unlink(path);
        }
        close(fd);
        return -1;
    }
    return fd;
}

/* Create, bind and listen one socket for an addrinfo entry; -errno. */
static int inet_listen_one(struct addrinfo *ai, int backlog)
{
    int on = 1;
    int fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    int err;

    if (fd < 0) {
        return -errno;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6) {
        /* One socket per family: keep v6 sockets v6 only. */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, backlog) < 0) {
        err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Listen on the first usable address that host:port resolves to. */
static int inet_listen(QDict *addr, int backlog, Error **errp)
{
    const char *host = qdict_get_try_str(addr, "host");
    const char *port = qdict_get_try_str(addr, "port");
    struct addrinfo hints = { 0 }, *res = NULL, *ai;
    bool v4 = false, v6 = false;
    int rc, fd = -1, err = -EINVAL;

    if (!port || !*port) {
        error_setg(errp, "Parameter 'port' is missing");
        return -1;
    }
    if (!qdict_get_bool(addr, "ipv4", false, &v4, errp) ||
        !qdict_get_bool(addr, "ipv6", false, &v6, errp)) {
        return -1;
    }
    /*
     * ipv4=on/ipv6=on restrict the family as in QEMU; no host means the
     * wildcard address (AI_PASSIVE).
     */
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    hints.ai_family = v4 && !v6 ? AF_INET : (v6 && !v4 ? AF_INET6 : AF_UNSPEC);
    hints.ai_socktype = SOCK_STREAM;
    if (host && !*host) {
        host = NULL;
    }
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        error_setg(errp, "address resolution failed for %s:%s: %s",
                   host ? host : "", port, gai_strerror(rc));
        return -1;
    }
    /* First address that binds wins; remember the last error otherwise. */
    for (ai = res; ai; ai = ai->ai_next) {
        fd = inet_listen_one(ai, backlog);
        if (fd >= 0) {
            break;
        }
        err = fd;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, -err, "Failed to bind socket to %s:%s",
                         host ? host : "", port);
        return -1;
    }
    return fd;
}

/* Dispatch on "type"; a backlog <= 0 picks a small default. */
int socket_listen(QDict *addr, int backlog, Error **errp)
{
    const char *type = qdict_get_try_str(addr, "type");

    if (backlog <= 0) {
        backlog = 16;
    }
    if (!type) {
        error_setg(errp, "Parameter 'type' is missing");
        return -1;
    }
    if (strcmp(type, "unix") == 0) {
        return unix_listen(addr, backlog, errp);
    }
    if (strcmp(type, "inet") == 0) {
        return inet_listen(addr, backlog, errp);
    }
    error_setg(errp, "Parameter 'type' does not accept value '%s'", type);
    return -1;
}

/*
 * Only unix paths leave something behind. fd is accepted for symmetry
 * with socket_listen() (the caller still closes it).
 */
void socket_listen_cleanup(int fd, QDict *addr)
{
    const char *type = qdict_get_try_str(addr, "type");
    const char *path = qdict_get_try_str(addr, "path");
    bool abstract = false;

    (void)fd;
    if (!type || strcmp(type, "unix") != 0 || !path) {
        return;
    }
    if (!qdict_get_bool(addr, "abstract", false, &abstract, NULL) ||
        abstract) {
        return;
    }
    unlink(path);
}

/*
 * The accepted fd is non-blocking and close-on-exec from the start
 * (accept4), so there is no window where a fork could inherit it.
 */
int socket_accept_nonblock(int listen_fd)
{
    int fd;
    int on = 1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    do {
        fd = accept4(listen_fd, (struct sockaddr *)&ss, &len,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
        /* Replies are sent whole; do not let Nagle hold them back. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }
    return fd;
}

/*
 * Listening and connecting sockets for servers (NBD, chardevs) and tests.
 *
 * Addresses are flat dicts as in QEMU's SocketAddress: "type"=unix with
 * "path" (optionally "abstract"=on), or "type"=inet with "host" and
 * "port" (and optionally "ipv4"/"ipv6"). All returned descriptors are
 * non-blocking and close-on-exec.
 */
#ifndef QEMU_SOCKETS_H
#define QEMU_SOCKETS_H

#include "qemu/osdep.h"
#include "qemu/qdict.h"
#include "qapi/error.h"

/*
 * Create a listening socket. A unix path that exists as a stale socket
 * is replaced (unlinked first); the path is unlinked again by
 * socket_listen_cleanup(). Returns the fd or -1 with errp set, e.g.
 * "Failed to bind socket to /x/y: Permission denied".
 */
int socket_listen(QDict *addr, int backlog, Error **errp);
/* Remove what socket_listen created on the file system (unix path). */
void socket_listen_cleanup(int fd, QDict *addr);
/* Accept one connection (non-blocking); -1 with errno when none. */
int socket_accept_nonblock(int listen_fd);
/* Describe addr for messages: "unix:/path" or "inet:host:port". */
char *socket_address_to_string(QDict *addr);
/* Put fd in non-blocking mode. */
void qemu_socket_set_nonblock(int fd);

#endif /* QEMU_SOCKETS_H */

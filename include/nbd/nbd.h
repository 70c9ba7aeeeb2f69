/*
 * The NBD server: exports block nodes to NBD clients (guests, qemu-io,
 * nbdcopy, fio) over unix or TCP sockets.
 *
 * One server per process, listening on one address (QEMU's --nbd-server);
 * any number of named exports (--export type=nbd); any number of clients,
 * each with many requests in flight, every request a coroutine on the
 * block layer's request path. Protocol: fixed newstyle handshake,
 * structured replies, base:allocation block status (see nbd/server.c).
 */
#ifndef NBD_NBD_H
#define NBD_NBD_H

#include "qemu/osdep.h"
#include "qemu/qdict.h"
#include "qapi/error.h"
#include "block/block.h"

/*
 * Start listening. addr is a flat dict as in QEMU's SocketAddress:
 * "type"=unix with "path", or "type"=inet with "host" and "port".
 * max_connections: 0 = unlimited. Fails if a server already runs.
 */
bool nbd_server_start(QDict *addr, int max_connections, Error **errp);
bool nbd_server_is_running(void);
/* Disconnect every client, remove every export, stop listening. */
void nbd_server_stop(void);

/*
 * Export the node behind root (a root child held by the caller, through
 * which all export I/O goes) under name ("" allowed). id names the export
 * for removal; writable=false refuses writes with EPERM.
 */
bool nbd_export_add(const char *id, BdrvChild *root, const char *name,
                    const char *description, bool writable, Error **errp);
/* Remove an export: its clients are disconnected. */
bool nbd_export_remove(const char *id, Error **errp);

#endif /* NBD_NBD_H */

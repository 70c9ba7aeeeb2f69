/*
 * The NBD server: exports block nodes to NBD clients (guests, qemu-io,
 * nbdcopy, fio) over unix or TCP sockets.
 *
 * One server per process, listening on one address (QEMU's --nbd-server,
 * nbd-server-start); any number of named exports, each a BlockExport of
 * type nbd (include/block/export.h: block-export-add, nbd-server-add,
 * --export); any number of clients, each with many requests in flight,
 * every request a coroutine on the block layer's request path. A client
 * in transmission holds a reference on its export, so an export removed
 * in "safe" mode is refused while clients use it and one removed in
 * "hard" mode lives until its last client has gone. Protocol: fixed
 * newstyle handshake, structured replies, base:allocation block status
 * (see nbd/server.c).
 */
#ifndef NBD_NBD_H
#define NBD_NBD_H

#include "qemu/osdep.h"
#include "qemu/qdict.h"
#include "qapi/error.h"
#include "block/block.h"
#include "block/export.h"

/*
 * Start listening. addr is a flat dict as in QEMU's SocketAddress:
 * "type"=unix with "path", or "type"=inet with "host" and "port".
 * max_connections: 0 = unlimited. Fails if a server already runs.
 */
bool nbd_server_start(QDict *addr, int max_connections, Error **errp);
/* True from a successful start until nbd_server_stop() begins. */
bool nbd_server_is_running(void);
/*
 * Remove every NBD export (their clients are disconnected, each emits
 * BLOCK_EXPORT_DELETED), then stop listening. Returns once all are gone.
 * No-op when no server runs. In or out of coroutine context.
 */
void nbd_server_stop(void);

/* The export type "nbd" (for the export registry, block/export.c). */
extern const BlockExportDriver blk_exp_nbd;

#endif /* NBD_NBD_H */

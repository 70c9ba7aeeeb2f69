/*
 * NBD client internals shared by block/nbd.c (transmission, reconnect)
 * and block/nbd-connect.c (addresses, connecting, the handshake).
 *
 * Connecting is blocking code meant for a worker thread
 * (thread_pool_submit_co): it touches only its own socket and the
 * NBDExportInfo it fills, never the node, so no locking is needed.
 */
#ifndef BLOCK_NBD_CLIENT_H
#define BLOCK_NBD_CLIENT_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/qdict.h"

/* Where the server listens: a unix socket path or TCP host:port. */
typedef struct NBDServerAddr {
    bool is_unix;
    char *path;
    char *host;
    char *port;
} NBDServerAddr;

/* What the handshake learnt about the export. */
typedef struct NBDExportInfo {
    uint64_t size;
    uint16_t eflags;
    bool structured;            /* structured replies agreed */
    bool has_meta;              /* base:allocation selected */
    uint32_t meta_id;
    uint32_t min_block;
    uint32_t max_block;
} NBDExportInfo;

/*
 * "nbd+unix:///NAME?socket=P", "nbd://H[:N]/NAME", "nbd+tcp://..." into
 * server.* and export options.
 */
void nbd_parse_filename(const char *filename, QDict *options, Error **errp);

/*
 * Take the server.* options out of options into addr and build *desc, a
 * URI naming server and export for messages. false with errp set.
 */
bool nbd_server_addr_take(QDict *options, const char *export,
                          NBDServerAddr *addr, char **desc, Error **errp);
void nbd_server_addr_clear(NBDServerAddr *addr);

/*
 * Blocking: connect to addr and negotiate export (fixed newstyle,
 * structured replies, base:allocation, NBD_OPT_GO). Every socket
 * operation gives up after timeout_s seconds. Returns a connected,
 * still blocking fd with *info filled, or -errno with errp naming desc.
 * Safe on a worker thread.
 */
int nbd_connect_export(const NBDServerAddr *addr, const char *export,
                       const char *desc, int timeout_s, NBDExportInfo *info,
                       Error **errp);

#endif /* BLOCK_NBD_CLIENT_H */

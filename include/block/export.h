/*
 * Block exports: block nodes served to clients outside the process
 * (today only NBD), created by block-export-add / nbd-server-add / the
 * --export option and listed by query-block-exports.
 *
 * An export holds its own root child on the exported node (so the node
 * shows a parent and graph changes such as bdrv_append carry the export
 * along) and a reference count: one reference for its user (the QMP
 * client or command line that created it, dropped when removal is
 * requested) plus one per connected client. Removal first asks the
 * export type to disconnect its clients ("hard") or refuses while any
 * is connected ("safe"); the export is really gone, and
 * BLOCK_EXPORT_DELETED emitted, when the count reaches zero.
 *
 * Main loop thread only.
 */
#ifndef BLOCK_EXPORT_H
#define BLOCK_EXPORT_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-types.h"
#include "block/block.h"

typedef struct BlockExport BlockExport;

/* What an export type implements; one const instance per type. */
typedef struct BlockExportDriver {
    BlockExportType type;
    /*
     * Set up the type's state for exp (exp->root, id, writable are set;
     * store the state in exp->opaque). Check everything first: on
     * failure nothing may remain. Returns false with errp set.
     */
    bool (*create)(BlockExport *exp, BlockExportOptions *opts,
                   Error **errp);
    /* Refuse new clients and disconnect the connected ones. */
    void (*request_shutdown)(BlockExport *exp);
    /* The count reached zero: free the type's state (no client left). */
    void (*delete)(BlockExport *exp);
} BlockExportDriver;

struct BlockExport {
    const BlockExportDriver *drv;
    char *id;
    BdrvChild *root;            /* our own root on the exported node */
    bool writable;
    bool writethrough;          /* flush after every write */
    int refcount;               /* user + one per client */
    bool user_owned;            /* false once removal was requested */
    void *opaque;               /* the export type's state */
};

/*
 * Create an export from opts (node looked up by node name only). The
 * caller keeps ownership of opts. Returns the export or NULL.
 */
BlockExport *blk_exp_add(BlockExportOptions *opts, Error **errp);
/* The export with that id (shutting down or not), or NULL. */
BlockExport *blk_exp_find(const char *id);
/* Clients take a reference while connected. */
void blk_exp_ref(BlockExport *exp);
void blk_exp_unref(BlockExport *exp);
/*
 * Remove export id as block-export-del does: safe mode refuses while
 * clients are connected, hard mode disconnects them. Returns false with
 * errp set (unknown id, already shutting down, still in use).
 */
bool blk_exp_del(const char *id, BlockExportRemoveMode mode, Error **errp);
/*
 * Request shutdown of every export of that type and wait until all are
 * gone (their clients disconnected, their events emitted). May be
 * called in or out of coroutine context.
 */
void blk_exp_close_all_type(BlockExportType type);
/* Every export of every type (daemon shutdown). */
void block_export_del_all(void);

/* ---- Command-line options (qemu-storage-daemon's words) */

/*
 * --nbd-server addr.type=unix,addr.path=P[,max-connections=N] (the addr
 * is the flat SocketAddress). Same checks and texts as nbd-server-start.
 */
bool nbd_server_start_from_keyval(const char *optstr, Error **errp);
/* --export [type=]nbd,id=ID,node-name=N[,name=][,writable=]... */
bool block_export_add_from_keyval(const char *optstr, Error **errp);

#endif /* BLOCK_EXPORT_H */

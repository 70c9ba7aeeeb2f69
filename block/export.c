/*
 * The block export registry: block-export-add/-del, query-block-exports
 * and the life cycle every export type shares (include/block/export.h).
 *
 * State: the list of exports. Each export holds its own root child on
 * the exported node and a reference count (user + connected clients).
 * Removal is two-step: blk_exp_del() drops the user's reference after
 * asking the export type to disconnect its clients; when the count
 * reaches zero, a bottom half deletes the export, releases the root and
 * emits BLOCK_EXPORT_DELETED. The bottom half exists because the last
 * reference is usually dropped by a client's coroutine as it exits:
 * the export must not vanish under that coroutine's feet.
 *
 * Why it is safe: main loop thread only. A shutting-down export stays
 * in the list (query-block-exports shows it, its id stays taken) until
 * the bottom half runs, so every lookup sees either a live export or
 * one with user_owned == false.
 */
#include "qemu/osdep.h"
#include "qemu/id.h"
#include "qemu/aio.h"
#include "qemu/coroutine.h"
#include "qemu/keyval.h"
#include "block/export.h"
#include "nbd/nbd.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "qapi/qapi-visit.h"
#include "trace.h"

static GList *blk_exports;      /* BlockExport *, in creation order */

/* The driver of each export type, indexed by BlockExportType. */
static const BlockExportDriver *const blk_exp_drivers[] = {
    [BLOCK_EXPORT_TYPE_NBD] = &blk_exp_nbd,
};

/* Linear: exports are few, and lookups happen only on QMP commands. */
BlockExport *blk_exp_find(const char *id)
{
    for (GList *l = blk_exports; l; l = l->next) {
        BlockExport *exp = l->data;
        if (strcmp(exp->id, id) == 0) {
            return exp;
        }
    }
    return NULL;
}

/* Checks that need no node: id syntax, id in use, a known type. */
static bool blk_exp_check_id(BlockExportOptions *opts, Error **errp)
{
    if (!id_wellformed(opts->id)) {
        error_setg(errp, "Invalid block export id");
        return false;
    }
    if (blk_exp_find(opts->id)) {
        error_setg(errp, "Block export id '%s' is already in use", opts->id);
        return false;
    }
    if (opts->type >= G_N_ELEMENTS(blk_exp_drivers) ||
        !blk_exp_drivers[opts->type]) {
        error_setg(errp, "No driver found for the requested export type");
        return false;
    }
    return true;
}

/*
 * QEMU 7.2's order of checks (and so of errors): id, node, read-only
 * vs writable, then the type's own checks (server running, name). The
 * root is attached before the type runs so that it can use it; a type
 * failure detaches it again, leaving nothing behind.
 */
BlockExport *blk_exp_add(BlockExportOptions *opts, Error **errp)
{
    BlockDriverState *bs;
    BlockExport *exp;
    BdrvChild *root;

    if (!blk_exp_check_id(opts, errp)) {
        return NULL;
    }
    bs = bdrv_find_node(opts->node_name);
    if (!bs) {
        error_setg(errp, "Cannot find device='' nor node-name='%s'",
                   opts->node_name);
        return NULL;
    }
    if (opts->has_writable && opts->writable && bdrv_is_read_only(bs)) {
        error_setg(errp, "Cannot export read-only node as writable");
        return NULL;
    }
    root = bdrv_root_attach(bs, opts->id, errp);
    if (!root) {
        return NULL;
    }
    exp = g_new0(BlockExport, 1);
    exp->drv = blk_exp_drivers[opts->type];
    exp->id = g_strdup(opts->id);
    exp->root = root;
    exp->writable = opts->has_writable && opts->writable;
    exp->writethrough = opts->has_writethrough && opts->writethrough;
    if (!exp->drv->create(exp, opts, errp)) {
        bdrv_root_unref_child(root);
        g_free(exp->id);
        g_free(exp);
        return NULL;
    }
    exp->refcount = 1;
    exp->user_owned = true;
    blk_exports = g_list_append(blk_exports, exp);
    trace_blk_exp_add(exp, exp->id, opts->node_name, exp->writable);
    return exp;
}

/* Only a live or shutting-down export (count > 0) may gain a client. */
void blk_exp_ref(BlockExport *exp)
{
    g_assert(exp->refcount > 0);
    exp->refcount++;
}

/* Bottom half: the last reference is gone; free everything. */
static void blk_exp_delete_bh(void *opaque)
{
    BlockExport *exp = opaque;

    g_assert(exp->refcount == 0);
    trace_blk_exp_delete(exp, exp->id);
    blk_exports = g_list_remove(blk_exports, exp);
    exp->drv->delete(exp);
    /* Release the node before telling: the client may delete it next. */
    bdrv_root_unref_child(exp->root);
    qapi_event_send_block_export_deleted(exp->id);
    g_free(exp->id);
    g_free(exp);
}

/* The last reference schedules deletion; see the file comment. */
void blk_exp_unref(BlockExport *exp)
{
    g_assert(exp->refcount > 0);
    if (--exp->refcount == 0) {
        aio_bh_schedule_oneshot(blk_exp_delete_bh, exp);
    }
}

/* Ask the type to drop its clients and give up the user's reference. */
static void blk_exp_request_shutdown(BlockExport *exp)
{
    if (!exp->user_owned) {
        return;
    }
    trace_blk_exp_request_shutdown(exp, exp->id, exp->refcount);
    exp->user_owned = false;
    exp->drv->request_shutdown(exp);
    blk_exp_unref(exp);
}

/*
 * The user's reference counts as one: any count above it is a client
 * (or a client in the middle of choosing this export).
 */
bool blk_exp_del(const char *id, BlockExportRemoveMode mode, Error **errp)
{
    BlockExport *exp = blk_exp_find(id);

    if (!exp) {
        error_setg(errp, "Export '%s' is not found", id);
        return false;
    }
    if (!exp->user_owned) {
        error_setg(errp, "Export '%s' is already shutting down", id);
        return false;
    }
    if (mode == BLOCK_EXPORT_REMOVE_MODE_SAFE && exp->refcount > 1) {
        error_setg(errp, "export '%s' still in use", id);
        error_append_hint(errp, "Use mode='hard' to force client "
                          "disconnect\n");
        return false;
    }
    blk_exp_request_shutdown(exp);
    return true;
}

/* True while an export of type (any type if all) exists. */
static bool blk_exp_have_type(BlockExportType type, bool all)
{
    for (GList *l = blk_exports; l; l = l->next) {
        BlockExport *exp = l->data;
        if (all || exp->drv->type == type) {
            return true;
        }
    }
    return false;
}

/* Shut down the matching exports, then wait until they are deleted. */
static void blk_exp_close_matching(BlockExportType type, bool all)
{
    GList *l, *next;

    for (l = blk_exports; l; l = next) {
        BlockExport *exp = l->data;
        next = l->next;         /* deletion happens later, in a BH */
        if (all || exp->drv->type == type) {
            blk_exp_request_shutdown(exp);
        }
    }
    if (qemu_in_coroutine()) {
        /* A QMP handler: let the loop run the clients and the BHs. */
        while (blk_exp_have_type(type, all)) {
            qemu_co_sleep_ns(1000 * 1000);
        }
    } else {
        AIO_WAIT_WHILE(blk_exp_have_type(type, all));
    }
}

void blk_exp_close_all_type(BlockExportType type)
{
    blk_exp_close_matching(type, false);
}

/* "all": the type argument is then ignored. */
void block_export_del_all(void)
{
    blk_exp_close_matching(BLOCK_EXPORT_TYPE_NBD, true);
}

/* ---- QMP commands ---------------------------------------------------- */

/* block-export-add: the registry does it all (arg stays the caller's). */
void qmp_block_export_add(BlockExportOptions *arg, Error **errp)
{
    blk_exp_add(arg, errp);
}

/* block-export-del: mode defaults to safe, as in QEMU. */
void qmp_block_export_del(const char *id, bool has_mode,
                          BlockExportRemoveMode mode, Error **errp)
{
    blk_exp_del(id, has_mode ? mode : BLOCK_EXPORT_REMOVE_MODE_SAFE, errp);
}

/* query-block-exports: shutting-down ones included (not yet deleted). */
BlockExportInfoList *qmp_query_block_exports(Error **errp)
{
    BlockExportInfoList *head = NULL;

    /* Newest first, as QEMU lists them. */
    for (GList *l = blk_exports; l; l = l->next) {
        BlockExport *exp = l->data;
        BlockExportInfo *info = g_new0(BlockExportInfo, 1);
        BlockExportInfoList *entry;

        info->id = g_strdup(exp->id);
        info->type = exp->drv->type;
        info->node_name = g_strdup(bdrv_get_node_name(
                                       bdrv_child_bs(exp->root)));
        info->shutting_down = !exp->user_owned;
        entry = g_new0(BlockExportInfoList, 1);
        entry->value = info;
        entry->next = head;
        head = entry;
    }
    return head;
}

/* ---- --export ---------------------------------------------------------- */

/*
 * --export: keyval with "type" implied ("--export nbd,id=..."), checked
 * by the generated visitor, then the same path as block-export-add.
 */
bool block_export_add_from_keyval(const char *optstr, Error **errp)
{
    g_autoptr(QDict) dict = keyval_parse(optstr, "type", errp);
    g_autoptr(BlockExportOptions) opts = NULL;

    if (!dict) {
        return false;
    }
    opts = qapi_BlockExportOptions_from_keyval(dict, errp);
    return opts && blk_exp_add(opts, errp) != NULL;
}

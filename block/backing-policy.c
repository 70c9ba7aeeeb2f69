/*
 * Which backing names from image headers qblk follows.
 *
 * An image header is untrusted input: whoever made the image chose its
 * backing name, and following it blindly would let an image make qblk
 * read any host file, a block device, or a server on the network
 * (nbd://, http://) on behalf of the user who merely opened it. So a
 * backing name read from a header is followed only through the
 * protocols the user allowed (--backing-protocols; "file" by default).
 * A json:{...} name needs "json" and every protocol driver it names must
 * be allowed as well. Backing files the user gives in options (backing
 * references, backing.file.filename / backing.file.driver, qblk-img -b)
 * are the user's own choice and are not checked here; options that only
 * tune the protocol node (backing.file.locking) keep the header's name,
 * which is.
 *
 * State: one global list, set once at start-up from the command line;
 * main loop thread only.
 */
#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/keyval.h"
#include "qemu/qdict.h"
#include "block/block_int.h"
#include "trace.h"

/* Allowed names, NULL-terminated; NULL means the default ("file"). */
static char **backing_protocols;
static char *backing_protocols_str;

/* True for a name --backing-protocols may list. */
static bool backing_protocol_known(const char *name)
{
    const BlockDriver *drv;

    if (!strcmp(name, "json") || !strcmp(name, "all")) {
        return true;
    }
    drv = bdrv_find_format(name);
    return drv && drv->protocol;
}

bool bdrv_set_backing_protocols(const char *list, Error **errp)
{
    g_auto(GStrv) names = g_strsplit(list, ",", -1);

    for (char **n = names; *n; n++) {
        if (!**n || !backing_protocol_known(*n)) {
            error_setg(errp, "Unknown protocol '%s' in the list of backing "
                       "protocols '%s'", *n, list);
            return false;
        }
    }
    g_strfreev(backing_protocols);
    g_free(backing_protocols_str);
    backing_protocols = g_steal_pointer(&names);
    backing_protocols_str = g_strdup(list);
    return true;
}

const char *bdrv_get_backing_protocols(void)
{
    return backing_protocols_str ? backing_protocols_str : "file";
}

static bool backing_protocol_allowed(const char *name)
{
    if (!backing_protocols) {
        return !strcmp(name, "file");
    }
    return g_strv_contains((const char *const *)backing_protocols, "all") ||
           g_strv_contains((const char *const *)backing_protocols, name);
}

/* The refusal: the image, the backing string, what is missing. */
static void backing_refuse(const BlockDriverState *bs, const char *name,
                           const char *proto, Error **errp)
{
    error_setg(errp, "Image '%s' names the backing file '%s' through "
               "protocol '%s', which is not allowed for backing files named "
               "in image headers (allowed: %s; see --backing-protocols)",
               bs->filename, name, proto, bdrv_get_backing_protocols());
    trace_bdrv_backing_refused((void *)bs, name, proto);
}

/*
 * The protocol drivers a json:{...} name would open: every "driver" value
 * that is a protocol, and the protocol of every "filename". False with
 * *bad set to the first one not allowed.
 */
static bool backing_json_allowed(const char *json, const char **bad,
                                 char **bad_owned, Error **errp)
{
    g_autoptr(QDict) opts = qdict_from_json(json, errp);
    g_autofree const char **keys = NULL;

    if (!opts) {
        return false;
    }
    keys = qdict_keys(opts);
    for (const char **k = keys; *k; k++) {
        const char *v = qdict_get_try_str(opts, *k);
        const char *leaf = strrchr(*k, '.');
        const BlockDriver *drv = NULL;

        leaf = leaf ? leaf + 1 : *k;
        if (!v) {
            continue;
        }
        if (!strcmp(leaf, "driver")) {
            drv = bdrv_find_format(v);
        } else if (!strcmp(leaf, "filename")) {
            drv = bdrv_default_protocol(v, NULL);
            if (!drv) {
                *bad = "unknown";   /* as for a plain name, refuse now */
                return false;
            }
        }
        if (drv && drv->protocol && !backing_protocol_allowed(drv->format_name)) {
            *bad_owned = g_strdup(drv->format_name);
            *bad = *bad_owned;
            return false;
        }
    }
    return true;
}

bool bdrv_backing_name_allowed(const BlockDriverState *bs, const char *name,
                               Error **errp)
{
    const BlockDriver *drv;
    g_autofree char *owned = NULL;
    const char *bad = NULL;
    Error *local_err = NULL;

    if (g_str_has_prefix(name, "json:")) {
        if (!backing_protocol_allowed("json")) {
            backing_refuse(bs, name, "json", errp);
            return false;
        }
        if (!backing_json_allowed(name + 5, &bad, &owned, &local_err)) {
            if (local_err) {
                error_propagate(errp, local_err);
            } else {
                backing_refuse(bs, name, bad, errp);
            }
            return false;
        }
        return true;
    }
    drv = bdrv_default_protocol(name, &local_err);
    if (!drv) {
        /* An unknown protocol: refuse before anything tries to open it. */
        error_free(local_err);
        backing_refuse(bs, name, "unknown", errp);
        return false;
    }
    if (!backing_protocol_allowed(drv->format_name)) {
        backing_refuse(bs, name, drv->format_name, errp);
        return false;
    }
    return true;
}

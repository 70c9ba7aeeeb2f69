/*
 * QMP commands of the NBD server: nbd-server-start, nbd-server-add,
 * nbd-server-remove, nbd-server-stop (qapi/block-export.json), and the
 * --nbd-server command-line option, which takes the same path.
 *
 * State: none here. The server lives in nbd/server.c and the exports in
 * the export registry (block/export.c); nbd-server-add and -remove are
 * QEMU's older spellings of block-export-add/-del and only translate
 * their arguments. Main loop thread (QMP handlers run in the monitor's
 * coroutine; nbd-server-stop waits there for the exports to go).
 *
 * Socket addresses arrive as generated QAPI types and are handed to the
 * socket code as the flat dicts it takes (include/qemu/sockets.h).
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"
#include "block/export.h"
#include "nbd/nbd.h"
#include "sysemu/blockdev.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-visit.h"
#include "trace.h"

/* Add an optional boolean socket option the way keyval spells it. */
static void nbd_addr_put_bool(QDict *d, const char *key, bool has, bool v)
{
    if (has) {
        qdict_put_str(d, key, v ? "on" : "off");
    }
}

/* A TCP address as the flat dict socket_listen() takes (new ref). */
static QDict *nbd_inet_to_qdict(const InetSocketAddress *inet)
{
    QDict *d = qdict_new();

    qdict_put_str(d, "type", "inet");
    qdict_put_str(d, "host", inet->host);
    qdict_put_str(d, "port", inet->port);
    nbd_addr_put_bool(d, "ipv4", inet->has_ipv4, inet->ipv4);
    nbd_addr_put_bool(d, "ipv6", inet->has_ipv6, inet->ipv6);
    return d;
}

/* A unix socket address as the flat dict socket_listen() takes. */
static QDict *nbd_unix_to_qdict(const UnixSocketAddress *un)
{
    QDict *d = qdict_new();

    qdict_put_str(d, "type", "unix");
    qdict_put_str(d, "path", un->path);
    nbd_addr_put_bool(d, "abstract", un->has_abstract, un->abstract);
    return d;
}

/*
 * Start the server on addr (consumed). uint32 connection limits beyond
 * INT_MAX cannot be reached anyway: they mean "unlimited".
 */
static bool nbd_server_start_qdict(QDict *addr, bool has_max,
                                   uint32_t max_connections, Error **errp)
{
    int max = !has_max ? 0 :
              max_connections > INT_MAX ? 0 : (int)max_connections;
    bool ok;

    if (nbd_server_is_running()) {
        error_setg(errp, "NBD server already running");
        qdict_unref(addr);
        return false;
    }
    ok = nbd_server_start(addr, max, errp);
    qdict_unref(addr);
    return ok;
}

void qmp_nbd_server_start(SocketAddressLegacy *addr,
                          bool has_max_connections, uint32_t max_connections,
                          Error **errp)
{
    QDict *d;

    switch (addr->type) {
    case SOCKET_ADDRESS_TYPE_INET:
        d = nbd_inet_to_qdict(addr->u.inet.data);
        break;
    case SOCKET_ADDRESS_TYPE_UNIX:
        d = nbd_unix_to_qdict(addr->u.q_unix.data);
        break;
    default:
        g_assert_not_reached();
    }
    nbd_server_start_qdict(d, has_max_connections, max_connections, errp);
}

bool nbd_server_start_from_keyval(const char *optstr, Error **errp)
{
    g_autoptr(QDict) dict = keyval_parse(optstr, NULL, errp);
    g_autoptr(NbdServerOptions) opts = NULL;
    QDict *d;

    if (!dict) {
        return false;
    }
    opts = qapi_NbdServerOptions_from_keyval(dict, errp);
    if (!opts) {
        return false;
    }
    switch (opts->addr->type) {
    case SOCKET_ADDRESS_TYPE_INET:
        d = nbd_inet_to_qdict(&opts->addr->u.inet);
        break;
    case SOCKET_ADDRESS_TYPE_UNIX:
        d = nbd_unix_to_qdict(&opts->addr->u.q_unix);
        break;
    default:
        g_assert_not_reached();
    }
    return nbd_server_start_qdict(d, opts->has_max_connections,
                                  opts->max_connections, errp);
}

/*
 * nbd-server-add = block-export-add with the device (drive id or node
 * name) resolved to its node, id = name = device unless a name is
 * given. As in QEMU, a read-only node is silently exported read-only
 * even if writable was asked for.
 */
void qmp_nbd_server_add(NbdServerAddOptions *arg, Error **errp)
{
    BlockDriverState *bs = blockdev_find_bs(arg->device);
    const char *name = arg->name ? arg->name : arg->device;
    BlockExportOptions opts;

    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                   arg->device, arg->device);
        return;
    }
    opts = (BlockExportOptions) {
        .type = BLOCK_EXPORT_TYPE_NBD,
        .id = (char *)name,
        .node_name = (char *)bdrv_get_node_name(bs),
        .has_writable = true,
        .writable = arg->has_writable && arg->writable &&
                    !bdrv_is_read_only(bs),
        .u.nbd.name = (char *)name,
        .u.nbd.description = arg->description,
    };
    trace_qmp_nbd_server_add(arg->device, name, opts.writable);
    blk_exp_add(&opts, errp);
}

void qmp_nbd_server_remove(const char *name, bool has_mode,
                           BlockExportRemoveMode mode, Error **errp)
{
    BlockExport *exp = blk_exp_find(name);

    if (exp && exp->drv->type != BLOCK_EXPORT_TYPE_NBD) {
        error_setg(errp, "Block export '%s' is not an NBD export", name);
        return;
    }
    blk_exp_del(name, has_mode ? mode : BLOCK_EXPORT_REMOVE_MODE_SAFE, errp);
}

void qmp_nbd_server_stop(Error **errp)
{
    if (!nbd_server_is_running()) {
        error_setg(errp, "NBD server not running");
        return;
    }
    nbd_server_stop();
}

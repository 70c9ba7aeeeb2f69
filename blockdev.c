/*
 * blockdev: from user-facing image descriptions to open nodes.
 *
 * For the tools: opening one image from a command-line argument (plain
 * name, json: name or --image-opts string) and parsing cache modes; those
 * keep no state, every node they return is owned by the caller.
 *
 * For the daemon: -drive and --blockdev. Each drive or node the user
 * creates is recorded in blockdev_roots together with a root BdrvChild the
 * daemon holds on it; that root is the node's only owner reference (the
 * opener's reference is dropped once the root exists), and users of the
 * node (NBD exports) do their I/O through it. Roots are released in
 * reverse order of creation, so a node opened later and referring to an
 * earlier one (file=NODE) goes first. Main loop thread only.
 *
 * Two kinds of roots behave differently when the graph changes: a
 * drive's root follows the drive (a live snapshot moves it, with the
 * drive's copy-on-read, onto the new overlay), while the monitor's root
 * of a --blockdev / blockdev-add node is pinned to that node (it is how
 * the monitor owns the node, until blockdev-del).
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"
#include "block/block_int.h"
#include "sysemu/blockdev.h"
#include "trace.h"

BlockDriverState *blockdev_open_image(const char *filename, const char *fmt,
                                      bool image_opts, int flags,
                                      Error **errp)
{
    QDict *options;

    trace_blockdev_open_image(filename, fmt ? fmt : "", image_opts, flags);
    if (image_opts) {
        if (fmt) {
            error_setg(errp,
                       "--image-opts and --format are mutually exclusive");
            return NULL;
        }
        options = keyval_parse(filename, NULL, errp);
        if (!options) {
            return NULL;
        }
        /* bdrv_open() takes ownership of options, also on failure. */
        return bdrv_open(NULL, options, flags, errp);
    }

    options = qdict_new();
    if (fmt) {
        qdict_put_str(options, "driver", fmt);
    }
    return bdrv_open(filename, options, flags, errp);
}

/* One row of the cache mode table: which flags the mode sets. */
typedef struct CacheMode {
    const char *name;
    int flags;              /* subset of BDRV_O_NOCACHE | BDRV_O_NO_FLUSH */
    bool writethrough;
} CacheMode;

static const CacheMode cache_modes[] = {
    { "none",         BDRV_O_NOCACHE,  false },
    { "off",          BDRV_O_NOCACHE,  false },
    { "writeback",    0,               false },
    { "writethrough", 0,               true  },
    { "directsync",   BDRV_O_NOCACHE,  true  },
    { "unsafe",       BDRV_O_NO_FLUSH, false },
};

int blockdev_parse_cache_mode(const char *mode, int *flags,
                              bool *writethrough)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cache_modes); i++) {
        if (!strcmp(mode, cache_modes[i].name)) {
            *flags &= ~(BDRV_O_NOCACHE | BDRV_O_NO_FLUSH);
            *flags |= cache_modes[i].flags;
            *writethrough = cache_modes[i].writethrough;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- The daemon's drives and nodes */

/* One drive (-drive) or node (--blockdev) the daemon holds. */
typedef struct BlockdevRoot {
    char *name;         /* drive id, or node name for --blockdev */
    BdrvChild *root;    /* the daemon's root child: owns the node */
    bool is_drive;
    bool monitor_owned; /* --blockdev / blockdev-add (pinned root) */
    bool copy_on_read;  /* drive: copy-on-read enabled on its top node */
} BlockdevRoot;

/* In creation order; main loop thread only. */
static GList *blockdev_roots;
/* Next automatic drive id ("none0", "none1", ... as QEMU's if=none). */
static unsigned int blockdev_drive_counter;

/* The entry called name (drive id or --blockdev node name), or NULL. */
static BlockdevRoot *blockdev_lookup(const char *name)
{
    for (GList *l = blockdev_roots; l; l = l->next) {
        BlockdevRoot *r = l->data;

        if (!strcmp(r->name, name)) {
            return r;
        }
    }
    return NULL;
}

/*
 * Take ownership of bs (the opener's reference) through a new root child
 * named name. Returns the entry, or NULL with errp set (bs is unref'd).
 */
static BlockdevRoot *blockdev_root_new(BlockDriverState *bs,
                                       const char *name, bool is_drive,
                                       Error **errp)
{
    BdrvChild *root = bdrv_root_attach(bs, name, errp);
    BlockdevRoot *r;

    bdrv_unref(bs);
    if (!root) {
        return NULL;
    }
    r = g_new0(BlockdevRoot, 1);
    r->name = g_strdup(name);
    r->root = root;
    r->is_drive = is_drive;
    blockdev_roots = g_list_append(blockdev_roots, r);
    trace_blockdev_root_new(name, bs, root, is_drive);
    return r;
}

/* Parse OPTS of --blockdev: a JSON object if it starts with '{'. */
static QDict *blockdev_parse_opts(const char *optstr, Error **errp)
{
    while (g_ascii_isspace(*optstr)) {
        optstr++;
    }
    if (*optstr == '{') {
        return qdict_from_json(optstr, errp);
    }
    return keyval_parse(optstr, "driver", errp);
}

/*
 * QEMU's schema-level checks of --blockdev, done before opening so the
 * messages match: driver present and known, the mandatory child or
 * filename present, node-name given.
 */
static bool blockdev_check_opts(QDict *opts, Error **errp)
{
    const char *driver = qdict_get_try_str(opts, "driver");
    g_autofree char *prefix = NULL;
    const BlockDriver *drv;
    const char *child;

    if (!driver) {
        error_setg(errp, "Parameter 'driver' is missing");
        return false;
    }
    drv = bdrv_find_format(driver);
    if (!drv) {
        error_setg(errp, "Parameter 'driver' does not accept value '%s'",
                   driver);
        return false;
    }
    /* Protocols with structured options (http's url) check their own. */
    if (drv->protocol && !drv->bdrv_parse_filename &&
        !qdict_haskey(opts, "filename")) {
        error_setg(errp, "Parameter 'filename' is missing");
        return false;
    }
    /* blkdebug names its one child "image", as QEMU's does. */
    child = drv == &bdrv_blkdebug ? "image" : "file";
    prefix = g_strdup_printf("%s.", child);
    if (!drv->protocol && !qdict_haskey(opts, child) &&
        !qdict_has_prefixed_entries(opts, prefix)) {
        error_setg(errp, "Parameter '%s' is missing", child);
        return false;
    }
    if (!qdict_get_try_str(opts, "node-name")) {
        error_setg(errp, "'node-name' must be specified for the root node");
        return false;
    }
    return true;
}

/*
 * The node is opened by bdrv_open() like any other, then handed to a new
 * root (blockdev_root_new), which from then on is its only owner.
 */
BlockDriverState *blockdev_add(const char *optstr, Error **errp)
{
    g_autoptr(QDict) opts = blockdev_parse_opts(optstr, errp);
    g_autofree char *node_name = NULL;
    BlockDriverState *bs;
    BlockdevRoot *r;

    if (!opts || !blockdev_check_opts(opts, errp)) {
        return NULL;
    }
    node_name = g_strdup(qdict_get_try_str(opts, "node-name"));
    trace_blockdev_add(node_name, qdict_get_try_str(opts, "driver"));
    if (blockdev_lookup(node_name) || bdrv_find_node(node_name)) {
        error_setg(errp, "Duplicate nodes with node-name='%s'", node_name);
        return NULL;
    }
    /* As blockdev-add: read-write unless read-only=on; never probed. */
    bs = bdrv_open(NULL, g_steal_pointer(&opts), BDRV_O_RDWR, errp);
    if (!bs) {
        return NULL;
    }
    r = blockdev_root_new(bs, node_name, false, errp);
    if (!r) {
        return NULL;
    }
    r->monitor_owned = true;
    r->root->pinned = true;
    return bs;
}

/* Everything drive_new() learns from the -drive options it consumes. */
typedef struct DriveOpts {
    char *id;
    char *file;
    char *format;
    bool read_only;
    bool copy_on_read;
} DriveOpts;

/* Free the strings of d (d itself lives on the caller's stack). */
static void drive_opts_free(DriveOpts *d)
{
    g_free(d->id);
    g_free(d->file);
    g_free(d->format);
}

/* Move key out of opts as a new string (NULL when absent). */
static char *drive_take_str(QDict *opts, const char *key)
{
    char *v = g_strdup(qdict_get_try_str(opts, key));

    qdict_del(opts, key);
    return v;
}

/* Move boolean key out of opts into *out (def when absent). */
static bool drive_take_bool(QDict *opts, const char *key, bool def,
                            bool *out, Error **errp)
{
    if (!qdict_get_bool(opts, key, def, out, errp)) {
        return false;
    }
    qdict_del(opts, key);
    return true;
}

/*
 * cache=MODE as QEMU's table: defaults for cache.direct and
 * cache.no-flush that explicit cache.* options override.
 */
static bool drive_apply_cache(QDict *opts, Error **errp)
{
    g_autofree char *mode = drive_take_str(opts, "cache");
    bool writethrough;
    int flags = 0;

    if (!mode) {
        return true;
    }
    if (blockdev_parse_cache_mode(mode, &flags, &writethrough) < 0) {
        error_setg(errp, "invalid cache option");
        return false;
    }
    /*
     * writethrough/directsync would also disable the guest-visible write
     * cache; qblk has none to disable (NBD clients flush explicitly).
     */
    if (!qdict_haskey(opts, "cache.direct")) {
        qdict_put_bool(opts, "cache.direct", flags & BDRV_O_NOCACHE);
    }
    if (!qdict_haskey(opts, "cache.no-flush")) {
        qdict_put_bool(opts, "cache.no-flush", flags & BDRV_O_NO_FLUSH);
    }
    return true;
}

/*
 * aio=MODE goes to the node that does the I/O: the drive's file child, or
 * the drive node itself when format= names a protocol driver.
 */
static bool drive_apply_aio(QDict *opts, const char *format, Error **errp)
{
    g_autofree char *aio = drive_take_str(opts, "aio");
    const BlockDriver *drv = format ? bdrv_find_format(format) : NULL;
    bool direct = false;

    if (!aio) {
        return true;
    }
    if (strcmp(aio, "threads") && strcmp(aio, "native") &&
        strcmp(aio, "io_uring")) {
        error_setg(errp, "invalid aio option");
        return false;
    }
    if (!qdict_get_bool(opts, "cache.direct", false, &direct, errp)) {
        return false;
    }
    if (!strcmp(aio, "native") && !direct) {
        error_setg(errp, "aio=native was specified, but it requires "
                   "cache.direct=on, which was not specified.");
        return false;
    }
    qdict_put_str(opts, drv && drv->protocol ? "aio" : "file.aio", aio);
    return true;
}

/* Take the -drive-only options out of opts into d; check them. */
static bool drive_take_opts(QDict *opts, DriveOpts *d, Error **errp)
{
    g_autofree char *iface = drive_take_str(opts, "if");
    g_autofree char *media = drive_take_str(opts, "media");
    bool ro_alias;

    d->id = drive_take_str(opts, "id");
    d->file = drive_take_str(opts, "file");
    d->format = drive_take_str(opts, "format");
    if (iface && strcmp(iface, "none")) {
        error_setg(errp, "if=%s is not supported: qblk has no guest "
                   "devices, use if=none", iface);
        return false;
    }
    if (media && strcmp(media, "disk")) {
        error_setg(errp, "'%s' invalid media", media);
        return false;
    }
    if (!drive_take_bool(opts, "readonly", false, &d->read_only, errp) ||
        !drive_take_bool(opts, "read-only", d->read_only, &ro_alias,
                         errp) ||
        !drive_take_bool(opts, "copy-on-read", false, &d->copy_on_read,
                         errp) ||
        !drive_apply_cache(opts, errp) ||
        !drive_apply_aio(opts, d->format, errp)) {
        return false;
    }
    d->read_only = ro_alias;
    if (d->format && !bdrv_find_format(d->format)) {
        error_setg(errp, "'%s' invalid format", d->format);
        return false;
    }
    if (!d->file && !qdict_has_prefixed_entries(opts, "file.")) {
        error_setg(errp, "-drive without file= (an empty drive) is not "
                   "supported");
        return false;
    }
    return true;
}

/* Give the drive its id (auto "noneN") and its node name (default: id). */
static bool drive_assign_names(QDict *opts, DriveOpts *d, Error **errp)
{
    const char *node_name;

    if (!d->id) {
        do {
            g_free(d->id);
            d->id = g_strdup_printf("none%u", blockdev_drive_counter++);
        } while (blockdev_lookup(d->id) || bdrv_find_node(d->id));
    }
    if (blockdev_lookup(d->id)) {
        error_setg(errp, "Duplicate ID '%s' for drive", d->id);
        return false;
    }
    if (!qdict_haskey(opts, "node-name")) {
        qdict_put_str(opts, "node-name", d->id);
    }
    node_name = qdict_get_try_str(opts, "node-name");
    if (bdrv_find_node(d->id) ||
        (strcmp(node_name, d->id) && blockdev_lookup(node_name))) {
        error_setg(errp, "Duplicate ID '%s' for drive",
                   bdrv_find_node(d->id) ? d->id : node_name);
        return false;
    }
    return true;
}

/*
 * file=NAME together with file.* options (file.aio from aio=,
 * file.locking=...): the options open the file child, so the name must
 * be one of them, as QEMU's -drive does. Plain and protocol cases are
 * left to bdrv_open().
 */
static void drive_place_filename(QDict *opts, DriveOpts *d)
{
    const BlockDriver *drv = d->format ? bdrv_find_format(d->format) : NULL;

    if (!d->file || g_str_has_prefix(d->file, "json:") ||
        (drv && drv->protocol) ||
        !qdict_has_prefixed_entries(opts, "file.") ||
        qdict_haskey(opts, "file.filename")) {
        return;
    }
    qdict_put_str(opts, "file.filename", d->file);
    g_free(d->file);
    d->file = NULL;
}

/*
 * -drive: the -drive-only options are taken out and turned into node
 * options (read-only, cache.*, file.aio, node-name), everything else is
 * passed to bdrv_open() as a --blockdev of the image would be; then
 * copy-on-read is applied to the opened node and the daemon's root is
 * attached under the drive's id.
 */
BlockDriverState *drive_new(const char *optstr, Error **errp)
{
    g_autoptr(QDict) opts = keyval_parse(optstr, NULL, errp);
    DriveOpts d = { 0 };
    BlockDriverState *bs = NULL;
    BlockdevRoot *r;
    int flags;

    if (!opts || !drive_take_opts(opts, &d, errp) ||
        !drive_assign_names(opts, &d, errp)) {
        goto out;
    }
    if (d.format) {
        qdict_put_str(opts, "driver", d.format);
    }
    drive_place_filename(opts, &d);
    flags = d.read_only ? 0 : BDRV_O_RDWR;
    trace_drive_new(d.id,
                    d.file ? d.file : qdict_get_try_str(opts, "file.filename"),
                    d.format ? d.format : "",
                    flags, d.copy_on_read);
    bs = bdrv_open(d.file, g_steal_pointer(&opts), flags, errp);
    if (!bs) {
        goto out;
    }
    if (d.copy_on_read && bdrv_is_read_only(bs)) {
        /* QEMU's words, plus the drive's id (the issue asks to name it) */
        warn_report("disabling copy-on-read on read-only drive '%s'", d.id);
        d.copy_on_read = false;
    } else if (d.copy_on_read) {
        bdrv_enable_copy_on_read(bs);
    }
    r = blockdev_root_new(bs, d.id, true, errp);
    if (!r) {
        bs = NULL;
    } else {
        r->copy_on_read = d.copy_on_read;
    }
out:
    drive_opts_free(&d);
    return bs;
}

/*
 * Lookup order: a drive id or --blockdev node name, then the node name of
 * a drive's node, then any node of the graph (gets a root on demand, kept
 * until blockdev_close_all()).
 */
BdrvChild *blockdev_find_root(const char *name)
{
    BlockdevRoot *r = blockdev_lookup(name);
    BlockDriverState *bs;

    if (r) {
        return r->root;
    }
    /* A drive's node reached by its node-name. */
    for (GList *l = blockdev_roots; l; l = l->next) {
        r = l->data;
        if (!strcmp(bdrv_get_node_name(bdrv_child_bs(r->root)), name)) {
            return r->root;
        }
    }
    /* Any other node of the graph (an inline child): a root on demand. */
    bs = bdrv_find_node(name);
    if (!bs) {
        return NULL;
    }
    bdrv_ref(bs);
    r = blockdev_root_new(bs, name, false, NULL);
    return r ? r->root : NULL;
}

BlockDriverState *blockdev_find_bs(const char *name)
{
    BlockdevRoot *r = blockdev_lookup(name);

    if (r && r->is_drive) {
        return bdrv_child_bs(r->root);
    }
    return bdrv_find_node(name);
}

/* ---- Drives and nodes for the QMP block commands */

void blockdev_foreach_drive(BlockdevDriveFunc *fn, void *opaque)
{
    for (GList *l = blockdev_roots; l; l = l->next) {
        BlockdevRoot *r = l->data;

        if (r->is_drive) {
            fn(r->name, bdrv_child_bs(r->root), opaque);
        }
    }
}

/* The drive called id, or NULL. */
static BlockdevRoot *blockdev_lookup_drive(const char *id)
{
    BlockdevRoot *r = blockdev_lookup(id);

    return r && r->is_drive ? r : NULL;
}

BlockDriverState *blockdev_lookup_bs(const char *device,
                                     const char *node_name, Error **errp)
{
    BlockDriverState *bs;

    if (device) {
        BlockdevRoot *r = blockdev_lookup_drive(device);

        if (r) {
            return bdrv_child_bs(r->root);
        }
    }
    if (node_name) {
        bs = bdrv_find_node(node_name);
        if (bs) {
            return bs;
        }
    }
    error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
               device ? device : "", node_name ? node_name : "");
    return NULL;
}

bool blockdev_name_in_use(const char *name)
{
    return blockdev_lookup_drive(name) || bdrv_find_node(name);
}

/*
 * The drive's copy-on-read is a property of the drive: each drive that
 * had it on old_top and now sits on new_top takes it along.
 */
void blockdev_drives_follow(BlockDriverState *old_top,
                            BlockDriverState *new_top)
{
    for (GList *l = blockdev_roots; l; l = l->next) {
        BlockdevRoot *r = l->data;

        if (r->is_drive && r->copy_on_read &&
            bdrv_child_bs(r->root) == new_top) {
            trace_blockdev_drive_follow(r->name, old_top, new_top);
            bdrv_disable_copy_on_read(old_top);
            bdrv_enable_copy_on_read(new_top);
        }
    }
}

/* As blockdev_add's last step: the monitor takes over bs (pinned root). */
bool blockdev_adopt_node(BlockDriverState *bs, Error **errp)
{
    BlockdevRoot *r = blockdev_root_new(bs, bdrv_get_node_name(bs), false,
                                        errp);

    if (!r) {
        return false;
    }
    r->monitor_owned = true;
    r->root->pinned = true;
    return true;
}

/* The monitor's entry owning bs, or NULL. */
static BlockdevRoot *blockdev_lookup_owner(BlockDriverState *bs)
{
    for (GList *l = blockdev_roots; l; l = l->next) {
        BlockdevRoot *r = l->data;

        if (r->monitor_owned && bdrv_child_bs(r->root) == bs) {
            return r;
        }
    }
    return NULL;
}

/*
 * QEMU 7.2's checks, in its order: unknown, used by a user (drive,
 * export), a backing node, not owned by the monitor, used by a node.
 */
bool blockdev_del(const char *node_name, Error **errp)
{
    BlockDriverState *bs = bdrv_find_node(node_name);
    int node_parents, root_parents;
    BlockdevRoot *r;

    if (!bs) {
        error_setg(errp, "Failed to find node with node-name='%s'",
                   node_name);
        return false;
    }
    bdrv_count_parents(bs, &node_parents, &root_parents);
    if (root_parents) {
        error_setg(errp, "Node %s is in use", node_name);
        return false;
    }
    if (!bdrv_check_not_backing(bs, errp)) {
        return false;
    }
    r = blockdev_lookup_owner(bs);
    if (!r) {
        error_setg(errp, "Node %s is not owned by the monitor", node_name);
        return false;
    }
    if (node_parents) {
        error_setg(errp, "Block device %s is in use", node_name);
        return false;
    }
    trace_blockdev_del(node_name, bs);
    blockdev_roots = g_list_remove(blockdev_roots, r);
    bdrv_root_unref_child(r->root);
    g_free(r->name);
    g_free(r);
    return true;
}

void blockdev_close_all(void)
{
    GList *l;
    int flushed = 0;

    /* Flush everything first: a failing close must not lose other data. */
    for (l = g_list_last(blockdev_roots); l; l = l->prev) {
        BlockdevRoot *r = l->data;
        BlockDriverState *bs = bdrv_child_bs(r->root);
        int ret = bdrv_flush(bs);

        trace_blockdev_close(r->name, bs, ret);
        if (ret < 0) {
            error_report("Failed to flush '%s': %s", r->name,
                         g_strerror(-ret));
        } else {
            flushed++;
        }
    }
    trace_blockdev_close_all(flushed);
    for (l = g_list_last(blockdev_roots); l; l = l->prev) {
        BlockdevRoot *r = l->data;

        bdrv_root_unref_child(r->root);
        g_free(r->name);
        g_free(r);
    }
    g_list_free(blockdev_roots);
    blockdev_roots = NULL;
}

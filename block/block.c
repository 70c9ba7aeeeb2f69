/*
 * The node graph: driver registry, opening nodes from options, backing
 * chains, reference counting and image maintenance calls.
 *
 * State: every live node is on all_nodes (for node-name lookup); a node
 * holds one reference per parent BdrvChild plus its opener's. Children are
 * listed in bs->children, and bs->file / bs->backing point into that list.
 *
 * Safety: opening is a control-path operation run from the main loop; it
 * may yield inside drivers (header reads), so nothing here keeps global
 * "currently opening" state: the backing-chain loop check travels down the
 * recursion as a stack-allocated list (BdrvChainLink). A failed open
 * closes whatever it opened and never writes to any image: the only
 * writes on close are flushes of nodes opened read-write.
 *
 * Opening one node (bdrv_open_inherit), in order:
 *  1. "json:{...}" names are merged into the options (explicit keys win);
 *  2. generic options (node-name, read-only, cache.*, discard, ...) become
 *     BDRV_O_* flags;
 *  3. the driver is chosen: "driver", else a protocol for file children,
 *     else (user-named top image only) probing the first bytes;
 *  4. the filename is placed where the driver looks: "filename" for a
 *     protocol, "file.filename" for a format (which opens its file child
 *     with bdrv_open_child);
 *  5. "backing" and "backing.*" are set aside, the driver opens, and any
 *     option it left is an error in QEMU's words;
 *  6. the backing chain is opened read-only, each file with the format
 *     recorded in its overlay (never probed), after the loop/depth check.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "qemu/keyval.h"
#include "trace.h"

/* Deepest backing chain we agree to open (protects the recursion). */
#define BDRV_MAX_CHAIN_DEPTH 1000

/* Bytes read from the start of an image to probe its format. */
#define BDRV_PROBE_BYTES 2048

/* The one list of drivers; no registration at run time. */
static const BlockDriver *const bdrv_drivers[] = {
    &bdrv_file,
    &bdrv_host_device,
    &bdrv_raw,
    &bdrv_qcow2,
    &bdrv_copy_on_read,
    &bdrv_blkdebug,
    &bdrv_http,
    &bdrv_https,
    &bdrv_nbd,
    &bdrv_blklogwrites,
};

/* Every open node, for node-name lookup; main loop thread only. */
static GList *all_nodes;
/* Source of automatic node names ("#block123"); never reused. */
static unsigned int bdrv_node_counter;

/*
 * One image of a backing chain being opened, from the bottom-most so far
 * up to the top: lets a deeper open see every file above it.
 */
typedef struct BdrvChainLink {
    const struct BdrvChainLink *up;   /* the overlay's link, NULL at top */
    bool has_id;
    dev_t dev;
    ino_t ino;
    const char *name;                 /* for error messages */
    int depth;                        /* 1 for the top image */
} BdrvChainLink;

static BlockDriverState *bdrv_open_inherit(const char *filename,
                                           QDict *options, int flags,
                                           BlockDriverState *parent,
                                           unsigned role,
                                           const BdrvChainLink *above,
                                           Error **errp);
static int bdrv_open_backing_chain(BlockDriverState *bs, QDict *opts,
                                   bool has_ref, const char *ref,
                                   const BdrvChainLink *above, Error **errp);

/* ---- Driver registry */

/* Look a driver up by the name users write; NULL when unknown. */
const BlockDriver *bdrv_find_format(const char *format_name)
{
    for (size_t i = 0; i < ARRAY_SIZE(bdrv_drivers); i++) {
        if (!strcmp(bdrv_drivers[i]->format_name, format_name)) {
            return bdrv_drivers[i];
        }
    }
    return NULL;
}

const char *bdrv_get_format_name(const BlockDriverState *bs)
{
    return bs->drv ? bs->drv->format_name : NULL;
}

/* For help texts: every driver in table order. */
void bdrv_iterate_format(void (*f)(void *opaque, const char *name),
                         void *opaque)
{
    for (size_t i = 0; i < ARRAY_SIZE(bdrv_drivers); i++) {
        f(opaque, bdrv_drivers[i]->format_name);
    }
}

/* Sanity-check the table: every driver named once and able to open. */
void bdrv_init(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(bdrv_drivers); i++) {
        g_assert(bdrv_drivers[i]->format_name);
        for (size_t j = 0; j < i; j++) {
            g_assert(strcmp(bdrv_drivers[i]->format_name,
                            bdrv_drivers[j]->format_name));
        }
    }
}

/* True when name starts with "proto:" (a ':' before any '/'). */
static bool path_has_protocol(const char *name)
{
    const char *p = strpbrk(name, ":/");

    return p && *p == ':';
}

/*
 * The protocol driver for filename: its "proto:" prefix, else
 * host_device for block devices and file for everything else.
 */
const BlockDriver *bdrv_default_protocol(const char *filename, Error **errp)
{
    struct stat st;

    if (filename && path_has_protocol(filename)) {
        /* "nbd+unix:" and "nbd+tcp:" are spellings of the nbd protocol */
        g_autofree char *prefix = g_strndup(filename,
                                            strcspn(filename, ":+"));
        const BlockDriver *drv = bdrv_find_format(prefix);

        if (!drv || !drv->protocol) {
            error_setg(errp, "Unknown protocol '%s'", prefix);
            return NULL;
        }
        return drv;
    }
    if (filename && stat(filename, &st) == 0 && S_ISBLK(st.st_mode)) {
        return &bdrv_host_device;
    }
    return &bdrv_file;
}

/* ---- Node lifetime */

static BlockDriverState *bdrv_new_node(void)
{
    BlockDriverState *bs = g_new0(BlockDriverState, 1);

    bs->refcnt = 1;
    bs->read_only = true;
    bs->bl.request_alignment = 1;
    return bs;
}

/* Node names follow QEMU: a letter, then letters, digits, '-', '.', '_'. */
static bool bdrv_node_name_valid(const char *name)
{
    if (!g_ascii_isalpha(name[0]) || strlen(name) >= 32) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

/* Give bs its user-chosen node name (checked, unique) or "#blockN". */
static bool bdrv_assign_node_name(BlockDriverState *bs, const char *name,
                                  Error **errp)
{
    if (!name) {
        snprintf(bs->node_name, sizeof(bs->node_name), "#block%u",
                 bdrv_node_counter++);
        return true;
    }
    if (!bdrv_node_name_valid(name)) {
        error_setg(errp, "Invalid node-name: '%s'", name);
        return false;
    }
    if (bdrv_find_node(name)) {
        error_setg(errp, "Duplicate nodes with node-name='%s'", name);
        return false;
    }
    g_strlcpy(bs->node_name, name, sizeof(bs->node_name));
    return true;
}

/* Linear search: graphs are small and lookups are control-path only. */
BlockDriverState *bdrv_find_node(const char *node_name)
{
    for (GList *l = all_nodes; l; l = l->next) {
        BlockDriverState *bs = l->data;

        if (!strcmp(bs->node_name, node_name)) {
            return bs;
        }
    }
    return NULL;
}

/* Walk all_nodes; a lookup per step, fine for graphs of a few nodes. */
BlockDriverState *bdrv_next_node(BlockDriverState *bs)
{
    GList *l = bs ? g_list_find(all_nodes, bs) : NULL;

    l = bs ? (l ? l->next : NULL) : all_nodes;
    return l ? l->data : NULL;
}

void bdrv_ref(BlockDriverState *bs)
{
    bs->refcnt++;
}

/* Drop every child, the backing child first. */
static void bdrv_drop_children(BlockDriverState *bs)
{
    if (bs->backing) {
        bdrv_unref_child(bs, bs->backing);
    }
    while (bs->children) {
        bdrv_unref_child(bs, g_slist_last(bs->children)->data);
    }
}

/* Free a node whose driver is closed (or never opened). */
static void bdrv_free_node(BlockDriverState *bs)
{
    g_assert(!bs->parents);
    all_nodes = g_list_remove(all_nodes, bs);
    g_free(bs->opaque);
    g_free(bs->full_backing_filename);
    g_free(bs->io_error_detail);
    if (bs->options) {
        qdict_unref(bs->options);
    }
    if (bs->explicit_options) {
        qdict_unref(bs->explicit_options);
    }
    g_free(bs);
}

/*
 * The last reference drains the node (no request may be in flight while
 * the driver closes), flushes a read-write node (so metadata caches reach
 * the disk), releases its dirty bitmaps, closes the driver, then drops
 * the children, which may free them in turn: a whole chain goes away with
 * its top.
 */
void bdrv_unref(BlockDriverState *bs)
{
    if (!bs) {
        return;
    }
    g_assert(bs->refcnt > 0);
    if (--bs->refcnt > 0) {
        return;
    }
    trace_bdrv_close_node(bs);
    if (bs->drv) {
        bdrv_drain(bs);
        if (!bs->read_only) {
            bdrv_flush(bs);
        }
        bdrv_release_all_dirty_bitmaps(bs);
        if (bs->drv->bdrv_close) {
            bs->drv->bdrv_close(bs);
        }
        bs->drv = NULL;
    }
    bdrv_drop_children(bs);
    bdrv_free_node(bs);
}

/* ---- Children */

/*
 * Link child_bs under parent (NULL for a root user), taking a new
 * reference. The first FILE/FILTERED child becomes parent->file and the
 * first BACKING child parent->backing; any further child (a driver's data
 * file, say) is only on parent->children.
 */
BdrvChild *bdrv_attach_child(BlockDriverState *parent,
                             BlockDriverState *child_bs,
                             const char *child_name, unsigned role,
                             Error **errp)
{
    BdrvChild *c = g_new0(BdrvChild, 1);

    c->bs = child_bs;
    c->parent = parent;
    c->name = g_strdup(child_name);
    c->role = role;
    bdrv_ref(child_bs);
    child_bs->parents = g_slist_append(child_bs->parents, c);
    if (parent) {
        parent->children = g_slist_append(parent->children, c);
        if ((role & BDRV_CHILD_BACKING) && !parent->backing) {
            parent->backing = c;
        } else if ((role & (BDRV_CHILD_FILE | BDRV_CHILD_FILTERED)) &&
                   !parent->file) {
            parent->file = c;
        }
    }
    return c;
}

/* Unlink child from both ends, then drop the reference it held. */
void bdrv_unref_child(BlockDriverState *parent, BdrvChild *child)
{
    BlockDriverState *bs = child->bs;

    if (parent) {
        parent->children = g_slist_remove(parent->children, child);
        if (parent->file == child) {
            parent->file = NULL;
        }
        if (parent->backing == child) {
            parent->backing = NULL;
        }
    }
    bs->parents = g_slist_remove(bs->parents, child);
    g_free(child->name);
    g_free(child);
    bdrv_unref(bs);
}

/* A handle for a user that is not a node; see block.h for ownership. */
BdrvChild *bdrv_root_attach(BlockDriverState *bs, const char *name,
                            Error **errp)
{
    if (!bs || !bs->drv) {
        error_setg(errp, "Cannot attach '%s': no medium", name);
        return NULL;
    }
    return bdrv_attach_child(NULL, bs, name, BDRV_CHILD_ROOT, errp);
}

void bdrv_root_unref_child(BdrvChild *child)
{
    if (child) {
        bdrv_unref_child(NULL, child);
    }
}

BlockDriverState *bdrv_child_bs(BdrvChild *child)
{
    return child ? child->bs : NULL;
}

/* ---- Options every node accepts */

/* Read boolean key into flag bit (set when on, cleared when off). */
static bool bdrv_take_flag_option(QDict *options, const char *key, int bit,
                                  int *flags, Error **errp)
{
    bool on;

    if (!qdict_haskey(options, key)) {
        return true;
    }
    if (!qdict_get_bool(options, key, false, &on, errp)) {
        return false;
    }
    *flags = on ? (*flags | bit) : (*flags & ~bit);
    qdict_del(options, key);
    return true;
}

/* Apply "discard": ignore/off or unmap/on. */
static bool bdrv_take_discard_option(QDict *options, int *flags,
                                     Error **errp)
{
    const char *mode = qdict_get_try_str(options, "discard");

    if (!mode) {
        qdict_del(options, "discard");
        return true;
    }
    if (!strcmp(mode, "ignore") || !strcmp(mode, "off")) {
        *flags &= ~BDRV_O_UNMAP;
    } else if (!strcmp(mode, "unmap") || !strcmp(mode, "on")) {
        *flags |= BDRV_O_UNMAP;
    } else {
        error_setg(errp, "Invalid discard option");
        return false;
    }
    qdict_del(options, "discard");
    return true;
}

/*
 * Take the driver-independent options (node-name, read-only, cache.*,
 * discard, force-share, auto-read-only, detect-zeroes) out of options,
 * folding them into *flags. *node_name gets a g_strdup or NULL.
 */
static bool bdrv_take_generic_options(QDict *options, int *flags,
                                      char **node_name, Error **errp)
{
    int ro = 0;
    bool dummy;
    const char *dz = qdict_get_try_str(options, "detect-zeroes");

    *node_name = g_strdup(qdict_get_try_str(options, "node-name"));
    qdict_del(options, "node-name");
    if (!bdrv_take_flag_option(options, "read-only", 1, &ro, errp) ||
        !bdrv_take_flag_option(options, "cache.direct", BDRV_O_NOCACHE,
                               flags, errp) ||
        !bdrv_take_flag_option(options, "cache.no-flush", BDRV_O_NO_FLUSH,
                               flags, errp) ||
        !bdrv_take_flag_option(options, "force-share", BDRV_O_FORCE_SHARE,
                               flags, errp) ||
        !bdrv_take_discard_option(options, flags, errp) ||
        !qdict_get_bool(options, "auto-read-only", false, &dummy, errp)) {
        return false;
    }
    qdict_del(options, "auto-read-only");
    if (ro) {
        *flags &= ~BDRV_O_RDWR;
    }
    if ((*flags & BDRV_O_FORCE_SHARE) && (*flags & BDRV_O_RDWR)) {
        error_setg(errp,
                   "force-share=on can only be used with read-only images");
        return false;
    }
    if (dz && strcmp(dz, "off")) {
        error_setg(errp, "detect-zeroes=%s is not supported", dz);
        return false;
    }
    qdict_del(options, "detect-zeroes");
    return true;
}

/* Report the first option no one consumed, in QEMU's words. */
static bool bdrv_check_leftover_options(const BlockDriver *drv,
                                        QDict *options, Error **errp)
{
    g_autofree const char **keys = NULL;

    if (qdict_size(options) == 0) {
        return true;
    }
    keys = qdict_keys(options);
    if (drv->protocol) {
        error_setg(errp, "Block protocol '%s' doesn't support the option "
                   "'%s'", drv->format_name, keys[0]);
    } else {
        error_setg(errp, "Block format '%s' does not support the option "
                   "'%s'", drv->format_name, keys[0]);
    }
    return false;
}

/* ---- Probing */

/* The format driver scoring highest on buf (raw scores lowest). */
static const BlockDriver *bdrv_probe_buf(const uint8_t *buf, int len,
                                         const char *filename)
{
    const BlockDriver *best = &bdrv_raw;
    int best_score = 0;

    for (size_t i = 0; i < ARRAY_SIZE(bdrv_drivers); i++) {
        const BlockDriver *drv = bdrv_drivers[i];
        int score;

        if (drv->protocol || !drv->bdrv_probe) {
            continue;
        }
        score = drv->bdrv_probe(buf, len, filename);
        if (score > best_score) {
            best_score = score;
            best = drv;
        }
    }
    trace_bdrv_probe_format(filename, best->format_name, best_score);
    return best;
}

/* Probe with extra open flags (force-share, O_DIRECT of the real open). */
static const BlockDriver *bdrv_probe_with_flags(const char *filename,
                                                int flags, Error **errp)
{
    const BlockDriver *proto = bdrv_default_protocol(filename, errp);
    const BlockDriver *drv = NULL;
    BlockDriverState *bs;
    BdrvChild *root;
    uint8_t *buf;
    int64_t len;
    QDict *opts;

    if (!proto) {
        return NULL;
    }
    opts = qdict_new();
    qdict_put_str(opts, "driver", proto->format_name);
    bs = bdrv_open_inherit(filename, opts, flags & ~BDRV_O_RDWR, NULL, 0,
                           NULL, errp);
    if (!bs) {
        return NULL;
    }
    root = bdrv_root_attach(bs, "probe", &error_abort);
    len = MIN(bdrv_getlength(bs), BDRV_PROBE_BYTES);
    buf = qemu_blockalign_bs(bs, BDRV_PROBE_BYTES);
    memset(buf, 0, BDRV_PROBE_BYTES);
    if (len >= 0 && (len == 0 || bdrv_pread(root, 0, len, buf, 0) >= 0)) {
        drv = bdrv_probe_buf(buf, len, filename);
    } else {
        error_setg(errp, "Could not read image for determining its format");
    }
    qemu_vfree(buf);
    bdrv_root_unref_child(root);
    bdrv_unref(bs);
    return drv;
}

/* Public probe: for tools that print the detected format. */
const char *bdrv_probe_format(const char *filename, Error **errp)
{
    const BlockDriver *drv = bdrv_probe_with_flags(filename, 0, errp);

    return drv ? drv->format_name : NULL;
}

/* ---- Opening */

/* Flags a child inherits from its parent for the given role. */
static int bdrv_child_flags(int parent_flags, unsigned role)
{
    if (role & BDRV_CHILD_BACKING) {
        return parent_flags & ~(BDRV_O_RDWR | BDRV_O_CHECK | BDRV_O_UNMAP);
    }
    return parent_flags;
}

/*
 * Run drv's open on a fresh bs, then check leftovers, limits and length.
 * On failure bs is left without driver, children or opaque.
 */
static int bdrv_open_driver(BlockDriverState *bs, const BlockDriver *drv,
                            QDict *options, int flags, Error **errp)
{
    Error *local_err = NULL;
    int ret;

    if (!drv->bdrv_open) {
        error_setg(errp, "Driver '%s' cannot open nodes", drv->format_name);
        return -ENOTSUP;
    }
    bs->drv = drv;
    bs->opaque = drv->instance_size ? g_malloc0(drv->instance_size) : NULL;
    ret = drv->bdrv_open(bs, options, flags, &local_err);
    if (ret < 0) {
        if (!local_err) {
            error_setg_errno(&local_err, -ret, "Could not open '%s'",
                             bs->filename);
        }
        goto fail_open;
    }
    if (!bdrv_check_leftover_options(drv, options, &local_err)) {
        ret = -EINVAL;
        goto fail_close;
    }
    bdrv_refresh_limits(bs, &local_err);
    if (local_err) {
        ret = -EINVAL;
        goto fail_close;
    }
    if (drv->bdrv_getlength) {
        int64_t len = drv->bdrv_getlength(bs);

        if (len < 0) {
            error_setg_errno(&local_err, -len, "Could not get the size of "
                             "'%s'", bs->filename);
            ret = len;
            goto fail_close;
        }
        bs->total_bytes = len;
    }
    return 0;

fail_close:
    if (drv->bdrv_close) {
        drv->bdrv_close(bs);
    }
fail_open:
    bdrv_drop_children(bs);
    g_free(bs->opaque);
    bs->opaque = NULL;
    bs->drv = NULL;
    error_propagate(errp, local_err);
    return ret;
}

/* Open a node with a driver outside the table (tests' mock drivers). */
BlockDriverState *bdrv_new_open_driver(const BlockDriver *drv,
                                       const char *node_name, QDict *options,
                                       int flags, Error **errp)
{
    BlockDriverState *bs = bdrv_new_node();
    g_autoptr(QDict) opts = options ? options : qdict_new();

    if (!bdrv_assign_node_name(bs, node_name, errp)) {
        bdrv_free_node(bs);
        return NULL;
    }
    all_nodes = g_list_append(all_nodes, bs);
    bs->open_flags = flags;
    bs->read_only = !(flags & BDRV_O_RDWR);
    bs->options = qdict_clone(opts);
    if (bdrv_open_driver(bs, drv, opts, flags, errp) < 0) {
        bdrv_free_node(bs);
        return NULL;
    }
    return bs;
}

/*
 * Choose the driver for a node being opened: "driver" option, a protocol
 * for file children, or (top images only) probing. *probed is set when
 * the format was guessed.
 */
static const BlockDriver *bdrv_pick_driver(const char *filename,
                                           QDict *options, int flags,
                                           BlockDriverState *parent,
                                           bool *probed, Error **errp)
{
    g_autofree char *name = g_strdup(qdict_get_try_str(options, "driver"));
    const char *probe_name;
    const BlockDriver *drv;

    *probed = false;
    if (name) {
        qdict_del(options, "driver");
        drv = bdrv_find_format(name);
        if (!drv) {
            error_setg(errp, "Unknown driver '%s'", name);
        }
        return drv;
    }
    if (parent) {
        return bdrv_default_protocol(
            filename ?: qdict_get_try_str(options, "filename"), errp);
    }
    probe_name = filename ?: qdict_get_try_str(options, "file.filename");
    if (!probe_name) {
        error_setg(errp, "Must specify either driver or file");
        return NULL;
    }
    *probed = true;
    return bdrv_probe_with_flags(probe_name, flags, errp);
}

/*
 * True if a format node's options say themselves where its bytes are: a
 * "file" reference, or "file.filename" / "file.driver". Other "file."
 * options (file.locking=off, file.reconnect-delay=5) only tune the
 * protocol node opened from the node's file name, as in QEMU, so that
 * -drive ...,backing.file.locking=off still opens the header's backing
 * file.
 */
static bool bdrv_options_locate_file(QDict *options)
{
    return qdict_haskey(options, "file") ||
           qdict_haskey(options, "file.filename") ||
           qdict_haskey(options, "file.driver");
}

/*
 * Hand the filename to the driver: "filename" for protocols (parsed or
 * with its "proto:" prefix removed), "file.filename" for formats.
 */
static bool bdrv_place_filename(BlockDriverState *bs,
                                const BlockDriver *drv, const char *filename,
                                QDict *options, Error **errp)
{
    if (drv->protocol) {
        if (filename && !qdict_haskey(options, "filename")) {
            if (drv->bdrv_parse_filename) {
                Error *local_err = NULL;

                drv->bdrv_parse_filename(filename, options, &local_err);
                if (local_err) {
                    error_propagate(errp, local_err);
                    return false;
                }
            } else {
                size_t plen = strlen(drv->format_name);
                bool prefixed = !strncmp(filename, drv->format_name, plen) &&
                                filename[plen] == ':';

                qdict_put_str(options, "filename",
                              prefixed ? filename + plen + 1 : filename);
            }
        }
        g_strlcpy(bs->filename, qdict_get_try_str(options, "filename") ?: "",
                  sizeof(bs->filename));
        return true;
    }
    if (filename && !bdrv_options_locate_file(options)) {
        qdict_put_str(options, "file.filename", filename);
    }
    if (filename) {
        g_strlcpy(bs->filename, filename, sizeof(bs->filename));
    }
    return true;
}

/* Warn as QEMU does when a read-write image's raw format was guessed. */
static void bdrv_warn_probed_raw(BlockDriverState *bs)
{
    if (bs->probed && bs->drv == &bdrv_raw && !bs->read_only) {
        warn_report("Image format was not specified for '%s' and probing "
                    "guessed raw.\n         Automatically detecting the "
                    "format is dangerous for raw images.\n         Specify "
                    "the 'raw' format explicitly to remove this warning.",
                    bs->filename);
    }
}

/*
 * Open one node (and its backing chain) from filename and/or options
 * (consumed). parent/role are NULL/0 for a user's top image, which alone
 * may have its format probed. above: the chain opened so far above it.
 */
static BlockDriverState *bdrv_open_inherit(const char *filename,
                                           QDict *options, int flags,
                                           BlockDriverState *parent,
                                           unsigned role,
                                           const BdrvChainLink *above,
                                           Error **errp)
{
    g_autoptr(QDict) opts = options ? options : qdict_new();
    g_autoptr(QDict) backing_opts = NULL;
    g_autofree char *node_name = NULL;
    g_autofree char *backing_ref = NULL;
    const char *json_name = NULL;
    const BlockDriver *drv;
    BlockDriverState *bs;
    bool has_backing_ref, probed;

    if (filename && g_str_has_prefix(filename, "json:")) {
        g_autoptr(QDict) json = qdict_from_json(filename + 5, errp);

        if (!json) {
            return NULL;
        }
        qdict_join(opts, json, false);
        json_name = filename;
        filename = NULL;
    }
    if (!bdrv_take_generic_options(opts, &flags, &node_name, errp)) {
        return NULL;
    }
    drv = bdrv_pick_driver(filename, opts, flags, parent, &probed, errp);
    if (!drv) {
        return NULL;
    }
    bs = bdrv_new_node();
    if (!bdrv_assign_node_name(bs, node_name, errp)) {
        bdrv_free_node(bs);
        return NULL;
    }
    all_nodes = g_list_append(all_nodes, bs);
    bs->probed = probed;
    bs->open_flags = flags;
    bs->read_only = !(flags & BDRV_O_RDWR);
    if (!bdrv_place_filename(bs, drv, filename, opts, errp)) {
        bdrv_free_node(bs);
        return NULL;
    }
    bs->options = qdict_clone(opts);
    bs->explicit_options = qdict_clone(opts);

    has_backing_ref = qdict_haskey(opts, "backing");
    backing_ref = g_strdup(qdict_get_try_str(opts, "backing"));
    qdict_del(opts, "backing");
    backing_opts = qdict_extract_subqdict(opts, "backing.");

    trace_bdrv_open_node(bs, drv->format_name, bs->filename, flags);
    if (bdrv_open_driver(bs, drv, opts, flags, errp) < 0) {
        bdrv_free_node(bs);
        return NULL;
    }
    if (!bs->filename[0] && bs->file) {
        g_strlcpy(bs->filename, bs->file->bs->filename, sizeof(bs->filename));
    }
    if (!bs->filename[0] && json_name) {
        g_strlcpy(bs->filename, json_name, sizeof(bs->filename));
    }
    if (!(flags & BDRV_O_NO_BACKING) &&
        bdrv_open_backing_chain(bs, g_steal_pointer(&backing_opts),
                                has_backing_ref, backing_ref, above,
                                errp) < 0) {
        bdrv_unref(bs);
        return NULL;
    }
    bdrv_warn_probed_raw(bs);
    return bs;
}

/* A user's top image: the one open that may probe the format. */
BlockDriverState *bdrv_open(const char *filename, QDict *options, int flags,
                            Error **errp)
{
    return bdrv_open_inherit(filename, options, flags, NULL, 0, NULL, errp);
}

/*
 * Called by drivers from their bdrv_open. Three ways to name a child:
 * "child": "node-name" (an existing node), "child.*" options, or the
 * filename argument when no "child.*" option names a file. A child with
 * no driver option gets the protocol for its file name (never probed).
 */
BdrvChild *bdrv_open_child(const char *filename, QDict *options,
                           const char *child_name, BlockDriverState *parent,
                           unsigned role, bool allow_none, Error **errp)
{
    g_autofree char *prefix = g_strdup_printf("%s.", child_name);
    g_autofree char *ref = g_strdup(qdict_get_try_str(options, child_name));
    QDict *sub = qdict_extract_subqdict(options, prefix);
    BlockDriverState *bs;
    BdrvChild *c;

    qdict_del(options, child_name);
    if (ref) {
        if (qdict_size(sub)) {
            qdict_unref(sub);
            error_setg(errp, "Cannot reference an existing block device with "
                       "additional options or a new filename");
            return NULL;
        }
        qdict_unref(sub);
        bs = bdrv_find_node(ref);
        if (!bs) {
            error_setg(errp, "Cannot find device='' nor node-name='%s'", ref);
            return NULL;
        }
        return bdrv_attach_child(parent, bs, child_name, role, errp);
    }
    if (qdict_haskey(sub, "filename") || bdrv_options_locate_file(sub)) {
        filename = NULL;
    }
    if (!filename && qdict_size(sub) == 0) {
        qdict_unref(sub);
        if (!allow_none) {
            error_setg(errp, "A block device must be specified for \"%s\"",
                       child_name);
        }
        return NULL;
    }
    bs = bdrv_open_inherit(filename, sub,
                           bdrv_child_flags(parent->open_flags, role),
                           parent, role, NULL, errp);
    if (!bs) {
        return NULL;
    }
    c = bdrv_attach_child(parent, bs, child_name, role, errp);
    bdrv_unref(bs);
    return c;
}

/* ---- Backing chains */

/* (st_dev, st_ino) of the file that finally holds bs's bytes. */
static bool bdrv_node_file_id(BlockDriverState *bs, dev_t *dev, ino_t *ino)
{
    struct stat st;

    while (bs && bs->drv && !bs->drv->protocol) {
        bs = bs->file ? bs->file->bs : NULL;
    }
    if (!bs || !bs->filename[0] || stat(bs->filename, &st) < 0) {
        return false;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    return true;
}

/* Fail when name is a file already open in the chain described by link. */
static bool bdrv_chain_check_loop(const BdrvChainLink *link,
                                  const char *name, Error **errp)
{
    const BdrvChainLink *top = link;
    struct stat st;

    if (link->depth >= BDRV_MAX_CHAIN_DEPTH) {
        while (top->up) {
            top = top->up;
        }
        error_setg(errp, "Backing chain of '%s' is too deep (more than %d "
                   "images)", top->name, BDRV_MAX_CHAIN_DEPTH);
        return false;
    }
    if (!name || path_has_protocol(name) || stat(name, &st) < 0) {
        return true;
    }
    for (const BdrvChainLink *l = link; l; l = l->up) {
        top = l;
        if (l->has_id && l->dev == st.st_dev && l->ino == st.st_ino) {
            while (top->up) {
                top = top->up;
            }
            error_setg(errp, "Backing chain of '%s' loops: '%s' is already "
                       "in the chain", top->name, name);
            return false;
        }
    }
    return true;
}

/*
 * The driver for bs's backing file: "driver" in opts, else the format
 * recorded in the header. Never probed; no format recorded is an error.
 */
const char *bdrv_require_backing_format(BlockDriverState *bs, Error **errp)
{
    if (!bs->backing_format[0]) {
        error_setg(errp, "Could not open backing file '%s' of '%s': backing "
                   "format is not recorded in the image header (probing a "
                   "backing file's format is unsafe); record it with "
                   "'qblk-img rebase -u -b %s -F raw %s' or pass "
                   "backing.driver", bs->backing_file, bs->filename,
                   bs->backing_file, bs->filename);
        return NULL;
    }
    return bs->backing_format;
}

static bool bdrv_backing_driver(BlockDriverState *bs, QDict *opts,
                                Error **errp)
{
    const char *fmt;

    if (qdict_haskey(opts, "driver")) {
        return true;
    }
    fmt = bdrv_require_backing_format(bs, errp);
    if (!fmt) {
        return false;
    }
    qdict_put_str(opts, "driver", fmt);
    return true;
}

/* Attach the existing node called ref as bs's backing ("" means none). */
static int bdrv_backing_by_reference(BlockDriverState *bs, const char *ref,
                                     Error **errp)
{
    BlockDriverState *node;

    if (!ref || !ref[0]) {
        return 0;
    }
    node = bdrv_find_node(ref);
    if (!node) {
        error_setg(errp, "Cannot find device='' nor node-name='%s'", ref);
        return -ENOENT;
    }
    return bdrv_set_backing_hd(bs, node, errp);
}

/*
 * Open bs's backing file (and, recursively, its chain) read-only with the
 * recorded format; opts (consumed) are the "backing.*" options. has_ref:
 * the user gave "backing" itself (a node name, or ""/null for none).
 */
static int bdrv_open_backing_chain(BlockDriverState *bs, QDict *opts,
                                   bool has_ref, const char *ref,
                                   const BdrvChainLink *above, Error **errp)
{
    g_autoptr(QDict) o = opts ? opts : qdict_new();
    BdrvChainLink link = { .up = above, .name = bs->filename,
                           .depth = above ? above->depth + 1 : 1 };
    const char *name = NULL;
    Error *local_err = NULL;
    BlockDriverState *backing;
    int ret;

    if (bs->backing) {
        return 0;
    }
    if (has_ref) {
        return bdrv_backing_by_reference(bs, ref, errp);
    }
    if (!bs->backing_file[0] && qdict_size(o) == 0) {
        return 0;
    }
    if (bs->backing_file[0]) {
        g_free(bs->full_backing_filename);
        bs->full_backing_filename = bdrv_get_full_backing_filename(bs, errp);
        if (!bs->full_backing_filename) {
            return -EINVAL;
        }
        name = bs->full_backing_filename;
    }
    if (!bdrv_backing_driver(bs, o, errp)) {
        return -EINVAL;
    }
    if (qdict_haskey(o, "filename") || bdrv_options_locate_file(o)) {
        name = NULL;
    }
    /* A name from the header is untrusted: only allowed protocols. */
    if (name && !bdrv_backing_name_allowed(bs, name, errp)) {
        return -EACCES;
    }
    link.has_id = bdrv_node_file_id(bs, &link.dev, &link.ino);
    if (!bdrv_chain_check_loop(&link, name, errp)) {
        return -ELOOP;
    }
    trace_bdrv_open_backing(bs, name ?: "", qdict_get_try_str(o, "driver"));
    backing = bdrv_open_inherit(name, g_steal_pointer(&o),
                                bdrv_child_flags(bs->open_flags,
                                                 BDRV_CHILD_BACKING),
                                bs, BDRV_CHILD_BACKING, &link, &local_err);
    if (!backing) {
        error_propagate_prepend(errp, local_err,
                                "Could not open backing file: ");
        return -EINVAL;
    }
    ret = bdrv_set_backing_hd(bs, backing, errp);
    bdrv_unref(backing);
    return ret;
}

/* The node whose backing child is bs, or NULL. */
static BlockDriverState *bdrv_backing_overlay(BlockDriverState *bs)
{
    for (GSList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;

        if (c->parent && c->parent->backing == c) {
            return c->parent;
        }
    }
    return NULL;
}

/*
 * Public entry for opening a chain later (e.g. after BDRV_O_NO_BACKING):
 * rebuild the chain links from the overlays above bs, so the loop check
 * sees them, then open as bdrv_open would.
 */
int bdrv_open_backing_file(BlockDriverState *bs, QDict *backing_options,
                           Error **errp)
{
    g_autofree BdrvChainLink *links = NULL;
    BlockDriverState *p;
    int n = 0;

    /* Describe the images above bs: links[0] is its overlay. */
    for (p = bdrv_backing_overlay(bs); p; p = bdrv_backing_overlay(p)) {
        n++;
    }
    links = g_new0(BdrvChainLink, n + 1);
    p = bs;
    for (int i = 0; i < n; i++) {
        p = bdrv_backing_overlay(p);
        links[i].up = i + 1 < n ? &links[i + 1] : NULL;
        links[i].name = p->filename;
        links[i].depth = n - i;
        links[i].has_id = bdrv_node_file_id(p, &links[i].dev, &links[i].ino);
    }
    return bdrv_open_backing_chain(bs, backing_options, false, NULL,
                                   n ? &links[0] : NULL, errp);
}

/* ---- Chain and node accessors */

BlockDriverState *bdrv_backing_bs(const BlockDriverState *bs)
{
    return bs && bs->backing ? bs->backing->bs : NULL;
}

BlockDriverState *bdrv_file_bs(const BlockDriverState *bs)
{
    return bs && bs->file ? bs->file->bs : NULL;
}

/* Filters forward to their file child; stop at the first non-filter. */
BlockDriverState *bdrv_skip_filters(BlockDriverState *bs)
{
    while (bs && bs->drv && bs->drv->is_filter && bs->file) {
        bs = bs->file->bs;
    }
    return bs;
}

int bdrv_chain_length(const BlockDriverState *bs)
{
    int n = 1;

    for (; bs->backing; bs = bs->backing->bs) {
        n++;
    }
    return n;
}

BlockDriverState *bdrv_chain_next(const BlockDriverState *bs)
{
    if (bs->backing) {
        return bs->backing->bs;
    }
    if (bs->drv && bs->drv->is_filter && bs->file) {
        return bs->file->bs;
    }
    return NULL;
}

bool bdrv_chain_contains(const BlockDriverState *bs,
                         const BlockDriverState *node)
{
    for (; bs; bs = bdrv_chain_next(bs)) {
        if (bs == node) {
            return true;
        }
    }
    return false;
}

BlockDriverState *bdrv_chain_bottom(BlockDriverState *bs)
{
    while (bdrv_chain_next(bs)) {
        bs = bdrv_chain_next(bs);
    }
    return bs;
}

BlockDriverState *bdrv_chain_above(BlockDriverState *bs,
                                   const BlockDriverState *node)
{
    for (; bs; bs = bdrv_chain_next(bs)) {
        if (bdrv_chain_next(bs) == node) {
            return bs;
        }
    }
    return NULL;
}

/* True when a and b name the same existing file. */
static bool bdrv_same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * A backing node below bs matches name by node name, by its filename, by
 * the backing reference its overlay stores, or (local files only) by
 * being the same file on disk; the topmost match wins.
 */
BlockDriverState *bdrv_find_backing_image(BlockDriverState *bs,
                                          const char *name)
{
    for (BlockDriverState *p = bs; p && p->backing; p = p->backing->bs) {
        BlockDriverState *b = p->backing->bs;

        if (!strcmp(name, b->node_name) || !strcmp(name, b->filename) ||
            !strcmp(name, p->backing_file) ||
            (!path_has_protocol(name) && b->filename[0] &&
             !path_has_protocol(b->filename) &&
             bdrv_same_file(name, b->filename))) {
            return b;
        }
    }
    return NULL;
}

bool bdrv_is_read_only(const BlockDriverState *bs)
{
    return bs->read_only;
}

const char *bdrv_get_node_name(const BlockDriverState *bs)
{
    return bs->node_name;
}

const char *bdrv_get_filename(const BlockDriverState *bs)
{
    return bs->filename;
}

const char *bdrv_get_backing_filename(const BlockDriverState *bs)
{
    return bs->backing_file;
}

const char *bdrv_get_backing_format(const BlockDriverState *bs)
{
    return bs->backing_format;
}

/*
 * QEMU's rule: absolute names and "proto:" names stay as they are, others
 * are taken relative to the directory of base_path ("dir/top.qcow2" +
 * "base" = "dir/base"; a base_path without '/' leaves the name alone).
 */
char *bdrv_path_combine(const char *base_path, const char *filename)
{
    const char *slash;

    if (filename[0] == '/' || path_has_protocol(filename)) {
        return g_strdup(filename);
    }
    slash = strrchr(base_path, '/');
    if (!slash) {
        return g_strdup(filename);
    }
    return g_strdup_printf("%.*s/%s", (int)(slash - base_path), base_path,
                           filename);
}

/*
 * A relative name cannot be resolved against a node known only by a
 * "json:" or protocol name, since that has no directory.
 */
char *bdrv_get_full_backing_filename(BlockDriverState *bs, Error **errp)
{
    const char *name = bs->backing_file;

    if (!name[0]) {
        error_setg(errp, "'%s' has no backing file", bs->filename);
        return NULL;
    }
    if (name[0] != '/' && !path_has_protocol(name) &&
        (path_has_protocol(bs->filename) || !bs->filename[0])) {
        error_setg(errp, "Cannot use relative backing file name '%s' for "
                   "'%s'", name, bs->filename[0] ? bs->filename : "(node)");
        return NULL;
    }
    return bdrv_path_combine(bs->filename, name);
}

/* ---- Sizes, limits, information */

/*
 * Ask the driver when it can tell (a file's size may change under us) and
 * cache the answer in total_bytes, which the request path uses.
 */
int64_t bdrv_getlength(BlockDriverState *bs)
{
    if (!bs || !bs->drv) {
        return -ENOMEDIUM;
    }
    if (bs->drv->bdrv_getlength) {
        int64_t len = bs->drv->bdrv_getlength(bs);

        if (len >= 0) {
            bs->total_bytes = len;
        }
        return len;
    }
    return bs->total_bytes;
}

int64_t bdrv_getlength_err(BlockDriverState *bs, Error **errp)
{
    int64_t len = bdrv_getlength(bs);

    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get the length of '%s'",
                         bs ? bdrv_get_node_name(bs) : "");
    }
    return len;
}

int coroutine_fn bdrv_co_grow(BdrvChild *child, int64_t len, Error **errp)
{
    BlockDriverState *bs = bdrv_child_bs(child);
    int64_t old_len = bdrv_getlength_err(bs, errp);

    if (old_len < 0) {
        return old_len;
    }
    if (old_len >= len) {
        return 0;
    }
    trace_bdrv_co_grow(bs, old_len, len);
    return bdrv_co_truncate(child, len, false, PREALLOC_MODE_OFF, 0, errp);
}

/* The driver's answer, else the sum over the non-backing children. */
int64_t bdrv_get_allocated_file_size(BlockDriverState *bs)
{
    int64_t sum = 0;
    bool any = false;

    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (bs->drv->bdrv_get_allocated_file_size) {
        return bs->drv->bdrv_get_allocated_file_size(bs);
    }
    for (GSList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        int64_t n;

        if (c->role & BDRV_CHILD_BACKING) {
            continue;
        }
        n = bdrv_get_allocated_file_size(c->bs);
        if (n < 0) {
            return n;
        }
        sum += n;
        any = true;
    }
    return any ? sum : -ENOTSUP;
}

/* bdi is zeroed first, so callers may use it even on -ENOTSUP. */
int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    memset(bdi, 0, sizeof(*bdi));
    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    return bs->drv->bdrv_get_info ? bs->drv->bdrv_get_info(bs, bdi)
                                  : -ENOTSUP;
}

/* NULL without an error when the driver has nothing format-specific. */
char *bdrv_get_specific_info_json(BlockDriverState *bs, Error **errp)
{
    if (!bs->drv || !bs->drv->bdrv_get_specific_info_json) {
        return NULL;
    }
    return bs->drv->bdrv_get_specific_info_json(bs, errp);
}

/* Fold a child's limits into bl: transfer sizes and memory alignment. */
static void bdrv_merge_limits(BlockLimits *bl, const BlockLimits *c,
                              bool transfers)
{
    if (transfers) {
        if (c->max_transfer &&
            (!bl->max_transfer || c->max_transfer < bl->max_transfer)) {
            bl->max_transfer = c->max_transfer;
        }
        bl->opt_transfer = MAX(bl->opt_transfer, c->opt_transfer);
    }
    bl->min_mem_alignment = MAX(bl->min_mem_alignment, c->min_mem_alignment);
    bl->opt_mem_alignment = MAX(bl->opt_mem_alignment, c->opt_mem_alignment);
}

/*
 * Limits only ever tighten here: request_alignment is the driver's own
 * (children do their own read-modify-write), transfer sizes come from the
 * file child, and memory alignment from every child a buffer may reach.
 * Values a driver set during open are kept.
 */
void bdrv_refresh_limits(BlockDriverState *bs, Error **errp)
{
    if (!bs->bl.request_alignment) {
        bs->bl.request_alignment = 1;
    }
    if (bs->file) {
        bdrv_merge_limits(&bs->bl, &bs->file->bs->bl, true);
    }
    if (bs->backing) {
        bdrv_merge_limits(&bs->bl, &bs->backing->bs->bl, false);
    }
    if (bs->drv && bs->drv->bdrv_refresh_limits) {
        bs->drv->bdrv_refresh_limits(bs, errp);
    }
}

/* Page alignment unless the node says otherwise; fine for O_DIRECT. */
size_t bdrv_opt_mem_align(BlockDriverState *bs)
{
    size_t align = MAX(bs->bl.opt_mem_alignment, bs->bl.min_mem_alignment);

    return align ? MAX(align, sizeof(void *)) : 4096;
}

void *qemu_try_blockalign(BlockDriverState *bs, size_t size)
{
    return qemu_try_memalign(bdrv_opt_mem_align(bs), size ? size : 1);
}

void *qemu_blockalign_bs(BlockDriverState *bs, size_t size)
{
    return qemu_memalign(bdrv_opt_mem_align(bs), size ? size : 1);
}

/* ---- Maintenance */

/* res is zeroed first, so drivers only count what they find. */
int bdrv_check(BlockDriverState *bs, BdrvCheckResult *res, BdrvCheckMode fix)
{
    memset(res, 0, sizeof(*res));
    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (!bs->drv->bdrv_check) {
        return -ENOTSUP;
    }
    return bs->drv->bdrv_check(bs, res, fix);
}

/* Drop all allocations, then flush so the result is on disk. */
int bdrv_make_empty(BlockDriverState *bs, Error **errp)
{
    int ret;

    if (!bs->drv || !bs->drv->bdrv_make_empty) {
        error_setg(errp, "Image format '%s' does not support emptying "
                   "'%s'", bs->drv ? bs->drv->format_name : "(none)",
                   bs->filename);
        return -ENOTSUP;
    }
    if (bs->read_only) {
        error_setg(errp, "Cannot empty read-only image '%s'", bs->filename);
        return -EACCES;
    }
    ret = bs->drv->bdrv_make_empty(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to empty '%s'", bs->filename);
        return ret;
    }
    return bdrv_flush(bs);
}

/*
 * The driver rewrites its header; only then does the in-memory copy
 * change, so a failure leaves both as they were. The graph is untouched
 * (bdrv_set_backing_hd does that).
 */
int bdrv_change_backing_file(BlockDriverState *bs, const char *backing_file,
                             const char *backing_fmt, Error **errp)
{
    const char *what = backing_file ? backing_file : "";
    int ret;

    if (!bs->drv || !bs->drv->bdrv_change_backing_file) {
        ret = -ENOTSUP;
    } else if (bs->read_only) {
        ret = -EACCES;
    } else if (backing_file && strlen(backing_file) >= BDRV_BACKING_NAME_MAX) {
        ret = -EINVAL;
    } else {
        ret = bs->drv->bdrv_change_backing_file(bs, backing_file,
                                                backing_fmt);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not change the backing file to "
                         "'%s'", what);
        return ret;
    }
    g_strlcpy(bs->backing_file, what, sizeof(bs->backing_file));
    g_strlcpy(bs->backing_format, backing_fmt ? backing_fmt : "",
              sizeof(bs->backing_format));
    g_free(bs->full_backing_filename);
    bs->full_backing_filename = backing_file ?
        bdrv_path_combine(bs->filename, backing_file) : NULL;
    return 0;
}

/*
 * Swap bs's backing node in the graph. new_backing is referenced before
 * the old child goes, so passing the current backing node is safe.
 */
int bdrv_set_backing_hd(BlockDriverState *bs, BlockDriverState *new_backing,
                        Error **errp)
{
    for (BlockDriverState *p = new_backing; p; p = bdrv_backing_bs(p)) {
        if (p == bs) {
            error_setg(errp, "Making '%s' a backing file of '%s' would "
                       "create a loop", new_backing->node_name,
                       bs->node_name);
            return -ELOOP;
        }
    }
    if (new_backing) {
        bdrv_ref(new_backing);
    }
    if (bs->backing) {
        bdrv_unref_child(bs, bs->backing);
    }
    if (new_backing) {
        bdrv_attach_child(bs, new_backing, "backing", BDRV_CHILD_BACKING,
                          &error_abort);
        bdrv_unref(new_backing);
    }
    bdrv_refresh_limits(bs, NULL);
    return 0;
}


/* ---- Creation */

/* Fail when opts holds a key missing from drv's creation option list. */
static bool bdrv_check_create_opts(const BlockDriver *drv, QDict *opts,
                                   Error **errp)
{
    g_autofree const char **keys = qdict_keys(opts);

    for (int i = 0; keys[i]; i++) {
        bool known = false;

        for (int j = 0; drv->create_opts && drv->create_opts[j]; j++) {
            known = known || !strcmp(keys[i], drv->create_opts[j]);
        }
        if (!known) {
            error_setg(errp, "Invalid parameter '%s'", keys[i]);
            return false;
        }
    }
    return true;
}

/*
 * opts is not consumed: the driver works on a copy. With a create_opts
 * list, unknown options are refused before any file is touched
 * (qemu-img's "Invalid parameter 'foo'"); drivers without one get the
 * leftover check afterwards.
 */
int bdrv_create(const BlockDriver *drv, const char *filename, QDict *opts,
                Error **errp)
{
    g_autoptr(QDict) work = opts ? qdict_clone(opts) : qdict_new();
    int ret;

    if (!drv->bdrv_create) {
        error_setg(errp, "Driver '%s' does not support image creation",
                   drv->format_name);
        return -ENOTSUP;
    }
    if (drv->create_opts && !bdrv_check_create_opts(drv, work, errp)) {
        return -EINVAL;
    }
    trace_bdrv_create(filename, drv->format_name);
    ret = drv->bdrv_create(filename, work, errp);
    if (ret < 0) {
        return ret;
    }
    if (!drv->create_opts && qdict_size(work)) {
        g_autofree const char **keys = qdict_keys(work);

        error_setg(errp, "Invalid parameter '%s'", keys[0]);
        return -EINVAL;
    }
    return 0;
}

/* The protocol follows the name: "proto:" prefix, block device or file. */
int bdrv_create_file(const char *filename, QDict *opts, Error **errp)
{
    const BlockDriver *drv = bdrv_default_protocol(filename, errp);

    return drv ? bdrv_create(drv, filename, opts, errp) : -EINVAL;
}

static const char *const prealloc_mode_names[] = {
    [PREALLOC_MODE_OFF] = "off",
    [PREALLOC_MODE_METADATA] = "metadata",
    [PREALLOC_MODE_FALLOC] = "falloc",
    [PREALLOC_MODE_FULL] = "full",
};

int prealloc_mode_parse(const char *str, PreallocMode *mode)
{
    for (size_t i = 0; i < ARRAY_SIZE(prealloc_mode_names); i++) {
        if (!strcmp(str, prealloc_mode_names[i])) {
            *mode = i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *prealloc_mode_str(PreallocMode mode)
{
    return mode < ARRAY_SIZE(prealloc_mode_names) ?
           prealloc_mode_names[mode] : "invalid";
}

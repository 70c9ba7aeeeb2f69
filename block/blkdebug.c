/*
 * Filter driver "blkdebug": injects I/O errors for tests, as QEMU's
 *   --blockdev driver=blkdebug,node-name=dbg,image=NODE,
 *       inject-error.0.event=read_aio,inject-error.0.errno=5,
 *       inject-error.0.sector=N,inject-error.0.once=on
 *
 * State: an ordered list of rules parsed at open; nothing else. The node
 * has one child called "image" (a node reference or inline options) and
 * forwards every call to it unless a rule matches the request first.
 *
 * Rules and events. QEMU arms a rule when a driver above fires the
 * rule's event (BLKDBG_EVENT) and then fails the next request of a
 * matching I/O type. qblk's drivers fire no events, so here the request
 * through this node is itself the event: a read fires read_aio, a write
 * write_aio and pwritev, a zero write write_aio and pwritev_zero, a
 * discard write_aio, a block-status query read_aio, the flush callbacks
 * flush_to_os / flush_to_disk. A rule fails a request when its event is
 * one the request fires, the request's I/O type is in the rule's iotype
 * (default: every type but block-status, as QEMU) and the request covers
 * the rule's sector (absent or -1: any request; flushes cover no sector).
 * A rule with once=on is removed after its first hit; errno 0 never
 * fails. "immediately" is accepted: errors are always returned at once.
 *
 * Safety: the rules are only touched on the main loop thread (open,
 * close and the coroutines of requests), so no lock is needed. The
 * filter keeps no data; all ordering of writes and flushes is the
 * child's.
 *
 * Not supported (refused at open): "config" files, "set-state" rules,
 * "state" conditions, and the "blkdebug:" filename syntax.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qapi/error.h"
#include "qapi/qapi-types.h"
#include "qemu/qdict.h"
#include "trace.h"

/* Bytes per sector of the "sector" option (QEMU's BDRV_SECTOR_SIZE). */
#define BLKDEBUG_SECTOR_SIZE 512

/* The most rules one node accepts (inject-error.0 ... .N-1). */
#define BLKDEBUG_MAX_RULES 1024

/* One inject-error rule, as parsed from inject-error.N.* */
typedef struct BlkdebugRule {
    BlkdebugEvent event;
    uint64_t iotype_mask;   /* bits 1 << BlkdebugIOType */
    int error;              /* positive errno; 0 never fails */
    int64_t offset;         /* byte offset of the sector, -1 = any */
    bool once;
    bool immediately;
} BlkdebugRule;

/* Per-node state (bs->opaque). */
typedef struct BDRVBlkdebugState {
    GList *rules;           /* BlkdebugRule *, in option order */
    uint64_t align;         /* "align" option, 0 = the child's */
} BDRVBlkdebugState;

/* Every I/O type but block-status: QEMU's default iotype. */
#define BLKDEBUG_DEFAULT_IOTYPES \
    ((1ULL << BlkdebugIOType__MAX) - 1 - \
     (1ULL << BLKDEBUG_IO_TYPE_BLOCK_STATUS))

/* ---- Parsing */

/* Signed integer option key of d into *out (def when absent). */
static bool blkdebug_get_int(QDict *d, const char *prefix, const char *key,
                             int64_t def, int64_t *out, Error **errp)
{
    const char *s = qdict_get_try_str(d, key);
    char *end;

    *out = def;
    if (!s) {
        return true;
    }
    errno = 0;
    *out = g_ascii_strtoll(s, &end, 0);
    if (!*s || *end || errno) {
        error_setg(errp, "Parameter '%s%s' expects a number", prefix, key);
        return false;
    }
    qdict_del(d, key);
    return true;
}

/* Boolean option key of d into *out (false when absent). */
static bool blkdebug_get_bool(QDict *d, const char *key, bool *out,
                              Error **errp)
{
    if (!qdict_get_bool(d, key, false, out, errp)) {
        return false;
    }
    qdict_del(d, key);
    return true;
}

/* Event name of rule options d; sets errp as QEMU does when bad. */
static bool blkdebug_parse_event(QDict *d, BlkdebugRule *rule, Error **errp)
{
    const char *name = qdict_get_try_str(d, "event");
    int ev;

    if (!name) {
        error_setg(errp, "Missing event name for rule");
        return false;
    }
    ev = BlkdebugEvent_parse(name);
    if (ev < 0) {
        error_setg(errp, "Invalid event name \"%s\"", name);
        return false;
    }
    rule->event = ev;
    qdict_del(d, "event");
    return true;
}

/* I/O type of rule options d (default: QEMU's set of types). */
static bool blkdebug_parse_iotype(QDict *d, BlkdebugRule *rule, Error **errp)
{
    const char *name = qdict_get_try_str(d, "iotype");
    int t;

    rule->iotype_mask = BLKDEBUG_DEFAULT_IOTYPES;
    if (!name) {
        return true;
    }
    t = BlkdebugIOType_parse(name);
    if (t < 0) {
        error_setg(errp, "Invalid I/O type \"%s\"", name);
        return false;
    }
    rule->iotype_mask = 1ULL << t;
    qdict_del(d, "iotype");
    return true;
}

/* Fill rule from the options of one inject-error entry (consumed). */
static bool blkdebug_parse_rule(QDict *d, const char *prefix,
                                BlkdebugRule *rule, Error **errp)
{
    int64_t err, sector;
    g_autofree const char **left = NULL;

    if (!blkdebug_parse_event(d, rule, errp) ||
        !blkdebug_parse_iotype(d, rule, errp) ||
        !blkdebug_get_int(d, prefix, "errno", EIO, &err, errp) ||
        !blkdebug_get_int(d, prefix, "sector", -1, &sector, errp) ||
        !blkdebug_get_bool(d, "once", &rule->once, errp) ||
        !blkdebug_get_bool(d, "immediately", &rule->immediately, errp)) {
        return false;
    }
    if (err < 0 || err > 4095) {
        error_setg(errp, "Parameter '%serrno' expects an errno value", prefix);
        return false;
    }
    if (sector < -1 || sector > INT64_MAX / BLKDEBUG_SECTOR_SIZE) {
        error_setg(errp, "Parameter '%ssector' expects a sector number or -1",
                   prefix);
        return false;
    }
    rule->error = err;
    rule->offset = sector < 0 ? -1 : sector * BLKDEBUG_SECTOR_SIZE;
    left = qdict_keys(d);
    if (left[0]) {
        error_setg(errp, "Invalid parameter '%s%s'", prefix, left[0]);
        return false;
    }
    return true;
}

/* Parse inject-error.0 ... .N (consumed from options) into s->rules. */
static bool blkdebug_parse_rules(BDRVBlkdebugState *s, QDict *options,
                                 Error **errp)
{
    g_autoptr(QDict) all = qdict_extract_subqdict(options, "inject-error.");
    g_autofree const char **left = NULL;

    for (int i = 0; i < BLKDEBUG_MAX_RULES; i++) {
        g_autofree char *key = g_strdup_printf("%d.", i);
        g_autofree char *prefix = g_strdup_printf("inject-error.%d.", i);
        g_autoptr(QDict) d = qdict_extract_subqdict(all, key);
        BlkdebugRule *rule;

        if (qdict_size(d) == 0) {
            break;
        }
        rule = g_new0(BlkdebugRule, 1);
        s->rules = g_list_append(s->rules, rule);
        if (!blkdebug_parse_rule(d, prefix, rule, errp)) {
            return false;
        }
    }
    left = qdict_keys(all);
    if (left[0]) {
        error_setg(errp, "Invalid parameter 'inject-error.%s'", left[0]);
        return false;
    }
    return true;
}

/* Refuse QEMU blkdebug options this driver does not implement. */
static bool blkdebug_check_unsupported(QDict *options, Error **errp)
{
    static const char *const unsupported[] = {
        "config", "set-state", "take-child-perms", "share-child-perms",
        "max-transfer", "opt-write-zero", "max-write-zero",
        "opt-discard", "max-discard",
    };

    for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++) {
        g_autofree char *sub = g_strdup_printf("%s.", unsupported[i]);

        if (qdict_haskey(options, unsupported[i]) ||
            qdict_has_prefixed_entries(options, sub)) {
            error_setg(errp, "blkdebug: option '%s' is not supported",
                       unsupported[i]);
            return false;
        }
    }
    return true;
}

/* Free every rule of s. */
static void blkdebug_free_rules(BDRVBlkdebugState *s)
{
    g_list_free_full(s->rules, g_free);
    s->rules = NULL;
}

/* ---- Open and close */

/*
 * Parse the rules and "align", then open or attach the "image" child.
 * On failure nothing is left allocated (the core frees the node).
 */
static int blkdebug_open(BlockDriverState *bs, QDict *options, int flags,
                         Error **errp)
{
    BDRVBlkdebugState *s = bs->opaque;
    uint64_t align;

    if (!blkdebug_check_unsupported(options, errp) ||
        !blkdebug_parse_rules(s, options, errp)) {
        goto fail;
    }
    if (!qdict_get_uint(options, "align", 0, &align, errp)) {
        goto fail;
    }
    if (align && (align & (align - 1) || align > (1 << 30))) {
        error_setg(errp, "Cannot meet constraints with align %" PRIu64,
                   align);
        goto fail;
    }
    qdict_del(options, "align");
    s->align = align;
    bs->file = bdrv_open_child(NULL, options, "image", bs,
                               BDRV_CHILD_FILTERED | BDRV_CHILD_FILE, false,
                               errp);
    if (!bs->file) {
        goto fail;
    }
    g_strlcpy(bs->filename, bs->file->bs->filename, sizeof(bs->filename));
    trace_blkdebug_open(bs, bs->file->bs, g_list_length(s->rules));
    return 0;

fail:
    blkdebug_free_rules(s);
    return -EINVAL;
}

/* The child is dropped by the core; only the rules are ours. */
static void blkdebug_close(BlockDriverState *bs)
{
    blkdebug_free_rules(bs->opaque);
}

/* Requests must be aligned to "align" when given (else the child's). */
static void blkdebug_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVBlkdebugState *s = bs->opaque;

    if (s->align > bs->bl.request_alignment) {
        bs->bl.request_alignment = s->align;
    }
}

/* ---- Rule matching */

/* Does a request of type t fire event ev (see the design note)? */
static bool blkdebug_fires(BlkdebugIOType t, BlkdebugEvent ev)
{
    switch (t) {
    case BLKDEBUG_IO_TYPE_READ:
    case BLKDEBUG_IO_TYPE_BLOCK_STATUS:
        return ev == BLKDBG_READ_AIO;
    case BLKDEBUG_IO_TYPE_WRITE:
        return ev == BLKDBG_WRITE_AIO || ev == BLKDBG_PWRITEV;
    case BLKDEBUG_IO_TYPE_WRITE_ZEROES:
        return ev == BLKDBG_WRITE_AIO || ev == BLKDBG_PWRITEV_ZERO;
    case BLKDEBUG_IO_TYPE_DISCARD:
        return ev == BLKDBG_WRITE_AIO;
    default:
        return false;   /* flushes are matched by their callbacks */
    }
}

/* Does rule apply to [offset, offset + bytes) (bytes 0: no sector)? */
static bool blkdebug_covers(const BlkdebugRule *rule, int64_t offset,
                            int64_t bytes)
{
    return rule->offset < 0 ||
           (rule->offset >= offset && rule->offset < offset + bytes);
}

/*
 * Apply the first rule matching a request of type t firing event ev
 * (-1: every event t fires) on [offset, offset + bytes): returns -errno
 * to fail the request with, or 0 to pass it on. A once rule goes away.
 */
static int blkdebug_check(BlockDriverState *bs, BlkdebugIOType t, int ev,
                          int64_t offset, int64_t bytes)
{
    BDRVBlkdebugState *s = bs->opaque;

    for (GList *l = s->rules; l; l = l->next) {
        BlkdebugRule *rule = l->data;
        int error = rule->error;

        if (!(rule->iotype_mask & (1ULL << t)) ||
            (ev >= 0 ? rule->event != (BlkdebugEvent)ev
                     : !blkdebug_fires(t, rule->event)) ||
            !blkdebug_covers(rule, offset, bytes) || !error) {
            continue;
        }
        trace_blkdebug_inject(bs, BlkdebugIOType_str(t),
                              BlkdebugEvent_str(rule->event), offset, bytes,
                              error, rule->once);
        if (rule->once) {
            s->rules = g_list_delete_link(s->rules, l);
            g_free(rule);
        }
        return -error;
    }
    return 0;
}

/* ---- Data path: check, then pass through to the image child */

/* Reads (prefetches too: qiov NULL) keep their copy-on-read flags. */
static int coroutine_fn blkdebug_co_preadv(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov,
                                           BdrvRequestFlags flags)
{
    int ret = blkdebug_check(bs, BLKDEBUG_IO_TYPE_READ, -1, offset, bytes);

    trace_blkdebug_co_preadv(bs, offset, bytes, flags, ret);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_preadv(bs->file, offset, bytes, qiov, flags);
}

/* Data writes fire write_aio and pwritev. */
static int coroutine_fn blkdebug_co_pwritev(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            QEMUIOVector *qiov,
                                            BdrvRequestFlags flags)
{
    int ret = blkdebug_check(bs, BLKDEBUG_IO_TYPE_WRITE, -1, offset, bytes);

    trace_blkdebug_co_pwritev(bs, offset, bytes, flags, ret);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwritev(bs->file, offset, bytes, qiov, flags);
}

/* Zero writes fire write_aio and pwritev_zero; flags pass unchanged. */
static int coroutine_fn blkdebug_co_pwrite_zeroes(BlockDriverState *bs,
                                                  int64_t offset,
                                                  int64_t bytes,
                                                  BdrvRequestFlags flags)
{
    int ret = blkdebug_check(bs, BLKDEBUG_IO_TYPE_WRITE_ZEROES, -1, offset,
                             bytes);

    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwrite_zeroes(bs->file, offset, bytes, flags);
}

/* Discards fire write_aio (QEMU's default iotype includes them). */
static int coroutine_fn blkdebug_co_pdiscard(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes)
{
    int ret = blkdebug_check(bs, BLKDEBUG_IO_TYPE_DISCARD, -1, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pdiscard(bs->file, offset, bytes);
}

/* Flushes: the core flushes the child after these; they only fail. */
static int coroutine_fn blkdebug_co_flush_to_os(BlockDriverState *bs)
{
    return blkdebug_check(bs, BLKDEBUG_IO_TYPE_FLUSH, BLKDBG_FLUSH_TO_OS,
                          0, 0);
}

static int coroutine_fn blkdebug_co_flush_to_disk(BlockDriverState *bs)
{
    return blkdebug_check(bs, BLKDEBUG_IO_TYPE_FLUSH, BLKDBG_FLUSH_TO_DISK,
                          0, 0);
}

/* Status is the child's (after a block-status rule had its say). */
static int coroutine_fn blkdebug_co_block_status(BlockDriverState *bs,
                                                 bool want_zero,
                                                 int64_t offset,
                                                 int64_t bytes, int64_t *pnum,
                                                 int64_t *map,
                                                 BlockDriverState **file)
{
    int ret = blkdebug_check(bs, BLKDEBUG_IO_TYPE_BLOCK_STATUS, -1, offset,
                             bytes);

    if (ret < 0) {
        return ret;
    }
    *pnum = bytes;
    *map = offset;
    *file = bs->file->bs;
    return BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
}

/* Resizing is the image's business; no rule applies to it. */
static int coroutine_fn blkdebug_co_truncate(BlockDriverState *bs,
                                             int64_t offset, bool exact,
                                             PreallocMode prealloc,
                                             BdrvRequestFlags flags,
                                             Error **errp)
{
    return bdrv_co_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

/* The image's guest-visible length. */
static int64_t blkdebug_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

/* The child's cluster size, so overlap grains match below and here. */
static int blkdebug_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return bdrv_get_info(bs->file->bs, bdi);
}

const BlockDriver bdrv_blkdebug = {
    .format_name = "blkdebug",
    .instance_size = sizeof(BDRVBlkdebugState),
    .is_filter = true,

    .bdrv_open = blkdebug_open,
    .bdrv_close = blkdebug_close,
    .bdrv_refresh_limits = blkdebug_refresh_limits,
    .bdrv_getlength = blkdebug_getlength,
    .bdrv_get_info = blkdebug_get_info,

    .bdrv_co_preadv = blkdebug_co_preadv,
    .bdrv_co_pwritev = blkdebug_co_pwritev,
    .bdrv_co_pwrite_zeroes = blkdebug_co_pwrite_zeroes,
    .bdrv_co_pdiscard = blkdebug_co_pdiscard,
    .bdrv_co_flush_to_os = blkdebug_co_flush_to_os,
    .bdrv_co_flush_to_disk = blkdebug_co_flush_to_disk,
    .bdrv_co_block_status = blkdebug_co_block_status,
    .bdrv_co_truncate = blkdebug_co_truncate,

    /* Everything is passed through; the child's core emulates the rest. */
    .supported_write_flags = BDRV_REQ_FUA,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK |
                            BDRV_REQ_FUA,
};

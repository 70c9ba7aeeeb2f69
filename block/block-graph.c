/*
 * Graph changes of live nodes (block/block-graph.c): moving every user of
 * a node onto another (bdrv_replace_node: a snapshot's overlay, an active
 * commit's pivot), stacking an overlay (bdrv_append), and the op blockers
 * with which block jobs hold the nodes they use.
 *
 * Main loop thread only. Each change is checked completely before
 * anything moves, and done inside a drained section, so no request sees
 * a half-changed graph and a refused change leaves the graph as it was.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "trace.h"

/* ---- Graph changes (live snapshots) */

/* True when node is anc or lies below it (through any child). */
static bool bdrv_is_below(BlockDriverState *node, BlockDriverState *anc)
{
    if (node == anc) {
        return true;
    }
    for (GSList *l = anc->children; l; l = l->next) {
        if (bdrv_is_below(node, ((BdrvChild *)l->data)->bs)) {
            return true;
        }
    }
    return false;
}

/* Whether replacing from by to moves c (see bdrv_replace_node). */
static bool bdrv_child_moves(BdrvChild *c, BlockDriverState *to)
{
    return !c->pinned && !(c->parent == to && to->backing == c);
}

/*
 * Fail when moving the parents of from onto to would put a node below
 * itself: a moving parent node that is to or one of to's descendants.
 */
static bool bdrv_replace_check(BlockDriverState *from, BlockDriverState *to,
                               Error **errp)
{
    if (from == to) {
        error_setg(errp, "Cannot replace node '%s' by itself",
                   from->node_name);
        return false;
    }
    for (GSList *l = from->parents; l; l = l->next) {
        BdrvChild *c = l->data;

        if (bdrv_child_moves(c, to) && c->parent &&
            bdrv_is_below(c->parent, to)) {
            error_setg(errp, "Making '%s' the %s child of '%s' would create "
                       "a cycle", to->node_name, c->name,
                       c->parent->node_name);
            return false;
        }
    }
    return true;
}

/*
 * Move each moving parent link of from over to to, one reference each;
 * from is held by an extra reference until every link has moved.
 */
int bdrv_replace_node(BlockDriverState *from, BlockDriverState *to,
                      Error **errp)
{
    GSList *snapshot;

    if (!bdrv_replace_check(from, to, errp)) {
        return -EINVAL;
    }
    bdrv_ref(from);
    snapshot = g_slist_copy(from->parents);
    for (GSList *l = snapshot; l; l = l->next) {
        BdrvChild *c = l->data;

        if (!bdrv_child_moves(c, to)) {
            continue;
        }
        trace_bdrv_replace_child(c, c->parent, c->name, from, to);
        from->parents = g_slist_remove(from->parents, c);
        bdrv_ref(to);
        c->bs = to;
        to->parents = g_slist_append(to->parents, c);
        if (c->parent) {
            bdrv_refresh_limits(c->parent, NULL);
        }
        bdrv_unref(from);
    }
    g_slist_free(snapshot);
    bdrv_unref(from);
    return 0;
}

/*
 * Checks first (nothing changes on failure), then, inside a drained
 * section of both nodes: link bs under overlay, move bs's users up.
 * Requests arriving meanwhile park before they look up their node, so
 * they resume on the overlay. (No plain bdrv_drain() first: under a
 * steady guest load it would wait for an idle moment that may never
 * come.)
 */
int bdrv_append(BlockDriverState *overlay, BlockDriverState *bs,
                Error **errp)
{
    int ret;

    trace_bdrv_append(overlay, bs);
    if (overlay->backing) {
        error_setg(errp, "The overlay already has a backing image");
        return -EINVAL;
    }
    if (!overlay->drv || !overlay->drv->supports_backing) {
        error_setg(errp, "The overlay does not support backing images");
        return -ENOTSUP;
    }
    if (bdrv_is_below(overlay, bs)) {
        error_setg(errp, "Making '%s' a backing file of '%s' would create "
                   "a loop", bs->node_name, overlay->node_name);
        return -ELOOP;
    }
    if (!bdrv_replace_check(bs, overlay, errp)) {
        return -EINVAL;
    }
    bdrv_ref(bs);
    bdrv_drained_begin(bs);
    bdrv_drained_begin(overlay);
    ret = bdrv_set_backing_hd(overlay, bs, errp);
    if (ret == 0) {
        ret = bdrv_replace_node(bs, overlay, errp);
        if (ret < 0) {
            bdrv_set_backing_hd(overlay, NULL, &error_abort);
        }
    }
    bdrv_drained_end(overlay);
    bdrv_drained_end(bs);
    bdrv_unref(bs);
    trace_bdrv_append_done(overlay, bs, ret);
    return ret;
}

/* QEMU's op blocker of backing nodes, with its text. */
bool bdrv_check_not_backing(BlockDriverState *bs, Error **errp)
{
    for (GSList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;

        if (c->parent && c->parent->backing == c) {
            error_setg(errp, "Node '%s' is busy: node is used as backing hd "
                       "of '%s'", bs->node_name, c->parent->node_name);
            return false;
        }
    }
    return true;
}

/* ---- Op blockers (block jobs hold their nodes with a reason) */

/* How a busy node is named: the daemon's drive name, else the node name. */
static const char *(*bdrv_device_name_fn)(BlockDriverState *bs);

void bdrv_set_device_name_fn(const char *(*fn)(BlockDriverState *bs))
{
    bdrv_device_name_fn = fn;
}

const char *bdrv_get_device_or_node_name(BlockDriverState *bs)
{
    const char *name = bdrv_device_name_fn ? bdrv_device_name_fn(bs) : NULL;

    return name && *name ? name : bs->node_name;
}

void bdrv_op_block_all(BlockDriverState *bs, Error *reason)
{
    /* Newest first: the busy message names the latest holder, as QEMU. */
    bs->op_blockers = g_slist_prepend(bs->op_blockers, reason);
}

void bdrv_op_unblock_all(BlockDriverState *bs, Error *reason)
{
    bs->op_blockers = g_slist_remove(bs->op_blockers, reason);
}

bool bdrv_op_is_blocked(BlockDriverState *bs, Error **errp)
{
    Error *reason;

    if (!bs->op_blockers) {
        return false;
    }
    reason = bs->op_blockers->data;
    error_setg(errp, "Node '%s' is busy: %s",
               bdrv_get_device_or_node_name(bs), error_get_pretty(reason));
    return true;
}

void bdrv_count_parents(BlockDriverState *bs, int *node_parents,
                        int *root_parents)
{
    int nodes = 0, roots = 0;

    for (GSList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;

        if (c->pinned) {
            continue;
        }
        if (c->parent) {
            nodes++;
        } else {
            roots++;
        }
    }
    if (node_parents) {
        *node_parents = nodes;
    }
    if (root_parents) {
        *root_parents = roots;
    }
}

/* Depth-first maximum of parallel_requests (a DAG: depth bounds it). */
static uint32_t bdrv_parallel_hint_below(BlockDriverState *bs, int depth)
{
    uint32_t best = bs->bl.parallel_requests;
    GSList *l;

    if (depth > 64) {
        return best;
    }
    for (l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;

        best = MAX(best, bdrv_parallel_hint_below(c->bs, depth + 1));
    }
    return best;
}

uint32_t bdrv_chain_parallel_hint(BlockDriverState *bs)
{
    return bs ? bdrv_parallel_hint_below(bs, 0) : 0;
}

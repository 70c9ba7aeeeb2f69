/*
 * I/O error details: the words a driver has for a failure that the data
 * path can only carry as -errno (include/block/block.h).
 *
 * State: one string per node (bs->io_error_detail) and a global counter
 * that orders notes, so a reporter asks "what failed below this node
 * since I started" and gets the latest answer. Main loop thread only;
 * the string is freed with its node.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "trace.h"

static uint64_t io_error_seq;

void bdrv_note_io_error(BlockDriverState *bs, const char *fmt, ...)
{
    va_list ap;

    g_free(bs->io_error_detail);
    va_start(ap, fmt);
    bs->io_error_detail = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    bs->io_error_seq = ++io_error_seq;
    trace_bdrv_note_io_error(bs, bs->io_error_detail);
}

uint64_t bdrv_io_error_seq(void)
{
    return io_error_seq;
}

/* Depth-first over bs's subtree: the note with the largest seq > seq. */
static BlockDriverState *bdrv_latest_note(BlockDriverState *bs, uint64_t seq,
                                          GHashTable *seen)
{
    BlockDriverState *best = NULL;
    GSList *l;

    if (!bs || g_hash_table_contains(seen, bs)) {
        return NULL;
    }
    g_hash_table_add(seen, bs);
    if (bs->io_error_detail && bs->io_error_seq > seq) {
        best = bs;
    }
    for (l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        BlockDriverState *b = bdrv_latest_note(c->bs, seq, seen);

        if (b && (!best || b->io_error_seq > best->io_error_seq)) {
            best = b;
        }
    }
    return best;
}

const char *bdrv_find_io_error_detail(BlockDriverState *bs, uint64_t seq)
{
    GHashTable *seen = g_hash_table_new(NULL, NULL);
    BlockDriverState *b = bdrv_latest_note(bs, seq, seen);

    g_hash_table_destroy(seen);
    return b ? b->io_error_detail : NULL;
}

char *bdrv_io_error_message(BlockDriverState *bs, int ret, uint64_t seq)
{
    const char *detail = bs ? bdrv_find_io_error_detail(bs, seq) : NULL;

    if (detail) {
        return g_strdup_printf("%s (%s)", g_strerror(-ret), detail);
    }
    return g_strdup(g_strerror(-ret));
}

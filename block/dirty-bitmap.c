/*
 * Dirty bitmaps (see include/block/dirty-bitmap.h for the contract).
 *
 * State: one flat array of 64-bit words per bitmap, one bit per granule
 * (granularity = 1 << gran_bits bytes), covering the node's length; the
 * number of set bits is kept up to date so counts are O(1). Bits past the
 * last (partial) granule are always zero, which lets the scans below take
 * whole words without masking the tail.
 *
 * Scans (next dirty / next clean bit) test a word at a time and skip
 * all-zero (or all-one) words with one comparison, so finding the next
 * dirty area of a mostly clean bitmap costs about one load per 64
 * granules (4 MiB at 64 KiB granularity).
 *
 * The bitmaps of a node hang off bs->dirty_bitmaps in creation order;
 * when the list is empty the request path pays one pointer test. The
 * node's length can change (truncate, a protocol node growing by a write
 * past its end): bdrv_set_dirty() grows a bitmap that is too short and
 * bdrv_dirty_bitmap_truncate() follows a resize both ways.
 *
 * Main loop thread only; no locking (requests run as coroutines on it).
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "qapi/error.h"
#include "trace.h"

/* QEMU's limit on bitmap names (they can be stored in qcow2 there). */
#define BDRV_BITMAP_MAX_NAME_SIZE 1023
#define BITS_PER_WORD 64

struct BdrvDirtyBitmap {
    BlockDriverState *bs;
    char *name;             /* NULL for a job's anonymous bitmap */
    uint32_t granularity;
    int gran_bits;          /* log2(granularity) */
    int64_t size;           /* bytes covered */
    int64_t nb_bits;        /* granules covering size */
    uint64_t *words;        /* DIV_ROUND_UP(nb_bits, 64) words */
    int64_t count;          /* set bits */
    bool enabled;
    bool busy;
};

/* ---- The bit array */

static int64_t words_for(int64_t nb_bits)
{
    return DIV_ROUND_UP(nb_bits, BITS_PER_WORD);
}

/* Mask of bits [lo, hi) inside one word (0 <= lo < hi <= 64). */
static uint64_t word_mask(int lo, int hi)
{
    uint64_t upper = hi == BITS_PER_WORD ? ~0ULL : (1ULL << hi) - 1;

    return upper & ~((1ULL << lo) - 1);
}

/* Set (or clear) bits [first, last] and keep the count right. */
static void bits_change(BdrvDirtyBitmap *b, int64_t first, int64_t last,
                        bool set)
{
    for (int64_t w = first / BITS_PER_WORD; w <= last / BITS_PER_WORD; w++) {
        int lo = w == first / BITS_PER_WORD ? first % BITS_PER_WORD : 0;
        int hi = w == last / BITS_PER_WORD ? last % BITS_PER_WORD + 1
                                           : BITS_PER_WORD;
        uint64_t mask = word_mask(lo, hi);
        uint64_t old = b->words[w];
        uint64_t new = set ? old | mask : old & ~mask;

        b->count += __builtin_popcountll(new) - __builtin_popcountll(old);
        b->words[w] = new;
    }
}

/*
 * First bit in [from, limit) whose value is want, or limit (limit <=
 * nb_bits). Whole words that cannot contain it are skipped with one test;
 * the scan never looks past limit's word, so a caller bounded by a small
 * range pays for that range only.
 */
static int64_t bits_find(const BdrvDirtyBitmap *b, int64_t from, bool want,
                         int64_t limit)
{
    int64_t last_w = (limit - 1) / BITS_PER_WORD;
    int64_t w = from / BITS_PER_WORD;
    uint64_t cur;

    if (from >= limit) {
        return limit;
    }
    cur = (want ? b->words[w] : ~b->words[w]) & word_mask(from % 64, 64);
    while (!cur) {
        if (++w > last_w) {
            return limit;
        }
        cur = want ? b->words[w] : ~b->words[w];
    }
    return MIN(w * BITS_PER_WORD + __builtin_ctzll(cur), limit);
}

/* Granule index range [*first, *last] touching [offset, offset + bytes),
 * clipped to the bitmap; false when nothing of it is inside. */
static bool range_to_bits(const BdrvDirtyBitmap *b, int64_t offset,
                          int64_t bytes, int64_t *first, int64_t *last)
{
    int64_t end = MIN(offset + bytes, b->size);

    if (offset < 0 || bytes <= 0 || offset >= end) {
        return false;
    }
    *first = offset >> b->gran_bits;
    *last = (end - 1) >> b->gran_bits;
    return true;
}

/* Cover size bytes: new granules are clean, dropped ones are forgotten. */
static void bitmap_resize(BdrvDirtyBitmap *b, int64_t size)
{
    int64_t nb_bits = DIV_ROUND_UP(size, (int64_t)b->granularity);
    int64_t old_words = words_for(b->nb_bits);
    int64_t new_words = words_for(nb_bits);

    trace_bdrv_dirty_bitmap_resize(b, b->size, size);
    if (nb_bits < b->nb_bits) {
        /* Clear the dropped tail first so the count stays exact. */
        bits_change(b, nb_bits, b->nb_bits - 1, false);
    }
    b->words = g_renew(uint64_t, b->words, MAX(new_words, 1));
    if (new_words > old_words) {
        memset(b->words + old_words, 0,
               (new_words - old_words) * sizeof(uint64_t));
    }
    b->nb_bits = nb_bits;
    b->size = size;
}

/* ---- Life cycle */

/* QEMU's default: the cluster size within [4 KiB, 64 KiB], else 64 KiB. */
static uint32_t default_granularity(BlockDriverState *bs)
{
    BlockDriverInfo bdi = { 0 };

    if (bdrv_get_info(bs, &bdi) >= 0 && bdi.cluster_size > 0) {
        return MIN(64 * KiB, MAX(4 * KiB, bdi.cluster_size));
    }
    return 64 * KiB;
}

/*
 * Checks in QEMU's order (name clash, name length, granularity, node
 * length), so the first error a user sees is the one QEMU reports.
 */
BdrvDirtyBitmap *bdrv_create_dirty_bitmap(BlockDriverState *bs,
                                          uint32_t granularity,
                                          const char *name, Error **errp)
{
    BdrvDirtyBitmap *b;
    int64_t size;

    if (name && bdrv_find_dirty_bitmap(bs, name)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return NULL;
    }
    if (name && strlen(name) > BDRV_BITMAP_MAX_NAME_SIZE) {
        error_setg(errp, "Bitmap name too long: %s", name);
        return NULL;
    }
    if (granularity == 0) {
        granularity = default_granularity(bs);
    }
    if (granularity < 512 || (granularity & (granularity - 1))) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return NULL;
    }
    size = bdrv_getlength(bs);
    if (size < 0) {
        error_setg_errno(errp, -size, "could not get length of device");
        return NULL;
    }
    b = g_new0(BdrvDirtyBitmap, 1);
    b->bs = bs;
    b->name = g_strdup(name);
    b->granularity = granularity;
    b->gran_bits = __builtin_ctz(granularity);
    b->enabled = true;
    bitmap_resize(b, size);
    bs->dirty_bitmaps = g_slist_append(bs->dirty_bitmaps, b);
    trace_bdrv_create_dirty_bitmap(bs, b, name ? name : "", granularity,
                                   size);
    return b;
}

/* Unlink from the node and free; NULL is a no-op. Busy is not checked. */
void bdrv_release_dirty_bitmap(BdrvDirtyBitmap *bitmap)
{
    BlockDriverState *bs;

    if (!bitmap) {
        return;
    }
    bs = bitmap->bs;
    trace_bdrv_release_dirty_bitmap(bs, bitmap,
                                    bitmap->name ? bitmap->name : "");
    bs->dirty_bitmaps = g_slist_remove(bs->dirty_bitmaps, bitmap);
    g_free(bitmap->words);
    g_free(bitmap->name);
    g_free(bitmap);
}

void bdrv_release_all_dirty_bitmaps(BlockDriverState *bs)
{
    while (bs->dirty_bitmaps) {
        bdrv_release_dirty_bitmap(bs->dirty_bitmaps->data);
    }
}

/* Named bitmaps only: an anonymous one is never found by name. */
BdrvDirtyBitmap *bdrv_find_dirty_bitmap(BlockDriverState *bs,
                                        const char *name)
{
    if (!name) {
        return NULL;
    }
    for (GSList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *b = l->data;

        if (b->name && !strcmp(b->name, name)) {
            return b;
        }
    }
    return NULL;
}

/* Linear in the number of bitmaps of the node (a handful at most). */
BdrvDirtyBitmap *bdrv_dirty_bitmap_next(BlockDriverState *bs,
                                        BdrvDirtyBitmap *bitmap)
{
    GSList *l;

    if (!bitmap) {
        return bs->dirty_bitmaps ? bs->dirty_bitmaps->data : NULL;
    }
    l = g_slist_find(bs->dirty_bitmaps, bitmap);
    return l && l->next ? l->next->data : NULL;
}

/* ---- Accessors */

const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->name;
}

uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->granularity;
}

int64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->size;
}

void bdrv_dirty_bitmap_set_enabled(BdrvDirtyBitmap *bitmap, bool enabled)
{
    bitmap->enabled = enabled;
}

bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->enabled;
}

void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *bitmap, bool busy)
{
    bitmap->busy = busy;
}

bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->busy;
}

/* ---- Bits */

void bdrv_set_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                           int64_t bytes)
{
    int64_t first, last;

    if (range_to_bits(bitmap, offset, bytes, &first, &last)) {
        bits_change(bitmap, first, last, true);
    }
}

void bdrv_reset_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                             int64_t bytes)
{
    int64_t first, last;

    if (range_to_bits(bitmap, offset, bytes, &first, &last)) {
        bits_change(bitmap, first, last, false);
    }
}

/* Every bit clean; the tail bits past nb_bits were clean already. */
void bdrv_clear_dirty_bitmap(BdrvDirtyBitmap *bitmap)
{
    memset(bitmap->words, 0, words_for(bitmap->nb_bits) * sizeof(uint64_t));
    bitmap->count = 0;
}

bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *bitmap, int64_t offset)
{
    int64_t bit;

    if (offset < 0 || offset >= bitmap->size) {
        return false;
    }
    bit = offset >> bitmap->gran_bits;
    return bitmap->words[bit / BITS_PER_WORD] >> (bit % BITS_PER_WORD) & 1;
}

/* O(1): the set-bit count is maintained by bits_change(). */
int64_t bdrv_get_dirty_count(const BdrvDirtyBitmap *bitmap)
{
    int64_t bytes = bitmap->count << bitmap->gran_bits;
    bool last_set = bitmap->nb_bits &&
        bdrv_dirty_bitmap_get(bitmap, bitmap->size - 1);

    /* Only the last granule can stick out past the end of the node. */
    if (last_set) {
        bytes -= ((int64_t)bitmap->nb_bits << bitmap->gran_bits) -
                 bitmap->size;
    }
    return bytes;
}

/*
 * Two scans: the first dirty granule at or after offset's granule, then
 * the first clean one after it. *start is the granule's start, or offset
 * itself when offset lies inside that granule; the area ends at the
 * clean granule, end or start + max_bytes, whichever comes first.
 */
bool bdrv_dirty_bitmap_next_dirty_area(const BdrvDirtyBitmap *bitmap,
                                       int64_t offset, int64_t end,
                                       int64_t max_bytes, int64_t *start,
                                       int64_t *count)
{
    int64_t first, stop, s, e, limit;

    end = MIN(end, bitmap->size);
    if (offset < 0 || offset >= end) {
        return false;
    }
    limit = DIV_ROUND_UP(end, (int64_t)bitmap->granularity);
    first = bits_find(bitmap, offset >> bitmap->gran_bits, true, limit);
    if (first >= limit) {
        return false;
    }
    s = MAX(offset, first << bitmap->gran_bits);
    /* The run of dirty granules ends at the next clean one (or at end). */
    if (max_bytes > 0) {
        end = MIN(end, s + max_bytes);
        limit = DIV_ROUND_UP(end, (int64_t)bitmap->granularity);
    }
    stop = bits_find(bitmap, first, false, limit);
    e = MIN(end, stop << bitmap->gran_bits);
    *start = s;
    *count = e - s;
    return true;
}

/* ---- The request path and node life cycle */

/*
 * Called by block/io.c only when bs->dirty_bitmaps is non-NULL, after a
 * write, zero write or discard (also a failed write: it may have changed
 * part of the range). Disabled bitmaps are skipped.
 */
void bdrv_set_dirty(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    trace_bdrv_set_dirty(bs, offset, bytes);
    for (GSList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *b = l->data;

        if (!b->enabled) {
            continue;
        }
        if (offset + bytes > b->size) {
            /* A protocol node grew by a write past its end. */
            bitmap_resize(b, MAX(offset + bytes, bs->total_bytes));
        }
        bdrv_set_dirty_bitmap(b, offset, bytes);
    }
}

/* After a successful resize of bs: every bitmap covers the new size. */
void bdrv_dirty_bitmap_truncate(BlockDriverState *bs, int64_t size)
{
    for (GSList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *b = l->data;

        if (b->size != size) {
            bitmap_resize(b, size);
        }
    }
}

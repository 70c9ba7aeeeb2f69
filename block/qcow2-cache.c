/*
 * qcow2 metadata table cache: a fixed number of cluster-sized slots.
 *
 * State: `size` slots, each holding one table (an L2 table or a refcount
 * block) exactly as it is on disk, plus its host offset, a reference
 * count (slots in use by a caller are never evicted), a dirty flag and an
 * LRU stamp. Memory is bounded by size * table_size, fixed at creation.
 *
 * Write-back ordering is what makes qcow2 crash-safe, and it lives here:
 *  - a cache may depend on another cache: before it writes any table,
 *    the other cache is flushed (its dirty tables written AND the backend
 *    flushed). The qcow2 driver makes the L2 cache depend on the
 *    refcount cache, so a refcount increase is always on stable storage
 *    before an L2 entry pointing at the cluster;
 *  - depends_on_flush: a one-shot "flush the backend before the next
 *    table write", used after guest data was written into newly
 *    allocated clusters so the data is durable before the L2 entry that
 *    makes it visible.
 * The backend flush after a cache's own writes is tracked (unflushed
 * flag), so a clean dependency costs nothing.
 *
 * Concurrency: callers serialise on the qcow2 state lock; the cache
 * itself does not lock. I/O goes through Qcow2CacheOps so unit tests can
 * use a fake backend.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include "trace.h"

typedef struct Qcow2CacheEntry {
    uint64_t offset;        /* 0: slot empty (offset 0 is the header) */
    int ref;
    bool dirty;
    uint64_t lru_stamp;
} Qcow2CacheEntry;

struct Qcow2Cache {
    char *name;
    const Qcow2CacheOps *ops;
    void *opaque;
    int size;
    size_t table_size;
    uint8_t *tables;
    Qcow2CacheEntry *entries;
    Qcow2Cache *depends;
    bool depends_on_flush;
    bool unflushed;         /* tables written since the last backend flush */
    uint64_t lru_clock;
};

static void *cache_table(const Qcow2Cache *c, int i)
{
    return c->tables + (size_t)i * c->table_size;
}

/* Slot index of a table pointer handed out by this cache. */
static int cache_index_of(const Qcow2Cache *c, const void *table)
{
    ptrdiff_t d = (const uint8_t *)table - c->tables;

    g_assert(d >= 0 && d % c->table_size == 0);
    g_assert(d / c->table_size < c->size);
    return d / c->table_size;
}

Qcow2Cache *qcow2_cache_create(const char *name, const Qcow2CacheOps *ops,
                               void *opaque, int num_tables,
                               size_t table_size)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);

    g_assert(num_tables >= 2 && table_size >= 512);
    c->name = g_strdup(name);
    c->ops = ops;
    c->opaque = opaque;
    c->size = num_tables;
    c->table_size = table_size;
    c->tables = qemu_memalign(4096, (size_t)num_tables * table_size);
    c->entries = g_new0(Qcow2CacheEntry, num_tables);
    return c;
}

void qcow2_cache_destroy(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    for (int i = 0; i < c->size; i++) {
        g_assert(c->entries[i].ref == 0);
    }
    qemu_vfree(c->tables);
    g_free(c->entries);
    g_free(c->name);
    g_free(c);
}

/* Flush the backend if this cache wrote tables since the last flush. */
static int coroutine_fn cache_flush_backend(Qcow2Cache *c, bool force)
{
    int ret;

    if (!c->unflushed && !force) {
        return 0;
    }
    ret = c->ops->flush(c->opaque);
    if (ret < 0) {
        return ret;
    }
    c->unflushed = false;
    return 0;
}

/* Write slot i back if dirty, after satisfying the ordering rules. */
static int coroutine_fn cache_entry_flush(Qcow2Cache *c, int i)
{
    Qcow2CacheEntry *e = &c->entries[i];
    int ret;

    if (!e->dirty || !e->offset) {
        return 0;
    }
    if (c->depends) {
        ret = qcow2_cache_flush(c->depends);
        if (ret < 0) {
            return ret;
        }
    }
    if (c->depends_on_flush) {
        ret = cache_flush_backend(c, true);
        if (ret < 0) {
            return ret;
        }
        c->depends_on_flush = false;
    }
    trace_qcow2_cache_entry_flush(c, c->name, (unsigned long long)e->offset);
    ret = c->ops->write(c->opaque, e->offset, cache_table(c, i),
                        c->table_size);
    if (ret < 0) {
        return ret;
    }
    e->dirty = false;
    c->unflushed = true;
    return 0;
}

int coroutine_fn qcow2_cache_write(Qcow2Cache *c)
{
    int result = 0;

    for (int i = 0; i < c->size; i++) {
        int ret = cache_entry_flush(c, i);
        if (ret < 0 && result == 0) {
            result = ret;
        }
    }
    return result;
}

int coroutine_fn qcow2_cache_flush(Qcow2Cache *c)
{
    int ret = qcow2_cache_write(c);

    if (ret < 0) {
        return ret;
    }
    return cache_flush_backend(c, false);
}

void qcow2_cache_set_dependency(Qcow2Cache *c, Qcow2Cache *dependency)
{
    g_assert(dependency != c);
    c->depends = dependency;
}

void qcow2_cache_depends_on_flush(Qcow2Cache *c)
{
    c->depends_on_flush = true;
}

/* Slot holding offset, or -1. */
static int cache_lookup(const Qcow2Cache *c, uint64_t offset)
{
    for (int i = 0; i < c->size; i++) {
        if (c->entries[i].offset == offset) {
            return i;
        }
    }
    return -1;
}

/* Pick a victim slot: empty first, else the LRU unreferenced one. */
static int cache_pick_victim(const Qcow2Cache *c)
{
    int best = -1;

    for (int i = 0; i < c->size; i++) {
        const Qcow2CacheEntry *e = &c->entries[i];
        if (e->ref) {
            continue;
        }
        if (!e->offset) {
            return i;
        }
        if (best < 0 || e->lru_stamp < c->entries[best].lru_stamp) {
            best = i;
        }
    }
    return best;
}

/* Common body of get/get_empty. */
static int coroutine_fn cache_do_get(Qcow2Cache *c, uint64_t offset,
                                     void **table, bool read_from_disk)
{
    int i, ret;

    g_assert(offset != 0 && offset % c->table_size == 0);
    i = cache_lookup(c, offset);
    if (i < 0) {
        i = cache_pick_victim(c);
        if (i < 0) {
            return -ENOSPC;
        }
        trace_qcow2_cache_miss(c, c->name, (unsigned long long)offset);
        ret = cache_entry_flush(c, i);
        if (ret < 0) {
            return ret;
        }
        c->entries[i].offset = 0;
        if (read_from_disk) {
            ret = c->ops->read(c->opaque, offset, cache_table(c, i),
                               c->table_size);
            if (ret < 0) {
                return ret;
            }
        }
        c->entries[i].offset = offset;
    }
    c->entries[i].ref++;
    c->entries[i].lru_stamp = ++c->lru_clock;
    *table = cache_table(c, i);
    return 0;
}

int coroutine_fn qcow2_cache_get(Qcow2Cache *c, uint64_t offset, void **table)
{
    return cache_do_get(c, offset, table, true);
}

int coroutine_fn qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset,
                                       void **table)
{
    return cache_do_get(c, offset, table, false);
}

void qcow2_cache_put(Qcow2Cache *c, void **table)
{
    int i = cache_index_of(c, *table);

    g_assert(c->entries[i].ref > 0);
    c->entries[i].ref--;
    *table = NULL;
}

void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table)
{
    int i = cache_index_of(c, table);

    g_assert(c->entries[i].offset != 0);
    c->entries[i].dirty = true;
}

void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset)
{
    int i = cache_lookup(c, offset);

    if (i >= 0) {
        g_assert(c->entries[i].ref == 0);
        c->entries[i].offset = 0;
        c->entries[i].dirty = false;
    }
}

void qcow2_cache_empty(Qcow2Cache *c)
{
    for (int i = 0; i < c->size; i++) {
        if (!c->entries[i].ref) {
            c->entries[i].offset = 0;
            c->entries[i].dirty = false;
        }
    }
}

int qcow2_cache_num_tables(const Qcow2Cache *c)
{
    return c->size;
}

int qcow2_cache_num_dirty(const Qcow2Cache *c)
{
    int n = 0;

    for (int i = 0; i < c->size; i++) {
        n += c->entries[i].offset && c->entries[i].dirty;
    }
    return n;
}

bool qcow2_cache_contains(const Qcow2Cache *c, uint64_t offset)
{
    return cache_lookup(c, offset) >= 0;
}

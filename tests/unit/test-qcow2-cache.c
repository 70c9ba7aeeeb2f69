/*
 * Unit tests for the qcow2 metadata table cache (block/qcow2-cache.c).
 *
 * The cache runs against a fake in-memory backend that logs every
 * read, write and flush, so eviction order, write-back and the ordering
 * between dependent caches can be checked exactly. The fake backend
 * never yields, so no coroutine is needed.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

#define TABLE 512
#define DISK_TABLES 64

/* A fake disk: DISK_TABLES tables plus an operation log. */
typedef struct FakeDisk {
    uint8_t data[DISK_TABLES * TABLE];
    GString *log;       /* "r<idx> w<idx> f " ... (idx = offset / TABLE) */
    int reads;
    int writes;
    int flushes;
} FakeDisk;

static int coroutine_fn fake_read(void *opaque, uint64_t offset, void *buf,
                                  size_t size)
{
    FakeDisk *d = opaque;

    g_assert_cmpuint(offset + size, <=, sizeof(d->data));
    memcpy(buf, d->data + offset, size);
    g_string_append_printf(d->log, "r%d ", (int)(offset / TABLE));
    d->reads++;
    return 0;
}

static int coroutine_fn fake_write(void *opaque, uint64_t offset,
                                   const void *buf, size_t size)
{
    FakeDisk *d = opaque;

    g_assert_cmpuint(offset + size, <=, sizeof(d->data));
    memcpy(d->data + offset, buf, size);
    g_string_append_printf(d->log, "w%d ", (int)(offset / TABLE));
    d->writes++;
    return 0;
}

static int coroutine_fn fake_flush(void *opaque)
{
    FakeDisk *d = opaque;

    g_string_append(d->log, "f ");
    d->flushes++;
    return 0;
}

static const Qcow2CacheOps fake_ops = {
    .read = fake_read,
    .write = fake_write,
    .flush = fake_flush,
};

static FakeDisk *fake_disk_new(void)
{
    FakeDisk *d = g_new0(FakeDisk, 1);

    for (int i = 0; i < DISK_TABLES; i++) {
        memset(d->data + i * TABLE, i, TABLE);
    }
    d->log = g_string_new("");
    return d;
}

static void fake_disk_free(FakeDisk *d)
{
    g_string_free(d->log, TRUE);
    g_free(d);
}

/* Get table idx, check it holds byte `expect`, release it. */
static void get_put(Qcow2Cache *c, int idx, int expect)
{
    uint8_t *t;

    g_assert_cmpint(qcow2_cache_get(c, idx * TABLE, (void **)&t), ==, 0);
    g_assert_cmpint(t[0], ==, expect);
    g_assert_cmpint(t[TABLE - 1], ==, expect);
    qcow2_cache_put(c, (void **)&t);
    g_assert_null(t);
}

static void test_lru_eviction(void)
{
    FakeDisk *d = fake_disk_new();
    Qcow2Cache *c = qcow2_cache_create("t", &fake_ops, d, 3, TABLE);

    get_put(c, 1, 1);
    get_put(c, 2, 2);
    get_put(c, 3, 3);
    g_assert_cmpint(d->reads, ==, 3);
    get_put(c, 1, 1);             /* hit: 1 becomes most recent */
    g_assert_cmpint(d->reads, ==, 3);
    get_put(c, 4, 4);             /* evicts 2, the least recently used */
    g_assert_true(qcow2_cache_contains(c, 1 * TABLE));
    g_assert_false(qcow2_cache_contains(c, 2 * TABLE));
    g_assert_true(qcow2_cache_contains(c, 3 * TABLE));
    g_assert_true(qcow2_cache_contains(c, 4 * TABLE));
    get_put(c, 2, 2);             /* miss again: evicts 3 */
    g_assert_cmpint(d->reads, ==, 5);
    g_assert_false(qcow2_cache_contains(c, 3 * TABLE));
    qcow2_cache_destroy(c);
    fake_disk_free(d);
}

static void test_dirty_writeback(void)
{
    FakeDisk *d = fake_disk_new();
    Qcow2Cache *c = qcow2_cache_create("t", &fake_ops, d, 2, TABLE);
    uint8_t *t;

    g_assert_cmpint(qcow2_cache_get(c, 5 * TABLE, (void **)&t), ==, 0);
    memset(t, 0xee, TABLE);
    qcow2_cache_entry_mark_dirty(c, t);
    qcow2_cache_put(c, (void **)&t);
    g_assert_cmpint(qcow2_cache_num_dirty(c), ==, 1);
    g_assert_cmpint(d->writes, ==, 0);       /* write-back, not through */

    /* Eviction of a dirty table writes it back first. */
    get_put(c, 6, 6);
    get_put(c, 7, 7);
    g_assert_cmpint(d->writes, ==, 1);
    g_assert_cmpint(d->data[5 * TABLE], ==, 0xee);
    get_put(c, 5, 0xee);                     /* re-read from "disk" */

    /* Explicit flush writes dirty tables and flushes the backend. */
    g_assert_cmpint(qcow2_cache_get(c, 5 * TABLE, (void **)&t), ==, 0);
    t[0] = 0x42;
    qcow2_cache_entry_mark_dirty(c, t);
    qcow2_cache_put(c, (void **)&t);
    g_assert_cmpint(qcow2_cache_flush(c), ==, 0);
    g_assert_cmpint(d->data[5 * TABLE], ==, 0x42);
    g_assert_cmpint(qcow2_cache_num_dirty(c), ==, 0);
    g_assert_true(g_str_has_suffix(d->log->str, "w5 f "));

    /* A discarded dirty table is never written back. */
    g_assert_cmpint(qcow2_cache_get(c, 5 * TABLE, (void **)&t), ==, 0);
    t[0] = 0x99;
    qcow2_cache_entry_mark_dirty(c, t);
    qcow2_cache_put(c, (void **)&t);
    qcow2_cache_discard(c, 5 * TABLE);
    g_assert_cmpint(qcow2_cache_flush(c), ==, 0);
    g_assert_cmpint(d->data[5 * TABLE], ==, 0x42);
    qcow2_cache_destroy(c);
    fake_disk_free(d);
}

static void test_dependency_order(void)
{
    FakeDisk *d = fake_disk_new();
    Qcow2Cache *refc = qcow2_cache_create("refcount", &fake_ops, d, 2, TABLE);
    Qcow2Cache *l2 = qcow2_cache_create("l2", &fake_ops, d, 2, TABLE);
    uint8_t *t;

    qcow2_cache_set_dependency(l2, refc);
    g_assert_cmpint(qcow2_cache_get_empty(refc, 10 * TABLE, (void **)&t), ==,
                    0);
    memset(t, 1, TABLE);
    qcow2_cache_entry_mark_dirty(refc, t);
    qcow2_cache_put(refc, (void **)&t);
    g_assert_cmpint(qcow2_cache_get_empty(l2, 20 * TABLE, (void **)&t), ==, 0);
    memset(t, 2, TABLE);
    qcow2_cache_entry_mark_dirty(l2, t);
    qcow2_cache_put(l2, (void **)&t);
    g_assert_cmpstr(d->log->str, ==, "");

    /* Writing the L2 table first writes AND flushes the refcount block. */
    g_assert_cmpint(qcow2_cache_write(l2), ==, 0);
    g_assert_cmpstr(d->log->str, ==, "w10 f w20 ");

    /* A clean dependency costs nothing. */
    g_string_truncate(d->log, 0);
    g_assert_cmpint(qcow2_cache_get(l2, 20 * TABLE, (void **)&t), ==, 0);
    qcow2_cache_entry_mark_dirty(l2, t);
    qcow2_cache_put(l2, (void **)&t);
    g_assert_cmpint(qcow2_cache_write(l2), ==, 0);
    g_assert_cmpstr(d->log->str, ==, "w20 ");

    /* depends_on_flush: data must be flushed before the table is written. */
    g_string_truncate(d->log, 0);
    qcow2_cache_depends_on_flush(l2);
    g_assert_cmpint(qcow2_cache_get(l2, 20 * TABLE, (void **)&t), ==, 0);
    qcow2_cache_entry_mark_dirty(l2, t);
    qcow2_cache_put(l2, (void **)&t);
    g_assert_cmpint(qcow2_cache_flush(l2), ==, 0);
    g_assert_cmpstr(d->log->str, ==, "f w20 f ");
    qcow2_cache_destroy(l2);
    qcow2_cache_destroy(refc);
    fake_disk_free(d);
}

static void test_bounded_size(void)
{
    FakeDisk *d = fake_disk_new();
    Qcow2Cache *c = qcow2_cache_create("t", &fake_ops, d, 4, TABLE);
    uint8_t *held[4];
    void *extra;

    g_assert_cmpint(qcow2_cache_num_tables(c), ==, 4);
    /* Touching many tables never grows the cache beyond its slots. */
    for (int i = 1; i < DISK_TABLES; i++) {
        get_put(c, i, i);
    }
    int resident = 0;
    for (int i = 1; i < DISK_TABLES; i++) {
        resident += qcow2_cache_contains(c, i * TABLE);
    }
    g_assert_cmpint(resident, ==, 4);

    /* With every slot referenced, another table cannot be loaded. */
    for (int i = 0; i < 4; i++) {
        g_assert_cmpint(qcow2_cache_get(c, (i + 1) * TABLE,
                                        (void **)&held[i]), ==, 0);
    }
    g_assert_cmpint(qcow2_cache_get(c, 30 * TABLE, &extra), ==, -ENOSPC);
    for (int i = 0; i < 4; i++) {
        qcow2_cache_put(c, (void **)&held[i]);
    }
    g_assert_cmpint(qcow2_cache_get(c, 30 * TABLE, &extra), ==, 0);
    qcow2_cache_put(c, &extra);
    qcow2_cache_destroy(c);
    fake_disk_free(d);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qcow2-cache/lru-eviction", test_lru_eviction);
    g_test_add_func("/qcow2-cache/dirty-writeback", test_dirty_writeback);
    g_test_add_func("/qcow2-cache/dependency-order", test_dependency_order);
    g_test_add_func("/qcow2-cache/bounded-size", test_bounded_size);
    return g_test_run();
}

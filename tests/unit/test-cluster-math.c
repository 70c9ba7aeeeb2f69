/*
 * Unit tests for qcow2's pure arithmetic and decoding (block/qcow2.h) and
 * header validation (qcow2_header_validate): no image files involved.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

/* Offsets map to (L1 index, L2 index, in-cluster offset) per cluster size. */
static void test_offset_to_index(void)
{
    for (int bits = QCOW2_MIN_CLUSTER_BITS; bits <= QCOW2_MAX_CLUSTER_BITS;
         bits++) {
        BDRVQcow2State s = { 0 };
        uint64_t cs = 1ULL << bits, l2_entries = cs / 8;
        uint64_t per_l2 = cs * l2_entries;

        qcow2_set_geometry(&s, bits, false, 4);
        g_assert_cmpint(s.cluster_size, ==, cs);
        g_assert_cmpint(s.l2_size, ==, l2_entries);
        /* First byte, last byte of first table, first of the second. */
        g_assert_cmpuint(qcow2_offset_to_l1_index(&s, 0), ==, 0);
        g_assert_cmpint(qcow2_offset_to_l2_index(&s, 0), ==, 0);
        g_assert_cmpuint(qcow2_offset_to_l1_index(&s, per_l2 - 1), ==, 0);
        g_assert_cmpint(qcow2_offset_to_l2_index(&s, per_l2 - 1), ==,
                        l2_entries - 1);
        g_assert_cmpuint(qcow2_offset_into_cluster(&s, per_l2 - 1), ==,
                         cs - 1);
        g_assert_cmpuint(qcow2_offset_to_l1_index(&s, per_l2), ==, 1);
        g_assert_cmpint(qcow2_offset_to_l2_index(&s, per_l2), ==, 0);
        /* An arbitrary offset: 5 tables, 3 clusters and 7 bytes in. */
        uint64_t off = 5 * per_l2 + 3 * cs + 7;
        g_assert_cmpuint(qcow2_offset_to_l1_index(&s, off), ==, 5);
        g_assert_cmpint(qcow2_offset_to_l2_index(&s, off), ==, 3);
        g_assert_cmpuint(qcow2_offset_into_cluster(&s, off), ==, 7);
        g_assert_cmpuint(qcow2_start_of_cluster(&s, off), ==, off - 7);
        /* L1 entries for a size: exact multiple and one byte more. */
        g_assert_cmpuint(qcow2_l1_entries_for_size(bits, s.l2_bits,
                                                   2 * per_l2), ==, 2);
        g_assert_cmpuint(qcow2_l1_entries_for_size(bits, s.l2_bits,
                                                   2 * per_l2 + 1), ==, 3);
        /* Refcount blocks of 16-bit entries cover cluster_size/2 clusters. */
        g_assert_cmpint(1 << s.refcount_block_bits, ==, cs / 2);
    }
}

/* Extended L2: 16-byte entries halve the table, 32 subclusters. */
static void test_offset_to_index_extl2(void)
{
    BDRVQcow2State s = { 0 };

    qcow2_set_geometry(&s, 16, true, 4);
    g_assert_cmpint(s.l2_size, ==, 4096);
    g_assert_cmpint(s.subcluster_size, ==, 2048);
    g_assert_cmpint(qcow2_offset_to_sc_index(&s, 65536 + 3 * 2048 + 5), ==,
                    3);
}

static void test_l2_entry_decode(void)
{
    uint64_t host, csize;

    /* Normal cluster, with and without COPIED. */
    g_assert_cmpint(qcow2_l2e_type(0x50000 | QCOW_OFLAG_COPIED), ==,
                    QCOW2_CLUSTER_NORMAL);
    g_assert_cmpint(qcow2_l2e_type(0x50000), ==, QCOW2_CLUSTER_NORMAL);
    g_assert_true((0x50000 | QCOW_OFLAG_COPIED) & QCOW_OFLAG_COPIED);
    g_assert_cmphex((0x50000 | QCOW_OFLAG_COPIED) & L2E_OFFSET_MASK, ==,
                    0x50000);
    /* Unallocated and zero clusters (plain and preallocated). */
    g_assert_cmpint(qcow2_l2e_type(0), ==, QCOW2_CLUSTER_UNALLOCATED);
    g_assert_cmpint(qcow2_l2e_type(QCOW_OFLAG_ZERO), ==,
                    QCOW2_CLUSTER_ZERO_PLAIN);
    g_assert_cmpint(qcow2_l2e_type(0x70000 | QCOW_OFLAG_ZERO |
                                   QCOW_OFLAG_COPIED), ==,
                    QCOW2_CLUSTER_ZERO_ALLOC);

    /* Compressed, 64 KiB clusters: offset bits 0..53, sectors above. */
    uint64_t l2e = QCOW_OFLAG_COMPRESSED | (3ULL << 54) | 0x123456;
    g_assert_cmpint(qcow2_l2e_type(l2e), ==, QCOW2_CLUSTER_COMPRESSED);
    qcow2_compressed_decode(16, l2e, &host, &csize);
    g_assert_cmphex(host, ==, 0x123456);
    /* 3 additional sectors beyond the first, minus the in-sector part. */
    g_assert_cmpuint(csize, ==, 4 * 512 - (0x123456 & 511));

    /* Compressed, 512-byte clusters: x = 62 - 1, one size bit. */
    l2e = QCOW_OFLAG_COMPRESSED | (1ULL << 61) | 0x1000;
    qcow2_compressed_decode(9, l2e, &host, &csize);
    g_assert_cmphex(host, ==, 0x1000);
    g_assert_cmpuint(csize, ==, 1024);

    /* Extended L2 bitmaps: allocation (low) and zero (high) bits. */
    g_assert_cmpint(qcow2_extl2_type(0x50000, 1ULL << 2, 2), ==,
                    QCOW2_CLUSTER_NORMAL);
    g_assert_cmpint(qcow2_extl2_type(0x50000, 1ULL << 2, 3), ==,
                    QCOW2_CLUSTER_UNALLOCATED);
    g_assert_cmpint(qcow2_extl2_type(0, 1ULL << 35, 3), ==,
                    QCOW2_CLUSTER_ZERO_PLAIN);
    g_assert_cmpint(qcow2_extl2_type(0, (1ULL << 35) | (1ULL << 3), 3), ==,
                    QCOW2_CLUSTER_INVALID);
    g_assert_cmpint(qcow2_extl2_type(0, 1ULL << 3, 3), ==,
                    QCOW2_CLUSTER_INVALID);
}

static void test_refblock_widths(void)
{
    uint8_t block[512];

    for (int order = 0; order <= 6; order++) {
        uint64_t max = order == 6 ? UINT64_MAX : (1ULL << (1 << order)) - 1;
        memset(block, 0, sizeof(block));
        qcow2_refblock_set(block, order, 5, max);
        qcow2_refblock_set(block, order, 6, 1);
        g_assert_cmpuint(qcow2_refblock_get(block, order, 4), ==, 0);
        g_assert_cmpuint(qcow2_refblock_get(block, order, 5), ==, max);
        g_assert_cmpuint(qcow2_refblock_get(block, order, 6), ==, 1);
        g_assert_cmpuint(qcow2_refblock_get(block, order, 7), ==, 0);
    }
    /* 16-bit entries are big-endian on disk. */
    memset(block, 0, sizeof(block));
    qcow2_refblock_set(block, 4, 1, 0x0102);
    g_assert_cmpint(block[2], ==, 1);
    g_assert_cmpint(block[3], ==, 2);
}

/* A valid v3 header for a 1 MiB image in a 5-cluster (64 KiB) file. */
static Qcow2Header good_header(void)
{
    Qcow2Header h = {
        .magic = QCOW_MAGIC, .version = 3, .cluster_bits = 16,
        .size = 1 * MiB, .l1_size = 1, .l1_table_offset = 3 * 65536,
        .refcount_table_offset = 65536, .refcount_table_clusters = 1,
        .refcount_order = 4, .header_length = 112,
    };
    return h;
}

/* Validate h against a 5-cluster file; expect failure iff bad. */
static void expect_rejected(Qcow2Header h, const char *what)
{
    Error *err = NULL;
    int ret = qcow2_header_validate(&h, 5 * 65536, &err);

    if (ret >= 0) {
        g_error("header with %s was accepted", what);
    }
    g_assert_nonnull(err);
    error_free(err);
}

static void test_header_validate(void)
{
    Qcow2Header h = good_header();
    uint8_t raw[112] = { 0 };

    g_assert_cmpint(qcow2_header_validate(&h, 5 * 65536, NULL), ==, 0);
    h.magic = 0x12345678;
    expect_rejected(h, "bad magic");
    h = good_header(); h.version = 4;
    expect_rejected(h, "version 4");
    h = good_header(); h.cluster_bits = 8;
    expect_rejected(h, "256-byte clusters");
    h = good_header(); h.cluster_bits = 22;
    expect_rejected(h, "4 MiB clusters");
    h = good_header(); h.l1_size = 0;
    expect_rejected(h, "L1 too small for the size");
    h = good_header(); h.l1_table_offset = 3 * 65536 + 512;
    expect_rejected(h, "unaligned L1");
    h = good_header(); h.l1_table_offset = 10 * 65536;
    expect_rejected(h, "L1 past EOF");
    h = good_header(); h.l1_size = 0x10000000; h.size = 1ULL << 50;
    expect_rejected(h, "huge L1");
    h = good_header(); h.refcount_table_clusters = 0;
    expect_rejected(h, "no refcount table");
    h = good_header(); h.refcount_table_clusters = 1000;
    expect_rejected(h, "refcount table past EOF");
    h = good_header(); h.refcount_table_offset = 100;
    expect_rejected(h, "unaligned refcount table");
    h = good_header(); h.refcount_order = 7;
    expect_rejected(h, "128-bit refcounts");
    h = good_header(); h.nb_snapshots = QCOW2_MAX_SNAPSHOTS + 1;
    h.snapshots_offset = 65536 * 4;
    expect_rejected(h, "too many snapshots");
    h = good_header(); h.nb_snapshots = 1; h.snapshots_offset = 1 << 30;
    expect_rejected(h, "snapshot table past EOF");
    h = good_header(); h.backing_file_offset = 112;
    h.backing_file_size = 5000;
    expect_rejected(h, "overlong backing file name");
    h = good_header(); h.header_length = 100;
    expect_rejected(h, "short v3 header");
    h = good_header(); h.compression_type = 1;
    expect_rejected(h, "zstd without the incompatible bit");

    /* Decoding: too short buffers are refused, v2 gets v3 defaults. */
    g_assert_cmpint(qcow2_header_decode(raw, 50, &h), <, 0);
    stbe32_p(raw, QCOW_MAGIC);
    stbe32_p(raw + 4, 2);
    g_assert_cmpint(qcow2_header_decode(raw, 72, &h), ==, 0);
    g_assert_cmpint(h.refcount_order, ==, 4);
    g_assert_cmpint(h.header_length, ==, 72);
    stbe32_p(raw + 4, 3);
    g_assert_cmpint(qcow2_header_decode(raw, 72, &h), <, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qcow2/cluster-math/offset-to-l1-l2-index",
                    test_offset_to_index);
    g_test_add_func("/qcow2/cluster-math/offset-to-index-extended-l2",
                    test_offset_to_index_extl2);
    g_test_add_func("/qcow2/cluster-math/l2-entry-decode",
                    test_l2_entry_decode);
    g_test_add_func("/qcow2/cluster-math/refcount-block-widths",
                    test_refblock_widths);
    g_test_add_func("/qcow2/cluster-math/header-validate-rejects-bad-fields",
                    test_header_validate);
    return g_test_run();
}

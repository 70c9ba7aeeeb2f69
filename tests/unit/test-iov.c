/*
 * Unit tests for QEMUIOVector: building, slicing without copying, and
 * the copy/fill/zero-check helpers at arbitrary offsets across buffer
 * boundaries.
 */
#include "qemu/osdep.h"
#include "qemu/iov.h"

/* A vector over buf split into pieces of the given lengths (0-terminated). */
static void build_split(QEMUIOVector *qiov, char *buf, const size_t *lens)
{
    size_t off = 0;

    qemu_iovec_init(qiov, 1);
    for (; *lens; lens++) {
        qemu_iovec_add(qiov, buf + off, *lens);
        off += *lens;
    }
}

/* An owned vector grows past its hint and keeps size in sync. */
static void test_init_and_add(void)
{
    char a[10], b[20];
    QEMUIOVector q;
    int i;

    qemu_iovec_init(&q, 0);
    g_assert_cmpint(q.niov, ==, 0);
    g_assert_cmpuint(q.size, ==, 0);
    for (i = 0; i < 100; i++) {             /* grows past the hint */
        qemu_iovec_add(&q, i % 2 ? a : b, i % 2 ? 10 : 20);
    }
    g_assert_cmpint(q.niov, ==, 100);
    g_assert_cmpuint(q.size, ==, 50 * 10 + 50 * 20);
    g_assert(q.iov[99].iov_base == a);
    qemu_iovec_reset(&q);
    g_assert_cmpint(q.niov, ==, 0);
    g_assert_cmpuint(q.size, ==, 0);
    qemu_iovec_destroy(&q);
}

/* Adding to a single-buffer vector copies the entry into an owned array. */
static void test_init_buf_then_add(void)
{
    char a[8], b[8];
    QEMUIOVector q;

    qemu_iovec_init_buf(&q, a, sizeof(a));
    g_assert_cmpint(q.niov, ==, 1);
    g_assert_cmpint(q.nalloc, ==, 0);
    g_assert(q.iov[0].iov_base == a);
    qemu_iovec_add(&q, b, sizeof(b));       /* converts to owned */
    g_assert_cmpint(q.niov, ==, 2);
    g_assert_cmpuint(q.size, ==, 16);
    g_assert(q.iov[0].iov_base == a && q.iov[1].iov_base == b);
    qemu_iovec_destroy(&q);
}

/* A slice points into the source's buffers, split at the range edges. */
static void test_slice_no_copy(void)
{
    static const size_t lens[] = { 3, 5, 7, 0 };
    char buf[15];
    QEMUIOVector src, s;

    memset(buf, 'a', sizeof(buf));
    build_split(&src, buf, lens);
    qemu_iovec_init_slice(&s, &src, 4, 9);  /* 1 of 2nd, all 3rd... */
    g_assert_cmpuint(s.size, ==, 9);
    g_assert_cmpint(s.niov, ==, 2);
    g_assert(s.iov[0].iov_base == buf + 4);  /* points into source */
    g_assert_cmpuint(s.iov[0].iov_len, ==, 4);
    g_assert(s.iov[1].iov_base == buf + 8);
    g_assert_cmpuint(s.iov[1].iov_len, ==, 5);
    /* Writing through the slice changes the source's memory. */
    qemu_iovec_memset(&s, 0, 'z', 9);
    g_assert_cmpint(buf[3], ==, 'a');
    g_assert_cmpint(buf[4], ==, 'z');
    g_assert_cmpint(buf[12], ==, 'z');
    g_assert_cmpint(buf[13], ==, 'a');
    qemu_iovec_destroy(&s);

    /* Empty and whole slices. */
    qemu_iovec_init_slice(&s, &src, 15, 0);
    g_assert_cmpuint(s.size, ==, 0);
    qemu_iovec_destroy(&s);
    qemu_iovec_init_slice(&s, &src, 0, 15);
    g_assert_cmpint(s.niov, ==, 3);
    qemu_iovec_destroy(&s);
    qemu_iovec_destroy(&src);
}

/* concat appends a sub-range of another vector's buffers. */
static void test_concat(void)
{
    static const size_t lens[] = { 4, 4, 0 };
    char buf[8], other[2];
    QEMUIOVector src, dst;

    build_split(&src, buf, lens);
    qemu_iovec_init(&dst, 1);
    qemu_iovec_add(&dst, other, 2);
    qemu_iovec_concat(&dst, &src, 2, 4);
    g_assert_cmpint(dst.niov, ==, 3);
    g_assert_cmpuint(dst.size, ==, 6);
    g_assert(dst.iov[1].iov_base == buf + 2);
    g_assert(dst.iov[2].iov_base == buf + 4);
    g_assert_cmpuint(dst.iov[2].iov_len, ==, 2);
    qemu_iovec_destroy(&dst);
    qemu_iovec_destroy(&src);
}

/* Every (offset, length) pair copies exactly its bytes, both ways. */
static void test_to_from_buf_offsets(void)
{
    static const size_t lens[] = { 1, 7, 2, 13, 9, 0 };
    char mem[32], flat[32], back[32];
    QEMUIOVector q;
    size_t off, len;
    int i;

    for (i = 0; i < 32; i++) {
        flat[i] = (char)('A' + i);
    }
    build_split(&q, mem, lens);
    g_assert_cmpuint(q.size, ==, 32);
    for (off = 0; off <= 32; off++) {
        for (len = 0; off + len <= 32; len++) {
            memset(mem, 0, sizeof(mem));
            g_assert_cmpuint(qemu_iovec_from_buf(&q, off, flat, len), ==, len);
            g_assert(buffer_is_zero(mem, off));
            g_assert(memcmp(mem + off, flat, len) == 0);
            g_assert(buffer_is_zero(mem + off + len, 32 - off - len));
            memset(back, 0, sizeof(back));
            g_assert_cmpuint(qemu_iovec_to_buf(&q, off, back, len), ==, len);
            g_assert(memcmp(back, flat, len) == 0);
        }
    }
    /* Past the end: copies only what exists. */
    g_assert_cmpuint(qemu_iovec_to_buf(&q, 30, back, 10), ==, 2);
    g_assert_cmpuint(qemu_iovec_to_buf(&q, 40, back, 10), ==, 0);
    qemu_iovec_destroy(&q);
}

/* memset touches only its range; is_zero finds a single non-zero byte. */
static void test_memset_and_is_zero(void)
{
    static const size_t lens[] = { 5, 100, 3, 200, 0 };
    char *mem = g_malloc0(308);
    QEMUIOVector q;
    size_t off;

    build_split(&q, mem, lens);
    g_assert(qemu_iovec_is_zero(&q, 0, q.size));
    for (off = 0; off < q.size; off += 7) {
        memset(mem, 0, 308);
        g_assert_cmpuint(qemu_iovec_memset(&q, off, 1, 1), ==, 1);
        g_assert_cmpint(mem[off], ==, 1);
        g_assert(!qemu_iovec_is_zero(&q, 0, q.size));
        g_assert(!qemu_iovec_is_zero(&q, off, 1));
        g_assert(qemu_iovec_is_zero(&q, 0, off));
        g_assert(qemu_iovec_is_zero(&q, off + 1, q.size - off - 1));
    }
    memset(mem, 0, 308);
    g_assert_cmpuint(qemu_iovec_memset(&q, 4, 0xff, 300), ==, 300);
    g_assert_cmpint(mem[3], ==, 0);
    g_assert_cmpint((unsigned char)mem[4], ==, 0xff);
    g_assert_cmpint((unsigned char)mem[303], ==, 0xff);
    g_assert_cmpint(mem[304], ==, 0);
    g_assert(qemu_iovec_is_zero(&q, 304, 4));
    g_assert(!qemu_iovec_is_zero(&q, 303, 5));
    qemu_iovec_destroy(&q);
    g_free(mem);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/iov/init-and-add-grows", test_init_and_add);
    g_test_add_func("/iov/init-buf-then-add", test_init_buf_then_add);
    g_test_add_func("/iov/slice-no-copy", test_slice_no_copy);
    g_test_add_func("/iov/concat-borrows-range", test_concat);
    g_test_add_func("/iov/to-from-buf-offsets", test_to_from_buf_offsets);
    g_test_add_func("/iov/memset-and-is-zero", test_memset_and_is_zero);
    return g_test_run();
}

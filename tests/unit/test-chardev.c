/*
 * Unit tests for the socket chardev (chardev/char.c, char-socket.c):
 * option errors, the front end's view of a client connecting, sending,
 * being written to and leaving, one client at a time, and writes that
 * the socket cannot take at once.
 *
 * Clients are plain blocking sockets in the test; the chardev side runs
 * on the main loop, driven by aio_poll() until the expected event.
 */
#include "qemu/osdep.h"
#include <sys/socket.h>
#include <sys/un.h>
#include "qemu/aio.h"
#include "chardev/char.h"

/* What the front end has seen. */
typedef struct FrontEnd {
    int connected;
    int disconnected;
    GByteArray *received;
} FrontEnd;

static void fe_connected(void *opaque)
{
    ((FrontEnd *)opaque)->connected++;
}

static void fe_receive(void *opaque, const uint8_t *buf, size_t len)
{
    g_byte_array_append(((FrontEnd *)opaque)->received, buf, len);
}

static void fe_disconnected(void *opaque)
{
    ((FrontEnd *)opaque)->disconnected++;
}

static const CharFrontendOps fe_ops = {
    .connected = fe_connected,
    .receive = fe_receive,
    .disconnected = fe_disconnected,
};

/* Run the loop while cond holds, failing after about five seconds. */
#define POLL_WHILE(cond) \
    do { \
        int64_t deadline_ = qemu_clock_get_ns() + 5000000000LL; \
        while ((cond)) { \
            g_assert_cmpint(qemu_clock_get_ns(), <, deadline_); \
            aio_poll(false); \
            g_usleep(1000); \
        } \
    } while (0)

static char *sock_path(const char *name)
{
    return g_strdup_printf("%s/qblk-test-chardev-%d-%s", g_get_tmp_dir(),
                           (int)getpid(), name);
}

/* Connect a blocking client to the unix socket at path. */
static int client_connect(const char *path)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(un.sun_path, path, sizeof(un.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&un, sizeof(un)), ==, 0);
    return fd;
}

static Chardev *new_socket_chardev(const char *id, const char *path)
{
    g_autofree char *opts =
        g_strdup_printf("socket,id=%s,path=%s,server=on,wait=off", id, path);

    return qemu_chr_new(opts, &error_abort);
}

/* qemu_chr_new() with opts fails with exactly msg. */
static void assert_chr_error(const char *opts, const char *msg)
{
    Error *err = NULL;

    g_assert_null(qemu_chr_new(opts, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

static void test_option_errors(void)
{
    assert_chr_error("foo,id=c", "'foo' is not a valid char driver name");
    assert_chr_error("socket,path=/tmp/x", "chardev: no id specified");
    assert_chr_error("socket,id=c,path=/tmp/x",
                     "chardev: socket: only server=on is supported");
    assert_chr_error("socket,id=c,server=on,wait=off",
                     "chardev: socket: no address given (path= or "
                     "host=,port=)");
    assert_chr_error("socket,id=c,host=localhost,server=on,wait=off",
                     "chardev: socket: no port given");
    assert_chr_error("socket,id=c,path=/tmp/x,server=on,wait=off,bad=1",
                     "Invalid parameter 'bad'");
    g_assert_null(qemu_chr_find("c"));
}

static void test_connect_receive_write_disconnect(void)
{
    g_autofree char *path = sock_path("a");
    FrontEnd fe = { .received = g_byte_array_new() };
    Chardev *chr = new_socket_chardev("a", path);
    char buf[16] = { 0 };
    int fd;

    g_assert_true(qemu_chr_find("a") == chr);
    g_assert_true(qemu_chr_attach_frontend(chr, &fe_ops, &fe, &error_abort));
    g_assert_false(qemu_chr_is_connected(chr));
    qemu_chr_write(chr, "lost", 4);          /* no client: dropped */

    fd = client_connect(path);
    POLL_WHILE(!fe.connected);
    g_assert_true(qemu_chr_is_connected(chr));
    g_assert_cmpint(write(fd, "hello", 5), ==, 5);
    POLL_WHILE(fe.received->len < 5);
    g_assert_cmpmem(fe.received->data, 5, "hello", 5);

    qemu_chr_write(chr, "world", 5);
    g_assert_cmpint(read(fd, buf, sizeof(buf)), ==, 5);
    g_assert_cmpstr(buf, ==, "world");

    close(fd);
    POLL_WHILE(!fe.disconnected);
    g_assert_false(qemu_chr_is_connected(chr));
    g_byte_array_unref(fe.received);
    qemu_chr_cleanup_all();
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
}

static void test_one_client_at_a_time(void)
{
    g_autofree char *path = sock_path("b");
    FrontEnd fe = { .received = g_byte_array_new() };
    Chardev *chr = new_socket_chardev("b", path);
    int first, second;

    g_assert_true(qemu_chr_attach_frontend(chr, &fe_ops, &fe, &error_abort));
    g_assert_false(qemu_chr_attach_frontend(chr, &fe_ops, &fe, NULL));
    first = client_connect(path);
    POLL_WHILE(!fe.connected);
    /* The second client waits in the backlog: no event while busy. */
    second = client_connect(path);
    for (int i = 0; i < 20; i++) {
        aio_poll(false);
    }
    g_assert_cmpint(fe.connected, ==, 1);

    /* A local disconnect lets the waiting client in. */
    qemu_chr_disconnect(chr);
    g_assert_cmpint(fe.disconnected, ==, 1);
    POLL_WHILE(fe.connected < 2);
    g_assert_cmpint(write(second, "x", 1), ==, 1);
    POLL_WHILE(fe.received->len < 1);
    close(first);
    close(second);
    POLL_WHILE(fe.disconnected < 2);
    g_byte_array_unref(fe.received);
    qemu_chr_cleanup_all();
}

static void test_hangup_without_frontend(void)
{
    g_autofree char *path = sock_path("d");
    FrontEnd fe = { .received = g_byte_array_new() };
    Chardev *chr = new_socket_chardev("d", path);
    int fd = client_connect(path);

    POLL_WHILE(!qemu_chr_is_connected(chr));
    g_assert_cmpint(write(fd, "junk", 4), ==, 4);
    close(fd);
    /* The hang-up is noticed although nobody reads: the slot is free. */
    POLL_WHILE(qemu_chr_is_connected(chr));
    g_assert_true(qemu_chr_attach_frontend(chr, &fe_ops, &fe, &error_abort));
    fd = client_connect(path);
    POLL_WHILE(!fe.connected);
    g_assert_cmpuint(fe.received->len, ==, 0);
    close(fd);
    POLL_WHILE(!fe.disconnected);
    g_byte_array_unref(fe.received);
    qemu_chr_cleanup_all();
}

static void test_large_write_is_buffered(void)
{
    g_autofree char *path = sock_path("c");
    FrontEnd fe = { .received = g_byte_array_new() };
    Chardev *chr = new_socket_chardev("c", path);
    size_t len = 8 * MiB, got = 0;
    g_autofree uint8_t *data = g_malloc(len);
    g_autofree uint8_t *back = g_malloc(len);
    int fd;

    for (size_t i = 0; i < len; i++) {
        data[i] = i * 7 + (i >> 12);
    }
    g_assert_true(qemu_chr_attach_frontend(chr, &fe_ops, &fe, &error_abort));
    fd = client_connect(path);
    POLL_WHILE(!fe.connected);
    /* Far more than a socket buffer: must return without blocking. */
    qemu_chr_write(chr, data, len);
    while (got < len) {
        ssize_t n = recv(fd, back + got, len - got, MSG_DONTWAIT);

        if (n > 0) {
            got += n;
        } else {
            g_assert_true(n < 0 && errno == EAGAIN);
            aio_poll(false);
        }
    }
    g_assert_cmpmem(back, len, data, len);
    close(fd);
    POLL_WHILE(!fe.disconnected);
    g_byte_array_unref(fe.received);
    qemu_chr_cleanup_all();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qemu_init_main_loop();
    g_test_add_func("/chardev/options/errors", test_option_errors);
    g_test_add_func("/chardev/socket/connect-receive-write-disconnect",
                    test_connect_receive_write_disconnect);
    g_test_add_func("/chardev/socket/one-client-at-a-time",
                    test_one_client_at_a_time);
    g_test_add_func("/chardev/socket/hangup-without-frontend",
                    test_hangup_without_frontend);
    g_test_add_func("/chardev/socket/large-write-is-buffered",
                    test_large_write_is_buffered);
    return g_test_run();
}

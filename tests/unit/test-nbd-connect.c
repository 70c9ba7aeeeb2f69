/*
 * Unit tests of the NBD client's connect and handshake
 * (block/nbd-connect.c, nbd_connect_export) against servers that
 * misbehave: one that accepts and never speaks, one that hangs up at
 * once, one that greets with the wrong magic.
 *
 * Each "server" is a unix socket in a fresh temporary directory, served
 * by a thread that accepts one connection and then does what the case
 * asks. The handshake is blocking code (block/nbd.c runs it on a worker
 * thread), so the tests call it directly. The timeout case uses a 1 s
 * bound instead of block/nbd.c's 30 s: what matters is that a silent
 * server ends the attempt with ETIMEDOUT rather than hanging it; the
 * upper bound on the elapsed time is generous so a loaded machine does
 * not fail it.
 */
#include "qemu/osdep.h"
#include "qapi/error.h"
#include "block/nbd-client.h"

#include <sys/socket.h>
#include <sys/un.h>

typedef enum {
    SERVER_SILENT,      /* accept, then say nothing until the test ends */
    SERVER_HANG_UP,     /* accept and close at once */
    SERVER_BAD_MAGIC,   /* send 18 bytes that are not an NBD greeting */
} ServerKind;

typedef struct TestServer {
    char *dir;
    char *path;
    int listen_fd;
    int conn_fd;
    ServerKind kind;
    GThread *thread;
} TestServer;

static gpointer server_thread(gpointer opaque)
{
    TestServer *s = opaque;
    static const char junk[18] = "HTTP/1.0 200 OK\r\n";

    s->conn_fd = accept(s->listen_fd, NULL, NULL);
    g_assert_cmpint(s->conn_fd, >=, 0);
    switch (s->kind) {
    case SERVER_SILENT:
        break;          /* the test closes conn_fd when it is done */
    case SERVER_HANG_UP:
        close(s->conn_fd);
        s->conn_fd = -1;
        break;
    case SERVER_BAD_MAGIC:
        g_assert_cmpint(write(s->conn_fd, junk, sizeof(junk)), ==,
                        sizeof(junk));
        break;
    }
    return NULL;
}

static TestServer *server_start(ServerKind kind)
{
    TestServer *s = g_new0(TestServer, 1);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };

    s->dir = g_dir_make_tmp("qblk-nbdc-XXXXXX", NULL);
    g_assert(s->dir);
    s->path = g_build_filename(s->dir, "s.sock", NULL);
    g_assert_cmpuint(strlen(s->path), <, sizeof(sun.sun_path));
    strcpy(sun.sun_path, s->path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(s->listen_fd, >=, 0);
    g_assert_cmpint(bind(s->listen_fd, (struct sockaddr *)&sun,
                         sizeof(sun)), ==, 0);
    g_assert_cmpint(listen(s->listen_fd, 1), ==, 0);
    s->conn_fd = -1;
    s->kind = kind;
    s->thread = g_thread_new("test-nbd-server", server_thread, s);
    return s;
}

static void server_stop(TestServer *s)
{
    g_thread_join(s->thread);
    if (s->conn_fd >= 0) {
        close(s->conn_fd);
    }
    close(s->listen_fd);
    unlink(s->path);
    rmdir(s->dir);
    g_free(s->path);
    g_free(s->dir);
    g_free(s);
}

/* Run the handshake against s; its result, the error text in *msg. */
static int connect_to(TestServer *s, int timeout_s, char **msg,
                      gint64 *elapsed_us)
{
    NBDServerAddr addr = { .is_unix = true, .path = s->path };
    NBDExportInfo info;
    Error *err = NULL;
    gint64 t0 = g_get_monotonic_time();
    int ret = nbd_connect_export(&addr, "exp", "nbd+unix:///exp?socket=T",
                                 timeout_s, &info, &err);

    *elapsed_us = g_get_monotonic_time() - t0;
    if (ret >= 0) {
        close(ret);
        *msg = NULL;
    } else {
        g_assert(err);
        *msg = g_strdup(error_get_pretty(err));
        error_free(err);
    }
    return ret;
}

/* A server that never speaks: the attempt ends with ETIMEDOUT. */
static void test_silent_server_times_out(void)
{
    TestServer *s = server_start(SERVER_SILENT);
    g_autofree char *msg = NULL;
    gint64 us;
    int ret = connect_to(s, 1, &msg, &us);

    g_assert_cmpint(ret, ==, -ETIMEDOUT);
    g_assert(strstr(msg, "nbd+unix:///exp?socket=T"));
    g_assert(strstr(msg, "timed out"));
    g_assert_cmpint(us, >=, 900 * 1000);
    g_assert_cmpint(us, <, 20 * G_USEC_PER_SEC);
    server_stop(s);
}

/* A server that fails at once: a clean error naming it, not a timeout. */
static void check_fails_at_once(ServerKind kind)
{
    TestServer *s = server_start(kind);
    g_autofree char *msg = NULL;
    gint64 us;
    int ret = connect_to(s, 30, &msg, &us);

    g_assert_cmpint(ret, <, 0);
    g_assert_cmpint(ret, !=, -ETIMEDOUT);
    g_assert(strstr(msg, "nbd+unix:///exp?socket=T"));
    server_stop(s);
}

/* A server that hangs up before the greeting. */
static void test_hang_up_fails(void)
{
    check_fails_at_once(SERVER_HANG_UP);
}

/* Something that is not an NBD server: refused by its greeting. */
static void test_bad_magic_refused(void)
{
    check_fails_at_once(SERVER_BAD_MAGIC);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/nbd-connect/silent-server-times-out",
                    test_silent_server_times_out);
    g_test_add_func("/nbd-connect/hang-up-fails", test_hang_up_fails);
    g_test_add_func("/nbd-connect/bad-magic-refused", test_bad_magic_refused);
    return g_test_run();
}

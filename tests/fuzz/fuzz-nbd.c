/*
 * libFuzzer target: the NBD server, handshake and transmission phase,
 * through its real socket path. Each input is the byte stream one client
 * sends: the fuzzer connects to the server's Unix socket, writes the input
 * (then shuts down its sending side, so the server always reaches EOF)
 * and drains whatever the server replies until the server closes the
 * connection. Accepting, option haggling, the 28-byte request parser,
 * payload skipping and the command dispatch all run as in the daemon.
 *
 * State: one server and two exports set up once, over a 1 MiB raw file
 * in a private temporary directory: "fz" (writable, so WRITE, TRIM and
 * WRITE_ZEROES reach the image) and "ro" (read-only). The image keeps
 * the writes of earlier inputs; that only changes what READ returns.
 *
 * A session that does not end within FUZZ_SESSION_SECONDS is a hang and
 * aborts. Nothing else leaves the process: the socket lives in the temp
 * directory, removed at exit.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "block/block.h"
#include "block/export.h"
#include "nbd/nbd.h"
#include "sysemu/blockdev.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#define FUZZ_IMAGE_SIZE (1024 * 1024)
#define FUZZ_SESSION_SECONDS 15

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[] = "/tmp/qblk-fuzz-nbd-XXXXXX";
static char *fuzz_sock_path;
static char *fuzz_img_path;

static void fuzz_cleanup(void)
{
    unlink(fuzz_sock_path);
    unlink(fuzz_img_path);
    rmdir(fuzz_dir);
}

/* Die with the message of err: the fixture could not be set up. */
static void fuzz_check(bool ok, Error *err)
{
    if (!ok) {
        fprintf(stderr, "fuzz-nbd setup: %s\n",
                err ? error_get_pretty(err) : "failed");
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Error *err = NULL;
    g_autofree char *opt = NULL;
    int fd;

    if (!mkdtemp(fuzz_dir)) {
        abort();
    }
    fuzz_sock_path = g_strdup_printf("%s/nbd.sock", fuzz_dir);
    fuzz_img_path = g_strdup_printf("%s/disk.raw", fuzz_dir);
    atexit(fuzz_cleanup);
    fd = open(fuzz_img_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, FUZZ_IMAGE_SIZE) < 0) {
        abort();
    }
    close(fd);

    qemu_init_main_loop();
    bdrv_init();
    opt = g_strdup_printf("driver=file,node-name=fz,filename=%s",
                          fuzz_img_path);
    fuzz_check(blockdev_add(opt, &err) != NULL, err);
    g_free(opt);
    opt = g_strdup_printf("driver=raw,node-name=ro,file=fz,read-only=on");
    fuzz_check(blockdev_add(opt, &err) != NULL, err);
    g_free(opt);
    opt = g_strdup_printf("addr.type=unix,addr.path=%s", fuzz_sock_path);
    fuzz_check(nbd_server_start_from_keyval(opt, &err), err);
    fuzz_check(block_export_add_from_keyval(
                   "nbd,id=e0,node-name=fz,name=fz,writable=on", &err), err);
    fuzz_check(block_export_add_from_keyval(
                   "nbd,id=e1,node-name=ro,name=ro,description=fuzz", &err),
               err);
    return 0;
}

/* A non-blocking client socket connected to the server; aborts on error. */
static int fuzz_connect(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    g_strlcpy(sa.sun_path, fuzz_sock_path, sizeof(sa.sun_path));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        abort();
    }
    return fd;
}

/* Read and drop what is available on fd; true once the peer closed it. */
static bool fuzz_drain(int fd, bool *progress)
{
    char buf[65536];
    ssize_t n;

    for (;;) {
        n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            *progress = true;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            return true;            /* EOF or ECONNRESET: session over */
        }
        return false;
    }
}

/*
 * Run the loop until no client holds an export any more: a client that
 * shut its socket down may still wait for requests in flight. Returning
 * earlier would leave coroutines parked across inputs (and look like
 * leaks: their only references are on coroutine stacks).
 */
static void fuzz_wait_clients_gone(int64_t deadline)
{
    static const char *const ids[] = { "e0", "e1" };

    for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
        BlockExport *exp = blk_exp_find(ids[i]);

        while (exp->refcount > 1) {
            if (!aio_poll(false)) {
                poll(NULL, 0, 1);
            }
            if (g_get_monotonic_time() > deadline) {
                fprintf(stderr, "fuzz-nbd: client did not go away\n");
                abort();
            }
        }
    }
    while (aio_poll(false)) {
        /* BHs of the last client's teardown */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t deadline = g_get_monotonic_time() +
                       FUZZ_SESSION_SECONDS * G_USEC_PER_SEC;
    int fd = fuzz_connect();
    size_t sent = 0;
    bool shut = false, closed = false;

    while (!closed) {
        bool progress = false;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        if (sent < size) {
            ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += n;
                progress = true;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                sent = size;        /* server hung up early: stop sending */
            }
        }
        if (sent == size && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        closed = fuzz_drain(fd, &progress);
        while (aio_poll(false)) {
            progress = true;
        }
        if (g_get_monotonic_time() > deadline) {
            fprintf(stderr, "fuzz-nbd: session did not end (hang)\n");
            abort();
        }
        if (!progress && !closed) {
            /* Thread-pool completions and our socket wake us. */
            poll(&pfd, 1, 1);
        }
    }
    close(fd);
    fuzz_wait_clients_gone(deadline);
    return 0;
}

/*
 * The stdio chardev backend: --chardev stdio,id=ID[,signal=on|off] and
 * the legacy "-qmp stdio" / "-monitor stdio". Reads fd 0, writes fd 1.
 *
 * State: whether stdin is still open, a queue of bytes for stdout, and
 * the terminal settings to restore. The "client" is connected from the
 * start; EOF on stdin means it went away for good (the daemon keeps
 * running; later output is dropped). Only one stdio chardev may exist.
 *
 * Neither fd is switched to non-blocking mode (that would change the
 * file description shared with the parent shell). Reads happen only when
 * poll says stdin is readable, so they do not block. Writes happen from
 * a writability handler, at most PIPE_BUF bytes at a time, which a pipe
 * or terminal reported writable accepts without blocking.
 *
 * When stdin is a terminal it is put in raw mode (no echo, no line
 * buffering) for HMP's line editing; a QMP monitor switches it back to
 * cooked mode (qemu_chr_set_echo), as QEMU does. With signal=on (the
 * default) Ctrl-C raises SIGINT, which shuts qblk down. The settings are restored at
 * close and by an atexit handler, so error exits restore them too.
 */
#include "qemu/osdep.h"
#include <limits.h>
#include <poll.h>
#include <termios.h>
#include "qemu/aio.h"
#include "chardev/chardev-internal.h"
#include "trace.h"

#define CHR_STDIO_READ_SIZE 4096
/* At shutdown, how long queued output may take to be written. */
#define CHR_STDIO_CLOSE_FLUSH_MS 1000

typedef struct StdioChardev {
    Chardev *chr;
    bool in_open;           /* stdin not at EOF yet */
    bool input_paused;
    bool allow_signal;      /* signal=on: Ctrl-C raises SIGINT */
    GByteArray *out;        /* queued for stdout */
} StdioChardev;

/* The one stdio chardev, or NULL. */
static StdioChardev *chr_stdio;
static bool chr_stdio_tty_saved;
static struct termios chr_stdio_tty_orig;

static void chr_stdio_read(void *opaque);
static void chr_stdio_writable(void *opaque);

/* Restore the terminal settings saved at open (idempotent). */
static void chr_stdio_restore_tty(void)
{
    if (chr_stdio_tty_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &chr_stdio_tty_orig);
        chr_stdio_tty_saved = false;
    }
}

/* Remember the terminal's settings, restored at close and at exit. */
static void chr_stdio_save_tty(void)
{
    static bool atexit_done;

    if (!isatty(STDIN_FILENO) ||
        tcgetattr(STDIN_FILENO, &chr_stdio_tty_orig) < 0) {
        return;
    }
    chr_stdio_tty_saved = true;
    if (!atexit_done) {
        atexit(chr_stdio_restore_tty);
        atexit_done = true;
    }
}

/*
 * echo=false: raw mode (no echo, no line buffering); echo=true: the saved
 * cooked settings. ISIG (Ctrl-C -> SIGINT) is kept only with signal=on.
 */
static void chr_stdio_apply_tty(bool echo, bool allow_signal)
{
    struct termios tty = chr_stdio_tty_orig;

    if (!chr_stdio_tty_saved) {
        return;
    }
    if (!echo) {
        tty.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR |
                         ICRNL | IXON);
        tty.c_oflag |= OPOST;
        tty.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
        tty.c_cflag &= ~(CSIZE | PARENB);
        tty.c_cflag |= CS8;
        tty.c_cc[VMIN] = 1;
        tty.c_cc[VTIME] = 0;
    }
    if (!allow_signal) {
        tty.c_lflag &= ~ISIG;
    }
    tcsetattr(STDIN_FILENO, TCSANOW, &tty);
}

/* Watch stdin while open and not paused, stdout while output waits. */
static void chr_stdio_update_handlers(StdioChardev *s)
{
    bool rd = s->in_open && !s->input_paused;

    aio_set_fd_handler(STDIN_FILENO, rd ? chr_stdio_read : NULL, NULL, s);
    aio_set_fd_handler(STDOUT_FILENO, NULL,
                       s->out->len ? chr_stdio_writable : NULL, s);
}

/* stdin readable: pass the bytes on; EOF or an error ends the session. */
static void chr_stdio_read(void *opaque)
{
    StdioChardev *s = opaque;
    uint8_t buf[CHR_STDIO_READ_SIZE];
    ssize_t n;

    do {
        n = read(STDIN_FILENO, buf, sizeof(buf));
    } while (n < 0 && errno == EINTR);
    trace_chr_stdio_read(s->chr, n);
    if (n > 0) {
        qemu_chr_be_receive(s->chr, buf, n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }
    s->in_open = false;
    g_byte_array_set_size(s->out, 0);
    chr_stdio_update_handlers(s);
    qemu_chr_be_disconnected(s->chr);
}

/* Write one chunk that the writable fd takes without blocking. */
static bool chr_stdio_write_chunk(StdioChardev *s)
{
    size_t len = MIN(s->out->len, (size_t)PIPE_BUF);
    ssize_t n;

    do {
        n = write(STDOUT_FILENO, s->out->data, len);
    } while (n < 0 && errno == EINTR);
    trace_chr_stdio_write(s->chr, n, s->out->len);
    if (n < 0) {
        /* stdout is gone: drop what waits, as for a hung-up socket */
        g_byte_array_set_size(s->out, 0);
        return false;
    }
    g_byte_array_remove_range(s->out, 0, n);
    return true;
}

/* stdout writable: send one chunk, keep watching while more waits. */
static void chr_stdio_writable(void *opaque)
{
    StdioChardev *s = opaque;

    chr_stdio_write_chunk(s);
    chr_stdio_update_handlers(s);
}

static void chr_stdio_write(Chardev *chr, const void *buf, size_t len)
{
    StdioChardev *s = chr->opaque;

    if (!s->in_open) {
        return;     /* the client is gone: dropped, as the API says */
    }
    g_byte_array_append(s->out, buf, len);
    chr_stdio_update_handlers(s);
}

/* "Disconnecting" stdio stops the session: stdin is no longer read. */
static void chr_stdio_disconnect(Chardev *chr)
{
    StdioChardev *s = chr->opaque;

    if (!s->in_open) {
        return;
    }
    s->in_open = false;
    chr_stdio_update_handlers(s);
    qemu_chr_be_disconnected(chr);
}

static bool chr_stdio_is_connected(const Chardev *chr)
{
    const StdioChardev *s = chr->opaque;

    return s->in_open;
}

static bool chr_stdio_is_terminal(const Chardev *chr)
{
    return isatty(STDIN_FILENO);
}

static void chr_stdio_set_echo(Chardev *chr, bool echo)
{
    StdioChardev *s = chr->opaque;

    chr_stdio_apply_tty(echo, s->allow_signal);
}

static void chr_stdio_set_input_paused(Chardev *chr, bool paused)
{
    StdioChardev *s = chr->opaque;

    s->input_paused = paused;
    chr_stdio_update_handlers(s);
}

/* The client is there from the start: tell the new front end at once. */
static void chr_stdio_frontend_attached(Chardev *chr)
{
    StdioChardev *s = chr->opaque;

    if (s->in_open) {
        qemu_chr_be_connected(chr);
    }
}

static bool chr_stdio_open(Chardev *chr, QDict *opts, Error **errp)
{
    StdioChardev *s;
    bool allow_signal;

    if (chr_stdio) {
        error_setg(errp, "cannot use stdio by multiple character devices");
        return false;
    }
    if (!qdict_get_bool(opts, "signal", true, &allow_signal, errp)) {
        return false;
    }
    qdict_del(opts, "signal");
    if (!qemu_chr_check_no_leftover(opts, errp)) {
        return false;
    }
    s = g_new0(StdioChardev, 1);
    s->chr = chr;
    s->in_open = true;
    s->out = g_byte_array_new();
    chr->opaque = s;
    s->allow_signal = allow_signal;
    chr_stdio = s;
    chr_stdio_save_tty();
    chr_stdio_apply_tty(false, allow_signal);
    chr_stdio_update_handlers(s);
    trace_chr_stdio_open(chr, chr->id, isatty(STDIN_FILENO));
    return true;
}

/* Write what is still queued (bounded wait), stop watching, restore tty. */
static void chr_stdio_close(Chardev *chr)
{
    StdioChardev *s = chr->opaque;
    int64_t deadline = g_get_monotonic_time() +
                       CHR_STDIO_CLOSE_FLUSH_MS * 1000;
    struct pollfd pfd = { .fd = STDOUT_FILENO, .events = POLLOUT };

    if (!s) {
        return;
    }
    while (s->out->len && g_get_monotonic_time() < deadline) {
        if (poll(&pfd, 1, 10) > 0 && !chr_stdio_write_chunk(s)) {
            break;
        }
    }
    aio_set_fd_handler(STDIN_FILENO, NULL, NULL, NULL);
    aio_set_fd_handler(STDOUT_FILENO, NULL, NULL, NULL);
    chr_stdio_restore_tty();
    g_byte_array_unref(s->out);
    g_free(s);
    chr->opaque = NULL;
    chr_stdio = NULL;
}

const ChardevBackend chardev_backend_stdio = {
    .name = "stdio",
    .open = chr_stdio_open,
    .frontend_attached = chr_stdio_frontend_attached,
    .write = chr_stdio_write,
    .disconnect = chr_stdio_disconnect,
    .is_connected = chr_stdio_is_connected,
    .close = chr_stdio_close,
    .set_input_paused = chr_stdio_set_input_paused,
    .is_terminal = chr_stdio_is_terminal,
    .set_echo = chr_stdio_set_echo,
};

/*
 * qblk-io: exercise a block device image from the command line, with the
 * syntax and output of qemu-io (the subset tests need).
 *
 *   qblk-io [-f fmt] [--image-opts] [-r] [-n] [-t cache] [-d discard]
 *           [-C] [-U] [-c cmd]... [-T/--trace PATTERN] filename
 *
 * This file is the shell: it parses the options, opens the image through
 * blockdev_open_image(), attaches a root child for the commands, then
 * feeds them command lines, from -c or else from stdin. The commands
 * live in qblk-io-cmds.c. The qemu-io conventions both halves share
 * (size notation, report lines, hex dump, number and pattern parsing) are
 * kept here, declared in qblk-io.h.
 *
 * Reading stdin: when stdin can be polled (a pipe, socket or terminal)
 * the main loop waits for it, so aio requests keep completing and print
 * their reports while no command is pending, as in qemu-io's interactive
 * mode. Regular files never block and are read directly.
 *
 * Exit status: 0, or 1 when the image could not be opened, an option was
 * wrong or any command failed (aio request failures excepted).
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/keyval.h"
#include "qemu/secret.h"
#include "qemu/trace-control.h"
#include "qapi/error.h"
#include "block/block.h"
#include "sysemu/blockdev.h"
#include "config-host.h"
#include "qblk-io.h"
#include "trace.h"

#include <ctype.h>
#include <getopt.h>

#define QIO_PROMPT "qblk-io> "

/* ---- qemu-io output conventions (shared with qblk-io-cmds.c) */

/*
 * Format a byte count the way qemu-io does: the largest binary unit not
 * above the value, three decimals (six for plain bytes), with an
 * all-zero fraction dropped ("64 KiB", "1.500 KiB", "9.344672 bytes").
 */
void qio_size_str(double value, char *buf, size_t size)
{
    static const char *const units[] = {
        "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
    };
    int unit = 0;
    char *dot;

    while (unit < (int)ARRAY_SIZE(units) - 1 && value >= 1024.0) {
        value /= 1024.0;
        unit++;
    }
    snprintf(buf, size, unit ? "%.3f" : "%f", value);
    dot = strchr(buf, '.');
    if (dot && strspn(dot + 1, "0") == strlen(dot + 1)) {
        *dot = '\0';
    }
    g_strlcat(buf, " ", size);
    g_strlcat(buf, units[unit], size);
}

/*
 * Format an elapsed time: "SS.CC sec" below one second, otherwise (and
 * always in CSV mode) "H:MM:SS.CC".
 */
static void qio_time_str(int64_t ns, bool fixed, char *buf, size_t size)
{
    uint64_t secs = ns / 1000000000;
    unsigned cents = (ns % 1000000000) / 10000000;

    if (!fixed && secs == 0) {
        snprintf(buf, size, "%02u.%02u sec", (unsigned)secs, cents);
        return;
    }
    snprintf(buf, size, "%u:%02u:%02u.%02u", (unsigned)(secs / 3600),
             (unsigned)(secs / 60 % 60), (unsigned)(secs % 60), cents);
}

/* Print the statistics line for count ops moving total bytes. */
static void qio_print_stats(int64_t ns, int64_t total, int count, bool csv)
{
    double secs = ns > 0 ? ns / 1e9 : 1e-9;
    char tbuf[64], sbuf[64], rbuf[64];

    qio_time_str(ns, csv, tbuf, sizeof(tbuf));
    if (csv) {
        printf("%lld,%d,%s,%.3f,%.3f\n", (long long)total, count, tbuf,
               total / secs, count / secs);
        return;
    }
    qio_size_str(total, sbuf, sizeof(sbuf));
    qio_size_str(total / secs, rbuf, sizeof(rbuf));
    printf("%s, %d ops; %s (%s/sec and %.4f ops/sec)\n", sbuf, count, tbuf,
           rbuf, count / secs);
}

/* The "read N/N bytes at offset X" line plus statistics, unless quiet. */
void qio_report(const char *verb, int64_t offset, int64_t bytes,
                       int64_t ns, bool quiet, bool csv)
{
    if (quiet) {
        return;
    }
    if (!csv) {
        printf("%s %lld/%lld bytes at offset %lld\n", verb, (long long)bytes,
               (long long)bytes, (long long)offset);
    }
    qio_print_stats(ns, bytes, 1, csv);
}

/* Hex dump of buf, labelled with image offsets starting at offset. */
void qio_dump(const uint8_t *buf, int64_t offset, int64_t len)
{
    for (int64_t i = 0; i < len; i += 16) {
        int n = MIN(16, len - i);

        printf("%08llx:  ", (unsigned long long)(offset + i));
        for (int j = 0; j < n; j++) {
            printf("%02x ", buf[i + j]);
        }
        putchar(' ');
        for (int j = 0; j < n; j++) {
            putchar(isalnum(buf[i + j]) ? buf[i + j] : '.');
        }
        putchar('\n');
    }
}

/*
 * Check that buf[0..len) is all pattern; report a mismatch naming the
 * image offset. Returns 0 or -EINVAL.
 */
int qio_verify(const uint8_t *buf, int64_t len, int pattern,
                      int64_t offset)
{
    for (int64_t i = 0; i < len; i++) {
        if (buf[i] != pattern) {
            printf("Pattern verification failed at offset %lld, %lld bytes\n",
                   (long long)offset, (long long)len);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- qemu-io argument conventions (shared with qblk-io-cmds.c) */

/* Parse an offset or length with size suffixes; prints why it failed. */
bool qio_parse_num(const char *str, int64_t *out)
{
    uint64_t value;
    int ret = parse_size(str, &value);

    if (ret == -ERANGE || (ret == 0 && value > INT64_MAX)) {
        printf("Parsing error: argument too large -- %s\n", str);
        return false;
    }
    if (ret < 0) {
        printf("Parsing error: non-numeric argument, or extraneous/"
               "unrecognized suffix -- %s\n", str);
        return false;
    }
    *out = value;
    return true;
}

/* Parse a request length, also enforcing the per-request maximum. */
bool qio_parse_len(const char *str, int64_t *out)
{
    if (!qio_parse_num(str, out)) {
        return false;
    }
    if (*out > QIO_MAX_REQUEST_BYTES) {
        printf("length cannot exceed %lld, given %s\n",
               (long long)QIO_MAX_REQUEST_BYTES, str);
        return false;
    }
    return true;
}

/* Parse a -P pattern byte (decimal, 0x hex or 0 octal, 0..255). */
bool qio_parse_pattern(const char *str, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(str, &end, 0);
    if (errno || end == str || *end || v < 0 || v > 0xff) {
        printf("%s is not a valid pattern byte\n", str);
        return false;
    }
    *out = v;
    return true;
}

/* Everything the options decide; filled by qio_parse_args(). */
typedef struct QioMainOpts {
    const char *fmt;          /* -f, or NULL to probe */
    bool image_opts;          /* the file name is a key=value option list */
    int flags;                /* BDRV_O_*: read-write and unmap by default */
    QioImageOptions img;      /* what the commands need to know (-t, -C) */
    GPtrArray *cmds;          /* -c strings, in order */
} QioMainOpts;

/* --help: the synopsis and option list, on stdout like qemu-io's. */
static void qio_main_usage(const char *name)
{
    printf("Usage: %s [OPTIONS]... [-c STRING]... [file]\n"
           "Exercise a disk image with read/write/... commands.\n"
           "\n"
           "  --image-opts         the file argument is an option string\n"
           "                       (driver=qcow2,file.filename=x.qcow2)\n"
           "  -c, --cmd STRING     run the command STRING (repeatable);\n"
           "                       without -c, commands come from stdin\n"
           "  -f, --format FMT     image format (raw, qcow2); default probe\n"
           "  -r, --read-only      open the image read-only\n"
           "  -n, --nocache        bypass the host page cache (-t none)\n"
           "  -t, --cache=MODE     cache mode: none, writeback,\n"
           "                       writethrough (default), directsync,\n"
           "                       unsafe\n"
           "  -d, --discard=MODE   ignore/off, or unmap/on (default)\n"
           "  -C, --copy-on-read   reads copy backing data into the image\n"
           "  -U, --force-share    do not lock the image\n"
           "  -T, --trace PATTERN  enable trace events matching PATTERN\n"
           "                       ([enable=]PATTERN[,file=FILE])\n"
           "  --backing-protocols LIST  protocols for backing files named\n"
           "                       in image headers (default: file)\n"
           "  --object OBJECTDEF   define a secret for password-secret=ID\n"
           "                       options (secret,id=ID,data=TEXT|file=PATH)\n"
           "  -h, --help           print this help and exit\n"
           "  -V, --version        print the version and exit\n"
           "\n"
           "Run '%s -c help' for the list of commands.\n", name, name);
}

/* Refuse a qemu-io option qblk-io does not implement. */
static QEMU_NORETURN void qio_unsupported(const char *opt)
{
    error_report("option %s is not supported", opt);
    exit(1);
}

/* Apply a -d discard mode to *flags; false if the mode is unknown. */
static bool qio_parse_discard(const char *mode, int *flags)
{
    if (!strcmp(mode, "ignore") || !strcmp(mode, "off")) {
        *flags &= ~BDRV_O_UNMAP;
    } else if (!strcmp(mode, "unmap") || !strcmp(mode, "on")) {
        *flags |= BDRV_O_UNMAP;
    } else {
        return false;
    }
    return true;
}

/* Handle one option letter; exits on bad or unsupported options. */
static void qio_main_opt(int c, const char *arg, QioMainOpts *o,
                         const char *progname)
{
    switch (c) {
    case 'c':
        g_ptr_array_add(o->cmds, (char *)arg);
        break;
    case 'f':
        o->fmt = arg;
        break;
    case 'r':
        o->flags &= ~BDRV_O_RDWR;
        break;
    case 'n':
        arg = "none";
        /* fall through */
    case 't':
        if (blockdev_parse_cache_mode(arg, &o->flags,
                                      &o->img.writethrough) < 0) {
            error_report("Invalid cache option: %s", arg);
            exit(1);
        }
        break;
    case 'd':
        if (!qio_parse_discard(arg, &o->flags)) {
            error_report("Invalid discard option: %s", arg);
            exit(1);
        }
        break;
    case 'C':
        o->img.copy_on_read = true;
        break;
    case 'U':
        o->flags |= BDRV_O_FORCE_SHARE;
        break;
    case 'T':
        if (!trace_opt_parse(arg)) {
            exit(1);
        }
        if (!strcmp(arg, "help")) {
            exit(0);        /* the event list was printed */
        }
        break;
    case 'I':
        o->image_opts = true;
        break;
    case 'B':
        bdrv_set_backing_protocols(arg, &error_fatal);
        break;
    case 'h':
        qio_main_usage(progname);
        exit(0);
    case 'V':
        printf("%s version %s\n", progname, QBLK_VERSION);
        exit(0);
    case 's':
        qio_unsupported("-s (snapshot)");
    case 'm':
        qio_unsupported("-m (misalign)");
    case 'k':
    case 'i':
        qio_unsupported("-k/-i (AIO mode selection)");
    case 'O':
        qblk_object_add_from_opts(arg, &error_fatal);
        break;
    default:
        qio_main_usage(progname);
        exit(1);
    }
}

/* Parse argv into o; returns the index of the first non-option. */
static int qio_parse_args(int argc, char **argv, QioMainOpts *o)
{
    static const struct option long_opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "cmd", required_argument, NULL, 'c' },
        { "format", required_argument, NULL, 'f' },
        { "read-only", no_argument, NULL, 'r' },
        { "snapshot", no_argument, NULL, 's' },
        { "nocache", no_argument, NULL, 'n' },
        { "copy-on-read", no_argument, NULL, 'C' },
        { "misalign", no_argument, NULL, 'm' },
        { "native-aio", no_argument, NULL, 'k' },
        { "aio", required_argument, NULL, 'i' },
        { "discard", required_argument, NULL, 'd' },
        { "cache", required_argument, NULL, 't' },
        { "trace", required_argument, NULL, 'T' },
        { "force-share", no_argument, NULL, 'U' },
        { "image-opts", no_argument, NULL, 'I' },
        { "object", required_argument, NULL, 'O' },
        { "backing-protocols", required_argument, NULL, 'B' },
        { NULL, 0, NULL, 0 },
    };
    g_autofree char *progname = g_path_get_basename(argv[0]);
    int c;

    while ((c = getopt_long(argc, argv, "hVc:f:rsnCmki:d:t:T:U",
                            long_opts, NULL)) != -1) {
        qio_main_opt(c, optarg, o, progname);
    }
    return optind;
}

/* Open filename as the options say and attach the commands' root child. */
static bool qio_open(const char *filename, const QioMainOpts *o)
{
    Error *err = NULL;
    BlockDriverState *bs;
    BdrvChild *root;

    trace_qblk_io_open(filename, o->fmt ? o->fmt : "(probe)", o->flags,
                       o->img.writethrough);
    bs = blockdev_open_image(filename, o->fmt, o->image_opts, o->flags,
                             &err);
    if (!bs) {
        trace_qblk_io_open_failed(filename, error_get_pretty(err));
        error_report("can't open device %s: %s", filename,
                     error_get_pretty(err));
        error_free(err);
        return false;
    }
    root = bdrv_root_attach(bs, "qblk-io", &err);
    bdrv_unref(bs);          /* the root child holds its own reference */
    if (!root) {
        error_report("can't open device %s: %s", filename,
                     error_get_pretty(err));
        error_free(err);
        return false;
    }
    qio_cmds_attach(root, &o->img);
    return true;
}

/* ---- Reading commands from stdin */

/* Set by the fd handler when stdin became readable. */
static bool qio_stdin_ready;

/* fd handler: note readiness; the loop in qio_stdin_fill() reads. */
static void qio_stdin_readable(void *opaque)
{
    qio_stdin_ready = true;
}

/* True when the main loop can wait for stdin (pipes, sockets, ttys). */
static bool qio_stdin_pollable(void)
{
    struct stat st;

    if (fstat(STDIN_FILENO, &st) < 0) {
        return false;
    }
    return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
           isatty(STDIN_FILENO);
}

/*
 * Append the next chunk of stdin to buf, running the main loop while
 * waiting when stdin is pollable. Returns false at end of input.
 */
static bool qio_stdin_fill(GString *buf, bool pollable)
{
    char chunk[4096];
    ssize_t n;

    for (;;) {
        if (pollable) {
            qio_stdin_ready = false;
            aio_set_fd_handler(STDIN_FILENO, qio_stdin_readable, NULL, NULL);
            AIO_WAIT_WHILE(!qio_stdin_ready);
            aio_set_fd_handler(STDIN_FILENO, NULL, NULL, NULL);
        }
        n = read(STDIN_FILENO, chunk, sizeof(chunk));
        if (n > 0) {
            g_string_append_len(buf, chunk, n);
            return true;
        }
        if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            return false;
        }
    }
}

/* Run command lines from stdin until end of input or quit. */
static void qio_stdin_loop(bool *failed)
{
    g_autoptr(GString) buf = g_string_new(NULL);
    bool pollable = qio_stdin_pollable();
    bool tty = isatty(STDIN_FILENO);
    bool eof = false;

    for (;;) {
        char *nl = memchr(buf->str, '\n', buf->len);
        g_autofree char *line = NULL;

        /* Need more input: prompt (terminals only) and wait for it. */
        if (!nl && !eof) {
            if (tty && buf->len == 0) {
                printf("%s", QIO_PROMPT);
                fflush(stdout);
            }
            eof = !qio_stdin_fill(buf, pollable);
            continue;
        }
        /* At end of input a last line without newline still runs. */
        if (!nl && buf->len == 0) {
            break;
        }
        line = g_strndup(buf->str, nl ? (gsize)(nl - buf->str) : buf->len);
        g_string_erase(buf, 0, nl ? nl - buf->str + 1 : (gssize)buf->len);
        if (!qio_cmds_run_line(line, failed)) {
            break;
        }
    }
}

/*
 * Parse, open (when a file is named: "help" and "quit" work without
 * one), run the -c commands or else stdin, then close. The exit status
 * reports any failed command.
 */
int main(int argc, char **argv)
{
    QioMainOpts o = {
        .flags = BDRV_O_RDWR | BDRV_O_UNMAP,
        .img = { .writethrough = true },
        .cmds = g_ptr_array_new(),
    };
    bool failed = false;
    BdrvChild *root;
    int first;

    error_set_progname("qblk-io");
    /* Line buffering keeps stdout and stderr messages in order. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    first = qio_parse_args(argc, argv, &o);
    if (argc - first > 1) {
        qio_main_usage("qblk-io");
        return 1;
    }
    if (o.image_opts && o.fmt) {
        error_report("--image-opts and -f are mutually exclusive");
        return 1;
    }
    qemu_init_main_loop();
    bdrv_init();
    if (first < argc && !qio_open(argv[first], &o)) {
        return 1;
    }
    if (o.cmds->len) {
        for (guint i = 0; i < o.cmds->len; i++) {
            if (!qio_cmds_run_line(g_ptr_array_index(o.cmds, i), &failed)) {
                break;
            }
        }
    } else {
        qio_stdin_loop(&failed);
    }
    /* Like qemu-io at close: aio requests still in flight finish first. */
    root = qio_cmds_detach();
    if (root) {
        bdrv_root_unref_child(root);
    }
    g_ptr_array_free(o.cmds, true);
    return failed ? 1 : 0;
}

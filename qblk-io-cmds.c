/*
 * qblk-io commands: the command table and the commands themselves.
 *
 * State: one open image (the root BdrvChild handed over by qblk-io.c),
 * its write-through/copy-on-read options, and a count of aio requests in
 * flight. Everything runs on the main loop thread; the only concurrency
 * is between coroutines, so no locking is needed.
 *
 * Every request runs in a coroutine created here and is issued through
 * the root child with the bdrv_co_* API. Synchronous commands (read,
 * write, ...) drive the main loop with aio_poll() until their coroutine
 * finishes; aio_read/aio_write enter their coroutine and return at its
 * first yield, so many requests can be in flight at once. An aio request
 * prints its own report when it completes and frees its state;
 * aio_flush and detaching wait until the in-flight count drops to zero.
 *
 * Command functions take (cmd, argc, argv) with argv[0] the command name
 * and getopt reset; they parse their options through qio_getopts() with
 * a per-command QioOptFunc, print qemu-io's message for any usage error
 * themselves and return 0, -errno (the command failed) or QIO_CMD_QUIT.
 *
 * Output mimics qemu-io 7.2 byte for byte where scripts parse it: the
 * "read N/N bytes at offset X" line, the statistics line, map, alloc,
 * length, info and the error messages. Messages about bad usage go to
 * stderr, everything else to stdout, as qemu-io does.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/coroutine.h"
#include "qapi/error.h"
#include "block/block_int.h"
#include "qblk-io.h"
#include "trace.h"

#include <getopt.h>
#include <json-glib/json-glib.h>

/* A command's return value asking the program to stop reading commands. */
#define QIO_CMD_QUIT 1

typedef struct QioCmd QioCmd;
typedef int QioCmdFunc(const QioCmd *cmd, int argc, char **argv);

struct QioCmd {
    const char *name;
    const char *altname;     /* short alias, or NULL */
    QioCmdFunc *func;
    int argmin;              /* arguments after the name, options included */
    int argmax;              /* -1: no upper limit */
    bool needs_image;
    bool needs_write;        /* refused on a read-only image */
    const char *args;        /* synopsis of the arguments */
    const char *oneline;     /* one-line description */
    const char *help;        /* extended help text, or NULL */
};

/* The command set's state (see the design note above). */
static struct {
    BdrvChild *root;
    QioImageOptions opts;
    int aio_in_flight;
} qio;

static const QioCmd qio_cmds[];

/* Print cmd's synopsis line (stdout, as qemu-io does on bad usage). */
static void qio_usage(const QioCmd *cmd)
{
    printf("%s %s -- %s\n", cmd->name, cmd->args, cmd->oneline);
}

/* ---- Running requests in coroutines */

/* The kinds of request a command can issue. */
typedef enum QioOp {
    QIO_OP_READ,
    QIO_OP_WRITE,
    QIO_OP_ZERO,
    QIO_OP_DISCARD,
    QIO_OP_FLUSH,
} QioOp;

/* Names for trace output, indexed by QioOp. */
static const char *const qio_op_names[] = {
    [QIO_OP_READ] = "read", [QIO_OP_WRITE] = "write",
    [QIO_OP_ZERO] = "zero", [QIO_OP_DISCARD] = "discard",
    [QIO_OP_FLUSH] = "flush",
};

/* One request, synchronous or aio; flush ignores offset and bytes. */
typedef struct QioRequest {
    QioOp op;
    int64_t offset;           /* guest offset, byte-granular */
    int64_t bytes;
    QEMUIOVector *qiov;       /* READ and WRITE only */
    BdrvRequestFlags flags;   /* FUA, MAY_UNMAP, NO_FALLBACK */
} QioRequest;

/* The node the root child points at (NULL when no image is open). */
static BlockDriverState *qio_bs(void)
{
    return bdrv_child_bs(qio.root);
}

/*
 * Refuse ranges outside the image the way a block backend does: -EIO
 * for anything past the end, -EIO for negative or oversized requests.
 */
static int qio_check_range(int64_t offset, int64_t bytes)
{
    int64_t len = bdrv_getlength(qio_bs());

    if (len < 0) {
        return len;
    }
    if (offset < 0 || bytes < 0 || bytes > QIO_MAX_REQUEST_BYTES ||
        offset > len || bytes > len - offset) {
        return -EIO;
    }
    return 0;
}

/*
 * Issue one request through the root child; adds copy-on-read to reads
 * and a flush after writes when the image is in write-through mode.
 * Returns 0 or -errno.
 */
static int coroutine_fn qio_co_execute(QioRequest *req)
{
    BdrvChild *root = qio.root;
    int ret = 0;

    trace_qblk_io_request(req, qio_op_names[req->op],
                          (long long)req->offset, (long long)req->bytes,
                          req->flags);
    if (req->op != QIO_OP_FLUSH) {
        /* Empty requests succeed without reaching the block layer. */
        ret = qio_check_range(req->offset, req->bytes);
        if (ret < 0 || req->bytes == 0) {
            goto out;
        }
    }
    switch (req->op) {
    case QIO_OP_READ:
        ret = bdrv_co_preadv(root, req->offset, req->bytes, req->qiov,
                             req->flags | (qio.opts.copy_on_read ?
                                           BDRV_REQ_COPY_ON_READ : 0));
        break;
    case QIO_OP_WRITE:
        ret = bdrv_co_pwritev(root, req->offset, req->bytes, req->qiov,
                              req->flags);
        break;
    case QIO_OP_ZERO:
        ret = bdrv_co_pwrite_zeroes(root, req->offset, req->bytes,
                                    req->flags);
        break;
    case QIO_OP_DISCARD:
        ret = bdrv_co_pdiscard(root, req->offset, req->bytes);
        break;
    case QIO_OP_FLUSH:
        ret = bdrv_co_flush(qio_bs());
        break;
    }
    /* Write-through: the write is not complete until it is stable. */
    if (ret >= 0 && qio.opts.writethrough &&
        (req->op == QIO_OP_WRITE || req->op == QIO_OP_ZERO)) {
        ret = bdrv_co_flush(qio_bs());
    }
out:
    ret = ret < 0 ? ret : 0;
    trace_qblk_io_request_done(req, ret);
    return ret;
}

/* A function run synchronously inside a coroutine by qio_run_co(). */
typedef int coroutine_fn QioCoFunc(void *opaque);

/* A call in progress: lives on the caller's stack until done is set. */
typedef struct QioCoCall {
    QioCoFunc *fn;
    void *opaque;
    int ret;                 /* fn's result, valid once done */
    bool done;
} QioCoCall;

/* Coroutine body of qio_run_co(): run the call and flag completion. */
static void coroutine_fn qio_co_call_entry(void *opaque)
{
    QioCoCall *call = opaque;

    call->ret = call->fn(call->opaque);
    call->done = true;
}

/*
 * Run fn(opaque) in a new coroutine and drive the main loop until it
 * returns (aio requests in flight make progress meanwhile). Returns fn's
 * result; *ns (may be NULL) receives the elapsed time.
 */
static int qio_run_co(QioCoFunc *fn, void *opaque, int64_t *ns)
{
    QioCoCall call = { .fn = fn, .opaque = opaque };
    int64_t start = qemu_clock_get_ns();

    qemu_coroutine_enter(qemu_coroutine_create(qio_co_call_entry, &call));
    AIO_WAIT_WHILE(!call.done);
    if (ns) {
        *ns = qemu_clock_get_ns() - start;
    }
    return call.ret;
}

/* qio_co_execute() in QioCoFunc shape (opaque is the QioRequest). */
static int coroutine_fn qio_co_execute_cb(void *opaque)
{
    return qio_co_execute(opaque);
}

/*
 * Run one request to completion from outside coroutine context; see
 * qio_run_co(). Returns 0 or -errno.
 */
static int qio_run_request(QioRequest *req, int64_t *ns)
{
    return qio_run_co(qio_co_execute_cb, req, ns);
}

/* ---- Buffers */

/*
 * An I/O buffer of len bytes (len may be 0), filled with pattern and
 * aligned for the open node. Requires an open image; qemu_vfree() it.
 */
static uint8_t *qio_alloc_buf(int64_t len, int pattern)
{
    uint8_t *buf = qemu_blockalign_bs(qio_bs(), MAX(len, 1));

    memset(buf, pattern, MAX(len, 1));
    return buf;
}

/*
 * Parse the lengths argv[0..count) and build a vector over one buffer
 * holding all of them. Returns the buffer (free with qemu_vfree) or NULL
 * after printing why.
 */
static uint8_t *qio_build_iovec(QEMUIOVector *qiov, char **argv, int count,
                                int pattern)
{
    g_autofree int64_t *lens = g_new(int64_t, count);
    int64_t total = 0;
    uint8_t *buf;

    for (int i = 0; i < count; i++) {
        if (!qio_parse_len(argv[i], &lens[i])) {
            return NULL;
        }
        total += lens[i];
        if (total > QIO_MAX_REQUEST_BYTES) {
            printf("Argument '%s' exceeds maximum size %lld\n", argv[i],
                   (long long)QIO_MAX_REQUEST_BYTES);
            return NULL;
        }
    }
    buf = qio_alloc_buf(total, pattern);
    qemu_iovec_init(qiov, count);
    for (int64_t i = 0, pos = 0; i < count; pos += lens[i], i++) {
        qemu_iovec_add(qiov, buf + pos, lens[i]);
    }
    return buf;
}

/* ---- Option and argument parsing shared by the I/O commands */

/* -C and -q: how a completed request is reported. */
typedef struct QioReportOpts {
    bool csv;                /* -C: one comma separated line */
    bool quiet;              /* -q: no report at all */
} QioReportOpts;

/* Store -C or -q in r; false if c is neither. */
static bool qio_report_opt(int c, QioReportOpts *r)
{
    if (c == 'C') {
        r->csv = true;
    } else if (c == 'q') {
        r->quiet = true;
    } else {
        return false;
    }
    return true;
}

/*
 * A command's option handler: stores option c (optarg set by getopt) in
 * opts. False for an option it does not take ('?'), or for a bad value
 * after printing why.
 */
typedef bool QioOptFunc(int c, void *opts);

/*
 * Run getopt over argv with optstring, handing each option to fn. On
 * failure prints the usage line when the option itself was unknown and
 * returns false; the arguments start at argv[optind] afterwards.
 */
static bool qio_getopts(const QioCmd *cmd, int argc, char **argv,
                        const char *optstring, QioOptFunc *fn, void *opts)
{
    int c;

    while ((c = getopt(argc, argv, optstring)) != -1) {
        if (!fn(c, opts)) {
            if (c == '?') {
                qio_usage(cmd);
            }
            return false;
        }
    }
    return true;
}

/*
 * Parse the "off len" arguments of a single-range command; false after
 * printing the usage (wrong count) or why a number is bad.
 */
static bool qio_range_args(const QioCmd *cmd, int argc, char **argv,
                           int64_t *offset, int64_t *bytes)
{
    if (optind != argc - 2) {
        qio_usage(cmd);
        return false;
    }
    return qio_parse_num(argv[optind], offset) &&
           qio_parse_len(argv[optind + 1], bytes);
}

/*
 * Parse the offset of a vectored command ("off len [len..]"); false after
 * printing the usage (no length given) or why the offset is bad.
 */
static bool qio_vector_offset(const QioCmd *cmd, int argc, char **argv,
                              int64_t *offset)
{
    if (optind > argc - 2) {
        qio_usage(cmd);
        return false;
    }
    return qio_parse_num(argv[optind], offset);
}

/*
 * Parse "off len [len..]" into *offset and a vector over one buffer
 * filled with pattern. Returns the buffer (qemu_vfree it after
 * qemu_iovec_destroy) or NULL after printing why.
 */
static uint8_t *qio_vector_args(const QioCmd *cmd, int argc, char **argv,
                                int64_t *offset, QEMUIOVector *qiov,
                                int pattern)
{
    if (!qio_vector_offset(cmd, argc, argv, offset)) {
        return NULL;
    }
    return qio_build_iovec(qiov, argv + optind + 1, argc - optind - 1,
                           pattern);
}

/* ---- read, readv */

/* Options of the reading commands (each takes a subset). */
typedef struct QioReadOpts {
    QioReportOpts report;    /* -C, -q */
    bool dump;               /* -v: hex dump the data */
    bool verify;             /* -P: compare with pattern */
    bool vmstate;            /* -b: refused as not supported */
    bool range_opts;         /* -s or -l given (they need -P) */
    int pattern;
    int64_t poff;            /* -s: start of the verified range */
    int64_t plen;            /* -l: its length; -1 means "to the end" */
} QioReadOpts;

/*
 * Read [offset, offset + bytes) into qiov (over buf), then verify, dump
 * and report as qemu-io does. verb names the command in messages.
 */
static int qio_do_read(const char *verb, const QioReadOpts *o,
                       int64_t offset, int64_t bytes, QEMUIOVector *qiov,
                       uint8_t *buf)
{
    QioRequest req = { .op = QIO_OP_READ, .offset = offset,
                       .bytes = bytes, .qiov = qiov };
    int64_t ns, plen = o->plen >= 0 ? o->plen : bytes - o->poff;
    int ret;

    if (o->verify && (o->poff > bytes || plen > bytes - o->poff)) {
        printf("pattern verification range exceeds end of read data\n");
        return -EINVAL;
    }
    ret = qio_run_request(&req, &ns);
    if (ret < 0) {
        printf("%s failed: %s\n", verb, strerror(-ret));
        return ret;
    }
    if (o->verify) {
        ret = qio_verify(buf + o->poff, plen, o->pattern, offset + o->poff);
    }
    if (o->dump) {
        qio_dump(buf, offset, bytes);
    }
    qio_report("read", offset, bytes, ns, o->report.quiet, o->report.csv);
    return ret;
}

/* QioOptFunc of read, readv and aio_read (opaque is a QioReadOpts). */
static bool qio_read_opt(int c, void *opaque)
{
    QioReadOpts *o = opaque;

    switch (c) {
    case 'b':
        o->vmstate = true;
        return true;
    case 'p':
        return true;        /* accepted and ignored, as in qemu-io */
    case 'v':
        o->dump = true;
        return true;
    case 'P':
        o->verify = true;
        return qio_parse_pattern(optarg, &o->pattern);
    case 'l':
    case 's':
        o->range_opts = true;
        return qio_parse_num(optarg, c == 'l' ? &o->plen : &o->poff);
    default:
        return qio_report_opt(c, &o->report);
    }
}

/*
 * read [-bCqv] [-P pattern [-s off] [-l len]] off len: a synchronous
 * read into one buffer; fails on I/O error or pattern mismatch.
 */
static int qio_cmd_read(const QioCmd *cmd, int argc, char **argv)
{
    QioReadOpts o = { .plen = -1 };
    int64_t offset, bytes;
    QEMUIOVector qiov;
    uint8_t *buf;
    int ret;

    if (!qio_getopts(cmd, argc, argv, "bCl:pP:qs:v", qio_read_opt, &o)) {
        return -EINVAL;
    }
    if (o.range_opts && !o.verify) {
        qio_usage(cmd);
        return -EINVAL;
    }
    if (!qio_range_args(cmd, argc, argv, &offset, &bytes)) {
        return -EINVAL;
    }
    if (o.vmstate) {
        printf("read failed: %s (VM state is not supported)\n",
               strerror(ENOTSUP));
        return -ENOTSUP;
    }
    buf = qio_alloc_buf(bytes, 0xab);
    qemu_iovec_init_buf(&qiov, buf, bytes);
    ret = qio_do_read("read", &o, offset, bytes, &qiov, buf);
    qemu_iovec_destroy(&qiov);
    qemu_vfree(buf);
    return ret;
}

/* readv [-Cqv] [-P pattern] off len [len..]: one buffer per length. */
static int qio_cmd_readv(const QioCmd *cmd, int argc, char **argv)
{
    QioReadOpts o = { .plen = -1 };
    int64_t offset;
    QEMUIOVector qiov;
    uint8_t *buf;
    int ret;

    if (!qio_getopts(cmd, argc, argv, "CqvP:", qio_read_opt, &o)) {
        return -EINVAL;
    }
    buf = qio_vector_args(cmd, argc, argv, &offset, &qiov, 0xab);
    if (!buf) {
        return -EINVAL;
    }
    ret = qio_do_read("readv", &o, offset, qiov.size, &qiov, buf);
    qemu_iovec_destroy(&qiov);
    qemu_vfree(buf);
    return ret;
}

/* ---- write, writev */

/* Options shared by the writing commands. */
typedef struct QioWriteOpts {
    QioReportOpts report;    /* -C, -q */
    bool zero, unmap;        /* -z, -u: zero write, may deallocate */
    bool no_fallback, fua;   /* -n, -f: request flags */
    bool compressed, vmstate;    /* -c, -b: refused as not supported */
    bool have_pattern;       /* -P given (conflicts with -z and -s) */
    int pattern;             /* fill byte, 0xcd by default */
    const char *source;      /* -s: file supplying the data */
} QioWriteOpts;

/* QioOptFunc of the write commands (opaque is a QioWriteOpts). */
static bool qio_write_opt(int c, void *opaque)
{
    QioWriteOpts *o = opaque;

    switch (c) {
    case 'f':
        o->fua = true;
        return true;
    case 'z':
        o->zero = true;
        return true;
    case 'u':
        o->unmap = true;
        return true;
    case 'n':
        o->no_fallback = true;
        return true;
    case 'c':
        o->compressed = true;
        return true;
    case 'b':
        o->vmstate = true;
        return true;
    case 's':
        o->source = optarg;
        return true;
    case 'p':
        return true;
    case 'P':
        o->have_pattern = true;
        return qio_parse_pattern(optarg, &o->pattern);
    default:
        return qio_report_opt(c, &o->report);
    }
}

/* The request flags the write options ask for. */
static BdrvRequestFlags qio_write_flags(const QioWriteOpts *o)
{
    return (o->fua ? BDRV_REQ_FUA : 0) |
           (o->unmap ? BDRV_REQ_MAY_UNMAP : 0) |
           (o->no_fallback ? BDRV_REQ_NO_FALLBACK : 0);
}

/* Reject combinations qemu-io rejects; prints why. */
static bool qio_write_opts_valid(const QioWriteOpts *o)
{
    if (o->zero + o->have_pattern + !!o->source > 1) {
        printf("Only one of -z, -P, and -s can be specified at the same "
               "time\n");
        return false;
    }
    if (o->unmap && !o->zero) {
        printf("-u requires -z to be specified\n");
        return false;
    }
    if (o->no_fallback && !o->zero) {
        printf("-n requires -z to be specified\n");
        return false;
    }
    if (o->compressed && o->zero) {
        printf("-c and -z cannot be specified at the same time\n");
        return false;
    }
    return true;
}

/* Fill buf[0..len) from the -s source file; prints why it failed. */
static bool qio_fill_from_file(const char *path, uint8_t *buf, int64_t len)
{
    FILE *f = fopen(path, "r");
    size_t got;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return false;
    }
    got = fread(buf, 1, len, f);
    fclose(f);
    if (got < (size_t)len) {
        printf("Could not read %lld bytes from source file '%s'\n",
               (long long)len, path);
        return false;
    }
    return true;
}

/* Run a write (or zero write) request and report it. */
static int qio_do_write(const char *verb, const QioWriteOpts *o,
                        int64_t offset, int64_t bytes, QEMUIOVector *qiov)
{
    QioRequest req = { .offset = offset, .bytes = bytes, .qiov = qiov };
    int64_t ns;
    int ret;

    if (o->compressed || o->vmstate) {
        printf("%s failed: %s\n", verb, strerror(ENOTSUP));
        return -ENOTSUP;
    }
    req.op = o->zero ? QIO_OP_ZERO : QIO_OP_WRITE;
    req.flags = qio_write_flags(o);
    ret = qio_run_request(&req, &ns);
    if (ret < 0) {
        printf("%s failed: %s\n", verb, strerror(-ret));
        return ret;
    }
    qio_report("wrote", offset, bytes, ns, o->report.quiet, o->report.csv);
    return 0;
}

/*
 * write [-bcCfnquz] [-P pattern | -s file] off len: a synchronous write
 * of a pattern buffer, file data, or (with -z) zeroes without a buffer.
 */
static int qio_cmd_write(const QioCmd *cmd, int argc, char **argv)
{
    QioWriteOpts o = { .pattern = 0xcd };
    int64_t offset, bytes;
    QEMUIOVector qiov;
    uint8_t *buf = NULL;
    int ret;

    if (!qio_getopts(cmd, argc, argv, "bcCfnpP:qs:uz", qio_write_opt, &o) ||
        !qio_write_opts_valid(&o) ||
        !qio_range_args(cmd, argc, argv, &offset, &bytes)) {
        return -EINVAL;
    }
    if (!o.zero) {
        buf = qio_alloc_buf(bytes, o.pattern);
        if (o.source && !qio_fill_from_file(o.source, buf, bytes)) {
            qemu_vfree(buf);
            return -EINVAL;
        }
        qemu_iovec_init_buf(&qiov, buf, bytes);
    }
    ret = qio_do_write("write", &o, offset, bytes, o.zero ? NULL : &qiov);
    if (buf) {
        qemu_iovec_destroy(&qiov);
        qemu_vfree(buf);
    }
    return ret;
}

/* writev [-Cfq] [-P pattern] off len [len..]: one buffer per length. */
static int qio_cmd_writev(const QioCmd *cmd, int argc, char **argv)
{
    QioWriteOpts o = { .pattern = 0xcd };
    int64_t offset;
    QEMUIOVector qiov;
    uint8_t *buf;
    int ret;

    if (!qio_getopts(cmd, argc, argv, "CfqP:", qio_write_opt, &o)) {
        return -EINVAL;
    }
    buf = qio_vector_args(cmd, argc, argv, &offset, &qiov, o.pattern);
    if (!buf) {
        return -EINVAL;
    }
    ret = qio_do_write("writev", &o, offset, qiov.size, &qiov);
    qemu_iovec_destroy(&qiov);
    qemu_vfree(buf);
    return ret;
}

/* ---- aio_read, aio_write, aio_flush */

/* One asynchronous request; owned by its coroutine until completion. */
typedef struct QioAioReq {
    QioRequest req;
    QEMUIOVector qiov;
    uint8_t *buf;
    QioReadOpts ro;          /* aio_read's verify/dump options */
    QioReportOpts report;    /* -C, -q of either command */
    int64_t start_ns;
} QioAioReq;

/* Print an aio request's outcome when it completes (qemu-io's wording). */
static void qio_aio_report(QioAioReq *a, int ret, int64_t ns)
{
    bool is_read = a->req.op == QIO_OP_READ;

    if (ret < 0) {
        printf("%s failed: %s\n", is_read ? "readv" : "aio_write",
               strerror(-ret));
        return;
    }
    if (is_read && a->ro.verify) {
        qio_verify(a->buf, a->req.bytes, a->ro.pattern, a->req.offset);
    }
    if (is_read && a->ro.dump) {
        qio_dump(a->buf, a->req.offset, a->req.bytes);
    }
    qio_report(is_read ? "read" : "wrote", a->req.offset, a->req.bytes, ns,
               a->report.quiet, a->report.csv);
}

/* Coroutine body of an aio request: run, report, free, count down. */
static void coroutine_fn qio_co_aio_entry(void *opaque)
{
    QioAioReq *a = opaque;
    int ret = qio_co_execute(&a->req);

    trace_qblk_io_aio_complete(a, ret, qio.aio_in_flight - 1);
    qio_aio_report(a, ret, qemu_clock_get_ns() - a->start_ns);
    if (a->buf) {
        qemu_iovec_destroy(&a->qiov);
        qemu_vfree(a->buf);
    }
    g_free(a);
    qio.aio_in_flight--;
}

/*
 * Start a; it runs until its first yield and completes later. From here
 * on a belongs to its coroutine, which frees it.
 */
static void qio_aio_submit(QioAioReq *a)
{
    qio.aio_in_flight++;
    trace_qblk_io_aio_submit(a, qio_op_names[a->req.op],
                             (long long)a->req.offset,
                             (long long)a->req.bytes, qio.aio_in_flight);
    a->start_ns = qemu_clock_get_ns();
    qemu_coroutine_enter(qemu_coroutine_create(qio_co_aio_entry, a));
}

/*
 * aio_read [-Cqv] [-P pattern] off len [len..]: start the read and return;
 * only submission errors make the command fail.
 */
static int qio_cmd_aio_read(const QioCmd *cmd, int argc, char **argv)
{
    QioAioReq *a = g_new0(QioAioReq, 1);
    int64_t offset;

    if (!qio_getopts(cmd, argc, argv, "CqvP:", qio_read_opt, &a->ro)) {
        g_free(a);
        return -EINVAL;
    }
    a->buf = qio_vector_args(cmd, argc, argv, &offset, &a->qiov, 0xab);
    if (!a->buf) {
        g_free(a);
        return -EINVAL;
    }
    a->req = (QioRequest) { .op = QIO_OP_READ, .offset = offset,
                            .bytes = a->qiov.size, .qiov = &a->qiov };
    a->report = a->ro.report;
    qio_aio_submit(a);
    return 0;
}

/*
 * aio_write [-Cfquz] [-P pattern] off len [len..]: start the write (or a
 * zero write of one length) and return.
 */
static int qio_cmd_aio_write(const QioCmd *cmd, int argc, char **argv)
{
    QioWriteOpts o = { .pattern = 0xcd };
    QioAioReq *a;
    int64_t offset, bytes;

    if (!qio_getopts(cmd, argc, argv, "CfquzP:", qio_write_opt, &o)) {
        return -EINVAL;
    }
    /* qemu-io lets -z win over -P here; only -u still needs -z. */
    if (o.unmap && !o.zero) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    if (!qio_vector_offset(cmd, argc, argv, &offset)) {
        return -EINVAL;
    }
    a = g_new0(QioAioReq, 1);
    if (o.zero) {
        if (optind != argc - 2 || !qio_parse_len(argv[optind + 1], &bytes)) {
            if (optind != argc - 2) {
                qio_usage(cmd);
            }
            g_free(a);
            return -EINVAL;
        }
        a->req = (QioRequest) { .op = QIO_OP_ZERO, .bytes = bytes };
    } else {
        a->buf = qio_build_iovec(&a->qiov, argv + optind + 1,
                                 argc - optind - 1, o.pattern);
        if (!a->buf) {
            g_free(a);
            return -EINVAL;
        }
        a->req = (QioRequest) { .op = QIO_OP_WRITE, .bytes = a->qiov.size,
                                .qiov = &a->qiov };
    }
    a->req.offset = offset;
    a->req.flags = qio_write_flags(&o);
    a->report = o.report;
    qio_aio_submit(a);
    return 0;
}

/* aio_flush: wait until no aio request is in flight, then flush. */
static int qio_cmd_aio_flush(const QioCmd *cmd, int argc, char **argv)
{
    QioRequest req = { .op = QIO_OP_FLUSH };
    int ret;

    AIO_WAIT_WHILE(qio.aio_in_flight > 0);
    ret = qio_run_request(&req, NULL);
    if (ret < 0) {
        printf("aio_flush failed: %s\n", strerror(-ret));
    }
    return ret;
}

/* ---- discard, flush, truncate, length */

/* QioOptFunc of discard (opaque is a QioReportOpts). */
static bool qio_discard_opt(int c, void *opaque)
{
    return qio_report_opt(c, opaque);
}

/* discard [-Cq] off len: reported as "discard N/N bytes at offset X". */
static int qio_cmd_discard(const QioCmd *cmd, int argc, char **argv)
{
    QioRequest req = { .op = QIO_OP_DISCARD };
    QioReportOpts r = { 0 };
    int64_t ns;
    int ret;

    if (!qio_getopts(cmd, argc, argv, "Cq", qio_discard_opt, &r) ||
        !qio_range_args(cmd, argc, argv, &req.offset, &req.bytes)) {
        return -EINVAL;
    }
    ret = qio_run_request(&req, &ns);
    if (ret < 0) {
        printf("discard failed: %s\n", strerror(-ret));
        return ret;
    }
    qio_report("discard", req.offset, req.bytes, ns, r.quiet, r.csv);
    return 0;
}

/* flush: flush the whole node chain to stable storage. */
static int qio_cmd_flush(const QioCmd *cmd, int argc, char **argv)
{
    QioRequest req = { .op = QIO_OP_FLUSH };
    int ret = qio_run_request(&req, NULL);

    if (ret < 0) {
        printf("flush failed: %s\n", strerror(-ret));
    }
    return ret;
}

/* Arguments and error of a truncate, passed into its coroutine. */
typedef struct QioTruncate {
    int64_t offset;          /* the new size */
    PreallocMode prealloc;   /* -m, "off" by default */
    Error *err;              /* set on failure; reported by the caller */
} QioTruncate;

/* Coroutine part of truncate; errors are left in t->err. */
static int coroutine_fn qio_co_truncate(void *opaque)
{
    QioTruncate *t = opaque;

    return bdrv_co_truncate(qio.root, t->offset, false, t->prealloc, 0,
                            &t->err);
}

/* QioOptFunc of truncate: -m (opaque is a QioTruncate). */
static bool qio_truncate_opt(int c, void *opaque)
{
    QioTruncate *t = opaque;

    if (c != 'm') {
        return false;
    }
    if (prealloc_mode_parse(optarg, &t->prealloc) < 0) {
        error_report("Invalid preallocation mode '%s'", optarg);
        return false;
    }
    return true;
}

/* truncate [-m prealloc] off: resize; errors go through error_report. */
static int qio_cmd_truncate(const QioCmd *cmd, int argc, char **argv)
{
    QioTruncate t = { .prealloc = PREALLOC_MODE_OFF };
    int ret;

    if (!qio_getopts(cmd, argc, argv, "m:", qio_truncate_opt, &t)) {
        return -EINVAL;
    }
    if (optind != argc - 1) {
        qio_usage(cmd);
        return -EINVAL;
    }
    if (!qio_parse_num(argv[optind], &t.offset)) {
        return -EINVAL;
    }
    ret = qio_run_co(qio_co_truncate, &t, NULL);
    if (ret < 0) {
        if (t.err) {
            error_report_err(t.err);
        } else {
            error_report("Could not truncate '%s': %s",
                         bdrv_get_filename(qio_bs()), strerror(-ret));
        }
    }
    return ret < 0 ? ret : 0;
}

/* length: the guest-visible size in qemu-io's size notation. */
static int qio_cmd_length(const QioCmd *cmd, int argc, char **argv)
{
    int64_t len = bdrv_getlength(qio_bs());
    char buf[64];

    if (len < 0) {
        printf("getlength: %s\n", strerror(-len));
        return len;
    }
    qio_size_str(len, buf, sizeof(buf));
    printf("%s\n", buf);
    return 0;
}

/* ---- info */

/* Print one JSON value of the format-specific info, qemu-io style. */
static void qio_dump_json(JsonNode *node, const char *key, int indent);

/* Print every member of obj, in stored order, at indent. */
static void qio_dump_json_object(JsonObject *obj, int indent)
{
    g_autoptr(GList) members = json_object_get_members(obj);

    for (GList *l = members; l; l = l->next) {
        qio_dump_json(json_object_get_member(obj, l->data), l->data, indent);
    }
}

/*
 * "key: value" (dashes in key shown as spaces), or "key:" followed by
 * the members/elements of an object/array indented four more columns.
 */
static void qio_dump_json(JsonNode *node, const char *key, int indent)
{
    g_autofree char *label = g_strdelimit(g_strdup(key), "-", ' ');

    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        printf("%*s%s:\n", indent, "", label);
        qio_dump_json_object(json_node_get_object(node), indent + 4);
        break;
    case JSON_NODE_ARRAY: {
        JsonArray *arr = json_node_get_array(node);

        printf("%*s%s:\n", indent, "", label);
        for (guint i = 0; i < json_array_get_length(arr); i++) {
            g_autofree char *idx = g_strdup_printf("[%u]", i);
            qio_dump_json(json_array_get_element(arr, i), idx, indent + 4);
        }
        break;
    }
    case JSON_NODE_VALUE:
        if (json_node_get_value_type(node) == G_TYPE_BOOLEAN) {
            printf("%*s%s: %s\n", indent, "", label,
                   json_node_get_boolean(node) ? "true" : "false");
        } else if (json_node_get_value_type(node) == G_TYPE_INT64) {
            printf("%*s%s: %lld\n", indent, "", label,
                   (long long)json_node_get_int(node));
        } else if (json_node_get_value_type(node) == G_TYPE_DOUBLE) {
            printf("%*s%s: %g\n", indent, "", label,
                   json_node_get_double(node));
        } else {
            printf("%*s%s: %s\n", indent, "", label,
                   json_node_get_string(node));
        }
        break;
    case JSON_NODE_NULL:
        printf("%*s%s: null\n", indent, "", label);
        break;
    }
}

/* Print the driver-specific block of "info"; false on error. */
static bool qio_print_specific_info(BlockDriverState *bs)
{
    Error *err = NULL;
    g_autofree char *text = bdrv_get_specific_info_json(bs, &err);
    g_autoptr(JsonParser) parser = NULL;
    GError *gerr = NULL;
    JsonNode *root;

    if (err) {
        error_report_err(err);
        return false;
    }
    if (!text) {
        return true;
    }
    parser = json_parser_new();
    if (!json_parser_load_from_data(parser, text, -1, &gerr)) {
        error_report("Invalid format specific information: %s",
                     gerr->message);
        g_error_free(gerr);
        return false;
    }
    root = json_parser_get_root(parser);
    if (!JSON_NODE_HOLDS_OBJECT(root) ||
        !json_object_has_member(json_node_get_object(root), "data")) {
        return true;
    }
    root = json_object_get_member(json_node_get_object(root), "data");
    if (JSON_NODE_HOLDS_OBJECT(root)) {
        printf("Format specific information:\n");
        qio_dump_json_object(json_node_get_object(root), 4);
    }
    return true;
}

/*
 * info: format name, cluster size, VM state offset, then the driver's
 * specific information. Drivers without get_info print zero sizes.
 */
static int qio_cmd_info(const QioCmd *cmd, int argc, char **argv)
{
    BlockDriverState *bs = qio_bs();
    BlockDriverInfo bdi = { 0 };
    char s1[64], s2[64];
    int ret;

    printf("format name: %s\n", bdrv_get_format_name(bs));
    ret = bdrv_get_info(bs, &bdi);
    if (ret < 0 && ret != -ENOTSUP) {
        return ret;
    }
    qio_size_str(bdi.cluster_size, s1, sizeof(s1));
    qio_size_str(bdi.vm_state_offset, s2, sizeof(s2));
    printf("cluster size: %s\n", s1);
    printf("vm state offset: %s\n", s2);
    return qio_print_specific_info(bs) ? 0 : -EINVAL;
}

/* ---- map, alloc */

/* The range the alloc command examines. */
typedef struct QioMap {
    int64_t offset;
    int64_t bytes;           /* already clipped to the image end */
    int64_t allocated;       /* alloc: bytes allocated in the range */
} QioMap;

/* Print one map line for a run of equal allocation status. */
static void qio_map_line(int64_t offset, int64_t bytes, bool allocated)
{
    char s1[64], s2[64];

    qio_size_str(bytes, s1, sizeof(s1));
    qio_size_str(offset, s2, sizeof(s2));
    printf("%s (0x%llx) bytes %s at offset %s (0x%llx)\n", s1,
           (unsigned long long)bytes,
           allocated ? "    allocated" : "not allocated", s2,
           (unsigned long long)offset);
}

/*
 * Length of the run starting at offset (up to end) whose bytes all have
 * allocation status *status in the top image. Returns 0 or -errno.
 */
static int coroutine_fn qio_co_map_run(int64_t offset, int64_t end,
                                       int64_t *run, int *status)
{
    int64_t pos = offset, pnum;
    int ret;

    *status = -1;
    while (pos < end) {
        ret = bdrv_co_is_allocated(qio_bs(), pos, end - pos, &pnum);
        if (ret < 0) {
            return ret;
        }
        if (pnum <= 0 || (*status >= 0 && ret != *status)) {
            break;
        }
        *status = ret;
        pos += pnum;
    }
    *run = pos - offset;
    return 0;
}

/* Print the allocation runs of the whole top image (the map command). */
static int coroutine_fn qio_co_map(void *opaque)
{
    int64_t len = bdrv_getlength(qio_bs()), offset = 0, run;
    int status, ret;

    if (len < 0) {
        printf("Failed to get allocation status: %s\n", strerror(-len));
        return len;
    }
    while (offset < len) {
        ret = qio_co_map_run(offset, len, &run, &status);
        if (ret < 0) {
            printf("Failed to get allocation status: %s\n", strerror(-ret));
            return ret;
        }
        if (run == 0) {
            break;
        }
        qio_map_line(offset, run, status);
        offset += run;
    }
    return 0;
}

/* map: allocation runs of the top image only, like qemu-io. */
static int qio_cmd_map(const QioCmd *cmd, int argc, char **argv)
{
    return qio_run_co(qio_co_map, NULL, NULL);
}

/* Sum the bytes of m's range that the top image allocates. */
static int coroutine_fn qio_co_alloc(void *opaque)
{
    QioMap *m = opaque;
    int64_t pos = m->offset, end = m->offset + m->bytes, pnum;
    int ret;

    while (pos < end) {
        ret = bdrv_co_is_allocated(qio_bs(), pos, end - pos, &pnum);
        if (ret < 0) {
            printf("is_allocated failed: %s\n", strerror(-ret));
            return ret;
        }
        if (pnum <= 0) {
            break;
        }
        m->allocated += ret ? pnum : 0;
        pos += pnum;
    }
    return 0;
}

/* alloc off [count]: count clipped to the image end; default 512. */
static int qio_cmd_alloc(const QioCmd *cmd, int argc, char **argv)
{
    QioMap m = { .bytes = BDRV_SECTOR_SIZE };
    int64_t len = bdrv_getlength(qio_bs());
    char s1[64];
    int ret;

    if (!qio_parse_num(argv[1], &m.offset) ||
        (argc == 3 && !qio_parse_len(argv[2], &m.bytes))) {
        return -EINVAL;
    }
    if (len < 0) {
        printf("getlength: %s\n", strerror(-len));
        return len;
    }
    m.bytes = MAX(0, MIN(m.bytes, len - m.offset));
    ret = qio_run_co(qio_co_alloc, &m, NULL);
    if (ret < 0) {
        return ret;
    }
    qio_size_str(m.offset, s1, sizeof(s1));
    printf("%lld/%lld bytes allocated at offset %s\n",
           (long long)m.allocated, (long long)m.bytes, s1);
    return 0;
}

/* ---- sleep, help, quit */

/* Coroutine part of sleep: *opaque is the delay in milliseconds. */
static int coroutine_fn qio_co_sleep(void *opaque)
{
    qemu_co_sleep_ns(*(int64_t *)opaque * 1000000);
    return 0;
}

/* sleep ms: runs the main loop meanwhile, so aio requests progress. */
static int qio_cmd_sleep(const QioCmd *cmd, int argc, char **argv)
{
    char *end;
    long long ms;

    errno = 0;
    ms = strtoll(argv[1], &end, 10);
    if (errno || end == argv[1] || *end || ms < 0) {
        printf("%s is not a valid number\n", argv[1]);
        return -EINVAL;
    }
    return qio_run_co(qio_co_sleep, &(int64_t){ ms }, NULL);
}

/* Look a command up by name or alias in qio_cmds; NULL if unknown. */
static const QioCmd *qio_find_cmd(const char *name)
{
    for (const QioCmd *c = qio_cmds; c->name; c++) {
        if (!strcmp(c->name, name) ||
            (c->altname && !strcmp(c->altname, name))) {
            return c;
        }
    }
    return NULL;
}

/* help [command]: all synopses, or one command's extended help. */
static int qio_cmd_help(const QioCmd *cmd, int argc, char **argv)
{
    const QioCmd *c;

    if (argc == 1) {
        for (c = qio_cmds; c->name; c++) {
            qio_usage(c);
        }
        printf("\nUse 'help commandname' for extended help.\n");
        return 0;
    }
    c = qio_find_cmd(argv[1]);
    if (!c) {
        printf("command %s not found\n", argv[1]);
        return -EINVAL;
    }
    qio_usage(c);
    if (c->help) {
        printf("\n%s\n", c->help);
    }
    return 0;
}

/* quit: later commands (-c or stdin) are not run. */
static int qio_cmd_quit(const QioCmd *cmd, int argc, char **argv)
{
    return QIO_CMD_QUIT;
}

/* ---- The command table */

/* Help lines of the options that every I/O command describes alike. */
#define QIO_HELP_CSV   " -C, -- print statistics as comma separated values\n"
#define QIO_HELP_QUIET " -q, -- quiet: no statistics\n"

/*
 * Sorted by name, as "help" lists them. Argument counts include options
 * and are checked before the command runs (qio_check_argc()).
 */
static const QioCmd qio_cmds[] = {
    { "aio_flush", NULL, qio_cmd_aio_flush, 0, 0, true, false, "",
      "waits for every aio request in flight, then flushes the image",
      NULL },
    { "aio_read", NULL, qio_cmd_aio_read, 2, -1, true, false,
      "[-Cqv] [-P pattern] off len [len..]",
      "starts an asynchronous read of one or more buffers",
      " Starts the read and returns at once; the result is printed when\n"
      " the request completes. Use aio_flush to wait for it. A failing\n"
      " request does not change the exit status.\n"
      QIO_HELP_CSV
      " -P, -- check that every byte read equals the pattern\n"
      QIO_HELP_QUIET
      " -v, -- hex dump the data read\n" },
    { "aio_write", NULL, qio_cmd_aio_write, 2, -1, true, true,
      "[-Cfquz] [-P pattern] off len [len..]",
      "starts an asynchronous write of one or more buffers",
      " Starts the write and returns at once; the result is printed when\n"
      " the request completes. Use aio_flush to wait for it.\n"
      QIO_HELP_CSV
      " -f, -- force unit access (the data is stable when it completes)\n"
      " -P, -- fill the buffers with this byte (default 0xcd)\n"
      QIO_HELP_QUIET
      " -u, -- with -z, zeroes may be written by deallocating\n"
      " -z, -- write zeroes (only one length)\n" },
    { "alloc", NULL, qio_cmd_alloc, 1, 2, true, false, "offset [count]",
      "counts the bytes of a range that the top image allocates", NULL },
    { "discard", NULL, qio_cmd_discard, 2, -1, true, true, "[-Cq] off len",
      "discards a range of bytes",
      " Tells the image that the range is no longer used.\n"
      QIO_HELP_CSV
      QIO_HELP_QUIET },
    { "flush", NULL, qio_cmd_flush, 0, 0, true, false, "",
      "writes cached data and metadata to stable storage", NULL },
    { "help", "?", qio_cmd_help, 0, 1, false, false, "[command]",
      "lists the commands, or explains one", NULL },
    { "info", NULL, qio_cmd_info, 0, 0, true, false, "",
      "shows the format and its parameters", NULL },
    { "length", NULL, qio_cmd_length, 0, 0, true, false, "",
      "shows the guest-visible size of the image", NULL },
    { "map", NULL, qio_cmd_map, 0, 0, true, false, "",
      "lists allocated and unallocated runs of the top image", NULL },
    { "quit", "q", qio_cmd_quit, 0, 0, false, false, "",
      "leaves the program", NULL },
    { "read", "r", qio_cmd_read, 2, -1, true, false,
      "[-bCqv] [-P pattern [-s off] [-l len]] off len",
      "reads a range of bytes",
      " Reads len bytes at offset off, for example 'read -v 512 1k'.\n"
      " -b, -- read VM state (not supported)\n"
      QIO_HELP_CSV
      " -l, -- length of the range checked by -P\n"
      " -P, -- check that the bytes read equal the pattern\n"
      QIO_HELP_QUIET
      " -s, -- start of the range checked by -P, relative to off\n"
      " -v, -- hex dump the data read\n" },
    { "readv", NULL, qio_cmd_readv, 2, -1, true, false,
      "[-Cqv] [-P pattern] off len [len..]",
      "reads a range of bytes into several buffers",
      " Reads into one buffer per len, contiguous on the image.\n"
      QIO_HELP_CSV
      " -P, -- check that the bytes read equal the pattern\n"
      QIO_HELP_QUIET
      " -v, -- hex dump the data read\n" },
    { "sleep", NULL, qio_cmd_sleep, 1, 1, false, false, "milliseconds",
      "waits (aio requests keep running)", NULL },
    { "truncate", NULL, qio_cmd_truncate, 1, 3, true, true,
      "[-m prealloc_mode] off", "changes the size of the image", NULL },
    { "write", "w", qio_cmd_write, 2, -1, true, true,
      "[-bcCfnquz] [-P pattern | -s source_file] off len",
      "writes a range of bytes",
      " Writes len bytes at offset off, for example 'write 512 1k'.\n"
      " -b, -- write VM state (not supported)\n"
      " -c, -- write compressed data (not supported)\n"
      QIO_HELP_CSV
      " -f, -- force unit access (the data is stable when it completes)\n"
      " -n, -- with -z, fail rather than write explicit zero buffers\n"
      " -P, -- fill the buffer with this byte (default 0xcd)\n"
      QIO_HELP_QUIET
      " -s, -- take the data from this file\n"
      " -u, -- with -z, zeroes may be written by deallocating\n"
      " -z, -- write zeroes without a data buffer\n" },
    { "writev", NULL, qio_cmd_writev, 2, -1, true, true,
      "[-Cfq] [-P pattern] off len [len..]",
      "writes a range of bytes from several buffers",
      " Writes one buffer per len, contiguous on the image.\n"
      QIO_HELP_CSV
      " -f, -- force unit access\n"
      " -P, -- fill the buffers with this byte (default 0xcd)\n"
      QIO_HELP_QUIET },
    { NULL },
};

/* ---- Dispatch */

/* Check the argument count against cmd's limits; prints why not. */
static bool qio_check_argc(const QioCmd *cmd, int nargs)
{
    if (nargs >= cmd->argmin && (cmd->argmax < 0 || nargs <= cmd->argmax)) {
        return true;
    }
    if (cmd->argmax < 0) {
        fprintf(stderr, "bad argument count %d to %s, expected at least %d "
                "arguments\n", nargs, cmd->name, cmd->argmin);
    } else if (cmd->argmin == cmd->argmax) {
        fprintf(stderr, "bad argument count %d to %s, expected %d "
                "arguments\n", nargs, cmd->name, cmd->argmin);
    } else {
        fprintf(stderr, "bad argument count %d to %s, expected between %d "
                "and %d arguments\n", nargs, cmd->name, cmd->argmin,
                cmd->argmax);
    }
    return false;
}

/*
 * Split a command line at spaces (only spaces, as qemu-io does) into a
 * NULL-terminated vector for g_strfreev(); *argc gets the word count.
 */
static char **qio_split_line(const char *line, int *argc)
{
    g_auto(GStrv) parts = g_strsplit(line, " ", -1);
    GPtrArray *args = g_ptr_array_new();

    for (int i = 0; parts[i]; i++) {
        if (parts[i][0]) {
            g_ptr_array_add(args, g_strdup(parts[i]));
        }
    }
    *argc = args->len;
    g_ptr_array_add(args, NULL);
    return (char **)g_ptr_array_free(args, false);
}

/* Run cmd with its arguments after the checks every command shares. */
static int qio_run_cmd(const QioCmd *cmd, int argc, char **argv)
{
    if (!qio_check_argc(cmd, argc - 1)) {
        return -EINVAL;
    }
    if (cmd->needs_image && !qio.root) {
        printf("no file open\n");
        return -ENOENT;
    }
    if (cmd->needs_write && bdrv_is_read_only(qio_bs())) {
        error_report("Block node is read-only");
        return -EACCES;
    }
    optind = 0;     /* fully reset glibc's getopt for this argv */
    return cmd->func(cmd, argc, argv);
}

bool qio_cmds_run_line(const char *line, bool *failed)
{
    int argc, ret;
    g_auto(GStrv) argv = qio_split_line(line, &argc);
    const QioCmd *cmd;

    if (argc == 0) {
        return true;
    }
    cmd = qio_find_cmd(argv[0]);
    trace_qblk_io_command(argv[0], argc - 1, cmd != NULL);
    if (!cmd) {
        fprintf(stderr, "command \"%s\" not found\n", argv[0]);
        *failed = true;
        return true;
    }
    ret = qio_run_cmd(cmd, argc, argv);
    if (ret < 0) {
        *failed = true;
    }
    return ret != QIO_CMD_QUIT;
}

void qio_cmds_attach(BdrvChild *root, const QioImageOptions *opts)
{
    qio.root = root;
    qio.opts = *opts;
}

BdrvChild *qio_cmds_detach(void)
{
    BdrvChild *root = qio.root;

    AIO_WAIT_WHILE(qio.aio_in_flight > 0);
    qio.root = NULL;
    return root;
}

int qio_cmds_aio_in_flight(void)
{
    return qio.aio_in_flight;
}

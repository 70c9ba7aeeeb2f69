/*
 * qblk: the storage daemon. Its command line is qemu-storage-daemon's
 * (--blockdev, --chardev, --monitor, --nbd-server, --export, --pidfile,
 * --daemonize, --trace) plus QEMU's -drive.
 *
 * Options are declared once, in qemu-options.hx; the generated
 * qemu-options.def gives the option ids, the getopt table and the --help
 * text here, so a new option only needs its handler in qblk_run_option().
 *
 * Start-up runs in two passes over argv, as qemu-storage-daemon does:
 * pass 1 checks the syntax and handles what must happen before anything
 * is opened (--help, --version, --daemonize, --pidfile); pass 2 creates
 * drives, chardevs, the NBD server and exports in command-line order (an
 * export names a node given earlier). With --daemonize the process forks
 * before pass 2 and the parent exits only when the child reports that
 * pass 2 succeeded, so that a caller finds the sockets listening.
 *
 * Monitors: --monitor (qemu-storage-daemon's keyval form) and QEMU's
 * legacy -qmp, -qmp-pretty and -monitor (a device spec such as
 * "unix:PATH,server=on,wait=off" or "stdio") attach QMP/HMP monitors.
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked from the start (every
 * thread created later inherits the mask) and read from a signalfd on the
 * main loop, where they request a shutdown (runstate.c; the SHUTDOWN
 * event goes to the monitors), exactly as QMP quit does. The main loop
 * stops once a shutdown is requested; shutdown runs on the loop thread
 * like everything else: flush and close the monitors, stop the NBD
 * server, close the chardevs, flush and close every image, remove the
 * pid file, exit 0.
 */
#include "qemu/osdep.h"
#include <getopt.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include "config-host.h"
#include "qemu/aio.h"
#include "qemu/keyval.h"
#include "qemu/qemu-options.h"
#include "qemu/trace-control.h"
#include "block/block.h"
#include "block/export.h"
#include "qemu/job.h"
#include "chardev/char.h"
#include "monitor/monitor.h"
#include "nbd/nbd.h"
#include "sysemu/blockdev.h"
#include "qemu/secret.h"
#include "sysemu/runstate.h"
#include "trace.h"

/* Option ids, one per DEF in qemu-options.hx, above any getopt letter. */
enum {
    QBLK_OPTION_first = 0x100,
#define DEF(name, flags, enum_name, help) enum_name,
#define DEF_SHORT(letter, enum_name)
#include "qemu-options.def"
#undef DEF
#undef DEF_SHORT
};

/* One long option, as declared in qemu-options.hx. */
typedef struct QblkOption {
    const char *name;
    int flags;              /* HAS_ARG */
    int id;
    const char *help;
} QblkOption;

static const QblkOption qblk_options[] = {
#define DEF(name, flags, enum_name, help) { name, flags, enum_name, help },
#define DEF_SHORT(letter, enum_name)
#include "qemu-options.def"
#undef DEF
#undef DEF_SHORT
};

/* One-letter aliases (DEF_SHORT in qemu-options.hx). */
static const struct {
    char letter;
    int id;
} qblk_short_options[] = {
#define DEF(name, flags, enum_name, help)
#define DEF_SHORT(letter, enum_name) { letter, enum_name },
#include "qemu-options.def"
#undef DEF
#undef DEF_SHORT
};

/* What pass 1 learns; the rest of the daemon state lives in its modules. */
typedef struct QblkState {
    bool daemonize;
    char *pidfile;          /* absolute path, or NULL */
    int pidfile_fd;         /* held open: it carries the lock */
    bool pidfile_written;
    int daemon_pipe;        /* child's end of the start-up pipe, or -1 */
    int signal_fd;
} QblkState;

static QblkState qblk_state = { .pidfile_fd = -1, .daemon_pipe = -1,
                                .signal_fd = -1 };
/* Chardevs created for -qmp/-monitor are named compat_monitorN, as QEMU's. */
static int qblk_compat_monitors;

/* ---- Option table helpers */

/* The table entry of option id (every id comes from the table). */
static const QblkOption *qblk_option_by_id(int id)
{
    for (size_t i = 0; i < ARRAY_SIZE(qblk_options); i++) {
        if (qblk_options[i].id == id) {
            return &qblk_options[i];
        }
    }
    return NULL;
}

/*
 * Build the getopt_long tables from qblk_options: *longopts (terminated by
 * a zero entry) and the short option string. "-" returns non-options in
 * order (reported as unexpected), ":" reports missing arguments as ':'.
 */
static void qblk_build_getopt(struct option **longopts, char **shortopts)
{
    size_t n = ARRAY_SIZE(qblk_options);
    struct option *lo = g_new0(struct option, n + 1);
    GString *so = g_string_new("-:");

    for (size_t i = 0; i < n; i++) {
        lo[i].name = qblk_options[i].name;
        lo[i].has_arg = (qblk_options[i].flags & HAS_ARG) ? required_argument
                                                          : no_argument;
        lo[i].val = qblk_options[i].id;
    }
    for (size_t i = 0; i < ARRAY_SIZE(qblk_short_options); i++) {
        const QblkOption *o = qblk_option_by_id(qblk_short_options[i].id);

        g_string_append_c(so, qblk_short_options[i].letter);
        if (o->flags & HAS_ARG) {
            g_string_append_c(so, ':');
        }
    }
    *longopts = lo;
    *shortopts = g_string_free(so, false);
}

/* Map a short option letter to its option id (the letter if none). */
static int qblk_short_to_id(int c)
{
    for (size_t i = 0; i < ARRAY_SIZE(qblk_short_options); i++) {
        if (qblk_short_options[i].letter == c) {
            return qblk_short_options[i].id;
        }
    }
    return c;
}

/* --help: the usage line, then each option's text from the .hx, in order. */
static void qblk_help(void)
{
    printf("Usage: qblk [options]\n"
           "qblk storage daemon (qemu-storage-daemon's command line)\n\n");
    for (size_t i = 0; i < ARRAY_SIZE(qblk_options); i++) {
        fputs(qblk_options[i].help, stdout);
    }
    printf("\nOptions are processed in order: a node must be created before "
           "an --export\nnames it. SIGTERM or SIGINT flush every image and "
           "stop the daemon.\n");
}

/* --version: scripts parse the first line, as they do QEMU's. */
static void qblk_version(void)
{
    printf("qblk version " QBLK_VERSION "\n"
           "Command line compatible with qemu-storage-daemon 7.2 "
           "(plus QEMU's -drive)\n");
}

/*
 * The next option from argv, as an option id (or 0 at the end). Syntax
 * errors are reported in getopt's words and exit 1; they are all found by
 * pass 1, before anything is opened.
 */
static int qblk_next_option(int argc, char **argv, const struct option *lo,
                            const char *so)
{
    int c = getopt_long_only(argc, argv, so, lo, NULL);

    switch (c) {
    case -1:
        return 0;
    case 1:
        error_report("%s: Unexpected argument", optarg);
        exit(1);
    case ':':
        if (optopt && optopt < QBLK_OPTION_first) {
            error_report("option requires an argument -- '%c'", optopt);
        } else {
            error_report("option '%s' requires an argument",
                         argv[optind - 1]);
        }
        exit(1);
    case '?':
        if (optopt && optopt < QBLK_OPTION_first) {
            error_report("invalid option -- '%c'", optopt);
        } else {
            error_report("unrecognized option '%s'", argv[optind - 1]);
        }
        exit(1);
    default:
        return qblk_short_to_id(c);
    }
}

/* ---- Pass 1: options that act before anything is opened */

/* Remember --pidfile as an absolute path (it is removed at exit). */
static void qblk_set_pidfile(const char *path)
{
    g_free(qblk_state.pidfile);
    if (g_path_is_absolute(path)) {
        qblk_state.pidfile = g_strdup(path);
    } else {
        g_autofree char *cwd = g_get_current_dir();

        qblk_state.pidfile = g_build_filename(cwd, path, NULL);
    }
}

/*
 * Pass 1: every option's syntax is checked (errors exit 1 before anything
 * is created); --help and --version exit here, --daemonize and --pidfile
 * are remembered for main().
 */
/* --backing-protocols LIST (pass 1, before any image opens). */
static void qblk_set_backing_protocols(const char *list)
{
    Error *err = NULL;

    if (!bdrv_set_backing_protocols(list, &err)) {
        error_report_err(err);
        exit(1);
    }
}

static void qblk_pass1(int argc, char **argv, const struct option *lo,
                       const char *so)
{
    int id;

    optind = 0;     /* 0: full getopt re-initialisation (glibc) */
    opterr = 0;
    while ((id = qblk_next_option(argc, argv, lo, so)) != 0) {
        switch (id) {
        case QBLK_OPTION_help:
            qblk_help();
            exit(0);
        case QBLK_OPTION_version:
            qblk_version();
            exit(0);
        case QBLK_OPTION_daemonize:
            qblk_state.daemonize = true;
            break;
        case QBLK_OPTION_pidfile:
            qblk_set_pidfile(optarg);
            break;
        case QBLK_OPTION_backing_protocols:
            qblk_set_backing_protocols(optarg);
            break;
        default:
            break;
        }
    }
}

/* ---- Pass 2: drives, chardevs, monitors, the NBD server, exports */

/*
 * The argv word that named the option whose argument is optarg (call
 * right after getopt returned it): optarg's own word for "--opt=ARG",
 * else the word before it. Tells "--monitor" from QEMU's "-monitor".
 */
static const char *qblk_option_word(char **argv, const char *arg)
{
    const char *w = argv[optind - 1];

    if (arg > w && arg <= w + strlen(w)) {
        return w;
    }
    return optind >= 2 ? argv[optind - 2] : "";
}

/* True if spec is the stdio device ("stdio" or "stdio,..."). */
static bool qblk_spec_is_stdio(const char *spec)
{
    return g_str_has_prefix(spec, "stdio") &&
           (spec[5] == '\0' || spec[5] == ',');
}

/* Would option id with argument arg talk over stdin/stdout? */
static bool qblk_option_uses_stdio(int id, const char *arg, bool dashdash)
{
    switch (id) {
    case QBLK_OPTION_chardev:
    case QBLK_OPTION_qmp:
    case QBLK_OPTION_qmp_pretty:
        return qblk_spec_is_stdio(arg);
    case QBLK_OPTION_monitor:
        return !dashdash && qblk_spec_is_stdio(arg);
    default:
        return false;
    }
}

/*
 * QEMU's -qmp DEV, -qmp-pretty DEV and -monitor DEV: DEV is "none" (no
 * monitor; -monitor only), "chardev:ID" (an existing chardev) or a legacy
 * device spec, for which a chardev "compat_monitorN" is created.
 */
static bool qblk_add_legacy_monitor(const char *spec, bool hmp, bool pretty,
                                    Error **errp)
{
    g_autofree char *id = NULL;
    Chardev *chr;

    if (hmp && !strcmp(spec, "none")) {
        return true;
    }
    if (g_str_has_prefix(spec, "chardev:")) {
        chr = qemu_chr_find(spec + strlen("chardev:"));
        if (!chr) {
            error_setg(errp, "chardev \"%s\" not found",
                       spec + strlen("chardev:"));
            return false;
        }
    } else {
        id = g_strdup_printf("compat_monitor%d", qblk_compat_monitors++);
        chr = qemu_chr_new_legacy(id, spec, errp);
        if (!chr) {
            return false;
        }
    }
    return hmp ? monitor_init_hmp(chr, errp)
               : monitor_init_qmp(chr, pretty, errp);
}

/*
 * Act on one pass-2 option. On failure return false with errp set, or
 * with errp untouched when the handler printed its message itself.
 */
static bool qblk_run_option(int id, const char *arg, bool dashdash,
                            Error **errp)
{
    if (qblk_state.daemonize && qblk_option_uses_stdio(id, arg, dashdash)) {
        error_setg(errp, "cannot use stdio with --daemonize");
        return false;
    }
    switch (id) {
    case QBLK_OPTION_trace:
        return trace_opt_parse(arg);     /* reports its own errors */
    case QBLK_OPTION_object:
        return qblk_object_add_from_opts(arg, errp);
    case QBLK_OPTION_blockdev:
        return blockdev_add(arg, errp) != NULL;
    case QBLK_OPTION_drive:
        return drive_new(arg, errp) != NULL;
    case QBLK_OPTION_chardev:
        return qemu_chr_new(arg, errp) != NULL;
    case QBLK_OPTION_monitor:
        /* --monitor is qemu-storage-daemon's, -monitor QEMU's HMP one */
        return dashdash ? monitor_new_from_opts(arg, errp)
                        : qblk_add_legacy_monitor(arg, true, false, errp);
    case QBLK_OPTION_qmp:
        return qblk_add_legacy_monitor(arg, false, false, errp);
    case QBLK_OPTION_qmp_pretty:
        return qblk_add_legacy_monitor(arg, false, true, errp);
    case QBLK_OPTION_nbd_server:
        return nbd_server_start_from_keyval(arg, errp);
    case QBLK_OPTION_export:
        return block_export_add_from_keyval(arg, errp);
    default:
        /* help, version, daemonize, pidfile, backing-protocols: pass 1 */
        return true;
    }
}

/* Options reported with one dash: QEMU's own (-drive, -qmp, -monitor). */
static bool qblk_option_is_qemu_style(int id, bool dashdash)
{
    return id == QBLK_OPTION_drive || id == QBLK_OPTION_qmp ||
           id == QBLK_OPTION_qmp_pretty ||
           (id == QBLK_OPTION_monitor && !dashdash);
}

/* Pass 2 over argv; false after reporting the first failing option. */
static bool qblk_pass2(int argc, char **argv, const struct option *lo,
                       const char *so)
{
    int id;

    optind = 0;     /* 0: full getopt re-initialisation (glibc) */
    while ((id = qblk_next_option(argc, argv, lo, so)) != 0) {
        const QblkOption *o = qblk_option_by_id(id);
        bool dashdash = optarg &&
                        g_str_has_prefix(qblk_option_word(argv, optarg), "--");
        Error *err = NULL;

        trace_qblk_option(o->name, optarg ? optarg : "");
        if (!qblk_run_option(id, optarg, dashdash, &err)) {
            if (!err) {
                return false;       /* the handler reported it */
            }
            /* QEMU's form: "--blockdev OPTS: message", "-drive OPTS: ..." */
            error_prepend(&err, "%s%s %s: ",
                          qblk_option_is_qemu_style(id, dashdash) ? "-"
                                                                 : "--",
                          o->name, optarg);
            error_report_err(err);
            return false;
        }
    }
    return true;
}

/* ---- Pid file and daemonizing */

/*
 * Create and lock the pid file, then write our pid into it. The file
 * stays open (and locked) until exit, so a second daemon using the same
 * file fails instead of overwriting it.
 */
static bool qblk_write_pidfile(Error **errp)
{
    const char *path = qblk_state.pidfile;
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0) {
        error_setg_errno(errp, errno, "Cannot open pid file '%s'", path);
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        error_setg_errno(errp, errno, "Cannot lock pid file '%s'", path);
        close(fd);
        return false;
    }
    if (ftruncate(fd, 0) < 0 ||
        write(fd, pid, strlen(pid)) != (ssize_t)strlen(pid)) {
        error_setg_errno(errp, errno, "Failed to write pid file '%s'", path);
        unlink(path);
        close(fd);
        return false;
    }
    qblk_state.pidfile_fd = fd;
    qblk_state.pidfile_written = true;
    return true;
}

/* At exit: only a file this process wrote (and locked) is removed. */
static void qblk_remove_pidfile(void)
{
    if (qblk_state.pidfile_written) {
        unlink(qblk_state.pidfile);
        close(qblk_state.pidfile_fd);
        qblk_state.pidfile_written = false;
    }
}

/*
 * Fork. The parent waits for the child's start-up verdict on a pipe and
 * exits with it (0 only when the child is ready; a child that dies first
 * closes the pipe, which means failure). The child continues.
 */
static void qblk_daemonize_begin(void)
{
    int fds[2];
    pid_t pid;
    char status = 1;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        error_report("--daemonize: cannot create pipe: %s", g_strerror(errno));
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        error_report("--daemonize: cannot fork: %s", g_strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        close(fds[1]);
        while (read(fds[0], &status, 1) < 0 && errno == EINTR) {
            /* retry */
        }
        _exit(status == 0 ? 0 : 1);
    }
    close(fds[0]);
    qblk_state.daemon_pipe = fds[1];
    setsid();
}

/*
 * Start-up succeeded: release the parent and detach from the terminal.
 * The working directory is kept, so relative paths given on the command
 * line (unix sockets removed at exit) keep their meaning.
 */
static void qblk_daemonize_complete(void)
{
    char ok = 0;
    int null_fd;

    if (qblk_state.daemon_pipe < 0) {
        return;
    }
    null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
        dup2(null_fd, STDOUT_FILENO);
        dup2(null_fd, STDERR_FILENO);
        if (null_fd > STDERR_FILENO) {
            close(null_fd);
        }
    }
    trace_qblk_daemonized((int)getpid());
    if (write(qblk_state.daemon_pipe, &ok, 1) != 1) {
        /* The parent is gone: nobody to tell. */
    }
    close(qblk_state.daemon_pipe);
    qblk_state.daemon_pipe = -1;
}

/* ---- Signals and the main loop */

static const int qblk_term_signals[] = { SIGTERM, SIGINT, SIGHUP };

/* Block the termination signals; they are read from a signalfd instead. */
static void qblk_block_signals(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < ARRAY_SIZE(qblk_term_signals); i++) {
        sigaddset(set, qblk_term_signals[i]);
    }
    pthread_sigmask(SIG_BLOCK, set, NULL);
    /* Peers that hang up must not kill us: writes get EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
}

/*
 * signalfd readable: a termination signal arrived; request a shutdown
 * (SHUTDOWN event, then the main loop stops), as QEMU does.
 */
static void qblk_signal_read(void *opaque)
{
    struct signalfd_siginfo si;

    while (read(qblk_state.signal_fd, &si, sizeof(si)) == sizeof(si)) {
        trace_qblk_signal((int)si.ssi_signo);
        qemu_system_shutdown_request(SHUTDOWN_CAUSE_HOST_SIGNAL);
    }
}

/* Read the signals blocked by qblk_block_signals() on the main loop. */
static void qblk_watch_signals(const sigset_t *set)
{
    qblk_state.signal_fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (qblk_state.signal_fd < 0) {
        error_report("Cannot create signalfd: %s", g_strerror(errno));
        exit(1);
    }
    aio_set_fd_handler(qblk_state.signal_fd, qblk_signal_read, NULL, NULL);
}

/*
 * Orderly shutdown: block jobs (force-cancelled), monitors (their pending
 * output flushed), NBD clients, chardevs, then images (flushed), then
 * files.
 */
static void qblk_shutdown(void)
{
    /*
     * Jobs first (QEMU force-cancels them on quit): their events still
     * reach the monitors, and they release their nodes. A quit command
     * waiting for them (job_co_cancel_all) then sends its reply.
     */
    job_cancel_sync_all();
    while (qemu_coroutine_wakes_pending()) {
        aio_poll(false);
    }
    monitor_cleanup_all();
    if (nbd_server_is_running()) {
        nbd_server_stop();
    }
    qemu_chr_cleanup_all();
    block_export_del_all();
    blockdev_close_all();
    qblk_remove_pidfile();
}

/*
 * Order matters: signals are blocked before any thread exists, the fork
 * happens before the main loop and thread pool are created (a child must
 * not inherit threads), and the pid file is written and the parent
 * released only once every option has been processed.
 */
int main(int argc, char **argv)
{
    g_autofree struct option *longopts = NULL;
    g_autofree char *shortopts = NULL;
    sigset_t sigs;
    Error *err = NULL;

    error_set_progname("qblk");
    setvbuf(stdout, NULL, _IOLBF, 0);
    qblk_block_signals(&sigs);
    qblk_build_getopt(&longopts, &shortopts);
    qblk_pass1(argc, argv, longopts, shortopts);
    if (qblk_state.daemonize) {
        qblk_daemonize_begin();
    }
    qemu_init_main_loop();
    bdrv_init();
    qblk_watch_signals(&sigs);
    if (!qblk_pass2(argc, argv, longopts, shortopts)) {
        qblk_shutdown();
        return 1;
    }
    if (qblk_state.pidfile && !qblk_write_pidfile(&err)) {
        error_report_err(err);
        qblk_shutdown();
        return 1;
    }
    qblk_daemonize_complete();
    while (!qemu_shutdown_requested()) {
        aio_poll(true);
    }
    qblk_shutdown();
    aio_set_fd_handler(qblk_state.signal_fd, NULL, NULL, NULL);
    close(qblk_state.signal_fd);
    g_free(qblk_state.pidfile);
    return 0;
}

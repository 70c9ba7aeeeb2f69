HXCOMM Command-line options of qblk's programs: the daemon's options
HXCOMM (qemu-storage-daemon's spelling, plus QEMU's -drive) and --trace,
HXCOMM which every program accepts.
HXCOMM
HXCOMM Each option is a DEF(name, has-arg, enum, help-text) entry for the
HXCOMM option table, followed by its documentation between SRST and ERST.
HXCOMM DEF_SHORT(letter, enum) gives an option a one-letter alias (-T).
HXCOMM scripts/hxtool.py generates qemu-options.def (C) and
HXCOMM docs/qemu-options.rst from this file. qblk.c builds its getopt table
HXCOMM and its --help text from qemu-options.def, so an option declared here
HXCOMM only needs a handler in qblk.c. Options are listed in --help order.

#ifndef DEF_SHORT
#define DEF_SHORT(letter, enum_name)
#endif

DEF("help", 0, QBLK_OPTION_help,
    "  -h, --help             display this help and exit\n")
DEF_SHORT('h', QBLK_OPTION_help)
SRST
``-h``, ``--help``
  Print a summary of the options and exit.
ERST

DEF("version", 0, QBLK_OPTION_version,
    "  -V, --version          output version information and exit\n")
DEF_SHORT('V', QBLK_OPTION_version)
SRST
``-V``, ``--version``
  Print the version of qblk and the qemu-storage-daemon command line it
  follows, then exit.
ERST

DEF("trace", HAS_ARG, QBLK_OPTION_trace,
    "  -T, --trace [[enable=]PATTERN][,file=FILE]\n"
    "                         enable trace events matching PATTERN (glob; a\n"
    "                         leading '-' disables; 'help' lists all events);\n"
    "                         log to FILE or stderr\n\n")
DEF_SHORT('T', QBLK_OPTION_trace)
SRST
``--trace [[enable=]PATTERN][,file=FILE]``
  Enable the trace events whose names match the shell glob ``PATTERN``
  (``--trace 'qcow2_*'``). The option may be given several times; a pattern
  starting with ``-`` disables what it matches. ``--trace help`` lists every
  event declared in ``trace-events`` and exits. Enabled events are printed
  by the log back end, one line each, as ``PID@SECONDS.MICROSECONDS:name
  arguments``, on standard error or, with ``file=FILE``, into ``FILE``.
  Every qblk program (``qblk``, ``qblk-img``, ``qblk-io``) accepts this
  option, also under its short name ``-T``.
ERST

DEF("object", HAS_ARG, QBLK_OPTION_object,
    "  --object secret,id=ID,data=STRING|file=PATH[,format=raw|base64]\n"
    "  --object JSON          (the same options as a JSON object)\n"
    "                         create a secret (for password-secret=ID)\n\n")
SRST
``--object secret,id=ID,data=STRING|file=PATH[,format=raw|base64]``
  Create a secret object, as QEMU's ``--object secret``: a password given
  inline (``data``) or read once from a file (``file``), raw or
  base64-encoded. Block drivers name it by id, e.g. the http driver's
  ``password-secret=ID``. ``secret`` is the only object type qblk knows.
  QMP ``object-add`` and ``object-del`` do the same at run time.
ERST

DEF("blockdev", HAS_ARG, QBLK_OPTION_blockdev,
    "  --blockdev [driver=]DRIVER,node-name=N[,discard=ignore|unmap]\n"
    "             [,cache.direct=on|off][,cache.no-flush=on|off]\n"
    "             [,read-only=on|off][,auto-read-only=on|off]\n"
    "             [,force-share=on|off][,driver specific parameters...]\n"
    "  --blockdev JSON        (the same options as a JSON object)\n"
    "                         open a block node\n\n")
SRST
``--blockdev [driver=]DRIVER,node-name=NAME[,OPTION=VALUE...]``
  Open a block node, as QEMU's ``-blockdev``. The options are in keyval
  syntax (dotted keys for children, ``,,`` for a literal comma) or a JSON
  object (``--blockdev '{"driver": "qcow2", "node-name": "d", "file": "f"}'``).
  ``node-name`` is mandatory. A child is either opened inline
  (``file.driver=file,file.filename=x.qcow2``) or refers to a node opened
  by an earlier option (``file=NODE``). Drivers: ``file``, ``host_device``,
  ``raw``, ``qcow2``. Generic options: ``read-only`` (default off),
  ``cache.direct``, ``cache.no-flush``, ``discard``, ``force-share``,
  ``auto-read-only``; the ``file`` driver also takes ``aio=threads|native|io_uring``.
ERST

DEF("drive", HAS_ARG, QBLK_OPTION_drive,
    "  -drive [file=FILE][,format=FORMAT][,id=ID][,node-name=N][,if=none]\n"
    "         [,readonly=on|off][,copy-on-read=on|off]\n"
    "         [,cache=writeback|none|unsafe|writethrough|directsync]\n"
    "         [,aio=threads|native|io_uring][,driver specific parameters...]\n"
    "                         open an image as a drive (QEMU's -drive); also\n"
    "                         spelt --drive\n\n")
SRST
``-drive file=FILE[,format=FORMAT][,id=ID][,node-name=NAME][,OPTION=VALUE...]``
  Open an image the way QEMU's ``-drive`` does (also spelt ``--drive``).
  Only ``if=none`` exists: the drive is not attached to a device but can be
  exported with ``--export node-name=ID``. Without ``node-name``, the top
  node of the drive is called ``ID``; without ``id``, the drive is called
  ``none0``, ``none1``, ... Without ``format`` the format is probed (raw or
  qcow2), as QEMU does.

  ``readonly=on|off``
    Open the image read-only (default off).
  ``copy-on-read=on|off``
    Every read through the drive of data that the top image does not hold
    fetches it from the backing chain and also writes it into the top image.
    On a read-only drive it is disabled with the warning ``disabling
    copy-on-read on read-only drive``.
  ``cache=MODE``
    ``writeback`` (default: ``cache.direct=off``), ``none``
    (``cache.direct=on``), ``unsafe`` (``cache.no-flush=on``),
    ``writethrough`` and ``directsync`` (accepted: writeback resp. none, as
    qblk has no guest-visible write cache to switch off).
  ``aio=threads|native|io_uring``
    The I/O back end of the image's file node.

  Other options (``discard``, ``cache.direct``, ``file.locking``, ...) are
  passed to the image's node. ``backing.*`` options reach the backing image
  the header names: ``backing.file.locking=off`` or
  ``backing.file.reconnect-delay=5`` tune the protocol node opened from
  that name, while ``backing.file.filename`` or ``backing.file.driver``
  replace it.
ERST

DEF("chardev", HAS_ARG, QBLK_OPTION_chardev,
    "  --chardev socket,id=ID,path=PATH[,server=on][,wait=on|off][,x-mode=MODE]\n"
    "  --chardev socket,id=ID,host=HOST,port=PORT[,server=on][,wait=on|off]\n"
    "                         create a character device listening on a unix\n"
    "                         or TCP socket (for --monitor)\n\n")
SRST
``--chardev socket,id=ID,path=PATH,server=on[,wait=on|off][,x-mode=MODE]``
``--chardev socket,id=ID,host=HOST,port=PORT,server=on[,wait=on|off]``
  Create a character device that listens on a unix socket or a TCP port and
  serves one client at a time (further clients wait in the listen backlog
  until the current one disconnects). Only ``server=on`` is supported. With
  ``wait=on`` (QEMU's default) start-up blocks until the first client
  connects; ``wait=off`` continues at once.

  A unix socket file is created owner-only (mode 0600) whatever the umask,
  as are the NBD server's unix sockets. ``x-mode=MODE`` (qblk only, octal,
  e.g. ``x-mode=0660``) gives the socket file that mode instead, for a
  client running as another user of the same group. It also works in the
  ``unix:PATH,server=on,x-mode=MODE`` form of ``-qmp`` and ``-monitor``.
ERST

DEF("monitor", HAS_ARG, QBLK_OPTION_monitor,
    "  --monitor [chardev=]ID[,mode=control|readline][,pretty=on|off]\n"
    "                         attach a QMP (control, default) or HMP (readline)\n"
    "                         monitor to the chardev ID\n"
    "  -monitor DEV           QEMU's form: an HMP monitor on DEV (stdio,\n"
    "                         unix:PATH,server=on[,wait=off],\n"
    "                         tcp:HOST:PORT,server=on[,wait=off], chardev:ID)\n\n")
SRST
``--monitor [chardev=]ID[,mode=control|readline][,pretty=on|off]``
  Attach a QMP (``mode=control``, the default) or HMP (``mode=readline``)
  monitor to the character device ``ID`` created by an earlier
  ``--chardev``. ``pretty=on`` indents QMP replies and events. QMP speaks
  QEMU 7.2's protocol: a greeting, capabilities negotiation with
  ``qmp_capabilities``, then commands and events; every line ends in CRLF.
  Several monitors may exist at once; each serves one client at a time.

``-monitor DEV``
  QEMU's spelling, with one dash: an HMP monitor on the device ``DEV``,
  given in QEMU's legacy syntax: ``stdio``,
  ``unix:PATH,server=on[,wait=off]``, ``tcp:HOST:PORT,server=on[,wait=off]``
  (qblk has no client-mode sockets, so ``server=on`` is required), or
  ``chardev:ID`` for an existing ``--chardev``; ``none`` adds nothing. The
  character device created is called ``compat_monitorN``.
ERST

DEF("qmp", HAS_ARG, QBLK_OPTION_qmp,
    "  -qmp DEV               a QMP monitor on DEV (as -monitor)\n\n")
SRST
``-qmp DEV``
  A QMP monitor on the device ``DEV`` (the syntax of ``-monitor DEV``), as
  in QEMU: ``-qmp unix:/run/qblk.sock,server=on,wait=off``, or
  ``-qmp stdio`` to speak QMP on standard input and output.
ERST

DEF("qmp-pretty", HAS_ARG, QBLK_OPTION_qmp_pretty,
    "  -qmp-pretty DEV        like -qmp, with indented JSON output\n\n")
SRST
``-qmp-pretty DEV``
  Like ``-qmp DEV``, but replies and events are printed indented over
  several lines (each ending in CRLF), for people reading the session.
ERST

DEF("nbd-server", HAS_ARG, QBLK_OPTION_nbd_server,
    "  --nbd-server addr.type=inet,addr.host=HOST,addr.port=PORT\n"
    "               [,max-connections=N]\n"
    "  --nbd-server addr.type=unix,addr.path=PATH[,max-connections=N]\n"
    "                         start an NBD server for exporting block nodes\n\n")
SRST
``--nbd-server addr.type=unix,addr.path=PATH[,max-connections=N]``
``--nbd-server addr.type=inet,addr.host=HOST,addr.port=PORT[,max-connections=N]``
  Start the NBD server listening on a unix socket or a TCP address. Only one
  server can run. ``max-connections`` limits the number of simultaneous
  clients (0, the default, means no limit).
ERST

DEF("export", HAS_ARG, QBLK_OPTION_export,
    "  --export [type=]nbd,id=ID,node-name=N[,name=NAME][,writable=on|off]\n"
    "           [,description=TEXT]\n"
    "                         export the specified block node over NBD\n"
    "                         (requires --nbd-server)\n\n")
SRST
``--export [type=]nbd,id=ID,node-name=NODE[,name=NAME][,writable=on|off][,description=TEXT]``
  Export the node ``NODE`` (a ``--blockdev`` node name, or a ``-drive`` id or
  node name) over the NBD server started by an earlier ``--nbd-server``.
  Clients see the export as ``NAME`` (default: ``NODE``). ``writable``
  (default off) allows clients to write. Exports of a ``-drive`` go through
  the drive, so its ``copy-on-read`` applies to NBD reads.
ERST

DEF("backing-protocols", HAS_ARG, QBLK_OPTION_backing_protocols,
    "  --backing-protocols LIST\n"
    "                         protocols through which backing files named in\n"
    "                         image headers may be opened (file, host_device,\n"
    "                         nbd, http, https, json, all; default: file)\n\n")
SRST
``--backing-protocols LIST``
  An image header is untrusted input: its backing file name was chosen by
  whoever made the image. qblk follows such a name only through the
  protocols in ``LIST``, comma-separated: ``file`` (regular files),
  ``host_device`` (block devices), ``nbd``, ``http``, ``https``, ``json``
  (``json:{...}`` names, whose own drivers must be listed too), or ``all``.
  The default is ``file``: an image cannot make qblk open a block device or
  reach a server unless the user says so, e.g.
  ``--backing-protocols file,nbd`` for overlays on an NBD base. Backing
  files given in options (``backing=NODE``, ``backing.file.filename``,
  ``backing.file.driver``) are the user's choice and are not restricted;
  options that only tune the backing's protocol node (such as
  ``backing.file.locking=off`` or ``backing.file.reconnect-delay=N``) keep
  the header's name, which is checked. A refused backing name fails the
  open with an error naming the image and the backing string. Applies to
  every image the daemon opens, wherever the option stands; ``qblk-img``
  and ``qblk-io`` take the same option.
ERST

DEF("pidfile", HAS_ARG, QBLK_OPTION_pidfile,
    "  --pidfile PATH         write process ID to a file after startup\n\n")
SRST
``--pidfile PATH``
  Write the daemon's process ID to ``PATH`` once start-up has completed,
  and keep the file locked while the daemon runs (a second daemon with the
  same pid file fails). The file is removed at exit.
ERST

DEF("daemonize", 0, QBLK_OPTION_daemonize,
    "  --daemonize            daemonize the process, and have the parent exit\n"
    "                         once startup is complete\n\n")
SRST
``--daemonize``
  Run in the background. The parent process exits only when the daemon has
  processed all its options (its sockets are listening): with status 0 when
  start-up succeeded, 1 otherwise (the error is printed first).
ERST

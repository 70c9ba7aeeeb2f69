HXCOMM Command-line options shared by qblk's programs.
HXCOMM Each option is a DEF(name, has-arg, enum, help-text) entry for the
HXCOMM option table, followed by its documentation between SRST and ERST.
HXCOMM scripts/hxtool.py generates qemu-options.def (C) and
HXCOMM docs/qemu-options.rst from this file. The daemon's options
HXCOMM (--blockdev, --nbd-server, ...) arrive with the daemon.

DEF("trace", HAS_ARG, QBLK_OPTION_trace,
    "--trace [[enable=]PATTERN][,file=FILE]\n"
    "                enable trace events matching PATTERN (glob; a leading '-'\n"
    "                disables; 'help' lists all events); log to FILE or stderr\n")
SRST
``--trace [[enable=]PATTERN][,file=FILE]``
  Enable the trace events whose names match the shell glob ``PATTERN``
  (``--trace 'qcow2_*'``). The option may be given several times; a pattern
  starting with ``-`` disables what it matches. ``--trace help`` lists every
  event declared in ``trace-events`` and exits. Enabled events are printed
  by the log back end, one line each, as ``PID@SECONDS.MICROSECONDS:name
  arguments``, on standard error or, with ``file=FILE``, into ``FILE``.
  Every qblk program (``qblk-img``, ``qblk-io``) accepts this option, also
  under its short name ``-T``.
ERST

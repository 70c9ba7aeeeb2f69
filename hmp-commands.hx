HXCOMM The human monitor's (HMP) top-level commands, one entry per command:
HXCOMM an HMPCommand initializer (monitor/hmp-internal.h: name, args_type,
HXCOMM params, help, cmd) followed by its documentation between SRST and
HXCOMM ERST. scripts/hxtool.py turns the C parts into hmp-commands.h (the
HXCOMM dispatch table included by monitor/hmp.c) and the documentation into
HXCOMM docs/hmp-ref.rst; `help` prints the params and help strings. The
HXCOMM "info" subcommands live in hmp-commands-info.hx. Declare a command
HXCOMM here only once its handler exists; every entry needs a SRST block.
HXCOMM Handlers only parse and call the QMP command that does the work.

    {
        .name       = "help|?",
        .args_type  = "name:S?",
        .params     = "[cmd]",
        .help       = "list the commands, or describe the command cmd",
        .cmd        = hmp_help,
    },

SRST
``help`` or ``?`` [*cmd*]
  Without an argument, list every command with its parameters and a one
  line description. With *cmd* (for example ``help snapshot_blkdev`` or
  ``help info block``), describe only that command; ``help info`` lists the
  ``info`` subcommands.
ERST

    {
        .name       = "info",
        .args_type  = "item:s?",
        .params     = "[subcommand]",
        .help       = "show information about the daemon's state",
        .cmd        = hmp_info_help,
        .sub_table  = hmp_info_cmds,
    },

SRST
``info`` *subcommand*
  Show information about the daemon's state. Without a subcommand, list
  the available subcommands (see the next section).
ERST

    {
        .name       = "quit|q",
        .args_type  = "",
        .params     = "",
        .help       = "shut the daemon down",
        .cmd        = hmp_quit,
    },

SRST
``quit`` or ``q``
  Shut qblk down as QMP's ``quit`` does: the ``SHUTDOWN`` event is sent to
  the QMP monitors, exports are closed, images are flushed and closed, and
  the process exits with status 0.
ERST

    {
        .name       = "snapshot_blkdev",
        .args_type  = "reuse:-n,device:B,snapshot-file:s?,format:s?",
        .params     = "[-n] device [new-image-file] [format]",
        .help       = "put a new overlay image on top of a drive; "
                      "-n reuses an existing image file",
        .cmd        = hmp_snapshot_blkdev,
    },

SRST
``snapshot_blkdev`` [``-n``] *device* [*new-image-file*] [*format*]
  Take a live external snapshot of drive *device*: the image file
  *new-image-file* becomes the drive's new top image, backed by the image
  that was on top until now, which no longer changes. *format* is the new
  image's format (default ``qcow2``). Without ``-n`` the file is created,
  recording the current image's absolute file name and format as its
  backing file; with ``-n`` an existing file is used as it is (its header
  should already name the current image). This is QMP's
  ``blockdev-snapshot-sync``; *new-image-file* is required.
ERST

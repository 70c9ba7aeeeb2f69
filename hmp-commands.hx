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

    {
        .name       = "block_stream",
        .args_type  = "device:B,speed:o?,base:s?",
        .params     = "device [speed [base]]",
        .help       = "copy data from a backing file into a block device",
        .cmd        = hmp_block_stream,
    },

SRST
``block_stream`` *device* [*speed* [*base*]]
  Start a stream job (QMP's ``block-stream``) on *device* (a drive or node
  name), which also names the job: the data of the backing chain, down to
  the backing file *base* (given by file name; default: the whole chain),
  is copied into *device*'s image while it stays in use, and the image
  then names *base* (or nothing) as its backing file. *speed* limits the
  copy in bytes per second, with the suffixes of ``block_job_set_speed``
  (0 or absent: unlimited). I/O errors end the job (on-error ``report``).
  Progress shows in ``info block-jobs``; the job ends with the
  ``BLOCK_JOB_COMPLETED`` event on QMP.
ERST

    {
        .name       = "block_job_set_speed",
        .args_type  = "device:B,speed:o",
        .params     = "device speed",
        .help       = "set the maximum speed of a block job",
        .cmd        = hmp_block_job_set_speed,
    },

SRST
``block_job_set_speed`` *device* *speed*
  Set the rate limit of the block job called *device* (its job id) to
  *speed* bytes per second; 0 removes the limit. *speed* takes the suffixes
  ``k``, ``M``, ``G``, ``T``, ``P``, ``E`` (powers of 1024), so
  ``block_job_set_speed drive0 2M`` sets 2097152 bytes/s; a number without
  a suffix counts MiB, as in QEMU. The new limit applies at once. This is
  QMP's ``block-job-set-speed``.
ERST

    {
        .name       = "block_job_cancel",
        .args_type  = "force:-f,device:B",
        .params     = "[-f] device",
        .help       = "stop an active block job (-f: even if it is paused)",
        .cmd        = hmp_block_job_cancel,
    },

SRST
``block_job_cancel`` [``-f``] *device*
  Cancel the block job called *device*. The command returns at once; the
  job ends at its next pause point with the ``BLOCK_JOB_CANCELLED`` event.
  A job the user paused is only cancelled with ``-f``. For a job that is
  ready (a mirror-like job), a cancel without ``-f`` completes it without
  switching over, ending with ``BLOCK_JOB_COMPLETED``. This is QMP's
  ``block-job-cancel``.
ERST

    {
        .name       = "block_job_complete",
        .args_type  = "device:B",
        .params     = "device",
        .help       = "complete a block job that is ready",
        .cmd        = hmp_block_job_complete,
    },

SRST
``block_job_complete`` *device*
  Ask the ready block job called *device* to finish (for jobs with a
  completion step, such as an active commit). The job ends later with
  ``BLOCK_JOB_COMPLETED``. This is QMP's ``block-job-complete``.
ERST

    {
        .name       = "block_job_pause",
        .args_type  = "device:B",
        .params     = "device",
        .help       = "pause an active block job",
        .cmd        = hmp_block_job_pause,
    },

SRST
``block_job_pause`` *device*
  Pause the block job called *device*; it stops at its next pause point
  and stays there until ``block_job_resume``. This is QMP's
  ``block-job-pause``.
ERST

    {
        .name       = "block_job_resume",
        .args_type  = "device:B",
        .params     = "device",
        .help       = "resume a paused block job",
        .cmd        = hmp_block_job_resume,
    },

SRST
``block_job_resume`` *device*
  Resume the block job called *device* after ``block_job_pause`` (or after
  the job stopped on an I/O error with ``on-error=stop``: the failed part is
  then retried and the I/O status goes back to ``ok``). This is QMP's
  ``block-job-resume``.
ERST

    {
        .name       = "commit",
        .args_type  = "device:B",
        .params     = "device|all",
        .help       = "commit the data of a drive's top image into its "
                      "backing file (or of every drive with 'all')",
        .cmd        = hmp_commit,
    },

SRST
``commit`` *device* | ``all``
  Copy everything the top image of drive *device* holds into its backing
  file, synchronously: this is no block job, it sends no events, and the
  drive's users wait until it is done. The backing file is reopened
  read-write for it and back to read-only afterwards; then the top image
  is emptied where its format can, so the drive reads the same data as
  before. ``all`` does this for every drive that has a backing file,
  stopping at the first failure. Prints nothing on success; otherwise
  ``Device 'X' not found`` or ``'commit' error for 'X': <reason>``. For a
  live commit of any part of a chain, use QMP's ``block-commit``.
ERST

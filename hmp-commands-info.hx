HXCOMM The human monitor's "info" subcommands, in the same form as
HXCOMM hmp-commands.hx: an HMPCommand initializer then its documentation
HXCOMM between SRST and ERST. scripts/hxtool.py generates
HXCOMM hmp-commands-info.h (the "info" table of monitor/hmp.c) and the
HXCOMM "info" section of docs/hmp-ref.rst.

    {
        .name       = "block",
        .args_type  = "nodes:-n,verbose:-v,device:B?",
        .params     = "[-n] [-v] [device]",
        .help       = "show the drives (-n: every named node instead; "
                      "-v: with their image chains)",
        .cmd        = hmp_info_block,
    },

SRST
``info block`` [``-n``] [``-v``] [*device*]
  Show each drive (or only *device*): its top node's name, file, format and
  read-only state, its cache mode and, when it has one, its backing file
  with the depth of the backing chain. ``-n`` lists every named node of the
  block graph instead of the drives (*device* then names a node); ``-v``
  adds each image of the chain in the style of ``qemu-img info``. Drives
  are separated by a blank line. The data comes from QMP's ``query-block``
  and ``query-named-block-nodes``.
ERST

    {
        .name       = "block-jobs",
        .args_type  = "",
        .params     = "",
        .help       = "show the progress of the block jobs",
        .cmd        = hmp_info_block_jobs,
    },

SRST
``info block-jobs``
  Show one line per block job, from QMP's ``query-block-jobs``, in QEMU's
  exact form (libvirt parses it): ``Streaming device JOB: Completed N of M
  bytes, speed limit S bytes/s`` for a stream, ``Type TYPE, device JOB:
  Completed N of M bytes, speed limit S bytes/s`` for other job types,
  where JOB is the job id, N and M the progress offset and length and S the
  rate limit (0: unlimited). Jobs that have ended but were not dismissed
  are still listed. Without jobs it prints ``No active jobs``.
ERST

    {
        .name       = "status",
        .args_type  = "",
        .params     = "",
        .help       = "show the run state",
        .cmd        = hmp_info_status,
    },

SRST
``info status``
  Show the run state, from QMP's ``query-status``: qblk runs no guest
  CPU, so it prints ``VM status: running`` until it shuts down.
ERST

    {
        .name       = "version",
        .args_type  = "",
        .params     = "",
        .help       = "show the QEMU interface version qblk implements",
        .cmd        = hmp_info_version,
    },

SRST
``info version``
  Show the version from QMP's ``query-version``: the QEMU interface level
  qblk speaks, then the package in parentheses, for example
  ``7.2.0 (qblk 0.1.0)``.
ERST

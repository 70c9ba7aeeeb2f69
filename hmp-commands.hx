HXCOMM The human monitor's (HMP) commands, one entry per command:
HXCOMM    {
HXCOMM        .name = "block_stream",
HXCOMM        .args_type = "...",
HXCOMM        .params = "...",
HXCOMM        .help = "...",
HXCOMM        .cmd = hmp_block_stream,
HXCOMM    },
HXCOMM followed by the command's documentation between SRST and ERST.
HXCOMM scripts/hxtool.py generates the command table and docs/hmp-ref.rst.
HXCOMM
HXCOMM qblk has no monitor yet: the HMP server and its commands come with
HXCOMM the control-plane work (issue 4). No command is declared here until
HXCOMM it is implemented.

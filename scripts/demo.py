#!/usr/bin/python3
"""make demo: a real Linux guest boots from qblk while qblk streams and
commits its disk underneath it (the story is in scripts/demo_story.py).

    /usr/bin/python3 scripts/demo.py --build build [--size MiB]
                                     [--remote http]

Exit status: 0 when every checksum was verified, 1 on any failure, 130 on
Ctrl-C; every process and temporary file is gone in all three cases.
"""
import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_story import Story, StoryError, guest_tools  # noqa: E402


def on_sigterm(signum, frame):
    """SIGTERM ends the demo like Ctrl-C: through the cleanup path."""
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--build', default='build', help='qblk build directory')
    ap.add_argument('--size', type=int, default=256,
                    help='base image size in MiB (default 256)')
    ap.add_argument('--remote', choices=['http'],
                    help='serve the base through nginx on loopback')
    ap.add_argument('--stream-seconds', type=int, default=25,
                    help='speed-limit the stream to last about this long '
                    '(default 25), so the guest works during it')
    args = ap.parse_args()
    missing = guest_tools()
    for tool in ('qblk', 'qblk-img'):
        if not os.access(os.path.join(args.build, tool), os.X_OK):
            missing.append('%s is not built in %s (make)' % (tool, args.build))
    if missing:
        print('demo: cannot run: %s (see make deps)'
              % '; '.join(missing), file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C must reach the cleanup even when started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    story = Story(args.build, size_mib=args.size,
                  remote=args.remote == 'http',
                  say=lambda s: print(s, flush=True),
                  progress=sys.stdout.isatty(),
                  stream_seconds=args.stream_seconds, pause=5)
    try:
        with story:
            story.run_all()
    except StoryError as e:
        print('\ndemo: FAILED: %s' % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('\ndemo: interrupted; every process and temporary file '
              'was removed', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/python3
"""Benchmark qblk's block-stream side by side with qemu-storage-daemon
(QEMU 7.2) streaming the same images, both driven over their own QMP
socket with the same commands.

    bench/stream.py --build BUILD_DIR [--size 1G] [--pairs 3] [--dir TMPDIR]

Environment overrides for quick runs: QBLK_BENCH_SIZE (e.g. 256M),
QBLK_BENCH_PAIRS. `make bench` runs this after bench/run.py.

One qcow2 base full of random data is created once. Every run gets a
fresh empty qcow2 overlay on it and a fresh daemon whose graph is built
with --blockdev (file + qcow2 for the base, read-only, and for the top
with backing=base), then QMP `block-stream` on the top node:

  stream (default cache)   time from block-stream to BLOCK_JOB_COMPLETED
  stream (direct)          the same with cache.direct=on,aio=native on
                           both file nodes
  guest ... during stream  fio --ioengine=nbd randread 4k QD8 on the top
                           node's NBD export while an unlimited stream
                           runs (fio's first second is ramp time, the
                           stream starts at its end, fio is stopped at
                           BLOCK_JOB_COMPLETED): IOPS, p99 completion
                           latency, and the stream's own time under load;
                           the same fio idle (before the stream) is shown
                           for reference
  rate 64 MiB/s            a stream at speed=64 MiB/s: bytes of progress
                           (query-block-jobs offset) over a window of up
                           to 4 s after a 1 s settle, divided by the speed

Runs alternate qsd then qblk, --pairs times, after one untimed warm-up
of each; qblk's warm-up result is checked (qemu-img compare against the
base, no backing file left), so a fast but wrong stream does not count.
Each row shows the medians and the median of the per-pair ratios
qblk/QEMU, and the issue's aim for that ratio.
"""
import os
import sys
import time

from benchlib import (QMPRun, Server, compare_or_raise, daemon_binaries,
                      fresh_overlay, group_rows, image_info,
                      job_bench_argparser, make_random_qcow2, nbd_export_args,
                      parse_size, qmp_monitor_args, scratch_dir,
                      under_fio_load, unlink_if_exists)

MiB = 1 << 20
RATE_SPEED = 64 * MiB


def daemon_args(base, top, qmp_sock, nbd_sock=None, direct=False):
    """The same --blockdev graph for both daemons: base (read-only) and
    top (backing=base), optionally an NBD export of the top node."""
    cache = ',cache.direct=on,aio=native' if direct else ''
    args = ['--blockdev', 'driver=file,filename=%s,node-name=base-file,'
            'read-only=on%s' % (base, cache),
            '--blockdev', 'driver=qcow2,file=base-file,node-name=base,'
            'read-only=on',
            '--blockdev', 'driver=file,filename=%s,node-name=top-file%s'
            % (top, cache),
            '--blockdev', 'driver=qcow2,file=top-file,node-name=top,'
            'backing=base'] + qmp_monitor_args(qmp_sock)
    if nbd_sock:
        args += nbd_export_args(nbd_sock, 'top', False)
    return args


class Run(QMPRun):
    """One daemon on a fresh overlay of the base: `with Run(...) as r:`
    gives r.qmp (negotiated); on exit the daemon must exit 0 on
    SIGTERM."""

    def __init__(self, binary, base, d, direct=False, nbd=False):
        self.top = os.path.join(d, 'top.qcow2')
        self.qmp_sock = os.path.join(d, 'qmp.sock')
        self.nbd_sock = os.path.join(d, 'nbd.sock') if nbd else None
        unlink_if_exists(self.qmp_sock)
        fresh_overlay(self.top, base)
        os.sync()
        ready = self.nbd_sock or self.qmp_sock
        self.server = Server(binary, daemon_args(base, self.top,
                                                 self.qmp_sock, self.nbd_sock,
                                                 direct), ready, d)

    def stream(self, speed=0):
        """Start the stream; returns the monotonic start time."""
        t0 = time.monotonic()
        args = {'speed': speed} if speed else {}
        self.qmp.ok('block-stream', job_id='s', device='top', **args)
        return t0

    def wait_done(self):
        """Wait for the job's end; raise if it failed or was cancelled."""
        return self.qmp.wait_job('BLOCK_JOB_COMPLETED', 'stream')

    def timed_stream(self):
        """Seconds from block-stream to BLOCK_JOB_COMPLETED."""
        t0 = self.stream()
        return self.wait_done() - t0


def measure_stream(binary, base, d, direct):
    """Seconds from block-stream to BLOCK_JOB_COMPLETED."""
    with Run(binary, base, d, direct) as r:
        return r.timed_stream()


def measure_load(binary, base, d, size):
    """Guest randread during an unlimited stream:
    (idle IOPS, idle p99, IOPS, p99, stream seconds)."""
    with Run(binary, base, d, nbd=True) as r:
        idle, took, load = under_fio_load(r.nbd_sock, size, 'randread',
                                          1.0, r.timed_stream)
        return idle + load + (took,)


def measure_rate(binary, base, d, size):
    """Measured rate / set speed of a stream at RATE_SPEED."""
    window = min(4.0, size / RATE_SPEED - 2.0)
    if window < 1.0:
        raise RuntimeError('image too small for the rate row (%d MiB)'
                           % (size >> 20))
    with Run(binary, base, d) as r:
        r.stream(RATE_SPEED)
        time.sleep(1.0)
        o1, t1 = r.qmp.job_offset(), time.monotonic()
        time.sleep(window)
        o2, t2 = r.qmp.job_offset(), time.monotonic()
        r.qmp.cancel_job('s')
    return (o2 - o1) / (t2 - t1) / RATE_SPEED


def check_qblk_result(binary, base, d):
    """Stream once with qblk and let QEMU's tools judge the result."""
    with Run(binary, base, d) as r:
        r.timed_stream()
    top = os.path.join(d, 'top.qcow2')
    info = image_info(top)
    if 'backing-filename' in info:
        raise RuntimeError('qblk left a backing file: %r' % info)
    compare_or_raise(top, base, 'qblk stream result differs from the base',
                     ('-f', 'qcow2', '-F', 'qcow2'))


def aimed_rows(specs, measure, pairs, what):
    """group_rows of the tuple results of @measure, ratio qblk/qsd, each
    row followed by its aim; @specs: (name, aim) per tuple element."""
    rows = group_rows([(name, True) for name, _ in specs], measure, pairs,
                      what)
    return [r + (aim,) for r, (_, aim) in zip(rows, specs)]


def rows_stream(bins, base, d, size, pairs):
    out = []
    for direct, label, aim in ((False, 'default cache', '>= 2.0'),
                               (True, 'direct,aio=native', '>= 1.3')):
        name = 'stream %s (MiB/s)' % label
        out += aimed_rows([(name, aim)],
                          lambda k: (size / MiB / measure_stream(
                              bins[k], base, d, direct),), pairs, name)
    return out


def rows_load(bins, base, d, size, pairs):
    specs = [('guest IOPS idle (info)', None),
             ('guest p99 us idle (info)', None),
             ('guest IOPS during stream', '>= 1.5'),
             ('guest p99 us during stream', '<= 0.5'),
             ('stream s under guest load', '<= 1.0')]
    return aimed_rows(specs, lambda k: measure_load(bins[k], base, d, size),
                      pairs, 'guest load')


def rows_rate(bins, base, d, size, pairs):
    name = 'rate 64 MiB/s: measured/set'
    return aimed_rows([(name, 'qblk 0.95-1.05')],
                      lambda k: (measure_rate(bins[k], base, d, size),),
                      pairs, name)


def meets(ratio, qblk_val, aim):
    """'yes'/'NO' for a row's aim, '' for informational rows."""
    if not aim:
        return ''
    if aim.startswith('qblk'):
        return 'yes' if abs(qblk_val - 1.0) <= 0.05 else 'NO'
    op, limit = aim.split()
    ok = ratio >= float(limit) if op == '>=' else ratio <= float(limit)
    return 'yes' if ok else 'NO'


def print_table(rows, pairs, size):
    print('\n%-30s %10s %10s %12s %15s %5s' % (
        'stream workload (%d MiB)' % (size >> 20), 'qsd', 'qblk',
        'qblk/qsd', 'aim', 'met'))
    failed = False
    for name, a, b, ratio, aim in rows:
        if ratio is None:
            print('%-30s %10s %10s %12s %15s %5s' % (name, '-', '-',
                                                     'FAILED', aim or '', ''))
            failed = True
            continue
        print('%-30s %10.2f %10.2f %12.2f %15s %5s' % (
            name, a, b, ratio, aim or '', meets(ratio, b, aim)))
    print('\nmedians of %d alternating pairs (qsd then qblk, fresh daemon '
          'and overlay per run); ratio = median of per-pair qblk/qsd.'
          % pairs)
    return failed


def run(build, size, pairs, tmpdir=None):
    """Run the stream benchmark; 0 on success, 1 if anything failed."""
    bins = daemon_binaries(build, 'stream', ('qemu-img', 'fio'))
    if not bins:
        return 1
    with scratch_dir('qblk-stream-bench-', tmpdir) as d:
        print('\ncreating %d MiB random qcow2 base in %s for the stream '
              'benchmark ...' % (size >> 20, d), flush=True)
        base = make_random_qcow2(d, 'base', size)
        try:
            check_qblk_result(bins['qblk'], base, d)
        except RuntimeError as e:
            print('bench/stream: qblk stream is wrong, not timed: %s' % e)
            return 1
        rows = (rows_stream(bins, base, d, size, pairs) +
                rows_load(bins, base, d, size, pairs) +
                rows_rate(bins, base, d, size, pairs))
    return 1 if print_table(rows, pairs, size) else 0


def main():
    args = job_bench_argparser(__doc__, 'base image size').parse_args()
    return run(args.build, parse_size(args.size), max(args.pairs, 1),
               args.dir)


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/python3
"""Benchmark the qblk daemon's NBD export side by side with
qemu-storage-daemon exporting the same image.

    bench/nbd.py --build BUILD_DIR [--size 1G] [--pairs 3] [--runtime 10]
                 [--dir TMPDIR]

(bench/run.py calls run() at its end, so `make bench` runs both.)

One qcow2 image of random data is created once. Each row runs the two
daemons alternately, qsd then qblk, --pairs times (after one untimed
warm-up of each), a fresh daemon per run, over a unix socket:

  randread 4k QD1/QD16   fio --ioengine=nbd --rw=randread --bs=4k
                         --iodepth=N, --runtime seconds: IOPS and p99
                         completion latency
  CoR 1st/2nd full read  a fresh empty qcow2 overlay on the image, served
                         with copy-on-read (qsd: --blockdev
                         driver=copy-on-read filter; qblk: -drive
                         copy-on-read=on); `nbdcopy URI null:` twice, in
                         MiB/s; the first pass populates the overlay

The ratio column is the median of the per-pair ratios, oriented so that
> 1 means qblk is better: qblk/qsd for IOPS and MiB/s, qsd/qblk for p99.
"""
import argparse
import os
import subprocess
import sys
import time

from benchlib import (Server, daemon_binaries, fio_argv, fio_stats,
                      fresh_overlay, group_rows, make_random_qcow2,
                      nbd_export_args, parse_size, scratch_dir)


def daemon_args(kind, img, sock, cor):
    """Command line (without the binary) serving @img as export 'd'."""
    if kind == 'qblk' and cor:
        args = ['-drive', 'file=%s,format=qcow2,id=d,copy-on-read=on' % img]
    else:
        args = ['--blockdev', 'driver=file,filename=%s,node-name=f' % img,
                '--blockdev', 'driver=qcow2,file=f,node-name=%s'
                % ('fmt' if cor else 'd')]
        if cor:
            args += ['--blockdev', 'driver=copy-on-read,file=fmt,'
                     'node-name=d']
    return args + nbd_export_args(sock, 'd', cor)


def uri(sock):
    return 'nbd+unix:///d?socket=%s' % sock


def fio_randread(sock, depth, runtime, size):
    """(IOPS, p99 latency in microseconds) of one fio run."""
    p = subprocess.run(fio_argv(sock, size, 'randread',
                                ['--time_based', '--runtime=%d' % runtime],
                                depth=depth, name='rr'),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError('fio failed: %s' % p.stderr.decode()[-800:])
    return fio_stats(p.stdout, 'read')


def nbdcopy_rate(sock, size):
    """MiB/s of one `nbdcopy URI null:`."""
    t0 = time.perf_counter()
    p = subprocess.run(['nbdcopy', uri(sock), 'null:'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError('nbdcopy failed: %s' % p.stderr.decode()[-800:])
    return size / dt / (1 << 20)


def measure_fio(kind, binary, img, d, depth, runtime, size):
    """One fio measurement against a fresh daemon: (IOPS, p99 us)."""
    sock = os.path.join(d, 'nbd.sock')
    os.sync()
    with Server(binary, daemon_args(kind, img, sock, False), sock, d):
        return fio_randread(sock, depth, runtime, size)


def measure_cor(kind, binary, img, d, size):
    """Two full reads of a fresh copy-on-read overlay: (1st, 2nd) MiB/s."""
    sock = os.path.join(d, 'nbd.sock')
    top = os.path.join(d, 'top.qcow2')
    fresh_overlay(top, img)
    os.sync()
    with Server(binary, daemon_args(kind, top, sock, True), sock, d):
        first = nbdcopy_rate(sock, size)
        second = nbdcopy_rate(sock, size)
    os.unlink(top)
    return first, second


def bench_rows(binaries, img, d, size, pairs, runtime):
    """All rows; a failure of one group yields rows with None."""
    rows = []
    for depth in (1, 16):
        label = 'randread 4k QD%d' % depth
        rows += group_rows(
            [(label + ' IOPS', True), (label + ' p99 (us)', False)],
            lambda k: measure_fio(k, binaries[k], img, d, depth, runtime,
                                  size), pairs, label)
    rows += group_rows([('CoR 1st full read (MiB/s)', True),
                        ('CoR 2nd full read (MiB/s)', True)],
                       lambda k: measure_cor(k, binaries[k], img, d, size),
                       pairs, 'copy-on-read')
    return rows


def print_table(rows, pairs, runtime):
    print('\n%-30s %12s %12s %22s' % ('NBD workload', 'qsd', 'qblk',
                                      'ratio (median)'))
    failed = False
    for name, a, b, ratio in rows:
        if ratio is None:
            print('%-30s %12s %12s %22s' % (name, '-', '-', 'qblk FAILED'))
            failed = True
        else:
            print('%-30s %12.1f %12.1f %22.2f' % (name, a, b, ratio))
    print('\n%d pairs per row (qsd and qblk alternating, fresh daemon per '
          'run, fio runs of %d s); ratio > 1 means qblk is better '
          '(qblk/qsd for IOPS and MiB/s, qsd/qblk for p99).'
          % (pairs, runtime))
    return failed


def run(build, size=1 << 30, pairs=3, runtime=10, tmpdir=None):
    """Run the NBD benchmark; returns 0, or 1 if anything failed."""
    binaries = daemon_binaries(build, 'nbd', ('qemu-img', 'fio', 'nbdcopy'))
    if not binaries:
        return 1
    with scratch_dir('qblk-nbd-bench-', tmpdir) as d:
        print('\ncreating %d MiB random qcow2 image in %s for the NBD '
              'benchmark ...' % (size >> 20, d), flush=True)
        img = make_random_qcow2(d, 'base', size)
        rows = bench_rows(binaries, img, d, size, max(pairs, 1), runtime)
    return 1 if print_table(rows, max(pairs, 1), runtime) else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build')
    ap.add_argument('--size', default='1G', help='image size (default 1G)')
    ap.add_argument('--pairs', type=int, default=3)
    ap.add_argument('--runtime', type=int, default=10,
                    help='seconds per fio run (default 10)')
    ap.add_argument('--dir', default=None, help='where to put the image')
    args = ap.parse_args()
    return run(args.build, parse_size(args.size), args.pairs, args.runtime,
               args.dir)


if __name__ == '__main__':
    sys.exit(main())

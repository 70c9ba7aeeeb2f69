#!/usr/bin/python3
"""Benchmark qblk-img/qblk-io side by side with qemu-img/qemu-io.

    bench/run.py --build BUILD_DIR [--size 1G] [--pairs 5] [--dir TMPDIR]

One qcow2 image full of random data is created once in a temporary
directory (python writes a raw file in big chunks, qemu-img converts it).
Each workload then runs the SAME command line with QEMU's tool and with
qblk's, alternating QEMU and qblk runs, after one untimed warm-up run of
each (so both see a warm page cache):

  convert      X-img convert -f qcow2 -O qcow2 src dst  (dst removed after;
               qblk's warm-up output is checked with qemu-img compare)
  seq-read-4k  X-io -f qcow2 -c 'read OFF 4k' ... over the first 64 MiB
  rand-read-4k X-io with the same number of 4k reads at seeded random
               4k-aligned offsets across the whole image

The table shows median wall times and the median of the per-pair ratios
qemu_time / qblk_time: a ratio above 1 means qblk was faster.
"""
import argparse
import importlib.util
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import make_random_qcow2, parse_size

def read_args(offsets):
    args = []
    for off in offsets:
        args += ['-c', 'read %d 4k' % off]
    return args


def workloads(img, size, d):
    """name -> function(tool_kind) returning the argv for that tool."""
    n = min(size, 64 << 20) // 4096
    seq = read_args(i * 4096 for i in range(n))
    rnd = random.Random(42)
    rand = read_args(rnd.randrange(size // 4096) * 4096 for _ in range(n))
    dst = os.path.join(d, 'dst.qcow2')
    return [
        ('convert -O qcow2 (%d MiB)' % (size >> 20),
         lambda img_tool, io_tool: [img_tool, 'convert', '-f', 'qcow2',
                                    '-O', 'qcow2', img, dst], dst),
        ('seq-read-4k (%d reads)' % n,
         lambda img_tool, io_tool: [io_tool, '-f', 'qcow2'] + seq + [img],
         None),
        ('rand-read-4k (%d reads)' % n,
         lambda img_tool, io_tool: [io_tool, '-f', 'qcow2'] + rand + [img],
         None),
    ]


def timed(argv, cleanup):
    """Run @argv once; return seconds, or None if it failed.

    Dirty pages left by the previous run are written back first (untimed),
    so that no run pays for its predecessor's writeback.
    """
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if cleanup and os.path.exists(cleanup):
        os.unlink(cleanup)
    if p.returncode != 0:
        sys.stderr.write('FAILED (rc %d): %s ...\n%s\n' % (
            p.returncode, ' '.join(argv[:4]),
            p.stderr.decode(errors='replace')[-500:]))
        return None
    return dt


def bench_row(name, make_argv, cleanup, tools, pairs):
    qemu_argv = make_argv(tools['qemu-img'], tools['qemu-io'])
    qblk_argv = make_argv(tools['qblk-img'], tools['qblk-io'])
    timed(qemu_argv, cleanup)          # warm-up, untimed
    if timed(qblk_argv, None) is None:
        return name, None, None, None
    if cleanup:
        # A fast but wrong result must not count: QEMU checks qblk's output.
        same = subprocess.run(['qemu-img', 'compare', '-f', 'qcow2', '-F',
                               'qcow2', qblk_argv[-2], cleanup],
                              stdout=subprocess.DEVNULL).returncode == 0
        os.unlink(cleanup)
        if not same:
            sys.stderr.write('qblk output differs from the input: %s\n'
                             % name)
            return name, None, None, None
    qemu_t, qblk_t, ratios = [], [], []
    for _ in range(pairs):
        a = timed(qemu_argv, cleanup)
        b = timed(qblk_argv, cleanup)
        if a is None or b is None:
            return name, None, None, None
        qemu_t.append(a)
        qblk_t.append(b)
        ratios.append(a / b)
    return (name, statistics.median(qemu_t), statistics.median(qblk_t),
            statistics.median(ratios))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build')
    ap.add_argument('--size', default='1G', help='image size (default 1G)')
    ap.add_argument('--pairs', type=int, default=5)
    ap.add_argument('--dir', default=None, help='where to put the image')
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    tools = {'qblk-img': os.path.join(build, 'qblk-img'),
             'qblk-io': os.path.join(build, 'qblk-io'),
             'qemu-img': shutil.which('qemu-img'),
             'qemu-io': shutil.which('qemu-io')}
    for k, v in tools.items():
        if not v or not os.access(v, os.X_OK):
            sys.exit('bench: %s not found' % k)
    size = parse_size(args.size)
    d = tempfile.mkdtemp(prefix='qblk-bench-', dir=args.dir)
    try:
        print('creating %d MiB random qcow2 image in %s ...'
              % (size >> 20, d), flush=True)
        img = make_random_qcow2(d, 'src', size)
        rows = [bench_row(name, mk, cleanup, tools, max(args.pairs, 1))
                for name, mk, cleanup in workloads(img, size, d)]
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print('\n%-34s %10s %10s %18s' % ('workload', 'qemu (s)', 'qblk (s)',
                                      'qemu/qblk (median)'))
    failed = False
    for name, tq, tb, ratio in rows:
        if ratio is None:
            print('%-34s %10s %10s %18s' % (name, '-', '-', 'qblk FAILED'))
            failed = True
        else:
            print('%-34s %10.3f %10.3f %18.2f' % (name, tq, tb, ratio))
    print('\n%d pairs per row, QEMU and qblk alternating; ratio > 1 means '
          'qblk is faster.' % max(args.pairs, 1))
    # The daemon's NBD export against qemu-storage-daemon (bench/nbd.py).
    spec = importlib.util.spec_from_file_location(
        'bench_nbd', os.path.join(os.path.dirname(__file__), 'nbd.py'))
    nbd_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nbd_bench)
    if nbd_bench.run(build, size, pairs=3, tmpdir=args.dir) != 0:
        failed = True
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

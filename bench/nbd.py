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
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import make_random_qcow2, parse_size

READY_TIMEOUT = 10


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
    return args + ['--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
                   '--export', 'type=nbd,id=e,node-name=d,name=d,'
                   'writable=%s' % ('on' if cor else 'off')]


class Server:
    """One daemon run: started on enter (waits for its socket), stopped
    with SIGTERM on exit (exit 0 required, else the run counts as
    failed)."""

    def __init__(self, binary, args, sock, d):
        self.argv = [binary] + args
        self.sock = sock
        self.errpath = os.path.join(d, 'daemon.stderr')
        self.ok = True

    def _ready(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def __enter__(self):
        with open(self.errpath, 'wb') as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError('%s did not start:\n%s' % (
                    ' '.join(self.argv[:3]), self.stderr()))
            time.sleep(0.02)
        return self

    def stderr(self):
        with open(self.errpath, errors='replace') as f:
            return f.read()[-1500:]

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -9
        if rc != 0 and exc[0] is None:
            raise RuntimeError('%s exited with %d:\n%s' % (
                self.argv[0], rc, self.stderr()))
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        return False


def uri(sock):
    return 'nbd+unix:///d?socket=%s' % sock


def fio_randread(sock, depth, runtime, size):
    """(IOPS, p99 latency in microseconds) of one fio run."""
    p = subprocess.run(['fio', '--name=rr', '--ioengine=nbd',
                        '--uri=' + uri(sock), '--rw=randread', '--bs=4k',
                        '--iodepth=%d' % depth, '--size=%d' % size,
                        '--time_based', '--runtime=%d' % runtime,
                        '--randrepeat=0', '--output-format=json'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError('fio failed: %s' % p.stderr.decode()[-800:])
    out = p.stdout.decode()
    job = json.loads(out[out.index('{'):])['jobs'][0]
    rd = job['read']
    p99 = rd['clat_ns']['percentile'].get('99.000000', 0) / 1000.0
    return rd['iops'], p99


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
    if os.path.exists(top):
        os.unlink(top)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', img,
                    '-F', 'qcow2', top], check=True)
    os.sync()
    with Server(binary, daemon_args(kind, top, sock, True), sock, d):
        first = nbdcopy_rate(sock, size)
        second = nbdcopy_rate(sock, size)
    os.unlink(top)
    return first, second


def pairs_of(measure, pairs):
    """Warm up both, then alternate qsd/qblk @pairs times; returns
    {'qsd': [results], 'qblk': [results]} or raises on failure."""
    res = {'qsd': [], 'qblk': []}
    measure('qsd')
    measure('qblk')
    for _ in range(pairs):
        for kind in ('qsd', 'qblk'):
            res[kind].append(measure(kind))
    return res


def row(name, qsd_vals, qblk_vals, higher_better):
    ratios = [(b / a if higher_better else a / b) if a and b else 0.0
              for a, b in zip(qsd_vals, qblk_vals)]
    return (name, statistics.median(qsd_vals), statistics.median(qblk_vals),
            statistics.median(ratios))


def bench_rows(binaries, img, d, size, pairs, runtime):
    """All rows; a failure of one group yields rows with None."""
    rows = []
    for depth in (1, 16):
        label = 'randread 4k QD%d' % depth
        try:
            r = pairs_of(lambda k: measure_fio(k, binaries[k], img, d, depth,
                                               runtime, size), pairs)
            rows.append(row(label + ' IOPS', [x[0] for x in r['qsd']],
                            [x[0] for x in r['qblk']], True))
            rows.append(row(label + ' p99 (us)', [x[1] for x in r['qsd']],
                            [x[1] for x in r['qblk']], False))
        except RuntimeError as e:
            sys.stderr.write('%s: %s\n' % (label, e))
            rows += [(label + ' IOPS', None, None, None),
                     (label + ' p99 (us)', None, None, None)]
    try:
        r = pairs_of(lambda k: measure_cor(k, binaries[k], img, d, size),
                     pairs)
        rows.append(row('CoR 1st full read (MiB/s)', [x[0] for x in r['qsd']],
                        [x[0] for x in r['qblk']], True))
        rows.append(row('CoR 2nd full read (MiB/s)', [x[1] for x in r['qsd']],
                        [x[1] for x in r['qblk']], True))
    except RuntimeError as e:
        sys.stderr.write('copy-on-read: %s\n' % e)
        rows += [('CoR 1st full read (MiB/s)', None, None, None),
                 ('CoR 2nd full read (MiB/s)', None, None, None)]
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
    binaries = {'qblk': os.path.join(os.path.abspath(build), 'qblk'),
                'qsd': shutil.which('qemu-storage-daemon')}
    for tool in ('qemu-img', 'fio', 'nbdcopy'):
        if not shutil.which(tool):
            print('bench/nbd: %s not installed, NBD benchmark skipped' % tool)
            return 1
    if not binaries['qsd'] or not os.access(binaries['qblk'], os.X_OK):
        print('bench/nbd: qemu-storage-daemon or %s missing'
              % binaries['qblk'])
        return 1
    d = tempfile.mkdtemp(prefix='qblk-nbd-bench-', dir=tmpdir)
    try:
        print('\ncreating %d MiB random qcow2 image in %s for the NBD '
              'benchmark ...' % (size >> 20, d), flush=True)
        img = make_random_qcow2(d, 'base', size)
        rows = bench_rows(binaries, img, d, size, max(pairs, 1), runtime)
    finally:
        shutil.rmtree(d, ignore_errors=True)
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

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
import argparse
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import make_random_qcow2, parse_size
from nbd import Server

MiB = 1 << 20
RATE_SPEED = 64 * MiB
EVENT_TIMEOUT = 600


class QMP:
    """A minimal QMP client: greeting, negotiation, commands, events."""

    def __init__(self, path):
        deadline = time.monotonic() + 10
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = b''
        self.events = []
        self.recv(10)
        self.cmd('qmp_capabilities')

    def recv(self, timeout):
        """The next message as a dict; events are also queued."""
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise RuntimeError('QMP: nothing within %d s' % timeout)
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError('QMP connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        msg = json.loads(line)
        if 'event' in msg:
            self.events.append(msg)
        return msg

    def cmd(self, name, **args):
        """Run a command; return its 'return' value or raise."""
        msg = {'execute': name}
        if args:
            msg['arguments'] = {k.replace('_', '-'): v
                                for k, v in args.items()}
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        while True:
            r = self.recv(60)
            if 'event' in r:
                continue
            if 'error' in r:
                raise RuntimeError('%s: %s' % (name, r['error']))
            return r['return']

    def wait_event(self, names, timeout=EVENT_TIMEOUT):
        """The first queued or arriving event whose name is in @names."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev['event'] in names:
                    self.events.remove(ev)
                    return ev
            self.recv(max(deadline - time.monotonic(), 0.001))

    def close(self):
        self.sock.close()


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
            'backing=base',
            '--chardev', 'socket,id=qmp0,path=%s,server=on,wait=off'
            % qmp_sock, '--monitor', 'chardev=qmp0']
    if nbd_sock:
        args += ['--nbd-server', 'addr.type=unix,addr.path=%s' % nbd_sock,
                 '--export', 'type=nbd,id=e,node-name=top,name=d,'
                 'writable=off']
    return args


class Run:
    """One daemon on a fresh overlay of the base: `with Run(...) as r:`
    gives r.qmp (negotiated); on exit the daemon must exit 0 on
    SIGTERM."""

    def __init__(self, binary, base, d, direct=False, nbd=False):
        self.top = os.path.join(d, 'top.qcow2')
        self.qmp_sock = os.path.join(d, 'qmp.sock')
        self.nbd_sock = os.path.join(d, 'nbd.sock') if nbd else None
        for p in (self.top, self.qmp_sock):
            if os.path.exists(p):
                os.unlink(p)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base,
                        '-F', 'qcow2', self.top], check=True)
        os.sync()
        ready = self.nbd_sock or self.qmp_sock
        self.server = Server(binary, daemon_args(base, self.top,
                                                 self.qmp_sock, self.nbd_sock,
                                                 direct), ready, d)

    def __enter__(self):
        self.server.__enter__()
        try:
            self.qmp = QMP(self.qmp_sock)
        except Exception:
            self.server.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        self.qmp.close()
        return self.server.__exit__(*exc)

    def stream(self, speed=0):
        """Start the stream; returns the monotonic start time."""
        t0 = time.monotonic()
        args = {'speed': speed} if speed else {}
        self.qmp.cmd('block-stream', job_id='s', device='top', **args)
        return t0

    def wait_done(self):
        """Wait for the job's end; raise if it failed or was cancelled."""
        ev = self.qmp.wait_event(('BLOCK_JOB_COMPLETED',
                                  'BLOCK_JOB_CANCELLED'))
        if ev['event'] != 'BLOCK_JOB_COMPLETED' or 'error' in ev['data']:
            raise RuntimeError('stream failed: %r' % ev)
        return time.monotonic()


def measure_stream(binary, base, d, direct):
    """Seconds from block-stream to BLOCK_JOB_COMPLETED."""
    with Run(binary, base, d, direct) as r:
        t0 = r.stream()
        return r.wait_done() - t0


def fio_argv(nbd_sock, size, extra):
    return ['fio', '--name=guest', '--ioengine=nbd',
            '--uri=nbd+unix:///d?socket=%s' % nbd_sock, '--rw=randread',
            '--bs=4k', '--iodepth=8', '--size=%d' % size, '--randrepeat=0',
            '--output-format=json'] + extra


def fio_stats(out):
    """(IOPS, p99 completion latency in us) from fio's JSON output."""
    text = out.decode(errors='replace')
    rd = json.loads(text[text.index('{'):])['jobs'][0]['read']
    return rd['iops'], rd['clat_ns']['percentile'].get('99.000000', 0) / 1e3


def measure_load(binary, base, d, size):
    """Guest randread during an unlimited stream:
    (idle IOPS, idle p99, IOPS, p99, stream seconds)."""
    with Run(binary, base, d, nbd=True) as r:
        idle = subprocess.run(fio_argv(r.nbd_sock, size,
                                       ['--time_based', '--runtime=2']),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if idle.returncode != 0:
            raise RuntimeError('fio: %s' % idle.stderr.decode()[-500:])
        fio = subprocess.Popen(fio_argv(r.nbd_sock, size,
                                        ['--time_based', '--runtime=3600',
                                         '--ramp_time=1']),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)
            t0 = r.stream()
            t1 = r.wait_done()
        finally:
            fio.send_signal(signal.SIGINT)
            out, err = fio.communicate(60)
        if b'{' not in out:
            raise RuntimeError('fio: %s' % err.decode()[-500:])
        return fio_stats(idle.stdout) + fio_stats(out) + (t1 - t0,)


def job_offset(qmp):
    jobs = qmp.cmd('query-block-jobs')
    if not jobs:
        raise RuntimeError('the job ended before the rate was measured')
    return jobs[0]['offset']


def measure_rate(binary, base, d, size):
    """Measured rate / set speed of a stream at RATE_SPEED."""
    window = min(4.0, size / RATE_SPEED - 2.0)
    if window < 1.0:
        raise RuntimeError('image too small for the rate row (%d MiB)'
                           % (size >> 20))
    with Run(binary, base, d) as r:
        r.stream(RATE_SPEED)
        time.sleep(1.0)
        o1, t1 = job_offset(r.qmp), time.monotonic()
        time.sleep(window)
        o2, t2 = job_offset(r.qmp), time.monotonic()
        r.qmp.cmd('block-job-cancel', device='s', force=True)
        r.qmp.wait_event(('BLOCK_JOB_CANCELLED', 'BLOCK_JOB_COMPLETED'))
    return (o2 - o1) / (t2 - t1) / RATE_SPEED


def check_qblk_result(binary, base, d):
    """Stream once with qblk and let QEMU's tools judge the result."""
    with Run(binary, base, d) as r:
        r.stream()
        r.wait_done()
    top = os.path.join(d, 'top.qcow2')
    info = json.loads(subprocess.run(
        ['qemu-img', 'info', '--output=json', top], check=True,
        stdout=subprocess.PIPE).stdout)
    if 'backing-filename' in info:
        raise RuntimeError('qblk left a backing file: %r' % info)
    same = subprocess.run(['qemu-img', 'compare', '-f', 'qcow2', '-F',
                           'qcow2', top, base],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if same.returncode != 0:
        raise RuntimeError('qblk stream result differs from the base: %s'
                           % same.stdout.decode()[-500:])


def alternate(measure, pairs):
    """Warm up both, then alternate qsd/qblk @pairs times."""
    res = {'qsd': [], 'qblk': []}
    measure('qsd')
    measure('qblk')
    for _ in range(pairs):
        for kind in ('qsd', 'qblk'):
            res[kind].append(measure(kind))
    return res


def row(name, qsd_vals, qblk_vals, aim):
    """(name, median qsd, median qblk, median qblk/qsd ratio, aim)."""
    ratios = [b / a if a else 0.0 for a, b in zip(qsd_vals, qblk_vals)]
    return (name, statistics.median(qsd_vals), statistics.median(qblk_vals),
            statistics.median(ratios), aim)


def rows_stream(bins, base, d, size, pairs):
    out = []
    for direct, label, aim in ((False, 'default cache', '>= 2.0'),
                               (True, 'direct,aio=native', '>= 1.3')):
        name = 'stream %s (MiB/s)' % label
        try:
            r = alternate(lambda k: size / MiB / measure_stream(
                bins[k], base, d, direct), pairs)
            out.append(row(name, r['qsd'], r['qblk'], aim))
        except RuntimeError as e:
            sys.stderr.write('%s: %s\n' % (name, e))
            out.append((name, None, None, None, aim))
    return out


def rows_load(bins, base, d, size, pairs):
    names = [('guest IOPS idle (info)', None),
             ('guest p99 us idle (info)', None),
             ('guest IOPS during stream', '>= 1.5'),
             ('guest p99 us during stream', '<= 0.5'),
             ('stream s under guest load', '<= 1.0')]
    try:
        r = alternate(lambda k: measure_load(bins[k], base, d, size), pairs)
    except RuntimeError as e:
        sys.stderr.write('guest load: %s\n' % e)
        return [(n, None, None, None, aim) for n, aim in names]
    return [row(n, [x[i] for x in r['qsd']], [x[i] for x in r['qblk']], aim)
            for i, (n, aim) in enumerate(names)]


def rows_rate(bins, base, d, size, pairs):
    name = 'rate 64 MiB/s: measured/set'
    try:
        r = alternate(lambda k: measure_rate(bins[k], base, d, size), pairs)
        return [row(name, r['qsd'], r['qblk'], 'qblk 0.95-1.05')]
    except RuntimeError as e:
        sys.stderr.write('%s: %s\n' % (name, e))
        return [(name, None, None, None, 'qblk 0.95-1.05')]


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
    bins = {'qblk': os.path.join(os.path.abspath(build), 'qblk'),
            'qsd': shutil.which('qemu-storage-daemon')}
    for tool in ('qemu-img', 'fio'):
        if not shutil.which(tool):
            print('bench/stream: %s not installed, skipped' % tool)
            return 1
    if not bins['qsd'] or not os.access(bins['qblk'], os.X_OK):
        print('bench/stream: qemu-storage-daemon or %s missing'
              % bins['qblk'])
        return 1
    d = tempfile.mkdtemp(prefix='qblk-stream-bench-', dir=tmpdir)
    try:
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
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 1 if print_table(rows, pairs, size) else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build')
    ap.add_argument('--size', default=os.environ.get('QBLK_BENCH_SIZE', '1G'),
                    help='base image size (default 1G, env QBLK_BENCH_SIZE)')
    ap.add_argument('--pairs', type=int,
                    default=int(os.environ.get('QBLK_BENCH_PAIRS', '3')))
    ap.add_argument('--dir', default=None, help='where to put the images')
    args = ap.parse_args()
    return run(args.build, parse_size(args.size), max(args.pairs, 1),
               args.dir)


if __name__ == '__main__':
    sys.exit(main())

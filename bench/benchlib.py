"""Helpers shared by qblk's benchmarks (bench/run.py, nbd.py, stream.py,
commit.py, qmp.py, remote.py): images, daemon runs, the block job side
of a QMP client, the guest (fio over NBD), alternating qsd/qblk pairs and
the ratio rows. The QMP client and the socket probe themselves are
qblkpy's (python/qblkpy/), shared with the tests and the demo.

Each benchmark keeps its own workloads and table; what lives here is the
machinery they all drive the same way, so that a fix to, say, how a
daemon is stopped applies to every table at once.
"""
import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'python'))

from qblkpy import qmp, sockets  # noqa: E402

CHUNK = 4 * 1024 * 1024
MiB = 1 << 20
READY_TIMEOUT = 10
QMP_TIMEOUT = 60
EVENT_TIMEOUT = 600


def parse_size(text):
    """'1G', '512M', '64k' or a plain byte count -> bytes."""
    units = {'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}
    t = text.strip().lower().rstrip('b').rstrip('i')
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def make_random_qcow2(d, name, size):
    """Create d/NAME.qcow2 holding @size bytes of random data; return its path.

    The data is written raw and converted by qemu-img, so the image's
    layout does not depend on qblk.
    """
    raw = os.path.join(d, name + '.raw')
    img = os.path.join(d, name + '.qcow2')
    with open(raw, 'wb') as f:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                    raw, img], check=True)
    os.unlink(raw)
    return img


def fresh_overlay(top, backing):
    """(Re)create @top as an empty qcow2 overlay of qcow2 @backing."""
    if os.path.exists(top):
        os.unlink(top)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', backing,
                    '-F', 'qcow2', top], check=True)


def unlink_if_exists(*paths):
    for p in paths:
        if p and os.path.exists(p):
            os.unlink(p)


def daemon_binaries(build, prog, tools):
    """{'qblk': path, 'qsd': path} of the two daemons, or None (after
    saying why, as bench/@prog) when they or one of @tools are missing."""
    bins = {'qblk': os.path.join(os.path.abspath(build), 'qblk'),
            'qsd': shutil.which('qemu-storage-daemon')}
    for tool in tools:
        if not shutil.which(tool):
            print('bench/%s: %s not installed, skipped' % (prog, tool))
            return None
    if not bins['qsd'] or not os.access(bins['qblk'], os.X_OK):
        print('bench/%s: qemu-storage-daemon or %s missing'
              % (prog, bins['qblk']))
        return None
    return bins


def qmp_monitor_args(sock):
    """Daemon options for a QMP monitor on unix socket @sock."""
    return ['--chardev', 'socket,id=qmp0,path=%s,server=on,wait=off' % sock,
            '--monitor', 'chardev=qmp0']


def nbd_export_args(sock, node, writable):
    """Daemon options serving @node as NBD export 'd' on unix @sock."""
    return ['--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
            '--export', 'type=nbd,id=e,node-name=%s,name=d,writable=%s'
            % (node, 'on' if writable else 'off')]


class Server:
    """One daemon run: started on enter (waits for its socket), stopped
    with SIGTERM on exit (exit 0 required, else the run counts as
    failed)."""

    def __init__(self, binary, args, sock, d):
        self.argv = [binary] + args
        self.sock = sock
        self.errpath = os.path.join(d, 'daemon.stderr')
        self.ok = True

    def __enter__(self):
        with open(self.errpath, 'wb') as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        if not sockets.wait_accepting(self.sock, READY_TIMEOUT,
                                      lambda: self.proc.poll() is None):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError('%s did not start:\n%s' % (
                ' '.join(self.argv[:3]), self.stderr()))
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


class QMP(qmp.QMPClient):
    """qblkpy's QMP client, negotiated, with the block job helpers of the
    benchmarks; QMP failures are RuntimeErrors (qmp.QMPError)."""

    def __init__(self, path):
        super().__init__(path, QMP_TIMEOUT)
        self.negotiate()

    def wait_job(self, name, what, timeout=EVENT_TIMEOUT):
        """Wait for block job event @name; raise (naming @what) if the
        job ended otherwise or failed. Returns the monotonic time."""
        ev = self.event_wait((name, 'BLOCK_JOB_COMPLETED',
                              'BLOCK_JOB_CANCELLED'), timeout)
        if ev['event'] != name or 'error' in ev['data']:
            raise RuntimeError('%s: waited for %s, got %r' % (what, name, ev))
        return time.monotonic()

    def cancel_job(self, job):
        """Force-cancel @job and wait until it has ended."""
        self.ok('block-job-cancel', device=job, force=True)
        self.event_wait(('BLOCK_JOB_CANCELLED', 'BLOCK_JOB_COMPLETED'),
                        EVENT_TIMEOUT)

    def job_offset(self):
        """query-block-jobs offset of the only job; raise if it ended."""
        jobs = self.ok('query-block-jobs')
        if not jobs:
            raise RuntimeError('the job ended before the rate was measured')
        return jobs[0]['offset']


class QMPRun:
    """A Server plus a negotiated QMP client: `with run as r:` gives
    r.qmp; subclasses set self.server and self.qmp_sock first."""

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


def fio_argv(nbd_sock, size, rw, extra, depth=8, name='guest'):
    """fio 4k @rw at QD @depth on export 'd' of @nbd_sock, JSON output."""
    return ['fio', '--name=%s' % name, '--ioengine=nbd',
            '--uri=nbd+unix:///d?socket=%s' % nbd_sock, '--rw=%s' % rw,
            '--bs=4k', '--iodepth=%d' % depth, '--size=%d' % size,
            '--randrepeat=0', '--output-format=json'] + extra


def fio_stats(out, direction):
    """(IOPS, p99 completion latency in us) of fio's JSON output for
    @direction ('read' or 'write')."""
    text = out.decode(errors='replace')
    st = json.loads(text[text.index('{'):])['jobs'][0][direction]
    if 'percentile' not in st['clat_ns']:
        raise RuntimeError('fio measured nothing (job shorter than the '
                           'ramp time?)')
    return st['iops'], st['clat_ns']['percentile'].get('99.000000', 0) / 1e3


def under_fio_load(nbd_sock, size, rw, settle, work):
    """Run fio @rw idle for 2 s, then again in the background (1 s ramp
    time) while work() runs after @settle seconds; fio is stopped when
    work returns. Returns (idle stats, work's result, loaded stats)."""
    direction = 'read' if 'read' in rw else 'write'
    idle = subprocess.run(fio_argv(nbd_sock, size, rw,
                                   ['--time_based', '--runtime=2']),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if idle.returncode != 0:
        raise RuntimeError('fio: %s' % idle.stderr.decode()[-500:])
    fio = subprocess.Popen(fio_argv(nbd_sock, size, rw,
                                    ['--time_based', '--runtime=3600',
                                     '--ramp_time=1']),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(settle)
        result = work()
    finally:
        fio.send_signal(signal.SIGINT)
        out, err = fio.communicate(60)
    if b'{' not in out:
        raise RuntimeError('fio: %s' % err.decode()[-500:])
    return (fio_stats(idle.stdout, direction), result,
            fio_stats(out, direction))


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
    """(name, median qsd, median qblk, median per-pair ratio), the ratio
    oriented so that > 1 means qblk is better."""
    ratios = [(b / a if higher_better else a / b) if a and b else 0.0
              for a, b in zip(qsd_vals, qblk_vals)]
    return (name, statistics.median(qsd_vals), statistics.median(qblk_vals),
            statistics.median(ratios))


def column(runs, i):
    """Element @i of each tuple result in @runs."""
    return [x[i] for x in runs]


def tuple_rows(r, specs):
    """Rows from the tuple results of pairs_of: @specs holds (name,
    higher_better) for each element of the tuples."""
    return [row(name, column(r['qsd'], i), column(r['qblk'], i), higher)
            for i, (name, higher) in enumerate(specs)]


def group_rows(specs, measure, pairs, what):
    """pairs_of(@measure) as tuple_rows(@specs); when it fails, say so
    (naming @what) and give each row None values."""
    try:
        return tuple_rows(pairs_of(measure, pairs), specs)
    except RuntimeError as e:
        sys.stderr.write('%s: %s\n' % (what, e))
        return [(name, None, None, None) for name, _ in specs]


@contextlib.contextmanager
def scratch_dir(prefix, parent=None):
    """A temporary directory (under @parent if given), removed after."""
    d = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def job_bench_argparser(doc, size_help):
    """The options of the block job benchmarks: --build, --size and
    --pairs (defaults from QBLK_BENCH_SIZE / QBLK_BENCH_PAIRS), --dir."""
    ap = argparse.ArgumentParser(description=doc.split('\n')[0])
    ap.add_argument('--build', default='build')
    ap.add_argument('--size', default=os.environ.get('QBLK_BENCH_SIZE', '1G'),
                    help='%s (default 1G, env QBLK_BENCH_SIZE)' % size_help)
    ap.add_argument('--pairs', type=int,
                    default=int(os.environ.get('QBLK_BENCH_PAIRS', '3')))
    ap.add_argument('--dir', default=None, help='where to put the images')
    return ap


def image_info(path):
    """qemu-img info of @path as a dict."""
    return json.loads(subprocess.run(
        ['qemu-img', 'info', '-U', '--output=json', path], check=True,
        stdout=subprocess.PIPE).stdout)


def compare_or_raise(a, b, what, opts=('-U',)):
    """qemu-img compare @a @b; RuntimeError '@what: output' if they
    differ."""
    same = subprocess.run(['qemu-img', 'compare'] + list(opts) + [a, b],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if same.returncode != 0:
        raise RuntimeError('%s: %s' % (what, same.stdout.decode()[-500:]))

"""Start and stop an NBD-serving daemon (qblk, or qemu-storage-daemon as a
reference) for the functional tests.

    with Daemon(binary, args, ready=('unix', sock_path)) as d:
        ...                       # the socket accepts connections here
    # left normally: SIGTERM sent, exit status 0 required within 10 s
    # left by an exception: the daemon is killed, nothing else asserted

The daemon's stderr and stdout go to files in its work directory (never to
a pipe that could fill up and block it); d.stderr reads them back. Every
failure message includes that stderr, since it is what explains a failure.

QBLK_DAEMON may name another binary for the tests' daemon; naming
qemu-storage-daemon runs the suite against QEMU, which checks the tests.
qemu-storage-daemon has no -drive, so for it the -drive options that the
tests use are translated into the equivalent --blockdev chain.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from qblk_testlib import CRASH_MARKERS, assert_no_crash, build_dir, run
from qblkpy.sockets import accepts, free_tcp_port  # noqa: F401 (re-exported)

READY_TIMEOUT = 10
STOP_TIMEOUT = 10


def qblk_daemon_path():
    path = os.environ.get('QBLK_DAEMON') or os.path.join(build_dir(), 'qblk')
    if not os.path.isabs(path):
        path = shutil.which(path) or path
    return path


def is_qsd(binary):
    return 'qemu-storage-daemon' in os.path.basename(binary)


def require_qblk(why):
    """Skip the calling test when the suite runs against
    qemu-storage-daemon (QBLK_DAEMON); @why names the qblk-only part."""
    if is_qsd(qblk_daemon_path()):
        pytest.skip('qblk-specific: %s' % why)


# -drive cache modes as the --blockdev cache options QEMU derives from them
DRIVE_CACHE = {'none': ',cache.direct=on', 'directsync': ',cache.direct=on',
               'unsafe': ',cache.no-flush=on', 'writeback': '',
               'writethrough': ''}


def drive_to_blockdev(value):
    """Translate one '-drive' value into qemu-storage-daemon --blockdev
    arguments (file + format [+ copy-on-read filter]); the top node is
    named node-name= if given, else id=, as QEMU's -drive does."""
    opts = dict(kv.split('=', 1) for kv in value.split(','))
    name = opts.get('node-name') or opts.get('id')
    ro = opts.get('readonly') == 'on'
    common = (',read-only=on' if ro else '') + \
        DRIVE_CACHE[opts.get('cache', 'writeback')]
    args = ['--blockdev', 'driver=file,filename=%s,node-name=%s-file%s'
            % (opts['file'], name, common)]
    fmt = opts.get('format', 'raw')
    cor = opts.get('copy-on-read') == 'on' and not ro
    fmt_name = name + '-fmt' if cor else name
    args += ['--blockdev', 'driver=%s,file=%s-file,node-name=%s%s'
             % (fmt, name, fmt_name, common)]
    if cor:
        args += ['--blockdev', 'driver=copy-on-read,file=%s,node-name=%s'
                 % (fmt_name, name)]
    return args


def translate_for_qsd(args):
    out, it = [], iter(args)
    for a in it:
        if a in ('-drive', '--drive'):
            out += drive_to_blockdev(next(it))
        else:
            out.append(a)
    return out


def run_daemon(args):
    """Run the tests' daemon with @args (translated for
    qemu-storage-daemon) until it exits by itself, as on a command-line
    error; assert that it did not crash; return (rc, stdout, stderr).
    Only for runs that leave no daemonized child holding the pipes."""
    prog = qblk_daemon_path()
    args = [str(a) for a in args]
    cmd = [prog] + (translate_for_qsd(args) if is_qsd(prog) else args)
    rc, out, err = run(cmd)
    assert_no_crash(cmd, rc, out, err)
    return rc, out, err




def short_tmpdir(prefix='qblk-t-'):
    """A fresh directory with a short path (unix socket paths are limited
    to about 107 bytes, pytest's tmp_path can be longer)."""
    return tempfile.mkdtemp(prefix=prefix, dir='/tmp')


def uri(name, sock=None, tcp=None):
    if tcp:
        return 'nbd://%s:%d/%s' % (tcp[0], tcp[1], name)
    return 'nbd+unix:///%s?socket=%s' % (name, sock)


class DaemonFailed(AssertionError):
    pass


class Daemon:
    """One daemon process. @ready is ('unix', path) or ('tcp', host, port):
    start() returns once that socket accepts a connection."""

    def __init__(self, binary, args, workdir, ready=None, env=None):
        self.binary = binary
        self.args = [str(a) for a in args]
        if is_qsd(binary):
            self.args = translate_for_qsd(self.args)
        self.workdir = workdir
        self.ready = ready
        self.env = env
        self.proc = None
        self.returncode = None
        self.errpath = os.path.join(workdir, 'daemon-%d.stderr'
                                    % id(self))

    @property
    def argv(self):
        return [self.binary] + self.args

    @property
    def stderr(self):
        try:
            with open(self.errpath, 'r', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def _fail(self, what):
        raise DaemonFailed('%s: %s\nstderr:\n%s' % (
            what, ' '.join(self.argv), self.stderr[-4000:]))

    def start(self):
        err = open(self.errpath, 'wb')
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=err, env=self.env,
                                     cwd=self.workdir)
        err.close()
        if self.ready:
            self.wait_ready()
        return self

    def _try_connect(self):
        if self.ready[0] == 'unix':
            return accepts(self.ready[1])
        return accepts((self.ready[1], self.ready[2]))

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Wait until the socket accepts connections; fail (with stderr)
        if the daemon dies first or the timeout expires."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                self._fail('daemon exited with %d before its socket was '
                           'ready' % self.proc.returncode)
            if self._try_connect():
                return
            time.sleep(0.02)
        self.kill()
        self._fail('daemon socket %r not ready after %d s'
                   % (self.ready, timeout))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        if not self.alive():
            self._fail('daemon died (rc %s)' % self.proc.returncode)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send @sig, require exit status 0 within @timeout seconds and
        no crash marker in stderr."""
        if self.proc is None or self.returncode is not None:
            return self.returncode
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            self._fail('daemon had already exited with %d'
                       % self.proc.returncode)
        self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._fail('daemon did not exit within %d s of signal %d'
                       % (timeout, sig))
        if self.returncode != 0:
            self._fail('daemon exited with %d after signal %d'
                       % (self.returncode, sig))
        self._check_no_crash()
        return self.returncode

    def _check_no_crash(self):
        """Fail if the exited daemon died of a signal or its stderr holds
        a crash marker (sanitizer report, assertion)."""
        if self.returncode < 0:
            self._fail('daemon killed by signal %d' % -self.returncode)
        for m in CRASH_MARKERS:
            if m in self.stderr:
                self._fail('crash marker %r in stderr' % m)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """For a daemon that must exit by itself (a start-up error, or the
        parent of --daemonize): wait up to @timeout s, killing it and
        failing if it is still running, fail on a crash; return its exit
        status."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._fail('daemon still running after %d s' % timeout)
        self._check_no_crash()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None and self.returncode is None:
            self.returncode = self.proc.returncode

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.kill()
            return False
        self.stop()
        return False


class DaemonFactory:
    """What the `daemon` fixture returns: makes started daemons that all
    live in one unique short temp dir, and cleans them up.

        d = daemon.nbd(['--blockdev', ...], export='d')  # unix socket
        d.uri  -> 'nbd+unix:///d?socket=...'
    """

    def __init__(self, binary):
        self.binary = binary
        self.dir = short_tmpdir()
        self.daemons = []
        self.count = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def new_socket(self):
        self.count += 1
        return self.path('nbd%d.sock' % self.count)

    def start(self, args, ready=None, binary=None):
        d = Daemon(binary or self.binary, args, self.dir, ready)
        self.daemons.append(d)
        return d.start()

    def run(self, args, timeout=STOP_TIMEOUT, binary=None):
        """Start a daemon that must exit by itself and wait for it
        (Daemon.wait_exit); return it with .returncode and .stderr."""
        d = self.start(args, None, binary)
        d.wait_exit(timeout)
        return d

    def nbd(self, blockdev_args, export=None, node=None, writable=True,
            tcp=False, binary=None, extra=()):
        """Start a daemon serving node @node (default: @export) as NBD
        export @export over a fresh unix socket, or TCP on 127.0.0.1."""
        node = node or export
        if tcp:
            port = free_tcp_port()
            srv = 'addr.type=inet,addr.host=127.0.0.1,addr.port=%d' % port
            ready = ('tcp', '127.0.0.1', port)
        else:
            sock = self.new_socket()
            srv = 'addr.type=unix,addr.path=%s' % sock
            ready = ('unix', sock)
        args = list(blockdev_args) + ['--nbd-server', srv]
        if export:
            args += ['--export', 'type=nbd,id=exp-%s,node-name=%s,name=%s,'
                     'writable=%s' % (export, node, export,
                                      'on' if writable else 'off')]
        args += list(extra)
        d = self.start(args, ready, binary)
        d.sock = ready[1] if ready[0] == 'unix' else None
        d.tcp = ready[1:] if ready[0] == 'tcp' else None
        d.uri = uri(export, d.sock, d.tcp) if export else None
        return d

    def cleanup(self, failed):
        """Stop every daemon still running (SIGTERM, exit 0 required) when
        the test passed; kill them all when it failed."""
        errors = []
        for d in self.daemons:
            if failed:
                d.kill()
                continue
            try:
                d.stop()
            except DaemonFailed as e:
                errors.append(str(e))
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            pytest.fail('\n'.join(errors))


def qcow2_blockdev(path, node, backing=None, read_only=False):
    """--blockdev arguments opening @path as qcow2 node @node (file node
    '<node>-file'); the backing chain follows the image header."""
    ro = ',read-only=on' if read_only else ''
    return ['--blockdev', 'driver=file,filename=%s,node-name=%s-file%s'
            % (path, node, ro),
            '--blockdev', 'driver=qcow2,file=%s-file,node-name=%s%s'
            % (node, node, ro)]


# ---------------------------------------------------------------------------
# Test images: a two-image qcow2 chain whose base mixes random data, zero
# clusters and unallocated ranges, made with QEMU's tools only.

def _run_ok(cmd):
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    assert p.returncode == 0, '%s -> rc %d\n%s%s' % (
        ' '.join(map(str, cmd)), p.returncode, p.stdout.decode()[-2000:],
        p.stderr.decode()[-2000:])
    return p.stdout.decode()


def segment_kind(i):
    """Layout of the base, per segment: random data, unallocated, random
    data, zero cluster (written with write -z over data), data clusters
    filled with zero bytes (written with write -P 0)."""
    return ('data', 'hole', 'data', 'zero', 'zdata')[i % 5]


def make_base(d, size, seg, name='base.qcow2', seed=1):
    """Create d/name (qcow2, 64 KiB clusters) of @size bytes laid out in
    @seg-byte segments by segment_kind(); returns its path. The raw bytes
    pass through d/name.raw, removed afterwards."""
    import random
    rnd = random.Random(seed)
    raw = os.path.join(d, name + '.raw')
    with open(raw, 'wb') as f:
        for i in range(size // seg):
            if segment_kind(i) in ('hole', 'zdata'):
                f.seek(seg, 1)
            else:
                f.write(rnd.randbytes(seg))
        f.truncate(size)
    img = os.path.join(d, name)
    _run_ok(['qemu-img', 'convert', '-q', '-f', 'raw', '-O', 'qcow2', raw,
             img])
    os.unlink(raw)
    zeros = []
    for i in range(size // seg):
        if segment_kind(i) == 'zero':
            zeros += ['-c', 'write -z %d %d' % (i * seg, seg)]
        elif segment_kind(i) == 'zdata':
            zeros += ['-c', 'write -P 0 %d %d' % (i * seg, seg)]
    if zeros:
        _run_ok(['qemu-io', '-f', 'qcow2'] + zeros + [img])
    return img


def top_writes(size, seg):
    """qemu-io commands for the top image: patterns that straddle segment
    and cluster boundaries, a zero write over base data, a discard."""
    cmds = ['write -P 0x5a %d %d' % (seg - 4096, 8192),
            'write -P 0x6b %d %d' % (5 * seg + 512, 3 * 4096),
            'write -z %d %d' % (8 * seg, seg // 2),
            'write -P 0x7c %d %d' % (size - 65536, 65536)]
    return cmds


def make_chain(d, size, seg, seed=1):
    """base.qcow2 (make_base) <- top.qcow2 with top_writes(); returns
    (base, top) paths. The backing file is recorded with its format."""
    base = make_base(d, size, seg, seed=seed)
    top = os.path.join(d, 'top.qcow2')
    _run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F',
             'qcow2', top])
    args = []
    for c in top_writes(size, seg):
        args += ['-c', c]
    _run_ok(['qemu-io', '-f', 'qcow2'] + args + [top])
    return base, top


def make_overlay(base, top):
    """An empty qcow2 @top backed by qcow2 @base (same size)."""
    _run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F',
             'qcow2', top])
    return top


def map_extents(text):
    """qemu-img map --output=json -> merged [(start, length, zero, data)]."""
    import json
    out = []
    for e in json.loads(text):
        key = (bool(e['zero']), bool(e['data']))
        if out and out[-1][2:] == key and out[-1][0] + out[-1][1] == \
                e['start']:
            out[-1] = (out[-1][0], out[-1][1] + e['length']) + key
        else:
            out.append((e['start'], e['length']) + key)
    return out

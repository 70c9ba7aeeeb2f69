"""The nbd client driver when the server goes away (block/nbd.c).

Real servers (qemu-nbd, nbdkit with its error filter) on UNIX sockets
are killed and restarted under a qblk daemon that has an nbd node open:
reconnect-delay (requests wait, then fail), background reconnect (a
paused stream resumes), open-timeout, x-connections, and the error
details a failed job reports. qemu-io is the guest (over qblk's own NBD
export) and qemu-img the judge of the images.
"""
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from daemon import require_qblk, short_tmpdir
from jobs_util import job_events, query_job
from qblk_testlib import MiB
from qblkpy.sockets import accepts
from qmp_client import start_qblk_with_qmp


class Server:
    """One NBD server on a fixed socket path that can die and return."""

    def __init__(self, argv_fn, sock):
        self.argv_fn = argv_fn
        self.sock = sock
        self.proc = None
        self.timer = None

    def start_later(self, delay):
        """start() from a timer thread in @delay seconds (kill() waits for
        it, so the fixture never tears down a server still starting)."""
        self.timer = threading.Timer(delay, self.start)
        self.timer.start()

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen(self.argv_fn(self.sock),
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not accepts(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail('NBD server did not come up on %s' % self.sock)
            time.sleep(0.02)
        return self

    def kill(self):
        if self.timer:
            self.timer.join()
            self.timer = None
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def servers():
    made = []
    tmpdir = short_tmpdir('qblk-nbdr-')

    def make(kind, *args):
        if not shutil.which(kind):
            pytest.skip('%s is not installed' % kind)
        sock = os.path.join(tmpdir, 's%d.sock' % len(made))
        if kind == 'qemu-nbd':
            fn = lambda s: ['qemu-nbd', '-k', s, '--persistent'] + list(args)
        else:
            fn = lambda s: ['nbdkit', '-f', '-U', s] + list(args)
        srv = Server(fn, sock)
        made.append(srv)
        return srv
    yield make
    for srv in made:
        srv.kill()
    shutil.rmtree(tmpdir, ignore_errors=True)


def make_raw(qemu_img, qemu_io, path, size='4M'):
    qemu_img.ok('create', '-f', 'raw', path, size)
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0xab 0 1M',
               '-c', 'write -P 0xcd 2M 64k', path)


def qemu_nbd_ro(servers, img, shared=1):
    """qemu-nbd read-only; with shared > 1 it advertises multi-conn."""
    return servers('qemu-nbd', '-r', '-e', str(shared), '-f', 'raw', '-x',
                   'exp', img).start()


def nbd_node(daemon, sock, opts=''):
    """qblk with QMP serving raw-over-nbd node d as export d."""
    nsock = daemon.new_socket()
    args = ['--blockdev', 'driver=nbd,node-name=n,server.type=unix,'
            'server.path=%s,export=exp,read-only=on%s' % (sock, opts),
            '--blockdev', 'driver=raw,file=n,node-name=d,read-only=on',
            '--nbd-server', 'addr.type=unix,addr.path=%s' % nsock,
            '--export', 'type=nbd,id=e,node-name=d,name=d,writable=off']
    d, qmp = start_qblk_with_qmp(daemon, args)
    return d, qmp, 'nbd+unix:///d?socket=%s' % nsock


def guest_read(uri, *cmds):
    argv = ['qemu-io', '-r', '-f', 'raw']
    for c in cmds:
        argv += ['-c', c]
    p = subprocess.run(argv + [uri], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout + p.stderr


def test_reconnect_read_waits_for_server(servers, daemon, tmp, qemu_img,
                                         qemu_io):
    require_qblk('reconnect-delay')
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    srv = qemu_nbd_ro(servers, img)
    d, qmp, uri = nbd_node(daemon, srv.sock, ',reconnect-delay=5')
    rc, out = guest_read(uri, 'read -P 0xab 0 64k')
    assert rc == 0 and 'verification failed' not in out, out
    srv.kill()
    srv.start_later(1.0)
    t0 = time.monotonic()
    rc, out = guest_read(uri, 'read -P 0xab 64k 64k', 'read -P 0xcd 2M 64k')
    assert rc == 0 and 'verification failed' not in out, out
    assert 'failed' not in out, out
    assert time.monotonic() - t0 < 20
    qmp.close()
    d.stop()


def test_reconnect_delay_expires(servers, daemon, tmp, qemu_img, qemu_io):
    require_qblk('reconnect-delay')
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    srv = qemu_nbd_ro(servers, img)
    d, qmp, uri = nbd_node(daemon, srv.sock, ',reconnect-delay=1')
    srv.kill()
    t0 = time.monotonic()
    rc, out = guest_read(uri, 'read -P 0xab 0 64k')
    took = time.monotonic() - t0
    assert 'failed' in out, out
    assert 0.8 <= took < 20, took
    # later requests fail at once; qblk and QMP stay alive
    rc, out = guest_read(uri, 'read 0 4k')
    assert 'failed' in out, out
    assert qmp.ok('query-named-block-nodes') is not None
    d.assert_alive()
    # the server returns: the background reconnect makes reads work again
    srv.start()
    deadline = time.monotonic() + 15
    while True:
        rc, out = guest_read(uri, 'read -P 0xcd 2M 64k')
        if rc == 0 and 'failed' not in out:
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.3)
    qmp.close()
    d.stop()


def stream_setup(servers, daemon, tmp, qemu_img, qemu_io, size=16):
    """A raw base served read-only by qemu-nbd, a qcow2 top over it served
    by qblk as drive0 with QMP. Returns (srv, d, qmp, top, base)."""
    base = str(tmp / 'base.raw')
    qemu_img.ok('create', '-f', 'raw', base, '%dM' % size)
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0x5c 0 %dM' % size, base)
    srv = qemu_nbd_ro(servers, base)
    top = str(tmp / 'top.qcow2')
    qemu_img.ok('create', '-f', 'qcow2', '-b',
                'nbd+unix:///exp?socket=%s' % srv.sock, '-F', 'raw', top)
    d, qmp = start_qblk_with_qmp(daemon, ['--backing-protocols', 'file,nbd,http,https',
                                          '-drive', 'file=%s,format=qcow2,'
                                          'id=drive0' % top])
    return srv, d, qmp, top, base


def test_stream_pauses_and_resumes_after_server_returns(
        servers, daemon, tmp, qemu_img, qemu_io):
    require_qblk('block-stream with on-error=stop over nbd')
    srv, d, qmp, top, base = stream_setup(servers, daemon, tmp, qemu_img,
                                          qemu_io)
    qmp.ok('block-stream', device='drive0', speed=4 * MiB,
           **{'on-error': 'stop'})
    time.sleep(1.0)
    srv.kill()
    ev = qmp.event_wait('BLOCK_JOB_ERROR', timeout=20)
    assert ev['data']['device'] == 'drive0'
    deadline = time.monotonic() + 10
    while not (query_job(qmp, 'drive0') or {}).get('paused'):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert query_job(qmp, 'drive0')['io-status'] == 'failed'
    srv.start()
    time.sleep(1.5)
    qmp.ok('block-job-set-speed', device='drive0', speed=0)
    for _ in range(10):
        qmp.events.clear()
        qmp.ok('block-job-resume', device='drive0')
        seq, data = job_events(qmp, 'drive0', timeout=30, until='concluded')
        if 'BLOCK_JOB_COMPLETED' in seq:
            break
        time.sleep(1.0)
    assert 'BLOCK_JOB_COMPLETED' in seq, seq
    assert 'error' not in data, data
    qmp.close()
    d.stop()
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', 'raw', top, base)
    assert rc == 0, out + err
    qemu_img.ok('check', top)
    info = json.loads(qemu_img.ok('info', '--output=json', top))
    assert 'backing-filename' not in info


def test_stream_report_names_server(servers, daemon, tmp, qemu_img,
                                    qemu_io):
    require_qblk('block-stream error details over nbd')
    srv, d, qmp, top, base = stream_setup(servers, daemon, tmp, qemu_img,
                                          qemu_io)
    qmp.ok('block-stream', device='drive0', speed=4 * MiB)
    time.sleep(1.0)
    srv.kill()
    seq, data = job_events(qmp, 'drive0', timeout=30)
    assert 'BLOCK_JOB_COMPLETED' in seq, seq
    assert srv.sock in data.get('error', ''), data
    # Many copies were in flight when the server went away: one error
    # event all the same, as QEMU's single copy in flight gives.
    assert seq.count('BLOCK_JOB_ERROR') == 1, seq
    qmp.close()
    d.stop()
    srv.start()
    qemu_img.ok('check', top)


def test_error_filter_reads_fail_cleanly(servers, daemon, tmp, qemu_img,
                                         qemu_io):
    require_qblk('nbd error replies')
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    srv = servers('nbdkit', '--filter=error', 'file', img, 'error=EIO',
                  'error-pread-rate=1').start()
    d, qmp, uri = nbd_node(daemon, srv.sock)
    rc, out = guest_read(uri, 'read 0 64k')
    assert 'failed' in out, out
    d.assert_alive()
    assert qmp.ok('query-named-block-nodes') is not None
    qmp.close()
    d.stop()
    # a stream from the same failing server reports it, naming the server
    top = str(tmp / 'top.qcow2')
    qemu_img.ok('create', '-f', 'qcow2', '-b',
                'nbd+unix:///?socket=%s' % srv.sock, '-F', 'raw', top)
    d, qmp = start_qblk_with_qmp(daemon, ['--backing-protocols', 'file,nbd,http,https',
                                          '-drive', 'file=%s,format=qcow2,'
                                          'id=drive0' % top])
    qmp.ok('block-stream', device='drive0')
    seq, data = job_events(qmp, 'drive0', timeout=30)
    assert 'BLOCK_JOB_COMPLETED' in seq, seq
    assert srv.sock in data.get('error', ''), data
    assert 'READ' in data['error'], data
    qmp.close()
    d.stop()


def _sockets(pid):
    fd_dir = '/proc/%d/fd' % pid
    n = 0
    for fd in os.listdir(fd_dir):
        try:
            n += os.readlink(os.path.join(fd_dir, fd)).startswith('socket:')
        except OSError:
            pass
    return n


def _add_nbd(qmp, sock, name, **extra):
    args = {'driver': 'nbd', 'node-name': name, 'read-only': True,
            'server': {'type': 'unix', 'path': sock}, 'export': 'exp'}
    args.update(extra)
    return qmp.cmd('blockdev-add', args=args, timeout=30)


def test_x_connections(servers, daemon, tmp, qemu_img, qemu_io):
    require_qblk('x-connections')
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    ro = qemu_nbd_ro(servers, img, 8)    # advertises multi-conn
    d, qmp = start_qblk_with_qmp(daemon, [])
    pid = d.proc.pid
    before = _sockets(pid)
    r = _add_nbd(qmp, ro.sock, 'n4', **{'x-connections': 4})
    assert 'return' in r, r
    assert _sockets(pid) - before == 4
    nsock = daemon.new_socket()
    qmp.ok('blockdev-add', args={'driver': 'raw', 'file': 'n4',
                                 'node-name': 'd4', 'read-only': True})
    qmp.ok('nbd-server-start',
           addr={'type': 'unix', 'data': {'path': nsock}})
    qmp.ok('block-export-add', args={'id': 'e4', 'type': 'nbd',
                                     'node-name': 'd4'})
    uri = 'nbd+unix:///d4?socket=%s' % nsock
    cmds = ['aio_read -P 0xab %dk 64k' % (64 * i) for i in range(16)]
    rc, out = guest_read(uri, *(cmds + ['aio_flush',
                                        'read -P 0xcd 2M 64k',
                                        'read -P 0 1M 1M']))
    assert rc == 0 and 'failed' not in out, out
    # qemu-nbd without --shared does not advertise multi-conn: one socket
    rw = qemu_nbd_ro(servers, img)
    before = _sockets(pid)
    r = _add_nbd(qmp, rw.sock, 'n1', **{'x-connections': 4})
    assert 'return' in r, r
    assert _sockets(pid) - before == 1
    r = _add_nbd(qmp, ro.sock, 'bad', **{'x-connections': 17})
    assert 'x-connections must be between 1 and 16' in \
        r['error']['desc'], r
    qmp.close()
    d.stop()


def test_open_timeout(servers, daemon, tmp, qemu_img, qemu_io):
    require_qblk('open-timeout')
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    srv = servers('qemu-nbd', '-r', '-f', 'raw', '-x', 'exp', img)
    d, qmp = start_qblk_with_qmp(daemon, [])
    r = _add_nbd(qmp, srv.sock, 'none')
    assert srv.sock in r['error']['desc'], r
    srv.start_later(1.0)
    t0 = time.monotonic()
    r = _add_nbd(qmp, srv.sock, 'n', **{'open-timeout': 10})
    assert 'return' in r, r
    assert time.monotonic() - t0 >= 0.5
    nodes = [n['node-name'] for n in qmp.ok('query-named-block-nodes')]
    assert 'n' in nodes
    qmp.close()
    d.stop()

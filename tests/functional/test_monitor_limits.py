"""The monitors' front doors: socket permissions and input bounds.

Sockets: a unix socket made for a QMP/HMP monitor (--chardev socket,
path=...; the -qmp unix:... short form) or for the NBD server is
created owner-only (0600) whatever the umask; the qblk chardev option
x-mode=MODE (octal) chooses another mode. The daemon is started with
umask 0, so a socket left to the umask would come out 0777.

Bounds: input that would need unbounded memory is refused with QEMU's
error texts and a bounded RSS (VmRSS of the daemon before and after,
growth < RSS_BOUND), and the monitor works afterwards:
  - a 100 MiB JSON string streamed in 1 MiB chunks (over the streamer's
    64 MiB token limit): "JSON token size limit exceeded";
  - 100000 '[' (test_qmp_robustness.py covers 2000 levels; this is the
    memory side): "JSON nesting depth limit exceeded";
  - a 32 MiB HMP line (readline keeps a fixed-size line buffer);
  - NBD clients declaring 4 GiB writes (test_nbd_hostile_client.py
    checks one reply; here many connections and the memory they cost).
"""
import os
import socket
import stat
import struct
import time

import pytest

from daemon import qcow2_blockdev, require_qblk
from nbd_client import CMD_WRITE, NbdClient, NbdClosed
from qmp_client import QMPClient, start_qblk_with_qmp
from qblk_testlib import MiB

RSS_BOUND = 200 * MiB
TIMEOUT = 60


def rss(d):
    """The daemon's resident set size in bytes (/proc/PID/status)."""
    with open('/proc/%d/status' % d.proc.pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no VmRSS for pid %d' % d.proc.pid)


def start_umask0(daemon, args, ready):
    """Start qblk with umask 0 (restored afterwards)."""
    old = os.umask(0)
    try:
        return daemon.start(args, ready)
    finally:
        os.umask(old)


def sock_mode(path):
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode), path
    return stat.S_IMODE(st.st_mode)


# ---- socket permissions


@pytest.mark.parametrize('opt, mode', [('', 0o600), (',x-mode=0660', 0o660),
                                       (',x-mode=0777', 0o777)],
                         ids=['default', '0660', '0777'])
def test_chardev_socket_mode(daemon, opt, mode):
    require_qblk('the x-mode chardev option')
    sock = daemon.path('mon.sock')
    start_umask0(daemon, ['--chardev', 'socket,id=m0,path=%s,server=on,'
                          'wait=off%s' % (sock, opt),
                          '--monitor', 'chardev=m0'], ('unix', sock))
    assert sock_mode(sock) == mode
    with QMPClient(sock) as qmp:
        qmp.negotiate()
        assert qmp.ok('query-status')['status'] == 'running'


def test_qmp_and_hmp_short_forms_are_owner_only(daemon):
    require_qblk('socket modes')
    qsock, hsock = daemon.path('q.sock'), daemon.path('h.sock')
    start_umask0(daemon, ['-qmp', 'unix:%s,server=on,wait=off' % qsock,
                          '-monitor', 'unix:%s,server=on,wait=off,'
                          'x-mode=0640' % hsock], ('unix', qsock))
    assert sock_mode(qsock) == 0o600
    assert sock_mode(hsock) == 0o640


def test_nbd_server_unix_socket_is_owner_only(daemon, qemu_img):
    require_qblk('socket modes')
    img = daemon.path('a.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, MiB)
    nsock = daemon.path('nbd.sock')
    old = os.umask(0)
    try:
        d, qmp = start_qblk_with_qmp(daemon, qcow2_blockdev(img, 'a') + [
            '--nbd-server', 'addr.type=unix,addr.path=%s' % nsock])
    finally:
        os.umask(old)
    assert sock_mode(nsock) == 0o600
    assert sock_mode(d.qmp_sock) == 0o600
    qmp.ok('nbd-server-stop')
    qsock2 = daemon.path('nbd2.sock')
    qmp.ok('nbd-server-start', addr={'type': 'unix', 'data': {'path': qsock2}})
    assert sock_mode(qsock2) == 0o600
    qmp.close()


@pytest.mark.parametrize('bad', ['0999', 'rw', '01777', ''])
def test_bad_x_mode_is_refused(daemon, bad):
    require_qblk('the x-mode chardev option')
    sock = daemon.path('bad.sock')
    d = daemon.run(['--chardev', 'socket,id=m0,path=%s,server=on,wait=off,'
                    'x-mode=%s' % (sock, bad), '--monitor', 'chardev=m0'])
    assert d.returncode != 0
    assert "Parameter 'x-mode' expects an octal file mode" in d.stderr, \
        d.stderr
    assert not os.path.exists(sock)


def test_x_mode_needs_a_path(daemon):
    require_qblk('the x-mode chardev option')
    d = daemon.run(['--chardev', 'socket,id=m0,host=127.0.0.1,port=0,'
                    'server=on,wait=off,x-mode=0600',
                    '--monitor', 'chardev=m0'])
    assert d.returncode != 0
    assert 'x-mode is only valid with path=' in d.stderr, d.stderr


# ---- QMP input bounds


@pytest.fixture
def qmp_daemon(daemon):
    require_qblk('monitor input bounds')
    d, qmp = start_qblk_with_qmp(daemon, [])
    yield d, qmp
    qmp.close()


def send_slowly(qmp, d, data, chunk=MiB):
    """Send @data in @chunk pieces, asserting the daemon's RSS stays
    within RSS_BOUND of its value before; returns the peak growth."""
    before = rss(d)
    peak = 0
    for off in range(0, len(data), chunk):
        qmp.sock.sendall(data[off:off + chunk])
        if off % (8 * chunk) == 0:
            peak = max(peak, rss(d) - before)
            assert peak < RSS_BOUND, 'RSS grew by %d MiB' % (peak // MiB)
    return peak


def error_replies(qmp, timeout=TIMEOUT):
    """Read replies until a query-status sync reply (id 'sync')
    arrives; return the error descs before it."""
    qmp.request('query-status', id='sync')
    descs = []
    while True:
        msg = qmp.recv(timeout)
        if msg.get('id') == 'sync':
            assert msg['return']['status'] == 'running', msg
            return descs
        if 'error' in msg:
            descs.append(msg['error']['desc'])


def test_qmp_100mib_string_is_refused_with_bounded_memory(qmp_daemon):
    d, qmp = qmp_daemon
    before = rss(d)
    body = b'{"execute": "query-status", "arguments": {"x": "'
    send_slowly(qmp, d, body + b'y' * (100 * MiB) + b'"}}\n')
    descs = error_replies(qmp)
    assert descs and descs[0] == 'JSON token size limit exceeded', descs
    assert all(s.startswith('JSON') for s in descs), descs[:5]
    grown = rss(d) - before
    assert grown < RSS_BOUND, 'RSS grew by %d MiB' % (grown // MiB)
    assert qmp.ok('query-status')['status'] == 'running'
    d.assert_alive()


def test_qmp_100000_brackets_refused_with_bounded_memory(qmp_daemon):
    d, qmp = qmp_daemon
    before = rss(d)
    # As QEMU: each 1025th level fails the value and counting starts
    # again; the byte 0xff (a lexical error) then resets what is left.
    send_slowly(qmp, d, b'[' * 100000 + b'\xff\n', chunk=4096)
    descs = error_replies(qmp)
    deep = descs.count('JSON nesting depth limit exceeded')
    assert descs[0] == 'JSON nesting depth limit exceeded', descs[:5]
    assert 90 <= deep <= 100 and len(descs) <= deep + 2, descs[-5:]
    assert descs[-1].startswith('JSON parse error'), descs[-5:]
    assert rss(d) - before < RSS_BOUND
    assert qmp.ok('query-status')['status'] == 'running'


# ---- HMP


def hmp_read_until(s, marker, timeout=TIMEOUT):
    """Bytes from HMP socket @s up to and including @marker."""
    buf = b''
    deadline = time.monotonic() + timeout
    while marker not in buf:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        if time.monotonic() > deadline:
            raise TimeoutError('no %r in %r' % (marker, buf[-200:]))
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        assert chunk, 'HMP connection closed: %r' % buf[-200:]
        buf += chunk
    return buf


def test_hmp_enormous_line_is_bounded(daemon):
    require_qblk('HMP input bounds')
    sock = daemon.path('hmp.sock')
    d = daemon.start(['-monitor', 'unix:%s,server=on,wait=off' % sock],
                     ('unix', sock))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    try:
        hmp_read_until(s, b'(qblk) ')
        before = rss(d)
        chunk = b'x' * MiB
        for i in range(32):
            s.sendall(chunk)
            # drain any echo so that the daemon never blocks on us
            s.setblocking(False)
            try:
                while s.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass
            s.setblocking(True)
        s.sendall(b'\r')
        out = hmp_read_until(s, b'(qblk) ')
        assert b'unknown command' in out, out[-300:]
        assert rss(d) - before < RSS_BOUND
        s.sendall(b'info status\r')
        out = hmp_read_until(s, b'(qblk) ')
        assert b'VM status: running' in out, out[-300:]
    finally:
        s.close()
    d.assert_alive()


# ---- NBD


def test_nbd_many_huge_write_headers_bounded(daemon, qemu_img):
    """32 clients each declare a 4 GiB write (and send 1 MiB of it): each
    gets an error or a closed connection, memory stays bounded and a
    new client still reads and writes."""
    require_qblk('NBD input bounds')
    img = daemon.path('w.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, 4 * MiB)
    d = daemon.nbd(qcow2_blockdev(img, 'w'), export='w')
    before = rss(d)
    clients = []
    for i in range(32):
        c = NbdClient.unix(d.sock)
        c.connect('w')
        c.send_request(CMD_WRITE, 0, 0xffffffff)
        try:
            c.sock.sendall(b'\0' * MiB)
        except OSError:
            pass
        clients.append(c)
    time.sleep(0.5)
    grown = rss(d) - before
    for c in clients:
        c.sock.settimeout(10)
        try:
            r = c.read_reply({})
            assert r.error, 'a 4 GiB write succeeded'
        except (NbdClosed, OSError, struct.error):
            pass
        c.close()
    assert grown < RSS_BOUND, 'RSS grew by %d MiB' % (grown // MiB)
    d.assert_alive()
    c = NbdClient.unix(d.sock)
    c.connect('w')
    c.write(0, b'\x5a' * 65536)
    assert c.read(0, 65536) == b'\x5a' * 65536
    c.disconnect()

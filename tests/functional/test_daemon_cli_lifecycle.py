"""The daemon's life cycle, as qemu-storage-daemon's: --version and
--help exit 0; SIGTERM and SIGINT flush the images (QEMU's tools see the
data, even with cache=unsafe) and exit 0, also with a client connected;
--pidfile names the daemon, is locked while it runs and is removed at
exit; --daemonize returns only once the export serves; -drive names its
node after its id or node-name, and a read-only drive refuses
copy-on-read with QEMU's warning; a chardev socket listens at once.

Daemons come from the `daemon` fixture (daemon.py), which translates
-drive for QBLK_DAEMON=qemu-storage-daemon; only qblk-specific checks
skip or are left out against QEMU.
"""
import os
import signal
import socket
import time

import pytest

from daemon import (is_qsd, qblk_daemon_path, qcow2_blockdev,
                    run_daemon, uri)
from nbd_client import NbdClient
from qblk_testlib import MiB

# Options both daemons must list in --help
HELP_OPTIONS = ('--blockdev', '--chardev', '--monitor', '--nbd-server',
                '--export', '--pidfile', '--daemonize', '--trace',
                '--version', '--help')


@pytest.fixture
def img(daemon, qemu_img):
    """An empty 8 MiB qcow2 image in the daemon's directory."""
    p = daemon.path('img.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', p, 8 * MiB)
    return p


def _wait_until(cond, timeout=10):
    """Poll @cond until it is true or @timeout s pass; return its value."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def _pid_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _read_pid(pidfile):
    with open(pidfile) as f:
        return int(f.read().strip())


def test_version_names_the_program():
    prog = qblk_daemon_path()
    rc, out, err = run_daemon(['--version'])
    assert rc == 0, err
    assert out.startswith(os.path.basename(prog) + ' version '), out
    if not is_qsd(prog):
        assert 'qemu-storage-daemon 7.2' in out, out


@pytest.mark.parametrize('opt', ['-h', '--help'])
def test_help_exits_0_and_lists_options(opt):
    rc, out, err = run_daemon([opt])
    assert rc == 0, err
    wanted = HELP_OPTIONS
    if not is_qsd(qblk_daemon_path()):
        wanted += ('-drive',)
    for o in wanted:
        assert o in out, '%s missing from %s' % (o, opt)


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT],
                         ids=['SIGTERM', 'SIGINT'])
def test_signal_flushes_and_exits_0_leaving_clean_image(daemon, img, sig,
                                                        qemu_io, qemu_img):
    d = daemon.nbd(['-drive', 'file=%s,format=qcow2,id=drv,cache=unsafe'
                    % img], export='drv')
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0x61 0 1M',
               '-c', 'write -P 0x62 3M 12345', '-c', 'write -z 5M 64k',
               d.uri)
    d.stop(sig)                      # exit status 0 required
    rc, out, err = qemu_img('check', '-f', 'qcow2', img)
    assert rc == 0, out + err
    rc, out, err = qemu_io('-f', 'qcow2', '-c', 'read -P 0x61 0 1M',
                           '-c', 'read -P 0x62 3M 12345',
                           '-c', 'read -P 0 5M 64k', img)
    assert rc == 0 and 'fail' not in (out + err).lower(), out + err


def test_signal_with_client_connected_exits_0(daemon, img):
    d = daemon.nbd(qcow2_blockdev(img, 'd'), export='d')
    c = NbdClient.unix(d.sock)
    c.connect('d')
    c.write(0, b'\x71' * 65536)
    d.stop()
    c.close()


def test_pidfile_names_the_daemon_and_is_removed_at_exit(daemon, img):
    pidfile = daemon.path('qblk.pid')
    d = daemon.nbd(qcow2_blockdev(img, 'd'), export='d',
                   extra=['--pidfile', pidfile])
    assert _read_pid(pidfile) == d.proc.pid
    d.stop()
    assert not os.path.exists(pidfile), 'pid file not removed at exit'


def test_daemonize_returns_when_export_is_ready(daemon, img, qemu_img,
                                               qemu_io):
    sock, pidfile = daemon.new_socket(), daemon.path('qblk.pid')
    parent = daemon.run(['--daemonize', '--pidfile', pidfile,
                         '-drive', 'file=%s,format=qcow2,id=drive0' % img,
                         '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
                         '--export',
                         'type=nbd,id=e,node-name=drive0,writable=on'])
    assert parent.returncode == 0, parent.stderr
    pid = _read_pid(pidfile)
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            assert b'--daemonize' in f.read()
        # Ready on return: no waiting loop before the first request.
        qemu_io.ok('-f', 'raw', '-c', 'write -P 0x5c 0 64k',
                   uri('drive0', sock))
        # A second daemon on the same pid file fails: the file is locked.
        rc, out, err = run_daemon(['--pidfile', pidfile])
        assert rc == 1 and 'Cannot lock pid file' in err, err
        assert _read_pid(pidfile) == pid
        os.kill(pid, signal.SIGTERM)
        assert _wait_until(lambda: _pid_gone(pid)), \
            'daemonized daemon ignored SIGTERM'
    finally:
        if not _pid_gone(pid):
            os.kill(pid, signal.SIGKILL)
    assert not os.path.exists(pidfile), 'pid file not removed at exit'
    if not is_qsd(daemon.binary):    # QEMU leaves its socket behind
        assert not os.path.exists(sock), 'NBD socket not removed at exit'
    rc, out, err = qemu_img('check', '-f', 'qcow2', img)
    assert rc == 0, out + err
    rc, out, err = qemu_io('-f', 'qcow2', '-c', 'read -P 0x5c 0 64k', img)
    assert rc == 0 and 'fail' not in (out + err).lower(), out + err


def test_daemonize_failure_exits_1_naming_the_file(daemon):
    missing = daemon.path('missing.qcow2')
    rc, out, err = run_daemon(['--daemonize', '-drive', 'file=%s' % missing])
    assert rc == 1
    assert ("Could not open '%s': No such file or directory" % missing
            in err), err


def test_drive_node_named_by_id_and_node_name(daemon, qemu_img, nbdinfo):
    a, b = daemon.path('a.raw'), daemon.path('b.raw')
    qemu_img.ok('create', '-q', '-f', 'raw', a, 1 * MiB)
    qemu_img.ok('create', '-q', '-f', 'raw', b, 2 * MiB)
    d = daemon.nbd(['-drive', 'file=%s,format=raw,id=one' % a,
                    '--drive', 'file=%s,format=raw,id=two,node-name=n2' % b],
                   export='one', extra=['--export',
                                        'type=nbd,id=e2,node-name=n2'])
    rc, out, err = nbdinfo('--size', d.uri)
    assert rc == 0 and out.strip() == str(1 * MiB), out + err
    rc, out, err = nbdinfo('--size', uri('n2', d.sock))
    assert rc == 0 and out.strip() == str(2 * MiB), out + err


def test_chardev_socket_listens_without_waiting(daemon):
    sock = daemon.path('chr.sock')
    d = daemon.start(['--chardev',
                      'socket,id=c0,path=%s,server=on,wait=off' % sock],
                     ready=('unix', sock))
    # One client at a time: once the first is accepted, a second one
    # waits in the backlog; hang-ups free the chardev, the daemon stays up.
    for _ in range(3):
        s1 = socket.socket(socket.AF_UNIX)
        s1.connect(sock)
        time.sleep(0.1)
        s2 = socket.socket(socket.AF_UNIX)
        s2.connect(sock)
        s1.close()
        s2.close()
        time.sleep(0.1)
    d.assert_alive()

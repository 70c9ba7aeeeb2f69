"""The daemon's life cycle: --daemonize returns only once the export
serves, --pidfile is locked while running and removed at exit, SIGTERM
and SIGINT flush the images (QEMU's tools see the data) and exit 0, and
-drive names its node after its id, with read-only drives refusing
copy-on-read with QEMU's warning.
"""
import os
import signal
import time

from daemon import is_qsd, qblk_daemon_path, uri
from qblk_testlib import MiB, run

import pytest


@pytest.fixture(autouse=True)
def _qblk_only():
    if is_qsd(qblk_daemon_path()):
        pytest.skip('qblk-specific options (-drive, messages)')


def _wait_gone(path, timeout=10):
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not os.path.exists(path)


def test_daemonize_returns_when_ready(daemon, qemu_img, qemu_io):
    img = daemon.path('a.qcow2')
    sock = daemon.path('d.sock')
    pidfile = daemon.path('d.pid')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, 4 * MiB)
    cmd = [qblk_daemon_path(), '--daemonize', '--pidfile', pidfile,
           '-drive', 'file=%s,format=qcow2,id=drive0' % img,
           '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
           '--export', 'type=nbd,id=e,node-name=drive0,writable=on']
    rc, out, err = run(cmd)
    assert rc == 0, err
    # No waiting: the parent exited only after the child was ready.
    with open(pidfile) as f:
        pid = int(f.read())
    try:
        rc, out, err = qemu_io('-f', 'raw', uri('drive0', sock),
                               '-c', 'write -P 0x5c 0 64k')
        assert rc == 0, out + err
        # A second daemon on the same pid file fails: the file is locked.
        rc, out, err = run([qblk_daemon_path(), '--pidfile', pidfile])
        assert rc == 1 and 'Cannot lock pid file' in err, err
        assert os.path.exists(pidfile)
    finally:
        os.kill(pid, signal.SIGTERM)
    assert _wait_gone(pidfile), 'pid file not removed at exit'
    assert _wait_gone(sock), 'NBD socket not removed at exit'
    rc, out, err = qemu_io('-f', 'qcow2', '-c', 'read -P 0x5c 0 64k', img)
    assert rc == 0 and 'Pattern verification failed' not in out, out + err


def test_daemonize_failure_exits_1(daemon):
    rc, out, err = run([qblk_daemon_path(), '--daemonize', '-drive',
                        'file=%s' % daemon.path('missing.qcow2')])
    assert rc == 1
    assert 'Could not open' in err, err


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_signal_flushes_and_exits_0(daemon, qemu_img, qemu_io, sig):
    img = daemon.path('b.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, 4 * MiB)
    d = daemon.nbd(['-drive', 'file=%s,format=qcow2,id=drv,cache=unsafe'
                    % img], export='drv')
    rc, out, err = qemu_io('-f', 'raw', d.uri, '-c', 'write -P 0x3a 1M 128k')
    assert rc == 0, out + err
    d.stop(sig)                      # exit status 0 required
    rc, out, err = qemu_img('check', img)
    assert rc == 0, out + err
    rc, out, err = qemu_io('-f', 'qcow2', '-c', 'read -P 0x3a 1M 128k', img)
    assert 'Pattern verification failed' not in out, out + err


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


def test_readonly_drive_disables_copy_on_read(daemon, qemu_img, nbdinfo):
    base, top = daemon.path('base.qcow2'), daemon.path('top.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', base, 1 * MiB)
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2',
                top)
    d = daemon.nbd(['-drive', 'file=%s,format=qcow2,id=ro,readonly=on,'
                    'copy-on-read=on' % top], export='ro', writable=False)
    assert ('qblk: warning: disabling copy-on-read on read-only drive'
            in d.stderr), d.stderr
    rc, out, err = nbdinfo('--size', d.uri)
    assert rc == 0, out + err


def test_chardev_socket_listens_without_waiting(daemon):
    import socket
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

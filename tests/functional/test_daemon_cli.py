"""The qblk daemon's command line (qemu-storage-daemon's): errors exit 1
with a message naming the culprit, signals shut it down cleanly, --pidfile
and --daemonize behave like QEMU's, --help/--version exit 0.
"""
import os
import signal
import subprocess
import time

import pytest

from daemon import Daemon, qcow2_blockdev

TIMEOUT = 20


def run_daemon(daemon, args):
    """Run the daemon to completion (it is expected to exit by itself);
    return (rc, stdout, stderr)."""
    p = subprocess.run([daemon.binary] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=TIMEOUT,
                       cwd=daemon.dir)
    out, err = p.stdout.decode(errors='replace'), \
        p.stderr.decode(errors='replace')
    assert p.returncode >= 0, 'killed by signal %d\n%s' % (-p.returncode,
                                                          err)
    return p.returncode, out, err


@pytest.fixture
def img(daemon, qemu_img):
    p = daemon.path('img.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', p, '8M')
    return p


def test_unknown_option_exits_1_naming_it(daemon):
    rc, out, err = run_daemon(daemon, ['--no-such-option'])
    assert rc == 1
    assert 'no-such-option' in err


def test_unknown_option_after_valid_ones_exits_1(daemon, img):
    rc, out, err = run_daemon(daemon, qcow2_blockdev(img, 'd') +
                              ['--frobnicate=3'])
    assert rc == 1
    assert 'frobnicate' in err


def test_missing_option_argument_exits_1(daemon):
    rc, out, err = run_daemon(daemon, ['--blockdev'])
    assert rc == 1
    assert 'blockdev' in err


def test_blockdev_with_unknown_driver_exits_1(daemon):
    rc, out, err = run_daemon(daemon, ['--blockdev',
                                       'driver=nosuchdrv,node-name=x'])
    assert rc == 1
    assert 'nosuchdrv' in err


def test_malformed_blockdev_keyval_exits_1(daemon):
    rc, out, err = run_daemon(daemon, ['--blockdev', 'driver=file,,=,='])
    assert rc == 1
    assert err.strip()


def test_blockdev_of_missing_file_names_the_file(daemon):
    missing = daemon.path('no-such.qcow2')
    rc, out, err = run_daemon(daemon, qcow2_blockdev(missing, 'd'))
    assert rc == 1
    assert 'no-such.qcow2' in err
    assert 'No such file or directory' in err


def test_export_of_unknown_node_exits_1_naming_it(daemon, img):
    sock = daemon.new_socket()
    rc, out, err = run_daemon(daemon, qcow2_blockdev(img, 'd') + [
        '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
        '--export', 'type=nbd,id=e,node-name=ghost,name=ghost'])
    assert rc == 1
    assert 'ghost' in err


def test_export_without_nbd_server_exits_1(daemon, img):
    rc, out, err = run_daemon(daemon, qcow2_blockdev(img, 'd') + [
        '--export', 'type=nbd,id=e,node-name=d,name=d'])
    assert rc == 1
    assert err.strip()


def test_duplicate_node_name_exits_1(daemon, img):
    rc, out, err = run_daemon(daemon, qcow2_blockdev(img, 'd') +
                              ['--blockdev', 'driver=file,filename=%s,'
                               'node-name=d' % img])
    assert rc == 1
    assert "'d'" in err or ' d ' in err or 'd:' in err or '"d"' in err


def test_help_exits_0_and_lists_options(daemon):
    rc, out, err = run_daemon(daemon, ['--help'])
    assert rc == 0
    for opt in ('--blockdev', '--nbd-server', '--export', '--pidfile',
                '--daemonize'):
        assert opt in out, '%s missing from --help' % opt


def test_version_exits_0(daemon):
    rc, out, err = run_daemon(daemon, ['--version'])
    assert rc == 0
    assert 'version' in out.lower()


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT],
                         ids=['SIGTERM', 'SIGINT'])
def test_signal_flushes_and_exits_0_leaving_clean_image(daemon, img, sig,
                                                        qemu_io, qemu_img):
    d = daemon.nbd(qcow2_blockdev(img, 'd'), export='d')
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0x61 0 1M',
               '-c', 'write -P 0x62 3M 12345', '-c', 'write -z 5M 64k',
               d.uri)
    d.stop(sig)
    rc, out, err = qemu_img('check', '-f', 'qcow2', img)
    assert rc == 0, out + err
    rc, out, err = qemu_io('-f', 'qcow2', '-c', 'read -P 0x61 0 1M',
                           '-c', 'read -P 0x62 3M 12345', img)
    assert rc == 0 and 'fail' not in (out + err).lower(), out + err


def test_signal_with_client_connected_exits_0(daemon, img):
    from nbd_client import NbdClient
    d = daemon.nbd(qcow2_blockdev(img, 'd'), export='d')
    c = NbdClient.unix(d.sock)
    c.connect('d')
    c.write(0, b'\x71' * 65536)
    d.stop()
    c.close()


def test_pidfile_names_the_daemon(daemon, img):
    pidfile = daemon.path('qblk.pid')
    d = daemon.nbd(qcow2_blockdev(img, 'd'), export='d',
                   extra=['--pidfile', pidfile])
    with open(pidfile) as f:
        assert int(f.read().strip()) == d.proc.pid
    d.stop()


def wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_daemonize_returns_when_socket_is_ready(daemon, img, qemu_img,
                                                qemu_io):
    sock = daemon.new_socket()
    pidfile = daemon.path('qblk.pid')
    errpath = daemon.path('daemonize.stderr')
    args = qcow2_blockdev(img, 'd') + [
        '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
        '--export', 'type=nbd,id=e,node-name=d,name=d,writable=on',
        '--pidfile', pidfile, '--daemonize']
    with open(errpath, 'wb') as err:
        p = subprocess.run([daemon.binary] + args, stdin=subprocess.DEVNULL,
                           stdout=err, stderr=err, timeout=TIMEOUT,
                           cwd=daemon.dir)
    assert p.returncode == 0, open(errpath).read()
    with open(pidfile) as f:
        pid = int(f.read().strip())
    try:
        assert os.path.exists('/proc/%d' % pid)
        # ready on return: no waiting loop here
        uri = 'nbd+unix:///d?socket=%s' % sock
        qemu_io.ok('-f', 'raw', '-c', 'write -P 0x44 0 64k', uri)
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            assert b'--daemonize' in f.read()
        os.kill(pid, signal.SIGTERM)
        assert wait_gone(pid), 'daemonized qblk ignored SIGTERM'
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    rc, out, err = qemu_img('check', '-f', 'qcow2', img)
    assert rc == 0, out + err


def test_nbd_server_on_busy_port_exits_1(daemon, img, qemu_img):
    img2 = daemon.path('img2.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img2, '1M')
    d = daemon.nbd(qcow2_blockdev(img, 'd'), export='d', tcp=True)
    second = Daemon(daemon.binary, qcow2_blockdev(img2, 'e') + [
        '--nbd-server', 'addr.type=inet,addr.host=127.0.0.1,addr.port=%d'
        % d.tcp[1]], daemon.dir)
    second.start()
    try:
        rc = second.proc.wait(TIMEOUT)
    finally:
        second.kill()
    assert rc == 1, second.stderr
    assert second.stderr.strip()
    d.assert_alive()

"""The daemon's command line refuses bad options the way
qemu-storage-daemon does: exit status 1 and a message naming the option
("qblk: --blockdev OPTS: ..."), before serving anything.

Each case is one quick run of the daemon that must exit by itself.
"""
import os

import pytest

from daemon import is_qsd, qblk_daemon_path, short_tmpdir
from qblk_testlib import assert_no_crash, run

# (arguments, text the error message must contain)
CASES = [
    (['--foo'], "unrecognized option '--foo'"),
    (['--blockdev'], "option '--blockdev' requires an argument"),
    (['stray'], 'stray: Unexpected argument'),
    (['--blockdev', 'node-name=a'],
     "--blockdev node-name=a: Parameter 'driver' is missing"),
    (['--blockdev', 'driver=nope,node-name=a'],
     "Parameter 'driver' does not accept value 'nope'"),
    (['--blockdev', 'driver=qcow2'], "Parameter 'file' is missing"),
    (['--blockdev', 'driver=file,filename=/etc/hostname'],
     "'node-name' must be specified for the root node"),
    (['--blockdev', '{"driver": "file"}'], "Parameter 'filename' is missing"),
    (['--blockdev', 'driver=file,filename=/nonexistent/x,node-name=a'],
     "Could not open '/nonexistent/x': No such file or directory"),
    (['-drive', 'file=/nonexistent/x'],
     "-drive file=/nonexistent/x: Could not open '/nonexistent/x'"),
    (['-drive', 'file=/etc/hostname,format=raw,cache=bogus'],
     'invalid cache option'),
    (['--chardev', 'bogus,id=c'], "'bogus' is not a valid char driver name"),
    (['--chardev', 'socket,path=/tmp/x,server=on'],
     'chardev: no id specified'),
    (['--monitor', 'chardev=nope'], 'chardev "nope" not found'),
    (['--nbd-server', 'addr.type=unix'],
     "Parameter 'addr.path' is missing"),
    (['--nbd-server', 'addr.type=inet,addr.host=127.0.0.1'],
     "Parameter 'addr.port' is missing"),
    (['--export', 'type=nbd,id=e,node-name=nope'],
     "Cannot find device='' nor node-name='nope'"),
    (['--export', 'type=bogus,id=e,node-name=x'],
     "Parameter 'type' does not accept value 'bogus'"),
    (['--export', 'nbd,node-name=x'], "Parameter 'id' is missing"),
    (['--blockdev', 'driver=file,filename=/etc/hostname,node-name=a,'
      'read-only=on', '--export', 'type=nbd,id=e,node-name=a'],
     'NBD server not running'),
]


@pytest.mark.parametrize('args,message', CASES,
                         ids=[' '.join(c[0])[:40] for c in CASES])
def test_bad_option_exits_1_naming_it(args, message):
    prog = qblk_daemon_path()
    if is_qsd(prog) and args[0] == '-drive':
        pytest.skip('qemu-storage-daemon has no -drive')
    cmd = [prog] + args
    rc, out, err = run(cmd)
    assert_no_crash(cmd, rc, out, err)
    assert rc == 1, (rc, out, err)
    assert message in err, err
    # "PROG: ..." (getopt's messages in QEMU use argv[0] as given)
    assert err.split(': ', 1)[0].endswith(os.path.basename(prog)), err


def _qblk_only():
    if is_qsd(qblk_daemon_path()):
        pytest.skip('qblk-specific behaviour')


def test_monitor_is_checked_then_refused():
    _qblk_only()
    d = short_tmpdir()
    sock = os.path.join(d, 'mon.sock')
    base = [qblk_daemon_path(), '--chardev',
            'socket,id=mon,path=%s,server=on,wait=off' % sock]
    try:
        rc, out, err = run(base + ['--monitor', 'chardev=mon,mode=bogus'])
        assert rc == 1
        assert "Parameter 'mode' does not accept value 'bogus'" in err, err
        rc, out, err = run(base + ['--monitor', 'mon,mode=readline'])
        assert rc == 1
        assert ('qblk: --monitor: the QMP/HMP monitor is not implemented '
                'yet') in err, err
        assert not os.path.exists(sock), 'chardev socket left behind'
    finally:
        os.rmdir(d)


def test_version_and_help():
    _qblk_only()
    rc, out, err = run([qblk_daemon_path(), '--version'])
    assert rc == 0 and out.startswith('qblk version '), out + err
    assert 'qemu-storage-daemon 7.2' in out
    rc, out, err = run([qblk_daemon_path(), '-h'])
    assert rc == 0, err
    for opt in ('--blockdev', '-drive', '--chardev', '--monitor',
                '--nbd-server', '--export', '--pidfile', '--daemonize',
                '--trace'):
        assert opt in out, '%s missing from --help' % opt

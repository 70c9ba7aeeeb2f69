"""The daemon's command line refuses bad options the way
qemu-storage-daemon does: exit status 1 and a message naming the option
("qblk: --blockdev OPTS: ..."), before serving anything, and a daemon
that cannot bind its NBD address leaves the address's owner untouched.

Each case is one quick run of the daemon that must exit by itself
(daemon.run_daemon). With QBLK_DAEMON=qemu-storage-daemon the same table
checks QEMU; only the qblk-specific cases skip.
"""
import os

import pytest

from daemon import is_qsd, qblk_daemon_path, require_qblk, run_daemon
from qmp_client import QMPClient

# A read-only file node on a file that always exists
RO_FILE = 'driver=file,filename=/etc/hostname,node-name=%s,read-only=on'
DUP_NODE = RO_FILE % 'd'

# (arguments, text the error message must contain)
CASES = [
    (['--foo'], "unrecognized option '--foo'"),
    (['--blockdev', RO_FILE % 'a', '--frobnicate=3'],
     "unrecognized option '--frobnicate=3'"),
    (['--blockdev'], "option '--blockdev' requires an argument"),
    (['stray'], 'stray: Unexpected argument'),
    (['--blockdev', 'node-name=a'],
     "--blockdev node-name=a: Parameter 'driver' is missing"),
    (['--blockdev', 'driver=file,,=,='],
     "--blockdev driver=file,,=,=: Invalid parameter ''"),
    (['--blockdev', 'driver=nope,node-name=a'],
     "Parameter 'driver' does not accept value 'nope'"),
    (['--blockdev', 'driver=qcow2'], "Parameter 'file' is missing"),
    (['--blockdev', 'driver=file,filename=/etc/hostname'],
     "'node-name' must be specified for the root node"),
    (['--blockdev', '{"driver": "file"}'], "Parameter 'filename' is missing"),
    (['--blockdev', 'driver=file,filename=/nonexistent/x,node-name=a'],
     "Could not open '/nonexistent/x': No such file or directory"),
    (['--blockdev', DUP_NODE, '--blockdev', DUP_NODE],
     "--blockdev %s: Duplicate nodes with node-name='d'" % DUP_NODE),
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
    (['--blockdev', RO_FILE % 'a', '--export', 'type=nbd,id=e,node-name=a'],
     'NBD server not running'),
]


@pytest.mark.parametrize('args,message', CASES,
                         ids=[' '.join(c[0])[:40] for c in CASES])
def test_bad_option_exits_1_naming_it(args, message):
    prog = qblk_daemon_path()
    if is_qsd(prog) and args[0] == '-drive':
        pytest.skip('qemu-storage-daemon has no -drive')
    rc, out, err = run_daemon(args)
    assert rc == 1, (rc, out, err)
    assert message in err, err
    # "PROG: ..." (getopt's messages in QEMU use argv[0] as given)
    assert err.split(': ', 1)[0].endswith(os.path.basename(prog)), err


def test_monitor_options_checked_then_monitor_works(daemon):
    require_qblk('qblk monitor option texts')
    sock = daemon.path('mon.sock')
    base = ['--chardev', 'socket,id=mon,path=%s,server=on,wait=off' % sock]
    rc, out, err = run_daemon(base + ['--monitor', 'chardev=mon,mode=bogus'])
    assert rc == 1
    assert "Parameter 'mode' does not accept value 'bogus'" in err, err
    rc, out, err = run_daemon(base + ['--monitor', 'mon,bogus=1'])
    assert rc == 1
    assert "--monitor mon,bogus=1: Parameter 'bogus' is unexpected" in err
    assert not os.path.exists(sock), 'chardev socket left behind'
    # the implied key is chardev; the default mode is control (QMP)
    daemon.start(base + ['--monitor', 'mon'], ('unix', sock))
    with QMPClient(sock) as qmp:
        assert qmp.greeting['QMP']['version']['qemu']['major'] == 7
        qmp.negotiate()


def test_nbd_server_on_busy_port_exits_1_leaving_owner_alive(daemon):
    owner = daemon.nbd(['--blockdev', RO_FILE % 'a'], export='a',
                       writable=False, tcp=True)
    srv = 'addr.type=inet,addr.host=127.0.0.1,addr.port=%d' % owner.tcp[1]
    second = daemon.run(['--blockdev', RO_FILE % 'b', '--nbd-server', srv])
    assert second.returncode == 1, second.stderr
    assert '--nbd-server %s: ' % srv in second.stderr, second.stderr
    assert 'Address already in use' in second.stderr, second.stderr
    owner.assert_alive()

"""The functional tests' QMP client: qblkpy.qmp's (python/qblkpy/qmp.py,
shared with scripts/ and bench/) plus what needs the tests' daemon
fixture. Tests import everything QMP from here.

    qmp = QMPClient(sock_path)          # see python/qblkpy/qmp.py
    qmp.negotiate()
    qmp.ok('blockdev-del', node_name='x')

start_qblk_with_qmp(env, args) starts qblk (through the daemon fixture's
DaemonSet @env) with an extra QMP monitor on a fresh unix socket and
returns (daemon, client) with the client already negotiated.
wait_for_path_gone(path) waits until a socket file is removed.
"""
import os
import time

import qblk_testlib  # noqa: F401 (puts python/ on sys.path)
from qblkpy.qmp import TIMEOUT, QMPClient, QMPError

__all__ = ['QMPClient', 'QMPError', 'start_qblk_with_qmp',
           'wait_for_path_gone']


def start_qblk_with_qmp(env, args, sock_name=None, ready=None):
    """Start qblk from DaemonSet @env with @args plus a QMP monitor on a
    new unix socket; return (daemon, negotiated QMPClient)."""
    env.count += 1
    sock = env.path(sock_name or 'qmp%d.sock' % env.count)
    full = list(args) + ['--chardev',
                         'socket,id=qmp%d,path=%s,server=on,wait=off'
                         % (env.count, sock),
                         '--monitor', 'chardev=qmp%d' % env.count]
    d = env.start(full, ready or ('unix', sock))
    client = QMPClient(sock)
    client.negotiate()
    d.qmp_sock = sock
    return d, client


def wait_for_path_gone(path, timeout=TIMEOUT):
    """True once @path no longer exists; False after @timeout seconds."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

"""The qblk daemon under valgrind (memcheck): one short but complete
session must produce no memory error and leak nothing definitely.

The daemon serves top.qcow2 (backing base.qcow2) as drive0 over NBD and
has a QMP monitor. The session: QMP queries, blockdev-add/blockdev-del of
an extra node, qemu-io reading and writing through the NBD export, a
block-stream of the drive (the base's data pulled into the top), quit.
qemu-img judges the top afterwards (check, and the data still reads).

valgrind runs with --error-exitcode=99 and
--errors-for-leak-kinds=definite, so memory errors and definite leaks
both make the exit status 99; the test also scans the log for the usual
error headlines and prints the whole log on failure.

Coroutines run on their own mmap'd stacks: util/coroutine-ucontext.c
registers every stack with VALGRIND_STACK_REGISTER (valgrind.h is in
Debian's valgrind package, install-deps installs it), so memcheck does
not mistake a stack switch for a huge stack frame. No suppression file
is needed.

The daemon runs with QBLK_AIO=threads (block/io-backend.c): memcheck does
not model io_uring, so data the kernel writes into buffers asynchronously
would look uninitialised (false reports in every qcow2 table read). The
thread-pool back end uses plain preadv/pwritev, which memcheck follows.

Skipped on sanitizer builds (ASan and valgrind cannot share a process)
and when valgrind is not installed.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from qblk_testlib import MiB, build_dir
from qmp_client import QMPClient

# valgrind slows the daemon 20-50x: generous bounds, small data.
VG_TIMEOUT = 120
SIZE = 4 * MiB
ERROR_MARKERS = ('definitely lost in', 'Invalid read', 'Invalid write',
                 'uninitialised', 'Invalid free', 'Mismatched free',
                 'Source and destination overlap')


def sanitized_build():
    """True if the build under test uses -Db_sanitize (check-asan)."""
    if os.environ.get('QBLK_SANITIZED'):
        return True
    path = os.path.join(build_dir(), 'meson-info', 'intro-buildoptions.json')
    try:
        with open(path) as f:
            opts = json.load(f)
    except OSError:
        return False
    return any(o['name'] == 'b_sanitize' and o['value'] != 'none'
               for o in opts)


def qemu_io(target, fmt, *cmds):
    """qemu-io on @target; assert every command succeeded."""
    p = subprocess.run(['qemu-io', '-f', fmt] +
                       [a for c in cmds for a in ('-c', c)] + [target],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=VG_TIMEOUT)
    out = p.stdout.decode()
    assert p.returncode == 0 and 'failed' not in out and \
        'Pattern verification' not in out, '%s: %s' % (target, out)
    return out


def make_chain(tmp_path):
    """base (0x11 in [0, 1M)) <- top (0x22 in [1M, 1.5M))."""
    base = str(tmp_path / 'base.qcow2')
    top = str(tmp_path / 'top.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base,
                    str(SIZE)], check=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base,
                    '-F', 'qcow2', top], check=True)
    qemu_io(base, 'qcow2', 'write -P 0x11 0 1M')
    qemu_io(top, 'qcow2', 'write -P 0x22 1M 512k')
    extra = str(tmp_path / 'extra.raw')
    with open(extra, 'wb') as f:
        f.truncate(MiB)
    return base, top, extra


def wait_event(qmp, name, timeout=VG_TIMEOUT):
    """The next event called @name (events seen before count too)."""
    deadline = time.monotonic() + timeout
    while True:
        for ev in qmp.events:
            if ev['event'] == name:
                qmp.events.remove(ev)
                return ev
        left = deadline - time.monotonic()
        assert left > 0, 'no %s event; got %r' % (name, qmp.events)
        qmp.recv(timeout=left)          # events land in qmp.events


def session(qmp, nbd_uri, extra):
    """Queries, node add/del, NBD I/O and a stream; then quit."""
    assert 'qemu' in qmp.ok('query-version')
    assert qmp.ok('query-block')[0]['device'] == 'drive0'
    assert qmp.ok('query-named-block-nodes')
    assert qmp.ok('query-block-exports')[0]['id'] == 'exp0'
    qmp.ok('blockdev-add', args={'driver': 'file', 'node-name': 'x0',
                                 'filename': extra})
    qmp.ok('blockdev-add', args={'driver': 'raw', 'node-name': 'x1',
                                 'file': 'x0'})
    qmp.ok('blockdev-del', node_name='x1')
    qmp.ok('blockdev-del', node_name='x0')

    qemu_io(nbd_uri, 'raw', 'read -P 0x11 0 64k', 'read -P 0x22 1M 64k',
            'write -P 0x33 2M 128k', 'read -P 0x33 2M 128k',
            'read -P 0 3M 64k', 'flush')

    qmp.ok('block-stream', job_id='s0', device='drive0')
    ev = wait_event(qmp, 'BLOCK_JOB_COMPLETED')
    assert ev['data']['device'] == 's0' and 'error' not in ev['data'], ev
    qemu_io(nbd_uri, 'raw', 'read -P 0x11 0 64k', 'read -P 0x33 2M 64k')
    qmp.ok('quit')


def test_valgrind_daemon_session_clean(tmp_path):
    if sanitized_build():
        pytest.skip('sanitizer build: valgrind cannot run ASan binaries')
    if not shutil.which('valgrind'):
        pytest.skip('valgrind not installed')
    base, top, extra = make_chain(tmp_path)
    nbd_sock = str(tmp_path / 'nbd.sock')
    qmp_sock = str(tmp_path / 'qmp.sock')
    log = str(tmp_path / 'valgrind.log')
    cmd = ['valgrind', '--leak-check=full',
           '--errors-for-leak-kinds=definite', '--error-exitcode=99',
           '--log-file=' + log,
           os.path.join(build_dir(), 'qblk'),
           '-drive', 'file=%s,format=qcow2,id=drive0' % top,
           '--nbd-server', 'addr.type=unix,addr.path=%s' % nbd_sock,
           '--export', 'type=nbd,id=exp0,node-name=drive0,name=drive0,'
           'writable=on',
           '--chardev', 'socket,id=qmp0,path=%s,server=on,wait=off'
           % qmp_sock,
           '--monitor', 'chardev=qmp0']
    with open(tmp_path / 'stderr', 'wb') as err:
        proc = subprocess.Popen(cmd, stdout=err, stderr=err,
                                cwd=str(tmp_path),
                                env=dict(os.environ, QBLK_AIO='threads'))
    try:
        qmp = QMPClient(qmp_sock, timeout=VG_TIMEOUT)
        qmp.negotiate()
        session(qmp, 'nbd+unix:///drive0?socket=%s' % nbd_sock, extra)
        rc = proc.wait(timeout=VG_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = open(log).read()
    stderr = open(tmp_path / 'stderr').read()
    found = [m for m in ERROR_MARKERS if m in text]
    assert rc == 0 and not found, \
        'exit %d, found %r\n--- valgrind log ---\n%s\n--- stderr ---\n%s' \
        % (rc, found, text, stderr)
    assert 'ERROR SUMMARY: 0 errors' in text, text
    # the leak check really ran (the daemon exited through main's end)
    assert 'definitely lost: 0 bytes' in text or \
        'All heap blocks were freed' in text, text
    # The image stayed consistent and the stream made the top standalone.
    p = subprocess.run(['qemu-img', 'check', '-q', top],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.returncode == 0, p.stdout.decode()
    info = json.loads(subprocess.run(
        ['qemu-img', 'info', '--output=json', top], check=True,
        stdout=subprocess.PIPE).stdout)
    assert 'backing-filename' not in info, info

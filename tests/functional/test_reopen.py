"""Reopening nodes between read-only and read-write, seen from outside:
block-stream into a backing image of a -drive chain (opened read-only,
reopened read-write for the job and read-only again at its end, also
while the guest does I/O through the NBD export), and a backing file
without write permission, which cannot be reopened: the command fails
with "Could not reopen 'FILE': Permission denied" and nothing changes.

The chain is stream_util's: base.raw <- mid.qcow2 <- top.qcow2. QEMU's
tools judge the images afterwards.
"""
import os

import pytest

from daemon import require_qblk
from qmp_client import QMPClient
from jobs_util import (NbdWriter, drive_export_args, job_events, qemu_io,
                       run_ok, start_drive_export)
from stream_util import Chain, MiB


def nodes_by_file(qmp):
    """{(filename, driver): node info} of every node."""
    return {(n['file'], n['drv']): n
            for n in qmp.ok('query-named-block-nodes', flat=True)}


def ro_modes(qmp, c):
    """Read-only flags of mid's format and file nodes."""
    n = nodes_by_file(qmp)
    return n[(c.mid, 'qcow2')]['ro'], n[(c.mid, 'file')]['ro']


def test_reopen_stream_into_readonly_backing_node(daemon):
    require_qblk('qblk reopens the stream target itself')
    c = Chain(daemon.dir)
    d, qmp, sock, _ = start_drive_export(daemon, c.top)
    mid = nodes_by_file(qmp)[(c.mid, 'qcow2')]['node-name']
    assert ro_modes(qmp, c) == (True, True)

    # reads the whole disk and writes [7M, 8M) until stopped
    guest = NbdWriter(sock, 7 * MiB, 8 * MiB, read=True)
    guest.start()
    guest.wait_writes()
    qmp.ok('block-stream', args={'device': mid, 'job-id': 's'})
    seen, data = job_events(qmp, 's')
    assert 'BLOCK_JOB_COMPLETED' in seen and 'error' not in data, (seen,
                                                                    data)
    guest.wait_writes()
    guest.stop(30)
    # back to read-only, format and file node alike; the chain is shorter
    assert ro_modes(qmp, c) == (True, True)
    n = nodes_by_file(qmp)[(c.mid, 'qcow2')]
    assert n['backing_file_depth'] == 0 and 'backing_file' not in n
    assert qmp.ok('query-block-jobs') == []
    qmp.close()
    d.stop()

    c.check(c.mid)
    c.check(c.top)
    assert c.chain(c.mid) == [(c.mid, None, None)]
    # mid alone now reads as the old mid-over-base view
    qemu_io(c.mid, 'qcow2', 'read -P 0x11 0 1M', 'read -P 0x22 1M 2M',
            'read -P 0 3M 1M', 'read -P 0x44 6M 1M')
    # the guest's view: the old content plus its last writes
    qemu_io(c.top, 'qcow2', *guest.qemu_io_checks())
    view = os.path.join(c.dir, 'view.raw')
    run_ok(['qemu-img', 'convert', '-O', 'raw', c.top, view])
    with open(view, 'rb') as f, open(c.expect, 'rb') as g:
        assert f.read(7 * MiB) == g.read(7 * MiB)


def wrapper_without_dac_override(daemon):
    """As root, a qblk started through setpriv without CAP_DAC_OVERRIDE,
    so file modes apply to it; otherwise qblk itself."""
    if os.geteuid() != 0:
        return None
    path = daemon.path('qblk-nodac')
    with open(path, 'w') as f:
        f.write('#!/bin/sh\nexec setpriv --bounding-set '
                '-dac_override,-dac_read_search -- %s "$@"\n'
                % daemon.binary)
    os.chmod(path, 0o755)
    return path


def test_reopen_permission_denied_changes_nothing(daemon):
    require_qblk('qblk reopens the stream target itself')
    c = Chain(daemon.dir)
    os.chmod(c.mid, 0o444)
    binary = wrapper_without_dac_override(daemon)
    if binary is None and os.access(c.mid, os.W_OK):
        pytest.skip('cannot make a file unwritable for this user')
    sock = daemon.new_socket()
    args = drive_export_args(c.top, sock)
    qmp_sock = daemon.path('qmp-nodac.sock')
    d = daemon.start(args + ['--chardev', 'socket,id=m,path=%s,server=on,'
                             'wait=off' % qmp_sock, '--monitor', 'chardev=m'],
                     ('unix', qmp_sock), binary)
    qmp = QMPClient(qmp_sock)
    qmp.negotiate()
    before = qmp.ok('query-named-block-nodes', flat=True)
    mid = nodes_by_file(qmp)[(c.mid, 'qcow2')]['node-name']

    e = qmp.err('block-stream', args={'device': mid, 'job-id': 's'})
    assert e == {'class': 'GenericError',
                 'desc': "Could not reopen '%s': Permission denied"
                 % c.mid}, e
    assert qmp.ok('query-block-jobs') == []
    assert qmp.ok('query-named-block-nodes', flat=True) == before
    # the guest still reads the chain through the untouched node
    run_ok(['qemu-io', '-f', 'raw', '-c', 'read -P 0x22 1M 1M',
            '-c', 'read -P 0x33 2M 512k',
            'nbd+unix:///drive0?socket=%s' % sock])
    qmp.close()
    d.stop()
    c.assert_lower_untouched()
    c.check(c.mid)

"""A full file system under the overlay: on-error=enospc, and the guest.

The overlay lives on a small tmpfs the test mounts (the tests run as
root; where mounting is not allowed the tests are skipped, saying so).
A stream into it runs out of space: with on-error=enospc the job stops
(BLOCK_JOB_ERROR action stop, io-status nospace, paused); once the test
makes room (remount with a larger size) block-job-resume finishes it and
the data equals the base's. A guest writing over NBD into a full overlay
gets an error reply, and qblk stays up.
"""
import os
import subprocess
import time

import pytest

from jobs_util import job_events, query_job, start_drive_export
from nbd_client import NbdClient, NbdError

MiB = 1024 * 1024
BASE_SIZE = 32 * MiB
SMALL = '8m'


@pytest.fixture
def small_fs(daemon):
    """A tmpfs of SMALL bytes (daemon dir), unmounted afterwards."""
    mnt = daemon.path('small')
    os.mkdir(mnt)
    p = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=' + SMALL,
                        'tmpfs', mnt], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip('cannot mount a tmpfs here (%s)' % p.stderr.strip())
    try:
        yield mnt
    finally:
        subprocess.run(['umount', '-l', mnt], capture_output=True)


def grow(mnt, size='128m'):
    subprocess.run(['mount', '-o', 'remount,size=' + size, mnt], check=True)


def make_chain(daemon, qemu_img, qemu_io, mnt):
    base = daemon.path('base.raw')
    qemu_img.ok('create', '-f', 'raw', base, str(BASE_SIZE))
    # data the stream must copy, more than the tmpfs holds
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0x6e 0 %d' % BASE_SIZE, base)
    top = os.path.join(mnt, 'top.qcow2')
    qemu_img.ok('create', '-f', 'qcow2', '-b', base, '-F', 'raw', top)
    return base, top


def test_stream_enospc_stops_then_resumes(daemon, qemu_img, qemu_io,
                                          small_fs):
    base, top = make_chain(daemon, qemu_img, qemu_io, small_fs)
    d, qmp, _, _ = start_drive_export(daemon, top)
    qmp.ok('block-stream', device='drive0', **{'on-error': 'enospc'})
    ev = qmp.event_wait('BLOCK_JOB_ERROR', timeout=60)
    assert ev['data'] == {'device': 'drive0', 'operation': 'read',
                          'action': 'stop'}, ev
    deadline = time.monotonic() + 30
    while not query_job(qmp, 'drive0')['paused']:
        assert time.monotonic() < deadline, query_job(qmp, 'drive0')
        time.sleep(0.05)
    job = query_job(qmp, 'drive0')
    assert job['io-status'] == 'nospace', job
    assert job['offset'] < job['len'], job
    grow(small_fs)
    qmp.events.clear()
    qmp.ok('block-job-resume', device='drive0')
    seq, data = job_events(qmp, 'drive0', timeout=120)
    assert 'BLOCK_JOB_COMPLETED' in seq and 'error' not in data, (seq, data)
    qmp.close()
    d.stop()
    qemu_img.ok('check', top)
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', 'raw', top, base)
    assert rc == 0, out + err
    info = qemu_img.ok('info', top)
    assert 'backing file' not in info, info


def test_stream_enospc_with_report_fails(daemon, qemu_img, qemu_io,
                                         small_fs):
    base, top = make_chain(daemon, qemu_img, qemu_io, small_fs)
    d, qmp, _, _ = start_drive_export(daemon, top)
    qmp.ok('block-stream', device='drive0')
    seq, data = job_events(qmp, 'drive0', timeout=120)
    assert 'BLOCK_JOB_COMPLETED' in seq, seq
    assert data.get('error', '').startswith('No space left on device'), data
    qmp.close()
    d.stop()
    # the overlay still names its base and reads as before
    qemu_img.ok('check', top)
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', 'raw', top, base)
    assert rc == 0, out + err


def test_guest_write_to_full_fs_gets_error(daemon, qemu_img, qemu_io,
                                           small_fs):
    base, top = make_chain(daemon, qemu_img, qemu_io, small_fs)
    d, qmp, sock, _ = start_drive_export(daemon, top)
    c = NbdClient.unix(sock)
    c.connect('drive0')
    failed = None
    for i in range(BASE_SIZE // MiB):
        try:
            c.write(i * MiB, bytes([0x40 + i % 64]) * MiB)
        except NbdError as e:
            failed = (i, e.errno)
            break
    assert failed is not None, 'a %s file system took %d MiB' % (
        SMALL, BASE_SIZE // MiB)
    assert failed[1] in (28, 5), failed     # ENOSPC (or EIO)
    # qblk is still up: reads work and QMP answers
    assert c.read(0, 4096) == bytes([0x40]) * 4096
    assert qmp.ok('query-block')
    c.disconnect()
    qmp.close()
    d.stop()
    qemu_img.ok('check', top)

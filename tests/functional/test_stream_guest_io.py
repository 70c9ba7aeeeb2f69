"""stream-under-guest-writes: a block-stream runs while a guest (fio over
NBD) writes at random places of the same drive; no write may be lost and
no old backing data may overwrite a guest write.

Setup, made with QEMU's tools only: a 64 MiB base (qcow2 or raw) laid out
by daemon.make_base (random data, holes, zero clusters, zero-filled data),
an empty-ish qcow2 top with a few writes of its own, and model.raw, the
flattened content of the chain (qemu-img convert) before anything runs.

qblk serves the top as -drive drive0, exports it over NBD and takes QMP.
The stream starts throttled (so it is still copying when the guest
writes), fio starts random writes of 4-64 KiB with verify=pattern
(the pattern embeds each block's offset, so a block that lands in the
wrong place or is overwritten by base data fails the verify), and after a
second the stream is unthrottled and races the rest of the writes.

Afterwards: the job completed without error, offset == len, the drive
has no backing any more (QMP and qemu-img info), qemu-img check is clean,
a separate fio verify-only pass over NBD reads every block back, and the
image equals the model: the same fio job (same seed, so the same offsets
and bytes) run against model.raw with a plain file engine, compared with
qemu-img compare. The base is never written.
"""
import json
import time

import pytest

from daemon import top_writes
from jobs_util import (BackgroundFio, FioGuest, flatten, make_base_as,
                       overlay, qemu_io, run_fio, start_drive_export)
from qblk_testlib import MiB, sha256

SIZE = 64 * MiB
SEG = 2 * MiB
SEED = 4242
SLOW_SPEED = 4 * MiB

# The guest workload: ~600 random writes of 4-64 KiB (20 MiB in all).
# The guest run is limited to 10 MiB/s of writes so that it spans ~2 s
# of the stream.
GUEST = FioGuest(SIZE, 20 * MiB, SEED, '0xa5')


def make_images(d, qemu_img, base_fmt):
    """base (qcow2 or raw) <- top.qcow2 with a few writes; model.raw is
    the chain's flattened content. Returns (base, top, model)."""
    base = make_base_as(d, qemu_img, base_fmt, SIZE, SEG)
    top = overlay(d, qemu_img, 'top.qcow2', base, base_fmt)
    qemu_io(top, 'qcow2', *top_writes(SIZE, SEG))
    return base, top, flatten(d, qemu_img, top)


def wait_job_running(qmp, job, timeout=5):
    """The job's query-block-jobs entry once it is running."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = {j['device']: j for j in qmp.ok('query-block-jobs')}
        assert job in jobs, 'job %s vanished: %r' % (job, qmp.events)
        if jobs[job]['status'] == 'running' or time.monotonic() > deadline:
            return jobs[job]
        time.sleep(0.02)


@pytest.mark.parametrize('base_fmt', ['qcow2', 'raw'])
def test_stream_guest_random_writes_survive(daemon, qemu_img, fio, base_fmt):
    base, top, model = make_images(daemon.dir, qemu_img, base_fmt)
    base_sum = sha256(base)
    d, qmp, _, uri = start_drive_export(daemon, top)
    assert qmp.ok('block-stream', job_id='stream0', device='drive0',
                  speed=SLOW_SPEED) == {}
    info = wait_job_running(qmp, 'stream0')
    assert info['type'] == 'stream' and info['len'] == SIZE, info

    # guest writes (plus fio's own verify pass) while the stream copies
    guest = BackgroundFio(GUEST.over_nbd(uri, ['--rate=,10m',
                                               '--do_verify=1']))
    try:
        time.sleep(1.0)
        job = {j['device']: j for j in qmp.ok('query-block-jobs')}
        assert 'stream0' in job and job['stream0']['offset'] < SIZE, (
            'stream finished before the guest wrote: %r' % job)
        guest.assert_running('before the unthrottle')
        assert qmp.ok('block-job-set-speed', device='stream0', speed=0) == {}
        ev = qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=60,
                            match={'device': 'stream0'})
        stats = guest.finish('guest writes during stream')
    finally:
        guest.kill()
    written = stats['write']['io_bytes']
    assert written >= 20 * MiB, written
    data = ev['data']
    assert 'error' not in data, ev
    assert data['type'] == 'stream' and data['offset'] == data['len'] == SIZE

    # every block reads back over NBD, after the backing switch
    check = run_fio(GUEST.over_nbd(uri, ['--verify_only']), 'verify pass')
    assert check['read']['io_bytes'] == written, check['read']
    assert qmp.ok('query-block-jobs') == []
    node = [n for n in qmp.ok('query-named-block-nodes', flat=True)
            if n['node-name'] == 'drive0'][0]
    assert node['backing_file_depth'] == 0 and \
        'backing-image' not in node['image'], node
    qmp.close()
    d.stop()

    out = qemu_img.ok('info', '--output=json', '-f', 'qcow2', top)
    info = json.loads(out)
    assert 'backing-filename' not in info and \
        'full-backing-filename' not in info, out
    rc, out, err = qemu_img('check', '-f', 'qcow2', top)
    assert rc == 0, 'qemu-img check: rc %d\n%s%s' % (rc, out, err)
    assert sha256(base) == base_sum, 'the base image was written'

    # the model: the same writes applied to a plain copy of the chain
    GUEST.apply_to_model(model)
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', 'raw', top,
                            model)
    assert rc == 0, 'streamed image differs from the model:\n%s%s' % (out,
                                                                      err)

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
import os
import subprocess
import time

import pytest

from daemon import make_base, top_writes
from qblk_testlib import MiB, sha256
from qmp_client import start_qblk_with_qmp

SIZE = 64 * MiB
SEG = 2 * MiB
SEED = 4242
SLOW_SPEED = 4 * MiB


def fio_job_args(extra=()):
    """The guest workload: ~600 random writes of 4-64 KiB (4 KiB aligned,
    never twice the same block, fixed seed), each block filled with a
    pattern that embeds its offset. The guest run is limited to
    10 MiB/s of writes so that it spans ~2 s of the stream."""
    return ['fio', '--name=guest', '--rw=randwrite', '--bsrange=4k-64k',
            '--blockalign=4k', '--size=%d' % SIZE, '--io_size=%d' % (20 * MiB),
            '--randseed=%d' % SEED, '--verify=pattern',
            '--verify_pattern=0xa5%o', '--verify_fatal=1',
            '--output-format=json'] + list(extra)


def fio_over_nbd(uri, extra=()):
    return fio_job_args(['--ioengine=nbd', '--uri=' + uri, '--iodepth=8']
                        + list(extra))


def fio_result(proc_or_run, what):
    """Parse fio's JSON output; fail unless it exited 0 without error.
    Returns the job's stats dict."""
    out, err, rc = proc_or_run
    text = out.decode(errors='replace')
    assert rc == 0, '%s: fio rc %d\n%s\n%s' % (what, rc, text[-3000:],
                                               err.decode()[-3000:])
    job = json.loads(text[text.index('{'):])['jobs'][0]
    assert job['error'] == 0, '%s: fio error %d\n%s' % (
        what, job['error'], err.decode()[-3000:])
    return job


def run_fio(argv, what, timeout=120):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return fio_result((p.stdout, p.stderr, p.returncode), what)


def make_images(d, qemu_img, base_fmt):
    """base (qcow2 or raw) <- top.qcow2 with a few writes; model.raw is
    the chain's flattened content. Returns (base, top, model)."""
    base = make_base(d, SIZE, SEG, name='base.qcow2')
    if base_fmt == 'raw':
        raw = os.path.join(d, 'base.raw')
        qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', base, raw)
        os.unlink(base)
        base = raw
    top = os.path.join(d, 'top.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', base, '-F', base_fmt,
                top)
    cmds = [a for c in top_writes(SIZE, SEG) for a in ('-c', c)]
    subprocess.run(['qemu-io', '-f', 'qcow2'] + cmds + [top], check=True,
                   stdout=subprocess.DEVNULL)
    model = os.path.join(d, 'model.raw')
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', top, model)
    return base, top, model


def start_daemon(daemon, top):
    """qblk with -drive drive0 on @top, its NBD export and QMP."""
    sock = daemon.new_socket()
    args = ['-drive', 'file=%s,format=qcow2,id=drive0' % top,
            '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
            '--export', 'type=nbd,id=exp0,node-name=drive0,name=drive0,'
            'writable=on']
    d, qmp = start_qblk_with_qmp(daemon, args)
    return d, qmp, 'nbd+unix:///drive0?socket=%s' % sock


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
    d, qmp, uri = start_daemon(daemon, top)
    assert qmp.ok('block-stream', job_id='stream0', device='drive0',
                  speed=SLOW_SPEED) == {}
    info = wait_job_running(qmp, 'stream0')
    assert info['type'] == 'stream' and info['len'] == SIZE, info

    # guest writes (plus fio's own verify pass) while the stream copies
    guest = subprocess.Popen(fio_over_nbd(uri, ['--rate=,10m',
                                                '--do_verify=1']),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        job = {j['device']: j for j in qmp.ok('query-block-jobs')}
        assert 'stream0' in job and job['stream0']['offset'] < SIZE, (
            'stream finished before the guest wrote: %r' % job)
        if guest.poll() is not None:
            out, err = guest.communicate()
            pytest.fail('fio ended before the unthrottle (rc %d):\n%s\n%s'
                        % (guest.returncode, out.decode()[-2000:],
                           err.decode()[-2000:]))
        assert qmp.ok('block-job-set-speed', device='stream0', speed=0) == {}
        ev = qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=60,
                            match={'device': 'stream0'})
        out, err = guest.communicate(timeout=60)
    finally:
        if guest.poll() is None:
            guest.kill()
            guest.wait()
    written = fio_result((out, err, guest.returncode),
                         'guest writes during stream')['write']['io_bytes']
    assert written >= 20 * MiB, written
    data = ev['data']
    assert 'error' not in data, ev
    assert data['type'] == 'stream' and data['offset'] == data['len'] == SIZE

    # every block reads back over NBD, after the backing switch
    check = run_fio(fio_over_nbd(uri, ['--verify_only']), 'verify pass')
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
    run_fio(fio_job_args(['--ioengine=psync', '--filename=' + model,
                          '--do_verify=1']), 'model writes')
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', 'raw', top,
                            model)
    assert rc == 0, 'streamed image differs from the model:\n%s%s' % (out,
                                                                      err)

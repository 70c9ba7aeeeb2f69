"""commit-under-guest-writes: block-commit runs while a guest (fio over
NBD) writes at random places of the drive; no write may be lost, no
committed data may overwrite a guest write, and the result is checked
byte for byte against a model.

commit-active-pivot-under-load: base <- top, qblk serves top as -drive
drive0 and exports it over NBD. The active commit starts throttled, fio
starts random writes of 4-64 KiB with verify=pattern (the pattern embeds
each block's offset) and verify_backlog (fio reads back and checks what
it wrote every few blocks, so reads are verified all along the job, not
only at the end). After a second the commit is unthrottled; at
BLOCK_JOB_READY (fio still writing) block-job-complete pivots the drive
onto the base while fio keeps writing and verifying through the same NBD
connection. Afterwards: fio's verify passed, a verify-only pass reads
every block back, and base.* equals the model: the flattened chain
(qemu-img convert before anything ran) with the same fio job (same seed,
so the same offsets and bytes) applied by a plain file engine. Every
image passes qemu-img check.

commit-active-converges-under-heavy-writes (qblk only): the guest
rewrites an 8 MiB region with 4 KiB blocks at 16 MiB/s while the commit
may copy 4 MiB/s, so the dirty set cannot shrink in the background mode
(QEMU 7.2 stays in running forever here). qblk must notice and switch to
write-blocking mode: the job becomes ready within seconds while the guest
keeps writing, query-block-jobs shows actively-synced, and the pivot
leaves base equal to the model. With 4 KiB blocks whose pattern embeds
their offset, the region's final content does not depend on the order or
number of the writes, so the model is one pass of the same job.

commit-intermediate-under-guest-writes: base <- mid <- top; the guest
writes to top while mid is committed into base (node names, as libvirt
10 sends them). Afterwards top's header names base, the chain is two
images long, top equals the model, mid's file is untouched.

Run against qemu-storage-daemon 7.2 with QBLK_DAEMON to check the tests.
"""
import json
import signal
import subprocess
import time

import pytest

from daemon import is_qsd, qblk_daemon_path, require_qblk, top_writes
from jobs_util import (BackgroundFio, FioGuest, fio_result, flatten,
                       make_base_as, mid_writes, overlay, qemu_io, run_fio,
                       start_drive_export)
from qblk_testlib import MiB, sha256

SIZE = 64 * MiB
SEG = 2 * MiB
SEED = 5151
SLOW_SPEED = 4 * MiB
GUEST_BYTES = 32 * MiB      # at 10 MiB/s: ~3 s of guest writes


# The guest workload (see FioGuest); fio also verifies every 16 blocks
# as it goes.
GUEST = FioGuest(SIZE, GUEST_BYTES, SEED, '0xc3', ['--verify_backlog=16'])


def node_of(qmp, path):
    """The node name of the format node opened on @path."""
    names = [n['node-name'] for n in
             qmp.ok('query-named-block-nodes', flat=True)
             if n['file'] == path and n['drv'] != 'file']
    assert len(names) == 1, (path, names)
    return names[0]


def job_of(qmp, job):
    jobs = {j['device']: j for j in qmp.ok('query-block-jobs')}
    assert job in jobs, 'job %s vanished: %r' % (job, qmp.events)
    return jobs[job]


def check_image(qemu_img, img, fmt):
    if fmt != 'qcow2':
        return
    rc, out, err = qemu_img('check', '-f', fmt, img)
    assert rc == 0, 'qemu-img check %s: rc %d\n%s%s' % (img, rc, out, err)


def compare(qemu_img, img, fmt, model, what):
    rc, out, err = qemu_img('compare', '-f', fmt, '-F', 'raw', img, model)
    assert rc == 0, '%s differs from the model:\n%s%s' % (what, out, err)


def start_guest(uri):
    """fio writing over the export at 10 MiB/s, verifying as it goes."""
    return BackgroundFio(GUEST.over_nbd(uri, ['--rate=,10m',
                                              '--do_verify=1']))


def unthrottle_to(qmp, guest, event, timeout=60):
    """After a second of throttled copying (the guest writing meanwhile),
    lift the limit and wait for @event of job commit0."""
    time.sleep(1.0)
    info = job_of(qmp, 'commit0')
    assert not info['ready'], 'commit ready before the guest wrote: %r' % info
    guest.assert_running('before the commit was unthrottled')
    assert qmp.ok('block-job-set-speed', device='commit0', speed=0) == {}
    return qmp.event_wait(event, timeout=timeout,
                          match={'device': 'commit0'})


def finish_guest(guest, uri, what):
    """fio's result, then a verify-only pass over the export."""
    written = guest.finish(what)['write']['io_bytes']
    assert written >= GUEST_BYTES, written
    check = run_fio(GUEST.over_nbd(uri, ['--verify_only']), 'verify pass')
    assert check['read']['io_bytes'] == written, check['read']


@pytest.mark.parametrize('base_fmt', ['qcow2', 'raw'])
def test_commit_active_pivot_under_guest_writes(daemon, qemu_img, fio,
                                                base_fmt):
    d = daemon.dir
    base = make_base_as(d, qemu_img, base_fmt, SIZE, SEG, seed=11)
    top = overlay(d, qemu_img, 'top.qcow2', base, base_fmt)
    # 8 MiB of data of its own: 2 s of copying at SLOW_SPEED
    qemu_io(top, 'qcow2', *top_writes(SIZE, SEG) +
            ['write -P 0x4d %d %d' % (k * SEG + SEG // 2, SEG)
             for k in range(1, SIZE // SEG, 8)])
    model = flatten(d, qemu_img, top)
    dmn, qmp, _, uri = start_drive_export(daemon, top)
    assert qmp.ok('block-commit', job_id='commit0', device='drive0',
                  speed=SLOW_SPEED) == {}
    info = job_of(qmp, 'commit0')
    assert info['type'] == 'commit', info

    guest = start_guest(uri)
    try:
        ready = unthrottle_to(qmp, guest, 'BLOCK_JOB_READY')
        assert ready['data']['type'] == 'commit', ready
        # pivot while fio is still writing and verifying
        guest.assert_running('before the pivot')
        info = job_of(qmp, 'commit0')
        assert info['ready'] and info['status'] == 'ready', info
        assert qmp.ok('block-job-complete', device='commit0') == {}
        ev = qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=30,
                            match={'device': 'commit0'})
        guest.assert_running('before the pivot finished')
        assert 'error' not in ev['data'], ev
        assert ev['data']['offset'] == ev['data']['len'], ev
        finish_guest(guest, uri, 'guest writes across the pivot')
    finally:
        guest.kill()
    assert qmp.ok('query-block-jobs') == []
    if not is_qsd(qblk_daemon_path()):
        dev = [b for b in qmp.ok('query-block') if b['device'] == 'drive0']
        assert dev and dev[0]['inserted']['file'] == base, dev
    qmp.close()
    dmn.stop()

    check_image(qemu_img, base, base_fmt)
    check_image(qemu_img, top, 'qcow2')
    GUEST.apply_to_model(model)
    compare(qemu_img, base, base_fmt, model, 'the base after the pivot')


HOT_OFFSET = 24 * MiB
HOT_SIZE = 8 * MiB


def hot_region_args(extra=()):
    """4 KiB writes over [HOT_OFFSET, +HOT_SIZE), offset-pattern blocks."""
    return ['fio', '--name=hot', '--rw=randwrite', '--bs=4k',
            '--offset=%d' % HOT_OFFSET, '--size=%d' % HOT_SIZE,
            '--randseed=%d' % SEED, '--verify=pattern',
            '--verify_pattern=0x96%o', '--verify_fatal=1',
            '--output-format=json'] + list(extra)


def stop_hot_guest(guest):
    """SIGINT fio (it then exits with 128) and return its job stats;
    fails on any fio error, including a failed verify."""
    guest.send_signal(signal.SIGINT)
    out, err = guest.communicate(timeout=30)
    return fio_result(out, err, 0 if guest.returncode == 128 else
                      guest.returncode, 'hot guest')


def test_commit_active_converges_under_heavy_writes(daemon, qemu_img, fio):
    require_qblk('the switch to write-blocking mode')
    d = daemon.dir
    base = make_base_as(d, qemu_img, 'qcow2', SIZE, SEG, seed=11)
    top = overlay(d, qemu_img, 'top.qcow2', base, 'qcow2')
    qemu_io(top, 'qcow2', *top_writes(SIZE, SEG))
    model = flatten(d, qemu_img, top)
    dmn, qmp, _, uri = start_drive_export(daemon, top)
    guest = subprocess.Popen(
        hot_region_args(['--ioengine=nbd', '--uri=' + uri, '--iodepth=8',
                         '--rate=,16m', '--time_based', '--runtime=60',
                         '--verify_backlog=64']),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        assert qmp.ok('block-commit', job_id='commit0', device='drive0',
                      speed=SLOW_SPEED) == {}
        # 2 s without progress, then <= 8 MiB at 4 MiB/s, plus slack
        qmp.event_wait('BLOCK_JOB_READY', timeout=15,
                       match={'device': 'commit0'})
        took = time.monotonic() - t0
        assert guest.poll() is None, 'fio ended before the job was ready'
        info = job_of(qmp, 'commit0')
        assert info['ready'] and info.get('actively-synced') is True, info
        assert qmp.ok('block-job-complete', device='commit0') == {}
        ev = qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=30,
                            match={'device': 'commit0'})
        assert 'error' not in ev['data'], ev
        assert guest.poll() is None, 'fio ended before the pivot'
        time.sleep(0.5)                 # writes to base after the pivot
        job = stop_hot_guest(guest)
        assert job['write']['io_bytes'] >= 2 * HOT_SIZE, job['write']
    finally:
        if guest.poll() is None:
            guest.kill()
            guest.wait()
    qmp.close()
    dmn.stop()
    print('ready after %.2f s' % took)

    check_image(qemu_img, base, 'qcow2')
    run_fio(hot_region_args(['--ioengine=psync', '--filename=' + model]),
            'model writes')
    compare(qemu_img, base, 'qcow2', model, 'the base after the pivot')


def test_commit_intermediate_under_guest_writes(daemon, qemu_img, fio):
    d = daemon.dir
    base = make_base_as(d, qemu_img, 'qcow2', SIZE, SEG, seed=11)
    mid = overlay(d, qemu_img, 'mid.qcow2', base, 'qcow2')
    # mid: data over holes and over base data, zero clusters over data
    qemu_io(mid, 'qcow2', *mid_writes(SIZE, SEG, 5, 7))
    top = overlay(d, qemu_img, 'top.qcow2', mid, 'qcow2')
    qemu_io(top, 'qcow2', *top_writes(SIZE, SEG))
    model = flatten(d, qemu_img, top)
    mid_sum = sha256(mid)
    dmn, qmp, _, uri = start_drive_export(daemon, top)
    mid_node, base_node = node_of(qmp, mid), node_of(qmp, base)
    assert qmp.ok('block-commit', job_id='commit0', device='drive0',
                  top_node=mid_node, base_node=base_node,
                  speed=SLOW_SPEED) == {}

    guest = start_guest(uri)
    try:
        ev = unthrottle_to(qmp, guest, 'BLOCK_JOB_COMPLETED')
        assert 'error' not in ev['data'], ev
        assert ev['data']['type'] == 'commit', ev
        assert ev['data']['offset'] == ev['data']['len'], ev
        guest.assert_running('before the commit completed')
        finish_guest(guest, uri, 'guest writes during the commit')
    finally:
        guest.kill()
    assert not [e for e in qmp.events if e['event'] == 'BLOCK_JOB_READY']
    files = [n['file'] for n in qmp.ok('query-named-block-nodes', flat=True)]
    assert mid not in files, 'mid still in the graph: %r' % files
    qmp.close()
    dmn.stop()

    info = json.loads(qemu_img.ok('info', '--output=json', '-f', 'qcow2',
                                  top))
    assert info['full-backing-filename'] == base, info
    assert info.get('backing-filename-format') == 'qcow2', info
    chain = json.loads(qemu_img.ok('info', '--output=json',
                                   '--backing-chain', top))
    assert [i['filename'] for i in chain] == [top, base], chain
    assert sha256(mid) == mid_sum, 'mid was written'
    for img in (top, base, mid):
        check_image(qemu_img, img, 'qcow2')
    GUEST.apply_to_model(model)
    compare(qemu_img, top, 'qcow2', model, 'top after the commit')

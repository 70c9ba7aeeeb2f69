"""stream-crash-resume: kill -9 the daemon at random points of a stream,
ten times, restarting on the same images each time; the image is never
corrupt, the guest-visible content never changes, and streaming again
finishes the job.

The chain (QEMU's tools only): base.qcow2 (random data, holes, zero
clusters, zero-filled data: daemon.make_base) <- mid.qcow2 (its own data
and zero clusters over base data) <- top.qcow2 (a few writes). Before
anything runs, flat.qcow2 is the flattened chain (qemu-img convert).

Each round starts qblk on the top (-drive drive0, QMP), starts a stream
throttled to 2-8 MiB/s (so the kill lands mid-stream), sleeps a random
0-0.5 s and sends SIGKILL. The last NEAR_END rounds stream without a
limit and kill at 50-130% of the time an unthrottled stream of a copy of
the chain took, so that some kills land around the final flush and the
header rewrite (once the header no longer names mid, the rounds stop).
Then, with the daemon dead:
  * qemu-img check on top: exit 0, or 3 with leaked clusters only
    (clusters allocated but not yet referenced when the process died);
  * qemu-img compare top against flat: the content is unchanged, whether
    the header still names mid or the stream had already finished;
  * the data allocated in top never shrinks from one round to the next;
  * base and mid are never written.
A last round streams without a limit to BLOCK_JOB_COMPLETED; then top has
no backing file and still equals flat.

The seed is printed (pytest -s, or in a failure's output);
QBLK_CRASH_SEED=N replays a run's choices.

Run against qemu-storage-daemon 7.2 (QBLK_DAEMON), the throttled rounds
pass but a near-end kill that lands after the stream finished fails the
content check: QEMU rewrites the header (no backing file) while the L2
and refcount updates of the copied clusters are still only in its
metadata cache, so the guest sees zeros there (reported as xfail). qblk
flushes the image before it rewrites the header.
"""
import json
import os
import random
import shutil
import time

import pytest

from daemon import is_qsd, make_base, qblk_daemon_path, top_writes
from jobs_util import (check_consistent, check_content, crash_seed,
                       mid_writes, overlay, qemu_io, seconds_to_completed)
from qblk_testlib import MiB, sha256
from qmp_client import start_qblk_with_qmp

SIZE = 48 * MiB
SEG = 1 * MiB
ROUNDS = 10
NEAR_END = 3
SPEEDS = (2 * MiB, 4 * MiB, 8 * MiB)


def make_chain(d, qemu_img):
    """base <- mid <- top as described above; returns (base, mid, top,
    flat)."""
    base = make_base(d, SIZE, SEG, name='base.qcow2', seed=7)
    mid = overlay(d, qemu_img, 'mid.qcow2', base)
    # mid: data over holes and base data, zero clusters over base data
    qemu_io(mid, 'qcow2', *mid_writes(SIZE, SEG, 7, 9))
    top = overlay(d, qemu_img, 'top.qcow2', mid)
    qemu_io(top, 'qcow2', *top_writes(SIZE, SEG))
    flat = os.path.join(d, 'flat.qcow2')
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'qcow2', top, flat)
    return base, mid, top, flat


def allocated_in_top(qemu_img, top):
    """Bytes of data allocated in top itself (depth 0 of qemu-img map)."""
    m = json.loads(qemu_img.ok('map', '--output=json', '-f', 'qcow2', top))
    return sum(e['length'] for e in m if e['depth'] == 0 and
               (e['data'] or e['zero']))


def backing_of(qemu_img, top):
    return json.loads(qemu_img.ok('info', '--output=json', '-f', 'qcow2',
                                  top)).get('backing-filename')


def start(daemon, top):
    return start_qblk_with_qmp(daemon, ['-drive', 'file=%s,format=qcow2,'
                                        'id=drive0' % top])


def full_stream_time(daemon, top):
    """Seconds an unthrottled stream of a copy of @top (same backing)
    takes from block-stream's reply to BLOCK_JOB_COMPLETED."""
    probe = os.path.join(os.path.dirname(top), 'probe.qcow2')
    shutil.copyfile(top, probe)
    d, qmp = start(daemon, probe)
    assert qmp.ok('block-stream', job_id='stream0', device='drive0') == {}
    took = seconds_to_completed(qmp)
    qmp.close()
    d.stop()
    os.unlink(probe)
    return took


def crash_round(daemon, top, rnd, full_time=None):
    """Start qblk, stream at a random speed (unlimited near the end) and
    SIGKILL it after a random delay. Returns (speed, delay) for the
    failure messages."""
    if full_time is None:
        speed = rnd.choice(SPEEDS)
        delay = rnd.uniform(0.0, 0.5)
    else:
        speed = 0
        delay = rnd.uniform(0.5, 1.3) * full_time
    d, qmp = start(daemon, top)
    args = {'speed': speed} if speed else {}
    assert qmp.ok('block-stream', job_id='stream0', device='drive0',
                  **args) == {}
    time.sleep(delay)
    d.assert_alive()
    d.kill()
    qmp.close()
    return speed, delay


def test_stream_kill9_and_resume(daemon, qemu_img, capsys):
    seed = crash_seed(capsys)
    rnd = random.Random(seed)
    base, mid, top, flat = make_chain(daemon.dir, qemu_img)
    sums = (sha256(base), sha256(mid))
    t0 = time.monotonic()
    allocated = allocated_in_top(qemu_img, top)
    full_time = full_stream_time(daemon, top)
    for i in range(ROUNDS):
        near_end = i >= ROUNDS - NEAR_END
        speed, delay = crash_round(daemon, top, rnd,
                                   full_time if near_end else None)
        where = 'seed %d round %d (speed %d, kill after %.3f s)' % (
            seed, i, speed, delay)
        check_consistent(qemu_img, top, where)
        if near_end and is_qsd(qblk_daemon_path()) and \
                backing_of(qemu_img, top) is None and \
                qemu_img('compare', top, flat)[0] != 0:
            pytest.xfail('%s: QEMU 7.2 lost the streamed data (header '
                         'rewritten before a flush)' % where)
        check_content(qemu_img, top, flat, where, model_fmt='qcow2')
        now = allocated_in_top(qemu_img, top)
        assert now >= allocated, '%s: allocated data shrank %d -> %d' % (
            where, allocated, now)
        allocated = now
        with capsys.disabled():
            print('  round %d: speed %d MiB/s, killed after %.3f s, %d KiB '
                  'in top, backing %s' % (i, speed >> 20, delay,
                                          now >> 10,
                                          backing_of(qemu_img, top)))
        assert (sha256(base), sha256(mid)) == sums, \
            '%s: base or mid was written' % where
        if backing_of(qemu_img, top) is None:
            break       # the stream finished before the kill

    if backing_of(qemu_img, top) is not None:
        # the last run: stream to the end
        d, qmp = start(daemon, top)
        assert qmp.ok('block-stream', job_id='stream0',
                      device='drive0') == {}
        ev = qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=30,
                            match={'device': 'stream0'})
        assert 'error' not in ev['data'], ev
        assert ev['data']['offset'] == ev['data']['len'] == SIZE, ev
        assert qmp.ok('query-block-jobs') == []
        qmp.close()
        d.stop()
    where = 'seed %d, after the final stream' % seed
    assert backing_of(qemu_img, top) is None, where
    check_consistent(qemu_img, top, where)
    check_content(qemu_img, top, flat, where, model_fmt='qcow2')
    assert (sha256(base), sha256(mid)) == sums, where
    assert time.monotonic() - t0 < 30, 'too slow: %.1f s' % (
        time.monotonic() - t0)


def test_stream_progress_survives_kill9(daemon, qemu_img):
    """A stream checkpoints (flushes the top) every few seconds, so work
    done before a crash is kept: after a kill -9 four seconds into a
    throttled stream, top holds at least the first checkpoint's data, and
    a restarted stream copies only the rest (the chain's content is
    unchanged throughout)."""
    if is_qsd(qblk_daemon_path()):
        pytest.skip('qblk-specific: periodic checkpoints of the stream')
    base, mid, top, flat = make_chain(daemon.dir, qemu_img)
    before = allocated_in_top(qemu_img, top)
    d, qmp = start(daemon, top)
    speed = 4 * MiB
    assert qmp.ok('block-stream', job_id='stream0', device='drive0',
                  speed=speed) == {}
    time.sleep(4.0)
    d.assert_alive()
    d.kill()
    qmp.close()
    check_consistent(qemu_img, top, 'after kill')
    check_content(qemu_img, top, flat, 'after kill', model_fmt='qcow2')
    kept = allocated_in_top(qemu_img, top) - before
    # The checkpoint at ~3 s saw about 3 s x 4 MiB/s copied.
    assert kept >= 2 * speed, 'only %d bytes survived the crash' % kept
    d, qmp = start(daemon, top)
    assert qmp.ok('block-stream', job_id='stream0', device='drive0') == {}
    ev = qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=30)
    assert 'error' not in ev['data'], ev
    qmp.close()
    d.stop()
    check_content(qemu_img, top, flat, 'after the second stream',
                  model_fmt='qcow2')
    assert backing_of(qemu_img, top) is None

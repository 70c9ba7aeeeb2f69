"""Copy-on-read and streaming from an HTTP base (block/curl.c) with a
real nginx whose access log records every request's Range header.

- cor-over-nbd-fetched-once: a guest reads ranges of a drive (qcow2
  overlay over http://.../base.raw, copy-on-read=on) through qblk's NBD
  export, twice. Afterwards the overlay holds those ranges (qemu-img map)
  with the source's bytes, no byte range was fetched twice (the logged
  Range headers do not overlap) and the second pass fetched nothing it
  read. The copy-on-read prefetch may fetch bytes ahead of the guest that
  it never reads (they are kept in the overlay too); the test does not
  count requests, it only checks that no byte is fetched twice.
- stream-server-gone: nginx stops in the middle of a rate-limited
  block-stream. With on-error=stop the job pauses (BLOCK_JOB_ERROR), and
  after nginx returns on the same port block-job-resume completes it (the
  overlay then equals the base); with on-error=report the job fails and
  its error names the URL.
"""
import json
import os
import re
import time

import pytest

from jobs_util import job_events, qemu_io_nbd, start_drive_export
from qblk_testlib import MiB
from test_http_driver import Nginx

SIZE = 8 * MiB
CLUSTER = 64 * 1024
# (offset, length) the guest reads; far apart so that no readahead or
# prefetch of one range reaches the next
GUEST_READS = [(0, 65536), (2 * MiB + 4096, 200000), (5 * MiB + 100, MiB)]


@pytest.fixture
def web(tmp_path):
    """nginx serving base.raw (random bytes): yields (Nginx, base path)."""
    n = Nginx(str(tmp_path))
    path = os.path.join(n.www, 'base.raw')
    with open(path, 'wb') as f:
        f.write(os.urandom(SIZE))
    n.start()
    try:
        yield n, path
    finally:
        n.stop()


def overlay(qemu_img, daemon, url):
    """A qcow2 overlay over @url (made without opening the URL)."""
    top = daemon.path('top.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-u', '-b', url, '-F', 'raw',
                top, str(SIZE))
    return top


def fetched_ranges(n):
    """[(first, last)] of every ranged GET in n's access log."""
    out = []
    for method, uri, status, rng in n.access_log():
        m = re.match(r'bytes=(\d+)-(\d+)$', rng)
        if method == 'GET' and m:
            assert status == 206, (method, uri, status, rng)
            out.append((int(m.group(1)), int(m.group(2))))
    return out


def detach(qemu_img, top):
    """Drop top's backing link (qemu-img cannot open http:// here), so
    QEMU's tools judge what the overlay alone holds."""
    qemu_img.ok('rebase', '-u', '-f', 'qcow2', '-b', '', top)


def allocated(qemu_img, top):
    """[(start, end)] of data extents of the detached overlay."""
    m = json.loads(qemu_img.ok('map', '-f', 'qcow2', '--output=json', top))
    return [(e['start'], e['start'] + e['length']) for e in m if e['data']]


def covered(extents, lo, hi):
    """True if [lo, hi) lies inside the union of extents."""
    for s, e in sorted(extents):
        if s <= lo < e:
            lo = e
        if lo >= hi:
            return True
    return lo >= hi


def test_cor_over_nbd_fetched_once(daemon, qemu_img, web):
    n, path = web
    top = overlay(qemu_img, daemon, n.url + '/base.raw')
    # readahead=0: bytes read ahead but not read by the guest would be
    # dropped (copy-on-read keeps what was read) and fetched again later
    d, qmp, sock, uri = start_drive_export(
        daemon, top, ',copy-on-read=on,backing.driver=raw,'
        'backing.file.driver=http,backing.file.url=%s/base.raw,'
        'backing.file.readahead=0' % n.url)
    reads = ['read %d %d' % r for r in GUEST_READS]
    qemu_io_nbd(uri, *reads)
    first = fetched_ranges(n)
    assert first, 'the first pass fetched nothing'
    qemu_io_nbd(uri, *reads)
    # the second pass found everything it read local; a sequential-read
    # prefetch may still fetch new bytes ahead of it, never old ones
    again = fetched_ranges(n)
    assert again[:len(first)] == first
    for a0, a1 in again[len(first):]:
        for off, cnt in GUEST_READS:
            assert a1 < off or a0 >= off + cnt, \
                'the second pass fetched %r again' % ((a0, a1),)
    d.stop()
    spans = sorted(again)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 < b0, 'bytes fetched twice: %r and %r' % ((a0, a1),
                                                            (b0, b1))
    detach(qemu_img, top)
    qemu_img.ok('check', '-f', 'qcow2', top)
    ext = allocated(qemu_img, top)
    with open(path, 'rb') as f:
        src = f.read()
    raw = daemon.path('top.raw')
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', top, raw)
    with open(raw, 'rb') as f:
        got = f.read()
    for off, cnt in GUEST_READS:
        assert covered(ext, off, off + cnt), (off, cnt, ext)
        lo = off // CLUSTER * CLUSTER
        hi = -(-(off + cnt) // CLUSTER) * CLUSTER
        assert got[lo:hi] == src[lo:hi], (off, cnt)


def start_stream(qmp, on_error):
    """A slow stream of drive0 (about 8 s for the whole image)."""
    qmp.ok('block-stream', {'device': 'drive0', 'speed': MiB,
                            'on-error': on_error})


def wait_progress(qmp, timeout=60):
    """Wait until the stream has copied something, and not everything."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = qmp.ok('query-block-jobs')
        assert jobs, 'the stream ended early'
        if 0 < jobs[0]['offset'] < jobs[0]['len']:
            return
        time.sleep(0.05)
    raise TimeoutError('the stream made no progress')


def test_stream_server_gone_stop_then_resume(daemon, qemu_img, web):
    n, path = web
    top = overlay(qemu_img, daemon, n.url + '/base.raw')
    d, qmp, sock, uri = start_drive_export(
        daemon, top, extra=('--backing-protocols', 'file,http'))
    start_stream(qmp, 'stop')
    wait_progress(qmp)
    n.stop()
    ev = qmp.event_wait('BLOCK_JOB_ERROR', timeout=60)
    assert ev['data']['action'] == 'stop', ev
    assert ev['data']['operation'] == 'read', ev
    deadline = time.monotonic() + 30
    while not qmp.ok('query-block-jobs')[0]['paused']:
        assert time.monotonic() < deadline, 'the job did not pause'
        time.sleep(0.05)
    n.start()
    qmp.ok('block-job-set-speed', {'device': 'drive0', 'speed': 0})
    qmp.ok('block-job-resume', {'device': 'drive0'})
    ev = qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=120)
    assert 'error' not in ev['data'], ev
    d.stop()
    info = json.loads(qemu_img.ok('info', '--output=json', '-f', 'qcow2',
                                  top))
    assert 'backing-filename' not in info, info
    qemu_img.ok('check', '-f', 'qcow2', top)
    qemu_img.ok('compare', '-f', 'qcow2', '-F', 'raw', top, path)


def test_stream_server_gone_report_names_url(daemon, qemu_img, web):
    n, path = web
    url = n.url + '/base.raw'
    top = overlay(qemu_img, daemon, url)
    d, qmp, sock, uri = start_drive_export(
        daemon, top, extra=('--backing-protocols', 'file,http'))
    start_stream(qmp, 'report')
    wait_progress(qmp)
    n.stop()
    seq, data = job_events(qmp, 'drive0', timeout=60)
    assert 'BLOCK_JOB_ERROR' in seq, seq
    assert url in data.get('error', ''), data
    assert qmp.ok('query-block-jobs') == []
    d.stop()

"""block-stream end to end with the base image on a real remote server:
qemu-nbd and nbdkit (file plugin, delay filter) over NBD, nginx over
HTTP. The servers come from remote_servers.py.

The base (raw, made by Python in well under a second) is laid out in
4 MiB segments: random data stamped with its offset every 64 KiB, holes
(never written, so the NBD servers report them through base:allocation)
and explicit zero bytes; a 64 KiB data island sits inside one hole. The
overlay is a qcow2 made by QEMU's qemu-img with the server's URL as its
backing file (for HTTP with -u, as Debian's qemu-img has no curl), with
a few writes of its own straddling clusters and segments.

The expected guest view is built locally: a copy of the base with the
same qemu-io writes applied. After qblk streamed and stopped, QEMU's
tools judge: no backing file left, qemu-img compare identical,
qemu-img check clean, and (NBD) the base's holes are no data clusters.
"""
import json
import os
import random
import time

import pytest

from jobs_util import (COMPLETED_SEQ, NbdWriter, job_events, qemu_io,
                       query_job, run_ok, start, start_drive_export)
from qblk_testlib import MiB
from remote_servers import RemoteServers

SIZE = 256 * MiB        # the size for the three main cases
SMALL = 32 * MiB        # for the guest I/O and job control cases
SEG = 4 * MiB
KINDS = ('data', 'data', 'hole', 'data', 'zero', 'hole', 'data', 'hole')
ISLAND = (2 * SEG + SEG // 2 + 4096, 65536)     # data inside a hole

# the overlay's own writes (qemu-io commands, applied to the model too)
TOP_WRITES = ['write -P 0x5a %d 8192' % (64 * 1024 - 4096),
              'write -P 0x6b %d 12288' % (2 * SEG + 512),
              'write -z %d 65536' % (3 * SEG + 128 * 1024),
              'write -P 0x7c %d 65536' % (SIZE - 65536)]
JOB_TIMEOUT = 180       # generous: the machine is shared


def kind(i):
    return KINDS[i % len(KINDS)]


def make_base(path, size, seed=7):
    """Write the raw base of @size bytes at @path (see the module doc)."""
    rnd = random.Random(seed)
    block = bytearray(rnd.randbytes(MiB))
    with open(path, 'wb') as f:
        for i in range(size // SEG):
            off = i * SEG
            if kind(i) == 'hole':
                continue
            f.seek(off)
            if kind(i) == 'zero':
                f.write(bytes(SEG))
                continue
            for mb in range(SEG // MiB):
                for k in range(0, MiB, 65536):
                    block[k:k + 8] = (off + mb * MiB + k).to_bytes(8, 'big')
                f.write(block)
        f.seek(ISLAND[0])
        f.write(rnd.randbytes(ISLAND[1]))
        f.truncate(size)


def hole_ranges(size):
    """[(start, end)] of the base's holes, minus the island's cluster."""
    out = []
    for i in range(size // SEG):
        if kind(i) == 'hole':
            out.append((i * SEG, (i + 1) * SEG))
    lo = ISLAND[0] // 65536 * 65536
    hi = -(-(ISLAND[0] + ISLAND[1]) // 65536) * 65536
    res = []
    for s, e in out:
        if s <= lo < e:
            res += [(s, lo), (hi, e)]
        else:
            res.append((s, e))
    return res


def make_model(base, d, writes):
    """d/expect.raw: the base with the overlay's @writes applied."""
    model = os.path.join(d, 'expect.raw')
    run_ok(['cp', '--sparse=always', base, model])
    qemu_io(model, 'raw', *writes)
    return model


def make_overlay(qemu_img, d, url, size, writes=(), unsafe=False):
    """d/top.qcow2 backed by raw @url (with -u and @size if @unsafe),
    with @writes applied by qemu-io (it opens NBD backings); its path."""
    top = os.path.join(d, 'top.qcow2')
    args = ['create', '-q', '-f', 'qcow2'] + (['-u'] if unsafe else [])
    qemu_img.ok(*(args + ['-b', url, '-F', 'raw', top] +
                  ([str(size)] if unsafe else [])))
    if writes:
        qemu_io(top, 'qcow2', *writes)
    return top


def assert_standalone(qemu_img, top, model):
    """No backing file, content == model, check clean."""
    info = json.loads(qemu_img.ok('info', '--output=json', top))
    assert 'backing-filename' not in info, info
    qemu_img.ok('compare', '-f', 'qcow2', '-F', 'raw', top, model)
    qemu_img.ok('check', '-f', 'qcow2', top)


def assert_holes_not_data(qemu_img, top, size):
    """Every extent of top overlapping a base hole is no data cluster."""
    ext = json.loads(qemu_img.ok('map', '--output=json', top))
    bad = []
    for s, e in hole_ranges(size):
        for x in ext:
            if x['start'] < e and x['start'] + x['length'] > s and x['data']:
                if not _covered_by_top_write(max(s, x['start']),
                                             min(e, x['start'] +
                                                 x['length'])):
                    bad.append(x)
    assert not bad, 'base holes became data clusters: %r' % bad[:5]


def _covered_by_top_write(s, e):
    """True if [s, e) lies in clusters the overlay wrote itself."""
    for w in TOP_WRITES:
        off, n = (int(v) for v in w.split()[-2:])
        lo, hi = off // 65536 * 65536, -(-(off + n) // 65536) * 65536
        if lo <= s and e <= hi:
            return True
    return False


def stream_and_stop(daemon, top, args=()):
    """qblk with @top as drive0: stream to completion, stop qblk; the
    completion event's data."""
    d, qmp = start(daemon, ['--backing-protocols', 'file,nbd,http,https', '-drive', 'file=%s,format=qcow2,id=drive0'
                            % top] + list(args))
    qmp.ok('block-stream', device='drive0', job_id='s0')
    seq, data = job_events(qmp, 's0', timeout=JOB_TIMEOUT)
    assert seq == COMPLETED_SEQ, seq
    assert 'error' not in data, data
    assert data['offset'] == data['len'], data
    assert query_backing(qmp) is None
    qmp.close()
    d.stop()
    return data


def query_backing(qmp):
    image = qmp.ok('query-block')[0]['inserted']['image']
    return image.get('backing-image', {}).get('filename')


@pytest.fixture
def servers():
    """The servers of one test (remote_servers.RemoteServers)."""
    with RemoteServers() as s:
        yield s


@pytest.fixture
def images(daemon):
    """(dir, base path, model path) for a SIZE base."""
    d = daemon.dir
    base = os.path.join(d, 'base.raw')
    make_base(base, SIZE)
    return d, base, make_model(base, d, TOP_WRITES)


# ---- the three main cases: 256 MiB from each kind of server


def test_stream_from_qemu_nbd(daemon, qemu_img, servers, images):
    d, base, model = images
    url = servers.qemu_nbd(base, name='base')
    top = make_overlay(qemu_img, d, url, SIZE, TOP_WRITES)
    data = stream_and_stop(daemon, top)
    assert data['len'] == SIZE
    assert_standalone(qemu_img, top, model)
    assert_holes_not_data(qemu_img, top, SIZE)


def test_stream_from_nbdkit_tcp(daemon, qemu_img, servers, images):
    d, base, model = images
    url = servers.nbdkit('file', 'file=' + base, tcp=True)
    assert url.startswith('nbd://127.0.0.1:')
    top = make_overlay(qemu_img, d, url, SIZE, TOP_WRITES)
    stream_and_stop(daemon, top)
    assert_standalone(qemu_img, top, model)
    assert_holes_not_data(qemu_img, top, SIZE)


def test_stream_from_nginx(daemon, qemu_img, qblk_io, servers,
                           images):
    d, base, model = images
    www = os.path.join(d, 'www')
    os.makedirs(www)
    os.rename(base, os.path.join(www, 'base.raw'))
    web = servers.nginx(www)
    url = web.url + '/base.raw'
    top = make_overlay(qemu_img, d, url, SIZE, unsafe=True)
    # Debian's qemu-io cannot open the http backing: write through qblk
    qblk_io.ok('--backing-protocols=http', '-f', 'qcow2',
               *[a for w in TOP_WRITES for a in ('-c', w)],
               top)
    stream_and_stop(daemon, top)
    assert_standalone(qemu_img, top, model)
    # the data came from nginx: Range requests covering the whole image
    log = [e for e in web.access_log() if e[1] == '/base.raw']
    assert log and all(st in (200, 206) for _, _, st, _, _ in log), log[:5]
    # (the clusters the overlay's own writes fill whole need no fetch)
    assert_ranges_cover([r for m, _, _, r, _ in log if m == 'GET'], SIZE,
                        local=[(3 * SEG + 128 * 1024, 65536),
                               (SIZE - 65536, 65536)])


def assert_ranges_cover(ranges, size, local=()):
    """The HTTP Range headers @ranges ("bytes=A-B") cover [0, @size),
    except perhaps the (offset, length) spans of @local."""
    spans = sorted([tuple(int(v) for v in r[len('bytes='):].split('-'))
                    for r in ranges if r.startswith('bytes=')] +
                   [(o, o + n - 1) for o, n in local])
    end = 0
    for a, b in spans:
        assert a <= end, 'bytes %d-%d never fetched' % (end, a - 1)
        end = max(end, b + 1)
    assert end >= size, 'bytes from %d never fetched' % end


# ---- guest writes during a stream from a slow server


def test_guest_writes_survive_slow_nbdkit(daemon, qemu_img, servers):
    d = daemon.dir
    base = os.path.join(d, 'base.raw')
    make_base(base, SMALL)
    url = servers.nbdkit('file', 'file=' + base, filters=['delay'],
                                params=['rdelay=2ms'])
    top = make_overlay(qemu_img, d, url, SMALL)
    qd, qmp, sock, _ = start_drive_export(
        daemon, top, extra=('--backing-protocols', 'file,nbd'))
    qmp.ok('block-stream', device='drive0', job_id='s0', speed=2 * MiB)
    wait_offset(qmp, 's0', 4 * MiB)
    # [0, 2M) is already streamed, [24M, 32M) not yet (2 MiB/s)
    early = NbdWriter(sock, 0, 2 * MiB)
    late = NbdWriter(sock, 24 * MiB, SMALL)
    for w in (early, late):
        w.start()
    for w in (early, late):
        w.wait_writes(40)
    for w in (early, late):
        w.stop()
    qmp.ok('block-job-set-speed', device='s0', speed=0)
    seq, data = job_events(qmp, 's0', timeout=JOB_TIMEOUT)
    assert seq[-5:] == COMPLETED_SEQ[2:], seq
    assert 'error' not in data, data
    qmp.close()
    qd.stop()
    checks = early.qemu_io_checks() + late.qemu_io_checks()
    qemu_io(top, 'qcow2', *checks)
    writes = ['write -P %s' % c[len('read -P '):] for c in checks]
    model = make_model(base, d, writes)
    assert_standalone(qemu_img, top, model)


def wait_offset(qmp, job, offset, timeout=60):
    """Wait until @job copied at least @offset bytes."""
    deadline = time.monotonic() + timeout
    while query_job(qmp, job)['offset'] < offset:
        assert time.monotonic() < deadline, query_job(qmp, job)
        time.sleep(0.05)


# ---- job control with a delayed remote base


def test_job_control_with_delayed_nbdkit(daemon, qemu_img, servers):
    d = daemon.dir
    base = os.path.join(d, 'base.raw')
    make_base(base, SMALL)
    model = make_model(base, d, [])
    url = servers.nbdkit('file', 'file=' + base, filters=['delay'],
                                params=['rdelay=2ms'], tcp=True)
    top = make_overlay(qemu_img, d, url, SMALL)
    qd, qmp = start(daemon, ['--backing-protocols', 'file,nbd,http,https', '-drive', 'file=%s,format=qcow2,id=drive0'
                             % top])
    qmp.ok('block-stream', device='drive0', job_id='s0', speed=MiB)
    assert job_events(qmp, 's0', until='running')[0] == ['created',
                                                         'running']
    qmp.ok('block-job-set-speed', device='s0', speed=2 * MiB)
    assert query_job(qmp, 's0')['speed'] == 2 * MiB
    qmp.ok('block-job-pause', device='s0')
    assert job_events(qmp, 's0', until='paused')[0] == ['paused']
    off = query_job(qmp, 's0')['offset']
    time.sleep(0.3)
    info = query_job(qmp, 's0')
    assert (info['status'], info['offset']) == ('paused', off), info
    qmp.ok('block-job-resume', device='s0')
    assert job_events(qmp, 's0', until='running')[0] == ['running']
    qmp.ok('block-job-cancel', device='s0')
    seq, data = job_events(qmp, 's0', timeout=JOB_TIMEOUT)
    assert seq == ['aborting', 'BLOCK_JOB_CANCELLED', 'concluded',
                   'null'], seq
    assert data['len'] == SMALL and data['offset'] < SMALL, data
    assert query_backing(qmp) == url
    # a second stream, unthrottled, completes from where the image is
    qmp.ok('block-stream', device='drive0', job_id='s1')
    seq, data = job_events(qmp, 's1', timeout=JOB_TIMEOUT)
    assert seq == COMPLETED_SEQ, seq
    assert 'error' not in data and data['offset'] == SMALL, data
    assert query_backing(qmp) is None
    qmp.close()
    qd.stop()
    assert_standalone(qemu_img, top, model)

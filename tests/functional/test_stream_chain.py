"""block-stream over a 3-image chain (raw base <- qcow2 mid <- qcow2 top):
the whole chain, down to base / base-node, with a backing-file string,
into a v2 image, restarted after a cancel, and two streams on disjoint
parts of one chain at once.

qblk is driven over QMP; QEMU's tools judge the result: qemu-img compare
against the guest view before the stream, info --backing-chain for the
header's backing reference, map for where the data lives, check for
consistency, and checksums show the streamed-out images untouched.
"""
import os
import re

from jobs_util import (COMPLETED_SEQ, job_events, qemu_io, run_job_ok,
                       run_ok, start)
from stream_util import MiB, SIZE, Chain, chain_blockdev_args


def stream_ok(qmp, job, **args):
    """Run block-stream to completion; return its terminal event data."""
    return run_job_ok(qmp, 'block-stream', job, **args)


def stream_drive_to_base(daemon, c):
    """Stream c.top, served as drive0, down to c.base; check the result
    reads as before and is clean."""
    d, qmp = start(daemon, ['-drive', 'file=%s,format=qcow2,id=drive0'
                            % c.top])
    stream_ok(qmp, 'drive0', device='drive0', base=c.base)
    d.stop()
    c.assert_content()
    c.check()


def depth_of(m, offset):
    for e in m:
        if e['start'] <= offset < e['start'] + e['length']:
            return e['depth'], e['data'], e['zero']
    raise AssertionError('offset %d not mapped' % offset)


def test_stream_whole_chain(daemon):
    c = Chain(daemon.dir)
    d, qmp = start(daemon, ['-drive', 'file=%s,format=qcow2,id=drive0'
                            % c.top])
    data = stream_ok(qmp, 'drive0', device='drive0')
    assert data == {'device': 'drive0', 'len': SIZE, 'offset': SIZE,
                    'speed': 0, 'type': 'stream'}
    image = qmp.ok('query-block')[0]['inserted']['image']
    assert 'backing-image' not in image and 'backing-filename' not in image
    d.stop()
    assert c.chain() == [(c.top, None, None)]
    c.assert_content()
    c.assert_lower_untouched()
    c.check()
    assert all(e['depth'] == 0 for e in c.map()), c.map()


def test_stream_to_base_by_filename(daemon):
    """base is named as qblk opened it (the resolved path); the header
    then names that path. mid's zero clusters over base data become
    zero clusters of top, so base's 0x11 stays hidden there."""
    c = Chain(daemon.dir)
    d, qmp = start(daemon, ['-drive', 'file=%s,format=qcow2,id=drive0'
                            % c.top])
    stream_ok(qmp, 'drive0', device='drive0', base=c.base)
    d.stop()
    assert c.chain() == [(c.top, c.base, 'raw'), (c.base, None, None)]
    c.assert_content()
    c.assert_lower_untouched()
    c.check()
    m = c.map()
    assert depth_of(m, 0)[0] == 1                   # base data stays below
    assert depth_of(m, 1 * MiB)[:2] == (0, True)    # mid's data copied
    assert depth_of(m, 3 * MiB) == (0, False, True)  # zero cluster in top
    assert depth_of(m, 6 * MiB)[:2] == (0, True)


def test_stream_base_node_with_backing_file(daemon):
    """--blockdev nodes: base-node selects the base, backing-file is the
    string written (relative, as the user wants it)."""
    c = Chain(daemon.dir)
    d, qmp = start(daemon, chain_blockdev_args(c))
    stream_ok(qmp, 'j0', job_id='j0', device='top', base_node='base',
              backing_file='base.raw')
    nodes = {n['node-name'] for n in
             qmp.ok('query-named-block-nodes', flat=True)}
    assert 'mid' in nodes       # the monitor still owns it; out of chain
    d.stop()
    assert c.chain()[0] == (c.top, 'base.raw', 'raw')
    c.assert_content()
    c.assert_lower_untouched()
    c.check()


def test_stream_bottom(daemon):
    """bottom=mid is the same as base-node=base; bottom=top copies nothing
    and only rewrites the header (len 0, as QEMU)."""
    c = Chain(daemon.dir)
    d, qmp = start(daemon, chain_blockdev_args(c))
    data = stream_ok(qmp, 'j1', job_id='j1', device='top', bottom='top')
    assert (data['len'], data['offset']) == (0, 0)
    stream_ok(qmp, 'j2', job_id='j2', device='top', bottom='mid')
    d.stop()
    assert c.chain()[0] == (c.top, c.base, 'raw')
    c.assert_content()
    c.assert_lower_untouched()


def test_stream_zero_clusters_into_v2_image(daemon):
    """A v2 top cannot record zero clusters: mid's zeroes over base data
    are written as zero data, or base's data would show through."""
    c = Chain(daemon.dir, top_compat='0.10')
    stream_drive_to_base(daemon, c)
    assert c.chain()[0] == (c.top, c.base, 'raw')


def test_stream_shorter_mid(daemon):
    """mid is shorter than top: past its end the chain reads zeroes,
    which must hide base's data after streaming down to base."""
    c = Chain(daemon.dir, mid_size=2 * MiB)
    stream_drive_to_base(daemon, c)


def copied_bytes(stderr):
    """Sum of the stream_co_copy trace lines' bytes."""
    return sum(int(m.group(1)) for m in
               re.finditer(r':stream_co_copy .* bytes (\d+)', stderr))


def test_stream_restart_after_cancel_copies_only_missing(daemon):
    c = Chain(daemon.dir)
    args = ['-drive', 'file=%s,format=qcow2,id=drive0' % c.top,
            '--trace', 'stream_co_copy']
    d, qmp = start(daemon, args)
    qmp.ok('block-stream', device='drive0', speed=1 * MiB)
    qmp.event_wait('JOB_STATUS_CHANGE', match={'status': 'running'})
    deadline = 50
    while qmp.ok('query-block-jobs')[0]['offset'] < 2 * MiB and deadline:
        qmp.drain_events(0.1)
        deadline -= 1
    qmp.ok('block-job-cancel', device='drive0')
    seq, data = job_events(qmp, 'drive0')
    assert seq[-4:] == ['aborting', 'BLOCK_JOB_CANCELLED', 'concluded',
                        'null'], seq
    first = copied_bytes(d.stderr)
    assert 0 < first < 5 * MiB, first
    # The chain is unchanged after a cancel.
    image = qmp.ok('query-block')[0]['inserted']['image']
    assert image['backing-image']['filename'] == c.mid
    qmp.ok('block-stream', device='drive0')
    seq, data = job_events(qmp, 'drive0')
    assert seq == COMPLETED_SEQ, seq
    d.stop()
    total = copied_bytes(d.stderr)
    # Everything but top's own 512k is allocated below (a raw base
    # allocates all of itself); the two runs together copy it once.
    assert total == SIZE - 512 * 1024, (first, total)
    c.assert_content()
    assert c.chain() == [(c.top, None, None)]


def test_two_streams_on_disjoint_parts_of_one_chain(daemon):
    """n0 (raw) <- n1 <- n2 <- n3 <- n4: stream n3 into n4 (base n2) and
    n1 into n2 (base n0) at once; each job holds only its own part."""
    dd = daemon.dir
    run_ok(['qemu-img', 'create', '-q', '-f', 'raw', 'n0.img', str(SIZE)],
           cwd=dd)
    qemu_io(os.path.join(dd, 'n0.img'), 'raw', 'write -P 0x10 0 8M')
    for i in range(1, 5):
        prev = 'n%d.%s' % (i - 1, 'img' if i == 1 else 'qcow2')
        run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', prev, '-F',
                'raw' if i == 1 else 'qcow2', 'n%d.qcow2' % i], cwd=dd)
        qemu_io(os.path.join(dd, 'n%d.qcow2' % i), 'qcow2',
                'write -P 0x%x %dM 2M' % (0x10 + i, i))
    top = os.path.join(dd, 'n4.qcow2')
    expect = os.path.join(dd, 'expect.raw')
    run_ok(['qemu-img', 'convert', '-O', 'raw', top, expect])
    args = ['--blockdev', 'driver=file,filename=%s/n0.img,node-name=f0' % dd,
            '--blockdev', 'driver=raw,file=f0,node-name=n0']
    for i in range(1, 5):
        args += ['--blockdev', 'driver=file,filename=%s/n%d.qcow2,'
                 'node-name=f%d' % (dd, i, i),
                 '--blockdev', 'driver=qcow2,file=f%d,node-name=n%d,'
                 'backing=n%d' % (i, i, i - 1)]
    d, qmp = start(daemon, args)
    qmp.ok('block-stream', args={'job-id': 'upper', 'device': 'n4',
                                 'base-node': 'n2', 'speed': 2 * MiB})
    qmp.ok('block-stream', args={'job-id': 'lower', 'device': 'n2',
                                 'base-node': 'n0', 'speed': 2 * MiB})
    jobs = {j['device']: j['status'] for j in qmp.ok('query-block-jobs')}
    assert set(jobs) == {'upper', 'lower'}
    for job in ('upper', 'lower'):
        seq, data = job_events(qmp, job)
        assert seq == COMPLETED_SEQ, (job, seq)
    d.stop()
    run_ok(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw', top, expect])
    n2 = os.path.join(dd, 'n2.qcow2')
    out = run_ok(['qemu-img', 'info', '-U', '--backing-chain', top])
    assert 'n3.qcow2' not in out and 'n1.qcow2' not in out, out
    for img in (top, n2):
        run_ok(['qemu-img', 'check', '-q', img])

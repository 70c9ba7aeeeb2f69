"""block-commit of intermediate images in a 4-image chain
(base <- s1 <- s2 <- top, see commit_util.py), driven over QMP.

Covered: s2 into s1 and s1 into base by node names (lower nodes opened
read-only, so base and the overlay are reopened read-write and back),
s2 into base by file names through -drive, the overlay's new backing
string (base's file name, or backing-file), a guest reading the whole
chain through the NBD export during and after the job, cancel before
completion (chain unchanged; a second run completes), pause / resume /
speed, and blkdebug write errors on the base with each on-error policy.
QEMU's tools judge the images: qemu-img compare against each image's
view before the commit, info --backing-chain, map and check.
"""
import time

from commit_util import (MiB, SIZE, Chain, blockdev_args, commit_ok,
                         guest_read, node_chain)
from jobs_util import (CANCELLED_SEQ, COMPLETED_SEQ, job_events, query_job,
                       start)


def node_info(qmp, name):
    for n in qmp.ok('query-named-block-nodes', flat=True):
        if n['node-name'] == name:
            return n
    raise AssertionError('no node %s' % name)


def test_commit_s2_into_s1_by_node(daemon):
    c = Chain(daemon.dir)
    d, qmp = start(daemon, blockdev_args(c))
    data = commit_ok(qmp, 'c0', job_id='c0', device='top', top_node='s2',
                     base_node='s1')
    assert data == {'device': 'c0', 'len': SIZE, 'offset': SIZE,
                    'speed': 0, 'type': 'commit'}
    assert node_chain(qmp) == [c.path['top'], c.path['s1'], c.path['base']]
    # base and overlay went back to read-only; s1 too
    assert node_info(qmp, 's1')['ro'] is True
    guest_read(c)
    d.stop()
    assert c.backing_of('top') == c.path['s1']
    c.assert_reads('top', 'top')
    c.assert_reads('s1', 's2')          # s1 now reads what s2 read
    after = c.checksums()
    assert after['s2'] == c.sums['s2'] and after['base'] == c.sums['base']
    c.check_all()


def test_commit_s1_into_base_overlay_read_only(daemon):
    """The overlay (s2) is a read-only intermediate node: it is reopened
    read-write for the header rewrite and back to read-only."""
    c = Chain(daemon.dir)
    d, qmp = start(daemon, blockdev_args(c))
    commit_ok(qmp, 'c1', job_id='c1', device='top', top_node='s1',
              base_node='base')
    assert node_chain(qmp) == [c.path['top'], c.path['s2'], c.path['base']]
    assert node_info(qmp, 's2')['ro'] is True
    assert node_info(qmp, 'base')['ro'] is True
    d.stop()
    assert c.backing_of('s2') == c.path['base']
    c.assert_reads('top', 'top')
    c.assert_reads('s2', 's2')
    c.assert_reads('base', 's1')
    c.check_all()
    m = c.map('base')
    zero = [e for e in m if e['start'] <= 4 * MiB < e['start'] + e['length']]
    assert zero[0]['zero'] and not zero[0]['data'], m   # a zero write


def test_commit_s2_into_base_by_filename_with_guest(daemon):
    """-drive chain, top/base given as file names (deprecated but what
    older libvirt sends); a guest reads the whole view through NBD in a
    loop while the throttled job runs; backing-file sets the string."""
    c = Chain(daemon.dir)
    sock = c.dir + '/nbd.sock'
    d, qmp = start(daemon, [
        '-drive', 'file=%s,format=qcow2,id=drive0,if=none' % c.path['top'],
        '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
        '--export', 'type=nbd,id=exp0,node-name=drive0,name=top,'
        'writable=on'])
    qmp.ok('block-commit', device='drive0', top=c.path['s2'],
           base=c.path['base'], speed=4 * MiB, backing_file='base.qcow2')
    reads = 0
    while query_job(qmp, 'drive0') is not None:
        guest_read(c)
        reads += 1
        qmp.drain_events(0)
    seq, data = job_events(qmp, 'drive0')
    assert seq[-3:] == ['BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
    assert 'error' not in data, data
    assert reads >= 2
    guest_read(c)
    image = qmp.ok('query-block')[0]['inserted']['image']
    assert image['backing-image']['filename'] == c.path['base']
    d.stop()
    assert c.backing_chain() == [(c.path['top'], 'base.qcow2'),
                                 (c.path['base'], None)]
    c.assert_reads('top', 'top')
    c.assert_reads('base', 's2')
    after = c.checksums()
    assert after['s1'] == c.sums['s1'] and after['s2'] == c.sums['s2']
    c.check_all()


def test_commit_cancel_leaves_chain(daemon):
    c = Chain(daemon.dir)
    d, qmp = start(daemon, blockdev_args(c))
    before = c.backing_chain()
    qmp.ok('block-commit', job_id='c2', device='top', top_node='s2',
           base_node='base', speed=512 * 1024)
    time.sleep(0.3)
    qmp.ok('block-job-cancel', device='c2')
    seq, data = job_events(qmp, 'c2')
    assert seq == CANCELLED_SEQ, seq
    assert 0 < data['offset'] < SIZE, data
    assert node_chain(qmp) == [c.path[n] for n in ('top', 's2', 's1',
                                                   'base')]
    assert node_info(qmp, 'base')['ro'] is True
    guest_read(c)
    # run again: completes from scratch
    commit_ok(qmp, 'c3', job_id='c3', device='top', top_node='s2',
              base_node='base')
    d.stop()
    assert before != c.backing_chain()
    assert c.backing_of('top') == c.path['base']
    c.assert_reads('top', 'top')
    c.assert_reads('base', 's2')
    c.check_all()


def test_commit_cancel_chain_files_unchanged(daemon):
    """After a cancel every header still names the same backing file."""
    c = Chain(daemon.dir)
    d, qmp = start(daemon, blockdev_args(c))
    before = c.backing_chain()
    qmp.ok('block-commit', job_id='c4', device='top', top_node='s2',
           base_node='base', speed=256 * 1024)
    time.sleep(0.2)
    qmp.ok('job-cancel', args={'id': 'c4'})
    seq, _ = job_events(qmp, 'c4')
    assert seq == CANCELLED_SEQ, seq
    d.stop()
    assert c.backing_chain() == before
    after = c.checksums()
    for n in ('s1', 's2', 'top'):
        assert after[n] == c.sums[n], n
    c.assert_reads('top', 'top')
    c.check_all()


def test_commit_pause_resume_speed(daemon):
    c = Chain(daemon.dir)
    d, qmp = start(daemon, blockdev_args(c))
    qmp.ok('block-commit', job_id='c5', device='top', top_node='s2',
           base_node='base', speed=256 * 1024)
    qmp.ok('block-job-pause', device='c5')
    qmp.event_wait('JOB_STATUS_CHANGE', 10, match={'id': 'c5',
                                                    'status': 'paused'})
    j = query_job(qmp, 'c5')
    assert j['paused'] is True and j['status'] == 'paused'
    assert j['type'] == 'commit' and j['speed'] == 256 * 1024
    off = j['offset']
    time.sleep(0.3)
    assert query_job(qmp, 'c5')['offset'] == off
    qmp.ok('block-job-set-speed', device='c5', speed=0)
    assert query_job(qmp, 'c5')['speed'] == 0
    qmp.ok('block-job-resume', device='c5')
    seq, data = job_events(qmp, 'c5')
    assert seq[-5:] == COMPLETED_SEQ[-5:], seq
    assert data['offset'] == SIZE
    d.stop()
    c.assert_reads('top', 'top')
    c.assert_reads('base', 's2')
    c.check_all()


def test_commit_manual_finalize_dismiss(daemon):
    c = Chain(daemon.dir)
    d, qmp = start(daemon, blockdev_args(c))
    qmp.ok('block-commit', job_id='c6', device='top', top_node='s1',
           auto_finalize=False, auto_dismiss=False)
    seq, _ = job_events(qmp, 'c6', until='BLOCK_JOB_PENDING')
    assert seq == ['created', 'running', 'waiting', 'pending',
                   'BLOCK_JOB_PENDING'], seq
    # nothing switched yet
    assert node_chain(qmp) == [c.path[n] for n in ('top', 's2', 's1',
                                                   'base')]
    qmp.ok('job-finalize', args={'id': 'c6'})
    seq, _ = job_events(qmp, 'c6', until='concluded')
    assert seq == ['BLOCK_JOB_COMPLETED', 'concluded'], seq
    assert node_chain(qmp) == [c.path[n] for n in ('top', 's2', 'base')]
    qmp.ok('job-dismiss', args={'id': 'c6'})
    d.stop()
    c.assert_reads('top', 'top')
    c.check_all()


# ---- on-error: blkdebug fails writes into the base

ERR_SECTOR = 2 * MiB // 512     # s2's data: the copy writes it to base


def start_dbg(daemon, c, errno=5, once=False):
    """The chain with a blkdebug node 'dbg' between s1 and base that
    fails the write of ERR_SECTOR into base."""
    rule = ('driver=blkdebug,node-name=dbg,image=base,read-only=on,'
            'inject-error.0.event=write_aio,inject-error.0.errno=%d,'
            'inject-error.0.sector=%d' % (errno, ERR_SECTOR))
    if once:
        rule += ',inject-error.0.once=on'
    return start(daemon, blockdev_args(c, base_node=['--blockdev', rule]))


def dbg_chain(c):
    return [c.path[n] for n in ('top', 's2', 's1')]


def test_commit_on_error_report(daemon):
    c = Chain(daemon.dir)
    d, qmp = start_dbg(daemon, c)
    before = c.backing_chain()
    qmp.ok('block-commit', job_id='e0', device='top', top_node='s2',
           base_node='dbg')
    seq, data = job_events(qmp, 'e0')
    assert seq == ['created', 'running', 'BLOCK_JOB_ERROR', 'aborting',
                   'BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
    assert data['error'] == 'Input/output error', data
    assert node_chain(qmp)[:3] == dbg_chain(c)
    guest_read(c)
    d.stop()
    assert c.backing_chain() == before
    c.assert_reads('top', 'top')
    c.check_all()


def test_commit_on_error_error_event(daemon):
    """BLOCK_JOB_ERROR names the job and says write."""
    c = Chain(daemon.dir)
    d, qmp = start_dbg(daemon, c)
    qmp.ok('block-commit', job_id='e1', device='top', top_node='s2',
           base_node='dbg')
    ev = qmp.event_wait('BLOCK_JOB_ERROR', 10)
    assert ev['data'] == {'device': 'e1', 'operation': 'write',
                          'action': 'report'}
    job_events(qmp, 'e1')


def test_commit_on_error_stop_then_resume(daemon):
    c = Chain(daemon.dir)
    d, qmp = start_dbg(daemon, c, once=True)
    qmp.ok('block-commit', job_id='e2', device='top', top_node='s2',
           base_node='dbg', on_error='stop')
    ev = qmp.event_wait('BLOCK_JOB_ERROR', 10)
    assert ev['data']['action'] == 'stop'
    qmp.event_wait('JOB_STATUS_CHANGE', 10, match={'id': 'e2',
                                                    'status': 'paused'})
    j = query_job(qmp, 'e2')
    assert j['io-status'] == 'failed' and j['paused'] is True
    qmp.ok('block-job-resume', device='e2')
    seq, data = job_events(qmp, 'e2')
    assert seq[-5:] == COMPLETED_SEQ[-5:], seq
    assert 'error' not in data and data['offset'] == SIZE, data
    # top -> dbg (a filter: it shows base's file name) -> base
    assert node_chain(qmp) == [c.path['top'], c.path['base'],
                               c.path['base']]
    guest_read(c)
    d.stop()
    assert c.backing_of('top') == c.path['base']
    c.assert_reads('top', 'top')
    c.assert_reads('base', 's2')
    c.check_all()


def test_commit_on_error_ignore(daemon):
    """ignore: the job goes on to the end, but ends failed, chain kept."""
    c = Chain(daemon.dir)
    d, qmp = start_dbg(daemon, c)
    before = c.backing_chain()
    qmp.ok('block-commit', job_id='e3', device='top', top_node='s2',
           base_node='dbg', on_error='ignore')
    seq, data = job_events(qmp, 'e3')
    assert 'BLOCK_JOB_ERROR' in seq and seq[-3:] == [
        'BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
    assert data['error'] == 'Input/output error'
    assert data['offset'] == SIZE, data
    d.stop()
    assert c.backing_chain() == before
    c.assert_reads('top', 'top')
    c.check_all()


def test_commit_on_error_enospc(daemon):
    """enospc: EIO is reported; ENOSPC stops with io-status nospace."""
    c = Chain(daemon.dir)
    d, qmp = start_dbg(daemon, c, errno=28, once=True)
    qmp.ok('block-commit', job_id='e4', device='top', top_node='s2',
           base_node='dbg', on_error='enospc')
    ev = qmp.event_wait('BLOCK_JOB_ERROR', 10)
    assert ev['data']['action'] == 'stop'
    qmp.event_wait('JOB_STATUS_CHANGE', 10, match={'id': 'e4',
                                                    'status': 'paused'})
    assert query_job(qmp, 'e4')['io-status'] == 'nospace'
    qmp.ok('block-job-resume', device='e4')
    seq, data = job_events(qmp, 'e4')
    assert 'error' not in data, (seq, data)
    d.stop()
    c.assert_reads('base', 's2')
    c.check_all()

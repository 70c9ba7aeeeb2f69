"""block-stream's on-error policies, with errors injected by blkdebug.

The chain is base <- mid <- top (qcow2, 4 MiB; base 0x11 everywhere, mid
0x22 in [1M, 3M), top 0x33 in [0, 512K)), opened with --blockdev so that
top's backing link goes through a blkdebug node over mid:

    top --backing--> dbg (blkdebug) --image--> mid --backing--> base

The stream copies into top what top does not hold, reading it through
dbg, so a rule on dbg fails the stream's read of a chosen sector (2 MiB,
mid's data). Reference 5.1 and 3 are the contract: report fails the job
(BLOCK_JOB_ERROR action report, then BLOCK_JOB_COMPLETED with an error,
backing kept); stop pauses it with io-status failed until
block-job-resume retries; ignore runs to the end but fails and keeps the
backing; enospc stops on ENOSPC and reports anything else. QEMU's tools
judge the images afterwards (qemu-img check, compare, map, info).
"""
import json

import pytest

from daemon import qcow2_blockdev, require_qblk
from jobs_util import qcow2_chain
from qmp_client import start_qblk_with_qmp
from qblk_testlib import MiB

SIZE = 4 * MiB
ERR_SECTOR = 2 * MiB // 512
TIMEOUT = 30


class Chain:
    """The images, the expected content and a daemon serving the chain."""

    def __init__(self, daemon, qemu_img, qemu_io):
        self.daemon = daemon
        self.qemu_img = qemu_img
        self.base, self.mid, self.top = qcow2_chain(
            daemon.dir, SIZE, [('base', ['write -P 0x11 0 4M']),
                               ('mid', ['write -P 0x22 1M 2M']),
                               ('top', ['write -P 0x33 0 512k'])])
        self.expected = daemon.path('expected.raw')
        qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', self.top,
                    self.expected)
        self.d = self.qmp = None

    def lower_args(self):
        """--blockdev arguments for base, mid and top's file node."""
        return (qcow2_blockdev(self.base, 'base') +
                ['--blockdev', 'driver=file,filename=%s,node-name=mid-file'
                 % self.mid,
                 '--blockdev', 'driver=qcow2,file=mid-file,node-name=mid,'
                 'backing=base',
                 '--blockdev', 'driver=file,filename=%s,node-name=top-file'
                 % self.top])

    def start(self, rule):
        """Serve the chain with dbg's one rule given as keyval options."""
        require_qblk('block jobs over a --blockdev chain')
        args = self.lower_args() + [
            '--blockdev', 'driver=blkdebug,node-name=dbg,image=mid,' +
            ','.join('inject-error.0.%s=%s' % kv for kv in rule.items()),
            '--blockdev', 'driver=qcow2,file=top-file,node-name=top,'
            'backing=dbg']
        self.d, self.qmp = start_qblk_with_qmp(self.daemon, args)

    def start_qmp_graph(self, rule):
        """The same graph, but dbg and top made by QMP blockdev-add (the
        rule as a JSON inject-error list)."""
        require_qblk('block jobs over a blockdev-add chain')
        self.d, self.qmp = start_qblk_with_qmp(self.daemon,
                                               self.lower_args())
        rule = {k: {'on': True, 'off': False}.get(v, v)
                for k, v in rule.items()}
        self.qmp.ok('blockdev-add', args={
            'driver': 'blkdebug', 'node-name': 'dbg', 'image': 'mid',
            'inject-error': [rule]})
        self.qmp.ok('blockdev-add', args={
            'driver': 'qcow2', 'node-name': 'top', 'file': 'top-file',
            'backing': 'dbg'})

    def stream(self, **args):
        self.qmp.ok('block-stream', job_id='job0', device='top', **args)

    def job(self):
        jobs = self.qmp.ok('query-block-jobs')
        assert len(jobs) == 1, jobs
        return jobs[0]

    def stop(self):
        """Stop the daemon (images flushed and closed)."""
        self.qmp.close()
        self.d.stop()

    def info(self):
        return json.loads(self.qemu_img.ok('info', '--output=json', '-f',
                                           'qcow2', self.top))

    def check_images(self, backing):
        """top is clean, reads as before the stream, and its header names
        @backing (None: no backing file)."""
        self.qemu_img.ok('check', '-q', '-f', 'qcow2', self.top)
        self.qemu_img.ok('compare', '-q', '-f', 'qcow2', '-F', 'raw',
                         self.top, self.expected)
        assert self.info().get('backing-filename') == backing

    def top_map(self):
        return json.loads(self.qemu_img.ok('map', '--output=json', '-f',
                                           'qcow2', self.top))


@pytest.fixture
def chain(daemon, qemu_img, qemu_io):
    c = Chain(daemon, qemu_img, qemu_io)
    yield c
    if c.qmp:
        c.qmp.close()


def job_events(qmp, job='job0', timeout=TIMEOUT):
    """Every event of @job until it reaches status null, in order, as
    'status:S' for JOB_STATUS_CHANGE and (name, data) otherwise."""
    out = []
    while True:
        if not qmp.events:
            qmp.recv(timeout)       # events land on qmp.events
        ev = qmp.events.pop(0)
        if 'event' not in ev:
            raise AssertionError('unexpected reply %r' % ev)
        data = ev.get('data', {})
        if data.get('id', data.get('device')) != job:
            continue
        if ev['event'] == 'JOB_STATUS_CHANGE':
            out.append('status:' + data['status'])
            if data['status'] == 'null':
                return out
        else:
            out.append((ev['event'], data))


def names(events):
    return [e if isinstance(e, str) else e[0] for e in events]


def wait_status(qmp, status, job='job0', timeout=TIMEOUT):
    qmp.event_wait('JOB_STATUS_CHANGE', timeout=timeout,
                   match={'id': job, 'status': status})


def in_top(m, start, end):
    """True if all of [start, end) is data at depth 0 in map m."""
    return all(e['depth'] == 0 and e['data'] for e in m
               if e['start'] < end and e['start'] + e['length'] > start)


def rule(errno=5, once='on', sector=ERR_SECTOR):
    return {'event': 'read_aio', 'errno': errno, 'sector': sector,
            'once': once}


def test_stream_on_error_report(chain):
    chain.start(rule())
    chain.stream()
    evs = job_events(chain.qmp)
    assert names(evs)[-5:] == ['BLOCK_JOB_ERROR', 'status:aborting',
                               'BLOCK_JOB_COMPLETED', 'status:concluded',
                               'status:null'], evs
    assert evs[-5][1] == {'device': 'job0', 'operation': 'read',
                          'action': 'report'}
    done = evs[-3][1]
    assert done['type'] == 'stream' and done['device'] == 'job0'
    assert done['error'] == 'Input/output error'
    assert done['len'] == SIZE and done['offset'] < SIZE
    assert chain.qmp.ok('query-block-jobs') == []
    # the graph still goes through dbg; a second stream can finish
    chain.stream()
    evs = job_events(chain.qmp)
    assert 'BLOCK_JOB_ERROR' not in names(evs)
    assert 'error' not in evs[names(evs).index('BLOCK_JOB_COMPLETED')][1]
    chain.stop()
    chain.check_images(None)


def test_stream_on_error_report_keeps_backing(chain):
    chain.start(rule(once='off'))
    chain.stream(on_error='report')
    evs = job_events(chain.qmp)
    assert names(evs).count('BLOCK_JOB_ERROR') == 1
    assert 'error' in evs[names(evs).index('BLOCK_JOB_COMPLETED')][1]
    chain.stop()
    chain.check_images(chain.mid)


def test_stream_on_error_stop_then_resume(chain):
    chain.start(rule(once='on'))
    chain.stream(on_error='stop')
    ev = chain.qmp.event_wait('BLOCK_JOB_ERROR', timeout=TIMEOUT)
    assert ev['data'] == {'device': 'job0', 'operation': 'read',
                          'action': 'stop'}
    wait_status(chain.qmp, 'paused')
    job = chain.job()
    assert (job['status'], job['io-status'], job['paused']) == \
        ('paused', 'failed', True), job
    assert job['offset'] < job['len'] == SIZE
    chain.qmp.ok('block-job-resume', device='job0')
    evs = job_events(chain.qmp)
    assert 'BLOCK_JOB_ERROR' not in names(evs), evs
    done = evs[names(evs).index('BLOCK_JOB_COMPLETED')][1]
    assert 'error' not in done and done['offset'] == done['len'] == SIZE
    assert names(evs)[-4:] == ['status:pending', 'BLOCK_JOB_COMPLETED',
                               'status:concluded', 'status:null'], evs
    chain.stop()
    chain.check_images(None)
    assert in_top(chain.top_map(), 0, SIZE)


def test_stream_on_error_stop_cancel_needs_force(chain):
    chain.start(rule(once='off'))
    chain.stream(on_error='stop')
    chain.qmp.event_wait('BLOCK_JOB_ERROR', timeout=TIMEOUT)
    wait_status(chain.qmp, 'paused')
    e = chain.qmp.err('block-job-cancel', device='job0')
    assert e == {'class': 'GenericError', 'desc': "The block job for "
                 "device 'job0' is currently paused"}, e
    chain.qmp.ok('block-job-cancel', device='job0', force=True)
    evs = job_events(chain.qmp)
    assert 'BLOCK_JOB_CANCELLED' in names(evs), evs
    chain.stop()
    chain.check_images(chain.mid)


def test_stream_on_error_ignore(chain):
    chain.start(rule(once='off'))
    chain.stream(on_error='ignore')
    evs = job_events(chain.qmp)
    errors = [e[1] for e in evs if e[0] == 'BLOCK_JOB_ERROR']
    assert errors and all(e == {'device': 'job0', 'operation': 'read',
                                'action': 'ignore'} for e in errors), evs
    assert 'status:paused' not in evs
    done = evs[names(evs).index('BLOCK_JOB_COMPLETED')][1]
    # the whole image was walked, but the job failed
    assert done['offset'] == done['len'] == SIZE, done
    assert done.get('error'), done
    chain.stop()
    chain.check_images(chain.mid)
    m = chain.top_map()
    assert in_top(m, 512 * 1024, 1 * MiB) and in_top(m, 3 * MiB, SIZE), m
    assert not in_top(m, 2 * MiB, 2 * MiB + 512), m


def test_stream_on_error_enospc_stops_on_enospc(chain):
    chain.start_qmp_graph(rule(errno=28))
    chain.stream(on_error='enospc')
    ev = chain.qmp.event_wait('BLOCK_JOB_ERROR', timeout=TIMEOUT)
    assert ev['data']['action'] == 'stop'
    wait_status(chain.qmp, 'paused')
    assert chain.job()['io-status'] == 'nospace'
    chain.qmp.ok('block-job-resume', device='job0')
    evs = job_events(chain.qmp)
    assert 'error' not in evs[names(evs).index('BLOCK_JOB_COMPLETED')][1]
    chain.stop()
    chain.check_images(None)


def test_stream_on_error_enospc_reports_eio(chain):
    chain.start_qmp_graph(rule(errno=5))
    chain.stream(on_error='enospc')
    evs = job_events(chain.qmp)
    err = [e[1] for e in evs if e[0] == 'BLOCK_JOB_ERROR']
    assert err == [{'device': 'job0', 'operation': 'read',
                    'action': 'report'}], evs
    done = evs[names(evs).index('BLOCK_JOB_COMPLETED')][1]
    assert done['error'] == 'Input/output error'
    chain.stop()
    chain.check_images(chain.mid)

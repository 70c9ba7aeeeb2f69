"""Controlling a stream job over QMP: query-block-jobs / query-jobs shape
while it is throttled, pause/resume/cancel/set-speed in every state
(running, paused, pending with auto-finalize off, concluded with
auto-dismiss off), with the state transitions and events of QEMU 7.2,
and the rate limit's accuracy (16 MiB/s over 4 s, within 5%).

The image: an empty qcow2 top over a qcow2 base holding 96 MiB of data,
so a throttled stream runs for as long as a test needs.
"""
import json
import os
import time

import pytest

from jobs_util import MiB, job_events, qemu_io, query_job, run_ok, start

BIG = 96 * MiB
JOB_KEYS = {'type', 'device', 'len', 'offset', 'busy', 'paused', 'speed',
            'io-status', 'ready', 'status', 'auto-finalize', 'auto-dismiss'}


class Env:
    def __init__(self, daemon, size=BIG):
        d = daemon.dir
        self.base = os.path.join(d, 'base.qcow2')
        self.top = os.path.join(d, 'top.qcow2')
        run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', self.base,
                str(size)])
        qemu_io(self.base, 'qcow2', 'write -P 0x5a 0 %d' % size)
        run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', self.base,
                '-F', 'qcow2', self.top])
        self.size = size
        self.daemon, self.qmp = start(
            daemon, ['-drive', 'file=%s,format=qcow2,id=drive0' % self.top])

    def stream(self, **args):
        a = {'device': 'drive0'}
        a.update({k.replace('_', '-'): v for k, v in args.items()})
        self.qmp.ok('block-stream', args=a)
        job = a.get('job-id', 'drive0')
        seq, _ = job_events(self.qmp, job, until='running')
        assert seq == ['created', 'running'], seq
        return job

    def verb_refused(self, job, verb, state, **args):
        names = {'block-job-pause': 'pause', 'block-job-resume': 'resume',
                 'block-job-set-speed': 'set-speed',
                 'block-job-cancel': 'cancel',
                 'block-job-finalize': 'finalize',
                 'block-job-dismiss': 'dismiss',
                 'block-job-complete': 'complete'}
        key = 'id' if verb in ('block-job-finalize',
                               'block-job-dismiss') else 'device'
        a = {key: job}
        a.update(args)
        e = self.qmp.err(verb, args=a)
        assert e == {'class': 'GenericError',
                     'desc': "Job '%s' in state '%s' cannot accept command "
                             "verb '%s'" % (job, state, names[verb])}, e

    def resume_refused(self, job):
        # QEMU checks for a user pause before the verb table.
        e = self.qmp.err('block-job-resume', device=job)
        assert e == {'class': 'GenericError',
                     'desc': "Can't resume a job that was not paused"}

    def backing(self):
        image = self.qmp.ok('query-block')[0]['inserted']['image']
        return image.get('backing-image', {}).get('filename')


@pytest.fixture
def env(daemon):
    e = Env(daemon)
    yield e
    e.qmp.close()


def test_query_shape_while_throttled(env):
    job = env.stream(speed=4 * MiB)
    time.sleep(0.3)
    info = query_job(env.qmp, job)
    assert set(info) == JOB_KEYS, info
    assert info['type'] == 'stream' and info['device'] == 'drive0'
    assert info['len'] == BIG and 0 < info['offset'] < BIG
    assert (info['speed'], info['paused'], info['ready']) == \
        (4 * MiB, False, False)
    assert (info['status'], info['io-status']) == ('running', 'ok')
    assert info['auto-finalize'] is True and info['auto-dismiss'] is True
    assert isinstance(info['busy'], bool)
    jobs = env.qmp.ok('query-jobs')
    assert len(jobs) == 1 and set(jobs[0]) == {
        'id', 'type', 'status', 'current-progress', 'total-progress'}
    assert jobs[0]['id'] == 'drive0' and jobs[0]['type'] == 'stream'
    assert jobs[0]['total-progress'] == BIG
    env.qmp.ok('block-job-cancel', device=job)
    seq, data = job_events(env.qmp, job)
    assert seq == ['aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null']
    assert set(data) == {'device', 'len', 'offset', 'speed', 'type'}
    assert data['speed'] == 4 * MiB and data['len'] == BIG
    assert env.backing() == env.base        # cancel keeps the chain


def test_pause_resume_set_speed_cancel(env):
    job = env.stream(speed=4 * MiB)
    env.qmp.ok('block-job-pause', device=job)
    assert query_job(env.qmp, job)['paused'] is True
    assert job_events(env.qmp, job, until='paused')[0] == ['paused']
    e = env.qmp.err('block-job-pause', device=job)
    assert e == {'class': 'GenericError', 'desc': 'Job is already paused'}
    off = query_job(env.qmp, job)['offset']
    time.sleep(0.4)
    info = query_job(env.qmp, job)
    assert info['offset'] == off and info['status'] == 'paused'
    assert info['busy'] is False
    env.qmp.ok('block-job-set-speed', device=job, speed=8 * MiB)
    assert query_job(env.qmp, job)['speed'] == 8 * MiB
    e = env.qmp.err('block-job-cancel', device=job)
    assert e == {'class': 'GenericError', 'desc': "The block job for "
                 "device 'drive0' is currently paused"}
    env.qmp.ok('block-job-resume', device=job)
    assert job_events(env.qmp, job, until='running')[0] == ['running']
    env.resume_refused(job)
    time.sleep(0.3)
    assert query_job(env.qmp, job)['offset'] > off
    e = env.qmp.err('block-job-set-speed', device=job, speed=-1)
    assert e == {'class': 'GenericError',
                 'desc': "Parameter 'speed' expects a non-negative value"}
    env.verb_refused(job, 'block-job-complete', 'running')
    env.verb_refused(job, 'block-job-finalize', 'running')
    env.verb_refused(job, 'block-job-dismiss', 'running')
    env.qmp.ok('block-job-cancel', device=job)
    seq, data = job_events(env.qmp, job)
    assert seq == ['aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null']
    assert env.qmp.ok('query-block-jobs') == []
    assert env.backing() == env.base


def test_force_cancel_while_paused(env):
    job = env.stream(speed=4 * MiB)
    env.qmp.ok('block-job-pause', device=job)
    job_events(env.qmp, job, until='paused')
    env.qmp.ok('block-job-cancel', device=job, force=True)
    seq, data = job_events(env.qmp, job)
    assert seq == ['running', 'aborting', 'BLOCK_JOB_CANCELLED',
                   'concluded', 'null'], seq


def test_set_speed_live_unthrottles(env):
    job = env.stream(speed=1 * MiB)
    time.sleep(0.2)
    env.qmp.ok('block-job-set-speed', device=job, speed=0)
    seq, data = job_events(env.qmp, job)
    assert seq == ['waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded',
                   'null'], seq
    assert data == {'device': job, 'len': BIG, 'offset': BIG, 'speed': 0,
                    'type': 'stream'}
    assert env.backing() is None


def test_manual_finalize_and_dismiss(env):
    job = env.stream(job_id='j0', auto_finalize=False, auto_dismiss=False)
    seq, data = job_events(env.qmp, job, until='BLOCK_JOB_PENDING')
    assert seq == ['waiting', 'pending', 'BLOCK_JOB_PENDING'], seq
    assert data == {'type': 'stream', 'id': 'j0'}
    info = query_job(env.qmp, job)
    assert (info['status'], info['offset'], info['len']) == \
        ('pending', BIG, BIG)
    assert (info['auto-finalize'], info['auto-dismiss']) == (False, False)
    assert env.backing() == env.base        # no graph change before finalize
    for verb in ('block-job-pause', 'block-job-dismiss',
                 'block-job-complete'):
        env.verb_refused(job, verb, 'pending')
    env.resume_refused(job)
    env.verb_refused(job, 'block-job-set-speed', 'pending', speed=1)
    env.qmp.ok('block-job-finalize', args={'id': job})
    seq, data = job_events(env.qmp, job, until='concluded')
    assert seq == ['BLOCK_JOB_COMPLETED', 'concluded'], seq
    assert 'error' not in data
    assert env.backing() is None
    info = query_job(env.qmp, job)
    assert info['status'] == 'concluded' and 'error' not in info
    for verb in ('block-job-pause', 'block-job-cancel',
                 'block-job-finalize', 'block-job-complete'):
        env.verb_refused(job, verb, 'concluded')
    env.resume_refused(job)
    env.verb_refused(job, 'block-job-set-speed', 'concluded', speed=1)
    env.qmp.ok('block-job-dismiss', args={'id': job})
    assert job_events(env.qmp, job)[0] == ['null']
    assert env.qmp.ok('query-block-jobs') == []
    env.daemon.stop()
    run_ok(['qemu-img', 'compare', env.base, env.top])


def test_cancelled_job_kept_with_auto_dismiss_off(env):
    job = env.stream(speed=1 * MiB, auto_dismiss=False)
    env.qmp.ok('block-job-cancel', device=job)
    seq, _ = job_events(env.qmp, job, until='concluded')
    assert seq == ['aborting', 'BLOCK_JOB_CANCELLED', 'concluded'], seq
    info = query_job(env.qmp, job)
    assert info['status'] == 'concluded'
    assert info['error'] == 'Operation canceled'
    env.qmp.ok('job-dismiss', args={'id': job})
    assert job_events(env.qmp, job)[0] == ['null']


def test_speed_accuracy_16M(env):
    speed = 16 * MiB
    job = env.stream(speed=speed)
    time.sleep(0.5)
    t1, o1 = time.monotonic(), query_job(env.qmp, job)['offset']
    time.sleep(4)
    t2, o2 = time.monotonic(), query_job(env.qmp, job)['offset']
    rate = (o2 - o1) / (t2 - t1)
    assert abs(rate / speed - 1) < 0.05, rate / speed
    env.qmp.ok('block-job-cancel', device=job)
    job_events(env.qmp, job)


@pytest.mark.parametrize('policy', ['report', 'ignore', 'stop'])
def test_on_error_policies(daemon, policy):
    """One read error (blkdebug under base's qcow2, at the host sector of
    guest offset 2M): report fails the job, ignore finishes the copy but
    still fails and keeps the backing file, stop pauses with io-status
    failed and block-job-resume retries the range and completes."""
    d = daemon.dir
    base = os.path.join(d, 'base.qcow2')
    top = os.path.join(d, 'top.qcow2')
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '8M'])
    qemu_io(base, 'qcow2', 'write -P 0x5a 0 8M')
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F',
            'qcow2', top])
    host = json.loads(run_ok(['qemu-img', 'map', '--output=json',
                              base]))[0]['offset']
    sector = (host + 2 * MiB) // 512
    daemon_, qmp = start(daemon, [
        '--blockdev', 'driver=file,filename=%s,node-name=bf0' % base,
        '--blockdev', 'driver=blkdebug,image=bf0,node-name=bf,'
        'inject-error.0.event=read_aio,inject-error.0.errno=5,'
        'inject-error.0.once=on,inject-error.0.sector=%d' % sector,
        '--blockdev', 'driver=qcow2,file=bf,node-name=base',
        '--blockdev', 'driver=file,filename=%s,node-name=tf' % top,
        '--blockdev', 'driver=qcow2,file=tf,node-name=top,backing=base'])
    qmp.ok('block-stream', args={'device': 'top', 'job-id': 'j0',
                                 'on-error': policy})
    if policy == 'stop':
        seq, data = job_events(qmp, 'j0', until='paused')
        assert seq == ['created', 'running', 'BLOCK_JOB_ERROR', 'paused']
        assert data == {'device': 'j0', 'operation': 'read',
                        'action': 'stop'}
        info = query_job(qmp, 'j0')
        assert (info['io-status'], info['paused']) == ('failed', True)
        qmp.ok('block-job-resume', device='j0')
        seq, data = job_events(qmp, 'j0')
        assert seq == ['running', 'waiting', 'pending',
                       'BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
        assert 'error' not in data and data['offset'] == 8 * MiB
    else:
        seq, data = job_events(qmp, 'j0')
        assert seq == ['created', 'running', 'BLOCK_JOB_ERROR', 'aborting',
                       'BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
        assert data['error'] == 'Input/output error'
        if policy == 'ignore':
            assert data['offset'] == data['len']
    daemon_.stop()
    info = json.loads(run_ok(['qemu-img', 'info', '--output=json', top]))
    assert ('backing-filename' in info) == (policy != 'stop')
    run_ok(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'qcow2', top, base])
    run_ok(['qemu-img', 'check', '-q', top])

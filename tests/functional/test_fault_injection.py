"""Fault injection matrix: blkdebug errors under every job and the guest.

The chain (qcow2, 4 MiB, made by QEMU's tools):

    base: 0x11 in [0, 4M)
    mid:  0x22 in [1M, 3M), 0x24 in [3.5M, 3.5M + 64K)
    top:  0x33 in [0, 512K)

Each image is opened as X (qcow2) -> X-dbg (blkdebug, the case's rules)
-> X-file, so a rule fails reads of an image's own data (its host
sector, from qemu-img map), writes into it (any sector, or one host
cluster) or its flushes. top is exported over NBD (through a
copy-on-read filter for the COR cases).

Jobs and where their faults go:
    stream        block-stream top: reads mid (source), writes top
    commit        block-commit top-node=mid base-node=base: reads mid,
                  writes base
    active        block-commit of top into mid: reads top, writes mid;
                  "ready" cases fail the write of a guest write mirrored
                  into mid's pre-allocated cluster at 3.5M after ready
The policies (reference 5.x): report -> BLOCK_JOB_ERROR action report and
BLOCK_JOB_COMPLETED with an error, chain and guest view unchanged;
ignore -> the job runs to its end, and ends either failed with the
chain unchanged or completed with the right data; stop/enospc (with
ENOSPC) -> paused with io-status failed/nospace, resume retries (once
rules) and completes with data identical to the source. A flush error
that never clears fails the completion (target not durable) unless the
job succeeds with the right data. Nothing may crash, hang or report
success over wrong data: QEMU's tools compare every result.
"""
import json
import os

import pytest

from daemon import require_qblk
from jobs_util import check_consistent, qcow2_chain, query_job
from nbd_client import EIO, ENOSPC, NbdClient, NbdError
from qmp_client import start_qblk_with_qmp
from qblk_testlib import MiB

SIZE = 4 * MiB
TIMEOUT = 20

WRITES = [('base', ['write -P 0x11 0 4M']),
          ('mid', ['write -P 0x22 1M 2M', 'write -P 0x24 3584k 64k']),
          ('top', ['write -P 0x33 0 512k'])]
# Guest offsets whose host cluster a read rule targets, per image.
DATA_AT = {'mid': 2 * MiB, 'top': 256 * 1024, 'base': 0}
READY_OFF = 3584 * 1024     # mid's pre-allocated cluster, not in top


class Env:
    """The chain in the daemon fixture's directory, its expected views
    (raw), and a daemon serving it with per-image blkdebug rules."""

    def __init__(self, daemon, qemu_img):
        require_qblk('blkdebug under block jobs')
        self.daemon, self.qemu_img = daemon, qemu_img
        paths = qcow2_chain(daemon.dir, SIZE, WRITES)
        self.path = dict(zip(('base', 'mid', 'top'), paths))
        self.view = {n: self.convert(n) for n in self.path}
        self.d = self.qmp = None

    def convert(self, name, suffix='view'):
        out = self.daemon.path('%s.%s.raw' % (name, suffix))
        self.qemu_img.ok('convert', '-U', '-f', 'qcow2', '-O', 'raw',
                         self.path[name], out)
        return out

    def host_sector(self, name, guest_off):
        """The host sector holding guest_off of image @name."""
        m = json.loads(self.qemu_img.ok('map', '--output=json', '-f',
                                        'qcow2', self.path[name]))
        for e in m:
            if e['start'] <= guest_off < e['start'] + e['length'] and \
                    e['depth'] == 0 and 'offset' in e:
                return (e['offset'] + guest_off - e['start']) // 512
        raise AssertionError('%s: no data at %d' % (name, guest_off))

    def start(self, rules, cor=False):
        """Serve the chain; @rules maps image name -> list of rule dicts."""
        args, below = [], None
        for name in ('base', 'mid', 'top'):
            dbg = ','.join('inject-error.%d.%s=%s' % (i, k, v)
                           for i, r in enumerate(rules.get(name, []))
                           for k, v in r.items())
            args += ['--blockdev', 'driver=file,filename=%s,node-name=%s-file'
                     % (self.path[name], name),
                     '--blockdev', 'driver=blkdebug,node-name=%s-dbg,'
                     'image=%s-file%s' % (name, name, ',' + dbg if dbg else ''),
                     '--blockdev', 'driver=qcow2,file=%s-dbg,node-name=%s%s'
                     % (name, name, ',backing=' + below if below else '')]
            below = name
        node = 'top'
        if cor:
            args += ['--blockdev', 'driver=copy-on-read,file=top,'
                     'node-name=cor']
            node = 'cor'
        sock = self.daemon.new_socket()
        args += ['--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
                 '--export', 'type=nbd,id=exp0,node-name=%s,name=top,'
                 'writable=on' % node]
        self.d, self.qmp = start_qblk_with_qmp(self.daemon, args)
        self.sock = sock

    def nbd(self):
        c = NbdClient.unix(self.sock)
        c.connect('top')
        return c

    def stop(self, kill=False):
        self.qmp.close()
        if kill:
            self.d.kill()
        else:
            self.d.stop()

    def backing(self, name):
        info = json.loads(self.qemu_img.ok('info', '-U', '--output=json',
                                           self.path[name]))
        return info.get('backing-filename')

    def same(self, name, raw):
        rc, out, err = self.qemu_img('compare', '-U', '-f', 'qcow2', '-F',
                                     'raw', self.path[name], raw)
        assert rc == 0, '%s differs from %s: %s%s' % (name, raw, out, err)

    def check_all(self, where):
        for name in self.path:
            check_consistent(self.qemu_img, self.path[name], where)


@pytest.fixture
def env(daemon, qemu_img):
    e = Env(daemon, qemu_img)
    yield e
    if e.qmp:
        e.qmp.close()


def read_rule(env, image, errno=EIO, once=True):
    return {'event': 'read_aio', 'iotype': 'read', 'errno': errno,
            'sector': env.host_sector(image, DATA_AT[image]),
            'once': 'on' if once else 'off'}


def write_rule(errno=EIO, once=True, sector=-1):
    return {'event': 'write_aio', 'errno': errno, 'sector': sector,
            'once': 'on' if once else 'off'}


def flush_rule():
    return {'event': 'flush_to_disk', 'iotype': 'flush', 'errno': EIO,
            'once': 'off'}


# job -> (source image, target image)
JOBS = {'stream': ('mid', 'top'), 'commit': ('mid', 'base'),
        'active': ('top', 'mid')}


def start_job(env, job, on_error):
    args = {'device': 'top', 'job-id': 'j', 'on-error': on_error}
    if job == 'stream':
        env.qmp.ok('block-stream', args=args)
    elif job == 'commit':
        env.qmp.ok('block-commit', args=dict(args, **{'top-node': 'mid',
                                                      'base-node': 'base'}))
    else:
        env.qmp.ok('block-commit', args=dict(args, **{'base-node': 'mid'}))


def events_until(qmp, stops, timeout=TIMEOUT):
    """Job j's events (status names and event names) until one in @stops
    or status null; returns (seq, {event name: data})."""
    seq, datas = [], {}
    while True:
        for ev in list(qmp.events):
            data = ev.get('data', {})
            if data.get('id') != 'j' and data.get('device') != 'j':
                continue
            qmp.events.remove(ev)
            name = data['status'] if ev['event'] == 'JOB_STATUS_CHANGE' \
                else ev['event']
            seq.append(name)
            datas.setdefault(name, data)
            if name in stops or name == 'null':
                return seq, datas
        qmp.recv(timeout)


def finish_job(env, job):
    """Events of job j up to its end; completes an active commit when it
    gets ready. Returns (events, terminal data or {})."""
    seq, datas = events_until(env.qmp, ['BLOCK_JOB_READY'] if job == 'active'
                              else [])
    if seq[-1] == 'BLOCK_JOB_READY':
        env.qmp.ok('block-job-complete', device='j')
        more, d2 = events_until(env.qmp, [])
        seq += more
        datas.update(d2)
    return seq, datas.get('BLOCK_JOB_COMPLETED',
                          datas.get('BLOCK_JOB_CANCELLED', {}))


def assert_success(env, job, where):
    """The job's result, checked with qemu-img after the daemon stopped."""
    env.same('top', env.view['top'])
    if job == 'stream':
        assert env.backing('top') is None
    elif job == 'commit':
        assert env.backing('top') == env.path['base']
        env.same('base', env.view['mid'])
    else:
        env.same('mid', env.view['top'])
    env.check_all(where)


def assert_unchanged(env, where):
    env.same('top', env.view['top'])
    assert env.backing('top') == env.path['mid']
    assert env.backing('mid') == env.path['base']
    env.check_all(where)


def fault_rules(env, job, fault, errno, once):
    src, dst = JOBS[job]
    if fault == 'read':
        return {src: [read_rule(env, src, errno, once)]}
    return {dst: [write_rule(errno, once)]}


MATRIX = [(job, fault) for job in JOBS for fault in ('read', 'write')]


@pytest.mark.parametrize('job, fault', MATRIX,
                         ids=['%s-%s' % m for m in MATRIX])
def test_report(env, job, fault):
    env.start(fault_rules(env, job, fault, EIO, once=False))
    start_job(env, job, 'report')
    seq, data = finish_job(env, job)
    assert 'BLOCK_JOB_ERROR' in seq and seq[-3:] == [
        'BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
    assert data['error'].startswith('Input/output error'), data
    env.stop()
    assert_unchanged(env, '%s %s report' % (job, fault))


@pytest.mark.parametrize('job, fault', MATRIX,
                         ids=['%s-%s' % m for m in MATRIX])
def test_ignore(env, job, fault):
    env.start(fault_rules(env, job, fault, EIO, once=True))
    start_job(env, job, 'ignore')
    seq, data = finish_job(env, job)
    assert seq[-3:] == ['BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
    assert data['offset'] == data['len'], data
    env.stop()
    if 'error' in data:
        assert_unchanged(env, '%s %s ignore (failed)' % (job, fault))
    else:
        assert_success(env, job, '%s %s ignore' % (job, fault))


STOP_CASES = [(job, fault, policy, errno)
              for job in JOBS for fault in ('read', 'write')
              for policy, errno in (('stop', EIO), ('enospc', ENOSPC))
              if not (fault == 'read' and policy == 'enospc')]


@pytest.mark.parametrize('job, fault, policy, errno', STOP_CASES,
                         ids=['%s-%s-%s' % c[:3] for c in STOP_CASES])
def test_stop_resume(env, job, fault, policy, errno):
    env.start(fault_rules(env, job, fault, errno, once=True))
    start_job(env, job, policy)
    seq, datas = events_until(env.qmp, ['paused'])
    assert "BLOCK_JOB_ERROR" in seq and seq[-1] == "paused", (seq, datas)
    data = datas['BLOCK_JOB_ERROR']
    assert data['action'] == 'stop', data
    # QEMU's stream reports every error as a read (its copies are
    # copy-on-read requests); commit names the side that failed
    assert data['operation'] == ('read' if job == 'stream' else fault), data
    j = query_job(env.qmp, 'j')
    assert j['paused'] is True
    assert j['io-status'] == ('nospace' if errno == ENOSPC else 'failed'), j
    env.qmp.ok('block-job-resume', device='j')
    seq, data = finish_job(env, job)
    assert seq[-3:] == ['BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
    assert 'error' not in data, data
    env.stop()
    assert_success(env, job, '%s %s %s' % (job, fault, policy))


def test_enospc_policy_reports_eio(env):
    """on-error=enospc stops only for ENOSPC: EIO is reported."""
    env.start(fault_rules(env, 'stream', 'write', EIO, once=True))
    start_job(env, 'stream', 'enospc')
    seq, data = finish_job(env, 'stream')
    assert 'BLOCK_JOB_ERROR' in seq and 'paused' not in seq, seq
    assert 'error' in data, data
    env.stop()
    assert_unchanged(env, 'stream enospc EIO')


@pytest.mark.parametrize('job', list(JOBS))
def test_flush_error_at_completion(env, job):
    """The target's flushes always fail: never a silent success."""
    env.start({JOBS[job][1]: [flush_rule()]})
    start_job(env, job, 'report')
    seq, data = finish_job(env, job)
    assert seq[-3:] == ['BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
    env.d.assert_alive()
    env.stop(kill=True)
    if 'error' in data:
        assert_unchanged(env, '%s flush error (failed)' % job)
    else:
        assert_success(env, job, '%s flush error' % job)


@pytest.mark.parametrize('policy', ['report', 'stop'])
def test_active_commit_write_error_after_ready(env, policy):
    """A guest write after ready is mirrored into mid's cluster at
    READY_OFF, whose first write fails."""
    env.start({'mid': [write_rule(sector=env.host_sector('mid',
                                                          READY_OFF))]})
    start_job(env, 'active', policy)
    seq, _ = events_until(env.qmp, ['BLOCK_JOB_READY'])
    assert seq[-1] == 'BLOCK_JOB_READY' and 'BLOCK_JOB_ERROR' not in seq, \
        seq
    c = env.nbd()
    c.write(READY_OFF, b'\x5a' * 65536)
    c.flush()
    if policy == 'report':
        seq, datas = events_until(env.qmp, [])
        data = datas.get('BLOCK_JOB_COMPLETED', {})
        assert 'BLOCK_JOB_ERROR' in seq and 'error' in data, (seq, data)
        assert c.read(READY_OFF, 65536) == b'\x5a' * 65536
        c.disconnect()
        env.stop()
        env.check_all('active ready report')
        assert env.backing('top') == env.path['mid']
        return
    # a ready job that stops goes to standby, not paused (QEMU 7.2)
    seq, datas = events_until(env.qmp, ['paused', 'standby'])
    assert seq[-1] == 'standby', seq
    data = datas.get('BLOCK_JOB_ERROR', {})
    assert data.get('action') == 'stop' and \
        data.get('operation') == 'write', (seq, data)
    assert query_job(env.qmp, 'j')['io-status'] == 'failed'
    env.qmp.ok('block-job-resume', device='j')
    env.qmp.ok('block-job-complete', device='j')
    seq, datas = events_until(env.qmp, [])
    data = datas.get('BLOCK_JOB_COMPLETED', {})
    assert seq[-3:] == ['BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
    assert 'error' not in data, data
    assert c.read(READY_OFF, 65536) == b'\x5a' * 65536
    c.disconnect()
    env.stop()
    expect = env.convert('mid', 'expect')      # mid alone, now the top
    with open(env.view['top'], 'rb') as f:
        want = bytearray(f.read())
    want[READY_OFF:READY_OFF + 65536] = b'\x5a' * 65536
    with open(expect, 'wb') as f:
        f.write(want)
    env.same('mid', expect)
    env.check_all('active ready stop')


# ---- the guest path: NBD requests over the failing node


def nbd_errno(fn, *args):
    try:
        fn(*args)
    except NbdError as e:
        return e.errno
    return 0


@pytest.mark.parametrize('kind, errno', [('read', EIO), ('write', EIO),
                                         ('write', ENOSPC), ('flush', EIO)])
def test_guest_error_reply_then_recovers(env, kind, errno):
    if kind == 'read':
        rule = read_rule(env, 'top', errno)
    elif kind == 'write':
        rule = write_rule(errno)
    else:
        rule = dict(flush_rule(), once='on')
    env.start({'top': [rule]})
    c = env.nbd()
    op = {'read': (c.read, 0, 512 * 1024),
          'write': (c.write, MiB, b'\x77' * 65536),
          'flush': (c.flush,)}[kind]
    if kind == 'flush':
        # a flush with nothing written since the last one never reaches
        # the disk (as in QEMU): dirty the image first, with its own data
        c.write(0, b'\x33' * 65536)
    assert nbd_errno(*op) == errno
    # the rule was once: the same request now succeeds
    assert nbd_errno(*op) == 0
    assert c.read(0, 65536) == b'\x33' * 65536
    c.flush()
    c.disconnect()
    env.d.assert_alive()
    env.stop()
    env.check_all('guest %s' % kind)


def test_guest_persistent_read_error_other_reads_fine(env):
    env.start({'top': [read_rule(env, 'top', once=False)]})
    c = env.nbd()
    for _ in range(3):
        assert nbd_errno(c.read, 0, 512 * 1024) == EIO
        assert c.read(2 * MiB, 65536) == b'\x22' * 65536
    c.disconnect()
    env.stop()
    assert_unchanged(env, 'guest persistent read error')


# ---- copy-on-read


def test_cor_source_read_error_then_populates(env):
    env.start({'mid': [read_rule(env, 'mid')]}, cor=True)
    c = env.nbd()
    assert nbd_errno(c.read, 2 * MiB, 65536) == EIO
    assert c.read(2 * MiB, 65536) == b'\x22' * 65536
    c.disconnect()
    env.stop()
    env.same('top', env.view['top'])
    env.check_all('cor read error')
    m = json.loads(env.qemu_img.ok('map', '--output=json', env.path['top']))
    assert any(e['depth'] == 0 and e['data'] and
               e['start'] <= 2 * MiB < e['start'] + e['length'] for e in m)


def test_cor_target_write_error_no_wrong_data(env):
    """COR's write into top fails: the guest read fails (as QEMU) or
    returns the right data; never wrong data, top stays consistent."""
    env.start({'top': [write_rule(once=False)]}, cor=True)
    c = env.nbd()
    for _ in range(2):
        try:
            assert c.read(2 * MiB, 65536) == b'\x22' * 65536
        except NbdError as e:
            assert e.errno == EIO
    c.disconnect()
    env.stop(kill=True)
    env.same('top', env.view['top'])
    env.check_all('cor write error')

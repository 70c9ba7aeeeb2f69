"""Active commit (block-commit whose top is the active layer): copy,
ready, pivot, cancel in every flavour, pause, speed, the automatic
switch to write-blocking mode, libvirt 10's sequence, base write errors
with on-error report and stop (blkdebug under a raw base), quit.

The chain is made with QEMU's tools: base (0x11 in [0, 2M)) <- [mid
(0x22 in [1M, 3M))] <- top (0x33 in [2M, 2.5M), zeroes in [1.5M, 2M)),
8 MiB. qblk serves top as -drive drive0 and exports the drive over NBD
(export 'drive0'), so that every write of these tests goes through the
filter the job inserts. QEMU's tools judge the images afterwards:
qemu-img compare (base against the guest's view), check, info
--backing-chain (headers are not rewritten by active commit).
"""
import json
import os
import time

from jobs_util import (NbdWriter, drive_chain, env_fixture, query_job,
                       qemu_io, run_ok)
from qblk_testlib import MiB
from qmp_client import start_qblk_with_qmp

SIZE = 8 * MiB
READY_SEQ = ['created', 'running', 'ready', 'BLOCK_JOB_READY']
COMPLETE_SEQ = ['waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded',
                'null']
CANCEL_SEQ = ['aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null']


class Env:
    """One daemon on the chain, its QMP client, the export's URI."""

    def __init__(self, daemon, mid=False, blockdev=False, speed_chain=None):
        self.dir = daemon.dir
        self.base = self.path('base.qcow2')
        self.mid = self.path('mid.qcow2') if mid else None
        self.top = self.path('top.qcow2')
        run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', self.base,
                str(SIZE)])
        qemu_io(self.base, 'qcow2', 'write -P 0x11 0 2M')
        below = self.base
        if mid:
            run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b',
                    self.base, '-F', 'qcow2', self.mid])
            qemu_io(self.mid, 'qcow2', 'write -P 0x22 1M 2M')
            below = self.mid
        run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', below,
                '-F', 'qcow2', self.top])
        qemu_io(self.top, 'qcow2', 'write -P 0x33 2M 512k',
                'write -z 1536k 512k')
        self.headers = self.backing_chain(self.top)
        self.sock = daemon.new_socket()
        self.uri = 'nbd+unix:///drive0?socket=%s' % self.sock
        args = (self.blockdev_args() if blockdev else
                ['-drive', 'file=%s,format=qcow2,id=drive0' % self.top])
        node = 'libvirt-1-format' if blockdev else 'drive0'
        args += ['--nbd-server', 'addr.type=unix,addr.path=%s' % self.sock,
                 '--export', 'type=nbd,id=exp0,node-name=%s,name=drive0,'
                 'writable=on' % node]
        self.daemon, self.qmp = start_qblk_with_qmp(daemon, args)

    def blockdev_args(self):
        """libvirt 10's naming: libvirt-N-storage / libvirt-N-format."""
        files = [self.top] + ([self.mid] if self.mid else []) + [self.base]
        args = []
        for i, f in reversed(list(enumerate(files, 1))):
            ro = '' if i == 1 else ',read-only=on'
            args += ['--blockdev', 'driver=file,filename=%s,'
                     'node-name=libvirt-%d-storage%s' % (f, i, ro)]
            fmt = 'driver=qcow2,file=libvirt-%d-storage,' \
                  'node-name=libvirt-%d-format%s' % (i, i, ro)
            if i < len(files):
                fmt += ',backing=libvirt-%d-format' % (i + 1)
            args += ['--blockdev', fmt]
        return args

    def path(self, name):
        return os.path.join(self.dir, name)

    @staticmethod
    def backing_chain(img):
        out = json.loads(run_ok(['qemu-img', 'info', '-U', '--backing-chain',
                                 '--output=json', img]))
        return [(i['filename'], i.get('backing-filename')) for i in out]

    def snapshot_view(self, name):
        """The guest's view now, through the export, as a raw file."""
        out = self.path(name)
        run_ok(['qemu-img', 'convert', '-f', 'raw', '-O', 'raw', self.uri,
                out])
        return out

    def compare(self, img, view, fmt='qcow2'):
        run_ok(['qemu-img', 'compare', '-U', '-f', fmt, '-F', 'raw', img,
                view])

    def drive_chain(self):
        return drive_chain(self.qmp)

    def events(self, job, until, timeout=30):
        """Events of job (JOB_STATUS_CHANGE as the status) until the
        status or event until; returns (names, {event name: data})."""
        deadline = time.monotonic() + timeout
        seen, data = [], {}
        while True:
            for ev in list(self.qmp.events):
                d = ev.get('data', {})
                if d.get('id') != job and d.get('device') != job:
                    continue
                self.qmp.events.remove(ev)
                name = d['status'] if ev['event'] == 'JOB_STATUS_CHANGE' \
                    else ev['event']
                seen.append(name)
                data[name] = d
                if name == until:
                    return seen, data
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('job %s: no %s in %r' % (job, until, seen))
            self.qmp.recv(left)

    def job(self, job='drive0'):
        return query_job(self.qmp, job)

    def commit_until_ready(self, job='drive0', **args):
        args.setdefault('device', 'drive0')
        self.qmp.ok('block-commit', args={k.replace('_', '-'): v
                                          for k, v in args.items()})
        seq, data = self.events(job, 'BLOCK_JOB_READY')
        assert seq == READY_SEQ, seq
        return data['BLOCK_JOB_READY']

    def node_ro(self, filename, drv='qcow2'):
        for n in self.qmp.ok('query-named-block-nodes'):
            if n['file'] == filename and n['drv'] == drv:
                return n['ro']
        return None

    def stop(self):
        self.qmp.close()
        self.daemon.stop()


env = env_fixture(lambda daemon, qemu_img: Env(daemon))


def allocated_in(img, offset):
    """Whether img itself (not its backing chain) allocates offset."""
    m = json.loads(run_ok(['qemu-img', 'map', '-U', '--output=json', img]))
    return any(e['start'] <= offset < e['start'] + e['length'] and
               e['depth'] == 0 and e['data'] for e in m)


def check_images(*imgs):
    for img in imgs:
        run_ok(['qemu-img', 'check', '-q', img])


def test_commit_active_pivot_two_images(env):
    ready = env.commit_until_ready()
    assert ready['type'] == 'commit' and ready['len'] == ready['offset']
    j = env.job()
    assert j['ready'] and j['status'] == 'ready' and j['type'] == 'commit'
    assert j['offset'] == j['len'] > 0
    assert j['actively-synced'] is False
    # The job's own filter node is not shown as the drive's node.
    inserted = env.qmp.ok('query-block')[0]['inserted']
    assert inserted['drv'] == 'qcow2', inserted
    assert inserted['file'] == env.top, inserted
    env.qmp.ok('block-job-complete', device='drive0')
    seq, data = env.events('drive0', 'null')
    assert seq == COMPLETE_SEQ, seq
    assert 'error' not in data['BLOCK_JOB_COMPLETED']
    assert env.drive_chain() == [env.base]
    assert env.node_ro(env.base) is False
    # The export serves base now: same data, and writes land in base.
    qemu_io(env.uri, 'raw', 'read -P 0x11 0 1536k', 'read -P 0 1536k 512k',
            'read -P 0x33 2M 512k', 'read -P 0 2560k 512k',
            'write -P 0x55 4M 64k')
    env.stop()
    qemu_io(env.base, 'qcow2', 'read -P 0x33 2M 512k', 'read -P 0x55 4M 64k')
    assert not allocated_in(env.top, 4 * MiB)
    check_images(env.base, env.top)
    # Active commit never rewrites a header.
    assert env.backing_chain(env.top) == env.headers


def test_commit_active_three_images(daemon):
    e = Env(daemon, mid=True)
    view = e.snapshot_view('view.raw')
    e.commit_until_ready(top=e.top, base=e.base)
    e.qmp.ok('block-job-complete', device='drive0')
    seq, _ = e.events('drive0', 'null')
    assert seq == COMPLETE_SEQ, seq
    assert e.drive_chain() == [e.base]
    e.stop()
    e.compare(e.base, view)
    check_images(e.base, e.mid, e.top)
    assert e.backing_chain(e.top) == e.headers


def test_commit_active_guest_writes_land_in_base(env):
    env.qmp.ok('block-commit', device='drive0', speed=1 * MiB)
    w = NbdWriter(env.sock, 4 * MiB, 6 * MiB)
    w.start()
    time.sleep(0.5)
    env.qmp.ok('block-job-set-speed', device='drive0', speed=0)
    seq, _ = env.events('drive0', 'BLOCK_JOB_READY')
    assert seq == READY_SEQ, seq
    time.sleep(0.3)     # writes after ready, too
    env.qmp.ok('block-job-complete', device='drive0')
    seq, _ = env.events('drive0', 'null')
    assert seq == COMPLETE_SEQ, seq
    time.sleep(0.2)     # and after the pivot, on the same connection
    w.stop()
    assert w.count > 0
    checks = w.qemu_io_checks()
    qemu_io(env.uri, 'raw', *checks)
    env.stop()
    qemu_io(env.base, 'qcow2', 'read -P 0x11 0 1536k',
            'read -P 0x33 2M 512k', *checks)
    check_images(env.base, env.top)


def test_commit_active_cancel_before_ready(env):
    view = env.snapshot_view('view.raw')
    env.qmp.ok('block-commit', device='drive0', speed=64 * 1024)
    seq, _ = env.events('drive0', 'running')
    env.qmp.ok('block-job-cancel', device='drive0')
    seq, data = env.events('drive0', 'null')
    assert seq == CANCEL_SEQ, seq
    assert env.drive_chain() == [env.top, env.base]
    assert env.node_ro(env.base) is True
    env.stop()
    env.compare(env.top, view)
    check_images(env.base, env.top)


def test_commit_active_soft_cancel_after_ready(env):
    env.commit_until_ready()
    qemu_io(env.uri, 'raw', 'write -P 0x66 6M 128k')
    view = env.snapshot_view('view.raw')
    env.qmp.ok('block-job-cancel', device='drive0')
    seq, data = env.events('drive0', 'null')
    assert seq == COMPLETE_SEQ, seq
    assert 'error' not in data['BLOCK_JOB_COMPLETED']
    # No pivot: the guest stays on top, the chain is intact.
    assert env.drive_chain() == [env.top, env.base]
    assert env.node_ro(env.base) is True
    qemu_io(env.uri, 'raw', 'write -P 0x77 7M 64k')
    env.stop()
    # base holds the point-in-time copy of the guest's view.
    env.compare(env.base, view)
    qemu_io(env.top, 'qcow2', 'read -P 0x77 7M 64k')
    assert not allocated_in(env.base, 7 * MiB)
    check_images(env.base, env.top)
    assert env.backing_chain(env.top) == env.headers


def test_commit_active_forced_cancel_after_ready(env):
    env.commit_until_ready()
    env.qmp.ok('block-job-cancel', device='drive0', force=True)
    seq, data = env.events('drive0', 'null')
    assert seq == ['aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null'], \
        seq
    assert env.drive_chain() == [env.top, env.base]
    assert env.node_ro(env.base) is True
    qemu_io(env.uri, 'raw', 'read -P 0x33 2M 512k')
    env.stop()
    check_images(env.base, env.top)


def test_commit_active_job_cancel_is_forced(env):
    env.commit_until_ready()
    env.qmp.ok('job-cancel', args={'id': 'drive0'})
    seq, _ = env.events('drive0', 'null')
    assert seq == CANCEL_SEQ, seq
    assert env.drive_chain() == [env.top, env.base]


def test_commit_active_complete_in_standby(env):
    view = env.snapshot_view('view.raw')
    env.commit_until_ready()
    env.qmp.ok('block-job-pause', device='drive0')
    seq, _ = env.events('drive0', 'standby')
    assert seq == ['standby'], seq
    assert env.job()['paused'] is True
    env.qmp.ok('block-job-complete', device='drive0')
    time.sleep(0.3)
    # Accepted, applied on resume: nothing moved yet (the drive still
    # reads top, through the job's filter).
    assert env.job()['status'] == 'standby'
    assert env.drive_chain()[0] == env.top
    env.qmp.ok('block-job-resume', device='drive0')
    seq, _ = env.events('drive0', 'null')
    assert seq == ['ready'] + COMPLETE_SEQ, seq
    assert env.drive_chain() == [env.base]
    env.stop()
    env.compare(env.base, view)


def test_commit_active_pause_resume_before_ready(env):
    env.qmp.ok('block-commit', device='drive0', speed=64 * 1024)
    env.events('drive0', 'running')
    env.qmp.ok('block-job-pause', device='drive0')
    seq, _ = env.events('drive0', 'paused')
    off = env.job()['offset']
    time.sleep(0.5)
    assert env.job()['offset'] == off
    env.qmp.ok('block-job-set-speed', device='drive0', speed=0)
    env.qmp.ok('block-job-resume', device='drive0')
    seq, _ = env.events('drive0', 'BLOCK_JOB_READY')
    assert seq == ['running', 'ready', 'BLOCK_JOB_READY'], seq
    env.qmp.ok('block-job-complete', device='drive0')
    seq, _ = env.events('drive0', 'null')
    assert seq == COMPLETE_SEQ, seq


def test_commit_active_speed(env):
    # 2.5 MiB to copy at 512 KiB/s: at least four seconds' worth of slices.
    env.qmp.ok('block-commit', device='drive0', speed=512 * 1024)
    env.events('drive0', 'running')
    time.sleep(1.0)
    j = env.job()
    assert j['speed'] == 512 * 1024 and not j['ready']
    assert 0 < j['offset'] < j['len'], j
    env.qmp.ok('block-job-set-speed', device='drive0', speed=0)
    seq, _ = env.events('drive0', 'BLOCK_JOB_READY', timeout=10)
    env.qmp.ok('block-job-complete', device='drive0')
    env.events('drive0', 'null')


def test_commit_active_switches_to_write_blocking(env):
    """A guest rewriting data faster than the throttled job copies it:
    the job switches to write-blocking mode by itself and gets ready."""
    env.qmp.ok('block-commit', device='drive0', speed=256 * 1024)
    env.events('drive0', 'running')
    w = NbdWriter(env.sock, 0, SIZE)
    w.start()
    try:
        # No new low of the work left for 2 s makes the job switch; then
        # lift the limit so that the test need not copy 8 MiB at 256 KiB/s.
        time.sleep(3.5)
        assert not env.job()['ready']
        env.qmp.ok('block-job-set-speed', device='drive0', speed=0)
        seq, _ = env.events('drive0', 'BLOCK_JOB_READY', timeout=60)
        assert seq == ['ready', 'BLOCK_JOB_READY'], seq
        j = env.job()
        assert j['ready'] and j['actively-synced'] is True, j
        env.qmp.ok('block-job-complete', device='drive0')
        seq, _ = env.events('drive0', 'null')
        assert seq == COMPLETE_SEQ, seq
    finally:
        w.stop()
    checks = w.qemu_io_checks()
    env.stop()
    qemu_io(env.base, 'qcow2', *checks)
    check_images(env.base, env.top)


def test_commit_active_libvirt10_sequence(daemon):
    """libvirt 10: node names, job id commit-<dst>-<node>, auto-dismiss
    off, JOB_STATUS_CHANGE only, transaction + job-complete, query-jobs,
    job-dismiss."""
    e = Env(daemon, mid=True, blockdev=True)
    view = e.snapshot_view('view.raw')
    job = 'commit-vda-libvirt-1-format'
    e.qmp.ok('block-commit', args={
        'device': 'libvirt-1-format', 'job-id': job,
        'top-node': 'libvirt-1-format', 'base-node': 'libvirt-3-format',
        'auto-finalize': True, 'auto-dismiss': False})
    seq, _ = e.events(job, 'ready')
    assert seq == ['created', 'running', 'ready'], seq
    e.qmp.ok('transaction', actions=[{
        'type': 'block-dirty-bitmap-add',
        'data': {'node': 'libvirt-3-format', 'name': 'libvirt-tmp-activewrite',
                 'persistent': False, 'disabled': False}}])
    e.qmp.ok('job-complete', args={'id': job})
    seq, _ = e.events(job, 'concluded')
    assert seq == ['BLOCK_JOB_READY', 'waiting', 'pending',
                   'BLOCK_JOB_COMPLETED', 'concluded'], seq
    jobs = e.qmp.ok('query-jobs')
    assert [(j['id'], j['status'], 'error' in j) for j in jobs] == \
        [(job, 'concluded', False)], jobs
    e.qmp.ok('job-dismiss', args={'id': job})
    seq, _ = e.events(job, 'null')
    assert e.qmp.ok('query-jobs') == []
    # The export (on libvirt-1-format) follows the pivot onto base.
    qemu_io(e.uri, 'raw', 'read -P 0x22 1M 512k', 'write -P 0x5a 5M 64k')
    e.stop()
    qemu_io(e.base, 'qcow2', 'read -P 0x5a 5M 64k')
    run_ok(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0 5M 64k', e.base])
    e.compare(e.base, view)
    check_images(e.base, e.mid, e.top)


def dbg_env(daemon, rule):
    """base (raw: blkdebug cannot grow, a qcow2 base would need to) <- top
    as --blockdev nodes with a blkdebug node between base and its file
    (rule: inject-error.0.* options), top exported."""
    e = Env.__new__(Env)
    e.dir = daemon.dir
    e.base, e.mid, e.top = e.path('base.raw'), None, e.path('top.qcow2')
    run_ok(['qemu-img', 'create', '-q', '-f', 'raw', e.base, str(SIZE)])
    qemu_io(e.base, 'raw', 'write -P 0x11 0 2M')
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', e.base, '-F',
            'raw', e.top])
    qemu_io(e.top, 'qcow2', 'write -P 0x33 2M 512k')
    e.headers = e.backing_chain(e.top)
    e.sock = daemon.new_socket()
    e.uri = 'nbd+unix:///drive0?socket=%s' % e.sock
    args = ['--blockdev', 'driver=file,filename=%s,node-name=base-file'
            % e.base,
            '--blockdev', 'driver=blkdebug,node-name=dbg,image=base-file,' +
            ','.join('inject-error.0.%s=%s' % kv for kv in rule.items()),
            '--blockdev', 'driver=raw,file=dbg,node-name=base,read-only=on',
            '--blockdev', 'driver=file,filename=%s,node-name=top-file' % e.top,
            '--blockdev', 'driver=qcow2,file=top-file,node-name=top,'
            'backing=base',
            '--nbd-server', 'addr.type=unix,addr.path=%s' % e.sock,
            '--export', 'type=nbd,id=exp0,node-name=top,name=drive0,'
            'writable=on']
    e.daemon, e.qmp = start_qblk_with_qmp(daemon, args)
    return e


def test_commit_active_base_write_error_report(daemon):
    e = dbg_env(daemon, {'event': 'pwritev', 'iotype': 'write',
                         'errno': '5', 'once': 'on'})
    e.qmp.ok('block-commit', args={'device': 'top', 'job-id': 'j0'})
    seq, data = e.events('j0', 'null')
    assert seq == ['created', 'running', 'BLOCK_JOB_ERROR', 'aborting',
                   'BLOCK_JOB_COMPLETED', 'concluded', 'null'], seq
    assert data['BLOCK_JOB_ERROR']['operation'] == 'write'
    assert data['BLOCK_JOB_ERROR']['action'] == 'report'
    assert data['BLOCK_JOB_COMPLETED']['error'] == 'Input/output error'
    # The guest is back on top, base read-only again.
    qemu_io(e.uri, 'raw', 'read -P 0x33 2M 512k', 'write -P 0x44 5M 64k')
    assert e.node_ro(e.base, 'raw') is True
    e.stop()
    qemu_io(e.top, 'qcow2', 'read -P 0x44 5M 64k')
    qemu_io(e.base, 'raw', 'read -P 0 5M 64k')


def test_commit_active_base_write_error_stop_resume(daemon):
    e = dbg_env(daemon, {'event': 'pwritev', 'iotype': 'write',
                         'errno': '5', 'once': 'on'})
    e.qmp.ok('block-commit', args={'device': 'top', 'job-id': 'j0',
                                   'on-error': 'stop'})
    seq, data = e.events('j0', 'paused')
    assert seq == ['created', 'running', 'BLOCK_JOB_ERROR', 'paused'], seq
    assert data['BLOCK_JOB_ERROR']['action'] == 'stop'
    j = e.job('j0')
    assert j['io-status'] == 'failed' and j['paused'], j
    e.qmp.ok('block-job-resume', device='j0')
    seq, _ = e.events('j0', 'BLOCK_JOB_READY')
    assert seq == ['running', 'ready', 'BLOCK_JOB_READY'], seq
    assert e.job('j0')['io-status'] == 'ok'
    e.qmp.ok('block-job-complete', device='j0')
    seq, _ = e.events('j0', 'null')
    assert seq == COMPLETE_SEQ, seq
    e.stop()
    qemu_io(e.base, 'raw', 'read -P 0x11 0 2M', 'read -P 0x33 2M 512k')
    check_images(e.top)


def test_commit_active_quit_while_ready(env):
    """quit force-cancels the job; the daemon exits cleanly and the
    chain is as before."""
    env.commit_until_ready()
    env.qmp.cmd('quit')
    env.daemon.wait_exit()
    assert env.daemon.returncode == 0
    check_images(env.base, env.top)
    assert env.backing_chain(env.top) == env.headers

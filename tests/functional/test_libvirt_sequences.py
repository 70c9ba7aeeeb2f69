"""libvirt's QMP sequences for snapshots and commit, replayed message by
message with libvirt's exact arguments (reference: qmp-interface.md
section 8).

libvirt 10 (blockdev mode): disks are --blockdev nodes named
libvirt-N-storage / libvirt-N-format; the guest is an NBD export of the
top format node. A snapshot is an overlay made with qemu-img, added with
two blockdev-add (backing: null) and put on top by a transaction with a
blockdev-snapshot action. Commits name nodes, carry job-id
commit-<dst>-<node> and auto-dismiss: false; libvirt listens only to
JOB_STATUS_CHANGE, then runs query-jobs and job-dismiss, and removes the
dropped nodes with blockdev-del. The active commit pivots with a
transaction adding the non-persistent bitmap libvirt-tmp-activewrite on
the base, then job-complete.

Older libvirt: -drive drive-virtio-disk0, snapshots with
blockdev-snapshot-sync (mode existing) in a transaction, block-commit
with device = drive id, top/base as file names and speed 0, pivot with
block-job-complete, and only BLOCK_JOB_* events (a COMPLETED event with
offset != len is a failure to it).

The guest's view is modelled byte by byte; QEMU's tools (qemu-img
compare/info/check) judge the images afterwards. The libvirt 10 tests
also pass against qemu-storage-daemon 7.2 (QBLK_DAEMON).
"""
import json
import os

import pytest

from daemon import is_qsd, qblk_daemon_path
from jobs_util import qemu_io, run_ok
from qmp_client import start_qblk_with_qmp

MiB = 1024 * 1024
KiB = 1024
SIZE = 8 * MiB
DST = 'vda'


class Guest:
    """The guest's disk through the NBD export, and its model."""

    def __init__(self, uri):
        self.uri = uri
        self.model = bytearray(SIZE)

    def io(self, *cmds):
        return qemu_io(self.uri, 'raw', *cmds)

    def write(self, pattern, off, length):
        self.io('write -P 0x%x %d %d' % (pattern, off, length))
        self.model[off:off + length] = bytes([pattern]) * length

    def zero(self, off, length):
        self.io('write -z %d %d' % (off, length))
        self.model[off:off + length] = bytes(length)

    def verify(self):
        """Read the whole disk over NBD and compare with the model."""
        path = os.path.join(os.path.dirname(self.uri.split('socket=')[1]),
                            'guest-view.raw')
        run_ok(['qemu-img', 'convert', '-f', 'raw', '-O', 'raw', self.uri,
                path])
        with open(path, 'rb') as f:
            data = f.read()
        assert len(data) == SIZE
        if data != self.model:
            first = next(i for i in range(SIZE) if data[i] != self.model[i])
            pytest.fail('guest reads 0x%02x at %d, model has 0x%02x'
                        % (data[first], first, self.model[first]))

    def save_model(self, path):
        with open(path, 'wb') as f:
            f.write(self.model)


class Session:
    """A QMP connection used the way libvirt uses it: every command and
    reply is logged, events are consumed by name."""

    def __init__(self, qmp):
        self.qmp = qmp
        self.log = []

    def ok(self, name, args=None):
        r = self.qmp.cmd(name, args=args)
        self.log.append((name, args, r))
        assert 'return' in r, '%s %s -> %r' % (name, json.dumps(args), r)
        return r['return']

    def job_statuses(self, job_id, until, timeout=60):
        """JOB_STATUS_CHANGE statuses of job_id up to status until."""
        seen = []
        while not seen or seen[-1] != until:
            ev = self.qmp.event_wait('JOB_STATUS_CHANGE', timeout=timeout,
                                     match={'id': job_id})
            seen.append(ev['data']['status'])
        return seen

    def block_event(self, name, device, timeout=60):
        return self.qmp.event_wait(name, timeout=timeout,
                                   match={'device': device})['data']

    def conclude(self, job_id):
        """libvirt on 'concluded': query-jobs for the error, dismiss."""
        job = [j for j in self.ok('query-jobs') if j['id'] == job_id]
        assert len(job) == 1, job
        self.ok('job-dismiss', {'id': job_id})
        assert self.job_statuses(job_id, 'null') == ['null']
        assert all(j['id'] != job_id for j in self.ok('query-jobs'))
        return job[0]


def without_drain_pause(statuses):
    """QEMU pauses a ready job while a transaction drains its nodes
    (standby, then ready again); libvirt ignores that, and so do we."""
    out = list(statuses)
    while out[:2] == ['standby', 'ready']:
        out = out[2:]
    return out


def image_info(path):
    return json.loads(run_ok(['qemu-img', 'info', '-U', '--output=json',
                              path]))


def make_overlay(path, backing):
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', backing, '-F',
            'qcow2', path])


# ---- libvirt 10, blockdev mode


class Lv10:
    """libvirt-1 (base) as the disk of guest 'vda', exported over NBD."""

    def __init__(self, factory):
        self.dir = factory.dir
        self.files = {1: self.path('base.qcow2')}
        run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', self.files[1],
                str(SIZE)])
        sock = factory.new_socket()
        storage = {'driver': 'file', 'filename': self.files[1],
                   'node-name': 'libvirt-1-storage', 'auto-read-only': True,
                   'discard': 'unmap'}
        fmt = {'node-name': 'libvirt-1-format', 'read-only': False,
               'discard': 'unmap', 'driver': 'qcow2',
               'file': 'libvirt-1-storage'}
        args = ['--blockdev', json.dumps(storage),
                '--blockdev', json.dumps(fmt),
                '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
                '--export', 'type=nbd,id=exp-vda,node-name=libvirt-1-format,'
                'name=vda,writable=on']
        self.daemon, qmp = start_qblk_with_qmp(factory, args)
        self.s = Session(qmp)
        self.guest = Guest('nbd+unix:///vda?socket=%s' % sock)
        self.top = 1

    def path(self, name):
        return os.path.join(self.dir, name)

    def snapshot(self):
        """libvirt's external disk-only snapshot of vda."""
        n = self.top + 1
        self.files[n] = self.path('snap%d.qcow2' % n)
        make_overlay(self.files[n], self.files[self.top])
        s = self.s
        assert s.ok('blockdev-add', {
            'driver': 'file', 'filename': self.files[n],
            'node-name': 'libvirt-%d-storage' % n, 'auto-read-only': True,
            'discard': 'unmap'}) == {}
        assert s.ok('blockdev-add', {
            'node-name': 'libvirt-%d-format' % n, 'read-only': False,
            'discard': 'unmap', 'driver': 'qcow2',
            'file': 'libvirt-%d-storage' % n, 'backing': None}) == {}
        assert s.ok('transaction', {'actions': [{
            'type': 'blockdev-snapshot',
            'data': {'node': 'libvirt-%d-format' % self.top,
                     'overlay': 'libvirt-%d-format' % n}}]}) == {}
        self.top = n

    def build_chain(self):
        """base <- snap2 <- snap3 (active), each with its own data, some
        of it overlapping and a zeroed range."""
        g = self.guest
        g.write(0x11, 0, MiB)
        g.write(0x12, 3 * MiB, MiB)
        self.snapshot()
        g.write(0x22, MiB, MiB)
        g.write(0x23, 3 * MiB + 512 * KiB, 256 * KiB)
        g.zero(3 * MiB + 896 * KiB, 64 * KiB)
        self.snapshot()
        g.write(0x33, 2 * MiB, MiB)
        g.zero(0, 64 * KiB)
        g.write(0x34, 3 * MiB + 640 * KiB, 64 * KiB)
        g.verify()

    def node_names(self):
        return {n['node-name'] for n in
                self.s.ok('query-named-block-nodes', {'flat': True})}

    def drop_nodes(self, n):
        """What libvirt does with the images a commit removed."""
        self.s.ok('blockdev-del', {'node-name': 'libvirt-%d-format' % n})
        self.s.ok('blockdev-del', {'node-name': 'libvirt-%d-storage' % n})

    def active_commit_ready(self):
        """virsh blockcommit --active up to JOB_STATUS_CHANGE ready."""
        job = 'commit-%s-libvirt-%d-format' % (DST, self.top)
        assert self.s.ok('block-commit', {
            'device': 'libvirt-%d-format' % self.top, 'job-id': job,
            'top-node': 'libvirt-%d-format' % self.top,
            'base-node': 'libvirt-1-format', 'auto-finalize': True,
            'auto-dismiss': False}) == {}
        assert self.s.job_statuses(job, 'ready') == \
            ['created', 'running', 'ready']
        info = [j for j in self.s.ok('query-block-jobs')
                if j['device'] == job]
        assert len(info) == 1 and info[0]['type'] == 'commit'
        assert info[0]['ready'] is True
        assert info[0]['offset'] == info[0]['len']
        return job

    def close(self):
        self.s.qmp.close()
        self.daemon.stop()


@pytest.fixture
def lv10(daemon):
    env = Lv10(daemon)
    yield env
    env.s.qmp.close()


def test_libvirt10_snapshots_then_intermediate_commit(lv10):
    env, s = lv10, lv10.s
    env.build_chain()
    job = 'commit-%s-libvirt-2-format' % DST
    assert s.ok('block-commit', {
        'device': 'libvirt-3-format', 'job-id': job,
        'top-node': 'libvirt-2-format', 'base-node': 'libvirt-1-format',
        'backing-file': env.files[1], 'auto-finalize': True,
        'auto-dismiss': False}) == {}
    assert s.job_statuses(job, 'concluded') == \
        ['created', 'running', 'waiting', 'pending', 'concluded']
    info = s.conclude(job)
    assert info['type'] == 'commit' and info['status'] == 'concluded'
    assert 'error' not in info, info
    assert info['current-progress'] == info['total-progress']
    env.drop_nodes(2)
    assert 'libvirt-2-format' not in env.node_names()
    env.guest.verify()
    env.guest.write(0x55, 5 * MiB, 64 * KiB)
    env.guest.verify()
    env.close()
    hdr = image_info(env.files[3])
    assert hdr['backing-filename'] == env.files[1]
    assert hdr['backing-filename-format'] == 'qcow2'
    for n in (1, 3):
        run_ok(['qemu-img', 'check', env.files[n]])
    model = env.path('model.raw')
    env.guest.save_model(model)
    run_ok(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw',
            env.files[3], model])


def test_libvirt10_active_commit_pivot(lv10):
    env, s = lv10, lv10.s
    env.build_chain()
    job = env.active_commit_ready()
    assert s.ok('transaction', {'actions': [{
        'type': 'block-dirty-bitmap-add',
        'data': {'node': 'libvirt-1-format',
                 'name': 'libvirt-tmp-activewrite', 'persistent': False,
                 'disabled': False}}]}) == {}
    assert s.ok('job-complete', {'id': job}) == {}
    assert without_drain_pause(s.job_statuses(job, 'concluded')) == \
        ['waiting', 'pending', 'concluded']
    info = s.conclude(job)
    assert 'error' not in info, info
    # the guest is on the base now, and its writes land there
    env.guest.verify()
    env.guest.write(0x66, 5 * MiB, 64 * KiB)
    env.guest.verify()
    base = [n for n in s.ok('query-named-block-nodes', {'flat': True})
            if n['node-name'] == 'libvirt-1-format'][0]
    bitmaps = {b['name']: b for b in base.get('dirty-bitmaps', [])}
    assert bitmaps['libvirt-tmp-activewrite']['count'] >= 64 * KiB
    env.drop_nodes(3)
    env.drop_nodes(2)
    assert env.node_names() == {'libvirt-1-format', 'libvirt-1-storage'}
    env.close()
    run_ok(['qemu-img', 'check', env.files[1]])
    model = env.path('model.raw')
    env.guest.save_model(model)
    run_ok(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw',
            env.files[1], model])
    # the old active layer's header is not touched by an active commit
    assert image_info(env.files[3])['backing-filename'] == env.files[2]


def test_libvirt10_abort_ready_active_commit(lv10):
    """virsh blockjob --abort of a ready active commit: block-job-cancel
    without force ends the job without error and without a pivot."""
    env, s = lv10, lv10.s
    env.build_chain()
    job = env.active_commit_ready()
    assert s.ok('block-job-cancel', {'device': job}) == {}
    assert s.job_statuses(job, 'concluded') == \
        ['waiting', 'pending', 'concluded']
    info = s.conclude(job)
    assert 'error' not in info, info
    env.guest.write(0x77, 6 * MiB, 64 * KiB)
    env.guest.verify()
    env.close()
    # the guest stayed on libvirt-3; the base holds the point-in-time copy
    m = json.loads(run_ok(['qemu-img', 'map', '--output=json',
                           env.files[3]]))
    assert any(e['start'] <= 6 * MiB < e['start'] + e['length'] and
               e['depth'] == 0 and e['data'] for e in m)
    model = env.path('model.raw')
    env.guest.save_model(model)
    run_ok(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw',
            env.files[3], model])
    with open(model, 'r+b') as f:
        f.seek(6 * MiB)
        f.write(bytes(64 * KiB))
    run_ok(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw',
            env.files[1], model])


# ---- older libvirt: drive ids, file names, BLOCK_JOB_* events


OLD_DRIVE = 'drive-virtio-disk0'


@pytest.fixture
def old(daemon):
    if is_qsd(qblk_daemon_path()):
        pytest.skip('older libvirt drives QEMU with -drive ids')
    d = daemon.dir
    files = [os.path.join(d, n) for n in ('base.qcow2', 'snap1.qcow2',
                                          'snap2.qcow2')]
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', files[0],
            str(SIZE)])
    sock = daemon.new_socket()
    args = ['-drive', 'file=%s,format=qcow2,id=%s,if=none'
            % (files[0], OLD_DRIVE),
            '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
            '--export', 'type=nbd,id=exp0,node-name=%s,name=vda,'
            'writable=on' % OLD_DRIVE]
    dmn, qmp = start_qblk_with_qmp(daemon, args)
    s = Session(qmp)
    g = Guest('nbd+unix:///vda?socket=%s' % sock)
    g.write(0x11, 0, 2 * MiB)
    for i in (1, 2):
        make_overlay(files[i], files[i - 1])
        # LV010's snapshot: reuse an existing file, inside a transaction
        assert s.ok('transaction', {'actions': [{
            'type': 'blockdev-snapshot-sync',
            'data': {'device': OLD_DRIVE, 'snapshot-file': files[i],
                     'format': 'qcow2', 'mode': 'existing'}}]}) == {}
        g.write(0x20 + i, i * MiB, MiB)
    g.zero(0, 64 * KiB)
    g.verify()
    yield s, g, files, dmn
    qmp.close()


def test_old_libvirt_intermediate_commit(old):
    s, g, files, dmn = old
    assert s.ok('block-commit', {'device': OLD_DRIVE, 'speed': 0,
                                 'top': files[1], 'base': files[0]}) == {}
    ev = s.block_event('BLOCK_JOB_COMPLETED', OLD_DRIVE)
    assert ev['type'] == 'commit' and 'error' not in ev, ev
    assert ev['offset'] == ev['len']
    assert s.ok('query-block-jobs') == []
    g.verify()
    top = s.ok('query-block')[0]['inserted']
    assert top['backing_file'] == files[0]
    assert top['backing_file_depth'] == 1
    s.qmp.close()
    dmn.stop()
    assert image_info(files[2])['backing-filename'] == files[0]
    run_ok(['qemu-img', 'check', files[0]])


def test_old_libvirt_active_commit_block_job_complete(old):
    s, g, files, dmn = old
    assert s.ok('block-commit', {'device': OLD_DRIVE, 'speed': 0,
                                 'top': files[2], 'base': files[0]}) == {}
    ev = s.block_event('BLOCK_JOB_READY', OLD_DRIVE)
    assert ev['type'] == 'commit' and ev['offset'] == ev['len']
    assert s.ok('block-job-complete', {'device': OLD_DRIVE}) == {}
    ev = s.block_event('BLOCK_JOB_COMPLETED', OLD_DRIVE)
    assert 'error' not in ev and ev['offset'] == ev['len'], ev
    top = s.ok('query-block')[0]['inserted']
    assert top['file'] == files[0] and top['backing_file_depth'] == 0
    g.write(0x44, 4 * MiB, 64 * KiB)
    g.verify()
    s.qmp.close()
    dmn.stop()
    run_ok(['qemu-img', 'check', files[0]])
    model = os.path.join(os.path.dirname(files[0]), 'model.raw')
    g.save_model(model)
    run_ok(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw', files[0],
            model])

"""QMP transaction: blockdev-snapshot-sync, blockdev-snapshot and
block-dirty-bitmap-add actions applied all or nothing.

Two drives (drive0, drive1: qcow2 images with a pattern in [0, 1M)) are
served by one qblk, drive0 also exported over NBD so the tests can see
that I/O still flows after a transaction (a drained section left open
would hang it). A failed transaction must leave query-block and
query-named-block-nodes exactly as they were; QEMU's tools judge the
overlays a successful one creates. Error texts are QEMU 7.2's (checked
against qemu-storage-daemon 7.2).
"""
import json
import os

import pytest

from jobs_util import (NbdWriter, env_fixture, qemu_io, qemu_io_nbd,
                       start_drive_export)
from qblk_testlib import MiB

SIZE = 8 * MiB


class Env:
    """One daemon with drive0 (exported) and drive1."""

    def __init__(self, daemon, qemu_img):
        self.dir = daemon.dir
        self.qemu_img = qemu_img
        self.img = [self.path('d0.qcow2'), self.path('d1.qcow2')]
        for i, img in enumerate(self.img):
            qemu_img.ok('create', '-q', '-f', 'qcow2', img, str(SIZE))
            qemu_io(img, 'qcow2', 'write -P 0x%x 0 1M' % (0x10 + i))
        self.daemon, self.qmp, self.sock, self.uri = start_drive_export(
            daemon, self.img[0],
            extra=['-drive', 'file=%s,format=qcow2,id=drive1' % self.img[1]])

    def path(self, name):
        return os.path.join(self.dir, name)

    def state(self):
        """Everything a failed transaction must leave unchanged."""
        return (self.qmp.ok('query-block'),
                self.qmp.ok('query-named-block-nodes'))

    def top(self, drive):
        for b in self.qmp.ok('query-block'):
            if b['device'] == drive:
                return b['inserted']
        raise KeyError(drive)

    def add_overlay(self, name):
        """A new overlay of drive0's image, added as node @name (without
        backing); its path."""
        ov = self.path(name + '.qcow2')
        self.qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', self.img[0],
                         '-F', 'qcow2', ov)
        self.qmp.ok('blockdev-add', args={
            'driver': 'qcow2', 'node-name': name, 'backing': None,
            'file': {'driver': 'file', 'filename': ov}})
        return ov

    def txn(self, *actions):
        return self.qmp.cmd('transaction', args={'actions': list(actions)})

    def assert_txn_fails(self, desc, *actions):
        """The transaction fails with desc and changes nothing."""
        before = self.state()
        r = self.txn(*actions)
        assert r.get('error') == {'class': 'GenericError', 'desc': desc}, r
        assert self.state() == before
        # the drained sections ended: the drive still serves I/O
        qemu_io_nbd(self.uri, 'write -P 0x77 4M 64k',
                    'read -P 0x77 4M 64k', 'read -P 0x10 0 1M')


def snap_sync(drive, file, node=None, **extra):
    data = {'device': drive, 'snapshot-file': file}
    if node:
        data['snapshot-node-name'] = node
    data.update(extra)
    return {'type': 'blockdev-snapshot-sync', 'data': data}


def bitmap_add(node, name, **extra):
    data = {'node': node, 'name': name}
    data.update(extra)
    return {'type': 'block-dirty-bitmap-add', 'data': data}


env = env_fixture(Env)


def require_bitmaps(env):
    cmds = [c['name'] for c in env.qmp.ok('query-commands')]
    if 'block-dirty-bitmap-add' not in cmds:
        pytest.fail('block-dirty-bitmap-add is not implemented yet')


def test_transaction_empty_list_does_nothing(env):
    before = env.state()
    assert env.txn() == {'return': {}}
    assert env.state() == before


def test_transaction_two_snapshots_switch_both(env, qemu_img):
    ov = [env.path('o0.qcow2'), env.path('o1.qcow2')]
    r = env.txn(snap_sync('drive0', ov[0], 'snap0'),
                snap_sync('drive1', ov[1], 'snap1'))
    assert r == {'return': {}}
    for i in range(2):
        top = env.top('drive%d' % i)
        assert top['node-name'] == 'snap%d' % i and top['file'] == ov[i]
        assert top['backing_file'] == env.img[i]
        hdr = json.loads(qemu_img.ok('info', '-U', '--output=json', ov[i]))
        assert hdr['backing-filename'] == env.img[i]
    qemu_io_nbd(env.uri, 'write -P 0x55 2M 64k', 'read -P 0x10 0 1M')
    env.qmp.close()
    env.daemon.stop()
    m = json.loads(qemu_img.ok('map', '--output=json', ov[0]))
    assert any(e['start'] <= 2 * MiB < e['start'] + e['length'] and
               e['depth'] == 0 and e['data'] for e in m)
    for img in ov + env.img:
        rc, out, err = qemu_img('check', img)
        assert rc == 0, out + err


def test_transaction_stacked_snapshots_on_one_drive(env):
    """A later action sees the graph of the earlier ones."""
    a, b = env.path('a.qcow2'), env.path('b.qcow2')
    assert env.txn(snap_sync('drive0', a, 'sa'),
                   snap_sync('drive0', b, 'sb')) == {'return': {}}
    top = env.top('drive0')
    assert top['node-name'] == 'sb' and top['backing_file'] == a
    assert top['backing_file_depth'] == 2
    qemu_io_nbd(env.uri, 'read -P 0x10 0 1M')


@pytest.mark.parametrize('second, desc', [
    (snap_sync('nosuch', '@o1', 's1'),
     "Cannot find device='nosuch' nor node-name=''"),
    (snap_sync('drive1', '@o1', 's0'),
     'New overlay node-name already in use'),
    (snap_sync('drive1', '@o1', 's1', format='raw'),
     "Backing file not supported for file format 'raw'"),
    ({'type': 'abort', 'data': {}},
     'Transaction aborted using Abort action'),
], ids=['unknown-device', 'duplicate-node-name', 'bad-format', 'abort'])
def test_transaction_second_action_fails_nothing_changes(env, second, desc):
    second = json.loads(json.dumps(second).replace(
        '@o1', env.path('o1.qcow2')))
    env.assert_txn_fails(desc, snap_sync('drive0', env.path('o0.qcow2'),
                                         's0'), second)
    # the overlay file the first action made may stay, as in QEMU; the
    # same names can be used again
    assert env.txn(snap_sync('drive0', env.path('o0.qcow2'), 's0'),
                   snap_sync('drive1', env.path('o1.qcow2'), 's1')) == \
        {'return': {}}
    assert env.top('drive0')['node-name'] == 's0'
    assert env.top('drive1')['node-name'] == 's1'


def test_transaction_failure_after_stacked_snapshots(env):
    """Rollback in reverse order: the second overlay stands on the first."""
    env.assert_txn_fails('Transaction aborted using Abort action',
                         snap_sync('drive0', env.path('a.qcow2'), 'sa'),
                         snap_sync('drive0', env.path('b.qcow2'), 'sb'),
                         snap_sync('drive1', env.path('c.qcow2'), 'sc'),
                         {'type': 'abort', 'data': {}})


def test_transaction_blockdev_snapshot_failure_keeps_overlay_node(env):
    """A rolled-back blockdev-snapshot leaves the added overlay as it was:
    monitor-owned, unused, without backing, usable again."""
    env.add_overlay('ov')
    env.assert_txn_fails('Transaction aborted using Abort action',
                         {'type': 'blockdev-snapshot',
                          'data': {'node': 'drive0', 'overlay': 'ov'}},
                         {'type': 'abort', 'data': {}})
    assert env.txn({'type': 'blockdev-snapshot',
                    'data': {'node': 'drive0', 'overlay': 'ov'}}) == \
        {'return': {}}
    assert env.top('drive0')['node-name'] == 'ov'
    qemu_io_nbd(env.uri, 'read -P 0x10 0 1M')


def test_transaction_under_guest_writes(env):
    """A rolled-back and a committed transaction while a client writes
    drive0 over NBD: no write is lost or fails."""
    writer = NbdWriter(env.sock, 4 * MiB, 6 * MiB)
    writer.start()
    writer.wait_writes()
    r = env.txn(snap_sync('drive0', env.path('o0.qcow2'), 's0'),
                {'type': 'abort', 'data': {}})
    assert 'error' in r
    writer.wait_writes()
    assert env.txn(snap_sync('drive0', env.path('o0.qcow2'), 's0'),
                   snap_sync('drive1', env.path('o1.qcow2'), 's1')) == \
        {'return': {}}
    writer.wait_writes()
    writer.stop(30)
    qemu_io_nbd(env.uri, *['read -P 0x%x %d 64k' % (v, off)
                           for off, v in sorted(writer.last.items())])
    assert env.top('drive0')['node-name'] == 's0'


def test_transaction_unknown_action_type(env):
    before = env.state()
    r = env.txn({'type': 'drive-backup', 'data': {}})
    assert r['error'] == {'class': 'GenericError', 'desc':
                          "Parameter 'type' does not accept value "
                          "'drive-backup'"}
    r = env.txn({'type': 'blockdev-snapshot-sync'})
    assert r['error']['desc'] == "Parameter 'actions[0].data' is missing"
    r = env.qmp.cmd('transaction', args={})
    assert r['error']['desc'] == "Parameter 'actions' is missing"
    assert env.state() == before


def test_transaction_blockdev_snapshot_and_bitmap_add(env):
    require_bitmaps(env)
    env.add_overlay('ov')
    r = env.txn({'type': 'blockdev-snapshot',
                 'data': {'node': 'drive0', 'overlay': 'ov'}},
                bitmap_add('ov', 'b0', persistent=False, disabled=False))
    assert r == {'return': {}}
    top = env.top('drive0')
    assert top['node-name'] == 'ov'
    bitmaps = top.get('dirty-bitmaps', [])
    assert [b['name'] for b in bitmaps] == ['b0']
    assert bitmaps[0]['count'] == 0
    qemu_io_nbd(env.uri, 'write -P 0x66 1M 64k')
    bitmaps = env.top('drive0')['dirty-bitmaps']
    assert bitmaps[0]['count'] == 65536


def test_transaction_failing_bitmap_add_rolls_back_snapshot(env):
    require_bitmaps(env)
    env.qmp.ok('block-dirty-bitmap-add', args={'node': 'drive1',
                                               'name': 'taken'})
    env.assert_txn_fails('Bitmap already exists: taken',
                         snap_sync('drive0', env.path('o0.qcow2'), 's0'),
                         bitmap_add('drive0', 'fresh'),
                         bitmap_add('drive1', 'taken'))
    env.assert_txn_fails("Cannot find device='nosuch' nor "
                         "node-name='nosuch'",
                         bitmap_add('drive0', 'fresh'),
                         snap_sync('drive1', env.path('o1.qcow2'), 's1'),
                         bitmap_add('nosuch', 'x'))
    # the rolled-back bitmap name is free again
    assert env.txn(bitmap_add('drive0', 'fresh')) == {'return': {}}
    assert env.txn(bitmap_add('drive0', 'fresh'))['error']['desc'] == \
        'Bitmap already exists: fresh'

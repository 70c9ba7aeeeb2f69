"""Live external snapshots over QMP: blockdev-snapshot-sync (both modes)
and blockdev-snapshot, while the drive is exported over NBD.

The chain base <- top is made with qemu-img/qemu-io (base: 0x11 in
[0, 2M), top: 0x22 in [2M, 3M)); qblk serves it as -drive drive0 and
exports it. QEMU's tools judge every image afterwards: qemu-img info
(the overlay's header names the old top), map (new writes land in the
overlay only), compare and check.
"""
import json
import os

from jobs_util import (NbdWriter, drive_chain, env_fixture, qemu_io,
                       qemu_io_nbd, start_drive_export)
from qblk_testlib import MiB

SIZE = 8 * MiB


class Env:
    """One daemon on the chain, with its QMP client and export URI."""

    def __init__(self, daemon, qemu_img, cor=False):
        self.dir = daemon.dir
        self.qemu_img = qemu_img
        self.base = self.path('base.qcow2')
        self.top = self.path('top.qcow2')
        qemu_img.ok('create', '-q', '-f', 'qcow2', self.base, str(SIZE))
        qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', self.base, '-F',
                    'qcow2', self.top)
        qemu_io(self.base, 'qcow2', 'write -P 0x11 0 2M')
        qemu_io(self.top, 'qcow2', 'write -P 0x22 2M 1M')
        self.daemon, self.qmp, self.sock, self.uri = start_drive_export(
            daemon, self.top, ',copy-on-read=on' if cor else '')

    def path(self, name):
        return os.path.join(self.dir, name)

    def nodes(self):
        return [n['node-name'] for n in
                self.qmp.ok('query-named-block-nodes', flat=True)]

    def top_chain(self):
        return drive_chain(self.qmp)

    def map(self, image):
        return json.loads(self.qemu_img.ok('map', '-U', '-f', 'qcow2',
                                           '--output=json', image))

    def assert_error(self, cmd, desc, **args):
        """cmd fails with GenericError desc; the nodes stay the same."""
        before = self.nodes()
        e = self.qmp.err(cmd, args={k.replace('_', '-'): v
                                    for k, v in args.items()})
        assert e == {'class': 'GenericError', 'desc': desc}, e
        assert self.nodes() == before
        assert self.top_chain() == [self.top, self.base]


env = env_fixture(Env)


def allocated_in_top(m, start, end):
    """True if [start, end) is all data at depth 0 of map m."""
    pos = start
    for e in m:
        if e['start'] <= pos < e['start'] + e['length']:
            if e['depth'] != 0 or not e['data']:
                return False
            pos = e['start'] + e['length']
            if pos >= end:
                return True
    return False


def test_snapshot_sync_under_nbd_writes(env, qemu_img):
    ov = env.path('ov.qcow2')
    # a writer keeps the export busy while the snapshot switches the graph
    writer = NbdWriter(env.sock, 4 * MiB, 6 * MiB)
    writer.start()
    writer.wait_writes(20)
    assert env.qmp.ok('blockdev-snapshot-sync', device='drive0',
                      snapshot_file=ov, snapshot_node_name='snap') == {}
    writer.wait_writes(20)
    writer.stop(30)
    assert len(writer.last) == 32
    reads = ['read -P 0x%x %d 64k' % (v, off)
             for off, v in sorted(writer.last.items())]
    qemu_io_nbd(env.uri, *reads)
    # the old top as it is now, for "unchanged from here on"
    frozen = env.path('frozen.raw')
    qemu_img.ok('convert', '-U', '-f', 'qcow2', '-O', 'raw', env.top, frozen)
    qemu_io_nbd(env.uri, 'write -P 0x44 6M 1M')

    info = env.qmp.ok('query-block')[0]['inserted']
    assert info['node-name'] == 'snap' and info['file'] == ov
    assert info['backing_file'] == env.top
    assert info['backing_file_depth'] == 2
    assert env.top_chain() == [ov, env.top, env.base]
    qemu_io_nbd(env.uri, 'read -P 0x11 0 2M', 'read -P 0x22 2M 1M',
                'read -P 0x44 6M 1M',
                'read -P 0 7M 1M')
    hdr = json.loads(qemu_img.ok('info', '-U', '--output=json', ov))
    assert hdr['backing-filename'] == env.top
    assert hdr['backing-filename-format'] == 'qcow2'
    assert allocated_in_top(env.map(ov), 6 * MiB, 7 * MiB)
    assert not allocated_in_top(env.map(env.top), 6 * MiB, 7 * MiB)

    env.qmp.close()
    env.daemon.stop()
    for img in (ov, env.top, env.base):
        rc, out, err = qemu_img('check', img)
        assert rc == 0, out + err
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', 'raw',
                            env.top, frozen)
    assert rc == 0, out + err
    # the overlay's chain reads back everything written
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', 'qcow2', ov,
                            env.top)
    assert rc == 1, 'overlay must differ from the old top (6M..7M)'


def test_snapshot_sync_overwrites_in_absolute_paths_mode(env, qemu_img):
    ov = env.path('ov.qcow2')
    with open(ov, 'wb') as f:
        f.write(b'not an image' * 1000)
    env.qmp.ok('blockdev-snapshot-sync', node_name='drive0',
               snapshot_file=ov, snapshot_node_name='snap', format='qcow2',
               mode='absolute-paths')
    assert env.top_chain() == [ov, env.top, env.base]
    hdr = json.loads(qemu_img.ok('info', '-U', '--output=json', ov))
    assert hdr['virtual-size'] == SIZE
    assert hdr['full-backing-filename'] == env.top


def test_snapshot_sync_mode_existing(env, qemu_img):
    ex = env.path('ex.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', env.top, '-F', 'qcow2',
                ex)
    assert env.qmp.ok('blockdev-snapshot-sync', device='drive0',
                      snapshot_file=ex, mode='existing') == {}
    assert env.top_chain() == [ex, env.top, env.base]
    names = env.nodes()
    assert 'drive0' in names     # the old top keeps its node name
    qemu_io_nbd(env.uri, 'write -P 0x55 0 64k', 'read -P 0x11 64k 1M')
    assert allocated_in_top(env.map(ex), 0, 65536)
    env.qmp.close()
    env.daemon.stop()
    rc, out, err = qemu_img('check', ex)
    assert rc == 0, out + err


def test_blockdev_snapshot_with_added_overlay(env, qemu_img):
    ov = env.path('ov.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', env.top, '-F', 'qcow2',
                ov)
    env.qmp.ok('blockdev-add', args={
        'driver': 'qcow2', 'node-name': 'ov', 'backing': None,
        'file': {'driver': 'file', 'filename': ov}})
    assert env.qmp.ok('blockdev-snapshot', node='drive0', overlay='ov') == {}
    info = env.qmp.ok('query-block')[0]['inserted']
    assert info['node-name'] == 'ov'
    assert env.top_chain() == [ov, env.top, env.base]
    qemu_io_nbd(env.uri, 'write -P 0x66 1M 64k', 'read -P 0x22 2M 1M')
    assert allocated_in_top(env.map(ov), MiB, MiB + 65536)
    e = env.qmp.err('blockdev-del', node_name='ov')
    assert e['desc'] == 'Node ov is in use'


def test_copy_on_read_follows_the_drive(daemon, qemu_img):
    env = Env(daemon, qemu_img, cor=True)
    ov = env.path('ov.qcow2')
    env.qmp.ok('blockdev-snapshot-sync', device='drive0', snapshot_file=ov,
               snapshot_node_name='snap')
    qemu_io_nbd(env.uri, 'read -P 0x11 0 1M')
    assert allocated_in_top(env.map(ov), 0, MiB)
    assert not allocated_in_top(env.map(env.top), 0, 65536)
    env.qmp.close()


def test_snapshot_sync_errors(env, qemu_img):
    ov = env.path('ov.qcow2')
    raw = env.path('r.raw')
    qemu_img.ok('create', '-q', '-f', 'raw', raw, str(SIZE))
    base_node = [n['node-name'] for n in
                 env.qmp.ok('query-named-block-nodes', flat=True)
                 if n['file'] == env.base and n['drv'] == 'qcow2'][0]
    env.assert_error('blockdev-snapshot-sync',
                     "Cannot find device='nosuch' nor node-name=''",
                     device='nosuch', snapshot_file=ov)
    env.assert_error('blockdev-snapshot-sync',
                     "Cannot find device='' nor node-name='nosuch'",
                     node_name='nosuch', snapshot_file=ov)
    env.assert_error('blockdev-snapshot-sync',
                     "Cannot find device='' nor node-name=''",
                     snapshot_file=ov)
    env.assert_error('blockdev-snapshot-sync', 'New overlay node-name missing',
                     node_name='drive0', snapshot_file=ov)
    env.assert_error('blockdev-snapshot-sync',
                     'New overlay node-name already in use',
                     device='drive0', snapshot_file=ov,
                     snapshot_node_name=base_node)
    env.assert_error('blockdev-snapshot-sync', "Unknown file format 'vmdkx'",
                     device='drive0', snapshot_file=ov, format='vmdkx')
    env.assert_error('blockdev-snapshot-sync',
                     "Backing file not supported for file format 'raw'",
                     device='drive0', snapshot_file=ov, format='raw')
    assert not os.path.exists(ov)
    env.assert_error('blockdev-snapshot-sync',
                     "Could not open '%s': No such file or directory" % ov,
                     device='drive0', snapshot_file=ov, mode='existing')
    env.assert_error('blockdev-snapshot-sync',
                     'The overlay does not support backing images',
                     device='drive0', snapshot_file=raw, format='raw',
                     mode='existing')
    env.assert_error('blockdev-snapshot-sync',
                     "Node '%s' is busy: node is used as backing hd of "
                     "'drive0'" % base_node,
                     node_name=base_node, snapshot_file=ov,
                     snapshot_node_name='s')
    top_file = [n['node-name'] for n in
                env.qmp.ok('query-named-block-nodes', flat=True)
                if n['file'] == env.top and n['drv'] == 'file'][0]
    env.assert_error('blockdev-snapshot-sync',
                     "The feature 'snapshot' is not enabled",
                     node_name=top_file, snapshot_file=ov,
                     snapshot_node_name='s')
    env.assert_error('blockdev-snapshot-sync',
                     "Parameter 'snapshot-file' is missing", device='drive0')
    env.assert_error('blockdev-snapshot-sync',
                     "Parameter 'mode' does not accept value 'bogus'",
                     device='drive0', snapshot_file=ov, mode='bogus')
    assert not os.path.exists(ov)


def test_blockdev_snapshot_errors(env, qemu_img):
    with_backing = env.path('wb.qcow2')
    plain = env.path('plain.qcow2')
    raw = env.path('r.raw')
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', env.base, '-F',
                'qcow2', with_backing)
    qemu_img.ok('create', '-q', '-f', 'qcow2', plain, str(SIZE))
    qemu_img.ok('create', '-q', '-f', 'raw', raw, str(SIZE))
    q = env.qmp
    q.ok('blockdev-add', args={'driver': 'qcow2', 'node-name': 'wb',
                               'read-only': True, 'file': {
                                   'driver': 'file',
                                   'filename': with_backing}})
    q.ok('blockdev-add', args={'driver': 'qcow2', 'node-name': 'plain',
                               'backing': None, 'file': {
                                   'driver': 'file', 'filename': plain}})
    q.ok('blockdev-add', args={'driver': 'raw', 'node-name': 'rr',
                               'file': {'driver': 'file', 'filename': raw}})
    env.assert_error('blockdev-snapshot',
                     "Cannot find device='nosuch' nor node-name='nosuch'",
                     node='nosuch', overlay='plain')
    env.assert_error('blockdev-snapshot',
                     "Cannot find device='nosuch' nor node-name='nosuch'",
                     node='drive0', overlay='nosuch')
    env.assert_error('blockdev-snapshot', 'The overlay is already in use',
                     node='plain', overlay='drive0')
    env.assert_error('blockdev-snapshot',
                     'The overlay already has a backing image',
                     node='drive0', overlay='wb')
    env.assert_error('blockdev-snapshot',
                     'The overlay does not support backing images',
                     node='drive0', overlay='rr')
    env.assert_error('blockdev-snapshot', "Parameter 'overlay' is missing",
                     node='drive0')

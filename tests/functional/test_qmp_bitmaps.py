"""Dirty bitmaps over QMP: block-dirty-bitmap-add/-remove/-clear/-enable/
-disable and the dirty-bitmaps member of query-block and
query-named-block-nodes (QEMU 7.2's BlockDirtyInfo).

qblk serves a qcow2 image (64 KiB clusters) as -drive drive0 and exports
it over NBD; qemu-io writes through the export at known offsets, so the
expected dirty counts follow from the granularity alone.
"""

from jobs_util import env_fixture, qemu_io_nbd, start_drive_export
from qblk_testlib import MiB

SIZE = 8 * MiB
KiB = 1024


class Env:
    """One daemon serving img.qcow2 as drive0, with QMP and NBD."""

    def __init__(self, daemon, qemu_img):
        self.img = daemon.path('img.qcow2')
        qemu_img.ok('create', '-q', '-f', 'qcow2', self.img, str(SIZE))
        self.daemon, self.qmp, _, self.uri = start_drive_export(
            daemon, self.img, ',discard=unmap')

    def write(self, *cmds):
        qemu_io_nbd(self.uri, *cmds)

    def bitmaps(self):
        """query-block's dirty-bitmaps of drive0, by name."""
        info = self.qmp.ok('query-block')[0]['inserted']
        return {b.get('name'): b for b in info.get('dirty-bitmaps', [])}

    def count(self, name):
        return self.bitmaps()[name]['count']

    def ok(self, cmd, **args):
        """Run cmd (its 'name' member clashes with QMPClient.ok's)."""
        return self.qmp.ok(cmd, args=args)

    def error(self, cmd, desc, **args):
        """cmd fails with GenericError desc and changes no bitmap."""
        before = self.bitmaps()
        e = self.qmp.err(cmd, args=args)
        assert e == {'class': 'GenericError', 'desc': desc}, e
        assert self.bitmaps() == before


env = env_fixture(Env)


def test_bitmap_add_records_nbd_writes(env):
    assert env.bitmaps() == {}
    assert env.ok('block-dirty-bitmap-add', node='drive0',
                      name='b0') == {}
    assert env.bitmaps() == {'b0': {
        'name': 'b0', 'count': 0, 'granularity': 65536, 'recording': True,
        'busy': False, 'persistent': False}}
    env.write('write -P 1 0 4k',              # granule 0
              'write -P 2 1M 128k',           # granules 16, 17
              'write -P 3 3145828 512',       # 3M+100: granule 48
              'write -P 4 1M 4k')             # granule 16 again
    assert env.count('b0') == 4 * 64 * KiB
    # reads do not mark
    env.write('read -P 4 1M 4k', 'read -P 2 1028k 124k')
    assert env.count('b0') == 4 * 64 * KiB
    # zero writes and discards do
    env.write('write -z 5M 64k', 'discard 6M 128k')
    assert env.count('b0') == 7 * 64 * KiB
    # the node list reports the same bitmap on the drive's node
    nodes = env.qmp.ok('query-named-block-nodes', flat=True)
    with_bitmaps = [n for n in nodes if n.get('dirty-bitmaps')]
    assert len(with_bitmaps) == 1
    assert with_bitmaps[0]['dirty-bitmaps'][0]['count'] == 7 * 64 * KiB


def test_bitmap_granularity_and_disabled(env):
    env.ok('block-dirty-bitmap-add', node='drive0', name='fine',
               granularity=512)
    env.ok('block-dirty-bitmap-add', node='drive0', name='off',
               granularity=1 * MiB, disabled=True)
    assert env.bitmaps()['fine']['granularity'] == 512
    assert env.bitmaps()['off']['recording'] is False
    env.write('write -P 5 4k 4k', 'write -P 6 1025k 1k')
    assert env.count('fine') == 5 * KiB
    assert env.count('off') == 0
    env.ok('block-dirty-bitmap-enable', node='drive0', name='off')
    assert env.bitmaps()['off']['recording'] is True
    env.write('write -P 7 2M 4k', 'write -P 7 7M 4k')
    assert env.count('off') == 2 * MiB
    # creation order is kept in the list
    info = env.qmp.ok('query-block')[0]['inserted']['dirty-bitmaps']
    assert [b['name'] for b in info] == ['fine', 'off']


def test_bitmap_clear_disable_remove(env):
    env.ok('block-dirty-bitmap-add', node='drive0', name='b')
    env.write('write -P 1 0 256k')
    assert env.count('b') == 256 * KiB
    assert env.ok('block-dirty-bitmap-clear', node='drive0',
                      name='b') == {}
    assert env.count('b') == 0
    assert env.bitmaps()['b']['recording'] is True
    env.write('write -P 1 1M 64k')
    assert env.count('b') == 64 * KiB
    assert env.ok('block-dirty-bitmap-disable', node='drive0',
                      name='b') == {}
    env.write('write -P 1 2M 64k')
    assert env.count('b') == 64 * KiB
    assert env.bitmaps()['b']['recording'] is False
    assert env.ok('block-dirty-bitmap-remove', node='drive0',
                      name='b') == {}
    assert env.bitmaps() == {}
    info = env.qmp.ok('query-block')[0]['inserted']
    assert 'dirty-bitmaps' not in info
    # the name is free again
    env.ok('block-dirty-bitmap-add', node='drive0', name='b')
    assert env.count('b') == 0


def test_bitmap_errors(env):
    env.ok('block-dirty-bitmap-add', node='drive0', name='b0')
    env.error('block-dirty-bitmap-add', 'Bitmap name cannot be empty',
              node='drive0', name='')
    env.error('block-dirty-bitmap-add',
              "Cannot find device='nope' nor node-name='nope'",
              node='nope', name='x')
    env.error('block-dirty-bitmap-add', 'Bitmap already exists: b0',
              node='drive0', name='b0')
    for g in (0, 256, 1000, 65536 + 512):
        env.error('block-dirty-bitmap-add',
                  'Granularity must be power of 2 and at least 512',
                  node='drive0', name='g', granularity=g)
    env.error('block-dirty-bitmap-add', 'Persistent bitmaps are not '
              'supported', node='drive0', name='p', persistent=True)
    env.error('block-dirty-bitmap-add',
              'Bitmap name too long: ' + 'n' * 1024,
              node='drive0', name='n' * 1024)
    for cmd in ('remove', 'clear', 'enable', 'disable'):
        env.error('block-dirty-bitmap-' + cmd, "Node 'nope' not found",
                  node='nope', name='b0')
        env.error('block-dirty-bitmap-' + cmd,
                  "Dirty bitmap 'b1' not found", node='drive0', name='b1')
    # persistent=false is accepted (the default)
    env.ok('block-dirty-bitmap-add', node='drive0', name='np',
               persistent=False)
    # a missing member is QAPI's error
    e = env.qmp.err('block-dirty-bitmap-add', args={'node': 'drive0'})
    assert e == {'class': 'GenericError',
                 'desc': "Parameter 'name' is missing"}, e
    assert sorted(env.bitmaps()) == ['b0', 'np']


def test_bitmap_by_node_name_survives_until_node_closes(env):
    """A bitmap on the drive's node found by its node name; blockdev-del
    is not possible for a drive, so the daemon's exit frees it (checked
    by the daemon exiting cleanly)."""
    node = env.qmp.ok('query-block')[0]['inserted']['node-name']
    env.ok('block-dirty-bitmap-add', node=node, name='byname',
               granularity=4096)
    env.write('write -P 9 8k 4k')
    assert env.count('byname') == 4096
    env.ok('block-dirty-bitmap-clear', node=node, name='byname')
    assert env.count('byname') == 0
    env.qmp.close()
    env.daemon.stop()

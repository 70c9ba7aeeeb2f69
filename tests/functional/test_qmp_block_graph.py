"""The block graph over QMP: query-block, query-named-block-nodes,
blockdev-add and blockdev-del.

qblk runs with a -drive on a three-image qcow2 chain made by qemu-img
(base <- mid <- top), an NBD server and an export of the drive. The
query results are checked member by member against QEMU 7.2's shapes and
against `qemu-img info --backing-chain` as the oracle for the image
facts. Every error is checked for its class and QEMU's text, and for
leaving the list of nodes as it was.
"""
import json
import os

import pytest

from qmp_client import start_qblk_with_qmp
from qblk_testlib import MiB

SIZE = 8 * MiB

BLOCK_DEVICE_INFO_KEYS = {
    'file', 'node-name', 'ro', 'drv', 'backing_file', 'backing_file_depth',
    'encrypted', 'detect_zeroes', 'bps', 'bps_rd', 'bps_wr', 'iops',
    'iops_rd', 'iops_wr', 'image', 'cache', 'write_threshold'}


def make_chain(qemu_img, d):
    """base <- mid <- top, each with some data; returns their paths."""
    paths = [os.path.join(d, n + '.qcow2') for n in ('base', 'mid', 'top')]
    qemu_img.ok('create', '-q', '-f', 'qcow2', paths[0], str(SIZE))
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', paths[0], '-F',
                'qcow2', paths[1])
    # the top names its backing file relatively, as users often do
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F',
                'qcow2', paths[2])
    return paths


@pytest.fixture
def graph(daemon, qemu_img):
    """(qmp, paths) with drive0 on the chain, exported over NBD."""
    paths = make_chain(qemu_img, daemon.dir)
    sock = daemon.new_socket()
    args = ['-drive', 'file=%s,format=qcow2,id=drive0' % paths[2],
            '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
            '--export', 'type=nbd,id=exp0,node-name=drive0,name=drive0,'
            'writable=on']
    d, qmp = start_qblk_with_qmp(daemon, args)
    yield qmp, paths
    qmp.close()


def node_names(qmp):
    return [n['node-name'] for n in
            qmp.ok('query-named-block-nodes', flat=True)]


def assert_error(qmp, before, cmd, desc, **args):
    """cmd fails with GenericError desc and the nodes stay as they were."""
    e = qmp.err(cmd, args={k.replace('_', '-'): v for k, v in args.items()})
    assert e == {'class': 'GenericError', 'desc': desc}, e
    assert node_names(qmp) == before


def chain_of(image):
    """ImageInfo nested through backing-image -> list, top first."""
    out = []
    while image:
        out.append(image)
        image = image.get('backing-image')
    return out


# ---- query-block


def test_query_block_drive_shape(graph, qemu_img):
    qmp, (base, mid, top) = graph
    blocks = qmp.ok('query-block')
    assert len(blocks) == 1
    b = blocks[0]
    assert set(b) == {'device', 'type', 'removable', 'locked', 'inserted'}
    assert (b['device'], b['type'], b['removable'], b['locked']) == \
        ('drive0', 'unknown', False, False)
    ins = b['inserted']
    assert set(ins) == BLOCK_DEVICE_INFO_KEYS
    assert ins['file'] == top
    assert ins['node-name'] == 'drive0'
    assert ins['drv'] == 'qcow2' and ins['ro'] is False
    assert ins['backing_file'] == 'mid.qcow2'
    assert ins['backing_file_depth'] == 2
    assert ins['encrypted'] is False and ins['detect_zeroes'] == 'off'
    for k in ('bps', 'bps_rd', 'bps_wr', 'iops', 'iops_rd', 'iops_wr',
              'write_threshold'):
        assert ins[k] == 0, k
    assert ins['cache'] == {'writeback': True, 'direct': False,
                            'no-flush': False}


def test_query_block_image_chain_matches_qemu_img(graph, qemu_img):
    qmp, (base, mid, top) = graph
    chain = chain_of(qmp.ok('query-block')[0]['inserted']['image'])
    oracle = json.loads(qemu_img.ok('info', '-U', '--output=json',
                                    '--backing-chain', top))
    assert [i['filename'] for i in chain] == [top, mid, base]
    assert len(oracle) == 3
    for ours, ref in zip(chain, oracle):
        for k in ('format', 'virtual-size', 'cluster-size',
                  'backing-filename', 'full-backing-filename',
                  'backing-filename-format', 'format-specific',
                  'dirty-flag'):
            assert ours.get(k) == ref.get(k), (ours['filename'], k)
        assert ours['actual-size'] > 0
    assert 'backing-filename' not in chain[2]


# ---- query-named-block-nodes


def test_named_nodes_lists_every_node(graph):
    qmp, (base, mid, top) = graph
    nodes = qmp.ok('query-named-block-nodes')
    by_file = {}
    for n in nodes:
        assert set(n) | {'backing_file'} == BLOCK_DEVICE_INFO_KEYS
        assert ('backing_file' in n) == (n['file'] != base and
                                         n['drv'] == 'qcow2')
        by_file.setdefault(n['file'], []).append(n['drv'])
    # one format and one protocol node per image
    assert {f: sorted(v) for f, v in by_file.items()} == {
        p: ['file', 'qcow2'] for p in (base, mid, top)}
    top_node = [n for n in nodes if n['node-name'] == 'drive0'][0]
    assert [i['filename'] for i in chain_of(top_node['image'])] == \
        [top, mid, base]
    protocol = [n for n in nodes if n['drv'] == 'file'][0]
    assert protocol['image']['format'] == 'file'
    assert protocol['backing_file_depth'] == 0


def test_named_nodes_flat_has_no_nested_chain(graph):
    qmp, paths = graph
    nodes = qmp.ok('query-named-block-nodes', flat=True)
    assert len(nodes) == 6
    for n in nodes:
        assert 'backing-image' not in n['image']
    e = qmp.err('query-named-block-nodes', args={'flat': 'yes'})
    assert e == {'class': 'GenericError', 'desc': "Invalid parameter type "
                 "for 'flat', expected: boolean"}


# ---- blockdev-add


def new_image(qemu_img, graph, name, *extra):
    qmp, paths = graph
    path = os.path.join(os.path.dirname(paths[0]), name)
    qemu_img.ok('create', '-q', '-f', 'qcow2', *extra, path, str(SIZE))
    return path


def test_blockdev_add_inline_and_by_reference(graph, qemu_img):
    qmp, paths = graph
    a = new_image(qemu_img, graph, 'a.qcow2')
    b = new_image(qemu_img, graph, 'b.qcow2')
    before = node_names(qmp)
    assert qmp.ok('blockdev-add', args={
        'driver': 'qcow2', 'node-name': 'na',
        'file': {'driver': 'file', 'filename': a}}) == {}
    assert qmp.ok('blockdev-add', args={
        'driver': 'file', 'node-name': 'fb', 'filename': b,
        'cache': {'direct': False, 'no-flush': True}}) == {}
    assert qmp.ok('blockdev-add', args={
        'driver': 'qcow2', 'node-name': 'nb', 'file': 'fb',
        'read-only': True}) == {}
    nodes = {n['node-name']: n for n in
             qmp.ok('query-named-block-nodes', flat=True)}
    assert set(nodes) - set(before) >= {'na', 'fb', 'nb'}
    assert len(nodes) == len(before) + 4     # na's file child is automatic
    assert nodes['na']['file'] == a and nodes['na']['ro'] is False
    assert nodes['nb']['ro'] is True and nodes['nb']['file'] == b
    assert nodes['fb']['cache']['no-flush'] is True
    # not drives: query-block still lists drive0 only
    assert [b['device'] for b in qmp.ok('query-block')] == ['drive0']


def test_blockdev_add_errors(graph, qemu_img):
    qmp, paths = graph
    a = new_image(qemu_img, graph, 'a.qcow2')
    qmp.ok('blockdev-add', args={'driver': 'file', 'node-name': 'fa',
                                 'filename': a})
    before = node_names(qmp)
    assert_error(qmp, before, 'blockdev-add',
                 "Duplicate nodes with node-name='fa'",
                 driver='file', node_name='fa', filename=a)
    assert_error(qmp, before, 'blockdev-add', "Parameter 'driver' is missing",
                 node_name='x', file='fa')
    assert_error(qmp, before, 'blockdev-add',
                 "Parameter 'bogus' is unexpected",
                 driver='qcow2', node_name='x', file='fa', bogus=1)
    assert_error(qmp, before, 'blockdev-add',
                 "Invalid parameter type for 'read-only', expected: boolean",
                 driver='qcow2', node_name='x', file='fa', read_only='yes')
    assert_error(qmp, before, 'blockdev-add',
                 "Parameter 'driver' does not accept value 'vmdk'",
                 driver='vmdk', node_name='x', file='fa')
    assert_error(qmp, before, 'blockdev-add',
                 "Could not open '/nonexistent.img': No such file or "
                 "directory",
                 driver='file', node_name='x', filename='/nonexistent.img')
    assert_error(qmp, before, 'blockdev-add',
                 "Could not open '/nonexistent.img': No such file or "
                 "directory",
                 driver='qcow2', node_name='x',
                 file={'driver': 'file', 'filename': '/nonexistent.img'})
    assert_error(qmp, before, 'blockdev-add',
                 "'node-name' must be specified for the root node",
                 driver='qcow2', file='fa')
    assert_error(qmp, before, 'blockdev-add',
                 "Cannot find device='' nor node-name='nosuch'",
                 driver='qcow2', node_name='x', file='nosuch')


# ---- blockdev-del


def test_blockdev_del_success(graph, qemu_img):
    qmp, paths = graph
    a = new_image(qemu_img, graph, 'a.qcow2')
    before = node_names(qmp)
    qmp.ok('blockdev-add', args={'driver': 'file', 'node-name': 'fa',
                                 'filename': a})
    qmp.ok('blockdev-add', args={'driver': 'qcow2', 'node-name': 'na',
                                 'file': 'fa'})
    qmp.ok('blockdev-add', args={'driver': 'qcow2', 'node-name': 'nb',
                                 'file': {'driver': 'file', 'filename': a},
                                 'read-only': True, 'force-share': True})
    assert qmp.ok('blockdev-del', node_name='na') == {}
    assert qmp.ok('blockdev-del', node_name='fa') == {}
    # an inline child goes away with its parent
    assert qmp.ok('blockdev-del', node_name='nb') == {}
    assert node_names(qmp) == before
    rc, out, err = qemu_img('check', a)
    assert rc == 0, out + err


def test_blockdev_del_errors(graph, qemu_img):
    qmp, (base, mid, top) = graph
    a = new_image(qemu_img, graph, 'a.qcow2')
    qmp.ok('blockdev-add', args={'driver': 'file', 'node-name': 'fa',
                                 'filename': a})
    qmp.ok('blockdev-add', args={'driver': 'qcow2', 'node-name': 'na',
                                 'file': 'fa'})
    nodes = qmp.ok('query-named-block-nodes', flat=True)
    mid_node = [n['node-name'] for n in nodes
                if n['file'] == mid and n['drv'] == 'qcow2'][0]
    top_file = [n['node-name'] for n in nodes
                if n['file'] == top and n['drv'] == 'file'][0]
    before = node_names(qmp)
    assert_error(qmp, before, 'blockdev-del',
                 "Failed to find node with node-name='nosuch'",
                 node_name='nosuch')
    assert_error(qmp, before, 'blockdev-del', 'Node drive0 is in use',
                 node_name='drive0')
    assert_error(qmp, before, 'blockdev-del',
                 "Node '%s' is busy: node is used as backing hd of 'drive0'"
                 % mid_node, node_name=mid_node)
    assert_error(qmp, before, 'blockdev-del',
                 'Node %s is not owned by the monitor' % top_file,
                 node_name=top_file)
    assert_error(qmp, before, 'blockdev-del', 'Block device fa is in use',
                 node_name='fa')
    e = qmp.err('blockdev-del')
    assert e == {'class': 'GenericError',
                 'desc': "Parameter 'node-name' is missing"}


def test_blockdev_del_refuses_exported_node(daemon, qemu_img):
    img = os.path.join(daemon.dir, 'e.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, str(SIZE))
    sock = daemon.new_socket()
    args = ['--blockdev', 'driver=file,filename=%s,node-name=ef' % img,
            '--blockdev', 'driver=qcow2,file=ef,node-name=en',
            '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
            '--export', 'type=nbd,id=exp0,node-name=en,writable=on']
    d, qmp = start_qblk_with_qmp(daemon, args)
    before = node_names(qmp)
    assert_error(qmp, before, 'blockdev-del', 'Node en is in use',
                 node_name='en')
    assert_error(qmp, before, 'blockdev-del', 'Block device ef is in use',
                 node_name='ef')
    qmp.close()

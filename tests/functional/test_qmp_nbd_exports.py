"""NBD server and block exports driven over QMP: nbd-server-start/-add/
-remove/-stop, block-export-add/-del, query-block-exports and the
BLOCK_EXPORT_DELETED event, with QEMU 7.2's replies and error texts
(checked against qemu-storage-daemon 7.2 by hand).

Data served through an export is read back with independent clients
(qemu-io, nbdinfo) and our byte-level NBD client, and compared with what
qemu-io wrote into the image.
"""
import json
import os

import pytest

from daemon import qcow2_blockdev, uri
from nbd_client import NbdClient
from qmp_client import start_qblk_with_qmp, wait_for_path_gone


def A(**kw):
    """QMP arguments from keywords ('_' -> '-'); QMPClient.ok/err take
    'name' themselves, so commands with a 'name' argument use this."""
    return {k.replace('_', '-'): v for k, v in kw.items()}


SIZE = 4 * 1024 * 1024
PATTERN = 0x5a          # written at [0, 64k) of the image


@pytest.fixture
def image(daemon, qemu_img, qemu_io):
    path = daemon.path('disk.qcow2')
    qemu_img.ok('create', '-f', 'qcow2', path, SIZE)
    qemu_io.ok('-f', 'qcow2', '-c', 'write -P %d 0 64k' % PATTERN, path)
    return path


@pytest.fixture
def qblk(daemon, image):
    """A daemon with writable qcow2 node 'disk', read-only file node
    'ro', drive 'drv0' whose node is 'n0', and a QMP client."""
    args = qcow2_blockdev(image, 'disk') + [
        '--blockdev', 'driver=file,filename=/etc/hostname,node-name=ro,'
        'read-only=on',
        '-drive', 'file=/etc/hostname,format=raw,id=drv0,node-name=n0,'
        'readonly=on,if=none']
    d, qmp = start_qblk_with_qmp(daemon, args)
    d.nbd_sock = daemon.path('nbd.sock')
    yield d, qmp
    qmp.close()


def start_server(d, qmp):
    assert qmp.ok('nbd-server-start', A(addr={
        'type': 'unix', 'data': {'path': d.nbd_sock}})) == {}


def connect(d, name):
    c = NbdClient.unix(d.nbd_sock)
    c.handshake()
    c.go(name)
    return c


def exports(qmp):
    return sorted(qmp.ok('query-block-exports'), key=lambda e: e['id'])


def assert_generic(err, desc):
    assert err == {'class': 'GenericError', 'desc': desc}, err


# ---- success paths ---------------------------------------------------------

def test_nbd_server_add_serves_image_data(qblk, qemu_io, nbdinfo):
    d, qmp = qblk
    start_server(d, qmp)
    assert qmp.ok('nbd-server-add', A(device='disk',
                  description='the disk')) == {}
    u = uri('disk', d.nbd_sock)
    out = qemu_io.ok('-r', '-f', 'raw', '-c',
                     'read -P %d 0 64k' % PATTERN, '-c',
                     'read -P 0 64k 64k', u)
    assert 'read 65536/65536 bytes' in out, out
    info = json.loads(nbdinfo.ok('--json', u))
    exp = info['exports'][0]
    assert exp['export-size'] == SIZE
    assert exp['description'] == 'the disk'
    assert exp['is_read_only'] is True      # writable defaults to false
    assert exports(qmp) == [{'id': 'disk', 'type': 'nbd',
                             'node-name': 'disk', 'shutting-down': False}]


def test_block_export_add_writable_roundtrip(qblk, qemu_io):
    d, qmp = qblk
    start_server(d, qmp)
    assert qmp.ok('block-export-add', A(type='nbd', id='e1', node_name='disk',
                                    name='w', writable=True,
                                    writethrough=True)) == {}
    u = uri('w', d.nbd_sock)
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0x33 1M 128k', u)
    c = connect(d, 'w')
    assert c.read(1024 * 1024, 128 * 1024) == b'\x33' * (128 * 1024)
    assert c.read(0, 4096) == bytes([PATTERN]) * 4096
    c.disconnect()
    assert exports(qmp) == [{'id': 'e1', 'type': 'nbd', 'node-name': 'disk',
                             'shutting-down': False}]


def test_nbd_server_add_by_drive_id_and_readonly_downgrade(qblk):
    d, qmp = qblk
    start_server(d, qmp)
    # A drive id works for nbd-server-add; a read-only node is exported
    # read-only even when writable is asked for (QEMU's behaviour).
    assert qmp.ok('nbd-server-add', A(device='drv0', writable=True)) == {}
    assert exports(qmp) == [{'id': 'drv0', 'type': 'nbd', 'node-name': 'n0',
                             'shutting-down': False}]
    c = connect(d, 'drv0')
    assert c.tflags & 2, 'read-only flag missing'
    c.disconnect()


def test_block_export_del_emits_event_and_frees_id(qblk):
    d, qmp = qblk
    start_server(d, qmp)
    qmp.ok('block-export-add', A(type='nbd', id='e1', node_name='disk'))
    assert qmp.ok('block-export-del', A(id='e1')) == {}
    ev = qmp.event_wait('BLOCK_EXPORT_DELETED')
    assert ev['data'] == {'id': 'e1'}
    assert set(ev['timestamp']) == {'seconds', 'microseconds'}
    assert exports(qmp) == []
    # The id and the name are free again.
    assert qmp.ok('block-export-add', A(type='nbd', id='e1',
                  node_name='disk')) == {}


def test_nbd_server_stop_removes_every_export(qblk):
    d, qmp = qblk
    start_server(d, qmp)
    qmp.ok('nbd-server-add', A(device='disk'))
    qmp.ok('block-export-add', A(type='nbd', id='e2', node_name='ro'))
    c = connect(d, 'disk')
    assert qmp.ok('nbd-server-stop') == {}
    got = {qmp.event_wait('BLOCK_EXPORT_DELETED')['data']['id']
           for _ in range(2)}
    assert got == {'disk', 'e2'}
    assert c.is_closed()
    assert exports(qmp) == []
    assert wait_for_path_gone(d.nbd_sock)
    # The server can be started again.
    start_server(d, qmp)
    qmp.ok('nbd-server-add', A(device='disk'))
    connect(d, 'disk').disconnect()


def test_export_holds_its_node_until_deleted(qblk):
    d, qmp = qblk
    start_server(d, qmp)
    qmp.ok('block-export-add', A(type='nbd', id='e1', node_name='disk'))
    # The export's own root is a parent of the node (as in QEMU 7.2).
    assert_generic(qmp.err('blockdev-del', A(node_name='disk')),
                   'Node disk is in use')
    qmp.ok('block-export-del', A(id='e1'))
    qmp.event_wait('BLOCK_EXPORT_DELETED')
    assert qmp.ok('blockdev-del', A(node_name='disk')) == {}


# ---- removal while a client is connected -------------------------------

def test_safe_remove_with_client_refused_then_hard(qblk):
    d, qmp = qblk
    start_server(d, qmp)
    qmp.ok('nbd-server-add', A(device='disk'))
    c = connect(d, 'disk')
    for args in ({'name': 'disk'}, {'name': 'disk', 'mode': 'safe'}):
        assert_generic(qmp.err('nbd-server-remove', args),
                       "export 'disk' still in use")
    assert_generic(qmp.err('block-export-del', A(id='disk')),
                   "export 'disk' still in use")
    assert not qmp.drain_events(0.2), 'no event after a refused removal'
    assert c.read(0, 512) == bytes([PATTERN]) * 512   # still served
    assert qmp.ok('nbd-server-remove', A(name='disk', mode='hard')) == {}
    assert qmp.event_wait('BLOCK_EXPORT_DELETED')['data'] == {'id': 'disk'}
    assert c.is_closed()
    assert exports(qmp) == []
    assert_generic(qmp.err('nbd-server-remove', A(name='disk')),
                   "Export 'disk' is not found")


def test_safe_remove_after_client_left(qblk):
    d, qmp = qblk
    start_server(d, qmp)
    qmp.ok('block-export-add', A(type='nbd', id='e1', node_name='disk'))
    connect(d, 'disk').disconnect()
    # The client's reference goes when its connection is closed.
    for _ in range(100):
        r = qmp.cmd('block-export-del', A(id='e1'))
        if 'return' in r:
            break
        assert r['error']['desc'] == "export 'e1' still in use"
    assert r == {'return': {}}
    assert qmp.event_wait('BLOCK_EXPORT_DELETED')['data'] == {'id': 'e1'}


def test_removed_export_refuses_new_clients(qblk):
    d, qmp = qblk
    start_server(d, qmp)
    qmp.ok('nbd-server-add', A(device='disk', name='x'))
    qmp.ok('nbd-server-remove', A(name='x'))
    qmp.event_wait('BLOCK_EXPORT_DELETED')
    c = NbdClient.unix(d.nbd_sock)
    c.handshake()
    with pytest.raises(Exception):
        c.go('x')
    c.close()


# ---- errors ----------------------------------------------------------------

def test_server_state_errors(qblk):
    d, qmp = qblk
    assert_generic(qmp.err('nbd-server-stop'), 'NBD server not running')
    assert_generic(qmp.err('nbd-server-add', A(device='disk')),
                   'NBD server not running')
    assert_generic(qmp.err('block-export-add', A(type='nbd', id='e1',
                           node_name='disk')), 'NBD server not running')
    start_server(d, qmp)
    assert_generic(qmp.err('nbd-server-start', A(addr={
        'type': 'unix', 'data': {'path': d.nbd_sock + '2'}})),
        'NBD server already running')
    assert exports(qmp) == []


def test_nbd_server_start_bad_addresses(qblk):
    d, qmp = qblk
    assert_generic(qmp.err('nbd-server-start', A(addr={
        'type': 'unix', 'data': {'path': '/nonexistent/dir/x.sock'}})),
        "Failed to bind socket to /nonexistent/dir/x.sock: "
        "No such file or directory")
    assert_generic(qmp.err('nbd-server-start', A(addr={
        'type': 'unix', 'data': {}})), "Parameter 'addr.data.path' is missing")
    assert_generic(qmp.err('nbd-server-start', A(addr={
        'type': 'unix', 'data': {'path': d.nbd_sock}}, max_connections=-1)),
        "Parameter 'max-connections' expects uint32_t")
    err = qmp.err('nbd-server-start', A(addr={'type': 'vsock', 'data': {}}))
    assert err['class'] == 'GenericError'
    assert "does not accept value 'vsock'" in err['desc'], err
    err = qmp.err('nbd-server-start', A(addr={
        'type': 'inet', 'data': {'host': '127.0.0.1', 'port': 1}}))
    assert err['desc'] == ("Invalid parameter type for 'addr.data.port', "
                           "expected: string"), err
    # Nothing of the above left a server behind.
    assert_generic(qmp.err('nbd-server-stop'), 'NBD server not running')


def test_export_add_errors(qblk):
    d, qmp = qblk
    start_server(d, qmp)
    def add(**kw):
        return A(**dict(dict(type='nbd', id='e1', node_name='disk'), **kw))

    assert_generic(qmp.err('block-export-add', add(id='1bad')),
                   'Invalid block export id')
    assert_generic(qmp.err('block-export-add', add(node_name='nope')),
                   "Cannot find device='' nor node-name='nope'")
    # block-export-add takes node names only, never a drive id.
    assert_generic(qmp.err('block-export-add', add(node_name='drv0')),
                   "Cannot find device='' nor node-name='drv0'")
    assert_generic(qmp.err('block-export-add', add(node_name='ro',
                                                    writable=True)),
                   'Cannot export read-only node as writable')
    assert_generic(qmp.err('nbd-server-add', A(device='nope')),
                   "Cannot find device='nope' nor node-name='nope'")
    assert_generic(qmp.err('nbd-server-add', A(device='disk', name='')),
                   'Invalid block export id')
    qmp.ok('block-export-add', add())
    assert_generic(qmp.err('block-export-add', add(node_name='ro')),
                   "Block export id 'e1' is already in use")
    assert_generic(qmp.err('block-export-add', add(id='e2')),
                   "NBD server already has export named 'disk'")
    assert_generic(qmp.err('nbd-server-add', A(device='disk', name='e1')),
                   "Block export id 'e1' is already in use")
    long_name = 'n' * 5000
    err = qmp.err('block-export-add', add(id='e3', name=long_name))
    assert err['desc'] == "export name '%s' too long" % long_name
    err = qmp.err('block-export-add', add(type='fuse'))
    assert err == {'class': 'GenericError', 'desc':
                   "Parameter 'type' does not accept value 'fuse'"}, err
    err = qmp.err('block-export-add', add(id='e4', bitmaps=['b']))
    assert err['desc'] == "Parameter 'bitmaps' is unexpected", err
    assert [e['id'] for e in exports(qmp)] == ['e1']


def test_remove_errors(qblk):
    d, qmp = qblk
    assert_generic(qmp.err('block-export-del', A(id='nope')),
                   "Export 'nope' is not found")
    assert_generic(qmp.err('nbd-server-remove', A(name='nope', mode='hard')),
                   "Export 'nope' is not found")
    err = qmp.err('block-export-del', A(id='x', mode='soft'))
    assert_generic(err, "Parameter 'mode' does not accept value 'soft'")
    err = qmp.err('nbd-server-remove')
    assert_generic(err, "Parameter 'name' is missing")


# ---- command line -------------------------------------------------------

def test_cli_export_visible_and_removable_over_qmp(daemon, image):
    sock = daemon.path('cli-nbd.sock')
    args = qcow2_blockdev(image, 'disk') + [
        '--nbd-server', 'addr.type=unix,addr.path=%s,max-connections=4'
        % sock,
        '--export', 'type=nbd,id=exp0,node-name=disk,name=d0']
    d, qmp = start_qblk_with_qmp(daemon, args)
    assert qmp.ok('query-block-exports') == [
        {'id': 'exp0', 'type': 'nbd', 'node-name': 'disk',
         'shutting-down': False}]
    c = NbdClient.unix(sock)
    c.handshake()
    c.go('d0')
    assert c.read(0, 512) == bytes([PATTERN]) * 512
    assert_generic(qmp.err('nbd-server-start', A(addr={
        'type': 'unix', 'data': {'path': sock}})),
        'NBD server already running')
    assert qmp.ok('block-export-del', A(id='exp0', mode='hard')) == {}
    assert qmp.event_wait('BLOCK_EXPORT_DELETED')['data'] == {'id': 'exp0'}
    assert c.is_closed()
    assert qmp.ok('nbd-server-stop') == {}
    assert not os.path.exists(sock)
    qmp.close()

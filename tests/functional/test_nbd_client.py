"""The nbd protocol driver (block/nbd.c): qblk as an NBD client.

Servers are started by the tests on UNIX sockets: qemu-nbd (raw and
qcow2 exports, writable or not) and nbdkit (memory and sparse-random
plugins, which report holes through base:allocation). QEMU's tools are
the oracle: qemu-io checks the data, qemu-img map the allocation.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from daemon import require_qblk, short_tmpdir
from jobs_util import run_job_ok, start_drive_export
from qblk_testlib import MiB


def _wait_socket(proc, sock, timeout=10.0):
    deadline = time.time() + timeout
    while not os.path.exists(sock):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail('NBD server did not create %s' % sock)
        time.sleep(0.02)


class Servers:
    """NBD servers started by one test, all killed at teardown."""

    def __init__(self):
        self.dir = short_tmpdir('qblk-nbdc-')
        self.procs = []
        self.n = 0

    def _start(self, argv, sock):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        _wait_socket(p, sock)
        return sock

    def sock(self):
        self.n += 1
        return os.path.join(self.dir, 's%d.sock' % self.n)

    def qemu_nbd(self, image, fmt, name='exp', readonly=False):
        if not shutil.which('qemu-nbd'):
            pytest.skip('qemu-nbd is not installed')
        sock = self.sock()
        argv = ['qemu-nbd', '-f', fmt, '-x', name, '-k', sock,
                '--persistent', image]
        if readonly:
            argv.insert(1, '-r')
        self._start(argv, sock)
        return 'nbd+unix:///%s?socket=%s' % (name, sock), sock

    def nbdkit(self, *plugin):
        if not shutil.which('nbdkit'):
            pytest.skip('nbdkit is not installed')
        sock = self.sock()
        self._start(['nbdkit', '-f', '-U', sock] + list(plugin), sock)
        return 'nbd+unix:///?socket=%s' % sock, sock

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def servers():
    s = Servers()
    yield s
    s.close()


def make_raw(qemu_img, qemu_io, path):
    qemu_img.ok('create', '-f', 'raw', path, '4M')
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0xab 0 1M',
               '-c', 'write -P 0xcd 2M 64k', path)


def test_read_raw_export(servers, tmp, qemu_img, qemu_io, qblk_io):
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    uri, _ = servers.qemu_nbd(img, 'raw', readonly=True)
    out = qblk_io.ok('-r', '-f', 'raw', '-c', 'read -P 0xab 0 1M',
                     '-c', 'read -P 0 1M 1M', '-c', 'read -P 0xcd 2M 64k',
                     '-c', 'aio_read -P 0xab 4k 8k',
                     '-c', 'aio_read -P 0 1M 8k', '-c', 'aio_flush', uri)
    assert 'Pattern verification failed' not in out


def test_read_qcow2_export(servers, tmp, qemu_img, qemu_io, qblk_io):
    img = str(tmp / 'q.qcow2')
    qemu_img.ok('create', '-f', 'qcow2', img, '8M')
    qemu_io.ok('-f', 'qcow2', '-c', 'write -P 0x5a 1M 3M', img)
    uri, _ = servers.qemu_nbd(img, 'qcow2', readonly=True)
    out = qblk_io.ok('-r', '-f', 'raw', '-c', 'read -P 0 0 1M',
                     '-c', 'read -P 0x5a 1M 3M', '-c', 'read -P 0 4M 4M', uri)
    assert 'Pattern verification failed' not in out


def test_blockdev_options_unix(servers, tmp, qemu_img, qemu_io, qblk_io):
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    _, sock = servers.qemu_nbd(img, 'raw', name='disk', readonly=True)
    opts = ('driver=raw,file.driver=nbd,file.server.type=unix,'
            'file.server.path=%s,file.export=disk' % sock)
    out = qblk_io.ok('-r', '--image-opts', '-c', 'read -P 0xcd 2M 64k', opts)
    assert 'Pattern verification failed' not in out


def test_map_matches_qemu(servers, tmp, qemu_img, qemu_io, qblk_img):
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    uri, _ = servers.qemu_nbd(img, 'raw', readonly=True)
    ours = json.loads(qblk_img.ok('map', '-f', 'raw', '--output=json', uri))
    theirs = json.loads(qemu_img.ok('map', '-f', 'raw', '--output=json', uri))
    assert ours == theirs
    assert any(not e['data'] for e in ours)


def test_map_nbdkit_holes(servers, qemu_img, qemu_io, qblk_img):
    uri, _ = servers.nbdkit('memory', '16M')
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0x31 1M 256k',
               '-c', 'write -P 0x32 8M 64k', uri)
    ours = json.loads(qblk_img.ok('map', '-f', 'raw', '--output=json', uri))
    theirs = json.loads(qemu_img.ok('map', '-f', 'raw', '--output=json', uri))
    assert ours == theirs
    assert [e['start'] for e in ours if e['data']] == [MiB, 8 * MiB]


def test_overlay_backed_by_nbd(servers, tmp, qemu_img, qemu_io, qblk_io,
                               qblk_img):
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    uri, _ = servers.qemu_nbd(img, 'raw', readonly=True)
    top = str(tmp / 'top.qcow2')
    qemu_img.ok('create', '-f', 'qcow2', '-b', uri, '-F', 'raw', top)
    out = qblk_io.ok('--backing-protocols=file,nbd', '-f', 'qcow2', '-c',
                     'read -P 0xab 0 1M',
                     '-c', 'write -P 0x11 0 4k', '-c', 'read -P 0x11 0 4k',
                     '-c', 'read -P 0xcd 2M 64k', top)
    assert 'Pattern verification failed' not in out
    ours = json.loads(qblk_img.ok('map', '--backing-protocols=nbd',
                                  '--output=json', top))
    theirs = json.loads(qemu_img.ok('map', '--output=json', top))
    assert ours == theirs


def test_writes_reach_server(servers, tmp, qemu_img, qemu_io, qblk_io):
    img = str(tmp / 'w.raw')
    make_raw(qemu_img, qemu_io, img)
    uri, _ = servers.qemu_nbd(img, 'raw')
    qblk_io.ok('-f', 'raw', '-c', 'write -P 0x22 3M 64k',
               '-c', 'aio_write -P 0x33 0 4k', '-c', 'aio_write -P 0x44 4k 4k',
               '-c', 'aio_flush', '-c', 'write -z 2M 4k', '-c', 'flush', uri)
    servers.close()
    out = qemu_io.ok('-r', '-f', 'raw', '-c', 'read -P 0x22 3M 64k',
                     '-c', 'read -P 0x33 0 4k', '-c', 'read -P 0x44 4k 4k',
                     '-c', 'read -P 0 2M 4k', '-c', 'read -P 0xcd 2052k 60k',
                     img)
    assert 'Pattern verification failed' not in out


def test_nbdkit_memory_rw(servers, qblk_io, qblk_img):
    uri, _ = servers.nbdkit('memory', '8M')
    out = qblk_io.ok('-f', 'raw', '-c', 'write -P 0x77 1M 1M',
                     '-c', 'read -P 0x77 1M 1M', '-c', 'read -P 0 0 1M', uri)
    assert 'Pattern verification failed' not in out
    m = json.loads(qblk_img.ok('map', '-f', 'raw', '--output=json', uri))
    assert m[0]['data'] is False


def test_errors(servers, tmp, qemu_img, qemu_io, qblk_img, qblk_io):
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    uri, sock = servers.qemu_nbd(img, 'raw', readonly=True)
    bad = 'nbd+unix:///nope?socket=%s' % sock
    rc, out, err = qblk_img('info', bad)
    assert rc == 1 and 'Requested export not available' in err
    assert bad in err
    missing = 'nbd+unix:///x?socket=%s' % os.path.join(servers.dir, 'none')
    rc, out, err = qblk_img('info', missing)
    assert rc == 1
    assert "Could not connect to '%s': No such file or directory" % missing \
        in err
    rc, out, err = qblk_io('-f', 'raw', '-c', 'read 0 4k', uri)
    assert rc != 0 and 'read-only' in err
    rc, out, err = qblk_img('info', 'nbd+unix:///x')
    assert rc == 1 and 'socket=' in err


def nbd_backed_overlay(servers, tmp, qemu_img, qemu_io):
    """r.raw (make_raw) served read-only by qemu-nbd, and top.qcow2 whose
    header names it by its nbd+unix:// URL; (raw path, overlay path)."""
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    uri, _ = servers.qemu_nbd(img, 'raw', readonly=True)
    top = str(tmp / 'top.qcow2')
    qemu_img.ok('create', '-f', 'qcow2', '-b', uri, '-F', 'raw', top)
    return img, top


def test_daemon_cor_over_nbd(servers, daemon, tmp, qemu_img, qemu_io):
    require_qblk('copy-on-read through the nbd client driver')
    _, top = nbd_backed_overlay(servers, tmp, qemu_img, qemu_io)
    d = daemon.nbd(['--backing-protocols', 'file,nbd,http,https', '-drive',
                    'file=%s,format=qcow2,id=drive0,copy-on-read=on' % top],
                   export='drive0')
    out = qemu_io.ok('-r', '-f', 'raw', '-c', 'read -P 0xab 0 1M',
                     '-c', 'read -P 0xcd 2M 64k', d.uri)
    assert 'Pattern verification failed' not in out
    d.stop()
    m = json.loads(qemu_img.ok('map', '-f', 'qcow2', '--output=json', top))
    top_data = [e for e in m if e['depth'] == 0 and e['data']]
    assert top_data and top_data[0]['start'] == 0
    assert top_data[0]['length'] >= MiB


def test_drive_backing_file_options_tune_the_header_backing(
        servers, daemon, tmp, qemu_img, qemu_io):
    """-drive ...,backing.file.OPT=V opens the backing file the header
    names, with OPT passed to its protocol node, as in QEMU: an nbd
    option reaches the nbd driver (a bad value is refused naming it), and
    an option the protocol lacks is refused naming the protocol."""
    require_qblk('-drive backing.file.* options')
    img, top = nbd_backed_overlay(servers, tmp, qemu_img, qemu_io)
    drive = 'file=%s,format=qcow2,id=drive0,backing.file.' % top
    d = daemon.nbd(['--backing-protocols', 'file,nbd', '-drive',
                    drive + 'reconnect-delay=7'], export='drive0')
    out = qemu_io.ok('-r', '-f', 'raw', '-c', 'read -P 0xab 0 1M',
                     '-c', 'read -P 0xcd 2M 64k', d.uri)
    assert 'Pattern verification failed' not in out
    d.stop()
    bad = daemon.run(['--backing-protocols', 'file,nbd', '-drive',
                      drive + 'reconnect-delay=soon'])
    assert bad.returncode == 1
    assert 'reconnect-delay' in bad.stderr, bad.stderr
    local = str(tmp / 'local.qcow2')
    qemu_img.ok('create', '-f', 'qcow2', '-b', img, '-F', 'raw', local)
    d = daemon.nbd(['-drive', 'file=%s,format=qcow2,id=drive0,'
                    'backing.file.locking=off' % local], export='drive0')
    out = qemu_io.ok('-r', '-f', 'raw', '-c', 'read -P 0xab 0 1M', d.uri)
    assert 'Pattern verification failed' not in out
    d.stop()
    bad = daemon.run(['-drive', 'file=%s,format=qcow2,id=drive0,'
                      'backing.file.reconnect-delay=7' % local])
    assert bad.returncode == 1
    assert "Block protocol 'file' doesn't support the option " \
        "'reconnect-delay'" in bad.stderr, bad.stderr


def test_daemon_blockdev_nbd_node(servers, daemon, tmp, qemu_img, qemu_io):
    require_qblk('--blockdev driver=nbd')
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    _, sock = servers.qemu_nbd(img, 'raw', name='src', readonly=True)
    d = daemon.nbd(['--blockdev', 'driver=nbd,node-name=n,server.type=unix,'
                    'server.path=%s,export=src,read-only=on' % sock,
                    '--blockdev', 'driver=raw,file=n,node-name=d,'
                    'read-only=on'], export='d', writable=False)
    out = qemu_io.ok('-r', '-f', 'raw', '-c', 'read -P 0xab 0 1M',
                     '-c', 'read -P 0 1M 1M', '-c', 'read -P 0xcd 2M 64k',
                     d.uri)
    assert 'Pattern verification failed' not in out
    theirs = json.loads(qemu_img.ok('map', '-f', 'raw', '--output=json',
                                    d.uri))
    assert [e['start'] for e in theirs if e['data']] == [0, 2 * MiB]


def test_simple_replies_only(servers, qemu_io, qblk_io, qblk_img):
    """nbdkit --no-sr: no structured replies, so no base:allocation either;
    reads come back as simple replies and everything maps as data."""
    uri, _ = servers.nbdkit('--no-sr', 'memory', '4M')
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0x66 64k 128k', uri)
    out = qblk_io.ok('-f', 'raw', '-c', 'aio_read -P 0x66 64k 64k',
                     '-c', 'aio_read -P 0x66 128k 64k',
                     '-c', 'aio_read -P 0 0 64k', '-c', 'aio_flush',
                     '-c', 'read -P 0x66 64k 128k', uri)
    assert 'Pattern verification failed' not in out
    m = json.loads(qblk_img.ok('map', '-f', 'raw', '--output=json', uri))
    assert all(e['data'] for e in m)


def test_stream_from_nbd_backing(servers, daemon, tmp, qemu_img, qemu_io):
    """block-stream of a top whose backing is nbd+unix://: the data is
    copied, the remote holes (base:allocation) are not."""
    require_qblk('block-stream over the nbd client driver')
    img = str(tmp / 'r.raw')
    make_raw(qemu_img, qemu_io, img)
    uri, _ = servers.qemu_nbd(img, 'raw', readonly=True)
    top = str(tmp / 'top.qcow2')
    qemu_img.ok('create', '-f', 'qcow2', '-b', uri, '-F', 'raw', top)
    d, qmp, _, _ = start_drive_export(
        daemon, top, extra=('--backing-protocols', 'file,nbd'))
    run_job_ok(qmp, 'block-stream', 'drive0', device='drive0')
    qmp.close()
    d.stop()
    info = json.loads(qemu_img.ok('info', '--output=json', top))
    assert 'backing-filename' not in info
    m = json.loads(qemu_img.ok('map', '--output=json', top))
    assert [(e['start'], e['length']) for e in m if e['data']] == \
        [(0, MiB), (2 * MiB, 64 * 1024)]
    out = qemu_io.ok('-r', '-f', 'qcow2', '-c', 'read -P 0xab 0 1M',
                     '-c', 'read -P 0 1M 1M', '-c', 'read -P 0xcd 2M 64k',
                     top)
    assert 'Pattern verification failed' not in out

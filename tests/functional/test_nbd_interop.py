"""qblk's NBD export works with real NBD clients: qemu-io, qemu-img,
nbdinfo, nbdcopy and fio, over unix and TCP sockets.

The chain (daemon.make_chain: a base mixing random data, zero clusters
and unallocated ranges, and a top with a few writes) is made with QEMU's
tools, and QEMU judges: data read through qblk must equal what
`qemu-img convert` reads from the chain locally; block status must match
what qemu-storage-daemon reports for the same image; images written
through qblk must pass `qemu-img check` once the daemon has stopped.
"""
import json
import shutil
import subprocess

import pytest

from daemon import make_chain, map_extents, qcow2_blockdev
from qblk_testlib import MiB

SIZE = 16 * MiB
SEG = 1 * MiB


@pytest.fixture
def chain(daemon, qemu_img):
    """(base, top, expected_raw) in the daemon's temp dir."""
    base, top = make_chain(daemon.dir, SIZE, SEG)
    raw = daemon.path('expected.raw')
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', top, raw)
    return base, top, raw


def copy_top(daemon, top):
    """A copy of the top image (same backing file) that clients may open
    while the daemon holds the original."""
    dst = daemon.path('top-copy.qcow2')
    shutil.copyfile(top, dst)
    return dst


def assert_same(qemu_img, a, fmt_a, b, fmt_b):
    rc, out, err = qemu_img('compare', '-f', fmt_a, '-F', fmt_b, a, b)
    assert rc == 0, 'qemu-img compare %s %s -> rc %d\n%s%s' % (
        a, b, rc, out, err)


def assert_clean(qemu_img, path):
    rc, out, err = qemu_img('check', '-f', 'qcow2', path)
    assert rc == 0, 'qemu-img check %s -> rc %d\n%s%s' % (path, rc, out, err)


def test_nbd_read_equals_chain_content(daemon, qemu_img, chain):
    base, top, raw = chain
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d', writable=False)
    assert_same(qemu_img, d.uri, 'raw', copy_top(daemon, top), 'qcow2')
    assert_same(qemu_img, d.uri, 'raw', raw, 'raw')
    d.stop()
    assert_same(qemu_img, top, 'qcow2', raw, 'raw')


def test_qemu_io_pattern_reads_through_nbd(daemon, qemu_io, chain):
    base, top, raw = chain
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d', writable=False)
    cmds = ['read -P 0x5a %d 8192' % (SEG - 4096),
            'read -P 0x6b %d 12288' % (5 * SEG + 512),
            'read -P 0 %d %d' % (8 * SEG, SEG // 2),
            'read -P 0 %d %d' % (1 * SEG + 4096, SEG - 8192),   # unallocated
            'read -P 0 %d %d' % (3 * SEG, SEG),                 # zero clust.
            'read -P 0x7c %d 65536' % (SIZE - 65536)]
    args = []
    for c in cmds:
        args += ['-c', c]
    rc, out, err = qemu_io('-r', '-f', 'raw', *args, d.uri)
    assert rc == 0 and 'fail' not in (out + err).lower(), out + err


def test_qemu_io_writes_through_nbd_reach_the_image(daemon, qemu_io,
                                                    qemu_img, chain):
    base, top, raw = chain
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d')
    writes = ['write -P 0x11 0 4096',
              'write -P 0x22 %d 70000' % (SEG - 1000),     # unaligned
              'write -z %d 65536' % (2 * SEG),              # over data
              'write -P 0x33 %d 512' % (SIZE - 512),
              'aio_write -P 0x44 %d 131072' % (4 * SEG),
              'aio_write -P 0x55 %d 4096' % (6 * SEG + 4096),
              'aio_flush',
              'flush']
    reads = ['read -P 0x11 0 4096',
             'read -P 0x22 %d 70000' % (SEG - 1000),
             'read -P 0 %d 65536' % (2 * SEG),
             'read -P 0x33 %d 512' % (SIZE - 512),
             'read -P 0x44 %d 131072' % (4 * SEG),
             'read -P 0x55 %d 4096' % (6 * SEG + 4096)]
    args = []
    for c in writes + reads:
        args += ['-c', c]
    rc, out, err = qemu_io('-f', 'raw', *args, d.uri)
    assert rc == 0 and 'fail' not in (out + err).lower(), out + err
    d.stop()
    assert_clean(qemu_img, top)
    args = []
    for c in reads + ['read -P 0x5a %d 3096' % (SEG - 4096)]:
        args += ['-c', c]
    rc, out, err = qemu_io('-f', 'qcow2', *args, top)
    assert rc == 0 and 'fail' not in (out + err).lower(), out + err


def qemu_img_map(qemu_img, uri):
    out = qemu_img.ok('map', '-f', 'raw', '--output=json', uri)
    return map_extents(out)


def test_qemu_img_map_matches_qemu_storage_daemon(daemon, qsd, qemu_img,
                                                  chain):
    base, top, raw = chain
    with qsd.nbd(qcow2_blockdev(top, 'd', read_only=True), export='d',
                 writable=False) as ref:
        want = qemu_img_map(qemu_img, ref.uri)
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d', writable=False)
    got = qemu_img_map(qemu_img, d.uri)
    assert got == want


def nbdinfo_map(nbdinfo, uri):
    """nbdinfo --map --json -> merged [(offset, length, type)]."""
    out = []
    for e in json.loads(nbdinfo.ok('--map', '--json', uri)):
        if out and out[-1][2] == e['type'] and \
                out[-1][0] + out[-1][1] == e['offset']:
            out[-1] = (out[-1][0], out[-1][1] + e['length'], e['type'])
        else:
            out.append((e['offset'], e['length'], e['type']))
    return out


def test_nbdinfo_map_matches_qemu_storage_daemon(daemon, qsd, nbdinfo,
                                                 chain):
    base, top, raw = chain
    with qsd.nbd(qcow2_blockdev(top, 'd', read_only=True), export='d',
                 writable=False) as ref:
        want = nbdinfo_map(nbdinfo, ref.uri)
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d', writable=False)
    assert nbdinfo_map(nbdinfo, d.uri) == want
    # the zero clusters of the base (segment 3) read as zero, not data
    assert any(o <= 3 * SEG and o + n >= 4 * SEG and t & 2
               for o, n, t in nbdinfo_map(nbdinfo, d.uri))


def test_nbdinfo_reports_size_and_read_only(daemon, nbdinfo, chain):
    base, top, raw = chain
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d', writable=False)
    info = json.loads(nbdinfo.ok('--json', d.uri))
    exp = info['exports'][0]
    assert exp['export-size'] == SIZE
    assert exp['is_read_only'] is True
    assert 'base:allocation' in exp.get('contexts', [])
    dw = daemon.nbd(qcow2_blockdev(copy_top(daemon, top), 'w'), export='w')
    info = json.loads(nbdinfo.ok('--json', dw.uri))
    assert info['exports'][0]['is_read_only'] is False
    assert info['exports'][0]['can_flush'] is True


def test_nbdcopy_of_export_equals_qemu_img_convert(daemon, nbdcopy, chain):
    base, top, raw = chain
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d', writable=False)
    out = daemon.path('copy.raw')
    nbdcopy.ok(d.uri, out)
    with open(out, 'rb') as a, open(raw, 'rb') as b:
        assert a.read() == b.read(), 'nbdcopy output differs from the chain'


def test_fio_randrw_verify_through_nbd(daemon, fio, qemu_img):
    img = daemon.path('fio.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, '64M')
    d = daemon.nbd(qcow2_blockdev(img, 'd'), export='d')
    rc, out, err = fio('--name=randrw', '--ioengine=nbd', '--uri=' + d.uri,
                       '--rw=randrw', '--bs=4k', '--size=16M',
                       '--iodepth=8', '--verify=crc32c',
                       '--verify_fatal=1', '--do_verify=1',
                       '--verify_state_save=0',
                       '--randrepeat=1', '--output-format=json')
    assert rc == 0, 'fio -> rc %d\n%s\n%s' % (rc, out[-3000:], err[-3000:])
    job = json.loads(out[out.index('{'):])['jobs'][0]
    assert job['error'] == 0
    assert job['write']['io_bytes'] > 0 and job['read']['io_bytes'] > 0
    d.stop()
    assert_clean(qemu_img, img)


def test_fio_random_reads_of_chain_through_nbd(daemon, fio, chain):
    base, top, raw = chain
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d', writable=False)
    rc, out, err = fio('--name=randread', '--ioengine=nbd',
                       '--uri=' + d.uri, '--rw=randread', '--bs=4k',
                       '--size=%d' % SIZE, '--iodepth=16',
                       '--time_based', '--runtime=2',
                       '--output-format=json')
    assert rc == 0, 'fio -> rc %d\n%s\n%s' % (rc, out[-3000:], err[-3000:])
    job = json.loads(out[out.index('{'):])['jobs'][0]
    assert job['error'] == 0 and job['read']['io_bytes'] > 0


def test_tcp_export_reads_and_writes(daemon, qemu_img, qemu_io, chain):
    base, top, raw = chain
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d', tcp=True)
    assert d.uri.startswith('nbd://127.0.0.1:')
    assert_same(qemu_img, d.uri, 'raw', raw, 'raw')
    rc, out, err = qemu_io('-f', 'raw', '-c', 'write -P 0x9e 12345 6789',
                           '-c', 'read -P 0x9e 12345 6789', d.uri)
    assert rc == 0 and 'fail' not in (out + err).lower(), out + err
    d.stop()
    assert_clean(qemu_img, top)
    rc, out, err = qemu_io('-f', 'qcow2', '-c', 'read -P 0x9e 12345 6789',
                           top)
    assert rc == 0 and 'fail' not in (out + err).lower(), out + err


def test_many_clients_on_one_export_see_the_same_data(daemon, qemu_img,
                                                      chain):
    base, top, raw = chain
    d = daemon.nbd(qcow2_blockdev(top, 'd'), export='d', writable=False)
    procs = [subprocess.Popen(['qemu-img', 'compare', '-f', 'raw', '-F',
                               'raw', d.uri, raw],
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
             for _ in range(4)]
    for p in procs:
        out = p.communicate(timeout=60)[0].decode()
        assert p.returncode == 0, out

"""Copy-on-read: reading a drive through qblk's NBD export populates its
top image, both with `-drive ...,copy-on-read=on` and with the
`--blockdev driver=copy-on-read` filter node.

The base (daemon.make_base) mixes random data, zero clusters and
unallocated ranges; the top starts empty. After a full read, QEMU judges:
the top alone (a copy rebased onto no backing file) holds all the data,
`qemu-img check` is clean, and `qemu-img map` shows the base's data as
data in the top and its zero clusters as zero clusters in the top, never
as zero-filled data.
"""
import json
import shutil

import pytest

from daemon import (is_qsd, make_base, make_overlay, qcow2_blockdev,
                    segment_kind)
from qblk_testlib import MiB

BIG = 256 * MiB
SEG = 1 * MiB


def drive_args(top, name='drive0', extra=''):
    return ['-drive', 'file=%s,format=qcow2,id=%s,copy-on-read=on%s'
            % (top, name, extra)]


def filter_args(top, name='cor'):
    return qcow2_blockdev(top, 'fmt') + [
        '--blockdev', 'driver=copy-on-read,file=fmt,node-name=%s' % name]


def top_map(qemu_img, top):
    return json.loads(qemu_img.ok('map', '-f', 'qcow2', '--output=json',
                                  top))


def entries_in(m, start, end):
    """The map entries that overlap [start, end)."""
    return [e for e in m if e['start'] < end and
            e['start'] + e['length'] > start]


def rebased_copy(qemu_img, daemon, top):
    """A copy of @top with its backing file removed (rebase -u -b '')."""
    alone = daemon.path('alone.qcow2')
    shutil.copyfile(top, alone)
    qemu_img.ok('rebase', '-u', '-f', 'qcow2', '-b', '', alone)
    return alone


def assert_top_alone_holds(qemu_img, daemon, top, base, fmt='qcow2'):
    """A copy of @top rebased onto nothing must read like @base."""
    alone = rebased_copy(qemu_img, daemon, top)
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', fmt, alone,
                            base)
    assert rc == 0, 'top alone differs from the chain (rc %d):\n%s%s' % (
        rc, out, err)


def assert_populated(qemu_img, daemon, top, size, seg):
    """Per base segment, judged on the map of the top alone (a rebased
    copy): data -> data; zero clusters, zero-filled data clusters and
    unallocated ranges -> read as zero and are never data in the top
    (a zero cluster, or skipped where the chain below already reads
    zero: the issue allows both, and qemu-storage-daemon skips zero
    clusters of the base). Data segments must also be at depth 0 in the
    map of the whole chain."""
    chain = top_map(qemu_img, top)
    alone = top_map(qemu_img, rebased_copy(qemu_img, daemon, top))
    bad = []
    for i in range(size // seg):
        kind = segment_kind(i)
        span = (i * seg, (i + 1) * seg)
        for e in entries_in(alone, *span):
            if (kind == 'data') != bool(e['data']) or \
                    (kind != 'data' and not e['zero']):
                bad.append((kind, 'top alone', e))
        for e in entries_in(chain, *span):
            if kind == 'data' and (e['depth'] != 0 or not e['data']):
                bad.append((kind, 'chain', e))
    assert not bad, 'top not populated as expected (%d wrong entries), ' \
        'first: %s' % (len(bad), bad[:3])


def assert_clean(qemu_img, path):
    rc, out, err = qemu_img('check', '-f', 'qcow2', path)
    assert rc == 0, 'qemu-img check %s -> rc %d\n%s%s' % (path, rc, out, err)


def full_read_populates(daemon, qemu_img, nbdcopy, args, export):
    """Build base <- top, serve @args (a function of the top's path),
    read everything with nbdcopy, then let QEMU judge the top."""
    base = make_base(daemon.dir, BIG, SEG)
    top = make_overlay(base, daemon.path('top.qcow2'))
    d = daemon.nbd(args(top), export=export, writable=False)
    # --no-extents: read every byte, zero and unallocated ranges included
    nbdcopy.ok('--no-extents', d.uri, 'null:')
    rc, out, err = nbdcopy('--no-extents', d.uri, daemon.path('out.raw'))
    assert rc == 0, err
    d.stop()
    assert_clean(qemu_img, top)
    assert_populated(qemu_img, daemon, top, BIG, SEG)
    assert_top_alone_holds(qemu_img, daemon, top, base)
    rc, out, err = qemu_img('compare', '-f', 'raw', '-F', 'qcow2',
                            daemon.path('out.raw'), base)
    assert rc == 0, 'data read with copy-on-read differs:\n%s%s' % (out, err)


def test_cor_drive_full_read_populates_top(daemon, qemu_img, nbdcopy):
    full_read_populates(daemon, qemu_img, nbdcopy, drive_args, 'drive0')


def test_cor_filter_full_read_populates_top(daemon, qemu_img, nbdcopy):
    full_read_populates(daemon, qemu_img, nbdcopy, filter_args, 'cor')


def test_cor_partial_reads_populate_only_what_was_read(daemon, qemu_img,
                                                       qemu_io):
    size, seg = 16 * MiB, 1 * MiB
    base = make_base(daemon.dir, size, seg)
    top = make_overlay(base, daemon.path('top.qcow2'))
    d = daemon.nbd(drive_args(top), export='drive0', writable=False)
    # 4 KiB inside data segment 0, and 200 KiB straddling segments 2/3
    # (data / zero cluster)
    qemu_io.ok('-r', '-f', 'raw', '-c', 'read 8192 4096',
               '-c', 'read %d 204800' % (3 * seg - 102400), d.uri)
    d.stop()
    assert_clean(qemu_img, top)
    m = top_map(qemu_img, top)
    in_top = [(e['start'], e['length']) for e in m
              if e['depth'] == 0 and e['data']]
    # whole 64 KiB clusters were copied; nothing else
    assert in_top == [(0, 65536), (3 * seg - 131072, 131072)], m
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', 'qcow2', top,
                            base)
    assert rc == 0, out + err


def test_cor_keeps_the_tops_own_data(daemon, qemu_img, qemu_io, nbdcopy):
    size, seg = 16 * MiB, 1 * MiB
    base = make_base(daemon.dir, size, seg)
    top = make_overlay(base, daemon.path('top.qcow2'))
    qemu_io.ok('-f', 'qcow2', '-c', 'write -P 0xa5 %d 4096' % (seg - 2048),
               '-c', 'write -z %d 8192' % (2 * seg + 512), top)
    expected = daemon.path('expected.raw')
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', top, expected)
    d = daemon.nbd(drive_args(top), export='drive0', writable=False)
    nbdcopy.ok('--no-extents', d.uri, 'null:')
    d.stop()
    assert_clean(qemu_img, top)
    assert_top_alone_holds(qemu_img, daemon, top, expected, 'raw')


def test_cor_read_only_drive_warns_and_does_not_populate(daemon, qemu_img,
                                                         nbdcopy):
    if is_qsd(daemon.binary):
        pytest.skip('qemu-storage-daemon has no -drive')
    size, seg = 8 * MiB, 1 * MiB
    base = make_base(daemon.dir, size, seg)
    top = make_overlay(base, daemon.path('top.qcow2'))
    d = daemon.nbd(drive_args(top, extra=',readonly=on'), export='drive0',
                   writable=False)
    assert ('qblk: warning: disabling copy-on-read on read-only drive'
            in d.stderr), d.stderr
    nbdcopy.ok('--no-extents', d.uri, daemon.path('out.raw'))
    d.stop()
    m = top_map(qemu_img, top)
    assert not [e for e in m if e['depth'] == 0], m
    rc, out, err = qemu_img('compare', '-f', 'raw', '-F', 'qcow2',
                            daemon.path('out.raw'), base)
    assert rc == 0, out + err

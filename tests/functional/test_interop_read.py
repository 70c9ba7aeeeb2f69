"""qblk reads images that QEMU wrote.

qemu-img creates the image and qemu-io writes a known workload into it; the
expected guest view is computed in Python (Model) and checked first with
qemu-io (so a wrong expectation is caught as a test bug), then with qblk-io.
"""
import os
import random

import pytest

from qblk_testlib import (KiB, MiB, Model, assert_reads_ok, image_size_for,
                          io_args, model_of, ops_commands, standard_ops)

CLUSTER_SIZES = [512, 4 * KiB, 64 * KiB, 2 * MiB]
COMPATS = ['0.10', '1.1']


def make_qemu_image(qemu_img, qemu_io, path, cs, compat, ops, size):
    qemu_img.ok('create', '-q', '-f', 'qcow2',
                '-o', 'cluster_size=%d,compat=%s' % (cs, compat), path, size)
    if ops:
        qemu_io.ok('-f', 'qcow2', *io_args(ops_commands(ops)), path)


@pytest.mark.parametrize('compat', COMPATS)
@pytest.mark.parametrize('cs', CLUSTER_SIZES, ids=lambda c: 'cluster%d' % c)
def test_read_qemu_written_image(qblk_io, qemu_img, qemu_io, tmp, cs, compat):
    size = image_size_for(cs)
    ops = standard_ops(cs, size)
    img = tmp / 'img.qcow2'
    make_qemu_image(qemu_img, qemu_io, img, cs, compat, ops, size)
    reads = model_of(size, ops).read_commands()
    assert_reads_ok(qemu_io, 'qcow2', img, reads)   # the expectation is right
    assert_reads_ok(qblk_io, 'qcow2', img, reads)


@pytest.mark.parametrize('cs', [4 * KiB, 64 * KiB])
def test_read_empty_image_is_zero(qblk_io, qemu_img, qemu_io, tmp, cs):
    img = tmp / 'empty.qcow2'
    make_qemu_image(qemu_img, qemu_io, img, cs, '1.1', [], 4 * MiB)
    assert_reads_ok(qblk_io, 'qcow2', img, ['read -P 0 0 %d' % (4 * MiB)])


def test_read_raw_image(qblk_io, tmp):
    m = Model(1 * MiB)
    for op in [('write', 0, 4096, 0x11), ('write', 5000, 70000, 0x22)]:
        m.apply(*op)
    raw = tmp / 'img.raw'
    m.write_raw(raw)
    assert_reads_ok(qblk_io, 'raw', raw, m.read_commands())


def make_mixed_raw(path, size):
    """A raw file with uniform, repetitive-text and random regions; returns
    the bytes."""
    rnd = random.Random(1234)
    data = bytearray(size)
    data[0:192 * KiB] = b'\x5a' * (192 * KiB)
    text = b'qblk compressed cluster test line\n' * 8000
    data[256 * KiB:256 * KiB + 200 * KiB] = text[:200 * KiB]
    data[512 * KiB:640 * KiB] = bytes(rnd.getrandbits(8)
                                      for _ in range(128 * KiB))
    with open(path, 'wb') as f:
        f.write(data)
    return bytes(data)


@pytest.mark.parametrize('cs', [4 * KiB, 64 * KiB])
def test_read_compressed_image(qblk_io, qblk_img, qemu_img, tmp, cs):
    raw = tmp / 'src.raw'
    data = make_mixed_raw(raw, 1 * MiB)
    img = tmp / 'comp.qcow2'
    qemu_img.ok('convert', '-c', '-f', 'raw', '-O', 'qcow2',
                '-o', 'cluster_size=%d' % cs, raw, img)
    # Pattern regions through qblk-io ...
    assert_reads_ok(qblk_io, 'qcow2', img,
                    ['read -P 0x5a 0 %d' % (192 * KiB),
                     'read -P 0 %d %d' % (192 * KiB, 64 * KiB),
                     'read -P 0 %d %d' % (640 * KiB, 384 * KiB)])
    # ... and every byte through qblk-img convert, judged by Python.
    out = tmp / 'out.raw'
    qblk_img.ok('convert', '-f', 'qcow2', '-O', 'raw', img, out)
    with open(out, 'rb') as f:
        got = f.read()
    assert len(got) == len(data)
    assert got == data, 'compressed image content differs'


def test_read_and_write_image_with_internal_snapshot(qblk_io, qemu_img,
                                                     qemu_io, tmp):
    size = 2 * MiB
    ops = [('write', 0, 128 * KiB, 0x31), ('write', 1 * MiB, 4096, 0x32)]
    img = tmp / 'snap.qcow2'
    make_qemu_image(qemu_img, qemu_io, img, 64 * KiB, '1.1', ops, size)
    qemu_img.ok('snapshot', '-c', 'snap1', img)
    before = model_of(size, ops)
    assert_reads_ok(qblk_io, 'qcow2', img, before.read_commands())

    # qblk writes over shared clusters (must copy, not overwrite) and
    # into new ones.
    new_ops = [('write', 4096, 8192, 0x41), ('write', 1536 * KiB, 4096, 0x42)]
    qblk_io.ok('-f', 'qcow2', *io_args(ops_commands(new_ops)), img)
    after = model_of(size, ops + new_ops)
    assert_reads_ok(qemu_io, 'qcow2', img, after.read_commands())

    rc, out, err = qemu_img('snapshot', '-l', img)
    assert rc == 0 and 'snap1' in out, out + err
    rc, out, err = qemu_img('check', img)
    assert rc == 0, out + err
    # The snapshot still holds the old data.
    snap_raw = tmp / 'snap.raw'
    qemu_img.ok('convert', '-l', 'snapshot.name=snap1', '-O', 'raw',
                img, snap_raw)
    with open(snap_raw, 'rb') as f:
        assert f.read() == bytes(before.data)
    assert os.path.getsize(snap_raw) == size

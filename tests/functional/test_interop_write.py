"""Images that qblk creates and writes are valid for QEMU.

qblk-img creates the image and qblk-io writes the workload; QEMU judges:
`qemu-img check` must be clean and `qemu-img compare` against a raw file
holding the expected bytes (written by Python) must say identical.
"""
import json

import pytest

from qblk_testlib import (KiB, MiB, assert_reads_ok, image_size_for, io_args,
                          model_of, ops_commands, standard_ops)

CLUSTER_SIZES = [512, 4 * KiB, 64 * KiB, 2 * MiB]
COMPATS = ['0.10', '1.1']


def qemu_info(qemu_img, path):
    return json.loads(qemu_img.ok('info', '-f', 'qcow2', '--output=json',
                                  path))


def assert_clean(qemu_img, path):
    rc, out, err = qemu_img('check', '-f', 'qcow2', path)
    assert rc == 0, 'qemu-img check %s -> rc %d\n%s%s' % (path, rc, out, err)


def assert_same_as_raw(qemu_img, img, raw):
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', 'raw', img, raw)
    assert rc == 0, 'qemu-img compare -> rc %d\n%s%s' % (rc, out, err)


def write_and_judge(qblk_io, qemu_img, qemu_io, tmp, img, cs, size):
    """Run the standard workload through qblk-io, then let QEMU judge."""
    ops = standard_ops(cs, size)
    qblk_io.ok('-f', 'qcow2', *io_args(ops_commands(ops)), img)
    assert_clean(qemu_img, img)
    model = model_of(size, ops)
    ref = tmp / 'ref.raw'
    model.write_raw(ref)
    assert_same_as_raw(qemu_img, img, ref)
    assert_reads_ok(qemu_io, 'qcow2', img, model.read_commands())


@pytest.mark.parametrize('compat', COMPATS)
@pytest.mark.parametrize('cs', CLUSTER_SIZES, ids=lambda c: 'cluster%d' % c)
def test_qblk_written_image_is_clean_and_correct(qblk_img, qblk_io, qemu_img,
                                                 qemu_io, tmp, cs, compat):
    size = image_size_for(cs)
    img = tmp / 'img.qcow2'
    qblk_img.ok('create', '-q', '-f', 'qcow2',
                '-o', 'cluster_size=%d,compat=%s' % (cs, compat), img, size)
    info = qemu_info(qemu_img, img)
    assert info['cluster-size'] == cs
    assert info['virtual-size'] == size
    assert info['format-specific']['data']['compat'] == compat
    assert_clean(qemu_img, img)
    write_and_judge(qblk_io, qemu_img, qemu_io, tmp, img, cs, size)


@pytest.mark.parametrize('opts,key,value', [
    ('lazy_refcounts=on', 'lazy-refcounts', True),
    ('preallocation=metadata', None, None),
    ('refcount_bits=16,compat=1.1', 'refcount-bits', 16),
])
def test_create_options_then_write(qblk_img, qblk_io, qemu_img, qemu_io, tmp,
                                   opts, key, value):
    size = 4 * MiB
    img = tmp / 'img.qcow2'
    qblk_img.ok('create', '-q', '-f', 'qcow2', '-o', opts, img, size)
    info = qemu_info(qemu_img, img)
    if key:
        assert info['format-specific']['data'][key] == value
    assert_clean(qemu_img, img)
    write_and_judge(qblk_io, qemu_img, qemu_io, tmp, img, 64 * KiB, size)


def test_preallocation_metadata_maps_every_cluster(qblk_img, qemu_img, tmp):
    img = tmp / 'img.qcow2'
    qblk_img.ok('create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata',
                img, 1 * MiB)
    assert_clean(qemu_img, img)
    extents = json.loads(qemu_img.ok('map', '-f', 'qcow2', '--output=json',
                                     img))
    # Every guest cluster has a host offset (data allocated, reads zero).
    assert all('offset' in e for e in extents), extents


def test_default_create_matches_qemu_defaults(qblk_img, qemu_img, tmp):
    ours, theirs = tmp / 'ours.qcow2', tmp / 'theirs.qcow2'
    qblk_img.ok('create', '-q', '-f', 'qcow2', ours, 10 * MiB)
    qemu_img.ok('create', '-q', '-f', 'qcow2', theirs, 10 * MiB)
    a, b = qemu_info(qemu_img, ours), qemu_info(qemu_img, theirs)
    for k in ('virtual-size', 'cluster-size', 'format', 'format-specific'):
        assert a[k] == b[k], (k, a[k], b[k])


def test_create_raw(qblk_img, qemu_img, tmp):
    img = tmp / 'img.raw'
    qblk_img.ok('create', '-q', '-f', 'raw', img, 3 * MiB)
    info = json.loads(qemu_img.ok('info', '--output=json', img))
    assert info['format'] == 'raw' and info['virtual-size'] == 3 * MiB


def test_write_raw_image(qblk_io, tmp):
    size = 1 * MiB
    raw = tmp / 'img.raw'
    with open(raw, 'wb') as f:
        f.truncate(size)
    ops = [('write', 0, 4096, 0x51), ('write', 1000, 3000, 0x52),
           ('zero', 8192, 4096, 0), ('write', size - 512, 512, 0x53)]
    qblk_io.ok('-f', 'raw', *io_args(ops_commands(ops)), raw)
    with open(raw, 'rb') as f:
        assert f.read() == bytes(model_of(size, ops).data)


def test_write_then_flush_and_aio(qblk_io, qemu_img, tmp):
    img = tmp / 'img.qcow2'
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, 1 * MiB)
    qblk_io.ok('-f', 'qcow2', '-c', 'aio_write -P 0x61 0 64k',
               '-c', 'aio_write -P 0x62 128k 4k', '-c', 'aio_flush',
               '-c', 'flush', img)
    assert_clean(qemu_img, img)
    assert_reads_ok(qblk_io, 'qcow2', img,
                    ['read -P 0x61 0 64k', 'read -P 0 64k 64k',
                     'read -P 0x62 128k 4k', 'aio_read -P 0x61 0 4k',
                     'aio_flush'])

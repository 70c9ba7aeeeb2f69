"""Backing chains: qblk's map, info and reads agree with QEMU's.

The chain is built by QEMU (qemu-img create -b/-F, qemu-io writes). Layer i
writes its own pattern at its own offset; every third layer also writes
zeroes over part of the layer below, so "zero in the top, data below" is
covered. Both tools run in the chain's directory with the same relative
arguments, so their output can be compared as text.
"""
import json

import pytest

from qblk_testlib import KiB, MiB, Model, assert_reads_ok, io_args, \
    io_command

SIZE = 4 * MiB
STRIDE = 128 * KiB

# Fields of `info --output=json` that must be equal (actual-size may not).
INFO_FIELDS = ('filename', 'format', 'virtual-size', 'backing-filename',
               'full-backing-filename', 'backing-filename-format',
               'cluster-size', 'format-specific', 'dirty-flag')


def layer_ops(i):
    """The writes of layer @i: a pattern at a distinct offset, plus zeroes
    over the middle of the previous layer's data for every third layer."""
    ops = [('write', i * STRIDE + (i % 4) * 4 * KiB, 64 * KiB - 512 * (i % 3),
            0x10 + i)]
    if i % 3 == 2:
        ops.append(('zero', (i - 1) * STRIDE + 8 * KiB, 16 * KiB, 0))
    return ops


def build_chain(qemu_img, qemu_io, tmp, length, base_fmt='qcow2'):
    """Create base + (length-1) overlays; return (top name, fmt, Model)."""
    model = Model(SIZE)
    names = []
    for i in range(length):
        fmt = base_fmt if i == 0 else 'qcow2'
        name = 'layer%02d.%s' % (i, 'raw' if fmt == 'raw' else 'qcow2')
        if i == 0:
            qemu_img.ok('create', '-q', '-f', fmt, name, SIZE, cwd=tmp)
        else:
            prev_fmt = base_fmt if i == 1 else 'qcow2'
            qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', names[-1],
                        '-F', prev_fmt, name, cwd=tmp)
        ops = layer_ops(i)
        qemu_io.ok('-f', fmt, *io_args([io_command(*op) for op in ops]),
                   name, cwd=tmp)
        for op in ops:
            model.apply(*op)
        names.append(name)
    top_fmt = base_fmt if length == 1 else 'qcow2'
    return names[-1], top_fmt, model


CHAINS = [(1, 'qcow2'), (3, 'qcow2'), (3, 'raw'), (30, 'qcow2')]
IDS = ['len1', 'len3', 'len3-raw-base', 'len30']


@pytest.fixture(scope='module', params=CHAINS, ids=IDS)
def chain(request, qemu_img, qemu_io, tmp_path_factory):
    """One chain per parameter, shared read-only by this module's tests."""
    length, base_fmt = request.param
    d = tmp_path_factory.mktemp('chain')
    top, fmt, model = build_chain(qemu_img, qemu_io, d, length, base_fmt)
    return d, top, fmt, model


def test_map_json_matches_qemu(chain, qblk_img, qemu_img):
    d, top, fmt, _ = chain
    theirs = qemu_img.ok('map', '-f', fmt, '--output=json', top, cwd=d)
    ours = qblk_img.ok('map', '-f', fmt, '--output=json', top, cwd=d)
    assert json.loads(ours) == json.loads(theirs)
    assert ours == theirs


def test_map_human_matches_qemu(chain, qblk_img, qemu_img):
    d, top, fmt, _ = chain
    theirs = qemu_img.ok('map', '-f', fmt, top, cwd=d)
    ours = qblk_img.ok('map', '-f', fmt, top, cwd=d)
    assert ours == theirs


def test_reads_see_topmost_data(chain, qblk_io, qemu_io):
    d, top, fmt, model = chain
    reads = model.read_commands()
    assert_reads_ok(qemu_io, fmt, d / top, reads)
    assert_reads_ok(qblk_io, fmt, d / top, reads)


def test_info_backing_chain_matches_qemu(chain, qblk_img, qemu_img):
    d, top, fmt, _ = chain
    args = ('info', '-f', fmt, '--backing-chain', '--output=json', top)
    theirs = json.loads(qemu_img.ok(*args, cwd=d))
    ours = json.loads(qblk_img.ok(*args, cwd=d))
    assert isinstance(ours, list) and len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        for k in INFO_FIELDS:
            assert o.get(k) == t.get(k), (t.get('filename'), k, o.get(k),
                                          t.get(k))


def test_info_single_image_matches_qemu(chain, qblk_img, qemu_img):
    d, top, fmt, _ = chain
    args = ('info', '-f', fmt, '--output=json', top)
    theirs = json.loads(qemu_img.ok(*args, cwd=d))
    ours = json.loads(qblk_img.ok(*args, cwd=d))
    for k in INFO_FIELDS:
        assert ours.get(k) == theirs.get(k), (k, ours.get(k), theirs.get(k))

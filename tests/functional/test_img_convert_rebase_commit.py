"""qblk-img convert, rebase and commit keep the guest-visible content.

QEMU builds the inputs and judges the results: `qemu-img compare` for
content, `qemu-img check` for metadata, `qemu-img info` for headers.
Before an operation that rewrites a chain, the guest view is saved with
`qemu-img convert -O raw` so it can be compared afterwards.
"""
import json

import pytest

from qblk_testlib import KiB, MiB, io_args, io_command

SIZE = 4 * MiB


def qcow2_with(qemu_img, qemu_io, path, ops, backing=None, bfmt='qcow2',
               opts=None):
    args = ['create', '-q', '-f', 'qcow2']
    if backing:
        args += ['-b', backing, '-F', bfmt]
    if opts:
        args += ['-o', opts]
    args.append(path)
    if not backing:
        args.append(SIZE)
    qemu_img.ok(*args)
    if ops:
        qemu_io.ok('-f', 'qcow2', *io_args([io_command(*o) for o in ops]),
                   path)


def make_chain(qemu_img, qemu_io, d):
    """base <- mid <- top, with overlapping writes and a zero write."""
    base, mid, top = d / 'base.qcow2', d / 'mid.qcow2', d / 'top.qcow2'
    qcow2_with(qemu_img, qemu_io, base,
               [('write', 0, 1 * MiB, 0x01), ('write', 3 * MiB, 64 * KiB, 0x02)])
    qcow2_with(qemu_img, qemu_io, mid,
               [('write', 512 * KiB, 128 * KiB, 0x03),
                ('zero', 64 * KiB, 64 * KiB, 0)], backing=base.name)
    qcow2_with(qemu_img, qemu_io, top,
               [('write', 600 * KiB, 4 * KiB, 0x04),
                ('write', 2 * MiB + 100, 1000, 0x05)], backing=mid.name)
    return base, mid, top


def guest_view(qemu_img, path, out, fmt='qcow2'):
    """Save the guest-visible content of @path as a raw file."""
    qemu_img.ok('convert', '-f', fmt, '-O', 'raw', path, out)
    return out


def assert_same(qemu_img, a, b, fa='qcow2', fb='raw'):
    rc, out, err = qemu_img('compare', '-f', fa, '-F', fb, a, b)
    assert rc == 0, 'compare %s %s -> %d\n%s%s' % (a, b, rc, out, err)


def assert_clean(qemu_img, path):
    rc, out, err = qemu_img('check', '-f', 'qcow2', path)
    assert rc == 0, 'check %s -> %d\n%s%s' % (path, rc, out, err)


def info(qemu_img, path, fmt='qcow2'):
    return json.loads(qemu_img.ok('info', '-f', fmt, '--output=json', path))


@pytest.fixture
def chain(qemu_img, qemu_io, tmp):
    base, mid, top = make_chain(qemu_img, qemu_io, tmp)
    view = guest_view(qemu_img, top, tmp / 'view.raw')
    return base, mid, top, view


# --- convert ---------------------------------------------------------------

def test_convert_qcow2_to_raw(chain, qblk_img, qemu_img, tmp):
    _, _, top, view = chain
    out = tmp / 'out.raw'
    qblk_img.ok('convert', '-f', 'qcow2', '-O', 'raw', top, out)
    assert out.read_bytes() == view.read_bytes()


def test_convert_raw_to_qcow2(chain, qblk_img, qemu_img, tmp):
    _, _, _, view = chain
    out = tmp / 'out.qcow2'
    qblk_img.ok('convert', '-f', 'raw', '-O', 'qcow2', view, out)
    assert_clean(qemu_img, out)
    assert_same(qemu_img, out, view)


@pytest.mark.parametrize('cs', [4 * KiB, 64 * KiB])
def test_convert_chain_to_flat_qcow2(chain, qblk_img, qemu_img, tmp, cs):
    _, _, top, view = chain
    out = tmp / 'flat.qcow2'
    qblk_img.ok('convert', '-f', 'qcow2', '-O', 'qcow2',
                '-o', 'cluster_size=%d' % cs, top, out)
    i = info(qemu_img, out)
    assert 'backing-filename' not in i and i['cluster-size'] == cs
    assert_clean(qemu_img, out)
    assert_same(qemu_img, out, view)


def test_convert_with_backing_keeps_only_the_difference(chain, qblk_img,
                                                        qemu_img, tmp):
    # -B names an image with the same content as the input's backing file
    # (qemu-img's documented contract), here that backing file itself.
    _, mid, top, view = chain
    out = tmp / 'delta.qcow2'
    qblk_img.ok('convert', '-f', 'qcow2', '-O', 'qcow2', '-B', mid.name,
                '-F', 'qcow2', top.name, out.name, cwd=tmp)
    i = info(qemu_img, out)
    assert i.get('backing-filename') == mid.name
    assert i.get('backing-filename-format') == 'qcow2'
    assert_clean(qemu_img, out)
    assert_same(qemu_img, out, view)
    # Only top's own data was copied: the delta is much smaller than a
    # flat copy would be.
    flat = json.loads(qemu_img.ok('map', '-f', 'qcow2', '--output=json', out))
    own = sum(e['length'] for e in flat if e['depth'] == 0 and e['data'])
    assert own < 1 * MiB, flat


# --- rebase ----------------------------------------------------------------

def test_rebase_unsafe_onto_identical_copy(chain, qblk_img, qemu_img, tmp):
    _, mid, top, view = chain
    copy = tmp / 'mid-copy.qcow2'
    copy.write_bytes(mid.read_bytes())
    qblk_img.ok('rebase', '-u', '-f', 'qcow2', '-b', copy.name, '-F', 'qcow2',
                top.name, cwd=tmp)
    i = info(qemu_img, top)
    assert i['backing-filename'] == copy.name
    assert i['backing-filename-format'] == 'qcow2'
    assert_clean(qemu_img, top)
    assert_same(qemu_img, top, view)


def test_rebase_safe_drops_middle_layer(chain, qblk_img, qemu_img, tmp):
    base, mid, top, view = chain
    mid_before = mid.read_bytes()
    qblk_img.ok('rebase', '-f', 'qcow2', '-b', base.name, '-F', 'qcow2',
                top.name, cwd=tmp)
    assert info(qemu_img, top)['backing-filename'] == base.name
    assert_clean(qemu_img, top)
    assert_same(qemu_img, top, view)
    assert mid.read_bytes() == mid_before   # the old backing is untouched


def test_rebase_safe_onto_nothing_flattens(chain, qblk_img, qemu_img, tmp):
    _, _, top, view = chain
    qblk_img.ok('rebase', '-f', 'qcow2', '-b', '', top.name, cwd=tmp)
    assert 'backing-filename' not in info(qemu_img, top)
    assert_clean(qemu_img, top)
    assert_same(qemu_img, top, view)


# --- commit ----------------------------------------------------------------

def test_commit_into_backing_file(chain, qblk_img, qemu_img, tmp):
    base, mid, top, view = chain
    base_view = guest_view(qemu_img, base, tmp / 'base-view.raw')
    qblk_img.ok('commit', '-f', 'qcow2', top)
    assert_clean(qemu_img, mid)
    assert_clean(qemu_img, top)
    assert_same(qemu_img, mid, view)       # mid now holds what top showed
    assert_same(qemu_img, top, view)       # and top still shows it
    assert_same(qemu_img, base, base_view)  # base is not touched


def test_commit_down_to_base(chain, qblk_img, qemu_img, tmp):
    base, _, top, view = chain
    qblk_img.ok('commit', '-f', 'qcow2', '-b', base.name, top.name, cwd=tmp)
    assert_clean(qemu_img, base)
    assert_same(qemu_img, base, view)


def test_commit_single_overlay_over_raw(qblk_img, qemu_img, qemu_io, tmp):
    base = tmp / 'base.raw'
    base.write_bytes(b'\x07' * SIZE)
    top = tmp / 'top.qcow2'
    qcow2_with(qemu_img, qemu_io, top, [('write', 4096, 8192, 0x08),
                                        ('zero', 1 * MiB, 64 * KiB, 0)],
               backing=base.name, bfmt='raw')
    view = guest_view(qemu_img, top, tmp / 'view.raw')
    qblk_img.ok('commit', '-f', 'qcow2', top)
    assert base.read_bytes() == view.read_bytes()

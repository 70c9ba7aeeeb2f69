"""qblk-img compare and check answer like qemu-img on the same inputs.

compare: 0 identical, 1 different, 2 error. check: 0 clean, 2 corrupted,
3 leaks only; `check -r leaks` repairs leaks so that `qemu-img check`
is clean afterwards. Damaged images are made with qcow2_edit from an
image that QEMU wrote.
"""
import json

import pytest

import qcow2_edit as q
from qblk_testlib import KiB, MiB, io_args, sha256


def make_pair(d, kind):
    """Create the two files of a compare case; return the compare args."""
    a, b = d / 'a.raw', d / 'b.raw'
    base = bytearray(b'\x11' * (64 * KiB)) + bytearray(960 * KiB)
    a.write_bytes(base)
    if kind == 'identical':
        b.write_bytes(base)
    elif kind == 'one-byte-differs':
        other = bytearray(base)
        other[700 * KiB + 3] = 0x99
        b.write_bytes(other)
    elif kind == 'larger-zero-tail':
        b.write_bytes(base + bytearray(64 * KiB))
    elif kind == 'larger-data-tail':
        b.write_bytes(base + b'\x01' * (64 * KiB))
    elif kind == 'strict-larger-zero-tail':
        b.write_bytes(base + bytearray(64 * KiB))
        return ['-s', '-f', 'raw', '-F', 'raw', a.name, b.name]
    elif kind == 'missing':
        return ['-f', 'raw', '-F', 'raw', a.name, 'nonexistent.raw']
    elif kind == 'wrong-format':
        b.write_bytes(base)
        return ['-f', 'raw', '-F', 'qcow2', a.name, b.name]
    return ['-f', 'raw', '-F', 'raw', a.name, b.name]


COMPARE_CASES = ['identical', 'one-byte-differs', 'larger-zero-tail',
                 'larger-data-tail', 'strict-larger-zero-tail', 'missing',
                 'wrong-format']


@pytest.mark.parametrize('kind', COMPARE_CASES)
def test_compare_exit_code_matches_qemu(qblk_img, qemu_img, tmp, kind):
    args = make_pair(tmp, kind)
    rc_q, out_q, err_q = qemu_img('compare', *args, cwd=tmp)
    rc_o, out_o, err_o = qblk_img('compare', *args, cwd=tmp)
    assert rc_o == rc_q, (kind, rc_o, rc_q, out_o, err_o)
    if rc_q == 2:
        assert err_o.strip(), 'no error message for %s' % kind


@pytest.mark.parametrize('kind', ['identical', 'one-byte-differs',
                                  'larger-zero-tail', 'larger-data-tail'])
def test_compare_output_matches_qemu(qblk_img, qemu_img, tmp, kind):
    args = make_pair(tmp, kind)
    _, out_q, _ = qemu_img('compare', *args, cwd=tmp)
    _, out_o, _ = qblk_img('compare', *args, cwd=tmp)
    assert out_o == out_q


def test_compare_qcow2_chain_against_raw(qblk_img, qemu_img, qemu_io, tmp):
    base, top, raw = tmp / 'base.qcow2', tmp / 'top.qcow2', tmp / 'flat.raw'
    qemu_img.ok('create', '-q', '-f', 'qcow2', base, 1 * MiB)
    qemu_io.ok('-f', 'qcow2', '-c', 'write -P 3 0 256k', base)
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', base.name, '-F', 'qcow2',
                top)
    qemu_io.ok('-f', 'qcow2', '-c', 'write -z 64k 64k', top)
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', top, raw)
    assert qblk_img('compare', '-f', 'qcow2', '-F', 'raw', top, raw)[0] == 0
    qemu_io.ok('-f', 'raw', '-c', 'write -P 4 100k 1k', raw)
    assert qblk_img('compare', '-f', 'qcow2', '-F', 'raw', top, raw)[0] == 1


# --- check -----------------------------------------------------------------

def written_image(qemu_img, qemu_io, path):
    qemu_img.ok('create', '-q', '-f', 'qcow2', path, 1 * MiB)
    qemu_io.ok('-f', 'qcow2', *io_args(['write -P 1 0 192k',
                                        'write -P 2 512k 4k']), path)


def damage(path, how):
    """Damage a written image: leak, refcount-zero or l2-past-eof."""
    if how == 'leak':
        # Unhook a data cluster from its L2 entry: its refcount stays 1.
        q.write_u64(path, q.l2_entry_offset(path, 64 * KiB), 0)
    elif how == 'refcount-zero':
        q.set_refcount(path, q.data_cluster_offset(path, 0), 0)
    elif how == 'l2-past-eof':
        q.write_u64(path, q.l2_entry_offset(path, 64 * KiB),
                    q.OFLAG_COPIED | (256 * MiB))


@pytest.mark.parametrize('how', ['clean', 'leak', 'refcount-zero',
                                 'l2-past-eof'])
def test_check_exit_code_matches_qemu(qblk_img, qemu_img, qemu_io, tmp, how):
    img = tmp / 'img.qcow2'
    written_image(qemu_img, qemu_io, img)
    damage(img, how)
    before = sha256(img)
    rc_q, out_q, _ = qemu_img('check', '-f', 'qcow2', img)
    rc_o, out_o, err_o = qblk_img('check', '-f', 'qcow2', img)
    assert rc_o == rc_q, (how, rc_o, rc_q, out_o, err_o)
    assert sha256(img) == before, 'check without -r modified the image'
    if how == 'clean':
        assert 'No errors were found on the image.' in out_o


@pytest.mark.parametrize('how', ['clean', 'leak', 'refcount-zero'])
def test_check_json_counts_match_qemu(qblk_img, qemu_img, qemu_io, tmp, how):
    img = tmp / 'img.qcow2'
    written_image(qemu_img, qemu_io, img)
    damage(img, how)
    args = ('check', '-f', 'qcow2', '--output=json', img.name)
    theirs = json.loads(qemu_img(*args, cwd=tmp)[1])
    ours = json.loads(qblk_img(*args, cwd=tmp)[1])
    for k in ('check-errors', 'leaks', 'corruptions', 'total-clusters',
              'allocated-clusters', 'image-end-offset', 'filename',
              'format'):
        assert ours.get(k) == theirs.get(k), (k, ours.get(k), theirs.get(k))


def test_check_repair_leaks(qblk_img, qemu_img, qemu_io, tmp):
    img = tmp / 'img.qcow2'
    written_image(qemu_img, qemu_io, img)
    damage(img, 'leak')
    assert qemu_img('check', '-f', 'qcow2', img)[0] == 3
    rc, out, err = qblk_img('check', '-r', 'leaks', '-f', 'qcow2', img)
    assert rc == 0, out + err
    rc, out, err = qemu_img('check', '-f', 'qcow2', img)
    assert rc == 0, out + err
    # The data that was still referenced survived the repair.
    qemu_io.ok('-f', 'qcow2', '-c', 'read -P 1 0 64k',
               '-c', 'read -P 0 64k 64k', '-c', 'read -P 2 512k 4k', img)


def test_check_repair_all_fixes_refcount_zero(qblk_img, qemu_img, qemu_io,
                                              tmp):
    img = tmp / 'img.qcow2'
    written_image(qemu_img, qemu_io, img)
    damage(img, 'refcount-zero')
    rc, out, err = qblk_img('check', '-r', 'all', '-f', 'qcow2', img)
    assert rc == 0, out + err
    rc, out, err = qemu_img('check', '-f', 'qcow2', img)
    assert rc == 0, out + err
    qemu_io.ok('-f', 'qcow2', '-c', 'read -P 1 0 192k', img)

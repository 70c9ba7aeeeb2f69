"""Bad images are refused cleanly and never modified.

Every case starts from a valid image that QEMU wrote, damaged with
qcow2_edit. For each, both qblk-img info and qblk-io must: exit non-zero
(but not by a signal), print an error on stderr that names the file,
print no crash/sanitizer report, and leave every file's bytes unchanged.
Ranges that point past the end of the file must fail with an I/O error
while the rest of the image stays readable.
"""
import os

import pytest

import qcow2_edit as q
from qblk_testlib import KiB, MiB, assert_reads_ok, io_args, sha256


def base_image(qemu_img, qemu_io, path, opts='compat=1.1'):
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-o', opts, path, 1 * MiB)
    qemu_io.ok('-f', 'qcow2', *io_args(['write -P 1 0 128k',
                                        'write -P 2 512k 4k']), path)


def hashes(d):
    return {p.name: sha256(p) for p in sorted(d.iterdir()) if p.is_file()}


def header_damage(path, case):
    """Apply one named header-level damage to @path."""
    kind, _, arg = case.partition(':')
    if kind == 'truncate':
        q.truncate(path, int(arg))
    elif kind == 'magic':
        q.write_field(path, 'magic', 0x514649FC)
    elif kind == 'version':
        q.write_field(path, 'version', int(arg))
    elif kind == 'cluster-bits':
        q.write_field(path, 'cluster_bits', int(arg))
    elif kind == 'l1-offset-past-eof':
        q.write_field(path, 'l1_table_offset', 1 << 30)
    elif kind == 'l1-size-huge':
        q.write_field(path, 'l1_size', 0x7FFFFFFF)
    elif kind == 'refcount-table-unaligned':
        q.write_field(path, 'refcount_table_offset',
                      q.read_field(path, 'refcount_table_offset') + 512)
    elif kind == 'encrypted':
        q.write_field(path, 'crypt_method', 1)
    elif kind == 'incompat':
        q.write_field(path, 'incompatible_features',
                      q.read_field(path, 'incompatible_features') | int(arg))
    else:
        raise ValueError(case)


HEADER_CASES = ['truncate:10', 'truncate:50', 'truncate:71', 'magic',
                'version:1', 'version:4', 'cluster-bits:8', 'cluster-bits:22',
                'l1-offset-past-eof', 'l1-size-huge',
                'refcount-table-unaligned', 'encrypted',
                'incompat:%d' % q.INCOMPAT_DATA_FILE,
                'incompat:%d' % (1 << 40)]
HEADER_IDS = ['truncate:10', 'truncate:50', 'truncate:71', 'magic',
              'version:1', 'version:4', 'cluster-bits:8', 'cluster-bits:22',
              'l1-offset-past-eof', 'l1-size-huge',
              'refcount-table-unaligned', 'encrypted',
              'incompat:data-file', 'incompat:unknown-bit40']

TOOLS = ['info', 'io']


def run_tool(qblk_img, qblk_io, tool, img, cwd):
    """Open @img with one tool. `info` alone does not open backing files
    (as in qemu-img), so the chain cases use `info --backing-chain`."""
    if tool == 'info':
        return qblk_img('info', '-f', 'qcow2', img, cwd=cwd)
    if tool == 'chain-info':
        return qblk_img('info', '-f', 'qcow2', '--backing-chain', img,
                        cwd=cwd)
    return qblk_io('-f', 'qcow2', '-c', 'read 0 512', img, cwd=cwd)


def assert_accepted(qblk_img, qblk_io, tool, img, cwd):
    """The undamaged image opens: without this, a tool that cannot open
    qcow2 at all would pass every refusal test."""
    rc, out, err = run_tool(qblk_img, qblk_io, tool, img, cwd)
    assert rc == 0, 'the valid image is not accepted: %s%s' % (out, err)


def assert_refused(rc, out, err, names, what):
    assert 0 < rc < 128, '%s: rc %d\n%s%s' % (what, rc, out, err)
    assert err.strip(), '%s: no error message on stderr' % what
    assert any(n in err for n in names), (
        '%s: error does not name the file (%s): %s' % (what, names, err))


@pytest.mark.parametrize('tool', TOOLS)
@pytest.mark.parametrize('case', HEADER_CASES, ids=HEADER_IDS)
def test_damaged_header_refused(qblk_img, qblk_io, qemu_img, qemu_io, tmp,
                                case, tool):
    img = tmp / 'bad.qcow2'
    base_image(qemu_img, qemu_io, img)
    assert_accepted(qblk_img, qblk_io, tool, img.name, tmp)
    header_damage(img, case)
    before = hashes(tmp)
    rc, out, err = run_tool(qblk_img, qblk_io, tool, img.name, tmp)
    assert_refused(rc, out, err, [img.name], case)
    assert hashes(tmp) == before


@pytest.mark.parametrize('tool', TOOLS)
@pytest.mark.parametrize('feature', ['encrypted'])
def test_encrypted_refused_with_reason(qblk_img, qblk_io, qemu_img, qemu_io,
                                       tmp, feature, tool):
    img = tmp / 'enc.qcow2'
    base_image(qemu_img, qemu_io, img)
    assert_accepted(qblk_img, qblk_io, tool, img.name, tmp)
    header_damage(img, feature)
    rc, out, err = run_tool(qblk_img, qblk_io, tool, img.name, tmp)
    assert_refused(rc, out, err, [img.name], feature)
    assert 'encrypt' in err.lower(), err


# --- backing chain problems --------------------------------------------------

def make_backing_case(qemu_img, qemu_io, d, case):
    """Build a broken chain; return (image to open, names that may appear
    in the error, a word the error must contain or None)."""
    a, b = d / 'a.qcow2', d / 'b.qcow2'
    base_image(qemu_img, qemu_io, a)
    if case == 'loop-self':
        qemu_img.ok('rebase', '-u', '-f', 'qcow2', '-b', a.name, '-F',
                    'qcow2', a.name, cwd=d)
        return a, [a.name], None
    if case == 'loop-two':
        qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', a.name, '-F',
                    'qcow2', b.name, cwd=d)
        qemu_img.ok('rebase', '-u', '-f', 'qcow2', '-b', b.name, '-F',
                    'qcow2', a.name, cwd=d)
        return b, [a.name, b.name], None
    if case == 'missing-backing':
        gone = d / 'gone.qcow2'
        qemu_img.ok('create', '-q', '-f', 'qcow2', gone, 1 * MiB)
        qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', gone.name, '-F',
                    'qcow2', b.name, cwd=d)
        os.unlink(gone)
        return b, [gone.name], None
    if case == 'backing-without-format':
        raw = d / 'base.raw'
        raw.write_bytes(b'\x05' * MiB)
        qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', raw.name, '-F',
                    'raw', b.name, cwd=d)
        q.remove_extension(b, q.EXT_BACKING_FORMAT)
        assert all(e[0] != q.EXT_BACKING_FORMAT for e in
                   q.list_extensions(b))
        return b, [b.name, raw.name], 'format'
    raise ValueError(case)


BACKING_CASES = ['loop-self', 'loop-two', 'missing-backing',
                 'backing-without-format']


@pytest.mark.parametrize('tool', ['chain-info', 'io'])
@pytest.mark.parametrize('case', BACKING_CASES)
def test_broken_backing_chain_refused(qblk_img, qblk_io, qemu_img, qemu_io,
                                      tmp, case, tool):
    good = tmp / 'good.qcow2'
    base_image(qemu_img, qemu_io, good)
    assert_accepted(qblk_img, qblk_io, tool, good.name, tmp)
    os.unlink(good)
    img, names, word = make_backing_case(qemu_img, qemu_io, tmp, case)
    before = hashes(tmp)
    rc, out, err = run_tool(qblk_img, qblk_io, tool, img.name, tmp)
    assert_refused(rc, out, err, names, case)
    if word:
        assert word in err.lower(), err
    assert hashes(tmp) == before


# --- table entries past the end of the file ----------------------------------

def point_past_eof(path, table):
    """Make the L1 entry (covering everything) or the L2 entry of the
    cluster at 64k point 256 MiB beyond the end of the file."""
    past = q.OFLAG_COPIED | (256 * MiB)
    if table == 'l1':
        q.write_u64(path, q.l1_entry_offset(path, 0), past)
    else:
        q.write_u64(path, q.l2_entry_offset(path, 64 * KiB), past)


@pytest.mark.parametrize('table', ['l1', 'l2'])
def test_entry_past_eof_read_fails_with_eio(qblk_io, qemu_img, qemu_io, tmp,
                                            table):
    img = tmp / 'img.qcow2'
    # 512-byte clusters, so one L2 table covers only 32k and an L1
    # entry past EOF leaves the other L2 tables readable.
    base_image(qemu_img, qemu_io, img, 'cluster_size=512')
    if table == 'l2':
        q.write_u64(img, q.l2_entry_offset(img, 64 * KiB),
                    q.OFLAG_COPIED | (256 * MiB))
    else:
        q.write_u64(img, q.l1_entry_offset(img, (64 * KiB) // (512 * 64)),
                    q.OFLAG_COPIED | (256 * MiB))
    before = hashes(tmp)
    rc, out, err = qblk_io('-r', '-f', 'qcow2', '-c', 'read 64k 512', img)
    assert 0 < rc < 128, (rc, out, err)
    assert 'Input/output error' in out + err, out + err
    # The rest of the image is still readable and correct.
    assert_reads_ok(qblk_io, 'qcow2', img,
                    ['read -P 1 0 32k', 'read -P 2 512k 4k',
                     'read -P 0 520k 8k'], extra=['-r'])
    assert hashes(tmp) == before


def test_entry_past_eof_info_still_works(qblk_img, qemu_img, qemu_io, tmp):
    img = tmp / 'img.qcow2'
    base_image(qemu_img, qemu_io, img)
    point_past_eof(img, 'l2')
    before = hashes(tmp)
    qblk_img.ok('info', '-f', 'qcow2', img)
    assert hashes(tmp) == before


# --- refcount overflow -----------------------------------------------------
# qblk's write path never adds a reference to an existing cluster (it writes
# no compressed clusters and creates no snapshots), so an overflowing
# increment cannot be provoked from the command line; the refcount layer's
# refusal is tested directly in tests/unit/test-qcow2-refcount.c
# (/qcow2/refcount/overflow-refused).


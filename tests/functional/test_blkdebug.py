"""The blkdebug filter: error injection by rule (event, iotype, errno,
sector, once), pass-through of everything else, and its option errors.

qblk-io opens `driver=blkdebug,image.driver=qcow2,...` with --image-opts
and reports each command's result; the daemon serves a chain whose
backing link goes through a blkdebug node (--blockdev ...,backing=dbg)
so that copy-on-read's reads of the backing chain meet the rules.
QEMU's tools make the images and judge the content (qemu-io over NBD,
qemu-img compare/check).
"""
import subprocess

import pytest

from daemon import qcow2_blockdev
from qblk_testlib import MiB

SIZE = 4 * MiB


@pytest.fixture
def img(tmp, qemu_img, qemu_io):
    """A 4 MiB qcow2 image full of 0x11."""
    path = str(tmp / 'img.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', path, str(SIZE))
    qemu_io.ok('-f', 'qcow2', '-c', 'write -P 0x11 0 4M', path)
    return path


def dbg_opts(path, *rules, extra=''):
    """--image-opts string of a blkdebug node over qcow2 @path; each rule
    is a dict of inject-error options."""
    s = 'driver=blkdebug,image.driver=qcow2,image.file.filename=%s' % path
    for i, rule in enumerate(rules):
        for k, v in rule.items():
            s += ',inject-error.%d.%s=%s' % (i, k, v)
    return s + extra


def io(qblk_io, opts, *cmds, cache='writeback'):
    """Run qblk-io commands on an option string; return the output
    lines (stdout and stderr)."""
    args = ['--image-opts', '-t', cache]
    for c in cmds:
        args += ['-c', c]
    rc, out, err = qblk_io(*args, opts)
    return rc, (out + err).splitlines()


def failures(lines):
    return [line for line in lines if 'failed' in line]


def test_blkdebug_passes_through(qblk_io, img):
    rc, lines = io(qblk_io, dbg_opts(img), 'read -P 0x11 0 4M',
                   'write -P 0x22 1M 64k', 'read -P 0x22 1M 64k',
                   'write -z 2M 64k', 'read -P 0 2M 64k',
                   'discard 3M 64k', 'flush')
    assert rc == 0 and not failures(lines), lines
    assert not [line for line in lines if 'verification' in line], lines


def test_blkdebug_read_error_at_sector_once(qblk_io, img):
    rule = {'event': 'read_aio', 'errno': 5, 'sector': 2048, 'once': 'on'}
    rc, lines = io(qblk_io, dbg_opts(img, rule), 'read 0 1M',
                   'read 1M 4k', 'read -P 0x11 1M 4k')
    assert failures(lines) == ['read failed: Input/output error'], lines


def test_blkdebug_rule_without_once_stays(qblk_io, img):
    rule = {'event': 'read_aio', 'errno': 28}
    rc, lines = io(qblk_io, dbg_opts(img, rule), 'read 0 4k',
                   'read 3M 4k', 'write -P 0x22 0 4k')
    assert failures(lines) == ['read failed: No space left on device'] * 2, \
        lines


def test_blkdebug_write_events_and_iotype(qblk_io, img):
    # write_aio fails writes, zero writes and discards, not reads
    rc, lines = io(qblk_io, dbg_opts(img, {'event': 'write_aio'}),
                   'read 0 4k', 'write 0 4k', 'write -z 0 4k',
                   'discard 0 64k')
    assert failures(lines) == ['write failed: Input/output error',
                               'write failed: Input/output error',
                               'discard failed: Input/output error'], lines
    # pwritev_zero only zero writes; iotype narrows write_aio to discards
    rc, lines = io(qblk_io, dbg_opts(img, {'event': 'pwritev_zero'},
                                     {'event': 'write_aio',
                                      'iotype': 'discard', 'errno': 22}),
                   'write 0 4k', 'write -z 0 4k', 'discard 0 64k')
    assert failures(lines) == ['write failed: Input/output error',
                               'discard failed: Invalid argument'], lines


def test_blkdebug_flush_to_disk(qblk_io, img):
    rule = {'event': 'flush_to_disk', 'errno': 5, 'once': 'on'}
    rc, lines = io(qblk_io, dbg_opts(img, rule), 'write 0 4k', 'flush',
                   'write 0 4k', 'flush')
    assert failures(lines) == ['flush failed: Input/output error'], lines


def test_blkdebug_block_status_only_when_asked(qblk_io, img):
    rc, lines = io(qblk_io, dbg_opts(img, {'event': 'read_aio',
                                           'iotype': 'write'}), 'map')
    assert rc == 0 and not failures(lines), lines
    rc, lines = io(qblk_io, dbg_opts(img, {'event': 'read_aio',
                                           'iotype': 'block-status'}),
                   'read 0 4k', 'map')
    assert 'read failed' not in ' '.join(lines)
    assert any('allocation status' in line and 'Input/output error' in line
               for line in lines), lines


def test_blkdebug_json_filename(qblk_io, img):
    opts = ('json:{"driver": "blkdebug", "image": {"driver": "qcow2", '
            '"file": {"driver": "file", "filename": "%s"}}, '
            '"inject-error": [{"event": "read_aio", "errno": 22, '
            '"sector": 7}]}' % img)
    rc, out, err = qblk_io('-c', 'read 0 4k', '-c', 'read 0 2k', opts)
    assert failures((out + err).splitlines()) == [
        'read failed: Invalid argument'], out + err


@pytest.mark.parametrize('extra,msg', [
    (',inject-error.0.event=bogus', 'Invalid event name "bogus"'),
    (',inject-error.0.errno=5', 'Missing event name for rule'),
    (',inject-error.0.event=read_aio,inject-error.0.foo=1',
     "Invalid parameter 'inject-error.0.foo'"),
    (',inject-error.0.event=read_aio,inject-error.0.iotype=xx',
     'Invalid I/O type "xx"'),
    (',inject-error.0.event=read_aio,inject-error.0.sector=x',
     "Parameter 'inject-error.0.sector' expects a number"),
    (',config=/dev/null', "blkdebug: option 'config' is not supported"),
    (',align=3000', 'Cannot meet constraints with align 3000'),
])
def test_blkdebug_bad_options(qblk_io, img, extra, msg):
    rc, out, err = qblk_io('--image-opts', '-c', 'read 0 4k',
                           dbg_opts(img) + extra)
    assert rc != 0 and msg in err, err


def test_blkdebug_needs_image(qblk_io):
    rc, out, err = qblk_io('--image-opts', '-c', 'read 0 4k',
                           'driver=blkdebug')
    assert rc != 0
    assert 'A block device must be specified for "image"' in err, err


def test_blkdebug_align(qblk_io, img):
    # unaligned requests through an align=4096 node still work (RMW)
    rc, lines = io(qblk_io, dbg_opts(img, extra=',align=4096'),
                   'write -P 0x44 512 512', 'read -P 0x44 512 512',
                   'read -P 0x11 0 512')
    assert rc == 0 and not failures(lines), lines
    assert not [line for line in lines if 'verification' in line], lines


def test_blkdebug_copy_on_read_reads_reach_it(daemon, qemu_img, qemu_io):
    """top's backing is blkdebug over mid: a copy-on-read of the top
    fails where the rule says, once; then the data arrives and is copied
    into the top."""
    base, mid, top = (daemon.path(n) for n in ('base.qcow2', 'mid.qcow2',
                                               'top.qcow2'))
    qemu_img.ok('create', '-q', '-f', 'qcow2', base, str(SIZE))
    qemu_io.ok('-f', 'qcow2', '-c', 'write -P 0x11 0 4M', base)
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2',
                mid)
    qemu_io.ok('-f', 'qcow2', '-c', 'write -P 0x22 1M 2M', mid)
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', mid, '-F', 'qcow2',
                top)
    args = (qcow2_blockdev(base, 'base') +
            ['--blockdev', 'driver=file,filename=%s,node-name=mid-file' % mid,
             '--blockdev', 'driver=qcow2,file=mid-file,node-name=mid,'
             'backing=base',
             '--blockdev', 'driver=blkdebug,node-name=dbg,image=mid,'
             'inject-error.0.event=read_aio,inject-error.0.errno=5,'
             'inject-error.0.sector=4096,inject-error.0.once=on',
             '--blockdev', 'driver=file,filename=%s,node-name=top-file' % top,
             '--blockdev', 'driver=qcow2,file=top-file,node-name=top,'
             'backing=dbg',
             '--blockdev', 'driver=copy-on-read,file=top,node-name=cor'])
    d = daemon.nbd(args, export='cor')
    p = subprocess.run(['qemu-io', '-f', 'raw', '-c', 'read -P 0x11 0 1M',
                        '-c', 'read -P 0x22 2M 64k', '-c',
                        'read -P 0x22 2M 64k', '-c', 'read -P 0x11 3M 1M',
                        d.uri], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    lines = p.stdout.decode().splitlines()
    assert failures(lines) == ['read failed: Input/output error'], lines
    assert not [line for line in lines if 'verification' in line], lines
    d.stop()
    # the data read after the failure was copied into the top
    m = qemu_img.ok('map', '--output=json', '-f', 'qcow2', top)
    assert '"depth": 0' in m
    qemu_img.ok('check', '-q', '-f', 'qcow2', top)

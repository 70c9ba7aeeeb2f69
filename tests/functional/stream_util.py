"""Helpers of the block-stream tests (test_stream_*.py).

The chain: base.raw (raw) <- mid.qcow2 <- top.qcow2, made with QEMU's
tools, with relative backing names (as a user would make them):

    base: 0x11 in [0, 4M)
    mid:  0x22 in [1M, 3M), a zero cluster range over base data in
          [3M, 4M) (write -z), 0x44 in [6M, 7M)
    top:  0x33 in [2M, 2.5M)

Every test keeps the guest view before the stream (expect.raw, written
by qemu-img convert) and checks the result against it with qemu-img
compare; qemu-img info/map/check judge the images.
"""
import json
import os

from jobs_util import qemu_io, run_ok
from qblk_testlib import sha256 as sha

MiB = 1024 * 1024
SIZE = 8 * MiB


class Chain:
    """The images of a test in directory d; .expect is the pre-stream
    guest view of top (raw)."""

    def __init__(self, d, top_compat='1.1', mid_size=SIZE):
        self.dir = d
        self.base = os.path.join(d, 'base.raw')
        self.mid = os.path.join(d, 'mid.qcow2')
        self.top = os.path.join(d, 'top.qcow2')
        run_ok(['qemu-img', 'create', '-q', '-f', 'raw', 'base.raw',
                str(SIZE)], cwd=d)
        qemu_io(self.base, 'raw', 'write -P 0x11 0 4M')
        run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'base.raw',
                '-F', 'raw', 'mid.qcow2', str(mid_size)], cwd=d)
        if mid_size == SIZE:
            qemu_io(self.mid, 'qcow2', 'write -P 0x22 1M 2M',
                    'write -z 3M 1M', 'write -P 0x44 6M 1M')
        else:
            qemu_io(self.mid, 'qcow2', 'write -P 0x22 1M 512k')
        run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
                'compat=%s' % top_compat, '-b', 'mid.qcow2', '-F', 'qcow2',
                'top.qcow2', str(SIZE)], cwd=d)
        qemu_io(self.top, 'qcow2', 'write -P 0x33 2M 512k')
        self.expect = os.path.join(d, 'expect.raw')
        run_ok(['qemu-img', 'convert', '-O', 'raw', self.top, self.expect])
        self.sums = {p: sha(p) for p in (self.base, self.mid)}

    def assert_lower_untouched(self):
        for p, s in self.sums.items():
            assert sha(p) == s, '%s changed' % p

    def assert_content(self, img=None):
        run_ok(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw',
                img or self.top, self.expect])

    def info(self, img=None):
        return json.loads(run_ok(['qemu-img', 'info', '-U',
                                  '--output=json', img or self.top]))

    def chain(self, img=None):
        """[(filename, backing-filename or None, backing format)]."""
        out = json.loads(run_ok(['qemu-img', 'info', '-U',
                                 '--backing-chain', '--output=json',
                                 img or self.top]))
        return [(i['filename'], i.get('backing-filename'),
                 i.get('backing-filename-format')) for i in out]

    def check(self, img=None):
        run_ok(['qemu-img', 'check', '-q', img or self.top])

    def map(self, img=None):
        return json.loads(run_ok(['qemu-img', 'map', '-U', '--output=json',
                                  img or self.top]))


def chain_blockdev_args(c, ro_lower=True):
    """--blockdev options opening the chain with node names base, mid,
    top (files base-file, mid-file, top-file); lower nodes read-only
    unless ro_lower is False."""
    ro = 'on' if ro_lower else 'off'
    return [
        '--blockdev', 'driver=file,filename=%s,node-name=base-file,'
        'read-only=%s' % (c.base, ro),
        '--blockdev', 'driver=raw,file=base-file,node-name=base,'
        'read-only=%s' % ro,
        '--blockdev', 'driver=file,filename=%s,node-name=mid-file,'
        'read-only=%s' % (c.mid, ro),
        '--blockdev', 'driver=qcow2,file=mid-file,node-name=mid,'
        'backing=base,read-only=%s' % ro,
        '--blockdev', 'driver=file,filename=%s,node-name=top-file' % c.top,
        '--blockdev', 'driver=qcow2,file=top-file,node-name=top,'
        'backing=mid',
    ]

"""Helpers of the block-commit tests (test_commit_*.py, test_hmp_commit.py).

The chain: base <- s1 <- s2 <- top (qcow2, 8 MiB, relative backing
names), made with QEMU's tools; each image has its own pattern in ranges
of its own and in ranges overlapping the images below, and s1/s2 hold
zeroed ranges over data of the images below:

    base: 0x11 in [0, 6M)
    s1:   0x22 in [1M, 3M), zeroes in [4M, 5M), 0x23 in [6M, 7M)
    s2:   0x33 in [2M, 3M), 0x34 in [5M, 6M), zeroes in [6M, 6.5M)
    top:  0x44 in [0, 512K), 0x45 in [2.5M, 3M)

Chain.views holds each image's guest view before the commit (raw files
made by qemu-img convert), so a test can check with qemu-img compare
that the base now reads what the committed image read, and that the top
still reads the same. QEMU's tools judge everything.
"""
import json
import os

from jobs_util import image_chain, qcow2_chain, qemu_io, run_job_ok, run_ok
from qblk_testlib import sha256 as sha

MiB = 1024 * 1024
SIZE = 8 * MiB
NAMES = ('base', 's1', 's2', 'top')

# (image, qemu-io commands) in creation order.
WRITES = {
    'base': ['write -P 0x11 0 6M'],
    's1': ['write -P 0x22 1M 2M', 'write -z 4M 1M', 'write -P 0x23 6M 1M'],
    's2': ['write -P 0x33 2M 1M', 'write -P 0x34 5M 1M',
           'write -z 6M 512k'],
    'top': ['write -P 0x44 0 512k', 'write -P 0x45 2560k 512k'],
}

# What the guest reads through top: (offset, length, pattern byte).
TOP_VIEW = [
    (0, 512 * 1024, 0x44), (512 * 1024, 512 * 1024, 0x11),
    (1 * MiB, 1 * MiB, 0x22), (2 * MiB, 512 * 1024, 0x33),
    (2560 * 1024, 512 * 1024, 0x45), (3 * MiB, 1 * MiB, 0x11),
    (4 * MiB, 1 * MiB, 0x00), (5 * MiB, 1 * MiB, 0x34),
    (6 * MiB, 512 * 1024, 0x00), (6656 * 1024, 512 * 1024, 0x23),
    (7 * MiB, 1 * MiB, 0x00),
]

class Chain:
    """The four images in directory d, and their views before commit."""

    def __init__(self, d):
        self.dir = d
        self.path = dict(zip(NAMES, qcow2_chain(
            d, SIZE, [(n, WRITES[n]) for n in NAMES], relative=True)))
        self.views = {}
        for n in NAMES:
            self.views[n] = os.path.join(d, n + '-view.raw')
            run_ok(['qemu-img', 'convert', '-U', '-O', 'raw', self.path[n],
                    self.views[n]])
        self.sums = self.checksums()

    def checksums(self):
        return {n: sha(p) for n, p in self.path.items()}

    def assert_reads(self, img, view):
        """img (with its chain) reads what image view read before."""
        run_ok(['qemu-img', 'compare', '-U', '-f', 'qcow2', '-F', 'raw',
                self.path[img], self.views[view]])

    def backing_chain(self, img='top'):
        """[(file name, backing-filename or None)] from qemu-img info."""
        out = json.loads(run_ok(['qemu-img', 'info', '-U',
                                 '--backing-chain', '--output=json',
                                 self.path[img]]))
        return [(i['filename'], i.get('backing-filename')) for i in out]

    def backing_of(self, img):
        return self.backing_chain(img)[0][1]

    def check_all(self):
        for p in self.path.values():
            run_ok(['qemu-img', 'check', '-q', p])

    def map(self, img):
        return json.loads(run_ok(['qemu-img', 'map', '-U', '--output=json',
                                  self.path[img]]))


def blockdev_args(c, ro_lower=True, export=True, base_node=None):
    """--blockdev options opening the chain with node names base, s1,
    s2, top (files <name>-file); the lower three read-only unless
    ro_lower is False. export: serve top over NBD as export 'top'.
    base_node: extra --blockdev options inserted as s1's backing
    (e.g. a blkdebug node 'dbg' over base)."""
    ro = ',read-only=on' if ro_lower else ''
    args = []
    below = None
    for n in NAMES:
        mode = '' if n == 'top' else ro
        args += ['--blockdev', 'driver=file,filename=%s,node-name=%s-file%s'
                 % (c.path[n], n, mode)]
        opts = 'driver=qcow2,file=%s-file,node-name=%s%s' % (n, n, mode)
        if below:
            opts += ',backing=%s' % below
        args += ['--blockdev', opts]
        below = n
        if n == 'base' and base_node:
            args += base_node
            below = 'dbg'
    if export:
        sock = os.path.join(c.dir, 'nbd.sock')
        args += ['--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
                 '--export', 'type=nbd,id=exp0,node-name=top,name=top,'
                 'writable=on']
    return args


def nbd_uri(c):
    return 'nbd+unix:///top?socket=%s' % os.path.join(c.dir, 'nbd.sock')


def guest_read_cmds():
    """qemu-io commands that check the whole guest view of top."""
    return ['read -P 0x%02x %d %d' % (p, off, n) for off, n, p in TOP_VIEW]


def guest_read(c):
    """Read the whole guest view through the NBD export, checking every
    pattern (qemu-io fails on a mismatch)."""
    qemu_io(nbd_uri(c), 'raw', *guest_read_cmds())


def commit_ok(qmp, job, **args):
    """Run block-commit to completion; return the terminal event data."""
    return run_job_ok(qmp, 'block-commit', job, **args)


def node_chain(qmp, node='top'):
    """[node names] from node down its backing chain (query-named-block-
    nodes' backing_file_depth is not enough: follow 'backing-image')."""
    infos = {n['node-name']: n for n in
             qmp.ok('query-named-block-nodes')}
    return image_chain(infos[node]['image'])

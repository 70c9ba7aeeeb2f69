"""Copy-on-read sequential prefetch (block/io-cor-prefetch.c) with a
remote base: a raw base of random bytes served by nbdkit (delay filter,
1 ms per read), a qcow2 overlay on it with a copy-on-read filter on top,
exported by qblk over NBD; the guest is qemu-io on that export.

- sequential-read-prefetches: the guest reads the first 4 MiB in order,
  256 KiB at a time. Afterwards (daemon stopped, so every prefetch has
  ended) those 4 MiB are local in the overlay with the source's bytes,
  prefetch has copied more beyond them (it ran ahead of the guest), and
  qemu-img check is clean.
- random-reads-do-not-prefetch: small reads far apart leave exactly
  their clusters local, nothing else.
- guest-writes-survive-prefetch: while the guest reads sequentially,
  another client writes a pattern into ranges just ahead of the reader
  (where prefetch is about to copy old base data); every write is intact
  afterwards and everything else still equals the base.
"""
import json
import os
import subprocess
import threading
import urllib.parse

import pytest

from qblk_testlib import MiB
from remote_servers import RemoteServers

SIZE = 16 * MiB
CLUSTER = 64 * 1024
STEP = 256 * 1024
SEQ_BYTES = 4 * MiB
# (offset, length) of the random reads: far apart, not in order
RANDOM_READS = [(5 * MiB + 4096, 4096), (1 * MiB + 100, 4096),
                (12 * MiB, 8192), (9 * MiB + CLUSTER - 10, 20)]


@pytest.fixture
def servers():
    with RemoteServers() as s:
        yield s


@pytest.fixture
def remote(servers, tmp_path):
    """(base path, nbdkit socket) of a random raw base behind nbdkit."""
    base = str(tmp_path / 'base.raw')
    with open(base, 'wb') as f:
        f.write(os.urandom(SIZE))
    url = servers.nbdkit('file', 'file=%s' % base, filters=['delay'],
                         params=['rdelay=1ms'])
    sock = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)['socket']
    return base, sock[0]


def start(daemon, qemu_img, kit_sock):
    """qblk: nbd base, qcow2 overlay, copy-on-read filter exported
    writable as 'd'. Returns (daemon, overlay path)."""
    top = daemon.path('top.qcow2')
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-u', '-b',
                'nbd+unix:///?socket=%s' % kit_sock, '-F', 'raw', top,
                str(SIZE))
    args = ['--blockdev', 'driver=nbd,server.type=unix,server.path=%s,'
            'node-name=base,read-only=on' % kit_sock,
            '--blockdev', 'driver=file,filename=%s,node-name=top-file' % top,
            '--blockdev', 'driver=qcow2,file=top-file,node-name=top,'
            'backing=base',
            '--blockdev', 'driver=copy-on-read,file=top,node-name=cor']
    return daemon.nbd(args, export='d', node='cor', writable=True), top


def guest_io(qemu_io, uri, cmds):
    """qemu-io on the export, one command per entry, in order."""
    args = ['-f', 'raw']
    for c in cmds:
        args += ['-c', c]
    out = qemu_io.ok(*(args + [uri]))
    assert 'error' not in out.lower(), out
    return out


def local_ranges(qemu_img, top):
    """[(start, end)] of what the overlay itself allocates."""
    out = qemu_img.ok('map', '--output=json', '-U', top)
    return [(e['start'], e['start'] + e['length'])
            for e in json.loads(out) if e['depth'] == 0 and e['data']]


def covered(ranges, start, end):
    """Is [start, end) fully inside the union of @ranges?"""
    for s, e in sorted(ranges):
        if s <= start < e:
            start = e
    return start >= end


def overlay_bytes(qemu_img, top, tmp_path):
    """The overlay's own content (unallocated reads as zero) as bytes."""
    alone = str(tmp_path / 'alone.qcow2')
    raw = str(tmp_path / 'alone.raw')
    subprocess.run(['cp', top, alone], check=True)
    qemu_img.ok('rebase', '-u', '-b', '', alone)
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', alone, raw)
    with open(raw, 'rb') as f:
        return f.read()


def test_sequential_read_prefetches(daemon, qemu_img, qemu_io, remote,
                                    tmp_path):
    base, kit = remote
    d, top = start(daemon, qemu_img, kit)
    guest_io(qemu_io, d.uri, ['read %d %d' % (o, STEP)
                              for o in range(0, SEQ_BYTES, STEP)])
    d.stop()
    local = local_ranges(qemu_img, top)
    assert covered(local, 0, SEQ_BYTES), local
    # prefetch ran ahead of the reader: something past what it read
    assert any(e > SEQ_BYTES for _, e in local), local
    mine = overlay_bytes(qemu_img, top, tmp_path)
    with open(base, 'rb') as f:
        src = f.read()
    for s, e in local:
        assert mine[s:e] == src[s:e], 'overlay differs in [%d, %d)' % (s, e)
    qemu_img.ok('check', '-U', top)


def test_random_reads_do_not_prefetch(daemon, qemu_img, qemu_io, remote):
    base, kit = remote
    d, top = start(daemon, qemu_img, kit)
    guest_io(qemu_io, d.uri, ['read %d %d' % r for r in RANDOM_READS])
    d.stop()
    want = set()
    for off, n in RANDOM_READS:
        for c in range(off // CLUSTER, (off + n - 1) // CLUSTER + 1):
            want.add(c)
    got = set()
    for s, e in local_ranges(qemu_img, top):
        got.update(range(s // CLUSTER, e // CLUSTER))
    assert got == want
    qemu_img.ok('check', '-U', top)


def test_guest_writes_survive_prefetch(daemon, qemu_img, qemu_io, remote,
                                       tmp_path):
    base, kit = remote
    d, top = start(daemon, qemu_img, kit)
    # 4 KiB writes at odd places in each MiB from the 2nd on: the reader
    # gets there later, prefetch is about to copy them
    writes = [(m * MiB + 8192 * k + 512, 4096)
              for m in range(1, 12) for k in (0, 17, 60)]
    reader = threading.Thread(target=guest_io, args=(
        qemu_io, d.uri, ['read %d %d' % (o, STEP)
                         for o in range(0, 12 * MiB, STEP)]))
    reader.start()
    try:
        guest_io(qemu_io, d.uri, ['write -P 0xa5 %d %d' % w for w in writes])
    finally:
        reader.join()
    # read back through the daemon and, after it stopped, from the file
    guest_io(qemu_io, d.uri, ['read -P 0xa5 %d %d' % w for w in writes])
    d.stop()
    qemu_img.ok('check', '-U', top)
    img = str(tmp_path / 'result.raw')
    qemu_img.ok('convert', '-U', '-O', 'raw', top, img)
    with open(base, 'rb') as f:
        want = bytearray(f.read())
    for off, n in writes:
        want[off:off + n] = b'\xa5' * n
    with open(img, 'rb') as f:
        assert f.read() == bytes(want)

"""The race copy-on-read request tracking exists to prevent: backing data
fetched by a copy-on-read must never overwrite a guest write to the same
bytes, and no write may be lost.

Four NBD clients (nbd_client.py, one connection each, up to 8 requests in
flight per connection) hammer a copy-on-read drive with random,
overlapping reads and writes for QBLK_RACE_SECONDS (default 20). The
offsets come mostly from a window that sweeps through the image during
the run, so fresh clusters (not yet copied into the top) are under
concurrent reads and writes all the time.

Bookkeeping, at 512-byte sector granularity (all requests are aligned to
512 bytes, most are not aligned to the 64 KiB cluster):
  * each write is recorded with its pattern byte and its time interval
    [sent, reply received] on one monotonic clock;
  * a write W is superseded at a sector if another write covering it was
    sent after W's reply arrived; the sector's final value must be the
    pattern of one write that is not superseded (exactly one value when
    the last writes did not overlap in time), or the base's data when no
    write ever covered it;
  * each read is checked online: sectors no write has touched yet must
    read as the base.

The seed is printed; QBLK_RACE_SEED=N replays a run's choices.
"""
import os
import random
import threading
import time

from daemon import make_base, make_overlay
from nbd_client import CMD_READ, CMD_WRITE, NbdClient
from qblk_testlib import MiB

SIZE = 64 * MiB
SEG = 4 * MiB
SECTOR = 512
CLIENTS = 4
WINDOW = 2 * MiB


class Race:
    """Shared state of one run: the base bytes, the write log, and the
    set of sectors any write has been sent to (under one lock)."""

    def __init__(self, base_bytes, seed, seconds):
        self.base = base_bytes
        self.seed = seed
        self.seconds = seconds
        self.lock = threading.Lock()
        self.touched = bytearray(SIZE // SECTOR)
        self.writes = []          # (sent_ns, done_ns, sector, count, byte)
        self.errors = []
        self.ops = 0
        self.t0 = time.monotonic()

    def pick(self, rnd):
        """A random 512-aligned (offset, length): mostly inside the
        sweeping window, sometimes anywhere; lengths from one sector to
        two clusters, so cluster-straddling writes are common."""
        length = rnd.choice((1, 1, 2, 7, 8, 16, 63, 128, 200, 256)) * SECTOR
        frac = min((time.monotonic() - self.t0) / self.seconds, 1.0)
        if rnd.random() < 0.8:
            lo = int(frac * (SIZE - WINDOW)) // SECTOR * SECTOR
            off = lo + rnd.randrange(WINDOW // SECTOR) * SECTOR
        else:
            off = rnd.randrange(SIZE // SECTOR) * SECTOR
        return min(off, SIZE - length), length

    def check_read(self, off, data):
        """Sectors no write was ever sent to must read as the base.
        Called with the reply in hand, so every write sent before it
        arrived is already in self.touched."""
        a, n = off // SECTOR, len(data) // SECTOR
        with self.lock:
            seen = bytes(self.touched[a:a + n])
        if not any(seen):
            if data != self.base[off:off + len(data)]:
                self.errors.append('read %d+%d differs from the base (no '
                                   'write had touched it)' % (off, len(data)))
            return
        for i in range(n):
            if not seen[i]:
                s = (a + i) * SECTOR
                if data[i * SECTOR:(i + 1) * SECTOR] != \
                        self.base[s:s + SECTOR]:
                    self.errors.append('read of sector %d (byte %d) differs'
                                       ' from the base, never written'
                                       % (a + i, s))
                    return


def client_loop(race, sock, cid, deadline):
    """One client: batches of 1-8 pipelined requests until @deadline."""
    rnd = random.Random(race.seed * 1000 + cid)
    c = NbdClient.unix(sock, timeout=30)
    c.connect('drive0')
    try:
        while time.monotonic() < deadline and not race.errors:
            batch = {}
            ops = []
            for _ in range(rnd.randint(1, 8)):
                off, length = race.pick(rnd)
                if rnd.random() < 0.5:
                    ops.append((CMD_WRITE, off, length, rnd.randint(1, 255)))
                else:
                    ops.append((CMD_READ, off, length, None))
            with race.lock:
                sent = time.monotonic_ns()
                for cmd, off, length, byte in ops:
                    if cmd == CMD_WRITE:
                        a = off // SECTOR
                        n = length // SECTOR
                        race.touched[a:a + n] = b'\1' * n
            for cmd, off, length, byte in ops:
                data = bytes([byte]) * length if cmd == CMD_WRITE else b''
                h = c.submit(cmd, off, length, data=data)
                batch[h] = (cmd, off, length, byte)
            for _ in ops:
                r = c.collect()
                done = time.monotonic_ns()
                cmd, off, length, byte = batch.pop(r.handle)
                if r.error:
                    race.errors.append('client %d: request %d at %d+%d '
                                       'failed with %d' % (cid, cmd, off,
                                                           length, r.error))
                elif cmd == CMD_WRITE:
                    with race.lock:
                        race.writes.append((sent, done, off // SECTOR,
                                            length // SECTOR, byte))
                else:
                    race.check_read(off, r.data)
                race.ops += 1
    except Exception as e:      # reported by the main thread
        race.errors.append('client %d: %r' % (cid, e))
    finally:
        c.disconnect()


def acceptable_values(writes, nsec):
    """Per sector: None (never written) or the set of pattern bytes that
    may legitimately be there at the end (see the module comment)."""
    last_sent = [-1] * nsec
    for sent, done, a, n, byte in sorted(writes):
        last_sent[a:a + n] = [sent] * n       # ascending: ends as the max
    acc = [None] * nsec
    for sent, done, a, n, byte in writes:
        if done >= max(last_sent[a:a + n]):
            rng = range(a, a + n)
        else:
            rng = [s for s in range(a, a + n) if done >= last_sent[s]]
        for s in rng:
            if acc[s] is None:
                acc[s] = {byte}
            else:
                acc[s].add(byte)
    return acc


def verify_final(final, base, writes):
    """Every sector of @final holds an acceptable value; returns a list of
    problems (empty when all is well)."""
    nsec = SIZE // SECTOR
    acc = acceptable_values(writes, nsec)
    bad = []
    for s in range(nsec):
        got = final[s * SECTOR:(s + 1) * SECTOR]
        want = acc[s]
        if want is None:
            if got != base[s * SECTOR:(s + 1) * SECTOR]:
                bad.append('sector %d: never written, differs from base' % s)
        elif len(want) == 1:
            (b,) = want
            if got != bytes([b]) * SECTOR:
                bad.append('sector %d: expected 0x%02x only, got %s'
                           % (s, b, sorted(set(got))[:8]))
        elif not set(got) <= want:
            bad.append('sector %d: bytes %s not among the racing writes %s'
                       % (s, sorted(set(got))[:8], sorted(want)))
        if len(bad) >= 10:
            break
    return bad


def test_cor_race_overlapping_writes_and_reads_lose_nothing(daemon,
                                                            qemu_img):
    seed = int(os.environ.get('QBLK_RACE_SEED') or
               random.SystemRandom().randrange(1 << 31))
    seconds = float(os.environ.get('QBLK_RACE_SECONDS') or 20)
    print('race seed: %d (replay with QBLK_RACE_SEED=%d)' % (seed, seed))
    base = make_base(daemon.dir, SIZE, SEG, seed=seed)
    base_raw = daemon.path('base.raw')
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', base, base_raw)
    with open(base_raw, 'rb') as f:
        base_bytes = f.read()
    top = make_overlay(base, daemon.path('top.qcow2'))
    d = daemon.nbd(['-drive', 'file=%s,format=qcow2,id=drive0,'
                    'copy-on-read=on' % top], export='drive0')
    race = Race(base_bytes, seed, seconds)
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=client_loop,
                                args=(race, d.sock, i, deadline))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    d.assert_alive()
    assert not race.errors, 'seed %d: %s' % (seed, race.errors[:5])
    print('%d requests, %d writes' % (race.ops, len(race.writes)))
    d.stop()
    rc, out, err = qemu_img('check', '-f', 'qcow2', top)
    assert rc == 0, 'seed %d: qemu-img check -> rc %d\n%s%s' % (
        seed, rc, out, err)
    final_raw = daemon.path('final.raw')
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', top, final_raw)
    with open(final_raw, 'rb') as f:
        final = f.read()
    bad = verify_final(final, base_bytes, race.writes)
    assert not bad, 'seed %d: %s' % (seed, '\n'.join(bad))

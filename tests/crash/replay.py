#!/usr/bin/env python3
"""Crash-state replay of a blklogwrites log (library + CLI).

A scenario (tests/crash/scenarios.py) runs qblk with the image's file
under a blklogwrites filter, keeps a copy of the image file from before
the run and a record of what the guest did. This module then rebuilds
"crash states" of the image file from the log and judges each one:

  * flush points: every log entry up to and including a FLUSH entry;
  * torn points: the entries up to a FLUSH, then a random cut point
    before the next FLUSH and a random subset of the writes before that
    cut (a disk may lose or reorder unflushed writes; FUA writes before
    the cut are always kept).

Checks per state (Checker.check): qemu-img check finds no corruption
(exit 0, or 3 for leaks only); the header's backing file name is one of
the allowed names; every guest sector holds an allowed value: the data
of the last write to it that was followed by an acknowledged flush
covered by the state, or of a later write; with no such write, the
original content or any write's data. See docs/crash-replay.rst.

CLI: replay.py --log LOG --initial COPY --image NAME --history H.json
     [--seed N] [--max-states N]
"""
import argparse
import hashlib
import json
import os
import random
import struct
import subprocess
import sys

MAGIC = 0x6a736677736872
FLAG_FLUSH = 1
FLAG_FUA = 2
FLAG_DISCARD = 4
FLAG_MARK = 8
SECTOR = 512          # guest sector granularity of the checks

QEMU_IMG = os.environ.get('QEMU_IMG', 'qemu-img')


class LogFormatError(Exception):
    pass


class Entry:
    """One log entry: index, byte offset/length in the file, flags, and
    the byte range of its payload inside the log."""

    def __init__(self, index, offset, length, flags, data_pos, label):
        self.index = index
        self.offset = offset
        self.length = length
        self.flags = flags
        self.data_pos = data_pos
        self.label = label

    def is_write(self):
        return not self.flags & (FLAG_FLUSH | FLAG_MARK)


class WriteLog:
    """A parsed dm-log-writes log held in memory."""

    def __init__(self, path):
        with open(path, 'rb') as f:
            self.raw = f.read()
        if len(self.raw) < 32:
            raise LogFormatError('%s: too short for a super block' % path)
        magic, version, nr, ss = struct.unpack_from('<QQQI', self.raw, 0)
        if magic != MAGIC or version != 1:
            raise LogFormatError('%s: not a write log (magic %#x version %d)'
                                 % (path, magic, version))
        self.sector_size = ss
        self.entries = []
        pos = ss
        for i in range(nr):
            sector, nsec, flags, dlen = struct.unpack_from('<QQQQ',
                                                           self.raw, pos)
            pos += ss
            label = None
            if flags & FLAG_MARK:
                label = self.raw[pos:pos + dlen].decode(errors='replace')
                payload = -(-dlen // ss) * ss
            elif flags & (FLAG_FLUSH | FLAG_DISCARD):
                payload = 0
            else:
                payload = nsec * ss
            if pos + payload > len(self.raw):
                raise LogFormatError('%s: entry %d runs past the end'
                                     % (path, i))
            self.entries.append(Entry(i, sector * ss, nsec * ss, flags, pos,
                                      label))
            pos += payload

    def data(self, e):
        return self.raw[e.data_pos:e.data_pos + e.length]

    def flush_indexes(self):
        return [e.index for e in self.entries if e.flags & FLAG_FLUSH]


def apply_entry(img, log, e):
    """Apply entry e to bytearray img (grown with zeroes as needed)."""
    if not e.is_write():
        return
    end = e.offset + e.length
    if len(img) < end:
        img.extend(bytes(end - len(img)))
    if e.flags & FLAG_DISCARD:
        img[e.offset:end] = bytes(e.length)
    else:
        img[e.offset:end] = log.data(e)


class CrashState:
    """A crash state: name, the entries applied (sorted indexes) and
    durable: how many leading entries are certainly on disk."""

    def __init__(self, name, applied, durable):
        self.name = name
        self.applied = applied
        self.durable = durable


def crash_states(log, rng, torn_per_gap=2):
    """Yield the crash states of log: every flush point, and at least
    torn_per_gap torn states in each gap after a flush point (and before
    the first); long gaps get up to 32."""
    n = len(log.entries)
    flushes = log.flush_indexes()
    starts = [0] + [f + 1 for f in flushes]
    ends = flushes + [n]
    for start, end in zip(starts, ends):
        prefix = list(range(start))
        # Long gaps (bulk copies between flushes) get more torn states.
        torn = max(torn_per_gap, min(32, (end - start) // 2))
        for _ in range(torn if end > start else 0):
            cut = rng.randint(start, end)
            chosen = [i for i in range(start, cut)
                      if log.entries[i].flags & FLAG_FUA or
                      rng.random() < 0.5]
            yield CrashState('torn@%d+%d/%d' % (start, len(chosen),
                                               cut - start),
                             prefix + chosen, start)
        if end < n:
            yield CrashState('flush@%d' % end, list(range(end + 1)), end + 1)


def build_image(initial, log, state):
    """The image file's bytes in crash state state."""
    img = bytearray(initial)
    for i in state.applied:
        apply_entry(img, log, log.entries[i])
    return img


# ---- Guest history and expected content

def sector_data(write_id, sector_index):
    """Deterministic content of sector sector_index of guest write
    write_id: distinct for every (write, sector) pair."""
    h = hashlib.sha256(b'qblk-crash %d %d' % (write_id, sector_index))
    return h.digest() * (SECTOR // 32)


def write_data(write_id, length):
    return b''.join(sector_data(write_id, i) for i in range(length // SECTOR))


class History:
    """What the guest did: writes in acknowledgement order, each with the
    log entry count of the first acknowledged flush after it (None: not
    flushed), and zero writes (data None)."""

    def __init__(self):
        self.writes = []    # dicts: id, offset, length, zero, durable_at

    def add_write(self, offset, length, zero=False):
        w = {'id': len(self.writes), 'offset': offset, 'length': length,
             'zero': zero, 'durable_at': None}
        self.writes.append(w)
        return None if zero else write_data(w['id'], length)

    def flushed(self, log_entries):
        """An acknowledged guest flush; log_entries: nr_entries right
        after it."""
        for w in self.writes:
            if w['durable_at'] is None:
                w['durable_at'] = log_entries

    def save(self, path):
        with open(path, 'w') as f:
            json.dump(self.writes, f)

    @classmethod
    def load(cls, path):
        h = cls()
        with open(path) as f:
            h.writes = json.load(f)
        return h

    def content(self, w, sector):
        """Guest write w's data for guest sector sector."""
        if w['zero']:
            return bytes(SECTOR)
        return sector_data(w['id'], sector - w['offset'] // SECTOR)

    def per_sector(self):
        """{sector: [writes covering it, in order]}"""
        m = {}
        for w in self.writes:
            for s in range(w['offset'] // SECTOR,
                           (w['offset'] + w['length']) // SECTOR):
                m.setdefault(s, []).append(w)
        return m


# ---- Running QEMU's tools

def run(cmd):
    """(exit status, stdout + stderr) of cmd."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    out = p.stdout.decode(errors='replace') + p.stderr.decode(errors='replace')
    return p.returncode, out


def backing_name(data):
    """Backing file name stored in a qcow2 header (bytes of the file)."""
    if data[:4] != b'QFI\xfb':
        return '<not qcow2>'
    off, size = struct.unpack_from('>QI', data, 8)
    if not off:
        return None
    return data[off:off + size].decode(errors='replace')


class Checker:
    """Judges crash states of one image.

    image: path where a state is written (its directory resolves the
    backing name); original: the guest view (raw bytes) before the run;
    history: a History; backing_names: allowed header names (a set; None
    in it allows "no backing file"); extra: optional callable(path,
    state) -> list of failure strings, for scenario-specific checks;
    alt_view: another raw guest view every sector may also show (commit:
    the top's), which the last state ("final") must show entirely."""

    def __init__(self, image, original, history, backing_names,
                 guest_view=True, extra=None, alt_view=None):
        self.image = image
        self.alt_view = alt_view
        self.original = original
        self.history = history
        self.backing_names = backing_names
        self.guest_view = guest_view
        self.extra = extra
        self.sectors = history.per_sector()

    def check(self, data, state):
        with open(self.image, 'wb') as f:
            f.write(data)
        fails = []
        rc, out = run([QEMU_IMG, 'check', '-q', '-f', 'qcow2', self.image])
        if rc not in (0, 3):
            fails.append('qemu-img check exit %d: %s' % (rc, out[-600:]))
            return fails
        name = backing_name(data)
        if name not in self.backing_names:
            fails.append('backing file %r not in %r'
                         % (name, sorted(map(str, self.backing_names))))
        if self.guest_view:
            fails += self.check_content(state)
        if self.extra:
            fails += self.extra(self.image, state)
        return fails

    def check_content(self, state):
        raw = self.image + '.raw'
        rc, out = run([QEMU_IMG, 'convert', '-f', 'qcow2', '-O', 'raw',
                       self.image, raw])
        if rc != 0:
            return ['qemu-img convert failed: %s' % out[-600:]]
        with open(raw, 'rb') as f:
            view = f.read()
        os.unlink(raw)
        if len(view) != len(self.original):
            return ['guest size %d, expected %d' % (len(view),
                                                     len(self.original))]
        return self.compare(view, state)

    def allowed(self, sector, state):
        """Values guest sector may hold in state."""
        ws = self.sectors.get(sector, [])
        last = -1
        for i, w in enumerate(ws):
            if w['durable_at'] is not None and w['durable_at'] <= \
                    state.durable:
                last = i
        vals = {self.history.content(w, sector) for w in ws[max(last, 0):]}
        if last < 0:
            vals.add(self.original[sector * SECTOR:(sector + 1) * SECTOR])
        return vals, last >= 0

    def compare_alt(self, view, state):
        """Every sector holds the original or the alternative view."""
        if state.name == 'final':
            return [] if view == self.alt_view else [
                'final state differs from the expected view']
        for s in range(0, len(view), SECTOR):
            got = view[s:s + SECTOR]
            if got != self.original[s:s + SECTOR] and \
                    got != self.alt_view[s:s + SECTOR]:
                return ['sector %d: neither old nor new data' % (s // SECTOR)]
        return []

    def compare(self, view, state):
        if self.alt_view is not None:
            return self.compare_alt(view, state)
        fails = []
        if view != self.original:
            touched = set(self.sectors)
            for s in range(len(view) // SECTOR):
                got = view[s * SECTOR:(s + 1) * SECTOR]
                if s not in touched:
                    if got != self.original[s * SECTOR:(s + 1) * SECTOR]:
                        fails.append('sector %d changed, no write touched it'
                                     % s)
                    continue
        for s in self.sectors:
            got = view[s * SECTOR:(s + 1) * SECTOR]
            vals, durable = self.allowed(s, state)
            if got not in vals:
                fails.append('sector %d: %s data' % (
                    s, 'lost flushed' if durable else 'unexpected'))
            if len(fails) > 8:
                break
        return fails[:8]


def campaign(log_path, initial_path, checker, seed, max_states,
             torn_per_gap=2, report=print):
    """Replay log_path onto initial_path's bytes; check up to max_states
    crash states (the final state always). Returns (checked, failures)
    with failures a list of (state name, [reasons])."""
    log = WriteLog(log_path)
    with open(initial_path, 'rb') as f:
        initial = f.read()
    rng = random.Random(seed)
    states = list(crash_states(log, rng, torn_per_gap))
    final = CrashState('final', list(range(len(log.entries))),
                       len(log.entries))
    if len(states) > max_states - 1:
        states = rng.sample(states, max(max_states - 1, 0))
        states.sort(key=lambda st: (st.durable, len(st.applied)))
    states.append(final)
    failures = []
    for st in states:
        fails = checker.check(build_image(initial, log, st), st)
        if fails:
            failures.append((st.name, fails))
            report('  FAIL %s: %s' % (st.name, '; '.join(fails[:3])))
    report('  %d log entries (%d flushes), %d crash states checked, '
           '%d failed' % (len(log.entries), len(log.flush_indexes()),
                          len(states), len(failures)))
    return len(states), failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--log', required=True)
    ap.add_argument('--initial', required=True,
                    help='copy of the image file before the run')
    ap.add_argument('--image', required=True,
                    help='where to write each crash state (its directory '
                         'must resolve the backing file name)')
    ap.add_argument('--original', required=True,
                    help='raw guest view before the run')
    ap.add_argument('--history', required=True)
    ap.add_argument('--backing', action='append', default=[],
                    help='allowed backing name ("" = none); repeatable')
    ap.add_argument('--seed', type=int,
                    default=int(os.environ.get('QBLK_CRASH_SEED',
                                               random.randrange(1 << 30))))
    ap.add_argument('--max-states', type=int, default=1000)
    a = ap.parse_args(argv)
    print('seed %d' % a.seed)
    with open(a.original, 'rb') as f:
        original = f.read()
    names = {b or None for b in a.backing} or {None}
    checker = Checker(a.image, original, History.load(a.history), names)
    _, failures = campaign(a.log, a.initial, checker, a.seed, a.max_states)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())

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

    def __init__(self, index, offset, length, flags, data_pos, label,
                 seq=0):
        self.index = index
        self.seq = seq          # process-wide order (0: not recorded)
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
            sector, nsec, flags, dlen, seq = struct.unpack_from(
                '<QQQQQ', self.raw, pos)
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
                                      label, seq))
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


def check_sample(states, make_final, max_states, rng, order, build,
                 checker, report):
    """Check at most @max_states - 1 of @states (a random sample, sorted
    by @order, when there are more) and then the state @make_final()
    returns, each on the image(s) @build(state) makes. Returns (states
    checked, failures) with failures a list of (state name, [reasons])."""
    if len(states) > max_states - 1:
        states = rng.sample(states, max(max_states - 1, 0))
        states.sort(key=order)
    states.append(make_final())
    failures = []
    for st in states:
        fails = checker.check(build(st), st)
        if fails:
            failures.append((st.name, fails))
            report('  FAIL %s: %s' % (st.name, '; '.join(fails[:3])))
    return states, failures


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
    states, failures = check_sample(
        states, lambda: final, max_states, rng,
        lambda st: (st.durable, len(st.applied)),
        lambda st: build_image(initial, log, st), checker, report)
    report('  %d log entries (%d flushes), %d crash states checked, '
           '%d failed' % (len(log.entries), len(log.flush_indexes()),
                          len(states), len(failures)))
    return len(states), failures


# ---- Several logged files (one program, several blklogwrites nodes)
#
# qblk stamps every log entry with a process-wide sequence number: if a
# request was issued after another one's completion was seen, its seq is
# larger, whichever node either went to. Merging the logs by seq gives
# one history in which a crash is a single cut: each file keeps its
# entries up to its own last FLUSH before the cut, and a random subset
# of its later entries before the cut (FUA ones always). Positions in
# the merged history ("global counts") replace per-log entry counts in
# History.durable_at and CrashState.durable.

class MultiLog:
    """The logs of several files ({name: log path}) merged by seq."""

    def __init__(self, paths):
        self.logs = {name: WriteLog(p) for name, p in paths.items()}
        self.merged = sorted(((e.seq, name, e) for name, log in
                              self.logs.items() for e in log.entries),
                             key=lambda t: t[0])
        for name, log in self.logs.items():
            if log.entries and not log.entries[0].seq:
                raise LogFormatError('%s: entries carry no sequence numbers'
                                     % name)
        self.index = {(name, e.index): k
                      for k, (_, name, e) in enumerate(self.merged)}

    def position(self, name, count):
        """Global count of the first count entries of log name."""
        return 0 if count == 0 else self.index[(name, count - 1)] + 1

    def positions(self, counts):
        """Global count covering every log's {name: count}: the max."""
        return max(self.position(n, c) for n, c in counts.items())

    def state(self, name, cut, rng, full=False):
        """A crash state with merged entries before cut: every log's
        entries up to its last FLUSH before cut, the rest before cut all
        (full) or a random subset keeping FUA writes."""
        applied = {n: [] for n in self.logs}
        last_flush = {}
        for k in range(cut):
            _, n, e = self.merged[k]
            if e.flags & FLAG_FLUSH:
                last_flush[n] = e.index
        for k in range(cut):
            _, n, e = self.merged[k]
            if full or e.index <= last_flush.get(n, -1) or \
                    e.flags & FLAG_FUA or rng.random() < 0.5:
                applied[n].append(e.index)
        return CrashState(name, applied, cut)


def multi_crash_states(mlog, rng, torn_per_gap=2):
    """Like crash_states over the merged history: every global flush
    point (all entries before it applied) and torn cuts in each gap."""
    n = len(mlog.merged)
    flushes = [k for k, (_, _, e) in enumerate(mlog.merged)
               if e.flags & FLAG_FLUSH]
    for start, end in zip([0] + [f + 1 for f in flushes], flushes + [n]):
        torn = max(torn_per_gap, min(32, (end - start) // 2))
        for _ in range(torn if end > start else 0):
            cut = rng.randint(start, end)
            yield mlog.state('torn@%d' % cut, cut, rng)
        if end < n:
            yield mlog.state('flush@%d' % end, end + 1, rng, full=True)


def build_images(initials, mlog, state):
    """{name: bytes of that file} in crash state state."""
    return {n: build_image(initials[n], mlog.logs[n],
                           CrashState(state.name, state.applied[n],
                                      state.durable))
            for n in mlog.logs}


class ChainChecker:
    """Judges crash states of several files of one backing chain.

    files: {log name: path the state's file is written to} (all in one
    directory, which also holds any unlogged image of the chain); plan:
    callable(state) -> (image whose guest view is checked, {image path:
    allowed backing names}); every image in the plan is also run
    through qemu-img check. The guest view is judged as Checker does
    (original, history with global durable_at)."""

    def __init__(self, files, plan, original, history):
        self.files = files
        self.plan = plan
        self.history = history
        self.inner = Checker(None, original, history, set())

    def check(self, images, state):
        for name, data in images.items():
            with open(self.files[name], 'wb') as f:
                f.write(data)
        view_image, names = self.plan(state)
        fails = []
        for path in sorted(names):
            rc, out = run([QEMU_IMG, 'check', '-q', '-f', 'qcow2', path])
            if rc not in (0, 3):
                fails.append('%s: qemu-img check exit %d: %s'
                             % (os.path.basename(path), rc, out[-600:]))
                continue
            with open(path, 'rb') as f:
                name = backing_name(f.read(65536))
            if name not in names[path]:
                fails.append('%s: backing file %r not in %r' % (
                    os.path.basename(path), name,
                    sorted(map(str, names[path]))))
        if fails:
            return fails
        self.inner.image = view_image
        return ['%s: %s' % (os.path.basename(view_image), f)
                for f in self.inner.check_content(state)]


def multi_campaign(log_paths, initial_paths, checker, seed, max_states,
                   torn_per_gap=2, report=print):
    """campaign() for several logged files ({name: path} each)."""
    mlog = MultiLog(log_paths)
    initials = {}
    for n, p in initial_paths.items():
        with open(p, 'rb') as f:
            initials[n] = f.read()
    rng = random.Random(seed)
    states = list(multi_crash_states(mlog, rng, torn_per_gap))
    states, failures = check_sample(
        states, lambda: mlog.state('final', len(mlog.merged), rng, full=True),
        max_states, rng, lambda st: st.durable,
        lambda st: build_images(initials, mlog, st), checker, report)
    report('  %d log entries in %d logs (%d flushes), %d crash states '
           'checked, %d failed' % (
               len(mlog.merged), len(mlog.logs),
               sum(len(l.flush_indexes()) for l in mlog.logs.values()),
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

"""Crash consistency by write-log replay (bounded sample for make check).

Each scenario of tests/crash/scenarios.py runs qblk or qblk-img with the
image's file under a blklogwrites filter, then rebuilds crash states from
the log (every flush point, plus torn states with a random subset of the
unflushed writes) and checks them with qemu-img check, the header's
backing name and the guest-visible data. The seed is printed and can be
set with QBLK_CRASH_SEED; `make crash-test` runs many more states.
The two commit scenarios log base's and top's files and replay both logs
merged by the entries' process-wide sequence numbers.

The blklogwrites driver itself is also checked directly: the log written
for a known sequence of requests has the dm-log-writes layout.
"""
import os
import random
import struct
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'crash'))

import replay  # noqa: E402
import scenarios  # noqa: E402

SEED = int(os.environ.get('QBLK_CRASH_SEED', random.randrange(1 << 30)))
# Crash states per scenario in make check: keeps the whole file < 60 s.
STATES = int(os.environ.get('QBLK_CRASH_CHECK_STATES', 25))


def _campaign(name, tmp_path):
    print('crash replay %s: seed %d (QBLK_CRASH_SEED=%d to repeat)'
          % (name, SEED, SEED))
    n, failures = scenarios.run_scenario(name, SEED, STATES, str(tmp_path))
    assert n >= 1
    assert not failures, 'seed %d: %s' % (SEED, failures[:3])


@pytest.mark.parametrize('name', ['alloc', 'cor', 'commit', 'stream',
                                  'stream-nbd', 'rebase',
                                  'commit-intermediate', 'commit-active'])
def test_scenario(name, tmp_path, qblk_img):
    _campaign(name, tmp_path)


def test_rebase_every_flush_point(tmp_path, qblk_img):
    """Regression: qcow2's change_backing_file once rewrote the header
    before the L2/refcount entries of the clusters rebase had copied
    reached the disk, so a crash in between named the new base while the
    copies were unmapped. Every flush point, no sampling."""
    rng = random.Random(SEED)
    r = scenarios.scenario_rebase(scenarios.Env(str(tmp_path)), rng)
    log = replay.WriteLog(r.log)
    initial = open(r.initial, 'rb').read()
    bad = []
    for f in log.flush_indexes():
        st = replay.CrashState('flush@%d' % f, list(range(f + 1)), f + 1)
        fails = r.checker.check(replay.build_image(initial, log, st), st)
        if fails:
            bad.append((st.name, fails[0]))
    assert not bad, bad[:3]


def test_checker_sees_lost_write(tmp_path, qblk_img):
    """The checker is not blind: a crash state missing one data write
    that a later acknowledged flush covered must fail."""
    rng = random.Random(SEED)
    r = scenarios.scenario_alloc(scenarios.Env(str(tmp_path)), rng, ops=30)
    log = replay.WriteLog(r.log)
    initial = open(r.initial, 'rb').read()
    n = len(log.entries)
    final = replay.CrashState('full', list(range(n)), n)
    assert r.checker.check(replay.build_image(initial, log, final),
                           final) == []
    # Drop the last write entry whose bytes are the guest's own data.
    guest = {replay.sector_data(w['id'], 0) for w in r.checker.history.writes
             if not w['zero']}
    victim = max(e.index for e in log.entries if e.is_write() and
                 log.data(e)[:512] in guest)
    st = replay.CrashState('lost', [i for i in range(n) if i != victim], n)
    assert r.checker.check(replay.build_image(initial, log, st), st)


def _multi(r):
    mlog = replay.MultiLog(r.log)
    initials = {n: open(p, 'rb').read() for n, p in r.initial.items()}
    return mlog, initials


def _check_multi(r, mlog, initials, st):
    return r.checker.check(replay.build_images(initials, mlog, st), st)


def test_commit_intermediate_header_order(tmp_path, qblk_img):
    """Two logs merged by seq: base's flush precedes top's header
    rewrite; every global flush point passes, and the checker is not
    blind: top's whole log applied without base's (the header names base
    while base lacks mid's data) must fail."""
    rng = random.Random(SEED)
    r = scenarios.scenario_commit_intermediate(
        scenarios.Env(str(tmp_path)), rng, ops=20)
    mlog, initials = _multi(r)
    seqs = [s for s, _, _ in mlog.merged]
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1
    # The first top entry that names base comes after a base flush.
    hdr = [k for k, (_, n, e) in enumerate(mlog.merged)
           if n == 'top' and e.offset == 0 and e.is_write() and
           replay.backing_name(mlog.logs['top'].data(e)) == 'base.qcow2']
    assert hdr, 'top header rewrite not logged'
    assert any(n == 'base' and e.flags & replay.FLAG_FLUSH
               for _, n, e in mlog.merged[:hdr[0]])
    bad = []
    for k, (_, n, e) in enumerate(mlog.merged):
        if e.flags & replay.FLAG_FLUSH:
            st = mlog.state('flush@%d' % k, k + 1, rng, full=True)
            fails = _check_multi(r, mlog, initials, st)
            if fails:
                bad.append((st.name, fails[0]))
    assert not bad, bad[:3]
    n = len(mlog.merged)
    st = replay.CrashState('no-base', {'top': list(range(
        len(mlog.logs['top'].entries))), 'base': []}, n)
    assert _check_multi(r, mlog, initials, st)


def test_commit_active_pivot(tmp_path, qblk_img):
    """Active commit: states after the pivot are judged on base alone,
    and base without its log (the pivot's copies lost) must fail."""
    rng = random.Random(SEED)
    r = scenarios.scenario_commit_active(scenarios.Env(str(tmp_path)),
                                         rng, ops=20)
    mlog, initials = _multi(r)
    n = len(mlog.merged)
    final = mlog.state('final', n, rng, full=True)
    assert _check_multi(r, mlog, initials, final) == []
    st = replay.CrashState('no-base', {'top': list(range(
        len(mlog.logs['top'].entries))), 'base': []}, n)
    assert _check_multi(r, mlog, initials, st)


def _blw_opts(img, log, extra=''):
    return ('driver=qcow2,file.driver=blklogwrites,file.file.driver=file,'
            'file.file.filename=%s,file.log.driver=file,'
            'file.log.filename=%s%s' % (img, log, extra))


def test_log_format(tmp_path, qblk_io, qemu_img):
    """A write and a flush through qblk-io: super block, then the write
    entries (qcow2 metadata + data) and a FLUSH entry; the last state of
    the replay equals the image qblk left."""
    img, log = str(tmp_path / 't.qcow2'), str(tmp_path / 'log')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, '1M')
    initial = open(img, 'rb').read()
    open(log, 'wb').close()
    subprocess.run([qblk_io.path, '--image-opts', '-c',
                    'write -P 0x5a 64k 4k', '-c', 'flush',
                    _blw_opts(img, log)], check=True)
    raw = open(log, 'rb').read()
    magic, version, nr, ss = struct.unpack_from('<QQQI', raw, 0)
    assert (magic, version, ss) == (0x6a736677736872, 1, 512)
    wl = replay.WriteLog(log)
    assert len(wl.entries) == nr >= 2
    assert wl.flush_indexes(), 'no FLUSH entry'
    data = [e for e in wl.entries if e.is_write() and
            b'\x5a' * 4096 in wl.data(e)]
    assert data, 'the guest data is not in the log'
    final = replay.CrashState('final', list(range(nr)), nr)
    rebuilt = replay.build_image(initial, wl, final)
    cur = open(img, 'rb').read()
    assert bytes(rebuilt[:len(cur)]) == cur


def test_log_append(tmp_path, qblk_io, qemu_img):
    """log-append=on continues after the entries already logged."""
    img, log = str(tmp_path / 't.qcow2'), str(tmp_path / 'log')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, '1M')
    open(log, 'wb').close()
    for i, extra in enumerate(['', ',file.log-append=on']):
        subprocess.run([qblk_io.path, '--image-opts', '-c',
                        'write -P 0x%d1 %dk 4k' % (i + 1, 64 * i), '-c',
                        'flush', _blw_opts(img, log, extra)], check=True)
        n = len(replay.WriteLog(log).entries)
        if i == 0:
            first = n
    assert n > first
    wl = replay.WriteLog(log)
    assert any(b'\x21' * 4096 in wl.data(e)
               for e in wl.entries if e.is_write())


def test_bad_sector_size(tmp_path, qblk_io, qemu_img):
    img, log = str(tmp_path / 't.qcow2'), str(tmp_path / 'log')
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, '1M')
    open(log, 'wb').close()
    p = subprocess.run([qblk_io.path, '--image-opts', '-c', 'flush',
                        _blw_opts(img, log, ',file.log-sector-size=1000')],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.returncode != 0
    assert b'Invalid log sector size 1000' in p.stdout


def test_replay_cli(tmp_path, qblk_img):
    """replay.py as a command: a saved scenario run replays clean and the
    seed is printed."""
    rng = random.Random(SEED)
    r = scenarios.scenario_alloc(scenarios.Env(str(tmp_path)), rng, ops=20)
    hist = str(tmp_path / 'history.json')
    orig = str(tmp_path / 'original.raw')
    r.checker.history.save(hist)
    with open(orig, 'wb') as f:
        f.write(r.checker.original)
    p = subprocess.run([sys.executable, os.path.join(
        os.path.dirname(HERE), 'crash', 'replay.py'), '--log', r.log,
        '--initial', r.initial, '--image', r.checker.image,
        '--original', orig, '--history', hist, '--backing', 'base.qcow2',
        '--seed', '5', '--max-states', '10'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode()
    assert p.returncode == 0, out
    assert 'seed 5' in out and '10 crash states checked, 0 failed' in out

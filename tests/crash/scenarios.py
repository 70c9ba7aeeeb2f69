#!/usr/bin/env python3
"""Crash-consistency scenarios: each runs qblk (or qblk-img) with the
image's file under a blklogwrites filter, then replays the log
(replay.py) and checks every crash state. Python 3 stdlib only.

A scenario is a function scenario_NAME(env, rng) returning a Run: where
the log and the pre-run copy are, and the Checker for the states. Add a
new one by writing such a function and listing it in SCENARIOS; see
docs/crash-replay.rst. Scenarios that change two files (the commit jobs)
log both and return dicts of logs and copies (replay.multi_campaign).

CLI (make crash-test):
  scenarios.py [--only NAME] [--seed N] [--max-states N] [--rounds N]
Environment: QBLK_BUILD (build dir), QBLK_CRASH_SEED, QBLK_CRASH_STATES
(crash states per scenario run), QBLK_CRASH_ROUNDS.
"""
import argparse
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'functional'))
sys.path.insert(0, os.path.join(ROOT, 'python'))

import replay  # noqa: E402
from qblkpy.qmp import QMPClient  # noqa: E402
from qblkpy.sockets import wait_accepting  # noqa: E402
from nbd_client import (CMD_FLAG_FUA, CMD_WRITE_ZEROES,  # noqa: E402
                        NbdClient)

KiB = 1024
MiB = 1024 * KiB
SIZE = 4 * MiB
CLUSTER = 4096          # small clusters: many L2/refcount updates


class ScenarioError(Exception):
    pass


class Env:
    """A scratch directory plus the programs: qblk, qblk-img, qemu-img,
    qemu-io."""

    def __init__(self, workdir, build=None):
        self.dir = workdir
        build = build or os.environ.get('QBLK_BUILD',
                                        os.path.join(ROOT, 'build'))
        self.qblk = os.path.join(build, 'qblk')
        self.qblk_img = os.path.join(build, 'qblk-img')
        self.servers = []       # processes to stop when the run is over

    def serve_nbd(self, image, fmt='qcow2'):
        """qemu-nbd serving @image read-only (export 'base') on a unix
        socket in the scratch dir until close(); its nbd+unix:// URL."""
        sock = self.path('base-nbd.sock')
        proc = subprocess.Popen(
            ['qemu-nbd', '-r', '-f', fmt, '-x', 'base', '--persistent',
             '--shared=8', '-k', sock, self.path(image)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.servers.append(proc)
        if not wait_accepting(sock, 30, lambda: proc.poll() is None):
            raise ScenarioError('qemu-nbd did not start on %s' % sock)
        return 'nbd+unix:///base?socket=%s' % sock

    def close(self):
        """Stop the servers serve_nbd() started."""
        for proc in self.servers:
            proc.kill()
            proc.wait()
        self.servers = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def run(self, *cmd):
        """Run a command in the scratch dir; raise on failure."""
        p = subprocess.run([str(c) for c in cmd], cwd=self.dir,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=300)
        if p.returncode != 0:
            raise ScenarioError('%s: exit %d\n%s' % (
                ' '.join(map(str, cmd)), p.returncode,
                p.stdout.decode(errors='replace')[-2000:]))
        return p.stdout.decode(errors='replace')

    def qemu_io(self, image, *cmds):
        args = ['qemu-io', '-f', 'qcow2']
        for c in cmds:
            args += ['-c', c]
        self.run(*(args + [image]))

    def guest_view(self, image, fmt='qcow2'):
        """The raw guest-visible bytes of image (qemu-img as oracle)."""
        out = self.path('view.raw')
        self.run('qemu-img', 'convert', '-U', '-f', fmt, '-O', 'raw', image,
                 out)
        with open(out, 'rb') as f:
            data = f.read()
        os.unlink(out)
        return data

    def snapshot(self, image):
        """Copy image's file before the run; returns the copy's path."""
        copy = image + '.initial'
        shutil.copyfile(image, copy)
        open(self.path('log'), 'wb').close()
        return copy


class Run:
    """What replay needs from a scenario run."""

    def __init__(self, log, initial, checker):
        self.log = log
        self.initial = initial
        self.checker = checker


# ---- Images

def make_chain(env, rng):
    """base.qcow2 (patterns in [0, 3M), [3M, 4M) unallocated) <- top.qcow2
    (some data of its own); relative backing names."""
    env.run('qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
            'cluster_size=%d' % CLUSTER, 'base.qcow2', str(SIZE))
    env.qemu_io('base.qcow2', 'write -P 0x11 0 2M', 'write -P 0x33 2M 1M')
    env.run('qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
            'cluster_size=%d' % CLUSTER, '-b', 'base.qcow2', '-F', 'qcow2',
            'top.qcow2', str(SIZE))
    for _ in range(8):
        off = rng.randrange(SIZE // CLUSTER) * CLUSTER
        env.qemu_io('top.qcow2', 'write -P 0x%02x %d %d'
                    % (rng.randrange(0x40, 0xff), off, CLUSTER))


class Daemon:
    """qblk serving node export_node over NBD on a unix socket."""

    def __init__(self, env, blockdevs, export_node, extra=()):
        self.sock = env.path('nbd.sock')
        args = [env.qblk] + list(extra)
        for b in blockdevs:
            args += ['--blockdev', b]
        args += ['--nbd-server', 'addr.type=unix,addr.path=%s' % self.sock,
                 '--export', 'type=nbd,id=e0,node-name=%s,name=d,'
                 'writable=on' % export_node]
        self.errpath = env.path('qblk.stderr')
        with open(self.errpath, 'wb') as err:
            self.proc = subprocess.Popen(args, cwd=env.dir, stdout=err,
                                         stderr=err,
                                         stdin=subprocess.DEVNULL)
        if wait_accepting(self.sock, 30, lambda: self.proc.poll() is None):
            return
        if self.proc.poll() is not None:
            self.fail('qblk exited early')
        self.proc.kill()
        self.fail('qblk socket not ready')

    def fail(self, what):
        with open(self.errpath, errors='replace') as f:
            raise ScenarioError('%s:\n%s' % (what, f.read()[-3000:]))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.fail('qblk did not stop on SIGTERM')
        if rc != 0:
            self.fail('qblk exit %d' % rc)


def logged_top_blockdevs(top_node='top'):
    """--blockdev values: top.qcow2's file under blklogwrites."""
    return ['driver=file,filename=top.qcow2,node-name=top-file',
            'driver=file,filename=log,node-name=log-file',
            'driver=blklogwrites,node-name=top-log,file=top-file,'
            'log=log-file',
            'driver=qcow2,node-name=%s,file=top-log' % top_node]


def log_entries(env):
    """nr_entries of the log's super block right now."""
    with open(env.path('log'), 'rb') as f:
        return struct.unpack('<QQQ', f.read(24))[2]


def guest_io(env, client, rng, history, ops, read_share=0.0,
             mark=log_entries):
    """ops random guest requests over NBD: writes (sub-cluster and
    multi-cluster), some zero writes and FUA writes, reads (read_share of
    ops); a flush every few, recording mark(env) (the log count) after
    each acknowledged flush."""
    for i in range(ops):
        length = rng.choice([512, 1024, 4096, 8192, 3 * 4096, 32768])
        offset = rng.randrange((SIZE - length) // 512) * 512
        r = rng.random()
        if r < read_share:
            client.read(offset, length)
        elif r < read_share + 0.05:
            history.add_write(offset, length, zero=True)
            client.request(CMD_WRITE_ZEROES, offset, length)
        elif r < read_share + 0.10:
            # FUA: this write alone is stable once acknowledged.
            client.write(offset, history.add_write(offset, length),
                         CMD_FLAG_FUA)
            history.writes[-1]['durable_at'] = mark(env)
        else:
            client.write(offset, history.add_write(offset, length))
        if rng.random() < 0.15:
            client.flush()
            history.flushed(mark(env))
    client.flush()
    history.flushed(mark(env))


# ---- Scenarios

def scenario_alloc(env, rng, ops=120):
    """Random guest writes over NBD into a qcow2 top with a backing file
    (COW of partial clusters, L2 and refcount allocation), flushes."""
    return guest_scenario(env, rng, ops, logged_top_blockdevs(), 'top')


def scenario_cor(env, rng, ops=120):
    """Guest reads with copy-on-read on (the reads populate the top) and
    writes, with flushes."""
    devs = logged_top_blockdevs() + [
        'driver=copy-on-read,node-name=cor,file=top']
    return guest_scenario(env, rng, ops, devs, 'cor', read_share=0.6)


def guest_scenario(env, rng, ops, blockdevs, export_node, read_share=0.0):
    """make_chain, then @ops guest requests (guest_io) over NBD on node
    @export_node of a qblk run with @blockdevs; the Run whose crash
    states must keep base.qcow2 as the backing file."""
    make_chain(env, rng)
    original = env.guest_view('top.qcow2')
    initial = env.snapshot(env.path('top.qcow2'))
    history = replay.History()
    d = Daemon(env, blockdevs, export_node)
    try:
        c = NbdClient.unix(d.sock, timeout=60)
        c.connect('d')
        guest_io(env, c, rng, history, ops, read_share=read_share)
        c.disconnect()
    finally:
        d.stop()
    checker = replay.Checker(env.path('crash.qcow2'), original, history,
                             {'base.qcow2'})
    return Run(env.path('log'), initial, checker)


def logged_top_opts():
    """--image-opts of top.qcow2 with its file under blklogwrites."""
    return ('driver=qcow2,file.driver=blklogwrites,'
            'file.file.driver=file,file.file.filename=top.qcow2,'
            'file.log.driver=file,file.log.filename=log')


def scenario_rebase(env, rng):
    """qblk-img rebase (safe mode) of top onto a different base: every
    crash state must show the same guest view, with the old or new base
    named in the header."""
    make_chain(env, rng)
    env.run('qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
            'cluster_size=%d' % CLUSTER, 'new.qcow2', str(SIZE))
    env.qemu_io('new.qcow2', 'write -P 0x11 0 1M', 'write -P 0x77 1M 2M')
    original = env.guest_view('top.qcow2')
    initial = env.snapshot(env.path('top.qcow2'))
    env.run(env.qblk_img, 'rebase', '--image-opts', logged_top_opts(),
            '-b', 'new.qcow2', '-F', 'qcow2')
    checker = replay.Checker(env.path('crash.qcow2'), original,
                             replay.History(), {'base.qcow2', 'new.qcow2'})
    return Run(env.path('log'), initial, checker)


def scenario_commit(env, rng):
    """qblk-img commit of top into base, base's file under blklogwrites:
    every base sector holds its old data or top's, and the last state
    equals top's view."""
    make_chain(env, rng)
    env.qemu_io('top.qcow2', *['write -P 0x%02x %d %d' % (
        rng.randrange(0x40, 0xff),
        rng.randrange(SIZE // CLUSTER - 4) * CLUSTER,
        CLUSTER * rng.randint(1, 4)) for _ in range(48)])
    base_view = env.guest_view('base.qcow2')
    top_view = env.guest_view('top.qcow2')
    initial = env.snapshot(env.path('base.qcow2'))
    opts = ('driver=qcow2,file.driver=file,file.filename=top.qcow2,'
            'backing.driver=qcow2,backing.file.driver=blklogwrites,'
            'backing.file.file.driver=file,'
            'backing.file.file.filename=base.qcow2,'
            'backing.file.log.driver=file,backing.file.log.filename=log')
    env.run(env.qblk_img, 'commit', '--image-opts', opts)
    checker = replay.Checker(env.path('crash-base.qcow2'), base_view,
                             replay.History(), {None}, alt_view=top_view)
    return Run(env.path('log'), initial, checker)


def scenario_stream(env, rng, ops=60):
    """block-stream of top (all of base pulled up) while the guest writes
    and flushes: the job's end rewrites the header (backing name dropped).
    Every crash state shows the guest's data over base's, with base.qcow2
    or no backing file named."""
    make_chain(env, rng)
    return stream_run(env, rng, ops, 'base.qcow2')


def scenario_stream_nbd(env, rng, ops=60):
    """The same with the base on an NBD server (qemu-nbd, read-only):
    top's header names it by an nbd+unix:// URL, the data comes over the
    network, and every crash state names that URL or nothing."""
    make_chain(env, rng)
    url = env.serve_nbd('base.qcow2')
    env.run('qemu-img', 'rebase', '-u', '-b', url, '-F', 'raw', 'top.qcow2')
    # rate-limited, so that most of the guest's flushes come before the
    # job's end and their crash states still read through the server
    return stream_run(env, rng, ops, url, speed=2 * MiB,
                      extra=['--backing-protocols', 'file,nbd'])


def stream_run(env, rng, ops, backing, speed=0, extra=()):
    """Stream top.qcow2 (whose header names @backing) at @speed bytes/s
    (0: unlimited) under guest I/O in a qblk run with @extra options; the
    Run whose crash states may name @backing or nothing."""
    original = env.guest_view('top.qcow2')
    initial = env.snapshot(env.path('top.qcow2'))
    history = replay.History()
    qmp_sock = env.path('qmp.sock')
    extra = list(extra) + [
        '--chardev', 'socket,id=qmp0,path=%s,server=on,wait=off' % qmp_sock,
        '--monitor', 'chardev=qmp0']
    d = Daemon(env, logged_top_blockdevs(), 'top', extra)
    try:
        qmp = QMPClient(qmp_sock, timeout=60)
        qmp.negotiate()
        c = NbdClient.unix(d.sock, timeout=60)
        c.connect('d')
        qmp.ok('block-stream', job_id='s0', device='top', speed=speed)
        guest_io(env, c, rng, history, ops)
        qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=120)
        c.flush()
        history.flushed(log_entries(env))
        c.disconnect()
        qmp.close()
    finally:
        d.stop()
    with open(env.path('top.qcow2'), 'rb') as f:
        if replay.backing_name(f.read(4096)) is not None:
            raise ScenarioError('stream did not drop the backing file')
    checker = replay.Checker(env.path('crash.qcow2'), original, history,
                             {backing, None})
    return Run(env.path('log'), initial, checker)


# ---- Two logged files: block-commit over QMP
#
# Both base's and top's files are under their own blklogwrites node (logs
# base.log and top.log); replay.MultiLog merges them by the entries'
# process-wide sequence numbers, so a crash state is one cut through
# both histories. Guest flush positions are recorded as {log: count} and
# turned into global counts once the logs are complete.

def make_chain3(env, rng):
    """base.qcow2 <- mid.qcow2 <- top.qcow2, each with data of its own
    (mid's is what an intermediate commit moves into base)."""
    make_chain(env, rng)
    os.rename(env.path('top.qcow2'), env.path('mid.qcow2'))
    env.qemu_io('mid.qcow2', *['write -P 0x%02x %d %d' % (
        rng.randrange(0x40, 0xff),
        rng.randrange(SIZE // CLUSTER - 4) * CLUSTER,
        CLUSTER * rng.randint(1, 4)) for _ in range(48)])
    env.run('qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
            'cluster_size=%d' % CLUSTER, '-b', 'mid.qcow2', '-F', 'qcow2',
            'top.qcow2', str(SIZE))
    for _ in range(8):
        env.qemu_io('top.qcow2', 'write -P 0x%02x %d %d' % (
            rng.randrange(0x40, 0xff),
            rng.randrange(SIZE // CLUSTER) * CLUSTER, CLUSTER))


def logged_qcow2(name, backing=None):
    """--blockdev values: NAME.qcow2 as node NAME, its file logged to
    NAME.log (backing: a node name, or None for the header's none)."""
    return ['driver=file,filename=%s.qcow2,node-name=%s-file' % (name, name),
            'driver=file,filename=%s.log,node-name=%s-logf' % (name, name),
            'driver=blklogwrites,node-name=%s-blw,file=%s-file,'
            'log=%s-logf' % (name, name, name),
            'driver=qcow2,node-name=%s,file=%s-blw%s' % (
                name, name, ',backing=%s' % backing if backing else '')]


def log_counts(env, names=('base', 'top')):
    """{log: nr_entries of its super block now}: a guest flush mark."""
    counts = {}
    for n in names:
        with open(env.path('%s.log' % n), 'rb') as f:
            counts[n] = struct.unpack('<QQQ', f.read(24))[2]
    return counts


def snapshot_files(env, names=('base', 'top')):
    """Copies of NAME.qcow2 before the run, empty NAME.log; crash dir."""
    os.mkdir(env.path('crash'))
    initial = {}
    for n in names:
        initial[n] = env.path('%s.qcow2.initial' % n)
        shutil.copyfile(env.path('%s.qcow2' % n), initial[n])
        open(env.path('%s.log' % n), 'wb').close()
    return initial


def globalise(history, log_paths):
    """Turn the {log: count} durable marks into global counts."""
    mlog = replay.MultiLog(log_paths)
    for w in history.writes:
        if w['durable_at'] is not None:
            w['durable_at'] = mlog.positions(w['durable_at'])
    return mlog


def qmp_daemon(env, blockdevs, export_node):
    qmp_sock = env.path('qmp.sock')
    extra = ['--chardev', 'socket,id=qmp0,path=%s,server=on,wait=off'
             % qmp_sock, '--monitor', 'chardev=qmp0']
    d = Daemon(env, blockdevs, export_node, extra)
    qmp = QMPClient(qmp_sock, timeout=60)
    qmp.negotiate()
    return d, qmp


def job_completed(qmp, job):
    ev = qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=120,
                        match={'device': job})
    if 'error' in ev['data']:
        raise ScenarioError('job %s failed: %s' % (job, ev['data']))


def scenario_commit_intermediate(env, rng, ops=50):
    """block-commit of mid into base (top-node=mid) while the guest
    writes to top over NBD: base gets mid's data and a flush, then top's
    header names base. Every state: both images check clean, top names
    mid or base, and top's guest view (through whichever chain its
    header names) holds every flushed guest write over the old data."""
    make_chain3(env, rng)
    original = env.guest_view('top.qcow2')
    initial = snapshot_files(env)
    shutil.copyfile(env.path('mid.qcow2'), env.path('crash/mid.qcow2'))
    history = replay.History()
    devs = (logged_qcow2('base') +
            ['driver=file,filename=mid.qcow2,node-name=mid-file',
             'driver=qcow2,node-name=mid,file=mid-file,backing=base'] +
            logged_qcow2('top', 'mid'))
    d, qmp = qmp_daemon(env, devs, 'top')
    try:
        c = NbdClient.unix(d.sock, timeout=60)
        c.connect('d')
        guest_io(env, c, rng, history, ops // 2, mark=log_counts)
        qmp.ok('block-commit', job_id='c0', device='top', top_node='mid',
               base_node='base', backing_file='base.qcow2',
               speed=2 * MiB)
        guest_io(env, c, rng, history, ops, mark=log_counts)
        job_completed(qmp, 'c0')
        guest_io(env, c, rng, history, ops // 4, mark=log_counts)
        c.disconnect()
        qmp.close()
    finally:
        d.stop()
    with open(env.path('top.qcow2'), 'rb') as f:
        if replay.backing_name(f.read(65536)) != 'base.qcow2':
            raise ScenarioError('commit did not make top name base.qcow2')
    logs = {n: env.path('%s.log' % n) for n in ('base', 'top')}
    globalise(history, logs)
    crash = {n: env.path('crash/%s.qcow2' % n) for n in ('base', 'top')}
    names = {crash['top']: {'mid.qcow2', 'base.qcow2'},
             crash['base']: {None}}
    checker = replay.ChainChecker(crash, lambda st: (crash['top'], names),
                                  original, history)
    return Run(logs, initial, checker)


def scenario_commit_active(env, rng, ops=50):
    """Active commit of top into base with block-job-complete (pivot)
    while the guest writes: before the pivot the guest writes top, after
    it base. States cut before the pivot are judged on top over base,
    states after it on base alone; both must hold every flushed guest
    write, both images check clean, no header changes."""
    make_chain(env, rng)
    original = env.guest_view('top.qcow2')
    initial = snapshot_files(env)
    history = replay.History()
    devs = logged_qcow2('base') + logged_qcow2('top', 'base')
    d, qmp = qmp_daemon(env, devs, 'top')
    try:
        c = NbdClient.unix(d.sock, timeout=60)
        c.connect('d')
        guest_io(env, c, rng, history, ops // 2, mark=log_counts)
        qmp.ok('block-commit', job_id='c0', device='top', speed=4 * MiB)
        guest_io(env, c, rng, history, ops, mark=log_counts)
        qmp.event_wait('BLOCK_JOB_READY', timeout=120,
                       match={'device': 'c0'})
        qmp.ok('block-job-complete', device='c0')
        job_completed(qmp, 'c0')
        pivot = log_counts(env)
        guest_io(env, c, rng, history, ops // 2, mark=log_counts)
        c.disconnect()
        qmp.close()
    finally:
        d.stop()
    logs = {n: env.path('%s.log' % n) for n in ('base', 'top')}
    mlog = globalise(history, logs)
    pivot_at = mlog.positions(pivot)
    crash = {n: env.path('crash/%s.qcow2' % n) for n in ('base', 'top')}
    names = {crash['top']: {'base.qcow2'}, crash['base']: {None}}

    def plan(st):
        # The guest's image: top before the pivot, base from it on.
        return (crash['top'] if st.durable < pivot_at else crash['base'],
                names)
    checker = replay.ChainChecker(crash, plan, original, history)
    return Run(logs, initial, checker)


SCENARIOS = {
    'alloc': scenario_alloc,
    'cor': scenario_cor,
    'rebase': scenario_rebase,
    'commit': scenario_commit,
    'stream': scenario_stream,
    'stream-nbd': scenario_stream_nbd,
    'commit-intermediate': scenario_commit_intermediate,
    'commit-active': scenario_commit_active,
}


# Scenarios that find a known, reported bug: their failures are listed
# as expected and do not fail the campaign (remove once fixed).
KNOWN_BUGS = {}


def run_scenario(name, seed, max_states, workdir, report=print):
    """Run scenario name once with seed; replay up to max_states states.
    Returns (states checked, failures)."""
    rng = random.Random(seed)
    env = Env(workdir)
    report('scenario %s (seed %d)' % (name, seed))
    try:
        r = SCENARIOS[name](env, rng)
        if isinstance(r.log, dict):
            return replay.multi_campaign(r.log, r.initial, r.checker, seed,
                                         max_states, report=report)
        return replay.campaign(r.log, r.initial, r.checker, seed,
                               max_states, report=report)
    finally:
        env.close()     # a remote base is needed until the last check


def main(argv=None):
    ap = argparse.ArgumentParser(description='qblk crash replay campaigns')
    ap.add_argument('--only', action='append', choices=sorted(SCENARIOS))
    ap.add_argument('--seed', type=int,
                    default=int(os.environ.get('QBLK_CRASH_SEED',
                                               random.randrange(1 << 30))))
    ap.add_argument('--max-states', type=int,
                    default=int(os.environ.get('QBLK_CRASH_STATES', 400)))
    ap.add_argument('--rounds', type=int,
                    default=int(os.environ.get('QBLK_CRASH_ROUNDS', 10)))
    a = ap.parse_args(argv)
    print('crash-test: seed %d (set QBLK_CRASH_SEED to repeat)' % a.seed)
    total, bad, runs = 0, [], 0
    for rnd in range(a.rounds):
        for name in a.only or sorted(SCENARIOS):
            seed = a.seed + rnd
            with tempfile.TemporaryDirectory(prefix='qblk-crash-') as d:
                try:
                    n, fails = run_scenario(name, seed, a.max_states, d)
                except ScenarioError as e:
                    print('  ERROR %s: %s' % (name, e))
                    n, fails = 0, [('setup', [str(e)])]
            runs += 1
            total += n
            bad += [(name, seed, f) for f in fails]
    known = [b for b in bad if b[0] in KNOWN_BUGS]
    bad = [b for b in bad if b[0] not in KNOWN_BUGS]
    print('crash-test summary: %d scenario runs, %d crash states checked, '
          '%d failures, %d expected failures (known bugs)'
          % (runs, total, len(bad), len(known)))
    for name in sorted({b[0] for b in known}):
        print('  known bug in %s: %s' % (name, KNOWN_BUGS[name]))
    for name, seed, (state, why) in bad[:20]:
        print('  %s seed %d %s: %s' % (name, seed, state, why[0]))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())

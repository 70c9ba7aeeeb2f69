#!/usr/bin/python3
"""Load and soak run of qblk (issue 8): many verified NBD connections
on the top of a base.raw <- mid.qcow2 <- top.qcow2 chain while a
block-stream (mid into top) and then an active block-commit (top into
base) run, a QMP client polls query-block-jobs every 10 ms and qblk's
RSS is sampled every second.

    soak.py [--seconds N] [--conns N] [--depth N] [--size-mib N]

(SOAK_SECONDS overrides the default duration). The run fails (exit 1)
on any NBD error or data mismatch, any QMP error reply, a job error, an
RSS growth after warm-up over the bound, an unclean qblk exit or a
qemu-img check complaint. Everything stays on unix sockets in a fresh
temp dir. The result is a dict (run_soak) printed as figures (main).
"""
import argparse
import asyncio
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from nbdload import BLOCK, Load, verify_file  # noqa: E402

MiB = 1024 * 1024
RSS_BOUND = 64 * MiB       # max - min of RSS after warm-up
WARMUP = 0.2               # fraction of the run before RSS must be flat
POLL_INTERVAL = 0.01


class SoakFailed(AssertionError):
    pass


def run_ok(cmd, cwd=None):
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    if p.returncode != 0:
        raise SoakFailed('%s -> %d\n%s%s' % (' '.join(cmd), p.returncode,
                                             p.stdout.decode()[-2000:],
                                             p.stderr.decode()[-2000:]))
    return p.stdout.decode()


def make_chain(d, size):
    """base.raw (a distinct tag in every 4 KiB block) <- mid.qcow2 (0x22
    in every third MiB) <- top.qcow2 (0x33 in every seventh 256 KiB);
    original.raw is top's guest view, made by qemu-img convert."""
    with open(os.path.join(d, 'base.raw'), 'wb') as f:
        for mib in range(size // MiB):
            first = mib * MiB // BLOCK
            f.write(b''.join(struct.pack('>QQ', 0xba5e000000000000 | b, 0)
                             * (BLOCK // 16)
                             for b in range(first, first + MiB // BLOCK)))
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'base.raw',
            '-F', 'raw', 'mid.qcow2', str(size)], cwd=d)
    run_ok(['qemu-io', '-f', 'qcow2', 'mid.qcow2'] +
           sum((['-c', 'write -q -P 0x22 %d 1M' % o]
                for o in range(0, size, 3 * MiB)), []), cwd=d)
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2',
            '-F', 'qcow2', 'top.qcow2', str(size)], cwd=d)
    run_ok(['qemu-io', '-f', 'qcow2', 'top.qcow2'] +
           sum((['-c', 'write -q -P 0x33 %d 256k' % o]
                for o in range(MiB // 2, size, 7 * MiB // 4)), []), cwd=d)
    run_ok(['qemu-img', 'convert', '-O', 'raw', 'top.qcow2',
            'original.raw'], cwd=d)


def qblk_args(d, nconn):
    """The daemon's command line: the chain by node names (base, mid,
    top), top exported writable as 'top', a QMP monitor."""
    bd = []
    for name, drv, extra in (('base', 'raw', ''), ('mid', 'qcow2',
                                                   ',backing=base'),
                             ('top', 'qcow2', ',backing=mid')):
        fn = os.path.join(d, name + ('.raw' if drv == 'raw' else '.qcow2'))
        bd += ['--blockdev', 'driver=file,filename=%s,node-name=%s-file'
               % (fn, name),
               '--blockdev', 'driver=%s,file=%s-file,node-name=%s%s'
               % (drv, name, name, extra)]
    return bd + [
        '--nbd-server', 'addr.type=unix,addr.path=%s,max-connections=%d'
        % (os.path.join(d, 'nbd.sock'), nconn),
        '--export', 'type=nbd,id=exp0,node-name=top,name=top,writable=on',
        '--chardev', 'socket,id=qmp0,path=%s,server=on,wait=off'
        % os.path.join(d, 'qmp.sock'),
        '--monitor', 'chardev=qmp0',
        '--chardev', 'socket,id=qmp1,path=%s,server=on,wait=off'
        % os.path.join(d, 'poll.sock'),
        '--monitor', 'chardev=qmp1']


class Qmp:
    """asyncio QMP client: replies matched by id, events collected."""

    def __init__(self):
        self.pending = {}
        self.events = []
        self.event_cond = asyncio.Condition()
        self.next_id = 0

    async def connect(self, path, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.r, self.w = await asyncio.open_unix_connection(
                    path, limit=1 << 22)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        json.loads(await self.r.readline())          # greeting
        self.task = asyncio.get_running_loop().create_task(self._read())
        await self.ok('qmp_capabilities')

    async def _read(self):
        while True:
            line = await self.r.readline()
            if not line:
                for f in self.pending.values():
                    f.set_exception(EOFError('QMP connection closed'))
                self.pending.clear()
                return
            msg = json.loads(line)
            if 'event' in msg:
                async with self.event_cond:
                    self.events.append(msg)
                    self.event_cond.notify_all()
            elif msg.get('id') in self.pending:
                self.pending.pop(msg['id']).set_result(msg)

    async def cmd(self, name, **args):
        """The whole reply of command @name (args: '_' -> '-')."""
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        msg = {'execute': name, 'id': self.next_id,
               'arguments': {k.replace('_', '-'): v
                             for k, v in args.items()}}
        self.w.write(json.dumps(msg).encode() + b'\n')
        await self.w.drain()
        return await asyncio.wait_for(fut, 30)

    async def ok(self, name, **args):
        r = await self.cmd(name, **args)
        if 'return' not in r:
            raise SoakFailed('%s failed: %r' % (name, r))
        return r['return']

    async def event(self, name, job, timeout):
        """Wait for event @name of job @job (removed from .events)."""
        async def found():
            for ev in self.events:
                if ev['event'] == name and ev['data'].get('device') == job:
                    self.events.remove(ev)
                    return ev
            return None
        async with self.event_cond:
            ev = await found()
            while ev is None:
                await asyncio.wait_for(self.event_cond.wait(), timeout)
                ev = await found()
            return ev


def vm_rss(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return 0


class Soak:
    """One run: daemon, load, jobs, poller, sampler; figures in .res."""

    def __init__(self, build, d, seconds, nconn, depth, size):
        self.build, self.dir = build, d
        self.seconds, self.nconn, self.depth, self.size = \
            seconds, nconn, depth, size
        self.res = {'seconds': seconds, 'conns': nconn, 'depth': depth,
                    'size_mib': size // MiB, 'polls': 0, 'poll_errors': 0,
                    'rss': [], 'jobs': []}
        self.done = asyncio.Event()

    async def poller(self):
        """Start qmppoll.py (query-block-jobs every 10 ms on a second
        monitor, in its own process); returns the process."""
        return await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(HERE, 'qmppoll.py'),
            os.path.join(self.dir, 'poll.sock'),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)

    async def poller_result(self, proc):
        """Stop the poller (EOF on its stdin) and fold its figures in."""
        proc.stdin.close()
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        r = json.loads(out.decode().strip().splitlines()[-1])
        self.res.update(polls=r['polls'], poll_errors=r['errors'],
                        poll_error_list=r['error_list'],
                        poll_max_rtt_ms=r['max_rtt_ms'],
                        job_states=r['states'])
        if r['job_errors']:
            self.res['job_errors'] = r['job_errors']

    async def sampler(self):
        """qblk's VmRSS every second."""
        while not self.done.is_set():
            self.res['rss'].append(vm_rss(self.proc.pid))
            try:
                await asyncio.wait_for(self.done.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def job(self, cmd, job_id, speed, **args):
        """Run one job to completion (completing it at READY after a
        short mirror phase); fail on any job error."""
        t0 = time.monotonic()
        await self.qmp.ok(cmd, job_id=job_id, speed=speed, **args)
        tmo = self.seconds * 3 + 120
        if cmd == 'block-commit':
            await self.qmp.event('BLOCK_JOB_READY', job_id, tmo)
            await asyncio.sleep(self.seconds * 0.1)
            await self.qmp.ok('block-job-complete', device=job_id)
        ev = await self.qmp.event('BLOCK_JOB_COMPLETED', job_id, tmo)
        if ev['data'].get('error'):
            raise SoakFailed('%s failed: %r' % (job_id, ev))
        self.res['jobs'].append((job_id, round(time.monotonic() - t0, 1),
                                 ev['data'].get('len')))

    async def jobs(self):
        """Stream mid into top from the load's first second (before the
        load overwrites what it would copy), then commit top into base;
        speeds aim at each job spanning about a third of the run."""
        await asyncio.sleep(min(1.0, self.seconds * 0.05))
        speed = max(int(self.size / (self.seconds * 0.3)), MiB)
        await self.job('block-stream', 'stream0', speed, device='top',
                       base_node='base')
        await self.job('block-commit', 'commit0', speed, device='top')

    async def limit_check(self):
        """With max-connections=N and N clients connected, one more
        connection is closed before the greeting."""
        r, w = await asyncio.open_unix_connection(
            os.path.join(self.dir, 'nbd.sock'))
        try:
            data = await asyncio.wait_for(r.read(18), 10)
        finally:
            w.close()
        self.res['extra_conn_refused'] = data == b''

    async def main(self):
        self.qmp = Qmp()
        await self.qmp.connect(os.path.join(self.dir, 'qmp.sock'))
        load = Load(os.path.join(self.dir, 'nbd.sock'), 'top', self.size,
                    os.path.join(self.dir, 'original.raw'),
                    nconn=self.nconn, depth=self.depth)
        self.load = load
        try:
            await load.connect()
            await self.limit_check()
            poller = await self.poller()
            sampler = asyncio.ensure_future(self.sampler())
            t0 = time.monotonic()
            load.start()
            jobs = asyncio.ensure_future(self.jobs())
            await asyncio.wait([jobs], timeout=self.seconds)
            if not jobs.done():
                # the load stays on until the jobs end: unthrottle them
                # (a job that ends meanwhile makes set-speed fail: harmless)
                for j in await self.qmp.ok('query-block-jobs'):
                    await self.qmp.cmd('block-job-set-speed',
                                       device=j['device'], speed=0)
                await asyncio.wait_for(jobs, self.seconds * 3 + 120)
            await jobs
            await asyncio.sleep(max(0, self.seconds - (time.monotonic() - t0)))
            self.res['load_seconds'] = round(time.monotonic() - t0, 1)
            # RSS series: the load phase; the read-back is sampled apart
            # (64 x 256 KiB reads in flight size the allocator's arenas)
            self.done.set()
            await sampler
            await load.finish()
            self.res['rss_readback'] = vm_rss(self.proc.pid)
            await self.poller_result(poller)
            self.res['jobs_left'] = await self.qmp.ok('query-block-jobs')
            await self.qmp.ok('quit')
        finally:
            self.done.set()

    def run(self):
        make_chain(self.dir, self.size)
        errpath = os.path.join(self.dir, 'qblk.stderr')
        with open(errpath, 'wb') as err:
            self.proc = subprocess.Popen(
                [os.path.join(self.build, 'qblk')] +
                qblk_args(self.dir, self.nconn), stdin=subprocess.DEVNULL,
                stdout=err, stderr=err, cwd=self.dir)
        try:
            # a hang anywhere (NBD replies, QMP, jobs) fails the run
            asyncio.run(asyncio.wait_for(self.main(),
                                         self.seconds * 5 + 300))
            self.res['exit'] = self.proc.wait(30)
        except BaseException as e:
            self.proc.kill()
            self.proc.wait()
            with open(errpath, errors='replace') as f:
                raise SoakFailed('%r\nqblk stderr:\n%s'
                                 % (e, f.read()[-3000:])) from e
        try:
            self.finish_checks()
        finally:
            self.load.close()
        return self.res

    def finish_checks(self):
        """Images consistent; base.raw (the active layer after the
        commit's pivot) holds the model; figures into .res."""
        st = self.load.stats
        for img in ('mid.qcow2', 'top.qcow2'):
            run_ok(['qemu-img', 'check', '-q', img], cwd=self.dir)
        self.res['file_blocks_checked'] = verify_file(
            os.path.join(self.dir, 'base.raw'), self.load.regions, st)
        self.res.update(
            ops=st.ops, reads=st.reads, writes=st.writes,
            flushes=st.flushes, mib_read=st.bytes_read // MiB,
            mib_written=st.bytes_written // MiB, errors=st.nerrors,
            error_list=st.errors, verified_blocks=st.verified_blocks,
            verified_written=st.verified_written,
            written_blocks=sum(len(r.model) for r in self.load.regions))
        with open(os.path.join(self.dir, 'qblk.stderr'),
                  errors='replace') as f:
            self.res['stderr'] = f.read()[-2000:]


def rss_summary(rss):
    """(first, max, last, flat-phase max - min) of the RSS samples."""
    if not rss:
        return 0, 0, 0, 0
    after = rss[int(len(rss) * WARMUP):] or rss
    return rss[0], max(rss), rss[-1], max(after) - min(after)


def problems(res):
    """Every reason the run failed, as strings (empty: it passed)."""
    out = []
    if res['errors']:
        out.append('%d I/O errors or mismatches: %s' % (res['errors'],
                                                        res['error_list']))
    if res['poll_errors'] or res.get('job_errors'):
        out.append('QMP poll errors %d (%r), job errors %r'
                   % (res['poll_errors'], res.get('poll_error_list'),
                      res.get('job_errors')))
    if [j[0] for j in res['jobs']] != ['stream0', 'commit0']:
        out.append('jobs did not both complete: %r' % res['jobs'])
    if res['jobs_left']:
        out.append('jobs left: %r' % res['jobs_left'])
    if res['exit'] != 0:
        out.append('qblk exited with %r' % res['exit'])
    if not res.get('extra_conn_refused'):
        out.append('connection %d was not refused' % (res['conns'] + 1))
    # ASan's quarantine keeps freed memory for a while: RSS grows by
    # design there, so the bound holds for normal builds only.
    if rss_summary(res['rss'])[3] >= RSS_BOUND and \
            not os.environ.get('QBLK_SANITIZED'):
        out.append('RSS not flat after warm-up: %r' % res['rss'])
    for m in ('AddressSanitizer', 'runtime error', 'Assertion'):
        if m in res['stderr']:
            out.append('%r in qblk stderr' % m)
    return out


def figures(res):
    first, top, last, spread = rss_summary(res['rss'])
    return '\n'.join([
        'soak: %d connections x depth %d, %d MiB, %.1f s of load'
        % (res['conns'], res['depth'], res['size_mib'],
           res['load_seconds']),
        'ops %d (reads %d, writes %d, flushes %d), %d MiB read, %d MiB '
        'written, errors %d' % (res['ops'], res['reads'], res['writes'],
                                res['flushes'], res['mib_read'],
                                res['mib_written'], res['errors']),
        'verified: %d blocks read (%d of them written by the load), %d '
        'written blocks at the end, %d blocks of base.raw after quit'
        % (res['verified_blocks'], res['verified_written'],
           res['written_blocks'], res['file_blocks_checked']),
        'jobs: %s' % ', '.join('%s %.1f s (len %s)' % j for j in res['jobs']),
        'QMP polls %d, errors %d, slowest %.1f ms; extra connection '
        'refused: %s' % (res['polls'], res['poll_errors'],
                         res['poll_max_rtt_ms'], res['extra_conn_refused']),
        'RSS MiB: first %.1f max %.1f last %.1f, after warm-up max-min '
        '%.1f (bound %d), %d samples' % (first / MiB, top / MiB, last / MiB,
                                         spread / MiB, RSS_BOUND // MiB,
                                         len(res['rss'])),
        'RSS MiB after the final read-back: %.1f'
        % (res.get('rss_readback', 0) / MiB),
        'RSS series MiB: %s' % ' '.join('%.0f' % (r / MiB)
                                        for r in res['rss']),
        'qblk exit %s' % res['exit']])


def run_soak(build, seconds, nconn=64, depth=16, size=512 * MiB, d=None):
    """Run the soak in @d (a fresh temp dir by default, removed after a
    pass); return the result dict (figures(res), problems(res))."""
    own = d is None
    d = d or tempfile.mkdtemp(prefix='qblk-soak-', dir='/tmp')
    res = Soak(build, d, seconds, nconn, depth, size).run()
    res['dir'] = d
    if own and not problems(res):
        shutil.rmtree(d, ignore_errors=True)
    return res


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default=os.path.join(here, '..', '..',
                                                    'build'))
    ap.add_argument('--seconds', type=float,
                    default=float(os.environ.get('SOAK_SECONDS', 60)))
    ap.add_argument('--conns', type=int, default=64)
    ap.add_argument('--depth', type=int, default=16)
    ap.add_argument('--size-mib', type=int, default=512)
    a = ap.parse_args()
    res = run_soak(os.path.abspath(a.build), a.seconds, a.conns, a.depth,
                   a.size_mib * MiB)
    print(figures(res))
    bad = problems(res)
    for p in bad:
        print('FAIL: %s' % p)
    print('soak: %s' % ('FAILED' if bad else 'passed'))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())

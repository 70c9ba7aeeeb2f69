"""Helpers shared by the block job tests (stream, commit, crash, guest
I/O, libvirt sequences) and the live graph tests (snapshot, transaction,
bitmaps, reopen): QEMU's tools as oracles, a drive served over NBD with
QMP, job events, guest writers (an NBD client thread, fio) and image
checks. One copy of each, so the tests agree on what "the job
completed" or "the image is consistent" means.

    run_ok(cmd)                     stdout; asserts exit status 0
    qemu_io(target, fmt, *cmds)     asserts no failed command or pattern
    start_drive_export(daemon, img) qblk: -drive drive0, NBD export, QMP
    job_events(qmp, job)            the job's events up to status null
    run_job_ok(qmp, cmd, job, ...)  a job run to BLOCK_JOB_COMPLETED
    NbdWriter(sock, lo, hi)         a thread writing 64 KiB chunks
    FioGuest(...)                   a reproducible fio random-write job
"""
import json
import os
import random
import subprocess
import threading
import time

import pytest

from daemon import make_base
from nbd_client import NbdClient
from qmp_client import start_qblk_with_qmp

MiB = 1024 * 1024

COMPLETED_SEQ = ['created', 'running', 'waiting', 'pending',
                 'BLOCK_JOB_COMPLETED', 'concluded', 'null']
CANCELLED_SEQ = ['created', 'running', 'aborting', 'BLOCK_JOB_CANCELLED',
                 'concluded', 'null']

start = start_qblk_with_qmp


# ---- QEMU's tools


def run_ok(cmd, cwd=None):
    """Run @cmd; assert it exits 0 (showing its output); return stdout."""
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, cwd=cwd, timeout=120)
    assert p.returncode == 0, '%s -> %d\n%s%s' % (
        ' '.join(map(str, cmd)), p.returncode, p.stdout.decode(),
        p.stderr.decode())
    return p.stdout.decode()


def qemu_io(target, fmt, *cmds):
    """qemu-io -f @fmt on @target (an image or NBD URI) with each of
    @cmds; asserts that no command failed and no pattern mismatched.
    Returns stdout and stderr."""
    p = subprocess.run(['qemu-io', '-f', fmt] +
                       [a for c in cmds for a in ('-c', c)] + [target],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode == 0 and 'failed' not in out and \
        'Pattern verification' not in out, '%s: %s' % (target, out)
    return out


def qemu_io_nbd(uri, *cmds):
    """qemu_io through an NBD export (format raw)."""
    return qemu_io(uri, 'raw', *cmds)


def qcow2_chain(d, size, writes, relative=False):
    """A qcow2 chain in @d, made by QEMU's tools: d/NAME.qcow2 for each
    (NAME, qemu-io commands) of @writes in order, @size bytes, each
    backed by the one before (by its file name alone if @relative).
    Returns the paths, base first."""
    paths = []
    for name, cmds in writes:
        path = os.path.join(d, name + '.qcow2')
        cmd = ['qemu-img', 'create', '-q', '-f', 'qcow2']
        if paths:
            below = os.path.basename(paths[-1]) if relative else paths[-1]
            cmd += ['-b', below, '-F', 'qcow2']
        run_ok(cmd + [path, str(size)], cwd=d)
        if cmds:
            qemu_io(path, 'qcow2', *cmds)
        paths.append(path)
    return paths


def overlay(d, qemu_img, name, backing, backing_fmt='qcow2'):
    """d/@name: a new empty qcow2 overlay of @backing; its path."""
    path = os.path.join(d, name)
    qemu_img.ok('create', '-q', '-f', 'qcow2', '-b', backing, '-F',
                backing_fmt, path)
    return path


def flatten(d, qemu_img, top, name='model.raw'):
    """d/@name: the guest view of @top's chain right now, raw."""
    model = os.path.join(d, name)
    qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', top, model)
    return model


def make_base_as(d, qemu_img, fmt, size, seg, seed=1):
    """base.qcow2 by daemon.make_base, converted to base.raw for raw."""
    base = make_base(d, size, seg, name='base.qcow2', seed=seed)
    if fmt == 'raw':
        raw = os.path.join(d, 'base.raw')
        qemu_img.ok('convert', '-f', 'qcow2', '-O', 'raw', base, raw)
        os.unlink(base)
        base = raw
    return base


def mid_writes(size, seg, data_step, zero_step):
    """qemu-io commands for a middle image: 0x3c data over holes and
    base data in every @data_step'th segment, zero clusters over data
    in every @zero_step'th (daemon.top_writes is the top's analogue)."""
    return (['write -P 0x3c %d %d' % (k * seg + seg // 4, seg)
             for k in range(0, size // seg, data_step)] +
            ['write -z %d %d' % (k * seg, seg // 2)
             for k in range(2, size // seg, zero_step)])


def check_consistent(qemu_img, img, where):
    """qemu-img check: clean, or only leaked clusters (exit 3)."""
    rc, out, err = qemu_img('check', '--output=json', '-f', 'qcow2', img)
    assert rc in (0, 3), '%s: qemu-img check %s rc %d\n%s%s' % (
        where, img, rc, out, err)
    res = json.loads(out)
    bad = {k: res.get(k, 0) for k in ('corruptions', 'check-errors',
                                      'corruptions-fixed')}
    assert not any(bad.values()), '%s: %s: %r' % (where, img, res)
    assert rc == 0 or res.get('leaks', 0) > 0, '%s: %r' % (where, res)
    return res


def check_content(qemu_img, img, model, where, model_fmt='raw'):
    """qcow2 @img reads what @model holds."""
    rc, out, err = qemu_img('compare', '-f', 'qcow2', '-F', model_fmt, img,
                            model)
    assert rc == 0, '%s: %s does not read the guest data\n%s%s' % (
        where, os.path.basename(img), out, err)


# ---- the daemon


def drive_export_args(img, sock, drive_opts='', extra=()):
    """qblk options: qcow2 @img as -drive drive0 (plus @drive_opts), any
    @extra options, and drive0 as writable NBD export drive0 on @sock."""
    return (['-drive', 'file=%s,format=qcow2,id=drive0%s' % (img, drive_opts)]
            + list(extra) +
            ['--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
             '--export', 'type=nbd,id=exp0,node-name=drive0,name=drive0,'
             'writable=on'])


def start_drive_export(daemon, img, drive_opts='', extra=()):
    """qblk (daemon fixture) serving @img as drive0 over NBD and QMP:
    returns (daemon, qmp, NBD socket path, export URI)."""
    sock = daemon.new_socket()
    d, qmp = start_qblk_with_qmp(daemon, drive_export_args(img, sock,
                                                           drive_opts, extra))
    return d, qmp, sock, 'nbd+unix:///drive0?socket=%s' % sock


def image_chain(image):
    """File names of an ImageInfo and its backing-image nesting."""
    out = []
    while image:
        out.append(image['filename'])
        image = image.get('backing-image')
    return out


def drive_chain(qmp, index=0):
    """File names of query-block's @index'th drive's chain, top first."""
    return image_chain(qmp.ok('query-block')[index]['inserted']['image'])


# ---- jobs


def job_events(qmp, job, timeout=30, until='null'):
    """Wait until job reaches status until; return its events in order,
    as names ('created', ... for JOB_STATUS_CHANGE, the event name for
    the others), and the data of the terminal BLOCK_JOB_* event (else of
    the first other event, e.g. BLOCK_JOB_ERROR)."""
    deadline = time.monotonic() + timeout
    seen, terminal = [], None
    while True:
        for ev in list(qmp.events):
            data = ev.get('data', {})
            if data.get('id') != job and data.get('device') != job:
                continue
            qmp.events.remove(ev)
            if ev['event'] == 'JOB_STATUS_CHANGE':
                seen.append(data['status'])
                if data['status'] == until:
                    return seen, terminal
            else:
                seen.append(ev['event'])
                if ev['event'] == until:
                    return seen, data
                if ev['event'] in ('BLOCK_JOB_COMPLETED',
                                   'BLOCK_JOB_CANCELLED') or not terminal:
                    terminal = data
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError('job %s did not end: %r' % (job, seen))
        qmp.recv(left)


def run_job_ok(qmp, command, job, **args):
    """Run @command (block-stream, block-commit) to completion as @job;
    return the terminal event's data."""
    qmp.ok(command, args={k.replace('_', '-'): v for k, v in args.items()})
    seq, data = job_events(qmp, job)
    assert seq == COMPLETED_SEQ, seq
    assert 'error' not in data, data
    return data


def query_job(qmp, job):
    """@job's query-block-jobs entry, or None."""
    for j in qmp.ok('query-block-jobs'):
        if j['device'] == job:
            return j
    return None


# ---- guests


class NbdWriter(threading.Thread):
    """Writes 64 KiB chunks of [lo, hi) of export drive0 over NBD in a
    loop, cycling, each pass with new bytes, until stop(); with @read, it
    also reads 256 KiB at a moving offset after each write. .last maps
    each chunk to the byte it last wrote, .count counts the writes."""

    def __init__(self, sock, lo, hi, pause=0.0, read=False):
        super().__init__(daemon=True)
        self.client = NbdClient.unix(sock)
        self.client.connect('drive0')
        self.lo, self.hi, self.pause, self.read = lo, hi, pause, read
        self.last = {}
        self.stopping = threading.Event()
        self.count = 0
        self.error = None

    def run(self):
        off, val = self.lo, 1
        try:
            while not self.stopping.is_set():
                self.client.write(off, bytes([val]) * 65536)
                self.last[off] = val
                if self.read:
                    self.client.read((self.count % 7) * MiB, 256 * 1024)
                self.count += 1
                off += 65536
                if off >= self.hi:
                    off = self.lo
                    val = val % 250 + 1
                if self.pause:
                    time.sleep(self.pause)
            self.client.flush()
            self.client.disconnect()
        except Exception as exc:    # reported by the test
            self.error = exc

    def wait_writes(self, n=10):
        """Let @n more writes happen (or the thread end)."""
        start_count = self.count
        while self.count < start_count + n and self.is_alive():
            time.sleep(0.005)

    def stop(self, timeout=10):
        """Stop writing; asserts that no write failed."""
        self.stopping.set()
        self.join(timeout)
        assert self.error is None, self.error

    def qemu_io_checks(self):
        """qemu-io commands reading back every chunk's last bytes."""
        return ['read -P %d %d 64k' % (v, o) for o, v in
                sorted(self.last.items())]


def fio_result(out, err, rc, what):
    """fio's job stats; fails unless fio exited 0 without error."""
    text = out.decode(errors='replace')
    assert rc == 0, '%s: fio rc %d\n%s\n%s' % (what, rc, text[-3000:],
                                               err.decode()[-3000:])
    job = json.loads(text[text.index('{'):])['jobs'][0]
    assert job['error'] == 0, '%s: fio error %d\n%s' % (
        what, job['error'], err.decode()[-3000:])
    return job


def run_fio(argv, what, timeout=120):
    """Run fio @argv to its end; its job stats (see fio_result)."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return fio_result(p.stdout, p.stderr, p.returncode, what)


class FioGuest:
    """The guest workload of the guest I/O tests: random writes of
    4-64 KiB (4 KiB aligned, no block written twice, fixed @seed) over
    [0, @size), @io_size bytes in all, each block filled with
    @pattern followed by its offset (fio's %o), so a block that lands in
    the wrong place or is overwritten later fails fio's verify. The same
    job applied to a raw model file gives the expected result."""

    def __init__(self, size, io_size, seed, pattern, extra=()):
        self.base_args = [
            'fio', '--name=guest', '--rw=randwrite', '--bsrange=4k-64k',
            '--blockalign=4k', '--size=%d' % size, '--io_size=%d' % io_size,
            '--randseed=%d' % seed, '--verify=pattern',
            '--verify_pattern=%s%%o' % pattern, '--verify_fatal=1',
            # no local-guest-0-verify.state left in the working directory
            '--verify_state_save=0'] + \
            list(extra) + ['--output-format=json']

    def args(self, extra=()):
        return self.base_args + list(extra)

    def over_nbd(self, uri, extra=()):
        """The job against an NBD export at queue depth 8."""
        return self.args(['--ioengine=nbd', '--uri=' + uri, '--iodepth=8'] +
                         list(extra))

    def apply_to_model(self, model):
        """Apply (and verify) the same writes to the raw file @model."""
        run_fio(self.args(['--ioengine=psync', '--filename=' + model,
                           '--do_verify=1']), 'model writes')


class BackgroundFio:
    """fio @argv running in the background (a guest writing over NBD)."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def assert_running(self, when):
        """Fail the test (with fio's output) if fio has already ended."""
        if self.proc.poll() is not None:
            out, err = self.proc.communicate()
            pytest.fail('fio ended %s (rc %d):\n%s\n%s'
                        % (when, self.proc.returncode, out.decode()[-2000:],
                           err.decode()[-2000:]))

    def finish(self, what):
        """Wait for fio's end; its job stats (see fio_result)."""
        out, err = self.proc.communicate(timeout=60)
        return fio_result(out, err, self.proc.returncode, what)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- crash tests


def crash_seed(capsys):
    """The seed of a randomized crash test: QBLK_CRASH_SEED, else a new
    one; printed so that a failure can be replayed."""
    seed = int(os.environ.get('QBLK_CRASH_SEED') or
               random.SystemRandom().randrange(1 << 31))
    with capsys.disabled():
        print('\nQBLK_CRASH_SEED=%d' % seed)
    return seed


def seconds_to_completed(qmp, timeout=30):
    """Seconds from now (a job just started) to BLOCK_JOB_COMPLETED."""
    t0 = time.monotonic()
    qmp.event_wait('BLOCK_JOB_COMPLETED', timeout=timeout)
    return time.monotonic() - t0


def env_fixture(cls):
    """A pytest fixture (assign it to a module-level name, e.g. env)
    giving cls(daemon, qemu_img), whose .qmp is closed afterwards."""
    @pytest.fixture
    def fixture(daemon, qemu_img):
        e = cls(daemon, qemu_img)
        yield e
        e.qmp.close()
    return fixture

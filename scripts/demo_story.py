"""The real-guest story shared by `make demo` (scripts/demo.py) and its
functional test (tests/functional/test_real_guest.py).

A Linux guest (scripts/build-guest.sh) boots from qblk's NBD export of a
tiny qcow2 overlay over a raw base of known data, local or served by nginx
on loopback. While the guest reads the lower half of its disk and writes
the upper half, QMP drives block-stream (the overlay pulls the whole base
and stops depending on it), two blockdev-snapshot-sync, an intermediate
block-commit and an active commit with block-job-complete, so the drive
ends on overlay.qcow2 again. Then every checksum the guest printed is
checked against the images.

State: one Story object owns a private temporary directory and every
process it starts (qblk, qemu-system-x86_64, nginx), each in its own
session so that a terminal's Ctrl-C reaches only Python; close() kills
them all and removes the directory, whatever happened before.
"""
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1024 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'python'))

from qblkpy import nginx, sockets  # noqa: E402
from qblkpy.qmp import QMPClient, QMPError  # noqa: E402

QMP_TIMEOUT = 30


class StoryError(Exception):
    """A step of the story failed; the message says which and why."""


def base_chunk(index):
    """The base image's MiB number @index: a hash of the index, repeated."""
    return hashlib.sha256(b'qblk-demo chunk %d' % index).digest() * (MiB // 32)


def sha256_file_range(path, offset, length=MiB):
    """sha256 hex digest of @length bytes of @path at @offset."""
    with open(path, 'rb') as f:
        f.seek(offset)
        return hashlib.sha256(f.read(length)).hexdigest()


def _die_with_parent():
    """In the child before exec: SIGKILL it when the story's process dies
    (even by SIGKILL), so no qemu/qblk/nginx outlives a killed run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)     # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        os._exit(1)


def guest_tools():
    """Reasons the guest cannot run here ([] when it can)."""
    missing = []
    if not shutil.which('qemu-system-x86_64'):
        missing.append('qemu-system-x86_64 is not installed')
    if not (os.path.isdir('/boot') and
            any(n.startswith('vmlinuz-') for n in os.listdir('/boot'))):
        missing.append('no kernel in /boot (linux-image-cloud-amd64)')
    if not os.path.exists('/bin/busybox'):
        missing.append('busybox-static is not installed')
    if not shutil.which('cpio'):
        missing.append('cpio is not installed')
    return missing


class Guest:
    """The guest's console: a thread collects its lines with host times."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []             # (host monotonic time, text)
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        for raw in iter(self.proc.stdout.readline, b''):
            text = raw.decode(errors='replace').rstrip('\r\n')
            # The console may prefix a line with escapes or kernel noise.
            if 'QBLK-' in text:
                text = text[text.index('QBLK-'):]
            with self.cond:
                self.lines.append((time.monotonic(), text))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def markers(self, kind):
        """[(host time, [fields])] of every 'QBLK-<kind> ...' line."""
        with self.cond:
            return [(t, s.split()[1:]) for t, s in self.lines
                    if s.startswith('QBLK-%s ' % kind)]

    def wait_for(self, kind, timeout):
        """Wait for a QBLK-<kind> line; its fields. Fails on guest death."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for _, s in self.lines:
                    if s.startswith('QBLK-ERROR'):
                        raise StoryError('guest: %s' % s)
                    if s.startswith('QBLK-%s' % kind):
                        return s.split()[1:]
                left = deadline - time.monotonic()
                if self.proc.poll() is not None and not self.thread.is_alive():
                    raise StoryError('guest exited (status %s) before '
                                     'QBLK-%s; console tail:\n%s'
                                     % (self.proc.returncode, kind,
                                        self.tail()))
                if left <= 0:
                    raise StoryError('no QBLK-%s from the guest within %ds; '
                                     'console tail:\n%s'
                                     % (kind, timeout, self.tail()))
                self.cond.wait(min(left, 0.5))

    def tail(self, n=15):
        return '\n'.join('  | ' + s for _, s in self.lines[-n:])

    def send(self, text):
        self.proc.stdin.write(text.encode() + b'\n')
        self.proc.stdin.flush()


class Story:
    """One run of the story; use as a context manager (close() cleans up).

    @size_mib: base size; @remote: serve the base through nginx;
    @say: a print-like function for the narration (None: silent);
    @progress: rewrite a live progress line with '\\r' (needs a tty);
    @stream_seconds: the stream's speed limit makes it last about this
    long, so that the guest works during it and the progress is visible;
    @pause: seconds the guest writes into each new snapshot layer.
    """

    def __init__(self, build, size_mib=256, remote=False, say=print,
                 progress=False, guest_dir=None, stream_seconds=15,
                 pause=3):
        self.build = os.path.abspath(build)
        self.size = size_mib * MiB
        self.remote = remote
        self.stream_speed = max(self.size // stream_seconds, MiB)
        self.commit_speed = 16 * MiB
        self.pause = pause
        self.say = say or (lambda *a, **k: None)
        self.progress = progress
        self.dir = tempfile.mkdtemp(prefix='qblk-demo-')
        self.guest_dir = guest_dir or os.path.join(self.build, 'guest')
        self.procs = {}
        self.logs = []
        self.qmp = None
        self.guest = None
        self.jobs = []              # dicts: name, seconds, bytes, rate...
        self.sizes = {}
        self.verified = 0
        self.failures = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def path(self, name):
        return os.path.join(self.dir, name)

    # ---- processes

    def spawn(self, name, argv, **kw):
        """Start @argv in its own session, stderr to <dir>/<name>.log."""
        log = open(self.path(name + '.log'), 'wb')
        kw.setdefault('stdout', log)
        try:
            proc = subprocess.Popen(argv, stderr=log, start_new_session=True,
                                    preexec_fn=_die_with_parent, **kw)
        except OSError as e:
            raise StoryError('could not run %s: %s' % (argv[0], e.strerror))
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def log_tail(self, name, n=2000):
        try:
            with open(self.path(name + '.log'), errors='replace') as f:
                return f.read()[-n:]
        except OSError:
            return ''

    def stop_proc(self, name, timeout=5):
        """Terminate process @name (SIGTERM, then SIGKILL); forget it."""
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self):
        """Kill every process still running; remove the directory."""
        if self.qmp:
            self.qmp.close()
            self.qmp = None
        for name in list(self.procs):
            self.stop_proc(name, timeout=2)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, argv):
        """Run a tool to completion; its stdout. Fails loudly."""
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        except OSError as e:
            raise StoryError('could not run %s: %s' % (argv[0], e.strerror))
        if r.returncode != 0:
            raise StoryError('%s failed (%d): %s'
                             % (' '.join(argv), r.returncode,
                                r.stderr.strip() or r.stdout.strip()))
        return r.stdout

    # ---- step 1: images

    def make_base(self):
        """base.raw of known data; served by nginx when remote."""
        www = self.path('www')
        os.mkdir(www)
        base = os.path.join(www, 'base.raw')
        with open(base, 'wb') as f:
            for i in range(self.size // MiB):
                f.write(base_chunk(i))
        self.base_path = base
        if self.remote:
            # nginx's worker runs as another user: let it read the base.
            os.chmod(self.dir, 0o755)
            os.chmod(base, 0o644)
            self.base_name = self.start_nginx(www) + '/base.raw'
        else:
            self.base_name = base
        self.say('base image: %d MiB of known data at %s'
                 % (self.size // MiB, self.base_name))

    def start_nginx(self, www):
        """nginx on an ephemeral 127.0.0.1 port serving @www; its URL."""
        if not os.access(nginx.binary(), os.X_OK):
            raise StoryError('nginx is not installed (scripts/install-deps.sh)')
        port = sockets.free_tcp_port()
        d = self.path('nginx')
        nginx.write_conf(d, '127.0.0.1:%d' % port, www)
        proc = self.spawn('nginx', nginx.argv(d))
        if not sockets.wait_accepting(('127.0.0.1', port), 15,
                                      lambda: proc.poll() is None, 0.05):
            raise StoryError('nginx did not start: %s'
                             % self.log_tail('nginx'))
        return 'http://127.0.0.1:%d' % port

    def make_overlay(self):
        """overlay.qcow2 backed by the base (local file or URL)."""
        self.overlay = self.path('overlay.qcow2')
        argv = [os.path.join(self.build, 'qblk-img'), 'create', '-f',
                'qcow2', '-b', self.base_name, '-F', 'raw', self.overlay]
        if self.remote:
            argv += ['-u', str(self.size)]
        self.say('$ qblk-img create -f qcow2 -b %s -F raw overlay.qcow2%s'
                 % (self.base_name if self.remote else 'base.raw',
                    ' -u %dM' % (self.size // MiB) if self.remote else ''))
        self.run(argv)

    # ---- step 2: qblk and the guest

    def start_qblk(self):
        self.qmp_sock = self.path('qmp.sock')
        self.nbd_sock = self.path('nbd.sock')
        argv = [os.path.join(self.build, 'qblk'),
                '-drive', 'file=%s,format=qcow2,if=none,id=drive0,'
                'copy-on-read=on' % self.overlay,
                '--nbd-server', 'addr.type=unix,addr.path=%s' % self.nbd_sock,
                '--export', 'type=nbd,id=exp0,node-name=drive0,name=drive0,'
                'writable=on',
                '--chardev', 'socket,id=qmp0,path=%s,server=on,wait=off'
                % self.qmp_sock,
                '--monitor', 'chardev=qmp0']
        allow = ''
        if self.remote:
            # a backing URL in an image header needs the user's consent
            argv += ['--backing-protocols', 'file,http']
            allow = ' --backing-protocols file,http'
        self.say('$ qblk -drive file=overlay.qcow2,id=drive0,copy-on-read=on'
                 '%s --nbd-server ... --export type=nbd,name=drive0 '
                 '--monitor ...' % allow)
        proc = self.spawn('qblk', argv)
        try:
            self.qmp = QMPClient(self.qmp_sock, QMP_TIMEOUT,
                                 alive=lambda: proc.poll() is None)
            self.qmp.negotiate()
        except (QMPError, OSError) as e:
            raise StoryError('no QMP from qblk: %s (status %s): %s'
                             % (e, proc.poll(), self.log_tail('qblk')))

    def boot_guest(self, timeout=90):
        """Build (if needed) and boot the guest; wait for QBLK-READY."""
        self.run(['sh', os.path.join(ROOT, 'scripts', 'build-guest.sh'),
                  self.guest_dir])
        argv = ['qemu-system-x86_64', '-m', '256', '-nographic',
                '-no-reboot', '-kernel',
                os.path.join(self.guest_dir, 'vmlinuz'), '-initrd',
                os.path.join(self.guest_dir, 'initrd.gz'), '-append',
                'console=ttyS0 panic=-1 quiet', '-drive',
                'file=nbd+unix:///drive0?socket=%s,format=raw,if=virtio'
                % self.nbd_sock]
        self.say('$ qemu-system-x86_64 -kernel vmlinuz -initrd initrd.gz '
                 '-drive file=nbd+unix:///drive0?socket=nbd.sock,'
                 'format=raw,if=virtio')
        t0 = time.monotonic()
        proc = self.spawn('qemu', argv, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE)
        self.guest = Guest(proc)
        ready = self.guest.wait_for('READY', timeout)
        self.boot_seconds = time.monotonic() - t0
        self.sizes['overlay at boot'] = os.path.getsize(self.overlay)
        self.say('guest up in %.1f s (disk %d MiB); the overlay is still '
                 '%d KiB' % (self.boot_seconds, int(ready[0]) // MiB,
                             self.sizes['overlay at boot'] // 1024))

    # ---- step 3: jobs

    def cmd(self, name, **args):
        """A QMP command, printed the way it goes on the wire (short)."""
        shown = {k.replace('_', '-'): (os.path.basename(v)
                                       if isinstance(v, str) and '/' in v
                                       else v)
                 for k, v in args.items()}
        self.say('-> %s' % json.dumps({'execute': name,
                                       'arguments': shown}))
        return self.qmp.ok(name, **args)

    def watch_job(self, job, title, timeout, on_ready=None):
        """Poll job @job until BLOCK_JOB_COMPLETED; record its numbers.

        @on_ready: called once at BLOCK_JOB_READY (active commit)."""
        t0 = time.monotonic()
        samples = []                # (time, offset) for the rate
        total = polls = 0
        line = ''
        while True:
            self.qmp.drain_events(0)
            mine = {'device': job}
            if on_ready and self.qmp.find_event('BLOCK_JOB_READY', mine):
                self.progress_end(line)
                on_ready()
                on_ready, line = None, ''
            if self.qmp.find_event('BLOCK_JOB_CANCELLED', mine):
                raise StoryError('%s was cancelled' % title)
            done = self.qmp.find_event('BLOCK_JOB_COMPLETED', mine)
            if done:
                break
            if time.monotonic() - t0 > timeout:
                raise StoryError('%s did not finish within %ds' % (title,
                                                                   timeout))
            info = [j for j in self.qmp.ok('query-block-jobs')
                    if j['device'] == job]
            if info:
                now, off = time.monotonic(), info[0]['offset']
                total = info[0]['len']
                samples = [s for s in samples if now - s[0] < 3]
                samples.append((now, off))
                hmp = self.qmp.hmp('info block-jobs')
                line = self.progress_line(hmp, job, samples, off, total)
                if self.progress:
                    print('\r' + line + '\033[K', end='', flush=True)
                elif polls % 12 == 0:
                    self.say(line)      # no tty: a line every 3 s
                polls += 1
            time.sleep(0.25)
        self.progress_end(line)
        seconds = time.monotonic() - t0
        data = done['data']
        if data.get('error'):
            raise StoryError('%s failed: %s' % (title, data['error']))
        rec = {'name': title, 'start': t0, 'end': time.monotonic(),
               'seconds': seconds, 'bytes': data['offset'],
               'rate': data['offset'] / max(seconds, 1e-3)}
        self.jobs.append(rec)
        self.say('<- BLOCK_JOB_COMPLETED %s: %d MiB in %.1f s'
                 % (job, data['offset'] // MiB, seconds))
        return rec

    @staticmethod
    def progress_line(hmp, job, samples, off, total):
        """HMP's own line for @job plus the rate and ETA computed here."""
        text = next((l for l in hmp.splitlines() if job in l),
                    hmp.strip().splitlines()[0] if hmp.strip() else job)
        rate = 0.0
        if len(samples) > 1 and samples[-1][0] > samples[0][0]:
            rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] -
                                                       samples[0][0])
        eta = '%.0fs' % ((total - off) / rate) if rate > 0 else '?'
        return '%s | %.1f MiB/s, ETA %s' % (text.strip(), rate / MiB, eta)

    def progress_end(self, line):
        if self.progress and line:
            print('\r' + line + '\033[K', flush=True)

    def run_jobs(self, timeout=120):
        """Stream, two snapshots, intermediate and active commit."""
        self.cmd('block-stream', job_id='stream0', device='drive0',
                 speed=self.stream_speed)
        self.watch_job('stream0', 'block-stream', timeout)
        self.sizes['overlay after stream'] = os.path.getsize(self.overlay)
        self.say('the overlay now holds the whole disk (%d MiB): the base '
                 'is no longer needed' % (self.sizes['overlay after stream']
                                          // MiB))
        if self.remote:
            self.stop_proc('nginx')
            self.say('nginx stopped: the guest keeps running')
        self.top2, self.top3 = self.path('top2.qcow2'), self.path('top3.qcow2')
        for top in (self.top2, self.top3):
            self.cmd('blockdev-snapshot-sync', device='drive0',
                     snapshot_file=top, format='qcow2')
            time.sleep(self.pause)  # let the guest write into this layer
        self.cmd('block-commit', job_id='commit0', device='drive0',
                 top=self.top2, base=self.overlay, speed=self.commit_speed)
        self.watch_job('commit0', 'block-commit (intermediate)', timeout)

        def complete():
            self.say('<- BLOCK_JOB_READY commit1')
            self.cmd('block-job-complete', device='commit1')
        self.cmd('block-commit', job_id='commit1', device='drive0',
                 speed=self.commit_speed)
        self.watch_job('commit1', 'block-commit (active)', timeout, complete)
        files = [b['inserted']['file'] for b in
                 self.qmp.ok('query-block')
                 if b.get('device') == 'drive0' and 'inserted' in b]
        if files and os.path.abspath(files[0]) != self.overlay:
            raise StoryError('drive0 is on %s after the active commit, not '
                             'overlay.qcow2' % files[0])

    # ---- step 4: stop and verify

    def stop_guest(self, timeout=60):
        self.say('-> guest console: stop')
        self.guest.send('stop')
        self.guest.wait_for('DONE', timeout)
        try:
            self.guest.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise StoryError('qemu did not exit after the guest powered off')
        self.procs.pop('qemu', None)
        self.cmd('quit')
        try:
            self.procs['qblk'].wait(timeout)
        except subprocess.TimeoutExpired:
            raise StoryError('qblk did not exit after quit')
        self.procs.pop('qblk')
        self.qmp.close()
        self.qmp = None

    def verify(self):
        """Check every checksum; fills .verified and .failures."""
        final_raw = self.path('final.raw')
        for tool in ('qblk-img', 'qemu-img'):
            exe = (os.path.join(self.build, tool) if tool == 'qblk-img'
                   else 'qemu-img')
            self.run([exe, 'check', self.overlay])
        self.say('$ qemu-img check overlay.qcow2: no errors (qblk-img too)')
        info = json.loads(self.run(['qemu-img', 'info', '--output=json',
                                    self.overlay]))
        if info.get('backing-filename'):
            self.failures.append('overlay.qcow2 still has a backing file')
        self.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                  self.overlay, final_raw])
        self.sizes['overlay at end'] = os.path.getsize(self.overlay)
        for _, (off, digest) in self.markers('READ'):
            want = sha256_file_range(self.base_path, int(off))
            self.check(digest == want, 'read at %s' % off)
        last = {}
        for _, (off, digest) in self.markers('WRITE'):
            last[int(off)] = digest
        for off, digest in sorted(last.items()):
            got = sha256_file_range(final_raw, off)
            self.check(got == digest, 'write at %d' % off)
        # The lower half is never written: it must still be the base.
        half = self.size // 2
        for off in range(0, half, MiB):
            self.check(sha256_file_range(final_raw, off) ==
                       sha256_file_range(self.base_path, off),
                       'lower half at %d' % off, count=False)
        os.unlink(final_raw)

    def markers(self, kind):
        """The guest's QBLK-<kind> OFFSET SHA256 lines; a line garbled on
        the console (not two such fields) is a failure of its own, so it
        never reads as a checksum mismatch."""
        good = []
        for t, fields in self.guest.markers(kind):
            if (len(fields) == 2 and fields[0].isdigit() and
                    re.fullmatch('[0-9a-f]{64}', fields[1])):
                good.append((t, fields))
            else:
                self.failures.append('garbled console line: QBLK-%s %s'
                                     % (kind, ' '.join(fields)))
        return good

    def check(self, ok, what, count=True):
        if ok:
            self.verified += 1 if count else 0
        else:
            self.failures.append('%s: checksum mismatch' % what)

    def guest_rate(self, start, end):
        """The guest's MiB/s (1 MiB read + 1 MiB written per round)."""
        rounds = [t for t, _ in self.guest.markers('WRITE')
                  if start <= t <= end]
        return len(rounds) / max(end - start, 1e-3)

    def report(self):
        """The closing report as a list of lines."""
        out = ['', 'report:']
        for k in ('overlay at boot', 'overlay after stream',
                  'overlay at end'):
            if k in self.sizes:
                out.append('  %-22s %8.1f MiB' % (k, self.sizes[k] / MiB))
        for j in self.jobs:
            out.append('  %-28s %5.1f s, %6.1f MiB/s; guest meanwhile '
                       '%.1f MiB/s read + written'
                       % (j['name'], j['seconds'], j['rate'] / MiB,
                          self.guest_rate(j['start'], j['end'])))
        rounds = len(self.guest.markers('WRITE'))
        out.append('  guest rounds: %d (1 MiB read + 1 MiB written each)'
                   % rounds)
        out.append('  checksums verified: %d' % self.verified)
        if self.failures:
            out += ['  FAILED: ' + f for f in self.failures]
        else:
            out.append('  no data lost')
        return out

    def run_all(self):
        """The whole story; raises StoryError on any failure."""
        try:
            self.make_base()
            self.make_overlay()
            self.start_qblk()
            self.boot_guest()
            self.run_jobs()
            self.stop_guest()
        except QMPError as e:
            raise StoryError('QMP: %s' % e) from e
        self.verify()
        for line in self.report():
            self.say(line)
        if self.failures:
            raise StoryError('%d checks failed' % len(self.failures))


#!/usr/bin/python3
"""Benchmark qblk's block-commit side by side with qemu-storage-daemon
(QEMU 7.2) committing the same images, both driven over their own QMP
socket with the same commands.

    bench/commit.py --build BUILD_DIR [--size 1G] [--pairs 3] [--dir TMPDIR]

Environment overrides for quick runs: QBLK_BENCH_SIZE (e.g. 256M),
QBLK_BENCH_PAIRS, QBLK_BENCH_READY_TIMEOUT (seconds an active commit
under guest writes may take to become ready, default 60). `make bench`
runs this after bench/stream.py.

Two qcow2 images full of random data are created once: base.qcow2 (so
the base is allocated: commit overwrites clusters in place) and
mid.qcow2, backed by base. Every run gets a fresh daemon whose graph is
built with --blockdev (file + qcow2 per image; the base and mid formats
read-only unless mid is the active layer, so the commit has to reopen
them; file nodes with auto-read-only=on, as libvirt builds them):

  intermediate (MiB/s)     base <- mid <- top (a fresh empty overlay):
                           block-commit of mid into base, from the
                           command to BLOCK_JOB_COMPLETED
  active: to ready (s)     base <- mid, mid exported over NBD (the
                           active layer): block-commit to BLOCK_JOB_READY
  active: to complete (s)  block-job-complete to BLOCK_JOB_COMPLETED
  ... under guest writes   the same while fio --ioengine=nbd randwrite
                           4k QD8 writes to the export (its first second
                           is ramp time, the commit starts at its end,
                           fio is stopped at BLOCK_JOB_COMPLETED): also
                           the guest's IOPS and p99 completion latency
                           during the job; the same fio idle is shown
                           for reference

Runs alternate qsd then qblk, --pairs times, after one untimed warm-up of
each; qblk's results are checked first (qemu-img compare and info), so a
fast but wrong commit does not count. The ratio column is the median of
the per-pair ratios oriented so that > 1 means qblk is better (qblk/qsd
for rates and IOPS, qsd/qblk for times and latencies); the aim for every
timed row is 1.2. A daemon whose active commit is not ready within the
timeout is recorded at the timeout (the row then shows '>').
"""
import math
import os
import subprocess
import sys
import time

from benchlib import (QMPRun, Server, column, compare_or_raise,
                      daemon_binaries, fresh_overlay, image_info,
                      job_bench_argparser, make_random_qcow2,
                      nbd_export_args, pairs_of, parse_size,
                      qmp_monitor_args, row, scratch_dir, under_fio_load,
                      unlink_if_exists)

MiB = 1 << 20
AIM = 1.2


def graph_args(base, mid, qmp_sock, top=None, nbd_sock=None):
    """base <- mid [<- top], as libvirt builds it: file nodes with
    auto-read-only, backing format nodes read-only (the commit has to
    reopen them); the highest image is the active layer (writable,
    exported as 'd' when @nbd_sock is given)."""
    ro = ',read-only=on'
    args = ['--blockdev', 'driver=file,filename=%s,node-name=base-file,'
            'auto-read-only=on' % base,
            '--blockdev', 'driver=qcow2,file=base-file,node-name=base%s' % ro,
            '--blockdev', 'driver=file,filename=%s,node-name=mid-file,'
            'auto-read-only=on' % mid,
            '--blockdev', 'driver=qcow2,file=mid-file,node-name=mid,'
            'backing=base%s' % (ro if top else '')]
    if top:
        args += ['--blockdev', 'driver=file,filename=%s,node-name=top-file'
                 % top,
                 '--blockdev', 'driver=qcow2,file=top-file,node-name=top,'
                 'backing=mid']
    if nbd_sock:
        args += nbd_export_args(nbd_sock, 'top' if top else 'mid', True)
    return args + qmp_monitor_args(qmp_sock)


class Run(QMPRun):
    """One daemon on the images: `with Run(...) as r:` gives r.qmp; on
    exit the daemon must exit 0 on SIGTERM."""

    def __init__(self, binary, imgs, d, intermediate=False, nbd=False):
        base, mid = imgs
        self.qmp_sock = os.path.join(d, 'qmp.sock')
        self.nbd_sock = os.path.join(d, 'nbd.sock') if nbd else None
        self.top = os.path.join(d, 'top.qcow2') if intermediate else None
        unlink_if_exists(self.qmp_sock)
        if self.top:
            fresh_overlay(self.top, mid)
        os.sync()
        self.server = Server(binary, graph_args(base, mid, self.qmp_sock,
                                                self.top, self.nbd_sock),
                             self.nbd_sock or self.qmp_sock, d)

    def wait(self, name, timeout=600):
        """Wait for event @name of the job; raise if the job ended
        otherwise or failed. Returns the monotonic time."""
        return self.qmp.wait_job(name, 'commit', timeout)


def measure_intermediate(binary, imgs, d, size):
    """MiB/s of committing mid into base under an empty top."""
    with Run(binary, imgs, d, intermediate=True) as r:
        t0 = time.monotonic()
        r.qmp.ok('block-commit', job_id='c', device='top', top_node='mid',
                 base_node='base')
        return size / MiB / (r.wait('BLOCK_JOB_COMPLETED') - t0)


def active_commit(r, ready_timeout):
    """Commit the active layer mid into base and pivot: (seconds to
    ready, seconds to complete); a commit not ready in time is cancelled
    and counts as (the timeout, NaN)."""
    t0 = time.monotonic()
    r.qmp.ok('block-commit', job_id='c', device='mid')
    try:
        t1 = r.wait('BLOCK_JOB_READY', ready_timeout)
    except TimeoutError:
        r.qmp.cancel_job('c')
        return (time.monotonic() - t0, math.nan)
    r.qmp.ok('block-job-complete', device='c')
    return t1 - t0, r.wait('BLOCK_JOB_COMPLETED') - t1


def measure_active(binary, imgs, d, ready_timeout):
    with Run(binary, imgs, d, nbd=True) as r:
        return active_commit(r, ready_timeout)


def measure_active_load(binary, imgs, d, size, ready_timeout):
    """Active commit while fio writes: (idle IOPS, idle p99, to ready,
    to complete, IOPS, p99)."""
    with Run(binary, imgs, d, nbd=True) as r:
        idle, times, load = under_fio_load(
            r.nbd_sock, size, 'randwrite', 1.2,
            lambda: active_commit(r, ready_timeout))
        return idle + times + load


def check_qblk(binary, imgs, d, size):
    """Both commits once with qblk, judged by QEMU's tools."""
    base, mid = imgs
    measure_intermediate(binary, imgs, d, size)
    top = os.path.join(d, 'top.qcow2')
    info = image_info(top)
    if info.get('full-backing-filename') != base:
        raise RuntimeError('qblk intermediate commit: top names %r'
                           % info.get('full-backing-filename'))
    compare_or_raise(top, mid,
                     'qblk intermediate commit result differs from mid')
    os.unlink(top)
    # make base differ from mid again, so the active commit has work
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 1M',
                    base], check=True, stdout=subprocess.DEVNULL)
    measure_active(binary, imgs, d, 600)
    compare_or_raise(base, mid,
                     'qblk active commit left base different from mid')
    for img in imgs:
        p = subprocess.run(['qemu-img', 'check', img], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise RuntimeError('qemu-img check %s after qblk: %s'
                               % (img, p.stdout.decode()[-500:]))


def failed_rows(names, e):
    """Rows of a group that failed: (name, aim) pairs."""
    sys.stderr.write('%s: %s\n' % (names[0][0], e))
    return [(n, None, None, None, aim, False) for n, aim in names]


def with_aim(r, aim, timed_out=False):
    return r + (aim, timed_out)


def rows_intermediate(bins, imgs, d, size, pairs):
    name = 'intermediate (MiB/s)'
    try:
        r = pairs_of(lambda k: measure_intermediate(bins[k], imgs, d, size),
                     pairs)
    except RuntimeError as e:
        return failed_rows([(name, AIM)], e)
    return [with_aim(row(name, r['qsd'], r['qblk'], True), AIM)]


def split_rows(r, names):
    """Rows from the tuple results of pairs_of; @names: (name,
    higher_better, aim) per tuple element. A run that hit the ready
    timeout has NaN for its time to complete (row TIMEOUT) and the
    timeout as its time to ready (row flagged)."""
    runs = r['qsd'] + r['qblk']
    late = any(v != v for x in runs for v in x)
    out = []
    for i, (name, higher, aim) in enumerate(names):
        qsd, qblk = column(r['qsd'], i), column(r['qblk'], i)
        if any(v != v for v in qsd + qblk):
            out.append((name, None, None, None, aim, True))
            continue
        out.append(with_aim(row(name, qsd, qblk, higher), aim,
                            late and 'ready' in name))
    return out


def rows_active(bins, imgs, d, pairs, timeout):
    names = [('active: to ready (s)', False, AIM),
             ('active: to complete (s)', False, AIM)]
    try:
        r = pairs_of(lambda k: measure_active(bins[k], imgs, d, timeout),
                     pairs)
    except RuntimeError as e:
        return failed_rows([n[::2] for n in names], e)
    return split_rows(r, names)


def rows_active_load(bins, imgs, d, size, pairs, timeout):
    names = [('guest IOPS idle (info)', True, None),
             ('guest p99 us idle (info)', False, None),
             ('guest: to ready (s)', False, AIM),
             ('guest: to complete (s)', False, AIM),
             ('guest IOPS during commit', True, AIM),
             ('guest p99 us during commit', False, AIM)]
    try:
        r = pairs_of(lambda k: measure_active_load(bins[k], imgs, d, size,
                                                   timeout), pairs)
    except RuntimeError as e:
        return failed_rows([n[::2] for n in names], e)
    return split_rows(r, names)


def print_table(rows, pairs, size, timeout):
    print('\n%-30s %10s %10s %10s %6s %5s' % (
        'commit workload (%d MiB)' % (size >> 20), 'qsd', 'qblk', 'ratio',
        'aim', 'met'))
    failed = False
    for name, a, b, ratio, aim, late in rows:
        if ratio is None:
            print('%-30s %10s %10s %10s %6s' % (
                name, '-', '-', 'TIMEOUT' if late else 'FAILED',
                aim or ''))
            failed = failed or not late
            continue
        met = '' if aim is None else ('yes' if ratio >= aim else 'NO')
        print('%-30s %10.3f %10.3f %10.2f %6s %5s%s' % (
            name, a, b, ratio, aim or '', met,
            '  (a run hit the %d s ready timeout)' % timeout if late
            else ''))
    print('\nmedians of %d alternating pairs (qsd then qblk, fresh daemon '
          'per run); ratio = median of per-pair ratios, > 1: qblk better.'
          % pairs)
    return failed


def run(build, size, pairs, timeout, tmpdir=None):
    """Run the commit benchmark; 0 on success, 1 if anything failed."""
    bins = daemon_binaries(build, 'commit', ('qemu-img', 'qemu-io', 'fio'))
    if not bins:
        return 1
    with scratch_dir('qblk-commit-bench-', tmpdir) as d:
        print('\ncreating two %d MiB random qcow2 images in %s for the '
              'commit benchmark ...' % (size >> 20, d), flush=True)
        base = make_random_qcow2(d, 'base', size)
        mid = make_random_qcow2(d, 'mid', size)
        subprocess.run(['qemu-img', 'rebase', '-q', '-u', '-f', 'qcow2',
                        '-b', base, '-F', 'qcow2', mid], check=True)
        imgs = (base, mid)
        try:
            check_qblk(bins['qblk'], imgs, d, size)
        except RuntimeError as e:
            print('bench/commit: qblk commit is wrong, not timed: %s' % e)
            return 1
        rows = (rows_intermediate(bins, imgs, d, size, pairs) +
                rows_active(bins, imgs, d, pairs, timeout) +
                rows_active_load(bins, imgs, d, size, pairs, timeout))
    return 1 if print_table(rows, pairs, size, timeout) else 0


def main():
    ap = job_bench_argparser(__doc__, 'image size')
    ap.add_argument('--ready-timeout', type=float,
                    default=float(os.environ.get('QBLK_BENCH_READY_TIMEOUT',
                                                 '60')))
    args = ap.parse_args()
    return run(args.build, parse_size(args.size), max(args.pairs, 1),
               args.ready_timeout, args.dir)


if __name__ == '__main__':
    sys.exit(main())

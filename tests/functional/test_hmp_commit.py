"""HMP "commit DEVICE|all" through human-monitor-command: QEMU's
synchronous commit of a drive's top image into its backing file (no job,
no events), then the top is emptied; texts of reference section 6.

The guest writes through the NBD export before the commit; afterwards
the base (judged alone by qemu-img compare) reads what the guest saw,
the top holds nothing (qemu-img map), and the guest still reads the same.
"""
import os

from jobs_util import MiB, run_ok, start
from qblk_testlib import sha256 as sha

SIZE = 4 * MiB


def make_pair(d, name):
    """name-base.qcow2 (0x11 in [0, 2M)) <- name.qcow2 (0x22 in [1M, 2M),
    zeroes in [0, 256K)); returns (top, base, raw view of top)."""
    base = os.path.join(d, name + '-base.qcow2')
    top = os.path.join(d, name + '.qcow2')
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', base, str(SIZE)])
    run_ok(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x11 0 2M', base])
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F',
            'qcow2', top])
    run_ok(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x22 1M 1M', '-c',
            'write -z 0 256k', top])
    return top, base


def view(path, out):
    run_ok(['qemu-img', 'convert', '-U', '-O', 'raw', path, out])
    return out


def compare(img, raw):
    run_ok(['qemu-img', 'compare', '-U', '-f', 'qcow2', '-F', 'raw', img,
            raw])


def top_is_empty(top):
    m = run_ok(['qemu-img', 'map', '-U', '--output=json', top])
    return '"depth": 0' not in m


def nbd_write(sock, name, cmd):
    run_ok(['qemu-io', '-f', 'raw', '-c', cmd,
            'nbd+unix:///%s?socket=%s' % (name, sock)])


def serve(daemon, drives, sock):
    args = []
    for i, (top, _) in enumerate(drives):
        args += ['-drive', 'file=%s,format=qcow2,id=drive%d,if=none'
                 % (top, i)]
    args += ['--nbd-server', 'addr.type=unix,addr.path=%s' % sock]
    for i in range(len(drives)):
        args += ['--export', 'type=nbd,id=e%d,node-name=drive%d,name=d%d,'
                 'writable=on' % (i, i, i)]
    return start(daemon, args)


def test_hmp_commit_drive(daemon):
    top, base = make_pair(daemon.dir, 'a')
    sock = daemon.path('nbd.sock')
    d, qmp = serve(daemon, [(top, base)], sock)
    nbd_write(sock, 'd0', 'write -P 0x33 3M 512k')
    expect = view(top, daemon.path('expect.raw'))
    qmp.drain_events()
    assert qmp.hmp('commit drive0') == ''
    assert qmp.drain_events() == []            # no job, no events
    # the drive still reads the same, through its (now empty) top
    out = run_ok(['qemu-io', '-f', 'raw', '-c', 'read -P 0x33 3M 512k',
                  '-c', 'read -P 0x22 1M 1M', '-c', 'read -P 0 0 256k',
                  'nbd+unix:///d0?socket=%s' % sock])
    assert 'verification failed' not in out
    image = qmp.ok('query-block')[0]['inserted']
    assert image['file'] == top and image['ro'] is False
    assert qmp.ok('query-named-block-nodes', flat=True)
    d.stop()
    compare(base, expect)           # the base alone reads the guest view
    compare(top, expect)
    assert top_is_empty(top)
    run_ok(['qemu-img', 'check', '-q', top])
    run_ok(['qemu-img', 'check', '-q', base])
    # the base's zero range is a zero write, not data
    m = run_ok(['qemu-img', 'map', '-U', '--output=json', base])
    assert '"start": 0, "length": 262144, "depth": 0, "present": true, ' \
           '"zero": true, "data": false' in m, m


def test_hmp_commit_all(daemon):
    """all: every drive with a backing file; a lone drive is skipped."""
    a = make_pair(daemon.dir, 'a')
    b = make_pair(daemon.dir, 'b')
    solo = daemon.path('solo.qcow2')
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', solo, str(SIZE)])
    solo_sum = sha(solo)
    sock = daemon.path('nbd.sock')
    d, qmp = serve(daemon, [a, (solo, None), b], sock)
    nbd_write(sock, 'd0', 'write -P 0x44 2M 64k')
    nbd_write(sock, 'd2', 'write -P 0x55 3M 64k')
    ea = view(a[0], daemon.path('ea.raw'))
    eb = view(b[0], daemon.path('eb.raw'))
    assert qmp.hmp('commit all') == ''
    d.stop()
    for (top, base), expect in ((a, ea), (b, eb)):
        compare(base, expect)
        compare(top, expect)
        assert top_is_empty(top)
        run_ok(['qemu-img', 'check', '-q', base])
    assert sha(solo) == solo_sum


def test_hmp_commit_errors(daemon):
    top, base = make_pair(daemon.dir, 'a')
    solo = daemon.path('solo.qcow2')
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', solo, str(SIZE)])
    sock = daemon.path('nbd.sock')
    d, qmp = serve(daemon, [(top, base), (solo, None)], sock)
    sums = (sha(top), sha(base))
    assert qmp.hmp('commit nosuch') == "Device 'nosuch' not found\r\n"
    assert qmp.hmp('commit drive1') == \
        "'commit' error for 'drive1': Operation not supported\r\n"
    # a job holding the drive's node: busy
    qmp.ok('block-stream', device='drive0', speed=1)
    assert qmp.hmp('commit drive0') == \
        "'commit' error for 'drive0': Device or resource busy\r\n"
    assert qmp.hmp('commit all') == \
        "'commit' error for 'all': Device or resource busy\r\n"
    qmp.ok('block-job-cancel', device='drive0', force=True)
    qmp.event_wait('BLOCK_JOB_CANCELLED', 10)
    d.stop()
    assert (sha(top), sha(base)) == sums


def test_hmp_info_block_jobs_commit_line(daemon):
    """info block-jobs prints a commit job in QEMU's "Type commit" form
    (not the "Streaming device" form), byte for byte; block_job_complete
    pivots it and the list is empty again."""
    top, base = make_pair(daemon.dir, 'c')
    sock = daemon.path('nbd.sock')
    d, qmp = serve(daemon, [(top, base)], sock)
    assert qmp.hmp('info block-jobs') == 'No active jobs\r\n'
    qmp.ok('block-commit', device='drive0', speed=1024)
    # Paused, the job's numbers cannot move between the two queries.
    assert qmp.hmp('block_job_pause drive0') == ''
    qmp.event_wait('JOB_STATUS_CHANGE', match={'status': 'paused'})
    line = qmp.hmp('info block-jobs')
    job = qmp.ok('query-block-jobs')[0]
    assert line == ('Type commit, device drive0: Completed %d of %d bytes, '
                    'speed limit 1024 bytes/s\r\n'
                    % (job['offset'], job['len'])), line
    assert qmp.hmp('block_job_set_speed drive0 0') == ''
    assert qmp.hmp('block_job_resume drive0') == ''
    qmp.event_wait('BLOCK_JOB_READY')
    assert qmp.hmp('block_job_complete drive0') == ''
    qmp.event_wait('BLOCK_JOB_COMPLETED')
    qmp.event_wait('JOB_STATUS_CHANGE', match={'status': 'null'})
    assert qmp.hmp('info block-jobs') == 'No active jobs\r\n'
    assert qmp.ok('query-block')[0]['inserted']['file'] == base
    d.stop()

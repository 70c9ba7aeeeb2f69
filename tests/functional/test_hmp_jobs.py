"""HMP block-job commands on a pseudo-terminal: block_stream,
block_job_set_speed, block_job_pause/resume/cancel/complete and
info block-jobs, in QEMU 7.2's exact words (reference section 6).

qblk serves a 64 MiB chain base <- mid <- top as -drive drive0, with its
HMP on the pty (stdio) and a QMP socket beside it to wait for the job
events. Every "info block-jobs" line is matched byte for byte against
QEMU's format ("Streaming device JOB: Completed N of M bytes, speed
limit S bytes/s"), the numbers against query-block-jobs.
"""
import json
import re
import time

import pytest

from daemon import require_qblk
from jobs_util import qcow2_chain
from qmp_client import QMPClient
from test_hmp import Terminal, PROMPT

SIZE = 64 * 1024 * 1024
LINE_RE = re.compile(r'Streaming device (\S+): Completed (\d+) of (\d+) '
                     r'bytes, speed limit (\d+) bytes/s')


class Session:
    """The daemon on a pty plus a QMP client on the same daemon."""

    def __init__(self, daemon, qemu_img, qemu_io):
        require_qblk('HMP block jobs on a pseudo-terminal')
        self.base, self.mid, self.top = qcow2_chain(
            daemon.dir, SIZE, [('base', ['write -P 0x11 0 64M']),
                               ('mid', ['write -P 0x22 0 8M']),
                               ('top', [])])
        self.qemu_img = qemu_img
        sock = daemon.path('qmp-hmp.sock')
        self.term = Terminal(
            ['-drive', 'file=%s,format=qcow2,id=drive0' % self.top,
             '--chardev', 'stdio,id=hmp0', '--monitor', 'hmp0,mode=readline',
             '--chardev', 'socket,id=qmp0,path=%s,server=on,wait=off' % sock,
             '--monitor', 'chardev=qmp0'], daemon.dir)
        self.term.read_until(PROMPT)
        self.qmp = QMPClient(sock)
        self.qmp.negotiate()

    def run(self, line):
        """Type an HMP line; return its output lines (the echo checked)."""
        lines = self.term.command(line.encode() + b'\r')
        assert lines[0] == line, lines
        return lines[1:]

    def jobs_line(self):
        """The one 'info block-jobs' line, parsed and checked against
        query-block-jobs."""
        lines = self.run('info block-jobs')
        assert len(lines) == 1, lines
        m = LINE_RE.fullmatch(lines[0])
        assert m, lines
        return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))

    def wait(self, event, **match):
        return self.qmp.event_wait(event, timeout=30, match=match)

    def close(self):
        self.qmp.close()
        self.term.close()


@pytest.fixture
def s(daemon, qemu_img, qemu_io):
    sess = Session(daemon, qemu_img, qemu_io)
    yield sess
    sess.close()


def test_hmp_jobs_throttled_stream_transcript(s):
    assert s.run('info block-jobs') == ['No active jobs']
    assert s.run('block_stream drive0 1M') == []
    job, off, length, speed = s.jobs_line()
    assert (job, length, speed) == ('drive0', SIZE, 1048576)
    q = s.qmp.ok('query-block-jobs')
    assert [(j['device'], j['type'], j['len'], j['speed']) for j in q] == \
        [('drive0', 'stream', SIZE, 1048576)]
    assert off <= q[0]['offset'] < SIZE

    assert s.run('block_job_set_speed drive0 2M') == []
    assert s.jobs_line()[3] == 2097152
    assert s.run('block_job_set_speed drive0 4096k') == []
    assert s.jobs_line()[3] == 4194304

    assert s.run('block_job_pause drive0') == []
    assert s.run('block_job_pause drive0') == ['Error: Job is already paused']
    s.wait('JOB_STATUS_CHANGE', id='drive0', status='paused')
    before = s.jobs_line()[1]
    time.sleep(0.3)
    assert s.jobs_line()[1] == before       # no progress while paused
    assert s.run('block_job_cancel drive0') == [
        "Error: The block job for device 'drive0' is currently paused"]
    assert s.run('block_job_resume drive0') == []
    assert s.run('block_job_resume drive0') == [
        "Error: Can't resume a job that was not paused"]
    assert s.run('block_job_complete drive0') == [
        "Error: Job 'drive0' in state 'running' cannot accept command "
        "verb 'complete'"]

    assert s.run('block_job_cancel -f drive0') == []
    ev = s.wait('BLOCK_JOB_CANCELLED', device='drive0')
    assert ev['data']['type'] == 'stream' and ev['data']['len'] == SIZE
    s.wait('JOB_STATUS_CHANGE', id='drive0', status='null')
    assert s.run('info block-jobs') == ['No active jobs']


def test_hmp_jobs_errors(s):
    assert s.run('block_stream nosuch') == [
        "Error: Cannot find device='nosuch' nor node-name='nosuch'"]
    for cmd in ('block_job_pause', 'block_job_resume', 'block_job_complete',
                'block_job_cancel', 'block_job_cancel -f'):
        assert s.run(cmd + ' nosuch') == [
            "Error: Block job 'nosuch' not found"], cmd
    assert s.run('block_job_set_speed nosuch 1M') == [
        "Error: Block job 'nosuch' not found"]
    assert s.run('block_stream drive0 0 /no/such/base.qcow2') == [
        "Error: Can't find '/no/such/base.qcow2' in the backing chain"]
    assert s.run('info block-jobs') == ['No active jobs']


def test_hmp_jobs_stream_to_base(s):
    # "0" means unlimited (a bare number counts MiB, as in QEMU)
    assert s.run('block_stream drive0 0 %s' % s.base) == []
    ev = s.wait('BLOCK_JOB_COMPLETED', device='drive0')
    assert 'error' not in ev['data']
    assert ev['data']['offset'] == ev['data']['len'] == SIZE
    assert ev['data']['speed'] == 0
    s.wait('JOB_STATUS_CHANGE', id='drive0', status='null')
    assert s.run('info block-jobs') == ['No active jobs']
    assert s.qmp.hmp('info block-jobs') == 'No active jobs\r\n'
    s.qmp.ok('quit')
    assert s.term.proc.wait(30) == 0
    info = json.loads(s.qemu_img.ok('info', '--output=json', s.top))
    assert info['backing-filename'] == s.base


def test_hmp_jobs_concluded_job_is_listed(s):
    s.qmp.ok('block-stream', job_id='job1', device='drive0',
             auto_dismiss=False)
    s.wait('JOB_STATUS_CHANGE', id='job1', status='concluded')
    assert s.jobs_line() == ('job1', SIZE, SIZE, 0)
    assert s.qmp.hmp('info block-jobs') == (
        'Streaming device job1: Completed %d of %d bytes, speed limit 0 '
        'bytes/s\r\n' % (SIZE, SIZE))
    s.qmp.ok('block-job-dismiss', args={'id': 'job1'})
    assert s.run('info block-jobs') == ['No active jobs']

"""block-commit refusals: QEMU 7.2's checks, in its order, with its error
classes and texts (checked against qemu-storage-daemon 7.2), and nothing
changed afterwards: the same nodes with the same backing links and
modes, no job, the image files untouched.

The chain is commit_util's base <- s1 <- s2 <- top, opened with
--blockdev (lower nodes read-only), plus a lone image 'solo'.
"""
import os
import shutil
import time

import pytest

from commit_util import Chain, blockdev_args
from jobs_util import job_events, query_job, run_ok, start

DNF = 'DeviceNotFound'
GE = 'GenericError'

CASES = [
    ({'device': 'nosuch'}, DNF, "Device 'nosuch' not found"),
    ({'device': 'top-file'}, GE, 'Need a root block node'),
    ({'device': 's1', 'job-id': 'j'}, GE, 'Need a root block node'),
    ({'device': 'top', 'top-node': 's1', 'top': 'x'}, GE,
     "'top-node' and 'top' are mutually exclusive"),
    ({'device': 'top', 'top-node': 'nosuch'}, GE,
     "Cannot find device='' nor node-name='nosuch'"),
    ({'device': 'top', 'top-node': 'solo'}, GE,
     "'solo' is not in this backing file chain"),
    ({'device': 'top', 'top': 'nosuch'}, GE,
     'Top image file nosuch not found'),
    ({'device': 'top', 'top-node': 's1', 'base': 'x', 'base-node': 'y'}, GE,
     "'base-node' and 'base' are mutually exclusive"),
    ({'device': 'top', 'top-node': 's1', 'base-node': 'solo'}, GE,
     "'solo' is not in this backing file chain"),
    # base above top
    ({'device': 'top', 'top-node': 's1', 'base-node': 's2'}, GE,
     "'s2' is not in this backing file chain"),
    ({'device': 'top', 'top-node': 's1', 'base': 'nosuch'}, GE,
     "Can't find 'nosuch' in the backing chain"),
    ({'device': 'solo'}, GE, 'cannot commit an image into itself'),
    ({'device': 'top', 'top-node': 's1', 'base-node': 's1'}, GE,
     'cannot commit an image into itself'),
    ({'device': 'top', 'backing-file': 'x'}, GE,
     "'backing-file' specified, but 'top' is the active layer"),
    ({'device': 'top', 'top-node': 'top', 'backing-file': 'x'}, GE,
     "'backing-file' specified, but 'top' is the active layer"),
    # no drive: the default job id is '' (as QEMU)
    ({'device': 'top', 'top-node': 's1'}, GE, "Invalid job ID ''"),
    ({'device': 'top', 'top-node': 's1', 'job-id': '1bad'}, GE,
     "Invalid job ID '1bad'"),
    ({'device': 'top', 'top-node': 's1', 'job-id': 'j', 'speed': -1}, GE,
     "Parameter 'speed' expects a non-negative value"),
]


def solo_args(c):
    """'solo': a lone image; 'pair': an image over a copy of base."""
    path = os.path.join(c.dir, 'solo.qcow2')
    shutil.copy(c.path['base'], path)
    shutil.copy(c.path['base'], os.path.join(c.dir, 'pairbase.qcow2'))
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b',
            'pairbase.qcow2', '-F', 'qcow2', 'pair.qcow2'], cwd=c.dir)
    return ['--blockdev', 'driver=file,filename=%s,node-name=solo-file'
            % path,
            '--blockdev', 'driver=qcow2,file=solo-file,node-name=solo',
            '--blockdev', 'driver=file,filename=%s/pair.qcow2,'
            'node-name=pair-file' % c.dir,
            '--blockdev', 'driver=qcow2,file=pair-file,node-name=pair']


def state(qmp):
    """What must not change: every node's name, file, mode and backing."""
    nodes = sorted((n['node-name'], n['file'], n['ro'],
                    n['image'].get('backing-filename'))
                   for n in qmp.ok('query-named-block-nodes', flat=True))
    return nodes, qmp.ok('query-block-jobs'), qmp.ok('query-jobs')


@pytest.fixture
def served(daemon):
    c = Chain(daemon.dir)
    d, qmp = start(daemon, blockdev_args(c, export=False) + solo_args(c))
    return c, d, qmp


def test_commit_refusals(served):
    c, d, qmp = served
    before = state(qmp)
    for args, cls, desc in CASES:
        e = qmp.err('block-commit', args=args)
        assert (e['class'], e['desc']) == (cls, desc), args
        assert state(qmp) == before, args
    qmp.drain_events()
    d.stop()
    assert c.checksums() == c.sums


def test_commit_refused_while_nodes_busy(served):
    """A node from top down to base held by another job: QEMU's busy
    text; a second job with the same id: the id text."""
    c, d, qmp = served
    qmp.ok('block-commit', job_id='c0', device='top', top_node='s2',
           base_node='s1', speed=64 * 1024)
    before = state(qmp)[0]
    e = qmp.err('block-commit', job_id='c1', device='top', top_node='s1',
                base_node='base')
    assert e == {'class': GE, 'desc': "Node 'top' is busy: block device "
                 "is in use by block job: commit"}
    assert state(qmp)[0] == before
    assert [j['device'] for j in qmp.ok('query-block-jobs')] == ['c0']
    qmp.ok('block-job-cancel', device='c0')
    job_events(qmp, 'c0')
    # a stream into s2 (holding s2 and s1) refuses a commit of s1 too
    qmp.ok('block-stream', job_id='st', device='s2', base_node='base',
           speed=64 * 1024)
    e = qmp.err('block-commit', job_id='c2', device='top', top_node='s1',
                base_node='base')
    assert e['class'] == GE and e['desc'].startswith("Node '"), e
    assert e['desc'].endswith('is busy: block device is in use by block '
                              'job: stream'), e
    e = qmp.err('block-commit', job_id='st', device='solo')
    assert e['desc'] == 'cannot commit an image into itself'
    qmp.ok('block-job-cancel', device='st')
    job_events(qmp, 'st')
    assert query_job(qmp, 'st') is None


def test_commit_refused_duplicate_job_id(served):
    c, d, qmp = served
    qmp.ok('block-stream', job_id='dup', device='pair', speed=1)
    before = state(qmp)[0]
    e = qmp.err('block-commit', job_id='dup', device='top', top_node='s1')
    assert e == {'class': GE, 'desc': "Job ID 'dup' already in use"}
    assert state(qmp)[0] == before
    qmp.ok('block-job-cancel', device='dup')
    job_events(qmp, 'dup')


# ---- a base that cannot be reopened read-write

def unprivileged(daemon):
    """Run qblk as user nobody when the tests run as root (root may write
    a 0444 file); the daemon's directory must then be open to it."""
    if os.geteuid() != 0:
        return
    setpriv = shutil.which('setpriv')
    if not setpriv:
        pytest.skip('running as root without setpriv: a 0444 file would '
                    'still be writable')
    wrapper = daemon.path('qblk-nobody')
    with open(wrapper, 'w') as f:
        f.write('#!/bin/sh\nexec %s --reuid=65534 --regid=65534 '
                '--clear-groups -- %s "$@"\n' % (setpriv, daemon.binary))
    os.chmod(wrapper, 0o755)
    os.chmod(daemon.dir, 0o777)
    daemon.binary = wrapper


def test_commit_refused_read_only_base_file(daemon):
    c = Chain(daemon.dir)
    unprivileged(daemon)
    for p in c.path.values():
        os.chmod(p, 0o666)
    os.chmod(c.path['base'], 0o444)
    d, qmp = start(daemon, blockdev_args(c, export=False))
    before = state(qmp)
    e = qmp.err('block-commit', job_id='r0', device='top', top_node='s1',
                base_node='base')
    assert e['class'] == GE, e
    assert e['desc'] == "Could not reopen '%s': Permission denied" % (
        c.path['base']), e
    assert state(qmp) == before
    # the job was created, then ended (QEMU's order): no block-job event
    seq, _ = job_events(qmp, 'r0')
    assert seq == ['created', 'null'], seq
    # active commit into it: refused the same way
    e = qmp.err('block-commit', job_id='r1', device='top')
    assert e['desc'].startswith("Could not reopen '"), e
    assert state(qmp) == before
    time.sleep(0.1)
    d.stop()
    assert c.checksums() == c.sums

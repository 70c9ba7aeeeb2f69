"""block-stream requests that must be refused, with QEMU 7.2's error class
and text: unknown device or base, base not in the chain, exclusive
arguments, bottom outside the chain, a backing-file string without a
base, bad speed and job ids, nodes already held by a stream job (and
blockdev-del of them). Nothing changes when a request is refused.

The same requests go to qemu-storage-daemon (7.2) on the same images
when it is installed: its answers must be exactly ours.
"""
import os


from jobs_util import job_events, run_ok, start
from stream_util import MiB, Chain, chain_blockdev_args

E = 'GenericError'

# (arguments of block-stream, expected error description)
CASES = [
    ({'device': 'nosuch'}, "Cannot find device='nosuch' nor "
                           "node-name='nosuch'"),
    ({'device': 'top', 'job-id': 'j', 'base': '/nonexistent.img'},
     "Can't find '/nonexistent.img' in the backing chain"),
    ({'device': 'mid', 'job-id': 'j', 'base-node': 'top'},
     "Node 'top' is not a backing image of 'mid'"),
    ({'device': 'top', 'job-id': 'j', 'base-node': 'top'},
     "Node 'top' is not a backing image of 'top'"),
    ({'device': 'top', 'job-id': 'j', 'base-node': 'nosuch'},
     "Cannot find device='' nor node-name='nosuch'"),
    ({'device': 'top', 'base': 'x', 'base-node': 'base'},
     "'base' and 'base-node' cannot be specified at the same time"),
    ({'device': 'top', 'base': 'x', 'bottom': 'mid'},
     "'base' and 'bottom' cannot be specified at the same time"),
    ({'device': 'top', 'bottom': 'mid', 'base-node': 'base'},
     "'bottom' and 'base-node' cannot be specified at the same time"),
    ({'device': 'mid', 'job-id': 'j', 'bottom': 'top'},
     "Node 'top' is not in a chain starting from 'mid'"),
    ({'device': 'top', 'job-id': 'j', 'bottom': 'nosuch'},
     "Cannot find device='' nor node-name='nosuch'"),
    ({'device': 'top', 'job-id': 'j', 'backing-file': 'x'},
     "backing file specified, but streaming the entire chain"),
    ({'device': 'top', 'job-id': 'j', 'bottom': 'mid', 'backing-file': 'x'},
     "backing file specified, but streaming the entire chain"),
    ({'device': 'top', 'job-id': 'j', 'speed': -1},
     "Parameter 'speed' expects a non-negative value"),
    ({'device': 'top'}, "Invalid job ID ''"),
    ({'device': 'top', 'job-id': '1j'}, "Invalid job ID '1j'"),
    ({'device': 'top', 'job-id': 'j', 'on-error': 'sometimes'},
     "Parameter 'on-error' does not accept value 'sometimes'"),
]

# While job 'j1' streams the whole chain into top (slowly).
BUSY = "Node '%s' is busy: block device is in use by block job: stream"
BUSY_CASES = [
    ('block-stream', {'device': 'top', 'job-id': 'j2'}, BUSY % 'top'),
    ('block-stream', {'device': 'top', 'job-id': 'j2', 'base-node': 'mid'},
     BUSY % 'top'),
    ('block-stream', {'device': 'mid', 'job-id': 'j2'}, BUSY % 'mid'),
    ('block-stream', {'device': 'other', 'job-id': 'j1'},
     "Job ID 'j1' already in use"),
    ('blockdev-del', {'node-name': 'top'}, BUSY % 'top'),
    ('block-job-set-speed', {'device': 'nosuch', 'speed': 1}, None),
]


def make_env(factory):
    """The chain plus an unrelated image 'other'; returns (chain, args)."""
    c = Chain(factory.dir)
    other = os.path.join(factory.dir, 'other.qcow2')
    run_ok(['qemu-img', 'create', '-q', '-f', 'qcow2', other, str(MiB)])
    args = chain_blockdev_args(c) + [
        '--blockdev', 'driver=file,filename=%s,node-name=other-file' % other,
        '--blockdev', 'driver=qcow2,file=other-file,node-name=other']
    return c, args


def answers(factory):
    """Every refused request's error, in order, on one daemon."""
    c, args = make_env(factory)
    d, qmp = start(factory, args)
    out = []
    for a, _ in CASES:
        out.append(qmp.err('block-stream', args=a))
        assert qmp.ok('query-block-jobs') == []
    qmp.ok('block-stream', args={'device': 'top', 'job-id': 'j1',
                                 'speed': 64 * 1024})
    for cmd, a, _ in BUSY_CASES:
        out.append(qmp.err(cmd, args=a))
    assert [j['device'] for j in qmp.ok('query-block-jobs')] == ['j1']
    qmp.ok('block-job-cancel', device='j1')
    job_events(qmp, 'j1')
    d.stop()
    # Refusals and the cancelled job left the chain as it was.
    assert c.chain()[1][0] == c.mid
    c.assert_content()
    c.assert_lower_untouched()
    return out


def test_stream_refused(daemon):
    got = answers(daemon)
    want = [{'class': E, 'desc': t} for _, t in CASES]
    for cmd, a, t in BUSY_CASES:
        want.append({'class': 'DeviceNotActive',
                     'desc': "Block job 'nosuch' not found"} if t is None
                    else {'class': E, 'desc': t})
    assert got == want


def test_stream_refused_same_as_qemu(daemon, qsd):
    """qemu-storage-daemon 7.2 gives the very same answers."""
    assert answers(qsd) == answers(daemon)


def test_drive_busy_names_the_device(daemon):
    c = Chain(daemon.dir)
    d, qmp = start(daemon, ['-drive', 'file=%s,format=qcow2,id=drive0'
                            % c.top])
    qmp.ok('block-stream', device='drive0', speed=64 * 1024)
    e = qmp.err('block-stream', args={'device': 'drive0', 'job-id': 'x'})
    assert e == {'class': E, 'desc': BUSY % 'drive0'}
    # The blockers are checked before the (default) job id.
    e = qmp.err('block-stream', device='drive0')
    assert e == {'class': E, 'desc': BUSY % 'drive0'}
    qmp.ok('block-job-cancel', device='drive0')
    job_events(qmp, 'drive0')


def test_read_only_target_reopened(daemon):
    """A read-only target is not refused: as QEMU does, the job reopens it
    read-write and back to read-only when it ends (test_reopen.py covers
    a backing node and a file that cannot be reopened)."""
    c = Chain(daemon.dir)
    d, qmp = start(daemon, ['-drive', 'file=%s,format=qcow2,id=drive0,'
                            'readonly=on' % c.top])
    qmp.ok('block-stream', device='drive0')
    seen, data = job_events(qmp, 'drive0')
    assert 'BLOCK_JOB_COMPLETED' in seen and 'error' not in data, seen
    assert qmp.ok('query-block')[0]['inserted']['ro'] is True
    assert qmp.ok('query-block-jobs') == []

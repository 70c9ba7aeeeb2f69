"""Graph changes while a guest keeps requests in flight.

A snapshot (blockdev-snapshot-sync) and the start and pivot of an active
commit change the graph inside drained sections: new guest requests park
and resume on the new top. This runs both under a steady NBD load and
checks that nothing goes astray: 8 connections x 16 requests (mostly
reads, every byte checked against a model; tests/soak/nbdload.py) on an
overlay whose base is served by nbdkit with a 3 ms read delay, so reads
finish at staggered times. Every command must answer within the QMP
client's 30 s; afterwards every block reads back as the model says and
qemu-img check calls the image clean.

The drain itself (a snapshot does not wait for an idle moment that a
busy guest never gives) is pinned down by the unit test
/drain/append-under-steady-load; CI once saw block-commit unanswered for
over 30 s beside the soak test's 1024 requests in flight.
"""
import asyncio
import os
import shutil
import subprocess
import sys

import pytest

from daemon import is_qsd, qblk_daemon_path, short_tmpdir
from qblk_testlib import build_dir
from remote_servers import remote_servers  # noqa: F401 (fixture)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'soak'))
import soak  # noqa: E402
from nbdload import Load  # noqa: E402

MiB = 1024 * 1024
SIZE = 32 * MiB


def qblk_argv(d, base_url, nconn):
    sock = base_url.split('socket=')[1]
    return [
        os.path.join(build_dir(), 'qblk'),
        '--blockdev', 'driver=nbd,server.type=unix,server.path=%s,'
        'node-name=base,read-only=on' % sock,
        '--blockdev', 'driver=file,filename=%s,node-name=top-file'
        % os.path.join(d, 'top.qcow2'),
        '--blockdev', 'driver=qcow2,file=top-file,node-name=top,backing=base',
        '--nbd-server', 'addr.type=unix,addr.path=%s,max-connections=%d'
        % (os.path.join(d, 'nbd.sock'), nconn),
        '--export', 'type=nbd,id=exp0,node-name=top,name=top,writable=on',
        '--chardev', 'socket,id=qmp0,path=%s,server=on,wait=off'
        % os.path.join(d, 'qmp.sock'),
        '--monitor', 'chardev=qmp0']


async def scenario(d):
    qmp = soak.Qmp()
    await qmp.connect(os.path.join(d, 'qmp.sock'))
    load = Load(os.path.join(d, 'nbd.sock'), 'top', SIZE,
                os.path.join(d, 'base.raw'), nconn=8, depth=16, read_pct=85)
    try:
        await load.connect()
        load.start()
        await asyncio.sleep(1.0)
        await qmp.ok('blockdev-snapshot-sync', node_name='top',
                     snapshot_file=os.path.join(d, 'snap.qcow2'),
                     snapshot_node_name='snap', format='qcow2')
        await asyncio.sleep(1.0)
        await qmp.ok('block-commit', job_id='c0', device='snap',
                     base_node='top')
        await qmp.event('BLOCK_JOB_READY', 'c0', 120)
        await qmp.ok('block-job-complete', device='c0')
        ev = await qmp.event('BLOCK_JOB_COMPLETED', 'c0', 120)
        assert 'error' not in ev['data'], ev
        await asyncio.sleep(0.5)
    finally:
        await load.finish()
        load.close()
    graph = await qmp.ok('query-named-block-nodes', flat=True)
    await qmp.ok('quit')
    return load.stats, graph


def test_snapshot_and_active_commit_start_under_steady_load(remote_servers):
    if is_qsd(qblk_daemon_path()):
        pytest.skip('qblk-specific: the test starts build/qblk')
    for tool in ('qemu-img', 'nbdkit'):
        if not shutil.which(tool):
            pytest.skip('%s is not installed' % tool)
    d = short_tmpdir()
    try:
        with open(os.path.join(d, 'base.raw'), 'wb') as f:
            f.write(os.urandom(SIZE))
        url = remote_servers.nbdkit(
            'file', 'file=%s' % os.path.join(d, 'base.raw'),
            filters=('delay',), params=('rdelay=3ms',))
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                        os.path.join(d, 'top.qcow2'), str(SIZE)], check=True)
        err = open(os.path.join(d, 'qblk.stderr'), 'wb')
        proc = subprocess.Popen(qblk_argv(d, url, 8), stdout=err,
                                stderr=err, stdin=subprocess.DEVNULL)
        err.close()
        try:
            stats, graph = asyncio.run(
                asyncio.wait_for(scenario(d), 400))
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with open(os.path.join(d, 'qblk.stderr'), errors='replace') as f:
            log = f.read()
        assert stats.nerrors == 0, (stats.errors, log)
        assert stats.reads > 0 and stats.writes > 0
        # the active commit merged snap into top, which serves again
        assert 'snap' not in [n['node-name'] for n in graph]
        for img in ('top.qcow2',):
            r = subprocess.run(['qemu-img', 'check', '-q',
                                os.path.join(d, img)],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)

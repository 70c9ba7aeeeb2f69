"""A real Linux guest boots from qblk while qblk streams and commits its
disk (issue 9): the `make demo` story (scripts/demo_story.py) with a
64 MiB base, once with a local base and once with the base served by
nginx on loopback.

Asserted: the guest was up while the overlay was still small (it booted
before the stream), block-stream, the intermediate and the active
block-commit all completed without error, every checksum the guest
printed matches the images (reads against the base, the last write of
each offset against the final image), qemu-img check is clean and the
final image no longer has a backing file. Every wait in the story has a
timeout; the story kills its processes and removes its directory.
"""
import os
import shutil
import sys

import pytest

from qblk_testlib import MiB, build_dir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'scripts'))
from demo_story import Story, guest_tools  # noqa: E402


@pytest.fixture
def guest_ok():
    missing = guest_tools()
    if missing:
        pytest.skip('cannot boot a guest here: %s' % '; '.join(missing))
    if not shutil.which('qemu-img'):
        pytest.skip('oracle qemu-img is not installed')


@pytest.mark.parametrize('remote', [False, True], ids=['local', 'http'])
def test_real_guest_story(guest_ok, remote):
    if remote and not (shutil.which('nginx') or
                       os.access('/usr/sbin/nginx', os.X_OK)):
        pytest.skip('nginx is not installed (scripts/install-deps.sh)')
    said = []
    with Story(build_dir(), size_mib=64, remote=remote, say=said.append,
               stream_seconds=5, pause=2) as story:
        d = story.dir
        try:
            story.run_all()
        except Exception:
            # the story's own lines (report, failures) and the guest's
            # console make the failure readable in CI's output
            print('\n'.join(said))
            print('guest console:\n' + '\n'.join(
                line for _, line in story.guest.lines[-200:])
                if story.guest else 'no guest')
            raise
    assert not os.path.exists(d), 'the story left its directory behind'
    log = '\n'.join(said)
    assert story.sizes['overlay at boot'] < 4 * MiB, log
    assert story.sizes['overlay after stream'] >= 64 * MiB, log
    assert [j['name'] for j in story.jobs] == [
        'block-stream', 'block-commit (intermediate)',
        'block-commit (active)'], log
    reads = story.guest.markers('READ')
    writes = story.guest.markers('WRITE')
    assert reads and writes, log
    # The guest worked while the stream ran.
    stream = story.jobs[0]
    assert any(stream['start'] <= t <= stream['end'] for t, _ in writes), log
    assert story.failures == [], log
    assert story.verified >= len(reads) + 1, log
    assert 'no data lost' in log
    assert not story.procs, 'processes left running: %r' % story.procs

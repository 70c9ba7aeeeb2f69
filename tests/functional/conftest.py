"""Shared fixtures for qblk's functional tests.

The programs under test are $QBLK_BUILD/qblk-img and $QBLK_BUILD/qblk-io
(QBLK_BUILD defaults to <repo>/build). QEMU's own qemu-img and qemu-io are
the oracles: they create the reference images and judge qblk's output.
A missing oracle skips the tests that need it, with the reason.

QBLK_IMG / QBLK_IO may point at other binaries; setting them to qemu-img and
qemu-io runs the suite against QEMU itself, which checks the tests.

Every helper returns (rc, stdout, stderr). The qblk helpers also assert
that the program did not crash (no signal, no sanitizer report), since
that is never an acceptable answer, whatever the input. A program that
exits 77 means "not available here" and skips the test.
"""
import os
import shutil

import pytest

from qblk_testlib import Tool, build_dir, run as run_cmd


def _qblk_tool(name, envvar):
    path = os.environ.get(envvar) or os.path.join(build_dir(), name)
    if not os.path.isabs(path):
        path = shutil.which(path) or path
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail('%s not found at %s (build first, or set QBLK_BUILD)'
                    % (name, path))
    return Tool(path, checked=True)


def _oracle(name):
    path = shutil.which(name) or os.path.join('/usr/bin', name)
    if not os.access(path, os.X_OK):
        pytest.skip('oracle %s is not installed' % name)
    return Tool(path, checked=False)


@pytest.fixture(scope='session')
def qblk_img():
    return _qblk_tool('qblk-img', 'QBLK_IMG')


@pytest.fixture(scope='session')
def qblk_io():
    return _qblk_tool('qblk-io', 'QBLK_IO')


@pytest.fixture(scope='session')
def qemu_img():
    return _oracle('qemu-img')


@pytest.fixture(scope='session')
def qemu_io():
    return _oracle('qemu-io')


@pytest.fixture
def tmp(tmp_path):
    """A fresh directory for the test's images (removed by pytest)."""
    return tmp_path


@pytest.fixture(scope='session')
def run():
    """run(cmd) -> (rc, stdout, stderr) for any other program."""
    return run_cmd


# ---------------------------------------------------------------------------
# Daemon-stage fixtures: the qblk daemon, qemu-storage-daemon as the
# reference server, and the NBD client tools used as oracles.

from daemon import DaemonFactory, qblk_daemon_path  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Record each phase's report on the item, so that fixtures can tell
    at teardown whether the test failed (daemons are then killed)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, 'rep_' + rep.when, rep)


def _test_failed(request):
    rep = getattr(request.node, 'rep_call', None)
    return rep is None or rep.failed


@pytest.fixture
def daemon(request):
    """Factory for qblk daemons in a unique short temp dir (daemon.py):
    daemon.nbd(blockdev_args, export=NAME) -> started Daemon with .uri.
    At teardown every daemon still running must exit 0 on SIGTERM (when
    the test passed) or is killed (when it failed)."""
    path = qblk_daemon_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail('qblk not found at %s (build first, or set QBLK_BUILD)'
                    % path)
    f = DaemonFactory(path)
    yield f
    f.cleanup(_test_failed(request))


@pytest.fixture
def qsd(request):
    """Like `daemon`, but qemu-storage-daemon: the reference server."""
    path = shutil.which('qemu-storage-daemon')
    if not path:
        pytest.skip('oracle qemu-storage-daemon is not installed')
    f = DaemonFactory(path)
    yield f
    f.cleanup(_test_failed(request))


@pytest.fixture(scope='session')
def nbdinfo():
    return _oracle('nbdinfo')


@pytest.fixture(scope='session')
def nbdcopy():
    return _oracle('nbdcopy')


@pytest.fixture(scope='session')
def fio():
    return _oracle('fio')

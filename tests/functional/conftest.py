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

"""Helpers shared by the functional tests (imported by conftest.py and tests).

Importing it puts the repository's python/ (package qblkpy) on sys.path.

run() executes a program and returns (rc, stdout, stderr); Tool wraps one
program and, for qblk's programs, asserts that it did not crash. Model is
the expected guest-visible content of an image, built from the same
operations that are sent to qemu-io/qblk-io, so reads can be verified.
"""
import hashlib
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
# The Python helpers shared with scripts/ and bench/ (python/qblkpy): every
# test module imports this one first, directly or through daemon.py.
if os.path.join(REPO, 'python') not in sys.path:
    sys.path.insert(0, os.path.join(REPO, 'python'))
CRASH_MARKERS = ('Sanitizer', 'Segmentation', 'Aborted', 'core dumped',
                 'runtime error:', 'Assertion', 'assertion failed')
TIMEOUT = 120


def build_dir():
    return os.path.abspath(os.environ.get('QBLK_BUILD',
                                          os.path.join(REPO, 'build')))


def run(cmd, cwd=None, stdin=None):
    """Run @cmd (a list); return (rc, stdout, stderr) as text.

    A negative rc (killed by a signal) is reported as 128 + signal, the
    way a shell would."""
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    rc = p.returncode if p.returncode >= 0 else 128 - p.returncode
    return (rc, p.stdout.decode('utf-8', 'replace'),
            p.stderr.decode('utf-8', 'replace'))


def assert_no_crash(cmd, rc, out, err):
    """Fail if the program died of a signal or a sanitizer complained."""
    text = out + err
    where = ' '.join(str(c) for c in cmd)
    assert rc < 128, 'crashed (rc %d): %s\n%s' % (rc, where, text)
    for m in CRASH_MARKERS:
        assert m not in text, 'crash marker %r: %s\n%s' % (m, where, text)


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class Tool:
    """A callable wrapper around one program: tool(*args) -> (rc, out, err)."""

    def __init__(self, path, checked):
        self.path = path
        self.checked = checked

    def __call__(self, *args, cwd=None, stdin=None):
        cmd = [self.path] + [str(a) for a in args]
        rc, out, err = run(cmd, cwd=cwd, stdin=stdin)
        if self.checked:
            assert_no_crash(cmd, rc, out, err)
        if rc == 77:
            pytest.skip('%s exited 77 (not available): %s'
                        % (os.path.basename(self.path), err.strip()))
        return rc, out, err

    def ok(self, *args, cwd=None):
        """Run and require exit status 0; return stdout."""
        rc, out, err = self(*args, cwd=cwd)
        assert rc == 0, '%s %s -> rc %d\nstdout:\n%s\nstderr:\n%s' % (
            os.path.basename(self.path), ' '.join(map(str, args)), rc,
            out, err)
        return out


# ---------------------------------------------------------------------------
# A model of guest-visible content: the tests describe writes as
# (kind, offset, length, pattern) operations, apply them to a qemu-io or
# qblk-io command list and to this model, then verify reads against it.

class Model:
    """Guest-visible bytes of an image, built from uniform writes."""

    def __init__(self, size):
        self.size = size
        self.data = bytearray(size)
        self.cuts = {0, size}

    def apply(self, kind, off, length, pattern=0):
        if kind == 'write':
            self.data[off:off + length] = bytes([pattern]) * length
        elif kind in ('zero', 'discard'):
            self.data[off:off + length] = bytes(length)
        else:
            raise ValueError(kind)
        self.cuts.update((off, off + length))

    def runs(self):
        """Maximal (offset, length, byte) runs of identical bytes."""
        cuts = sorted(c for c in self.cuts if 0 <= c <= self.size)
        out = []
        for a, b in zip(cuts, cuts[1:]):
            if a == b:
                continue
            val = self.data[a]
            if out and out[-1][2] == val and out[-1][0] + out[-1][1] == a:
                out[-1] = (out[-1][0], out[-1][1] + b - a, val)
            else:
                out.append((a, b - a, val))
        return out

    def read_commands(self):
        """qemu-io commands that verify the whole image against the model."""
        return ['read -P 0x%x %d %d' % (v, o, n) for o, n, v in self.runs()]

    def write_raw(self, path):
        with open(path, 'wb') as f:
            f.write(self.data)


def io_command(kind, off, length, pattern=0):
    """The qemu-io command for one model operation."""
    if kind == 'write':
        return 'write -P 0x%x %d %d' % (pattern, off, length)
    if kind == 'zero':
        return 'write -z %d %d' % (off, length)
    if kind == 'discard':
        return 'discard %d %d' % (off, length)
    raise ValueError(kind)


def io_args(commands):
    """Turn a list of qemu-io commands into repeated -c arguments."""
    args = []
    for c in commands:
        args += ['-c', c]
    return args


def assert_reads_ok(tool, fmt, path, commands, extra=()):
    """Run read -P commands through @tool in one process and require that
    every one of them succeeded."""
    rc, out, err = tool('-f', fmt, *extra, *io_args(commands), path)
    assert rc == 0 and 'failed' not in out + err, (
        'reads failed on %s (rc %d)\n%s\n%s' % (path, rc, out[-3000:],
                                                err[-3000:]))


def json_of(text):
    return json.loads(text)


KiB = 1024
MiB = 1024 * 1024


def image_size_for(cs):
    """Virtual size used by the per-cluster-size tests: 16 clusters, at
    least 1 MiB, so the 2M case stays small."""
    return max(16 * cs, 1 * MiB)


def standard_ops(cs, size):
    """A workload exercising full, partial, unaligned and boundary-crossing
    writes, zero writes inside and outside data, an aligned discard, and a
    write that ends at the end of the image."""
    return [
        ('write', 0, cs, 0xa1),
        ('write', cs + 512, 1024, 0xb2),
        ('write', 3 * cs - 512, cs + 1024, 0xc3),
        ('write', 6 * cs, 4 * cs, 0xd4),
        ('zero', 7 * cs, cs, 0),
        ('zero', 8 * cs + 512, 1024, 0),
        ('discard', 9 * cs, cs, 0),
        ('write', 12 * cs + 100, 300, 0xe5),
        ('zero', 13 * cs, cs, 0),
        ('write', size - 4096, 4096, 0xf6),
    ]


def model_of(size, ops):
    m = Model(size)
    for op in ops:
        m.apply(*op)
    return m


def ops_commands(ops):
    return [io_command(*op) for op in ops]

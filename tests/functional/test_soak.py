"""The bounded load test of issue 8 (make check): the soak run of
tests/soak/soak.py for 20 s on a 128 MiB chain.

64 NBD connections x 16 requests in flight (70% reads, 30% writes, 1%
flushes, 4-64 KiB at random offsets, each connection in its own region
so that every read is checked against a model of the acknowledged
writes) on the top of base.raw <- mid.qcow2 <- top.qcow2, while
block-stream (mid into top) and then an active block-commit (top into
base, completed at READY) run and a second QMP monitor is polled with
query-block-jobs every 10 ms. Passing means: no NBD error or mismatch,
no QMP error reply, both jobs completed without error, the 65th
connection refused (max-connections=64), qblk's RSS flat after the
warm-up, qblk exits 0 on quit, qemu-img check clean, and base.raw (the
active image after the pivot) equal to the model. `make soak` runs the
same for 60 s on 512 MiB.
"""
import os
import shutil
import sys

import pytest

from daemon import is_qsd, qblk_daemon_path
from qblk_testlib import build_dir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'soak'))
import soak  # noqa: E402

SECONDS = float(os.environ.get('QBLK_SOAK_CHECK_SECONDS', 20))


def test_soak_bounded():
    if is_qsd(qblk_daemon_path()):
        pytest.skip('qblk-specific: the runner starts build/qblk')
    for tool in ('qemu-img', 'qemu-io'):
        if not shutil.which(tool):
            pytest.skip('oracle %s is not installed' % tool)
    res = soak.run_soak(build_dir(), SECONDS, nconn=64, depth=16,
                        size=128 * soak.MiB)
    print(soak.figures(res))
    # unix socket paths must be short: the runner's dir is in /tmp, kept
    # for inspection when the run failed
    assert not soak.problems(res), '\n'.join(
        soak.problems(res) + [soak.figures(res), 'files in ' + res['dir']])
    assert res['written_blocks'] > 0 and res['verified_blocks'] > 0


def test_soak_checker_detects_stale_and_misplaced_data(tmp_path):
    """The model check is not vacuous: a block holding an older write,
    another block's write, or changed original data is reported."""
    from nbdload import BLOCK, Region, Stats, block_data, verify_file
    orig = tmp_path / 'orig.raw'
    orig.write_bytes(os.urandom(4 * BLOCK))

    def check(blocks):
        img = tmp_path / 'img.raw'
        img.write_bytes(b''.join(blocks))
        st = Stats()
        with open(orig, 'rb') as f:
            reg = Region(0, 0, 4, f, st, None)
            reg.model[1] = 5
            verify_file(str(img), [reg], st)
        return st.nerrors

    o = orig.read_bytes()
    good = [o[:BLOCK], block_data(1, 5), o[2 * BLOCK:3 * BLOCK],
            o[3 * BLOCK:]]
    assert check(good) == 0
    assert check([good[0], block_data(1, 4)] + good[2:]) == 1
    assert check([good[0], block_data(2, 5)] + good[2:]) == 1
    assert check(good[:2] + [bytes(BLOCK), good[3]]) == 1

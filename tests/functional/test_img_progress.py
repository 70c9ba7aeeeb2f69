"""qblk-img -p: the progress line's bytes, with qemu-img as the oracle.

The line comes from util/job-progress.c (job_progress_img_line), the
formatter HMP's "info block-jobs" shares. With stdout redirected to a file,
both programs write "    (P/100%)\\r" updates starting at 0.00, reaching
100.00, then one newline; the intermediate steps depend on each command's
loop and are not compared.
"""
import re

import pytest

LINE = re.compile(r'^(    \((\d{1,3}\.\d\d)/100%\)\r)+')


def updates(out):
    """(percentages, text after the last update) of a -p output."""
    m = LINE.match(out)
    assert m, repr(out[:200])
    pcts = [float(p) for p in re.findall(r'\((\d+\.\d\d)/100%\)\r',
                                         m.group(0))]
    assert pcts[0] == 0.0 and pcts[-1] == 100.0
    assert pcts == sorted(pcts)
    return pcts, out[m.end():]


def make_chain(tmp, qemu_img, qemu_io, tag):
    """base.raw <- top.qcow2 with data in both; returns their paths."""
    base, top = str(tmp / f'base{tag}.raw'), str(tmp / f'top{tag}.qcow2')
    qemu_img.ok('create', '-f', 'raw', base, '16M')
    qemu_io.ok('-f', 'raw', '-c', 'write -P 0x11 0 3M', base)
    qemu_img.ok('create', '-f', 'qcow2', '-b', base, '-F', 'raw', top)
    qemu_io.ok('-f', 'qcow2', '-c', 'write -P 0x22 1M 2M', top)
    return base, top


@pytest.mark.parametrize('cmd', ['convert', 'compare', 'commit', 'rebase'])
def test_progress_matches_qemu_img(cmd, tmp, qblk_img, qemu_img, qemu_io):
    """Same line format, same start/end, same text after the updates."""
    tails = []
    for tag, img in (('q', qemu_img), ('b', qblk_img)):
        base, top = make_chain(tmp, qemu_img, qemu_io, tag)
        args = {
            'convert': ['convert', '-p', '-O', 'qcow2', top,
                        str(tmp / f'out{tag}.qcow2')],
            'compare': ['compare', '-p', top, top],
            'commit': ['commit', '-p', top],
            'rebase': ['rebase', '-p', '-b', '', top],
        }[cmd]
        rc, out, err = img(*args)
        assert rc == 0, err
        tails.append(updates(out)[1])
    assert tails[0] == tails[1]

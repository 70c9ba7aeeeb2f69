"""--trace enables trace events on stderr; --trace help lists them.

The log backend prints "PID@SECONDS.MICROSECONDS:name args" per event
(include/qemu/trace-control.h). Event names come from trace-events.
"""
import os
import re

from qblk_testlib import MiB

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LINE = re.compile(r'^\d+@\d+\.\d{6}:(?P<name>[a-z_][a-z0-9_]*)( |$)')


def declared_events():
    names = []
    with open(os.path.join(REPO, 'trace-events')) as f:
        for line in f:
            m = re.match(r'^([a-z_][a-z0-9_]*)\(', line)
            if m:
                names.append(m.group(1))
    return names


def traced(stderr):
    return [m.group('name') for m in map(LINE.match, stderr.splitlines())
            if m]


def test_trace_pattern_prints_matching_events(qblk_img, qemu_img, tmp):
    img = tmp / 'img.qcow2'
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, 1 * MiB)
    rc, out, err = qblk_img('--trace', 'bdrv_open*', 'info', img)
    assert rc == 0, out + err
    names = traced(err)
    assert names, 'no trace lines on stderr:\n' + err
    assert all(n.startswith('bdrv_open') for n in names), names
    assert 'img.qcow2' in out          # the command itself still works


def test_trace_disabled_by_default(qblk_img, qemu_img, tmp):
    img = tmp / 'img.qcow2'
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, 1 * MiB)
    rc, out, err = qblk_img('info', img)
    assert rc == 0 and not traced(err), err


def test_trace_help_lists_events(qblk_img):
    rc, out, err = qblk_img('--trace', 'help')
    assert rc == 0, out + err
    listed = set(out.split())
    declared = declared_events()
    assert declared, 'trace-events declares no events'
    missing = [n for n in declared if n not in listed]
    assert not missing, 'not listed by --trace help: %s' % missing


def test_trace_io_tool(qblk_io, qemu_img, tmp):
    img = tmp / 'img.qcow2'
    qemu_img.ok('create', '-q', '-f', 'qcow2', img, 1 * MiB)
    rc, out, err = qblk_io('--trace', 'bdrv_open*', '-f', 'qcow2',
                           '-c', 'read 0 4k', img)
    assert rc == 0, out + err
    assert 'bdrv_open_node' in traced(err), err

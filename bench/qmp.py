#!/usr/bin/python3
"""Benchmark qblk's QMP monitor side by side with qemu-storage-daemon's.

    bench/qmp.py --build BUILD_DIR [--pairs 3] [--count 2000] [--dir TMPDIR]

Both daemons open the same three-image qcow2 chain (--blockdev, one node
per image plus their file nodes) and a QMP socket. Each row runs the two
daemons alternately, qsd then qblk, --pairs times, a fresh daemon per run:

  connect + negotiate      connect, read the greeting, qmp_capabilities
                           (average of 50 connections), milliseconds
  query-named-block-nodes  --count sequential round trips (each request
                           waits for its reply), requests per second
  pipelined query-version  --count requests written at once, then every
                           reply read, requests per second

The ratio column is the median of the per-pair ratios, oriented so that
> 1 means qblk is better (qblk/qsd for rates, qsd/qblk for times).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

from benchlib import (Server, qmp_monitor_args, row, scratch_dir,
                      unlink_if_exists)


def make_chain(d):
    """base <- mid <- top, small qcow2 images made by qemu-img."""
    prev = None
    for name in ('base', 'mid', 'top'):
        path = os.path.join(d, name + '.qcow2')
        cmd = ['qemu-img', 'create', '-q', '-f', 'qcow2']
        if prev:
            cmd += ['-b', prev, '-F', 'qcow2']
        subprocess.run(cmd + [path, '64M'], check=True)
        prev = path
    return [os.path.join(d, n + '.qcow2') for n in ('base', 'mid', 'top')]


def daemon_argv(chain, sock):
    args = []
    backing = None
    for i, path in enumerate(chain):
        node = {'driver': 'qcow2', 'node-name': 'n%d' % i,
                'file': {'driver': 'file', 'filename': path}}
        node['backing'] = backing
        args += ['--blockdev', json.dumps(node)]
        backing = 'n%d' % i
    return args + qmp_monitor_args(sock)


class Session:
    """A negotiated QMP connection reading CRLF-terminated replies."""

    def __init__(self, sock):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(sock)
        self.f = self.s.makefile('rwb', buffering=0)
        self.rf = self.s.makefile('rb')
        self.rf.readline()                              # greeting
        self.call('{"execute": "qmp_capabilities"}')

    def call(self, line):
        self.f.write(line.encode() + b'\n')
        return self.reply()

    def reply(self):
        while True:
            msg = self.rf.readline()
            if not msg:
                raise EOFError('QMP connection closed')
            if b'"event"' not in msg:
                if b'"error"' in msg:
                    raise RuntimeError(msg.decode())
                return msg

    def close(self):
        self.rf.close()
        self.f.close()
        self.s.close()


def measure(binary, chain, d, count):
    """One run of every workload: {row name: value}."""
    sock = os.path.join(d, 'qmp.sock')
    unlink_if_exists(sock)
    with Server(binary, daemon_argv(chain, sock), sock, d):
        t = time.perf_counter()
        for _ in range(50):
            Session(sock).close()
        connect_ms = (time.perf_counter() - t) / 50 * 1000
        s = Session(sock)
        t = time.perf_counter()
        for _ in range(count):
            s.call('{"execute": "query-named-block-nodes"}')
        seq_rate = count / (time.perf_counter() - t)
        t = time.perf_counter()
        s.f.write(b'{"execute": "query-version"}\n' * count)
        for _ in range(count):
            s.reply()
        pipe_rate = count / (time.perf_counter() - t)
        s.close()
    return {'connect + negotiate (ms)': connect_ms,
            'query-named-block-nodes (req/s)': seq_rate,
            'pipelined query-version (req/s)': pipe_rate}


def run(build, pairs=3, count=2000, tmpdir=None):
    qblk = os.path.join(build, 'qblk')
    qsd = shutil.which('qemu-storage-daemon')
    if not qsd:
        print('bench/qmp.py: qemu-storage-daemon not found, skipped')
        return 0
    with scratch_dir('qblk-bench-qmp-', tmpdir) as d:
        chain = make_chain(d)
        results = {'qsd': [], 'qblk': []}
        measure(qsd, chain, d, count // 4)               # warm-up
        measure(qblk, chain, d, count // 4)
        for _ in range(pairs):
            results['qsd'].append(measure(qsd, chain, d, count))
            results['qblk'].append(measure(qblk, chain, d, count))
    print('\n%-34s %12s %12s %10s' % ('QMP workload', 'qemu', 'qblk',
                                      'ratio'))
    for name in results['qsd'][0]:
        print('%-34s %12.2f %12.2f %10.2f' % row(
            name, [r[name] for r in results['qsd']],
            [r[name] for r in results['qblk']], not name.endswith('(ms)')))
    print('%d pairs, qemu-storage-daemon and qblk alternating; ratio > 1 '
          'means qblk is better.' % pairs)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--build', default='build')
    ap.add_argument('--pairs', type=int, default=3)
    ap.add_argument('--count', type=int, default=2000)
    ap.add_argument('--dir')
    args = ap.parse_args()
    return run(os.path.abspath(args.build), args.pairs, args.count, args.dir)


if __name__ == '__main__':
    sys.exit(main())

"""The human monitor (HMP): on a real pseudo-terminal, on a unix socket,
on piped stdio, and through QMP's human-monitor-command.

Output is checked line by line against QEMU 7.2's formats (greeting,
"(qblk) " prompt, "info block" lines, "Error: <desc>", parse errors).
The expected command list comes from the .hx files themselves, so "help"
must show every declared command.
"""
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from daemon import qblk_daemon_path, require_qblk
from qblk_testlib import REPO
from qmp_client import QMPClient, start_qblk_with_qmp

TIMEOUT = 10
GREETING_RE = re.compile(
    rb"qblk [0-9][^ ]* monitor - type 'help' for more information\r\n")
PROMPT = b'(qblk) '
LEFT, RIGHT, UP, DOWN = b'\x1b[D', b'\x1b[C', b'\x1b[A', b'\x1b[B'


def hx_names(path):
    """The command names (first alternative) declared in an .hx file."""
    names = []
    with open(os.path.join(REPO, path)) as f:
        for line in f:
            m = re.match(r'\s*\.name\s*=\s*"([^"|]*)', line)
            if m:
                names.append(m.group(1))
    assert names, path
    return names


def screen(raw):
    """Apply the VT100 editing in raw (cursor left/right, erase to end
    of line, CR) to get the text a terminal would show, line by line."""
    lines, cur, col = [], [], 0
    i = 0
    while i < len(raw):
        c = raw[i:i + 1]
        if c == b'\x1b':
            m = re.match(rb'\x1b\[(\d*)([A-Za-z~])', raw[i:])
            assert m, 'bad escape at %r' % raw[i:i + 10]
            n = int(m.group(1) or 1)
            if m.group(2) == b'D':
                col = max(0, col - n)
            elif m.group(2) == b'C':
                col = min(len(cur), col + n)
            elif m.group(2) == b'K':
                del cur[col:]
            i += len(m.group(0))
            continue
        if c == b'\r':
            col = 0
        elif c == b'\n':
            lines.append(b''.join(cur).decode())
            cur, col = [], 0
        elif c == b'\x08':
            col = max(0, col - 1)
        else:
            if col < len(cur):
                cur[col] = c
            else:
                cur.append(c)
            col += 1
        i += 1
    lines.append(b''.join(cur).decode())
    return lines


class Terminal:
    """qblk with its stdin/stdout on the slave side of a pty."""

    def __init__(self, args, workdir):
        master, slave = pty.openpty()
        self.errpath = os.path.join(workdir, 'pty-daemon.stderr')
        with open(self.errpath, 'wb') as err:
            self.proc = subprocess.Popen(
                [qblk_daemon_path()] + args, stdin=slave, stdout=slave,
                stderr=err, cwd=workdir, start_new_session=True)
        os.close(slave)
        self.fd = master
        self.buf = b''

    def read_until(self, marker, timeout=TIMEOUT):
        """Bytes up to and including the first marker; fail on timeout."""
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('no %r within %ss; got %r\n%s'
                                     % (marker, timeout, self.buf,
                                        open(self.errpath).read()))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    self.buf += os.read(self.fd, 65536)
                except OSError:
                    break
        head, _, self.buf = self.buf.partition(marker)
        # The terminal's output processing (ONLCR, left on by the stdio
        # chardev as in QEMU) turns the monitor's CR LF into CR CR LF.
        return (head + marker).replace(b'\r\r\n', b'\r\n')

    def type(self, data):
        os.write(self.fd, data)

    def command(self, data):
        """Type data (ending in CR) and return the screen lines up to the
        next prompt: the edited command line first, then the output."""
        self.type(data)
        out = self.read_until(PROMPT)
        lines = screen(out[:-len(PROMPT)])
        assert lines[-1] == '', lines    # output ends with a line end
        return lines[:-1]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.fd)


@pytest.fixture
def term(daemon):
    require_qblk('HMP on a pseudo-terminal')
    t = Terminal(['--chardev', 'stdio,id=hmp0',
                  '--monitor', 'hmp0,mode=readline'], daemon.dir)
    t.greeting = t.read_until(PROMPT)
    yield t
    t.close()


def test_pty_greeting_and_prompt(term):
    assert GREETING_RE.fullmatch(term.greeting[:-len(PROMPT)])
    assert term.greeting.endswith(b'\r\n(qblk) ')


def test_pty_echo_and_answer(term):
    term.type(b'info version\r')
    out = term.read_until(PROMPT)
    # the typed line is echoed verbatim, then the answer
    assert out.startswith(b'info version\r\n'), out
    assert re.fullmatch(rb'info version\r\n7\.2\.0 \(qblk [^)]+\)\r\n'
                        rb'\(qblk\) ', out), out


def test_pty_line_editing(term):
    # cursor movement and insertion in the middle
    lines = term.command(b'info vers' + LEFT * 4 + b'X' + RIGHT * 4 +
                         b'ion' + b'\x01' + b'\x05' + b'\r')
    assert lines[0] == 'info Xversion'
    assert lines[1] == "unknown command: 'info Xversion'"
    # backspace (DEL and ^H), home/end keys, delete key
    lines = term.command(b'infx\x7fo stata\x08us' + b'\x1b[1~' + b'\x1b[3~' +
                         b'i' + b'\x1b[4~' + b'\r')
    assert lines[:2] == ['info status', 'VM status: running']
    # ^U kills the line, ^K the rest of it, unknown sequences are ignored
    lines = term.command(b'garbage\x15info status' + b'\x1b[15~' +
                         b'\x1bOP' + b' junk' + LEFT * 5 + b'\x0b\r')
    assert lines[:2] == ['info status', 'VM status: running']
    # CR LF ends exactly one line
    lines = term.command(b'info status\r\n')
    assert lines[:2] == ['info status', 'VM status: running']
    assert term.command(b'\n') == ['']


def test_pty_history_and_completion(term):
    term.command(b'info version\r')
    term.command(b'info status\r')
    lines = term.command(UP + UP + b'\r')
    assert lines[0] == 'info version'
    assert re.fullmatch(r'7\.2\.0 \(qblk .*\)', lines[1])
    # history: version, status, version (newest last)
    lines = term.command(UP * 3 + DOWN + b'\r')
    assert lines[:2] == ['info status', 'VM status: running']
    # tab completes command and "info" subcommand names
    lines = term.command(b'inf\tsta\t\r')
    assert lines[:2] == ['info status ', 'VM status: running']
    term.type(b'info \t')
    listing = term.read_until(PROMPT)
    for name in hx_names('hmp-commands-info.hx'):
        assert name.encode() in listing
    lines = term.command(b'\x15\r')
    assert lines[0] == ''
    term.type(b'\t')              # on an empty line: every command
    listing = term.read_until(PROMPT)
    for name in hx_names('hmp-commands.hx'):
        assert name.encode() in listing
    assert term.command(b'\r') == ['']


def test_pty_help_lists_every_command(term):
    lines = term.command(b'help\r')
    assert lines[0] == 'help'
    shown = [ln.split(' ')[0].split('|')[0] for ln in lines[1:]]
    assert shown == sorted(hx_names('hmp-commands.hx'))
    for ln in lines[1:]:
        assert ' -- ' in ln
    lines = term.command(b'help info\r')
    assert [ln.split(' ')[1] for ln in lines[1:]] == \
        sorted(hx_names('hmp-commands-info.hx'))
    assert lines[1:] == term.command(b'info\r')[1:]
    lines = term.command(b'help snapshot_blkdev\r')
    assert lines[1:] == [
        'snapshot_blkdev [-n] device [new-image-file] [format] -- put a new '
        'overlay image on top of a drive; -n reuses an existing image file']
    lines = term.command(b'help nosuch\r')
    assert lines[1:] == ["unknown command: 'nosuch'"]


def test_pty_unknown_command_and_quit(term):
    lines = term.command(b'foo bar\r')
    assert lines[1:] == ["unknown command: 'foo'"]
    lines = term.command(b'info nosuch\r')
    assert lines[1:] == ["unknown command: 'info nosuch'"]
    term.type(b'quit\r')
    assert term.proc.wait(TIMEOUT) == 0


# ---------------------------------------------------------------------------
# HMP on a unix socket and on piped stdio

def read_socket_until(sock, marker, buf=b''):
    deadline = time.monotonic() + TIMEOUT
    while marker not in buf:
        r, _, _ = select.select([sock], [], [], max(0, deadline -
                                                    time.monotonic()))
        assert r, 'no %r; got %r' % (marker, buf)
        chunk = sock.recv(65536)
        assert chunk, 'connection closed; got %r' % buf
        buf += chunk
    return buf


def test_socket_monitor(daemon):
    import socket
    path = daemon.path('hmp.sock')
    d = daemon.start(['-monitor', 'unix:%s,server=on,wait=off' % path],
                     ('unix', path))
    for _ in range(2):      # a new client gets a fresh greeting
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        out = read_socket_until(s, PROMPT)
        assert GREETING_RE.fullmatch(out[:-len(PROMPT)])
        s.sendall(b'info status\r\n')
        out = read_socket_until(s, PROMPT)
        assert out == b'info status\r\nVM status: running\r\n(qblk) '
        s.sendall(b'snapshot_blkdev\n')
        out = read_socket_until(s, PROMPT)
        assert out == (b'snapshot_blkdev\r\nsnapshot_blkdev: block device '
                       b'name expected\r\nTry "help snapshot_blkdev" for '
                       b'more information\r\n(qblk) ')
        s.sendall(b'info sta')      # a partial line, then hang up
        s.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    read_socket_until(s, PROMPT)
    s.sendall(b'q\r')
    assert d.proc.wait(TIMEOUT) == 0
    d.returncode = 0


def test_piped_stdio_no_echo(daemon):
    require_qblk('HMP on piped stdio')
    p = subprocess.run([qblk_daemon_path(), '-monitor', 'stdio'],
                       input=b'info status\ninfo nosuch\r\nquit\n',
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=daemon.dir, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split(b'\r\n')
    assert GREETING_RE.fullmatch(lines[0] + b'\r\n')
    assert lines[1:] == [b'(qblk) VM status: running',
                         b"(qblk) unknown command: 'info nosuch'",
                         b'(qblk) ']


# ---------------------------------------------------------------------------
# human-monitor-command

@pytest.fixture
def chain(daemon, qemu_img):
    """base <- mid <- top qcow2 images made by qemu-img."""
    paths = {n: daemon.path(n + '.qcow2') for n in ('base', 'mid', 'top')}
    qemu_img('create', '-q', '-f', 'qcow2', paths['base'], '16M')
    qemu_img('create', '-q', '-f', 'qcow2', '-b', paths['base'], '-F',
             'qcow2', paths['mid'])
    qemu_img('create', '-q', '-f', 'qcow2', '-b', paths['mid'], '-F',
             'qcow2', paths['top'])
    return paths


@pytest.fixture
def qmp(daemon, chain):
    require_qblk('-drive chains and HMP')
    raw = daemon.path('plain.raw')
    with open(raw, 'wb') as f:
        f.truncate(1 << 20)
    d, client = start_qblk_with_qmp(daemon, [
        '-drive', 'file=%s,format=qcow2,id=drive0' % chain['top'],
        '-drive', 'file=%s,format=raw,id=plain,readonly=on,cache=none'
        % raw])
    client.raw = raw
    client.daemon = d
    yield client
    client.close()


def hmp_lines(qmp, line):
    out = qmp.hmp(line)
    assert out == '' or out.endswith('\r\n'), repr(out)
    assert '\n' not in out.replace('\r\n', ''), repr(out)
    return out.split('\r\n')[:-1]


def test_hmc_info_block_chain(qmp, chain):
    node = {b['device']: b['inserted'].get('node-name')
            for b in qmp.ok('query-block')}
    assert hmp_lines(qmp, 'info block') == [
        'drive0 (%s): %s (qcow2)' % (node['drive0'], chain['top']),
        '    Cache mode:       writeback',
        '    Backing file:     %s (chain depth: 2)' % chain['mid'],
        '',
        'plain (%s): %s (raw, read-only)' % (node['plain'], qmp.raw),
        '    Cache mode:       writeback, direct',
    ]
    assert hmp_lines(qmp, 'info block plain') == [
        'plain (%s): %s (raw, read-only)' % (node['plain'], qmp.raw),
        '    Cache mode:       writeback, direct',
    ]
    assert hmp_lines(qmp, 'info block nosuch') == []
    verbose = hmp_lines(qmp, 'info block -v drive0')
    assert verbose[3:5] == ['', 'Images:']
    images = [ln for ln in verbose if ln.startswith('image: ')]
    assert images == ['image: ' + chain[n] for n in ('top', 'mid', 'base')]
    assert 'virtual size: 16 MiB (16777216 bytes)' in verbose
    assert 'backing file format: qcow2' in verbose
    nodes = hmp_lines(qmp, 'info block -n')
    names = [n['node-name'] for n in
             qmp.ok('query-named-block-nodes', flat=True)]
    heads = [ln.split(':')[0] for ln in nodes
             if ln and not ln.startswith(' ')]
    assert heads == names
    assert hmp_lines(qmp, 'info block -n %s' % node['drive0'])[0] == \
        '%s: %s (qcow2)' % (node['drive0'], chain['top'])


def test_hmc_snapshot_blkdev(qmp, chain, daemon, qemu_img):
    new = daemon.path('snap.qcow2')
    assert qmp.hmp('snapshot_blkdev drive0 %s' % new) == ''
    lines = hmp_lines(qmp, 'info block drive0')
    assert lines[0].endswith(': %s (qcow2)' % new)
    assert lines[2] == '    Backing file:     %s (chain depth: 3)' \
        % chain['top']
    rc, out, err = qemu_img('info', '-U', new)
    assert 'backing file: %s' % chain['top'] in out
    # -n: an existing image, format given explicitly
    reuse = daemon.path('reuse.qcow2')
    qemu_img('create', '-q', '-f', 'qcow2', '-b', new, '-F', 'qcow2', reuse)
    assert qmp.hmp('snapshot_blkdev -n drive0 %s qcow2' % reuse) == ''
    assert hmp_lines(qmp, 'info block drive0')[2] == \
        '    Backing file:     %s (chain depth: 4)' % new


def test_hmc_errors(qmp, daemon):
    assert qmp.hmp('snapshot_blkdev drive0') == \
        "Error: Parameter 'snapshot-file' is missing\r\n"
    out = qmp.hmp('snapshot_blkdev nosuch %s' % daemon.path('x.qcow2'))
    assert out.startswith('Error: ') and 'nosuch' in out
    assert out.count('\r\n') == 1 and out.endswith('\r\n')
    assert qmp.hmp('snapshot_blkdev') == (
        'snapshot_blkdev: block device name expected\r\n'
        'Try "help snapshot_blkdev" for more information\r\n')
    assert qmp.hmp('info block -x') == (
        'block: unsupported option -x\r\n'
        'Try "help info block" for more information\r\n')
    assert qmp.hmp('info status extra') == (
        'status: extraneous characters at the end of line\r\n'
        'Try "help info status" for more information\r\n')
    assert qmp.hmp('snapshot_blkdev "drive0 /x') == (
        'unterminated string\r\n'
        'snapshot_blkdev: block device name expected\r\n'
        'Try "help snapshot_blkdev" for more information\r\n')
    assert qmp.hmp('nosuch') == "unknown command: 'nosuch'\r\n"
    assert qmp.hmp('') == ''
    e = qmp.err('human-monitor-command', command_line='info status',
                cpu_index=0)
    assert e == {'class': 'GenericError',
                 'desc': "Parameter 'cpu-index' expects a CPU number"}
    e = qmp.err('human-monitor-command')
    assert e == {'class': 'GenericError',
                 'desc': "Parameter 'command-line' is missing"}


def test_hmc_status_version_help(qmp):
    assert qmp.hmp('info status') == 'VM status: running\r\n'
    v = qmp.ok('query-version')
    assert qmp.hmp('info version') == '%d.%d.%d (%s)\r\n' % (
        v['qemu']['major'], v['qemu']['minor'], v['qemu']['micro'],
        v['package'])
    assert qmp.hmp('help info status') == \
        'info status  -- show the run state\r\n'
    assert qmp.hmp('? quit') == 'quit|q  -- shut the daemon down\r\n'


def test_hmc_quit_exits_zero(qmp):
    assert qmp.hmp('quit') == ''
    ev = qmp.event_wait('SHUTDOWN')
    assert ev['data'] == {'guest': False, 'reason': 'host-qmp-quit'}
    assert qmp.daemon.proc.wait(TIMEOUT) == 0
    qmp.daemon.returncode = 0

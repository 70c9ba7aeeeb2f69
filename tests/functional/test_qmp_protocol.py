"""The QMP wire protocol of qblk's monitor (QEMU 7.2's behaviour).

Greeting, the capabilities-negotiation gate, id echo, request-level
errors, argument errors, CRLF framing, events on several monitors, the
session life cycle (reconnect, disconnect with work queued), parser
resynchronisation after a 0xFF byte, pretty output, and the legacy -qmp
spellings (unix socket, stdio).
"""
import json
import os
import select
import signal
import socket
import subprocess
import time

import pytest

from daemon import require_qblk, qblk_daemon_path
from qmp_client import QMPClient, start_qblk_with_qmp, wait_for_path_gone

NOT_NEGOTIATED = "Expecting capabilities negotiation with 'qmp_capabilities'"


def chardev_monitor(env, name, extra=''):
    """--chardev/--monitor arguments for one more QMP monitor; returns
    (args, socket path)."""
    sock = env.path(name + '.sock')
    return (['--chardev', 'socket,id=%s,path=%s,server=on,wait=off'
             % (name, sock),
             '--monitor', 'chardev=%s%s' % (name, extra)], sock)


def raw_reply(qmp, data):
    """Send raw bytes and return the next message."""
    qmp.send_raw(data)
    return qmp.recv()


@pytest.fixture
def qblk_qmp(daemon):
    require_qblk('QMP monitor details')
    d, qmp = start_qblk_with_qmp(daemon, [])
    yield d, qmp
    qmp.close()


def test_greeting_shape(daemon):
    require_qblk('greeting content')
    args, sock = chardev_monitor(daemon, 'm')
    daemon.start(args, ('unix', sock))
    with QMPClient(sock) as qmp:
        g = qmp.greeting['QMP']
        assert set(g) == {'version', 'capabilities'}
        assert g['version']['qemu'] == {'major': 7, 'minor': 2, 'micro': 0}
        assert g['version']['package'].startswith('qblk ')
        assert g['capabilities'] == []
        # The greeting's version is query-version's value.
        qmp.negotiate()
        assert qmp.ok('query-version') == g['version']


def test_negotiation_gate(daemon):
    require_qblk('query-status exists')
    args, sock = chardev_monitor(daemon, 'm')
    daemon.start(args, ('unix', sock))
    with QMPClient(sock) as qmp:
        for name in ('query-status', 'no-such-command'):
            e = qmp.err(name, id=1)
            assert e == {'class': 'CommandNotFound', 'desc': NOT_NEGOTIATED}
        assert qmp.ok('qmp_capabilities') == {}
        assert qmp.ok('query-status')['status'] == 'running'
        e = qmp.err('qmp_capabilities')
        assert e == {'class': 'CommandNotFound',
                     'desc': 'Capabilities negotiation is already complete, '
                             'command ignored'}


def test_capability_not_offered_keeps_negotiation_mode(daemon):
    args, sock = chardev_monitor(daemon, 'm')
    daemon.start(args, ('unix', sock))
    with QMPClient(sock) as qmp:
        e = qmp.err('qmp_capabilities', enable=['oob'])
        assert e == {'class': 'GenericError',
                     'desc': "Capability 'oob' not available"}
        e = qmp.err('qmp_capabilities', enable=['bogus'])
        assert e['class'] == 'GenericError'
        assert "does not accept value 'bogus'" in e['desc'], e
        e = qmp.err('qmp_capabilities', enable='oob')
        assert e['class'] == 'GenericError'
        assert e['desc'].startswith("Invalid parameter type for 'enable'"), e
        assert qmp.err('query-version')['desc'] == NOT_NEGOTIATED
        qmp.negotiate()


@pytest.mark.parametrize('ident', ['abc', 42, -1, 1.5, [1, 'two', {'x': 3}],
                                   {'nested': [None, True]}, None,
                                   'caf\u00e9'])
def test_id_echoed_verbatim(qblk_qmp, ident):
    _, qmp = qblk_qmp
    msg = {'execute': 'query-version', 'id': ident}
    r = raw_reply(qmp, json.dumps(msg))
    assert r['id'] == ident and 'return' in r
    msg = {'execute': 'no-such', 'id': ident}
    r = raw_reply(qmp, json.dumps(msg))
    assert r['id'] == ident and r['error']['class'] == 'CommandNotFound'


# (raw request, desc, id echoed?)
REQUEST_ERRORS = [
    ('[1, 2]', 'QMP input must be a JSON object', False),
    ('"text"', 'QMP input must be a JSON object', False),
    ('{"id": 5}', "QMP input lacks member 'execute'", True),
    ('{"execute": 1, "id": 5}', "QMP input member 'execute' must be a string",
     True),
    ('{"execute": "query-version", "bogus": 1, "id": 5}',
     "QMP input member 'bogus' is unexpected", True),
    ('{"execute": "query-version", "arguments": [], "id": 5}',
     "QMP input member 'arguments' must be an object", True),
    ('{"exec-oob": "query-version", "id": 5}',
     "QMP input member 'exec-oob' is unexpected", True),
    ('{"execute": "query-version", "arguments": 3}',
     "QMP input member 'arguments' must be an object", False),
    ('{}', "QMP input lacks member 'execute'", False),
]


@pytest.mark.parametrize('raw,desc,with_id', REQUEST_ERRORS,
                         ids=[r[0][:30] for r in REQUEST_ERRORS])
def test_request_level_errors(qblk_qmp, raw, desc, with_id):
    _, qmp = qblk_qmp
    r = raw_reply(qmp, raw)
    assert r['error'] == {'class': 'GenericError', 'desc': desc}
    if with_id:
        assert r['id'] == 5
    else:
        assert 'id' not in r
    # the session keeps working
    assert 'qemu' in qmp.ok('query-version')


def test_parse_error_has_no_id_and_session_survives(qblk_qmp):
    _, qmp = qblk_qmp
    r = raw_reply(qmp, '}')
    assert set(r) == {'error'}
    assert r['error']['class'] == 'GenericError'
    assert r['error']['desc'].startswith('JSON parse error'), r
    assert 'qemu' in qmp.ok('query-version', id='after')


def test_unknown_command(qblk_qmp):
    _, qmp = qblk_qmp
    r = qmp.cmd('no-such-command', id='u')
    assert r == {'id': 'u', 'error': {
        'class': 'CommandNotFound',
        'desc': 'The command no-such-command has not been found'}}


def test_argument_errors_on_real_commands(qblk_qmp):
    _, qmp = qblk_qmp
    e = qmp.err('query-commands', args={'a': 1})
    assert e == {'class': 'GenericError', 'desc': "Parameter 'a' is unexpected"}
    # bad arguments to qmp_capabilities are checked before its handler
    e = qmp.err('qmp_capabilities', enable=[7])
    assert e['class'] == 'GenericError'
    assert 'expected: string' in e['desc'] or 'enable' in e['desc'], e


def test_every_line_ends_in_crlf_and_replies_keep_order(qblk_qmp):
    _, qmp = qblk_qmp
    # 40 requests in one write: more than the per-monitor queue holds, so
    # the monitor stops reading for a while; every one is answered, in order
    qmp.send_raw(''.join(json.dumps({'execute': 'query-version', 'id': i})
                         for i in range(40)))
    for i in range(40):
        line = qmp.recv_line()
        assert line.endswith(b'\r\n') and line.count(b'\n') == 1
        assert json.loads(line)['id'] == i


def test_oxff_resets_the_parser(qblk_qmp):
    _, qmp = qblk_qmp
    qmp.send_raw(b'{"execute": "query-ver\xff')
    r = qmp.recv()
    assert r['error']['class'] == 'GenericError'
    assert r['error']['desc'].startswith('JSON parse error'), r
    assert 'id' not in r
    qmp.send_raw(b'{"execute": "query-version", "id": 2}')
    while True:     # one error per bad token, then the reply
        r = qmp.recv()
        if 'return' in r:
            break
        assert r['error']['desc'].startswith('JSON parse error'), r
    assert r['id'] == 2


def test_events_reach_every_negotiated_monitor(daemon):
    a_args, a_sock = chardev_monitor(daemon, 'a')
    b_args, b_sock = chardev_monitor(daemon, 'b')
    c_args, c_sock = chardev_monitor(daemon, 'c')
    d = daemon.start(a_args + b_args + c_args, ('unix', c_sock))
    a, b, c = QMPClient(a_sock), QMPClient(b_sock), QMPClient(c_sock)
    a.negotiate()
    b.negotiate()           # c stays in negotiation mode: no events
    before = time.time()
    a.request('quit', id='q')
    ev = a.recv()
    assert ev['event'] == 'SHUTDOWN', 'event must precede the reply'
    assert a.recv() == {'return': {}, 'id': 'q'}
    ev_b = b.event_wait('SHUTDOWN')
    for e in (ev, ev_b):
        assert e['data'] == {'guest': False, 'reason': 'host-qmp-quit'}
        ts = e['timestamp']
        assert set(ts) == {'seconds', 'microseconds'}
        assert 0 <= ts['microseconds'] < 1000000
        assert abs(ts['seconds'] - before) < 60
    assert d.wait_exit() == 0
    with pytest.raises(EOFError):
        c.recv()
    for q in (a, b, c):
        q.close()
    assert wait_for_path_gone(a_sock)


def test_signal_emits_shutdown_event(qblk_qmp):
    d, qmp = qblk_qmp
    d.proc.send_signal(signal.SIGTERM)
    ev = qmp.event_wait('SHUTDOWN')
    assert ev['data'] == {'guest': False, 'reason': 'host-signal'}
    assert d.wait_exit() == 0


def test_reconnect_gets_new_greeting_and_must_negotiate(qblk_qmp):
    d, qmp = qblk_qmp
    qmp.close()
    with QMPClient(d.qmp_sock) as again:
        assert 'QMP' in again.greeting
        assert again.err('query-version')['desc'] == NOT_NEGOTIATED
        again.negotiate()
        assert 'qemu' in again.ok('query-version')


def test_disconnect_with_work_queued_disturbs_nobody(daemon):
    a_args, a_sock = chardev_monitor(daemon, 'a')
    b_args, b_sock = chardev_monitor(daemon, 'b')
    d = daemon.start(a_args + b_args, ('unix', b_sock))
    b = QMPClient(b_sock)
    b.negotiate()
    for _ in range(3):
        a = QMPClient(a_sock)
        a.negotiate()
        # big replies, never read: the client leaves mid-stream
        a.send_raw(''.join(json.dumps({'execute': 'query-commands',
                                       'id': i}) for i in range(300)))
        a.close()
        assert 'qemu' in b.ok('query-version', id='b')
    with QMPClient(a_sock) as a:
        assert a.err('query-version')['desc'] == NOT_NEGOTIATED
        a.negotiate()
        assert a.ok('query-version', id='x')['qemu']['major'] == 7
    b.close()
    d.assert_alive()


def read_pretty_message(sock, buf):
    """Read lines from sock until they form one JSON value; return
    (value, its raw text, rest of buf)."""
    text = b''
    while True:
        while b'\n' not in buf:
            r, _, _ = select.select([sock], [], [], 10)
            assert r, 'no pretty QMP output'
            chunk = sock.recv(65536)
            assert chunk, 'connection closed'
            buf += chunk
        line, buf = buf.split(b'\n', 1)
        text += line + b'\n'
        assert line.endswith(b'\r'), 'line without CRLF: %r' % line
        try:
            return json.loads(text), text, buf
        except ValueError:
            continue


def test_pretty_output_parses(daemon):
    args, sock = chardev_monitor(daemon, 'p', ',pretty=on')
    daemon.start(args, ('unix', sock))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    try:
        greeting, text, buf = read_pretty_message(s, b'')
        assert 'QMP' in greeting and text.count(b'\n') > 3
        s.sendall(b'{"execute": "qmp_capabilities"}'
                  b'{"execute": "query-version", "id": 1}')
        r, _, buf = read_pretty_message(s, buf)
        assert r == {'return': {}}
        r, text, buf = read_pretty_message(s, buf)
        assert text.count(b'\n') > 3, 'pretty output spans several lines'
        assert r['id'] == 1 and r['return']['qemu']['minor'] == 2
        assert text.startswith(b'{\r\n    "return"'), text
    finally:
        s.close()


def test_legacy_qmp_unix_socket(daemon):
    require_qblk('-qmp')
    sock = daemon.path('legacy.sock')
    daemon.start(['-qmp', 'unix:%s,server=on,wait=off' % sock],
                 ('unix', sock))
    with QMPClient(sock) as qmp:
        qmp.negotiate()
        assert qmp.ok('query-status')['running'] is True


def test_legacy_qmp_refuses_client_mode(daemon):
    require_qblk('-qmp')
    sock = daemon.path('client.sock')
    d = daemon.run(['-qmp', 'unix:%s' % sock])
    assert d.returncode == 1
    assert '-qmp unix:%s: ' % sock in d.stderr
    assert 'server=on' in d.stderr
    d = daemon.run(['-qmp', 'pty'])
    assert d.returncode == 1 and 'not a supported chardev' in d.stderr


def test_qmp_on_stdio_pipes(tmp_path):
    require_qblk('-qmp stdio')
    p = subprocess.Popen([qblk_daemon_path(), '-qmp', 'stdio'],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        def line():
            r, _, _ = select.select([p.stdout], [], [], 10)
            assert r, 'no output from qblk -qmp stdio'
            out = p.stdout.readline()
            assert out.endswith(b'\r\n'), out
            return json.loads(out)

        assert line()['QMP']['capabilities'] == []
        for req in ({'execute': 'qmp_capabilities', 'id': 1},
                    {'execute': 'query-status', 'id': 2}):
            p.stdin.write(json.dumps(req).encode() + b'\n')
            p.stdin.flush()
            r = line()
            assert r['id'] == req['id'] and 'return' in r
        assert r['return']['status'] == 'running'
        p.stdin.write(b'{"execute": "quit"}\n')
        p.stdin.flush()
        assert line()['event'] == 'SHUTDOWN'
        assert line() == {'return': {}}
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        err = p.stderr.read().decode()
        assert 'Sanitizer' not in err, err


def test_qmp_on_a_terminal_keeps_cooked_mode_and_ctrl_c(tmp_path):
    require_qblk('-qmp stdio on a pty')
    import pty
    import termios
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(str(tmp_path))
        os.execv(qblk_daemon_path(), ['qblk', '-qmp', 'stdio'])

    def read_until(marker, timeout=10):
        out, end = b'', time.monotonic() + timeout
        while marker not in out and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                out += os.read(fd, 65536)
        assert marker in out, out
        return out

    try:
        read_until(b'"capabilities"')
        lflag = termios.tcgetattr(fd)[3]
        # as QEMU: a QMP monitor on stdio keeps echo and line mode
        assert lflag & termios.ECHO and lflag & termios.ICANON
        assert lflag & termios.ISIG
        os.write(fd, b'{"execute": "qmp_capabilities"}\n')
        read_until(b'"return"')
        os.write(fd, b'\x03')          # Ctrl-C: SIGINT, orderly shutdown
        out = read_until(b'host-signal')
        assert b'"SHUTDOWN"' in out
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        pid = None
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)

"""A small QMP client for the functional tests (ours; no QEMU python code).

    qmp = QMPClient(sock_path)          # connects, reads the greeting
    qmp.greeting                        # {'QMP': {...}}
    qmp.negotiate()                     # qmp_capabilities, must succeed
    r = qmp.cmd('query-block')          # the whole reply dict
    qmp.ok('blockdev-del', node_name='x')   # 'return' value; fails on error
    e = qmp.err('blockdev-del', node_name='nosuch')  # the 'error' dict
    ev = qmp.event_wait('SHUTDOWN')     # next event of that name
    qmp.events                          # events received so far (list)
    qmp.send_raw(b'{"execute": ...')    # raw bytes, no reply read
    qmp.recv()                          # next message (event or reply)

Keyword arguments of cmd/ok/err take '_' for '-' (node_name -> node-name);
pass a dict as args= to send names verbatim. Replies are matched by 'id'
when one is given (id=...), otherwise the next non-event message is the
reply. Every server line must end in CRLF; recv() asserts it.

start_qblk_with_qmp(env, args) starts qblk (through the daemon fixture's
DaemonSet @env) with an extra QMP monitor on a fresh unix socket and
returns (daemon, client) with the client already negotiated.
"""
import json
import os
import select
import socket
import time

TIMEOUT = 10


class QMPError(Exception):
    pass


class QMPClient:
    def __init__(self, path, timeout=TIMEOUT):
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = b''
        self.events = []
        self.greeting = self.recv()
        if 'QMP' not in self.greeting:
            raise QMPError('no greeting: %r' % self.greeting)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- low level

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no QMP message within %ss' % timeout)
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('QMP connection closed; pending %r'
                               % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line + b'\n'

    def recv_line(self, timeout=None):
        """The next raw line, CRLF included (asserted)."""
        line = self._read_line(timeout or self.timeout)
        assert line.endswith(b'\r\n'), 'line without CRLF: %r' % line
        return line

    def recv(self, timeout=None):
        """The next message: an event (also appended to .events) or reply."""
        line = self.recv_line(timeout)
        msg = json.loads(line.decode('ascii'))
        if 'event' in msg:
            self.events.append(msg)
        return msg

    def has_pending(self, timeout=0.0):
        """True if a message arrives within timeout seconds."""
        if b'\n' in self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    # ---- commands

    @staticmethod
    def _args(kwargs):
        return {k.replace('_', '-'): v for k, v in kwargs.items()}

    def request(self, name, args=None, id=None, **kwargs):
        msg = {'execute': name}
        a = dict(args or {})
        a.update(self._args(kwargs))
        if a or args is not None:
            msg['arguments'] = a
        if id is not None:
            msg['id'] = id
        self.send_raw(json.dumps(msg) + '\n')

    def reply(self, id=None, timeout=None):
        """Read until a non-event message (with the given id) arrives."""
        while True:
            msg = self.recv(timeout)
            if 'event' in msg:
                continue
            if id is not None and msg.get('id') != id:
                raise QMPError('reply for another id: %r' % msg)
            return msg

    def cmd(self, name, args=None, id=None, timeout=None, **kwargs):
        self.request(name, args, id, **kwargs)
        return self.reply(id, timeout)

    def ok(self, name, args=None, **kwargs):
        r = self.cmd(name, args, **kwargs)
        if 'return' not in r:
            raise QMPError('%s failed: %r' % (name, r))
        return r['return']

    def err(self, name, args=None, **kwargs):
        r = self.cmd(name, args, **kwargs)
        if 'error' not in r:
            raise QMPError('%s unexpectedly succeeded: %r' % (name, r))
        return r['error']

    def negotiate(self):
        return self.ok('qmp_capabilities')

    def hmp(self, line):
        """Run an HMP command line through human-monitor-command."""
        return self.ok('human-monitor-command', command_line=line)

    # ---- events

    def event_wait(self, name, timeout=None, match=None):
        """The first event called name (already received or arriving
        within timeout) whose data contains match; it is removed from
        .events."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for ev in self.events:
                if ev['event'] == name and _contains(ev.get('data', {}),
                                                     match or {}):
                    self.events.remove(ev)
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no %s event (have %r)'
                                   % (name, self.events))
            msg = self.recv(left)
            if 'event' not in msg:
                raise QMPError('unexpected reply while waiting for %s: %r'
                               % (name, msg))

    def drain_events(self, timeout=0.1):
        """Read every message arriving within timeout; return events."""
        while self.has_pending(timeout):
            self.recv()
        return self.events


def _contains(data, match):
    return all(data.get(k) == v for k, v in match.items())


def start_qblk_with_qmp(env, args, sock_name=None, ready=None):
    """Start qblk from DaemonSet @env with @args plus a QMP monitor on a
    new unix socket; return (daemon, negotiated QMPClient)."""
    env.count += 1
    sock = env.path(sock_name or 'qmp%d.sock' % env.count)
    full = list(args) + ['--chardev',
                         'socket,id=qmp%d,path=%s,server=on,wait=off'
                         % (env.count, sock),
                         '--monitor', 'chardev=qmp%d' % env.count]
    d = env.start(full, ready or ('unix', sock))
    client = QMPClient(sock)
    client.negotiate()
    d.qmp_sock = sock
    return d, client


def wait_for_path_gone(path, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

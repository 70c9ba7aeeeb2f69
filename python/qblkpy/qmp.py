"""A synchronous QMP client over a unix socket (ours; no QEMU python code).

Used by the functional tests (tests/functional/qmp_client.py re-exports
it), the crash scenarios (tests/crash/), the soak run's poller
(tests/soak/qmppoll.py), the benchmarks (bench/benchlib.py) and the demo
(scripts/demo_story.py).

    qmp = QMPClient(sock_path)          # connects, reads the greeting
    qmp.greeting                        # {'QMP': {...}}
    qmp.negotiate()                     # qmp_capabilities, must succeed
    r = qmp.cmd('query-block')          # the whole reply dict
    qmp.ok('blockdev-del', node_name='x')   # 'return' value; fails on error
    e = qmp.err('blockdev-del', node_name='nosuch')  # the 'error' dict
    ev = qmp.event_wait('SHUTDOWN')     # next event of that name (or names)
    qmp.find_event('JOB_STATUS_CHANGE', {'id': 'j'})  # seen yet? (kept)
    qmp.events                          # events received so far (list)
    qmp.send_raw(b'{"execute": ...')    # raw bytes, no reply read
    qmp.recv()                          # next message (event or reply)

Keyword arguments of cmd/ok/err take '_' for '-' (node_name -> node-name);
pass a dict as args= to send names verbatim. Replies are matched by 'id'
when one is given (id=...), otherwise the next non-event message is the
reply. Every server line must end in CRLF; a line without is a QMPError.

While connecting, a missing or refusing socket is retried until the
timeout; give alive= (e.g. lambda: proc.poll() is None) to stop retrying
as soon as the server's process has died.

Errors: QMPError (a RuntimeError) for error replies and protocol
violations, QMPTimeout (also a TimeoutError) when nothing arrives in time,
QMPClosed (also an EOFError) when the server hangs up or dies.
"""
import json
import select
import socket
import time

TIMEOUT = 10
CONNECT_INTERVAL = 0.02


class QMPError(RuntimeError):
    """A QMP failure: an error reply or a protocol violation."""


class QMPTimeout(QMPError, TimeoutError):
    """The awaited QMP message did not arrive in time."""


class QMPClosed(QMPError, EOFError):
    """The server closed the connection, or died before accepting it."""


def connect_unix(path, timeout, alive=None):
    """A socket connected to unix socket @path; a missing or refusing
    socket is retried for @timeout seconds (then its error is raised)
    while @alive() holds."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if alive is not None and not alive():
                raise QMPClosed('the server of %s exited' % path)
            if time.monotonic() > deadline:
                raise
        time.sleep(CONNECT_INTERVAL)


def _contains(data, match):
    """True if dict @data has every key/value of @match."""
    return all(data.get(k) == v for k, v in match.items())


class QMPClient:
    """One QMP connection: greeting read, not negotiated yet."""

    def __init__(self, path, timeout=TIMEOUT, alive=None):
        self.path = path
        self.timeout = timeout
        self.sock = connect_unix(path, timeout, alive)
        self.buf = b''
        self.events = []
        self.greeting = self.recv()
        if 'QMP' not in self.greeting:
            raise QMPError('no greeting: %r' % self.greeting)

    def close(self):
        """Close the connection."""
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- low level

    def send_raw(self, data):
        """Send @data (bytes or str) as is."""
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _read_line(self, timeout):
        """The next line from the socket, '\\n' included."""
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPTimeout('no QMP message within %ss' % timeout)
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QMPClosed('QMP connection closed; pending %r'
                                % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line + b'\n'

    def recv_line(self, timeout=None):
        """The next raw line, CRLF included (checked)."""
        line = self._read_line(timeout or self.timeout)
        if not line.endswith(b'\r\n'):
            raise QMPError('line without CRLF: %r' % line)
        return line

    def recv(self, timeout=None):
        """The next message: an event (also appended to .events) or reply."""
        msg = json.loads(self.recv_line(timeout).decode('ascii'))
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

    def request(self, name, args=None, id=None, **kwargs):
        """Send command @name without reading its reply."""
        msg = {'execute': name}
        a = dict(args or {})
        a.update({k.replace('_', '-'): v for k, v in kwargs.items()})
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
        """Run command @name; its whole reply."""
        self.request(name, args, id, **kwargs)
        return self.reply(id, timeout)

    def ok(self, name, args=None, **kwargs):
        """Run command @name; its 'return' value, QMPError on an error."""
        r = self.cmd(name, args, **kwargs)
        if 'return' not in r:
            raise QMPError('%s failed: %r' % (name, r.get('error', r)))
        return r['return']

    def err(self, name, args=None, **kwargs):
        """Run command @name, which must fail; its 'error' dict."""
        r = self.cmd(name, args, **kwargs)
        if 'error' not in r:
            raise QMPError('%s unexpectedly succeeded: %r' % (name, r))
        return r['error']

    def negotiate(self):
        """qmp_capabilities, which must succeed."""
        return self.ok('qmp_capabilities')

    def hmp(self, line):
        """Run an HMP command line through human-monitor-command."""
        return self.ok('human-monitor-command', command_line=line)

    # ---- events

    def find_event(self, names, match=None):
        """The first event received so far called @names (a name or a
        tuple of names) whose data contains @match; None if there is none.
        The event stays in .events."""
        if isinstance(names, str):
            names = (names,)
        for ev in self.events:
            if ev['event'] in names and _contains(ev.get('data', {}),
                                                  match or {}):
                return ev
        return None

    def event_wait(self, names, timeout=None, match=None):
        """find_event(@names, @match), waiting up to @timeout for it to
        arrive; it is removed from .events."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            ev = self.find_event(names, match)
            if ev:
                self.events.remove(ev)
                return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPTimeout('no %s event (have %r)'
                                 % (names, self.events))
            msg = self.recv(left)
            if 'event' not in msg:
                raise QMPError('unexpected reply while waiting for %s: %r'
                               % (names, msg))

    def drain_events(self, timeout=0.1):
        """Read every message arriving within timeout; return events."""
        while self.has_pending(timeout):
            self.recv()
        return self.events

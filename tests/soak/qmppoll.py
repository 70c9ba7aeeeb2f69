#!/usr/bin/python3
"""QMP poller of the soak run, a process of its own so that the load
generator's busy event loop cannot slow it down.

    qmppoll.py SOCKET

Connects to the QMP monitor on unix socket SOCKET, negotiates, then runs
query-block-jobs every 10 ms until its stdin reaches EOF (the runner
closes it); prints one JSON line: polls, error replies (the first few
kept), job entries that carried an error, the slowest round trip and the
job states seen. A lost connection is itself an error.
"""
import json
import select
import socket
import sys
import time

INTERVAL = 0.01


class Conn:
    """Line-based QMP connection (blocking, 30 s timeout per reply)."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(path)
        self.buf = b''
        self.line()                      # greeting

    def line(self):
        while b'\n' not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError('QMP connection closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def cmd(self, name):
        """Send @name, return its reply (events are skipped)."""
        self.s.sendall(json.dumps({'execute': name}).encode() + b'\n')
        while True:
            msg = self.line()
            if 'event' not in msg:
                return msg


def main():
    res = {'polls': 0, 'errors': 0, 'error_list': [], 'job_errors': [],
           'max_rtt_ms': 0.0, 'states': []}
    try:
        c = Conn(sys.argv[1])
        if 'return' not in c.cmd('qmp_capabilities'):
            raise RuntimeError('qmp_capabilities refused')
        while not select.select([sys.stdin], [], [], INTERVAL)[0]:
            t = time.monotonic()
            r = c.cmd('query-block-jobs')
            res['max_rtt_ms'] = max(res['max_rtt_ms'],
                                    (time.monotonic() - t) * 1000)
            res['polls'] += 1
            if 'return' not in r:
                res['errors'] += 1
                res['error_list'] = (res['error_list'] + [r])[:5]
                continue
            for j in r['return']:
                if j.get('error') and len(res['job_errors']) < 5:
                    res['job_errors'].append(j)
                st = (j.get('device'), j.get('status'))
                if st not in res['states']:
                    res['states'].append(st)
    except Exception as e:                 # reported, never hidden
        res['errors'] += 1
        res['error_list'].append(repr(e))
    res['max_rtt_ms'] = round(res['max_rtt_ms'], 1)
    print(json.dumps(res))
    sys.stdout.flush()


if __name__ == '__main__':
    main()

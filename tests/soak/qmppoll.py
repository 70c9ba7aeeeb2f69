#!/usr/bin/python3
"""QMP poller of the soak run, a process of its own so that the load
generator's busy event loop cannot slow it down.

    qmppoll.py SOCKET

Connects to the QMP monitor on unix socket SOCKET, negotiates, then runs
query-block-jobs every 10 ms until its stdin reaches EOF (the runner
closes it); prints one JSON line: polls, error replies (the first few
kept), job entries that carried an error, the slowest round trip and the
job states seen. A lost connection is itself an error. The QMP client
is qblkpy's (python/qblkpy/qmp.py).
"""
import json
import os
import select
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), 'python'))

from qblkpy.qmp import QMPClient  # noqa: E402

INTERVAL = 0.01
REPLY_TIMEOUT = 30


def main():
    res = {'polls': 0, 'errors': 0, 'error_list': [], 'job_errors': [],
           'max_rtt_ms': 0.0, 'states': []}
    try:
        c = QMPClient(sys.argv[1], REPLY_TIMEOUT)
        c.negotiate()
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

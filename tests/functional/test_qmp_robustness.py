"""qmp-robustness: 1000 malformed or adversarial QMP messages against one
running qblk, each answered with an error while the daemon keeps serving.

The messages are generated deterministically (random.Random(SEED)):
truncated JSON cut off by a 0xFF reset, nesting 2000 levels deep, strings
of several MB, wrong types for every member of a few commands, missing and
unexpected members, unknown commands, non-object values, malformed request
shapes, invalid UTF-8, control characters, and (on a second monitor)
commands before capabilities negotiation. Valid commands with ids of
every JSON type are interleaved and their replies must stay correct.

After every message a sync request (query-status with a unique id) is
sent; the replies read before its reply belong to the message, so each
message's errors are counted exactly. At the end a query-version works
on both connections and stderr has no crash marker.
"""
import json
import random
import time

import pytest

from daemon import require_qblk
from qblk_testlib import CRASH_MARKERS
from qmp_client import QMPClient, start_qblk_with_qmp

SEED = 20240704
TOTAL_BAD = 1000
NOT_NEGOTIATED = "Expecting capabilities negotiation with 'qmp_capabilities'"
NOT_OBJECT = 'QMP input must be a JSON object'

# Members of a few commands and the JSON type they expect (QAPI's words);
# mandatory ones are given a valid value when another member is tested.
MEMBERS = {
    'query-named-block-nodes': {'flat': ('boolean', False, None)},
    'blockdev-del': {'node-name': ('string', True, 'nosuch')},
    'human-monitor-command': {'command-line': ('string', True, 'info status'),
                              'cpu-index': ('integer', False, None)},
    'trace-event-get-state': {'name': ('string', True, 'nosuch')},
    'nbd-server-remove': {'name': ('string', True, 'nosuch')},
    'block-export-del': {'id': ('string', True, 'nosuch')},
}
SAMPLES = {'integer': 5, 'string': 'text', 'boolean': True, 'number': 1.5,
           'object': {}, 'array': [], 'null': None}


def enc(obj):
    return json.dumps(obj).encode()


class Expect:
    """What one bad message must produce: exactly `count` error replies
    (None: at least one), the first one's class and, if given, desc."""

    def __init__(self, data, count=1, cls='GenericError', desc=None,
                 desc_prefix=None, id=None, has_id=False):
        self.data = data
        self.count = count
        self.cls = cls
        self.desc = desc
        self.desc_prefix = desc_prefix
        self.id = id
        self.has_id = has_id


def gen_truncated(rng, commands):
    """A valid request cut short; the 0xFF drops it (one error)."""
    name = rng.choice(commands)
    full = enc({'execute': name, 'arguments': {'a': [1, 'two', None]},
                'id': rng.randrange(1000)})
    cut = rng.randrange(1, len(full) - 1)
    return Expect(full[:cut] + b'\xff', desc_prefix='JSON parse error')


def gen_deep(rng, kind):
    """2000 levels of nesting: the 1025th level hits the limit."""
    n = 2000
    if kind == 'array':
        data = b'[' * n + b']' * n
    elif kind == 'object':
        data = b'{"a":' * n + b'1' + b'}' * n
    else:
        data = b'{"execute":"query-status","arguments":' + \
            b'[{"x":' * (n // 2) + b'0' + b'}]' * (n // 2) + b'}'
    return Expect(data + b'\n', count=None,
                  desc='JSON nesting depth limit exceeded')


def gen_huge(rng, i):
    big = 'x' * (3 << 20) + str(i)
    if i == 0:
        return Expect(enc({'execute': big, 'id': 'huge'}),
                      cls='CommandNotFound',
                      desc='The command %s has not been found' % big,
                      id='huge', has_id=True)
    if i == 1:
        return Expect(enc({'execute': 'query-named-block-nodes',
                           'arguments': {'flat': big}, 'id': 'h1'}),
                      desc="Invalid parameter type for 'flat', "
                           "expected: boolean", id='h1', has_id=True)
    # Unterminated several-MB string, then a reset.
    return Expect(b'{"execute": "' + big.encode() + b'\xff',
                  desc_prefix='JSON parse error')


def gen_wrong_types(available, rng):
    """Every member of MEMBERS' commands with every wrong JSON type."""
    out = []
    for cmd, members in sorted(MEMBERS.items()):
        if cmd not in available:
            continue
        for member, (typ, _, _) in sorted(members.items()):
            for sample_type, value in sorted(SAMPLES.items()):
                if sample_type == typ:
                    continue
                args = {m: v[2] for m, v in members.items() if v[1]}
                args[member] = value
                rid = rng.choice([rng.randrange(10**6), 'w%d' % len(out),
                                  [len(out), {'k': None}]])
                out.append(Expect(
                    enc({'execute': cmd, 'arguments': args, 'id': rid}),
                    desc="Invalid parameter type for '%s', expected: %s"
                         % (member, typ), id=rid, has_id=True))
    return out


def gen_member_errors(available, rng):
    out = []
    for cmd, members in sorted(MEMBERS.items()):
        if cmd not in available:
            continue
        valid = {m: v[2] for m, v in members.items() if v[1]}
        for m in sorted(valid):
            args = dict(valid)
            del args[m]
            out.append(Expect(enc({'execute': cmd, 'arguments': args,
                                   'id': 'miss'}),
                              desc="Parameter '%s' is missing" % m,
                              id='miss', has_id=True))
        args = dict(valid)
        args['bogus-%d' % rng.randrange(100)] = 1
        bogus = [k for k in args if k.startswith('bogus')][0]
        out.append(Expect(enc({'execute': cmd, 'arguments': args,
                               'id': 'unexp'}),
                          desc="Parameter '%s' is unexpected" % bogus,
                          id='unexp', has_id=True))
    return out


def gen_unknown(rng, i):
    name = 'no-such-%d-%s' % (i, ''.join(rng.choice('abcxyz-_')
                                         for _ in range(rng.randrange(1, 20))))
    return Expect(enc({'execute': name, 'id': i}), cls='CommandNotFound',
                  desc='The command %s has not been found' % name,
                  id=i, has_id=True)


def gen_non_object(rng):
    value = rng.choice([b'[1, 2]', b'"str"', b'42', b'true', b'null',
                        b'-1.5e3', b'[]', b"'single'", b'[{"execute": 1}]'])
    return Expect(value + b'\n', desc=NOT_OBJECT)


def gen_bad_shape(rng):
    choices = [
        (b'{}', "QMP input lacks member 'execute'"),
        (b'{"id": 5}', "QMP input lacks member 'execute'"),
        (b'{"execute": 1}', "QMP input member 'execute' must be a string"),
        (b'{"execute": ["query-status"]}',
         "QMP input member 'execute' must be a string"),
        (b'{"execute": "query-status", "arguments": []}',
         "QMP input member 'arguments' must be an object"),
        (b'{"execute": "query-status", "arguments": 1}',
         "QMP input member 'arguments' must be an object"),
        (b'{"execute": "query-status", "bogus": 1}',
         "QMP input member 'bogus' is unexpected"),
    ]
    data, desc = rng.choice(choices)
    return Expect(data, desc=desc)


def gen_bad_utf8(rng):
    seq = rng.choice([b'\xc3\x28', b'\xa0\xa1', b'\xe2\x28\xa1',
                      b'\xf0\x28\x8c\xbc', b'\xc0\xaf', b'\xed\xa0\x80',
                      b'\xf8\x88\x80\x80\x80', b'\x80'])
    where = rng.choice(['execute', 'id', 'key'])
    if where == 'execute':
        data = b'{"execute": "query' + seq + b'"}'
    elif where == 'id':
        data = b'{"execute": "query-status", "id": "' + seq + b'"}'
    else:
        data = b'{"execute": "query-status", "arguments": {"' + seq + \
            b'": 1}}'
    return Expect(data,
                  desc='JSON parse error, invalid UTF-8 sequence in string')


def gen_control(rng):
    """A raw control byte: a lexical error; the parser resyncs at the next
    structural byte, so a second error follows (QEMU 7.2's recovery)."""
    c = bytes([rng.choice([0, 1, 2, 7, 8, 11, 12, 27, 31])])
    pos = rng.choice(['start', 'string', 'between'])
    if pos == 'start':
        data = c + b'{"execute": "no-such-after-control"}'
    elif pos == 'string':
        data = b'{"execute": "query' + c + b'-status"}'
    else:
        data = b'{"execute":' + c + b' "query-status"}'
    return Expect(data + b'\n', count=2,
                  desc_prefix="JSON parse error, stray '")


def build_messages(rng, available, nbad):
    """nbad bad messages, shuffled with 100 valid ones."""
    commands = sorted(available)
    bad = []
    bad += [gen_deep(rng, k) for k in ('array', 'object', 'mixed')]
    bad += [gen_huge(rng, i) for i in range(3)]
    typed = gen_wrong_types(available, rng) + \
        gen_member_errors(available, rng)
    bad += typed * 3
    makers = [lambda: gen_truncated(rng, commands),
              lambda: gen_unknown(rng, rng.randrange(10**6)),
              lambda: gen_non_object(rng),
              lambda: gen_bad_shape(rng),
              lambda: gen_bad_utf8(rng),
              lambda: gen_control(rng)]
    i = 0
    while len(bad) < nbad:
        bad.append(makers[i % len(makers)]())
        i += 1
    msgs = [('bad', m) for m in bad[:nbad]]
    for j in range(100):
        rid = rng.choice([j, 'v%d' % j, [j, 'x'], {'n': j, 'l': [True]},
                          -j * 1000, None])
        msgs.append(('good', rid))
    rng.shuffle(msgs)
    return msgs


def exchange(qmp, data, tag):
    """Send data then a sync request; return the replies before the
    sync's reply (events skipped)."""
    qmp.send_raw(data)
    qmp.send_raw(enc({'execute': 'query-status', 'id': tag}) + b'\n')
    got = []
    while True:
        msg = qmp.recv()
        if 'event' in msg:
            continue
        if msg.get('id') == tag:
            assert 'return' in msg, msg
            return got
        got.append(msg)


def check_bad(exp, replies, n):
    where = 'message %d (%r...)' % (n, exp.data[:80])
    assert replies, 'no error reply for ' + where
    if exp.count is not None:
        assert len(replies) == exp.count, (where, replies[:5])
    for r in replies:
        assert 'error' in r and 'return' not in r, (where, r)
        assert set(r['error']) == {'class', 'desc'}, (where, r)
    first = replies[0]['error']
    assert first['class'] == exp.cls, (where, first)
    if exp.desc is not None:
        assert first['desc'] == exp.desc, (where, first['desc'][:200])
    if exp.desc_prefix is not None:
        assert first['desc'].startswith(exp.desc_prefix), (where, first)
    if exp.has_id:
        assert replies[0].get('id') == exp.id, (where, replies[0])


def test_qmp_robustness_1000_bad_messages(daemon):
    require_qblk('error texts of qblk')
    mon2 = daemon.path('robust2.sock')
    d, qmp = start_qblk_with_qmp(
        daemon, ['--chardev', 'socket,id=robust2,path=%s,server=on,wait=off'
                 % mon2, '--monitor', 'chardev=robust2'])
    started = time.monotonic()
    rng = random.Random(SEED)
    available = {c['name'] for c in qmp.ok('query-commands')}
    assert len(set(MEMBERS) & available) >= 4, available
    version = qmp.ok('query-version')

    # Commands before negotiation, on a second connection; they count
    # towards the total (the main stream sends TOTAL_BAD - before).
    before = 100
    with QMPClient(mon2) as early:
        for i in range(before):
            name = rng.choice(sorted(available - {'qmp_capabilities'}))
            r = early.cmd(name, id=i)
            assert r == {'id': i, 'error': {'class': 'CommandNotFound',
                                            'desc': NOT_NEGOTIATED}}, r

        msgs = build_messages(rng, available, TOTAL_BAD - before)
        errors = before
        bad = 0
        for n, (kind, item) in enumerate(msgs):
            if kind == 'good':
                req = {'execute': 'query-version'}
                if item is not None:
                    req['id'] = item
                replies = exchange(qmp, enc(req), 'sync%d' % n)
                expected = {'return': version}
                if item is not None:
                    expected['id'] = item
                assert replies == [expected], replies
                continue
            bad += 1
            replies = exchange(qmp, item.data, 'sync%d' % n)
            check_bad(item, replies, n)
            errors += len(replies)
        assert bad + before == TOTAL_BAD
        assert errors >= TOTAL_BAD

        # Still serving, on both connections.
        assert qmp.ok('query-version') == version
        early.negotiate()
        assert early.ok('query-version') == version
    d.assert_alive()
    for m in CRASH_MARKERS:
        assert m not in d.stderr, d.stderr
    print("robustness: %d bad messages, %d error replies, %.1fs"
          % (TOTAL_BAD, errors, time.monotonic() - started))
    assert time.monotonic() - started < 30
    qmp.close()

"""QMP control commands: qmp_capabilities (see test_qmp_protocol.py),
query-version, query-status, query-commands, query-qmp-schema and quit.

Each command's success shape and at least one error; query-commands and
query-qmp-schema are checked against the schema itself (qapi/*.json, read
with the generator's own parser).
"""
import os
import sys

import pytest

from daemon import require_qblk
from qmp_client import start_qblk_with_qmp, wait_for_path_gone
from qblk_testlib import REPO

sys.path.insert(0, os.path.join(REPO, 'scripts'))
from qapi.parser import load_definitions  # noqa: E402


def schema_defs():
    return load_definitions(os.path.join(REPO, 'qapi', 'qapi-schema.json'),
                            follow_includes=True)


def schema_names(meta):
    return {name for name, expr in schema_defs().items() if meta in expr}


@pytest.fixture
def qmp(daemon):
    require_qblk('qblk control commands')
    d, client = start_qblk_with_qmp(daemon, [])
    client.daemon = d
    yield client
    client.close()


def test_query_version(qmp):
    v = qmp.ok('query-version')
    assert v['qemu'] == {'major': 7, 'minor': 2, 'micro': 0}
    assert v['package'].startswith('qblk ')
    e = qmp.err('query-version', args={'x': 1})
    assert e == {'class': 'GenericError', 'desc': "Parameter 'x' is unexpected"}


def test_query_status(qmp):
    assert qmp.ok('query-status') == {'running': True, 'singlestep': False,
                                      'status': 'running'}
    e = qmp.err('query-status', args={'status': 'paused'})
    assert e == {'class': 'GenericError',
                 'desc': "Parameter 'status' is unexpected"}


def test_query_commands_matches_schema(qmp):
    got = [c['name'] for c in qmp.ok('query-commands')]
    assert all(set(c) == {'name'} for c in qmp.ok('query-commands'))
    assert len(got) == len(set(got)), 'duplicate command names'
    assert set(got) == schema_names('command')
    for name in ('qmp_capabilities', 'query-version', 'query-commands',
                 'query-status', 'quit', 'query-qmp-schema'):
        assert name in got
    e = qmp.err('query-commands', args={'name': 'quit'})
    assert e['desc'] == "Parameter 'name' is unexpected"


def test_query_qmp_schema_describes_every_command_and_event(qmp):
    info = qmp.ok('query-qmp-schema')
    by_meta = {}
    for entry in info:
        assert {'name', 'meta-type'} <= set(entry)
        by_meta.setdefault(entry['meta-type'], set()).add(entry['name'])
    assert by_meta['command'] == schema_names('command')
    assert by_meta['event'] == schema_names('event')
    names = {e['name']: e for e in info}
    quit_ = names['quit']
    assert set(quit_) >= {'arg-type', 'ret-type'}
    assert 'allow-oob' not in quit_ or quit_['allow-oob'] is False
    # SHUTDOWN's data type lists exactly what the event carries
    shutdown = names[names['SHUTDOWN']['arg-type']]
    assert {m['name'] for m in shutdown['members']} == {'guest', 'reason'}
    e = qmp.err('query-qmp-schema', args={'bogus': True})
    assert e == {'class': 'GenericError',
                 'desc': "Parameter 'bogus' is unexpected"}


def test_quit_sends_shutdown_then_reply_and_exits_0(qmp):
    e = qmp.err('quit', args={'force': True})
    assert e['desc'] == "Parameter 'force' is unexpected"
    qmp.daemon.assert_alive()
    qmp.request('quit', id=7)
    ev = qmp.recv()
    assert ev['event'] == 'SHUTDOWN'
    assert ev['data'] == {'guest': False, 'reason': 'host-qmp-quit'}
    assert qmp.recv() == {'return': {}, 'id': 7}
    assert qmp.daemon.wait_exit() == 0
    assert wait_for_path_gone(qmp.daemon.qmp_sock)

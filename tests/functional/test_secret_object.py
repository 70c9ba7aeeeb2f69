"""Secret objects (util/secret.c): --object secret and QMP object-add /
object-del, as QEMU 7.2 spells them, used by the http driver's
password-secret against an nginx with basic authentication.

An http node opens only when its HEAD request is authorised, so a
successful blockdev-add proves the secret's value reached libcurl intact
(raw, base64, inline or from a file). Error texts are QEMU's; a secret's
value never appears in any reply or message.
"""
import base64
import os

import pytest

from qmp_client import start_qblk_with_qmp
from test_http_driver import Nginx, PASSWORD, USER, SIZE

SECRET_EXISTS = ("attempt to add duplicate property 'sec0' to object "
                 "(type 'container')")


@pytest.fixture
def auth_url(tmp_path):
    """An nginx with basic auth serving base.raw; yields its URL."""
    n = Nginx(str(tmp_path), auth=(USER, PASSWORD))
    with open(os.path.join(n.www, 'base.raw'), 'wb') as f:
        f.write(os.urandom(SIZE))
    n.start()
    try:
        yield n.url + '/base.raw'
    finally:
        n.stop()


@pytest.fixture
def qmp(daemon):
    """A qblk with only a QMP monitor; its client."""
    _, client = start_qblk_with_qmp(daemon, [])
    return client


def http_node(qmp, url, node='h', secret='sec0'):
    """blockdev-add an authenticated http node; the QMP reply."""
    return qmp.cmd('blockdev-add', {'driver': 'http', 'node-name': node,
                                    'url': url, 'username': USER,
                                    'password-secret': secret})


def test_secret_object_add_data_opens_auth_node(qmp, auth_url):
    qmp.ok('object-add', {'qom-type': 'secret', 'id': 'sec0',
                          'data': PASSWORD})
    r = http_node(qmp, auth_url)
    assert r == {'return': {}}, r


def test_secret_object_add_base64_file(qmp, daemon, auth_url):
    path = daemon.path('pw.b64')
    with open(path, 'w') as f:
        f.write(base64.b64encode(PASSWORD.encode()).decode() + '\n')
    qmp.ok('object-add', {'qom-type': 'secret', 'id': 'sec0',
                          'file': path, 'format': 'base64'})
    r = http_node(qmp, auth_url)
    assert r == {'return': {}}, r


def test_secret_wrong_value_gives_401_without_value(qmp, auth_url):
    qmp.ok('object-add', {'qom-type': 'secret', 'id': 'sec0',
                          'data': 'Not-The-Password'})
    e = http_node(qmp, auth_url)['error']
    assert 'HTTP 401' in e['desc'] and auth_url in e['desc'], e
    assert 'Not-The-Password' not in e['desc']


def test_secret_duplicate_id_refused(qmp):
    qmp.ok('object-add', {'qom-type': 'secret', 'id': 'sec0', 'data': 'a'})
    e = qmp.err('object-add', {'qom-type': 'secret', 'id': 'sec0',
                               'data': 'b'})
    assert e == {'class': 'GenericError', 'desc': SECRET_EXISTS}, e


def test_secret_bad_arguments_refused(qmp, daemon):
    cases = [
        ({'qom-type': 'secret', 'id': 's1', 'data': 'x',
          'file': daemon.path('x')},
         "'data' and 'file' are mutually exclusive"),
        ({'qom-type': 'secret', 'id': 's1'},
         "Either 'file' or 'data' must be provided"),
        ({'qom-type': 'secret', 'id': 's1', 'data': 'x', 'format': 'hex'},
         "Parameter 'format' does not accept value 'hex'"),
        ({'qom-type': 'memory-backend-ram', 'id': 's1'},
         "Parameter 'qom-type' does not accept value 'memory-backend-ram'"),
        ({'qom-type': 'secret', 'id': '1bad', 'data': 'x'},
         "Parameter 'id' expects an identifier"),
        ({'qom-type': 'secret', 'id': 's1', 'data': 'not base64!',
          'format': 'base64'},
         'Base64 data contains invalid characters'),
    ]
    for args, desc in cases:
        e = qmp.err('object-add', args)
        assert e == {'class': 'GenericError', 'desc': desc}, (args, e)
    e = qmp.err('object-add', {'qom-type': 'secret', 'id': 's1',
                               'file': daemon.path('missing')})
    assert e['desc'].startswith('Unable to read %s: '
                                % daemon.path('missing')), e


def test_secret_object_del(qmp, auth_url):
    """object-del: unknown id refused; deleting a secret in use by an open
    node succeeds (the node copied it) but new nodes cannot use it."""
    e = qmp.err('object-del', {'id': 'nosuch'})
    assert e == {'class': 'GenericError',
                 'desc': "object 'nosuch' not found"}, e
    qmp.ok('object-add', {'qom-type': 'secret', 'id': 'sec0',
                          'data': PASSWORD})
    assert http_node(qmp, auth_url, 'h1') == {'return': {}}
    qmp.ok('object-del', {'id': 'sec0'})
    e = http_node(qmp, auth_url, 'h2')['error']
    assert "No secret with id 'sec0'" in e['desc'], e
    names = [n['node-name'] for n in
             qmp.ok('query-named-block-nodes', flat=True)]
    assert 'h1' in names
    # the id is free again
    qmp.ok('object-add', {'qom-type': 'secret', 'id': 'sec0', 'data': 'x'})


def test_secret_command_line(daemon, auth_url):
    """--object secret on the command line, and its errors."""
    d = daemon.run(['--object', 'secret,id=sec0,data=a',
                    '--object', 'secret,id=sec0,data=b'])
    assert d.returncode != 0 and SECRET_EXISTS in d.stderr, d.stderr
    d = daemon.run(['--object', 'iothread,id=io0'])
    assert d.returncode != 0
    assert "Parameter 'qom-type' does not accept value 'iothread'" \
        in d.stderr, d.stderr
    d = daemon.run(['--object', '{"qom-type": "secret", "id": "s", '
                    '"data": "x", "file": "/nonexistent"}'])
    assert "'data' and 'file' are mutually exclusive" in d.stderr, d.stderr
    _, qmp = start_qblk_with_qmp(daemon, [
        '--object', 'secret,id=sec0,format=base64,data='
        + base64.b64encode(PASSWORD.encode()).decode()])
    assert http_node(qmp, auth_url) == {'return': {}}

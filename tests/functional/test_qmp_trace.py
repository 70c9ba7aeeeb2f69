"""trace-event-get-state / trace-event-set-state over QMP: QEMU 7.2's
reply shapes and error texts, and the log backend honouring a change at
once (an enabled event prints lines on stderr, a disabled one stops).
"""
import time

from nbd_client import NbdClient
from qmp_client import start_qblk_with_qmp


def A(**kw):
    """QMP arguments from keywords ('_' -> '-'); QMPClient.ok/err take
    'name' themselves, so commands with a 'name' argument use this."""
    return {k.replace('_', '-'): v for k, v in kw.items()}


EVENT = 'nbd_client_attach'     # fires once per NBD client entering an export


def start(daemon, extra=()):
    sock = daemon.path('nbd.sock')
    # Options act in order: --trace first, so it sees the server start.
    args = list(extra) + [
        '--blockdev', 'driver=file,filename=/etc/hostname,node-name=f,'
        'read-only=on',
        '--nbd-server', 'addr.type=unix,addr.path=%s' % sock,
        '--export', 'type=nbd,id=e,node-name=f,name=f']
    d, qmp = start_qblk_with_qmp(daemon, args)
    d.nbd_sock = sock
    return d, qmp


def attach_client(d):
    c = NbdClient.unix(d.nbd_sock)
    c.handshake()
    c.go('f')
    c.read(0, 1)
    c.disconnect()


def count_lines(d, name, expect=None, timeout=5):
    """Lines of event name in the daemon's stderr (waiting up to timeout
    for the count to reach expect, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        n = sum(1 for line in d.stderr.splitlines()
                if (':%s ' % name) in line)
        if expect is None or n >= expect or time.monotonic() > deadline:
            return n
        time.sleep(0.02)


def test_get_state_exact_and_pattern(daemon):
    d, qmp = start(daemon)
    assert qmp.ok('trace-event-get-state', A(name=EVENT)) == [
        {'name': EVENT, 'state': 'disabled', 'vcpu': False}]
    infos = qmp.ok('trace-event-get-state', A(name='nbd_server_*'))
    names = {i['name'] for i in infos}
    assert {'nbd_server_start', 'nbd_server_stop'} <= names
    assert all(n.startswith('nbd_server_') for n in names)
    assert all(i['state'] == 'disabled' and i['vcpu'] is False
               for i in infos)
    # A pattern that matches nothing is an empty list, not an error.
    assert qmp.ok('trace-event-get-state', A(name='no_such_*')) == []


def test_trace_option_shows_enabled(daemon):
    d, qmp = start(daemon, ['--trace', 'nbd_server_st*'])
    states = {i['name']: i['state'] for i in
              qmp.ok('trace-event-get-state', A(name='nbd_server_*'))}
    assert states['nbd_server_start'] == 'enabled'
    assert states['nbd_server_accept'] == 'disabled'
    assert count_lines(d, 'nbd_server_start', 1) == 1


def test_set_state_takes_effect_at_once(daemon):
    d, qmp = start(daemon)
    attach_client(d)
    assert count_lines(d, EVENT) == 0
    assert qmp.ok('trace-event-set-state', A(name=EVENT, enable=True)) == {}
    assert qmp.ok('trace-event-get-state', A(name=EVENT))[0]['state'] == \
        'enabled'
    attach_client(d)
    attach_client(d)
    assert count_lines(d, EVENT, 2) == 2
    # Disable by pattern: no more lines.
    assert qmp.ok('trace-event-set-state', A(name='nbd_client_*',
                  enable=False, ignore_unavailable=True)) == {}
    attach_client(d)
    time.sleep(0.2)
    assert count_lines(d, EVENT) == 2
    assert all(i['state'] == 'disabled' for i in
               qmp.ok('trace-event-get-state', A(name='nbd_client_*')))


def test_errors(daemon):
    d, qmp = start(daemon)
    for cmd, extra in (('trace-event-get-state', {}),
                       ('trace-event-set-state', {'enable': True})):
        err = qmp.err(cmd, dict(extra, name='nope'))
        assert err == {'class': 'GenericError',
                       'desc': 'unknown event "nope"'}, err
        err = qmp.err(cmd, dict(extra, name=EVENT, vcpu=0))
        assert err == {'class': 'GenericError',
                       'desc': 'invalid vCPU index 0'}, err
    err = qmp.err('trace-event-set-state', A(name=EVENT, enable='yes'))
    assert err == {'class': 'GenericError', 'desc':
                   "Invalid parameter type for 'enable', expected: boolean"}
    err = qmp.err('trace-event-set-state', A(name=EVENT))
    assert err == {'class': 'GenericError',
                   'desc': "Parameter 'enable' is missing"}
    # Nothing was changed by the failed calls.
    assert qmp.ok('trace-event-get-state', A(name=EVENT))[0]['state'] == \
        'disabled'

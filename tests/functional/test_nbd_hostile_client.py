"""Malformed and hostile NBD clients get the protocol's error or a closed
connection, never a crash, and never disturb other clients.

Each case speaks raw NBD (nbd_client.py) to one daemon serving a writable
export 'w' and a read-only export 'r' of small images with known content.
After every case the daemon must still be alive and a fresh, well-behaved
client must read the right data from both exports.
"""
import socket
import struct
import time

import pytest

from daemon import qcow2_blockdev
from nbd_client import (CMD_READ, CMD_WRITE, EINVAL, ENOSPC, EPERM,
                        IHAVEOPT, OPT_GO, OPT_STRUCTURED_REPLY,
                        REP_ERR_UNSUP, REQUEST_MAGIC, TF_READ_ONLY,
                        NbdClient, NbdClosed, NbdError)
from qblk_testlib import MiB

SIZE = 4 * MiB


@pytest.fixture
def server(daemon, qemu_img, qemu_io):
    """A daemon exporting w (writable) and r (read-only), both reading
    0x3c over their first MiB."""
    paths = {}
    for name in ('w', 'r'):
        p = daemon.path('%s.qcow2' % name)
        qemu_img.ok('create', '-q', '-f', 'qcow2', p, SIZE)
        qemu_io.ok('-f', 'qcow2', '-c', 'write -P 0x3c 0 1M', p)
        paths[name] = p
    args = qcow2_blockdev(paths['w'], 'w') + qcow2_blockdev(paths['r'], 'r')
    d = daemon.nbd(args, export='w', extra=[
        '--export', 'type=nbd,id=exp-r,node-name=r,name=r,writable=off'])
    yield d
    healthy(d)


def connect(d, name='w', structured=True):
    c = NbdClient.unix(d.sock)
    c.connect(name, structured=structured)
    return c


def healthy(d):
    """The daemon is alive and a new client reads the known data."""
    time.sleep(0.05)
    d.assert_alive()
    for name in ('w', 'r'):
        for structured in (True, False):
            c = connect(d, name, structured)
            assert c.size == SIZE
            assert c.read(0, 4096) == b'\x3c' * 4096
            assert c.read(MiB, 512) == bytes(512)
            c.disconnect()


def raw_socket(d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(d.sock)
    return s


def test_bad_client_flags_or_option_magic_closes_connection(server):
    c = NbdClient.unix(server.sock)
    c.handshake()
    c.send_raw(struct.pack('>QII', 0x1122334455667788, OPT_GO, 0))
    assert c.is_closed(), 'server kept a connection with bad option magic'
    c.close()
    healthy(server)


def test_bad_request_magic_closes_connection(server):
    c = connect(server)
    c.send_raw(struct.pack('>IHHQQI', 0xdeadbeef, 0, CMD_READ, 1, 0, 512))
    assert c.is_closed(), 'server kept a connection with bad request magic'
    c.close()
    healthy(server)


def test_garbage_instead_of_handshake_closes_connection(server):
    s = raw_socket(server)
    s.recv(18)
    s.sendall(b'GET / HTTP/1.0\r\n\r\n' * 10)
    s.settimeout(5)
    try:
        while s.recv(4096):
            pass
    except (socket.timeout, OSError):
        pass
    s.close()
    healthy(server)


def test_oversized_option_length_is_refused(server):
    c = NbdClient.unix(server.sock)
    c.handshake()
    # claims 256 MiB of option data, sends a little, then waits
    c.send_option(OPT_GO, b'\0' * 64, length=256 * MiB)
    try:
        r = c.read_opt_reply()
        assert r.is_error, 'oversized option accepted: %r' % r
    except (NbdClosed, OSError):
        pass                       # closing the connection is fine too
    c.close()
    healthy(server)


def test_unknown_option_gets_err_unsup_and_session_continues(server):
    c = NbdClient.unix(server.sock)
    c.handshake()
    replies = c.option(0x7777, b'some payload')
    assert replies[-1].type == REP_ERR_UNSUP, replies
    assert c.structured_reply()
    c.go('w')
    assert c.read(0, 512) == b'\x3c' * 512
    c.disconnect()


def test_structured_reply_option_with_payload_is_invalid(server):
    c = NbdClient.unix(server.sock)
    c.handshake()
    replies = c.option(OPT_STRUCTURED_REPLY, b'xx')
    assert replies[-1].is_error, replies
    c.go('w')                      # the session is still usable
    assert c.read(0, 512) == b'\x3c' * 512
    c.disconnect()


def test_unknown_export_name_is_an_error(server):
    c = NbdClient.unix(server.sock)
    c.handshake()
    with pytest.raises(NbdError):
        c.go('no-such-export')
    c.go('r')
    assert c.read(0, 512) == b'\x3c' * 512
    c.disconnect()


@pytest.mark.parametrize('structured', [True, False],
                         ids=['structured', 'simple'])
def test_read_past_end_is_einval_and_connection_stays(server, structured):
    c = connect(server, structured=structured)
    for off, n in ((SIZE, 512), (SIZE - 512, 1024), (1 << 62, 512)):
        with pytest.raises(NbdError) as e:
            c.read(off, n)
        assert e.value.errno == EINVAL
    assert c.read(SIZE - 512, 512) == bytes(512)
    c.disconnect()


def test_write_past_end_fails_and_connection_stays(server):
    c = connect(server)
    with pytest.raises(NbdError) as e:
        c.write(SIZE - 512, b'\x01' * 1024)
    assert e.value.errno in (EINVAL, ENOSPC)
    assert c.read(SIZE - 1024, 1024) == bytes(1024)
    c.disconnect()


def test_write_to_read_only_export_is_eperm(server):
    c = connect(server, 'r')
    assert c.tflags & TF_READ_ONLY
    with pytest.raises(NbdError) as e:
        c.write(0, b'\x01' * 4096)
    assert e.value.errno == EPERM
    assert c.read(0, 4096) == b'\x3c' * 4096
    c.disconnect()


def test_truncated_request_then_disconnect(server):
    c = connect(server)
    hdr = struct.pack('>IHHQQI', REQUEST_MAGIC, 0, CMD_WRITE, 9, 0, 65536)
    c.send_raw(hdr + b'\x77' * 1000)    # 1000 of 65536 payload bytes
    c.close()
    healthy(server)
    # the partial write must not have happened
    c = connect(server)
    assert c.read(0, 4096) == b'\x3c' * 4096
    c.disconnect()


def test_truncated_header_then_disconnect(server):
    c = connect(server)
    c.send_raw(struct.pack('>IHH', REQUEST_MAGIC, 0, CMD_READ))
    c.close()
    healthy(server)


@pytest.mark.parametrize('cmd', [CMD_READ, CMD_WRITE],
                         ids=['read', 'write'])
def test_huge_request_length_errors_or_disconnects(server, cmd):
    c = connect(server)
    c.send_request(cmd, 0, 0xffffffff)
    try:
        r = c.read_reply({})
        assert r.error, 'a 4 GiB request succeeded'
    except (NbdClosed, OSError):
        pass
    c.close()
    healthy(server)


def test_disconnect_with_requests_in_flight(server):
    c = connect(server)
    c.sock.settimeout(2)
    try:
        for i in range(16):
            c.submit(CMD_READ, i * 4096, 4096)
            c.submit(CMD_WRITE, 2 * MiB + i * 4096, 4096,
                     data=b'\x42' * 4096)
    except (socket.timeout, OSError):
        pass       # the server stopped reading: back-pressure, fine
    c.close()
    healthy(server)


def test_flood_of_requests_without_reading_replies(server):
    c = connect(server)
    c.sock.settimeout(2)
    sent = 0
    try:
        for i in range(4000):
            c.send_request(CMD_READ, (i % 64) * 65536, 65536)
            sent += 1
    except (socket.timeout, OSError):
        pass       # the server stopped reading: back-pressure, fine
    assert sent > 0
    c.close()
    healthy(server)


def test_other_client_unaffected_by_hostile_one(server):
    good = connect(server)
    bad = NbdClient.unix(server.sock)
    bad.handshake()
    bad.send_raw(b'\xff' * 64)
    assert good.read(0, 65536) == b'\x3c' * 65536
    good.write(2 * MiB, b'\x99' * 4096)
    assert good.read(2 * MiB, 4096) == b'\x99' * 4096
    bad.close()
    good.disconnect()


def test_option_list_names_both_exports(server):
    c = NbdClient.unix(server.sock)
    c.handshake()
    assert sorted(c.list_exports()) == ['r', 'w']
    c.go('w')
    c.disconnect()


def test_raw_option_without_go_then_abort(server):
    c = NbdClient.unix(server.sock)
    c.handshake()
    c.send_raw(struct.pack('>QII', IHAVEOPT, 2, 0))    # NBD_OPT_ABORT
    assert c.is_closed()
    c.close()

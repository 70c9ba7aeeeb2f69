"""A small NBD client in pure Python, for tests that need to speak the
protocol byte by byte (hostile clients, many requests in flight).

Only the fixed newstyle handshake is supported. The client can send any
option or request, well-formed or not (send_raw, send_option with a lying
length), and read simple and structured replies. Nothing is hidden: every
reply is returned as a small object so the tests can judge it.

    c = NbdClient.unix(path)          # or NbdClient.tcp(host, port)
    c.handshake()                     # greeting + client flags
    c.structured_reply()              # optional, NBD_OPT_STRUCTURED_REPLY
    c.go('name')                      # NBD_OPT_GO -> (size, flags)
    data = c.read(0, 4096)            # raises NbdError(errno) on error
    c.write(0, b'x' * 512)
    c.disconnect()
"""
import socket
import struct

# Magic numbers and constants from the NBD protocol specification.
NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454f5054
OPT_REPLY_MAGIC = 0x0003e889045565a9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668e33ef

FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_META_CONTEXT = 4
REP_ERR_BIT = 1 << 31
REP_ERR_UNSUP = REP_ERR_BIT | 1
REP_ERR_POLICY = REP_ERR_BIT | 2
REP_ERR_INVALID = REP_ERR_BIT | 3
REP_ERR_UNKNOWN = REP_ERR_BIT | 6
REP_ERR_TOO_BIG = REP_ERR_BIT | 9

INFO_EXPORT = 0

TF_HAS_FLAGS = 1 << 0
TF_READ_ONLY = 1 << 1
TF_SEND_FLUSH = 1 << 2
TF_SEND_FUA = 1 << 3
TF_SEND_TRIM = 1 << 5
TF_SEND_WRITE_ZEROES = 1 << 6

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_REQ_ONE = 1 << 3

CHUNK_NONE = 0
CHUNK_OFFSET_DATA = 1
CHUNK_OFFSET_HOLE = 2
CHUNK_BLOCK_STATUS = 5
CHUNK_ERR_BIT = 1 << 15
CHUNK_FLAG_DONE = 1

STATE_HOLE = 1
STATE_ZERO = 2

EPERM = 1
EIO = 5
EINVAL = 22
ENOSPC = 28
ENOTSUP = 95


class NbdError(Exception):
    """The server answered a request with an error (errno in .errno)."""

    def __init__(self, errno, what=''):
        super().__init__('NBD error %d %s' % (errno, what))
        self.errno = errno


class NbdClosed(Exception):
    """The server closed the connection."""


class OptReply:
    """One option reply: option, type, payload bytes."""

    def __init__(self, opt, rtype, data):
        self.opt, self.type, self.data = opt, rtype, data

    @property
    def is_error(self):
        return bool(self.type & REP_ERR_BIT)

    def __repr__(self):
        return 'OptReply(opt=%d, type=0x%x, %d bytes)' % (
            self.opt, self.type, len(self.data))


class Reply:
    """The outcome of one request: error (0 = ok), data read, extents."""

    def __init__(self, handle):
        self.handle = handle
        self.error = 0
        self.data = None
        self.extents = []
        self.done = False


class NbdClient:
    """One connection to an NBD server (blocking socket, with a timeout)."""

    def __init__(self, sock):
        self.sock = sock
        self.structured = False
        self.size = None
        self.tflags = 0
        self.next_handle = 1
        self.meta_ids = {}

    # -- connecting -------------------------------------------------------

    @classmethod
    def unix(cls, path, timeout=10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        return cls(s)

    @classmethod
    def tcp(cls, host, port, timeout=10):
        s = socket.create_connection((host, port), timeout=timeout)
        return cls(s)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- raw I/O ----------------------------------------------------------

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        """Read exactly n bytes or raise NbdClosed."""
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise NbdClosed('server closed the connection after %d of '
                                '%d bytes' % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def is_closed(self, timeout=5):
        """True if the server closes the connection within @timeout
        seconds (data that arrives first is discarded)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            return True

    # -- handshake --------------------------------------------------------

    def handshake(self, client_flags=FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
        """Read the newstyle greeting and send our flags."""
        magic, opt_magic, flags = struct.unpack('>QQH', self.recv_exact(18))
        if magic != NBDMAGIC or opt_magic != IHAVEOPT:
            raise AssertionError('not a newstyle NBD server: %x %x'
                                 % (magic, opt_magic))
        assert flags & FLAG_FIXED_NEWSTYLE, 'server is not fixed newstyle'
        self.server_flags = flags
        self.no_zeroes = bool(flags & FLAG_NO_ZEROES & client_flags)
        self.send_raw(struct.pack('>I', client_flags))
        return flags

    def send_option(self, opt, data=b'', length=None):
        """Send one option; @length may lie about len(data)."""
        if length is None:
            length = len(data)
        self.send_raw(struct.pack('>QII', IHAVEOPT, opt, length) + data)

    def read_opt_reply(self):
        magic, opt, rtype, length = struct.unpack('>QIII',
                                                  self.recv_exact(20))
        assert magic == OPT_REPLY_MAGIC, 'bad option reply magic %x' % magic
        return OptReply(opt, rtype, self.recv_exact(length))

    def option(self, opt, data=b''):
        """Send an option and collect replies up to the final one (ACK or
        error). Returns the list of replies."""
        self.send_option(opt, data)
        replies = []
        while True:
            r = self.read_opt_reply()
            replies.append(r)
            if r.type == REP_ACK or r.is_error:
                return replies

    def structured_reply(self):
        r = self.option(OPT_STRUCTURED_REPLY)[-1]
        self.structured = r.type == REP_ACK
        return self.structured

    def list_exports(self):
        names = []
        for r in self.option(OPT_LIST):
            if r.type == REP_SERVER:
                n = struct.unpack('>I', r.data[:4])[0]
                names.append(r.data[4:4 + n].decode())
            elif r.is_error:
                raise NbdError(r.type, 'NBD_OPT_LIST')
        return names

    def set_meta_context(self, name, queries=('base:allocation',)):
        data = struct.pack('>I', len(name)) + name.encode()
        data += struct.pack('>I', len(queries))
        for q in queries:
            data += struct.pack('>I', len(q)) + q.encode()
        for r in self.option(OPT_SET_META_CONTEXT, data):
            if r.type == REP_META_CONTEXT:
                cid = struct.unpack('>I', r.data[:4])[0]
                self.meta_ids[cid] = r.data[4:].decode()
            elif r.is_error:
                raise NbdError(r.type, 'NBD_OPT_SET_META_CONTEXT')
        return self.meta_ids

    def go(self, name, opt=OPT_GO):
        """NBD_OPT_GO (or INFO): returns (size, transmission flags)."""
        data = struct.pack('>I', len(name)) + name.encode()
        data += struct.pack('>H', 0)
        size = None
        for r in self.option(opt, data):
            if r.type == REP_INFO:
                itype = struct.unpack('>H', r.data[:2])[0]
                if itype == INFO_EXPORT:
                    size, tflags = struct.unpack('>QH', r.data[2:12])
            elif r.is_error:
                raise NbdError(r.type, 'option %d for %r' % (opt, name))
        assert size is not None, 'no NBD_INFO_EXPORT in the reply'
        if opt == OPT_GO:
            self.size, self.tflags = size, tflags
        return size, tflags

    def connect(self, name, structured=True):
        """handshake + (structured replies) + GO, the usual sequence."""
        self.handshake()
        if structured:
            self.structured_reply()
        return self.go(name)

    # -- transmission -----------------------------------------------------

    def send_request(self, cmd, offset, length, flags=0, data=b'',
                     handle=None):
        """Send one request (no reply read); return its handle."""
        if handle is None:
            handle = self.next_handle
            self.next_handle += 1
        hdr = struct.pack('>IHHQQI', REQUEST_MAGIC, flags, cmd, handle,
                          offset, length)
        self.send_raw(hdr + data)
        return handle

    def read_reply(self, lengths):
        """Read until one reply is complete (structured replies to
        different requests may interleave their chunks) and return it.

        @lengths maps handle -> expected read length (simple replies carry
        data without saying how much). Returns a Reply."""
        if not hasattr(self, '_partial'):
            self._partial = {}
        while True:
            magic = struct.unpack('>I', self.recv_exact(4))[0]
            if magic == SIMPLE_REPLY_MAGIC:
                err, handle = struct.unpack('>IQ', self.recv_exact(12))
                r = Reply(handle)
                r.error = err
                n = lengths.get(handle, 0)
                if err == 0 and n:
                    r.data = self.recv_exact(n)
                r.done = True
                return r
            assert magic == STRUCTURED_REPLY_MAGIC, \
                'bad reply magic %x' % magic
            flags, ctype, handle, length = struct.unpack(
                '>HHQI', self.recv_exact(16))
            r = self._partial.get(handle)
            if r is None:
                r = self._partial[handle] = Reply(handle)
                n = lengths.get(handle, 0)
                r.data = bytearray(n) if n else None
            self._apply_chunk(r, ctype, self.recv_exact(length))
            if flags & CHUNK_FLAG_DONE:
                del self._partial[handle]
                r.done = True
                if r.data is not None:
                    r.data = bytes(r.data)
                return r

    def _apply_chunk(self, r, ctype, payload):
        """Fold one structured chunk into reply @r (offsets relative to
        the request's offset, stored by the caller in r.base)."""
        base = getattr(self, '_bases', {}).get(r.handle, 0)
        if ctype == CHUNK_OFFSET_DATA:
            off = struct.unpack('>Q', payload[:8])[0] - base
            r.data[off:off + len(payload) - 8] = payload[8:]
        elif ctype == CHUNK_OFFSET_HOLE:
            off, n = struct.unpack('>QI', payload[:12])
            r.data[off - base:off - base + n] = bytes(n)
        elif ctype == CHUNK_BLOCK_STATUS:
            cid = struct.unpack('>I', payload[:4])[0]
            for i in range(4, len(payload), 8):
                r.extents.append(struct.unpack('>II', payload[i:i + 8]))
            r.context = cid
        elif ctype & CHUNK_ERR_BIT:
            r.error = struct.unpack('>I', payload[:4])[0]
        elif ctype != CHUNK_NONE:
            raise AssertionError('unknown chunk type %d' % ctype)

    def submit(self, cmd, offset, length, flags=0, data=b''):
        """Send a request and remember what its reply will carry."""
        h = self.send_request(cmd, offset, length, flags, data)
        if not hasattr(self, '_bases'):
            self._bases, self._lengths = {}, {}
        self._bases[h] = offset
        self._lengths[h] = length if cmd == CMD_READ else 0
        return h

    def collect(self):
        """Read the next reply for a submitted request."""
        r = self.read_reply(self._lengths)
        self._bases.pop(r.handle, None)
        self._lengths.pop(r.handle, None)
        return r

    def request(self, cmd, offset, length, flags=0, data=b''):
        """One request, wait for its reply; raise NbdError on error."""
        h = self.submit(cmd, offset, length, flags, data)
        r = self.collect()
        assert r.handle == h, 'reply for handle %d, expected %d' % (
            r.handle, h)
        if r.error:
            raise NbdError(r.error, 'cmd %d at %d+%d' % (cmd, offset,
                                                         length))
        return r

    def read(self, offset, length, flags=0):
        return self.request(CMD_READ, offset, length, flags).data

    def write(self, offset, data, flags=0):
        self.request(CMD_WRITE, offset, len(data), flags, data)

    def flush(self):
        self.request(CMD_FLUSH, 0, 0)

    def block_status(self, offset, length, flags=0):
        return self.request(CMD_BLOCK_STATUS, offset, length, flags).extents

    def disconnect(self):
        try:
            self.send_request(CMD_DISC, 0, 0)
        except OSError:
            pass
        self.close()

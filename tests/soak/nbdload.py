"""Verified NBD load: many asyncio NBD connections, each with a fixed
number of requests in flight, mixed reads/writes/flushes at random
offsets, every byte checked against a model.

State: each connection owns a disjoint region of the export. Its model
maps a 4 KiB block to the generation of the last acknowledged write to
it (the data itself is derived from (block, generation), so the model is
small); blocks never written must read the original guest view, given
as a readable file object (the image converted to raw before the run).
No two requests of one connection in flight overlap, so "the last
acknowledged write" is always well defined and every read is exact.

Only the protocol parts the load needs are spoken: fixed newstyle
handshake, NBD_OPT_GO, simple replies (no structured replies).
"""
import asyncio
import os
import random
import struct

BLOCK = 4096
NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454f5054
OPT_REPLY_MAGIC = 0x0003e889045565a9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
OPT_GO = 7
REP_ACK = 1
REP_INFO = 3
REP_ERR_BIT = 1 << 31
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3


class LoadError(Exception):
    """A protocol failure, an error reply or a data mismatch."""


def block_data(blk, gen):
    """The 4 KiB written to block @blk by its write number @gen."""
    return struct.pack('>QQ', 0x534f414b00000000 | blk, gen) * (BLOCK // 16)


class Stats:
    """Counters shared by every connection of one run."""

    def __init__(self):
        self.reads = self.writes = self.flushes = 0
        self.bytes_read = self.bytes_written = 0
        self.verified_blocks = 0      # read blocks checked against the model
        self.verified_written = 0     # of those, blocks that had been written
        self.errors = []              # first few error descriptions
        self.nerrors = 0

    def error(self, what):
        self.nerrors += 1
        if len(self.errors) < 10:
            self.errors.append(what)

    @property
    def ops(self):
        return self.reads + self.writes + self.flushes


class NbdConn:
    """One asyncio NBD connection with a reply dispatcher task."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.pending = {}             # handle -> (future, read length)
        self.next_handle = 1
        self.size = None
        self.task = None

    @classmethod
    async def open_unix(cls, path, export):
        r, w = await asyncio.open_unix_connection(path, limit=1 << 20)
        c = cls(r, w)
        await c._handshake(export)
        c.task = asyncio.get_running_loop().create_task(c._dispatch())
        return c

    async def _handshake(self, export):
        """Fixed newstyle greeting, NO_ZEROES, NBD_OPT_GO @export."""
        hdr = await self.r.readexactly(18)
        magic, opt, flags = struct.unpack('>QQH', hdr)
        if magic != NBDMAGIC or opt != IHAVEOPT or not flags & 1:
            raise LoadError('not a fixed newstyle NBD server')
        self.w.write(struct.pack('>I', 3))
        name = export.encode()
        data = struct.pack('>I', len(name)) + name + struct.pack('>H', 0)
        self.w.write(struct.pack('>QII', IHAVEOPT, OPT_GO, len(data)) + data)
        while True:
            magic, _, rtype, n = struct.unpack(
                '>QIII', await self.r.readexactly(20))
            payload = await self.r.readexactly(n)
            if magic != OPT_REPLY_MAGIC or rtype & REP_ERR_BIT:
                raise LoadError('NBD_OPT_GO %r refused (reply 0x%x)'
                                % (export, rtype))
            if rtype == REP_INFO and struct.unpack('>H', payload[:2])[0] == 0:
                self.size = struct.unpack('>Q', payload[2:10])[0]
            if rtype == REP_ACK:
                break
        if self.size is None:
            raise LoadError('no export size in NBD_OPT_GO reply')

    async def _dispatch(self):
        """Read simple replies and complete their futures; on EOF or a
        protocol error fail every pending request."""
        try:
            while True:
                magic, err, handle = struct.unpack(
                    '>IIQ', await self.r.readexactly(16))
                if magic != SIMPLE_REPLY_MAGIC or handle not in self.pending:
                    raise LoadError('bad reply magic 0x%x handle %d'
                                    % (magic, handle))
                fut, n = self.pending.pop(handle)
                data = await self.r.readexactly(n) if n and not err else b''
                if not fut.done():
                    fut.set_result((err, data))
        except (asyncio.IncompleteReadError, ConnectionError,
                LoadError) as e:
            for fut, _ in self.pending.values():
                if not fut.done():
                    fut.set_exception(LoadError('connection lost: %r' % e))
            self.pending.clear()

    async def request(self, cmd, offset, length, data=b''):
        """Send one request, return (errno, data)."""
        h = self.next_handle
        self.next_handle += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[h] = (fut, length if cmd == CMD_READ else 0)
        self.w.write(struct.pack('>IHHQQI', REQUEST_MAGIC, 0, cmd, h,
                                 offset, length) + data)
        await self.w.drain()
        return await fut

    async def close(self):
        try:
            self.w.write(struct.pack('>IHHQQI', REQUEST_MAGIC, 0, CMD_DISC,
                                     0, 0, 0))
            await self.w.drain()
            self.w.close()
        except ConnectionError:
            pass
        if self.task:
            self.task.cancel()


class Region:
    """One connection's blocks [first, first + count), its model and the
    blocks its requests in flight cover."""

    def __init__(self, idx, first, count, original, stats, rnd):
        self.idx, self.first, self.count = idx, first, count
        self.original = original      # file object: the original view
        self.stats = stats
        self.rnd = rnd
        self.model = {}               # block -> generation of last write
        self.busy = set()
        self.gen = 0

    def pick(self, max_blocks):
        """A random free range (start block, n) or None if none found."""
        for _ in range(16):
            n = self.rnd.randint(1, min(max_blocks, self.count))
            start = self.first + self.rnd.randrange(self.count - n + 1)
            rng = range(start, start + n)
            if not any(b in self.busy for b in rng):
                self.busy.update(rng)
                return start, n
        return None

    def expected(self, start, n):
        """The bytes blocks [start, start+n) must read now."""
        out = []
        for b in range(start, start + n):
            g = self.model.get(b)
            if g is None:
                self.original.seek(b * BLOCK)
                out.append(self.original.read(BLOCK))
            else:
                out.append(block_data(b, g))
        return b''.join(out)

    def verify(self, start, n, data, where):
        """Compare a read of [start, start+n) with the model."""
        exp = self.expected(start, n)
        self.stats.verified_blocks += n
        self.stats.verified_written += sum(
            1 for b in range(start, start + n) if b in self.model)
        if data == exp:
            return
        for i in range(n):
            got = data[i * BLOCK:(i + 1) * BLOCK]
            if got != exp[i * BLOCK:(i + 1) * BLOCK]:
                self.stats.error('%s: conn %d block %d (offset %d) reads '
                                 'wrong data (gen %s, got %r...)'
                                 % (where, self.idx, start + i,
                                    (start + i) * BLOCK,
                                    self.model.get(start + i), got[:16]))
                return


async def _slot(conn, region, stop, read_pct, max_blocks):
    """One of a connection's request slots: issue requests until @stop."""
    st = region.stats
    while not stop.is_set():
        rng = region.pick(max_blocks)
        if rng is None:
            await asyncio.sleep(0.001)
            continue
        start, n = rng
        try:
            roll = region.rnd.randrange(1000)
            if roll < 10:
                err, _ = await conn.request(CMD_FLUSH, 0, 0)
                st.flushes += 1
                if err:
                    st.error('flush on conn %d: errno %d' % (region.idx, err))
            elif roll < read_pct * 10:
                err, data = await conn.request(CMD_READ, start * BLOCK,
                                               n * BLOCK)
                st.reads += 1
                if err:
                    st.error('read conn %d %d+%d: errno %d'
                             % (region.idx, start * BLOCK, n * BLOCK, err))
                else:
                    st.bytes_read += n * BLOCK
                    region.verify(start, n, data, 'read')
            else:
                region.gen += 1
                g = region.gen
                data = b''.join(block_data(b, g)
                                for b in range(start, start + n))
                err, _ = await conn.request(CMD_WRITE, start * BLOCK,
                                            n * BLOCK, data)
                st.writes += 1
                if err:
                    # the blocks' content is now unknown: stop checking them
                    st.error('write conn %d %d+%d: errno %d'
                             % (region.idx, start * BLOCK, n * BLOCK, err))
                else:
                    st.bytes_written += n * BLOCK
                    for b in range(start, start + n):
                        region.model[b] = g
        finally:
            region.busy.difference_update(range(start, start + n))


async def verify_all(conn, region, chunk_blocks=64):
    """Read the whole region back through @conn and check it."""
    b = region.first
    end = region.first + region.count
    while b < end:
        n = min(chunk_blocks, end - b)
        err, data = await conn.request(CMD_READ, b * BLOCK, n * BLOCK)
        if err:
            region.stats.error('final read %d+%d: errno %d'
                               % (b * BLOCK, n * BLOCK, err))
        else:
            region.verify(b, n, data, 'final read')
        b += n


def verify_file(path, regions, stats):
    """Check a raw image file (the base after an active commit) against
    every region's model; returns the number of blocks checked."""
    checked = 0
    with open(path, 'rb') as f:
        for reg in regions:
            f.seek(reg.first * BLOCK)
            data = f.read(reg.count * BLOCK)
            reg.verify(reg.first, reg.count, data, 'file %s' % path)
            checked += reg.count
    return checked


class Load:
    """@nconn connections to export @export on unix socket @sock, each
    with @depth requests in flight over its own region of the first
    @size bytes; @original is the path of the raw original view."""

    def __init__(self, sock, export, size, original, nconn=64, depth=16,
                 read_pct=70, max_kib=64, seed=None):
        self.sock, self.export = sock, export
        self.nconn, self.depth = nconn, depth
        self.read_pct, self.max_blocks = read_pct, max_kib * 1024 // BLOCK
        self.seed = seed if seed is not None else \
            int.from_bytes(os.urandom(4), 'big')
        self.stats = Stats()
        self.stop = asyncio.Event()
        self.orig = open(original, 'rb')
        per = size // BLOCK // nconn
        self.regions = [Region(i, i * per, per, self.orig, self.stats,
                               random.Random(self.seed * 1000 + i))
                        for i in range(nconn)]
        self.conns = []
        self.tasks = []

    async def connect(self):
        """Open every connection (all must be accepted)."""
        for _ in range(self.nconn):
            self.conns.append(await NbdConn.open_unix(self.sock, self.export))

    def start(self):
        loop = asyncio.get_running_loop()
        for c, reg in zip(self.conns, self.regions):
            for _ in range(self.depth):
                self.tasks.append(loop.create_task(_slot(
                    c, reg, self.stop, self.read_pct, self.max_blocks)))

    async def finish(self):
        """Stop issuing, wait for requests in flight, read everything
        back, disconnect."""
        self.stop.set()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                self.stats.error('load task failed: %r' % r)
        await asyncio.gather(*(verify_all(c, reg)
                               for c, reg in zip(self.conns, self.regions)))
        for c in self.conns:
            await c.close()

    def close(self):
        self.orig.close()

#!/usr/bin/python3
"""Write the seed corpora of fuzz-nbd and fuzz-keyval (tests/fuzz/).

Run from anywhere: python3 tests/fuzz/gen-corpus.py. Seeds are small,
named after what they exercise, and overwrite same-named files only;
regress-* inputs (crashes found by fuzzing) are never touched.

fuzz-nbd seeds are complete client byte streams for the server's fixture
(exports "fz", writable, and "ro", read-only, 1 MiB each); fuzz-keyval
seeds are one selector byte (see fuzz-keyval.c) plus an option string.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

OPTS_MAGIC = 0x49484156454F5054
REQ_MAGIC = 0x25609513
(OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO,
 OPT_STRUCTURED, OPT_LIST_META, OPT_SET_META) = (1, 2, 3, 5, 6, 7, 8, 9, 10)
(READ, WRITE, DISC, FLUSH, TRIM, CACHE, WZEROES, BSTATUS) = range(8)
FLAG_FUA, FLAG_NO_HOLE, FLAG_DF, FLAG_REQ_ONE, FLAG_FAST_ZERO = 1, 2, 4, 8, 16


def hello(flags=3):
    """Client flags: fixed newstyle + no zeroes."""
    return struct.pack('>I', flags)


def opt(code, data=b''):
    return struct.pack('>QII', OPTS_MAGIC, code, len(data)) + data


def go(name, infos=(), code=OPT_GO):
    n = name.encode()
    body = struct.pack('>I', len(n)) + n + struct.pack('>H', len(infos))
    return opt(code, body + b''.join(struct.pack('>H', i) for i in infos))


def meta(code, export, queries):
    e = export.encode()
    body = struct.pack('>I', len(e)) + e + struct.pack('>I', len(queries))
    for q in queries:
        body += struct.pack('>I', len(q)) + q.encode()
    return opt(code, body)


def req(typ, offset=0, length=0, flags=0, cookie=1, payload=b''):
    return struct.pack('>IHHQQI', REQ_MAGIC, flags, typ, cookie, offset,
                       length) + payload


DISC_REQ = req(DISC, cookie=99)

NBD_SEEDS = {
    'go-read': hello() + go('fz') + req(READ, 0, 4096) + DISC_REQ,
    'go-write-flush': hello() + go('fz') +
        req(WRITE, 4096, 512, FLAG_FUA, 2, b'\xab' * 512) +
        req(FLUSH, cookie=3) + req(READ, 4096, 512, cookie=4) + DISC_REQ,
    'export-name': hello(1) + opt(OPT_EXPORT_NAME, b'fz') +
        req(READ, 512, 512) + DISC_REQ,
    'structured-read': hello() + opt(OPT_STRUCTURED) + go('fz') +
        req(READ, 0, 131072, FLAG_DF) + req(READ, 8192, 512, cookie=2) +
        DISC_REQ,
    'block-status': hello() + opt(OPT_STRUCTURED) +
        meta(OPT_SET_META, 'fz', ['base:allocation']) + go('fz') +
        req(BSTATUS, 0, 1048576) +
        req(BSTATUS, 4096, 65536, FLAG_REQ_ONE, 2) + DISC_REQ,
    'list-meta': hello() + opt(OPT_STRUCTURED) +
        meta(OPT_LIST_META, 'ro', []) +
        meta(OPT_LIST_META, 'ro', ['base:', 'qemu:dirty-bitmap:x']) +
        opt(OPT_ABORT),
    'list-abort': hello() + opt(OPT_LIST) + opt(OPT_ABORT),
    'info-ro': hello() + go('ro', (0, 1, 2, 3), OPT_INFO) +
        go('ro', (3,)) + req(READ, 0, 1) + DISC_REQ,
    'ro-write': hello() + go('ro') +
        req(WRITE, 0, 16, payload=b'x' * 16) + req(TRIM, 0, 4096, cookie=2) +
        req(WZEROES, 0, 4096, cookie=3) + DISC_REQ,
    'trim-zero-cache': hello() + go('fz') + req(TRIM, 65536, 65536) +
        req(WZEROES, 0, 8192, FLAG_FAST_ZERO, 2) +
        req(WZEROES, 8192, 8192, FLAG_NO_HOLE, 3) +
        req(CACHE, 0, 65536, cookie=4) + DISC_REQ,
    'bad-request-magic': hello() + go('fz') + b'\x12\x34\x56\x78' +
        b'\0' * 24,
    'out-of-range': hello() + go('fz') +
        req(READ, 1048576 - 512, 1024) + req(READ, 0, 0, cookie=2) +
        req(READ, 0, 0x7fffffff, cookie=3) +
        req(READ, 0xffffffffffffff00, 512, cookie=4) +
        req(17, 0, 512, cookie=5) + DISC_REQ,
    'unknown-option': hello() + opt(99, b'junk') + go('nope') +
        opt(OPT_STARTTLS) + opt(OPT_ABORT),
    'truncated-write': hello() + go('fz') +
        req(WRITE, 0, 65536, payload=b'\1' * 100),
    'pipelined': hello() + go('fz') + b''.join(
        req(READ, i * 4096, 4096, cookie=i) for i in range(24)) + DISC_REQ,
    'bad-flags': hello(0x80) + go('fz'),
    'option-too-long': hello() + struct.pack('>QII', OPTS_MAGIC, OPT_GO,
                                             0x7fffffff) + b'\0' * 16,
}

# selector byte: 0 blockdev keyval, 1 blockdev JSON, 2 nbd-server,
# 3 export, 4 drive/image-opts, 5 sizes (fuzz-keyval.c).
KEYVAL_SEEDS = {
    'blockdev-qcow2': (0, 'qcow2,node-name=n0,file.driver=file,'
                          'file.filename=a.qcow2,backing=null'),
    'blockdev-file': (0, 'driver=file,node-name=f,filename=x.raw,'
                         'aio=io_uring,cache.direct=on,read-only=on'),
    'blockdev-commas': (0, 'file,node-name=c,filename=a,,b.img'),
    'blockdev-nbd': (0, 'nbd,node-name=r,server.type=inet,'
                        'server.host=localhost,server.port=10809,export=e'),
    'blockdev-http': (0, 'driver=https,node-name=h,url=https://example.'
                         'org/a.img,readahead=64k,sslverify=off,timeout=5'),
    'blockdev-blkdebug': (0, 'blkdebug,node-name=d,image.driver=file,'
                             'image.filename=x,inject-error.0.event=read_aio,'
                             'inject-error.0.errno=5'),
    'blockdev-json': (1, '{"driver": "qcow2", "node-name": "j", "file": '
                         '{"driver": "file", "filename": "a.qcow2"}, '
                         '"backing": null, "discard": "unmap"}'),
    'blockdev-json-ref': (1, '{"driver":"raw","node-name":"r","file":"f",'
                             '"offset":512,"size":1048576}'),
    'blockdev-json-quotes': (1, "{'driver': 'file', 'filename': 'a\\u00e9',"
                                " 'node-name': 'q', 'locking': 'off'}"),
    'blockdev-json-bad': (1, '{"driver": "qcow2", "file": [1, 2.5e3, true]'),
    'nbd-server-unix': (2, 'addr.type=unix,addr.path=/tmp/x.sock,'
                           'max-connections=4'),
    'nbd-server-inet': (2, 'addr.type=inet,addr.host=::1,addr.port=0'),
    'export-nbd': (3, 'nbd,id=e0,node-name=n0,name=disk,writable=on,'
                      'description=d'),
    'export-bitmap': (3, 'type=nbd,id=e1,node-name=n,bitmaps.0=b0'),
    'drive': (4, 'file=a.qcow2,format=qcow2,if=none,id=d0,cache=none,'
                 'copy-on-read=on'),
    'image-opts-nested': (4, 'driver=qcow2,file.driver=file,file.filename=x,'
                             'a.b.c=1,a.b.d=2,list.0=x,list.1=y'),
    'keyval-dup-key': (4, 'a=1,a=2,b.c=3,b=4'),
    'sizes': (5, '64k'),
    'size-overflow': (5, '16E'),
    'size-fraction': (5, '1.5G'),
}


def write(dirname, name, data):
    path = os.path.join(HERE, dirname, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def main():
    for name, data in NBD_SEEDS.items():
        write('corpus-nbd', name, data)
    for name, (sel, text) in KEYVAL_SEEDS.items():
        write('corpus-keyval', name, bytes([sel]) + text.encode())


if __name__ == '__main__':
    main()

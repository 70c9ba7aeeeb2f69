"""The http protocol driver (block/curl.c) against a real nginx.

Each test starts its own nginx (generated config in a temp dir, an
ephemeral port on 127.0.0.1, no daemon mode, pid and logs in the temp
dir) serving a directory that holds a raw image of random data. QEMU's
qemu-img/qemu-io judge what qblk read: plain reads, a qcow2 overlay whose
backing file is the URL (read with copy-on-read through qblk's NBD export
and nbdcopy), error messages for 404 and refused connections, and writes
being refused.
"""
import os
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from daemon import free_tcp_port
from qblk_testlib import MiB

SIZE = 4 * MiB

NGINX_CONF = """daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
    }}
}}
"""


def dump_bytes(out):
    """The bytes of every hex dump line ("0000abcd:  xx xx ...  ascii")."""
    got = bytearray()
    for line in out.splitlines():
        m = re.match(r'^[0-9a-f]{8}:\s((?: [0-9a-f]{2})+)', line)
        if m:
            got += bytes.fromhex(m.group(1))
    return bytes(got)


def nginx_binary():
    for p in (shutil.which('nginx'), '/usr/sbin/nginx'):
        if p and os.access(p, os.X_OK):
            return p
    pytest.skip('nginx is not installed (scripts/install-deps.sh)')


def make_overlay(qemu_img, url, top):
    """qemu-img create -b URL -F raw; -u with an explicit size, so that
    qemu-img need not open the URL (Debian's qemu-img has no curl driver
    without qemu-block-extra)."""
    qemu_img.ok('create', '-f', 'qcow2', '-u', '-b', url, '-F', 'raw', top,
                str(SIZE))


@pytest.fixture
def web(tmp_path):
    """An nginx serving tmp_path/www; yields (www dir, base URL)."""
    nginx = nginx_binary()
    d = str(tmp_path)
    os.makedirs(os.path.join(d, 'www'))
    os.makedirs(os.path.join(d, 'tmp'))
    port = free_tcp_port()
    conf = os.path.join(d, 'nginx.conf')
    with open(conf, 'w') as f:
        if os.geteuid() == 0:
            # workers would drop to "nobody", who cannot read the temp dir
            f.write('user root;\n')
        f.write(NGINX_CONF.format(d=d, port=port))
    proc = subprocess.Popen([nginx, '-c', conf, '-p', d + '/'],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = 'http://127.0.0.1:%d' % port
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(url + '/', timeout=1).close()
            break
        except urllib.error.HTTPError:
            break       # 403/404 for the index: the server is up
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail('nginx did not start: %s'
                            % proc.stderr.read().decode())
            time.sleep(0.05)
    try:
        yield os.path.join(d, 'www'), url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def base(web):
    """A raw image of random data in the served directory; (path, url)."""
    www, url = web
    path = os.path.join(www, 'base.raw')
    with open(path, 'wb') as f:
        f.write(os.urandom(SIZE))
    return path, url + '/base.raw'


def test_http_convert_equals_file(qblk_img, base, tmp_path):
    path, url = base
    out = str(tmp_path / 'out.raw')
    qblk_img.ok('convert', '-f', 'raw', '-O', 'raw', url, out)
    with open(out, 'rb') as a, open(path, 'rb') as b:
        assert a.read() == b.read()


def test_http_blockdev_reads_match(qblk_io, base):
    """Unaligned reads through --image-opts driver=http equal the file."""
    path, url = base
    with open(path, 'rb') as f:
        data = f.read()
    for off, n in ((0, 512), (12345, 7000), (SIZE - 4096, 4096),
                   (MiB - 100, 300000)):
        rc, out, err = qblk_io('-r', '--image-opts', '-c',
                               'read -v %d %d' % (off, n),
                               'driver=raw,file.driver=http,file.url=' + url)
        assert rc == 0, err
        assert dump_bytes(out) == data[off:off + n], (off, n)


def test_http_readahead_and_timeout_options(qblk_img, base, tmp_path):
    path, url = base
    out = str(tmp_path / 'out.raw')
    qblk_img.ok('convert', '--image-opts', '-O', 'raw',
                'driver=raw,file.driver=http,file.url=%s,'
                'file.readahead=1M,file.timeout=30' % url, out)
    with open(out, 'rb') as a, open(path, 'rb') as b:
        assert a.read() == b.read()
    rc, out, err = qblk_img('info', '--image-opts',
                            'driver=http,url=%s,readahead=1000' % url)
    assert rc != 0 and 'readahead' in err, err


def test_http_overlay_qblk_io(qblk_io, qemu_img, base, tmp_path):
    """A qcow2 overlay made by qemu-img over the URL opens in qblk; reads
    show base data where the overlay is unallocated."""
    path, url = base
    top = str(tmp_path / 'top.qcow2')
    make_overlay(qemu_img, url, top)
    with open(path, 'rb') as f:
        f.seek(65536)
        chunk = f.read(512)
    rc, out, err = qblk_io('-c', 'write -P 0xab 0 65536',
                           '-c', 'read -P 0xab 0 65536',
                           '-c', 'read -v 65536 512', top)
    assert rc == 0 and 'Pattern verification failed' not in out, out + err
    assert dump_bytes(out) == chunk


def test_http_overlay_cor_nbd(daemon, qemu_img, qblk_io, nbdcopy, base):
    """-drive copy-on-read over an http backing: nbdcopy reads base +
    overlay data, and the top gets populated (judged by qemu-img)."""
    path, url = base
    top = daemon.path('top.qcow2')
    make_overlay(qemu_img, url, top)
    qblk_io.ok('-f', 'qcow2', '-c', 'write -P 0x5a 1M 64k', top)
    expect = daemon.path('expect.raw')
    shutil.copyfile(path, expect)
    with open(expect, 'r+b') as f:
        f.seek(MiB)
        f.write(b'\x5a' * 65536)
    d = daemon.nbd(['-drive', 'file=%s,format=qcow2,id=drive0,'
                    'copy-on-read=on' % top], export='drive0',
                   writable=False)
    out = daemon.path('out.raw')
    rc, _, err = nbdcopy(d.uri, out)
    assert rc == 0, err
    d.stop()
    with open(out, 'rb') as a, open(expect, 'rb') as b:
        assert a.read() == b.read()
    # the top alone (backing removed) now holds everything
    qemu_img.ok('rebase', '-u', '-f', 'qcow2', '-b', '', top)
    qemu_img.ok('check', '-f', 'qcow2', top)
    qemu_img.ok('compare', '-f', 'qcow2', '-F', 'raw', top, expect)


def test_http_blockdev_nbd_export_parallel(daemon, nbdcopy, base):
    """--blockdev driver=http exported over NBD; nbdcopy keeps many reads
    in flight (several transfers on the one multi handle)."""
    path, url = base
    d = daemon.nbd(['--blockdev', 'driver=http,node-name=h,url=%s,'
                    'readahead=0' % url], export='h', writable=False)
    out = daemon.path('out.raw')
    rc, _, err = nbdcopy('--requests=16', '--request-size=65536', d.uri,
                         out)
    assert rc == 0, err
    d.stop()
    with open(out, 'rb') as a, open(path, 'rb') as b:
        assert a.read() == b.read()


def test_http_404_names_url_and_status(qblk_img, web):
    www, url = web
    rc, out, err = qblk_img('info', url + '/missing.raw')
    assert rc != 0
    assert "'%s/missing.raw'" % url in err and 'HTTP 404' in err, err


def test_http_connection_refused(qblk_img):
    port = free_tcp_port()
    url = 'http://127.0.0.1:%d/x.raw' % port
    rc, out, err = qblk_img('info', url)
    assert rc != 0
    assert "'%s'" % url in err and 'connect' in err.lower(), err


def test_http_write_refused(qblk_io, base):
    path, url = base
    with open(path, 'rb') as f:
        before = f.read()
    rc, out, err = qblk_io('-f', 'raw', '-c', 'write -P 1 0 512', url)
    assert 'write failed' in out + err
    assert 'not permitted' in (out + err).lower() or \
        'read-only' in (out + err).lower(), out + err
    with open(path, 'rb') as f:
        assert f.read() == before

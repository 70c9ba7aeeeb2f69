"""The http protocol driver (block/curl.c) against a real nginx.

Each test starts its own nginx (generated config in a temp dir, an
ephemeral port on 127.0.0.1, no daemon mode, pid and logs in the temp
dir) serving a directory that holds a raw image of random data. QEMU's
qemu-img/qemu-io judge what qblk read: plain reads, a qcow2 overlay whose
backing file is the URL (read with copy-on-read through qblk's NBD export
and nbdcopy), error messages for 404 and refused connections, and writes
being refused.
"""
import http.server
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from daemon import free_tcp_port
from qblk_testlib import MiB
from remote_servers import read_access_log, tcp_open, write_nginx_conf

SIZE = 4 * MiB


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


def make_cert(d):
    """A self-signed certificate for 127.0.0.1 in d: (cert, key)."""
    openssl = shutil.which('openssl')
    if not openssl:
        pytest.skip('openssl is not installed (scripts/install-deps.sh)')
    cert, key = os.path.join(d, 'cert.pem'), os.path.join(d, 'key.pem')
    subprocess.run([openssl, 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1',
                    '-keyout', key, '-out', cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def htpasswd_line(user, password):
    """user:$apr1$... for nginx auth_basic_user_file."""
    h = subprocess.run(['openssl', 'passwd', '-apr1', password], check=True,
                       stdout=subprocess.PIPE).stdout.decode().strip()
    return '%s:%s\n' % (user, h)


class Nginx:
    """An nginx in directory d (serving d/www) that a test can stop and
    start again on the same port: .url, .www, .access_ranges()."""

    def __init__(self, d, ssl=False, auth=None, extra=''):
        self.d, self.ssl = d, ssl
        self.www = os.path.join(d, 'www')
        os.makedirs(self.www, exist_ok=True)
        self.port = free_tcp_port()
        self.proc = None
        scheme = 'https' if ssl else 'http'
        self.url = '%s://127.0.0.1:%d' % (scheme, self.port)
        listen = '127.0.0.1:%d' % self.port
        if ssl:
            cert, key = make_cert(d)
            listen += ' ssl'
            extra += ('\n        ssl_certificate %s;'
                      '\n        ssl_certificate_key %s;' % (cert, key))
        if auth:
            with open(os.path.join(d, 'htpasswd'), 'w') as f:
                f.write(htpasswd_line(*auth))
            extra += ('\n        auth_basic "images";'
                      '\n        auth_basic_user_file %s/htpasswd;' % d)
        self.conf = write_nginx_conf(d, listen, self.www, extra)

    def start(self):
        self.proc = subprocess.Popen([nginx_binary(), '-c', self.conf,
                                      '-p', self.d + '/'],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not tcp_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail('nginx did not start: %s'
                            % self.proc.stderr.read().decode())
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def access_log(self):
        """[(method, uri, status, range header)] of every request so far."""
        return [e[:4] for e in read_access_log(self.d)]


@pytest.fixture
def web(tmp_path):
    """An nginx serving tmp_path/www; yields (www dir, base URL)."""
    n = Nginx(str(tmp_path)).start()
    try:
        yield n.www, n.url
    finally:
        n.stop()


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
    # a URL in an image header is only followed when the user allows it
    rc, out, err = qblk_io('-c', 'read 0 512', top)
    assert rc != 0 and url in err and 'protocol \'http\'' in err, out + err
    rc, out, err = qblk_io('--backing-protocols=file,http',
                           '-c', 'write -P 0xab 0 65536',
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
    qblk_io.ok('--backing-protocols=http', '-f', 'qcow2', '-c',
               'write -P 0x5a 1M 64k', top)
    expect = daemon.path('expect.raw')
    shutil.copyfile(path, expect)
    with open(expect, 'r+b') as f:
        f.seek(MiB)
        f.write(b'\x5a' * 65536)
    d = daemon.nbd(['--backing-protocols', 'file,nbd,http,https', '-drive', 'file=%s,format=qcow2,id=drive0,'
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


# ---- authentication (username / password-secret), HTTPS, error details

USER, PASSWORD = 'guest', 'Sesame-0pen'


def serve_random_base(n):
    """Fill @n's www with SIZE random bytes as base.raw, start it and
    yield (n, data); stop it afterwards (for fixtures)."""
    data = os.urandom(SIZE)
    with open(os.path.join(n.www, 'base.raw'), 'wb') as f:
        f.write(data)
    n.start()
    try:
        yield n, data
    finally:
        n.stop()


@pytest.fixture
def auth_web(tmp_path):
    """An nginx with HTTP basic auth (USER/PASSWORD) serving base.raw;
    yields (Nginx, data)."""
    yield from serve_random_base(Nginx(str(tmp_path), auth=(USER, PASSWORD)))


def test_http_auth_401_without_credentials(qblk_img, auth_web):
    n, _ = auth_web
    url = n.url + '/base.raw'
    rc, out, err = qblk_img('info', url)
    assert rc != 0
    assert "'%s'" % url in err and 'HTTP 401' in err, err


def test_http_auth_password_secret_reads(daemon, nbdcopy, auth_web):
    """--object secret + username/password-secret: the export reads the
    whole image correctly over an authenticated server."""
    n, data = auth_web
    d = daemon.nbd(['--object', 'secret,id=sec0,data=' + PASSWORD,
                    '--blockdev', 'driver=http,node-name=h,url=%s/base.raw,'
                    'username=%s,password-secret=sec0' % (n.url, USER)],
                   export='h', writable=False)
    out = daemon.path('out.raw')
    rc, _, err = nbdcopy(d.uri, out)
    assert rc == 0, err
    d.stop()
    with open(out, 'rb') as f:
        assert f.read() == data


def test_http_auth_tools_take_object(qblk_img, qblk_io, auth_web,
                                     tmp_path):
    """qblk-img and qblk-io take --object as qemu-img and qemu-io do: a
    convert from the authenticated server equals the data, qblk-io reads
    a pattern-free range back, and a bad --object fails before opening."""
    n, data = auth_web
    opts = ('driver=http,url=%s/base.raw,username=%s,password-secret=sec0'
            % (n.url, USER))
    secret = 'secret,id=sec0,data=' + PASSWORD
    out = str(tmp_path / 'out.raw')
    qblk_img.ok('convert', '--object', secret, '--image-opts', opts,
                '-O', 'raw', out)
    with open(out, 'rb') as f:
        assert f.read() == data
    r = qblk_io.ok('--object', secret, '--image-opts', '-r',
                   '-c', 'read -v 4096 16', opts)
    assert ''.join('%02x' % b for b in data[4096:4100]) in \
        r.replace(' ', ''), r
    rc, _, err = qblk_img('info', '--object', 'secret,id=sec0',
                          '--image-opts', opts)
    assert rc == 1 and "Either 'file' or 'data' must be provided" in err, err


def test_http_auth_wrong_password_refused(daemon, auth_web):
    """A wrong password: the open fails naming the URL and HTTP 401, and
    the password itself is never printed."""
    n, _ = auth_web
    url = n.url + '/base.raw'
    d = daemon.run(['--object', 'secret,id=sec0,data=Wrong-Pass-123',
                    '--blockdev', 'driver=http,node-name=h,url=%s,'
                    'username=%s,password-secret=sec0' % (url, USER)])
    assert d.returncode != 0
    assert url in d.stderr and 'HTTP 401' in d.stderr, d.stderr
    assert 'Wrong-Pass-123' not in d.stderr.replace(
        'data=Wrong-Pass-123', '')


def test_http_missing_secret_refused(qblk_img, base):
    path, url = base
    rc, out, err = qblk_img('info', '--image-opts',
                            'driver=http,url=%s,username=u,'
                            'password-secret=nosuch' % url)
    assert rc != 0 and "No secret with id 'nosuch'" in err, err


@pytest.fixture
def https_web(tmp_path):
    """An nginx serving base.raw over HTTPS with a self-signed
    certificate; yields (Nginx, data)."""
    yield from serve_random_base(Nginx(str(tmp_path), ssl=True))


def test_https_sslverify_off_reads_match(qblk_io, https_web):
    n, data = https_web
    url = n.url + '/base.raw'
    for off, cnt in ((0, 4096), (SIZE - 70000, 70000)):
        rc, out, err = qblk_io('-r', '--image-opts', '-c',
                               'read -v %d %d' % (off, cnt),
                               'driver=raw,file.driver=https,'
                               'file.sslverify=off,file.url=' + url)
        assert rc == 0, err
        assert dump_bytes(out) == data[off:off + cnt]


def test_https_self_signed_refused_by_default(qblk_img, https_web):
    n, _ = https_web
    url = n.url + '/base.raw'
    rc, out, err = qblk_img('info', url)
    assert rc != 0
    assert "'%s'" % url in err and 'certificate' in err.lower(), err


def test_http_read_error_detail_traced(qblk_io, tmp_path):
    """Range reads answered 503 (HEAD works): the read fails and the
    noted detail names the URL and the status."""
    n = Nginx(str(tmp_path), extra='        location = /flaky.raw '
              '{ if ($http_range) { return 503; } }')
    with open(os.path.join(n.www, 'flaky.raw'), 'wb') as f:
        f.write(os.urandom(SIZE))
    n.start()
    try:
        url = n.url + '/flaky.raw'
        rc, out, err = qblk_io('-T', 'bdrv_note_io_error', '-f', 'raw',
                               '-c', 'read 0 4096', url)
        assert 'read failed' in out + err, out + err
        assert '%s: HTTP 503' % url in err, err
    finally:
        n.stop()


class LyingHandler(http.server.BaseHTTPRequestHandler):
    """Serves DATA, but answers Range requests wrongly: mode 'shift'
    sends a 206 for the range one KiB later (with a truthful
    Content-Range), mode 'ignore' a 200 with the whole body."""
    mode = 'shift'
    data = b''
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(200)
        self.send_header('Content-Length', str(len(self.data)))
        self.send_header('Accept-Ranges', 'bytes')
        self.end_headers()

    def do_GET(self):
        m = re.match(r'bytes=(\d+)-(\d+)', self.headers.get('Range', ''))
        a, b = int(m.group(1)), int(m.group(2))
        if self.mode == 'shift':
            a, b = a + 1024, b + 1024
            body = self.data[a:b + 1]
            self.send_response(206)
            self.send_header('Content-Range', 'bytes %d-%d/%d'
                             % (a, b, len(self.data)))
        else:
            body = self.data
            self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize('mode,detail', [
    ('shift', 'the server sent bytes 5120-9215/%d for 4096-8191/%d'
     % (SIZE, SIZE)),
    ('ignore', 'HTTP 200: the server ignored the range 4096-8191'),
])
def test_http_wrong_range_reply_fails_read(qblk_io, mode, detail):
    """A reply that is not the asked range fails the read (never wrong
    data), and the detail says what the server sent."""
    handler = type('H', (LyingHandler,), {'mode': mode,
                                          'data': os.urandom(SIZE)})
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = 'http://127.0.0.1:%d/x.raw' % srv.server_address[1]
        rc, out, err = qblk_io('-T', 'bdrv_note_io_error', '--image-opts',
                               '-c', 'read 4096 4096',
                               'driver=raw,file.driver=http,'
                               'file.readahead=0,file.url=' + url)
        assert 'read failed' in out + err, out + err
        assert '%s: %s' % (url, detail) in err, err
    finally:
        srv.shutdown()
        srv.server_close()

"""Real servers for the remote base image tests: qemu-nbd, nbdkit (with
filters) and nginx, each started on loopback or a UNIX socket in a short
private temp dir and killed when the test ends.

    with RemoteServers() as srv:            # or the remote_servers fixture
        uri = srv.qemu_nbd('/x/base.raw')    # nbd+unix:///base?socket=...
        uri = srv.nbdkit('file', '/x/base.raw', filters=['delay'],
                         params=['rdelay=2ms'], tcp=True)  # nbd://127.0.0.1:P/
        web = srv.nginx('/x/www')            # web.url, web.access_log()
        srv.stop(uri)                        # that server only (e.g. outage)

Each start waits until the server accepts connections (socket file or
TCP connect, nginx answering HTTP), so a test can use the URL at once.
Servers are never daemonized: the helper keeps the process and kills it
by its own pid. Nothing here talks to qblk.
"""
import os
import shutil
import subprocess

import pytest

from daemon import free_tcp_port, short_tmpdir
from qblkpy import nginx, sockets

START_TIMEOUT = 20.0


def write_nginx_conf(d, listen, root, extra=''):
    """Write @d/nginx.conf: one worker serving @root on @listen
    ("127.0.0.1:PORT", maybe with " ssl"), with @extra server directives
    and the access log that read_access_log() parses; returns its path."""
    return nginx.write_conf(d, listen, root, access_log=True,
                            server_extra=extra)


def read_access_log(d):
    """The access log of the nginx in @d, parsed: [(method, uri, status,
    range header, body bytes)]."""
    path = os.path.join(d, 'access.log')
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split('"')
            if len(parts) < 3:
                continue
            method, uri, status = parts[0].split()
            out.append((method, uri, int(status), parts[1],
                        int(parts[2].strip() or 0)))
    return out


def require_binary(name, *extra_paths):
    """The path of program @name, or skip the test when not installed."""
    for p in (shutil.which(name),) + extra_paths:
        if p and os.access(p, os.X_OK):
            return p
    pytest.skip('%s is not installed (scripts/install-deps.sh)' % name)


def tcp_open(port):
    """True if something accepts TCP connections on 127.0.0.1:@port."""
    return sockets.accepts(('127.0.0.1', port), timeout=0.5)


class WebServer:
    """A running nginx: .url (http://127.0.0.1:PORT), .root, .dir."""

    def __init__(self, proc, url, root, d):
        self.proc, self.url, self.root, self.dir = proc, url, root, d

    def access_log(self):
        """The parsed access log: [(method, uri, status, range, bytes)]."""
        return read_access_log(self.dir)


class RemoteServers:
    """Servers started by one test; close() (or the fixture) kills all."""

    def __init__(self):
        self.dir = short_tmpdir('qblk-rs-')
        self.procs = {}         # URL -> Popen
        self.n = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _name(self, prefix):
        self.n += 1
        return os.path.join(self.dir, '%s%d' % (prefix, self.n))

    def _spawn(self, argv, url, ready, log):
        """Start @argv (stderr to @log); wait until @ready() is true."""
        errf = open(log, 'wb')
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf)
        errf.close()
        self.procs[url] = proc
        if not sockets.wait_until(ready, START_TIMEOUT,
                                  lambda: proc.poll() is None):
            self._kill(proc)
            with open(log, errors='replace') as f:
                pytest.fail('%s did not start: %s'
                            % (argv[0], f.read()[-2000:]))
        return url

    def _listen(self, tcp, prefix):
        """(server argv for the address, URL prefix, ready check)."""
        if tcp:
            port = free_tcp_port()
            return (('127.0.0.1', port), 'nbd://127.0.0.1:%d/' % port,
                    lambda: tcp_open(port))
        sock = self._name(prefix) + '.sock'
        return (sock, None, lambda: os.path.exists(sock))

    def qemu_nbd(self, image, fmt='raw', name='base', readonly=True,
                 tcp=False):
        """qemu-nbd serving @image as export @name; its URL."""
        binary = require_binary('qemu-nbd')
        addr, prefix, ready = self._listen(tcp, 'qnbd')
        argv = [binary, '-f', fmt, '-x', name, '--persistent',
                '--shared=16']
        if readonly:
            argv.append('-r')
        if tcp:
            argv += ['-b', addr[0], '-p', str(addr[1])]
            url = prefix + name
        else:
            argv += ['-k', addr]
            url = 'nbd+unix:///%s?socket=%s' % (name, addr)
        return self._spawn(argv + [image], url, ready,
                           self._name('qemu-nbd') + '.log')

    def nbdkit(self, plugin, *plugin_args, filters=(), params=(),
               tcp=False, readonly=True):
        """nbdkit running @plugin (with @plugin_args, e.g. file=PATH)
        behind @filters (names, outermost first) configured by @params
        (e.g. 'rdelay=2ms'); its URL (the default, unnamed export)."""
        binary = require_binary('nbdkit')
        addr, prefix, ready = self._listen(tcp, 'kit')
        argv = [binary, '-f']
        if readonly:
            argv.append('-r')
        if tcp:
            argv += ['-i', addr[0], '-p', str(addr[1])]
            url = prefix
        else:
            argv += ['-U', addr]
            url = 'nbd+unix:///?socket=%s' % addr
        argv += ['--filter=%s' % f for f in filters]
        argv += [plugin] + list(plugin_args) + list(params)
        return self._spawn(argv, url, ready, self._name('nbdkit') + '.log')

    def nginx(self, root, server_extra=''):
        """nginx serving directory @root; a WebServer. @server_extra:
        more directives for the server block (e.g. auth_basic)."""
        require_binary('nginx', '/usr/sbin/nginx')
        d = self._name('nginx')
        port = free_tcp_port()
        write_nginx_conf(d, '127.0.0.1:%d' % port, root, server_extra)
        url = 'http://127.0.0.1:%d' % port
        self._spawn(nginx.argv(d), url, lambda: nginx.answers(url + '/'),
                    os.path.join(d, 'stderr.log'))
        return WebServer(self.procs[url], url, root, d)

    @staticmethod
    def _kill(proc, hard=False):
        """End @proc: SIGTERM (nbdkit may wait for its clients, so SIGKILL
        after 3 s), or SIGKILL at once if @hard."""
        if proc.poll() is None:
            if hard:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self, url, hard=False):
        """Stop the server started with URL @url (a WebServer's .url or an
        NBD URL as returned); @hard kills it at once, as a crash or a
        network outage would look to its clients."""
        self._kill(self.procs.pop(url), hard)

    def close(self):
        for proc in self.procs.values():
            self._kill(proc)
        self.procs = {}
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def remote_servers():
    """A RemoteServers whose servers die with the test."""
    with RemoteServers() as s:
        yield s

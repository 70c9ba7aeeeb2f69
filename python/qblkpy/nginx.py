"""The nginx that serves a directory over HTTP on loopback, as the remote
image tests (tests/functional/remote_servers.py), the remote benchmark
(bench/remote.py) and the demo (scripts/demo_story.py) run it: in the
foreground, with its pid, logs and temp files in one directory of ours.

Static files get Range support by default, which is all qblk's http
driver needs. With access_log=True every request is logged in the
"ranges" format that remote_servers.read_access_log() parses:
    METHOD URI STATUS "RANGE HEADER" BODY_BYTES
"""
import os
import shutil
import urllib.error
import urllib.request

ACCESS_LOG_FORMAT = ("'$request_method $uri $status \"$http_range\" '\n"
                     "                      '$body_bytes_sent'")


def binary():
    """The nginx program: on PATH or in /usr/sbin (not always on PATH)."""
    return shutil.which('nginx') or '/usr/sbin/nginx'


def conf_text(d, listen, root, workers=1, access_log=False,
              keepalive_requests=None, server_extra=''):
    """nginx.conf text: @root served on @listen ("127.0.0.1:PORT", maybe
    with " ssl"), everything else under directory @d; @server_extra: more
    directives for the server block, one per line."""
    lines = []
    if os.geteuid() == 0:
        # workers would drop to "nobody", who cannot read our dirs
        lines.append('user root;')
    lines += ['daemon off;',
              'worker_processes %d;' % workers,
              'pid %s/nginx.pid;' % d,
              'error_log %s/error.log;' % d,
              'events { worker_connections 256; }',
              'http {']
    if access_log:
        lines += ['    log_format ranges %s;' % ACCESS_LOG_FORMAT,
                  '    access_log %s/access.log ranges;' % d]
    else:
        lines.append('    access_log off;')
    lines += ['    %s_temp_path %s/tmp;' % (kind, d)
              for kind in ('client_body', 'proxy', 'fastcgi', 'uwsgi',
                           'scgi')]
    if keepalive_requests:
        lines.append('    keepalive_requests %d;' % keepalive_requests)
    lines += ['    server {',
              '        listen %s;' % listen,
              '        root %s;' % root]
    lines += ['        ' + l.strip() for l in server_extra.splitlines()
              if l.strip()]
    lines += ['    }', '}']
    return '\n'.join(lines) + '\n'


def write_conf(d, listen, root, **options):
    """Write @d/nginx.conf (see conf_text() for the arguments) and make
    @d/tmp; returns the config's path."""
    os.makedirs(os.path.join(d, 'tmp'), exist_ok=True)
    conf = os.path.join(d, 'nginx.conf')
    with open(conf, 'w') as f:
        f.write(conf_text(d, listen, root, **options))
    return conf


def argv(d):
    """The command line running the nginx configured in @d."""
    return [binary(), '-c', os.path.join(d, 'nginx.conf'), '-p', d + '/']


def answers(url):
    """True if an HTTP server answers at @url (any status: a 403 or 404
    for a directory index still means the server is up)."""
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True

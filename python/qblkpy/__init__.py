"""qblkpy: the Python helpers shared by qblk's scripts/, bench/ and tests/.

    qblkpy.qmp      a synchronous QMP client over a unix socket
    qblkpy.sockets  "does this socket accept a connection" probes, a free
                    loopback port
    qblkpy.nginx    the nginx configuration that serves a directory on
                    loopback, and a check that it answers

Users put <repo>/python on sys.path (computed from their own __file__)
and import the module they need; nothing here starts qblk itself.
"""

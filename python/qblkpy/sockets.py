"""Socket probes shared by the benchmarks (bench/benchlib.py, remote.py),
the demo (scripts/demo_story.py) and the tests (tests/crash/scenarios.py,
tests/functional/remote_servers.py): does a server accept connections yet,
wait until it does (or until any condition holds), and pick a free
loopback TCP port.
"""
import socket
import time


def accepts(address, timeout=1.0):
    """True if a server accepts a connection at @address: a unix socket
    path or a (host, port) pair."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(address)
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_until(ready, timeout, alive=None, interval=0.02):
    """Poll @ready() every @interval seconds until it is true; False when
    @timeout seconds pass or @alive() turns false first (a server
    process that died while starting)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if (alive and not alive()) or time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_accepting(address, timeout, alive=None, interval=0.02):
    """Wait until @address accepts a connection (see accepts()); False
    when @timeout seconds pass or @alive() turns false first."""
    return wait_until(lambda: accepts(address), timeout, alive, interval)


def free_tcp_port():
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()

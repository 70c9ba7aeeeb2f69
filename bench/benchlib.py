"""Helpers shared by qblk's benchmarks (bench/run.py, bench/nbd.py)."""
import os
import subprocess

CHUNK = 4 * 1024 * 1024


def parse_size(text):
    """'1G', '512M', '64k' or a plain byte count -> bytes."""
    units = {'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}
    t = text.strip().lower().rstrip('b').rstrip('i')
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def make_random_qcow2(d, name, size):
    """Create d/NAME.qcow2 holding @size bytes of random data; return its path.

    The data is written raw and converted by qemu-img, so the image's
    layout does not depend on qblk.
    """
    raw = os.path.join(d, name + '.raw')
    img = os.path.join(d, name + '.qcow2')
    with open(raw, 'wb') as f:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                    raw, img], check=True)
    os.unlink(raw)
    return img

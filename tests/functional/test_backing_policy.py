"""Backing names from image headers are untrusted (--backing-protocols).

An image made by someone else can name any backing file: a block device,
an NBD server, a web server, a json:{...} description. qblk, qblk-img and
qblk-io follow such a name only through the protocols the user allowed
(file by default) and refuse the rest with an error that names the image
and the backing string. Backing files the user names in options are not
restricted. The servers named here do not exist: a refused name fails
before any connection, an allowed one fails connecting, which tells the
two apart.
"""
import json
import os
import stat
import subprocess

import pytest

from qblk_testlib import build_dir

NBD_NAME = 'nbd+unix:///exp?socket=/nonexistent/qblk-test.sock'
JSON_NBD = 'json:' + json.dumps({
    'driver': 'raw',
    'file': {'driver': 'nbd',
             'server': {'type': 'unix',
                        'path': '/nonexistent/qblk-test.sock'}}})


def overlay(qemu_img, tmp_path, backing, name='top.qcow2'):
    top = str(tmp_path / name)
    qemu_img.ok('create', '-f', 'qcow2', '-u', '-b', backing, '-F', 'raw',
                top, '1M')
    return top


def refused(err, top, backing, proto):
    return ("Image '%s' names the backing file '%s' through protocol '%s'"
            % (top, backing, proto)) in err


def test_nbd_backing_refused_by_default(qblk_io, qemu_img, tmp_path):
    top = overlay(qemu_img, tmp_path, NBD_NAME)
    rc, out, err = qblk_io('-c', 'read 0 512', top)
    assert rc != 0
    assert refused(err, top, NBD_NAME, 'nbd'), err
    assert '(allowed: file; see --backing-protocols)' in err, err


def test_nbd_backing_followed_when_allowed(qblk_io, qemu_img, tmp_path):
    top = overlay(qemu_img, tmp_path, NBD_NAME)
    rc, out, err = qblk_io('--backing-protocols=file,nbd', '-c',
                           'read 0 512', top)
    assert rc != 0
    assert 'names the backing file' not in err, err
    assert 'Could not connect' in err and '/nonexistent/' in err, err


def test_qblk_img_takes_the_option(qblk_img, qemu_img, tmp_path):
    top = overlay(qemu_img, tmp_path, NBD_NAME)
    rc, out, err = qblk_img('map', '--output=json', top)
    assert rc != 0 and refused(err, top, NBD_NAME, 'nbd'), err
    rc, out, err = qblk_img('map', '--backing-protocols=all',
                            '--output=json', top)
    assert rc != 0 and 'Could not connect' in err, err


def test_json_backing_needs_json_and_its_drivers(qblk_io, qemu_img,
                                                 tmp_path):
    top = overlay(qemu_img, tmp_path, JSON_NBD)
    rc, out, err = qblk_io('-c', 'read 0 512', top)
    assert rc != 0 and refused(err, top, JSON_NBD, 'json'), err
    # json alone is not enough: the nbd driver inside must be allowed too
    rc, out, err = qblk_io('--backing-protocols=file,json', '-c',
                           'read 0 512', top)
    assert rc != 0 and refused(err, top, JSON_NBD, 'nbd'), err
    rc, out, err = qblk_io('--backing-protocols=file,json,nbd', '-c',
                           'read 0 512', top)
    assert rc != 0 and 'Could not connect' in err, err


def test_unknown_protocol_refused_inside_json_too(qblk_io, qemu_img,
                                                  tmp_path):
    """A filename with a protocol qblk does not know is refused by the
    check, inside a json: name as for a plain one, before any open."""
    for backing, allow in (('gopher://x/base.raw', 'all'),
                           ('json:' + json.dumps({
                               'driver': 'raw',
                               'file': {'filename': 'gopher://x/b.raw'}}),
                            'file,json')):
        top = overlay(qemu_img, tmp_path, backing)
        rc, out, err = qblk_io('--backing-protocols=' + allow, '-c',
                               'read 0 512', top)
        assert rc != 0 and refused(err, top, backing, 'unknown'), err


def test_block_device_backing_needs_host_device(qblk_io, qemu_img,
                                                tmp_path):
    devs = [os.path.join('/dev', d) for d in ('loop0', 'sda', 'vda', 'nvme0n1')]
    dev = next((d for d in devs if os.path.exists(d) and
                stat.S_ISBLK(os.stat(d).st_mode)), None)
    if dev is None:
        pytest.skip('no block device node to name as a backing file')
    top = overlay(qemu_img, tmp_path, dev)
    rc, out, err = qblk_io('-r', '-c', 'read 0 512', top)
    assert rc != 0 and refused(err, top, dev, 'host_device'), err


def test_file_backing_still_followed(qblk_io, qemu_img, tmp_path):
    base = str(tmp_path / 'base.raw')
    qemu_img.ok('create', '-f', 'raw', base, '1M')
    top = overlay(qemu_img, tmp_path, base)
    out = qblk_io.ok('-c', 'read -P 0 0 1M', top)
    assert 'read 1048576/1048576' in out


def test_daemon_refuses_and_accepts(daemon, qemu_img, tmp_path):
    top = overlay(qemu_img, tmp_path, NBD_NAME)
    qblk = os.path.join(build_dir(), 'qblk')
    p = subprocess.run([qblk, '-drive', 'file=%s,id=drive0' % top],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and refused(p.stderr, top, NBD_NAME, 'nbd'), \
        p.stderr
    p = subprocess.run([qblk, '-drive', 'file=%s,id=drive0' % top,
                        '--backing-protocols', 'nbd,file'],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and 'Could not connect' in p.stderr, p.stderr
    p = subprocess.run([qblk, '--backing-protocols', 'file,ftp'],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert ("Unknown protocol 'ftp' in the list of backing protocols "
            "'file,ftp'") in p.stderr, p.stderr

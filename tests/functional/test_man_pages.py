"""The man pages qblk(1), qblk-img(1) and qblk-io(1).

They are built by `ninja -C build` (docs/meson.build: docs/man/*.rst
expanded by scripts/gen-man.py, rendered by rst2man). Here each one must
exist, render with man (or groff), carry the usual sections, and list
every option of qemu-options.hx, every HMP command, and every qblk-img
and qblk-io command, so a page that drifted from the code fails.
"""
import os
import re
import shutil
import subprocess

import pytest

from qblk_testlib import REPO, build_dir

PAGES = ('qblk', 'qblk-img', 'qblk-io')


def page_path(name):
    """build/docs/NAME.1, or skip/fail with the reason it is missing."""
    path = os.path.join(build_dir(), 'docs', name + '.1')
    if not os.path.exists(path):
        if not (shutil.which('rst2man') or shutil.which('rst2man.py')):
            pytest.skip('rst2man not installed (python3-docutils)')
        pytest.fail(f'{path} was not built (run ninja -C build)')
    return path


def render(name):
    """The page as plain text, hyphenation and line breaks undone."""
    path = page_path(name)
    env = dict(os.environ, MANWIDTH='200', LC_ALL='C.UTF-8', MANPAGER='cat')
    if shutil.which('man'):
        cmd = ['man', '-l', path]
    elif shutil.which('groff'):
        cmd = ['groff', '-man', '-Tutf8', '-P-cbou', path]
    else:
        pytest.skip('neither man nor groff is installed')
    res = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    text = re.sub('[\u2010\u00ad]\n\\s*', '', text)     # hyphenated words
    text = text.replace('\u2010', '-').replace('\u2212', '-')
    return re.sub(r'\s+', ' ', text)


def hx_names(path, pattern):
    with open(os.path.join(REPO, path)) as f:
        return re.findall(pattern, f.read(), re.M)


@pytest.mark.parametrize('name', PAGES)
def test_page_renders_with_sections(name):
    text = render(name)
    for head in ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'SEE ALSO'):
        assert head in text, f'{name}.1 has no {head} section'
    assert f'{name} - ' in text                     # the NAME line
    # docutils embeds problems it tolerated as "System Message" blocks.
    assert 'System Message' not in text


def test_qblk_page_lists_every_option_and_hmp_command():
    text = render('qblk')
    options = hx_names('qemu-options.hx', r'^DEF\("([^"]+)"')
    assert len(options) >= 10
    for opt in options:
        assert re.search(r'(^|[\s,])--?' + re.escape(opt) + r'\b', text), \
            f'option {opt} missing from qblk.1'
    hmp = hx_names('hmp-commands.hx', r'^\s*\.name\s*=\s*"([^"|]+)')
    hmp += hx_names('hmp-commands-info.hx', r'^\s*\.name\s*=\s*"([^"|]+)')
    assert 'block_stream' in hmp
    for cmd in hmp:
        assert cmd in text, f'HMP command {cmd} missing from qblk.1'


def test_qblk_img_page_lists_every_command(qblk_img):
    rc, out, _ = qblk_img('--help')
    assert rc == 0
    syntax = out.split('Command syntax:\n', 1)[1].split('\n\n', 1)[0]
    commands = [ln.split()[0] for ln in syntax.splitlines() if ln.strip()]
    assert {'convert', 'commit', 'rebase', 'compare'} <= set(commands)
    text = render('qblk-img')
    for cmd in commands:
        assert re.search(r'\b' + cmd + r' \[', text), \
            f'qblk-img command {cmd} missing from qblk-img.1'


def test_qblk_io_page_lists_every_command(qblk_io):
    rc, out, _ = qblk_io('-c', 'help')
    assert rc == 0
    commands = [ln.split()[0] for ln in out.splitlines() if ' -- ' in ln]
    assert 'aio_write' in commands
    text = render('qblk-io')
    for cmd in commands:
        assert cmd in text, f'qblk-io command {cmd} missing from qblk-io.1'

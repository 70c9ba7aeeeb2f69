#!/usr/bin/env python3
"""Build a man page from a reStructuredText template and the live sources.

    gen-man.py --srcdir DIR --rst2man PROG [--prog NAME=PATH]...
               [--version V] TEMPLATE OUTPUT

TEMPLATE (docs/man/*.rst) is an ordinary rst2man document in which a line

    .. gen:: KIND [ARG]

is replaced by text generated now, so the page cannot drift from the code:

    hx FILE         the SRST documentation blocks of FILE (a .hx file,
                    relative to --srcdir), e.g. qemu-options.hx
    img-options     qblk-img --help: the standard options (literal block)
    img-commands    qblk-img --help: one entry per subcommand and its syntax
    img-parameters  qblk-img --help: the meaning of the parameters
    io-options      qblk-io --help: the options (literal block)
    io-commands     qblk-io -c help: one entry per command

The programs are run from the paths given with --prog (the freshly built
binaries). The expanded text is kept next to OUTPUT as OUTPUT.rst for
inspection, then PROG (Debian's rst2man) turns it into the roff page.
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hxtool  # noqa: E402  (the .hx splitter shared with the docs)

GEN_RE = re.compile(r'^\.\. gen:: (\S+)(?: (\S+))?\s*$')


def run(prog, *args):
    """stdout of prog (path) run with args; a failure stops the build."""
    # A sanitizer build (make check-asan) must not fail on a leak at exit.
    env = dict(os.environ)
    env['ASAN_OPTIONS'] = ':'.join(filter(None, [env.get('ASAN_OPTIONS'),
                                                 'detect_leaks=0']))
    res = subprocess.run([prog, *args], capture_output=True, text=True,
                         env=env)
    if res.returncode != 0:
        sys.exit(f'gen-man.py: {prog} {" ".join(args)} failed '
                 f'(exit {res.returncode}): {res.stderr.strip()}')
    return res.stdout


def section(text, start, end=None):
    """Lines of text after the line equal to start, up to end (exclusive)."""
    lines = text.splitlines()
    try:
        i = lines.index(start) + 1
    except ValueError:
        sys.exit(f'gen-man.py: no {start!r} line in the help text')
    out = []
    for line in lines[i:]:
        if end is not None and line.startswith(end):
            break
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return out


def literal(lines):
    """An rst literal block holding lines as they are."""
    return ['::', ''] + ['    ' + ln if ln.strip() else '' for ln in lines] \
        + ['']


def img_commands(help_text):
    """Definition list: subcommand name, then its syntax line."""
    out = []
    for line in section(help_text, 'Command syntax:', 'Every command'):
        words = line.split(None, 1)
        if not words:
            continue
        out += [f'**{words[0]}**', f'  ``{line.strip()}``', '']
    return out


def io_commands(help_text):
    """Definition list from 'name args -- description' lines."""
    out = []
    for line in help_text.splitlines():
        if ' -- ' not in line:
            continue
        syntax, desc = line.split(' -- ', 1)
        out += [f'``{syntax.strip()}``', f'  {desc.strip()}', '']
    return out


def join_terms(lines):
    """Merge runs of unindented lines that head one definition.

    The .hx blocks give one option several spellings on consecutive lines
    (``--chardev socket,path=...`` then ``--chardev socket,host=...``),
    which docutils rejects as a paragraph followed by an indented block;
    a man page lists them as one term, separated by commas.
    """
    out, run_ = [], []
    for line in lines + ['']:
        if line and not line[0].isspace():
            run_.append(line)
            continue
        if run_:
            if len(run_) > 1 and line.startswith(' '):
                out.append(', '.join(run_))
            else:
                out += run_
            run_ = []
        out.append(line)
    return out[:-1]


def expand(kind, arg, opts):
    """The rst lines a '.. gen:: kind arg' line stands for."""
    progs = dict(p.split('=', 1) for p in opts.prog)

    def prog(name):
        if name not in progs:
            sys.exit(f'gen-man.py: {kind} needs --prog {name}=PATH')
        return progs[name]

    if kind == 'hx':
        return join_terms(''.join(
            hxtool.split(os.path.join(opts.srcdir, arg))[1]).splitlines())
    if kind == 'img-options':
        return literal(section(run(prog('qblk-img'), '--help'), '',
                               'Command syntax:'))
    if kind == 'img-commands':
        return img_commands(run(prog('qblk-img'), '--help'))
    if kind == 'img-parameters':
        return literal(section(run(prog('qblk-img'), '--help'),
                               'Command parameters:', 'Supported formats'))
    if kind == 'io-options':
        text = run(prog('qblk-io'), '--help')
        return literal([ln for ln in text.splitlines()
                        if ln.startswith('  ')])
    if kind == 'io-commands':
        return io_commands(run(prog('qblk-io'), '-c', 'help'))
    sys.exit(f'gen-man.py: unknown generator {kind!r}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--srcdir', required=True)
    ap.add_argument('--rst2man', required=True)
    ap.add_argument('--prog', action='append', default=[])
    ap.add_argument('--version', default='')
    ap.add_argument('template')
    ap.add_argument('output')
    opts = ap.parse_args()

    out = []
    with open(opts.template) as f:
        for line in f.read().splitlines():
            m = GEN_RE.match(line)
            if m:
                out += expand(m.group(1), m.group(2), opts) + ['']
            elif line.startswith(':Version:') and opts.version:
                out.append(':Version: ' + opts.version)
            else:
                out.append(line)
    rst = opts.output + '.rst'
    with open(rst, 'w') as f:
        f.write('\n'.join(out) + '\n')
    # --halt=error: a broken page fails the build instead of shipping.
    res = subprocess.run([opts.rst2man, '--halt=error', rst, opts.output])
    if res.returncode != 0:
        sys.exit(f'gen-man.py: {opts.rst2man} failed on {rst}')


if __name__ == '__main__':
    main()

"""Every source file of the tree is covered by an F: line of MAINTAINERS.

MAINTAINERS uses QEMU's format: sections with "F: path" lines. A path
ending in '/' (or naming an existing directory) covers everything below
it; '*', '?' and '[...]' are shell globs that do not cross a '/'.
Sources are *.c, *.h, *.py, *.sh and meson.build files, excluding build
directories (build*/) and .git.
"""
import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SOURCE_SUFFIXES = ('.c', '.h', '.py', '.sh')


def parse_patterns(text):
    """Return the F: patterns of a MAINTAINERS text."""
    pats = []
    for line in text.splitlines():
        m = re.match(r'^F:\s*(\S+)\s*$', line)
        if m:
            pats.append(m.group(1))
    return pats


def glob_to_regex(pattern):
    """Translate a shell glob to a regex in which wildcards stop at '/'."""
    out, i = '', 0
    while i < len(pattern):
        c = pattern[i]
        if c == '*':
            out += '[^/]*'
        elif c == '?':
            out += '[^/]'
        elif c == '[':
            j = pattern.find(']', i + 1)
            if j < 0:
                out += re.escape(c)
            else:
                out += '[' + pattern[i + 1:j].replace('!', '^', 1) + ']'
                i = j
        else:
            out += re.escape(c)
        i += 1
    return out


def covered(path, patterns, is_dir=lambda p: False):
    """True if the repo-relative @path is matched by one of @patterns."""
    for pat in patterns:
        if pat.endswith('/') or is_dir(pat):
            prefix = pat.rstrip('/') + '/'
            if re.match(glob_to_regex(prefix), path):
                return True
        elif re.fullmatch(glob_to_regex(pat), path):
            return True
        elif re.match(glob_to_regex(pat) + '/', path):
            # a glob naming directories, e.g. "block/qcow2*" vs a subdir
            return True
    return False


def source_files(root):
    out = []
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel == '.':
            dirs[:] = [x for x in dirs
                       if not x.startswith('build') and x != '.git']
        dirs[:] = [x for x in dirs if x not in ('__pycache__', '.git')]
        for f in files:
            if f.endswith(SOURCE_SUFFIXES) or f == 'meson.build':
                out.append(os.path.normpath(os.path.join(rel, f)))
    return sorted(out)


def uncovered(root, text):
    pats = parse_patterns(text)
    is_dir = lambda p: os.path.isdir(os.path.join(root, p))  # noqa: E731
    return [f for f in source_files(root) if not covered(f, pats, is_dir)]


def test_matcher_rejects_uncovered_files():
    """The check itself works: a synthetic MAINTAINERS leaves gaps."""
    text = '\n'.join(['Block layer', 'M: a <a@b>', 'S: Maintained',
                      'F: block/', 'F: include/block/*.h',
                      'F: tests/unit/test-qcow2*', 'F: meson.build', ''])
    pats = parse_patterns(text)
    assert pats == ['block/', 'include/block/*.h', 'tests/unit/test-qcow2*',
                    'meson.build']
    assert covered('block/qcow2.c', pats)
    assert covered('block/sub/x.c', pats)
    assert covered('include/block/block.h', pats)
    assert not covered('include/block/sub/x.h', pats)   # '*' stops at '/'
    assert covered('tests/unit/test-qcow2-cache.c', pats)
    assert not covered('tests/unit/test-iov.c', pats)
    assert covered('meson.build', pats)
    assert not covered('util/meson.build', pats)
    assert not covered('blockdev.c', pats)
    assert not covered('blocky/x.c', pats)   # prefix is a whole component


def test_uncovered_file_is_reported(tmp_path):
    """End to end on a synthetic tree: the uncovered file is named."""
    for f in ('block/a.c', 'util/b.c', 'meson.build', 'build/gen.c'):
        p = tmp_path / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text('')
    assert uncovered(str(tmp_path), 'F: block/\nF: meson.build\n') == \
        ['util/b.c']
    assert uncovered(str(tmp_path), 'F: block\nF: util/*.c\n'
                     'F: meson.build\n') == []


def test_every_source_file_has_a_maintainer():
    path = os.path.join(REPO, 'MAINTAINERS')
    assert os.path.exists(path), 'MAINTAINERS is missing'
    with open(path) as f:
        text = f.read()
    missing = uncovered(REPO, text)
    assert not missing, 'files not covered by MAINTAINERS:\n  ' + \
        '\n  '.join(missing)

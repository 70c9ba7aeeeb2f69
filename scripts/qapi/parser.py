"""Reader for QAPI schema files (qapi/*.json).

The syntax is QEMU's: a sequence of Python-dict-like expressions with
single-quoted strings, true/false, '#' comments, and documentation blocks
that start and end with a line holding only '##'. A doc block is attached
to the expression that follows it; a block starting with '# = Title' or
'# == Subtitle' is a free-standing section heading.

parse_file() follows {'include': 'x.json'} (relative to the including
file, each file read once) and returns a list of Expr in file order.
"""
import os
import re


class QAPIError(Exception):
    """A schema problem, printed as 'file:line: message'."""

    def __init__(self, info, msg):
        where = '%s:%d' % (info.fname, info.line) if info else '?'
        super().__init__('%s: %s' % (where, msg))


class Info:
    """Where an expression or doc block came from."""

    def __init__(self, fname, line):
        self.fname = fname
        self.line = line


class Doc:
    """One parsed doc block.

    symbol: the '@Name:' it documents (None for a free-form block);
    body: description text; args: {member: text} in order;
    features: {feature: text}; sections: [(tag, text)] such as
    ('Returns', ...), ('Since', ...).
    """

    SECTION_TAGS = ('Returns', 'Since', 'Note', 'Notes', 'Example',
                    'Examples', 'Errors', 'TODO')

    def __init__(self, info):
        self.info = info
        self.symbol = None
        self.heading = None
        self.body = []
        self.args = {}
        self.features = {}
        self.sections = []

    def text(self, lines):
        return '\n'.join(lines).strip()

    def section(self, tag):
        """Text of the first section called tag, or None."""
        for t, lines in self.sections:
            if t == tag:
                return self.text(lines)
        return None


def _parse_doc(info, lines):
    """Turn the '# ...' lines of one doc block into a Doc."""
    doc = Doc(info)
    text = []
    for ln in lines:
        if ln == '#':
            text.append('')
        elif ln.startswith('# '):
            text.append(ln[2:])
        else:
            raise QAPIError(info, "doc comment line must start with '# '")
    if text and text[0].startswith('='):
        doc.heading = text[0].lstrip('=').strip()
        doc.body = text[1:]
        return doc
    m = re.match(r'@([\w.-]+):\s*$', text[0]) if text else None
    if not m:
        doc.body = text
        return doc
    doc.symbol = m.group(1)
    cur = doc.body
    in_features = False
    for ln in text[1:]:
        am = re.match(r'@([\w.-]+):\s?(.*)$', ln)
        sm = re.match(r'(\w+):\s*(.*)$', ln)
        if am:
            table = doc.features if in_features else doc.args
            if am.group(1) in table:
                raise QAPIError(info, "'@%s:' documented twice" % am.group(1))
            cur = table[am.group(1)] = [am.group(2)]
        elif sm and sm.group(1) == 'Features':
            in_features = True
            cur = []
        elif sm and sm.group(1) in Doc.SECTION_TAGS:
            cur = [sm.group(2)]
            doc.sections.append((sm.group(1), cur))
        elif ln == '' and cur is not doc.body and not cur[-1:] == ['']:
            cur.append('')
        else:
            cur.append(ln.strip() if cur is not doc.body else ln)
    return doc


class Expr:
    """One top-level expression: the dict, its Info and its Doc (or None)."""

    def __init__(self, expr, info, doc):
        self.expr = expr
        self.info = info
        self.doc = doc


class _Lexer:
    """Tokenizer over one file; tokens are (kind, value, line)."""

    def __init__(self, fname, text):
        self.fname = fname
        self.text = text
        self.pos = 0
        self.line = 1
        self.start_line = 1             # line of the last token's start

    def info(self):
        return Info(self.fname, self.line)

    def error(self, msg):
        raise QAPIError(self.info(), msg)

    def next(self):
        """Return the next token: a punctuator, ('str', s), ('bool', b),
        ('doc', lines) or ('eof', None)."""
        t = self.text
        while self.pos < len(t):
            ch = t[self.pos]
            if ch == '\n':
                self.line += 1
                self.pos += 1
            elif ch in ' \t\r':
                self.pos += 1
            elif ch == '#':
                end = t.find('\n', self.pos)
                end = len(t) if end < 0 else end
                line = t[self.pos:end]
                if line.rstrip() == '##':
                    return self._doc_block()
                self.pos = end
            elif ch in '{}[],:':
                self.start_line = self.line
                self.pos += 1
                return (ch, ch)
            elif ch == "'":
                self.start_line = self.line
                return ('str', self._string())
            elif t.startswith('true', self.pos):
                self.pos += 4
                return ('bool', True)
            elif t.startswith('false', self.pos):
                self.pos += 5
                return ('bool', False)
            else:
                self.error("stray '%s'" % ch)
        return ('eof', None)

    def _string(self):
        """Read a single-quoted string (no escapes beyond \\' and \\\\)."""
        out = []
        self.pos += 1
        t = self.text
        while True:
            if self.pos >= len(t) or t[self.pos] == '\n':
                self.error('missing terminating "\'"')
            ch = t[self.pos]
            self.pos += 1
            if ch == "'":
                return ''.join(out)
            if ch == '\\':
                ch = t[self.pos]
                self.pos += 1
            out.append(ch)

    def _doc_block(self):
        """Read from a '##' line to the closing '##' line."""
        start = self.info()
        lines = []
        t = self.text
        self.pos = t.find('\n', self.pos)
        while True:
            if self.pos < 0 or self.pos >= len(t):
                raise QAPIError(start, "documentation block is not closed "
                                "by '##'")
            self.pos += 1
            self.line += 1
            end = t.find('\n', self.pos)
            end = len(t) if end < 0 else end
            line = t[self.pos:end].strip()
            if line == '##':
                self.pos = end
                return ('doc', (start, lines))
            if not line.startswith('#'):
                raise QAPIError(Info(self.fname, self.line),
                                "documentation block must end with '##'")
            lines.append(line)
            self.pos = end


class _Parser:
    """Recursive-descent parser over _Lexer tokens."""

    def __init__(self, fname, text):
        self.lex = _Lexer(fname, text)
        self.tok = None
        self.advance()

    def advance(self):
        self.tok = self.lex.next()
        self.tok_info = Info(self.lex.fname, self.lex.start_line)

    def value(self):
        kind, val = self.tok
        if kind == '{':
            return self.obj()
        if kind == '[':
            return self.array()
        if kind in ('str', 'bool'):
            self.advance()
            return val
        self.lex.error('expected value')

    def obj(self):
        out = {}
        self.advance()
        if self.tok[0] == '}':
            self.advance()
            return out
        while True:
            if self.tok[0] != 'str':
                self.lex.error('expected string key')
            key = self.tok[1]
            if key in out:
                self.lex.error("duplicate key '%s'" % key)
            self.advance()
            if self.tok[0] != ':':
                self.lex.error("expected ':'")
            self.advance()
            out[key] = self.value()
            if self.tok[0] == '}':
                self.advance()
                return out
            if self.tok[0] != ',':
                self.lex.error("expected ',' or '}'")
            self.advance()

    def array(self):
        out = []
        self.advance()
        if self.tok[0] == ']':
            self.advance()
            return out
        while True:
            out.append(self.value())
            if self.tok[0] == ']':
                self.advance()
                return out
            if self.tok[0] != ',':
                self.lex.error("expected ',' or ']'")
            self.advance()

    def exprs(self):
        """Yield (kind, payload, info): ('expr', dict, info) or
        ('doc', Doc, info)."""
        while self.tok[0] != 'eof':
            if self.tok[0] == 'doc':
                start, lines = self.tok[1]
                self.advance()
                yield ('doc', _parse_doc(start, lines), start)
            elif self.tok[0] == '{':
                info = self.tok_info
                yield ('expr', self.obj(), info)
            else:
                self.lex.error('expected a top-level expression')


def parse_file(path, follow_includes=True, _seen=None, _root=None):
    """Parse path and, recursively, the files it includes.

    Returns [Expr]. Free-form doc blocks become Expr({'doc': Doc}).
    File names in Info are relative to the directory of the top file's
    parent, so messages read 'qapi/block-core.json:12: ...'.
    """
    seen = set() if _seen is None else _seen
    root = _root or os.path.dirname(os.path.dirname(os.path.abspath(path)))
    apath = os.path.abspath(path)
    if apath in seen:
        return []
    seen.add(apath)
    fname = os.path.relpath(apath, root)
    with open(apath, encoding='utf-8') as f:
        text = f.read()
    out = []
    pending = None
    for kind, payload, info in _Parser(fname, text).exprs():
        if kind == 'doc':
            if pending is not None:
                out.append(Expr({'doc': pending}, pending.info, pending))
            pending = payload
            if payload.symbol is None:
                out.append(Expr({'doc': payload}, info, payload))
                pending = None
            continue
        if 'include' in payload:
            if pending is not None:
                raise QAPIError(info, 'doc comment before an include')
            if not follow_includes:
                continue
            inc = os.path.join(os.path.dirname(apath), payload['include'])
            if not os.path.exists(inc):
                raise QAPIError(info, "can't read include file '%s'"
                                % payload['include'])
            out.extend(parse_file(inc, True, seen, root))
            continue
        out.append(Expr(payload, info, pending))
        pending = None
    if pending is not None:
        raise QAPIError(pending.info, 'doc comment for @%s is not followed '
                        'by its definition' % pending.symbol)
    return out


def load_definitions(path, follow_includes=False):
    """{name: expression dict} of one schema file, for tests and tools."""
    defs = {}
    for e in parse_file(path, follow_includes):
        for meta in ('struct', 'enum', 'union', 'alternate', 'command',
                     'event'):
            if meta in e.expr:
                defs[e.expr[meta]] = e.expr
    return defs

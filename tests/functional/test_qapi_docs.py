"""The QMP reference is generated from the schema's doc comments.

Every command and event of qapi/qapi-schema.json carries a doc comment,
build/docs/qmp-ref.rst documents exactly the schema's commands and events,
and the generator refuses schemas that are undocumented or wrong, naming
the file and line.
"""
import os
import re
import subprocess
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get('QBLK_BUILD', os.path.join(TOP, 'build'))
GEN = os.path.join(TOP, 'scripts', 'qapi-gen.py')
sys.path.insert(0, os.path.join(TOP, 'scripts'))

from qapi.check import Schema  # noqa: E402
from qapi.parser import parse_file  # noqa: E402

SCHEMA = Schema(parse_file(os.path.join(TOP, 'qapi', 'qapi-schema.json')))


def ref_entries(kind):
    """Names the generated reference lists under headings 'X (kind)'."""
    path = os.path.join(BUILD, 'docs', 'qmp-ref.rst')
    if not os.path.exists(path):
        pytest.skip('build/docs/qmp-ref.rst not built')
    text = open(path, encoding='utf-8').read()
    return re.findall(r'^(\S+) \(%s\)\n~+$' % kind, text, re.M)


def test_every_command_and_event_has_doc():
    assert SCHEMA.commands, 'the schema declares no command'
    for ent in SCHEMA.commands + SCHEMA.events:
        assert ent.doc is not None, ent.name
        assert ent.doc.symbol == ent.name
        assert ent.doc.text(ent.doc.body), f'{ent.name}: empty description'


def test_reference_lists_exactly_the_commands():
    listed = ref_entries('Command')
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(c.name for c in SCHEMA.commands)


def test_reference_lists_exactly_the_events():
    assert sorted(ref_entries('Event')) == \
        sorted(e.name for e in SCHEMA.events)


def test_reference_documents_members():
    path = os.path.join(BUILD, 'docs', 'qmp-ref.rst')
    if not os.path.exists(path):
        pytest.skip('build/docs/qmp-ref.rst not built')
    text = open(path, encoding='utf-8').read()
    assert 'Not documented' not in text
    for cmd in SCHEMA.commands:
        if cmd.arg_type is not None and cmd.arg_type.implicit:
            section = text.split('\n%s (Command)\n' % cmd.name)[1]
            section = section.split(' (Command)\n')[0]
            for m in cmd.arg_type.members():
                assert '``%s`` : ``' % m.name in section, (cmd.name, m.name)


def gen_check(tmp_path, text):
    """Run the generator's check on a one-file schema; (rc, stderr)."""
    path = tmp_path / 'bad.json'
    path.write_text(text)
    res = subprocess.run([sys.executable, GEN, '--check', str(path)],
                         capture_output=True, text=True)
    return res.returncode, res.stderr


DOC = "##\n# @%s:\n#\n# Text.\n%s##\n"


def test_generator_refuses_undocumented_command(tmp_path):
    rc, err = gen_check(tmp_path, "\n{ 'command': 'foo' }\n")
    assert rc == 1
    assert re.search(r"bad\.json:2: definition 'foo' has no documentation",
                     err), err


def test_generator_refuses_undocumented_member(tmp_path):
    rc, err = gen_check(tmp_path, DOC % ('foo', '# @a: doc\n') +
                        "{ 'command': 'foo', 'data': {'a': 'int', "
                        "'*b': 'str'} }\n")
    assert rc == 1
    assert "bad.json:7: 'foo': member 'b' has no '@b:' documentation" in err


def test_generator_refuses_unknown_type_and_key(tmp_path):
    rc, err = gen_check(tmp_path, DOC % ('S', '# @a: doc\n') +
                        "{ 'struct': 'S', 'data': {'a': 'Nope'} }\n")
    assert rc == 1
    assert "bad.json:7: struct 'S' member 'a' uses unknown type 'Nope'" in err
    rc, err = gen_check(tmp_path, DOC % ('S', '') +
                        "{ 'struct': 'S', 'dta': {} }\n")
    assert rc == 1
    assert "bad.json:6: struct 'S' has unknown key 'dta'" in err


def test_generator_refuses_duplicate_definition(tmp_path):
    one = DOC % ('E', '# @x: doc\n') + "{ 'enum': 'E', 'data': ['x'] }\n"
    rc, err = gen_check(tmp_path, one + one)
    assert rc == 1
    assert "bad.json:14: enum 'E' is already defined" in err

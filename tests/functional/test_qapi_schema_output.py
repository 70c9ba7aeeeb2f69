"""qblk-img's JSON output has the shape qapi/block-core.json declares.

The schema is the single source of qblk's JSON interfaces; these tests keep
the tool's output and the schema from drifting apart: every member printed
is declared, every mandatory member is printed, and scalar types agree.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('QBLK_BUILD', os.path.join(TOP, 'build'))
QBLK_IMG = os.path.join(BUILD, 'qblk-img')
sys.path.insert(0, os.path.join(TOP, 'scripts'))

from qapi.parser import load_definitions  # noqa: E402


def load_schema(path):
    """{name: definition} of the structs and enums of one schema module,
    read with the generator's own parser (scripts/qapi/parser.py), so
    commands, unions and doc comments in the module are understood."""
    defs = {}
    for name, expr in load_definitions(path).items():
        if 'struct' in expr:
            data = dict(expr.get('data', {}))
            base = expr.get('base')
            if isinstance(base, str):
                data = {**defs.get(base, {}), **data}
            defs[name] = {k: v['type'] if isinstance(v, dict) else v
                          for k, v in data.items()}
        elif 'enum' in expr:
            ENUMS[name] = [v['name'] if isinstance(v, dict) else v
                           for v in expr['data']]
    return defs


ENUMS = {}
SCHEMA = load_schema(os.path.join(TOP, 'qapi', 'block-core.json'))
SCALARS = {'str': str, 'int': int, 'bool': bool}


def check_against(obj, type_name):
    """Assert obj conforms to the schema struct type_name."""
    members = SCHEMA[type_name]
    declared = {k.lstrip('*'): v for k, v in members.items()}
    for key in obj:
        assert key in declared, f'{type_name}: member {key!r} not in schema'
    for key, typ in members.items():
        name = key.lstrip('*')
        if not key.startswith('*'):
            assert name in obj, f'{type_name}: mandatory {name!r} missing'
        if name not in obj:
            continue
        value = obj[name]
        if isinstance(typ, list):
            assert isinstance(value, list)
            for item in value:
                check_against(item, typ[0])
        elif typ in SCALARS:
            assert isinstance(value, SCALARS[typ]), f'{type_name}.{name}'
            if typ == 'int':
                assert not isinstance(value, bool)
        elif typ in ENUMS:
            assert value in ENUMS[typ], f'{type_name}.{name}: {value!r}'
        else:
            check_against(value, typ)


def test_schema_checker_rejects_undeclared_member():
    with pytest.raises(AssertionError):
        check_against({'start': 0, 'length': 1, 'data': True, 'zero': False,
                       'present': True, 'depth': 0, 'bogus': 1}, 'MapEntry')


def test_schema_checker_rejects_missing_mandatory_member():
    with pytest.raises(AssertionError):
        check_against({'start': 0, 'length': 1}, 'MapEntry')


def run(*args):
    res = subprocess.run([QBLK_IMG, *args], capture_output=True, text=True)
    assert res.returncode in (0, 2, 3), res.stderr
    return res.stdout


@pytest.fixture
def chain(tmp_path):
    if not os.access(QBLK_IMG, os.X_OK):
        pytest.skip('qblk-img not built')
    if not shutil.which('qemu-io'):
        pytest.skip('qemu-io (qemu-utils) not installed')
    base = tmp_path / 'base.qcow2'
    top = tmp_path / 'top.qcow2'
    run('create', '-q', '-f', 'qcow2', str(base), '4M')
    subprocess.run(['qemu-io', '-c', 'write -P 1 0 64k', str(base)],
                   check=True, capture_output=True)
    run('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
        str(top))
    return top


def test_info_json_matches_schema(chain):
    check_against(json.loads(run('info', '--output=json', str(chain))),
                  'ImageInfo')


def test_info_backing_chain_json_matches_schema(chain):
    images = json.loads(run('info', '--output=json', '--backing-chain',
                            str(chain)))
    assert len(images) == 2
    for image in images:
        check_against(image, 'ImageInfo')


def test_check_json_matches_schema(chain):
    check_against(json.loads(run('check', '--output=json', str(chain))),
                  'ImageCheck')


def test_map_json_matches_schema(chain):
    entries = json.loads(run('map', '--output=json', str(chain)))
    assert entries
    for entry in entries:
        check_against(entry, 'MapEntry')

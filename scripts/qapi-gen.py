#!/usr/bin/env python3
"""qapi-gen.py: QAPI schema -> C code and QMP reference documentation.

Usage:
  qapi-gen.py -o OUTDIR [--prefix P] [--no-builtins] SCHEMA
      writes OUTDIR/Pqapi-{types,visit,commands,events,introspect}.{h,c}
  qapi-gen.py --rst OUT.rst [--title T] SCHEMA
      writes the QMP reference
  qapi-gen.py --check SCHEMA
      only parses and checks

With a prefix (the unit test's schema), builtin types and lists are not
emitted: the generated code includes the main schema's headers for them,
and the command table is named P_qmp_command_table.
The generated-C conventions are described in docs/devel/qapi.rst.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from qapi.check import Schema  # noqa: E402
from qapi.gen_commands import CommandsGen, EventsGen  # noqa: E402
from qapi.gen_docs import DocGen  # noqa: E402
from qapi.gen_types import TypesGen, wanted_lists, wanted_structs  # noqa
from qapi.gen_visit import VisitGen  # noqa: E402
from qapi.introspect import generate as gen_introspect  # noqa: E402
from qapi.parser import QAPIError, parse_file  # noqa: E402


def write_if_changed(path, text):
    """Write text to path unless it already holds exactly that."""
    try:
        with open(path, encoding='utf-8') as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def generate_c(schema, outdir, prefix, builtins):
    """Write all C outputs into outdir."""
    cpre = prefix.replace('-', '_')

    def name(kind):
        return '%sqapi-%s' % (prefix, kind)

    def guard(kind):
        return (cpre + 'qapi_' + kind).upper().replace('-', '_') + '_H'
    base = {k: None if builtins else 'qapi/qapi-%s.h' % k
            for k in ('types', 'visit')}
    lists = wanted_lists(schema, builtins)
    structs = wanted_structs(schema)
    types = TypesGen(schema, lists, structs, builtins, guard('types'),
                     base['types'])
    visit = VisitGen(schema, lists, structs, guard('visit'),
                     name('types') + '.h', base['visit'])
    cmds = CommandsGen(schema, guard('commands'), name('types') + '.h',
                       cpre + 'qmp_command_table')
    events = EventsGen(schema, guard('events'), name('types') + '.h')
    outputs = {
        name('types') + '.h': types.header(),
        name('types') + '.c': types.code(name('types') + '.h'),
        name('visit') + '.h': visit.header(),
        name('visit') + '.c': visit.code(name('visit') + '.h'),
        name('commands') + '.h': cmds.header(),
        name('commands') + '.c': cmds.code(name('commands') + '.h',
                                           name('visit') + '.h'),
        name('events') + '.h': events.header(),
        name('events') + '.c': events.code(name('events') + '.h',
                                           name('visit') + '.h'),
    }
    h, c = gen_introspect(schema, cpre + 'qmp_schema_json',
                          guard('introspect'))
    outputs[name('introspect') + '.h'] = h
    outputs[name('introspect') + '.c'] = c.replace(
        'HEADER', name('introspect') + '.h')
    os.makedirs(outdir, exist_ok=True)
    for fname, text in outputs.items():
        write_if_changed(os.path.join(outdir, fname), text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('schema')
    ap.add_argument('-o', '--output-dir')
    ap.add_argument('--prefix', default='')
    ap.add_argument('--no-builtins', action='store_true')
    ap.add_argument('--rst')
    ap.add_argument('--title', default='QMP reference')
    ap.add_argument('--check', action='store_true')
    args = ap.parse_args()
    try:
        schema = Schema(parse_file(args.schema))
    except QAPIError as e:
        print('%s: %s' % (os.path.basename(sys.argv[0]), e), file=sys.stderr)
        return 1
    except OSError as e:
        print('%s: %s' % (os.path.basename(sys.argv[0]), e), file=sys.stderr)
        return 1
    if args.output_dir:
        generate_c(schema, args.output_dir, args.prefix,
                   not args.no_builtins)
    if args.rst:
        write_if_changed(args.rst, DocGen(schema, args.title).generate())
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""The checked QAPI schema: entities, type references and C names.

Schema(exprs) validates every expression (known keys, known types, no
duplicates, union/alternate rules, documentation) and builds objects the
generators walk. Implicit types get QEMU's internal names
('q_obj_NAME-arg' for command/event arguments, 'q_obj_NAME-base' for an
inline union base, 'q_empty' for the empty object).
"""
import re

from .parser import QAPIError

C_KEYWORDS = set('''auto break case char const continue default do double
else enum extern float for goto if inline int long register restrict return
short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary bool true false errno unix
'''.split())

# name -> (C type, JSON type for introspection, QType of an alternate)
BUILTINS = {
    'str': ('char *', 'string', 'QTYPE_QSTRING'),
    'int': ('int64_t', 'int', 'QTYPE_QNUM'),
    'int8': ('int8_t', 'int', 'QTYPE_QNUM'),
    'int16': ('int16_t', 'int', 'QTYPE_QNUM'),
    'int32': ('int32_t', 'int', 'QTYPE_QNUM'),
    'int64': ('int64_t', 'int', 'QTYPE_QNUM'),
    'uint8': ('uint8_t', 'int', 'QTYPE_QNUM'),
    'uint16': ('uint16_t', 'int', 'QTYPE_QNUM'),
    'uint32': ('uint32_t', 'int', 'QTYPE_QNUM'),
    'uint64': ('uint64_t', 'int', 'QTYPE_QNUM'),
    'size': ('uint64_t', 'int', 'QTYPE_QNUM'),
    'bool': ('bool', 'boolean', 'QTYPE_QBOOL'),
    'number': ('double', 'number', 'QTYPE_QNUM'),
    'any': ('JsonNode *', 'value', None),
    'null': ('JsonNode *', 'null', 'QTYPE_QNULL'),
}

META_KEYS = {
    'struct': {'struct', 'data', 'base', 'features'},
    'enum': {'enum', 'data', 'prefix', 'features'},
    'union': {'union', 'base', 'discriminator', 'data', 'features'},
    'alternate': {'alternate', 'data', 'features'},
    'command': {'command', 'data', 'returns', 'boxed', 'gen', 'allow-oob',
                'coroutine', 'success-response', 'allow-preconfig',
                'features'},
    'event': {'event', 'data', 'boxed', 'features'},
    'pragma': {'pragma'},
}


def c_name(name, protect=True):
    """C identifier for a schema name: '-' and '.' become '_'."""
    name = re.sub(r'[-.+]', '_', name)
    if protect and name in C_KEYWORDS:
        return 'q_' + name
    return name


def camel_to_upper(value):
    """BlockdevOnError -> BLOCKDEV_ON_ERROR, QMPCapability -> QMP_CAPABILITY."""
    out = ''
    for i, ch in enumerate(value):
        if ch.isupper() and i > 0:
            prev = value[i - 1]
            nxt = value[i + 1] if i + 1 < len(value) else ''
            if prev.islower() or prev.isdigit() or \
                    (prev.isupper() and nxt.islower()):
                out += '_'
        out += ch
    return c_name(out, False).upper()


class Member:
    """A struct/argument member: name, type (Type), optional, features."""

    def __init__(self, name, typ, optional, features, info):
        self.name = name
        self.type = typ
        self.optional = optional
        self.features = features
        self.info = info
        self.cname = c_name(name)


class Type:
    """Base of all types. kind: builtin enum struct union alternate list."""
    kind = None
    implicit = False

    def __init__(self, name, info=None, doc=None, features=()):
        self.name = name
        self.info = info
        self.doc = doc
        self.features = list(features)

    @property
    def cname(self):
        return c_name(self.name)

    def c_type(self):
        """C type of a value of this type held in a struct member."""
        return self.cname + ' *'

    def is_ptr(self):
        return True

    def json_type(self):
        return 'object'


class Builtin(Type):
    kind = 'builtin'

    @property
    def cname(self):
        return self.name

    def c_type(self):
        return BUILTINS[self.name][0]

    def is_ptr(self):
        return self.name in ('str', 'any', 'null')

    def json_type(self):
        return BUILTINS[self.name][1]

    def qtype(self):
        return BUILTINS[self.name][2]


class Enum(Type):
    kind = 'enum'

    def __init__(self, name, values, prefix, **kw):
        super().__init__(name, **kw)
        self.values = values            # [(name, features)]
        self.prefix = prefix

    def c_type(self):
        return self.cname

    def is_ptr(self):
        return False

    def json_type(self):
        return 'string'

    def qtype(self):
        return 'QTYPE_QSTRING'

    def c_value(self, value):
        prefix = self.prefix or camel_to_upper(self.name)
        if not self.prefix and prefix.startswith('JSON_'):
            # json-glib owns the JSON_* namespace (JSON_TYPE_ARRAY...)
            prefix = 'QAPI_' + prefix
        return prefix + '_' + c_name(value, False).upper()


class Struct(Type):
    """Struct, implicit argument struct or flat union (variants set)."""
    kind = 'struct'

    def __init__(self, name, base, local, **kw):
        super().__init__(name, **kw)
        self.base = base                 # Struct or None
        self.local_members = local       # [Member]
        self.tag = None                  # union: discriminator Member
        self.variants = []               # union: [(enum value, Struct)]

    def members(self):
        """All members, base first."""
        inherited = self.base.members() if self.base else []
        return inherited + self.local_members

    def qtype(self):
        return 'QTYPE_QDICT'


class Alternate(Type):
    kind = 'alternate'

    def __init__(self, name, branches, **kw):
        super().__init__(name, **kw)
        self.branches = branches         # [Member]

    def qtype(self):
        return 'QTYPE_QDICT'


class List(Type):
    kind = 'list'

    def __init__(self, element):
        super().__init__(element.name + 'List')
        self.element = element

    @property
    def cname(self):
        return c_name(self.element.name, False) + 'List'

    def json_type(self):
        return 'array'

    def qtype(self):
        return 'QTYPE_QLIST'


class Command:
    def __init__(self, name, arg_type, ret_type, boxed, gen, allow_oob,
                 coroutine, features, info, doc):
        self.name = name
        self.arg_type = arg_type         # Struct or None
        self.ret_type = ret_type         # Type or None
        self.boxed = boxed
        self.gen = gen
        self.allow_oob = allow_oob
        self.coroutine = coroutine
        self.features = features
        self.info = info
        self.doc = doc
        self.cname = c_name(name)


class Event:
    def __init__(self, name, arg_type, boxed, features, info, doc):
        self.name = name
        self.arg_type = arg_type
        self.boxed = boxed
        self.features = features
        self.info = info
        self.doc = doc
        self.cname = c_name(name.lower())

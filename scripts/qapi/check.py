"""Schema(exprs): check the parsed expressions and build the entities.

Two passes: first every named definition is registered (so references
may point forward), then each is resolved and checked. Errors carry the
defining file and line; documentation problems are errors too (a
definition, member, enum value or branch without its '@name:' entry).
"""
from .parser import QAPIError
from .schema import (BUILTINS, META_KEYS, Alternate, Builtin, Command, Enum,
                     Event, List, Member, Struct, Type)


class Schema:
    """All entities of one schema, in definition order.

    types: {name: Type} (builtins, named and implicit types; lists are made
    on demand by list_of()); entities: named types, commands and events in
    file order; sections: (position, Doc) of free-form doc blocks.
    """

    def __init__(self, exprs, doc_required=True):
        self.doc_required = doc_required
        self.types = {}
        self.lists = {}
        self.entities = []
        self.commands = []
        self.events = []
        self.order = []                  # entities and heading Docs
        for name in BUILTINS:
            self.types[name] = Builtin(name)
        self.empty = Struct('q_empty', None, [])
        self.empty.implicit = True
        self.types['q_empty'] = self.empty
        self._exprs = exprs
        self._declare()
        self._define()

    # ---- helpers ----------------------------------------------------

    def list_of(self, element):
        """The (shared) list type of element."""
        if element.name not in self.lists:
            self.lists[element.name] = List(element)
        return self.lists[element.name]

    def _meta(self, e):
        """The expression's meta-type key, checking its key set."""
        metas = [m for m in META_KEYS if m in e.expr]
        if len(metas) != 1:
            raise QAPIError(e.info, 'expression must have exactly one of '
                            "the keys %s" % ', '.join(sorted(META_KEYS)))
        meta = metas[0]
        for key in e.expr:
            if key not in META_KEYS[meta]:
                what = "'if'" if key == 'if' else "key '%s'" % key
                raise QAPIError(e.info, "%s '%s' has unknown %s"
                                % (meta, e.expr[meta], what))
        return meta

    def _features(self, info, what, feats):
        """Feature names of a 'features' list."""
        out = []
        for f in feats or []:
            name = f['name'] if isinstance(f, dict) else f
            if not isinstance(name, str):
                raise QAPIError(info, '%s: feature must be a string' % what)
            out.append(name)
        return out

    def _resolve(self, info, what, ref):
        """Type of a reference: 'Name' or ['Name']."""
        if isinstance(ref, list):
            if len(ref) != 1 or not isinstance(ref[0], str):
                raise QAPIError(info, '%s: array type must contain exactly '
                                'one type name' % what)
            return self.list_of(self._resolve(info, what, ref[0]))
        if not isinstance(ref, str):
            raise QAPIError(info, '%s: type must be a name' % what)
        if ref not in self.types:
            raise QAPIError(info, "%s uses unknown type '%s'" % (what, ref))
        return self.types[ref]

    def _members(self, info, owner, data):
        """[Member] of an inline 'data' dict."""
        if not isinstance(data, dict):
            raise QAPIError(info, "%s: 'data' must be an object" % owner)
        out = []
        for key, val in data.items():
            name, opt = (key[1:], True) if key.startswith('*') else (key,
                                                                    False)
            feats = []
            if isinstance(val, dict):
                for k in val:
                    if k not in ('type', 'features'):
                        raise QAPIError(info, "%s member '%s' has unknown "
                                        "key '%s'" % (owner, name, k))
                feats = self._features(info, owner, val.get('features'))
                val = val.get('type')
            what = "%s member '%s'" % (owner, name)
            typ = self._resolve(info, what, val)
            if typ.name == 'null':
                raise QAPIError(info, "%s: type 'null' is only allowed in "
                                'alternates' % what)
            if any(m.name == name for m in out):
                raise QAPIError(info, "%s: duplicate member '%s'"
                                % (owner, name))
            out.append(Member(name, typ, opt, feats, info))
        return out

    # ---- pass 1: names ----------------------------------------------

    def _declare(self):
        names = set()
        for e in self._exprs:
            if 'doc' in e.expr:
                continue
            meta = self._meta(e)
            if meta == 'pragma':
                continue
            name = e.expr[meta]
            if not isinstance(name, str) or not name:
                raise QAPIError(e.info, "'%s' must name a definition" % meta)
            if name in names or name in self.types:
                raise QAPIError(e.info, "%s '%s' is already defined"
                                % (meta, name))
            names.add(name)
            self._check_doc_symbol(e, name)
            feats = self._features(e.info, name, e.expr.get('features'))
            kw = dict(info=e.info, doc=e.doc, features=feats)
            if meta == 'enum':
                self.types[name] = Enum(name, [], e.expr.get('prefix'), **kw)
            elif meta in ('struct', 'union'):
                self.types[name] = Struct(name, None, [], **kw)
            elif meta == 'alternate':
                self.types[name] = Alternate(name, [], **kw)

    def _check_doc_symbol(self, e, name):
        if e.doc is None:
            if self.doc_required:
                raise QAPIError(e.info, "definition '%s' has no "
                                'documentation comment' % name)
            return
        if e.doc.symbol != name:
            raise QAPIError(e.info, "documentation comment is for '%s', not "
                            "'%s'" % (e.doc.symbol, name))

    # ---- pass 2: definitions ----------------------------------------

    def _define(self):
        for e in self._exprs:
            if 'doc' in e.expr:
                self.order.append(e.doc)
                continue
            if 'pragma' in e.expr:
                continue
            meta = self._meta(e)
            ent = getattr(self, '_def_' + meta)(e)
            self.entities.append(ent)
            self.order.append(ent)
            self._check_docs(e, ent)

    def _def_enum(self, e):
        typ = self.types[e.expr['enum']]
        data = e.expr.get('data')
        if not isinstance(data, list):
            raise QAPIError(e.info, "enum '%s': 'data' must be an array"
                            % typ.name)
        for v in data:
            feats = []
            if isinstance(v, dict):
                feats = self._features(e.info, typ.name, v.get('features'))
                v = v.get('name')
            if not isinstance(v, str) or not v:
                raise QAPIError(e.info, "enum '%s': values must be strings"
                                % typ.name)
            if any(v == n for n, _ in typ.values):
                raise QAPIError(e.info, "enum '%s': duplicate value '%s'"
                                % (typ.name, v))
            typ.values.append((v, feats))
        return typ

    def _base(self, e, owner):
        """The base Struct of a struct/union, or None."""
        base = e.expr.get('base')
        if base is None:
            return None
        if isinstance(base, dict):
            implicit = Struct('q_obj_%s-base' % owner, None,
                              self._members(e.info, "'%s' base" % owner,
                                            base))
            implicit.implicit = True
            self.types[implicit.name] = implicit
            return implicit
        typ = self._resolve(e.info, "'%s' base" % owner, base)
        if not isinstance(typ, Struct) or typ.variants:
            raise QAPIError(e.info, "'%s': base '%s' must be a struct"
                            % (owner, base))
        return typ

    def _def_struct(self, e):
        typ = self.types[e.expr['struct']]
        typ.base = self._base(e, typ.name)
        typ.local_members = self._members(e.info, "struct '%s'" % typ.name,
                                          e.expr.get('data', {}))
        self._check_clash(e, typ)
        return typ

    def _check_clash(self, e, typ):
        names = [m.name for m in typ.members()]
        for n in names:
            if names.count(n) > 1:
                raise QAPIError(e.info, "'%s': member '%s' clashes with a "
                                'base member' % (typ.name, n))

    def _def_union(self, e):
        typ = self.types[e.expr['union']]
        typ.base = self._base(e, typ.name)
        if typ.base is None:
            raise QAPIError(e.info, "union '%s' needs a 'base'" % typ.name)
        disc = e.expr.get('discriminator')
        tag = [m for m in typ.base.members() if m.name == disc]
        if not tag:
            raise QAPIError(e.info, "union '%s': discriminator '%s' is not "
                            'a member of the base' % (typ.name, disc))
        tag = tag[0]
        if not isinstance(tag.type, Enum) or tag.optional:
            raise QAPIError(e.info, "union '%s': discriminator '%s' must be "
                            'a mandatory enum member' % (typ.name, disc))
        typ.tag = tag
        values = [v for v, _ in tag.type.values]
        for case, ref in e.expr.get('data', {}).items():
            if case not in values:
                raise QAPIError(e.info, "union '%s': branch '%s' is not a "
                                "value of '%s'" % (typ.name, case,
                                                   tag.type.name))
            if isinstance(ref, dict):
                ref = ref.get('type')
            what = "union '%s' branch '%s'" % (typ.name, case)
            btype = self._resolve(e.info, what, ref)
            if not isinstance(btype, Struct):
                raise QAPIError(e.info, '%s must be a struct' % what)
            typ.variants.append((case, btype))
        return typ

    def _def_alternate(self, e):
        typ = self.types[e.expr['alternate']]
        data = e.expr.get('data')
        if not isinstance(data, dict) or not data:
            raise QAPIError(e.info, "alternate '%s' needs branches"
                            % typ.name)
        seen = {}
        for name, ref in data.items():
            what = "alternate '%s' branch '%s'" % (typ.name, name)
            btype = self._resolve(e.info, what, ref)
            if isinstance(btype, List) or btype.name == 'any':
                raise QAPIError(e.info, '%s: type %s is not allowed'
                                % (what, btype.name))
            q = btype.qtype()
            for c in self._keyval_conflicts(btype):
                if c in seen:
                    raise QAPIError(e.info, "%s can't be distinguished from "
                                    "branch '%s' in keyval input"
                                    % (what, seen[c]))
            if q in ('QTYPE_QNUM', 'QTYPE_QBOOL'):
                for other in typ.branches:
                    if q in self._keyval_conflicts(other.type):
                        raise QAPIError(e.info, "%s can't be distinguished "
                                        "from branch '%s' in keyval input"
                                        % (what, other.name))
            if q in seen:
                raise QAPIError(e.info, "%s can't be distinguished from "
                                "branch '%s'" % (what, seen[q]))
            seen[q] = name
            typ.branches.append(Member(name, btype, False, [], e.info))
        return typ

    @staticmethod
    def _keyval_conflicts(btype):
        """QTypes a string branch would be confused with in keyval input
        (QEMU's rule: 'str' takes numbers and booleans; an enum only
        when a value looks like one)."""
        if btype.name == 'str':
            return {'QTYPE_QNUM', 'QTYPE_QBOOL'}
        out = set()
        if isinstance(btype, Enum):
            for v, _ in btype.values:
                if v in ('on', 'off', 'yes', 'no', 'true', 'false'):
                    out.add('QTYPE_QBOOL')
                if v[:1] in '-+0123456789.':
                    out.add('QTYPE_QNUM')
        return out

    def _arg_type(self, e, name, kind):
        """Struct holding a command's/event's arguments, or None."""
        data = e.expr.get('data')
        if data is None:
            return None
        if isinstance(data, dict):
            typ = Struct('q_obj_%s-arg' % name, None,
                         self._members(e.info, "%s '%s'" % (kind, name),
                                       data))
            typ.implicit = True
            self.types[typ.name] = typ
            return typ
        typ = self._resolve(e.info, "%s '%s' data" % (kind, name), data)
        if not isinstance(typ, Struct):
            raise QAPIError(e.info, "%s '%s': 'data' must be an object or a "
                            'struct' % (kind, name))
        if typ.variants and not e.expr.get('boxed'):
            raise QAPIError(e.info, "%s '%s': a union argument needs "
                            "'boxed': true" % (kind, name))
        return typ

    def _def_command(self, e):
        name = e.expr['command']
        arg = self._arg_type(e, name, 'command')
        ret = e.expr.get('returns')
        ret = self._resolve(e.info, "command '%s' returns" % name, ret) \
            if ret is not None else None
        for flag in ('boxed', 'gen', 'allow-oob', 'coroutine'):
            if not isinstance(e.expr.get(flag, True), bool):
                raise QAPIError(e.info, "command '%s': '%s' must be a "
                                'boolean' % (name, flag))
        if e.expr.get('boxed') and arg is None:
            raise QAPIError(e.info, "command '%s': 'boxed' needs 'data'"
                            % name)
        cmd = Command(name, arg, ret, e.expr.get('boxed', False),
                      e.expr.get('gen', True), e.expr.get('allow-oob', False),
                      e.expr.get('coroutine', False),
                      self._features(e.info, name, e.expr.get('features')),
                      e.info, e.doc)
        self.commands.append(cmd)
        return cmd

    def _def_event(self, e):
        name = e.expr['event']
        arg = self._arg_type(e, name, 'event')
        ev = Event(name, arg, e.expr.get('boxed', False),
                   self._features(e.info, name, e.expr.get('features')),
                   e.info, e.doc)
        self.events.append(ev)
        return ev

    # ---- documentation ----------------------------------------------

    def _documented_names(self, ent):
        """Names the doc block of ent must describe with '@name:'."""
        if isinstance(ent, Enum):
            return [v for v, _ in ent.values]
        if isinstance(ent, Alternate):
            return [m.name for m in ent.branches]
        if isinstance(ent, Struct):
            own = ent.local_members
            if ent.base is not None and ent.base.implicit:
                own = ent.base.local_members + own
            return [m.name for m in own]
        if ent.arg_type is not None and ent.arg_type.implicit:
            return [m.name for m in ent.arg_type.members()]
        return []

    def _check_docs(self, e, ent):
        if e.doc is None:
            return
        names = self._documented_names(ent)
        for n in names:
            if n not in e.doc.args and self.doc_required:
                raise QAPIError(e.info, "'%s': member '%s' has no "
                                "'@%s:' documentation" % (ent.name, n, n))
        for n in e.doc.args:
            if n not in names:
                raise QAPIError(e.info, "'%s': documented member '%s' does "
                                'not exist' % (ent.name, n))

    # ---- queries for generators -------------------------------------

    def named_types(self):
        return [t for t in self.entities if isinstance(t, Type)]

    def implicit_structs(self):
        return [t for t in self.types.values()
                if isinstance(t, Struct) and t.implicit and t is not
                self.empty]

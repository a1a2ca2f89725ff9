"""Per-tool specialisation: a grammar's call rule rewritten for one tool of a request.

A name terminal becomes that tool's name, written the way the grammar reads names back; an arguments block
becomes the tool's JSON Schema in the block's encoding; a key/value argument list becomes one unit per schema
property (required ones required, with the grammar's own separators), each value typed by its encoding's
constraint side.  Leaves that do not depend on the tool (markers, patterns, free text) are made once per
request and shared.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from toolgram.cache import LRU
from toolgram.errors import ConstraintError
from toolgram.compiler.regexlang import (Unsupported, bound_for, bounded, capture_template, regex_char,
                                         render_capture, split_at_words, whitespace_run)
from toolgram.compiler.schema_grammar import SchemaGrammar, join
from toolgram.ir import (BLOCK, EMPTY, LITERAL, LOOKAHEAD, PATTERN, TEXT, Alt, ArgSpec, CompiledGrammar, Lit, Node,
                         Ref, Regex, Rep, Seq, Text, Tok, alt, opt, seq)
from toolgram.request import Tool, Whitespace, data_key
from toolgram.runtime import encodings
from toolgram.runtime.schema_values import object_schema, resolve, types_of
from toolgram.runtime.textfilter import escape_xml

_LEAVES = LRU("constraint_leaves", 4096)       # (grammar, terminal, request settings) -> its node
_BLANK_RUNS: dict = {}                          # (characters, fewest, most) -> the whitespace run's node
_MISSING = object()
_NAME_OK = re.compile(r"[A-Za-z0-9_.\-:/]{1,256}")


@dataclass(frozen=True)
class _At:
    """Where the specialisation is: in which tool's call, and in which of its arguments."""

    tool: Tool
    arg: ArgSpec | None = None


class Specialiser:
    """Builds, for one request, each tool's form of each call rule; new rules go to ``out``."""

    def __init__(self, g: CompiledGrammar, rules: dict, out: dict, *, content_ok: bool,
                 max_reasoning: int | None, tokens: dict | None = None, whitespace: Whitespace = Whitespace(),
                 holdable: frozenset = frozenset()):
        self.g = g
        self.rules = rules
        self.specs = g.terminals
        self.out = out
        self.content_ok = content_ok
        self.max_reasoning = max_reasoning
        self.tokens = tokens or {}
        self.holdable = holdable                  # marker tokens text may hold (`tokens.holdable_tokens`)
        self.content_guard = ""                   # characters content may not begin with (after whitespace)
        self.content_openers: tuple = ()          # markers content may not begin with (the parser's markup there)
        self.content_unheld: frozenset = frozenset()   # marker tokens content may not hold (openers of that markup)
        self.lookaheads: dict = {}                # lookahead terminals met -> the markers each must stand before
        self.argument = g.argument_rule
        self._args: dict = {}                     # (tool, repetition or block) -> its arguments (shared by forms)
        self._arg_rules: dict = {}                # arguments -> the rule that holds them
        self._plain: dict[str, Node | None] = {}
        self._tokens_key = None
        self._shared: dict = {}                   # pieces in common (`shared`): values of equal schemas ...
        self._fixed: dict = {}                    # id of a grammar node -> (node, its form for every tool) or
        #                                           (node, None) when its form depends on the tool or argument
        # the encodings' view of this grammar (`encodings.ConstraintContext`)
        self.grammar = g.name
        self.name_pattern = g.policies["name_pattern"]
        self.whitespace = whitespace
        pattern = whitespace.json_pattern()
        self.json_space = Regex(pattern) if pattern else EMPTY

    # -- the encodings' context ----------------------------------------------------------------------
    def stops(self, terminal: str) -> tuple:
        return self.g.text_stops.get(terminal, ())

    def schema_value(self, schema, root: dict, *, syntax: str, where: str, prefix: str, quote: str = '"',
                     words=None, bare_keys: bool = False) -> Node:
        gen = SchemaGrammar(root, "python" if syntax == "python" else "relaxed", quote=quote, words=words,
                            bare_keys=bare_keys, where=where, prefix=prefix)
        node = gen.value(schema)
        self.out.update(gen.rules)
        return node

    def shared(self, key, make):
        hit = self._shared.get(key)
        if hit is None:
            hit = self._shared[key] = make()
        return hit

    def blank(self, most: int | None = None, chars: str = " \n", fewest: int = 0) -> Node:
        """A run of ``fewest`` to ``most`` whitespace characters of ``chars``, at most the request's
        ``separator`` (the default), at least ``fewest``."""
        sep = self.whitespace.separator
        hi = max(fewest, sep if most is None else min(most, sep))
        chars = "".join(sorted(set(chars)))
        key = (chars, fewest, hi)
        # one node per run across requests (the kept leaves and variants hold these too); never dropped (few:
        # whitespace sets x bounds up to 64)
        node = _BLANK_RUNS.get(key)
        if node is None:
            cls = "".join(regex_char(ord(c)) for c in chars)
            cls = cls if len(chars) == 1 else f"[{cls}]"
            if hi == 0:
                node = EMPTY
            elif fewest == 0:           # (a lexeme may not match the empty text)
                node = Rep(Regex(cls if hi == 1 else f"{cls}{{1,{hi}}}"), 0, 1)
            else:
                node = Regex(cls if fewest == hi == 1 else f"{cls}{{{fewest},{hi}}}")
            node = _BLANK_RUNS.setdefault(key, node)
        return node

    # -- leaves --------------------------------------------------------------------------------------
    def settings(self) -> tuple:
        """What the tool-free nodes made for this request depend on besides the grammar (a cache key)."""
        if self._tokens_key is None:
            self._tokens_key = data_key(self.tokens)
        return (self.g.fingerprint, self._tokens_key, self.holdable, self.whitespace, self.content_ok,
                self.max_reasoning, self.content_guard, self.content_openers, self.content_unheld)

    def leaf(self, name: str) -> Node | None:
        """A terminal that does not depend on the tool (nodes are immutable: one is shared by every tool, and
        by every request with the same settings)."""
        try:
            return self._plain[name]
        except KeyError:
            pass
        key = (name, self.settings())
        node = _LEAVES.get(key, _MISSING)
        if node is _MISSING:
            node = self._make_leaf(name)
            _LEAVES.put(key, node)
        elif self.specs[name].kind == LOOKAHEAD:
            self.lookaheads[name] = self.specs[name].lookahead      # (what making it records)
        self._plain[name] = node
        return node

    def _markers(self) -> list:
        """The grammar's literal markup and the tokenizer's marker tokens (what may be single tokens)."""
        return sorted({x for s in self.specs.values() if s.kind == LITERAL for x in s.spellings
                       if len(x) >= 2 and not x.isalnum() and not x.isspace()} | set(self.tokens))

    def _make_leaf(self, name: str) -> Node | None:
        spec = self.specs.get(name)
        if spec is None:
            raise ConstraintError(f"grammar {self.g.name}: unknown terminal {name}")
        if spec.kind == LITERAL:
            return alt(*[Lit(x) for x in spec.spellings])
        if spec.kind == PATTERN:
            run = whitespace_run(spec.source)
            if run is not None:                   # a separator: spaces and newlines, as many as the request allows
                chars, lo, hi = run
                usual = "".join(c for c in chars if c in " \n") or chars
                return self.blank(hi, usual, lo)
            try:
                # unbounded repetitions capped: whitespace as the request's separator, the others within
                # the terminal's max_length, else to a few characters
                blank = (" \n", self.whitespace.separator)
                bound = bound_for(spec.source, spec.max_length, blank=blank)
                split = split_at_words(spec.source, self._markers(), bound, blank)
                if split is not None:             # a marker inside the pattern: written as the marker
                    return alt(*[seq(*[Lit(x) if kind == "word" else _regex_part(x) for kind, x in parts])
                                 for parts in split])
                return Regex(bounded(spec.source, bound, blank))
            except Unsupported:
                return None                       # e.g. a lookbehind: the constraint leaves this branch out
        if spec.kind == TEXT:
            if spec.role == "content" and not self.content_ok:
                return None                       # required / named: no free text
            hi = self.max_reasoning if spec.role == "reasoning" else None
            pattern = None
            if spec.role == "content" and (self.content_guard or self.content_openers):
                pattern = _guard_pattern(self.content_guard, self.content_openers)
            text = Text(exclude=self.stops(name), lo=1, hi=hi, pattern=pattern)
            held = self._held_tokens(name) if spec.role in ("reasoning", "content") and hi is None else ()
            if spec.role == "content":
                held = [t for t in held if t not in self.content_unheld]
            if not held:
                return text
            # the parser keeps these markers in the text; as added tokens a text lexeme cannot hold them
            if spec.role == "content":
                # a loop of text and tokens: `passes.finish` merges it into the loop content stands in
                # (``(CONTENT | call)*``) and writes it so that two text lexemes never meet
                return Rep(alt(text, *[Lit(t) for t in held]), 1, None)
            # text pieces between them (the loop's normal form, so two pieces never meet)
            piece = seq(alt(*[Lit(t) for t in held]), opt(text))
            return alt(seq(text, Rep(piece, 0, None)), Rep(piece, 1, None))
        if spec.kind == LOOKAHEAD:
            # kept as the terminal: `passes.lookaheads` writes it as what follows it, begun with its markers
            self.lookaheads[name] = spec.lookahead
            return Tok(name)
        raise ConstraintError(f"grammar {self.g.name}: block terminal {name} outside a call")

    def _held_tokens(self, terminal: str) -> list:
        """The grammar's markers that are added tokens and that text of ``terminal`` may hold: those the
        tokenizer lets text hold (not its special tokens) that neither are, contain, lie inside nor overlap a
        marker ending that text (then the pieces of text around them cannot spell one)."""
        ends = self.stops(terminal)
        markers = {x for s in self.specs.values() if s.kind == LITERAL for x in s.spellings}
        return sorted(t for t in self.tokens if t in markers and t in self.holdable and
                      not any(_overlap(t, e) for e in ends))

    def _name(self, spec, tool: Tool) -> Node:
        name = tool.name
        if not _NAME_OK.fullmatch(name) or not re.fullmatch(self.name_pattern, name):
            raise ConstraintError(f"tool {name!r}: the name cannot be written in grammar {self.g.name!r}",
                                  f"{tool.param}.name", "invalid_tools")
        if spec.kind == TEXT:
            for stop in self.stops(spec.name):
                if stop in name:
                    raise ConstraintError(f"tool {name!r}: the name contains the marker {stop!r}",
                                          f"{tool.param}.name", "invalid_tools")
        if spec.name_re is None:
            if spec.kind == PATTERN and not spec.pattern.fullmatch(name):
                raise ConstraintError(f"tool {name!r}: the name cannot be written in grammar {self.g.name!r} "
                                      f"(terminal {spec.name} is /{spec.source}/)", f"{tool.param}.name",
                                      "invalid_tools")
            if spec.kind == TEXT and not any(s[:1].isspace() for s in self.stops(spec.name)):
                # a name run is stripped: layouts put a newline after it (not where a marker starts with one)
                most = min(2, self.whitespace.separator)
                return Regex("".join(regex_char(ord(c)) for c in name) + f"[ \\n]{{0,{most}}}")
            return Lit(name)
        try:
            around = capture_template(spec.name_re.pattern, "name")
            pattern = around[0] + "".join(map(regex_char, map(ord, name))) + around[1] if around else \
                bounded(render_capture(spec.name_re.pattern, "name", name))
        except Unsupported as e:
            raise ConstraintError(f"grammar {self.g.name}: the name of terminal {spec.name} cannot be "
                                  f"generated ({e})") from None
        # the capture regex reads the token stripped: keep the space the token itself may start with
        lead = spec.kind == TEXT or (spec.kind == PATTERN and spec.pattern.match(" ", partial=True) is not None)
        # (one regex: a separate whitespace lexeme would lose against a longer pattern lexeme)
        return Regex(f" {{0,{min(2, self.whitespace.separator)}}}" + pattern) if lead else Regex(pattern)

    def _id(self, spec) -> Node:
        if spec.kind == PATTERN:
            return self.leaf(spec.name)
        return Regex(r"[A-Za-z0-9]{9}")

    # -- one tool's call -----------------------------------------------------------------------------
    def call(self, form: str, tool: Tool) -> Node | None:
        """The call rule ``form`` for ``tool`` (None: this form cannot call it)."""
        return self._spec(self.rules[form], _At(tool), (form,))

    def _spec(self, node: Node, at: _At, stack=()) -> Node | None:
        t = type(node)                           # (node classes have no subclasses: exact type tests)
        if t is Lit:
            return node
        if t is Seq or t is Alt or t is Rep:
            hit = self._fixed.get(id(node))
            if hit is None:
                fixed = self._tool_free(node, stack)
                hit = self._fixed[id(node)] = (node, self._spec_walk(node, at, stack) if fixed else None)
                if fixed:
                    return hit[1]
            elif hit[1] is not None:
                return hit[1]
            return self._spec_walk(node, at, stack)
        if t is Tok:
            return self._tok(node.name, at)
        if t is Ref:
            if node.name == self.argument and at.arg is None:
                raise ConstraintError(f"grammar {self.g.name}: rule {self.argument} is used outside a "
                                      f"repetition; cannot derive the argument list")
            if node.name in stack:
                raise ConstraintError(f"grammar {self.g.name}: recursive rule {node.name} inside a call")
            return self._spec(self.rules[node.name], at, stack + (node.name,))
        return node

    def _tool_free(self, node: Node, stack) -> bool:
        """Whether ``node``'s form is the same for every tool and argument (markers, patterns, free text)."""
        t = type(node)
        if t is Tok:
            spec = self.specs[node.name]
            return not (spec.takes_name or spec.kind == BLOCK or spec.takes_id or spec.role in ("key", "value")
                        or spec.arg_type is not None)
        if t is Ref:
            return node.name != self.argument and node.name not in stack and \
                self._tool_free(self.rules[node.name], stack + (node.name,))
        if t is Seq:
            return all(self._tool_free(x, stack) for x in node.items)
        if t is Alt:
            return all(self._tool_free(x, stack) for x in node.options)
        if t is Rep:
            return self._tool_free(node.item, stack)
        return True

    def _spec_walk(self, node: Node, at: _At, stack) -> Node | None:
        t = type(node)
        if t is Seq:
            spec = self._spec
            return seq(*one_blank([x if type(x) is Lit else spec(x, at, stack) for x in node.items], self.out))
        if t is Alt:
            spec = self._spec
            return alt(*[x if type(x) is Lit else spec(x, at, stack) for x in node.options])
        if t is Rep:
            if self.argument and at.arg is None and _mentions(node.item, self.argument):
                # every call form of a tool (``function`` and ``open_function -> function``) holds the same
                # argument list: build it once per tool (nodes are immutable and may be shared)
                key = (data_key(at.tool.closed), node)
                if key not in self._args:
                    self._args[key] = self._as_rule(self._arguments(node, at, stack))
                return self._args[key]
            item = self._spec(node.item, at, stack)
            if item is None:
                return EMPTY if node.lo == 0 else None
            if (node.lo, node.hi) == (0, 1) and at.arg is not None and self._holds_value(node.item) and \
                    not _empty_ok(at.arg):
                return item                       # a value that cannot be empty may not be left out
            return Rep(item, node.lo, node.hi)
        return node

    def _as_rule(self, node):
        """A tool's arguments as a rule of their own (tools with equal schemas share it): the passes after
        derive and end it once, by name, whatever call form or tool it stands in."""
        if type(node) not in (Seq, Alt, Rep) or node == EMPTY:
            return node
        ref = self._arg_rules.get(node)          # (equal arguments built apart: two call forms' equal objects)
        if ref is None:
            ref = self._arg_rules[node] = Ref(f"tg_args{len(self.out)}")
            self.out[ref.name] = node
        return ref

    def _holds_value(self, node: Node) -> bool:
        if isinstance(node, Tok):
            return self.specs[node.name].role == "value"
        if isinstance(node, Seq):
            return any(self._holds_value(x) for x in node.items)
        if isinstance(node, Alt):
            return any(self._holds_value(x) for x in node.options)
        if isinstance(node, Rep):
            return self._holds_value(node.item)
        return False

    def _tok(self, name: str, at: _At) -> Node | None:
        spec = self.specs[name]
        tool = at.tool
        if spec.takes_name:
            return self._name(spec, tool)
        if spec.kind == BLOCK:
            if spec.role == "value":
                return self._value(spec, at)
            # a tool's arguments block, made once per tool: the call forms share it (written once, as a rule)
            enc = encodings.get(spec.block)
            key = (tool.name if enc.finds_name else data_key(tool.closed), name)
            if key not in self._args:
                if enc.arguments is None:
                    raise ConstraintError(f"grammar {self.g.name}: block {spec.block} cannot hold a call's "
                                          f"arguments")
                self._args[key] = self._as_rule(enc.arguments(self, spec, tool))
            return self._args[key]
        if spec.takes_id:
            return self._id(spec)
        if spec.role == "key":
            return self._key(spec, at)
        if spec.role == "value":
            return self._value(spec, at)
        if spec.arg_type is not None:
            if at.arg is not None and at.arg.type not in (spec.arg_type, "any"):
                return None
        return self.leaf(name)

    # -- arguments -----------------------------------------------------------------------------------
    def _arguments(self, rep: Rep, at: _At, stack) -> Node:
        arg = Ref(self.argument)
        inner = rep.item
        sep = None
        extras: list[Node] = []
        template: Node = inner
        if isinstance(inner, Seq) and inner.items and inner.items[0] == arg and any(
                isinstance(x, Rep) and _mentions(x.item, self.argument) for x in inner.items[1:]):
            template = arg
            for x in inner.items[1:]:
                if isinstance(x, Rep) and _mentions(x.item, self.argument):
                    body = x.item.items if isinstance(x.item, Seq) else (x.item,)
                    if arg not in body:
                        raise ConstraintError(f"grammar {self.g.name}: cannot read the argument separator")
                    k = body.index(arg)
                    sep = self._spec(seq(*body[:k]), at, stack) if k else None
                    if k + 1 < len(body):
                        raise ConstraintError(f"grammar {self.g.name}: cannot read the argument separator")
                else:
                    extras.append(x)
        tool = at.tool
        root = tool.closed
        schema = object_schema(root)
        props = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        if not props and schema.get("additionalProperties", True) is not False:
            # a free-form object: any keys, string values (what the parser makes of them without a schema)
            free = _At(tool, ArgSpec(tool.name, None, {}, root, frozenset(), "any"))
            unit = self._spec(template, free, stack)
            if unit is None:
                return EMPTY
            tail = [t for t in (self._spec(x, at, stack) for x in extras) if t is not None]
            if sep is None:
                return seq(Rep(unit, 0, None), *tail)
            return Rep(seq(unit, Rep(seq(sep, unit), 0, None), *tail), 0, 1)
        units = []
        for key, sub in props.items():
            types = frozenset(types_of(resolve(sub, root), root))
            string_only = not types or types == {"string"}
            unit = self._spec(template, _At(tool, ArgSpec(tool.name, key, sub, root, types,
                                                          "string" if string_only else "json")), stack)
            if unit is None:
                raise ConstraintError(f"tool {tool.name!r}: parameter {key!r} cannot be written in "
                                      f"grammar {self.g.name!r}", f"{tool.param}.parameters", "invalid_tool_schema")
            units.append((unit, key in required))
        body = join(units, sep)
        tail = [t for t in (self._spec(x, at, stack) for x in extras) if t is not None]
        if rep.lo and not units:
            return None
        if not units:
            return EMPTY
        if rep.lo == 0 and tail and not any(req for _, req in units):
            # separators that follow the list (a trailing comma) only come with at least one argument
            nonempty = body.item if isinstance(body, Rep) and (body.lo, body.hi) == (0, 1) else body
            return opt(seq(nonempty, *tail))
        return seq(body, *tail)

    def _key(self, spec, at: _At) -> Node:
        arg = at.arg
        if arg is None:
            raise ConstraintError(f"grammar {self.g.name}: key terminal {spec.name} outside an argument")
        key = arg.key
        if key is None:                           # free-form object: any key the terminal can hold
            if spec.kind == PATTERN:
                return Regex(bounded(spec.source, 40))
            return Text(exclude=self.stops(spec.name) + ("\n",), lo=1, hi=64)
        where = f"{at.tool.param}.parameters"
        if spec.kind == PATTERN and not spec.pattern.fullmatch(key):
            raise ConstraintError(f"tool {at.tool.name!r}: parameter {key!r} cannot be written in "
                                  f"grammar {self.g.name!r} (keys are /{spec.source}/)", where, "invalid_tool_schema")
        if spec.kind == TEXT:
            for stop in self.stops(spec.name):
                if stop in key:
                    raise ConstraintError(f"tool {at.tool.name!r}: parameter {key!r} contains {stop!r}", where,
                                          "invalid_tool_schema")
        if spec.unescape == "xml":
            key = escape_xml(key)
        return Lit(key)

    def _value(self, spec, at: _At) -> Node:
        if at.arg is None:
            raise ConstraintError(f"grammar {self.g.name}: value terminal {spec.name} outside an argument")
        arg = at.arg
        # parameters with the same schema (a tool set's many plain strings) share one value node: built once,
        # written once
        schema = json.dumps(arg.schema, sort_keys=True)
        defs = json.dumps([arg.root.get("$defs"), arg.root.get("definitions")], sort_keys=True) \
            if "$ref" in schema else ""
        enc = encodings.get(spec.block if spec.kind == BLOCK else "text")
        if enc.value is None:
            raise ConstraintError(f"grammar {self.g.name}: block {spec.block} cannot hold an argument value")
        key = ("value", spec.name, arg.type, arg.types, schema, defs, arg.key if enc.value_names_key else None)
        return self.shared(key, lambda: enc.value(self, spec, arg))


@functools.lru_cache(maxsize=256)
def _is_blank(pattern: str) -> bool:
    return whitespace_run(pattern) is not None


def _starts_with(node: Node, first: Node, rules: dict, depth: int = 0) -> bool:
    """Whether every text of ``node`` begins with what ``first`` matches (``first`` is its first item)."""
    if node == first:
        return True
    if depth > 8:
        return False
    if isinstance(node, Seq):
        return bool(node.items) and _starts_with(node.items[0], first, rules, depth + 1)
    if isinstance(node, Alt):
        return bool(node.options) and all(_starts_with(o, first, rules, depth + 1) for o in node.options)
    if isinstance(node, Ref) and node.name in rules:
        return _starts_with(rules[node.name], first, rules, depth + 1)
    return False


def one_blank(items: list, rules: dict) -> list:
    """``items`` of a sequence without an optional whitespace run that the next item begins with anyway (the
    grammar's ``WS?`` before a block that reads its own leading whitespace): two runs would double the bound."""
    out = []
    for i, x in enumerate(items):
        if isinstance(x, Rep) and (x.lo, x.hi) == (0, 1) and isinstance(x.item, Regex) and i + 1 < len(items) \
                and items[i + 1] is not None and _is_blank(x.item.pattern) and _starts_with(items[i + 1], x, rules):
            continue
        out.append(x)
    return out


def _regex_part(pattern: str) -> Node:
    """A piece of a pattern cut at a marker; a single repeated atom that may match nothing (``[ \\t]{0,4}``)
    becomes optional (a lexeme may not match the empty text)."""
    m = re.fullmatch(r"(\[(?:\\.|[^\]])*\]|\\.|[^\\])(?:\{0,(\d+)\}|(\?))", pattern)
    if m:
        atom = m.group(1)
        return Rep(Regex(atom if m.group(3) else f"{atom}{{1,{m.group(2)}}}"), 0, 1)
    return Regex(pattern)


def _guard_pattern(chars: str, openers) -> str:
    """A regex of the text that begins, after whitespace, with none of ``chars``, and (where it does not begin
    with whitespace) with none of ``openers`` (markers: none begins with whitespace)."""
    def char(c: str) -> str:
        return c if c == "/" else regex_char(ord(c))   # (the writer escapes "/" when it writes the regex)
    cls = "".join(char(c) for c in chars)
    if not openers:
        return rf"(?s:[ \t\r\n]*|[ \t\r\n]*[^ \t\r\n{cls}].*)"
    trie: dict = {}
    for marker in openers:
        node = trie
        for c in marker:
            node = node.setdefault(c, {})
        node[None] = {}                           # a whole marker ends here

    def rest(node: dict, banned: str) -> str:
        """The text after a proper prefix of some markers (``node``: the trie below it)."""
        branches = [char(c) + "(?:" + rest(node[c], "") + ")" for c in sorted(c for c in node if c is not None)
                    if c not in banned and None not in node[c]]
        others = "".join(char(c) for c in sorted(set(node) - {None} | set(banned)))
        return "|".join(([] if banned else [""]) + branches + [f"[^{others}].*"])
    first = rest(trie, " \t\r\n" + chars)        # (no whitespace first: the run before is the other branch)
    return rf"(?s:[ \t\r\n]*|[ \t\r\n]+[^ \t\r\n{cls}].*|{first})"


def _overlap(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` share text when written next to or inside each other."""
    if a in b or b in a:
        return True
    return any(a.endswith(b[:k]) or b.endswith(a[:k]) for k in range(1, min(len(a), len(b))))


def _mentions(node: Node, rule: str) -> bool:
    if isinstance(node, Ref):
        return node.name == rule
    if isinstance(node, (Seq, Alt)):
        return any(_mentions(x, rule) for x in (node.items if isinstance(node, Seq) else node.options))
    if isinstance(node, Rep):
        return _mentions(node.item, rule)
    return False


def _empty_ok(arg: ArgSpec) -> bool:
    """Whether an argument's value may be the empty text."""
    if arg.type == "any":
        return True
    if arg.type != "string":
        return False
    schema = resolve(arg.schema, arg.root) if isinstance(arg.schema, dict) else {}
    if not isinstance(schema, dict):
        return True
    if "enum" in schema:
        return "" in schema["enum"]
    if "const" in schema:
        return schema["const"] == ""
    return not schema.get("minLength") and "pattern" not in schema

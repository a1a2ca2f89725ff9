"""Constraints derived from the grammar that parses: ``required``, a named tool, lazy ``auto`` and ``none``.

The grammar's own rules (read from its Lark text) are rewritten for one request:

* the call rule is specialised per tool: a name terminal becomes that tool's name (written the way the
  grammar reads names back), the arguments become the tool's JSON Schema in the grammar's encoding
  (``%json`` for JSON blocks; typed value rules for key/value and literal encodings; one argument per
  schema property, required ones required, with the grammar's own separators);
* the tool-call region is rewritten by call count: at least one call (``required``), exactly one
  (``parallel_tool_calls=False``, a named tool), or none; other structure is kept as written;
* ``auto`` is free text that cannot contain a call marker except by starting a well-formed call; ``none``
  is text that contains no call marker; a reasoning block may come first where the grammar has reasoning.

So the parser accepts everything the constraint allows, and their typing agrees.  Output syntaxes: Lark for
llguidance (``dialect="llguidance"``, default) or for xgrammar's ``compile_lark`` (``dialect="xgrammar"``: no
regex intersections), GBNF (llama.cpp, JSON expanded into rules), and xgrammar/vLLM structural tags.
"""
from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from operator import is_

from toolgram.runtime.schema_values import types_of
from toolgram.ir import BLOCK, LITERAL, LOOKAHEAD, PATTERN, TEXT, CompiledGrammar
from toolgram.ir import EMPTY, Alt, Json, Lazy, Lit, Node, Ref, Regex, Rep, Seq, Text, Tok, alt, opt, seq
from toolgram.compiler.ebnf import read_rules
from toolgram.errors import ConstraintError
from toolgram.compiler.regexlang import Unsupported, bounded, render_capture
from toolgram.compiler.schema_grammar import SchemaGrammar, check_schema, join

MODES = ("required", "named", "auto", "none")
SYNTAXES = ("lark", "gbnf", "structural_tag")
_NAME_OK = re.compile(r"[A-Za-z0-9_.\-:/]{1,256}")
JSON_WS = r"[ \t\r\n]{0,6}"


@dataclass
class Constraint:
    """A decoding constraint: the grammar ``text`` in ``syntax`` for one request's tools and choice."""

    syntax: str
    text: str
    mode: str
    tools: tuple
    parallel: bool
    triggers: tuple = ()
    dialect: str = "llguidance"
    rules: dict = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        return self.text

    def structured_outputs(self) -> dict:
        """vLLM's request field ``structured_outputs`` for this constraint."""
        key = "structural_tag" if self.syntax == "structural_tag" else "grammar"
        return {key: self.text}


# -- request normalisation -------------------------------------------------------------------

def closed_objects(schema, depth: int = 0):
    """The schema with ``additionalProperties: false`` on objects that list properties and say nothing
    else: a constrained model writes the parameters the tool declares, not invented ones."""
    if depth > 64:
        return schema
    if isinstance(schema, list):
        return [closed_objects(s, depth + 1) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed_objects(v, depth + 1) if k in _SUBSCHEMA_KEYS else v for k, v in schema.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: closed_objects(v, depth + 1) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    for key in ("$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {k: closed_objects(v, depth + 1) for k, v in out[key].items()}
    return out


_SUBSCHEMA_KEYS = {"items", "prefixItems", "anyOf", "oneOf", "allOf", "additionalProperties", "not"}


def _tool_list(tools) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ConstraintError("tools must be a list of OpenAI tool objects")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ConstraintError(f"tools[{i}] must be an object")
        if tool.get("type", "function") != "function":
            raise ConstraintError(f"tools[{i}]: only function tools can be constrained, not {tool.get('type')!r}")
        fn = tool.get("function", tool)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ConstraintError(f"tools[{i}] has no function name")
        name = fn["name"]
        params = fn.get("parameters")
        if params is None:
            params = {"type": "object", "properties": {}}
        check_schema(params, f"tool {name!r}")
        if not isinstance(params, dict) or params.get("type", "object") != "object":
            raise ConstraintError(f"tool {name!r}: parameters must describe an object")
        out.append({"name": name, "parameters": closed_objects(params)})
    names = [t["name"] for t in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConstraintError(f"tools: duplicate tool name(s) {', '.join(sorted(dup))}")
    return out


def _mode(tool_choice, tools: list[dict]) -> tuple[str, str | None]:
    if tool_choice is None:
        tool_choice = "auto"
    if isinstance(tool_choice, str):
        if tool_choice not in ("auto", "required", "none"):
            raise ConstraintError(f"tool_choice must be 'auto', 'required', 'none' or a named function, "
                                  f"not {tool_choice!r}")
        if tool_choice == "required" and not tools:
            raise ConstraintError("tool_choice 'required' needs at least one tool")
        return tool_choice, None
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function") if tool_choice.get("type", "function") == "function" else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise ConstraintError("a named tool_choice is {'type': 'function', 'function': {'name': ...}}")
        if name not in {t["name"] for t in tools}:
            raise ConstraintError(f"tool_choice names {name!r}, which is not in tools")
        return "named", name
    raise ConstraintError(f"invalid tool_choice {tool_choice!r}")


# -- grammar IR (made at compile time, kept on the compiled grammar) ---------------------------

def grammar_rules(g: CompiledGrammar) -> dict:
    """The rules of the grammar as compiled (reasoning composed), as constraint-IR nodes."""
    if g.rules_problem is not None:
        raise ConstraintError(f"grammar {g.name}: no constraint can be derived: {g.rules_problem}")
    return g.rules


def text_stops(g: CompiledGrammar, terminal: str) -> tuple:
    """The markers that end a text terminal, longest first."""
    return g.text_stops.get(terminal, ())


# -- the builder ----------------------------------------------------------------------------

class _Builder:
    def __init__(self, g: CompiledGrammar, tools: list[dict], mode: str, named: str | None, parallel: bool,
                 reasoning: bool, max_reasoning: int | None, max_calls: int | None = None):
        self.g = g
        self.rules = grammar_rules(g)
        self.specs = g.terminals
        self.tools = tools if mode != "named" else [t for t in tools if t["name"] == named]
        self.mode = mode
        self.parallel = parallel and mode != "named"
        self.start = "start" if reasoning or "plain" not in g.tables.start_states else "plain"
        self.max_reasoning = max_reasoning
        self.max_calls = max_calls
        self.content_ok = mode in ("auto", "none")
        self.out: dict[str, Node] = {}
        self._args: dict = {}                     # (tool, repetition or block) -> its arguments (shared by forms)
        self._can: dict[str, bool] = {}
        self._plain: dict[str, Node | None] = {}
        self.call_rule = g.call_rule
        # the call rule, and every alternative named after it (``-> call``), is one form of a call
        self.call_rules = [r for r in self.rules if r == g.call_rule or r.startswith(g.call_rule + "__alias")]
        self.argument = g.argument_rule

    # -- leaves --------------------------------------------------------------------------------
    def _plain_tok(self, name: str) -> Node:
        """A terminal that does not depend on the tool (nodes are immutable: one is shared by every tool)."""
        try:
            return self._plain[name]
        except KeyError:
            node = self._plain[name] = self._make_plain_tok(name)
            return node

    def _make_plain_tok(self, name: str) -> Node:
        spec = self.specs.get(name)
        if spec is None:
            raise ConstraintError(f"grammar {self.g.name}: unknown terminal {name}")
        if spec.kind == LITERAL:
            return alt(*[Lit(x) for x in spec.spellings])
        if spec.kind == PATTERN:
            try:
                return Regex(bounded(spec.source))
            except Unsupported:
                return None                       # e.g. a lookahead: the constraint leaves this branch out
        if spec.kind == TEXT:
            if spec.role == "content" and not self.content_ok:
                return None                       # required / named: no free text
            hi = self.max_reasoning if spec.role == "reasoning" else None
            return Text(exclude=text_stops(self.g, name), lo=1, hi=hi)
        if spec.kind == LOOKAHEAD:
            return EMPTY
        raise ConstraintError(f"grammar {self.g.name}: block terminal {name} outside a call")

    def _name(self, spec, tool: str) -> Node:
        if not _NAME_OK.fullmatch(tool) or not re.fullmatch(self.g.policies["name_pattern"], tool):
            raise ConstraintError(f"tool {tool!r}: the name cannot be written in grammar {self.g.name!r}")
        if spec.kind == TEXT:
            for stop in text_stops(self.g, spec.name):
                if stop in tool:
                    raise ConstraintError(f"tool {tool!r}: the name contains the marker {stop!r}")
        if spec.name_re is None:
            if spec.kind == PATTERN and not spec.pattern.fullmatch(tool):
                raise ConstraintError(f"tool {tool!r}: the name cannot be written in grammar {self.g.name!r} "
                                      f"(terminal {spec.name} is /{spec.source}/)")
            if spec.kind == TEXT and not any(s[:1].isspace() for s in text_stops(self.g, spec.name)):
                # a name run is stripped: layouts put a newline after it (not where a marker starts with one)
                return Regex(_escape(tool) + r"[ \t\r\n]{0,2}")
            return Lit(tool)
        try:
            pattern = bounded(render_capture(spec.name_re.pattern, "name", tool))
        except Unsupported as e:
            raise ConstraintError(f"grammar {self.g.name}: the name of terminal {spec.name} cannot be "
                                  f"generated ({e})") from None
        # the capture regex reads the token stripped: keep the space the token itself may start with
        lead = spec.kind == TEXT or (spec.kind == PATTERN and spec.pattern.match(" ", partial=True) is not None)
        # (one regex: a separate whitespace lexeme would lose against a longer pattern lexeme)
        return Regex(r"[ \t]{0,2}" + pattern) if lead else Regex(pattern)

    def _id(self, spec) -> Node:
        if spec.kind == PATTERN:
            return self._plain_tok(spec.name)
        return Regex(r"[A-Za-z0-9]{9}")

    def _json_call(self, spec, tool: dict) -> Node:
        """The call object: name and arguments keys (any accepted spelling, either order), JSON spacing."""
        if not re.fullmatch(self.g.policies["name_pattern"], tool["name"]):
            # JSON could write any name, but a call the parser refuses would come back as content
            raise ConstraintError(f"tool {tool['name']!r}: the name cannot be read back in grammar {self.g.name!r}")
        ws = Regex(JSON_WS)
        names = spec.options.get("name_keys") or ["name"]
        arg_keys = spec.options.get("arguments_keys") or ["arguments", "parameters"]
        name_member = seq(alt(*[Lit(json.dumps(k)) for k in names]), ws, Lit(":"), ws,
                          Lit(json.dumps(tool["name"], ensure_ascii=False)))
        args_member = seq(alt(*[Lit(json.dumps(k)) for k in arg_keys]), ws, Lit(":"), ws,
                          Json.of(_object_schema(tool["parameters"]), f"tool {tool['name']!r}"))
        both = alt(seq(name_member, ws, Lit(","), ws, args_member), seq(args_member, ws, Lit(","), ws, name_member))
        params = _object_schema(tool["parameters"])
        if spec.options.get("name_only", True) and not params.get("required"):
            both = alt(both, name_member)
        return seq(ws, Lit("{"), ws, both, ws, Lit("}"))

    # -- per-tool call ---------------------------------------------------------------------------
    def _spec(self, node: Node, ctx: dict, stack=()) -> Node | None:
        if isinstance(node, Lit):
            return node
        if isinstance(node, Tok):
            return self._tok(node.name, ctx)
        if isinstance(node, Ref):
            if node.name == self.argument:
                if "arg" not in ctx:
                    raise ConstraintError(f"grammar {self.g.name}: rule {self.argument} is used outside a "
                                          f"repetition; cannot derive the argument list")
            if node.name in stack:
                raise ConstraintError(f"grammar {self.g.name}: recursive rule {node.name} inside a call")
            return self._spec(self.rules[node.name], ctx, stack + (node.name,))
        if isinstance(node, Seq):
            return seq(*[self._spec(x, ctx, stack) for x in node.items])
        if isinstance(node, Alt):
            return alt(*[self._spec(x, ctx, stack) for x in node.options])
        if isinstance(node, Rep):
            if self.argument and "arg" not in ctx and self._mentions(node.item, self.argument):
                # every call form of a tool (``function`` and ``open_function -> function``) holds the same
                # argument list: build it once per tool (nodes are immutable and may be shared)
                key = (id(ctx["tool"]), node)
                if key not in self._args:
                    self._args[key] = self._arguments(node, ctx, stack)
                return self._args[key]
            item = self._spec(node.item, ctx, stack)
            if item is None:
                return EMPTY if node.lo == 0 else None
            if (node.lo, node.hi) == (0, 1) and "arg" in ctx and self._holds_value(node.item) and \
                    not _empty_ok(ctx["arg"]):
                return item                       # a value that cannot be empty may not be left out
            return Rep(item, node.lo, node.hi)
        return node

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

    def _mentions(self, node: Node, rule: str, seen=None) -> bool:
        if isinstance(node, Ref):
            return node.name == rule
        if isinstance(node, (Seq, Alt)):
            return any(self._mentions(x, rule) for x in (node.items if isinstance(node, Seq) else node.options))
        if isinstance(node, Rep):
            return self._mentions(node.item, rule)
        return False

    def _tok(self, name: str, ctx: dict) -> Node | None:
        spec = self.specs[name]
        tool = ctx["tool"]
        if spec.takes_name:
            return self._name(spec, tool["name"])
        if spec.kind == BLOCK:
            if spec.role == "value":
                return self._value(spec, ctx)
            # a tool's arguments block, made once per tool: the call forms share it (written once, as a rule)
            key = (id(tool), name)
            if key not in self._args:
                self._args[key] = self._block(spec, tool)
            return self._args[key]
        if spec.takes_id:
            return self._id(spec)
        if spec.role == "key":
            return self._key(spec, ctx)
        if spec.role == "value":
            return self._value(spec, ctx)
        if spec.arg_type is not None:
            arg = ctx.get("arg")
            if arg is not None and arg["type"] not in (spec.arg_type, "any"):
                return None
            return Lit(spec.literal)
        return self._plain_tok(name)

    def _block(self, spec, tool: dict) -> Node:
        if spec.block == "json_call":
            return self._json_call(spec, tool)
        if spec.block == "json":                    # the block reads leading whitespace as its own
            return seq(Regex(JSON_WS), Json.of(_object_schema(tool["parameters"]), f"tool {tool['name']!r}"))
        raise ConstraintError(f"grammar {self.g.name}: block {spec.block} cannot hold a call's arguments")

    # -- arguments -------------------------------------------------------------------------------
    def _arguments(self, rep: Rep, ctx: dict, stack) -> Node:
        arg = Ref(self.argument)
        inner = rep.item
        sep = None
        extras: list[Node] = []
        template: Node = inner
        if isinstance(inner, Seq) and inner.items and inner.items[0] == arg and any(
                isinstance(x, Rep) and self._mentions(x.item, self.argument) for x in inner.items[1:]):
            template = arg
            for x in inner.items[1:]:
                if isinstance(x, Rep) and self._mentions(x.item, self.argument):
                    body = x.item.items if isinstance(x.item, Seq) else (x.item,)
                    if arg not in body:
                        raise ConstraintError(f"grammar {self.g.name}: cannot read the argument separator")
                    k = body.index(arg)
                    sep = self._spec(seq(*body[:k]), ctx, stack) if k else None
                    if k + 1 < len(body):
                        raise ConstraintError(f"grammar {self.g.name}: cannot read the argument separator")
                else:
                    extras.append(x)
        schema = _object_schema(ctx["tool"]["parameters"])
        root = ctx["tool"]["parameters"]
        props = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        if not props and schema.get("additionalProperties", True) is not False:
            # a free-form object: any keys, string values (what the parser makes of them without a schema)
            uctx = dict(ctx, arg={"key": None, "schema": {}, "root": root, "types": set(), "type": "any"})
            unit = self._spec(template, uctx, stack)
            if unit is None:
                return EMPTY
            tail = [t for t in (self._spec(x, ctx, stack) for x in extras) if t is not None]
            if sep is None:
                return seq(Rep(unit, 0, None), *tail)
            return Rep(seq(unit, Rep(seq(sep, unit), 0, None), *tail), 0, 1)
        units = []
        for key, sub in props.items():
            sub_resolved = _resolve(sub, root)
            types = types_of(sub_resolved, root)
            string_only = not types or types == {"string"}
            uctx = dict(ctx, arg={"key": key, "schema": sub, "root": root, "types": types,
                                  "type": "string" if string_only else "json"})
            unit = self._spec(template, uctx, stack)
            if unit is None:
                raise ConstraintError(f"tool {ctx['tool']['name']!r}: parameter {key!r} cannot be written in "
                                      f"grammar {self.g.name!r}")
            units.append((unit, key in required))
        body = join(units, sep)
        tail = [t for t in (self._spec(x, ctx, stack) for x in extras) if t is not None]
        if rep.lo and not units:
            return None
        if not units:
            return EMPTY
        if rep.lo == 0 and tail and not any(req for _, req in units):
            # separators that follow the list (a trailing comma) only come with at least one argument
            nonempty = body.item if isinstance(body, Rep) and (body.lo, body.hi) == (0, 1) else body
            return opt(seq(nonempty, *tail))
        return seq(body, *tail)

    def _key(self, spec, ctx: dict) -> Node:
        arg = ctx.get("arg")
        if arg is None:
            raise ConstraintError(f"grammar {self.g.name}: key terminal {spec.name} outside an argument")
        key = arg["key"]
        if key is None:                           # free-form object: any key the terminal can hold
            if spec.kind == PATTERN:
                return Regex(bounded(spec.source, 40))
            return Text(exclude=text_stops(self.g, spec.name) + ("\n",), lo=1, hi=64)
        if spec.kind == PATTERN and not spec.pattern.fullmatch(key):
            raise ConstraintError(f"tool {ctx['tool']['name']!r}: parameter {key!r} cannot be written in "
                                  f"grammar {self.g.name!r} (keys are /{spec.source}/)")
        if spec.kind == TEXT:
            for stop in text_stops(self.g, spec.name):
                if stop in key:
                    raise ConstraintError(f"tool {ctx['tool']['name']!r}: parameter {key!r} contains {stop!r}")
        if spec.unescape == "xml" and any(c in key for c in "<>&"):
            key = key.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return Lit(key)

    def _value(self, spec, ctx: dict) -> Node:
        arg = ctx.get("arg")
        if arg is None:
            raise ConstraintError(f"grammar {self.g.name}: value terminal {spec.name} outside an argument")
        sub, root, types = arg["schema"], arg["root"], arg["types"]
        tool = ctx["tool"]["name"]
        where = f"tool {tool!r} parameter {arg['key']!r}"
        if spec.kind == BLOCK and spec.block == "json":
            return seq(Regex(JSON_WS), Json.of(_with_defs(sub, root), where))
        if spec.kind == BLOCK and spec.block == "literal":
            from toolgram.runtime.encodings.literal import profile
            prof = profile(spec.options)
            quote = prof["quotes"][0]
            gen = SchemaGrammar(root, "python" if spec.options.get("syntax", "python") == "python" else "relaxed",
                                quote=quote, words=prof["words"], bare_keys=prof["bare_keys"], where=where,
                                prefix=f"tg_{_slug(tool)}_{_slug(arg['key'] or 'free')}")
            node = gen.value(sub)
            self.out.update(gen.rules)
            return node
        # a text run: typed by the schema or by a type marker in the markup
        stops = text_stops(self.g, spec.name)
        if arg["type"] == "any":
            return Text(exclude=stops, lo=1)
        if arg["type"] == "string":
            s = _resolve(sub, root) if isinstance(sub, dict) else {}
            enum = s.get("enum") if isinstance(s, dict) else None
            if enum and all(isinstance(v, str) for v in enum):
                return alt(*[Lit(_xml(v) if spec.unescape else v) for v in enum if not any(m in v for m in stops)])
            return Text(exclude=stops, lo=s.get("minLength", 0), hi=s.get("maxLength"), pattern=s.get("pattern"))
        non_string = {t for t in types if t != "string"}
        json_sub = _with_defs(_drop_string(_resolve(sub, root)), root) if "string" in types else _with_defs(sub, root)
        options = [Json.of(json_sub, where)]
        pad = Rep(Regex(r"[ \t\r\n]"), 0, 2)         # typed values are read with surrounding whitespace
        if non_string & {"object", "array"} and arg["type"] == "json" and spec.arg_type is None:
            # structured values may also be written as Python literals ({'a': (1, 2)}), which the parser reads
            from toolgram.runtime.encodings.literal import PYTHON
            gen = SchemaGrammar(root, "python", words=PYTHON["words"], where=f"tool {tool!r} parameter "
                                f"{arg['key']!r}", prefix=f"tg_{_slug(tool)}_{_slug(arg['key'] or 'free')}")
            try:
                options.append(gen.value(_drop_string(_resolve(sub, root))))
                self.out.update(gen.rules)
            except ConstraintError:
                pass
        typed = seq(pad, alt(*options), pad)
        if "string" in types:
            return alt(typed, Text(exclude=stops, lo=1, hi=None))
        return typed

    # -- call-count variants of the region -------------------------------------------------------
    def _can_call(self, rule: str) -> bool:
        if rule in self.call_rules:
            return True
        if rule in self._can:
            return self._can[rule]
        self._can[rule] = False
        found = self._node_can_call(self.rules.get(rule, EMPTY))
        self._can[rule] = found
        return found

    def _node_can_call(self, node: Node) -> bool:
        if isinstance(node, Ref):
            return self._can_call(node.name)
        if isinstance(node, Seq):
            return any(self._node_can_call(x) for x in node.items)
        if isinstance(node, Alt):
            return any(self._node_can_call(x) for x in node.options)
        if isinstance(node, Rep):
            return self._node_can_call(node.item)
        return False

    def _variant(self, node: Node, k: str) -> Node | None:
        """``node`` restricted to produce no call (zero), exactly one (one), at least one (many), or any."""
        if isinstance(node, Ref):
            if node.name in self.call_rules:
                if k == "zero":
                    return None
                return Ref(f"tg_call__{node.name}") if f"tg_call__{node.name}" in self.out else None
            if not self._can_call(node.name):
                if k in ("one", "many"):
                    return None
                return self._plain_rule(node.name)
            name = f"{node.name}__{k}"
            if name not in self.out:
                self.out[name] = EMPTY
                body = self._variant(self.rules[node.name], k)
                if body is None:
                    del self.out[name]
                    return None
                self.out[name] = body
            return Ref(name)
        if isinstance(node, Tok):
            if k == "one" or k == "many":
                return None
            tok = self._plain_tok(node.name)
            return tok
        if isinstance(node, (Lit, Regex, Json, Text)):
            return node if k in ("zero", "any") else None
        if isinstance(node, Alt):
            options = [v for v in (self._variant(o, k) for o in node.options) if v is not None]
            return alt(*options) if options else None
        if isinstance(node, Seq):
            items = node.items
            if k in ("zero", "any"):
                return seq(*[self._variant(x, k) for x in items])
            options = []
            for i, x in enumerate(items):
                if not self._node_can_call(x):
                    continue
                rest = "zero" if k == "one" else "any"
                parts = [self._variant(y, "zero") for y in items[:i]] + [self._variant(x, k)] + \
                        [self._variant(y, rest) for y in items[i + 1:]]
                if any(p is None for p in parts):
                    continue
                options.append(seq(*parts))
            return alt(*options) if options else None
        if isinstance(node, Rep):
            zero = self._variant(node.item, "zero")
            if k == "zero":
                if zero is None:
                    return EMPTY if node.lo == 0 else None
                return Rep(zero, node.lo, node.hi)
            if k == "any":
                item = self._variant(node.item, "any")
                if item is None:
                    return EMPTY if node.lo == 0 else None
                return Rep(item, node.lo, self._cap(node.hi) if self._node_can_call(node.item) else node.hi)
            first = self._variant(node.item, k if k == "one" else "many")
            if first is None or node.hi == 0:
                return None
            if k == "one":
                if zero is None:
                    return first if node.lo <= 1 else None
                return seq(Rep(zero, 0, None), first, Rep(zero, 0, None))
            rest = self._variant(node.item, "any")
            lead = Rep(zero, 0, None) if zero is not None and node.hi is None else EMPTY
            if rest is None:
                return seq(lead, first) if node.lo <= 1 else None
            more = self._cap(node.hi)
            return seq(lead, first, Rep(rest, max(0, node.lo - 1), None if more is None else more - 1))
        return None

    def _cap(self, hi):
        """A repetition of calls bounded by ``max_calls`` (each repetition on its own)."""
        if self.max_calls is None:
            return hi
        return self.max_calls if hi is None else min(hi, self.max_calls)

    def _plain_rule(self, name: str) -> Node:
        out = f"{name}__plain"
        if out not in self.out:
            self.out[out] = EMPTY
            self.out[out] = self._variant(self.rules[name], "zero") or EMPTY
        return Ref(out)

    # -- assembly --------------------------------------------------------------------------------
    def build(self) -> dict[str, Node]:
        """The grammar's own start rule, restricted by call count (and, for required, with no free text)."""
        calls = []
        for form in self.call_rules:
            forms = []
            for i, tool in enumerate(self.tools):
                body = self._spec(self.rules[form], {"tool": tool}, (form,))
                if body is not None:
                    name = f"tg_{form}_{i}"
                    self.out[name] = body
                    forms.append(Ref(name))
            if forms:
                self.out[f"tg_call__{form}"] = alt(*forms)
                calls.extend(forms)
        top = Ref(self.start)
        if self.mode in ("required", "named"):
            start = self._variant(top, "many" if self.parallel else "one")
        elif self.mode == "auto" and calls:
            start = self._variant(top, "any") if self.parallel else alt(self._variant(top, "zero"),
                                                                        self._variant(top, "one"))
        else:
            start = self._variant(top, "zero")
        if start is None:
            raise ConstraintError(f"grammar {self.g.name}: no output of this grammar fits tool_choice "
                                  f"{self.mode!r}")
        self.out["tg_start"] = start
        self.out["start"] = Ref("tg_start")
        return _finish(self.out)


# -- helpers ------------------------------------------------------------------------------------

def _empty_ok(arg: dict) -> bool:
    """Whether an argument's value may be the empty text."""
    if arg["type"] == "any":
        return True
    if arg["type"] != "string":
        return False
    schema = _resolve(arg["schema"], arg["root"]) if isinstance(arg["schema"], dict) else {}
    if not isinstance(schema, dict):
        return True
    if "enum" in schema:
        return "" in schema["enum"]
    if "const" in schema:
        return schema["const"] == ""
    return not schema.get("minLength") and "pattern" not in schema


def _is_text(node: Node) -> bool:
    return isinstance(node, Text) or (isinstance(node, Rep) and node.hi == 1 and isinstance(node.item, Text))


def _no_adjacent_text(node: Node, memo: dict, refs: set) -> Node:
    """Rewrite loops like ``(TEXT | call)*`` so that two text lexemes never meet: a marker excluded from
    each could otherwise be spelled across the boundary of two of them.  Adds the rules ``node`` refers to
    to ``refs``.

    ``memo`` (id -> (node, result)) rewrites a node shared by several rules once (a tool's argument list is
    shared by its call forms); it holds the node, so that its id is not reused while the memo lives."""
    if isinstance(node, Ref):
        refs.add(node.name)
        return node
    if not isinstance(node, (Seq, Alt, Rep)):
        return node
    hit = memo.get(id(node))
    if hit is not None:
        return hit[1]
    if isinstance(node, Seq):
        items = [_no_adjacent_text(x, memo, refs) for x in node.items]
        out = node if _same(items, node.items) else seq(*items)
    elif isinstance(node, Alt):
        options = [_no_adjacent_text(x, memo, refs) for x in node.options]
        out = node if _same(options, node.options) else alt(*options)
    else:
        item = _no_adjacent_text(node.item, memo, refs)
        options = item.options if isinstance(item, Alt) else (item,)
        texts = [o for o in options if _is_text(o)]
        if texts and node.hi is None:
            text = texts[0].item if isinstance(texts[0], Rep) else texts[0]
            others = [o for o in options if not _is_text(o)]
            out = opt(text) if not others else seq(Rep(seq(opt(text), alt(*others)), node.lo, None), opt(text))
        else:
            out = node if item is node.item else Rep(item, node.lo, node.hi)
    memo[id(node)] = (node, out)
    return out


def _same(new: list, old) -> bool:
    """Whether a rewrite changed none of these nodes (then the node itself is kept: nodes are immutable)."""
    return all(map(is_, new, old))


class _LazyHeads:
    """Turn ``text? X``, where X starts with a marker spelled by ordinary tokens, into
    ``Lazy(text, marker) X'`` (X' = X after the marker) or ``X``: an llguidance text lexeme is greedy and
    cannot give back the characters that start the marker once it has taken them."""

    def __init__(self, rules: dict, tokens: dict):
        self.rules = rules
        self.tokens = tokens
        self.derived: dict = {}
        self.done: dict = {}

    def first(self, node: Node, seen=frozenset()) -> set | None:
        """Literals every string of ``node`` starts with (None: something else may come first)."""
        if isinstance(node, Lit):
            return {node.text} if node.text else None
        if isinstance(node, Ref):
            if node.name in seen or node.name not in self.rules:
                return None
            return self.first(self.rules[node.name], seen | {node.name})
        if isinstance(node, Alt):
            out = set()
            for o in node.options:
                f = self.first(o, seen)
                if f is None:
                    return None
                out |= f
            return out
        if isinstance(node, Seq):
            return self.first(node.items[0], seen) if node.items else None
        if isinstance(node, Rep):
            return self.first(node.item, seen) if node.lo >= 1 else None
        return None

    def derive(self, node: Node, lit: str):
        """``node`` after the literal ``lit`` (None: ``node`` cannot start with it)."""
        if isinstance(node, Lit):
            if node.text == lit:
                return EMPTY
            if node.text.startswith(lit):
                return Lit(node.text[len(lit):])
            return None
        if isinstance(node, Ref):
            key = (node.name, lit)
            if key not in self.derived:
                name = f"{node.name}__after{len(self.derived)}"
                self.derived[key] = name
                self.rules[name] = EMPTY
                body = self.derive(self.rules[node.name], lit)
                if body is None:
                    del self.rules[name]
                    self.derived[key] = None
                    return None
                self.rules[name] = body
            name = self.derived[key]
            return Ref(name) if name else None
        if isinstance(node, Alt):
            options = [d for d in (self.derive(o, lit) for o in node.options) if d is not None]
            return alt(*options) if options else None
        if isinstance(node, Seq):
            if not node.items:
                return None
            head = self.derive(node.items[0], lit)
            return None if head is None else seq(head, *node.items[1:])
        if isinstance(node, Rep) and node.lo >= 1:
            head = self.derive(node.item, lit)
            if head is None:
                return None
            return seq(head, Rep(node.item, node.lo - 1, None if node.hi is None else node.hi - 1))
        return None

    def rewrite(self, node: Node) -> Node:
        if not isinstance(node, (Seq, Alt, Rep)):
            return node
        hit = self.done.get(id(node))            # a node shared by several rules is rewritten once
        if hit is not None:
            return hit[1]
        if isinstance(node, Seq):
            items = [self.rewrite(x) for x in node.items]
            out, i = [], 0
            while i < len(items):
                x = items[i]
                if isinstance(x, Rep) and (x.lo, x.hi) == (0, 1) and isinstance(x.item, Text) and i + 1 < len(items):
                    lazy = self.lazy(x.item, items[i + 1])
                    if lazy is not None:
                        out.append(lazy)
                        i += 2
                        continue
                out.append(x)
                i += 1
            new = node if len(out) == len(node.items) and _same(out, node.items) else seq(*out)
        elif isinstance(node, Alt):
            options = [self.rewrite(x) for x in node.options]
            new = node if _same(options, node.options) else alt(*options)
        else:
            item = self.rewrite(node.item)
            new = node if item is node.item else Rep(item, node.lo, node.hi)
        self.done[id(node)] = (node, new)        # (holding the node keeps its id from being reused)
        return new

    def lazy(self, text: Text, nxt: Node):
        firsts = self.first(nxt)
        textual = sorted(f for f in firsts or () if f not in self.tokens and f in text.exclude)
        if not textual:
            return None
        options = [nxt]
        if len(textual) < len(firsts):          # markers that are tokens may still follow plain text
            options.append(seq(opt(text), nxt))
        for f in textual:
            rest = self.derive(nxt, f)
            if rest is not None:
                options.append(seq(Lazy(text, f), rest))
        return alt(*options)


def lazy_heads(rules: dict, tokens: dict) -> dict:
    """Apply `_LazyHeads` to every rule (for Lark output)."""
    lh = _LazyHeads(dict(rules), tokens)
    for name in list(lh.rules):
        lh.rules[name] = lh.rewrite(lh.rules[name])
    return lh.rules


def _finish(rules: dict) -> dict:
    """The rules reachable from "start" (start first, the others in their order), loops rewritten by
    `_no_adjacent_text` (one walk does both)."""
    done: dict = {}
    memo: dict = {}
    todo = ["start"]
    while todo:
        name = todo.pop()
        if name in done or name not in rules:
            continue
        refs: set = set()
        done[name] = _no_adjacent_text(rules[name], memo, refs)
        todo.extend(r for r in refs if r not in done)
    return {"start": done["start"], **{k: done[k] for k in rules if k in done and k != "start"}}


def _escape(text: str) -> str:
    from toolgram.compiler.regexlang import regex_char
    return "".join(regex_char(ord(c)) for c in text)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:24] or "x"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _resolve(schema, root):
    from toolgram.runtime.schema_values import resolve
    return resolve(schema, root)


def _with_defs(schema, root: dict):
    if not isinstance(schema, dict):
        return {}
    out = dict(schema)
    for key in ("$defs", "definitions"):
        if key in root and key not in out:
            out[key] = root[key]
    return out


def _object_schema(params: dict) -> dict:
    out = dict(params)
    out.setdefault("type", "object")
    return out


def _drop_string(schema: dict) -> dict:
    out = dict(schema)
    t = out.get("type")
    if isinstance(t, list):
        out["type"] = [x for x in t if x != "string"] or t
    for key in ("anyOf", "oneOf"):
        if key in out:
            kept = [s for s in out[key] if not (isinstance(s, dict) and s.get("type") == "string")]
            if kept:
                out[key] = kept
    return out


def tools_key(tools) -> bytes | str:
    """A cache key for a tool set (or any JSON data).

    Its pickle: written by C code, about 8x faster than canonical JSON text (12 µs against 80 µs for 20 tools),
    which is what makes a cache hit cheap.  Pickle keeps every distinction JSON data has (1, 1.0 and True; key
    order), so equal keys mean equal data; equal data written in another key order only misses the cache.
    Data pickle cannot write falls back to canonical JSON text."""
    try:
        return pickle.dumps(tools, protocol=5)
    except Exception:
        return json.dumps(tools, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))


def build_rules(g: CompiledGrammar, tools, tool_choice="required", parallel_tool_calls: bool = True,
                reasoning: bool = True, max_reasoning: int | None = None,
                max_calls: int | None = None) -> tuple[dict, str, tuple]:
    """The constraint's rules (name -> node, with "start"), its mode and the names of its tools."""
    tool_list = _tool_list(tools)
    mode, named = _mode(tool_choice, tool_list)
    if max_calls is not None and (not isinstance(max_calls, int) or max_calls < 1):
        raise ConstraintError("max_calls must be a positive integer")
    b = _Builder(g, tool_list, mode, named, parallel_tool_calls, reasoning, max_reasoning, max_calls)
    rules = b.build()
    return rules, mode, tuple(t["name"] for t in b.tools)


# -- the public entry ---------------------------------------------------------------------------

def _marker_like(text: str) -> bool:
    """Added tokens that are markup (``<tool_call>``, ``[TOOL_CALLS]``, ``<|"|>``), not words or single bytes."""
    return len(text) >= 2 and not text.isalnum() and not text.isspace()


def added_tokens(tokenizer) -> dict:
    """``{text: id}`` of a tokenizer's added marker tokens (transformers, tokenizers, or a ready dict)."""
    if tokenizer is None:
        return {}
    if isinstance(tokenizer, dict):
        vocab = {str(k): int(v) for k, v in tokenizer.items()}
    elif hasattr(tokenizer, "get_added_vocab"):
        vocab = dict(tokenizer.get_added_vocab())
    elif hasattr(tokenizer, "get_added_tokens_decoder"):
        vocab = {t.content: i for i, t in tokenizer.get_added_tokens_decoder().items()}
    else:
        raise ConstraintError("tokenizer must be a transformers or tokenizers tokenizer, or a {text: id} dict")
    return {k: v for k, v in vocab.items() if _marker_like(k)}


_CACHE: dict = {}
_CACHE_MAX = 512


def build_constraint(g: CompiledGrammar, tools, tool_choice="required", parallel_tool_calls: bool = True,
                     syntax: str = "lark", tokenizer=None, *, dialect: str = "llguidance",
                     reasoning: bool = True, max_reasoning: int | None = None,
                     max_calls: int | None = None) -> Constraint:
    """`Grammar.constraint`; results are cached by grammar, tool set and options."""
    from toolgram.compiler.emit import to_gbnf, to_lark, to_structural_tag
    if syntax not in SYNTAXES:
        raise ConstraintError(f"syntax must be one of {', '.join(SYNTAXES)}, not {syntax!r}")
    if dialect not in ("llguidance", "xgrammar"):
        raise ConstraintError(f"dialect must be 'llguidance' or 'xgrammar', not {dialect!r}")
    tokens = added_tokens(tokenizer) if syntax == "lark" else {}
    key = (id(g), tools_key(tools), json.dumps(tool_choice, sort_keys=True, default=str), bool(parallel_tool_calls),
           syntax, dialect, tools_key(tokens), reasoning, max_reasoning, max_calls)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is g:
        return hit[1]
    rules, mode, names = build_rules(g, tools, tool_choice, parallel_tool_calls, reasoning, max_reasoning,
                                     max_calls)
    if syntax == "lark":
        text = to_lark(lazy_heads(rules, tokens), dialect, tokens)
    elif syntax == "gbnf":
        text = to_gbnf(rules)
    else:
        text = to_structural_tag(rules)
    c = Constraint(syntax=syntax, text=text, mode=mode, tools=names,
                   parallel=bool(parallel_tool_calls) and mode != "named", triggers=g.triggers,
                   dialect=dialect, rules=rules)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (g, c)
    return c

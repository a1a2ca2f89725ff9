"""JSON Schema to grammar, in the value syntaxes toolgram's encodings read: JSON, Python literals, relaxed.

This is the constraint side of the encoding blocks.  `SchemaGrammar.value(schema)` returns an EBNF node
that generates exactly values of the schema, written so the grammar's parser reads them back as the same
JSON:

* ``json``: JSON text.  In Lark output a `Json` leaf becomes llguidance/xgrammar ``%json``; for GBNF the
  same leaf is expanded here into rules (`json_rules`).
* ``python``: Python literals (``True``/``None``, ``{"k": v}``, ``[...]``); numbers and strings are written
  as JSON, which Python reads the same way.
* ``relaxed``: bare keys and a configured string delimiter (Gemma's ``<|"|>``), numbers as JSON.

Supported: ``type`` (and type lists), ``enum``, ``const``, ``anyOf``/``oneOf``, ``allOf`` (merged),
``$ref``/``$defs`` (recursive schemas become rules), ``properties``/``required`` (properties in schema
order, optional ones optional), ``additionalProperties`` (free-form objects when no properties are listed),
``items``/``prefixItems``/``minItems``/``maxItems``, string ``minLength``/``maxLength``/``pattern``,
integer ``minimum``/``maximum``/``exclusive*`` (enforced inside ``%json``; in generated rules only for
JSON-leaf outputs).  Anything else a backend cannot enforce raises `ConstraintError`.
"""
from __future__ import annotations

import json
import re

from toolgram.ir import EMPTY, Json, Lit, Node, Ref, Regex, Rep, Text, alt, opt, seq
from toolgram.errors import ConstraintError

_SUPPORTED = {
    "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "properties",
    "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems", "minLength",
    "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "format", "title", "description", "default", "examples", "$schema", "$id", "$comment", "nullable",
    "strict", "uniqueItems", "minProperties", "maxProperties", "deprecated", "readOnly", "writeOnly",
    "x-guidance",
}
_TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"]
_SEP = Lit(",")
_COLON = Lit(":")
_SPACE = Rep(Lit(" "), 0, 1)
_ANNOTATIONS = {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly",
                "$schema", "$id", "strict"}


class SchemaGrammar:
    """Generates value grammars for one tool's schema in one value syntax."""

    def __init__(self, root: dict, syntax: str = "json", *, quote: str = '"', words: dict | None = None,
                 bare_keys: bool = False, where: str = "tool", prefix: str = "v"):
        self.root = root
        self.syntax = syntax
        self.quote = quote
        self.words = words or {}
        self.bare_keys = bare_keys
        self.where = where
        self.prefix = prefix
        self.rules: dict[str, Node] = {}
        self._refs: dict[str, str] = {}

    # -- helpers -------------------------------------------------------------------------------
    def _words(self, value) -> Node:
        """Every spelling the syntax has for ``true``/``false``/``null``."""
        spellings = [w for w, v in self.words.items() if v is value] or [json.dumps(value)]
        return alt(*[Lit(w) for w in spellings])

    def _word(self, value) -> str:
        for w, v in self.words.items():
            if v is value or (v == value and type(v) is type(value)):
                return w
        return json.dumps(value)

    def _with_defs(self, schema: dict) -> dict:
        out = dict(schema)
        for key in ("$defs", "definitions"):
            if key in self.root and key not in out:
                out[key] = self.root[key]
        return out

    def _resolve(self, schema):
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 64:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ConstraintError(f"{self.where}: only local $ref is supported, not {ref!r}")
            node = self.root
            for part in [p for p in ref[1:].split("/") if p]:
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(node, dict) or part not in node:
                    raise ConstraintError(f"{self.where}: $ref {ref!r} points nowhere")
                node = node[part]
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**node, **extra} if extra else node
            seen += 1
        return schema

    def literal(self, value) -> Node:
        """One fixed JSON value written in this syntax."""
        if self.syntax == "json":
            return Lit(json.dumps(value, ensure_ascii=False))
        if value is None or isinstance(value, bool):
            return self._words(value)
        if isinstance(value, (int, float)):
            return Lit(json.dumps(value))
        if isinstance(value, str):
            return self._string_literal(value)
        if isinstance(value, list):
            items = [self.literal(v) for v in value]
            body = []
            for i, it in enumerate(items):
                if i:
                    body.append(seq(_SEP, _SPACE))
                body.append(it)
            return seq(Lit("["), *body, Lit("]"))
        parts = []
        for i, (k, v) in enumerate(value.items()):
            if i:
                parts.append(seq(_SEP, _SPACE))
            parts += [self._key(k), seq(_COLON, _SPACE), self.literal(v)]
        return seq(Lit("{"), *parts, Lit("}"))

    def _string_literal(self, value: str) -> Node:
        if self.syntax == "relaxed":
            if self.quote in value:
                raise ConstraintError(f"{self.where}: the value {value!r} contains the string delimiter")
            return Lit(self.quote + value + self.quote)
        quoted = Lit(json.dumps(value, ensure_ascii=False))
        if self.syntax == "python" and "'" not in value and "\\" not in value and value.isprintable():
            return alt(quoted, Lit("'" + value + "'"))    # Python writes enum/const strings in either quotes
        return quoted

    def _key(self, key: str) -> Node:
        if self.syntax == "relaxed" and self.bare_keys:
            if not re.fullmatch(r"[A-Za-z0-9_\-.$]+", key):
                raise ConstraintError(f"{self.where}: the key {key!r} cannot be written as a bare key")
            return Lit(key)
        quoted = Lit(json.dumps(key, ensure_ascii=False))
        if self.syntax == "python" and "'" not in key and "\\" not in key and key.isprintable():
            return alt(quoted, Lit("'" + key + "'"))
        return quoted

    # -- values --------------------------------------------------------------------------------
    def value(self, schema, depth: int = 0) -> Node:
        if depth > 40:
            raise ConstraintError(f"{self.where}: schema nested too deeply")
        if schema is True or (isinstance(schema, dict) and not (set(schema) - _ANNOTATIONS)):
            return self._any()
        if schema is False:
            raise ConstraintError(f"{self.where}: a 'false' schema admits no value")
        if not isinstance(schema, dict):
            raise ConstraintError(f"{self.where}: a schema must be an object")
        unknown = set(schema) - _SUPPORTED
        if unknown:
            raise ConstraintError(f"{self.where}: schema keyword(s) {', '.join(sorted(unknown))} cannot be enforced")
        if "$ref" in schema:
            ref = schema["$ref"]
            if len(schema) == 1:
                name = self._refs.get(ref)
                if name is None:
                    name = self._refs[ref] = f"{self.prefix}_ref{len(self._refs)}"
                    self.rules[name] = EMPTY       # placeholder: recursion refers to the rule
                    self.rules[name] = self.value(self._resolve(schema), depth + 1)
                return Ref(name)
            schema = self._resolve(schema)
        if self.syntax == "json":
            return Json.of(self._with_defs(schema), self.where)
        if "const" in schema:
            return self.literal(schema["const"])
        if "enum" in schema:
            return alt(*[self.literal(v) for v in schema["enum"]])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                base = {k: v for k, v in schema.items() if k != key}
                return alt(*[self.value({**base, **self._resolve(s)} if base else s, depth + 1)
                             for s in schema[key]])
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in schema["allOf"]:
                sub = self._resolve(sub)
                for k, v in sub.items():
                    if k == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **v}
                    elif k == "required":
                        merged["required"] = list(dict.fromkeys(merged.get("required", []) + list(v)))
                    else:
                        merged.setdefault(k, v)
            return self.value(merged, depth + 1)
        types = schema.get("type")
        if types is None:
            types = [t for t in _TYPES if t != "integer"] if not (set(schema) & {"properties", "items"}) else (
                ["object"] if "properties" in schema else ["array"])
        if isinstance(types, str):
            types = [types]
        if schema.get("nullable") and "null" not in types:
            types = list(types) + ["null"]
        return alt(*[self._typed(t, schema, depth) for t in types])

    def _any(self) -> Node:
        """Any value, as one recursive rule."""
        name = f"{self.prefix}_any"
        if name not in self.rules:
            if self.syntax == "json":
                return Json.of({})
            self.rules[name] = EMPTY
            ref = Ref(name)
            member = seq(self._free_key(), seq(_COLON, _SPACE), ref)
            self.rules[name] = alt(
                self._typed("string", {}, 0), Json.of({"type": "number"}), self._words(True),
                self._words(False), self._words(None),
                seq(Lit("["), opt(seq(ref, Rep(seq(seq(_SEP, _SPACE), ref), 0, None))), Lit("]")),
                seq(Lit("{"), opt(seq(member, Rep(seq(seq(_SEP, _SPACE), member), 0, None))), Lit("}")))
        return Ref(name)

    def _typed(self, t: str, schema: dict, depth: int) -> Node:
        if t in ("integer", "number"):
            keep = {k: v for k, v in schema.items() if k in ("minimum", "maximum", "exclusiveMinimum",
                                                              "exclusiveMaximum", "multipleOf")}
            return Json.of({"type": t, **keep}, self.where)
        if t == "boolean":
            return alt(self._words(True), self._words(False))
        if t == "null":
            return self._words(None)
        if t == "string":
            if self.syntax == "relaxed":
                return seq(Lit(self.quote), Text(exclude=(self.quote,), lo=schema.get("minLength", 0),
                                                 hi=schema.get("maxLength"), pattern=schema.get("pattern")),
                           Lit(self.quote))
            keep = {k: v for k, v in schema.items() if k in ("minLength", "maxLength", "pattern", "format")}
            as_json = Json.of({"type": "string", **keep}, self.where)
            if self.syntax == "python" and "pattern" not in schema:
                lo, hi = schema.get("minLength", 0), schema.get("maxLength")
                # escapes that decode to one character, so the bounds count characters of the value
                single = Regex(r"'(?:[^'\\\n]|\\(?:[\\'\"abfnrtv0]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})){%d,%s}'"
                               % (lo, "" if hi is None else hi))
                return alt(as_json, single)          # Python also writes strings in single quotes
            return as_json
        if t == "array":
            return self._array(schema, depth)
        if t == "object":
            return self._object(schema, depth)
        raise ConstraintError(f"{self.where}: unknown type {t!r}")

    def _array(self, schema: dict, depth: int) -> Node:
        lo = schema.get("minItems", 0)
        hi = schema.get("maxItems")
        prefix = [self.value(s, depth + 1) for s in schema.get("prefixItems", [])]
        item = self.value(schema.get("items", {}), depth + 1) if schema.get("items", {}) is not False else None
        parts: list[Node] = []
        for i, p in enumerate(prefix):
            parts += ([seq(_SEP, _SPACE)] if i else []) + [p]
        rest_lo = max(0, lo - len(prefix))
        rest_hi = None if hi is None else max(0, hi - len(prefix))
        if item is not None and rest_hi != 0:
            if prefix:
                rest = Rep(seq(seq(_SEP, _SPACE), item), rest_lo, rest_hi)
                parts.append(rest)
            else:
                more = Rep(seq(seq(_SEP, _SPACE), item), max(0, rest_lo - 1), None if rest_hi is None else rest_hi - 1)
                parts.append(seq(item, more) if rest_lo >= 1 else opt(seq(item, more)))
        return seq(Lit("["), *parts, Lit("]"))

    def _object(self, schema: dict, depth: int) -> Node:
        props = schema.get("properties")
        if not props:
            extra = schema.get("additionalProperties", {})
            value = self.value(extra, depth + 1) if isinstance(extra, dict) and extra else self._any()
            member = seq(self._free_key(), seq(_COLON, _SPACE), value)
            return seq(Lit("{"), opt(seq(member, Rep(seq(seq(_SEP, _SPACE), member), 0, None))), Lit("}"))
        required = set(schema.get("required", []))
        members = [(seq(self._key(k), seq(_COLON, _SPACE), self.value(v, depth + 1)), k in required)
                   for k, v in props.items()]
        return seq(Lit("{"), join(members, seq(_SEP, _SPACE)), Lit("}"))

    def _free_key(self) -> Node:
        if self.syntax == "relaxed" and self.bare_keys:
            return Regex(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
        if self.syntax == "relaxed":
            return seq(Lit(self.quote), Text(exclude=(self.quote,), hi=64), Lit(self.quote))
        key = Json.of({"type": "string", "maxLength": 64})
        if self.syntax == "python":
            return alt(key, Regex(r"'[A-Za-z0-9_ .\-]{0,64}'"))
        return key


def join(items: list[tuple[Node, bool]], sep: Node | None) -> Node:
    """Items in order, optional ones optional, separated by ``sep`` (None: nothing between)."""
    if not items:
        return EMPTY
    if sep is None:
        return seq(*[it if req else opt(it) for it, req in items])
    first_req = next((i for i, (_, req) in enumerate(items) if req), None)
    if first_req is not None:
        parts = [opt(seq(it, sep)) for it, _ in items[:first_req]]
        parts.append(items[first_req][0])
        for it, req in items[first_req + 1:]:
            parts.append(seq(sep, it) if req else opt(seq(sep, it)))
        return seq(*parts)
    # all optional: any subset, in order
    options = []
    for i, (it, _) in enumerate(items):
        tail = [opt(seq(sep, other)) for other, _ in items[i + 1:]]
        options.append(seq(it, *tail))
    return opt(alt(*options))


# -- JSON values as rules (for GBNF / EBNF, which have no %json) --------------------------------

def json_rules(schema_text: str, name: str, rules: dict, where: str = "tool") -> Node:
    """Expand a `Json` leaf into explicit rules (added to ``rules``); returns the node for it."""
    schema = json.loads(schema_text)
    gen = _JsonRules(schema, where, name, rules)
    return gen.value(schema)


_JSON_STRING_CHAR = r'(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))'


class _JsonRules(SchemaGrammar):
    def __init__(self, root, where, prefix, rules):
        super().__init__(root, "python", words={"true": True, "false": False, "null": None}, where=where,
                         prefix=prefix)
        self.rules = rules

    def _words(self, value) -> Node:
        """Every spelling the syntax has for ``true``/``false``/``null``."""
        spellings = [w for w, v in self.words.items() if v is value] or [json.dumps(value)]
        return alt(*[Lit(w) for w in spellings])

    def _word(self, value) -> str:
        return json.dumps(value)

    def _string_literal(self, value: str) -> Node:
        return Lit(json.dumps(value, ensure_ascii=False))

    def _typed(self, t: str, schema: dict, depth: int) -> Node:
        if t == "integer":
            return Regex(r"-?(?:0|[1-9][0-9]{0,15})")
        if t == "number":
            return Regex(r"-?(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,16})?(?:[eE][+-]?[0-9]{1,3})?")
        if t == "string":
            lo, hi = schema.get("minLength", 0), schema.get("maxLength")
            if "pattern" in schema:
                raise ConstraintError(f"{self.where}: a string 'pattern' cannot be enforced in this syntax")
            body = f"{_JSON_STRING_CHAR}{{{lo},{'' if hi is None else hi}}}"
            return Regex(f'"{body}"')
        return super()._typed(t, schema, depth)

    def _free_key(self) -> Node:
        return Regex(f'"{_JSON_STRING_CHAR}{{0,64}}"')

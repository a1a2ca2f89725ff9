"""The ``json_call`` encoding: a whole call written as one JSON object.

It scans ``{"name": "f", "arguments": {...}}`` as it arrives: the name is reported as soon as
its string closes, the arguments value streams through (a JSON object, or with ``arguments_as_string`` a
JSON string holding one), an id key is picked up, other keys are validated and skipped.  Key order is free;
which keys name the function, the arguments and the id is configured per grammar (``parameters`` for
``arguments``...).  A valid object without a name is not a call: the block fails, and the region it was in
comes back as content.  Its constraint: the name and arguments members (any accepted key spelling, either
order), the arguments the tool's JSON Schema, and the grammar's id member, if it declares one, first or last.
"""
from __future__ import annotations

import json
import re

from toolgram.errors import ConstraintError
from toolgram.ir import Json, Lit, Regex, Rep, alt, seq
from toolgram.runtime.encodings.json_args import JsonArgs
from toolgram.runtime.json_value import DONE, ERROR, MORE, JsonValue
from toolgram.runtime.encodings.registry import Encoding, register
from toolgram.runtime.schema_values import object_schema

_WS = re.compile(r"[ \t\n\r]*")
_STR_RUN = re.compile(r'[^"\\\x00-\x1f]+')
_ESCAPE = re.compile(r'\\(?:(["\\/bfnrt])|u([0-9a-fA-F]{4}))')


# json_call states
_START, _FIRST, _NEXT, _KEY, _COLON, _VALUE, _IN, _AFTER, _DONE = range(9)


class JsonCall:
    """The ``json_call`` block: one call written as a JSON object."""

    FIRST = " \t\r\n{"

    __slots__ = ("out", "name_keys", "args_keys", "id_keys", "as_string", "name_only",
                 "state", "key", "sub", "role", "seen", "collected")

    def __init__(self, out, options: dict):
        self.out = out
        self.name_keys = options.get("name_keys", ["name"])
        self.args_keys = options.get("arguments_keys", ["arguments", "parameters"])
        self.id_keys = options.get("id_keys", [])
        self.as_string = options.get("arguments_as_string", False)
        self.name_only = options.get("name_only", True)
        self.state = _START
        self.key: list[str] = []
        self.sub = None
        self.role = ""
        self.seen: set[str] = set()
        self.collected: list[str] = []

    def nesting(self) -> tuple:
        """(open brackets, open quote, quotes) where the call object broke (runtime/skip.py)."""
        outer = [] if self.state == _START else ["}"]
        if self.state == _KEY:
            return outer, '"', ('"',)
        if self.state == _IN:
            closers, quote, quotes = self.sub.nesting()
            return outer + closers, quote, quotes
        return outer, None, ('"',)

    def feed(self, buf: str, pos: int, eof: bool = False) -> tuple[int, int]:
        n = len(buf)
        while True:
            st = self.state
            if st == _IN:
                pos, status = self.sub.feed(buf, pos, eof)
                if status == MORE:
                    return pos, (ERROR if eof else MORE)
                if status == ERROR:
                    return pos, ERROR
                if not self._value_done():
                    return pos, ERROR
                self.state = _AFTER
                continue
            if st == _KEY:
                m = _STR_RUN.match(buf, pos)
                if m is not None:
                    self.key.append(m.group())
                    pos = m.end()
                if pos >= n:
                    return pos, (ERROR if eof else MORE)
                c = buf[pos]
                if c == '"':
                    key = "".join(self.key)
                    if "\\" in key:
                        try:
                            key = json.loads('"' + key + '"')
                        except ValueError:
                            return pos, ERROR
                    self.key = [key]
                    self.state = _COLON
                    pos += 1
                    continue
                if c == "\\":
                    m = _ESCAPE.match(buf, pos)
                    if m is None:
                        if n - pos < 6 and not eof:
                            return pos, MORE
                        return pos, ERROR
                    self.key.append(m.group())
                    pos = m.end()
                    continue
                return pos, ERROR
            pos = _WS.match(buf, pos).end()
            if pos >= n:
                return pos, (ERROR if eof else MORE)
            c = buf[pos]
            if st == _START:
                if c != "{":
                    return pos, ERROR
                self.out.open_call()
                self.state = _FIRST
                pos += 1
            elif st == _FIRST or st == _NEXT:
                if c == '"':
                    self.state = _KEY
                    self.key = []
                    pos += 1
                elif c == "}" and st == _FIRST:
                    return pos, ERROR            # {} names no function
                else:
                    return pos, ERROR
            elif st == _COLON:
                if c != ":":
                    return pos, ERROR
                self.state = _VALUE
                pos += 1
            elif st == _VALUE:
                if not self._start_value(c):
                    return pos, ERROR
                self.state = _IN
            elif st == _AFTER:
                if c == ",":
                    self.state = _NEXT
                    pos += 1
                elif c == "}":
                    if "name" not in self.seen or ("args" not in self.seen and not self.name_only):
                        return pos, ERROR
                    self.state = _DONE
                    return pos + 1, DONE      # the grammar's call rule ends the call
                else:
                    return pos, ERROR
            else:
                return pos, DONE

    def _start_value(self, c: str) -> bool:
        key = self.key[0]
        if key in self.name_keys:
            role = "name"
        elif key in self.args_keys:
            role = "args"
        elif key in self.id_keys:
            role = "id"
        else:
            role = "other"
        if role != "other" and role in self.seen:
            return False                      # a second name or arguments key
        self.role = role
        if role == "name" or role == "id":
            if c != '"' and not (role == "id" and (c.isdigit() or c == "-")):
                return False
            self.collected = []
            self.sub = JsonValue(self.collected.append)
        elif role == "args":
            self.sub = JsonArgs(self.out, {"arguments_as_string": self.as_string})
        else:
            self.sub = JsonValue(None)
        return True

    def _value_done(self) -> bool:
        role = self.role
        if role == "other":
            return True
        self.seen.add(role)
        if role == "args":
            return True
        text = "".join(self.collected)
        value = text[1:-1] if text[:1] == '"' and "\\" not in text else json.loads(text)
        if role == "name":
            if not isinstance(value, str) or not value:
                return False
            self.out.name(value)
            return not self.out.refused
        else:
            self.out.call_id(str(value))
        return True


def _call(ctx, spec, tool):
    """The call object: name and arguments keys (any accepted spelling, either order), JSON spacing."""
    if not re.fullmatch(ctx.name_pattern, tool.name):
        # JSON could write any name, but a call the parser refuses would come back as content
        raise ConstraintError(f"tool {tool.name!r}: the name cannot be read back in grammar {ctx.grammar!r}")
    ws = ctx.json_space
    names = tuple(spec.options.get("name_keys") or ["name"])
    arg_keys = tuple(spec.options.get("arguments_keys") or ["arguments", "parameters"])
    id_keys = tuple(spec.options.get("id_keys") or [])
    params = object_schema(tool.closed)

    def member(keys, value):
        """``"key" : value`` with any of ``keys``."""
        return seq(ctx.shared(("json_call.keys", keys, ws), lambda: seq(alt(*[Lit(json.dumps(k)) for k in keys]),
                                                                         ws, Lit(":"), ws)), value)

    # (members that do not depend on the name are made once per request: many tools share them)
    name_member = member(names, Lit(json.dumps(tool.name, ensure_ascii=False)))
    schema = json.dumps(params, ensure_ascii=False)
    args_member = ctx.shared(("json_call.arguments", arg_keys, schema, ws),
                             lambda: member(arg_keys, Json(schema, f"tool {tool.name!r}")))
    comma = ctx.shared(("json_call.comma", ws), lambda: seq(ws, Lit(","), ws))
    both = alt(seq(name_member, comma, args_member), seq(args_member, comma, name_member))
    if spec.options.get("name_only", True) and not params.get("required"):
        both = alt(both, name_member)
    if id_keys:
        # the native id the grammar declares (read back as the call's id): optional, first or last (templates
        # write it either way; the members between are one shared node)
        id_member = ctx.shared(("json_call.id", id_keys, ws), lambda: member(id_keys, alt(
            Regex(r'"[A-Za-z0-9_\-]{1,64}"'), Regex(r"0|[1-9][0-9]{0,17}"))))
        both = alt(seq(id_member, comma, both), seq(both, Rep(seq(comma, id_member), 0, 1)))
    return seq(ctx.blank(), Lit("{"), ws, both, ws, Lit("}"))     # (what comes before the object: a separator)


_KEYS = {"type": "array", "minItems": 1, "items": {"type": "string"}}

ENCODING = register(Encoding(
    name="json_call",
    summary="a whole call as one JSON object: name, arguments and id keys configurable",
    options={"name_keys": _KEYS, "arguments_keys": _KEYS, "id_keys": {"type": "array", "items": {"type": "string"}},
             "arguments_as_string": {"type": "boolean"}, "name_only": {"type": "boolean"}},
    first=lambda prepared: JsonCall.FIRST,
    scanner=lambda out, prepared, value: JsonCall(out, prepared),
    arguments=_call,
    finds_name=True,
))

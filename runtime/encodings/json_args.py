"""The ``json`` encoding: a call's arguments as a JSON object (with ``arguments_as_string``, also a JSON string
holding one; ``null``: no arguments), or, as an argument *value*, any JSON value.  Its constraint is the tool's
JSON Schema (``%json`` in llguidance's Lark)."""
from __future__ import annotations

import re

from toolgram.ir import Json, seq
from toolgram.runtime.encodings.json_string import StringJson
from toolgram.runtime.json_value import ERROR, MORE, JsonValue
from toolgram.runtime.encodings.registry import Encoding, register
from toolgram.runtime.schema_values import object_schema, with_defs

_WS = re.compile(r"[ \t\n\r]*")


class JsonArgs:
    """The ``json`` block: an arguments object (role markup) or any JSON value (role value)."""

    FIRST = " \t\r\n{[\"-0123456789tfn"

    __slots__ = ("out", "value", "as_string", "sub")

    def __init__(self, out, options: dict, value: bool = False):
        self.out = out
        self.value = value
        self.as_string = options.get("arguments_as_string", False)
        self.sub = None

    def nesting(self) -> tuple:
        return self.sub.nesting() if self.sub is not None else ([], None, ('"',))

    def feed(self, buf: str, pos: int, eof: bool = False) -> tuple[int, int]:
        if self.sub is None:
            pos = _WS.match(buf, pos).end()
            if pos >= len(buf):
                return pos, MORE if not eof else ERROR
            c = buf[pos]
            if self.value:
                self.sub = JsonValue(self.out.value_json)
                self.out.value_scanner(self.sub)
            elif c == "{":
                self.sub = JsonValue(self.out.args, top="object")
                self.out.args_scanner(self.sub)
            elif c == '"' and self.as_string:
                self.sub = StringJson(self.out.args)
                self.out.args_scanner(self.sub)
            elif buf.startswith("null", pos):
                self.sub = JsonValue(None)     # null arguments: the call has none
            elif not eof and len(buf) - pos < 4 and "null".startswith(buf[pos:]):
                return pos, MORE               # undecided until four characters are there
            else:
                return pos, ERROR
        return self.sub.feed(buf, pos, eof)


def _arguments(ctx, spec, tool):
    # the block reads leading whitespace as its own (a separator before the JSON: "```json\n{")
    return seq(ctx.blank(), Json.of(object_schema(tool.closed), f"tool {tool.name!r}"))


def _value(ctx, spec, arg):
    return seq(ctx.blank(), Json.of(with_defs(arg.schema, arg.root), arg.where))


ENCODING = register(Encoding(
    name="json",
    summary="arguments as a JSON object (optionally a JSON string holding one); as a value: any JSON",
    options={"arguments_as_string": {"type": "boolean"}},
    first=lambda prepared: JsonArgs.FIRST,
    scanner=lambda out, prepared, value: JsonArgs(out, prepared, value),
    arguments=_arguments,
    value=_value,
))

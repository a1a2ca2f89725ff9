"""The ``text`` encoding: argument values written as raw text (XML-ish tags, DSML, ``<arg_value>``...) and typed
by the tool's JSON Schema.

It has no scanner of its own: the state lexer reads such values as text runs (``text: true, role: value``)
ended by the markers that may follow, and `toolgram.runtime.schema_values.convert` types the text (a
string-only parameter stays the raw text; numbers, booleans, objects and arrays are decoded).  Its constraint
side writes what that typing reads back: the string's text (its enum values, length and pattern), or a JSON
value (objects and arrays also as Python literals), padded by the whitespace the reading strips.
"""
from __future__ import annotations

from toolgram.errors import ConstraintError
from toolgram.ir import Json, Lit, Text, alt, seq
from toolgram.runtime.encodings.literal import PYTHON
from toolgram.runtime.encodings.registry import Encoding, register
from toolgram.runtime.schema_values import drop_string, resolve, with_defs
from toolgram.runtime.textfilter import escape_xml


def _value(ctx, spec, arg):
    stops = ctx.stops(spec.name)
    sub, root, types = arg.schema, arg.root, arg.types
    if arg.type == "any":
        return Text(exclude=stops, lo=1)
    if arg.type == "string":
        s = resolve(sub, root) if isinstance(sub, dict) else {}
        enum = s.get("enum") if isinstance(s, dict) else None
        if enum and all(isinstance(v, str) for v in enum):
            return alt(*[Lit(escape_xml(v) if spec.unescape else v) for v in enum if not any(m in v for m in stops)])
        return Text(exclude=stops, lo=s.get("minLength", 0), hi=s.get("maxLength"), pattern=s.get("pattern"))
    non_string = {t for t in types if t != "string"}
    json_sub = with_defs(drop_string(resolve(sub, root)), root) if "string" in types else with_defs(sub, root)
    options = [Json.of(json_sub, arg.where)]
    pad = ctx.blank(2)                            # typed values are read with surrounding whitespace
    if non_string & {"object", "array"} and arg.type == "json" and spec.arg_type is None:
        # structured values may also be written as Python literals ({'a': (1, 2)}), which the parser reads
        try:
            options.append(ctx.schema_value(drop_string(resolve(sub, root)), root, syntax="python",
                                            where=arg.where, prefix=arg.slug, quote='"', words=PYTHON["words"]))
        except ConstraintError:
            pass
    if arg.type == "json":
        # the parser reads booleans and null by the schema in other spellings too: Python's True / False /
        # None, which templates that render a value with {{ value }} write
        options += [Lit(w) for w in _python_words(resolve(sub, root), non_string)]
    typed = seq(pad, alt(*options), pad)
    if "string" in types:
        return alt(typed, Text(exclude=stops, lo=1, hi=None))
    return typed


def _python_words(schema, types: set) -> list[str]:
    """Python's spellings of the booleans and null that ``schema`` allows."""
    values = [v for v, t in ((True, "boolean"), (False, "boolean"), (None, "null")) if t in types]
    if isinstance(schema, dict) and "const" in schema:
        values = [v for v in values if schema["const"] is v]
    if isinstance(schema, dict) and isinstance(schema.get("enum"), list):
        values = [v for v in values if any(e is v for e in schema["enum"])]
    return [repr(v) for v in values]


ENCODING = register(Encoding(
    name="text",
    summary="argument values as raw text typed by the tool's JSON Schema (no scanner: the lexer reads text runs)",
    value=_value,
))

"""Typing raw text argument values by the request's tool schema.

Formats that write arguments as text (XML-ish tags, DSML, GLM's ``<arg_value>``) carry no types.  The value
becomes JSON according to the parameter's JSON Schema in the request's ``tools``:

* a parameter that can only be a string stays the raw text, exactly (``"5"`` stays ``"5"``);
* integer / number / boolean / null values are decoded when the text is one (``42``, ``4.5``, ``true``);
* object / array values are decoded as JSON, else as a Python literal (``{'a': 1}``), never evaluated;
* a union (``type`` list, ``anyOf``/``oneOf``) tries its non-string members, then falls back to the string;
* no schema for the parameter (no tools, unknown tool, unknown key, or a schema without a type): the value
  stays a string.  Nothing is guessed from how the text looks.
"""
from __future__ import annotations

import json
import re

from toolgram.runtime.json_value import json_dumps

_INT = re.compile(r"[-+]?[0-9]+\Z")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_JSON_TYPES = {"string", "integer", "number", "boolean", "null", "object", "array"}


def resolve(schema, root: dict, depth: int = 0):
    """Follow local ``$ref`` pointers (``#/$defs/x``, ``#/definitions/x``); anything else is returned."""
    while isinstance(schema, dict) and "$ref" in schema and depth < 32:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return {}
        node = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return {}
            node = node[part]
        schema = node
        depth += 1
    return schema


def object_schema(params: dict) -> dict:
    """A tool's parameters schema with ``type: object`` said."""
    out = dict(params)
    out.setdefault("type", "object")
    return out


def with_defs(schema, root: dict) -> dict:
    """A parameter's schema carrying the tool's ``$defs`` / ``definitions`` (so its ``$ref``s resolve alone)."""
    if not isinstance(schema, dict):
        return {}
    out = dict(schema)
    for key in ("$defs", "definitions"):
        if key in root and key not in out:
            out[key] = root[key]
    return out


def drop_string(schema: dict) -> dict:
    """The schema without its string alternative (a text value that is not a string must be something else)."""
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


def types_of(schema, root: dict, depth: int = 0) -> set[str]:
    """The JSON types a schema allows (empty: unknown, treated as string)."""
    schema = resolve(schema, root)
    if not isinstance(schema, dict) or depth > 16:
        return set()
    out: set[str] = set()
    t = schema.get("type")
    if isinstance(t, str) and t in _JSON_TYPES:
        out.add(t)
    elif isinstance(t, list):
        out.update(x for x in t if x in _JSON_TYPES)
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or ():
            out |= types_of(sub, root, depth + 1)
    for sub in schema.get("allOf") or ():
        out |= types_of(sub, root, depth + 1)
    values = list(schema.get("enum") or ())
    if "const" in schema:
        values.append(schema["const"])
    for v in values:
        out.add(_json_type(v))
    return out


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


class ToolSchemas:
    """The parameter schemas of a request's tools, by tool name."""

    def __init__(self, tools):
        self.params: dict[str, dict] = {}
        for tool in tools or ():
            if not isinstance(tool, dict):
                continue
            fn = tool.get("function", tool) if tool.get("type", "function") == "function" else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                continue
            params = fn.get("parameters")
            self.params[fn["name"]] = params if isinstance(params, dict) else {}
        self.given = tools is not None
        self._seen: dict = {}      # (tool, key) -> parameter(): many calls repeat the same keys

    def knows(self, name: str) -> bool:
        return name in self.params

    def parameter(self, tool: str | None, key: str):
        """``(types, schema, root)`` for one parameter, or ``(set(), None, None)`` when unknown."""
        hit = self._seen.get((tool, key))
        if hit is None:
            if len(self._seen) > 4096:
                self._seen.clear()
            hit = self._seen[(tool, key)] = self._parameter(tool, key)
        return hit

    def _parameter(self, tool: str | None, key: str):
        root = self.params.get(tool) if tool is not None else None
        if not root:
            return set(), None, None
        props = resolve(root, root).get("properties")
        if not isinstance(props, dict) or key not in props:
            return set(), None, None
        return types_of(props[key], root), props[key], root


def is_string_only(types: set[str]) -> bool:
    return not types or types == {"string"}


def convert(raw: str, types: set[str]) -> str:
    """JSON text for a raw value whose parameter allows ``types`` (not string-only)."""
    t = raw.strip()
    if "null" in types and t in ("null", "None", "NULL"):
        return "null"
    if "boolean" in types:
        low = t.lower()
        if low in ("true", "false"):
            return low
    if "integer" in types and _INT.match(t):
        return str(int(t))
    if "number" in types and _FLOAT.match(t):
        try:
            value = float(t)
        except ValueError:
            value = None
        if value is not None and value == value and abs(value) != float("inf"):
            if _INT.match(t):
                return str(int(t))
            return json.dumps(value)
    if "integer" in types and _FLOAT.match(t):
        value = float(t)
        if value.is_integer() and abs(value) < 2 ** 63:
            return str(int(value))
    if types & {"object", "array"} and t[:1] in ("{", "["):
        value = _decode_structure(t)
        if value is not None and _json_type(value) in types:
            try:
                return json_dumps(value)
            except (ValueError, RecursionError):
                pass
    return json_dumps(raw)    # not a value of the allowed types: the text itself


def _decode_structure(text: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    from toolgram.runtime.encodings.literal import literal_to_json
    try:
        out = literal_to_json(text, "python")
        return None if out is None else json.loads(out)
    except (ValueError, RecursionError):        # nested deeper than Python's JSON can go: it stays text
        return None

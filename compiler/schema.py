"""The JSON Schema of grammar files, and its check with ``file:line`` errors.

A grammar file is YAML.  A *tool-call grammar* (``kind: tools``, the default) carries Lark syntax and says
which terminals carry the name, the arguments and the text; a *reasoning grammar* (``kind: reasoning``)
describes a reasoning block that can be composed with any tool-call grammar.  docs/grammar-format.md
explains every field; this schema is what ``jsonschema`` enforces.
"""
from __future__ import annotations

import jsonschema

from toolgram.compiler.source import Lines
from toolgram.request import WHITESPACE_SCHEMA
from toolgram.runtime.encodings import registry as encodings

ROLES = ["markup", "content", "reasoning", "key", "value"]
NAME = r"^[a-z][a-z0-9_]*$"
TERMINAL = r"^[A-Z_][A-Z0-9_]*$"

_capture = {
    "description": "true: the token's text (stripped) is the value; a string: a regex whose named group "
                   "(?P<name>...) or (?P<id>...) picks it out of the token",
    "oneOf": [{"type": "boolean"}, {"type": "string", "minLength": 1}],
}

_terminal = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "text": {"type": "boolean", "description": "a run of free text, ended by the markers that may follow it"},
        "block": {"enum": [], "description": "a structured value scanned by an encoding block"},
        "lookahead": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                      "description": "a zero-width token that matches just before one of these markers"},
        "role": {"enum": ROLES},
        "name": _capture,
        "id": _capture,
        "arg_type": {"enum": ["string", "json"],
                     "description": "this marker says how the following argument value is typed"},
        "strip": {"enum": [True, False, "newline", "whitespace"]},
        "unescape": {"enum": ["xml"]},
        "max_length": {"type": "integer", "minimum": 1},
        # encoding-block options: added from the encoding registry (see `tools_schema`)
    },
}

_policies = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "commit": {"enum": ["name", "arguments"]},
        "unknown_tool": {"enum": ["keep", "reject"]},
        "name_pattern": {"type": "string", "minLength": 1},
    },
}

# a peer's parser name: vLLM and Dynamo use "-" and "." too (deepseek-v4, granite-20b-fc)
PEER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"

_TOOLS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "description", "lark", "terminals", "calls"],
    "properties": {
        "name": {"type": "string", "pattern": NAME},
        "kind": {"const": "tools"},
        "description": {"type": "string", "minLength": 1},
        "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "aliases": {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": PEER_NAME},
                    "description": "other tools' names for this grammar (Dynamo, vLLM parser names)"},
        "reasoning": {"type": ["string", "null"], "pattern": NAME},
        "alias_of": {"type": "string", "pattern": NAME},
        "example": {"type": "string"},
        "lark": {"type": "string", "minLength": 1},
        "terminals": {"type": "object", "minProperties": 1,
                      "propertyNames": {"pattern": TERMINAL}, "additionalProperties": None},
        "calls": {
            "type": "object",
            "additionalProperties": False,
            "required": ["rule"],
            "properties": {
                "rule": {"type": "string", "description": "the rule that is one call"},
                "region": {"type": "string", "description": "the rule of a whole tool-call section"},
                "argument": {"type": "string", "description": "the rule of one key/value argument"},
            },
        },
        "policies": _policies,
        "whitespace": WHITESPACE_SCHEMA,
        "corpus": {"type": "string"},
    },
}

ALIAS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "description", "alias_of"],
    "properties": {
        "name": {"type": "string", "pattern": NAME},
        "kind": {"const": "tools"},
        "description": {"type": "string", "minLength": 1},
        "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "aliases": {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": PEER_NAME},
                    "description": "other tools' names for this grammar (Dynamo, vLLM parser names)"},
        "reasoning": {"type": ["string", "null"], "pattern": NAME},
        "alias_of": {"type": "string", "pattern": NAME},
        "whitespace": WHITESPACE_SCHEMA,
        "corpus": {"type": "string"},
    },
}

REASONING_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kind", "description"],
    "properties": {
        "name": {"type": "string", "pattern": NAME},
        "kind": {"const": "reasoning"},
        "description": {"type": "string", "minLength": 1},
        "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "aliases": {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": PEER_NAME},
                    "description": "other tools' names for this grammar (Dynamo, vLLM parser names)"},
        "open": {"type": "string", "minLength": 1, "description": "the marker that opens reasoning"},
        "close": {"type": "string", "minLength": 1, "description": "the marker that closes it"},
        "starts_inside": {"type": "boolean", "description": "the prompt already opened the block"},
        "anywhere": {"type": "boolean", "description": "blocks may appear wherever content may"},
        "ends_at_call": {"type": "boolean",
                         "description": "a tool-call marker ends reasoning that was not closed"},
        "ends_at": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                    "description": "only these call markers end unclosed reasoning (implies ends_at_call)"},
        "channel": {"type": "boolean",
                    "description": "reasoning is text the tool-call grammar itself labels as reasoning"},
        "example": {"type": "string"},
    },
}


def tools_schema() -> dict:
    """The schema of tool-call grammar files, with the encodings registered now and their options."""
    terminal = dict(_terminal, properties={**_terminal["properties"], **encodings.option_schemas(),
                                           "block": dict(_terminal["properties"]["block"], enum=encodings.names())})
    terminals = dict(_TOOLS_SCHEMA["properties"]["terminals"], additionalProperties=terminal)
    return dict(_TOOLS_SCHEMA, properties={**_TOOLS_SCHEMA["properties"], "terminals": terminals})


def _extra_keys(error: jsonschema.ValidationError) -> list:
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return []
    known = set(error.schema.get("properties", {}))
    return sorted(k for k in error.instance if k not in known)


def _path_of(error: jsonschema.ValidationError) -> tuple:
    extra = _extra_keys(error)
    return tuple(error.absolute_path) + ((extra[0],) if extra else ())


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(error: jsonschema.ValidationError) -> str:
    return _short(_describe_full(error), 300)


def _describe_full(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "the file"
    if error.validator == "required":
        return f"{path}: {error.message}"
    extra = _extra_keys(error)
    if extra:
        where = f"{path}: " if error.absolute_path else ""
        return f"{where}unknown key {extra[0]!r}"
    if error.validator == "enum":
        what = "unknown encoding" if error.absolute_path and error.absolute_path[-1] == "block" else "unknown value"
        known = ", ".join(str(v) for v in error.validator_value)
        return f"{path}: {what} {_short(repr(error.instance))} (one of: {known})"
    if error.validator == "pattern":
        return f"{path}: {_short(repr(error.instance))} does not match {error.validator_value!r}"
    return f"{path}: {error.message}"


def check(data: object, lines: Lines) -> None:
    """Raise a `GrammarError` for the first schema violation (in file order)."""
    if not isinstance(data, dict):
        raise lines.error("a grammar file must be a YAML mapping")
    kind = data.get("kind", "tools")
    if kind == "reasoning":
        schema = REASONING_SCHEMA
    elif "alias_of" in data:
        schema = ALIAS_SCHEMA
    else:
        schema = tools_schema()
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if not errors:
        return
    errors.sort(key=lambda e: (lines.line(_path_of(e)) or 0))
    err = errors[0]
    raise lines.error(_describe(err), _path_of(err))

"""The library of encoding blocks: generic value syntaxes a grammar can name for a terminal.

Each block has a *parse side* here (an incremental scanner that reports names, arguments and values to the
output) and a *constraint side* in the constraints builder (a grammar generated from a JSON Schema).  A grammar
names a block with ``block: <name>`` on a terminal; the options of the block sit beside it.

============  =====================================================================================
json          arguments as a JSON object (optionally a JSON string holding one); as a value: any JSON
json_call     a whole call as one JSON object: name, arguments and id keys configurable
literal       a Python (or relaxed, JS-like) literal converted to JSON: pythonic calls, Gemma values
============  =====================================================================================
"""
from __future__ import annotations

from toolgram.runtime.encodings.json_call import JsonArgs, JsonCall
from toolgram.runtime.encodings.literal import LiteralValue, profile

OPTIONS = {
    "json": {"arguments_as_string"},
    "json_call": {"name_keys", "arguments_keys", "id_keys", "arguments_as_string", "name_only"},
    "literal": {"syntax", "quotes", "words", "bare_keys"},
}


def first_chars(block: str, options: dict) -> str | None:
    """Characters a value of this block can start with (the lexer tries the block only there)."""
    if block == "json":
        return JsonArgs.FIRST
    if block == "json_call":
        return JsonCall.FIRST
    if block == "literal":
        return " \t\r\n" + profile(options)["first"]
    return None


_PROFILES: dict[int, tuple] = {}    # id(options) -> (options, profile): a grammar's options dicts live on


def _profile(options: dict) -> dict:
    hit = _PROFILES.get(id(options))
    if hit is None or hit[0] is not options:
        hit = _PROFILES[id(options)] = (options, profile(options))
    return hit[1]


class _Literal:
    __slots__ = ("scanner",)

    def __init__(self, out, options: dict):
        self.scanner = LiteralValue(out.value_json, _profile(options))
        out.value_scanner(self.scanner)

    def feed(self, buf: str, pos: int, eof: bool = False):
        return self.scanner.feed(buf, pos, eof)


def new_scanner(block: str, options: dict, out, value: bool):
    """A fresh scanner for one token of ``block``; ``value``: the token is an argument value."""
    if block == "json_call":
        return JsonCall(out, options)
    if block == "json":
        return JsonArgs(out, options, value=value)
    if block == "literal":
        return _Literal(out, options)
    raise ValueError(f"unknown encoding block {block!r}")

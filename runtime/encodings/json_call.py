"""Encoding blocks for JSON: a call written as one JSON object, and an arguments value.

``json_call`` scans ``{"name": "f", "arguments": {...}}`` as it arrives: the name is reported as soon as
its string closes, the arguments value streams through (a JSON object, or with ``arguments_as_string`` a
JSON string holding one), an id key is picked up, other keys are validated and skipped.  Key order is free;
which keys name the function, the arguments and the id is configured per grammar (``parameters`` for
``arguments``...).  A valid object without a name is not a call: the block fails, and the region it was in
comes back as content.

``json`` scans just an arguments object (or, as an argument *value*, any JSON value).
"""
from __future__ import annotations

import json
import re

from toolgram.runtime.encodings.json_value import DONE, ERROR, MORE, JsonValue

_WS = re.compile(r"[ \t\n\r]*")
_STR_RUN = re.compile(r'[^"\\\x00-\x1f]+')
_ESCAPE = re.compile(r'\\(?:(["\\/bfnrt])|u([0-9a-fA-F]{4}))')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class StringJson:
    """A JSON string whose decoded content is itself a JSON object: decodes and re-scans it streaming.

    When the decoded text stops being JSON, the rest of the string is still read (so where the error is
    reported depends only on the text, not on how it was split) and the error is reported after it.
    """

    __slots__ = ("inner", "pending", "opened", "closed", "broken")

    def __init__(self, emit):
        self.inner = JsonValue(emit, top="object")
        self.pending = ""           # decoded text the inner scanner has not consumed yet
        self.opened = False
        self.closed = False
        self.broken = False         # the decoded text is not JSON: skip to the end of the string

    def closers(self) -> str:
        return self.inner.closers()

    @property
    def done(self) -> bool:
        return self.closed

    def _inner(self, text: str) -> None:
        if self.broken:
            return
        data = self.pending + text
        p, status = self.inner.feed(data, 0)
        if status == ERROR or (status == DONE and data[p:].strip(" \t\n\r")):
            self.broken = True
            self.pending = ""
            return
        self.pending = data[p:] if status == MORE else ""

    def feed(self, buf: str, pos: int, eof: bool = False) -> tuple[int, int]:
        n = len(buf)
        if not self.opened:
            if pos >= n:
                return pos, MORE
            if buf[pos] != '"':
                return pos, ERROR
            self.opened = True
            pos += 1
        while pos < n:
            m = _STR_RUN.match(buf, pos)
            if m is not None:
                self._inner(m.group())
                pos = m.end()
                continue
            c = buf[pos]
            if c == '"':
                if self.broken:
                    return pos + 1, ERROR
                p, status = self.inner.feed(self.pending, 0, eof=True)
                if status != DONE or self.pending[p:].strip(" \t\n\r"):
                    return pos + 1, ERROR
                self.closed = True
                return pos + 1, DONE
            if c != "\\":
                self._inner(c)                # a raw control character: taken as itself (see JsonValue)
                pos += 1
                continue
            m = _ESCAPE.match(buf, pos)
            if m is None:
                if n - pos < 6 and not eof:
                    return pos, MORE
                return pos, ERROR
            self._inner(_SIMPLE[m.group(1)] if m.group(1) else chr(int(m.group(2), 16)))
            pos = m.end()
        return pos, MORE


class JsonArgs:
    """The ``json`` block: an arguments object (role markup) or any JSON value (role value)."""

    FIRST = " \t\r\n{[\"-0123456789tfn"

    __slots__ = ("out", "value", "as_string", "sub")

    def __init__(self, out, options: dict, value: bool = False):
        self.out = out
        self.value = value
        self.as_string = options.get("arguments_as_string", False)
        self.sub = None

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

"""A JSON string whose decoded content is itself JSON, re-scanned as it streams (arguments a model writes as
a JSON string holding a JSON object: ``"arguments": "{\\"city\\": \\"Paris\\"}"``).  A helper of the
json and json_call encodings, not an encoding of its own."""
from __future__ import annotations

import re

from toolgram.runtime.json_value import DONE, ERROR, MORE, JsonValue

_STR_RUN = re.compile(r'[^"\\\x00-\x1f]+')
_ESCAPE = re.compile(r'\\(?:(["\\/bfnrt])|u([0-9a-fA-F]{4}))')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class StringJson:
    """A JSON string whose decoded content is itself a JSON object: decodes and re-scans it streaming.

    When the decoded text stops being JSON, the rest of the string is still read (so where the error is
    reported depends only on the text, not on how it was split) and the error is reported after it.
    """

    __slots__ = ("inner", "pending", "opened", "closed", "broken", "ended")

    def __init__(self, emit):
        self.inner = JsonValue(emit, top="object")
        self.pending = ""           # decoded text the inner scanner has not consumed yet
        self.opened = False
        self.closed = False
        self.broken = False         # the decoded text is not JSON: skip to the end of the string
        self.ended = False          # the string's closing quote was read

    def closers(self) -> str:
        return self.inner.closers()

    def nesting(self) -> tuple:
        """Inside the string that holds the arguments (its decoded brackets do not show in the text)."""
        return [], (None if self.ended or not self.opened else '"'), ('"',)

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
                self.ended = True
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

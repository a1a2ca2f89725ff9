"""Incremental JSON value scanner that re-emits the value as a *closable prefix*.

`JsonValue` consumes the text of one JSON value as it arrives, validates it (RFC 8259, the same language as
Python's ``json`` with NaN/Infinity refused; the one leniency: a raw control character inside a string, such
as a newline in code, is accepted and passed on escaped) and hands the text on through ``emit`` in pieces
chosen so that, at every moment, the emitted text plus :meth:`JsonValue.closers` is valid JSON:

* strings stream character by character (an escape sequence goes out whole);
* numbers and ``true``/``false``/``null`` go out only once complete;
* an object key, the ``,`` before it and the ``:`` after it wait for the start of their value;
* ``{``, ``[``, ``}`` and ``]`` go out at once.

That property is what lets a streamed tool call be cut anywhere (end of text, a malformed tail) and still
close to valid JSON that is exactly what the client has already seen.  Work is linear: every character is
examined once; runs of string characters and whole complete values are handled by C-level ``re`` and
``json`` calls (a complete value found in the buffer is checked with ``json`` in one call).
"""
from __future__ import annotations

import json
import re

MORE, DONE, ERROR = 0, 1, 2

_WS = re.compile(r"[ \t\n\r]*")
_STR_RUN = re.compile(r'[^"\\\x00-\x1f]+')
_NUM_RUN = re.compile(r"[0-9eE+\-.]+")
_WORD_RUN = re.compile(r"[a-z]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_ESCAPE = re.compile(r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})')
_WORDS = ("true", "false", "null")
_CONTROL = {chr(i): json.dumps(chr(i))[1:-1] for i in range(0x20)}   # raw control character -> its escape
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogates(out: str) -> str:
    # a lone surrogate (what the 6 ASCII characters "\ud800" decode to) cannot be UTF-8: JSON text re-emitted
    # by toolgram keeps it as its escape, which reads back as the same string
    if out.isascii() or _SURROGATE.search(out) is None:
        return out
    return _SURROGATE.sub(lambda m: "\\u%04x" % ord(m.group()), out)


def json_string(text: str) -> str:
    """``text`` as a JSON string (quotes included), non-ASCII as is, lone surrogates escaped."""
    return _escape_surrogates(json.encoder.encode_basestring(text))


def json_dumps(value) -> str:
    """``json.dumps(value, ensure_ascii=False)``, lone surrogates escaped (always encodable as UTF-8)."""
    return _escape_surrogates(json.dumps(value, ensure_ascii=False))


def _refuse_constant(name: str):
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_raw_decode = _DECODER.raw_decode

# scanner states
_VALUE = 0        # a value is expected (leading whitespace allowed)
_OBJ_FIRST = 1    # after "{": a key or "}"
_OBJ_KEY = 2      # after "," in an object: a key
_COLON = 3        # after a key
_AFTER = 4        # after a value inside a container: "," or the closer
_ARR_FIRST = 5    # after "[": a value or "]"
_STRING = 6       # inside a string value
_KEY = 7          # inside a key string
_NUMBER_S = 8     # inside a number
_WORD_S = 9       # inside true/false/null
_END = 10         # the value is complete

_OPENERS = {"{": "}", "[": "]"}


class JsonValue:
    """Scans one JSON value.  ``emit`` receives the closable-prefix pieces (None: validate only).

    ``top`` restricts the kind of the top-level value: ``"object"`` refuses anything but an object.
    """

    __slots__ = ("emit", "state", "stack", "held", "scalar", "top", "_fast_buf", "_fast_from", "_started")

    def __init__(self, emit=None, top: str | None = None):
        self.emit = emit
        self.state = _VALUE
        self.stack: list[str] = []   # expected closers of open containers, innermost last
        self.held = ""               # consumed but not yet emitted (key, ",", ":", whitespace)
        self.scalar = ""             # number or word being read
        self.top = top
        self._fast_buf = None        # the buffer in which the whole-value fast path last failed,
        self._fast_from = 0          # and the offset before which it is not retried there
        self._started = False

    # -- helpers -------------------------------------------------------------------------------
    def _out(self, text: str) -> None:
        if self.emit is not None:
            held = self.held
            if held:
                self.held = ""
                text = held + text
            if text:
                self.emit(text)
        else:
            self.held = ""

    def _after_value(self) -> None:
        self.state = _AFTER if self.stack else _END

    def closers(self) -> str:
        """What closes the emitted prefix into valid JSON."""
        tail = '"' if self.state == _STRING else ""
        return tail + "".join(reversed(self.stack))

    def nesting(self) -> tuple:
        """(closers of the open brackets, innermost last; the quote of the string being read or None; string
        quotes): where a broken value stands, for reading past its rest (runtime/skip.py)."""
        return list(self.stack), ('"' if self.state in (_STRING, _KEY) else None), ('"',)

    @property
    def done(self) -> bool:
        return self.state == _END

    @property
    def started(self) -> bool:
        """Whether any of the value itself (not leading whitespace) has been seen."""
        return self._started

    # -- main loop -----------------------------------------------------------------------------
    def feed(self, buf: str, pos: int, eof: bool = False) -> tuple[int, int]:
        """Consume from ``buf[pos:]``; return ``(pos, status)``.

        MORE: everything available was consumed (a partial escape may be left unconsumed at the end);
        DONE: the value ended just before ``pos``; ERROR: ``buf[pos]`` cannot continue the value.
        At ``eof`` an unfinished number or word is completed if it is valid.
        """
        n = len(buf)
        while True:
            st = self.state
            if st == _STRING or st == _KEY:
                m = _STR_RUN.match(buf, pos)
                if m is not None:
                    end = m.end()
                    if st == _STRING:
                        self._out(buf[pos:end])
                    else:
                        self.held += buf[pos:end]
                    pos = end
                if pos >= n:
                    return pos, MORE
                c = buf[pos]
                if c == '"':
                    pos += 1
                    if st == _STRING:
                        self._out('"')
                        self._after_value()
                        if self.state == _END:
                            return pos, DONE
                    else:
                        self.held += '"'
                        self.state = _COLON
                    continue
                if c == "\\":
                    m = _ESCAPE.match(buf, pos)
                    if m is None:
                        if n - pos < 6 and not eof and _escape_prefix(buf, pos):
                            return pos, MORE          # partial escape: wait, leave it unconsumed
                        return pos, ERROR
                    if st == _STRING:
                        self._out(m.group())
                    else:
                        self.held += m.group()
                    pos = m.end()
                    continue
                # a raw control character (a newline in code...): JSON forbids it, models write it; it
                # goes out escaped, so the arguments stay valid JSON and nothing is lost
                esc = _CONTROL[c]
                if st == _STRING:
                    self._out(esc)
                else:
                    self.held += esc
                pos += 1
                continue
            if st == _NUMBER_S or st == _WORD_S:
                run = _NUM_RUN if st == _NUMBER_S else _WORD_RUN
                m = run.match(buf, pos)
                if m is not None:
                    self.scalar += m.group()
                    pos = m.end()
                if pos >= n and not eof:
                    return pos, MORE
                scalar = self.scalar
                ok = _NUMBER.match(scalar) is not None if st == _NUMBER_S else scalar in _WORDS
                if not ok:
                    return pos, ERROR
                self.scalar = ""
                self._out(scalar)
                self._after_value()
                if self.state == _END:
                    return pos, DONE
                continue
            # structural states: skip whitespace (held: it is emitted with what follows)
            m = _WS.match(buf, pos)
            end = m.end()
            if end > pos:
                if st != _VALUE or self._started or self.stack:
                    self.held += buf[pos:end]
                pos = end
            if pos >= n:
                if eof and st == _END:
                    return pos, DONE
                return pos, MORE
            c = buf[pos]
            if st == _VALUE or st == _ARR_FIRST:
                if st == _ARR_FIRST and c == "]":
                    self._close(c)
                    pos += 1
                    if self.state == _END:
                        return pos, DONE
                    continue
                if not self._started:
                    self._started = True
                    if self.top == "object" and c != "{":
                        return pos, ERROR
                # whole-value fast path: a complete value already in the buffer is checked by json
                if n - pos > 1 and c in '{["' and (buf is not self._fast_buf or pos >= self._fast_from):
                    try:
                        _, end = _raw_decode(buf, pos)
                    except (ValueError, RecursionError):
                        self._fast_buf = buf
                        self._fast_from = n
                    else:
                        self._out(buf[pos:end])
                        pos = end
                        self._after_value()
                        if self.state == _END:
                            return pos, DONE
                        continue
                if c == '"':
                    self._out('"')
                    self.state = _STRING
                    pos += 1
                elif c == "{":
                    self._out("{")
                    self.stack.append("}")
                    self.state = _OBJ_FIRST
                    pos += 1
                elif c == "[":
                    self._out("[")
                    self.stack.append("]")
                    self.state = _ARR_FIRST
                    pos += 1
                elif c == "-" or "0" <= c <= "9":
                    self.state = _NUMBER_S
                elif c in "tfn":
                    self.state = _WORD_S
                else:
                    return pos, ERROR
                continue
            if st == _OBJ_FIRST or st == _OBJ_KEY:
                if c == '"':
                    self.held += '"'
                    self.state = _KEY
                    pos += 1
                    continue
                if st == _OBJ_FIRST and c == "}":
                    self._close(c)
                    pos += 1
                    if self.state == _END:
                        return pos, DONE
                    continue
                return pos, ERROR
            if st == _COLON:
                if c != ":":
                    return pos, ERROR
                self.held += ":"
                self.state = _VALUE
                pos += 1
                continue
            if st == _AFTER:
                if c == ",":
                    self.held += ","
                    self.state = _OBJ_KEY if self.stack[-1] == "}" else _VALUE
                    pos += 1
                    continue
                if c == self.stack[-1]:
                    self._close(c)
                    pos += 1
                    if self.state == _END:
                        return pos, DONE
                    continue
                return pos, ERROR
            if st == _END:
                return pos, DONE
            return pos, ERROR  # pragma: no cover - unreachable

    def _close(self, c: str) -> None:
        self.stack.pop()
        self._out(c)
        self._after_value()


def _escape_prefix(buf: str, pos: int) -> bool:
    """Whether ``buf[pos:]`` (starting with a backslash) can still grow into a valid escape."""
    rest = buf[pos + 1:]
    if not rest:
        return True
    if rest[0] != "u":
        return False
    return all(ch in "0123456789abcdefABCDEF" for ch in rest[1:5])

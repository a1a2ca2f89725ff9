"""Literal values (Python, or a relaxed JS-like syntax) converted to JSON while they stream.

Used for call syntaxes that write arguments as literals rather than JSON: pythonic calls
(``f(a=1, b='x', c=[True, None], d={'k': (1, 2)})``) and Gemma-style relaxed objects
(``{key:<|"|>text<|"|>,n:2}``).  The value is *parsed* by this scanner, never evaluated, and re-emitted as
JSON with the same closable-prefix discipline as `json_value.JsonValue` (strings stream; numbers and words go
out whole; keys wait for their value), canonically spaced (``", "`` and ``": "``).

A profile (the YAML block options) sets the string delimiters, the words (``True``/``None``...), whether
dict keys may be bare names, and whether ``(...)`` tuples are arrays.

As in Python, parentheses make a tuple only with a comma (``(1,)``, ``(1, 2)``) or when empty (``()``);
``(1)`` is the value 1.  What a parenthesis group holds is therefore kept back until its first comma (a tuple:
``[`` and the held text go out) or its ``)`` (the held text goes out alone).
"""
from __future__ import annotations

import json
import re

from toolgram.runtime.json_value import DONE, ERROR, MORE, json_string
from toolgram.runtime.encodings.registry import Encoding, register

_WS = re.compile(r"[ \t\n\r]*")
_NUM_RUN = re.compile(r"[0-9A-Za-z_.]+")
_WORD_RUN = re.compile(r"[A-Za-z0-9_]+")
_BARE_KEY = re.compile(r"[A-Za-z0-9_\-.$]+")
_PY_NUMBER = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|"
                        r"(?:[0-9][0-9_]*)?\.?[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*\.)\Z")
_PY_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0",
               "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\n": ""}
_HEX_LEN = {"x": 2, "u": 4, "U": 8}

PYTHON = {"quotes": ["'", '"'], "escapes": True, "words": {"True": True, "False": False, "None": None},
          "bare_keys": False, "tuples": True}
RELAXED = {"quotes": ['"'], "escapes": False, "words": {"true": True, "false": False, "null": None,
                                                      "none": None, "nil": None},
           "bare_keys": True, "tuples": False}

(_VALUE, _ARR_FIRST, _ARR_NEXT, _OBJ_FIRST, _OBJ_NEXT, _COLON, _AFTER, _STRING, _KEY, _BARE, _NUMBER, _WORD,
 _NUM_KEY, _END) = range(14)


def profile(options: dict) -> dict:
    """The scanner profile for a block's YAML options."""
    base = dict(PYTHON if options.get("syntax", "python") == "python" else RELAXED)
    if "quotes" in options:
        base["quotes"] = list(options["quotes"])
        base["escapes"] = base["escapes"] and all(len(q) == 1 for q in base["quotes"])
    if "words" in options:
        base["words"] = dict(options["words"])
    if "bare_keys" in options:
        base["bare_keys"] = bool(options["bare_keys"])
    base["quotes"] = sorted(base["quotes"], key=len, reverse=True)
    base["first"] = "".join(sorted({q[0] for q in base["quotes"]})) + "{[-+.0123456789" + (
        "(" if base["tuples"] else "") + "".join(sorted({w[0] for w in base["words"]}))
    return base


def _number_json(text: str) -> str | None:
    if not _PY_NUMBER.match(text):
        return None
    body = text.replace("_", "")
    try:
        if re.match(r"[-+]?0[xXoObB]", body):
            sign = -1 if body.startswith("-") else 1
            return str(sign * int(body.lstrip("+-"), 0))
        if re.fullmatch(r"[-+]?[0-9]+", body):
            return str(int(body))
        value = float(body)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return json.dumps(value)


class LiteralValue:
    """Scans one literal value and emits it as closable-prefix JSON through ``emit``."""

    __slots__ = ("emit", "p", "state", "stack", "held", "scalar", "quote", "key", "_started", "groups", "open_at")

    def __init__(self, emit, prof: dict):
        self.emit = emit
        self.p = prof
        self.state = _VALUE
        self.stack: list[tuple[str, str]] = []   # (closer in the input, closer in the JSON output)
        self.held = ""
        self.scalar = ""
        self.quote = ""
        self.key: list[str] = []
        self._started = False
        self.groups: list[list[str]] = []        # output held by each undecided parenthesis group
        self.open_at: list[int] = []             # the stack depth of each undecided group

    def _out(self, text: str) -> None:
        if self.held:
            text, self.held = self.held + text, ""
        if not text:
            return
        if self.groups:
            self.groups[-1].append(text)
        elif self.emit is not None:
            self.emit(text)

    def _undecided(self) -> bool:
        return bool(self.open_at) and self.open_at[-1] == len(self.stack)

    def _group_is_tuple(self) -> None:
        """A comma in an undecided group: it is a tuple, an array."""
        self.open_at.pop()
        self._out("[" + "".join(self.groups.pop()))

    def _after_value(self) -> None:
        self.state = _AFTER if self.stack else _END

    @property
    def done(self) -> bool:
        return self.state == _END

    def nesting(self) -> tuple:
        """(open brackets, open quote, quotes) where the value broke (runtime/skip.py)."""
        return [closer for closer, _ in self.stack], (self.quote if self.state in (_STRING, _KEY) and self.quote else None), \
            tuple(self.p["quotes"])

    def closers(self) -> str:
        """What closes the output so far (a string, open arrays and objects) into valid JSON.  A parenthesis
        group cut off before its comma is read as the value it holds (as if its ``)`` came; ``[]`` if it holds
        nothing yet), so the output it held comes out here."""
        text = '"' if self.state == _STRING else ""
        groups, opens = list(self.groups), list(self.open_at)
        for depth in range(len(self.stack), 0, -1):
            if opens and opens[-1] == depth:
                opens.pop()
                text = "".join(groups.pop()) + text or "[]"
            else:
                text += self.stack[depth - 1][1]
        return text

    def feed(self, buf: str, pos: int, eof: bool = False) -> tuple[int, int]:
        n = len(buf)
        p = self.p
        while True:
            st = self.state
            if st == _STRING or st == _KEY:
                pos, status = self._string(buf, pos, n, eof)
                if status is not None:
                    return pos, status
                continue
            if st in (_NUMBER, _WORD, _BARE, _NUM_KEY):
                run = _NUM_RUN if st in (_NUMBER, _NUM_KEY) else (_WORD_RUN if st == _WORD else _BARE_KEY)
                while True:
                    m = run.match(buf, pos)
                    if m is not None:
                        self.scalar += m.group()
                        pos = m.end()
                    # a sign right after an exponent belongs to the number
                    if (st == _NUMBER and pos < n and buf[pos] in "+-" and self.scalar[-1:] in ("e", "E")
                            and not self.scalar.lower().startswith(("0x", "-0x", "+0x"))):
                        self.scalar += buf[pos]
                        pos += 1
                        continue
                    break
                if pos >= n and not eof:
                    return pos, MORE
                text, self.scalar = self.scalar, ""
                if st == _NUMBER:
                    out = _number_json(text)
                    if out is None:
                        return pos, ERROR
                    self._out(out)
                    self._after_value()
                elif st == _WORD:
                    if text not in p["words"]:
                        return pos, ERROR
                    self._out(json.dumps(p["words"][text]))
                    self._after_value()
                else:
                    if st == _NUM_KEY and _number_json(text) is None:
                        return pos, ERROR
                    self.held += json_string(text)
                    self.state = _COLON
                if self.state == _END:
                    return pos, DONE
                continue
            m = _WS.match(buf, pos)
            if m.end() > pos:
                pos = m.end()
            if pos >= n:
                return pos, (DONE if st == _END else MORE)
            c = buf[pos]
            if st == _END:
                return pos, DONE
            if st == _AFTER:
                if c == ",":
                    if self._undecided():
                        self._group_is_tuple()
                    self.held += ", "
                    self.state = _OBJ_NEXT if self.stack[-1][1] == "}" else _ARR_NEXT
                    pos += 1
                    continue
                if c == self.stack[-1][0]:
                    self._close()
                    pos += 1
                    if self.state == _END:
                        return pos, DONE
                    continue
                return pos, ERROR
            if st == _COLON:
                if c != ":":
                    return pos, ERROR
                self.held += ": "
                self.state = _VALUE
                pos += 1
                continue
            if st == _OBJ_FIRST or st == _OBJ_NEXT:
                if c == "}":
                    if st == _OBJ_NEXT:
                        self.held = ""          # trailing comma
                    self._close()
                    pos += 1
                    if self.state == _END:
                        return pos, DONE
                    continue
                q, more = self._quote_at(buf, pos, n, eof)
                if more:
                    return pos, MORE
                if q:
                    self.quote = q
                    self.key = []
                    self.state = _KEY
                    pos += len(q)
                    continue
                if p["bare_keys"] and _BARE_KEY.match(c):
                    self.state = _BARE
                    continue
                if not p["bare_keys"] and (c.isdigit() or c == "-"):
                    self.state = _NUM_KEY
                    continue
                return pos, ERROR
            # a value is expected (_VALUE, _ARR_FIRST, _ARR_NEXT)
            if st != _VALUE and self.stack and c == self.stack[-1][0]:
                if st == _ARR_NEXT:
                    self.held = ""              # trailing comma
                self._close()
                pos += 1
                if self.state == _END:
                    return pos, DONE
                continue
            self._started = True
            q, more = self._quote_at(buf, pos, n, eof)
            if more:
                return pos, MORE
            if q:
                self.quote = q
                self._out('"')
                self.state = _STRING
                pos += len(q)
            elif c == "{":
                self._out("{")
                self.stack.append(("}", "}"))
                self.state = _OBJ_FIRST
                pos += 1
            elif c == "[":
                self._out("[")
                self.stack.append(("]", "]"))
                self.state = _ARR_FIRST
                pos += 1
            elif c == "(" and p["tuples"]:
                self._out("")                   # what leads to the value (a key, a comma) is not held with it
                if not self.groups and self.emit is not None:
                    self.emit("")               # the value has started (a call whose arguments start commits)
                self.stack.append((")", "]"))
                self.groups.append([])
                self.open_at.append(len(self.stack))
                self.state = _ARR_FIRST
                pos += 1
            elif c in "-+.0123456789":
                self.state = _NUMBER
                self.scalar = c
                pos += 1
            elif c.isalpha() or c == "_":
                self.state = _WORD
            else:
                return pos, ERROR

    def _quote_at(self, buf: str, pos: int, n: int, eof: bool) -> tuple[str, bool]:
        for q in self.p["quotes"]:
            if buf.startswith(q, pos):
                return q, False
            if not eof and n - pos < len(q) and q.startswith(buf[pos:]):
                return "", True
        return "", False

    def _close(self) -> None:
        if self._undecided():                   # "(x)" is x; "()" is the empty tuple
            self.open_at.pop()
            held = "".join(self.groups.pop())
            self.stack.pop()
            self._out(held or "[]")
        else:
            _, out = self.stack.pop()
            self._out(out)
        self._after_value()

    def _string(self, buf: str, pos: int, n: int, eof: bool):
        """Inside a string: returns (pos, status) or (pos, None) when the string closed.

        The decoded pieces of one call (plain runs and escapes) are collected and emitted as one piece.
        """
        q = self.quote
        key = self.state == _KEY
        escapes = self.p["escapes"]
        acc = self.key if key else []
        try:
            while True:
                end = buf.find(q, pos)
                stop = end if end != -1 else n
                if escapes:
                    bs = buf.find("\\", pos, stop)
                    if bs != -1:
                        stop = end = bs
                elif end == -1 and len(q) > 1 and not eof:
                    # hold back a possible partial delimiter at the end
                    for k in range(min(len(q) - 1, n - pos), 0, -1):
                        if q.startswith(buf[n - k:]):
                            stop = n - k
                            break
                if stop > pos:
                    acc.append(buf[pos:stop])
                    pos = stop
                if end == -1 or pos >= n:
                    return pos, MORE if not eof else ERROR
                if buf.startswith(q, pos):
                    pos += len(q)
                    if key:
                        self.held += json_string("".join(self.key))
                        self.key = acc = []
                        self.state = _COLON
                    else:
                        self._flush(acc)
                        self._out('"')
                        self._after_value()
                        if self.state == _END:
                            return pos, DONE
                    return pos, None
                # a backslash escape
                if pos + 1 >= n:
                    return pos, MORE if not eof else ERROR
                c = buf[pos + 1]
                if c in _HEX_LEN:
                    k = _HEX_LEN[c]
                    digits = buf[pos + 2:pos + 2 + k]
                    if len(digits) < k and not eof and all(ch in "0123456789abcdefABCDEF" for ch in digits):
                        return pos, MORE
                    if len(digits) < k or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
                        return pos, ERROR
                    code = int(digits, 16)
                    if code > 0x10FFFF:
                        return pos, ERROR
                    acc.append(chr(code))
                    pos += 2 + k
                elif c in _PY_ESCAPES:
                    acc.append(_PY_ESCAPES[c])
                    pos += 2
                else:
                    acc.append("\\" + c)      # Python keeps unknown escapes as written
                    pos += 2
        finally:
            if not key:
                self._flush(acc)

    def _flush(self, acc: list) -> None:
        """Emit the collected pieces of a string value (JSON-escaped) and forget them."""
        if acc:
            text = "".join(acc)
            acc.clear()
            if text:
                self._out(json_string(text)[1:-1])


def literal_to_json(text: str, syntax: str = "python") -> str | None:
    """One-shot conversion of a whole literal to JSON text (None when it is not a valid literal)."""
    out: list[str] = []
    scanner = LiteralValue(out.append, profile({"syntax": syntax}))
    try:
        pos, status = scanner.feed(text, 0, eof=True)
    except RecursionError:
        return None
    if status != DONE or text[pos:].strip():
        return None
    return "".join(out)


def _scanner(out, prof: dict, value: bool):
    scanner = LiteralValue(out.value_json, prof)
    out.value_scanner(scanner)
    return scanner


def _value(ctx, spec, arg):
    prof = spec.prepared
    return ctx.schema_value(arg.schema, arg.root, syntax=spec.options.get("syntax", "python"), where=arg.where,
                            prefix=arg.slug, quote=prof["quotes"][0], words=prof["words"],
                            bare_keys=prof["bare_keys"])


ENCODING = register(Encoding(
    name="literal",
    summary="a Python (or relaxed, JS-like) literal converted to JSON: call keywords, relaxed objects",
    options={"syntax": {"enum": ["python", "relaxed"]},
             "quotes": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
             "words": {"type": "object", "additionalProperties": {"enum": [True, False, None]}},
             "bare_keys": {"type": "boolean"}},
    prepare=profile,
    first=lambda prof: " \t\r\n" + prof["first"],
    scanner=_scanner,
    value=_value,
))

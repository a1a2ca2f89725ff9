"""Reading past the broken rest of a call: where a call whose text stopped fitting the grammar ends.

A committed call is never taken back (its name and arguments were streamed), so the text after the break
belongs to it, as markup, up to the end of the call.  `Skipper` finds that end in one pass, character by
character only where it matters: it follows brackets (each closed by its own kind) and quoted strings from
where the break happened, and stops

* at a marker that ends or follows the call (``</tool_call>``, the next call's opener), wherever it is;
* at a literal that follows the broken block (``,`` or ``)`` after a value), outside strings and brackets;
* after the bracket that closes the last one open at the break (when one was open), and after the call's end
  marker if one follows at once;
* at the end of the output.

A marker cut by the end of a delta is held back, so where it stops never depends on how the text was split.
"""
from __future__ import annotations

import re

from toolgram.runtime.json_value import DONE, MORE

CLOSE = "close"     # `Skipper.stop` after the closing bracket
_OPEN = "([{"
_SHUT = ")]}"
_CLOSER = {"(": ")", "[": "]", "{": "}"}


def closers_of(text: str, stack: list | None = None) -> list:
    """The closers expected after ``text`` (innermost last), brackets only, strings not considered."""
    stack = [] if stack is None else stack
    for c in text:
        if c in _CLOSER:
            stack.append(_CLOSER[c])
        elif c in _SHUT and stack and stack[-1] == c:
            stack.pop()
    return stack


class Skipper:
    __slots__ = ("stack", "closes", "quote", "quotes", "markers", "top", "ends", "closed", "stop", "_re",
                 "_prefixes", "_longest")

    def __init__(self, closers: list, quote: str | None, quotes: tuple, markers: tuple, top: tuple, ends=()):
        self.stack = closers          # closers of the brackets open since the call began, innermost last
        self.closes = bool(closers)   # whether closing them all ends the call
        self.quote = quote            # the quote of the string the text is in, or None
        self.quotes = frozenset(quotes)   # the delimiters of strings
        self.markers = frozenset(markers)
        self.top = frozenset(top)
        self.ends = ends              # end markers read at once after the closing bracket
        self.closed = False           # the closing bracket was read
        self.stop = None              # after DONE: the marker or literal it stopped before, CLOSE, or None (end)
        long = {t for t in self.top | self.quotes if len(t) > 1}
        words = sorted(self.markers | long, key=lambda x: (-len(x), x))
        singles = set(_OPEN + _SHUT + "\\") | {t for t in self.top | self.quotes if len(t) == 1}
        self._re = re.compile("|".join([re.escape(w) for w in words]
                                       + ["[" + "".join(re.escape(c) for c in sorted(singles)) + "]"]))
        self._prefixes = frozenset(w[:i] for w in words for i in range(1, len(w)))
        self._longest = max(map(len, words), default=1)

    def _held(self, buf: str, pos: int, n: int) -> int:
        """The earliest offset from which the rest of ``buf`` could begin a marker (``n``: none)."""
        for i in range(max(pos, n - self._longest + 1), n):
            if buf[i:] in self._prefixes:
                return i
        return n

    def _end_marker(self, buf: str, pos: int, eof: bool) -> tuple[int, int]:
        """After the closing bracket: the call's end marker, if it follows at once."""
        rest = buf[pos:pos + max(map(len, self.ends))]
        for end in self.ends:
            if rest.startswith(end):
                return pos + len(end), DONE
            if not eof and end.startswith(rest) and len(rest) < len(end):
                return pos, MORE
        return pos, DONE

    def feed(self, buf: str, pos: int, eof: bool = False) -> tuple[int, int]:
        if self.closed:
            return self._end_marker(buf, pos, eof)
        n = len(buf)
        hold = n if eof else self._held(buf, pos, n)
        search = self._re.search
        while True:
            m = search(buf, pos)
            if m is None or m.start() >= hold:
                if eof:
                    return n, DONE
                return hold, MORE
            i = m.start()
            tok = m.group()
            pos = m.end()
            if tok in self.markers:
                self.stop = tok
                return i, DONE
            quote = self.quote
            if quote is not None:
                if tok == "\\":
                    if pos >= n:
                        if eof:
                            return n, DONE
                        return i, MORE            # the escaped character decides; read it with the next delta
                    pos += 1
                elif tok == quote:
                    self.quote = None
                continue
            stack = self.stack
            if not stack and tok in self.top:
                self.stop = tok
                return i, DONE
            if tok in self.quotes:
                self.quote = tok
            elif tok in _OPEN:
                stack.append(_CLOSER[tok])
            elif stack and tok == stack[-1]:      # (a closer of another kind is text)
                stack.pop()
                if not stack and self.closes:
                    self.stop = CLOSE
                    if self.ends:
                        self.closed = True
                        return self._end_marker(buf, pos, eof)
                    return pos, DONE

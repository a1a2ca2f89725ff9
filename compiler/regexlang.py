"""Finite regex languages: a terminal such as ``"<|end|>" | "<|call|>"`` is a set of markers, not a pattern.

Lark compiles an alternation of strings into a regex.  `finite_strings` recovers the strings when a regex
matches only a few fixed texts (alternations, optional parts, small character classes), so the streaming
lexer can treat each spelling as a marker: held back while partial, and usable to end a text run.
"""
from __future__ import annotations

try:
    from re import _constants as C  # Python >= 3.11
    from re import _parser as P
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as C
    import sre_parse as P

MAX_STRINGS = 64


class _Infinite(Exception):
    pass


def _expand(items) -> list[str]:
    out = [""]
    for op, arg in items:
        if op is C.LITERAL:
            alts = [chr(arg)]
        elif op is C.SUBPATTERN:
            if arg[1] & C.SRE_FLAG_IGNORECASE:
                raise _Infinite
            alts = _expand(arg[-1])
        elif op is C.BRANCH:
            alts = [s for branch in arg[1] for s in _expand(branch)]
        elif op is C.IN:
            alts = []
            for iop, iarg in arg:
                if iop is C.LITERAL:
                    alts.append(chr(iarg))
                elif iop is C.RANGE and iarg[1] - iarg[0] < 16:
                    alts.extend(chr(c) for c in range(iarg[0], iarg[1] + 1))
                else:
                    raise _Infinite
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = arg
            if hi is C.MAXREPEAT or hi > 4:
                raise _Infinite
            inner = _expand(body)
            alts = []
            for k in range(lo, hi + 1):
                combos = [""]
                for _ in range(k):
                    combos = [a + b for a in combos for b in inner]
                alts.extend(combos)
        else:
            raise _Infinite
        out = [a + b for a in out for b in alts]
        if len(out) > MAX_STRINGS:
            raise _Infinite
    return out


def finite_strings(pattern: str) -> list[str] | None:
    """The texts a regex matches, longest first, if they are few and none is empty; else None."""
    try:
        parsed = P.parse(pattern)
        if parsed.state.flags & C.SRE_FLAG_IGNORECASE:
            return None
        words = _expand(list(parsed))
    except (_Infinite, Exception):
        return None
    words = sorted(set(words), key=lambda w: (-len(w), w))
    if not words or "" in words:
        return None
    return words

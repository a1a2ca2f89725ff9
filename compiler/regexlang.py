"""Finite regex languages: a terminal such as ``"<|end|>" | "<|call|>"`` is a set of markers, not a pattern.

Lark compiles an alternation of strings into a regex.  `finite_strings` recovers the strings when a regex
matches only a few fixed texts (alternations, optional parts, small character classes), so the streaming
lexer can treat each spelling as a marker: held back while partial, and usable to end a text run.
"""
from __future__ import annotations

import functools

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


# -- regex rewriting for constraints --------------------------------------------------------------

class Unsupported(ValueError):
    pass


# \s as Python's re reads it in a str pattern (the parser's side): ASCII whitespace and the Unicode spaces
# (NBSP, the U+2000 block, ...), so that [^\s] in a constraint refuses what the parser's refuses
_SPACES = " \\t\\n\\r\\f\\v\\x1c\\x1d\\x1e\\x1f\\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CATS = {
    C.CATEGORY_DIGIT: "0-9", C.CATEGORY_NOT_DIGIT: None, C.CATEGORY_SPACE: _SPACES,
    C.CATEGORY_NOT_SPACE: None, C.CATEGORY_WORD: "A-Za-z0-9_", C.CATEGORY_NOT_WORD: None,
}
_CAT_NEG = {C.CATEGORY_NOT_DIGIT: "0-9", C.CATEGORY_NOT_SPACE: _SPACES, C.CATEGORY_NOT_WORD: "A-Za-z0-9_"}


def _class_char(code: int) -> str:
    ch = chr(code)
    if ch in "\\]^-[/":
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch == "\r":
        return "\\r"
    if code < 32 or code == 127:
        return f"\\x{code:02x}"
    return ch


def _class(items, negate: bool = False) -> str:
    parts = []
    for op, arg in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            parts.append(_class_char(arg))
        elif op is C.RANGE:
            parts.append(_class_char(arg[0]) + "-" + _class_char(arg[1]))
        elif op is C.CATEGORY:
            if arg in _CAT_NEG:
                if len(items) > 1 or negate:
                    raise Unsupported("negated category inside a class")
                return "[^" + _CAT_NEG[arg] + "]"
            parts.append(_CATS[arg])
        else:
            raise Unsupported(f"class item {op}")
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def _lit(code: int) -> str:
    ch = chr(code)
    if ch in ".^$*+?{}[]\\|()/":
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch == "\r":
        return "\\r"
    if code < 32 or code == 127:
        return f"\\x{code:02x}"
    return ch


def _blank_run(lo: int, hi, body, blank):
    """An unbounded run of one whitespace item under ``blank`` (characters to keep, most), as a unit
    (character set, fewest, most) of the characters it may write; None for any other repetition."""
    if blank is None or hi is not C.MAXREPEAT or len(body) != 1:
        return None
    chars = _blank_chars(*body[0])
    if chars is None:
        return None
    chars = "".join(c for c in chars if c in blank[0]) or chars
    return (False, tuple((ord(c), ord(c)) for c in chars)), lo, max(lo, blank[1])


def _unparse(items, bound: int, top: bool = False, blank=None) -> str:
    out = []
    for i, (op, arg) in enumerate(items):
        if op is C.ASSERT_NOT and top and arg[0] == 1:
            out.append(_not_starting(arg[1], items[i + 1:], bound, blank))
            break
        if op is C.LITERAL:
            out.append(_lit(arg))
        elif op is C.NOT_LITERAL:
            out.append("[^" + _class_char(arg) + "]")
        elif op is C.ANY:
            out.append("[^\\n]")
        elif op is C.IN:
            out.append(_class(arg))
        elif op is C.BRANCH:
            out.append("(?:" + "|".join(_unparse(b, bound, blank=blank) for b in arg[1]) + ")")
        elif op is C.SUBPATTERN:
            if arg[1] or arg[2]:
                raise Unsupported("inline flags")
            out.append("(?:" + _unparse(arg[3], bound, blank=blank) + ")")
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = arg
            run = _blank_run(lo, hi, body, blank)
            if run is not None:
                out.append(_unit_text(run))
                continue
            if hi is C.MAXREPEAT:
                hi = lo + bound
            inner = _unparse(body, bound, blank=blank)
            if len(body) > 1 or (body and body[0][0] in (C.BRANCH,)):
                inner = "(?:" + inner + ")"
            out.append(f"{inner}{{{lo},{hi}}}" if (lo, hi) != (0, 1) else f"{inner}?")
        elif op is C.AT:
            continue                                 # anchors: the token is matched whole anyway
        elif op is C.CATEGORY:
            out.append(_class([(op, arg)]))
        else:
            raise Unsupported(f"regex construct {op}")
    return "".join(out)


def bounded(pattern: str, bound: int = 4, blank=None) -> str:
    """The regex with unbounded repetitions capped (``+`` -> ``{1,1+bound}``), anchors dropped, groups
    made non-capturing: what a constraint may generate for a pattern terminal.  ``blank``: (characters,
    most) for unbounded whitespace runs (``[ \t]*`` -> ``[ ]{0,most}``), the constraint's whitespace."""
    return _unparse(list(P.parse(pattern)), bound, top=True, blank=blank)


def longest(pattern: str, bound: int = 4, blank=None) -> int:
    """The length of the longest text `bounded` (same arguments) lets the regex match."""
    return _longest(list(P.parse(pattern)), bound, blank)


def _longest(items, bound: int, blank) -> int:
    total = 0
    for op, arg in items:
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
            continue
        if op is C.BRANCH:
            total += max(_longest(b, bound, blank) for b in arg[1])
        elif op is C.SUBPATTERN:
            total += _longest(arg[-1], bound, blank)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = arg
            run = _blank_run(lo, hi, body, blank)
            if run is not None:
                total += run[2]
            else:
                total += (lo + bound if hi is C.MAXREPEAT else hi) * _longest(body, bound, blank)
        else:
            total += 1
    return total


def bound_for(pattern: str, max_length: int | None, default: int = 4, blank=None) -> int:
    """The largest cap on a pattern's unbounded repetitions (`bounded`) that keeps its texts within
    ``max_length`` (the longest token the parser accepts); ``default`` without one."""
    if max_length is None:
        return default
    lo, hi = 0, max_length
    while lo < hi:                                  # (the length grows with the bound)
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if longest(pattern, mid, blank) <= max_length else (lo, mid - 1)
    return lo


# -- a negative lookahead, written out ------------------------------------------------------------
# `A(?!X)Y` (X a few literal texts, Y characters from classes, repeated): A, then the texts of Y that do not
# begin with X, as a plain regex (every dialect takes it): a character off X, or X's next character and so on.
# A text of Y that ends inside X is left out: what follows the token could complete X, and the parser's
# lookahead reads on past the token.

def _merged(ranges) -> tuple:
    """Code ranges sorted, overlapping and adjacent ones joined."""
    out: list = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return tuple(out)


_SPACE_RANGES = _merged(arg if op is C.RANGE else (arg, arg) for op, arg in P.parse(f"[{_SPACES}]")[0][1])
_CAT_RANGES = {C.CATEGORY_DIGIT: ((48, 57),), C.CATEGORY_WORD: ((48, 57), (65, 90), (95, 95), (97, 122)),
               C.CATEGORY_SPACE: _SPACE_RANGES}
_CAT_OF_NEG = {C.CATEGORY_NOT_DIGIT: C.CATEGORY_DIGIT, C.CATEGORY_NOT_WORD: C.CATEGORY_WORD,
               C.CATEGORY_NOT_SPACE: C.CATEGORY_SPACE}


def _charset(op, arg) -> tuple[bool, tuple]:
    """One character item as (negated, code ranges)."""
    if op is C.LITERAL:
        return False, ((arg, arg),)
    if op is C.NOT_LITERAL:
        return True, ((arg, arg),)
    if op is C.ANY:
        return True, ((10, 10),)
    if op is C.CATEGORY:
        if arg in _CAT_OF_NEG:
            return True, _CAT_RANGES[_CAT_OF_NEG[arg]]
        return False, _CAT_RANGES[arg]
    if op is C.IN:
        negate, ranges = False, []
        for iop, iarg in arg:
            if iop is C.NEGATE:
                negate = True
            elif iop is C.LITERAL:
                ranges.append((iarg, iarg))
            elif iop is C.RANGE:
                ranges.append(iarg)
            elif iop is C.CATEGORY and iarg in _CAT_RANGES:
                ranges.extend(_CAT_RANGES[iarg])
            elif iop is C.CATEGORY and len(arg) == 1:
                return _charset(iop, iarg)
            else:
                raise Unsupported(f"class item {iop} after a lookahead")
        return negate, tuple(ranges)
    raise Unsupported(f"regex construct {op} after a lookahead")


def _holds(cs, code: int) -> bool:
    return any(a <= code <= b for a, b in cs[1]) != cs[0]


def _without(cs, codes) -> tuple[bool, tuple]:
    """The character set less ``codes``."""
    negate, ranges = cs
    if negate:
        return True, ranges + tuple((c, c) for c in sorted(codes))
    out = []
    for a, b in ranges:
        for c in sorted(codes):
            if a <= c <= b:
                if a < c:
                    out.append((a, c - 1))
                a = c + 1
        if a <= b:
            out.append((a, b))
    return False, tuple(out)


def _set_text(cs) -> str:
    negate, ranges = cs
    body = "".join(_class_char(a) if a == b else _class_char(a) + "-" + _class_char(b) for a, b in ranges)
    return "[" + ("^" if negate else "") + body + "]"


def _unit_text(unit) -> str:
    cs, lo, hi = unit
    rep = "" if (lo, hi) == (1, 1) else "?" if (lo, hi) == (0, 1) else f"{{{lo},{hi}}}"
    return _set_text(cs) + rep


def _units(items, bound: int, blank) -> tuple:
    """Y as (character set, fewest, most) units."""
    out = []
    for op, arg in items:
        if op is C.AT:
            continue
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = arg
            run = _blank_run(lo, hi, body, blank)
            if run is not None:
                out.append(run)
                continue
            if len(body) != 1:
                raise Unsupported("a repeated group after a lookahead")
            hi = lo + bound if hi is C.MAXREPEAT else hi
            if hi:
                out.append((_charset(*body[0]), lo, hi))
        else:
            out.append((_charset(op, arg), 1, 1))
    return tuple(out)


def _after(units, code: int) -> set:
    """The unit sequences that match what follows a first character ``code`` (a derivative)."""
    out = set()
    for k, (cs, lo, hi) in enumerate(units):
        if _holds(cs, code):
            out.add(((cs, max(lo - 1, 0), hi - 1),) + units[k + 1:] if hi > 1 else units[k + 1:])
        if lo:
            break
    return out


def _avoiding(seqs, words) -> list[str]:
    """Regex alternatives for the nonempty texts of ``seqs`` that do not begin with one of ``words``."""
    if "" in words:
        return []
    firsts = {ord(w[0]) for w in words}
    out = []
    for units in sorted(seqs):
        for k, (cs, lo, hi) in enumerate(units):
            head = _without(cs, firsts)
            if head[0] or head[1]:
                rest = ((cs, max(lo - 1, 0), hi - 1),) if hi > 1 else ()
                out.append(_set_text(head) + "".join(_unit_text(u) for u in rest + units[k + 1:]))
            if lo:
                break
    for code in sorted(firsts):
        after = set().union(*(_after(units, code) for units in seqs))
        inner = _avoiding(after, {w[1:] for w in words if ord(w[0]) == code})
        if inner:
            out.append(_lit(code) + (inner[0] if len(inner) == 1 else "(?:" + "|".join(inner) + ")"))
    return out


def _not_starting(ahead, rest, bound: int, blank) -> str:
    try:
        words = _expand(list(ahead))
    except _Infinite:
        raise Unsupported("a lookahead that is not a few literal texts") from None
    alts = _avoiding({_units(rest, bound, blank)}, set(words))
    if not alts:
        raise Unsupported("nothing matches after the lookahead")
    return "(?:" + "|".join(alts) + ")"


_BLANKS = " \t\n\r\f\v"


def _blank_chars(op, arg) -> str | None:
    """The characters of one regex item that matches one whitespace character (None: anything else)."""
    if op is C.LITERAL:
        return chr(arg) if chr(arg) in _BLANKS else None
    if op is C.CATEGORY:
        return _BLANKS if arg is C.CATEGORY_SPACE else None
    if op is C.IN:
        chars = ""
        for iop, iarg in arg:
            got = _blank_chars(iop, iarg) if iop in (C.LITERAL, C.CATEGORY) else None
            if got is None:
                return None
            chars += got
        return "".join(sorted(set(chars)))
    return None


def whitespace_run(pattern: str) -> tuple[str, int, int | None] | None:
    """``(characters, fewest, most)`` when the regex is a run of whitespace only (``[ \\t\\r\\n]+``, ``\\s*``,
    ``\\n``); None otherwise.  ``most`` is None when unbounded."""
    try:
        items = list(P.parse(pattern))
    except Exception:                                   # noqa: BLE001 - not a regex this module reads
        return None
    if len(items) != 1:
        return None
    op, arg = items[0]
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        lo, hi, body = arg
        body = list(body)
        if len(body) != 1:
            return None
        chars = _blank_chars(*body[0])
        return None if chars is None else (chars, lo, None if hi is C.MAXREPEAT else hi)
    chars = _blank_chars(op, arg)
    return None if chars is None else (chars, 1, 1)


def render_capture(pattern: str, group: str, value: str) -> str:
    """The regex with its named group ``(?P<group>...)`` replaced by the literal ``value``."""
    start = pattern.find(f"(?P<{group}>")
    if start < 0:
        raise Unsupported(f"no group {group}")
    depth, i = 0, start
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            j = i + 1
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                escaped = "".join(_lit(ord(ch)) for ch in value)
                return pattern[:start] + "(?:" + escaped + ")" + pattern[i + 1:]
        i += 1
    raise Unsupported("unbalanced group")


@functools.lru_cache(maxsize=256)
def capture_template(pattern: str, group: str, bound: int = 4) -> tuple[str, str] | None:
    """``bounded(render_capture(pattern, group, value))`` as the text before and after the value's escaped
    characters (parsed once per pattern, not once per value); None where the pattern already holds NUL."""
    out = bounded(render_capture(pattern, group, "\0"), bound)
    if "\0" in pattern or out.count("\\x00") != 1:
        return None
    before, after = out.split("\\x00")
    return before, after


def regex_items(pattern: str):
    """The parsed regex (for translating to grammar rules)."""
    return list(P.parse(pattern))


def class_of(items) -> str:
    return _class(items)


def char_class(code: int) -> str:
    return _class_char(code)


def regex_char(code: int) -> str:
    """One character as a regex atom (escaped; control characters as \\xNN)."""
    return _lit(code)


def split_at_words(pattern: str, words, bound: int = 4, blank=None) -> list[list] | None:
    """The regex as alternatives of parts, cut where it spells one of ``words`` (markers) literally: each
    alternative a list of ``("re", regex)`` (bounded, as `bounded`) and ``("word", word)``; None when no word
    is spelled in it.  A marker that is a single token can then be written as that token (a regex never
    matches a special token)."""
    words = sorted((w for w in words if len(w) >= 2), key=len, reverse=True)
    if not words:
        return None
    try:
        alts = _split(list(P.parse(pattern)), words)
    except (_Infinite, Exception):
        return None
    if not any(kind == "word" for a in alts for kind, _ in a):
        return None
    out = []
    for a in alts:
        parts, buf = [], []
        for kind, x in a:
            if kind == "word":
                if buf:
                    parts.append(("re", _unparse(buf, bound, blank=blank)))
                    buf = []
                parts.append(("word", x))
            else:
                buf.append(x)
        if buf:
            parts.append(("re", _unparse(buf, bound, blank=blank)))
        out.append(parts)
    return out


def _split(items, words) -> list[list]:
    """Alternatives (lists of ("item", sre item) / ("word", w)) of a parsed regex, branches that spell a word
    distributed over what follows them."""
    alts: list[list] = [[]]
    i = 0
    while i < len(items):
        op, arg = items[i]
        found = None
        if op is C.LITERAL:
            for w in words:
                codes = [ord(c) for c in w]
                if [a for _, a in items[i:i + len(codes)]] == codes and \
                        all(o is C.LITERAL for o, _ in items[i:i + len(codes)]):
                    found = w
                    break
        if found is not None:
            alts = [a + [("word", found)] for a in alts]
            i += len(found)
            continue
        branches = None
        if op is C.BRANCH:
            branches = arg[1]
        elif op is C.SUBPATTERN and not (arg[1] or arg[2]) and len(arg[3]) == 1 and arg[3][0][0] is C.BRANCH:
            branches = arg[3][0][1][1]
        elif op is C.SUBPATTERN and not (arg[1] or arg[2]):
            branches = [arg[3]]
        if branches is not None:
            subs = [s for b in branches for s in _split(list(b), words)]
            if any(k == "word" for s in subs for k, _ in s):
                alts = [a + s for a in alts for s in subs]
                if len(alts) > MAX_STRINGS:
                    raise _Infinite
                i += 1
                continue
        alts = [a + [("item", (op, arg))] for a in alts]
        i += 1
    return [[(k, x) for k, x in a] for a in alts]

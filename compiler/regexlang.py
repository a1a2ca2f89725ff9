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


def _unparse(items, bound: int) -> str:
    out = []
    for op, arg in items:
        if op is C.LITERAL:
            out.append(_lit(arg))
        elif op is C.NOT_LITERAL:
            out.append("[^" + _class_char(arg) + "]")
        elif op is C.ANY:
            out.append("[^\\n]")
        elif op is C.IN:
            out.append(_class(arg))
        elif op is C.BRANCH:
            out.append("(?:" + "|".join(_unparse(b, bound) for b in arg[1]) + ")")
        elif op is C.SUBPATTERN:
            if arg[1] or arg[2]:
                raise Unsupported("inline flags")
            out.append("(?:" + _unparse(arg[3], bound) + ")")
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = arg
            if hi is C.MAXREPEAT:
                hi = lo + bound
            inner = _unparse(body, bound)
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


def bounded(pattern: str, bound: int = 4) -> str:
    """The regex with unbounded repetitions capped (``+`` -> ``{1,1+bound}``), anchors dropped, groups
    made non-capturing: what a constraint may generate for a pattern terminal."""
    return _unparse(list(P.parse(pattern)), bound)


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


def split_at_words(pattern: str, words, bound: int = 4) -> list[list] | None:
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
                    parts.append(("re", _unparse(buf, bound)))
                    buf = []
                parts.append(("word", x))
            else:
                buf.append(x)
        if buf:
            parts.append(("re", _unparse(buf, bound)))
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

"""Writing constraint rules out: Lark (llguidance / xgrammar dialects), GBNF, and xgrammar structural tags.

Markers that are single added tokens of the request's tokenizer are written as tokens (``<[id]>``) in Lark:
llguidance refuses a quoted literal that equals an added token.  Free text that must not contain a marker is
a regex intersection in llguidance (``/.../ & ~/.../``, fast masks) and an automaton of rules elsewhere.
"""
from __future__ import annotations

import json

from toolgram.ir import Alt, Json, Lazy, Lit, Node, Ref, Regex, Rep, Seq, Text, Tok
from toolgram.errors import ConstraintError
from toolgram.compiler.lark_text import lark_string
from toolgram.compiler.regexlang import C, Unsupported, char_class, class_of, regex_char, regex_items
from toolgram.compiler.schema_grammar import json_rules


def _split_tokens(text: str, tokens: dict) -> list:
    """``text`` cut into plain pieces and added-token ids (longest token first)."""
    if not tokens or not text:
        return [text] if text else []
    out, buf, i = [], [], 0
    ordered = sorted(tokens, key=len, reverse=True)
    while i < len(text):
        for tok in ordered:
            if text.startswith(tok, i):
                if buf:
                    out.append("".join(buf))
                    buf = []
                out.append(tokens[tok])
                i += len(tok)
                break
        else:
            buf.append(text[i])
            i += 1
    if buf:
        out.append("".join(buf))
    return out


def literal_pieces(literals, tokens: dict) -> frozenset:
    """The spelled pieces (between added tokens) of ``literals`` (`cuts.cut_literals`), but one character or
    blanks (cutting at those would split most literals): the cut points of `LarkWriter._cut`."""
    return frozenset(p for x in literals for p in _split_tokens(x, tokens)
                     if isinstance(p, str) and len(p) > 1 and not p.isspace())


def _regex_text(pattern: str) -> str:
    return "/" + pattern.replace("/", "\\/") + "/"


def _escape_re(text: str) -> str:
    return "".join(regex_char(ord(c)) for c in text)


def _shared_nodes(rules: dict) -> dict:
    """The compound nodes (with children) and JSON Schema leaves that the rules reach from more than one place:
    id of each such object -> (the first object of its value, how many places).  By value (equal nodes built
    apart: two tools' equal schemas, a rewrite kept from an earlier request and its equal made in this one),
    so the text does not depend on which equal nodes are one object; each object hashed once."""
    first: dict = {}                    # id of an object met -> the first object of its value
    values: dict = {}                   # value -> its first object
    places: dict = {}                   # id of a first object -> places it is reached from
    todo = list(rules.values())
    pop, push = todo.pop, todo.extend
    while todo:
        n = pop()
        t = type(n)                     # (node classes have no subclasses: exact type tests)
        if t is Seq:
            kids = n.items
        elif t is Alt:
            kids = n.options
        elif t is Rep:
            kids = (n.item,)
        elif t is Json:
            kids = ()
        else:
            continue
        if not kids and t is not Json:
            continue
        f = first.get(id(n))
        if f is None:
            f = first[id(n)] = values.setdefault(n, n)
            if f is n:
                push(kids)
                continue
        places[id(f)] = places.get(id(f), 1) + 1
    return {i: (f, places[id(f)]) for i, f in first.items() if id(f) in places}


_RULE_COST = 12         # the text a rule adds (its name, where written and where used): a shared node whose
#                        copies in place would be no longer than the rule is written in place


class _Writer:
    """Shared walk over rule nodes; subclasses say how leaves and operators are written.

    A compound node or JSON Schema leaf met more than once (one object reached from several places: a tool's
    arguments shared by the grammar's call forms, a marker choice shared by every tool) is written once, as a
    rule of its own that each place refers to; the language is the same, the text and the matcher's grammar
    smaller (a grammar with two call forms, 20 tools: 53 -> 32 kB, llguidance's compile 18 -> 8 ms)."""

    def __init__(self, rules: dict, share: bool = True):
        self.rules = rules
        self.extra: list[str] = []
        self.shared = _shared_nodes(rules) if share else {}     # (share=False: every node in place)
        self.parts: dict = {}           # id of a shared value's first object -> (it, its rule's name) or its
        #                                 text, once written
        self.counter = 0

    def fresh(self, base: str) -> str:
        while True:
            self.counter += 1
            name = f"{base}{self.counter}"
            if name not in self.rules:
                return name

    def body(self, n: Node) -> str:
        """A rule's body (written in place even where the same node is also shared)."""
        t = type(n)
        return self.compound(n, True) if t is Seq or t is Alt or t is Rep else self.leaf(n)

    def node(self, n: Node, top: bool = False) -> str:
        t = type(n)
        if t is Seq or t is Alt or t is Rep:
            return self.part(n, top) if id(n) in self.shared else self.compound(n, top)
        if t is Json and id(n) in self.shared:
            return self.part(n)
        return self.leaf(n)

    def leaf(self, n: Node) -> str:
        t = type(n)
        if t is Ref:
            return self.ref(n.name)
        if t is Lit:
            return self.lit(n.text)
        if t is Regex:
            return self.regex(n.pattern)
        if t is Json:
            return self.json(n.schema, n.where)
        if t is Text:
            return self.text(n)
        if t is Lazy:
            return self.lazy(n)
        if t is Tok:
            raise ConstraintError(f"internal: terminal {n.name} left in a constraint")
        raise ConstraintError(f"internal: unknown node {n!r}")

    def part(self, n: Node, top: bool = False) -> str:
        """A shared node: its rule's name (the rule written the first time), or the node in place where its
        copies would be no longer than the rule."""
        n, uses = self.shared[id(n)]           # (the first object of its value)
        hit = self.parts.get(id(n))
        if hit is None:
            text = self.body(n)
            if type(n) is not Json and uses * len(text) <= len(text) + _RULE_COST * (uses + 1):
                hit = (n, None, text, self.compound(n, False))     # (its text in place: as a body, nested)
            else:
                name = self.fresh("tg__part")
                self.rule(name, text)
                hit = (n, self.ref(name))
            self.parts[id(n)] = hit
        return hit[1] or hit[2 if top else 3]

    def compound(self, n: Node, top: bool) -> str:
        t = type(n)
        if t is Seq:
            if not n.items:
                return self.empty()
            node = self.node
            parts = [p for p in [node(x) for x in n.items] if p]
            text = " ".join(parts) if parts else self.empty()
            return text if top or len(parts) <= 1 else "(" + text + ")"
        if t is Alt:
            if not n.options:
                raise ConstraintError("internal: an alternative with no options")
            empty = any(type(o) is Seq and not o.items for o in n.options)
            node = self.node
            opts = [node(o, True) for o in n.options if not (type(o) is Seq and not o.items)]
            text = " | ".join(opts)
            if empty:
                return f"({text})?"
            return text if top and len(opts) == 1 else "(" + text + ")"
        return self.rep(n)

    def rep(self, n: Rep) -> str:
        inner = self.node(n.item)
        if not inner:
            return ""
        lo, hi = n.lo, n.hi
        if (lo, hi) == (0, 1):
            return f"({inner})?"
        if (lo, hi) == (0, None):
            return f"({inner})*"
        if (lo, hi) == (1, None):
            return f"({inner})+"
        return self.bounded_rep(inner, lo, hi)

    def bounded_rep(self, inner: str, lo: int, hi) -> str:
        parts = [inner] * lo
        if hi is None:
            parts.append(f"({inner})*")
        else:
            tail = ""
            for _ in range(hi - lo):
                tail = f"({inner} {tail})?" if tail else f"({inner})?"
            if tail:
                parts.append(tail)
        return "(" + " ".join(parts) + ")" if parts else ""


# -- Lark -----------------------------------------------------------------------------------------

class LarkWriter(_Writer):
    def __init__(self, rules: dict, dialect: str = "llguidance", tokens: dict | None = None,
                 json_space: str = " ?", cut_at: frozenset = frozenset(), share: bool = True):
        super().__init__(rules, share)
        self.dialect = dialect
        # llguidance's JSON options: the whitespace between JSON tokens (none at all: compact separators)
        self.json_options = {"whitespace_pattern": json_space} if json_space else \
            {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
        self.tokens = tokens or {}
        self.terms: dict = {}
        self._lits: dict[str, str] = {}        # literal -> its text (the same markers recur in every tool)
        # llguidance's lexer takes the longest lexeme and never gives bytes back: the literal pieces at whose
        # ends a longer literal is cut (see `_cut`)
        self.pieces = cut_at if dialect == "llguidance" else frozenset()
        self._cuts: dict[str, list] = {}

    def empty(self) -> str:
        return ""

    def ref(self, name: str) -> str:
        return name

    def rule(self, name: str, body: str) -> None:
        self.extra.append(f"{name}: {body}")

    def lit(self, text: str) -> str:
        out = self._lits.get(text)
        if out is None:
            out = self._lits[text] = self._lit(text)
        return out

    def _lit(self, text: str) -> str:
        pieces = []
        for p in _split_tokens(text, self.tokens):
            pieces.extend(self._cut(p) if isinstance(p, str) and self.pieces else (p,))
        out = [f"<[{p}]>" if isinstance(p, int) else lark_string(p) for p in pieces]
        if not out:
            return ""
        return out[0] if len(out) == 1 else "(" + " ".join(out) + ")"

    def _cut(self, text: str) -> list:
        """``text`` cut after the longest cut point (`cuts.cut_literals`) it starts with, and so on (each part
        cut the same way): where ``"<|channel|>"`` and ``"<|channel|>commentary to=functions."`` may both come
        next, a lexer that read the second's ``commentary`` could not go back to end the first, so the second
        is written ``"<|channel|>" "commentary" " to=functions."`` (the same strings).  No cut leaves a rest
        that begins another cut point (the new lexeme would meet the same conflict)."""
        out = self._cuts.get(text)
        if out is None:
            pieces = self.pieces
            k = next((k for k in range(len(text) - 1, 0, -1) if text[:k] in pieces and
                      not any(p != text[k:] and p.startswith(text[k:]) for p in pieces)), 0)
            out = self._cuts[text] = self._cut(text[:k]) + self._cut(text[k:]) if k else [text]
        return out

    def regex(self, pattern: str) -> str:
        return _regex_text(pattern)

    def json(self, schema: str, where: str = "tool") -> str:
        data = json.loads(schema)
        if self.dialect == "llguidance":
            data = {"x-guidance": self.json_options, **data}
        return "%json " + json.dumps(data, ensure_ascii=False)

    def text(self, n: Text) -> str:
        key = (n.exclude, n.lo, n.hi, n.pattern)
        name = self.terms.get(key)
        if name is None:
            name = self.terms[key] = f"TG_TEXT{len(self.terms)}"
            lo = max(1, n.lo)
            if self.dialect == "llguidance":
                rng = f"{{{lo},{'' if n.hi is None else n.hi}}}"
                body = f"/(?s:.{rng})/"
                if n.exclude:
                    # a marker holding another is left out (same language, fewer lexer states: a bounded
                    # run times every marker's prefixes can exceed llguidance's expression limit)
                    alts = "|".join(_escape_re(x) for x in n.exclude
                                    if not any(y != x and y in x for y in n.exclude))
                    body += f" & ~/(?s:.*)(?:{alts})(?s:.*)/"
                if n.pattern:
                    body += " & " + _regex_text(n.pattern)
                self.extra.append(f"{name}: {body}")
            else:
                rule = name.lower()
                self.extra.extend(_exclusion_rules(rule, n.exclude, lo, n.hi, lark=True))
                self.terms[key] = name = rule
        if n.lo == 0:
            return f"({name})?"
        return name


    def lazy(self, n: Lazy) -> str:
        if self.dialect != "llguidance":              # a character-level matcher needs no lazy lexeme
            return f"{self.text(n.text)} {self.lit(n.marker)}"
        key = ("lazy", n.text, n.marker)
        name = self.terms.get(key)
        if name is None:
            name = self.terms[key] = f"tg_lazy{len(self.terms)}"
            text = self.text(Text(n.text.exclude, 1, n.text.hi, n.text.pattern)).strip("()?")
            self.extra.append(f"{name}[lazy]: {text}{'?' if n.text.lo == 0 else ''} {lark_string(n.marker)}")
        return name


def to_lark(rules: dict, dialect: str = "llguidance", tokens: dict | None = None, json_space: str = " ?",
            cut_at: frozenset = frozenset(), share: bool = True) -> str:
    """``json_space``: a regex of one whitespace run between JSON tokens ("": none).  ``cut_at``: the literal
    pieces (`literal_pieces`) at which a longer literal is written in parts.  ``share``: a node reached from
    several places written once (False: each in place; the same language)."""
    w = LarkWriter(rules, dialect, tokens, json_space, cut_at, share)
    lines = []
    for name in ["start"] + [r for r in rules if r != "start"]:
        lines.append(f"{name}: {w.body(rules[name])}")
    return "\n".join(lines + w.extra) + "\n"


# -- text without markers, as rules (xgrammar Lark, GBNF) -------------------------------------------

def _automaton(markers: tuple):
    """States of an Aho-Corasick matcher over ``markers``: prefixes, and their transitions on marker chars."""
    prefixes = sorted({m[:i] for m in markers for i in range(len(m))}, key=lambda p: (len(p), p))
    chars = sorted({c for m in markers for c in m})

    def step(p: str, c: str):
        s = p + c
        if any(s.endswith(m) for m in markers):
            return None                            # a marker would be complete: not allowed
        while s and s not in prefixes:
            s = s[1:]
        return s
    return prefixes, chars, step


def _exclusion_rules(name: str, markers: tuple, lo: int, hi, lark: bool) -> list[str]:
    """Rules for text of ``lo``..``hi`` characters containing none of ``markers`` (``name`` is the start)."""
    cls_other = "[^" + "".join(char_class(ord(c)) for c in sorted({c for m in markers for c in m})) + "]" \
        if markers else "[\\x00-\\U0010ffff]"
    if hi is not None or not markers:
        # bounded (or nothing to exclude): characters that cannot start a marker, within the bounds
        first = sorted({m[0] for m in markers})
        cls = "[^" + "".join(char_class(ord(c)) for c in first) + "]" if first else "[\\x00-\\U0010ffff]"
        if lark:
            rng = f"{{{lo},{'' if hi is None else hi}}}"
            return [f"{name}: /{cls}{rng}/".replace("/[", "/[", 1)]
        rng = f"{{{lo},{'' if hi is None else hi}}}"
        return [f"{name} ::= {cls}{rng}"]
    prefixes, chars, step = _automaton(markers)
    index = {p: i for i, p in enumerate(prefixes)}
    out = []
    for p in prefixes:
        i = index[p]
        alts = []
        for c in chars:
            nxt = step(p, c)
            if nxt is None:
                continue
            target = f"{name}_s{index[nxt]}"
            alts.append((lark_string(c) if lark else _gbnf_string(c)) + " " + target)
        other = f"/{cls_other}/" if lark else cls_other
        alts.append(f"{other} {name}_s0")
        if lark:
            out.append(f"{name}_s{i}: " + " | ".join(alts) + " | ")
        else:
            out.append(f"{name}_s{i} ::= " + " | ".join(alts) + " | \"\"")
    head = f"{name}_s0"
    if lark:
        out.append(f"{name}: {head}" if lo <= 0 else f"{name}: /{cls_other}/ {head} | " + " | ".join(
            f"{lark_string(c)} {name}_s{index[step('', c)]}" for c in chars if step('', c) is not None))
    else:
        out.append(f"{name} ::= {head}")
    return out


# -- GBNF -----------------------------------------------------------------------------------------

def _gbnf_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 32 or code == 127:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _gbnf_regex(items) -> str:
    parts = []
    for op, arg in items:
        if op is C.LITERAL:
            parts.append(_gbnf_string(chr(arg)))
        elif op is C.NOT_LITERAL:
            parts.append("[^" + char_class(arg) + "]")
        elif op is C.ANY:
            parts.append("[^\\n]")
        elif op is C.IN:
            parts.append(class_of(arg))
        elif op is C.CATEGORY:
            parts.append(class_of([(op, arg)]))
        elif op is C.BRANCH:
            parts.append("(" + " | ".join(_gbnf_regex(b) or '""' for b in arg[1]) + ")")
        elif op is C.SUBPATTERN:
            parts.append("(" + (_gbnf_regex(arg[3]) or '""') + ")")
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = arg
            inner = "(" + _gbnf_regex(body) + ")"
            if hi is C.MAXREPEAT:
                parts.append(f"{inner}{{{lo},}}" if lo > 1 else (f"{inner}+" if lo == 1 else f"{inner}*"))
            elif (lo, hi) == (0, 1):
                parts.append(f"{inner}?")
            else:
                parts.append(f"{inner}{{{lo},{hi}}}")
        elif op is C.AT:
            continue
        else:
            raise Unsupported(f"regex construct {op}")
    return " ".join(parts)


class GbnfWriter(_Writer):
    def lazy(self, n: Lazy) -> str:
        return f"({self.text(n.text)})? {self.lit(n.marker)}"

    def __init__(self, rules: dict, share: bool = True):
        super().__init__(rules, share)
        self.rules = dict(rules)
        self.json_done: dict = {}
        self.text_done: dict = {}

    def empty(self) -> str:
        return '""'

    def ref(self, name: str) -> str:
        return name.replace("_", "-")

    def rule(self, name: str, body: str) -> None:
        self.extra.append(f"{self.ref(name)} ::= {body}")

    def lit(self, text: str) -> str:
        return _gbnf_string(text) if text else '""'

    def regex(self, pattern: str) -> str:
        try:
            return "(" + _gbnf_regex(regex_items(pattern)) + ")"
        except Unsupported as e:
            raise ConstraintError(f"a pattern cannot be written in GBNF ({e})") from None

    def json(self, schema: str, where: str = "tool") -> str:
        name = self.json_done.get(schema)
        if name is None:
            name = self.json_done[schema] = f"tg_json{len(self.json_done)}"
            local: dict = {}
            node = json_rules(schema, name, local, where)
            self.pending.append((name, node))
            for k, v in local.items():
                self.pending.append((k, v))
        return self.ref(name)

    def text(self, n: Text) -> str:
        if n.pattern:
            raise ConstraintError("a string 'pattern' cannot be enforced in GBNF")
        key = (n.exclude, n.lo, n.hi)
        name = self.text_done.get(key)
        if name is None:
            name = self.text_done[key] = f"tg-text{len(self.text_done)}"
            self.extra.extend(_exclusion_rules(name, n.exclude, n.lo, n.hi, lark=False))
        return name

    def rep(self, n: Rep) -> str:
        inner = self.node(n.item)
        lo, hi = n.lo, n.hi
        if (lo, hi) == (0, 1):
            return f"({inner})?"
        if hi is None:
            return f"({inner})*" if lo == 0 else (f"({inner})+" if lo == 1 else f"({inner}){{{lo},}}")
        return f"({inner}){{{lo},{hi}}}"


def to_gbnf(rules: dict, share: bool = True) -> str:
    w = GbnfWriter(rules, share)
    w.pending = [(name, rules[name]) for name in ["start"] + [r for r in rules if r != "start"]]
    lines = []
    done = set()
    while w.pending:
        name, node = w.pending.pop(0)
        if name in done:
            continue
        done.add(name)
        gname = "root" if name == "start" else w.ref(name)
        lines.append(f"{gname} ::= {w.body(node)}")
    return "\n".join(lines + w.extra) + "\n"


# -- structural tags --------------------------------------------------------------------------------

def to_structural_tag(rules: dict) -> str:
    """An xgrammar structural tag whose format is the constraint written as xgrammar EBNF."""
    return json.dumps({"type": "structural_tag", "format": {"type": "grammar", "grammar": to_gbnf(rules)}},
                      ensure_ascii=False)

"""Rewriting passes over a request's constraint rules, for what llguidance's lexer needs.

* `finish`: keep the rules reachable from "start", and rewrite loops like ``(TEXT | call)*`` so that two free-
  text lexemes never meet (a marker excluded from each could otherwise be spelled across their boundary);
* `lazy_heads`: free text followed by a marker spelled with ordinary tokens becomes one lazily matched lexeme
  up to that marker (a greedy text lexeme cannot give back the characters that start the marker).

Nodes are immutable: a pass returns the same node when nothing under it changed, and rewrites a node shared by
several rules once (memo by id, holding the node so that its id is not reused while the memo lives).
"""
from __future__ import annotations

import re
from operator import is_

from toolgram.cache import LRU
from toolgram.compiler.regexlang import regex_char
from toolgram.ir import EMPTY, Alt, Json, Lazy, Lit, Node, Ref, Regex, Rep, Seq, Text, Tok, alt, opt, seq

_COMPOUND = frozenset({Seq, Alt, Rep})
_TAILED = frozenset({Seq, Alt, Rep, Ref, Text})     # the nodes free text may end
_WALKED = _COMPOUND | {Ref}


def _is_text(node: Node) -> bool:
    return isinstance(node, Text) or (isinstance(node, Rep) and node.hi == 1 and isinstance(node.item, Text))


def _text_loop(node: Node) -> bool:
    """Whether ``node`` is a loop of free text and other items (``(TEXT | <tok>)+``: content holding added
    tokens), which a loop it stands in may take apart: ``(A+ | B)*`` is ``(A | B)*``."""
    return type(node) is Rep and node.hi is None and node.lo <= 1 and type(node.item) is Alt and \
        any(_is_text(o) for o in node.item.options)


def _loop_items(options) -> list:
    """A loop's options with the text loops among them taken apart (`_text_loop`)."""
    out = []
    for o in options:
        out.extend(o.item.options if _text_loop(o) else (o,))
    return out


def _inline_text_refs(options, memo: dict, refs: set, rules: dict) -> list:
    """A loop's options with references to rules that are free text, or alternatives of which one is free
    text (or a text loop), replaced by those alternatives: text reached through a reference meets text too."""
    out = []
    for o in options:
        body = rules.get(o.name) if isinstance(o, Ref) else None
        inner = (body.options if isinstance(body, Alt) else (body,)) if body is not None else ()
        if body is not None and any(_is_text(b) or _text_loop(b) for b in inner):
            out.extend(_no_adjacent_text(b, memo, refs, rules) for b in _loop_items(inner))
        else:
            out.append(o)
    return out


def _no_adjacent_text(node: Node, memo: dict, refs: set, rules: dict | None = None) -> Node:
    """Rewrite loops like ``(TEXT | call)*`` so that two text lexemes never meet: a marker excluded from
    each could otherwise be spelled across the boundary of two of them.  Adds the rules ``node`` refers to
    to ``refs``.

    ``memo`` (id -> (node, result)) rewrites a node shared by several rules once (a tool's argument list is
    shared by its call forms); it holds the node, so that its id is not reused while the memo lives."""
    t = type(node)                        # (node classes have no subclasses: exact type tests)
    if t is Ref:
        refs.add(node.name)
        return node
    if t not in _COMPOUND:
        return node
    hit = memo.get(id(node))
    if hit is not None:
        return hit[1]
    if t is Seq:
        items = [_no_adjacent_text(x, memo, refs, rules) if type(x) in _WALKED else x for x in node.items]
        out = node if _same(items, node.items) else seq(*items)
    elif t is Alt:
        options = [_no_adjacent_text(x, memo, refs, rules) if type(x) in _WALKED else x for x in node.options]
        out = node if _same(options, node.options) else alt(*options)
    else:
        raw = node.item.options if type(node.item) is Alt else (node.item,)
        if node.hi is None and any(map(_text_loop, raw)):
            item = alt(*[_no_adjacent_text(x, memo, refs, rules) if type(x) in _WALKED else x
                         for x in _loop_items(raw)])
        else:
            item = _no_adjacent_text(node.item, memo, refs, rules)
        options = item.options if type(item) is Alt else (item,)
        if node.hi is None and rules:
            options = _inline_text_refs(options, memo, refs, rules)
        texts = [o for o in options if _is_text(o)]
        if texts and node.hi is None:
            text = texts[0].item if isinstance(texts[0], Rep) else texts[0]
            others = [o for o in options if not _is_text(o)]
            out = opt(text) if not others else seq(Rep(seq(opt(text), alt(*others)), node.lo, None), opt(text))
            if others and node.lo == 1:           # (text alone is one item too)
                out = alt(out, text)
        else:
            out = node if item is node.item else Rep(item, node.lo, node.hi)
    memo[id(node)] = (node, out)
    return out


def _same(new: list, old) -> bool:
    """Whether a rewrite changed none of these nodes (then the node itself is kept: nodes are immutable)."""
    return all(map(is_, new, old))


def _alt(*options) -> Node:
    """`alt`, with duplicates found by identity (hashing deep nodes by value costs more than it saves)."""
    flat, seen = [], set()
    for o in options:
        if o is None:
            continue
        for x in (o.options if isinstance(o, Alt) else (o,)):
            if id(x) not in seen:
                seen.add(id(x))
                flat.append(x)
    return flat[0] if len(flat) == 1 else Alt(tuple(flat))


def _optional_text(node: Node):
    """The Text of ``text``, ``text?``, ``(text?)?``... (None: ``node`` is not free text)."""
    wrapped = False
    while isinstance(node, Rep) and (node.lo, node.hi) == (0, 1):
        node, wrapped = node.item, True
    if not isinstance(node, Text):
        return None
    return Text(node.exclude, 0, node.hi, node.pattern) if wrapped else node


_ANY_STOP = frozenset({""})


def _spelled(node: Node, tokens: dict):
    """``node`` as a regex (Python syntax) when it holds only literals spelled with ordinary tokens and
    regexes (None otherwise)."""
    t = type(node)
    if t is Lit:
        if not node.text or node.text in tokens or any(k in node.text for k in tokens):
            return None
        return "".join(regex_char(ord(c)) for c in node.text)
    if t is Regex:
        return _group(node.pattern)
    if t is Seq:
        parts = [_spelled(x, tokens) for x in node.items]
        return None if None in parts else "".join(parts)
    if t is Alt:
        parts = [_spelled(x, tokens) for x in node.options if type(x) is not Seq or x.items]
        if None in parts or not parts:
            return None
        return f"(?:{'|'.join(parts)})" + ("?" if len(parts) < len(node.options) else "")
    if t is Rep:
        inner = _spelled(node.item, tokens)
        if inner is None:
            return None
        if (node.lo, node.hi) == (0, 1):
            return _group(inner) + "?"
        return _group(inner) + f"{{{node.lo},{'' if node.hi is None else node.hi}}}"
    return None


def _group(pattern: str) -> str:
    """``pattern`` as one atom (a character or a class as it is, anything else in a group)."""
    return pattern if re.fullmatch(r"\\?.|\[(?:[^\]\\]|\\.)*\]", pattern) else f"(?:{pattern})"


def _nonempty(node: Node, tokens: dict):
    """A regex of the non-empty strings of a spelled ``node`` (None: not one this can write)."""
    t = type(node)
    if t is Lit or t is Regex:
        pattern = _spelled(node, tokens)
        return None if pattern is None or re.fullmatch(pattern, "") else pattern
    if t is Rep and node.lo == 0 and node.hi == 1:
        return _nonempty(node.item, tokens)
    if t is Seq:
        options = []
        for k, x in enumerate(node.items):
            head = _nonempty(x, tokens)
            rest = _spelled(seq(*node.items[k + 1:]), tokens) if k + 1 < len(node.items) else ""
            if head is None or rest is None:
                return None
            options.append(head + rest)
            if not re.fullmatch(_spelled(x, tokens), ""):
                break
        return f"(?:{'|'.join(options)})"
    pattern = _spelled(node, tokens)
    return None if pattern is None or re.fullmatch(pattern, "") else pattern


class _LazyHeads:
    """Free text that a marker spelled by ordinary tokens may follow becomes one lazily matched lexeme up to
    that marker: an llguidance text lexeme is greedy and cannot give back the characters that start the
    marker once it has taken them.

    ``text K`` (K: whatever follows, through optional items, closers that may be left out, and the rule that
    refers to this one) becomes ``K | Lazy(text, m) K/m | ...`` for every spelled marker ``m`` that K may
    start with and the text excludes (``K/m``: K after ``m``), keeping ``text K`` where K may start with
    something else.  Where the text ends a referenced rule, what follows the reference is pushed into a copy
    of that rule (``R K`` -> ``R__then{n}``), so that the text and its closer meet in one sequence."""

    def __init__(self, rules: dict, tokens: dict, suffix: str = "after", part: str = "", outside=None):
        self.rules = rules
        self.tokens = tokens
        # derived rules are named ``<rule>__<part><suffix><n>``, ``<rule>__<part>then<n>``, ``tg__<part>loop<n>``
        # (``part`` keeps apart the names of two passes whose rules are written together)
        self.suffix = part + suffix
        self.part = part
        # rules this pass does not hold, known by what ``outside`` (`_Outside`) answers of them
        self.outside = outside
        self.events: list = []                   # what was asked of ``outside`` and its answers, in order
        self.tested: set = set()                 # the markers first literals were told apart by (`_seen_as`)
        self.derived: dict = {}
        self.done: dict = {}
        self.ended: dict = {}
        self.seqs: dict = {}
        self.depth = 0
        self._tails: dict = {}
        self._first: dict = {}
        self._nullable: dict = {}
        self._heads: dict = {}
        self._derivs: dict = {}                  # (id of a compound node, literal) -> (node, its derivative)
        self._endings: dict = {}                 # (id of a compound node, marker) -> (node, its ending)
        self._plain: dict = {}                   # id of a compound node -> (node, `plain`)
        self._stops: dict = {}                   # (excluded markers, id of a node) -> (node, `stops`, found)
        self._answers: dict = {}                 # rule outside -> (nullable, first, tails)
        self._cuts = 0                           # references cut by `tails` walks so far
        self._making = 0                         # rules `ending` is making (their bodies not yet in)
        self.loops: dict = {}                    # id of a loop -> (it, its right-recursive rule or None)
        self.found: set = set()                  # the spelled markers text has been found to stop at
        self.resplit: list = []                  # rules `split` changed since `lazy_heads` last rewrote them

    # -- analysis --------------------------------------------------------------------------------------
    def answer(self, name: str) -> tuple:
        """(nullable, first, tails) of the rule ``name`` outside."""
        hit = self._answers.get(name)
        if hit is None:
            hit = self._answers[name] = self.outside.ask(name)
            self.events.append(("ask", name, hit))
        return hit

    def make_outside(self, what: str, name: str, lit: str) -> str | None:
        """The derivative (``what`` "derive") or ending (``what`` "ending") of the rule ``name`` outside by
        ``lit``, made there under a name given here (None: there is none)."""
        made = f"{name}__{self.suffix}{len(self.derived)}" if what == "derive" else \
            f"{name}__{self.part}then{len(self.ended)}"
        ok = self.outside.lt.make_rule(what, name, lit, made)
        self.events.append((what, name, lit, made, ok))
        if not ok:
            return None
        self.outside.names.add(made)
        return made

    def make_rule(self, what: str, name: str, lit: str, made: str) -> bool:
        """Rule ``made``: rule ``name``'s derivative by ``lit`` (``what`` "derive") or its strings ending in text
        up to the marker ``lit`` ("ending"), recorded under (name, lit); False, and no rule, where it has none.
        While it is made, a reference back to it sees it (empty)."""
        memo = self.derived if what == "derive" else self.ended
        memo[(name, lit)] = made
        self.rules[made] = EMPTY
        if what == "derive":
            body = self.derive(self.rules[name], lit)
        else:
            self._making += 1
            body = self.ending(self.rules[name], lit)
            self._making -= 1
        if body is None:
            del self.rules[made]
            memo[(name, lit)] = None
            return False
        self.rules[made] = body
        return True

    # (node classes have no subclasses: the walks test exact types, cheaper than isinstance chains)
    def nullable(self, node: Node) -> bool:
        t = type(node)
        if t is Lit:
            return not node.text
        if t is Text:
            return node.lo == 0
        if t is Rep:
            return node.lo == 0 or self.nullable(node.item)
        if t is Seq:
            for x in node.items:
                if not self.nullable(x):
                    return False
            return True
        if t is Alt:
            for x in node.options:
                if self.nullable(x):
                    return True
            return False
        if t is Ref:
            hit = self._nullable.get(node.name)
            if hit is None:
                if self.outside and node.name in self.outside.names:
                    return self.answer(node.name)[0]
                self._nullable[node.name] = False
                hit = self._nullable[node.name] = node.name in self.rules and self.nullable(self.rules[node.name])
            return hit
        return False

    def first(self, node: Node, seen=frozenset()) -> tuple:
        """(literals a string of ``node`` may start with, whether something else may start it)."""
        t = type(node)
        if t is Lit:
            return ({node.text} if node.text else set()), False
        if t is Ref:
            hit = self._first.get(node.name)
            if hit is None:
                if self.outside and node.name in self.outside.names:
                    return self.answer(node.name)[1]
                if node.name in seen or node.name not in self.rules:
                    return set(), True
                hit = self.first(self.rules[node.name], seen | {node.name})
                if not seen:
                    self._first[node.name] = hit
            return hit
        if t is Alt:
            out, other = set(), False
            for o in node.options:
                f, x = self.first(o, seen)
                out |= f
                other |= x
            return out, other
        if t is Seq:
            out, other = set(), False
            for x in node.items:
                f, o = self.first(x, seen)
                out |= f
                other |= o
                if not self.nullable(x):
                    break
            return out, other
        if t is Rep:
            return self.first(node.item, seen) if node.hi != 0 else (set(), False)
        return set(), True

    def tails(self, node: Node, seen=frozenset()) -> frozenset:
        """The markers excluded by the free text that may end ``node`` (empty: no text ends it).

        ``seen``: the rules being walked (a reference back to one adds nothing: the walk cuts it).  An answer
        is kept at the top, and inside a walk where nothing under the node was cut (then it is the same
        answer) while no rule is being made (`ending` fills a rule in after walking it)."""
        t = type(node)
        if t is Text:
            return frozenset(node.exclude) or _ANY_STOP
        if t is Ref:
            name = node.name
            hit = self._tails.get(name)
            if hit is None:
                if self.outside and name in self.outside.names:
                    return self.answer(name)[2]
                if name in seen or name not in self.rules:
                    self._cuts += 1
                    return frozenset()
                cuts = self._cuts
                hit = self.tails(self.rules[name], seen | {name})
                if not seen or (cuts == self._cuts and not self._making):
                    self._tails[name] = hit
            return hit
        if t is Rep:
            text = _optional_text(node)
            if text is not None:
                return frozenset(text.exclude) or _ANY_STOP
        elif t is not Alt and t is not Seq:
            return frozenset()
        hit = self._tails.get(id(node))
        if hit is not None:
            return hit[1]
        cuts = self._cuts
        if t is Alt:
            out = frozenset().union(*[self.tails(o, seen) for o in node.options if type(o) in _TAILED])
        elif t is Seq:
            out = frozenset()
            for x in reversed(node.items):
                tx = type(x)
                if tx not in _TAILED:            # (a leaf: no text ends it; only an empty literal is nullable)
                    if tx is Lit and not x.text:
                        continue
                    break
                out |= self.tails(x, seen)
                if not self.nullable(x):
                    break
        else:
            out = self.tails(node.item, seen) if node.hi != 0 else frozenset()
        if not seen or (cuts == self._cuts and not self._making):
            self._tails[id(node)] = (node, out)
        return out

    def stops(self, excluded, nxt: Node) -> tuple:
        """(the excluded markers, spelled with ordinary tokens, that ``nxt`` may start with; whether it may
        start otherwise)."""
        key = (excluded, id(nxt))
        hit = self._stops.get(key)
        if hit is not None:
            self.found |= hit[2]
            return hit[1]
        firsts, other = self.first(nxt)
        if self.outside is not None:
            self.tested.update(excluded)
        found = set()
        for f in firsts:
            stop = max((e for e in excluded if e and f.startswith(e)), key=len, default=None)
            if stop is None or stop in self.tokens or any(f.startswith(t) for t in self.tokens):
                other = True
            else:
                found.add(stop)
        self.found |= found
        out = sorted(found), other or self.nullable(nxt)
        self._stops[key] = (nxt, out, found)     # (holding the node keeps its id from being reused)
        return out

    # -- derivative ------------------------------------------------------------------------------------
    def split(self, name: str, lit: str) -> bool:
        """Where rule ``name`` is ``lit`` followed by more items: make it ``lit tail`` with the rest in a rule
        of its own, which is then the rule's derivative by ``lit`` (the same strings).  The rule, its
        derivative and their endings then share the tail instead of each copying it (each tool's call after
        the marker that every call begins with).  False: the rule is not of that shape."""
        body = self.rules.get(name)
        if type(body) is not Seq or len(body.items) < 3 or body.items[0] != Lit(lit) or (name, lit) in self.derived:
            return False
        tail = f"{name}__{self.suffix}{len(self.derived)}"
        self.derived[(name, lit)] = tail
        self.rules[tail] = Seq(body.items[1:])
        self.rules[name] = Seq((body.items[0], Ref(tail)))
        self.resplit.append(name)
        return True

    def derive(self, node: Node, lit: str):
        """``node`` after the literal ``lit`` (None: ``node`` cannot start with it)."""
        t = type(node)
        if t is Lit:
            if node.text == lit:
                return EMPTY
            if node.text.startswith(lit):
                return Lit(node.text[len(lit):])
            return None
        if t is Ref:
            key = (node.name, lit)
            if key not in self.derived and self.outside and node.name in self.outside.names:
                firsts = self.answer(node.name)[1][0]
                made = None
                self.tested.add(lit)
                if any(f.startswith(lit) for f in firsts):     # (else `derive` finds none there)
                    made = self.make_outside("derive", node.name, lit)
                self.derived[key] = made
            if key not in self.derived and self.split(node.name, lit):
                return Ref(self.derived[key])
            if key not in self.derived:
                self.make_rule("derive", node.name, lit, f"{node.name}__{self.suffix}{len(self.derived)}")
            name = self.derived[key]
            return Ref(name) if name else None
        if t is not Alt and t is not Seq and (t is not Rep or node.hi == 0):
            return None
        key = (id(node), lit)                    # a node shared by several rules (a tool's arguments in each
        hit = self._derivs.get(key)              # call form) has one derivative: rewritten once too
        if hit is not None:
            return hit[1]
        if t is Alt:
            options = [d for d in (self.derive(o, lit) for o in node.options) if d is not None]
            out = _alt(*options) if options else None
        elif t is Seq:
            options = []
            items = node.items
            for i, x in enumerate(items):
                head = self.derive(x, lit)
                if head is not None:
                    options.append(seq(head, *items[i + 1:]))
                if not self.nullable(x):
                    break
            out = _alt(*options) if options else None
        else:
            head = self.derive(node.item, lit)
            if head is None:
                out = None
            elif node.lo == 0 and node.hi is None:
                out = seq(head, node)            # (the same loop: a continuation keeps its identity)
            else:
                out = seq(head, Rep(node.item, max(0, node.lo - 1), None if node.hi is None else node.hi - 1))
        self._derivs[key] = (node, out)          # (holding the node keeps its id from being reused)
        return out

    # -- rewriting -------------------------------------------------------------------------------------
    def plain(self, node: Node) -> bool:
        """Whether the rewrite leaves ``node`` (a compound) as it is: it holds no free text, refers to no rule
        that text may end, and (with marker tokens) has no spelled closers to merge (most of a call's
        arguments: its rule is left as it is)."""
        hit = self._plain.get(id(node))
        if hit is None:
            t = type(node)
            kids = node.items if t is Seq else node.options if t is Alt else (node.item,)
            ok = True
            for x in kids:
                tx = type(x)
                if tx is Text or tx is Ref and self.tails(x) or tx in _COMPOUND and not self.plain(x):
                    ok = False
                    break
            if ok and t is Seq and self.tokens:
                ok = self.spelled_closers(node.items) is node.items
            hit = self._plain[id(node)] = (node, ok)      # (holding the node keeps its id from being reused)
        return hit[1]

    def rewrite(self, node: Node) -> Node:
        t = type(node)
        if t is not Seq and t is not Alt and t is not Rep:
            return node
        done = self.done
        hit = done.get(id(node))                 # a node shared by several rules is rewritten once
        if hit is not None:
            return hit[1]
        done[id(node)] = (node, node)            # (a cycle through pushed rules sees the node as it is)
        if t is Seq:
            # a sequence rebuilt from the same items (a derivative's tail, a continuation) is rewritten once
            key = tuple(map(id, node.items))
            hit = self.seqs.get(key)
            if hit is not None:
                new = hit[1]
            else:
                new = self.sequence(node.items)
                if type(new) is Seq and len(new.items) == len(node.items) and _same(new.items, node.items):
                    new = node
                self.seqs[key] = (node, new)
        elif t is Alt:
            rewrite = self.rewrite
            options = [rewrite(x) if type(x) in _COMPOUND else x for x in node.options]
            new = node if _same(options, node.options) else _alt(*options)
        else:
            new = self.loop(node)
            if new is None:
                item = node.item
                if type(item) in _COMPOUND:
                    item = self.rewrite(item)
                new = node if item is node.item else Rep(item, node.lo, node.hi)
        done[id(node)] = (node, new)             # (holding the node keeps its id from being reused)
        return new

    def loop(self, node: Rep):
        """``X*`` where text may end X and X may start with a spelled marker that text excludes (a value left
        open, ended by the next key's marker): the rule ``L: X L | ε``, so that each iteration is followed by
        the next in one sequence and its text ends lazily at the next one's marker (None: not such a loop)."""
        if node.hi is not None:
            return None
        hit = self.loops.get(id(node))
        if hit is not None:
            return hit[1]
        excluded = self.tails(node.item)
        name = None
        if excluded and self.stops(excluded, node.item)[0]:
            name = f"tg__{self.part}loop{len(self.loops)}"
            self.rules[name] = alt(seq(node.item, Ref(name)), EMPTY)
        out = None if name is None else seq(*[node.item] * node.lo, Ref(name))
        self.loops[id(node)] = (node, out)       # (holding the node keeps its id from being reused)
        return out

    def _head(self, x: Node) -> tuple:
        """(``x`` as optional free text or None, the markers excluded by text that may end it), kept per node:
        both are fixed once asked (`tails` keeps its answers)."""
        hit = self._heads.get(id(x))
        if hit is None:
            text = _optional_text(x)
            hit = self._heads[id(x)] = (x, text, frozenset() if text is not None else self.tails(x))
        return hit

    def sequence(self, items: tuple) -> Node:
        if self.tokens:
            items = self.spelled_closers(items)
        out = []
        last = len(items) - 1
        for i, x in enumerate(items):
            t = type(x)
            if t is Lit or t is Regex or t is Json:
                out.append(x)                     # (a leaf rewrites to itself)
                continue
            if i < last:
                _, text, excluded = self._head(x)
                if text is not None:
                    lazy = self.lazy(text, seq(*items[i + 1:]))
                    if lazy is not None:
                        return seq(*out, lazy)
                elif excluded:
                    rest = seq(*items[i + 1:])
                    stops, _ = self.stops(excluded, rest)
                    if stops:
                        return seq(*out, self.closing(x, rest, stops))
            out.append(self.rewrite(x) if t in _COMPOUND else x)
        return seq(*out) if out else EMPTY

    def spelled_closers(self, items: tuple) -> tuple:
        """Optional spelled items before an optional closer that is a token, at the end of a sequence (a
        fence, whitespace, then the call-end token), as one regex lexeme: text that may follow the sequence
        could otherwise take them greedily (it may hold them) and then could not be followed by the token
        (it cannot hold one); as one lexeme they end where the text does, and the parser keeps both readings."""
        end = len(items)
        while end and self.nullable(items[end - 1]):
            end -= 1
        for j in range(end + 1, len(items)):
            i = j
            while i > end and _spelled(items[i - 1], self.tokens) is not None:
                i -= 1
            run = items[i:j]
            if not run or (len(run) == 1 and type(run[0]) is Rep and type(run[0].item) not in _COMPOUND):
                continue                         # (none, or a single lexeme already)
            if self._starts_with_token(items[j]):
                pattern = _nonempty(seq(*run), self.tokens)
                if pattern is not None:
                    return (*items[:i], opt(Regex(pattern)), *items[j:])
        return items

    def _starts_with_token(self, node: Node) -> bool:
        firsts, _ = self.first(node)
        return any(f in self.tokens or any(f.startswith(t) for t in self.tokens) for f in firsts)

    def closing(self, x: Node, rest: Node, stops) -> Node:
        """``x rest`` where text may end ``x`` and ``rest`` may start with a spelled marker that text excludes:
        ``x rest`` (the other endings) | ``x/m rest/m`` per marker m (``x/m``: x's strings that end in text,
        that text matched lazily up to and including m)."""
        rest_rw = self.rewrite(rest)
        options = [seq(self.rewrite(x), rest_rw)]
        if self.depth > 0:                        # (a bound: endings within endings grow exponentially)
            return options[0]
        self.depth += 1
        for m in stops:
            head = self.ending(x, m)
            after = self.derive(rest, m)
            if head is not None and after is not None:
                options.append(seq(self.rewrite(head), self.rewrite(after)))
        self.depth -= 1
        return _alt(*options)

    def ending(self, node: Node, m: str):
        """``node``'s strings that end in free text, that text matched lazily up to and including ``m``."""
        text = _optional_text(node)
        if text is not None:
            return Lazy(text, m)
        if isinstance(node, Ref):
            key = (node.name, m)
            if key not in self.ended:
                if self.outside and node.name in self.outside.names:
                    made = self.make_outside("ending", node.name, m) if self.answer(node.name)[2] else None
                    self.ended[key] = made
                    return Ref(made) if made else None
                if node.name not in self.rules:
                    return None
                body = self.rules[node.name]
                if type(body) is Seq and len(body.items) > 2 and type(body.items[0]) is Lit and \
                        body.items[0].text in self.found:
                    self.split(node.name, body.items[0].text)    # (its derivative will share the ending)
                self.make_rule("ending", node.name, m, f"{node.name}__{self.part}then{len(self.ended)}")
            name = self.ended[key]
            return Ref(name) if name else None
        t = type(node)
        if t is not Alt and t is not Seq and t is not Rep:
            return None
        key = (id(node), m)
        hit = self._endings.get(key)
        if hit is None:
            hit = self._endings[key] = (node, self._ending(node, m))   # (holding it keeps its id unused)
        return hit[1]

    def _ending(self, node: Node, m: str):
        if isinstance(node, Alt):
            options = [e for e in (self.ending(o, m) for o in node.options if self.tails(o)) if e is not None]
            return _alt(*options) if options else None
        if isinstance(node, Seq):
            options = []
            for i in range(len(node.items) - 1, -1, -1):
                x = node.items[i]
                if self.tails(x):
                    e = self.ending(x, m)
                    if e is not None:
                        options.append(seq(*node.items[:i], e))
                if not self.nullable(x):
                    break
            return _alt(*options) if options else None
        if isinstance(node, Rep) and node.hi != 0:
            loop = self.loop(node)
            if loop is not None:                 # (its last iteration may follow one ended at its marker)
                return self.ending(loop, m)
            e = self.ending(node.item, m)
            if e is None:
                return None
            if node.hi == 1:
                return e
            return seq(Rep(node.item, max(0, node.lo - 1), None if node.hi is None else node.hi - 1), e)
        return None

    def lazy(self, text: Text, nxt: Node):
        textual, other = self.stops(text.exclude, nxt)
        if not textual:
            return None
        nxt_rw = self.rewrite(nxt)
        options = [nxt_rw] if text.lo == 0 else []
        if other:                                # markers that are tokens, or other text, may still follow
            options.append(seq(text, nxt_rw))
        for f in textual:
            rest = self.derive(nxt, f)
            if rest is not None:
                options.append(seq(Lazy(text, f), self.rewrite(rest)))
        return _alt(*options)


_SKELETONS = LRU("constraint_skeletons", 256)  # (tokens, skeleton rules) -> (rewrite, what it asked, marks)


def lazy_heads(rules: dict, tokens: dict, tool_rules: frozenset = frozenset()) -> dict:
    """Apply `_LazyHeads` to every rule (for Lark output).

    ``tool_rules``: the rules made for the request's tools.  The others (the skeleton: the start rule's
    variants, the same for every request of a grammar and settings) are rewritten by a pass that sees the
    tool rules from outside (`_Outside`), kept per skeleton with what it asked and was answered: a request
    whose tool rules answer the same reuses it, and makes the tool rules' derivatives and endings it named.
    The text is the same whether the skeleton's rewrite was kept or made."""
    skeleton = [n for n in rules if n not in tool_rules]
    if len(skeleton) == len(rules):
        return _rewrite_all(_LazyHeads(dict(rules), tokens))
    key = (tuple(sorted(tokens.items())), tuple([(n, rules[n]) for n in skeleton]))
    kept = _SKELETONS.get(key)
    outside = _Outside(_LazyHeads(dict(rules), tokens, part="t"), rules, skeleton)
    if kept is None or not outside.replay(kept[1], kept[2]):
        if kept is not None:                     # (the replay made rules in that pass: start afresh)
            outside = _Outside(_LazyHeads(dict(rules), tokens, part="t"), rules, skeleton)
        ls = _LazyHeads({n: rules[n] for n in skeleton}, tokens, outside=outside)
        kept = (_rewrite_all(ls), tuple(ls.events), frozenset(ls.tested | set(tokens)))
        _SKELETONS.put(key, kept)
    tools = _rewrite_all(outside.lt, skip=outside.skeleton)
    if tools is None:                            # (a tool rule's rewrite split a skeleton rule: not met so far)
        return _rewrite_all(_LazyHeads(dict(rules), tokens))
    return {**kept[0], **tools}


class _Outside:
    """The tool rules as the skeleton's pass sees them: what it asks (nullable, first, tails) answered by
    the pass ``lt`` over all the rules, the derivatives and endings it names made there (`make_rule`)."""

    def __init__(self, lt: _LazyHeads, rules: dict, skeleton: list):
        self.lt = lt
        self.skeleton = frozenset(skeleton)
        self.names = set(rules) - self.skeleton  # (and the rules made here)

    def ask(self, name: str) -> tuple:
        lt, ref = self.lt, Ref(name)
        first = lt.first(ref)
        return lt.nullable(ref), (frozenset(first[0]), first[1]), lt.tails(ref)

    def replay(self, events, marks: frozenset) -> bool:
        """Whether the tool rules answer ``events`` (a kept pass's) as they did, their first literals told
        apart as that pass told them apart (by ``marks``, `_seen_as`); the rules made on the way."""
        for ev in events:
            if ev[0] == "ask":
                now, then = self.ask(ev[1]), ev[2]
                if now[0] != then[0] or now[2] != then[2] or now[1][1] != then[1][1] or \
                        _seen_as(now[1][0], marks) != _seen_as(then[1][0], marks):
                    return False
            elif self.lt.make_rule(*ev[:4]) != ev[4]:
                return False
        return True


def _seen_as(firsts, marks: frozenset) -> frozenset:
    """First literals as a pass sees them that only asks whether they begin with one of ``marks`` (the markers
    text excludes, the tokens, the literals it derives by): each by the longest of those it begins with ("":
    none).  A literal begins with a mark exactly when that mark begins its longest one (both begin it), so two
    sets seen alike give every such question the same answers: tool names after a marker differ, the rewrite
    does not."""
    return frozenset(max((m for m in marks if f.startswith(m)), key=len, default="") for f in firsts)


def _rewrite_all(lh: _LazyHeads, skip: frozenset = frozenset()) -> dict | None:
    """``lh``'s rules rewritten, but for ``skip`` (None: the pass split one of those)."""
    out: dict = dict.fromkeys(skip)
    while len(out) < len(lh.rules) or lh.resplit:    # (rules the pass adds or splits are rewritten too)
        names = [n for n in lh.rules if n not in out] + lh.resplit
        if skip and not skip.isdisjoint(lh.resplit):
            return None
        lh.resplit = []
        for name in names:
            body = lh.rules[name]
            out[name] = body if type(body) in _COMPOUND and lh.plain(body) else lh.rewrite(body)
    return {name: out[name] for name in lh.rules if name not in skip}


def finish(rules: dict) -> dict:
    """The rules reachable from "start" (start first, the others in their order), loops rewritten by
    `_no_adjacent_text` (one walk does both)."""
    done: dict = {}
    memo: dict = {}
    todo = ["start"]
    while todo:
        name = todo.pop()
        if name in done or name not in rules:
            continue
        refs: set = set()
        done[name] = _no_adjacent_text(rules[name], memo, refs, rules)
        todo.extend(r for r in refs if r not in done)
    return {"start": done["start"], **{k: done[k] for k in rules if k in done and k != "start"}}


def rewriter(on_seq, on_tok=None):
    """A rewrite of nodes, each compound node once (memoised by id): a choice or a repetition is rebuilt from
    its rewritten children (kept as it is where none changed), a sequence is ``on_seq(node, walk)``, a
    terminal ``on_tok(node)`` (kept where None); other leaves are kept."""
    memo: dict = {}

    def walk(node: Node) -> Node:
        t = type(node)
        if t is Tok and on_tok is not None:
            return on_tok(node)
        if t is not Seq and t is not Alt and t is not Rep:
            return node
        hit = memo.get(id(node))
        if hit is not None:
            return hit[1]
        if t is Alt:
            options = [walk(o) for o in node.options]
            out = node if _same(options, node.options) else _alt(*options)
        elif t is Rep:
            item = walk(node.item)
            out = node if item is node.item else Rep(item, node.lo, node.hi)
        else:
            out = on_seq(node, walk)
        memo[id(node)] = (node, out)             # (holding the node keeps its id from being reused)
        return out

    return walk


def lookaheads(rules: dict, ahead: dict) -> dict:
    """``rules`` with each lookahead terminal (``ahead``: its name -> the markers it must stand before; a `Tok`
    in the rules) written as what follows it, begun with one of its markers: ``(CLOSE | ESCAPE) REST`` becomes
    ``CLOSE REST | m REST/m`` (``REST/m``: REST after ``m``).  Where nothing follows in the same sequence the
    lookahead is left out (nothing then checks it).  The rules (and the rules derived) are rewritten in place;
    returns the rules derived -> the rule each was derived from."""
    lh = _LazyHeads(rules, {}, "ahead")

    def is_ahead(x) -> bool:
        return type(x) is Tok and x.name in ahead

    def sequence(node: Seq, rewrite) -> Node:
        items = node.items
        at = next((i for i, x in enumerate(items) if is_ahead(x) or
                   type(x) is Alt and any(map(is_ahead, x.options))), None)
        if at is None or at + 1 == len(items):
            new = [rewrite(x) for x in items]
            return node if _same(new, items) else seq(*new)
        x = items[at]
        rest = rewrite(seq(*items[at + 1:]))
        others = [o for o in (x.options if type(x) is Alt else ()) if not is_ahead(o)]
        markers = {m for o in (x.options if type(x) is Alt else (x,)) if is_ahead(o) for m in ahead[o.name]}
        options = [seq(rewrite(alt(*others)), rest)] if others else []
        for m in sorted(markers):
            after = lh.derive(rest, m)
            if after is not None:
                options.append(seq(Lit(m), after))
        return seq(*[rewrite(y) for y in items[:at]], _alt(*options) if options else rest)

    rewrite = rewriter(sequence, lambda tok: EMPTY if tok.name in ahead else tok)
    seen: set = set()
    todo = list(rules)
    while todo:                                  # (rules derived on the way are rewritten too)
        seen.update(todo)
        for name in todo:
            rules[name] = rewrite(rules[name])
        todo = [n for n in rules if n not in seen]
    return {made: name for (name, _), made in lh.derived.items() if made}

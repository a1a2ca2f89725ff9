"""Rewriting passes over a request's constraint rules, for what llguidance's lexer needs.

* `finish`: keep the rules reachable from "start", and rewrite loops like ``(TEXT | call)*`` so that two free-
  text lexemes never meet (a marker excluded from each could otherwise be spelled across their boundary);
* `lazy_heads`: free text followed by a marker spelled with ordinary tokens becomes one lazily matched lexeme
  up to that marker (a greedy text lexeme cannot give back the characters that start the marker).

Nodes are immutable: a pass returns the same node when nothing under it changed, and rewrites a node shared by
several rules once (memo by id, holding the node so that its id is not reused while the memo lives).
"""
from __future__ import annotations

from operator import is_

from toolgram.ir import EMPTY, Alt, Lazy, Lit, Node, Ref, Rep, Seq, Text, alt, opt, seq


def _is_text(node: Node) -> bool:
    return isinstance(node, Text) or (isinstance(node, Rep) and node.hi == 1 and isinstance(node.item, Text))


def _no_adjacent_text(node: Node, memo: dict, refs: set) -> Node:
    """Rewrite loops like ``(TEXT | call)*`` so that two text lexemes never meet: a marker excluded from
    each could otherwise be spelled across the boundary of two of them.  Adds the rules ``node`` refers to
    to ``refs``.

    ``memo`` (id -> (node, result)) rewrites a node shared by several rules once (a tool's argument list is
    shared by its call forms); it holds the node, so that its id is not reused while the memo lives."""
    if isinstance(node, Ref):
        refs.add(node.name)
        return node
    if not isinstance(node, (Seq, Alt, Rep)):
        return node
    hit = memo.get(id(node))
    if hit is not None:
        return hit[1]
    if isinstance(node, Seq):
        items = [_no_adjacent_text(x, memo, refs) for x in node.items]
        out = node if _same(items, node.items) else seq(*items)
    elif isinstance(node, Alt):
        options = [_no_adjacent_text(x, memo, refs) for x in node.options]
        out = node if _same(options, node.options) else alt(*options)
    else:
        item = _no_adjacent_text(node.item, memo, refs)
        options = item.options if isinstance(item, Alt) else (item,)
        texts = [o for o in options if _is_text(o)]
        if texts and node.hi is None:
            text = texts[0].item if isinstance(texts[0], Rep) else texts[0]
            others = [o for o in options if not _is_text(o)]
            out = opt(text) if not others else seq(Rep(seq(opt(text), alt(*others)), node.lo, None), opt(text))
        else:
            out = node if item is node.item else Rep(item, node.lo, node.hi)
    memo[id(node)] = (node, out)
    return out


def _same(new: list, old) -> bool:
    """Whether a rewrite changed none of these nodes (then the node itself is kept: nodes are immutable)."""
    return all(map(is_, new, old))


class _LazyHeads:
    """Turn ``text? X``, where X starts with a marker spelled by ordinary tokens, into
    ``Lazy(text, marker) X'`` (X' = X after the marker) or ``X``: an llguidance text lexeme is greedy and
    cannot give back the characters that start the marker once it has taken them."""

    def __init__(self, rules: dict, tokens: dict):
        self.rules = rules
        self.tokens = tokens
        self.derived: dict = {}
        self.done: dict = {}

    def first(self, node: Node, seen=frozenset()) -> set | None:
        """Literals every string of ``node`` starts with (None: something else may come first)."""
        if isinstance(node, Lit):
            return {node.text} if node.text else None
        if isinstance(node, Ref):
            if node.name in seen or node.name not in self.rules:
                return None
            return self.first(self.rules[node.name], seen | {node.name})
        if isinstance(node, Alt):
            out = set()
            for o in node.options:
                f = self.first(o, seen)
                if f is None:
                    return None
                out |= f
            return out
        if isinstance(node, Seq):
            return self.first(node.items[0], seen) if node.items else None
        if isinstance(node, Rep):
            return self.first(node.item, seen) if node.lo >= 1 else None
        return None

    def derive(self, node: Node, lit: str):
        """``node`` after the literal ``lit`` (None: ``node`` cannot start with it)."""
        if isinstance(node, Lit):
            if node.text == lit:
                return EMPTY
            if node.text.startswith(lit):
                return Lit(node.text[len(lit):])
            return None
        if isinstance(node, Ref):
            key = (node.name, lit)
            if key not in self.derived:
                name = f"{node.name}__after{len(self.derived)}"
                self.derived[key] = name
                self.rules[name] = EMPTY
                body = self.derive(self.rules[node.name], lit)
                if body is None:
                    del self.rules[name]
                    self.derived[key] = None
                    return None
                self.rules[name] = body
            name = self.derived[key]
            return Ref(name) if name else None
        if isinstance(node, Alt):
            options = [d for d in (self.derive(o, lit) for o in node.options) if d is not None]
            return alt(*options) if options else None
        if isinstance(node, Seq):
            if not node.items:
                return None
            head = self.derive(node.items[0], lit)
            return None if head is None else seq(head, *node.items[1:])
        if isinstance(node, Rep) and node.lo >= 1:
            head = self.derive(node.item, lit)
            if head is None:
                return None
            return seq(head, Rep(node.item, node.lo - 1, None if node.hi is None else node.hi - 1))
        return None

    def rewrite(self, node: Node) -> Node:
        if not isinstance(node, (Seq, Alt, Rep)):
            return node
        hit = self.done.get(id(node))            # a node shared by several rules is rewritten once
        if hit is not None:
            return hit[1]
        if isinstance(node, Seq):
            items = [self.rewrite(x) for x in node.items]
            out, i = [], 0
            while i < len(items):
                x = items[i]
                if isinstance(x, Rep) and (x.lo, x.hi) == (0, 1) and isinstance(x.item, Text) and i + 1 < len(items):
                    lazy = self.lazy(x.item, items[i + 1])
                    if lazy is not None:
                        out.append(lazy)
                        i += 2
                        continue
                out.append(x)
                i += 1
            new = node if len(out) == len(node.items) and _same(out, node.items) else seq(*out)
        elif isinstance(node, Alt):
            options = [self.rewrite(x) for x in node.options]
            new = node if _same(options, node.options) else alt(*options)
        else:
            item = self.rewrite(node.item)
            new = node if item is node.item else Rep(item, node.lo, node.hi)
        self.done[id(node)] = (node, new)        # (holding the node keeps its id from being reused)
        return new

    def lazy(self, text: Text, nxt: Node):
        firsts = self.first(nxt)
        textual = sorted(f for f in firsts or () if f not in self.tokens and f in text.exclude)
        if not textual:
            return None
        options = [nxt]
        if len(textual) < len(firsts):          # markers that are tokens may still follow plain text
            options.append(seq(opt(text), nxt))
        for f in textual:
            rest = self.derive(nxt, f)
            if rest is not None:
                options.append(seq(Lazy(text, f), rest))
        return alt(*options)


def lazy_heads(rules: dict, tokens: dict) -> dict:
    """Apply `_LazyHeads` to every rule (for Lark output)."""
    lh = _LazyHeads(dict(rules), tokens)
    for name in list(lh.rules):
        lh.rules[name] = lh.rewrite(lh.rules[name])
    return lh.rules


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
        done[name] = _no_adjacent_text(rules[name], memo, refs)
        todo.extend(r for r in refs if r not in done)
    return {"start": done["start"], **{k: done[k] for k in rules if k in done and k != "start"}}

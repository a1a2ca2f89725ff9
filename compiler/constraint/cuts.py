"""Where a literal may be written in parts, for llguidance's lexer (see `emit.LarkWriter._cut`).

The lexer takes the longest lexeme and never gives bytes back: where a literal and a longer one that begins
with it may both come next (a channel marker ``<|channel|>`` and a call trigger ``<|channel|>commentary
to=functions.``), reading on into the longer one leaves no way to end the shorter.  Writing the longer one in
parts, cut where the shorter one ends, lets the lexer end it there.  A cut point is a literal of the grammar
that free text never follows: text after it could take the rest of the cut literal as text (the lexer would
have to choose between them where, uncut, the literal was one lexeme).
"""
from __future__ import annotations

from toolgram.cache import LRU
from toolgram.ir import BLOCK, LITERAL, LOOKAHEAD, TEXT, Alt, CompiledGrammar, Lit, Ref, Rep, Seq, Tok

_POINTS = LRU("literal_cut_points", 128)   # grammar fingerprint -> its cut literals


def cut_literals(g: CompiledGrammar) -> frozenset:
    """The grammar's literals that free text never follows (`emit.literal_pieces` makes the cut points)."""
    hit = _POINTS.get(g.fingerprint) if g.fingerprint else None
    if hit is None:
        literals, before_text = _literals(g)
        hit = frozenset(literals - before_text)
        if g.fingerprint:
            _POINTS.put(g.fingerprint, hit)
    return hit


def _literals(g: CompiledGrammar) -> tuple[set, set]:
    """(the grammar's literals, those that free text or a block may follow)."""
    rules, terms = g.rules, g.terminals
    literals: set = set()
    before_text: set = set()
    nullable_memo: dict = {}
    text_memo: dict = {}

    def spellings(node):
        if type(node) is Lit:
            return (node.text,) if node.text else ()
        spec = terms.get(node.name)
        return spec.spellings if spec is not None and spec.kind == LITERAL else ()

    def nullable(node) -> bool:
        t = type(node)
        if t is Lit:
            return not node.text
        if t is Tok:
            spec = terms.get(node.name)
            return spec is not None and spec.kind == LOOKAHEAD
        if t is Ref:
            if node.name not in nullable_memo:
                nullable_memo[node.name] = False
                nullable_memo[node.name] = node.name in rules and nullable(rules[node.name])
            return nullable_memo[node.name]
        if t is Seq:
            return all(nullable(x) for x in node.items)
        if t is Alt:
            return any(nullable(x) for x in node.options)
        if t is Rep:
            return node.lo == 0 or nullable(node.item)
        return False

    def starts_text(node) -> bool:
        t = type(node)
        if t is Tok:
            spec = terms.get(node.name)
            return spec is not None and spec.kind in (TEXT, BLOCK)
        if t is Ref:
            if node.name not in text_memo:
                text_memo[node.name] = False
                text_memo[node.name] = node.name in rules and starts_text(rules[node.name])
            return text_memo[node.name]
        if t is Seq:
            for x in node.items:
                if starts_text(x):
                    return True
                if not nullable(x):
                    return False
            return False
        if t is Alt:
            return any(starts_text(x) for x in node.options)
        if t is Rep:
            return node.hi != 0 and starts_text(node.item)
        return False

    follow_text = dict.fromkeys(rules, False)      # rule -> whether text may follow it

    def visit(node, then_text: bool) -> None:
        t = type(node)
        if t is Lit or t is Tok:
            for x in spellings(node):
                literals.add(x)
                if then_text:
                    before_text.add(x)
        elif t is Ref:
            if then_text and node.name in follow_text and not follow_text[node.name]:
                follow_text[node.name] = True
                changed.append(node.name)
        elif t is Seq:
            for x in reversed(node.items):
                visit(x, then_text)
                then_text = starts_text(x) or (nullable(x) and then_text)
        elif t is Alt:
            for x in node.options:
                visit(x, then_text)
        elif t is Rep:
            visit(node.item, then_text or (node.hi != 1 and starts_text(node.item)))

    changed = list(rules)
    while changed:
        todo, changed = changed, []
        for name in dict.fromkeys(todo):
            visit(rules[name], follow_text[name])
    return literals, before_text

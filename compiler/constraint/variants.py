"""Call-count variants: the grammar's start rule restricted to produce no call, exactly one, at least one, or
any number (``none`` / a single call / ``required`` / ``auto``), the call rules standing for the request's
per-tool call forms.  Other structure is kept as written."""
from __future__ import annotations

from toolgram.compiler.constraint.specialise import one_blank
from toolgram.ir import EMPTY, Alt, Json, Lit, Node, Ref, Regex, Rep, Seq, Text, Tok, alt, seq


class Variants:
    """Restricts rules by call count; the variants it makes are added to ``out`` as ``<rule>__<k>``."""

    def __init__(self, rules: dict, call_rules: list, out: dict, leaf, max_calls: int | None,
                 blank: Node | None = None, content: frozenset = frozenset()):
        self.rules = rules
        self.call_rules = call_rules
        self.out = out
        self.leaf = leaf                  # terminal name -> its node (or None: it cannot appear)
        self.max_calls = max_calls
        # where content may not be written (required, named): a content terminal stands for one bounded run of
        # whitespace (``blank``), which the parser reads as whitespace-only content: no call text
        self.blank = blank
        self.content = content
        self._can: dict[str, bool] = {}

    def _can_call(self, rule: str) -> bool:
        if rule in self.call_rules:
            return True
        if rule in self._can:
            return self._can[rule]
        self._can[rule] = False
        found = self._node_can_call(self.rules.get(rule, EMPTY))
        self._can[rule] = found
        return found

    def _node_can_call(self, node: Node) -> bool:
        if isinstance(node, Ref):
            return self._can_call(node.name)
        if isinstance(node, Seq):
            return any(self._node_can_call(x) for x in node.items)
        if isinstance(node, Alt):
            return any(self._node_can_call(x) for x in node.options)
        if isinstance(node, Rep):
            return self._node_can_call(node.item)
        return False

    def restrict(self, node: Node, k: str) -> Node | None:
        """``node`` restricted to produce no call (zero), exactly one (one), at least one (many), or any."""
        if isinstance(node, Ref):
            if node.name in self.call_rules:
                if k == "zero":
                    return None
                return Ref(f"tg_call__{node.name}") if f"tg_call__{node.name}" in self.out else None
            if not self._can_call(node.name):
                if k in ("one", "many"):
                    return None
                return self._plain_rule(node.name)
            name = f"{node.name}__{k}"
            if name not in self.out:
                self.out[name] = EMPTY
                body = self.restrict(self.rules[node.name], k)
                if body is None:
                    del self.out[name]
                    return None
                self.out[name] = body
            return Ref(name)
        if isinstance(node, Tok):
            if k == "one" or k == "many":
                return None
            tok = self.leaf(node.name)
            if tok is None and self.blank is not None and node.name in self.content:
                return self.blank
            return tok
        if isinstance(node, (Lit, Regex, Json, Text)):
            return node if k in ("zero", "any") else None
        if isinstance(node, Alt):
            options = [v for v in (self.restrict(o, k) for o in node.options) if v is not None]
            return alt(*options) if options else None
        if isinstance(node, Seq):
            items = node.items
            if self.blank is not None and len(items) > 1 and any(
                    type(x) is Tok and x.name in self.content and self.leaf(x.name) is None for x in items):
                return None     # content the sequence needs (``CONTENT END?``): whitespace would stand for less
            if k in ("zero", "any"):
                return seq(*one_blank([self.restrict(x, k) for x in items], self.out))
            options = []
            for i, x in enumerate(items):
                if not self._node_can_call(x):
                    continue
                rest = "zero" if k == "one" else "any"
                parts = [self.restrict(y, "zero") for y in items[:i]] + [self.restrict(x, k)] + \
                        [self.restrict(y, rest) for y in items[i + 1:]]
                if any(p is None for p in parts):
                    continue
                options.append(seq(*one_blank(parts, self.out)))
            return alt(*options) if options else None
        if isinstance(node, Rep):
            zero = self.restrict(node.item, "zero")
            if k == "zero":
                if zero is None:
                    return EMPTY if node.lo == 0 else None
                return self._repeat(zero, node.lo, node.hi)
            if k == "any":
                item = self.restrict(node.item, "any")
                if item is None:
                    return EMPTY if node.lo == 0 else None
                return self._repeat(item, node.lo, self._cap(node.hi) if self._node_can_call(node.item) else node.hi)
            first = self.restrict(node.item, k if k == "one" else "many")
            if first is None or node.hi == 0:
                return None
            if k == "one":
                if zero is None or node.hi == 1:
                    return first if node.lo <= 1 else None
                return seq(self._repeat(zero, 0, None), first, self._repeat(zero, 0, None))
            rest = self.restrict(node.item, "any")
            lead = self._repeat(zero, 0, None) if zero is not None and node.hi is None else EMPTY
            if rest is None:
                return seq(lead, first) if node.lo <= 1 else None
            more = self._cap(node.hi)
            return seq(lead, first, self._repeat(rest, max(0, node.lo - 1), None if more is None else more - 1))
        return None

    def _repeat(self, item: Node, lo: int, hi) -> Node:
        """``item`` repeated; where it may be the whitespace that stands for content, runs of it do not meet
        (``(W | X)*`` becomes ``W? (X W?)*``: each run stays within its bound)."""
        blank = self.blank
        if blank is not None and lo == 0:
            options = []
            for o in item.options if isinstance(item, Alt) else (item,):
                body = self.out.get(o.name) if isinstance(o, Ref) else None
                if body == blank or isinstance(body, Alt) and blank in body.options:
                    o = body                      # a rule holding the whitespace (content or reasoning): inlined
                options.extend(o.options if isinstance(o, Alt) else (o,))
            if blank in options:
                others = [o for o in options if o != blank]
                return seq(blank, Rep(seq(alt(*others), blank), 0, hi)) if others else blank
        return Rep(item, lo, hi)

    def _cap(self, hi):
        """A repetition of calls bounded by ``max_calls`` (each repetition on its own)."""
        if self.max_calls is None:
            return hi
        return self.max_calls if hi is None else min(hi, self.max_calls)

    def _plain_rule(self, name: str) -> Node:
        out = f"{name}__plain"
        if out not in self.out:
            self.out[out] = EMPTY
            self.out[out] = self.restrict(self.rules[name], "zero") or EMPTY
        return Ref(out)

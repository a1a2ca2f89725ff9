"""Constraints derived from the grammar that parses: ``required``, a named tool, lazy ``auto`` and ``none``.

The grammar's rules (its constraint IR, made at compile time) are rewritten for one request
(`toolgram.request.ToolRequest`), in four steps, one module each:

* `specialise`: the call rule per tool — the name as the grammar reads it back, the arguments as the tool's
  JSON Schema in the grammar's encoding (each encoding's constraint side);
* `variants`: the start rule by call count — at least one call (``required``), exactly one
  (``parallel_tool_calls=False``, a named tool), none, or any (``auto``: free text that cannot contain a call
  marker except by starting a well-formed call); a reasoning block may come first where the grammar has one;
* `passes`: what llguidance's lexer needs (no two free-text lexemes meeting, lazy text before markers);
* `emit`: written out as Lark for llguidance (``dialect="llguidance"``) or xgrammar's ``compile_lark``
  (``dialect="xgrammar"``: no regex intersections), GBNF (llama.cpp), or xgrammar/vLLM structural tags.

So the parser accepts everything the constraint allows, and their typing agrees.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

from toolgram.cache import LRU
from toolgram.compiler.constraint import emit, passes
from toolgram.compiler.constraint.cuts import cut_literals
from toolgram.compiler.constraint.specialise import Specialiser
from toolgram.compiler.constraint.tokens import added_tokens, holdable_tokens
from toolgram.compiler.constraint.variants import Variants
from toolgram.compiler.regexlang import regex_char, whitespace_run
from toolgram.errors import ConstraintError
from toolgram.ir import EMPTY, LITERAL, LOOKAHEAD, TEXT, Alt, CompiledGrammar, Lit, Ref, Regex, Rep, Seq, Tok, alt, seq
from toolgram.request import ToolRequest, Whitespace, data_key, parse_request
from toolgram.runtime.parser import start_state

SYNTAXES = ("lark", "gbnf", "structural_tag")
_CONSTRAINTS = LRU("constraints", 512)
_VARIANTS = LRU("constraint_variants", 512)       # (grammar, start, mode, settings...) -> the start's variants


@dataclass
class Constraint:
    """A decoding constraint: the grammar ``text`` in ``syntax`` for one request's tools and choice."""

    syntax: str
    text: str
    mode: str
    tools: tuple
    parallel: bool
    triggers: tuple = ()
    dialect: str = "llguidance"
    rules: dict = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        return self.text

    def structured_outputs(self) -> dict:
        """vLLM's request field ``structured_outputs`` for this constraint."""
        key = "structural_tag" if self.syntax == "structural_tag" else "grammar"
        return {key: self.text}


def build_rules(g: CompiledGrammar, request: ToolRequest, start_rule: str = "start", max_reasoning: int | None = None,
                max_calls: int | None = None, tokens: dict | None = None, guard_content: bool = False,
                whitespace: Whitespace | None = None, holdable: frozenset | None = None) -> dict:
    """The constraint's rules for a checked request: name -> node, "start" first.  ``start_rule``: the rule
    the output begins in (`runtime.parser.start_state` of the request's reasoning switch and prompt).
    ``holdable``: the marker tokens text may hold (`tokens.holdable_tokens`; default: all of ``tokens``)."""
    return _build_rules(g, request, start_rule, max_reasoning, max_calls, tokens, guard_content, whitespace,
                        holdable)[0]


def _build_rules(g, request, start_rule, max_reasoning, max_calls, tokens, guard_content, whitespace,
                 holdable) -> tuple:
    """(`build_rules`, the names of the rules made for the request's tools)."""
    if g.rules_problem is not None:
        raise ConstraintError(f"grammar {g.name}: no constraint can be derived: {g.rules_problem}")
    rules = g.rules
    mode = request.mode
    out: dict = {}
    spec = Specialiser(g, rules, out, content_ok=mode in ("auto", "none"), max_reasoning=max_reasoning,
                       tokens=tokens, whitespace=whitespace or grammar_whitespace(g),
                       holdable=frozenset(tokens or ()) if holdable is None else holdable)
    # the call rule, and every alternative named after it (``-> call``), is one form of a call
    call_rules = [r for r in rules if r == g.call_rule or r.startswith(g.call_rule + "__alias")]
    calls = False
    for form in call_rules:
        bodies = [b for b in (spec.call(form, tool) for tool in request.chosen) if b is not None]
        if bodies:
            out[f"tg_call__{form}"] = _factored(bodies, out, f"tg_{form}")
            calls = True
    inside_calls = set(out)                      # (the rules of the calls: no content lexeme is open in them)
    content = frozenset(n for n, t in g.terminals.items() if t.kind == TEXT and t.role == "content")
    v = Variants(rules, call_rules, out, spec.leaf, max_calls,
                 blank=None if spec.content_ok else spec.blank(), content=content)
    openers = _optional_openers(g, rules, start_rule) if mode in ("auto", "none") and \
        (guard_content or spec.tokens) else ()
    if guard_content and mode in ("auto", "none"):
        # a call without a marker may open the output (``calls? CONTENT*``): content that began like one would
        # be read back as a call, so content may not begin with what such a call begins with
        spec.content_guard = _leading_call_chars(g, rules, out, v, call_rules, spec)
        # an optional marker-led item may open the output (a reasoning block): the parser reads its marker
        # there as markup, and llguidance's lazy content lexeme would take it as text
        spec.content_openers = tuple(m for m in openers if m not in spec.tokens)
    # nor may content hold such a marker as a token (content holds the grammar's other marker tokens)
    spec.content_unheld = frozenset(openers)
    # the start rule restricted by call count: it does not depend on the tools (their calls are rules by name),
    # so it is kept per grammar and settings
    forms = tuple(f for f in call_rules if f"tg_call__{f}" in out)
    key = (start_rule, mode, request.parallel, forms, max_calls, spec.settings())
    made = _VARIANTS.get(key)
    if made is None:
        before = set(out)
        top = Ref(start_rule)
        if mode in ("required", "named"):
            start = v.restrict(top, "many" if request.parallel else "one")
        elif mode == "auto" and calls:
            start = v.restrict(top, "any") if request.parallel else alt(v.restrict(top, "zero"),
                                                                        v.restrict(top, "one"))
        else:
            start = v.restrict(top, "zero")
        made = (start, {k: n for k, n in out.items() if k not in before}, dict(spec.lookaheads))
        _VARIANTS.put(key, made)
    start, variants, ahead = made
    if start is None:
        raise ConstraintError(f"grammar {g.name}: no output of this grammar fits tool_choice {mode!r}")
    out.update(variants)
    spec.lookaheads.update(ahead)
    out["tg_start"] = start
    out["start"] = Ref("tg_start")
    tool_rules = set(inside_calls)
    if spec.lookaheads:
        derived = passes.lookaheads(out, spec.lookaheads)
        for made, base in derived.items():       # (a tool rule's derivatives are tool rules)
            while base in derived:
                base = derived[base]
            if base in inside_calls:
                tool_rules.add(made)
    if spec.content_guard:
        out = _whitespace_into_markers(out, g, spec.content_guard, tokens or {}, inside_calls)
    return passes.finish(out), frozenset(tool_rules)


def _factored(bodies: list, out: dict, prefix: str) -> Node:
    """The alternation of ``bodies`` (the tools' forms of one call rule) with the beginnings they share written
    once: ``P X0 | P X1`` is ``P (X0 | X1)``, each alternation where the tools part a rule of its own (named
    ``prefix`` and a number).  The passes after (derivatives by a marker, lazy endings) then walk the shared
    beginning once, not once per tool, and the rules of what follows are shared by name.  Same language."""
    made: dict = {}                              # alternation -> the rule holding it

    def rows(node) -> list:
        return [o.items if type(o) is Seq else (o,) for o in (node.options if type(node) is Alt else (node,))]

    def build(group: list, top: bool) -> Node:
        shared = []
        while True:
            heads: dict = {}
            for r in group:
                heads.setdefault(r[0] if r else None, []).append(r[1:])
            if len(heads) > 1 or None in heads:
                break
            (head, group), = heads.items()
            shared.append(head)
        options = [EMPTY if head is None else seq(head, *rests[0]) if len(rests) == 1 else
                   seq(head, build(rests, False)) for head, rests in heads.items()]
        node = alt(*options)
        if not top and type(node) is Alt:
            ref = made.get(node)                 # (equal alternatives: tools whose calls differ only before)
            if ref is None:
                ref = made[node] = Ref(f"{prefix}__{len(out)}")
                out[ref.name] = node
            node = ref
        return seq(*shared, node)

    return build([r for b in bodies for r in rows(b)], True)


def _whitespace_into_markers(rules: dict, g: CompiledGrammar, guard: str, tokens: dict, calls: set) -> dict:
    """Optional whitespace before a spelled literal made one lexeme with it, where the literal begins with a
    character guarded content may not begin with and a spelled content marker begins with it too (mistral:
    the bare list's ``[`` and ``[TOOL_CALLS]``).  Otherwise llguidance's lexer, after `` [``, goes on in the
    lazy content lexeme (whitespace, then the marker's beginning), which dies at the next character (``{``),
    and cannot give the whitespace back to the literal.  Inside a call (``calls``: the rules the calls were
    built in) no content lexeme is open: those rules are left as they are."""
    firsts = {m[0] for n, t in g.terminals.items() if t.kind == TEXT and t.role == "content"
              for m in g.text_stops.get(n, ()) if m and m not in tokens}
    chars = set(guard) & firsts
    if not chars:
        return rules
    out = dict(rules)

    def head(node):
        """(the literal ``node`` begins with, the rest) or None."""
        if isinstance(node, Lit):
            return node, EMPTY
        if isinstance(node, Ref) and isinstance(out.get(node.name), Seq) and out[node.name].items:
            first = out[node.name].items[0]
            if isinstance(first, Lit):
                return first, Seq(out[node.name].items[1:])
        return None

    def sequence(node: Seq, walk) -> Node:
        items, i = [], 0
        while i < len(node.items):
            x = node.items[i]
            h = head(node.items[i + 1]) if i + 1 < len(node.items) and type(x) is Rep and \
                (x.lo, x.hi) == (0, 1) and type(x.item) is Regex else None
            if h is not None and h[0].text[:1] in chars and h[0].text not in tokens and \
                    whitespace_run(x.item.pattern) is not None:
                lit = "".join(c if c == "/" else regex_char(ord(c)) for c in h[0].text)   # (emit escapes /)
                items.append(Regex(f"(?:{x.item.pattern})?{lit}"))
                items.append(walk(h[1]))
                i += 2
                continue
            items.append(walk(x))
            i += 1
        return node if len(items) == len(node.items) and all(map(operator.is_, items, node.items)) else seq(*items)

    walk = passes.rewriter(sequence)
    for name in list(out):
        if name not in calls:
            out[name] = walk(out[name])
    return out


_WS = frozenset(" \t\r\n")


def _leading_call_chars(g, rules, out, v, call_rules, spec) -> str:
    """The characters a call without a marker may begin with where the output starts (after whitespace), when
    such a call is optional there; "" when every call at the start begins with a marker content excludes."""
    chars: set = set()

    def first(node, seen) -> bool:
        """Add the first characters of ``node`` to ``chars``; True if ``node`` may be empty."""
        if isinstance(node, Lit):
            if node.text:
                if node.text not in stops:
                    chars.add(node.text[0])
                return False
            return True
        if isinstance(node, Regex):
            body = node.pattern
            return all(c in " \\trn[]{},0123456789(?:|)" for c in body)   # a whitespace run: look past it
        if isinstance(node, Ref):
            name = node.name
            if name in call_rules:
                built = out.get(f"tg_call__{name}")
                return first(built, seen) if built is not None else True
            if name in seen or name not in rules and name not in out:
                return True
            return first(rules.get(name, out.get(name)), seen | {name})
        if isinstance(node, Tok):
            if g.terminals[node.name].kind == TEXT:
                return False                      # free text (content itself): not a call's beginning
            if g.terminals[node.name].kind == LOOKAHEAD:
                return True
            leaf = spec.leaf(node.name)
            return True if leaf is None else first(leaf, seen)
        if isinstance(node, Seq):
            for x in node.items:
                if not first(x, seen):
                    return False
            return True
        if isinstance(node, Alt):
            return any([first(o, seen) for o in node.options])
        if isinstance(node, Rep):
            return first(node.item, seen) or node.lo == 0
        return False

    start = rules.get("start")
    items = start.items if isinstance(start, Seq) else (start,)
    stops = set()
    for t in g.text_stops.values():
        stops.update(t)
    for x in items:
        nullable_call = isinstance(x, Rep) and x.lo == 0 and v._node_can_call(x.item)
        if not nullable_call:
            break
        first(x.item, frozenset())
    return "".join(sorted(c for c in chars if c not in _WS))


def _optional_openers(g: CompiledGrammar, rules: dict, start_rule: str) -> list:
    """The markers that begin the optional items (``X?``) the output may start with in ``start_rule``, where
    content may begin the output when they are left out."""
    found: list = []

    def opens_content(node, seen) -> tuple:
        """(whether ``node`` may begin with content text, whether it may be empty)."""
        if isinstance(node, Tok):
            spec = g.terminals[node.name]
            return spec.kind == TEXT and spec.role == "content", spec.kind == LOOKAHEAD
        if isinstance(node, Ref):
            if node.name in seen or node.name not in rules:
                return False, True
            return opens_content(rules[node.name], seen | {node.name})
        if isinstance(node, Rep):
            content, empty = opens_content(node.item, seen)
            return content, empty or node.lo == 0
        if isinstance(node, Alt):
            parts = [opens_content(o, seen) for o in node.options]
            return any(c for c, _ in parts), any(e for _, e in parts)
        if isinstance(node, Seq):
            for x in node.items:
                content, empty = opens_content(x, seen)
                if content or not empty:
                    return content, False
            return False, True
        return False, isinstance(node, Lit) and not node.text

    def first(node, seen) -> None:
        if isinstance(node, Lit) and node.text:
            found.append(node.text)
        elif isinstance(node, Tok) and g.terminals[node.name].kind == LITERAL:
            found.extend(g.terminals[node.name].spellings)
        elif isinstance(node, Ref) and node.name in rules and node.name not in seen:
            first(rules[node.name], seen | {node.name})
        elif isinstance(node, Seq) and node.items:
            first(node.items[0], seen)
        elif isinstance(node, Alt):
            for o in node.options:
                first(o, seen)

    top = rules.get(start_rule)
    items = top.items if isinstance(top, Seq) else ()
    for i, x in enumerate(items):
        if not (isinstance(x, Rep) and (x.lo, x.hi) == (0, 1)):
            break
        if opens_content(Seq(items[i + 1:]), frozenset())[0]:
            first(x.item, frozenset())
    return sorted(set(found))


def grammar_whitespace(g: CompiledGrammar) -> Whitespace:
    """The whitespace a constraint allows by default for this grammar (its file's ``whitespace:``)."""
    return Whitespace(**g.whitespace)


def build_constraint(g: CompiledGrammar, tools, tool_choice="required", parallel_tool_calls: bool = True,
                     syntax: str = "lark", tokenizer=None, *, dialect: str = "llguidance",
                     reasoning: bool = True, max_reasoning: int | None = None,
                     max_calls: int | None = None, whitespace=None, prompt: str | None = None) -> Constraint:
    """`Grammar.constraint`.  ``tools``: the request's OpenAI ``tools`` (then ``tool_choice`` and
    ``parallel_tool_calls`` apply), or a `ToolRequest` already checked.  ``whitespace``: a request's
    ``tool_call_whitespace`` (some of `Whitespace`'s fields) over the grammar's defaults.  Results are kept in a
    bounded LRU."""
    if syntax not in SYNTAXES:
        raise ConstraintError(f"syntax must be one of {', '.join(SYNTAXES)}, not {syntax!r}", "syntax")
    if dialect not in ("llguidance", "xgrammar"):
        raise ConstraintError(f"dialect must be 'llguidance' or 'xgrammar', not {dialect!r}", "dialect")
    if max_calls is not None and (not isinstance(max_calls, int) or max_calls < 1):
        raise ConstraintError("max_calls must be a positive integer", "max_calls")
    ws = grammar_whitespace(g).with_override(whitespace)
    tokens = added_tokens(tokenizer) if syntax == "lark" else {}
    holdable = holdable_tokens(tokenizer) if tokens else frozenset()
    request = tools if isinstance(tools, ToolRequest) else None
    asked = request.key if request is not None else data_key((tools, tool_choice, parallel_tool_calls))
    start = start_state(g, reasoning, prompt)
    key = (g.fingerprint, asked, syntax, dialect, data_key(tokens), holdable, start, max_reasoning, max_calls, ws)
    hit = _CONSTRAINTS.get(key)
    if hit is not None:
        return hit
    if request is None:
        request = parse_request(tools, tool_choice, parallel_tool_calls)
    rules, tool_rules = _build_rules(g, request, start, max_reasoning, max_calls, tokens,
                                     syntax == "lark" and dialect == "llguidance", ws, holdable)
    if syntax == "lark":
        text = emit.to_lark(passes.lazy_heads(rules, tokens, tool_rules), dialect, tokens, json_space=ws.json_pattern(),
                            cut_at=emit.literal_pieces(cut_literals(g), tokens))
    elif syntax == "gbnf":
        text = emit.to_gbnf(rules)
    else:
        text = emit.to_structural_tag(rules)
    c = Constraint(syntax=syntax, text=text, mode=request.mode, tools=tuple(t.name for t in request.chosen),
                   parallel=request.parallel, triggers=g.triggers, dialect=dialect, rules=rules)
    _CONSTRAINTS.put(key, c)
    return c

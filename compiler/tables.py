"""Streaming tables: from Lark's LALR parse table to what the incremental runtime needs per state.

For every parser state this derives which markers, patterns, encoding blocks and text runs may start there,
and, for a text run, the markers that end it (the literals that may follow it in the grammar).  It also
marks the *safe* states (where content or reasoning text may be lexed: error recovery returns there) and the
states whose reduction does not depend on the next token (reduced at once, so a call ends as soon as its last
marker is read).  Grammar shapes the runtime cannot stream (two text runs possible at one point, a text run
followed by something other than a marker) are rejected here with the terminal's line.
"""
from __future__ import annotations

import re
import sys

from lark.parsers.lalr_analysis import Shift

from toolgram.compiler.regexlang import C as re_constants, P as re_parser
from toolgram.ir import BLOCK, END, LITERAL, LOOKAHEAD, PATTERN, TEXT, Recovery, Rule, StateLexer, Tables, TerminalSpec


def _alternation(literals) -> re.Pattern | None:
    if not literals:
        return None
    return re.compile("|".join(re.escape(x) for x in sorted(literals, key=len, reverse=True)))


# The longest token an unbounded pattern without `max_length` may match.  A pattern token that reaches the
# end of the text so far is matched again when more arrives; this bound keeps that work per delta constant.
PATTERN_CAP = 4096


def class_run(source: str | None) -> bool:
    r"""Whether a pattern is one character class repeated without bound (``[ \t\r\n]+``, ``\s*``): such a
    token can be consumed as it arrives and extended, instead of being matched again from its start."""
    if not source:
        return False
    try:
        tree = re_parser.parse(source)
    except Exception:                    # a `regex`-only construct: not a plain class run
        return False
    if len(tree) != 1:
        return False
    op, av = tree[0]
    if op is not re_constants.MAX_REPEAT or av[0] > 1 or av[1] != re_constants.MAXREPEAT or len(av[2]) != 1:
        return False
    return av[2][0][0] in (re_constants.IN, re_constants.LITERAL, re_constants.NOT_LITERAL, re_constants.ANY,
                           re_constants.CATEGORY)


def _prefixes(literals) -> frozenset:
    return frozenset(x[:i] for x in literals for i in range(1, len(x)))


def parse_table(lark_instance, terminal_names: set[str], call_rule: str):
    """Lark's LALR table as (actions, gotos, rules, start_states, end_states, call_last) with integer
    encodings; ``call_last`` holds the terminals that end a production of the call rule itself."""
    pt = lark_instance.parser.parser.parser.parse_table
    n = len(pt.states)
    actions: list[dict] = [dict() for _ in range(n)]
    gotos: list[dict] = [dict() for _ in range(n)]
    rules: list[Rule] = []
    index: dict = {}
    call_last: set = set()
    for state, acts in pt.states.items():
        for sym, (act, arg) in acts.items():
            if act is Shift:
                if sym in terminal_names or sym == END:
                    actions[state][sym] = arg
                else:
                    gotos[state][sym] = arg
            else:
                i = index.get(arg)
                if i is None:
                    i = index[arg] = len(rules)
                    is_call = arg.origin.name == call_rule or arg.alias == call_rule
                    rules.append(Rule(arg.origin.name, len(arg.expansion), is_call))
                    # (an aliased rule, such as a call lacking its end tag, ends elsewhere)
                    if arg.origin.name == call_rule and arg.expansion and arg.expansion[-1].name in terminal_names:
                        call_last.add(arg.expansion[-1].name)
                actions[state][sym] = -(i + 1)
    return actions, gotos, rules, dict(pt.start_states), dict(pt.end_states), call_last


def default_reductions(actions: list[dict]) -> list:
    out = []
    for acts in actions:
        values = set(acts.values())
        only = next(iter(values)) if len(values) == 1 else 0
        out.append(-only - 1 if only < 0 else None)
    return out


def safe_states(actions: list[dict], specs: dict[str, TerminalSpec]) -> list[bool]:
    return [any(t in specs and specs[t].kind == TEXT and specs[t].role in ("content", "reasoning") for t in acts)
            for acts in actions]


def triggers(actions: list[dict], specs: dict[str, TerminalSpec], state: int) -> tuple:
    """Markers that start a tool-call region from content: the literals that may follow a content run.

    Literals acceptable only at the very start of the output (a bare call list anchored there) are not
    triggers; if the grammar has no content run, the literals of ``state`` are.
    """
    content = [t for t in actions[state] if t in specs and specs[t].kind == TEXT and specs[t].role == "content"]
    if content:
        a = actions[state][content[0]]
        targets = [a] if a >= 0 else [acts[content[0]] for acts in actions if acts.get(content[0], -1) >= 0]
        keys = {t for target in targets for t in actions[target]}
    else:
        keys = set(actions[state])
    content_terms = {t for t, spec in specs.items() if spec.kind == TEXT and spec.role == "content"}

    def leads_back_to_content(t: str) -> bool:
        # a standalone markup token (an end-of-turn token, a response tag): once shifted, content text may
        # follow at once, so it starts no call region and is not a trigger
        return any(content_terms & set(actions[acts[t]]) for acts in actions if acts.get(t, -1) >= 0)

    out = {x for t in keys if t in specs and specs[t].kind == LITERAL and not t.startswith("TG_")
           and not leads_back_to_content(t)
           for x in specs[t].spellings}                    # (reasoning markers are not call triggers)
    return tuple(sorted(out, key=lambda x: (-len(x), x)))


def _first_memo(pattern):
    """A first-character memo the runtime fills ({character: whether a match can begin with it}), or False where
    the text before a match can matter (lookbehind, word boundaries): a lone character is then no evidence."""
    src = pattern.pattern
    return False if ("(?<" in src or "\\b" in src or "\\B" in src) else {}


def build_lexers(actions: list[dict], safe: list[bool], specs: dict[str, TerminalSpec], block_first: dict,
                 error, call_markers: tuple = ()) -> list[StateLexer]:
    """One `StateLexer` per state.  ``error(message, terminal)`` raises the grammar error.  ``call_markers``:
    the markers that start calls from content (`triggers`)."""
    lexers = []
    shift_targets: dict[str, list[int]] = {}
    for acts in actions:
        for t, a in acts.items():
            if a >= 0:
                shift_targets.setdefault(t, []).append(a)
    for state, acts in enumerate(actions):
        literals: dict[str, str] = {}
        patterns, lookaheads, blocks, texts = [], [], [], []
        for t in acts:
            if t == END:
                continue
            spec = specs[t]
            if spec.kind == LITERAL:
                for spelling in spec.spellings:
                    other = literals.get(spelling)
                    if other is not None and other != t:
                        error(f"terminals {other} and {t} are the same marker {spelling!r}", t)
                    literals[spelling] = t
            elif spec.kind == PATTERN:
                # (regex, terminal, longest token, grows): a class run without max_length grows unbounded
                grows = spec.max_length is None and class_run(spec.source)
                cap = spec.max_length or (sys.maxsize if grows else PATTERN_CAP)
                patterns.append((spec.pattern, t, cap, grows, _first_memo(spec.pattern)))
            elif spec.kind == LOOKAHEAD:
                lookaheads.append((t, spec.lookahead))
            elif spec.kind == BLOCK:
                blocks.append((t, block_first.get(t)))
            elif spec.kind == TEXT:
                texts.append(t)
        if len(texts) > 1:
            error(f"text terminals {' and '.join(sorted(texts))} can both start at the same point; "
                  f"a point of the grammar may hold at most one free-text terminal", sorted(texts)[1])
        # a call marker that a marker of this state begins (mistral's "[" of a bare list, "[TOOL_CALLS]"): the
        # text there is the call marker, not the shorter one (unless the shorter one is a call marker too)
        split = tuple(m for m in call_markers if m not in literals and any(
            m.startswith(x) and x not in call_markers for x in literals))
        lex = StateLexer(
            literal_re=_alternation(literals), literal_terms=literals, split_markers=split,
            literal_prefixes=_prefixes(literals) | _prefixes(split),
            literal_max=max(map(len, (*literals, *split)), default=0),
            patterns=tuple(sorted(patterns, key=lambda p: p[1])), lookaheads=tuple(lookaheads),
            blocks=tuple(blocks), safe=safe[state])
        if texts:
            text = texts[0]
            stops = set()
            # what may follow the run: the state it shifts to (after any reductions: every such state)
            after = [acts[text]] if acts[text] >= 0 else shift_targets.get(text, [])
            for f in {f for a in after for f in actions[a]}:
                if f == END or f == text:
                    continue
                fspec = specs[f]
                if fspec.kind == LITERAL:
                    stops.update(fspec.spellings)
                elif fspec.kind == LOOKAHEAD:
                    stops.update(fspec.lookahead)
                else:
                    error(f"text terminal {text} can be followed directly by {fspec.kind} terminal {f}; "
                          f"a text run must end at a literal marker", text)
            lex.text = text
            lex.stops = tuple(sorted(stops, key=lambda x: (-len(x), x)))
            lex.stop_re = _alternation(stops)
            lex.stop_prefixes = _prefixes(stops)
            lex.stop_first = "".join(sorted({s[0] for s in stops}))
            lex.stop_max = max(map(len, stops), default=0)
        lexers.append(lex)
    return lexers


def recovery(actions: list[dict], gotos: list[dict], rules: list, call_last: set,
             specs: dict[str, TerminalSpec], call_rule: str | None = None) -> Recovery:
    """Where a broken call ends and where parsing goes on after it (see runtime/parser.py, ``_recover``)."""
    def spellings(terms) -> set:
        return {x for t in terms if t in specs and specs[t].kind == LITERAL for x in specs[t].spellings}

    def literals_after(state: int) -> set:
        """The literals acceptable in ``state`` or right after a pattern token (whitespace...) read there."""
        terms = set(actions[state])
        for t, a in actions[state].items():
            if a >= 0 and t in specs and specs[t].kind == PATTERN:
                terms |= set(actions[a])
        return spellings(terms)

    # where a state has gotos on several call forms (the call rule and a form aliased to it, such as a call
    # lacking its end tag), parsing goes on after the call rule itself; the others by name (the order of
    # ``rules`` follows Lark's state order, which varies with the hash seed)
    origins = sorted({r.origin for r in rules if r.is_call}, key=lambda o: (o != call_rule, o))
    call_gotos = [next((g[o] for o in origins if o in g), -1) for g in gotos]
    follows = set()
    for target in {t for t in call_gotos if t >= 0}:
        follows |= literals_after(target)
    brackets = [""] * len(actions)
    block_follows: dict[str, set] = {}
    for acts in actions:
        for t, a in acts.items():
            if a < 0 or t not in specs:
                continue
            spec = specs[t]
            if spec.kind == LITERAL:
                brackets[a] = "".join(c for c in spec.literal if c in "()[]{}")
            elif spec.kind == BLOCK:
                block_follows.setdefault(t, set()).update(literals_after(a))
    ends = spellings(call_last)
    long = lambda xs: tuple(sorted((x for x in xs if len(x) >= 2), key=lambda x: (-len(x), x)))  # noqa: E731
    return Recovery(call_gotos=call_gotos, call_ends=long(ends),
                    call_follows=tuple(sorted(follows - ends, key=lambda x: (-len(x), x))),
                    brackets=brackets, block_follows={t: tuple(sorted(v)) for t, v in block_follows.items()})


def build_tables(actions, gotos, rules, start_states, end_states, specs, block_first, error,
                 call_last=frozenset(), call_rule: str | None = None, call_markers: tuple = ()) -> Tables:
    safe = safe_states(actions, specs)
    return Tables(actions=actions, gotos=gotos, rules=rules, default_reduce=default_reductions(actions),
                  lexers=build_lexers(actions, safe, specs, block_first, error, call_markers),
                  start_states=start_states, end_states=end_states,
                  recovery=recovery(actions, gotos, rules, call_last, specs, call_rule))

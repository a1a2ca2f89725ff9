"""Exporting a toolgram grammar as a Hugging Face ``response_template`` where the spec can express it.

A template reads an output as flat regions found by regexes: a call region opened and closed by markers,
its body read by one content parser.  A grammar is exported when its calls fit that shape, derived from the
compiled grammar itself (its Lark rules and terminal roles), never from per-format code:

* each call stands on its own between markers, reached from content (separators between calls may only be
  whitespace, which the template's content field takes);
* its body is a JSON call object (``json`` + a ``{content}`` transform), a name marker then a JSON object, or
  a name then key/value tags with text values (``xml-inline``);
* it ends with a closing marker (a region without a closer would run to the end of the text).

Anything else is refused with the reason (nested sections, separators, values that are literals, a missing
closer...), which docs/formats.md lists per grammar.
"""
from __future__ import annotations

import re

import regex
from lark import Lark

from toolgram.compiler import registry
from toolgram.compiler.build import _NoLexer
from toolgram.ir import BLOCK, LITERAL, PATTERN, TEXT

MAX_EXPANSIONS = 64
_NAME_POLICY = [r"[^\s\"'<>{}\[\]]{1,256}"]


class NotExpressible(ValueError):
    """The grammar has a shape the response-template spec cannot express; the message says which."""


def _lark(compiled) -> Lark:
    starts = ["start"] + (["plain"] if compiled.has_reasoning_start else [])
    return Lark(compiled.lark, parser="lalr", lexer=_NoLexer, keep_all_tokens=True, start=starts,
                maybe_placeholders=False)


def _rules(lk: Lark) -> dict:
    out: dict = {}
    for r in lk.rules:
        name = r.alias or r.origin.name
        out.setdefault(r.origin.name, []).append([s.name for s in r.expansion])
        if r.alias and r.alias != r.origin.name:
            out.setdefault(r.alias, []).append([s.name for s in r.expansion])
    return out


def _expand(sym: str, rules: dict, specs: dict, stop: set, depth: int = 0) -> list[list[str]]:
    """Every flat sequence of terminals (and ``stop`` symbols) a rule derives, inlining helper rules."""
    if sym in specs or sym in stop:
        return [[sym]]
    if depth > 8 or sym not in rules:
        raise NotExpressible(f"rule {sym} is recursive or nested")
    out: list = []
    for exp in rules[sym]:
        seqs = [[]]
        for s in exp:
            if s in specs or s in stop:
                seqs = [q + [s] for q in seqs]
            elif s.startswith("__") and _is_repeat(s, rules, stop | set(specs)):
                seqs = [q + [s] for q in seqs]
            else:
                sub = _expand(s, rules, specs, stop, depth + 1)
                seqs = [q + x for q in seqs for x in sub]
            if len(seqs) > MAX_EXPANSIONS:
                raise NotExpressible(f"rule {sym} has too many alternatives to write as one pattern")
        out.extend(seqs)
    return out


def _terminals_under(sym: str, rules: dict, specs: dict, stop: set) -> set:
    seen, out, todo = set(), set(), [sym]
    while todo:
        r = todo.pop()
        if r in seen:
            continue
        seen.add(r)
        for exp in rules.get(r, []):
            for x in exp:
                if x in stop:
                    continue
                if x in specs:
                    out.add(x)
                else:
                    todo.append(x)
    return out


def _is_repeat(sym: str, rules: dict, leaves: set) -> bool:
    """A helper rule Lark made for ``x*`` / ``x+``: every expansion is x or (itself, x)."""
    exps = rules.get(sym, [])
    items = {tuple(e[1:]) if e and e[0] == sym else tuple(e) for e in exps}
    return bool(items) and all(x in leaves for item in items for x in item)


def _repeat_item(sym: str, rules: dict) -> tuple:
    exps = rules[sym]
    return next(tuple(e[1:]) if e and e[0] == sym else tuple(e) for e in exps)


def _lit_re(spec) -> str:
    alts = sorted(spec.spellings or (spec.literal,), key=len, reverse=True)
    esc = [regex.escape(a) for a in alts]
    return esc[0] if len(esc) == 1 else "(?:" + "|".join(esc) + ")"


def _piece(sym: str, specs: dict, group: str | None = None) -> str:
    spec = specs[sym]
    if spec.kind == LITERAL:
        return _lit_re(spec)
    if spec.kind == PATTERN:
        src = spec.source
        if not group and _blank(spec):
            return r"\s*"
        return f"(?P<{group}>{src})" if group else f"(?:{src})"
    if spec.kind == TEXT and group == "name":
        # a name run ends where the grammar's next marker begins; the pattern takes what the name policy
        # accepts (and the whitespace toolgram strips from a name)
        return rf"\s*(?P<name>{_NAME_POLICY[0]})\s*"
    raise NotExpressible(f"terminal {sym} ({spec.kind}) has no place in a marker pattern")


def _blank(spec) -> bool:
    """A pattern terminal that matches only whitespace (a separator the template writes as \\s*)."""
    return spec.kind == PATTERN and regex.fullmatch(spec.source, "\n") is not None and \
        regex.fullmatch(spec.source, "x") is None


def _alternation(parts: list[str]) -> str:
    parts = [p.replace(r"\s*\s*", r"\s*") for p in parts]
    # a whitespace run that may be absent is \s* already: forms that differ only by it are one form
    parts = list(dict.fromkeys(parts))
    parts = [p for p in parts if not any(q != p and q.count(r"\s*") > p.count(r"\s*")
                                         and q.replace(r"\s*", "") == p.replace(r"\s*", "") for q in parts)]
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _seq(seq, specs) -> str:
    out = []
    for s in seq:
        spec = specs[s]
        if spec.takes_name:
            out.append(_piece(s, specs, "name"))
        elif spec.takes_id:
            raise NotExpressible("a native call id in the markers (the spec's transform could carry it, but "
                                 "toolgram's export does not write ids)")
        else:
            out.append(_piece(s, specs))
    return "".join(out)


def _arg_pattern(arg_rule: str, rules: dict, specs: dict) -> tuple[str, dict]:
    pats = []
    typed = False
    for seq in _expand(arg_rule, rules, specs, set()):
        if not any(specs[s].role == "value" for s in seq):
            continue                          # (a key without a value: nothing the pattern can hold)
        out = []
        strip = None
        for s in seq:
            spec = specs[s]
            if spec.role == "key":
                out.append(_piece(s, specs, "key") if spec.kind != TEXT else "(?P<key>[^<>\\n]+?)")
            elif spec.role == "value":
                if spec.kind != TEXT:
                    raise NotExpressible(f"argument values are {spec.block or spec.kind} values (nested "
                                         "literals or JSON), which xml-inline's regex cannot delimit")
                strip = spec.strip
                out.append("(?P<value>.*?)")
            elif spec.kind == LITERAL:
                typed = typed or spec.arg_type is not None
                out.append(_lit_re(spec))
            elif spec.kind == PATTERN:
                out.append(r"\s*" if _blank(spec) else f"(?:{spec.source})")
            else:
                raise NotExpressible(f"terminal {s} in an argument has no regex")
        while "\\s*\\s*" in "".join(out):
            break
        src = "".join(out)
        if strip == "whitespace":
            src = src.replace("(?P<value>.*?)", r"\s*(?P<value>.*?)\s*")
        elif strip == "newline":
            src = src.replace("(?P<value>.*?)", r"\n?(?P<value>.*?)\n?")
        pats.append(src)
    if not pats:
        raise NotExpressible("no argument form carries a value")
    if typed:
        raise NotExpressible("argument markers say a value's type (string or JSON), which the spec cannot "
                             "express per argument")
    return _alternation(pats), {}


def to_response_template(name: str) -> dict:
    """The response template equivalent to bundled grammar ``name``; `NotExpressible` says why not."""
    g = registry.load(name)
    specs = g.terminals
    _NAME_POLICY[0] = g.policies.get("name_pattern") or _NAME_POLICY[0]
    if g.reasoning is not None and g.reasoning.channel:
        raise NotExpressible("reasoning is a channel labelled by the call syntax itself (one region per "
                             "message header), not a block with its own markers")
    lk = _lark(g)
    rules = _rules(lk)
    call = g.call_rule
    # markup the start rule reads outside calls (an end-of-turn token): the spec has no field that drops it
    stop = {call, g.region_rule, g.argument_rule} | {r.origin.name for r in lk.rules if r.alias == call}
    by_origin: dict = {}
    for r in lk.rules:
        by_origin.setdefault(r.origin.name, []).append(r)
    seen, todo, outside = set(), ["start"], set()
    while todo:
        name = todo.pop()
        if name in seen or name in stop:
            continue
        seen.add(name)
        for r in by_origin.get(name, ()):
            for sym in r.expansion:
                if not sym.is_term:
                    todo.append(sym.name)
                elif sym.name in specs and specs[sym.name].kind == LITERAL and not sym.name.startswith("TG_"):
                    outside.add(sym.name)
    outside = sorted(outside)
    if outside:
        raise NotExpressible(f"markup outside calls ({', '.join(repr(specs[t].literal) for t in outside)}) is "
                             f"dropped by the grammar; the spec has no field that drops it, so it would be content")
    # calls must stand between content runs (or be separated by whitespace only)
    region = g.region_rule
    if region and region != call:
        aliases = {r.origin.name for r in lk.rules if r.alias == call} | {call}
        for s in sorted(_terminals_under(region, rules, specs, aliases)):
            if True:
                spec = specs.get(s)
                if spec is None or not (spec.kind == PATTERN and regex.fullmatch(spec.source, "x") is None
                                        and regex.fullmatch(spec.source, "\n") is not None):
                    shown = repr(spec.literal) if spec is not None and spec.literal else s
                    raise NotExpressible("calls sit inside a section with its own markers or separators "
                                         f"({shown}); the spec reads each call as a flat region")
    seqs = _expand(call, rules, specs, {g.argument_rule} if g.argument_rule else set())
    opens, closes, kinds = [], [], set()
    field: dict = {"repeats": True}
    for seq in seqs:
        body = [i for i, s in enumerate(seq) if (s in specs and specs[s].kind == BLOCK)
                or s == g.argument_rule or (s.startswith("__") and s not in specs)]
        if not body:
            if any(specs[s].takes_name for s in seq if s in specs):
                body = [max(i for i, s in enumerate(seq) if specs[s].takes_name) + 1]
                seq = seq[:body[0]] + ["<noargs>"] + seq[body[0]:]
            else:
                raise NotExpressible("a call form without arguments or a name")
        i, j = body[0], body[-1]
        head, tail = seq[:i], seq[j + 1:]
        mid = seq[i:j + 1]
        first = mid[0]
        if first == "<noargs>":
            kinds.add("noargs")
        elif first in specs and specs[first].kind == BLOCK:
            spec = specs[first]
            if len(mid) != 1:
                raise NotExpressible("a call's body is more than one value")
            if spec.block == "json_call":
                kinds.add(("json_call", spec.options.get("name_keys", ["name"])[0],
                           (spec.options.get("arguments_keys") or ["arguments"])[0]))
            elif spec.block == "json":
                kinds.add("json")
            else:
                raise NotExpressible(f"arguments are {spec.block} values (Python/relaxed literals), which the "
                                     "spec's json parser does not read")
        else:
            kinds.add("xml")
        if not tail or all(specs[s].kind == PATTERN for s in tail):
            raise NotExpressible("a call has no closing marker: a region without a closer runs to the end of "
                                 "the text, so parallel calls and text after a call cannot be read")
        opens.append(_seq(head, specs))
        closes.append(_seq(tail, specs))
    kinds.discard("noargs") if len(kinds) > 1 else None
    if len(kinds) != 1:
        raise NotExpressible(f"call forms read their arguments in different ways ({sorted(map(str, kinds))})")
    kind = kinds.pop()
    if "(?P<name>" in "".join(closes):
        raise NotExpressible("the function name follows the arguments")
    has_name = any("(?P<name>" in o for o in opens)
    if isinstance(kind, tuple):
        if has_name:
            raise NotExpressible("a name marker and a JSON call object in one call")
        field.update(content="json", transform={"type": "function", "function": "{content}"})
        if (kind[1], kind[2]) != ("name", "arguments"):
            field["transform"] = {"type": "function", "function": {"name": "{content.%s}" % kind[1],
                                                                   "arguments": "{content.%s}" % kind[2]}}
    else:
        if not all("(?P<name>" in o for o in opens):
            raise NotExpressible("a call form without a function name")
        field["transform"] = {"type": "function", "function": {"name": "{name}", "arguments": "{content}"}}
        if kind in ("json", "noargs"):
            field["content"] = "json"
        else:
            tag, _ = _arg_pattern(g.argument_rule, rules, specs)
            field.update(content="xml-inline", content_args={"tag_pattern": tag})
    field["open_pattern"] = _alternation(opens)
    field["close_pattern"] = _alternation(closes)
    fields: dict = {}
    notes = []
    r = g.reasoning
    if r is not None:
        if not r.open or not r.close:
            raise NotExpressible("the reasoning block has no opening marker")
        # "thinking": the name transformers' serving reads reasoning from and the only one vLLM's hf parser routes
        fields["thinking"] = {"open": r.open, "close": r.close, "content": "text"}
        if r.starts_inside:
            notes.append("the output starts inside reasoning when the prompt opened it: pass the prompt as prefix")
        if r.ends_at_call:
            notes.append("a call marker inside unclosed reasoning does not end it in the spec")
    fields["tool_calls"] = field
    fields["content"] = {"content": "text"}
    template = {"defaults": {"role": "assistant"},
                "start_anchor_pattern": r"(?!)",      # the grammar does not know the chat template's header
                "fields": fields}
    # the spec needs the name group when the transform uses it, and accepts no other group; its readers
    # (transformers, toolgram's importer) compile patterns with Python's re, which refuses a group name twice
    try:
        for key in ("open_pattern", "close_pattern"):
            re.compile(field[key], re.DOTALL)
    except re.error as e:
        raise NotExpressible(f"the derived pattern is not a Python regex ({e}): a call captures the "
                             f"same group in two alternatives") from None
    if notes:
        template["_toolgram_notes"] = notes
    return template


def export(name: str) -> dict:
    """The template without toolgram's notes (what goes into tokenizer_config.json)."""
    t = to_response_template(name)
    t.pop("_toolgram_notes", None)
    return t


def export_table() -> dict:
    """``{grammar: (template or None, reason or notes)}`` for every bundled grammar."""
    out = {}
    for name in registry.grammar_names():
        try:
            t = to_response_template(name)
            out[name] = (t, "; ".join(t.pop("_toolgram_notes", [])))
        except NotExpressible as e:
            out[name] = (None, str(e))
    return out

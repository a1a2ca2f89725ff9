"""Grammar corpora: example outputs with their expected parse, run by ``toolgram check`` and the tests.

A corpus is ``grammars/corpus/<grammar>.yaml``::

    tools:                        # optional: tool sets of this corpus (besides corpus/_tools.yaml)
      mine: [{type: function, function: {name: f, parameters: {...}}}]
    cases:
      - name: one call after text
        output: "Let me look.\\n<tool_call>\\n{...}\\n</tool_call>"
        tools: weather            # a tool set of grammars/corpus/_tools.yaml, or an inline list
        chunks: ["Let me look.\\n<tool_", "call>..."]   # optional: deltas to stream (a split marker)
        reasoning: false          # optional: the request turned reasoning off
        prompt: "<think>\n"       # optional: the rendered prompt's tail (decides the start state)
        load: {reasoning: qwen3}  # optional: compose a reasoning grammar for this case
        expect:
          content: "Let me look.\\n"     # exact, or null
          reasoning: null
          calls:
            - {name: get_weather, arguments: {city: Paris}}   # arguments compared as JSON values
            - {name: f, arguments_text: '{"a": 1}', id: "functions.f:0", truncated: true}
            - {name: g, arguments: {}, truncated: true, malformed: true}   # its text broke (see docs)

Every case is checked one-shot, streamed in its ``chunks`` (if any), one character at a time, and as a whole
message in one delta; the streamed deltas must rebuild the one-shot result exactly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from toolgram.api import Grammar, load
from toolgram.compiler import registry


@dataclass
class Case:
    grammar: str
    name: str
    output: str
    expect: dict
    tools: list | None = None
    chunks: list | None = None
    reasoning: bool = True
    load: dict = field(default_factory=dict)
    prompt: str | None = None      # the rendered prompt's tail: decides whether the output starts in reasoning

    @property
    def id(self) -> str:
        return f"{self.grammar}:{self.name}"


def tool_sets() -> dict:
    path = registry.grammars_dir() / "corpus" / "_tools.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def corpus_path(grammar: str) -> Path:
    """A bundled grammar's corpus; for a grammar file, its ``corpus`` field (relative to the file) or
    ``corpus/<stem>.yaml`` beside it."""
    if registry._is_path(grammar):
        path = Path(grammar)
        named = registry.read(path)[0].get("corpus")
        return path.parent / (named or f"corpus/{path.stem}.yaml")
    return registry.grammars_dir() / "corpus" / f"{grammar}.yaml"


def load_cases(grammar: str, sets: dict | None = None) -> list[Case]:
    """The corpus cases of a bundled grammar (an alias without its own corpus runs its target's cases)."""
    path = corpus_path(grammar)
    if not path.exists():
        if registry._is_path(grammar):
            return []
        target = registry.read(registry.grammar_path(grammar))[0].get("alias_of")
        if not target:
            return []
        return [Case(**{**c.__dict__, "grammar": grammar}) for c in load_cases(target, sets)]
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    sets = dict(tool_sets() if sets is None else sets)
    sets.update(data.get("tools") or {})          # a corpus may define its own tool sets
    cases = []
    for raw in data.get("cases", []):
        tools = raw.get("tools")
        if isinstance(tools, str):
            tools = sets[tools]
        cases.append(Case(grammar=grammar, name=raw["name"], output=raw["output"], expect=raw.get("expect", {}),
                          tools=tools, chunks=raw.get("chunks"), reasoning=raw.get("reasoning", True),
                          load=raw.get("load", {}), prompt=raw.get("prompt")))
    return cases


def counter_ids():
    n = iter(range(1 << 30))
    return lambda: f"call_{next(n)}"


def grammar_for(case: Case) -> Grammar:
    if "reasoning" in case.load:
        return load(case.grammar, reasoning=case.load["reasoning"])
    return load(case.grammar)


def stream_deltas(g: Grammar, case: Case, parts) -> tuple[list[dict], object]:
    p = g.stream(case.tools, new_id=counter_ids(), reasoning=case.reasoning, prompt=case.prompt)
    deltas: list[dict] = []
    for part in parts:
        deltas += p.feed(part)
    deltas += p.close()
    return deltas, p.result


def rebuild(deltas: list[dict]) -> dict:
    """What a client accumulates from streamed deltas."""
    content, reasoning, calls = [], [], {}
    for d in deltas:
        if "content" in d:
            content.append(d["content"])
        if "reasoning_content" in d:
            reasoning.append(d["reasoning_content"])
        for tc in d.get("tool_calls", ()):
            c = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
            if "id" in tc:
                c["id"] = tc["id"]
            fn = tc.get("function", {})
            if "name" in fn:
                c["name"] = fn["name"]
            c["arguments"] += fn.get("arguments", "")
    return {"content": "".join(content) or None, "reasoning": "".join(reasoning) or None,
            "calls": [calls[i] for i in sorted(calls)]}


def summary(result) -> dict:
    return {"content": result.content, "reasoning": result.reasoning_content,
            "calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in result.tool_calls]}


def check_expectation(case: Case, result) -> list[str]:
    """Differences between a result and the case's expectation."""
    problems = []
    exp = case.expect
    if "content" in exp and result.content != exp["content"]:
        problems.append(f"content {result.content!r} != expected {exp['content']!r}")
    if "reasoning" in exp and result.reasoning_content != exp["reasoning"]:
        problems.append(f"reasoning {result.reasoning_content!r} != expected {exp['reasoning']!r}")
    want = exp.get("calls", [])
    got = result.tool_calls
    if len(got) != len(want):
        problems.append(f"{len(got)} calls {[c.name for c in got]} != expected {len(want)} "
                        f"{[w.get('name') for w in want]}")
        return problems
    for i, (c, w) in enumerate(zip(got, want)):
        try:
            args = json.loads(c.arguments)
        except ValueError:
            problems.append(f"call {i}: arguments are not JSON: {c.arguments!r}")
            continue
        if not isinstance(args, dict):
            problems.append(f"call {i}: arguments are not an object: {c.arguments!r}")
        if c.name != w.get("name"):
            problems.append(f"call {i}: name {c.name!r} != {w.get('name')!r}")
        if "arguments" in w and args != w["arguments"]:
            problems.append(f"call {i}: arguments {args!r} != {w['arguments']!r}")
        if "arguments_text" in w and c.arguments != w["arguments_text"]:
            problems.append(f"call {i}: arguments text {c.arguments!r} != {w['arguments_text']!r}")
        if "id" in w and c.id != w["id"]:
            problems.append(f"call {i}: id {c.id!r} != {w['id']!r}")
        if c.truncated != w.get("truncated", False):
            problems.append(f"call {i}: truncated {c.truncated} != {w.get('truncated', False)}")
        if c.malformed != w.get("malformed", False):
            problems.append(f"call {i}: malformed {c.malformed} != {w.get('malformed', False)}")
        if "unknown" in w and c.unknown != w["unknown"]:
            problems.append(f"call {i}: unknown {c.unknown} != {w['unknown']}")
    return problems


def check_case(case: Case) -> list[str]:
    """All problems with one case: expectation, streaming equivalence, segments, JSON validity."""
    g = grammar_for(case)
    result = g.parse(case.output, case.tools, new_id=counter_ids(), reasoning=case.reasoning, prompt=case.prompt)
    problems = check_expectation(case, result)
    if "".join(t for _, t in result.segments) != case.output:
        problems.append("segments do not concatenate to the output")
    one = summary(result)
    splits = {"whole": [case.output], "1-char": list(case.output)}
    if case.chunks:
        if "".join(case.chunks) != case.output:
            problems.append("chunks do not concatenate to the output")
        splits["chunks"] = case.chunks
    for label, parts in splits.items():
        deltas, _ = stream_deltas(g, case, parts)
        if rebuild(deltas) != one:
            problems.append(f"streamed ({label}) differs from one-shot: {rebuild(deltas)!r} != {one!r}")
    return problems


def check(grammars: list[str] | None = None) -> dict[str, list[tuple[Case, list[str]]]]:
    """Run corpora; returns, per grammar, each case with its problems (empty: passed)."""
    names = grammars or registry.grammar_names()
    sets = tool_sets()
    report = {}
    for name in names:
        report[name] = [(case, check_case(case)) for case in load_cases(name, sets)]
    return report


def long_argument_template(name: str):
    """A corpus case cut around one of its string arguments: ``(prefix, suffix, tools)`` such that
    ``prefix + "x" * n + suffix`` is one call whose argument holds the n characters (None: no such case).
    The benchmarks and the linear-work test grow arguments with it."""
    g = load(name)
    for case in load_cases(name):
        r = g.parse(case.output, case.tools)
        for call in r.tool_calls:
            if call.truncated:
                continue
            args = json.loads(call.arguments)
            for value in args.values():
                if isinstance(value, str) and len(value) >= 3 and case.output.count(value) == 1:
                    i = case.output.index(value)
                    prefix, suffix = case.output[:i], case.output[i + len(value):]
                    check = g.parse(prefix + "x" * 100 + suffix, case.tools)
                    if check.tool_calls and "x" * 100 in check.tool_calls[0].arguments:
                        return prefix, suffix, case.tools
    return None

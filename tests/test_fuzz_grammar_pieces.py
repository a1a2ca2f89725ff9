"""Hypothesis fuzzing of every bundled grammar with model outputs built from the grammar's own pieces.

Generators (`outputs`, `substituted`, `marker_free`) draw from each grammar's compiled markers (every spelling),
partial markers (prefixes and suffixes), its corpus (slices of real outputs, and real calls whose arguments are
replaced by hostile JSON), JSON fragments, nested quotes, unicode (the fullwidth DeepSeek markers, bidi and
zero-width characters, emoji, NUL), huge numbers, deep nesting and empty values.  Properties (`check`):

* no exception, for the one-shot parse and for streams in random splits (1-character deltas included);
* ``result.segments`` concatenate to the input, and content / reasoning are exactly their segments' text;
* streaming equals one-shot: the deltas rebuild the one-shot result (content, reasoning, ids, names, arguments);
* every argument string is a JSON object (huge numbers allowed) and all emitted text is valid UTF-8;
* a real call whose arguments are replaced by any JSON object (markers inside its strings included) is still
  that call, with exactly those arguments (a marker inside a JSON string is data);
* no call is invented from text that contains none of the markers that start a call (`call_starts`).

The CI budget is small (about 30 s for all grammars); ``TOOLGRAM_FUZZ_SCALE=N`` multiplies every example
count, and ``benchmarks/fuzz_long.py`` runs the same generators and properties for >= 10^5 inputs per grammar
(figures in docs/reliability.md).  Lone surrogate escapes (``"\\ud800"``: six ASCII characters a model can write)
are generated; raw surrogates are not (model output is decoded UTF-8, which cannot hold them).
"""
from __future__ import annotations

import json
import os
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import toolgram
from toolgram import corpus
from toolgram.ir import BLOCK, LITERAL

GRAMMARS = toolgram.grammars()
SCALE = float(os.environ.get("TOOLGRAM_FUZZ_SCALE", "1"))

# -- pieces -------------------------------------------------------------------------------------------

JSON_PIECES = [
    "{", "}", "[", "]", '"', ":", ",", " ", "\n", "\\", '\\"', '\\\\', '"name"', '"arguments"', '"parameters"',
    '"get_weather"', '{"city": "Paris"}', "true", "false", "null", "1", "-2.5e3", "0", "-0.0e-0", '""', "{}", "[]",
    "''", "'", "(", ")", "=", ";", "functions.f:0", "get_weather", '"\\u00e9"', '"\\ud83d\\ude00"',
    '"\\ud800"', '"x\\udfff"', "'\\ud800'", '"\\n\\t"',
    '"\\"\\\\\\""', "'\\''", '"\'"', "'\"'", '{"a": "\\"}\\""}', '{"a": {"b": [1, {"c": null}]}}',
]
HUGE_NUMBERS = ["1" + "0" * 400, "1e999999", "-1E-999999", "123456789012345678901234567890.123456789e-300",
                "9" * 4400, "0." + "0" * 300 + "1", "-0", "1e+0001"]
UNICODE = ["\u676d\u5dde", "\u00e9", "e\u0301", "\U0001F600", "\u202e", "\u200b", "\ufeff", "\u2028", "\x00", "\x7f",
           "\t", "\r\n", "\uff5c", "\u2581", "<\uff5ctool\u2581call\u2581begin\uff5c>", "<\uff5cDSML\uff5cinvoke",
           "\uff1ctool_call\uff1e", "\u00a0", "\U0010FFFF"]
DEEP = [("[" * n, "]" * n) for n in (40, 300)] + [('{"a": ' * n, "}" * n) for n in (40, 200)]


@lru_cache(maxsize=None)
def markers(name: str) -> tuple:
    c = toolgram.load(name).compiled
    found = {x for s in c.terminals.values() if s.kind == LITERAL for x in s.spellings}
    return tuple(sorted(found))


@lru_cache(maxsize=None)
def call_starts(name: str) -> tuple:
    """What can start a call from content: the trigger markers, and the first characters of encoding blocks
    that content may be followed by (a bare ``{`` for grammars whose calls are plain JSON objects)."""
    c = toolgram.load(name).compiled
    starts = set(c.triggers)
    for lexer in c.tables.lexers:
        if lexer.safe:
            for _, first in lexer.blocks:
                starts.update(ch for ch in (first or "") if not ch.isspace())
    return tuple(sorted(starts))


def output_starts(name: str) -> tuple:
    """Literals that may begin the output itself (mistral reads a bare ``[`` list there as calls): a marker-free
    text does not begin with one."""
    c = toolgram.load(name).compiled
    return tuple(sorted({lit for state in c.tables.start_states.values()
                         for lit in c.tables.lexers[state].literal_terms}))


def known_issue(name: str, text: str) -> str | None:
    """Inputs that reach a bug recorded (xfail) in tests/test_regressions_found.py: skipped here, counted by the
    long run.  None open now (the overlong key token bug is fixed); a new one gets a rule here until its fix."""
    return None


@lru_cache(maxsize=None)
def cases(name: str) -> tuple:
    return tuple(corpus.load_cases(name))


@lru_cache(maxsize=None)
def templates(name: str) -> tuple:
    """Corpus calls whose arguments appear once, verbatim, in the output: (case, prefix, suffix, call index)."""
    out = []
    for case in cases(name):
        g = corpus.grammar_for(case)
        r = g.parse(case.output, case.tools, new_id=corpus.counter_ids(), reasoning=case.reasoning)
        spans, at = [], 0                          # where the call segments lie in the output
        for kind, text in r.segments:
            if kind == "call":
                spans.append((at, at + len(text)))
            at += len(text)
        for i, call in enumerate(r.tool_calls):
            if call.truncated or call.arguments in ("{}", "") or case.output.count(call.arguments) != 1:
                continue
            k = case.output.index(call.arguments)
            if any(a <= k and k + len(call.arguments) <= b for a, b in spans):
                out.append((case, case.output[:k], case.output[k + len(call.arguments):], i))
    return tuple(out)


# -- generators -----------------------------------------------------------------------------------------

def _partial(lits):
    """A proper prefix or suffix of a marker (what a split or a broken marker leaves)."""
    lits = [x for x in lits if len(x) > 1] or ["<>"]
    return st.tuples(st.sampled_from(lits), st.integers(1, 64), st.booleans()).map(
        lambda t: t[0][: 1 + t[1] % (len(t[0]) - 1)] if t[2] else t[0][-(1 + t[1] % (len(t[0]) - 1)):])


def _slice(texts):
    texts = [t for t in texts if t] or [""]
    return st.tuples(st.sampled_from(texts), st.integers(0, 10_000), st.integers(0, 80)).map(
        lambda t: t[0][t[1] % (len(t[0]) + 1):][: t[2]])


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


def outputs(name: str):
    """Model outputs assembled from the grammar's pieces."""
    lits = list(markers(name))
    piece = st.one_of(
        st.sampled_from(lits or ["<>"]),
        _partial(lits),
        st.sampled_from(JSON_PIECES + UNICODE + HUGE_NUMBERS),
        st.sampled_from(DEEP).map(lambda d: d[0]), st.sampled_from(DEEP).map(lambda d: d[1]),
        _slice([c.output for c in cases(name)]),
        st.sampled_from([c.output for c in cases(name)] or [""]),
        _TEXT,
    )
    return st.lists(piece, max_size=30).map("".join)


def _json_text(depth_cap: int = 4):
    """JSON text (an object) with hostile strings: markers of every grammar, nested quotes, unicode."""
    everything = sorted({m for g in GRAMMARS for m in markers(g)})
    string = st.one_of(
        st.text(st.characters(), max_size=12),          # (surrogates included: written as escapes, below)
        st.lists(st.sampled_from(everything + UNICODE + ['"', "\\", "'", "</", "{", "}"]), max_size=5).map("".join),
    ).flatmap(lambda s: st.booleans().map(
        lambda a: json.dumps(s, ensure_ascii=a or any("\ud800" <= c <= "\udfff" for c in s))))
    number = st.one_of(st.sampled_from(HUGE_NUMBERS[:4] + ["0", "-1", "3.25", "1e5"]),
                       st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?", fullmatch=True))
    ws = st.sampled_from(["", " ", "\n", "  ", "\t"])
    leaf = st.one_of(string, number, st.sampled_from(["true", "false", "null", '""', "[]", "{}"]),
                     st.sampled_from([d[0] + d[1] for d in DEEP[:2]]))

    def containers(inner):
        arr = st.tuples(st.lists(inner, max_size=4), ws).map(lambda t: "[" + ("," + t[1]).join(t[0]) + "]")
        obj = st.tuples(st.lists(st.tuples(string, inner), max_size=4, unique_by=lambda kv: kv[0]), ws).map(
            lambda t: "{" + ("," + t[1]).join(f"{k}:{t[1]}{v}" for k, v in t[0]) + "}")
        return st.one_of(arr, obj)

    value = st.recursive(leaf, containers, max_leaves=12)
    return st.tuples(st.lists(st.tuples(string, value), min_size=1, max_size=5, unique_by=lambda kv: kv[0]), ws).map(
        lambda t: "{" + ("," + t[1]).join(f"{k}:{t[1]}{v}" for k, v in t[0]) + "}")


def substituted(name: str):
    """A real corpus call whose arguments are replaced by generated JSON: (template number, arguments); see
    `substitute`."""
    return st.tuples(st.integers(0, len(templates(name)) - 1), _json_text())


def substitute(name: str, number: int, args: str):
    """(case, the output with the call's arguments replaced by ``args``, the call's index)."""
    case, prefix, suffix, index = templates(name)[number]
    return case, prefix + args + suffix, index


def marker_free(name: str):
    """Text from the grammar's pieces that holds none of the markers that start a call, and does not begin with
    what may start a call at the beginning of the output."""
    starts = call_starts(name)
    lits = [x for x in markers(name) if not any(s in x for s in starts)]
    pool = [p for p in JSON_PIECES + UNICODE + HUGE_NUMBERS + [d[0] for d in DEEP] + [d[1] for d in DEEP]
            if not any(s in p for s in starts)]
    others = sorted({m for g in GRAMMARS for m in markers(g) if not any(s in m for s in starts)})
    piece = st.one_of(st.sampled_from(lits or ["."]), _partial(list(markers(name))), st.sampled_from(pool),
                      st.sampled_from(others), _TEXT)
    first = output_starts(name)
    return st.lists(piece, max_size=25).map("".join).filter(
        lambda t: not any(s in t for s in starts) and not t.startswith(first))


def splits(text: str, points: list[int]) -> list[list[str]]:
    """The random split given by ``points``, and 1-character deltas for short texts."""
    pts = sorted({x % (len(text) + 1) for x in points})
    out = [[text[a:b] for a, b in zip([0] + pts, pts + [len(text)])]]
    if len(text) <= 400:
        out.append(list(text))
    return out


# -- properties -----------------------------------------------------------------------------------------

def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def json_object(text: str):
    """The parsed object (numbers kept as text: a 5000-digit integer is valid JSON); raises if not one."""
    value = json.loads(text, parse_int=str, parse_float=str, parse_constant=_no_constant,
                       object_pairs_hook=lambda pairs: pairs)
    assert isinstance(value, list) and (not value or isinstance(value[0], tuple)), text[:200]
    return value


def _utf8(text):
    if text is not None:
        text.encode("utf-8")


def check(g, text: str, parts_list, tools=None, reasoning: bool = True):
    """Every property of one input; returns the one-shot result."""
    one = g.parse(text, tools, new_id=corpus.counter_ids(), reasoning=reasoning)
    segments = one.segments
    assert "".join(t for _, t in segments) == text
    assert (one.content or "") == "".join(t for k, t in segments if k == "content")
    assert (one.reasoning_content or "") == "".join(t for k, t in segments if k == "reasoning")
    _utf8(one.content)
    _utf8(one.reasoning_content)
    for i, call in enumerate(one.tool_calls):
        assert call.index == i and call.name and call.id
        json_object(call.arguments)
        _utf8(call.arguments)
        _utf8(call.name)
    want = corpus.summary(one)
    for parts in parts_list:
        p = g.stream(tools, new_id=corpus.counter_ids(), reasoning=reasoning)
        deltas = []
        for part in parts:
            deltas += p.feed(part)
        deltas += p.close()
        assert corpus.rebuild(deltas) == want, (text, parts)
    return one


def check_substituted(g, case, text, index, args, parts_list):
    one = check(g, text, parts_list, case.tools, case.reasoning)
    base = g.parse(case.output, case.tools, new_id=corpus.counter_ids(), reasoning=case.reasoning)
    assert [c.name for c in one.tool_calls] == [c.name for c in base.tool_calls], text
    assert json_object(one.tool_calls[index].arguments) == json_object(args), text
    assert one.content == base.content and one.reasoning_content == base.reasoning_content, text


def check_marker_free(g, text, parts_list):
    one = check(g, text, parts_list)
    assert one.tool_calls == [], text
    assert all(kind != "call" for kind, _ in one.segments), text


# -- tests ----------------------------------------------------------------------------------------------

def budget(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


POINTS = st.lists(st.integers(0, 10_000), max_size=8)


@pytest.mark.parametrize("name", GRAMMARS)
def test_outputs_from_pieces(name):
    g = toolgram.load(name)

    @given(text=outputs(name), points=POINTS)
    @budget(50)
    def inner(text, points):
        assume(known_issue(name, text) is None)
        check(g, text, splits(text, points))
    inner()


@pytest.mark.parametrize("name", GRAMMARS)
def test_hostile_arguments_in_real_calls(name):
    if not templates(name):
        pytest.skip(f"{name}: no corpus call passes its arguments through verbatim (key/value or literal syntax)")

    @given(sub=substituted(name), points=POINTS)
    @budget(25)
    def inner(sub, points):
        case, text, index = substitute(name, *sub)
        assume(known_issue(name, text) is None)
        check_substituted(corpus.grammar_for(case), case, text, index, sub[1], splits(text, points))
    inner()


@pytest.mark.parametrize("name", GRAMMARS)
def test_no_call_without_a_call_marker(name):
    g = toolgram.load(name)

    @given(text=marker_free(name), points=POINTS)
    @budget(25)
    def inner(text, points):
        assume(known_issue(name, text) is None)
        check_marker_free(g, text, splits(text, points))
    inner()


def test_generators_reach_what_they_claim():
    """The pieces are there: every grammar has markers, DeepSeek's fullwidth ones among them, and most
    grammars have corpus calls to substitute into."""
    assert all(markers(n) for n in GRAMMARS)
    assert any("\uff5c" in m for m in markers("deepseek_v3"))
    assert sum(bool(templates(n)) for n in GRAMMARS) >= len(GRAMMARS) // 2
    assert all(call_starts(n) for n in GRAMMARS)
    assert "{" in call_starts("llama3_json")

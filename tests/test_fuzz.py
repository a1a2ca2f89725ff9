"""Fuzzing every grammar with text built from its own pieces: no exception, segments cover the input,
streaming equals one-shot under random splits, arguments are JSON objects, no call from marker-free text."""
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import toolgram
from toolgram import corpus
from toolgram.ir import LITERAL

GRAMMARS = toolgram.grammars()
JSON_PIECES = ['{', '}', '[', ']', '"', ':', ',', ' ', '\n', '\\', '\\"', '"name"', '"arguments"',
               '"parameters"', '"get_weather"', '{"city": "Paris"}', 'true', '1', '-2.5e3', 'null', '"x"',
               '\u676d\u5dde', '\u00e9', '\x00', '\t', ';', '=', '(', ')', "'", 'functions.f:0', 'get_weather']
PLAIN = st.text(alphabet=st.characters(blacklist_characters="{[<|", blacklist_categories=("Cs",)), max_size=40)


def pieces_of(name: str) -> list[str]:
    c = toolgram.load(name).compiled
    lits = sorted({s.literal for s in c.terminals.values() if s.kind == LITERAL})
    prefixes = [lit[: max(1, len(lit) // 2)] for lit in lits]
    return lits + prefixes + JSON_PIECES


def texts(name: str):
    pieces = pieces_of(name)
    return st.lists(st.one_of(st.sampled_from(pieces), st.text(max_size=6)), max_size=40).map("".join)


def run(name, text, parts, tools=None):
    g = toolgram.load(name)
    one = g.parse(text, tools, new_id=corpus.counter_ids())
    p = g.stream(tools, new_id=corpus.counter_ids())
    deltas = []
    for part in parts:
        deltas += p.feed(part)
    deltas += p.close()
    return one, deltas, p.result


def cut(text, points):
    pts = sorted({x % (len(text) + 1) for x in points})
    return [text[a:b] for a, b in zip([0] + pts, pts + [len(text)])]


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("name", GRAMMARS)
def test_fuzz_grammar_pieces(name):
    @given(text=texts(name), points=st.lists(st.integers(0, 400), max_size=8))
    @FUZZ
    def inner(text, points):
        one, deltas, streamed = run(name, text, cut(text, points))
        assert "".join(t for _, t in one.segments) == text
        assert "".join(t for _, t in streamed.segments) == text
        assert corpus.rebuild(deltas) == corpus.summary(one)
        for call in one.tool_calls:
            assert isinstance(json.loads(call.arguments), dict)
            assert call.name
    inner()


@pytest.mark.parametrize("name", GRAMMARS)
def test_no_call_from_marker_free_text(name):
    @given(text=PLAIN)
    @settings(max_examples=60, deadline=None)
    def inner(text):
        one, _, _ = run(name, text, [text])
        assert one.tool_calls == []
        assert (one.content or "") + (one.reasoning_content or "") == text
    inner()


@pytest.mark.parametrize("name", GRAMMARS)
def test_mutated_corpus_cases(name):
    cases = corpus.load_cases(name)

    @given(i=st.integers(0, len(cases) - 1), pos=st.integers(0, 10_000), junk=st.text(max_size=5),
           drop=st.integers(0, 5), points=st.lists(st.integers(0, 10_000), max_size=6))
    @FUZZ
    def inner(i, pos, junk, drop, points):
        text = cases[i].output
        k = pos % (len(text) + 1)
        text = text[:k] + junk + text[k + drop:]
        one, deltas, _ = run(name, text, cut(text, points), cases[i].tools)
        assert "".join(t for _, t in one.segments) == text
        assert corpus.rebuild(deltas) == corpus.summary(one)
        for call in one.tool_calls:
            assert isinstance(json.loads(call.arguments), dict)
    inner()


def mutate(rng, text: str, pieces: list[str]) -> str:
    for _ in range(rng.randint(1, 3)):
        k = rng.randint(0, len(text))
        if rng.random() < 0.5:
            junk = rng.choice(pieces)
        else:
            junk = "".join(rng.choice('ab{}[]"\\:, <>/\n|=') for _ in range(rng.randint(0, 4)))
        text = text[:k] + junk + text[k + rng.randint(0, 5):]
    return text


@pytest.mark.parametrize("name", GRAMMARS)
def test_random_mutations(name, count=400, seed=1234):
    """Seeded random edits of corpus cases with random splits (finds what shrinking strategies miss)."""
    import random
    rng = random.Random(f"{seed}-{name}")
    cases = corpus.load_cases(name)
    pieces = pieces_of(name)
    for _ in range(count):
        case = rng.choice(cases)
        text = mutate(rng, case.output, pieces)
        parts = cut(text, [rng.randint(0, len(text)) for _ in range(rng.randint(0, 8))])
        one, deltas, _ = run(name, text, parts, case.tools)
        assert corpus.rebuild(deltas) == corpus.summary(one), (text, parts)
        assert "".join(t for _, t in one.segments) == text
        for call in one.tool_calls:
            assert isinstance(json.loads(call.arguments), dict)


BREAKS = ['@', 'b"x"', '$$', '#!', '1e999x']   # brackets balanced: a break, not a new structure


@pytest.mark.parametrize("name", GRAMMARS)
def test_broken_call_keeps_its_siblings(name, count=60, seed=99):
    """The malformed-call rule (docs/grammar-format.md): text that breaks one call of a valid output never
    takes its siblings with it -- every other call is still read, with the same arguments -- and what becomes
    content comes only from the broken call's own region (never half of the call)."""
    import random
    rng = random.Random(f"{seed}-{name}")
    g = toolgram.load(name)
    cases = []
    for case in corpus.load_cases(name):
        r = g.parse(case.output, case.tools)
        if len(r.tool_calls) >= 2 and not r.recovered:
            cases.append((case, r))
    if not cases:
        pytest.skip(f"{name}: no corpus case with two well-formed calls")
    lits = {x for t in g.compiled.terminals.values() if t.kind == LITERAL for x in t.spellings if len(x) > 1}
    markers = re.compile("|".join(re.escape(x) for x in sorted(lits, key=len, reverse=True)))
    broke = 0
    for _ in range(count):
        case, r0 = rng.choice(cases)
        spans, at = [], 0                      # (kind, start, end) of each segment of the original
        for kind, text in r0.segments:
            spans.append((kind, at, at + len(text)))
            at += len(text)
        # a call that is not the first of its region (the first element decides whether a region is calls
        # at all: broken before its name, it and the region are content)
        calls, seen = [], False
        for kind, s, e in spans:
            if kind == "content":
                seen = False
            elif kind == "call":
                if seen and e - s >= 2:
                    calls.append((kind, s, e))
                seen = True
        if not calls:
            continue
        _, lo, hi = rng.choice(calls)
        k = rng.randint(lo + 1, hi - 1)
        if any(0 < k - m.start() < len(m.group()) for m in markers.finditer(case.output)):
            continue                            # inside a marker: that is a different output, not a break
        junk = rng.choice(BREAKS)
        text = case.output[:k] + junk + case.output[k:]
        one, deltas, _ = run(name, text, cut(text, [rng.randint(0, len(text)) for _ in range(4)]), case.tools)
        assert corpus.rebuild(deltas) == corpus.summary(one), text
        assert "".join(t for _, t in one.segments) == text
        # the region of the broken call: from the end of the content before it to the end of the content after
        before = max([e for kind, s, e in spans if kind == "content" and e <= lo] + [0])
        after = min([e for kind, s, e in spans if kind == "content" and s >= hi] + [len(case.output)])
        region = text[before:after + len(junk)]
        kept = [(c.name, json.loads(c.arguments)) for c in one.tool_calls]
        want = [(c.name, json.loads(c.arguments)) for c in r0.tool_calls]

        def within(sub, seq):
            it = iter(seq)
            return all(any(x == y for y in it) for x in sub)
        # every call but the broken one is still read, in order, with the same arguments
        assert any(within(want[:i] + want[i + 1:], kept) for i in range(len(want))), (text, kept, want)
        # what is content now: the original content, in order, plus only text of the broken call's region
        rest = "".join(t for kind, t in one.segments if kind == "content")
        for piece in [t for kind, t in r0.segments if kind == "content"]:
            i = rest.find(piece)
            assert i != -1, (text, piece)
            rest = rest[:i] + rest[i + len(piece):]
        it = iter(region)
        assert all(c in it for c in rest), (text, rest, region)
        broke += one.recovered > 0
    assert broke, f"none of {count} edits broke a call: the test checks nothing"

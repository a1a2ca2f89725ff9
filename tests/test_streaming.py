"""Streaming equals one-shot: for every corpus case and any split into deltas, the deltas rebuild the
one-shot result exactly, each call's arguments are valid JSON, and segments cover the output."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolgram import corpus

from conftest import ALL_CASES

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def split(text: str, cuts) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0] + points, points + [len(text)]) if b > a] or [""]


def check_split(case, parts):
    g = corpus.grammar_for(case)
    one = g.parse(case.output, case.tools, new_id=corpus.counter_ids(), reasoning=case.reasoning, prompt=case.prompt)
    deltas, streamed = corpus.stream_deltas(g, case, parts)
    assert corpus.rebuild(deltas) == corpus.summary(one)
    assert corpus.summary(streamed) == corpus.summary(one)
    assert "".join(t for _, t in streamed.segments) == case.output
    for call in streamed.tool_calls:
        assert isinstance(json.loads(call.arguments), dict)
    # every delta is a well-formed OpenAI delta
    for d in deltas:
        assert set(d) <= {"content", "reasoning_content", "tool_calls"} and d
        for tc in d.get("tool_calls", ()):
            assert isinstance(tc["index"], int)
            if "id" in tc:
                assert tc["type"] == "function" and tc["function"]["name"]


@given(data=st.data())
@SETTINGS
def test_random_splits(case, data):
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
    check_split(case, split(case.output, cuts))


def test_one_char_and_whole(case):
    check_split(case, list(case.output))
    check_split(case, [case.output])


@given(data=st.data())
@SETTINGS
def test_two_chunk_groupings(case, data):
    k = data.draw(st.integers(min_value=0, max_value=max(0, len(case.output))))
    check_split(case, [case.output[:k], case.output[k:]])


def test_cases_cover_streaming_variety():
    assert any(c.chunks for c in ALL_CASES)
    assert sum(1 for c in ALL_CASES if c.expect.get("calls")) >= 40

"""Differential tests: toolgram's reading of every imported public response template against the reference
implementation (transformers' parse_response and streaming ResponseParser), over every corpus case of the
template's family.  Same calls, content and reasoning -- or the case is in
tests/response_template_differences.yaml with its reason (and the difference is still there)."""
import pytest

from toolgram import corpus
from toolgram.response_templates import difference, normalize_result, reference_parse, reference_stream

from response_template_cases import TEMPLATES, cases_of, differences, grammar, imported

pytest.importorskip("transformers.utils.chat_parsing")

TABLE = differences()
IMPORTED = imported()
CASES = [pytest.param(key, case, id=f"{key}:{case.name}") for key in IMPORTED for case in cases_of(key)]


def test_every_imported_template_has_corpus_cases():
    # (a template whose family has no corpus would be tested by nothing here)
    assert {k for k in IMPORTED if cases_of(k)} == set(IMPORTED)
    assert len(CASES) > 150


@pytest.mark.parametrize("key,case", CASES)
def test_same_reading_or_listed(key, case):
    t = TEMPLATES[key]
    g = grammar(key)
    ours = normalize_result(g.parse(case.output, tools=case.tools))
    ref = reference_parse(t, case.output, "", case.tools)
    d = difference(ours, ref)
    entry = TABLE["cases"].get((key, case.name))
    if d is None:
        assert entry is None, f"stale expected difference (toolgram and the reference now agree): {entry}"
        return
    assert entry is not None, f"unexpected difference in {d}: toolgram {ours} reference {ref}"
    assert entry["part"] == d, f"listed as a difference in {entry['part']}, found in {d}"
    if entry["reason"] == "reference-raises":
        assert "error" in ref
    if entry["reason"] == "last-region-only":       # the reference's text is the last piece of ours
        assert ref[d] is None or (ours[d] or "").endswith(ref[d])


@pytest.mark.parametrize("key,case", CASES)
def test_streaming_reference_agrees_or_is_named(key, case):
    """The reference's streaming parser against its own one-shot reading, and toolgram's streaming (one
    character at a time) against the reference's one-shot reading."""
    t = TEMPLATES[key]
    one = reference_parse(t, case.output, "", case.tools)
    streamed = reference_stream(t, list(case.output), "", case.tools)
    named = {(e["template"], e["case"]) for e in TABLE["reference_streaming"]}
    if streamed != one:
        assert (key, case.name) in named, f"reference streaming differs from its one-shot: {streamed} vs {one}"
    else:
        assert (key, case.name) not in named, "stale reference-streaming entry"
    g = grammar(key)
    _, ours = corpus.stream_deltas(g, case, list(case.output))
    ours = normalize_result(ours)
    d = difference(ours, one)
    entry = TABLE["cases"].get((key, case.name))
    assert (d is None) == (entry is None) and (d is None or entry["part"] == d)


@pytest.mark.parametrize("key,case", CASES)
def test_imported_template_agrees_with_the_bundled_grammar(key, case):
    """Must hold: an imported template and toolgram's grammar of the same family read every corpus case of
    that family alike (text compared with whitespace runs squeezed), or the case is listed with its reason."""
    g = grammar(key)
    ours = normalize_result(g.parse(case.output, tools=case.tools, prompt=case.prompt))
    bundled = normalize_result(corpus.grammar_for(case).parse(case.output, case.tools, reasoning=case.reasoning,
                                                              prompt=case.prompt))
    d = difference(ours, bundled, loose_whitespace=True)
    entry = TABLE["bundled_cases"].get((key, case.name))
    if d is None:
        assert entry is None, f"stale expected difference: {entry}"
    else:
        assert entry is not None, f"unexpected difference in {d}: template {ours} grammar {bundled}"
        assert entry["part"] == d

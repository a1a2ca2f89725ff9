"""Constraints on their own: modes, syntaxes, schema features, errors, caching, the CLI."""
import json
import time

import pytest

import toolgram
from toolgram import ConstraintError
from toolgram.cli import main

from constraint_helpers import accepts, tokenizer_for

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                     "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
NAMED = {"type": "function", "function": {"name": "get_time"}}


def check(name, tools, choice, text, ok=True, **kw):
    g = toolgram.load(name)
    tok, _ = tokenizer_for(g)
    c = g.constraint(tools, choice, tokenizer=tok, **kw)
    problem = accepts(g, c.text, text)
    assert (problem is None) == ok, f"{choice}: {text!r}: {problem}"


def test_required_accepts_calls_and_refuses_text():
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    check("hermes", [WEATHER, TIME], "required", call)
    check("hermes", [WEATHER, TIME], "required", call + "\n" + call)
    check("hermes", [WEATHER, TIME], "required", "Sure! " + call, ok=False)           # no free text
    check("hermes", [WEATHER, TIME], "required", call + "\nDone.", ok=False)
    check("hermes", [WEATHER, TIME], "required", "", ok=False)                         # at least one call
    bad = '<tool_call>\n{"name": "get_weather", "arguments": {"days": 3}}\n</tool_call>'
    check("hermes", [WEATHER, TIME], "required", bad, ok=False)                        # city is required
    unknown = '<tool_call>\n{"name": "launch", "arguments": {}}\n</tool_call>'
    check("hermes", [WEATHER, TIME], "required", unknown, ok=False)


def test_required_allows_bounded_whitespace_where_content_would_be():
    """Whitespace before, between and after the calls (and after reasoning) is whitespace-only content to the
    parser: required accepts one run of it, at most the grammar's separator (hermes: 2), and no text."""
    call = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    check("hermes", [WEATHER, TIME], "required", "\n" + call + "\n\n")
    check("hermes", [WEATHER, TIME], "required", call + "\n\n" + call + " ")
    check("hermes", [WEATHER, TIME], "required", "\n\n\n" + call, ok=False)          # beyond the bound
    check("hermes", [WEATHER, TIME], "required", call + "\n\n\n\n" + call, ok=False)
    check("hermes", [WEATHER, TIME], NAMED, " " + call + "\n")
    check("hermes", [WEATHER, TIME], NAMED, " " + call + "\n" + call, ok=False)
    # a bare list may open mistral's output, and whitespace then [TOOL_CALLS] is still that whitespace as content
    # and the section's calls (the bare list's "[" is not read where the section marker stands)
    g = toolgram.load("mistral")
    section = '[TOOL_CALLS][{"name": "get_time", "arguments": {}}]'
    assert [c.name for c in g.parse(" " + section, [TIME]).tool_calls] == ["get_time"]
    check("mistral", [WEATHER, TIME], "required", " " + section)
    check("mistral", [WEATHER, TIME], "required", section)
    check("mistral", [WEATHER, TIME], "required", "   \n\n\n" + section, ok=False)   # beyond its bound (5)


def test_native_id_member_first_or_last():
    """The id member a grammar declares (id_keys) may come first or last, once."""
    for text in ('{"name": "get_time", "arguments": {}, "id": "a1B2c3D4e"}',
                 '{"id": "a1B2c3D4e", "arguments": {}, "name": "get_time"}'):
        check("apriel", [WEATHER, TIME], "required", "<tool_calls>[" + text + "]</tool_calls>")
    twice = '{"id": "a", "name": "get_time", "arguments": {}, "id": "b"}'
    check("apriel", [WEATHER, TIME], "required", "<tool_calls>[" + twice + "]</tool_calls>", ok=False)
    cohere = '<|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "get_time", "parameters": {}}\n]<|END_ACTION|>'
    check("command_r7b", [WEATHER, TIME], "required", cohere)
    assert toolgram.load("command_r7b").parse(cohere, [TIME]).tool_calls[0].id == "0"


def test_python_booleans_and_none_in_key_value_values():
    """Templates render {{ value }}: True / False / None, which the parser types by the schema."""
    flags = {"type": "function", "function": {"name": "flags", "parameters": {"type": "object", "properties": {
        "on": {"type": "boolean"}, "off": {"const": False}, "maybe": {"type": ["integer", "null"]}}}}}

    def call(on, off, maybe):
        return (f"<tool_call>\n<function=flags>\n<parameter=on>\n{on}\n</parameter>\n<parameter=off>\n{off}\n"
                f"</parameter>\n<parameter=maybe>\n{maybe}\n</parameter>\n</function>\n</tool_call>")
    check("qwen3_coder", [flags], "required", call("True", "False", "None"))
    check("qwen3_coder", [flags], "required", call("true", "false", "null"))
    check("qwen3_coder", [flags], "required", call("True", "True", "None"), ok=False)     # const false
    check("qwen3_coder", [flags], "required", call("Yes", "False", "None"), ok=False)
    r = toolgram.load("qwen3_coder").parse(call("True", "False", "None"), [flags])
    assert json.loads(r.tool_calls[0].arguments) == {"on": True, "off": False, "maybe": None}


def test_parallel_false_and_named_allow_exactly_one_call():
    call = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    check("hermes", [WEATHER, TIME], "required", call, parallel_tool_calls=False)
    check("hermes", [WEATHER, TIME], "required", call + "\n" + call, ok=False, parallel_tool_calls=False)
    check("hermes", [WEATHER, TIME], NAMED, call)
    check("hermes", [WEATHER, TIME], NAMED, call + "\n" + call, ok=False)
    other = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    check("hermes", [WEATHER, TIME], NAMED, other, ok=False)


def test_auto_is_free_text_until_a_marker_then_a_valid_call():
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    check("hermes", [WEATHER, TIME], "auto", "Just text, with <tags> and {braces}.")
    check("hermes", [WEATHER, TIME], "auto", "Let me check. " + call + " Done.")
    check("hermes", [WEATHER, TIME], "auto", "Let me check. <tool_call>oops</tool_call>", ok=False)
    check("hermes", [WEATHER, TIME], "auto", "Let me check. " + call, parallel_tool_calls=False)
    check("hermes", [WEATHER, TIME], "auto", call + call, ok=False, parallel_tool_calls=False)


def test_none_bans_markers():
    check("hermes", [WEATHER], "none", "Plain answer <b>bold</b> {x}.")
    check("hermes", [WEATHER], "none", 'Hi <tool_call>{"name": "get_weather"}</tool_call>', ok=False)
    check("kimi_k2", [WEATHER], "none", "text <|tool_calls_section_begin|>", ok=False)


def test_reasoning_first_then_a_call():
    g = toolgram.load("kimi_k2", reasoning="kimi_k25")
    tok, _ = tokenizer_for(g)
    c = g.constraint([WEATHER], "required", tokenizer=tok)
    call = ('<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>'
            '{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>')
    assert accepts(g, c.text, "I think I should check.</think>" + call) is None
    assert accepts(g, c.text, "I think" + call) is None                 # a call ends unclosed reasoning
    assert accepts(g, c.text, "I think</think>and talk") is not None     # but must call
    c = g.constraint([WEATHER], "required", tokenizer=tok, reasoning=False)
    assert accepts(g, c.text, call) is None


def test_marker_tokens_are_written_as_tokens():
    g = toolgram.load("hermes")
    tok, _ = tokenizer_for(g)
    c = g.constraint([WEATHER], "required", tokenizer=tok)
    assert f"<[{tok.token_to_id('<tool_call>')}]>" in c.text and '"<tool_call>"' not in c.text
    assert '"<tool_call>"' in g.constraint([WEATHER], "required").text


def test_kv_arguments_follow_the_schema():
    tools = [{"type": "function", "function": {"name": "book", "parameters": {
        "type": "object", "properties": {"to": {"type": "string", "enum": ["NYC", "LAX"]},
                                         "n": {"type": "integer"}, "first": {"type": "boolean"}},
        "required": ["to", "n"]}}}]
    ok = "<tool_call>book<arg_key>to</arg_key><arg_value>NYC</arg_value><arg_key>n</arg_key><arg_value>2</arg_value></tool_call>"
    check("glm47", tools, "required", ok)
    check("glm47", tools, "required", ok.replace("NYC", "SFO"), ok=False)                 # enum
    check("glm47", tools, "required", ok.replace(">2<", ">two<"), ok=False)              # integer
    check("glm47", tools, "required", ok.replace(
        "<arg_key>n</arg_key><arg_value>2</arg_value>", ""), ok=False)                    # required n
    check("glm47", tools, "required", ok.replace("</tool_call>", "<arg_key>first</arg_key>"
                                                 "<arg_value>true</arg_value></tool_call>"))


def test_schema_features_compile_and_accept():
    schema = {"type": "object", "$defs": {"pt": {"type": "object", "properties": {"x": {"type": "number"},
                                                                                   "y": {"type": "number"}},
                                                 "required": ["x", "y"]}},
              "properties": {"pts": {"type": "array", "items": {"$ref": "#/$defs/pt"}, "minItems": 1, "maxItems": 3},
                             "mode": {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "integer"}]},
                             "meta": {"type": "object", "properties": {"tag": {"type": "string", "maxLength": 8}}},
                             "n": {"type": "number", "minimum": 0, "maximum": 1}},
              "required": ["pts"]}
    tools = [{"type": "function", "function": {"name": "plot", "parameters": schema}}]
    args = {"pts": [{"x": 1, "y": 2.5}], "mode": 3, "meta": {"tag": "abc"}, "n": 0.5}
    text = '<tool_call>\n{"name": "plot", "arguments": ' + json.dumps(args) + '}\n</tool_call>'
    check("hermes", tools, "required", text)
    bad = dict(args, n=2)
    check("hermes", tools, "required", text.replace(json.dumps(args), json.dumps(bad)), ok=False)
    long_tag = dict(args, meta={"tag": "abcdefghij"})
    check("hermes", tools, "required", text.replace(json.dumps(args), json.dumps(long_tag)), ok=False)
    # the same schema in a Python-literal grammar and a key/value grammar
    check("pythonic", tools, "required", "[plot(pts=[{'x': 1, 'y': 2.5}], mode=3, n=0.5)]")
    check("glm47", tools, "required",
          '<tool_call>plot<arg_key>pts</arg_key><arg_value>[{"x": 1, "y": 2.5}]</arg_value></tool_call>')


def test_many_tools_build_fast_and_cache():
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "parameters": {
        "type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}}} for i in range(24)]
    g = toolgram.load("hermes")
    c1 = g.constraint(tools, "required")
    assert all(f'tool_{i}\\"' in c1.text for i in range(24))
    t = time.perf_counter()
    c2 = g.constraint(tools, "required")
    assert c2 is c1 and time.perf_counter() - t < 0.05


SHARED_SAMPLES = {
    "qwen3_coder": {
        True: ["<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n"
               "</parameter>\n</function>\n</tool_call>",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</tool_call>",
               "Sure. <function=get_time>\n</function>"],
        False: ["<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n9\n"
                "</parameter>\n</function>\n</tool_call>",
                "<tool_call>\n<function=launch>\n</function>\n</tool_call>"]},
    "hermes": {
        True: ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
               'Sure. <tool_call>{"arguments": {"city": "Rome", "days": 2}, "name": "get_weather"}</tool_call>'],
        False: ['<tool_call>{"arguments": {"city": "Rome", "days": 9}, "name": "get_weather"}</tool_call>',
                '<tool_call>{"name": "get_weather", "arguments": {"days": 2}}</tool_call>']},
}


@pytest.mark.parametrize("name", sorted(SHARED_SAMPLES))
def test_shared_nodes_become_rules_with_the_same_language(name):
    """A node the rules reach from several places (a tool's arguments in each call form, the arguments object
    in both key orders; equal nodes built apart too) is written once, as a rule of its own: the text is
    smaller, and llguidance accepts exactly what it accepts from the same rules written with nothing shared."""
    from toolgram.compiler.constraint import build_rules
    from toolgram.compiler.constraint.passes import lazy_heads
    from toolgram.request import parse_request
    from toolgram.compiler.constraint.emit import to_gbnf, to_lark

    g = toolgram.load(name)
    tok, _ = tokenizer_for(g)
    tokens = {k: v for k, v in tok.get_vocab().items() if len(k) > 1 and not k.isalnum()}
    rules = build_rules(g.compiled, parse_request([WEATHER, TIME], "auto"))
    lazy = lazy_heads(rules, tokens)
    shared_text = to_lark(lazy, "llguidance", tokens)
    plain_text = to_lark(lazy, "llguidance", tokens, share=False)
    # a shared node is a rule where its copies in place would be longer: never longer text; with many tools
    # of one schema (each form's arguments, one JSON leaf) rules and a shorter text
    assert len(shared_text) <= len(plain_text) and len(to_gbnf(rules)) <= len(to_gbnf(rules, share=False))
    many = lazy_heads(build_rules(g.compiled, parse_request([WEATHER, TIME] + [dict(WEATHER, function=dict(
        WEATHER["function"], name=f"weather_{i}")) for i in range(8)], "auto")), tokens)
    many_text = to_lark(many, "llguidance", tokens)
    many_plain = to_lark(many, "llguidance", tokens, share=False)
    assert "tg__part" in many_text and len(many_text) < len(many_plain)
    for ok, samples in SHARED_SAMPLES[name].items():
        for sample in samples:
            verdicts = [accepts(g, text, sample) for text in (shared_text, plain_text)]
            assert [v is None for v in verdicts] == [ok, ok], (sample, verdicts)


def test_benchmark_build_table_runs(capsys):
    """benchmarks/constraints.py --build-only: the build / cache-hit table the docs quote."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import constraints as bench
    assert bench.main(["--build-only", "--grammars", "hermes", "qwen3_coder", "--markdown"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| hermes") or
            line.startswith("| qwen3_coder")]
    assert len(rows) == 2
    for row in rows:
        builds = [float(x) for x in row.split("|")[2].split("/")]
        assert len(builds) == 3 and all(b > 0 for b in builds) and builds[0] < builds[2]


def test_empty_parameters_and_no_parameters():
    tools = [{"type": "function", "function": {"name": "ping"}},
             {"type": "function", "function": {"name": "pong", "parameters": {"type": "object"}}}]
    check("hermes", tools, "required", '<tool_call>{"name": "ping", "arguments": {}}</tool_call>')
    check("glm47", tools, "required", "<tool_call>ping</tool_call>")
    check("glm47", tools, "required", "<tool_call>pong<arg_key>any</arg_key><arg_value>x</arg_value></tool_call>")


@pytest.mark.parametrize("tools,choice,words", [
    ([], "required", "at least one tool"),
    ([WEATHER], NAMED, "not in tools"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "a": {"type": "strin"}}}}}], "required", "tool 'f'"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}], "required", "object"),
    ([{"type": "function", "function": {"parameters": {}}}], "required", "no function name"),
    ([WEATHER, WEATHER], "required", "duplicate"),
    ([WEATHER], "sometimes", "tool_choice"),
    ([{"type": "retrieval"}], "required", "only function tools"),
])
def test_bad_requests_raise_constraint_error(tools, choice, words):
    with pytest.raises(ConstraintError, match=words):
        toolgram.load("hermes").constraint(tools, choice)


def test_unenforceable_schema_feature_names_the_tool():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "string", "pattern": "^a+$"}}}}}]
    with pytest.raises(ConstraintError, match="tool 'f'"):
        toolgram.load("hermes").constraint(tools, "required", syntax="gbnf")
    toolgram.load("hermes").constraint(tools, "required")      # %json enforces patterns


def test_vllm_structured_outputs_field():
    c = toolgram.load("hermes").constraint([WEATHER], "required")
    assert c.structured_outputs() == {"grammar": c.text}
    st = toolgram.load("hermes").constraint([WEATHER], "required", syntax="structural_tag")
    assert json.loads(st.structured_outputs()["structural_tag"])["type"] == "structural_tag"


def test_cli_constraint(tmp_path, capsys):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([WEATHER]), encoding="utf-8")
    assert main(["constraint", "hermes", "--tools", str(tools), "--choice", "required"]) == 0
    assert "get_weather" in capsys.readouterr().out
    assert main(["constraint", "glm47", "--tools", str(tools), "--syntax", "gbnf"]) == 0
    assert "root ::=" in capsys.readouterr().out
    assert main(["constraint", "hermes", "--tools", str(tools), "--choice", "nope"]) == 2
    assert "not in tools" in capsys.readouterr().err
    assert main(["constraint", "hermes", "--tools", str(tools), "--vllm"]) == 0
    assert json.loads(capsys.readouterr().out)["structured_outputs"]["grammar"]


@pytest.mark.parametrize("name", ["hunyuan_a13b", "deepseek_v4", "qwen3_coder", "harmony", "harmony_llmjp"])
def test_constraint_text_does_not_depend_on_what_was_built_before(name):
    """The tool-free parts kept across requests (leaves, call-count variants, the skeleton's lazy rewrite)
    give the same text whether the caches were cold or warm: a node reached from two places is written once
    by value, and the skeleton's rewrite kept from another tool set is the one this tool set would make (the
    snapshot test ran after the tokenizer matrix once and found four texts changed)."""
    from toolgram.compiler import constraint as built
    from constraint_helpers import tokenizer_for
    g = toolgram.load(name)
    tok, _ = tokenizer_for(g)
    built._CONSTRAINTS.clear()
    built._VARIANTS.clear()
    from toolgram.compiler.constraint import passes, specialise
    specialise._LEAVES.clear()
    passes._SKELETONS.clear()
    def texts():
        return [g.constraint([WEATHER, TIME], mode, parallel).text for mode in ("required", "auto")
                for parallel in (True, False)]
    first = texts()
    for tools in ([WEATHER], [TIME], [WEATHER, TIME]):
        for mode in ("auto", "required", "none"):
            g.constraint(tools, mode, tokenizer=tok)
            g.constraint(tools, mode, whitespace={"separator": 1})
    built._CONSTRAINTS.clear()
    assert texts() == first


@pytest.mark.parametrize("mode", ["required", "auto"])
@pytest.mark.parametrize("name", ["harmony_llmjp", "qwen3_coder", "glm47", "hermes", "pythonic", "mistral"])
def test_the_skeleton_rewrite_is_kept_across_tool_sets(name, mode):
    """The lazy rewrite of the rules that do not depend on the tools is made once per grammar and settings:
    another tool set, with other names (in ``auto`` the text before a call marker asks what may follow it: the
    tool names, told apart only by the markers they begin with), reuses it and gets the text a cold build gives
    it."""
    from toolgram.compiler import constraint as built
    from toolgram.compiler.constraint import passes
    g = toolgram.load(name)
    other = dict(WEATHER, function=dict(WEATHER["function"], name="get_forecast"))
    built._CONSTRAINTS.clear()
    passes._SKELETONS.clear()
    cold = g.constraint([other, TIME], mode).text
    built._CONSTRAINTS.clear()
    passes._SKELETONS.clear()
    g.constraint([WEATHER], mode)
    made = {id(v) for v in passes._SKELETONS._data.values()}
    assert g.constraint([other, TIME], mode).text == cold
    assert {id(v) for v in passes._SKELETONS._data.values()} == made      # (kept, not made again)

"""Bugs found by the reliability work (issue 7: the fuzzers, benchmarks/fuzz_long.py, the hostile-input tests), each
as its minimal input, fixed in runtime/ or compiler/.  A bug found but not yet fixed is added here marked
``xfail(strict=True)`` with its reason, so that the fix turns it into an XPASS and the marker must go.
See docs/reliability.md."""
import json

import pytest

import toolgram
from toolgram import corpus


def _rebuilt(g, text, parts, tools=None):
    p = g.stream(tools, new_id=corpus.counter_ids())
    deltas = [d for part in parts for d in p.feed(part)] + p.close()
    return corpus.rebuild(deltas)


@pytest.mark.parametrize("name,text", [
    ("glm47", "<tool_call>get_time\n<arg_key>" + "[" * 600),
    ("minimax_m2", '<invoke name="get_time">\n<parameter name=' + "[" * 600),
    # found by benchmarks/fuzz_long.py: a marker the name token does not stop at, then an overlong run
    ("deepseek_v3_1", "<\uff5ctool\u2581call\u2581begin\uff5c><\uff5cend\u2581of\u2581sentence\uff5c>" + "[" * 600
     + "<\uff5cend\u2581of\u2581sentence\uff5c>"),
    ("deepseek_v3", "Checking.<\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>function"
     "<\uff5ctool\u2581sep\uff5c>get_weather<\uff5cend\u2581of\u2581sentence\uff5c>" + "[" * 600
     + "<\uff5cend\u2581of\u2581sentence\uff5c>"),
])
def test_overlong_key_does_not_depend_on_the_split(name, text):
    """runtime/parser.py _scan_run refused a name/key token that outgrew max_length at the end of the delta that
    overran it, not at the first character over the limit: the result depended on the split."""
    g = toolgram.load(name)
    one = corpus.summary(g.parse(text, new_id=corpus.counter_ids()))
    k = len(text) // 2
    assert _rebuilt(g, text, [text[:k], text[k:]]) == one
    assert _rebuilt(g, text, list(text)) == one
    assert _rebuilt(g, text, [text[:7], text[7:k + 3], text[k + 3:]]) == one


ARRAY_TOOL = [{"type": "function", "function": {"name": "f", "parameters": {
    "type": "object", "properties": {"a": {"type": "array"}, "o": {"type": "object"}}}}}]


def test_deeply_nested_schema_typed_value_is_no_exception():
    """runtime/schema_values.py: a deeply nested value typed by the schema raised RecursionError out of parse()
    (json.loads of the python-literal reading); it now stays a string."""
    g = toolgram.load("glm47")
    text = "<tool_call>f\n<arg_key>a</arg_key>\n<arg_value>" + "[" * 5000 + "]" * 5000 + "</arg_value>\n</tool_call>"
    r = g.parse(text, ARRAY_TOOL, new_id=corpus.counter_ids())
    assert len(r.tool_calls) == 1
    assert json.loads(r.tool_calls[0].arguments) == {"a": "[" * 5000 + "]" * 5000}
    assert _rebuilt(g, text, [text[:100], text[100:6000], text[6000:]], ARRAY_TOOL) == corpus.summary(r)


@pytest.mark.parametrize("name,text,tools,args", [
    ("pythonic", "[f(a='\\ud800')]", None, {"a": "\ud800"}),
    ("glm47", '<tool_call>f\n<arg_key>o</arg_key>\n<arg_value>{"x": "\\udfff"}</arg_value>\n</tool_call>', ARRAY_TOOL,
     {"o": {"x": "\udfff"}}),
    # found by benchmarks/fuzz_long.py (pythonic, a call cut off inside a string holding a surrogate pair escape)
    ("pythonic", "[get_weather(city='Par\"\\ud83d\\ude00\"", None, {"city": 'Par"\U0001F600"'}),
])
def test_lone_surrogate_escapes_stay_encodable(name, text, tools, args):
    """runtime (literal strings, schema-typed values): a surrogate escape (\\ud800, 6 ASCII characters a model
    can write) was decoded and re-emitted with ensure_ascii=False as a raw surrogate, which cannot be UTF-8.  It is
    re-emitted as its escape (a pair of them reads back as the character they encode)."""
    g = toolgram.load(name)
    r = g.parse(text, tools, new_id=corpus.counter_ids())
    assert r.tool_calls
    for call in r.tool_calls:
        call.arguments.encode("utf-8")
    assert json.loads(r.tool_calls[0].arguments) == args
    assert _rebuilt(g, text, list(text), tools) == corpus.summary(r)


@pytest.mark.parametrize("grammar", ["hermes", "llama3_json"])
def test_constraint_refuses_names_the_parser_refuses(grammar):
    """compiler/constraint.py _json_call wrote any tool name, also one the grammar's name_pattern refuses when
    parsing ('a b'), so a constrained model was forced into a call that came back as content."""
    g = toolgram.load(grammar)
    with pytest.raises(toolgram.ConstraintError, match="a b"):
        g.constraint([{"type": "function", "function": {"name": "a b", "parameters": {"type": "object"}}}],
                     "required")


def test_parenthesised_pythonic_value_is_not_a_tuple():
    """'(1)' is the value 1 in Python (a tuple needs a comma), as the literal block now reads it: a group's output
    is held until its first comma or its ')'.  Found by tests/test_hostile_requests.py (pythonic arguments)."""
    g = toolgram.load("pythonic")
    text = "[f(a=(1), b=(1,), c=(), d=((1, 2)), e=((1), (2,)), s=('x'))]"
    want = {"a": 1, "b": [1], "c": [], "d": [1, 2], "e": [1, [2]], "s": "x"}
    assert json.loads(g.parse(text).tool_calls[0].arguments) == want
    p = g.stream()
    deltas = [d for ch in text for d in p.feed(ch)] + p.close()
    streamed = "".join(d["tool_calls"][0]["function"].get("arguments", "") for d in deltas if d.get("tool_calls"))
    assert json.loads(streamed) == want
    # cut off inside a group: the call is kept (it committed when its first value started), the group is read
    # as the value it holds so far
    for cut, value in (("[f(a=(1", 1), ("[f(a=(", []), ("[f(a=(1, 'x", [1, "x"]), ("[f(a=(('y", "y")):
        calls = g.parse(cut).tool_calls
        assert len(calls) == 1 and calls[0].truncated and json.loads(calls[0].arguments) == {"a": value}, cut


def test_tiny_top_p_or_temperature_samples():
    """runtime/decoding.py, found by schemathesis: a top_p below float32's least positive value (5e-324, which the
    API allows: 0 < top_p <= 1) kept no token, and a subnormal temperature (2.2e-308) made the logits inf - inf =
    nan; torch.multinomial then failed, a 500.  The most likely token is always kept; a temperature that small is
    greedy."""
    pytest.importorskip("torch")
    httpx = pytest.importorskip("httpx")
    import os
    import tempfile
    os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models"))
    from toolgram.serve.launch import Server
    with Server(["--tool-call-parser", "hermes", "--max-tokens", "8"]) as s:
        model = httpx.get(s.url + "/models").json()["data"][0]["id"]
        for sampling in ({"top_p": 5e-324}, {"top_p": 1e-45}, {"top_p": 1e-9}, {"temperature": 2.2250738585072014e-308},
                         {"temperature": 5e-324}, {"temperature": 1e-30}, {"temperature": 1e-7, "top_p": 5e-324}):
            for stream in (False, True):
                r = httpx.post(s.url + "/chat/completions", timeout=60, json={
                    "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                    "stream": stream, **sampling})
                assert r.status_code == 200, r.text[:300]
                assert "error" not in r.text, r.text[:300]


def test_xml_value_never_holds_back_text_it_has_read():
    """Found by tests/test_fuzz.py (a mutated minimax_m3 case): an element-tree value whose first delta ended
    with the text that also begins its closing tag (``]<]minimax[>[``, read by the key before it) held those
    characters back from before where the value began, so the scan moved backwards and read them again with
    the next delta as the value's closing tag: the value lost its text.  `xml_tree._partial` now looks only at
    the value's own unread characters."""
    g = toolgram.load("minimax_m3")
    tools = corpus.load_cases("minimax_m3")[2].tools
    text = ('</mm:think>]<]minimax[>[<tool_call>\n]<]minimax[>[<invoke name="list_files">]<]minimax[>[</invok0\n'
            ']<]minimax[>[</tool_call>')
    one = corpus.summary(g.parse(text, tools, new_id=corpus.counter_ids()))
    assert json.loads(one["calls"][0]["arguments"]) == {"/invok0\n]<]minimax[": "[</tool_call>"}
    for k in range(1, len(text)):
        assert _rebuilt(g, text, [text[:k], text[k:]], tools) == one, k

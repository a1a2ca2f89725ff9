"""Contested behaviours as explicit options (issue 14 item 5): on_truncated and on_unknown_tool, per parse."""
import pytest

import toolgram

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
CUT = 'Let me see.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n' \
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Ro'


def _stream(g, text, **kw):
    p = g.stream(TOOLS, **kw)
    for ch in text:
        p.feed(ch)
    p.close()
    return p.result


def test_truncated_call_kept_by_default():
    r = toolgram.load("hermes").parse(CUT, TOOLS)
    assert [c.truncated for c in r.tool_calls] == [False, True]


def test_truncated_call_as_content_keeps_every_character():
    g = toolgram.load("hermes")
    r = g.parse(CUT, TOOLS, on_truncated="content")
    assert [c.name for c in r.tool_calls] == ["get_weather"] and not r.tool_calls[0].truncated
    assert r.content == 'Let me see.\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Ro'
    assert "".join(t for _, t in r.segments) == CUT
    s = _stream(g, CUT, on_truncated="content")
    assert (s.content, [c.arguments for c in s.tool_calls]) == (r.content, [c.arguments for c in r.tool_calls])


def test_complete_calls_are_untouched_by_on_truncated():
    g = toolgram.load("hermes")
    text = CUT[:CUT.rindex("<tool_call>")]
    ids = lambda: "call_x"                                          # noqa: E731
    assert g.parse(text, TOOLS, on_truncated="content", new_id=ids) == g.parse(text, TOOLS, new_id=ids)


@pytest.mark.parametrize("grammar,text", [
    ("hermes", 'A <tool_call>{"name": "nope", "arguments": {"x": 1}}</tool_call> B'),
    ("qwen3_coder", "A <tool_call>\n<function=nope>\n<parameter=x>\n1\n</parameter>\n</function>\n</tool_call> B"),
])
def test_unknown_tool_options(grammar, text):
    g = toolgram.load(grammar)
    kept = g.parse(text, TOOLS)
    assert [(c.name, c.unknown) for c in kept.tool_calls] == [("nope", True)]
    as_content = g.parse(text, TOOLS, on_unknown_tool="content")
    assert as_content.tool_calls == [] and as_content.content == text
    assert _stream(g, text, on_unknown_tool="content").content == text
    with pytest.raises(toolgram.UnknownToolError, match="nope"):
        g.parse(text, TOOLS, on_unknown_tool="error")
    assert g.parse(text, None, on_unknown_tool="error").tool_calls[0].name == "nope"   # no tools: nothing is unknown


def test_bad_option_values_are_refused():
    g = toolgram.load("hermes")
    with pytest.raises(ValueError):
        g.parse("x", on_truncated="drop")
    with pytest.raises(ValueError):
        g.parse("x", on_unknown_tool="ignore")

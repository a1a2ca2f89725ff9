"""Compiler details: finite-language terminals, call rules given by alias, triggers."""
import textwrap

import toolgram
from toolgram.compiler.regexlang import finite_strings


def test_finite_strings():
    assert finite_strings(r"(?:<\|end\|>|<\|call\|>)") == ["<|call|>", "<|end|>"]
    assert finite_strings(r"[ab]c?") == ["ac", "bc", "a", "b"]
    for infinite in [r"\s+", r"[a-z]+", r"a|b*", r"(?i:abc)", r"(?i)abc", r"x?"]:
        assert finite_strings(infinite) is None, infinite


def test_alternation_terminal_is_a_set_of_markers(tmp_path):
    p = tmp_path / "g.yaml"
    p.write_text(textwrap.dedent('''\
        name: alt
        description: calls end with one of several markers
        lark: |
          start: (CONTENT | call)*
          call: "<c>" NAME ">" ARGS END  -> one_call
          END: "<|end|>" | "<|call|>"
          NAME: /[a-z_]+/
        terminals:
          CONTENT: {text: true, role: content}
          NAME: {name: true}
          ARGS: {block: json}
        calls: {rule: one_call}
        '''), encoding="utf-8")
    g = toolgram.load(str(p))
    r = g.parse('a<c>f>{"x": 1}<|call|>b<c>g>{}<|end|>c')
    assert r.content == "abc"
    assert [(c.name, c.arguments) for c in r.tool_calls] == [("f", '{"x": 1}'), ("g", "{}")]
    p2 = g.stream()
    out = p2.feed('<c>f>{}<|ca')
    assert all("content" not in d for d in out)


def test_triggers_exclude_start_anchored_markers():
    assert toolgram.load("mistral").triggers == ("[TOOL_CALLS]",)
    assert set(toolgram.load("kimi_k2").triggers) == {
        "<|tool_calls_section_begin|>", "<|tool_call_section_begin|>", "<|tool_call_begin|>"}

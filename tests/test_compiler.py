"""Compiler details: finite-language terminals, call rules given by alias, triggers."""
import textwrap

import toolgram
from toolgram.compiler.regexlang import bound_for, bounded, finite_strings, longest


def test_finite_strings():
    assert finite_strings(r"(?:<\|end\|>|<\|call\|>)") == ["<|call|>", "<|end|>"]
    assert finite_strings(r"[ab]c?") == ["ac", "bc", "a", "b"]
    for infinite in [r"\s+", r"[a-z]+", r"a|b*", r"(?i:abc)", r"(?i)abc", r"x?"]:
        assert finite_strings(infinite) is None, infinite


def test_a_negative_lookahead_is_written_out():
    """``A(?!X)Y`` becomes a plain regex: A, then the texts of Y that do not begin with X (those that end
    inside X are left out: the parser's lookahead reads past the token).  Checked against Python's re over
    every string of an alphabet that covers X's characters, up to the bound."""
    import itertools
    import re
    for pattern, alphabet in [(r"[ \t]*o=(?!fn\.)[^\s<]+", "o=fn. <"), (r"(?!ab|ac)[a-c]{1,4}", "abc"),
                              (r"x(?!a)\w*", "xab_ "), (r"(?!b)a?[ab]+", "ab")]:
        written, original = re.compile(bounded(pattern, 3)), re.compile(pattern)
        most = longest(pattern, 3)
        ahead = re.search(r"\(\?!([^)]*)\)", pattern).group(1)
        words = [re.sub(r"\\(.)", r"\1", w) for w in ahead.split("|")]
        head = re.compile(pattern[:pattern.index("(?!")])          # what comes before the lookahead
        for n in range(7):
            for text in map("".join, itertools.product(alphabet, repeat=n)):
                before = head.match(text)
                rest = text[before.end():] if before else ""
                want = bool(original.fullmatch(text)) and n <= most and not any(w.startswith(rest) for w in words)
                assert bool(written.fullmatch(text)) == want, (pattern, text)
    harmony = re.compile(bounded(r"[ \t]*to=(?!functions\.)[^\s<]+", 20))
    for name in ("python", "browser.search", "container.exec", "functionsx", "f"):
        assert bool(harmony.fullmatch(" to=" + name)) == (name != "f"), name
    assert not harmony.fullmatch("to=functions.get_weather") and "(?!" not in harmony.pattern


def test_a_pattern_bound_keeps_its_texts_within_max_length():
    import re
    pattern = r"[ \t]*to=[^\s<]+"
    assert bound_for(pattern, None) == 4                       # no max_length: a few characters
    bound = bound_for(pattern, 64)
    assert longest(pattern, bound) <= 64 < longest(pattern, bound + 1)
    # whitespace written as the constraint writes it (spaces, at most the separator); the rest gets the room
    blank = (" \n", 1)
    bound = bound_for(pattern, 64, blank=blank)
    written = re.compile(bounded(pattern, bound, blank))
    assert longest(pattern, bound, blank) == 64 and bound == 59
    assert written.fullmatch(" to=" + "a" * 60) and not written.fullmatch(" to=" + "a" * 61)
    assert not written.fullmatch("\tto=a") and not written.fullmatch("  to=a")


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

"""Spec features the public templates do not use, each checked against transformers' parse_response where it
implements them (json-lax is not in transformers 5.19: checked against its documented meaning), streamed in
1-character deltas as well as one-shot."""
import json

import pytest

import toolgram
from toolgram import corpus
from toolgram.response_templates import difference, normalize_result, reference_parse

BASE = {"defaults": {"role": "assistant"}, "start_anchor": "<|assistant|>"}


def _t(**fields):
    return dict(BASE, fields={**fields, "content": {"close": "<|end|>"}})


KV = _t(tool_calls={"open_pattern": r"<call name=(?P<name>\w+)>\n?", "close": "</call>", "repeats": True,
                    "content": "kv-lines", "content_args": {"kv_sep": "=", "value_parser": {"name": "json", "args": {"allow_non_json": True}}},
                    "transform": {"type": "function", "function": {"name": "{name}", "arguments": "{content}"}}})
EACH = _t(tool_calls={"open": "[CALLS]", "close": "[/CALLS]", "content": "json", "transform_each": True,
                      "transform": {"type": "function", "function": {"name": "{name}", "arguments": "{arguments}"}}})
DOTTED = _t(tool_calls={"open": "<fn>", "close": "</fn>", "repeats": True, "content": "json",
                        "transform": {"type": "function", "function": {"name": "{content.tool",
                                                                       "arguments": "{content.args}"}}})
DOTTED["fields"]["tool_calls"]["transform"]["function"]["name"] = "{content.tool}"
IDS = _t(tool_calls={"open_pattern": r"<call id=(?P<id>[0-9]+) fn=(?P<name>\w+)>", "close": "</call>",
                     "repeats": True, "content": "json",
                     "transform": {"type": "function", "id": "{id}",
                                   "function": {"name": "{name}", "arguments": "{content}"}}})
ANCHOR = dict(_t(reasoning_content={"open": "<think>", "close": "</think>"},
                 tool_calls={"open": "<fn>", "close": "</fn>", "repeats": True, "content": "json",
                             "transform": {"type": "function", "function": "{content}"}}))
del ANCHOR["start_anchor"]
ANCHOR["start_anchor_pattern"] = r"<\|assistant\|>(?:\n)?"

CASES = [
    ("kv-lines", KV, 'Ok.<call name=get_weather>\ncity= Paris\ndays =3\n</call><call name=ping>\n</call><|end|>'),
    ("transform_each", EACH, 'Both.[CALLS][{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {}}]'
                             '[/CALLS]'),
    ("dotted keys", DOTTED, '<fn>{"tool": "f", "args": {"k": [1, 2]}}</fn> done<|end|>'),
    ("id capture", IDS, '<call id=7 fn=lookup>{"q": "x"}</call>'),
    ("anchor pattern", ANCHOR, '<think>hmm</think>Sure<fn>{"name": "f", "arguments": {"a": "b"}}</fn>'),
]


@pytest.mark.parametrize("name,template,text", CASES, ids=[c[0] for c in CASES])
def test_feature_reads_like_the_reference(name, template, text):
    g = toolgram.from_response_template(template)
    one = g.parse(text, new_id=corpus.counter_ids())
    ours = normalize_result(one)
    assert ours["calls"], ours
    ref = reference_parse(template, text, "")
    assert difference(ours, ref) is None, (ours, ref)
    p = g.stream(new_id=corpus.counter_ids())
    for ch in text:
        p.feed(ch)
    p.close()
    assert corpus.summary(p.result) == corpus.summary(one)
    for c in one.tool_calls:
        json.loads(c.arguments)


def test_native_id_is_kept():
    r = toolgram.from_response_template(IDS).parse('<call id=7 fn=lookup>{"q": "x"}</call>')
    assert r.tool_calls[0].id == "7"


def test_anchor_pattern_and_prefix():
    g = toolgram.from_response_template(ANCHOR, prefix="<|user|>hi<|end|><|assistant|>\n<think>")
    r = g.parse("plan</think>answer")
    assert (r.reasoning_content, r.content) == ("plan", "answer")


def test_json_lax_reads_relaxed_arguments():
    t = _t(tool_calls={"open_pattern": r"<fn (?P<name>\w+)>", "close": "</fn>", "repeats": True,
                       "content": "json-lax",
                       "transform": {"type": "function", "function": {"name": "{name}", "arguments": "{content}"}}})
    r = toolgram.from_response_template(t).parse("<fn f>{a: 'x', b: true, c: [1, 2]}</fn>")
    assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [("f", {"a": "x", "b": True, "c": [1, 2]})]


def test_regex_pieces_are_exact():
    """A whitespace class other than \\s, and a bounded optional repeat, are the template's own classes:
    `[ \\t]*` does not accept a newline, `{0,2}` not three."""
    t = dict(BASE, fields={"content": {}, "tool_calls": {
        "open_pattern": r"<c[ \t]*(?P<name>[a-z]{1,8}) {0,2}>", "close": "</c>", "repeats": True,
        "content": "json", "transform": {"type": "function", "function": {"name": "{name}",
                                                                         "arguments": "{content}"}}}})
    g = toolgram.from_response_template(t)
    for text in ('<c \t abc  >{"a": 1}</c>', '<c\nabc>{}</c>', '<cabc   >{}</c>', '<cabcdefghij>{}</c>'):
        ours = normalize_result(g.parse(text))
        assert difference(ours, reference_parse(t, text, "")) is None, text

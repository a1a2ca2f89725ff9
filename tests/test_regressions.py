"""Inputs that once made streaming differ from one-shot (found by fuzzing); each split must agree."""
import json

import pytest

import toolgram
from toolgram import corpus

CASES = [
    # arguments as a JSON string whose content stops being JSON: error position must not depend on the split
    ("hermes", '{"name": "get_weather", "parameters": "{\\"city\\": functions.f:0Riga\\"}"}',
     ['{"name": "get_weather", "parameters": "{\\"city\\": functi', 'ons.f:0Riga\\"}"}']),
    ("mistral", '[TOOL_CALLS]get_weather[ARGS]"{\\"city\\": \\"Lyon\\",/[',
     ['[TOOL_CALLS]get_weather[ARGS]"{\\"city\\": \\"Lyon\\",', '/[']),
    # a refused name (a tab in it) ends the region right after the name
    ("llama3_json", '{"name": "get\\ther", "parameters": {"cb]}< <|python_tag|>{"name": "get_time", "parameters": {}}',
     ['{"name": "get\\', 'ther", "param', 'eters": {"cb]}< <|pyth', 'on_tag|>{"name": "get_time", "param',
      'eters": {}}']),
    # "n" at the end of a delta must not commit to reading null
    ("kimi_k2", '<|tool_calls_section_begin|><|tool_call_begin|>funct<|tool_call_argument_begin|>ns.get_weather:0'
                '<|tool_call_argument_begin|>{"location":"NY(tool_call_end|><|tool_call_begin|>functions.get_time:1'
                '<|tool_call_argument_begin|>{"timezone":"EST"}<|tool_call_end|>',
     None),
]


@pytest.mark.parametrize("name,text,parts", CASES)
def test_split_agrees(name, text, parts):
    g = toolgram.load(name)
    one = g.parse(text, new_id=corpus.counter_ids())
    splits = ([parts] if parts else []) + [list(text)]
    splits += [[text[:k], text[k:]] for k in range(len(text) + 1)]
    for parts in splits:
        p = g.stream(new_id=corpus.counter_ids())
        deltas = []
        for part in parts:
            deltas += p.feed(part)
        deltas += p.close()
        assert corpus.rebuild(deltas) == corpus.summary(one), parts
    for call in one.tool_calls:
        assert isinstance(json.loads(call.arguments), dict)

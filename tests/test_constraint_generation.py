"""A random-weight model decoding under the constraint: the hardest test of a constraint, since the model
produces a valid call only if the mask is right.  For every grammar, 10 seeds (one batch) per mode; the
streaming parser must turn every output into calls of allowed tools whose arguments validate with jsonschema,
with no text left over after the tool section.  (End-of-sequence gets a small logit bias so that a random
model stops within the token budget; it does not touch the mask.)"""
import json
import re

import jsonschema
import pytest

import toolgram
from toolgram.request import Whitespace

from conftest import ALL_CASES
from constraint_helpers import decoder_for

SEEDS = 10          # (37 grammars x 5 modes; the long sampling run is benchmarks/constraint_sampling.py)
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 12},
                                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
NAMED = {"type": "function", "function": {"name": "get_weather"}}
MODES = {"required": ("required", True), "single": ("required", False), "named": (NAMED, True),
         "auto-after-trigger": ("auto", True), "none": ("none", True)}
GRAMMARS = sorted({c.grammar for c in ALL_CASES})


def generate(name: str, choice, parallel: bool):
    g = toolgram.load(name)
    dec = decoder_for(name)
    c = g.constraint(TOOLS, choice, parallel_tool_calls=parallel, tokenizer=dec.tokenizer, max_reasoning=40,
                     max_calls=3)
    prompt = dec.tokenizer.apply_chat_template([{"role": "user", "content": "Weather in Paris?"}],
                                               add_generation_prompt=True)
    prompt = prompt if isinstance(prompt, list) else prompt["input_ids"]
    forced = dec.tokenizer.encode(g.triggers[0], add_special_tokens=False) if choice == "auto" else None
    texts, reasons = [""] * SEEDS, [None] * SEEDS
    for step in dec.generate([prompt] * SEEDS, [c.text] * SEEDS, max_new_tokens=320, seed=7, forced=forced,
                             logit_bias={e: 4.0 for e in dec.eos}):
        texts[step.index] += step.text
        if step.finished:
            reasons[step.index] = step.reason
    return g, texts, reasons


def _outside_values(text: str, r) -> str:
    """``text`` with the reasoning and every string argument value (as written: raw, JSON, Python-quoted)
    replaced by a placeholder: whitespace inside values is the model's data, not the constraint's."""
    values = [r.reasoning_content or ""]
    for call in r.tool_calls:
        todo = [json.loads(call.arguments)]
        while todo:
            v = todo.pop()
            if isinstance(v, dict):
                todo.extend(v.values())
            elif isinstance(v, list):
                todo.extend(v)
            elif isinstance(v, str):
                values += [json.dumps(v, ensure_ascii=False), repr(v), v]
    for v in sorted((v for v in values if re.search(r"[\t\r\n]|  |^ | $", v)), key=len, reverse=True):
        text = text.replace(v, "\x00")
    return text


def longest_blank_run(g, text: str, r) -> str:
    runs = re.findall(r"[ \t\r\n]+", _outside_values(text, r))
    return max(runs, key=len) if runs else ""


def blank_runs_within(g, text: str, r) -> bool:
    """Every whitespace run outside values is spaces and newlines only, within the grammar's bounds
    (`toolgram.request.Whitespace`): a separator, a space run between JSON tokens or a JSON newline and
    indentation.  Two runs may meet (at most twice the bound; docs/constraints.md): a grammar's whitespace
    before a call form of which only some begin with a block's own leading whitespace, and llguidance's JSON
    lexer, which takes one run of its own before a value when several call forms are still open."""
    ws = Whitespace(**g.compiled.whitespace)
    longest = max(ws.separator, ws.json_spaces, 0 if ws.json_indent is None else 1 + ws.json_indent)
    return all(set(run) <= {" ", "\n"} and len(run) <= 2 * longest
               for run in re.findall(r"[ \t\r\n]+", _outside_values(text, r)))


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", GRAMMARS)
def test_random_model_under_constraint(name, mode):
    choice, parallel = MODES[mode]
    g, texts, reasons = generate(name, choice, parallel)
    for text, reason in zip(texts, reasons):
        r = g.parse(text, TOOLS)
        where = f"{name} {mode}: {text[:300]!r}"
        if mode == "none":
            assert not r.tool_calls, where
            continue
        assert reason == "stop" or mode == "auto-after-trigger", where
        # (free text after the calls may run out of tokens inside an unclosed block in auto mode)
        assert r.tool_calls and (not r.recovered or mode == "auto-after-trigger"), where
        for call in r.tool_calls:
            assert call.name in SCHEMAS and not call.truncated, where
            jsonschema.validate(json.loads(call.arguments), SCHEMAS[call.name])
        if mode in ("required", "single", "named"):
            assert not (r.content or "").strip(), where
            assert blank_runs_within(g, text, r), (where, longest_blank_run(g, text, r))
        if mode in ("single", "named"):
            assert len(r.tool_calls) == 1, where
        if mode == "named":
            assert r.tool_calls[0].name == "get_weather", where


def test_matchers_are_compiled_once_and_copied():
    """The decoder keeps the compiled matcher of a grammar and hands out independent copies; a grammar
    llguidance refuses is an error every time; the kept set is bounded."""
    from toolgram.runtime.decoding import COMPILED_KEPT, DecodingError
    g = toolgram.load("hermes")
    dec = decoder_for("hermes")
    c = g.constraint(TOOLS, "required", tokenizer=dec.tokenizer)
    a, b = dec.matcher(c.text), dec.matcher(c.text)
    assert a is not b
    call = dec.tokenizer.encode('<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
                                add_special_tokens=False)
    assert all(a.consume_token(t) for t in call) and a.is_accepting()
    assert not b.is_accepting() and b.consume_token(call[0])      # b still at the start: a's steps are a's own
    assert dec.matcher(c.text).consume_token(call[0])
    for _ in range(2):
        with pytest.raises(DecodingError):
            dec.matcher("start: (")
    for i in range(COMPILED_KEPT + 3):
        dec.matcher(f'start: "x{i}"')
    assert len(dec._compiled) == COMPILED_KEPT

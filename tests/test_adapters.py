"""The outlines adapter: a toolgram constraint as an outlines CFG, generating with a transformers model."""
import json

import pytest

import toolgram
from toolgram import ConstraintError
from toolgram.adapters import check_lark, outlines_cfg

from constraint_helpers import decoder_for, tokenizer_for

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 10}},
    "required": ["city"]}}}]


def test_bad_grammar_is_an_error_not_a_warning():
    c = toolgram.load("hermes").constraint(TOOLS, "required")
    broken = type(c)(syntax="lark", text="start: (", mode="required", tools=(), parallel=True)
    with pytest.raises(ConstraintError):
        check_lark(broken)
    with pytest.raises(ConstraintError):
        check_lark(toolgram.load("hermes").constraint(TOOLS, "required", syntax="gbnf"))


def test_outlines_generates_a_valid_call():
    outlines = pytest.importorskip("outlines")
    g = toolgram.load("hermes")
    dec = decoder_for("hermes")
    _, lltok = tokenizer_for(g)
    c = g.constraint(TOOLS, "required", parallel_tool_calls=False, tokenizer=dec.tokenizer)
    model = outlines.from_transformers(dec.model, dec.tokenizer)
    generator = outlines.Generator(model, outlines_cfg(c, dec.ll_tokenizer))
    text = generator("Weather in Paris?", max_new_tokens=120)
    r = g.parse(text, TOOLS)
    assert len(r.tool_calls) == 1 and r.tool_calls[0].name == "get_weather", text
    assert json.loads(r.tool_calls[0].arguments)["city"]

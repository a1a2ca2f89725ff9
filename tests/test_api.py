"""The public API of design.md: load, grammars, for_model, parse, stream, result and its segments."""
import json
import pickle

import pytest

import toolgram
from toolgram.compiler import registry


def test_grammars_lists_bundled():
    names = toolgram.grammars()
    for name in ("hermes", "mistral", "llama3_json", "kimi_k2", "glm47"):
        assert name in names


def test_load_by_name_and_path():
    g = toolgram.load("hermes")
    assert g.name == "hermes" and "tool_call" in g.description
    g2 = toolgram.load(str(registry.grammar_path("hermes")))
    assert g2.name == "hermes"


def test_for_model():
    assert toolgram.for_model("Qwen/Qwen2.5-7B-Instruct") == "hermes"
    assert toolgram.for_model("mistralai/Mistral-7B-Instruct-v0.3") == "mistral"
    assert toolgram.for_model("meta-llama/Llama-3.1-8B-Instruct") == "llama3_json"
    assert toolgram.for_model("moonshotai/Kimi-K2-Instruct") == "kimi_k2"
    assert toolgram.for_model("zai-org/GLM-4.7") == "glm47"
    assert toolgram.for_model("/models/Qwen2.5-7B-Instruct") == "hermes"     # a local path's basename
    assert toolgram.for_model("acme/unknown-model") is None


def test_parse_and_stream_agree_and_match_design():
    g = toolgram.load("hermes")
    text = 'Hi <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    r = g.parse(text)
    assert r.content == "Hi "
    assert r.reasoning_content is None
    (call,) = r.tool_calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_") and len(call.id) == 29
    p = g.stream()
    deltas = p.feed("Hi <tool_")
    assert deltas == [{"content": "Hi "}]
    deltas = p.feed('call>\n{"name": "get_weather", "arguments": {"ci')
    # an object key waits for its value, so the prefix sent is always closable into valid JSON
    assert deltas[0]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{'}
    assert deltas[0]["tool_calls"][0]["type"] == "function" and deltas[0]["tool_calls"][0]["index"] == 0
    deltas = p.feed('ty": "Paris"}}\n</tool_call>')
    assert deltas == [{"tool_calls": [{"index": 0, "function": {"arguments": '"city": "Paris"}'}}]}]
    assert p.close() == []
    assert p.result.tool_calls[0].arguments == call.arguments


def test_segments_cover_the_output():
    text = 'a<tool_call>{"name": "f"}</tool_call>b<tool_call>oops'
    r = toolgram.load("hermes").parse(text)
    assert "".join(t for _, t in r.segments) == text
    assert [k for k, _ in r.segments] == ["content", "markup", "call", "content"]


def test_to_message_is_openai_shaped():
    r = toolgram.load("kimi_k2").parse(
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}"
        "<|tool_call_end|><|tool_calls_section_end|>")
    msg = r.to_message()
    assert msg == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "functions.f:0", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


def test_feed_after_close_raises():
    p = toolgram.load("hermes").stream()
    p.close()
    with pytest.raises(ValueError):
        p.feed("x")


def test_reasoning_composition_and_request_switch():
    g = toolgram.load("hermes", reasoning="deepseek_r1")
    assert g.reasoning == "deepseek_r1"
    r = g.parse("thinking</think>answer")
    assert (r.reasoning_content, r.content) == ("thinking", "answer")
    r = g.parse("answer only", reasoning=False)
    assert (r.reasoning_content, r.content) == (None, "answer only")


def test_compiled_grammar_pickles_and_is_cached():
    g = toolgram.load("glm47")
    again = pickle.loads(pickle.dumps(g.compiled))
    assert again.tables.actions == g.compiled.tables.actions
    assert toolgram.load("glm47").compiled is g.compiled


def test_custom_ids():
    ids = iter(["x1", "x2"])
    r = toolgram.load("hermes").parse('<tool_call>{"name": "f"}</tool_call>', new_id=lambda: next(ids))
    assert r.tool_calls[0].id == "x1"

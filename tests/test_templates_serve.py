"""`toolgram serve` with the real chat templates (stub engine): every mapped template renders a multi-turn
conversation with tools, tool calls and tool results without a template error; the tools and results reach
the prompt; the request's ``chat_template_kwargs`` reach the template; a template that raises is a 400 that
names the template's own message.  The sandbox stays on (serve/chat.py renders every template)."""
from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

import toolgram
from templates_table import TOOLS, table
from test_templates import kwargs_of, source
from toolgram import template_probe as tp
from toolgram.serve.engines.base import Engine, EngineDelta, ModelInfo

TABLE = table()
MAPPED = sorted(s for s, e in TABLE.items() if e["status"] == "mapped")


class StubEngine(Engine):
    """Answers every request with the same text and keeps the prompts it was given."""

    kind = "stub"

    def __init__(self, reply: str = "Done."):
        super().__init__()
        self.info = ModelInfo(id="stub")
        self.reply = reply
        self.prompts: list[str] = []

    async def generate(self, request):
        self.prompts.append(request.prompt)
        yield EngineDelta(text=self.reply, tokens=1)
        yield EngineDelta(finish_reason="stop")

    async def abort(self, request_id):
        pass


def _client(stem: str):
    from toolgram.serve.app import create_app
    from toolgram.serve.metrics import Metrics
    from toolgram.serve.session import ServeConfig
    e = TABLE[stem]
    engine = StubEngine()
    cfg = ServeConfig(grammar=toolgram.load(e["grammar"], reasoning=e.get("reasoning")), engine=engine,
                      chat_template=source(stem), model_names=("m",), metrics=Metrics(engine))
    return TestClient(create_app(cfg)), engine


def _conversation(calls):
    msg = tp.assistant_calls(calls)
    return ([{"role": "user", "content": "What is the weather in Paris and the time in Bern?"}, msg]
            + tp.tool_results(calls, [c["id"] for c in msg["tool_calls"]])
            + [{"role": "assistant", "content": "Sunny, 14:00."},
               {"role": "user", "content": "And tomorrow?"}])


def _post(client, messages, **extra):
    body = {"model": "m", "messages": messages, "tools": TOOLS, "max_tokens": 8, **extra}
    return client.post("/v1/chat/completions", json=body)


@pytest.mark.parametrize("stem", MAPPED)
def test_serve_renders_real_template(stem):
    e = TABLE[stem]
    calls = [("get_weather", {"city": "Paris"})]
    if e.get("parallel", "yes") == "yes":
        calls.append(("get_time", {"timezone": "Europe/Bern"}))
    client, engine = _client(stem)
    with client:
        r = _post(client, _conversation(calls), chat_template_kwargs=kwargs_of(e))
        if e.get("template_refuses"):            # a template that cannot take OpenAI tools: a 400 naming why
            assert r.status_code == 400 and e["template_refuses"] in r.json()["error"]["message"], r.text
            return
        assert r.status_code == 200, r.text
        out = r.json()["choices"][0]["message"]
        assert (out.get("content") or out.get("reasoning_content")) == "Done.", out
    prompt = engine.prompts[-1]
    shown = "The get_time tool." in prompt or '"get_time"' in prompt
    if e.get("tools") == "not-rendered":                  # the template has no tools section (checked)
        assert not shown
    else:
        assert shown, "tools not rendered"
    assert tp.RESULT.format(i=0) in prompt, "tool result not rendered"
    assert "And tomorrow?" in prompt


@pytest.mark.parametrize("stem", MAPPED)
def test_serve_passes_chat_template_kwargs(stem):
    """A template that reads a thinking switch renders the request's value of it."""
    text = source(stem)
    switch = next((k for k in ("enable_thinking", "reasoning_effort", "thinking")
                   if re.search(r"\bif\b[^%}]*(?<![\w.\[\'\"])" + k + r"\b(?![\'\"\]])", text)), None)
    if TABLE[stem].get("template_refuses"):
        pytest.skip(f"{stem}: the template refuses OpenAI tools (checked in test_serve_renders_real_template)")
    if switch is None:
        pytest.skip(f"{stem} switches on none of enable_thinking / reasoning_effort / thinking")
    values = ("none", "no_think", "minimal", "low", "high") if switch == "reasoning_effort" else (False, True)
    client, engine = _client(stem)
    with client:
        for v in values:                     # a value the template refuses is a 400; the others must render
            r = _post(client, [{"role": "user", "content": "Hi"}],
                      chat_template_kwargs={**kwargs_of(TABLE[stem]), switch: v})
            assert r.status_code in (200, 400), r.text
            if r.status_code == 400:
                assert r.json()["error"]["code"] == "chat_template_error", r.text
    assert len(set(engine.prompts)) >= 2, f"{switch} did not reach the template"


def test_template_error_is_a_400_naming_its_message():
    stem = next(s for s in MAPPED if TABLE[s].get("parallel") == "refused")
    client, _ = _client(stem)
    calls = [("get_weather", {"city": "Paris"}), ("get_time", {"timezone": "Europe/Bern"})]
    with client:
        r = _post(client, _conversation(calls))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert "only supports single tool-calls" in err["message"], err
    assert json.dumps(err)

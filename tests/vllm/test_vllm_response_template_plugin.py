"""The vLLM plugin's ``toolgram-response-template`` under real vLLM: vLLM's own OpenAI server serving a tiny
local checkpoint (random weights, no hub) whose tokenizer_config.json carries transformers' ``qwen3_5``
response template (XML calls: ``<tool_call><function=NAME><parameter=KEY>VALUE</parameter>...``), started with
``--tool-parser-plugin $(toolgram vllm-plugin-path) --tool-call-parser toolgram-response-template``.

The parser must compile the served checkpoint's template (nothing names the format), stream a call's
arguments in several deltas, and answer ``tool_choice`` required / named with a constraint in the template's
own syntax -- which vLLM's own ``hf`` parser refuses for this template (checked in-process below).

Runs in the venv that ``.ci/vllm_setup.sh`` builds; skipped, with the reason printed, where vLLM is absent."""
import copy
import json
import os
import shutil
import sys
import tempfile

import pytest

try:
    import vllm.sampling_params  # noqa: F401
except Exception as e:                                      # noqa: BLE001 - any import failure means "absent"
    reason = f"vLLM is not installed in this venv ({type(e).__name__}: {e}); run bash .ci/vllm_setup.sh and " \
             f".venv-vllm/bin/python -m pytest tests/vllm"
    print("SKIP", __name__, reason, file=sys.stderr)
    pytest.skip(reason, allow_module_level=True)


import toolgram  # noqa: E402
from toolgram.serve import demo_model  # noqa: E402
from toolgram.serve.launch import Server, start_all  # noqa: E402

from served import check_calls, client  # noqa: E402

from response_templates_public import transformers_templates  # noqa: E402

ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}
TEMPLATE = transformers_templates()["transformers:qwen3_5"]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 24},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["tz"]}}},
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
USER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The demo checkpoint (its markers single tokens) with the template in its tokenizer_config.json."""
    root = os.environ.get("TOOLGRAM_DEMO_CACHE") or os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models")
    g = toolgram.from_response_template(TEMPLATE)
    src = demo_model.build(demo_model.markers_of(g), os.path.join(root, "vllm-template-qwen3_5-h128"), hidden=128)
    d = tmp_path_factory.mktemp("ckpt") / "Templated-0.1B"
    shutil.copytree(src, d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["response_template"] = TEMPLATE
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return str(d)


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    template = tmp_path_factory.mktemp("tpl") / "serve.jinja"
    template.write_text(demo_model.SERVE_TEMPLATE)
    plugin = os.path.join(os.path.dirname(toolgram.serve.__file__), "vllm_plugin.py")
    s = Server(command=[sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
                        "--served-model-name", "t", "--host", "127.0.0.1", "--port", "{port}",
                        "--max-model-len", "1024", "--enforce-eager", "--dtype", "float32",
                        "--structured-outputs-config", '{"backend": "guidance"}',
                        "--chat-template", str(template), "--enable-auto-tool-choice",
                        "--tool-parser-plugin", plugin, "--tool-call-parser", "toolgram-response-template"],
               env=ENV, startup_timeout=300)
    start_all([s])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kw(model_dir):
    """A random model ends its calls within the budget when end-of-sequence and the thinking closer are
    favoured (the format allows a thinking block before a call; the mask is untouched)."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    favoured = [tok.eos_token_id, tok.convert_tokens_to_ids("</think>")]
    return {"max_tokens": 800, "logit_bias": {str(i): 5 for i in favoured}}


def check(calls, names=None):
    check_calls(calls, SCHEMAS, names)


def test_required_and_named_in_the_templates_syntax(server, kw):
    c = client(server)
    r = c.chat.completions.create(model="t", messages=USER, tools=TOOLS, tool_choice="required", **kw, seed=2)
    assert r.choices[0].finish_reason == "tool_calls", r
    check(r.choices[0].message.tool_calls)
    named = {"type": "function", "function": {"name": "get_time"}}
    r = c.chat.completions.create(model="t", messages=USER, tools=TOOLS, tool_choice=named, seed=3, **kw)
    check(r.choices[0].message.tool_calls, ["get_time"])
    r = c.chat.completions.create(model="t", messages=USER, tools=TOOLS, tool_choice="required",
                                  parallel_tool_calls=False, **kw, seed=4)
    assert len(r.choices[0].message.tool_calls or []) == 1, r
    r = c.chat.completions.create(model="t", messages=USER, tools=TOOLS, tool_choice="none", max_tokens=20, seed=5)
    assert not r.choices[0].message.tool_calls


def test_arguments_stream_in_fragments(server, kw):
    """Streamed: the same calls as the whole response of the same seed, each call's arguments in several
    deltas (vLLM's hf parser sends them in one, when the region closes)."""
    c = client(server)
    named = {"type": "function", "function": {"name": "get_weather"}}
    whole = c.chat.completions.create(model="t", messages=USER, tools=TOOLS, tool_choice=named, **kw, seed=6)
    check(whole.choices[0].message.tool_calls, ["get_weather"])
    calls, pieces, finish = {}, {}, None
    for chunk in c.chat.completions.create(model="t", messages=USER, tools=TOOLS, tool_choice=named, **kw,
                                           seed=6, stream=True):
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                cur = calls.setdefault(tc.index, ["", ""])
                cur[0] += (tc.function.name or "") if tc.function else ""
                if tc.function and tc.function.arguments:
                    cur[1] += tc.function.arguments
                    pieces[tc.index] = pieces.get(tc.index, 0) + 1
            finish = ch.finish_reason or finish
    assert finish == whole.choices[0].finish_reason     # (vLLM ends a named choice with "stop", as OpenAI does)
    assert [tuple(calls[i]) for i in sorted(calls)] == [(x.function.name, x.function.arguments)
                                                        for x in whole.choices[0].message.tool_calls]
    assert min(pieces.values()) >= 3, f"arguments arrived in {pieces} deltas"


def test_vllms_own_hf_parser_refuses_required_and_named():
    """The contrast: vLLM's hf parser on the same template refuses the guarantees toolgram's parser gives."""
    from vllm.exceptions import VLLMValidationError
    from vllm_hf import new_parser
    for choice in ("required", {"type": "function", "function": {"name": "get_time"}}):
        parser, request = new_parser(TEMPLATE, TOOLS)
        request.tool_choice = choice if isinstance(choice, str) else request.tool_choice
        if not isinstance(choice, str):
            from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionNamedToolChoiceParam
            request.tool_choice = ChatCompletionNamedToolChoiceParam.model_validate(choice)
        with pytest.raises(VLLMValidationError, match="cannot guarantee"):
            parser.adjust_request(request)



def test_plugin_parser_in_process_keeps_every_character():
    """The plugin's parser class as vLLM builds it (a tokenizer carrying the template): one-shot and streamed
    (one character per step) give the same calls and the same content, a thinking block's text included (no
    --reasoning-parser took it first), and the arguments arrive in fragments."""
    from toolgram.serve.vllm_plugin import REGISTERED
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.tool_parsers.abstract_tool_parser import ToolParserManager
    from vllm_hf import tokenizer
    assert "toolgram-response-template" in REGISTERED
    tok = copy.copy(tokenizer())
    tok.response_template = TEMPLATE
    cls = ToolParserManager.get_tool_parser("toolgram-response-template")
    text = ("<think>Paris, three days.</think>\nSure.\n<tool_call>\n<function=get_weather>\n<parameter=city>\n"
            "Paris\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>")
    request = ChatCompletionRequest(model="t", messages=USER, tools=TOOLS)
    whole = cls(tok).extract_tool_calls(text, request)
    assert [(c.function.name, json.loads(c.function.arguments)) for c in whole.tool_calls] == \
        [("get_weather", {"city": "Paris", "days": 3})]
    assert "Paris, three days." in whole.content and "Sure." in whole.content
    p = cls(tok)
    content, args, pieces, prev = [], "", 0, ""
    for ch in text:
        m = p.extract_tool_calls_streaming(prev, prev + ch, ch, [], [], [], request)
        prev += ch
        if m is None:
            continue
        content.append(m.content or "")
        for tc in m.tool_calls:
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
                pieces += 1
    args += p.get_remaining_unstreamed_args()
    assert "".join(content) == whole.content
    assert json.loads(args) == json.loads(whole.tool_calls[0].function.arguments) and pieces >= 3

"""End to end: the official openai client against real ``toolgram serve`` processes (uvicorn on 127.0.0.1), on
the embedded CPU engine with demo models whose tokenizers carry each grammar's markers as tokens.

For hermes, kimi_k2, glm47 and harmony: every tool_choice, non-stream and stream, parallel_tool_calls=false,
multi-turn with tool results; arguments validate against the tool schema; streamed argument fragments
concatenate to the non-streamed arguments (same seed, same output).  The demo models' weights are random:
calls are well formed because decoding is constrained; the tool schemas are bounded so that a random model
finishes within the token budget.
"""
import json
import os
import tempfile

import pytest

os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models"))

openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("fastapi")
pytest.importorskip("torch")

from toolgram.serve.launch import Server, start_all  # noqa: E402

KEY = "test-key"
GRAMMARS = ["hermes", "kimi_k2", "glm47", "harmony"]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 10},
                                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET", "PST"]}}}}},
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
NAMED = {"type": "function", "function": {"name": "get_time"}}
USER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def servers():
    procs = {g: Server(["--tool-call-parser", g, "--api-key", KEY]) for g in GRAMMARS}
    start_all(list(procs.values()))
    yield procs
    for s in procs.values():
        s.stop()


def client(server) -> "openai.OpenAI":
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=60)


def model_of(c) -> str:
    return c.models.list().data[0].id


def check_calls(calls):
    assert calls
    for call in calls:
        assert call.id and call.type == "function"
        assert call.function.name in SCHEMAS
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def ask(c, **kw):
    kw.setdefault("messages", USER)
    kw.setdefault("max_tokens", 200)
    kw.setdefault("seed", 11)
    return c.chat.completions.create(model=model_of(c), tools=TOOLS, **kw)


def stream(c, **kw):
    """(content, reasoning, {index: [id, name, arguments, n_argument_fragments]}, finish_reason, usage)"""
    kw.setdefault("messages", USER)
    kw.setdefault("max_tokens", 200)
    kw.setdefault("seed", 11)
    content, reasoning, calls, finish, usage = "", "", {}, None, None
    for chunk in c.chat.completions.create(model=model_of(c), tools=TOOLS, stream=True,
                                           stream_options={"include_usage": True}, **kw):
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            d = ch.delta
            content += d.content or ""
            reasoning += getattr(d, "reasoning_content", None) or ""
            for tc in d.tool_calls or []:
                cur = calls.setdefault(tc.index, [None, None, "", 0])
                if tc.id:
                    assert cur[0] is None, "a call's id is sent once"
                    cur[0] = tc.id
                if tc.function and tc.function.name:
                    assert cur[1] is None, "a call's name is sent once"
                    cur[1] = tc.function.name
                if tc.function and tc.function.arguments:
                    cur[2] += tc.function.arguments
                    cur[3] += 1
            if ch.finish_reason:
                finish = ch.finish_reason
    return content, reasoning, calls, finish, usage


@pytest.mark.parametrize("grammar", GRAMMARS)
def test_models_endpoint_says_random_weights(servers, grammar):
    m = client(servers[grammar]).models.list().data[0]
    extra = m.model_extra["toolgram"]
    assert extra["tool_call_parser"] == grammar
    assert "RANDOM" in extra["demo"]


@pytest.mark.parametrize("grammar", GRAMMARS)
def test_required(servers, grammar):
    r = ask(client(servers[grammar]), tool_choice="required")
    ch = r.choices[0]
    check_calls(ch.message.tool_calls)
    assert ch.finish_reason == "tool_calls"
    assert not (ch.message.content or "").strip()
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@pytest.mark.parametrize("grammar", GRAMMARS)
def test_named_and_single(servers, grammar):
    c = client(servers[grammar])
    r = ask(c, tool_choice=NAMED)
    calls = r.choices[0].message.tool_calls
    check_calls(calls)
    assert [x.function.name for x in calls] == ["get_time"]
    for seed in (1, 2, 3):
        r = ask(c, tool_choice="required", parallel_tool_calls=False, seed=seed)
        calls = r.choices[0].message.tool_calls
        check_calls(calls)
        assert len(calls) == 1


@pytest.mark.parametrize("grammar", GRAMMARS)
def test_auto_and_none(servers, grammar):
    c = client(servers[grammar])
    r = ask(c, tool_choice="auto", max_tokens=40)
    ch = r.choices[0]
    assert ch.finish_reason in ("stop", "length", "tool_calls")
    for call in ch.message.tool_calls or []:
        assert call.function.name and call.id
    r = ask(c, tool_choice="none", max_tokens=40)
    ch = r.choices[0]
    assert not ch.message.tool_calls
    assert ch.finish_reason in ("stop", "length")
    assert isinstance(ch.message.content, str)


@pytest.mark.parametrize("grammar", GRAMMARS)
def test_stream_equals_non_stream(servers, grammar):
    c = client(servers[grammar])
    for choice in ("required", NAMED):
        whole = ask(c, tool_choice=choice, seed=5)
        content, reasoning, calls, finish, usage = stream(c, tool_choice=choice, seed=5)
        msg = whole.choices[0].message
        assert finish == whole.choices[0].finish_reason == "tool_calls"
        assert [(calls[i][1], calls[i][2]) for i in sorted(calls)] == \
            [(x.function.name, x.function.arguments) for x in msg.tool_calls]
        assert all(calls[i][0] for i in calls)
        assert (content or None) == (msg.content or None)
        assert usage.completion_tokens == whole.usage.completion_tokens


@pytest.mark.parametrize("grammar", GRAMMARS)
def test_multi_turn_with_tool_results(servers, grammar):
    c = client(servers[grammar])
    first = ask(c, tool_choice="required", parallel_tool_calls=False)
    call = first.choices[0].message.tool_calls[0]
    messages = USER + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.function.name,
                                                            "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21})},
        {"role": "user", "content": "And tomorrow?"},
    ]
    r = ask(c, messages=messages, tool_choice="required")
    check_calls(r.choices[0].message.tool_calls)
    assert r.usage.prompt_tokens > first.usage.prompt_tokens      # the history was rendered into the prompt


def test_reasoning_content_with_a_reasoning_grammar(servers):
    c = client(servers["harmony"])
    r = ask(c, tool_choice="auto", max_tokens=30)
    assert "reasoning_content" in r.choices[0].message.model_extra
    r = ask(c, tool_choice="required", extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    check_calls(r.choices[0].message.tool_calls)


def test_streaming_sends_arguments_as_generated(servers):
    # arguments reach the client in fragments as they are generated, not in one piece when the call is complete
    most = 0
    for grammar in GRAMMARS:
        c = client(servers[grammar])
        for seed in (3, 4):
            _, _, calls, finish, _ = stream(c, tool_choice=NAMED, seed=seed)
            assert finish == "tool_calls"
            most = max([most] + [v[3] for v in calls.values()])
    assert most >= 2


def test_completions_endpoint(servers):
    c = client(servers["hermes"])
    model = model_of(c)
    r = c.completions.create(model=model, prompt="Hello", max_tokens=8, seed=1)
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens <= 8
    grammar = 'start: "yes" | "no"'
    r = c.completions.create(model=model, prompt="Answer:", max_tokens=8, seed=1,
                             extra_body={"structured_outputs": {"grammar": grammar}})
    assert r.choices[0].text in ("yes", "no")
    text = "".join(ch.choices[0].text for ch in c.completions.create(
        model=model, prompt="Answer:", max_tokens=8, seed=1, stream=True,
        extra_body={"structured_outputs": {"grammar": grammar}}) if ch.choices)
    assert text == r.choices[0].text


def test_response_format_json_schema(servers):
    c = client(servers["hermes"])
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    r = c.chat.completions.create(model=model_of(c), messages=USER, max_tokens=60, seed=2,
                                  response_format={"type": "json_schema",
                                                   "json_schema": {"name": "x", "schema": schema}})
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)


def test_stop_strings(servers):
    c = client(servers["hermes"])
    whole = c.completions.create(model=model_of(c), prompt="Hi", max_tokens=30, seed=4,
                                 extra_body={"structured_outputs": {"grammar": 'start: "abcXdef"'}})
    assert whole.choices[0].text == "abcXdef"
    cut = c.completions.create(model=model_of(c), prompt="Hi", max_tokens=30, seed=4, stop=["Xd"],
                               extra_body={"structured_outputs": {"grammar": 'start: "abcXdef"'}})
    assert cut.choices[0].text == "abc" and cut.choices[0].finish_reason == "stop"


def test_length_stays_length(servers):
    c = client(servers["hermes"])
    r = ask(c, tool_choice="required", max_tokens=3)
    assert r.choices[0].finish_reason == "length"


def test_a_call_cut_by_max_tokens_finishes_with_length(servers):
    # the constraint forces a call; a budget that ends inside it must say length, not tool_calls
    c = client(servers["hermes"])
    seen = 0
    for n in range(3, 40, 3):
        r = ask(c, tool_choice="required", max_tokens=n)
        if r.usage.completion_tokens == n and r.choices[0].message.tool_calls:
            seen += 1
            assert r.choices[0].finish_reason == "length"
    assert seen, "no budget cut a started call; pick other budgets"


def _blank_runs(arguments: str) -> list:
    """The whitespace runs of a call's JSON arguments outside its strings."""
    import re
    return re.findall(r"[ \t\r\n]+", re.sub(r'"(?:[^"\\]|\\.)*"', '""', arguments))


@pytest.mark.parametrize("grammar", ["hermes", "kimi_k2", "harmony"])
def test_required_calls_keep_the_whitespace_bounds(servers, grammar):
    """Issue 13 item 6: a random model under a required constraint writes JSON arguments with at most one
    space between tokens (the grammars' default: no tabs, carriage returns or newlines), over many seeds; a
    request's tool_call_whitespace overrides it (compact JSON), and a bad one is a 400 naming the field."""
    c = client(servers[grammar])
    for seed in range(4):
        for call in ask(c, tool_choice="required", seed=seed, max_tokens=120).choices[0].message.tool_calls or []:
            assert all(run == " " for run in _blank_runs(call.function.arguments)), call.function.arguments
    compact = ask(c, tool_choice="required", seed=3, extra_body={"tool_call_whitespace": {"json_spaces": 0}})
    for call in compact.choices[0].message.tool_calls:
        assert not _blank_runs(call.function.arguments), call.function.arguments
    with pytest.raises(openai.BadRequestError) as e:
        ask(c, tool_choice="required", extra_body={"tool_call_whitespace": {"separator": 0}})
    assert e.value.body["param"] == "tool_call_whitespace.separator"

"""The upstream engine, against real toolgram servers acting as upstreams (their ``/v1/completions`` takes
``structured_outputs`` as vLLM's does): the front renders the prompt, sends the constraint, parses the stream,
spreads requests over the upstreams.  An upstream that is down, stalls (SIGSTOP) or dies mid-stream (SIGKILL)
gives the client an OpenAI error, or an error event in the stream, within a bound."""
import json
import os
import signal
import tempfile
import time

import pytest

os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models"))

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("fastapi")
pytest.importorskip("torch")

import toolgram  # noqa: E402
from toolgram.serve import demo_model  # noqa: E402
from toolgram.serve.launch import Server, free_port, start_all  # noqa: E402

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 8},
                                     "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city"]}}}]
SCHEMA = TOOLS[0]["function"]["parameters"]
USER = [{"role": "user", "content": "Weather in Rome?"}]
LONG = {"structured_outputs": {"grammar": "start: /[a-z]{3000}/"}}


@pytest.fixture(scope="module")
def demo_dir():
    return str(demo_model.for_grammar(toolgram.load("hermes")))


@pytest.fixture(scope="module")
def cluster(demo_dir):
    ups = [Server(["--model", demo_dir, "--tool-call-parser", "hermes", "--served-model-name", "up"])
           for _ in range(2)]
    start_all(ups)
    front = Server(["--engine", "upstream", "--model", demo_dir, "--tool-call-parser", "hermes",
                    "--served-model-name", "front", *sum((["--upstream", u.base] for u in ups), []),
                    "--max-calls", "3"])
    start_all([front])
    yield front, ups
    for s in [front, *ups]:
        s.stop()


def test_through_the_upstream(cluster):
    front, ups = cluster
    c = openai.OpenAI(base_url=front.url, api_key="x", max_retries=0, timeout=60)
    assert c.models.list().data[0].id == "front"
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        r = c.chat.completions.create(model="front", messages=USER, tools=TOOLS, tool_choice=choice,
                                      max_tokens=120, seed=3)
        ch = r.choices[0]
        assert ch.finish_reason == "tool_calls", ch
        for call in ch.message.tool_calls:
            jsonschema.validate(json.loads(call.function.arguments), SCHEMA)
        assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
        # streamed through the front: the same calls (the upstream is seeded)
        args, names, finish = {}, {}, None
        for chunk in c.chat.completions.create(model="front", messages=USER, tools=TOOLS, tool_choice=choice,
                                               max_tokens=120, seed=3, stream=True):
            for chc in chunk.choices:
                for tc in chc.delta.tool_calls or []:
                    if tc.function.name:
                        names[tc.index] = tc.function.name
                    args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
                finish = chc.finish_reason or finish
        assert finish == "tool_calls"
        assert [(names[i], args[i]) for i in sorted(args)] == \
            [(x.function.name, x.function.arguments) for x in ch.message.tool_calls]
    r = c.chat.completions.create(model="front", messages=USER, tools=TOOLS, tool_choice="none", max_tokens=20)
    assert not r.choices[0].message.tool_calls


def test_least_outstanding_spreads_requests(cluster):
    front, ups = cluster
    import concurrent.futures as cf
    c = openai.OpenAI(base_url=front.url, api_key="x", max_retries=0, timeout=60)

    def one(i):
        return c.completions.create(model="front", prompt="x", max_tokens=30, seed=i,
                                    extra_body={"structured_outputs": {"grammar": "start: /[a-z]{30}/"}})

    with cf.ThreadPoolExecutor(4) as ex:
        list(ex.map(one, range(8)))
    served = [u["served"] for u in httpx.get(front.base + "/health").json()["upstreams"]]
    assert all(n > 0 for n in served), served


def test_upstream_down_is_a_502(demo_dir):
    dead = f"http://127.0.0.1:{free_port()}"
    with Server(["--engine", "upstream", "--model", demo_dir, "--tool-call-parser", "hermes",
                 "--upstream", dead, "--upstream-model", "up", "--served-model-name", "front"]) as front:
        t = time.monotonic()
        r = httpx.post(front.url + "/chat/completions", json={"model": "front", "messages": USER}, timeout=30)
        assert r.status_code == 502 and time.monotonic() - t < 10
        assert r.json()["error"]["code"] == "upstream_unavailable"
        r = httpx.post(front.url + "/chat/completions", json={"model": "front", "messages": USER, "stream": True},
                       timeout=30)
        assert r.status_code == 502


def _stream_until_broken(front, model, timeout=20):
    """Start a long stream through the front; return (events before the break, the error event, [DONE] seen)."""
    events = []
    with httpx.stream("POST", front.url + "/completions", timeout=timeout,
                      json={"model": model, "prompt": "go", "max_tokens": 3000, "stream": True, **LONG}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                yield events
    return events


def test_upstream_dies_mid_stream(demo_dir):
    up = Server(["--model", demo_dir, "--tool-call-parser", "hermes", "--served-model-name", "up"])
    start_all([up])
    front = Server(["--engine", "upstream", "--model", demo_dir, "--tool-call-parser", "hermes",
                    "--upstream", up.base, "--served-model-name", "front", "--read-timeout", "3"])
    start_all([front])
    try:
        t = None
        events = []
        for events in _stream_until_broken(front, "front"):
            if len(events) == 3:
                up.signal(signal.SIGKILL)              # the upstream dies mid-stream
                t = time.monotonic()
        assert t is not None and time.monotonic() - t < 10
        assert events[-1] == "[DONE]"
        err = json.loads(events[-2])["error"]
        assert err["type"] and err["message"] and err["code"] in ("upstream_error", "upstream_timeout")
    finally:
        front.stop()
        up.stop()


def test_upstream_stalls(demo_dir):
    up = Server(["--model", demo_dir, "--tool-call-parser", "hermes", "--served-model-name", "up"])
    start_all([up])
    front = Server(["--engine", "upstream", "--model", demo_dir, "--tool-call-parser", "hermes",
                    "--upstream", up.base, "--served-model-name", "front", "--read-timeout", "1.5"])
    start_all([front])
    try:
        t = None
        events = []
        for events in _stream_until_broken(front, "front"):
            if len(events) == 3:
                up.signal(signal.SIGSTOP)              # the upstream stalls
                t = time.monotonic()
        assert t is not None and time.monotonic() - t < 8
        err = json.loads(events[-2])["error"]
        assert err["code"] == "upstream_timeout"
        # the front still answers (health, and a clean error for the next request while the upstream hangs)
        assert httpx.get(front.base + "/health", timeout=5).status_code == 200
    finally:
        up.signal(signal.SIGCONT)
        front.stop()
        up.stop()

"""Faults, against real processes over real HTTP: a front ``toolgram serve --engine upstream`` in front of
tests/fault_upstream.py (an upstream that refuses, stalls before or after its headers, dies mid-stream, sends
garbage, an error event or no finish), and a ``toolgram serve`` on the CPU engine for client disconnects.

* every upstream fault reaches the client as an OpenAI error object (HTTP status before the stream started;
  ``data: {"error": ...}`` then ``data: [DONE]`` after) within the configured ``--read-timeout`` plus a margin;
* while one request hangs on a stalled upstream, the front serves others;
* a client that disconnects mid-stream aborts its generation: the upstream sees its reader go away (its own
  counter), the CPU engine's ``toolgram_engine_aborted`` counter moves, also for a request still queued;
* hostile model output (surrogate escapes, ``__import__`` in pythonic arguments, markers inside strings, deep
  nesting, huge numbers) comes back as a 200 with valid JSON, stream and non-stream alike, never executed.
"""
import base64
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models"))

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("torch")

import toolgram  # noqa: E402
from toolgram.serve import demo_model  # noqa: E402
from toolgram.serve.launch import Server, start_all  # noqa: E402

HERE = Path(__file__).parent
READ_TIMEOUT = 1.5
MARGIN = 6.0


def fault_upstream() -> Server:
    return Server(command=[sys.executable, str(HERE / "fault_upstream.py"), "--port", "{port}"])


def front_for(up: Server, grammar: str = "hermes", *extra) -> Server:
    demo = str(demo_model.for_grammar(toolgram.load(grammar)))
    return Server(["--engine", "upstream", "--model", demo, "--tool-call-parser", grammar, "--upstream", up.base,
                   "--upstream-model", "fault", "--served-model-name", "front", "--read-timeout", str(READ_TIMEOUT),
                   "--connect-timeout", "2", *extra])


@pytest.fixture(scope="module")
def pair():
    up = fault_upstream()
    start_all([up])
    front = front_for(up)
    start_all([front])
    yield front, up
    front.stop()
    up.stop()


def ask(text: str, **kw) -> dict:
    body = {"model": "front", "messages": [{"role": "user", "content": text}], "max_tokens": 64}
    body.update(kw)
    return body


def sse_events(front, body, timeout=30):
    """(status, [event payloads]) of a streamed request."""
    events = []
    with httpx.stream("POST", front.url + "/chat/completions", json=body, timeout=timeout) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, [r.text]
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    return 200, events


def check_error_object(obj, code=None):
    err = obj["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"] and err["type"]
    if code:
        assert err["code"] == code, err
    return err


@pytest.mark.parametrize("mode,status,code", [("http500", 502, "upstream_error"), ("http400", 400, "upstream_error"),
                                              ("stall_headers", 504, "upstream_timeout")])
def test_upstream_failure_before_the_stream_is_an_http_error(pair, mode, status, code):
    front, _ = pair
    for stream in (False, True):
        t = time.monotonic()
        r = httpx.post(front.url + "/chat/completions", json=ask(f"FAULT:{mode}", stream=stream), timeout=30)
        assert time.monotonic() - t < READ_TIMEOUT + MARGIN
        assert r.status_code == status, r.text
        check_error_object(r.json(), code)


@pytest.mark.parametrize("mode,code", [("stall_mid", "upstream_timeout"), ("die_mid", "upstream_error"),
                                       ("garbage", "upstream_error"), ("no_finish", "upstream_error"),
                                       ("error_event", "upstream_error")])
def test_upstream_failure_mid_stream_is_an_error_event_and_the_end(pair, mode, code):
    front, _ = pair
    t = time.monotonic()
    status, events = sse_events(front, ask(f"FAULT:{mode}", stream=True))
    assert time.monotonic() - t < READ_TIMEOUT + MARGIN
    assert status == 200
    assert events[-1] == "[DONE]"
    check_error_object(json.loads(events[-2]), code)
    for ev in events[:-2]:                    # what came before the error is well formed
        assert json.loads(ev)["object"] == "chat.completion.chunk"
    # the official client turns the error event into an exception (not a hang, not a silent truncation)
    c = openai.OpenAI(base_url=front.url, api_key="x", max_retries=0, timeout=30)
    with pytest.raises(openai.APIError):
        for _ in c.chat.completions.create(**ask(f"FAULT:{mode}", stream=True)):
            pass
    # non-streamed: an HTTP error with the same code
    r = httpx.post(front.url + "/chat/completions", json=ask(f"FAULT:{mode}"), timeout=30)
    assert r.status_code in (502, 504), r.text
    check_error_object(r.json(), code)


def test_front_keeps_serving_while_one_request_hangs(pair):
    front, _ = pair
    results = {}

    def hang():
        results["hung"] = httpx.post(front.url + "/chat/completions", json=ask("FAULT:stall_headers"), timeout=30)

    th = threading.Thread(target=hang)
    th.start()
    time.sleep(0.3)
    t = time.monotonic()
    c = openai.OpenAI(base_url=front.url, api_key="x", max_retries=0, timeout=30)
    for _ in range(3):
        r = c.chat.completions.create(**ask("all is well"))
        assert r.choices[0].message.content == "hello world"
    assert time.monotonic() - t < READ_TIMEOUT, "the healthy requests waited for the stalled one"
    assert httpx.get(front.base + "/health", timeout=5).status_code == 200
    th.join(30)
    assert results["hung"].status_code == 504


def _read_until(s: socket.socket, done, timeout: float = 30) -> bytes:
    """Bytes from a raw socket until ``done(bytes)``; fails (never spins) on EOF or after ``timeout`` seconds."""
    s.settimeout(timeout)
    got, deadline = b"", time.monotonic() + timeout
    while not done(got):
        assert time.monotonic() < deadline, f"no such data within {timeout} s: {got[-500:]!r}"
        chunk = s.recv(4096)
        assert chunk, f"the server closed the connection first: {got[-500:]!r}"
        got += chunk
    return got


def _stats(up):
    return httpx.get(up.base + "/stats", timeout=5).json()


def test_disconnect_mid_stream_aborts_the_upstream_request(pair):
    front, up = pair
    before = _stats(up)["client_gone"]
    payload = json.dumps(ask("FAULT:slow", stream=True, max_tokens=4000)).encode()
    s = socket.create_connection(("127.0.0.1", front.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    _read_until(s, lambda got: got.count(b"data:") >= 4)
    s.close()                                  # the client goes away mid-stream
    deadline = time.monotonic() + 10
    while _stats(up)["client_gone"] <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _stats(up)["client_gone"] == before + 1, "the front kept reading from the upstream"
    text = httpx.get(front.base + "/metrics", timeout=5).text
    assert float(re.search(r"^toolgram_engine_aborted (\S+)$", text, re.M).group(1)) >= 1


HOSTILE_HERMES = [
    '<tool_call>{"name": "f", "arguments": {"a": "</tool_call><tool_call>", "b": "\\ud800\\udfff"}}</tool_call>',
    '<tool_call>{"name": "f", "arguments": {"n": 1' + "0" * 5000 + ', "d": ' + "[" * 3000 + "]" * 3000 + "}}</tool_call>",
    "<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": \"__import__('os').system('touch PWNED')\"}}</tool_call>",
    "broken <tool_call>{\"name\": \"f\", \"arguments\": {\"a\": tru</tool_call> after",
    "\uff1ctool_call\uff1e <\uff5ctool\u2581call\u2581begin\uff5c> \x00 \u202e <tool_",
]
HOSTILE_PYTHONIC = [
    "[f(a=__import__('os').system('touch PWNED'))]",
    "[f(a=eval('1+1'), b=(lambda: 1)())]",
    "[f(a='\\ud800', b=" + "(" * 500 + ")" * 500 + ")]",
    "[f(a=1" + "0" * 5000 + ")]",
    "[f(a={'k': [1, 2, (3, 4)]}, b=True, c=None)]",
]


def _replay(text: str) -> str:
    return "REPLAY:" + base64.b64encode(text.encode("utf-8")).decode()


def _collect_stream(c, body) -> tuple[str, dict]:
    content, calls = "", {}
    for chunk in c.chat.completions.create(**body, stream=True):
        for ch in chunk.choices:
            content += ch.delta.content or ""
            for tc in ch.delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                call["name"] += (tc.function.name or "") if tc.function else ""
                call["arguments"] += (tc.function.arguments or "") if tc.function else ""
    return content, calls


@pytest.mark.parametrize("grammar,outputs", [("hermes", HOSTILE_HERMES), ("pythonic", HOSTILE_PYTHONIC)])
def test_hostile_model_output_through_the_server(grammar, outputs, tmp_path):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    up = fault_upstream()
    start_all([up])
    front = front_for(up, grammar)
    front.env["PWD"] = str(tmp_path)
    start_all([front])
    try:
        c = openai.OpenAI(base_url=front.url, api_key="x", max_retries=0, timeout=60)
        for text in outputs:
            body = ask(_replay(text), tools=tools, max_tokens=4096)
            r = httpx.post(front.url + "/chat/completions", json=body, timeout=60)
            assert r.status_code == 200, (text, r.text[:500])
            msg = r.json()["choices"][0]["message"]
            calls = msg.get("tool_calls") or []
            for call in calls:
                try:
                    assert isinstance(json.loads(call["function"]["arguments"], parse_int=str), dict)
                except RecursionError:        # (3000 levels: deeper than this test's json can go)
                    assert call["function"]["arguments"].startswith("{")
            # the same as the parser gives one-shot: nothing lost, nothing re-interpreted on the way
            expect = toolgram.load(grammar).parse(text, tools)
            assert [(x["function"]["name"], x["function"]["arguments"]) for x in calls] == \
                [(x.name, x.arguments) for x in expect.tool_calls]
            blank = expect.tool_calls and not (expect.content or "").strip()
            assert msg["content"] == (None if blank else expect.content or "")
            content, scalls = _collect_stream(c, body)
            assert content == (msg["content"] or "")
            assert [v["arguments"] for _, v in sorted(scalls.items())] == [x["function"]["arguments"] for x in calls]
        assert not list(Path(front.command[0]).parent.glob("PWNED"))
        assert not Path("PWNED").exists() and not (tmp_path / "PWNED").exists()
    finally:
        front.stop()
        up.stop()


# -- the CPU engine: disconnects abort generations (running or queued) -----------------------------------

@pytest.fixture(scope="module")
def cpu_server():
    with Server(["--tool-call-parser", "hermes", "--max-tokens", "5000"]) as s:
        yield s


def _aborted(server) -> float:
    text = httpx.get(server.base + "/metrics", timeout=5).text
    return float(re.search(r"^toolgram_engine_aborted (\S+)$", text, re.M).group(1))


def _open_stream(server, body) -> socket.socket:
    payload = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(f"POST {body.pop('_path')} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return s


LONG_TOOL = [{"type": "function", "function": {"name": "write", "parameters": {
    "type": "object", "properties": {"text": {"type": "string", "minLength": 3000}}, "required": ["text"]}}}]


def test_disconnect_of_a_constrained_chat_stream_aborts_it(cpu_server):
    model = httpx.get(cpu_server.url + "/models").json()["data"][0]["id"]
    before = _aborted(cpu_server)
    body = {"model": model, "messages": [{"role": "user", "content": "go"}], "tools": LONG_TOOL,
            "tool_choice": "required", "max_tokens": 3500, "stream": True}    # (context: 4096)
    s = _open_stream(cpu_server, {**body, "_path": "/v1/chat/completions"})
    # generating (a 3000-character argument is far off; its deltas may wait for the name if the model writes
    # the arguments member first)
    got = _read_until(s, lambda got: got.count(b"data:") >= 2)
    assert got.startswith(b"HTTP/1.1 200"), got[:300]
    s.close()
    deadline = time.monotonic() + 10
    while _aborted(cpu_server) <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _aborted(cpu_server) == before + 1


def test_disconnect_while_queued_never_runs(cpu_server):
    """Generations are serialised: a request queued behind a long one whose client leaves is skipped."""
    model = httpx.get(cpu_server.url + "/models").json()["data"][0]["id"]
    long_body = {"model": model, "prompt": "go", "max_tokens": 3000, "stream": True,
                 "structured_outputs": {"grammar": "start: /[a-z]{3000}/"}}
    before = _aborted(cpu_server)
    first = _open_stream(cpu_server, {**long_body, "_path": "/v1/completions"})
    _read_until(first, lambda got: got.count(b"data:") >= 2)
    queued = _open_stream(cpu_server, {**long_body, "_path": "/v1/completions"})
    time.sleep(0.5)
    queued.close()                                     # leaves while waiting for the engine
    first.close()
    deadline = time.monotonic() + 15
    while _aborted(cpu_server) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _aborted(cpu_server) == before + 2
    t = time.monotonic()
    r = httpx.post(cpu_server.url + "/completions", json={"model": model, "prompt": "x", "max_tokens": 4}, timeout=30)
    assert r.status_code == 200 and time.monotonic() - t < 5


# -- the contested cases as request options (tool_call_on_unknown_tool / tool_call_on_truncated) ------------

def test_contested_case_options_through_the_server(pair):
    front, _ = pair
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    unknown = 'A.<tool_call>{"name": "g", "arguments": {"x": 1}}</tool_call>'
    cut = 'B.<tool_call>{"name": "f", "arguments": {"x": "ab'

    def message(text, **options):
        r = httpx.post(front.url + "/chat/completions", json=ask(_replay(text), tools=tools, **options), timeout=60)
        assert r.status_code == 200, r.text[:300]
        return r.json()["choices"][0]["message"]

    kept = message(unknown)
    assert [c["function"]["name"] for c in kept["tool_calls"]] == ["g"] and kept["content"] == "A."
    as_content = message(unknown, tool_call_on_unknown_tool="content")
    assert not as_content.get("tool_calls") and as_content["content"] == unknown
    c = openai.OpenAI(base_url=front.url, api_key="x", max_retries=0, timeout=60)
    streamed, calls = _collect_stream(c, dict(ask(_replay(unknown), tools=tools),
                                              extra_body={"tool_call_on_unknown_tool": "content"}))
    assert streamed == unknown and not calls          # decided at the name: streaming agrees

    truncated = message(cut)
    assert truncated["tool_calls"][0]["function"]["arguments"] == '{"x": "ab"}'
    as_content = message(cut, tool_call_on_truncated="content")
    assert not as_content.get("tool_calls") and as_content["content"] == cut

    for body, param in [(ask("x", tools=tools, tool_call_on_truncated="content", stream=True), "tool_call_on_truncated"),
                        (ask("x", tools=tools, tool_call_on_unknown_tool="error"), "tool_call_on_unknown_tool"),
                        (ask("x", tools=tools, tool_call_on_truncated="drop"), "tool_call_on_truncated")]:
        r = httpx.post(front.url + "/chat/completions", json=body, timeout=60)
        assert r.status_code == 400, r.text[:300]
        assert r.json()["error"]["param"] == param

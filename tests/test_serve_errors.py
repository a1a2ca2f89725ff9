"""Bad requests get an OpenAI error object with the right status (400/401/404/413), never a 500; a client that
disconnects mid-stream aborts its generation (the engine's counter in /metrics says so) and the server goes on
serving.  Against a real ``toolgram serve`` process (demo model, CPU engine)."""
import json
import os
import re
import socket
import tempfile
import time

import pytest

os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models"))

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("torch")

from toolgram.serve.launch import Server  # noqa: E402

KEY = "k-123"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"]}}}]


@pytest.fixture(scope="module")
def server():
    with Server(["--tool-call-parser", "hermes", "--api-key", KEY, "--max-body-bytes", "200000",
                 "--max-tokens", "5000"]) as s:
        yield s


@pytest.fixture(scope="module")
def model(server):
    r = httpx.get(server.url + "/models", headers={"Authorization": f"Bearer {KEY}"})
    return r.json()["data"][0]["id"]


def post(server, path, body, *, key=KEY, raw=None, headers=None):
    h = {"Authorization": f"Bearer {key}"} if key else {}
    h.update(headers or {})
    if raw is not None:
        h["Content-Type"] = "application/json"
        return httpx.post(server.url + path, content=raw, headers=h, timeout=30)
    return httpx.post(server.url + path, json=body, headers=h, timeout=30)


def check_error(r, status, param=None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if param is not None:
        assert err["param"] and param in err["param"], err
    return err


def chat(model, **kw):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    body.update(kw)
    return body


def test_malformed_json(server):
    check_error(post(server, "/chat/completions", None, raw=b'{"model": "x", "messages": ['), 400)
    check_error(post(server, "/chat/completions", None, raw=b"not json"), 400)


def test_schema_violations_are_400(server, model):
    check_error(post(server, "/chat/completions", {"model": model}), 400, "messages")
    check_error(post(server, "/chat/completions", chat(model, messages=[{"role": "wizard", "content": "x"}])), 400)
    check_error(post(server, "/chat/completions", chat(model, temperature=7)), 400, "temperature")
    check_error(post(server, "/chat/completions", chat(model, max_tokens=0)), 400, "max_tokens")
    check_error(post(server, "/chat/completions", chat(model, max_tokens=10 ** 6)), 400, "max_tokens")
    check_error(post(server, "/chat/completions", chat(model, tool_choice="sometimes", tools=TOOLS)), 400)


def test_unknown_model(server):
    err = check_error(post(server, "/chat/completions", chat("no-such-model")), 404, "model")
    assert err["code"] == "model_not_found"
    check_error(post(server, "/completions", {"model": "nope", "prompt": "x"}), 404, "model")


def test_unknown_route(server):
    r = httpx.get(server.base + "/v1/nothing-here", headers={"Authorization": f"Bearer {KEY}"})
    check_error(r, 404)


def test_tool_choice_naming_a_missing_tool(server, model):
    err = check_error(post(server, "/chat/completions", chat(
        model, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}})), 400, "tool_choice")
    assert "get_time" in err["message"]


def test_invalid_tool_schema(server, model):
    bad = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                          "properties": {"a": {"type": 12}}}}}]
    for choice in ("auto", "required"):
        check_error(post(server, "/chat/completions", chat(model, tools=bad, tool_choice=choice)), 400, "tools")
    dup = TOOLS + TOOLS
    check_error(post(server, "/chat/completions", chat(model, tools=dup, tool_choice="required")), 400, "tools")
    nameless = [{"type": "function", "function": {"parameters": {}}}]
    check_error(post(server, "/chat/completions", chat(model, tools=nameless)), 400, "tools")


def test_required_without_tools(server, model):
    check_error(post(server, "/chat/completions", chat(model, tool_choice="required")), 400, "tool_choice")


def test_n_above_one(server, model):
    err = check_error(post(server, "/chat/completions", chat(model, n=2)), 400, "n")
    assert err["code"] == "unsupported"


def test_response_format_with_required(server, model):
    check_error(post(server, "/chat/completions", chat(model, tools=TOOLS, tool_choice="required",
                                                       response_format={"type": "json_object"})), 400)


def test_oversize_body(server, model):
    big = chat(model, messages=[{"role": "user", "content": "x" * 300_000}])
    check_error(post(server, "/chat/completions", big), 413)
    # also without a Content-Length (chunked upload)
    data = json.dumps(big).encode()

    def chunks():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    r = httpx.post(server.url + "/chat/completions", content=chunks(),
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}, timeout=30)
    check_error(r, 413)


def test_api_key(server, model):
    check_error(post(server, "/chat/completions", chat(model), key=None), 401)
    check_error(post(server, "/chat/completions", chat(model), key="wrong"), 401)
    check_error(httpx.get(server.url + "/models"), 401)
    assert httpx.get(server.base + "/health").status_code == 200          # health stays open
    c = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.models.list()


def test_openai_client_sees_errors(server, model):
    c = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], tools=TOOLS,
                                  tool_choice={"type": "function", "function": {"name": "nope"}})
    assert "nope" in str(e.value)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])


def test_chat_template_sandbox(server, model, tmp_path):
    # a template reaching for Python internals is refused by the sandbox: a 400, not a crash or a leak
    tpl = tmp_path / "evil.jinja"
    tpl.write_text("{{ messages.__class__.__mro__[1].__subclasses__() }}{{ ''.__class__.__base__ }}")
    with Server(["--tool-call-parser", "hermes", "--chat-template", str(tpl)]) as s:
        m = httpx.get(s.url + "/models").json()["data"][0]["id"]
        r = httpx.post(s.url + "/chat/completions", json=chat(m), timeout=30)
        err = check_error(r, 400)
        assert "unsafe" in err["message"] or "template" in err["message"]


def _aborted(server) -> float:
    text = httpx.get(server.base + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    m = re.search(r"^toolgram_engine_aborted (\S+)$", text, re.M)
    return float(m.group(1))


def test_disconnect_aborts_generation(server, model):
    before = _aborted(server)
    # a grammar that keeps the model busy for thousands of tokens
    body = {"model": model, "prompt": "go", "max_tokens": 4000, "stream": True,
            "structured_outputs": {"grammar": "start: /[a-z]{4000}/"}}
    payload = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: " + str(len(payload)).encode()
              + b"\r\n\r\n" + payload)
    got = b""
    while got.count(b"data:") < 3:
        got += s.recv(4096)
    assert b" 200 " in got.split(b"\r\n")[0]
    s.close()                                          # the client goes away mid-stream
    deadline = time.monotonic() + 10
    while _aborted(server) <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _aborted(server) == before + 1
    # and the server serves the next request at once
    t = time.monotonic()
    r = post(server, "/completions", {"model": model, "prompt": "x", "max_tokens": 4})
    assert r.status_code == 200 and time.monotonic() - t < 5


def test_metrics(server, model):
    post(server, "/chat/completions", chat(model, tools=TOOLS, tool_choice="required", max_tokens=80))
    text = httpx.get(server.base + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    for name in ("toolgram_requests_total", "toolgram_completion_tokens_total", "toolgram_tool_calls_total",
                 "toolgram_parse_failures_total", "toolgram_constraint_build_seconds_count",
                 "toolgram_request_latency_seconds_count", "toolgram_engine_aborted"):
        assert name in text, name
    assert float(re.search(r"^toolgram_tool_calls_total (\S+)$", text, re.M).group(1)) >= 1


def _metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_count_successes_and_errors_under_one_label_and_show_the_caches(server, model):
    def scrape():
        return httpx.get(server.base + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text

    before = scrape()
    ok = post(server, "/chat/completions", chat(model, max_tokens=4))
    bad = post(server, "/chat/completions", chat(model, tool_choice="required"))   # no tools: 400
    assert ok.status_code == 200 and bad.status_code == 400
    for _ in range(2):
        post(server, "/chat/completions", chat(model, tools=TOOLS, tool_choice="required", max_tokens=30))
    after = scrape()
    path = "/v1/chat/completions"
    assert _metric(after, "toolgram_requests_total", endpoint=path, status="200") >= \
        _metric(before, "toolgram_requests_total", endpoint=path, status="200") + 3
    assert _metric(after, "toolgram_requests_total", endpoint=path, status="400") == \
        _metric(before, "toolgram_requests_total", endpoint=path, status="400") + 1
    assert not re.search(r'^toolgram_requests_total\{endpoint="chat"', after, re.M)
    # the same tools twice: the second constraint is a cache hit, and /metrics shows it
    assert _metric(after, "toolgram_cache_hits", cache="constraints") >= 1
    assert 0 < _metric(after, "toolgram_cache_size", cache="constraints") <= \
        _metric(after, "toolgram_cache_maxsize", cache="constraints")

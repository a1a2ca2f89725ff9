"""Hostile requests against a real ``toolgram serve`` process (demo model, CPU engine), over real HTTP.

* schemathesis, from the server's own ``/openapi.json``: generated valid and invalid requests to every operation
  (a bounded number: ``TOOLGRAM_HOSTILE_SCALE=N`` multiplies it) never get a 5xx; every 4xx is an OpenAI error
  object; the server is still alive and healthy afterwards;
* targeted: a 50 MB body (413), 10,000 tools (400 at the default limit), a deeply nested schema (400 naming the
  tool, also at depths that used to overflow the stack), ``$ref`` cycles (400; recursion that reaches a schema
  is served), limits configurable on the command line, the default bind address (127.0.0.1 only), bearer auth
  compared in constant time;
* chat templates that reach for Python internals, or try to exhaust memory or the stack, are refused (400),
  never rendered; pythonic arguments like ``__import__('os')`` are data or refused, never executed.

Fixtures and helpers come from tests/test_serve_errors.py (its server has ``--api-key``).
"""
import inspect
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models"))

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("torch")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import toolgram  # noqa: E402
from toolgram.serve import chat as chat_templates  # noqa: E402
from toolgram.serve.launch import Server  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_serve_errors import KEY, TOOLS, chat, check_error, model, post, server  # noqa: E402,F401

SCALE = float(os.environ.get("TOOLGRAM_HOSTILE_SCALE", "1"))


@pytest.fixture(scope="module")
def plain():
    """Default limits, no API key; tiny generations so generated requests stay fast."""
    with Server(["--tool-call-parser", "hermes", "--max-tokens", "8", "--default-max-tokens", "8"]) as s:
        s.model = httpx.get(s.url + "/models").json()["data"][0]["id"]
        yield s


@pytest.fixture(scope="module")
def tight():
    """Every request limit set on the command line, lower than the defaults."""
    with Server(["--tool-call-parser", "hermes", "--max-tools", "3", "--max-body-bytes", "50000",
                 "--max-schema-depth", "8", "--max-messages", "2", "--max-tokens", "8"]) as s:
        s.model = httpx.get(s.url + "/models").json()["data"][0]["id"]
        yield s


def tool(name, params):
    return {"type": "function", "function": {"name": name, "parameters": params}}


def _is_error_object(r):
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"], r.text


# -- schemathesis --------------------------------------------------------------------------------------

def test_schemathesis_finds_no_server_error(plain):
    from schemathesis import GenerationMode
    schema = schemathesis.openapi.from_url(plain.base + "/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {(o.method, o.path) for o in ops} >= {("post", "/v1/chat/completions"), ("post", "/v1/completions"),
                                                  ("get", "/v1/models")}
    seen = {}
    for op in ops:
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if op.method == "post" else [])
        for mode in modes:
            # half the cases name the served model, so that valid requests reach the engine (not only 404)
            @given(case=op.as_strategy(generation_mode=mode), real_model=st.booleans())
            @settings(max_examples=max(1, int((120 if op.method == "post" else 5) * SCALE)), deadline=None,
                      database=None, suppress_health_check=list(HealthCheck))
            def run(case, real_model):
                if real_model and isinstance(case.body, dict) and "model" in case.body:
                    case.body["model"] = plain.model
                r = case.call(base_url=plain.base, timeout=60)
                key = (op.method, op.path, r.status_code)
                seen[key] = seen.get(key, 0) + 1
                assert r.status_code < 500, (case.body if isinstance(case.body, dict) else None, r.text[:500])
                if r.status_code >= 400 and op.path.startswith("/v1/"):
                    _is_error_object(r)
            run()
    assert plain.proc.poll() is None, "the server died"
    assert httpx.get(plain.base + "/health", timeout=5).status_code == 200
    # the generated requests reached the engine, not only the validation
    assert seen.get(("post", "/v1/chat/completions", 200), 0) + seen.get(("post", "/v1/completions", 200), 0) > 0
    assert any(k[2] == 400 for k in seen)


# -- targeted ------------------------------------------------------------------------------------------

def test_50_mb_body_is_413(plain):
    big = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * (50 * 1024 * 1024) + b'"}]}'
    t = time.monotonic()
    r = httpx.post(plain.url + "/chat/completions", content=big, headers={"Content-Type": "application/json"},
                   timeout=60)
    assert r.status_code == 413, r.text[:300]
    _is_error_object(r)
    assert r.json()["error"]["code"] == "request_too_large" and "8388608" in r.json()["error"]["message"]

    def chunks():                                   # no Content-Length: the limit holds while reading
        for _ in range(50):
            yield b"x" * (1024 * 1024)
    r = httpx.post(plain.url + "/chat/completions", content=chunks(), headers={"Content-Type": "application/json"},
                   timeout=60)
    assert r.status_code == 413
    _is_error_object(r)
    assert time.monotonic() - t < 30
    assert httpx.get(plain.base + "/health", timeout=5).status_code == 200


def test_10000_tools_is_a_clear_400(plain):
    many = [tool(f"t{i}", {"type": "object", "properties": {"x": {"type": "string"}}}) for i in range(10_000)]
    for choice in ("auto", "required", {"type": "function", "function": {"name": "t9999"}}):
        t = time.monotonic()
        r = httpx.post(plain.url + "/chat/completions", json=chat(plain.model, tools=many, tool_choice=choice),
                       timeout=60)
        assert time.monotonic() - t < 15
        err = check_error(r, 400, "tools")
        assert "512" in err["message"]


def _deep_schema_body(model, depth, choice):
    """Raw JSON (the client's json module could not even write it): ``depth`` nested object properties."""
    schema = '{"type":"object","properties":{"a":' * depth + '{"type":"string"}' + "}}" * depth
    return ('{"model":%s,"messages":[{"role":"user","content":"hi"}],"max_tokens":8,"tool_choice":"%s",'
            '"tools":[{"type":"function","function":{"name":"deep_tool","parameters":%s}}]}'
            % (json.dumps(model), choice, schema)).encode()


@pytest.mark.parametrize("depth", [40, 400, 2000])
def test_deeply_nested_schema_is_a_400_naming_the_tool(plain, depth):
    for choice in ("auto", "required"):
        r = httpx.post(plain.url + "/chat/completions", content=_deep_schema_body(plain.model, depth, choice),
                       headers={"Content-Type": "application/json"}, timeout=30)
        err = check_error(r, 400)
        if depth < 1000:              # (2000 levels: the body itself is refused by the JSON reader, also a 400)
            assert "deep_tool" in err["message"] and "deeper than 64" in err["message"], err
            assert err["param"] == "tools[0].function.parameters"


def test_moderately_nested_schema_is_served(plain):
    r = httpx.post(plain.url + "/chat/completions", content=_deep_schema_body(plain.model, 20, "required"),
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text[:500]
    calls = r.json()["choices"][0]["message"].get("tool_calls") or []
    for c in calls:
        assert c["function"]["name"] == "deep_tool"
        json.loads(c["function"]["arguments"])


CYCLES = [
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}},
     "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}},
    {"$ref": "#"},
    {"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}},
     "definitions": {"A": {"$ref": "#/definitions/A", "description": "itself"}}},
]


@pytest.mark.parametrize("schema", CYCLES, ids=["two", "root", "self"])
def test_ref_cycle_is_a_400_never_a_hang(plain, schema):
    for choice in ("auto", "required", {"type": "function", "function": {"name": "loop"}}):
        t = time.monotonic()
        r = httpx.post(plain.url + "/chat/completions",
                       json=chat(plain.model, tools=[tool("loop", schema)], tool_choice=choice), timeout=30)
        assert time.monotonic() - t < 10
        err = check_error(r, 400, "tools[0].function.parameters")
        assert "loop" in err["message"] and "$ref cycle" in err["message"], err
    # the library refuses it too (the constraint is never built), for every grammar's value syntax
    for grammar in ("hermes", "pythonic", "glm47"):
        with pytest.raises(toolgram.ConstraintError, match="loop.*cycle"):
            toolgram.load(grammar).constraint([tool("loop", schema)], "required")


def test_recursion_that_reaches_a_schema_is_served(plain):
    tree = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 3},
                                             "children": {"type": "array", "items": {"$ref": "#"}, "maxItems": 2}}}
    r = httpx.post(plain.url + "/chat/completions", json=chat(plain.model, tools=[tool("tree", tree)],
                                                              tool_choice="required", max_tokens=8), timeout=60)
    assert r.status_code == 200, r.text[:500]


def test_limits_are_configurable(tight):
    m = tight.model
    four = [tool(f"t{i}", {"type": "object"}) for i in range(4)]
    assert "at most 3 tools" in check_error(post(tight, "/chat/completions", chat(m, tools=four), key=None),
                                            400, "tools")["message"]
    r = httpx.post(tight.url + "/chat/completions", content=_deep_schema_body(m, 5, "auto"),
                   headers={"Content-Type": "application/json"}, timeout=30)
    assert "deeper than 8" in check_error(r, 400)["message"]
    three = [{"role": "user", "content": "a"}] * 3
    check_error(post(tight, "/chat/completions", chat(m, messages=three), key=None), 400, "messages")
    check_error(post(tight, "/chat/completions", chat(m, messages=[{"role": "user", "content": "x" * 60_000}]),
                     key=None), 413)
    check_error(post(tight, "/chat/completions", chat(m, max_tokens=9), key=None), 400, "max_tokens")
    ok = post(tight, "/chat/completions", chat(m, tools=four[:3], max_tokens=8), key=None)
    assert ok.status_code == 200, ok.text[:300]


def _listening(port: int) -> set:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp and tcp6)."""
    out = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                out.add(addr)
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs /proc/net/tcp")
def test_binds_loopback_only_by_default():
    s = Server(command=[sys.executable, "-m", "toolgram.cli", "serve", "--port", "{port}", "--log-level", "warning",
                        "--tool-call-parser", "hermes"])           # (no --host)
    with s:
        assert _listening(s.port) == {"0100007F"}, _listening(s.port)       # 127.0.0.1, nothing else
        assert httpx.get(s.base + "/health", timeout=5).status_code == 200


def test_api_key_is_compared_in_constant_time(server, model):
    from toolgram.serve import app as app_module
    source = inspect.getsource(app_module._Limits)
    assert "hmac.compare_digest(" in source and "== self.api_key" not in source and "!= self.api_key" not in source
    # what the comparison accepts and refuses, over HTTP
    for bad in (KEY[:-1], KEY + "x", KEY.upper(), "x" * 10_000, "\u00e9" + KEY):
        h = {"Authorization": f"Bearer {bad}".encode("utf-8")}
        check_error(httpx.post(server.url + "/chat/completions", json=chat(model), headers=h, timeout=30), 401)
    for auth in (f"Basic {KEY}", KEY, f"Bearer{KEY}", "Bearer"):
        check_error(httpx.post(server.url + "/chat/completions", json=chat(model),
                               headers={"Authorization": auth}, timeout=30), 401)
    for good in (f"Bearer {KEY}", f"bearer {KEY}", f"Bearer  {KEY}"):
        r = httpx.post(server.url + "/chat/completions", json=chat(model), headers={"Authorization": good},
                       timeout=30)
        assert r.status_code == 200, (good, r.text[:300])


# -- chat templates and pythonic arguments -------------------------------------------------------------

HOSTILE_TEMPLATES = {
    "subclasses": "{{ messages.__class__.__mro__[1].__subclasses__() }}",
    "globals": "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}",
    "function_globals": "{{ raise_exception.__globals__['os'] }}",
    "format": "{{ '{0.__class__.__base__.__subclasses__}'.format(messages) }}",
    "mutation": "{% set _ = messages.append(1) %}{{ messages }}",
    "range": "{% for i in range(10**9) %}{% endfor %}",
    "recursion": "{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}",
    "memory": "{{ 'x' * 10**10 }}",
    "power": "{{ 2**100000000 }}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TEMPLATES))
def test_hostile_chat_template_is_refused(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t = time.monotonic()
    with pytest.raises(chat_templates.TemplateError) as e:
        chat_templates.render(HOSTILE_TEMPLATES[name], [{"role": "user", "content": "hi"}])
    assert time.monotonic() - t < 5
    assert e.value.status == 400
    assert not (tmp_path / "PWNED").exists()


def test_hostile_chat_template_through_the_server(tmp_path):
    """test_serve_errors.py::test_chat_template_sandbox covers attribute access; here the resource attacks, which
    used to be 500s (RecursionError, OverflowError) or could exhaust memory."""
    tpl = tmp_path / "evil.jinja"
    tpl.write_text("{% if messages[0].content == 'r' %}" + HOSTILE_TEMPLATES["recursion"] +
                   "{% elif messages[0].content == 'm' %}" + HOSTILE_TEMPLATES["memory"] +
                   "{% elif messages[0].content == 'g' %}" + HOSTILE_TEMPLATES["range"] +
                   "{% else %}{{ messages[0].content }}{% endif %}")
    with Server(["--tool-call-parser", "hermes", "--chat-template", str(tpl), "--max-tokens", "8"]) as s:
        m = httpx.get(s.url + "/models").json()["data"][0]["id"]
        for text in ("r", "m", "g"):
            r = httpx.post(s.url + "/chat/completions",
                           json={"model": m, "messages": [{"role": "user", "content": text}], "max_tokens": 4},
                           timeout=30)
            err = check_error(r, 400)
            assert err["code"] == "chat_template_error", err
        r = httpx.post(s.url + "/chat/completions",
                       json={"model": m, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}, timeout=30)
        assert r.status_code == 200


PYTHONIC = [
    "[f(a=__import__('os').system('touch PWNED'))]",
    "[f(a=eval('1+1'), b=exec('x=1'))]",
    "[f(a=(1).__class__.__bases__[0].__subclasses__())]",
    "[f(a=open('PWNED', 'w').write('x'))]",
    "[f(a=(lambda: __import__('os'))())]",
    "[f(a=[x for x in ().__class__.__base__.__subclasses__()])]",
    "[__import__('os').system('touch PWNED')]",
    "[f(a='__import__(\\'os\\')', b={'k': [1, (2, 3)]}, c=None, d=True)]",
]


@pytest.mark.parametrize("text", PYTHONIC)
def test_pythonic_arguments_are_data_never_executed(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = toolgram.load("pythonic")
    one = g.parse(text)
    assert "".join(t for _, t in one.segments) == text          # nothing lost, nothing added
    for r in (one, _streamed(g, text)):
        assert [(c.name, c.arguments) for c in r.tool_calls] == [(c.name, c.arguments) for c in one.tool_calls]
        for call in r.tool_calls:
            args = json.loads(call.arguments)
            assert isinstance(args, dict)
            # only literals as written (strings, numbers, lists of them): no result of a call (system() -> 0,
            # eval('1+1') -> 2, open() -> a file object) can appear, since nothing was evaluated
            for leaf in _leaves(args):
                assert leaf is None or isinstance(leaf, (bool, str)) or str(leaf) in text, (text, args)
        if not r.tool_calls:
            assert r.content == text               # refused: the text is left as content
    assert not (tmp_path / "PWNED").exists()
    data = g.parse(PYTHONIC[-1])
    assert json.loads(data.tool_calls[0].arguments) == {"a": "__import__('os')", "b": {"k": [1, [2, 3]]},
                                                        "c": None, "d": True}


def _leaves(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _leaves(x)
    elif isinstance(v, list):
        for x in v:
            yield from _leaves(x)
    else:
        yield v


def _streamed(g, text):
    p = g.stream()
    for i in range(0, len(text), 3):
        p.feed(text[i:i + 3])
    p.close()
    return p.result


@pytest.mark.parametrize("bad", [
    tool("not_tool", {"type": "object", "properties": {"a": {"type": "string", "not": {"const": "x"}}}}),
    tool("a b", {"type": "object"}),
    tool("remote_ref", {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}),
], ids=["keyword", "name", "remote_ref"])
def test_a_constraint_that_cannot_be_built_is_a_400_naming_the_tool(plain, bad):
    good = tool("fine", {"type": "object", "properties": {"x": {"type": "integer"}}})
    name = bad["function"]["name"]
    for choice in ("required", {"type": "function", "function": {"name": name}}):
        r = httpx.post(plain.url + "/chat/completions",
                       json=chat(plain.model, tools=[good, bad], tool_choice=choice), timeout=30)
        err = check_error(r, 400)
        assert repr(name) in err["message"] and err["param"].startswith("tools"), err
    # the other tool alone is served
    r = httpx.post(plain.url + "/chat/completions", json=chat(plain.model, tools=[good, bad], max_tokens=8,
                                                              tool_choice={"type": "function",
                                                                           "function": {"name": "fine"}}),
                   timeout=60)
    assert r.status_code == 200, r.text[:300]

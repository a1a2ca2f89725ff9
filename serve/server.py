"""Assembling a server from options: choose the grammar, the chat template and the engine; run uvicorn.

The grammar is ``--tool-call-parser`` (a bundled name or a file), else the one `toolgram.for_model` finds for the
model's name, else (no model: the built-in demo) the bundled ``default`` grammar.  The reasoning grammar is
``--reasoning-parser`` (``none`` for none), else the grammar's own default, else `toolgram.reasoning_for_model`.
With no ``--model`` the cpu engine serves the demo model built for the grammar's markers (random weights).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("toolgram.serve")

DEMO_GRAMMAR = "default"
ENGINES = ("cpu", "vllm", "upstream")


@dataclass
class Limits:
    """Request limits (all configurable on the command line; these are the defaults, in one place)."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_tools: int = 512
    max_schema_depth: int = 64          # JSON nesting of one tool's parameters (or a response_format schema)
    max_messages: int = 4096
    max_tokens: int = 4096              # the most a request may ask for
    default_max_tokens: int = 512       # when the request does not say
    max_concurrency: int = 64           # generation requests served or queued at once; more get 429
    request_timeout: float = 600.0      # seconds for one whole non-streamed generation (a streamed one runs
    #                                     while its client reads; a client that leaves aborts it)


class ServeError(Exception):
    """A configuration problem, reported on the command line (exit status 2)."""


@dataclass
class Options:
    engine: str = "cpu"
    model: str | None = None
    served_model_name: list = field(default_factory=list)
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    chat_template: str | None = None
    constrain_auto: bool = False
    max_calls: int | None = None
    max_reasoning: int | None = None
    eos_bias: float | None = None
    threads: int | None = None
    upstream: list = field(default_factory=list)
    upstream_kind: str = "vllm"
    upstream_model: str | None = None
    upstream_api_key: str | None = None
    tokenizer: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_model_len: int | None = None
    vllm_dtype: str = "auto"
    vllm_args: dict | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_body_bytes: int = Limits.max_body_bytes
    max_tools: int = Limits.max_tools
    max_schema_depth: int = Limits.max_schema_depth
    max_messages: int = Limits.max_messages
    max_tokens: int = Limits.max_tokens
    default_max_tokens: int = Limits.default_max_tokens
    max_concurrency: int = Limits.max_concurrency
    request_timeout: float = Limits.request_timeout
    log_level: str = "info"
    try_: bool = False              # --try: one request through the openai client, then stop


def _model_names(model: str | None) -> list[str]:
    if not model:
        return []
    names = [model]
    p = Path(model)
    if p.exists():
        names.append(p.resolve().name)
    return names


def choose_grammar(o: Options):
    """The toolgram.Grammar for these options (raises ServeError listing the grammars when none fits)."""
    import toolgram
    from toolgram.compiler import registry
    names = list(o.served_model_name) + _model_names(o.model)
    if o.reasoning_parser:
        reasoning = None if o.reasoning_parser.lower() == "none" else o.reasoning_parser
    else:
        reasoning = registry.DEFAULT
    if o.tool_call_parser:
        name = o.tool_call_parser
        why = "--tool-call-parser"
    elif o.model and _template_source(o.model):
        return _template_grammar(o.model)
    elif o.model:
        name = next((n for n in (toolgram.for_model(m) for m in names) if n), None)
        if name is None:
            raise ServeError(f"no bundled grammar fits model {o.model!r}; pass --tool-call-parser NAME|FILE. "
                             f"Bundled grammars: {', '.join(toolgram.grammars())}")
        why = f"the model name matches grammar {name}'s model globs (the checkpoint has no response_template)"
    else:
        name = DEMO_GRAMMAR
        why = "no --model: the demo model's grammar"
    try:
        g = toolgram.load(name, reasoning)
        if reasoning is registry.DEFAULT and g.reasoning is None and not o.reasoning_parser:
            r = next((x for x in (toolgram.reasoning_for_model(m) for m in names) if x), None)
            if r:
                g = toolgram.load(name, r)
    except toolgram.GrammarError as e:
        raise ServeError(f"{e}\nBundled grammars: {', '.join(toolgram.grammars())}; reasoning grammars: "
                         f"{', '.join(toolgram.reasoning_grammars())}") from None
    g.selection = why
    return g


def _template_source(model: str):
    """The checkpoint's tokenizer_config.json when it carries a response_template, else None."""
    import json as _json
    cfg = Path(model) / "tokenizer_config.json"
    try:
        return cfg if "response_template" in _json.loads(cfg.read_text(encoding="utf-8")) else None
    except (OSError, ValueError, TypeError):
        return None


def _template_grammar(model: str):
    """The checkpoint's own response_template compiled by toolgram; the prompt the chat template opens a turn
    with decides where output starts.  A template that cannot be compiled stops the server with the error."""
    import toolgram
    from toolgram.template_cli import generation_prompt
    prefix = generation_prompt(_model_template(model))
    try:
        g = toolgram.from_response_template(model, prefix=prefix)
    except toolgram.GrammarError as e:
        raise ServeError(f"the checkpoint's response_template cannot be compiled: {e}") from None
    g.selection = ("the checkpoint's response_template (tokenizer_config.json), compiled by toolgram; it comes "
                   "before model globs (--tool-call-parser overrides it)")
    return g


def build(o: Options):
    """(ServeConfig, api_key) for these options; engines are created, not started."""
    from toolgram.serve.engines.base import Engine
    from toolgram.serve.metrics import Metrics
    from toolgram.serve.session import ServeConfig
    if o.engine not in ENGINES:
        raise ServeError(f"--engine must be one of {', '.join(ENGINES)}")
    g = choose_grammar(o)
    template = None
    if o.chat_template:
        try:
            template = Path(o.chat_template).read_text(encoding="utf-8")
        except OSError as e:
            raise ServeError(f"cannot read the chat template: {e}") from None
    notes = {}
    demo = False
    max_calls = o.max_calls
    max_reasoning = o.max_reasoning
    eos_bias = o.eos_bias
    engine: Engine
    if o.engine == "cpu":
        from toolgram.serve import demo_model
        from toolgram.serve.engines.cpu import CPUEngine
        path = o.model
        if path is None:
            path = str(demo_model.for_grammar(g))
            demo = True
        elif not Path(path).is_dir():
            raise ServeError(f"--model must be a local model directory for the cpu engine (nothing is "
                             f"downloaded): {path!r}")
        demo = demo or demo_model.is_demo(path)
        model_id = (o.served_model_name or [None])[0] or (f"toolgram-demo-{g.name}" if o.model is None
                                                           else Path(path).resolve().name)
        if demo:
            notes["demo"] = ("RANDOM WEIGHTS: a toolgram demo model; its tool calls are well formed by "
                             "construction (constrained decoding), their values are noise")
            max_calls = 3 if max_calls is None else max_calls
            max_reasoning = 64 if max_reasoning is None else max_reasoning
            eos_bias = 4.0 if eos_bias is None else eos_bias
            if template is None:
                template = demo_model.SERVE_TEMPLATE
        engine = CPUEngine(path, model_id=model_id, eos_bias=eos_bias or 0.0, threads=o.threads, notes=notes)
    elif o.engine == "vllm":
        from toolgram.serve.engines.vllm import VLLMEngine
        if not o.model:
            raise ServeError("the vllm engine needs --model (a local model directory or a model name vLLM can load)")
        model_id = (o.served_model_name or [None])[0] or o.model
        from toolgram.serve import demo_model
        if Path(o.model).is_dir() and demo_model.is_demo(o.model):
            notes["demo"] = "RANDOM WEIGHTS: a toolgram demo model"
            if template is None:
                template = demo_model.SERVE_TEMPLATE
        if o.vllm_args is not None and not isinstance(o.vllm_args, dict):
            raise ServeError("--vllm-args must be a JSON object")
        engine = VLLMEngine(o.model, model_id=model_id, max_model_len=o.max_model_len, dtype=o.vllm_dtype,
                            engine_kwargs=o.vllm_args, notes=notes)
    else:
        from toolgram.serve.engines.upstream import UpstreamEngine
        if not o.upstream:
            raise ServeError("the upstream engine needs --upstream URL (repeat it for several)")
        tok = o.tokenizer or o.model
        if tok is None or not Path(tok).is_dir():
            raise ServeError("the upstream engine needs --model (or --tokenizer): a local directory with the "
                             "model's tokenizer and chat template, to render prompts and write constraints")
        from toolgram.serve import demo_model
        if demo_model.is_demo(tok):
            notes["demo"] = "RANDOM WEIGHTS: the upstream serves a toolgram demo model"
            if template is None:
                template = demo_model.SERVE_TEMPLATE
        model_id = (o.served_model_name or [None])[0] or o.upstream_model or Path(tok).resolve().name
        engine = UpstreamEngine(o.upstream, model_id=model_id, dialect=o.upstream_kind,
                                upstream_model=o.upstream_model, tokenizer_path=tok,
                                connect_timeout=o.connect_timeout, read_timeout=o.read_timeout,
                                api_key=o.upstream_api_key, notes=notes)
    if template is None:
        template = _model_template(o.tokenizer or o.model)
    limits = Limits(max_body_bytes=o.max_body_bytes, max_tools=o.max_tools, max_schema_depth=o.max_schema_depth,
                    max_messages=o.max_messages, max_tokens=o.max_tokens,
                    default_max_tokens=o.default_max_tokens, max_concurrency=o.max_concurrency,
                    request_timeout=o.request_timeout)
    names = tuple(dict.fromkeys([engine.info.id, *o.served_model_name]))
    cfg = ServeConfig(grammar=g, engine=engine, chat_template=template, model_names=names,
                      metrics=Metrics(engine), limits=limits, constrain_auto=o.constrain_auto, max_calls=max_calls,
                      max_reasoning=max_reasoning)
    cfg.demo = demo
    return cfg, o.api_key


def _model_template(path: str | None) -> str | None:
    """The chat template a local model directory carries (tokenizer_config.json or chat_template.jinja)."""
    if not path or not Path(path).is_dir():
        return None
    p = Path(path)
    jinja = p / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    import json
    cfg = p / "tokenizer_config.json"
    if cfg.exists():
        t = json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(t, list):
            t = next((x.get("template") for x in t if x.get("name") == "default"), None)
        if isinstance(t, str):
            return t
    return None


def run(o: Options) -> int:
    """Build and serve until interrupted (with ``--try``: one request, then stop)."""
    if o.try_:
        return try_request(o)
    import uvicorn
    from toolgram.serve.app import create_app
    logging.basicConfig(level=getattr(logging, o.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg, api_key = build(o)
    g = cfg.grammar
    log.info("toolgram serve: engine %s, model %s, grammar %s%s", cfg.engine.kind, cfg.engine.info.id, g.name,
             f" + reasoning {g.reasoning}" if g.reasoning else "")
    log.info("tool-call parser %s: %s", g.name, getattr(g, "selection", ""))
    if getattr(cfg, "demo", False):
        log.warning("the model is toolgram's DEMO model: its weights are RANDOM. Its tool calls are well formed "
                    "(constrained decoding) but their values are noise. Pass --model PATH to serve a real model.")
    if o.host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        log.warning("listening on %s without --api-key: anyone who can reach this address can use the server",
                    o.host)
    app = create_app(cfg, api_key=api_key)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    uvicorn.run(app, host=o.host, port=o.port, log_level=o.log_level, access_log=False,
                timeout_graceful_shutdown=5)
    return 0


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather forecast for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 40}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city"], "additionalProperties": False}}}


def try_request(o: Options) -> int:
    """``toolgram serve --try``: serve on a free local port, send one streamed tools request through the
    official ``openai`` client over HTTP, print what came back, stop.  Exit status 0 when the answer holds a
    tool call whose arguments are JSON valid for the tool's schema."""
    import threading

    import jsonschema
    import openai
    import uvicorn
    from toolgram.serve.app import create_app
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg, api_key = build(o)
    server = uvicorn.Server(uvicorn.Config(create_app(cfg, api_key=api_key), host="127.0.0.1", port=0,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            print("toolgram serve --try: the server did not start", file=sys.stderr)
            return 1
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=api_key or "none")
        model = client.models.list().data[0]
        print(f"serving {model.id} with grammar {cfg.grammar.name} on the {cfg.engine.kind} engine")
        if getattr(cfg, "demo", False):
            print("(the demo model: random weights, so the call is well formed and its values are noise)")
        question = "What is the weather in Paris for the next 3 days?"
        print(f"> {question}  [tools: get_weather, tool_choice: required, stream]")
        stream = client.chat.completions.create(
            model=model.id, messages=[{"role": "user", "content": question}], tools=[WEATHER_TOOL],
            tool_choice="required", stream=True, max_tokens=200, seed=0)
        calls: dict[int, dict] = {}
        finish = None
        for chunk in stream:
            choice = chunk.choices[0]
            delta = choice.delta
            for tc in delta.tool_calls or ():
                call = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = call["id"] or tc.id
                if tc.function and tc.function.name:
                    call["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    call["arguments"] += tc.function.arguments
                print(f"  delta: {tc.model_dump(exclude_none=True)}")
            if delta.content:
                print(f"  delta: content {delta.content!r}")
            finish = choice.finish_reason or finish
        print(f"finish_reason: {finish}")
        ok = bool(calls)
        for call in calls.values():
            args = json.loads(call["arguments"])
            jsonschema.validate(args, WEATHER_TOOL["function"]["parameters"])
            print(f"tool call {call['id']}: {call['name']}({json.dumps(args, ensure_ascii=False)})")
        if not ok:
            print("no tool call came back", file=sys.stderr)
        return 0 if ok else 1
    finally:
        server.should_exit = True
        thread.join(timeout=10)

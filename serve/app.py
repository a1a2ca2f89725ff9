"""The FastAPI application: routes, SSE streaming, limits, authentication and error handling.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (stream via SSE ending in ``data: [DONE]``, or
one JSON response), ``GET /v1/models``, ``GET /health``, ``GET /metrics``.

Every failure is an OpenAI error object ``{"error": {"message", "type", "param", "code"}}`` with its status:
400 bad request (malformed JSON and schema violations included: FastAPI's 422 becomes 400), 401 bad or missing
API key, 404 unknown model or route, 413 body over the limit, 429 too many requests at once, 502/504 upstream
failure or timeout.  An unexpected exception is a 500 with a generic message (the traceback stays in the log).
Once a stream has started, an error is sent as ``data: {"error": ...}`` followed by ``data: [DONE]``.  A client
that disconnects mid-stream stops its generation (the engine request is aborted).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from toolgram.serve.protocol import (APIError, ChatCompletionRequest, CompletionRequest, chat_chunk, chat_response,
                       completion_chunk, error_body, new_id, now, usage)
from toolgram.serve.session import ChatSession, CompletionSession, ServeConfig
from toolgram.version import __version__

log = logging.getLogger("toolgram.serve")


def _json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _utf8(text: str) -> bytes:
    # a lone surrogate (a model can write the escape "\ud800", which decodes to one) cannot be UTF-8: it goes
    # out as its JSON escape, which reads back as the same string, instead of failing the whole response
    return text.encode("utf-8", "backslashreplace")


def _sse(obj) -> bytes:
    return _utf8(f"data: {_json(obj)}\n\n")


class _JSONResponse(JSONResponse):
    """Every JSON answer: compact, UTF-8, and encodable whatever strings it holds (see `_utf8`)."""

    def render(self, content) -> bytes:
        return _utf8(_json(content))


class _Limits:
    """Pure ASGI middleware: API key check and body size limit (before FastAPI reads the body)."""

    def __init__(self, app, *, max_body: int, api_key: str | None):
        self.app = app
        self.max_body = max_body
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        if self.api_key is not None and scope.get("path") not in ("/health",):
            auth = headers.get(b"authorization", b"")
            given = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(given, self.api_key):
                return await _send_error(send, 401, "invalid or missing API key (Authorization: Bearer ...)",
                                         code="invalid_api_key")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_body:
                    return await _send_error(send, 413, f"request body over {self.max_body} bytes",
                                             code="request_too_large")
            except ValueError:
                return await _send_error(send, 400, "bad Content-Length")
        state = {"seen": 0, "too_big": False, "sent": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.max_body:
                    state["too_big"] = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message):
            # a body that overran the limit (without a Content-Length) ends as a 413, whatever the app made of it
            if state["too_big"]:
                if not state["sent"]:
                    state["sent"] = True
                    await _send_error(send, 413, f"request body over {self.max_body} bytes",
                                      code="request_too_large")
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            await guarded_send(None)


class _BodyTooLarge(Exception):
    pass


async def _send_error(send, status: int, message: str, code: str | None = None):
    body = _utf8(_json(error_body(status, message, code=code)))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _SSEResponse(StreamingResponse):
    """A stream that also listens for the client's disconnect (also while no text is being generated) and
    closes its body iterator when either side ends, so the engine request is aborted at once."""

    def __init__(self, *args, on_close=None, **kw):
        super().__init__(*args, **kw)
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await self._run(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()
                if self.on_close is not None:
                    await self.on_close()

    async def _run(self, scope, receive, send):
        async with anyio.create_task_group() as tg:
            async def listen():
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()

            tg.start_soon(listen)
            try:                                  # (in this task: the body started in the endpoint's task)
                await self.stream_response(send)
            except OSError:
                pass                              # the client went away while we wrote
            finally:
                tg.cancel_scope.cancel()


def _err(e: APIError) -> JSONResponse:
    return _JSONResponse(e.body(), status_code=e.status)


def create_app(cfg: ServeConfig, *, api_key: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app):
        await cfg.engine.start()
        try:
            yield
        finally:
            await cfg.engine.close()

    app = FastAPI(title="toolgram", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  default_response_class=_JSONResponse)
    app.state.cfg = cfg
    metrics = cfg.metrics
    busy = {"n": 0}

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError):
        metrics.requests.labels(request.url.path, str(e.status)).inc()
        return _err(e)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        errs = e.errors()
        first = errs[0] if errs else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        if first.get("type") == "json_invalid":
            msg, param = f"malformed JSON: {first.get('msg', '')}", None
        else:
            param = ".".join(loc) or None
            msg = f"{param or 'body'}: {first.get('msg', 'invalid')}"
            if len(errs) > 1:
                msg += f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})"
        metrics.requests.labels(request.url.path, "400").inc()
        return _JSONResponse(error_body(400, msg, param=param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        msg = f"no route {request.method} {request.url.path}" if e.status_code in (404, 405) else str(e.detail)
        return _JSONResponse(error_body(e.status_code, msg, code=code), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        log.exception("unexpected error on %s", request.url.path)
        metrics.requests.labels(request.url.path, "500").inc()
        return _JSONResponse(error_body(500, "internal server error"), status_code=500)

    @app.get("/health")
    async def health():
        return {"status": "ok", **cfg.engine.health()}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def models():
        info = cfg.engine.info
        g = cfg.grammar
        data = []
        for name in cfg.model_names:
            entry = {"id": name, "object": "model", "created": now(), "owned_by": info.owned_by,
                     "root": info.id, "max_model_len": info.max_model_len,
                     "toolgram": {"engine": cfg.engine.kind, "tool_call_parser": g.name,
                                  "reasoning_parser": g.reasoning, **info.notes}}
            data.append(entry)
        return {"object": "list", "data": data}

    def _check_model(name: str):
        if name not in cfg.model_names:
            raise APIError(404, f"model {name!r} is not served here; available: {', '.join(cfg.model_names)}",
                           param="model", code="model_not_found")

    def _enter():
        if busy["n"] >= cfg.limits.max_concurrency:
            raise APIError(429, f"the server is serving {busy['n']} requests, its limit; retry later",
                           code="too_many_requests")
        busy["n"] += 1
        metrics.in_flight.inc()

    def _leave():
        busy["n"] -= 1
        metrics.in_flight.dec()

    async def _watch(request: Request, coro):
        """Run ``coro``; cancel it if the client disconnects (non-streamed requests) or it overruns."""
        task = asyncio.ensure_future(coro)
        deadline = time.monotonic() + cfg.limits.request_timeout
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.25)
                if done:
                    return task.result()
                if await request.is_disconnected():
                    task.cancel()
                    raise APIError(499, "client disconnected", code="client_closed")
                if time.monotonic() > deadline:
                    task.cancel()
                    raise APIError(504, "generation timed out", code="timeout")
        finally:
            if not task.done():
                task.cancel()

    async def _stream(request: Request, first_events, events, session):
        """SSE response; ``first_events`` were produced before the headers (so early errors get a status)."""
        started = time.perf_counter()
        closed = {"done": False}

        async def finish(status: str):
            if closed["done"]:
                return
            closed["done"] = True
            with anyio.CancelScope(shield=True):
                await events.aclose()
            _leave()
            metrics.requests.labels(request.url.path, status).inc()
            metrics.latency.labels(request.url.path).observe(time.perf_counter() - started)
            metrics.prompt_tokens.inc(session.prompt_tokens)
            metrics.completion_tokens.inc(session.completion_tokens)

        async def body():
            status = "200"
            try:
                for ev in first_events:
                    yield ev
                async for ev in events:
                    yield ev
            except APIError as e:
                status = str(e.status)
                metrics.stream_errors.inc()
                yield _sse(e.body())
            except asyncio.CancelledError:
                status = "499"
                raise
            except Exception:                 # noqa: BLE001 - the stream has started: report it in the stream
                log.exception("error during a stream")
                status = "500"
                metrics.stream_errors.inc()
                yield _sse(error_body(500, "internal error during generation"))
            finally:
                await finish(status)
            yield b"data: [DONE]\n\n"

        # (also when the body never started: the client left before the first byte)
        return _SSEResponse(body(), media_type="text/event-stream", on_close=lambda: finish("499"),
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _primed(events):
        """Pull the first event before the response starts: errors there become a plain HTTP error."""
        try:
            first = await events.__anext__()
        except StopAsyncIteration:
            return []
        return [first]

    async def _open_stream(request, gen, session, primes: int):
        """Pull the first ``primes`` events before the response starts (errors there are a plain HTTP error),
        then stream the rest."""
        head = []
        try:
            for _ in range(primes):
                head += await _primed(gen)
        except BaseException:
            await gen.aclose()
            _leave()
            raise
        return await _stream(request, head, gen, session)

    async def _run_to_end(request, pieces, session, started: float) -> None:
        """A non-streamed request: generate to the end (a client that leaves aborts it), then count it."""
        async def run():
            async for _ in pieces:
                pass

        try:
            await _watch(request, run())
        finally:
            _leave()
        metrics.requests.labels(request.url.path, "200").inc()
        metrics.latency.labels(request.url.path).observe(time.perf_counter() - started)
        metrics.prompt_tokens.inc(session.prompt_tokens)
        metrics.completion_tokens.inc(session.completion_tokens)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        _check_model(req.model)
        session = ChatSession(cfg, req)
        rid = new_id("chatcmpl")
        created = now()
        model = req.model
        _enter()
        started = time.perf_counter()
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)

            async def events():
                yield _sse(chat_chunk(rid, model, created, {"role": "assistant", "content": ""}))
                async for d in session.deltas():
                    yield _sse(chat_chunk(rid, model, created, d))
                yield _sse(chat_chunk(rid, model, created, {}, session.finish_reason))
                if include_usage:
                    yield _sse(chat_chunk(rid, model, created, None,
                                          usage_=usage(session.prompt_tokens, session.completion_tokens)))

            # the role chunk, then the first generated delta: engine errors surface there
            return await _open_stream(request, events(), session, primes=2)

        await _run_to_end(request, session.deltas(), session, started)
        return chat_response(rid, model, created, session.message(), session.finish_reason,
                             usage(session.prompt_tokens, session.completion_tokens))

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        _check_model(req.model)
        session = CompletionSession(cfg, req)
        rid = new_id("cmpl")
        created = now()
        model = req.model
        _enter()
        started = time.perf_counter()
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)

            async def events():
                async for t in session.texts():
                    yield _sse(completion_chunk(rid, model, created, t))
                yield _sse(completion_chunk(rid, model, created, "", session.finish_reason))
                if include_usage:
                    yield _sse(completion_chunk(rid, model, created, None,
                                                usage_=usage(session.prompt_tokens, session.completion_tokens)))

            return await _open_stream(request, events(), session, primes=1)

        await _run_to_end(request, session.texts(), session, started)
        return {"id": rid, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": "".join(session.parts), "logprobs": None,
                             "finish_reason": session.finish_reason}],
                "usage": usage(session.prompt_tokens, session.completion_tokens)}

    app.add_middleware(_Limits, max_body=cfg.limits.max_body_bytes, api_key=api_key)
    return app

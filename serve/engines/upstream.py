"""The upstream engine: generation by one or more OpenAI-compatible servers that serve ``/v1/completions``
(vLLM, SGLang, llama.cpp's server, another toolgram), with toolgram rendering the prompt, sending the
constraint and parsing the stream.  This is how toolgram scales past one machine.

The constraint goes in the form the upstream understands (``--upstream-kind``):

* ``vllm`` (also toolgram and anything vLLM-compatible): ``structured_outputs: {"grammar": LARK}`` (or
  ``{"json": SCHEMA}``) and ``skip_special_tokens: false``; markers that are single tokens of the local tokenizer
  are written as token ids (vLLM's guidance backend refuses a quoted marker that is an added token);
* ``llamacpp``: ``grammar: GBNF`` (or ``json_schema``);
* ``sglang``: ``ebnf: GBNF`` (or ``json_schema``).

Requests are spread over the URLs by least outstanding requests (ties in turn).  A URL that refuses the
connection is skipped for a few seconds and the request goes to the next one.  Every wait is bounded: connect
(``connect_timeout``) and the gap between two stream reads (``read_timeout``); an upstream that is down, stalls,
answers an error or dies mid-stream becomes an `EngineError` (502, or 504 for a timeout) that reaches the
client as an OpenAI error, or as an error event once its stream has started.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from typing import AsyncIterator

from toolgram.serve.engines.base import Engine, EngineDelta, EngineError, EngineRequest, ModelInfo

log = logging.getLogger("toolgram.serve")

KINDS = ("vllm", "llamacpp", "sglang")


class _Target:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        if self.url.endswith("/v1"):
            self.url = self.url[:-3]
        self.outstanding = 0
        self.down_until = 0.0
        self.served = 0
        self.failures = 0


class UpstreamEngine(Engine):
    kind = "upstream"

    def __init__(self, urls: list[str], *, model_id: str, dialect: str = "vllm", upstream_model: str | None = None,
                 tokenizer_path: str | None = None, connect_timeout: float = 5.0, read_timeout: float = 60.0,
                 retry_down_after: float = 5.0, api_key: str | None = None, notes: dict | None = None):
        super().__init__()
        if not urls:
            raise ValueError("the upstream engine needs at least one URL")
        if dialect not in KINDS:
            raise ValueError(f"upstream kind must be one of {', '.join(KINDS)}")
        self.targets = [_Target(u) for u in urls]
        self.dialect = dialect
        self.syntax = "lark" if dialect == "vllm" else "gbnf"
        self.token_markers = dialect == "vllm"
        self.upstream_model = upstream_model
        self.tokenizer_path = tokenizer_path
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry_down_after = retry_down_after
        self.api_key = api_key
        self.info = ModelInfo(id=model_id, notes=dict(notes or {}))
        self.client = None
        self._turn = itertools.count()
        self._live: dict[str, object] = {}
        self.stats.update(upstream_errors=0, upstream_timeouts=0)

    async def start(self) -> None:
        import httpx
        timeout = httpx.Timeout(connect=self.connect_timeout, read=self.read_timeout, write=self.read_timeout,
                                pool=self.connect_timeout)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.client = httpx.AsyncClient(timeout=timeout, headers=headers,
                                        limits=httpx.Limits(max_connections=1024, max_keepalive_connections=256))
        if self.tokenizer_path:
            from transformers import AutoTokenizer
            self.tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, self.tokenizer_path)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def health(self) -> dict:
        now = time.monotonic()
        return {"engine": self.kind, "upstreams": [
            {"url": t.url, "outstanding": t.outstanding, "served": t.served, "failures": t.failures,
             "down": t.down_until > now} for t in self.targets]}

    async def abort(self, request_id: str) -> None:
        resp = self._live.get(request_id)
        if resp is not None:
            await resp.aclose()

    def _order(self) -> list[_Target]:
        now = time.monotonic()
        turn = next(self._turn)
        n = len(self.targets)
        ranked = sorted(range(n), key=lambda i: (self.targets[i].down_until > now, self.targets[i].outstanding,
                                                 (i - turn) % n))
        return [self.targets[i] for i in ranked]

    async def _model(self, target: _Target) -> str:
        if self.upstream_model:
            return self.upstream_model
        try:
            r = await self.client.get(target.url + "/v1/models")
            r.raise_for_status()
            self.upstream_model = r.json()["data"][0]["id"]
        except Exception:                      # noqa: BLE001 - any failure: fall back to our own name
            return self.info.id
        return self.upstream_model

    def _body(self, request: EngineRequest, model: str) -> dict:
        body = {"model": model, "prompt": request.prompt, "max_tokens": request.max_tokens,
                "temperature": request.temperature, "top_p": request.top_p, "stream": True,
                "stream_options": {"include_usage": True}}
        if request.seed is not None:
            body["seed"] = request.seed
        if request.logit_bias:
            body["logit_bias"] = {str(k): v for k, v in request.logit_bias.items()}
        g = request.grammar
        if self.dialect == "vllm":
            body["skip_special_tokens"] = False
            if g is not None:
                body["structured_outputs"] = {"json": g.json_schema} if g.json_schema is not None else \
                    {"grammar": g.text}
        else:
            body["n_probs"] = 0
            if g is not None:
                if g.json_schema is not None:
                    body["json_schema"] = g.json_schema
                elif g.syntax != "gbnf":
                    raise EngineError(400, f"a {self.dialect} upstream takes GBNF constraints")
                else:
                    body["grammar" if self.dialect == "llamacpp" else "ebnf"] = g.text
        return body

    async def _open(self, request: EngineRequest):
        """Send the request to the least loaded reachable upstream: (target, response)."""
        import httpx
        errors = []
        for target in self._order():
            model = await self._model(target)
            body = self._body(request, model)
            req = self.client.build_request("POST", target.url + "/v1/completions", json=body)
            try:
                resp = await self.client.send(req, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                target.failures += 1
                target.down_until = time.monotonic() + self.retry_down_after
                errors.append(f"{target.url}: {type(e).__name__}")
                continue
            except httpx.TimeoutException:
                target.failures += 1
                self.stats["upstream_timeouts"] += 1
                raise EngineError(504, f"upstream {target.url} did not answer within {self.read_timeout:g} s",
                                  code="upstream_timeout") from None
            except httpx.HTTPError as e:
                target.failures += 1
                errors.append(f"{target.url}: {type(e).__name__}: {e}")
                continue
            if resp.status_code >= 400:
                try:
                    raw = (await resp.aread()).decode("utf-8", "replace")
                finally:
                    await resp.aclose()
                message = raw[:500]
                try:
                    message = json.loads(raw)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    pass
                status = resp.status_code if resp.status_code in (400, 413, 422) else 502
                self.stats["upstream_errors"] += 1
                raise EngineError(400 if status == 422 else status,
                                  f"upstream {target.url} answered {resp.status_code}: {message}",
                                  code="upstream_error")
            return target, resp
        self.stats["upstream_errors"] += 1
        raise EngineError(502, "no upstream reachable: " + "; ".join(errors), code="upstream_unavailable")

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        import httpx
        if self.client is None:
            raise EngineError(503, "the engine is not started", code="engine_not_ready")
        self.stats["requests"] += 1
        target, resp = await self._open(request)
        target.outstanding += 1
        self.stats["active"] += 1
        self._live[request.request_id] = resp
        counted = 0
        total = None
        prompt_tokens = None
        finished = None
        try:
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise EngineError(502, f"upstream {target.url} sent a malformed event",
                                      code="upstream_error") from None
                if "error" in chunk:
                    err = chunk["error"]
                    msg = err.get("message") if isinstance(err, dict) else str(err)
                    raise EngineError(502, f"upstream {target.url}: {msg}", code="upstream_error")
                choices = chunk.get("choices") or []
                u = chunk.get("usage")
                if u:
                    prompt_tokens = u.get("prompt_tokens", prompt_tokens)
                    total = int(u.get("completion_tokens") or 0)
                if choices:
                    c = choices[0]
                    text = c.get("text") or ""
                    reason = c.get("finish_reason")
                    if text:
                        counted += 1
                        yield EngineDelta(text=text, tokens=1)
                    if reason:
                        finished = {"length": "length", "abort": "abort"}.get(reason, "stop")
            if not finished:
                raise EngineError(502, f"upstream {target.url} ended the stream before finishing",
                                  code="upstream_error")
            target.served += 1
            # the finish (after the usage chunk that follows it): token counts corrected to the upstream's
            yield EngineDelta(tokens=max(0, (total or counted) - counted), finish_reason=finished,
                              prompt_tokens=prompt_tokens)
        except httpx.TimeoutException:
            self.stats["upstream_timeouts"] += 1
            target.failures += 1
            raise EngineError(504, f"upstream {target.url} stalled for {self.read_timeout:g} s",
                              code="upstream_timeout") from None
        except httpx.HTTPError as e:
            self.stats["upstream_errors"] += 1
            target.failures += 1
            raise EngineError(502, f"upstream {target.url} failed mid-stream: {type(e).__name__}",
                              code="upstream_error") from None
        except EngineError:
            self.stats["errors"] += 1
            raise
        except (GeneratorExit, asyncio.CancelledError):
            # the consumer went away (closed, or cancelled with its client): the upstream request ends with
            # this response (``finally``), which is what stops its generation
            if not finished:
                self.stats["aborted"] += 1
            raise
        finally:
            target.outstanding -= 1
            self.stats["active"] -= 1
            self._live.pop(request.request_id, None)
            await resp.aclose()

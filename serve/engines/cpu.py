"""The embedded CPU engine: a transformers causal LM decoded by `toolgram.runtime.decoding.Decoder`, with
llguidance masks when the request has a constraint.

Requests are **serialised**: one worker thread runs one generation at a time (the decoder holds one KV cache,
and on a small CPU the matmuls of one sequence already use the cores; batching requests with different
sampling options, seeds and grammars would change what each one gets).  Waiting requests queue in arrival order
(bounded by the server's concurrency limit).  The worker feeds an asyncio queue; a consumer that goes away
(client disconnect) sets the request's abort flag, which the decoder checks before every token
(``should_abort``), and a queued request whose client left is skipped without running.  ``stats["aborted"]``
counts generations stopped that way.

``eos_bias`` adds a logit bias to the end-of-sequence tokens: a random-weight model (the demo) then ends its
free text within a few dozen tokens instead of running to ``max_tokens``.  It does not touch the grammar mask.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import AsyncIterator

from .base import Engine, EngineDelta, EngineError, EngineRequest, ModelInfo

log = logging.getLogger("toolgram.serve")

_DONE = object()


class CPUEngine(Engine):
    kind = "cpu"
    syntax = "lark"

    def __init__(self, model_path: str | Path, *, model_id: str, eos_bias: float = 0.0, threads: int | None = None,
                 notes: dict | None = None):
        super().__init__()
        self.path = Path(model_path)
        self.eos_bias = float(eos_bias)
        self.threads = threads
        self.decoder = None
        self.info = ModelInfo(id=model_id, notes=dict(notes or {}))
        self._aborts: dict[str, threading.Event] = {}
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="toolgram-cpu")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load)

    def _load(self) -> None:
        from ...runtime.decoding import Decoder
        self.decoder = Decoder.from_pretrained(self.path, threads=self.threads)
        self.tokenizer = self.decoder.tokenizer
        self.decoder.ll_tokenizer             # built once, before the first request
        cfg = self.decoder.model.config
        self.info.max_model_len = int(getattr(cfg, "max_position_embeddings", 0) or 0) or None

    async def close(self) -> None:
        for ev in self._aborts.values():
            ev.set()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def abort(self, request_id: str) -> None:
        ev = self._aborts.get(request_id)
        if ev is not None:
            ev.set()

    def health(self) -> dict:
        return {"engine": self.kind, "model": str(self.path), "queued_or_running": len(self._aborts)}

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        if self.decoder is None:
            raise EngineError(503, "the engine is not started", code="engine_not_ready")
        if request.grammar is not None and request.grammar.syntax != "lark":
            raise EngineError(400, f"the cpu engine takes Lark constraints, not {request.grammar.syntax}")
        ids = request.prompt_ids
        if ids is None:
            ids = self.tokenizer.encode(request.prompt, add_special_tokens=False)
        loop = asyncio.get_running_loop()
        # steps go through a deque; the event loop is woken once per batch of steps, not once per token (a
        # consumer that lags behind then takes several tokens as one delta)
        buf: collections.deque = collections.deque()
        ready = asyncio.Event()
        signalled = [False]
        abort = threading.Event()
        self._aborts[request.request_id] = abort
        self.stats["requests"] += 1
        bias = dict(request.logit_bias or {})
        if self.eos_bias:
            for e in self.decoder.eos:
                bias[e] = bias.get(e, 0.0) + self.eos_bias

        def put(item):
            buf.append(item)
            if not signalled[0]:
                signalled[0] = True
                loop.call_soon_threadsafe(ready.set)

        def work():
            from ...runtime.decoding import DecodingError
            try:
                if abort.is_set():
                    self.stats["aborted"] += 1
                    return
                self.stats["active"] += 1
                try:
                    grammars = [request.grammar.text] if request.grammar is not None else None
                    for step in self.decoder.generate(
                            [list(ids)], grammars, max_new_tokens=request.max_tokens,
                            temperature=request.temperature, top_p=request.top_p, seed=request.seed,
                            should_abort=abort.is_set, logit_bias=bias or None):
                        if step.reason == "abort":
                            self.stats["aborted"] += 1
                        put(step)
                finally:
                    self.stats["active"] -= 1
            except DecodingError as e:
                put(EngineError(400, str(e), code="constraint_error"))
            except Exception as e:            # noqa: BLE001 - reported to the client as an engine error
                log.exception("cpu engine failure")
                put(EngineError(500, f"engine failure: {type(e).__name__}: {e}"))
            finally:
                put(_DONE)

        loop.run_in_executor(self._executor, work)
        first = True
        try:
            while True:
                if not buf:
                    await ready.wait()
                signalled[0] = False
                ready.clear()
                text, tokens, reason, done, error = [], 0, None, False, None
                while buf:
                    item = buf.popleft()
                    if item is _DONE:
                        done = True
                        break
                    if isinstance(item, Exception):
                        error = item
                        break
                    text.append(item.text)
                    tokens += 1 if item.token >= 0 else 0
                    if item.finished:
                        reason = item.reason
                        break
                if error is not None:
                    self.stats["errors"] += 1
                    raise error
                if done and reason is None:       # (the decoder ends silently when the mask allows nothing more)
                    reason = "abort" if abort.is_set() else "stop"
                if not (text or tokens or reason):
                    continue
                d = EngineDelta(text="".join(text), tokens=tokens, finish_reason=reason)
                if first:
                    d.prompt_tokens = len(ids)
                    first = False
                yield d
                if reason is not None:
                    return
        finally:
            abort.set()                       # the consumer is gone or done: the worker stops at the next token
            self._aborts.pop(request.request_id, None)

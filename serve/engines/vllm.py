"""The vLLM engine: vLLM's ``AsyncLLM`` in-process.

Each request becomes ``SamplingParams(structured_outputs=StructuredOutputsParams(grammar=LARK),
skip_special_tokens=False, output_kind=DELTA)`` on a ``TokensPrompt`` of the rendered prompt (toolgram
tokenizes it with the model's own tokenizer, so the prompt is not tokenized twice).  Constraints are Lark in
llguidance's dialect with single-token markers written as token ids (``<[id]>``): the engine is started with
the ``guidance`` structured-outputs backend, pinned (with ``auto`` the first request would choose the backend
for all).  vLLM's own engine process is spawned, so a program that starts this engine needs a main guard.

vLLM is imported only when this engine starts: toolgram does not depend on it.  Environment defaults for a CPU
machine (``VLLM_CPU_KVCACHE_SPACE=1``, ``HF_HUB_OFFLINE=1``) are set when unset.
"""
from __future__ import annotations

import os
from typing import AsyncIterator

from toolgram.serve.engines.base import Engine, EngineDelta, EngineError, EngineRequest, ModelInfo


class VLLMEngine(Engine):
    kind = "vllm"
    syntax = "lark"

    def __init__(self, model: str, *, model_id: str, max_model_len: int | None = None, dtype: str = "auto",
                 backend: str = "guidance", engine_kwargs: dict | None = None, notes: dict | None = None):
        super().__init__()
        self.model = model
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.backend = backend
        self.engine_kwargs = dict(engine_kwargs or {})
        self.info = ModelInfo(id=model_id, notes=dict(notes or {}))
        self.llm = None

    async def start(self) -> None:
        for k, v in (("VLLM_CPU_KVCACHE_SPACE", "1"), ("HF_HUB_OFFLINE", "1")):
            os.environ.setdefault(k, v)
        try:
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as e:
            raise RuntimeError(f"the vllm engine needs vLLM installed ({e}); see docs/serving.md") from None
        from transformers import AutoTokenizer
        self.tokenizer = AutoTokenizer.from_pretrained(self.model)
        kwargs = dict(model=self.model, dtype=self.dtype, structured_outputs_config={"backend": self.backend})
        if self.max_model_len:
            kwargs["max_model_len"] = self.max_model_len
        kwargs.update(self.engine_kwargs)
        self.llm = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
        self.info.max_model_len = self.llm.model_config.max_model_len

    async def close(self) -> None:
        if self.llm is not None:
            self.llm.shutdown()
            self.llm = None

    async def abort(self, request_id: str) -> None:
        if self.llm is not None:
            await self.llm.abort(request_id)

    def health(self) -> dict:
        return {"engine": self.kind, "model": self.model, "errored": bool(self.llm is not None and self.llm.errored)}

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
        if self.llm is None:
            raise EngineError(503, "the engine is not started", code="engine_not_ready")
        so = None
        g = request.grammar
        if g is not None:
            if g.json_schema is not None:
                so = StructuredOutputsParams(json=g.json_schema)
            elif g.syntax == "lark":
                so = StructuredOutputsParams(grammar=g.text)
            else:
                raise EngineError(400, f"the vllm engine takes Lark constraints, not {g.syntax}")
        try:
            params = SamplingParams(max_tokens=request.max_tokens, temperature=request.temperature,
                                    top_p=request.top_p, seed=request.seed, structured_outputs=so,
                                    logit_bias=request.logit_bias, skip_special_tokens=False,
                                    output_kind=RequestOutputKind.DELTA)
        except (ValueError, TypeError) as e:
            raise EngineError(400, f"sampling parameters: {e}") from None
        ids = request.prompt_ids
        if ids is None:
            ids = self.tokenizer.encode(request.prompt, add_special_tokens=False)
        self.stats["requests"] += 1
        self.stats["active"] += 1
        first = True
        finished = False
        try:
            async for out in self.llm.generate(TokensPrompt(prompt_token_ids=list(ids)), params,
                                               request_id=request.request_id):
                c = out.outputs[0]
                d = EngineDelta(text=c.text, tokens=len(c.token_ids))
                if first:
                    d.prompt_tokens = len(ids)
                    first = False
                if out.finished:
                    finished = True
                    reason = c.finish_reason
                    d.finish_reason = "length" if reason == "length" else ("abort" if reason == "abort" else "stop")
                    if reason not in ("stop", "length", "abort", None):
                        self.stats["errors"] += 1
                        raise EngineError(502, f"vLLM finished the request with {reason!r}", code="engine_error")
                yield d
                if finished:
                    return
        except (ValueError, TypeError) as e:          # vLLM validates the grammar when the request is added
            self.stats["errors"] += 1
            raise EngineError(400, f"vLLM refused the request: {e}", code="engine_rejected") from None
        finally:
            self.stats["active"] -= 1
            if not finished:
                self.stats["aborted"] += 1
                await self.llm.abort(request.request_id)

"""The engine interface: what the server asks of a text generator.

An engine takes an `EngineRequest` (the rendered prompt, its token ids when the engine tokenizes locally, an
optional grammar constraint, sampling options) and yields `EngineDelta`s: new text, how many tokens it took,
and at the end a finish reason.  ``abort(request_id)`` stops a generation (a client went away).  Engines keep
plain counters (`stats`) that /metrics reports.  An engine error reaches the client as an OpenAI error:
`EngineError` carries the HTTP status (502 upstream failure, 504 upstream timeout, 503 overloaded).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator

from toolgram.serve.protocol import APIError


class EngineError(APIError):
    def __init__(self, status: int, message: str, code: str = "engine_error"):
        super().__init__(status, message, code=code)


@dataclass
class EngineConstraint:
    """A decoding constraint as the engine receives it: Lark for llguidance (``lark``), GBNF (``gbnf``), or a
    JSON schema (``json``)."""

    syntax: str
    text: str
    json_schema: dict | None = None      # set when the constraint is "a JSON value of this schema"


@dataclass
class EngineRequest:
    request_id: str
    prompt: str
    prompt_ids: list[int] | None = None
    grammar: EngineConstraint | None = None
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    logit_bias: dict[int, float] | None = None


@dataclass
class EngineDelta:
    text: str = ""
    tokens: int = 0                      # tokens generated since the previous delta
    finish_reason: str | None = None     # "stop" (natural end), "length", "abort"
    prompt_tokens: int | None = None     # when the engine counts the prompt itself (upstream)


@dataclass
class ModelInfo:
    id: str
    owned_by: str = "toolgram"
    max_model_len: int | None = None
    notes: dict = field(default_factory=dict)


class Engine:
    """Base class: subclasses set ``kind``, ``info``, ``tokenizer`` and implement `generate` and `abort`."""

    kind = "base"
    #: constraint syntax the engine understands: "lark" (llguidance) or "gbnf"
    syntax = "lark"
    #: whether single-token markers should be written as token ids in constraints
    token_markers = True

    def __init__(self):
        self.info: ModelInfo | None = None
        self.tokenizer = None             # a transformers tokenizer: chat template, marker ids, prompt tokens
        self.stats = {"requests": 0, "aborted": 0, "active": 0, "errors": 0}

    async def start(self) -> None:
        """Load what the engine needs (called once before serving)."""

    async def close(self) -> None:
        """Release resources."""

    def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        raise NotImplementedError

    async def abort(self, request_id: str) -> None:
        raise NotImplementedError

    def health(self) -> dict:
        return {"engine": self.kind}

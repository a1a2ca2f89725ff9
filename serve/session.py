"""One request: from the validated OpenAI request to the engine and back.

`ChatSession` checks the tools and ``tool_choice``, chooses the constraint (``required``/named: the grammar's
constraint; ``none``: markers banned; ``auto``: none, or the lazy constraint with ``--constrain-auto``;
``response_format``: a JSON grammar), renders the prompt with the chat template, drives the engine, feeds the
text to the grammar's incremental parser and yields OpenAI deltas as they come.  It applies ``stop`` strings
(held back until they can no longer match), enforces ``parallel_tool_calls=false`` also where no constraint
does (generation stops where a second call begins), and decides ``finish_reason``: ``tool_calls`` only when at
least one call was made and the engine stopped naturally, ``length`` stays ``length``, ``stop`` otherwise.

`CompletionSession` is the plain ``/v1/completions`` path: a prompt, an optional grammar
(``structured_outputs``, llama.cpp's ``grammar``, ``response_format``), text out.
"""
from __future__ import annotations

import json
import re
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import AsyncIterator

from toolgram.cache import LRU
from toolgram.errors import ConstraintError, RequestError
from toolgram.request import check_schema, parse_request, parse_whitespace
from toolgram.serve import chat
from toolgram.serve.engines.base import EngineConstraint, EngineRequest
from toolgram.serve.protocol import APIError, ChatCompletionRequest, CompletionRequest, new_id
from toolgram.serve.server import Limits


@dataclass
class ServeConfig:
    """What every request shares: the grammar, the template, the engine and its served model names."""

    grammar: object                     # toolgram.Grammar
    engine: object                      # engines.base.Engine
    chat_template: str | None
    model_names: tuple
    metrics: object
    limits: Limits = field(default_factory=Limits)
    constrain_auto: bool = False
    max_calls: int | None = None        # cap on calls in a constraint (a random demo model otherwise repeats)
    max_reasoning: int | None = None    # cap on reasoning characters in a constraint (likewise: it never stops)
    default_temperature: float = 1.0


class StopFilter:
    """Cuts the text at the first stop string; holds back a tail that may still become one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.buf = ""

    def feed(self, text: str) -> tuple[str, bool]:
        self.buf += text
        hits = [i for i in (self.buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buf = self.buf[:min(hits)], ""
            return out, True
        # release all but a tail that is a prefix of some stop string
        tail = 0
        for k in range(min(self.keep, len(self.buf)), 0, -1):
            end = self.buf[-k:]
            if any(s.startswith(end) for s in self.stops):
                tail = k
                break
        cut = len(self.buf) - tail
        out, self.buf = self.buf[:cut], self.buf[cut:]
        return out, False

    def flush(self) -> str:
        out, self.buf = self.buf, ""
        return out


_LL_PROBLEMS = LRU("llguidance_verdicts", 512)     # constraint text -> llguidance's complaint ("" when none)


def lark_problem(text: str) -> str:
    """What llguidance says of a Lark constraint ("" when it compiles): checked here, before the engine gets it,
    so that a constraint that cannot be built is a 400 that names its tool.  Cached (about a millisecond each)."""
    problem = _LL_PROBLEMS.get(text)
    if problem is None:
        import llguidance
        try:
            problem = llguidance.LLMatcher.validate_grammar(llguidance.LLMatcher.grammar_from_lark(text)) or ""
        except (ValueError, TypeError, RuntimeError) as e:
            problem = str(e) or type(e).__name__
        if problem.startswith("WARNING"):
            problem = ""
        _LL_PROBLEMS.put(text, problem)
    return problem


def _first_line(problem: str) -> str:
    line = problem.strip().split("\n")[0]
    return re.sub(r"^at \d+\(\d+\): ", "", line)[:300]


def _json_grammar(schema) -> EngineConstraint:
    return EngineConstraint("lark", "start: %json " + json.dumps(schema, ensure_ascii=False), json_schema=schema)


def _response_format_grammar(rf, max_depth: int = 64) -> EngineConstraint | None:
    if rf is None or rf.type == "text":
        return None
    if rf.type == "json_object":
        return _json_grammar({"type": "object"})
    schema = rf.json_schema.schema_ if rf.json_schema is not None else None
    if not isinstance(schema, dict):
        raise APIError(400, "response_format json_schema needs json_schema.schema", param="response_format")
    try:
        check_schema(schema, "response_format", max_depth, param="response_format.json_schema.schema")
    except RequestError as e:
        raise APIError(400, str(e), param=e.param) from None
    grammar = _json_grammar(schema)
    problem = lark_problem(grammar.text)
    if problem:
        raise APIError(400, f"response_format: the schema cannot be enforced: {_first_line(problem)}",
                       param="response_format.json_schema.schema", code="invalid_schema")
    return grammar


class _Base:

    def __init__(self, cfg: ServeConfig, req):
        self.cfg = cfg
        self.req = req
        self.started = time.perf_counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.engine_request: EngineRequest | None = None
        if req.n != 1:
            raise APIError(400, "n > 1 is not supported", param="n", code="unsupported")

    def _max_tokens(self, asked: int | None, prompt_len: int) -> int:
        lim = self.cfg.limits
        if asked is not None and asked > lim.max_tokens:
            raise APIError(400, f"max_tokens is at most {lim.max_tokens} on this server", param="max_tokens")
        n = asked or lim.default_max_tokens
        ctx = getattr(self.cfg.engine.info, "max_model_len", None)
        if ctx:
            room = ctx - prompt_len
            if room < 1:
                raise APIError(400, f"the prompt has {prompt_len} tokens; the model's context is {ctx}",
                               param="messages", code="context_length_exceeded")
            if asked is not None and asked > room:
                raise APIError(400, f"max_tokens {asked} + the prompt's {prompt_len} tokens exceed the model's "
                               f"context of {ctx}", param="max_tokens", code="context_length_exceeded")
            n = min(n, room)
        return n

    def _encode(self, prompt: str) -> list[int] | None:
        tok = self.cfg.engine.tokenizer
        if tok is None:
            return None
        return list(tok.encode(prompt, add_special_tokens=False))

    async def _engine_text(self) -> AsyncIterator[str]:
        """Text pieces from the engine, ``stop`` strings applied; sets token counts and the engine's finish."""
        engine = self.cfg.engine
        stopper = StopFilter(self.req.stop) if self.req.stop else None
        reason = None
        first = True
        async with aclosing(engine.generate(self.engine_request)) as gen:
            async for d in gen:
                if d.prompt_tokens is not None:
                    self.prompt_tokens = d.prompt_tokens
                self.completion_tokens += d.tokens
                text = d.text
                if text and first:
                    first = False
                    self.cfg.metrics.first_delta.observe(time.perf_counter() - self.started)
                if stopper is not None and text:
                    text, hit = stopper.feed(text)
                    if hit:
                        if text:
                            yield text
                        reason = "stop"
                        break              # closing the generator aborts the engine's request
                if text:
                    yield text
                if d.finish_reason:
                    reason = d.finish_reason
                    break
        if stopper is not None:
            tail = stopper.flush()
            if tail:
                yield tail
        self.engine_finish = reason or "stop"


class ChatSession(_Base):

    def __init__(self, cfg: ServeConfig, req: ChatCompletionRequest):
        super().__init__(cfg, req)
        g = cfg.grammar
        lim = cfg.limits
        if len(req.messages) > lim.max_messages:
            raise APIError(400, f"at most {lim.max_messages} messages", param="messages")
        self.tools = [t.model_dump(by_alias=True, exclude_none=True) for t in (req.tools or [])]
        choice = req.tool_choice
        if choice is not None and not isinstance(choice, str):
            choice = choice.model_dump(by_alias=True, exclude_none=True)
        try:
            self.request = parse_request(self.tools or None, choice, req.parallel_tool_calls, max_tools=lim.max_tools,
                                         max_schema_depth=lim.max_schema_depth)
            self.whitespace = parse_whitespace(req.tool_call_whitespace)
        except RequestError as e:
            raise APIError(400, str(e), param=e.param, code=e.code) from None
        if req.tool_call_on_truncated == "content" and req.stream:
            raise APIError(400, "tool_call_on_truncated=content applies to non-streamed responses: a streamed call's "
                           "deltas are sent before the output ends", param="tool_call_on_truncated")
        # no tools and no tool_choice: a plain chat request
        self.mode = self.request.mode if (self.tools or choice is not None) else "plain"
        self.single = not req.parallel_tool_calls
        kwargs = dict(req.chat_template_kwargs or {})
        self.reasoning = not (kwargs.get("enable_thinking") is False or kwargs.get("thinking") is False)
        self.has_reasoning = g.reasoning is not None

        # the prompt (rendered first: it decides whether the output starts inside reasoning)
        if cfg.chat_template is None:
            raise APIError(400, "the model has no chat template; start the server with --chat-template",
                           param="messages", code="no_chat_template")
        messages = [m.model_dump(by_alias=True, exclude_none=True) for m in req.messages]
        tok = cfg.engine.tokenizer
        special = {"bos_token": getattr(tok, "bos_token", None) or "", "eos_token": getattr(tok, "eos_token", None) or ""}
        prompt = chat.render(cfg.chat_template, messages, self.tools or None, special=special, kwargs=kwargs)
        ids = self._encode(prompt)

        # the constraint
        grammar = _response_format_grammar(req.response_format, self.cfg.limits.max_schema_depth)
        self.json_output = grammar is not None
        if grammar is not None and self.mode in ("required", "named"):
            raise APIError(400, "response_format cannot be combined with tool_choice required or a named tool",
                           param="response_format")
        self.constraint = None
        if grammar is None:
            want = self.mode in ("required", "named", "none") or (self.mode == "auto" and cfg.constrain_auto)
            if want:
                t0 = time.perf_counter()
                try:
                    engine = cfg.engine
                    self.constraint = g.constraint(
                        self.request, syntax=engine.syntax,
                        tokenizer=engine.tokenizer if engine.token_markers and engine.syntax == "lark" else None,
                        reasoning=self.reasoning, max_calls=cfg.max_calls if self.mode != "none" else None,
                        max_reasoning=cfg.max_reasoning, whitespace=self.whitespace, prompt=prompt)
                except ConstraintError as e:
                    raise APIError(400, str(e), param=e.param or "tools", code=e.code or "invalid_tools") from None
                if self.mode != "none":
                    self._check_compiles(g)
                cfg.metrics.constraint_seconds.observe(time.perf_counter() - t0)
                grammar = EngineConstraint(self.constraint.syntax, self.constraint.text)

        asked = req.max_completion_tokens or req.max_tokens
        self.engine_request = EngineRequest(
            request_id=new_id("req"), prompt=prompt, prompt_ids=ids, grammar=grammar,
            max_tokens=self._max_tokens(asked, len(ids) if ids is not None else 0),
            temperature=cfg.default_temperature if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p, seed=req.seed,
            logit_bias={int(k): v for k, v in (req.logit_bias or {}).items()} or None)
        self.prompt_tokens = len(ids) if ids is not None else 0
        # the rendered prompt decides whether the output starts inside reasoning the template opened
        self.parser = None if self.json_output else g.stream(
            self.tools or None, reasoning=self.reasoning, prompt=prompt,
            on_truncated=req.tool_call_on_truncated or "keep", on_unknown_tool=req.tool_call_on_unknown_tool)
        self.content_parts: list[str] = []

    def _check_compiles(self, g) -> None:
        """A constraint must compile in llguidance: a tool whose schema llguidance cannot enforce is a 400 naming
        it (not an engine error that names no tool).  (Whether the parser reads each tool's name back is the
        constraint builder's check.)"""
        if self.constraint.syntax != "lark":
            return
        problem = lark_problem(self.constraint.text)
        if not problem:
            return
        for t in self.request.chosen:             # which tool: the first whose own constraint fails
            try:
                single = g.constraint([t.openai()], "required", syntax="lark", reasoning=self.reasoning)
            except ConstraintError:
                continue
            if lark_problem(single.text):
                raise APIError(400, f"tool {t.name!r}: its parameters cannot be enforced by "
                               f"constrained decoding: {_first_line(problem)}",
                               param=f"{t.param}.parameters", code="invalid_tool_schema")
        raise APIError(400, f"the constraint for these tools does not compile: {_first_line(problem)}",
                       param="tools", code="invalid_tools")

    async def deltas(self) -> AsyncIterator[dict]:
        """OpenAI ``delta`` dicts as the text is generated; then `finish_reason` is set."""
        p = self.parser
        cut = False
        async with aclosing(self._engine_text()) as texts:
            async for text in texts:
                if p is None:
                    self.content_parts.append(text)
                    yield {"content": text}
                    continue
                for d in p.feed(text):
                    if self.single and _second_call(d):
                        cut = True
                        break
                    yield d
                if cut:
                    break
        if p is not None:
            if not cut:
                for d in p.close():
                    if self.single and _second_call(d):
                        break
                    yield d
            else:
                p.close()
        engine_finish = "stop" if cut else self.engine_finish
        calls = self.tool_calls()
        if engine_finish == "length":
            self.finish_reason = "length"
        elif engine_finish == "stop" and calls:
            self.finish_reason = "tool_calls"
        else:
            self.finish_reason = "stop"
        m = self.cfg.metrics
        m.tool_calls.inc(len(calls))
        if p is not None and p.result.recovered:
            m.parse_failures.inc()

    def tool_calls(self) -> list:
        if self.parser is None:
            return []
        calls = self.parser.result.tool_calls
        return calls[:1] if self.single else calls

    def message(self) -> dict:
        """The whole assistant message (after `deltas` ran to the end)."""
        if self.parser is None:
            msg = {"role": "assistant", "content": "".join(self.content_parts)}
            if self.has_reasoning:
                msg["reasoning_content"] = None
            return msg
        r = self.parser.result
        calls = self.tool_calls()
        content = r.content
        if calls and not content:
            content = None                      # (whitespace around calls is kept: streaming sent it too)
        elif content is None:
            content = ""
        msg = {"role": "assistant", "content": content}
        if self.has_reasoning:
            msg["reasoning_content"] = r.reasoning_content
        if calls:
            msg["tool_calls"] = [c.to_openai() for c in calls]
        return msg


def _second_call(delta: dict) -> bool:
    return any(c.get("index", 0) >= 1 for c in delta.get("tool_calls") or ())


class CompletionSession(_Base):

    def __init__(self, cfg: ServeConfig, req: CompletionRequest):
        super().__init__(cfg, req)
        if req.echo:
            raise APIError(400, "echo is not supported", param="echo", code="unsupported")
        if req.logprobs:
            raise APIError(400, "logprobs are not supported", param="logprobs", code="unsupported")
        prompt = req.prompt
        ids = None
        if isinstance(prompt, list):
            if prompt and all(isinstance(x, int) for x in prompt):
                ids = list(prompt)
                tok = cfg.engine.tokenizer
                vocab = len(tok) if tok is not None else None
                if min(ids) < 0 or (vocab and max(ids) >= vocab):
                    raise APIError(400, f"prompt token ids must be in 0..{(vocab or 2 ** 31) - 1}", param="prompt",
                                   code="invalid_prompt")
                prompt = tok.decode(ids) if tok is not None else None
                if prompt is None:
                    raise APIError(400, "token-id prompts need a local tokenizer", param="prompt")
            elif len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            else:
                raise APIError(400, "one prompt per request (a string)", param="prompt", code="unsupported")
        if ids is None:
            ids = self._encode(prompt)
        grammar = None
        so = req.structured_outputs
        if so is not None:
            given = [x for x in (so.grammar, so.json_, so.json_object) if x]
            if len(given) != 1:
                raise APIError(400, "structured_outputs takes one of grammar, json, json_object",
                               param="structured_outputs")
            if so.grammar:
                grammar = EngineConstraint("lark", so.grammar)
            elif so.json_:
                try:
                    schema = json.loads(so.json_) if isinstance(so.json_, str) else so.json_
                except ValueError as e:
                    raise APIError(400, f"structured_outputs.json is not JSON: {e}",
                                   param="structured_outputs.json") from None
                if not isinstance(schema, (dict, bool)):
                    raise APIError(400, "structured_outputs.json must be a JSON Schema (an object)",
                                   param="structured_outputs.json")
                grammar = _json_grammar(schema)
            else:
                grammar = _json_grammar({"type": "object"})
        elif req.grammar:
            grammar = EngineConstraint("lark", req.grammar)
        else:
            grammar = _response_format_grammar(req.response_format, self.cfg.limits.max_schema_depth)
        self.engine_request = EngineRequest(
            request_id=new_id("req"), prompt=prompt, prompt_ids=ids, grammar=grammar,
            max_tokens=self._max_tokens(req.max_tokens, len(ids) if ids is not None else 0),
            temperature=cfg.default_temperature if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p, seed=req.seed,
            logit_bias={int(k): v for k, v in (req.logit_bias or {}).items()} or None)
        self.prompt_tokens = len(ids) if ids is not None else 0
        self.parts: list[str] = []

    async def texts(self) -> AsyncIterator[str]:
        async with aclosing(self._engine_text()) as texts:
            async for text in texts:
                self.parts.append(text)
                yield text
        self.finish_reason = "length" if self.engine_finish == "length" else "stop"

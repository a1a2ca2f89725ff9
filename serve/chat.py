"""Chat templates: render a request's messages and tools into the prompt text, in a sandboxed Jinja environment.

The template is the model's own (``tokenizer.chat_template``) or one given with ``--chat-template FILE``.  It runs
in ``jinja2.sandbox.ImmutableSandboxedEnvironment``: no access to Python internals (``__class__``,
``__globals__``, ...), no mutation of the objects it is given.  The globals and filters are those Hugging Face
templates use (``raise_exception``, ``tojson``, ``strftime_now``).  As vLLM does, assistant tool-call
``arguments`` (JSON text on the wire) are turned into dicts before rendering, since templates iterate them.
Besides what the sandbox refuses, ``*`` and ``**`` may not build values over `MAX_RENDER_ITEMS` (``'x' * 10**10``
would exhaust memory), and runaway recursion, ranges and overflows are a 400 like any template failure.
"""
from __future__ import annotations

import datetime
import json

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from toolgram.cache import LRU
from toolgram.serve.protocol import APIError


class TemplateError(APIError):
    def __init__(self, message: str):
        super().__init__(400, message, param="messages", code="chat_template_error")


def _raise(message):
    raise TemplateError(f"the chat template refused the request: {message}")


def _tojson(value, indent=None, ensure_ascii=False, sort_keys=False, separators=None):
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys, separators=separators)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


MAX_RENDER_ITEMS = 1_000_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with bounded ``*`` (repetition) and ``**`` (powers)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            if isinstance(left, (int, float)) and isinstance(right, int) and abs(right) > 1024 and abs(left) > 1:
                raise jinja2.exceptions.SecurityError("the power is too large")
            return left ** right
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_RENDER_ITEMS:
                raise jinja2.exceptions.SecurityError(f"a repetition over {MAX_RENDER_ITEMS} items")
        return left * right


_TEMPLATES = LRU("chat_templates", 16)


def compile_template(source: str) -> jinja2.Template:
    template = _TEMPLATES.get(source)
    if template is None:
        template = _compile(source)
        _TEMPLATES.put(source, template)
    return template


def _compile(source: str) -> jinja2.Template:
    env = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"chat template: line {e.lineno}: {e.message}") from None


def _arguments(value):
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, dict) else value
    return value


def prepare_messages(messages: list[dict]) -> list[dict]:
    """Messages as templates expect them: tool-call arguments as dicts, text parts joined into one string."""
    out = []
    for m in messages:
        m = dict(m)
        content = m.get("content")
        if isinstance(content, list):
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                    raise APIError(400, "only text content parts are supported", param="messages")
                texts.append(str(part.get("text", "")))
            m["content"] = "".join(texts)
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                c = dict(c)
                fn = dict(c.get("function") or {})
                fn["arguments"] = _arguments(fn.get("arguments", {}))
                c["function"] = fn
                calls.append(c)
            m["tool_calls"] = calls
        out.append(m)
    return out


def render(template_source: str, messages: list[dict], tools: list[dict] | None = None, *,
           add_generation_prompt: bool = True, special: dict | None = None, kwargs: dict | None = None) -> str:
    """The prompt text for ``messages`` (OpenAI dicts) and ``tools`` (OpenAI tool dicts or None)."""
    template = compile_template(template_source)
    context = dict(kwargs or {})
    context.update(special or {})
    context.update(messages=prepare_messages(messages), tools=tools or None,
                   add_generation_prompt=add_generation_prompt)
    try:
        return template.render(**context)
    except APIError:
        raise
    except jinja2.exceptions.SecurityError as e:
        raise TemplateError(f"the chat template tried an unsafe operation: {e}") from None
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError,
            RecursionError, MemoryError) as e:
        raise TemplateError(f"the chat template failed: {type(e).__name__}: {e}") from None

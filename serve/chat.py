"""Chat templates: render a request's messages and tools into the prompt text, in a sandboxed Jinja environment.

The template is the model's own (``tokenizer.chat_template``) or one given with ``--chat-template FILE``.  It runs
in a ``jinja2.sandbox.SandboxedEnvironment``: no access to Python internals (``__class__``,
``__globals__``, ...), no mutation of the objects it is given (messages, tools, variables: ``append``,
``pop``, ... are refused on them as by the immutable sandbox), while lists and dicts the template builds
itself may change (Kimi's keeps a queue of call ids that way).  ``{% generation %}``
(Hugging Face's assistant-mask marker) renders its body.  The globals and filters are those Hugging Face
templates use (``raise_exception``, ``tojson``, ``strftime_now``).  As vLLM does, assistant tool-call
``arguments`` (JSON text on the wire) are turned into dicts before rendering, since templates iterate them.
Besides what the sandbox refuses, ``*`` and ``**`` may not build values over `MAX_RENDER_ITEMS` (``'x' * 10**10``
would exhaust memory), and runaway recursion, ranges and overflows are a 400 like any template failure.
Templates that concatenate ``arguments`` as text (functionary v3.2) fail on dicts: the rendering is then retried
once with the arguments as the JSON text the client sent, as llama.cpp does for such templates.
"""
from __future__ import annotations

import contextvars
import datetime
import json

import jinja2
from jinja2.ext import Extension
from jinja2.sandbox import SandboxedEnvironment, modifies_known_mutable

from toolgram.cache import LRU
from toolgram.serve.protocol import APIError


class TemplateError(APIError):
    def __init__(self, message: str):
        super().__init__(400, message, param="messages", code="chat_template_error")


def _raise(message):
    raise TemplateError(f"the chat template refused the request: {message}")


def _iterable_as_list(value):
    """``tojson`` of a filter's lazy result (``tools | map(attribute='function')``): its items, as a list."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return list(value)


def _tojson(value, indent=None, ensure_ascii=False, sort_keys=False, separators=None):
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys, separators=separators,
                      default=_iterable_as_list)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


MAX_RENDER_ITEMS = 1_000_000


class _Generation(Extension):
    """``{% generation %}...{% endgeneration %}``: Hugging Face's assistant-token marker; renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


_GIVEN: contextvars.ContextVar[frozenset] = contextvars.ContextVar("given", default=frozenset())


def _containers(value) -> frozenset:
    """ids of the lists, dicts and sets reachable from ``value`` (iteratively: client JSON may nest deep)."""
    seen: set = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, dict, set)) and id(v) not in seen:
            seen.add(id(v))
            stack.extend(v.values() if isinstance(v, dict) else v)
    return frozenset(seen)


class _Sandbox(SandboxedEnvironment):
    """The sandbox: objects given to the template are immutable (as in the immutable sandbox), objects the
    template builds are not; ``*`` (repetition) and ``**`` (powers) are bounded."""

    intercepted_binops = frozenset(["*", "**"])

    def is_safe_attribute(self, obj, attr, value):
        if modifies_known_mutable(obj, attr) and id(obj) in _GIVEN.get():
            return False
        return super().is_safe_attribute(obj, attr, value)

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
    env = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols", _Generation])
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


def prepare_messages(messages: list[dict], object_arguments: bool = True) -> list[dict]:
    """Messages as templates expect them: tool-call arguments as dicts (``object_arguments``; else as sent),
    text parts joined into one string."""
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
                if object_arguments:
                    fn["arguments"] = _arguments(fn.get("arguments", {}))
                c["function"] = fn
                calls.append(c)
            m["tool_calls"] = calls
        out.append(m)
    return out


def _has_object_arguments(messages: list[dict]) -> bool:
    return any(not isinstance((c.get("function") or {}).get("arguments"), dict)
               and isinstance(_arguments((c.get("function") or {}).get("arguments")), dict)
               for m in messages for c in (m.get("tool_calls") or ()) if isinstance(c, dict))


def render(template_source: str, messages: list[dict], tools: list[dict] | None = None, *,
           add_generation_prompt: bool = True, special: dict | None = None, kwargs: dict | None = None) -> str:
    """The prompt text for ``messages`` (OpenAI dicts) and ``tools`` (OpenAI tool dicts or None)."""
    try:
        template = compile_template(template_source)
    except ValueError as e:
        raise TemplateError(str(e)) from None
    try:
        return _render(template, messages, tools, add_generation_prompt, special, kwargs, True)
    except TemplateError as first:
        if "failed: TypeError" not in first.message or not _has_object_arguments(messages):
            raise
        try:                                    # a template that wants the arguments as text
            return _render(template, messages, tools, add_generation_prompt, special, kwargs, False)
        except TemplateError:
            raise first from None


def _render(template, messages, tools, add_generation_prompt, special, kwargs, object_arguments) -> str:
    context = dict(kwargs or {})
    context.update(special or {})
    context.update(messages=prepare_messages(messages, object_arguments), tools=tools or None,
                   add_generation_prompt=add_generation_prompt)
    token = _GIVEN.set(_containers(context))
    try:
        return template.render(**context)
    except APIError:
        raise
    except jinja2.exceptions.SecurityError as e:
        raise TemplateError(f"the chat template tried an unsafe operation: {e}") from None
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError,
            RecursionError, MemoryError) as e:
        raise TemplateError(f"the chat template failed: {type(e).__name__}: {e}") from None
    finally:
        _GIVEN.reset(token)

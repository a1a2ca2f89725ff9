"""Hugging Face response templates: import one as a toolgram grammar, and compare toolgram's reading of an
output with the reference implementation's (transformers' ``parse_response``), message by message.

    g = toolgram.from_response_template("path/to/model")       # or tokenizer_config.json, or the dict
    g.parse(text).tool_calls                                   # streams, constrains, like any grammar

The translation lives in `toolgram.compiler.response_template`; docs/response-templates.md says what is
covered, what is refused and why, and where toolgram's reading differs from the reference on purpose.
"""
from __future__ import annotations

import json

from toolgram.api import Grammar
from toolgram.compiler import response_template as rt


class TemplateGrammar(Grammar):
    """A grammar compiled from a response template (``template``: the dict; ``source``: where it came from)."""

    def __init__(self, compiled, template: dict, source: str | None, prefix: str | None):
        super().__init__(compiled)
        self.template = template
        self.source = source
        self.prefix = prefix

    def grammar_yaml(self) -> str:
        """The grammar file this template amounts to."""
        return rt.grammar_yaml(self.template, self.prefix, name=self.name)


def from_response_template(obj, prefix: str | None = None, name: str | None = None) -> TemplateGrammar:
    """Compile a response template into a toolgram `Grammar`.

    ``obj``: the template dict (or a tokenizer_config dict holding one), a JSON file (tokenizer_config.json or
    a bare template) or a model directory.  ``prefix``: the rendered prompt; the part after the template's
    last start anchor decides where the output starts (e.g. inside a thinking block the prompt opened).
    Raises `toolgram.GrammarError` naming the field path of anything that cannot be compiled exactly.
    """
    template, source, model = rt.load(obj)
    compiled = rt.compile_template(template, prefix, name=name or model, source=source)
    if source:
        compiled.file = source
    return TemplateGrammar(compiled, template, source, prefix)


# -- comparing readings ---------------------------------------------------------------------------------

def _norm_text(value, strip: bool = True):
    if value is None:
        return None
    if not isinstance(value, str):
        return value
    value = value.strip() if strip else value
    return value or None


def _args_value(arguments):
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return {} if arguments is None else arguments


def normalize_reference(message: dict) -> dict:
    """A transformers message as ``{content, reasoning, calls: [(name, arguments)]}``."""
    calls = message.get("tool_calls") or []
    if isinstance(calls, dict):
        calls = [calls]
    out = []
    for c in calls:
        fn = c.get("function", c) if isinstance(c, dict) else {}
        if not isinstance(fn, dict):
            fn = {}
        out.append([fn.get("name"), _args_value(fn.get("arguments"))])
    reasoning = None
    for key in rt.REASONING_FIELDS:
        if message.get(key) is not None:
            reasoning = message[key]
    return {"content": _norm_text(message.get("content")), "reasoning": _norm_text(reasoning), "calls": out}


def normalize_result(result) -> dict:
    """A toolgram ParseResult in the same shape (content and reasoning stripped as the spec's text parser
    strips them)."""
    return {"content": _norm_text(result.content), "reasoning": _norm_text(result.reasoning_content),
            "calls": [[c.name, _args_value(c.arguments)] for c in result.tool_calls]}


def reference_parse(template: dict, text: str, prefix: str = "", tools=None) -> dict:
    """transformers' reading (``parse_response``), normalized; ``{"error": ...}`` where it raises."""
    from transformers.utils.chat_parsing import parse_response
    try:
        message = parse_response(text, template, prefix=prefix, tools=tools)
    except Exception as e:          # the reference raises on a malformed region
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    return normalize_reference(message)


def reference_stream(template: dict, deltas, prefix: str = "", tools=None) -> dict:
    """transformers' streaming `ResponseParser` fed ``deltas``, normalized (or ``{"error": ...}``)."""
    from transformers.utils.chat_parsing import ResponseParser
    try:
        p = ResponseParser(template, prefix=prefix, tools=tools)
        for d in deltas:
            p.feed(d)
        message, _ = p.finalize()
    except Exception as e:
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    return normalize_reference(message)


def _squeeze(text):
    return " ".join(text.split()) if isinstance(text, str) else text


def difference(ours: dict, ref: dict, loose_whitespace: bool = False) -> str | None:
    """Which part of two normalized readings differs ("error", "content", "reasoning", "calls"), or None.

    ``loose_whitespace``: compare text with whitespace runs squeezed (a template has no separators between
    calls: the whitespace a grammar reads as a separator is content to a template)."""
    if "error" in ref:
        return "error"
    for key in ("calls", "content", "reasoning"):
        a, b = ours[key], ref[key]
        if loose_whitespace and key != "calls":
            a, b = _squeeze(a), _squeeze(b)
        if a != b:
            return key
    return None

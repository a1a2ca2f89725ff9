"""toolgram's grammars as vLLM tool parsers (vLLM's out-of-tree ``ToolParser`` plugin interface).

    vllm serve MODEL --enable-auto-tool-choice --tool-parser-plugin $(toolgram vllm-plugin-path) \\
        --tool-call-parser toolgram-NAME

Importing this file registers one parser per bundled grammar, named ``toolgram-<grammar>`` (``toolgram list``
shows them), and one per peer parser name a grammar answers to, ``toolgram-<alias>`` (``toolgram list
--aliases``: ``--tool-call-parser toolgram-qwen3_xml``).  A grammar file of your own is registered as ``toolgram-file`` when ``TOOLGRAM_GRAMMAR=PATH`` is
set.  Each parser:

* ``adjust_request``: keeps special tokens in the output (markers are often special tokens) and, for
  ``tool_choice`` ``required`` or a named tool, sets ``structured_outputs`` to the grammar's constraint for the
  request's tools (Lark; single-token markers as token ids, which vLLM's guidance backend needs), so the model
  calls in its own syntax; ``parallel_tool_calls=false`` allows one call.  ``auto`` is parsed, unconstrained,
  as vLLM does;
* ``extract_tool_calls``: the grammar's one-shot parse;
* ``extract_tool_calls_streaming``: the grammar's incremental parser, fed only the new text of each step (work
  proportional to the delta), its deltas mapped to vLLM's ``DeltaMessage``.

The grammar is loaded without its reasoning grammar: in vLLM, reasoning is ``--reasoning-parser``'s job.  A
response template's own reasoning field (``toolgram-response-template``) reaches the parser only when no
reasoning parser took the text first: its text is then content, streamed and one-shot alike, as vLLM's own
``hf`` parser gives it without ``--reasoning-parser hf`` (vLLM's one-shot tool extraction has no reasoning).
"""
from __future__ import annotations

import functools
import json
import os
import re
import typing

import toolgram
from toolgram.compiler import registry
from toolgram.errors import ConstraintError
from toolgram.request import parse_request
from vllm.entrypoints.generate.base.protocol import DeltaMessage
from vllm.sampling_params import StructuredOutputsParams
from vllm.tool_parsers.abstract_tool_parser import ToolParser, ToolParserManager

PREFIX = "toolgram-"
# the result type of a one-shot extraction, as vLLM's interface declares it (nested calls are given as dicts,
# which its pydantic models validate)
Extracted = typing.get_type_hints(ToolParser.extract_tool_calls)["return"]


def _tools(request) -> list[dict]:
    out = []
    for t in getattr(request, "tools", None) or []:
        d = t.model_dump(exclude_none=True) if hasattr(t, "model_dump") else dict(t)
        out.append(d)
    return out


def _choice(request):
    c = getattr(request, "tool_choice", None)
    if c is None or isinstance(c, str):
        return c
    return c.model_dump(exclude_none=True) if hasattr(c, "model_dump") else dict(c)


def _merge(deltas: list[dict]) -> DeltaMessage | None:
    """toolgram's OpenAI delta dicts for one step, as one vLLM DeltaMessage (reasoning text as content)."""
    content, calls = [], {}
    for d in deltas:
        if d.get("reasoning_content"):
            content.append(d["reasoning_content"])
        if d.get("content"):
            content.append(d["content"])
        for c in d.get("tool_calls") or ():
            i = c.get("index", 0)
            cur = calls.get(i)
            fn = c.get("function") or {}
            if cur is None:
                calls[i] = cur = {"index": i, "id": c.get("id"), "type": c.get("type"),
                                  "function": {"name": fn.get("name"), "arguments": fn.get("arguments")}}
            else:
                if fn.get("name"):
                    cur["function"]["name"] = fn["name"]
                if fn.get("arguments"):
                    cur["function"]["arguments"] = (cur["function"]["arguments"] or "") + fn["arguments"]
    if not (content or calls):
        return None
    return DeltaMessage(content="".join(content) or None, tool_calls=[calls[i] for i in sorted(calls)])


class GrammarParser(ToolParser):
    """Base class; one subclass per grammar sets ``grammar_ref``."""

    grammar_ref: str = ""
    # required / named go through this parser's own constraint and extraction, not vLLM's JSON-array form
    supports_required_and_named = False

    def __init__(self, tokenizer, tools=None):
        super().__init__(tokenizer, tools)
        self.grammar = toolgram.load(self.grammar_ref, reasoning=None)
        self._parser = None

    # -- request ------------------------------------------------------------------------------------
    def adjust_request(self, request):
        if not getattr(request, "tools", None):
            return request
        request.skip_special_tokens = False
        choice = _choice(request)
        if choice == "required" or isinstance(choice, dict):
            try:
                asked = parse_request(_tools(request), choice,
                                      getattr(request, "parallel_tool_calls", True) is not False)
                c = self.grammar.constraint(asked, tokenizer=self.model_tokenizer)
            except ConstraintError as e:         # (a RequestError too: vLLM answers a ValueError with a 400)
                raise ValueError(str(e)) from None
            request.structured_outputs = StructuredOutputsParams(grammar=c.text)
            if hasattr(request, "response_format"):
                request.response_format = None
        return request

    # -- one shot -------------------------------------------------------------------------------------
    def extract_tool_calls(self, model_output: str, request):
        r = self.grammar.parse(model_output, _tools(request) or None)
        calls = [{"id": c.id, "type": "function", "function": {"id": c.id, "name": c.name, "arguments": c.arguments}}
                 for c in r.tool_calls]
        if getattr(request, "parallel_tool_calls", True) is False:
            calls = calls[:1]
        # content and (a template's) reasoning text in output order, as the streamed deltas give them
        content = "".join(text for kind, text in r.segments if kind in ("content", "reasoning")) or None
        if calls and content is not None and not content.strip():
            content = None
        return Extracted(tools_called=bool(calls), tool_calls=calls,
                         content=content if (content or not calls) else None)

    # -- streaming ------------------------------------------------------------------------------------
    def extract_tool_calls_streaming(self, previous_text, current_text, delta_text, previous_token_ids,
                                     current_token_ids, delta_token_ids, request):
        if self._parser is None or not previous_text:
            self._parser = self.grammar.stream(_tools(request) or None)
        deltas = self._parser.feed(delta_text) if delta_text else []
        msg = _merge(deltas)
        if msg is not None and msg.tool_calls:
            for c in msg.tool_calls:            # (the base class's bookkeeping, which vLLM's serving reads)
                if c.index >= len(self.streamed_args_for_tool):
                    self.streamed_args_for_tool.extend([""] * (c.index + 1 - len(self.streamed_args_for_tool)))
                    self.prev_tool_call_arr.extend({} for _ in range(c.index + 1 - len(self.prev_tool_call_arr)))
                if c.function and c.function.name:
                    self.prev_tool_call_arr[c.index]["name"] = c.function.name
                if c.function and c.function.arguments:
                    self.streamed_args_for_tool[c.index] += c.function.arguments
            self.current_tool_id = max(c.index for c in msg.tool_calls)
        return msg

    def get_remaining_unstreamed_args(self) -> str:
        """At the end of a stream: what closing the parser adds to the last call's arguments."""
        if self._parser is None:
            return ""
        tail = []
        last = self.current_tool_id
        for d in self._parser.close():
            for c in d.get("tool_calls") or ():
                if c.get("index") == last and (c.get("function") or {}).get("arguments"):
                    tail.append(c["function"]["arguments"])
        self._parser = None
        return "".join(tail)


@functools.lru_cache(maxsize=16)
def _template_grammar(key: str):
    from toolgram.response_templates import from_response_template
    return from_response_template(json.loads(key) if key.startswith("{") else key)


class ResponseTemplateParser(GrammarParser):
    """``toolgram-response-template``: the served checkpoint's own ``response_template`` compiled by toolgram
    (argument streaming, and required / named constraints in the checkpoint's syntax)."""

    def __init__(self, tokenizer, tools=None):
        ToolParser.__init__(self, tokenizer, tools)
        t = getattr(tokenizer, "response_template", None)
        key = json.dumps(t, sort_keys=True) if isinstance(t, dict) else getattr(tokenizer, "name_or_path", None)
        if not key:
            raise ValueError("toolgram-response-template: the tokenizer has no response_template")
        self.grammar = _template_grammar(key)        # a GrammarError names the template's field
        self._parser = None


def _class_name(ref: str) -> str:
    return "ToolgramParser_" + re.sub(r"\W", "_", ref)


def register() -> list[str]:
    """Register a parser per bundled grammar (and ``TOOLGRAM_GRAMMAR``'s file); return their names."""
    names = []
    refs = [(PREFIX + n, n) for n in toolgram.grammars()]
    # the peers' parser names too (toolgram list --aliases): --tool-call-parser toolgram-qwen3_xml
    refs += [(PREFIX + alias, n) for alias, n in sorted(registry.alias_table().items())]
    extra = os.environ.get("TOOLGRAM_GRAMMAR")
    if extra:
        refs.append((PREFIX + "file", extra))
    for name, ref in refs:
        cls = type(_class_name(name[len(PREFIX):]), (GrammarParser,), {"grammar_ref": ref, "__module__": __name__})
        globals()[cls.__name__] = cls
        ToolParserManager.register_module(name, module=cls)
        names.append(name)
    ToolParserManager.register_module(PREFIX + "response-template", module=ResponseTemplateParser)
    names.append(PREFIX + "response-template")
    return names


REGISTERED = register()

__all__ = ["GrammarParser", "REGISTERED", "register"]

"""The public API: load a grammar, parse or stream model output with it, find the grammar for a model.

    g = toolgram.load("hermes")                       # bundled name, or a path to a grammar file
    r = g.parse(text, tools=tools)                    # ParseResult: content, reasoning_content, tool_calls
    p = g.stream(tools=tools); p.feed(delta); p.close(); p.result
"""
from __future__ import annotations

from toolgram.compiler import registry
from toolgram.ir import LITERAL, CompiledGrammar
from toolgram.compiler.constraint import Constraint, build_constraint
from toolgram.runtime.parser import StreamingParser
from toolgram.request import ToolRequest
from toolgram.runtime.types import ParseResult


class Grammar:
    """A compiled tool-call grammar (optionally composed with a reasoning grammar)."""

    def __init__(self, compiled: CompiledGrammar):
        self.compiled = compiled

    @property
    def name(self) -> str:
        return self.compiled.name

    @property
    def description(self) -> str:
        return self.compiled.description

    @property
    def models(self) -> tuple:
        return self.compiled.models

    @property
    def reasoning(self) -> str | None:
        r = self.compiled.reasoning
        return r.name if r is not None else None

    @property
    def markers(self) -> list[str]:
        """The grammar's multi-character literal markup (and its reasoning block's open and close markers),
        sorted: what a model family's tokenizer has as special tokens."""
        c = self.compiled
        ms = {x for s in c.terminals.values() if s.kind == LITERAL for x in s.spellings
              if len(x) >= 2 and not x.isalnum() and not x.isspace()}
        r = c.reasoning
        if r is not None and not r.channel:
            ms.update(m for m in (r.open, r.close) if m)
        return sorted(ms)

    @property
    def triggers(self) -> tuple:
        """Markers that start a tool call from content."""
        return self.compiled.triggers

    def stream(self, tools=None, *, new_id=None, reasoning: bool = True, prompt: str | None = None,
               on_truncated: str = "keep", on_unknown_tool: str | None = None) -> StreamingParser:
        """A fresh incremental parser for one response.

        ``tools``: the request's OpenAI ``tools`` (types XML-ish values, flags unknown names).
        ``new_id``: callable returning ids for calls without a native id (default ``call_<random>``).
        ``reasoning=False``: the request turned reasoning off, so output does not start inside it (unless
        ``prompt`` shows the template opened the block anyway).
        ``prompt``: the rendered prompt (or its tail); it decides whether the output starts inside reasoning
        (the template opened ``<think>``) or in content (it closed it, or opened nothing).
        ``on_truncated``: ``"keep"`` (default) keeps a call cut off by the end of the output (``truncated``);
        ``"content"`` makes the cut-off last call's text content in the final result (a streaming client has
        already received its deltas: meant for one-shot parses and non-streamed responses).
        ``on_unknown_tool`` (with ``tools``): ``"keep"`` flags the call ``unknown``; ``"content"`` reads its
        text as content (decided at the name, so streaming agrees); ``"error"`` raises
        `toolgram.UnknownToolError` there.  Default: the grammar's ``unknown_tool`` policy.
        """
        if isinstance(tools, ToolRequest):
            tools = tools.openai_tools()
        return StreamingParser(self.compiled, tools, new_id=new_id, reasoning=reasoning, prompt=prompt,
                               on_truncated=on_truncated, on_unknown_tool=on_unknown_tool)

    def constraint(self, tools, tool_choice="required", parallel_tool_calls: bool = True, syntax: str = "lark",
                   tokenizer=None, *, dialect: str = "llguidance", reasoning: bool = True,
                   max_reasoning: int | None = None, max_calls: int | None = None,
                   whitespace=None, prompt: str | None = None) -> Constraint:
        """A decoding constraint in this grammar's own syntax for a request's ``tools`` and ``tool_choice``
        (or a `toolgram.request.ToolRequest`, which carries both and ``parallel_tool_calls``).

        ``tool_choice``: "required" | "auto" (lazy: free text until a call marker) | "none" |
        ``{"type": "function", "function": {"name": ...}}``.  ``syntax``: "lark" (llguidance; ``dialect=
        "xgrammar"`` for xgrammar's compile_lark), "gbnf" (llama.cpp) or "structural_tag" (xgrammar / vLLM).
        ``tokenizer``: markers that are single added tokens are then written as tokens (and reasoning or
        content may hold those that are not special tokens, where the parser keeps them as text).  ``reasoning=False``:
        the request turned reasoning off.  ``max_reasoning``: cap on reasoning characters.
        ``max_calls``: cap on how often a repetition of calls may repeat.  ``whitespace``: the whitespace the
        model may write, over the grammar's defaults (a dict of some of ``json_spaces``, ``json_indent``,
        ``separator``; docs/constraints.md); a bad value raises `toolgram.ConstraintError` whose ``param``
        names the field (``tool_call_whitespace.separator``).  ``prompt``: the rendered prompt (or its tail);
        the output starts where `stream` with the same ``prompt`` starts it (inside a reasoning block the
        template opened, or in content).
        Raises `toolgram.ConstraintError` naming the tool and why.
        """
        return build_constraint(self.compiled, tools, tool_choice, parallel_tool_calls, syntax, tokenizer,
                                dialect=dialect, reasoning=reasoning, max_reasoning=max_reasoning,
                                max_calls=max_calls, whitespace=whitespace, prompt=prompt)

    def parse(self, text: str, tools=None, *, new_id=None, reasoning: bool = True, prompt: str | None = None,
              on_truncated: str = "keep", on_unknown_tool: str | None = None) -> ParseResult:
        """Parse a whole output (exactly what streaming it in one delta gives); options as in `stream`."""
        p = self.stream(tools, new_id=new_id, reasoning=reasoning, prompt=prompt, on_truncated=on_truncated,
                        on_unknown_tool=on_unknown_tool)
        p.feed(text)
        p.close()
        return p.result

    def __repr__(self) -> str:
        extra = f", reasoning={self.reasoning!r}" if self.reasoning else ""
        return f"<Grammar {self.name!r}{extra}>"


def load(name: str, reasoning=registry.DEFAULT) -> Grammar:
    """Load a bundled grammar by name, or a grammar file by path.

    ``reasoning``: name (or path) of a reasoning grammar to compose; by default the grammar's own
    ``reasoning`` field; ``None`` for none.
    """
    return Grammar(registry.load(name, reasoning))


def grammars() -> list[str]:
    """Names of the bundled tool-call grammars."""
    return registry.grammar_names()


def reasoning_grammars() -> list[str]:
    """Names of the bundled reasoning grammars."""
    return registry.reasoning_names()


def for_model(model: str) -> str | None:
    """The bundled grammar whose model globs fit ``model`` best, or None."""
    return registry.for_model(model)


def reasoning_for_model(model: str) -> str | None:
    """The bundled reasoning grammar whose model globs fit ``model`` best, or None."""
    return registry.reasoning_for_model(model)

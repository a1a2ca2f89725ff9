"""Result types: what a parse produces (`ParseResult`, `Call`) and their OpenAI shapes.

The public API exports `Call` as ``toolgram.ToolCall``.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class UnknownToolError(ValueError):
    """A call names a tool the request does not list, and the parse asked for ``on_unknown_tool="error"``."""

    def __init__(self, name: str):
        super().__init__(f"the model called {name!r}, which is not among the request's tools")
        self.name = name


@dataclass
class Call:
    """One tool call.  ``arguments`` is JSON text (an object), exactly the concatenation of its stream."""

    id: str
    name: str
    arguments: str
    index: int = 0
    type: str = "function"
    truncated: bool = False    # the text ended (or broke) before the arguments were complete; closed as sent
    unknown: bool = False      # tools were given and none has this name (kept: the client decides)
    malformed: bool = False    # its text broke; the rest of it up to its end was read as its markup

    def to_openai(self) -> dict:
        return {"id": self.id, "type": self.type, "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ParseResult:
    """The parse of one model output.

    ``segments`` is the output cut into ``(kind, text)`` pieces in order, whose texts concatenate to the input
    exactly.  Kinds: ``content``, ``reasoning``, ``call`` (the text of a call), ``markup`` (markers and
    separators the grammar says are markup).
    """

    content: str | None
    reasoning_content: str | None
    tool_calls: list[Call] = field(default_factory=list)
    segments: list[tuple[str, str]] = field(default_factory=list)
    recovered: int = 0      # places that did not fit the grammar (a region back to content, a broken call)

    def to_message(self) -> dict:
        """The OpenAI assistant message (``reasoning_content`` only when there is some)."""
        msg: dict = {"role": "assistant", "content": self.content}
        if self.reasoning_content is not None:
            msg["reasoning_content"] = self.reasoning_content
        if self.tool_calls:
            msg["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return msg

    def to_dict(self) -> dict:
        return {
            "content": self.content,
            "reasoning_content": self.reasoning_content,
            "tool_calls": [{"index": c.index, **c.to_openai(), **({"truncated": True} if c.truncated else {}),
                            **({"unknown": True} if c.unknown else {}),
                            **({"malformed": True} if c.malformed else {})} for c in self.tool_calls],
        }

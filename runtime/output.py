"""Turning parser events into OpenAI deltas, the parse result and the segments, with commit semantics.

The parser reports what it reads: content and reasoning text, markup, and call events (a name, an id,
argument pieces, keys and values).  `Output` decides when each becomes visible:

* Text of a tool-call *region* (from its first marker on) is held as *pending* until the region either
  commits a call (its name is complete, or per the grammar's ``commit`` policy its arguments start), or
  returns to content (then it was markup), or fails (then all of it comes back as content: nothing lost).
* A committed call is never taken back.  Its name goes out once; its arguments stream.  If the text ends
  inside it, its arguments are closed as sent (``truncated``).  If its text breaks, the parser reads the rest
  of the call as its markup (``malformed``) and the arguments are closed as sent: never half call, half
  content.

Deltas are the dicts of ``choices[0].delta`` in a chat.completion.chunk; consecutive pieces of the same kind
produced by one ``feed`` are merged into one delta.
"""
from __future__ import annotations

import os
import re

from toolgram.runtime.arguments import ArgsBuilder
from toolgram.runtime.schema_values import ToolSchemas
from toolgram.runtime.types import UnknownToolError, Call, ParseResult


def random_call_id() -> str:
    """``call_`` and 24 random hex digits (96 bits from the OS's random source, like OpenAI's opaque ids)."""
    return "call_" + os.urandom(12).hex()


class _Call:
    __slots__ = ("index", "id", "native_id", "name", "builder", "committed", "unsent", "parts",
                 "truncated", "unknown", "malformed", "mark")

    def __init__(self, schemas: ToolSchemas):
        self.index = -1
        self.id = None
        self.native_id = None
        self.name = None
        self.builder = ArgsBuilder(schemas, self)
        self.committed = False
        self.unsent: list[str] = []
        self.parts: list[str] = []
        self.truncated = False
        self.unknown = False
        self.malformed = False     # its text stopped fitting the grammar; the rest up to its end was markup
        self.mark = (0, 0)         # where the call's region text starts in the segments (on_truncated)


class Output:
    def __init__(self, schemas: ToolSchemas, policies: dict, new_id=None, on_truncated: str = "keep"):
        self.schemas = schemas
        self.commit_on_args = policies.get("commit", "name") == "arguments"
        self.reject_unknown = policies.get("unknown_tool", "keep") == "reject"
        self.error_unknown = policies.get("unknown_tool", "keep") == "error"
        self.truncated_as_content = on_truncated == "content"
        self.name_re = re.compile(policies.get("name_pattern") or r"[^\s\"'<>{}\[\]]{1,256}")
        self.new_id = new_id or random_call_id
        self.deltas: list[dict] = []
        self._last = None          # kind of the last delta of this feed: "c", "r" or a call index
        self._delta: dict = {}     # that delta
        self.calls: list[_Call] = []
        self.segments: list[list] = []   # [kind, [text, ...]]; content and reasoning are read from them
        self._seg_kind = None      # kind of the last segment
        self._seg_parts: list = []  # its texts
        self.in_region = False
        self.live = True
        self.pending: list[tuple[str, str]] = []
        self.call: _Call | None = None
        self.refused = False       # a call could not be committed (bad or rejected name)
        self.recoveries = 0        # regions that broke (their text came back as content), broken calls
        self.region_calls = 0      # calls committed in the current region
        self.broken_element = False  # an element of the current region broke before it was a call

    # -- deltas and segments ------------------------------------------------------------------
    def take(self) -> list[dict]:
        out, self.deltas, self._last = self.deltas, [], None
        return out

    def _seg(self, kind: str, text: str) -> None:
        if self._seg_kind == kind:
            self._seg_parts.append(text)
        else:
            self._seg_kind = kind
            self._seg_parts = [text]
            self.segments.append([kind, self._seg_parts])

    def _emit_content(self, text: str) -> None:
        if self._seg_kind == "content":
            self._seg_parts.append(text)
        else:
            self._seg("content", text)
        if self._last == "c":
            self._delta["content"] += text
        else:
            self._delta = {"content": text}
            self.deltas.append(self._delta)
            self._last = "c"

    def _emit_reasoning(self, text: str) -> None:
        self._seg("reasoning", text)
        if self._last == "r":
            self._delta["reasoning_content"] += text
        else:
            self._delta = {"reasoning_content": text}
            self.deltas.append(self._delta)
            self._last = "r"

    def _emit_args(self, call: _Call, text: str) -> None:
        call.parts.append(text)
        if self._last == call.index:
            self._delta["arguments"] += text
        else:
            self._delta = {"arguments": text}
            self.deltas.append({"tool_calls": [{"index": call.index, "function": self._delta}]})
            self._last = call.index

    # -- text ----------------------------------------------------------------------------------
    def content_text(self, text: str) -> None:
        # `_emit_content` written out in place: this runs for every content delta, the hottest path there is
        if not self.live:
            self.pending.append(("content", text))
            return
        if self._seg_kind == "content":
            self._seg_parts.append(text)
        else:
            self._seg("content", text)
        if self._last == "c":
            self._delta["content"] += text
        else:
            self._delta = {"content": text}
            self.deltas.append(self._delta)
            self._last = "c"

    def reasoning_text(self, text: str) -> None:
        if self.live:
            self._emit_reasoning(text)
        else:
            self.pending.append(("reasoning", text))

    def markup(self, text: str) -> None:
        if not text:
            return
        if self.live:
            call = self.call
            self._seg("call" if call is not None and call.committed else "markup", text)
        else:
            self.pending.append(("markup", text))

    # -- regions -------------------------------------------------------------------------------
    def enter_region(self) -> None:
        if not self.in_region:
            self.in_region = True
            self.region_calls = 0
            self.live = self.call is not None and self.call.committed

    def settle(self) -> bool:
        """Back in content: the region was well formed; what it held was markup.  Returns whether it was
        content instead (all its elements broke before they were calls)."""
        if not self.in_region:
            return False
        if self.call is not None:
            self.close_call()
        # a region whose only elements broke holds no call: all of it is content, verbatim
        verbatim = self.broken_element and not self.region_calls
        for kind, text in self.pending:
            self._flush_one("content" if verbatim and kind == "markup" else kind, text)
        self.pending = []
        self.in_region = False
        self.live = True
        self.broken_element = False
        return verbatim

    def _flush_one(self, kind: str, text: str) -> None:
        if kind == "content":
            self._emit_content(text)
        elif kind == "reasoning":
            self._emit_reasoning(text)
        else:
            self._seg(kind, text)

    @property
    def after_call(self) -> bool:
        """Whether the last text out (before what is pending) was a call's."""
        return self._seg_kind == "call"

    def element_to_content(self, start: int) -> None:
        """An element of a list of calls broke before it was a call: its text so far (pending from ``start``)
        is content, and the region goes on."""
        self.pending[start:] = [(k if k == "reasoning" else "content", t) for k, t in self.pending[start:]]
        self.call = None
        self.refused = False
        self.broken_element = True

    def fail(self) -> None:
        """The region broke: a committed call is closed as sent, everything uncommitted is content.

        A region that stops fitting right after optional whitespace that follows its last complete part (a
        separator with no call after it) is not malformed: that whitespace is content, verbatim."""
        if self.call is not None or not self.pending or not all(t.isspace() for _, t in self.pending):
            self.recoveries += 1
        call = self.call
        self.call = None
        if call is not None and call.committed:
            call.truncated = call.builder.incomplete()
            self._send(call, call.builder.salvage())
        for kind, text in self.pending:
            if kind == "reasoning":
                self._emit_reasoning(text)
            else:
                self._emit_content(text)
        self.pending = []
        self.in_region = False
        self.live = True
        self.refused = False
        self.broken_element = False

    def end(self) -> None:
        """End of output after a well-formed parse."""
        self.settle()
        if self.call is not None:
            self.close_call()

    # -- calls ---------------------------------------------------------------------------------
    def open_call(self) -> None:
        if self.refused:
            return
        if self.call is not None:
            self.close_call()
        self.call = _Call(self.schemas)

    def _current(self) -> _Call | None:
        if self.refused:
            return None
        if self.call is None:
            self.call = _Call(self.schemas)
        return self.call

    def name(self, name: str) -> None:
        """The function name is complete.  A name the grammar or the request refuses ends the region
        right here (``refused``), so where that happens never depends on how the text was split."""
        if self.refused:
            return
        call = self.call
        if call is None or call.name is not None:
            self.open_call()
            call = self.call
        known = self.schemas.knows(name)
        if self.name_re.fullmatch(name) is None or (self.reject_unknown and self.schemas.given and not known):
            self.refused = True
            self.call = None
            return
        call.name = name
        call.unknown = self.schemas.given and not known
        if call.unknown and self.error_unknown:
            raise UnknownToolError(name)
        if not self.commit_on_args or call.unsent:
            self._commit(call)

    def call_id(self, value: str) -> None:
        call = self._current()
        if call is not None and call.native_id is None:
            call.native_id = value

    def args(self, text: str) -> None:
        call = self._current()
        if call is not None:
            self._send(call, call.builder.raw(text))

    def args_scanner(self, scanner) -> None:
        call = self._current()
        if call is not None:
            call.builder.scanner = scanner

    def key(self, key: str) -> None:
        call = self._current()
        if call is not None:
            self._send(call, call.builder.key(key))

    def value_type(self, marker: str) -> None:
        call = self._current()
        if call is not None:
            call.builder.value_type(marker)

    def value_text(self, text: str) -> None:
        call = self.call
        if call is None or self.refused:
            call = self._current()
            if call is None:
                return
        piece = call.builder.value_text(text)
        if piece:
            if call.committed:
                self._emit_args(call, piece)
            else:
                self._send(call, piece)

    def value_json(self, text: str) -> None:
        call = self._current()
        if call is not None:
            self._send(call, call.builder.value_json(text))

    def value_scanner(self, scanner) -> None:
        call = self._current()
        if call is not None:
            call.builder.value_scanner(scanner)

    def value_schema(self):
        """``(types, schema, root)`` of the argument whose value is being read (unknown: ``(set(), None, None)``),
        for a value block that types parts of a structured value itself."""
        call = self.call
        key = call.builder.key_ if call is not None and not self.refused else None
        if key is None:
            return set(), None, None
        return self.schemas.parameter(call.name, key)

    def value_end(self) -> None:
        call = self._current()
        if call is not None:
            self._send(call, call.builder.value_end())

    def value_cut(self) -> None:
        """The value block being read broke: close what of it was sent."""
        call = self._current()
        if call is not None:
            self._send(call, call.builder.value_cut())

    def close_call(self) -> None:
        call = self.call
        if call is None:
            return
        if call.malformed:
            call.truncated = call.builder.incomplete()
        text = call.builder.finish()
        if not call.committed:
            if call.name is None:
                self.call = None
                return
            self._commit(call)
        self.call = None
        self._send(call, text)
        if self.in_region:
            self.live = False

    def _send(self, call: _Call, text: str) -> None:
        if not text:
            return
        if call.committed:
            self._emit_args(call, text)
        else:
            call.unsent.append(text)
            if self.commit_on_args and call.name is not None:
                self._commit(call)

    def _commit(self, call: _Call) -> None:
        if call.committed or self.refused:
            return
        call.mark = (len(self.segments), len(self._seg_parts) if self.segments else 0)
        for kind, text in self.pending:
            self._flush_one(kind, text)
        self.pending = []
        self.live = True
        call.committed = True
        self.region_calls += 1
        call.index = len(self.calls)
        call.id = call.native_id or self.new_id()
        self.calls.append(call)
        self._delta = {"name": call.name, "arguments": ""}
        self.deltas.append({"tool_calls": [{"index": call.index, "id": call.id, "type": "function",
                                            "function": self._delta}]})
        self._last = call.index
        unsent, call.unsent = call.unsent, []
        for text in unsent:
            self._emit_args(call, text)

    # -- result --------------------------------------------------------------------------------
    def result(self) -> ParseResult:
        kept = self.calls
        seg_list = [(k, list(parts)) for k, parts in self.segments]
        if self.truncated_as_content and kept and kept[-1].truncated:
            # on_truncated="content": the cut-off last call is not a call; its region's text is content
            i, j = kept[-1].mark
            kept = kept[:-1]
            tail: list = []
            if i > 0:
                kind, parts = seg_list[i - 1]
                tail += parts[j:]
                seg_list[i - 1] = (kind, parts[:j])
            for _, parts in seg_list[i:]:
                tail += parts
            seg_list = [x for x in seg_list[:i] if x[1]]
            if seg_list and seg_list[-1][0] == "content":
                seg_list[-1] = ("content", seg_list[-1][1] + tail)
            else:
                seg_list.append(("content", tail))
        calls = [Call(id=c.id, name=c.name, arguments="".join(c.parts), index=c.index,
                      truncated=c.truncated, unknown=c.unknown, malformed=c.malformed) for c in kept]
        pending = [(k, t) for k, t in self.pending]
        segments = [(k, "".join(parts)) for k, parts in seg_list]
        content = [t for k, t in segments if k == "content"]
        reasoning = [t for k, t in segments if k == "reasoning"]
        return ParseResult(content="".join(content) if content else None,
                           reasoning_content="".join(reasoning) if reasoning else None,
                           tool_calls=calls, segments=segments + pending, recovered=self.recoveries)

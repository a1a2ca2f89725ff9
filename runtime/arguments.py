"""Building one call's ``arguments`` JSON text, streamed as a closable prefix.

Arguments reach a call in one of two ways:

* *raw*: an encoding block (``json``, ``json_call``) already scans a JSON object and passes its pieces on;
* *key/value*: the grammar has separate key and value tokens (XML-ish tags, pythonic keywords, DSML...)
  and the builder writes ``{"key": value, ...}`` itself, typing text values by the tool schema (or by a
  type marker in the markup) and taking literal/JSON values from blocks as they stream.

Every method returns the next piece of JSON text.  At any moment the pieces so far plus :meth:`salvage`
are valid JSON, which is how a call cut short (end of text, malformed tail) still closes to exactly what
the client has already received.  String values stream as they arrive; a typed scalar goes out when its
value ends; a key goes out together with the first piece of its value.
"""
from __future__ import annotations

import json

from toolgram.runtime.json_value import json_dumps, json_string
from toolgram.runtime.encodings.literal import literal_to_json
from toolgram.runtime.schema_values import ToolSchemas, convert, is_string_only


def _escape(text: str) -> str:
    """The JSON string body of ``text`` (``json.dumps(text, ensure_ascii=False)`` less its quotes)."""
    return json_string(text)[1:-1]


class ArgsBuilder:
    __slots__ = ("schemas", "call", "mode", "scanner", "sent", "started", "key_", "types", "vmode",
                 "vsent", "vbuf", "vtype", "vscanner")

    def __init__(self, schemas: ToolSchemas, call):
        self.schemas = schemas
        self.call = call             # the call being built (its name types the values)
        self.mode = None             # None | "raw" | "kv"
        self.scanner = None          # raw: the block scanner (for closers)
        self.sent = False            # raw: some text was produced
        self.started = False         # kv: "{" was produced
        self.key_: str | None = None  # kv: key whose value is being read
        self.types: set = set()
        self.vmode = None            # None | "string" | "typed" | "json"
        self.vsent = False           # the current key and some of its value were produced
        self.vbuf: list[str] = []    # typed value text
        self.vtype = None            # type marker from the markup ("string" | "json")
        self.vscanner = None         # block scanner of the current value

    # -- raw ---------------------------------------------------------------------------------
    def raw(self, text: str) -> str:
        self.mode = "raw"
        self.sent = True
        return text

    # -- key/value ----------------------------------------------------------------------------
    def _prefix(self) -> str:
        head = ", " if self.started else "{"
        self.started = True
        self.vsent = True
        return head + json_dumps(self.key_) + ": "

    def key(self, key: str) -> str:
        out = self.value_end() if self.key_ is not None else ""
        self.mode = "kv"
        self.key_ = key
        self.types, _, _ = self.schemas.parameter(self.call.name, key)
        self.vmode = None
        self.vsent = False
        self.vbuf = []
        self.vtype = None
        self.vscanner = None
        return out

    def value_type(self, marker: str) -> None:
        self.vtype = marker

    def _decide(self) -> str:
        if self.vtype == "string":
            return "string"
        if self.vtype == "json":
            return "typed"
        return "string" if is_string_only(self.types) else "typed"

    def value_text(self, chunk: str) -> str:
        if self.key_ is None or not chunk:
            return ""
        if self.vmode is None:
            self.vmode = self._decide()
        if self.vmode == "string":
            if not self.vsent:
                return self._prefix() + '"' + _escape(chunk)
            return _escape(chunk)
        self.vbuf.append(chunk)
        return ""

    def value_json(self, piece: str) -> str:
        if self.key_ is None:
            return ""
        self.vmode = "json"
        if not self.vsent:
            return self._prefix() + piece
        return piece

    def value_scanner(self, scanner) -> None:
        self.vscanner = scanner

    def value_end(self) -> str:
        if self.key_ is None:
            return ""
        mode = self.vmode or self._decide()
        out = ""
        if mode == "string":
            out = (self._prefix() + '""') if not self.vsent else '"'
        elif mode == "typed":
            raw = "".join(self.vbuf)
            out = self._prefix() + (self._typed_json(raw) if self.vtype == "json" else convert(raw, self.types))
        elif not self.vsent:
            out = self._prefix() + '""'
        self.key_ = None
        self.vmode = None
        return out

    def value_cut(self) -> str:
        """A value block broke: close what of it was produced.  A value of which nothing was produced is
        dropped with its key (nothing is invented for it)."""
        if self.key_ is None:
            return ""
        if self.vmode in ("string", "typed"):
            return self.value_end()           # the text read so far is the value
        out = ""
        if self.vsent and self.vscanner is not None and not self.vscanner.done:
            out = self.vscanner.closers()
        self.key_ = None
        self.vmode = None
        return out

    @staticmethod
    def _typed_json(raw: str) -> str:
        text = raw.strip()
        try:
            return json_dumps(json.loads(text))
        except (ValueError, RecursionError):
            pass
        lit = literal_to_json(text, "python")
        return lit if lit is not None else json_dumps(raw)

    # -- ending ------------------------------------------------------------------------------
    def finish(self) -> str:
        """The call ended normally: the rest of the JSON text."""
        if self.mode == "raw":
            if self.scanner is not None and not self.scanner.done:
                return self.scanner.closers()
            return "" if self.sent else "{}"
        if self.mode == "kv":
            out = self.value_end() if self.key_ is not None else ""
            return out + ("}" if self.started else "{}")
        return "{}"

    def incomplete(self) -> bool:
        """Whether a call cut short lost part of its arguments (complete raw JSON: nothing was lost)."""
        if self.mode == "raw":
            return not self.sent or (self.scanner is not None and not self.scanner.done)
        return True

    def salvage(self) -> str:
        """The call was cut short: close what was produced.

        A typed value cut short (``<arg_value>12`` at the end of the text) is kept as read, typed as far as it
        goes, as a JSON argument cut short keeps its number: the call is flagged ``truncated`` either way, and
        dropping the value would lose text the model wrote."""
        if self.mode == "raw":
            if self.scanner is not None and not self.scanner.done and self.sent:
                return self.scanner.closers()
            return "" if self.sent else "{}"
        if self.mode == "kv":
            out = ""
            if self.key_ is not None and not self.vsent and self.vmode == "typed" and "".join(self.vbuf).strip():
                return self.value_end() + "}"
            if self.key_ is not None and self.vsent:
                if self.vmode == "string":
                    out = '"'
                elif self.vmode == "json" and self.vscanner is not None and not self.vscanner.done:
                    out = self.vscanner.closers()
            self.key_ = None
            return out + ("}" if self.started else "{}")
        return "{}"

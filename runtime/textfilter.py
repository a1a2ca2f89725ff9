"""Streaming filters for raw text values: trimming and XML entity decoding, chunk-size independent.

A value such as ``<parameter=city>\\nParis\\n</parameter>`` arrives in pieces; its grammar may say to drop
one surrounding newline (``strip: newline``) or all surrounding whitespace (``strip: whitespace``) and to
decode XML entities.  `TextFilter` does that while streaming: it holds back only what could still change
(trailing whitespace, a partial ``&entity``), so the concatenated output never depends on how the text was
split.
"""
from __future__ import annotations

import re

_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_PARTIAL_ENTITY = re.compile(r"&(?:[a-z]{0,4}|#[0-9]{0,7}|#[xX][0-9a-fA-F]{0,6})\Z")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_WS = " \t\r\n"


def _entity(m: re.Match) -> str:
    if m.group(1):
        return _NAMED[m.group(1)]
    code = int(m.group(2), 10) if m.group(2) else int(m.group(3), 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or code == 0:
        return m.group()
    return chr(code)


def unescape_xml(text: str) -> str:
    return _ENTITY.sub(_entity, text) if "&" in text else text


def escape_xml(text: str) -> str:
    """What `unescape_xml` reads back as ``text`` (a constraint writes keys and enum values this way)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def strip_text(text: str, mode: str) -> str:
    """The one-shot form of the ``strip`` option."""
    if mode == "whitespace":
        return text.strip(_WS)
    if mode == "newline":
        if text.startswith("\r\n"):
            text = text[2:]
        elif text.startswith("\n"):
            text = text[1:]
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n") or text.endswith("\r"):
            text = text[:-1]
    return text


class TextFilter:
    """Applies ``strip`` then ``unescape`` to a value that arrives in chunks."""

    __slots__ = ("strip", "unescape", "lead", "started", "tail", "etail", "hold")

    def __init__(self, strip: str = "none", unescape: str | None = None):
        self.strip = strip
        self.unescape = unescape
        self.lead = ""            # newline mode: the undecided start ("" or "\r")
        self.started = strip == "none"
        self.tail: list[str] = []  # held trailing whitespace / newline
        self.etail = ""           # held partial entity
        self.hold = {"whitespace": _WS, "newline": "\r\n"}.get(strip, "")   # final characters to hold back

    def feed(self, chunk: str) -> str:
        if (self.started and not self.tail and not self.etail and chunk and chunk[-1] not in self.hold
                and not (self.unescape and "&" in chunk)):
            return chunk          # the common case: nothing to trim, hold or decode
        if self.strip != "none":
            chunk = self._strip(chunk)
        if self.unescape and (chunk or self.etail):
            chunk = self.etail + chunk
            amp = chunk.rfind("&", max(0, len(chunk) - 10))
            if amp != -1 and _PARTIAL_ENTITY.match(chunk, amp):
                self.etail = chunk[amp:]
                chunk = chunk[:amp]
            else:
                self.etail = ""
            chunk = unescape_xml(chunk)
        return chunk

    def _strip(self, chunk: str) -> str:
        if not self.started:
            if self.strip == "whitespace":
                chunk = chunk.lstrip(_WS)
            else:
                chunk = self.lead + chunk
                if chunk in ("", "\r"):
                    self.lead = chunk
                    return ""
                self.lead = ""
                self.started = True
                if chunk.startswith("\r\n"):
                    chunk = chunk[2:]
                elif chunk.startswith("\n"):
                    chunk = chunk[1:]
            if not chunk:
                return ""
            self.started = True
        if self.strip == "whitespace":
            body = chunk.rstrip(_WS)
            if not body:
                self.tail.append(chunk)
                return ""
            held = "".join(self.tail)
            self.tail = [chunk[len(body):]] if len(body) < len(chunk) else []
            return held + body
        # newline: hold back a final newline ("\n", "\r\n", or a "\r" that may become "\r\n")
        text = "".join(self.tail) + chunk
        if text.endswith("\r\n"):
            cut = 2
        elif text.endswith("\n") or text.endswith("\r"):
            cut = 1
        else:
            cut = 0
        self.tail = [text[len(text) - cut:]] if cut else []
        return text[:len(text) - cut]

    def end(self) -> str:
        """The value ended: release what was held (the trailing whitespace or newline is dropped)."""
        self.tail = []
        out = self.etail
        self.etail = ""
        return out

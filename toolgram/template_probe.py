"""Probing a chat template: render conversations through it (the server's sandboxed renderer) and cut out what
the model itself would have written.

A model's output is the text that follows the generation prompt.  For an assistant message ``msg`` the
template renders as history, that text is recovered as follows:

* ``prompt`` = the conversation up to the user turn, rendered with ``add_generation_prompt=True``;
* ``full``   = the same conversation plus ``msg``, the tool results and a following assistant turn;
* the assistant header is the longest common prefix of the two; the rest of ``full`` from there is the
  message, less what the generation prompt already wrote after the header (``<think>`` ...);
* the message ends at the template's end-of-turn marker (the text a plain assistant turn ends with), which
  the model emits as its stop token.

Used by the template tests (tests/test_templates.py) and by ``toolgram new --from-template``
(toolgram/draft.py).  Nothing here knows a format: markers come from the renderings.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from toolgram.serve.chat import render

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>"}
USER = "Please help me with this request."
PLAIN = "PLAIN-REPLY-7f3a"
FINAL = "FINAL-REPLY-9c2e"
RESULT = "TOOL-RESULT-{i}-5d1b"
IDS = ("a1B2c3D4e", "f5G6h7I8j", "k9L0m1N2o", "p3Q4r5S6t")   # 9 alphanumerics: every template's id rules


def tool(name: str, properties: dict | None = None, required=None, description: str | None = None) -> dict:
    params = {"type": "object", "properties": properties or {}}
    if required:
        params["required"] = list(required)
    return {"type": "function", "function": {"name": name, "description": description or f"The {name} tool.",
                                             "parameters": params}}


def assistant_calls(calls: list[tuple[str, dict]], content: str | None = None, ids=IDS) -> dict:
    """An OpenAI assistant message with ``calls`` ([(name, arguments dict)])."""
    return {"role": "assistant", "content": content or "",
            "tool_calls": [{"id": ids[i % len(ids)], "type": "function",
                            "function": {"name": n, "arguments": json.dumps(a, ensure_ascii=False)}}
                           for i, (n, a) in enumerate(calls)]}


def tool_results(calls: list[tuple[str, dict]], ids=IDS) -> list[dict]:
    return [{"role": "tool", "tool_call_id": ids[i % len(ids)], "name": n, "content": RESULT.format(i=i)}
            for i, (n, _) in enumerate(calls)]


@dataclass
class Rendering:
    prompt: str                 # the generation prompt (conversation before the message)
    full: str                   # the whole conversation, the message included
    header: str                 # the assistant header (common prefix of prompt and full)
    message: str                # what the model wrote: the message's text, cut at the end-of-turn marker
    end: str | None             # the end-of-turn marker it was cut at (None: not found, cut at the tool result)
    notes: list[str] = field(default_factory=list)


def _common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


_OPENERS = {"<": ">", "[": "]", "{": "}"}


def _marker_boundary(text: str, k: int) -> int:
    """``k`` moved back to the start of a markup token it would split (``<|START_`` | ``TEXT|>``)."""
    for opener, closer in _OPENERS.items():
        i = text.rfind(opener, 0, k)
        if i >= 0 and closer not in text[i + 1:k] and k - i <= 64:
            k = i
    return k


def first_marker(text: str) -> str:
    """The first markup token of ``text`` (``<|im_end|>`` of ``<|im_end|>\n``), or its first word."""
    text = text.strip()
    if text[:1] in _OPENERS:
        j = text.find(_OPENERS[text[0]], 1)
        if j > 0:
            return text[:j + 1]
    return text.split()[0] if text.split() else ""


def end_of_turn(source: str, tools=None, kwargs=None) -> str:
    """The marker a plain assistant turn ends with (what the template writes after its content), stripped."""
    messages = [{"role": "user", "content": USER}, {"role": "assistant", "content": PLAIN}]
    text = render(source, messages, tools, add_generation_prompt=False, special=SPECIAL, kwargs=kwargs)
    i = text.rfind(PLAIN)
    return first_marker(text[i + len(PLAIN):]) if i >= 0 else ""


def render_message(source: str, message: dict, tools=None, *, kwargs=None, results=True, end=None,
                   prefix_messages=()) -> Rendering:
    """Render ``message`` (an assistant message) as history after one user turn (then, with ``results``, its
    tool results and a final assistant turn) and cut out the model's text.  Raises serve's TemplateError when
    the template refuses the conversation."""
    head = list(prefix_messages) + [{"role": "user", "content": USER}]
    prompt = render(source, head, tools, add_generation_prompt=True, special=SPECIAL, kwargs=kwargs)
    convo = head + [message]
    if results and message.get("tool_calls"):
        calls = [(c["function"]["name"], None) for c in message["tool_calls"]]
        ids = [c["id"] for c in message["tool_calls"]]
        convo += tool_results(calls, ids) + [{"role": "assistant", "content": FINAL}]
    full = render(source, convo, tools, add_generation_prompt=False, special=SPECIAL, kwargs=kwargs)
    plain = render(source, head + [{"role": "assistant", "content": PLAIN}], tools, add_generation_prompt=False,
                   special=SPECIAL, kwargs=kwargs)
    k = _marker_boundary(full, min(_common_prefix(prompt, full), _common_prefix(plain, full)))
    header, rest = full[:k], full[k:]
    notes = []
    tail = prompt[k:]                       # what the generation prompt writes after the header
    for n in range(len(tail), 0, -1):       # history that repeats its end (`</think>` after `<think></think>`)
        if rest.startswith(tail[-n:]):
            rest = rest[n:]
            notes.append(f"dropped {tail[-n:]!r} the generation prompt already wrote")
            break
    if end is None:
        end = [end_of_turn(source, tools, kwargs)]
    elif isinstance(end, str):
        end = [end]
    found = [(rest.find(e), e) for e in end if e and rest.find(e) >= 0]
    stop, end = min(found) if found else (-1, " or ".join(map(repr, end)))
    if stop < 0:
        cut = rest.find(RESULT.format(i=0)) if results else -1
        message_text = rest if cut < 0 else rest[:cut]
        notes.append(f"end-of-turn marker {end} not found after the message")
        end = None
    else:
        message_text = rest[:stop]
    return Rendering(prompt, full, header, message_text, end, notes)


def opens_reasoning(prompt: str, open_marker: str, close_marker: str) -> bool:
    """Whether ``prompt`` ends inside a reasoning block: its last open marker is not closed after it."""
    i = prompt.rfind(open_marker)
    return i >= 0 and prompt.find(close_marker, i + len(open_marker)) < 0

"""Lark text assembly: composing a tool-call grammar with a reasoning grammar, and finding rule lines.

The tool-call grammar's Lark text is used as written; composition only renames its ``start`` rule to
``tg_tool_start`` and (for reasoning blocks allowed anywhere) replaces its content terminals by a rule that
also admits a reasoning block.  The generated rules come *after* the grammar's own text, so Lark's line
numbers inside the grammar's text stay the grammar's own.
"""
from __future__ import annotations

import re

from toolgram.ir import ReasoningSpec

TOOL_START = "tg_tool_start"
REASONING_BLOCK = "tg_reasoning_block"
CONTENT_ITEM = "tg_content_item"
R_OPEN, R_CLOSE, R_TEXT, R_ESCAPE = "TG_REASONING_OPEN", "TG_REASONING_CLOSE", "TG_REASONING", "TG_REASONING_ESCAPE"
PLAIN_START = "plain"
INSIDE_START = "inside"     # the prompt opened the reasoning block: the output starts inside it
MAYBE_START = "maybe"       # the prompt opened nothing: the model may open a block itself

_START_DEF = re.compile(r"(?m)^([ \t]*[?!]?)start(\s*(?:\.\s*-?\d+\s*)?:)")
# a Lark token: a string literal, a regex literal, a comment, or a name
_LARK_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"i?|/(?:[^/\\\n]|\\.)+/[imslux]*|//[^\n]*|[A-Za-z_][A-Za-z0-9_]*')


def defines_start(text: str) -> bool:
    return _START_DEF.search(text) is not None


def rename_start(text: str) -> str:
    return _START_DEF.sub(lambda m: f"{m.group(1)}{TOOL_START}{m.group(2)}", text)


def replace_names(text: str, names: set[str], new: str) -> str:
    """Replace whole-word uses of ``names`` in rule bodies (not inside strings, regexes or comments)."""
    def sub(m: re.Match) -> str:
        tok = m.group()
        return new if tok in names else tok
    out = []
    for line in text.splitlines(keepends=True):
        head = re.match(r"\s*[A-Z_][A-Z0-9_]*\s*(\.\s*-?\d+\s*)?:", line)
        if head or line.lstrip().startswith("%"):
            out.append(line)           # terminal definitions and directives are left alone
        else:
            out.append(_LARK_TOKEN.sub(sub, line))
    return "".join(out)


def lark_string(text: str) -> str:
    """A Lark string literal for ``text`` (the one writer of Lark literals: grammars and constraints)."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 32:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def compose(tool_lark: str, reasoning: ReasoningSpec | None, content_terminals: set[str],
            declared: list[str]) -> tuple[str, list[str]]:
    """Return the full Lark text and its start symbols."""
    text = tool_lark.rstrip("\n") + "\n"
    extra: list[str] = []
    starts = ["start"]
    declared = list(declared)
    if reasoning is not None and not reasoning.channel:
        text = rename_start(text)
        if reasoning.anywhere and content_terminals:
            text = replace_names(text, content_terminals, CONTENT_ITEM)
            alts = " | ".join(sorted(content_terminals))
            extra.append(f"{CONTENT_ITEM}: {alts} | {REASONING_BLOCK}")
        close = f"({R_CLOSE} | {R_ESCAPE})" if reasoning.ends_at_call else R_CLOSE
        if reasoning.open:
            extra.append(f"{R_OPEN}: {lark_string(reasoning.open)}")
        extra.append(f"{R_CLOSE}: {lark_string(reasoning.close)}")
        declared.append(R_TEXT)
        if reasoning.ends_at_call:
            declared.append(R_ESCAPE)
        if reasoning.open:
            extra.append(f"{REASONING_BLOCK}: {R_OPEN} {R_TEXT}? {close}")
        if reasoning.starts_inside:
            opener = f"{R_OPEN}? " if reasoning.open else ""
            extra.append(f"start: {opener}{R_TEXT}? {close} {TOOL_START}")
        elif reasoning.anywhere:
            extra.append(f"start: {TOOL_START}")
        else:
            extra.append(f"start: {REASONING_BLOCK}? {TOOL_START}")
        extra.append(f"{PLAIN_START}: {TOOL_START}")
        starts.append(PLAIN_START)
        # start states chosen from the rendered prompt (StreamingParser(prompt=...))
        opener = f"{R_OPEN}? " if reasoning.open else ""
        extra.append(f"{INSIDE_START}: {opener}{R_TEXT}? {close} {TOOL_START}")
        # the model may open a block itself, or close an empty one it never opened (a template whose turns
        # without thinking begin with the closer): a closer at the very start is markup
        if not reasoning.open:
            maybe = TOOL_START
        elif reasoning.anywhere:
            maybe = f"{R_CLOSE}? {TOOL_START}"
        else:
            maybe = f"({REASONING_BLOCK} | {R_CLOSE})? {TOOL_START}"
        extra.append(f"{MAYBE_START}: {maybe}")
        starts += [INSIDE_START, MAYBE_START]
    if declared:
        extra.append("%declare " + " ".join(declared))
    return text + "\n".join(extra) + "\n", starts


def rule_line(text: str, name: str) -> int | None:
    """1-based line of the definition of rule or terminal ``name`` in ``text``."""
    m = re.search(rf"(?m)^[ \t]*[?!]?{re.escape(name)}\s*(?:\.\s*-?\d+\s*)?:", text)
    if m is None:
        return None
    return text.count("\n", 0, m.start()) + 1

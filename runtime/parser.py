"""The incremental parser: text deltas in, OpenAI deltas out, in work proportional to the input.

It runs a compiled grammar's LALR tables (computed by Lark) with its own resumable, contextual lexer:

* In each parser state only the terminals the grammar allows there are tried: markers (literals), short
  patterns (names, separators), encoding blocks (JSON, literals) and at most one free-text run.
* A token that reaches the end of the input so far and could still grow (a marker prefix such as
  ``<tool_``, a pattern, an unfinished block) is not decided: its text stays in the buffer, or inside the
  block's own state, until more arrives.  Text runs (content, reasoning, argument values) stream: only a
  suffix that could begin the marker ending them is held back.
* Nothing already consumed is looked at again: blocks and runs keep their state, so a long argument string
  costs the same per character whether it arrives in 1-character or 1-megabyte deltas.

Errors never escape: when the text stops fitting the grammar, the parser returns to the last point where
content could be read (a *safe* state), the uncommitted text of the broken region becomes content (see
`output.Output`), and parsing resumes where the error was found.
"""
from __future__ import annotations

from ..compiler.compiled import CompiledGrammar
from .encodings import new_scanner
from .encodings.json_value import DONE, ERROR, MORE
from .output import Output
from .schema_values import ToolSchemas
from .textfilter import TextFilter, strip_text, unescape_xml

_TOKEN, _RUN, _BLOCK, _FAIL = 0, 1, 2, 3
_END = "$END"


class _Run:
    __slots__ = ("term", "spec", "lex", "role", "acc", "filter", "length", "force", "cut")
    is_run = True

    def __init__(self, term, spec, lex, force):
        self.term = term
        self.spec = spec
        self.lex = lex
        self.role = "accumulate" if spec.accumulates else spec.role
        self.acc: list[str] = []
        self.filter = TextFilter(spec.strip, spec.unescape) if spec.role == "value" else None
        self.length = 0
        self.force = force
        self.cut = False          # ended by the end of the text, not by a marker


class _Block:
    __slots__ = ("term", "spec", "scanner", "value")
    is_run = False

    def __init__(self, term, spec, scanner):
        self.term = term
        self.spec = spec
        self.scanner = scanner
        self.value = spec.role == "value"


def _extract(regex, text: str, group: str) -> str | None:
    if regex is None:
        return text or None
    m = regex.search(text)
    if m is None:
        return None
    value = m.group(group)
    return value.strip() if value else None


class StreamingParser:
    """Parses one model response incrementally.  Use `feed` per delta, `close` at the end, then `result`."""

    def __init__(self, grammar: CompiledGrammar, tools=None, *, new_id=None, reasoning: bool = True):
        tables = grammar.tables
        start = "start" if reasoning or "plain" not in tables.start_states else "plain"
        self._acts = tables.actions
        self._gotos = tables.gotos
        self._rules = tables.rules
        self._dred = tables.default_reduce
        self._lexers = tables.lexers
        self._specs = grammar.terminals
        self._stack = [tables.start_states[start]]
        self._end_state = tables.end_states[start]
        self._snap = list(self._stack)
        self._out = Output(ToolSchemas(tools), grammar.policies, new_id)
        self._buf = ""
        self._offset = 0          # stream offset of _buf[0]
        self._active = None       # the run or block being read
        self._stall = None        # (offset, state) of the last recovery
        self._force = False       # no progress since the last recovery: read free text here
        self._closed = False

    # -- public --------------------------------------------------------------------------------
    def feed(self, text: str) -> list[dict]:
        """Consume one delta of model output; return the OpenAI deltas it completes."""
        if self._closed:
            raise ValueError("feed() after close()")
        if text:
            self._buf = self._buf + text if self._buf else text
            self._advance(False)
        return self._out.take()

    def close(self) -> list[dict]:
        """End of output: flush held-back text and finish calls."""
        if not self._closed:
            self._closed = True
            self._advance(True)
        return self._out.take()

    @property
    def result(self):
        """The parse so far (after `close`, the same object `Grammar.parse` returns)."""
        return self._out.result()

    # -- main loop -----------------------------------------------------------------------------
    def _advance(self, eof: bool) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        out = self._out
        while True:
            act = self._active
            if act is not None:
                if act.is_run:
                    pos, status = self._scan_run(act, buf, pos, n, eof)
                    if status == MORE:
                        break
                    self._active = None
                    if status == DONE:
                        self._end_run(act, pos)
                    else:
                        self._recover(pos)
                    continue
                start = pos
                try:
                    pos, status = act.scanner.feed(buf, pos, eof)
                except RecursionError:
                    status = ERROR
                if pos > start:
                    out.markup(buf[start:pos])
                if out.refused:
                    status = ERROR
                elif status == MORE:
                    if not eof:
                        break
                    status = ERROR
                self._active = None
                if status == DONE:
                    if act.value:
                        out.value_end()
                    self._shift(act.term, pos)
                else:
                    self._recover(pos)
                continue
            if pos >= n:
                if eof:
                    self._finish()
                break
            stack = self._stack
            lex = self._lexers[stack[-1]]
            if lex.safe:
                if out.in_region:
                    out.settle()
                self._snap = stack[:]
            if self._force:
                self._force = False
                if lex.text is not None:
                    spec = self._specs[lex.text]
                    if spec.role not in ("content", "reasoning"):
                        out.enter_region()
                    self._active = _Run(lex.text, spec, lex, True)
                else:
                    out.content_text(buf[pos])
                    pos += 1
                continue
            tok = self._lex(lex, buf, pos, n, eof)
            if tok is None:
                break
            kind, term, end = tok
            if kind == _FAIL:
                self._recover(pos)
                continue
            spec = self._specs[term]
            if kind == _RUN:
                if spec.role not in ("content", "reasoning"):
                    out.enter_region()
                self._active = _Run(term, spec, lex, False)
                continue
            out.enter_region()
            if kind == _BLOCK:
                self._active = _Block(term, spec, new_scanner(spec.block, spec.options, out, spec.role == "value"))
                continue
            text = buf[pos:end]
            out.markup(text)
            self._token_events(spec, text)
            pos = end
            if out.refused:
                self._recover(pos)
            else:
                self._shift(term, pos)
        self._offset += pos
        self._buf = buf[pos:]

    # -- lexing --------------------------------------------------------------------------------
    @staticmethod
    def _lex(lex, buf: str, pos: int, n: int, eof: bool):
        best = None
        best_end = pos
        lre = lex.literal_re
        if lre is not None:
            if not eof and n - pos < lex.literal_max and buf[pos:] in lex.literal_prefixes:
                return None
            m = lre.match(buf, pos)
            if m is not None:
                best_end = m.end()
                best = lex.literal_terms[m.group()]
        for pat, term in lex.patterns:
            m = pat.match(buf, pos, partial=not eof)
            if m is None:
                continue
            e = m.end()
            if not eof and (m.partial or e == n):
                return None
            if e > best_end:
                best_end = e
                best = term
        if best is not None:
            return _TOKEN, best, best_end
        for term, looks in lex.lookaheads:
            for mark in looks:
                if buf.startswith(mark, pos):
                    return _TOKEN, term, pos
                if not eof and n - pos < len(mark) and mark.startswith(buf[pos:]):
                    return None
        if lex.blocks:
            c = buf[pos]
            for term, first in lex.blocks:
                if first is None or c in first:
                    return _BLOCK, term, pos
        if lex.text is not None:
            return _RUN, lex.text, pos
        return _FAIL, None, pos

    def _scan_run(self, act: _Run, buf: str, pos: int, n: int, eof: bool):
        lex = act.lex
        stop_re = lex.stop_re
        end = n
        finished = eof
        if stop_re is not None:
            m = stop_re.search(buf, pos + 1 if act.force and act.length == 0 else pos)
            if m is not None:
                end = m.start()
                finished = True
            elif not eof and lex.stop_first:
                end = n - self._partial_stop(lex, buf, pos, n)
            else:
                act.cut = eof
        if end > pos:
            act.length += end - pos
            self._run_text(act, buf[pos:end])
            spec = act.spec
            if spec.max_length is not None and act.length > spec.max_length:
                return end, ERROR
        if not finished:
            return end, MORE
        return end, (DONE if act.length else ERROR)

    @staticmethod
    def _partial_stop(lex, buf: str, pos: int, n: int) -> int:
        """Length of the longest suffix of ``buf[pos:]`` that could begin a marker ending the run."""
        lo = n - lex.stop_max + 1
        if lo < pos:
            lo = pos
        best = n
        prefixes = lex.stop_prefixes
        for c in lex.stop_first:
            i = buf.find(c, lo, best)
            while i != -1:
                if buf[i:] in prefixes:
                    best = i
                    break
                i = buf.find(c, i + 1, best)
        return n - best

    def _run_text(self, act: _Run, text: str) -> None:
        role = act.role
        out = self._out
        if role == "content":
            out.content_text(text)
        elif role == "reasoning":
            out.reasoning_text(text)
        else:
            out.markup(text)
            if role == "accumulate":
                act.acc.append(text)
            elif role == "value":
                text = act.filter.feed(text)
                if text:
                    out.value_text(text)

    def _end_run(self, act: _Run, pos: int) -> None:
        out = self._out
        if act.cut and act.role in ("accumulate", "value"):
            pass                  # a name, key or value cut off by the end of the text is not complete
        elif act.role == "accumulate":
            self._token_events(act.spec, "".join(act.acc))
        elif act.role == "value":
            tail = act.filter.end()
            if tail:
                out.value_text(tail)
            out.value_end()
        if out.refused:
            self._recover(pos)
        else:
            self._shift(act.term, pos)

    def _token_events(self, spec, text: str) -> None:
        out = self._out
        if spec.accumulates:
            value = strip_text(text, spec.strip) if spec.strip != "none" else text.strip()
            if spec.unescape:
                value = unescape_xml(value)
            if spec.takes_id:
                ident = _extract(spec.id_re, value, "id")
                if ident:
                    out.call_id(ident)
            if spec.takes_name:
                name = _extract(spec.name_re, value, "name")
                if name is None:
                    out.refused = True
                    return
                out.name(name)
            if spec.role == "key":
                out.key(value)
        if spec.arg_type is not None:
            out.value_type(spec.arg_type)

    # -- LALR ----------------------------------------------------------------------------------
    def _reduce(self, index: int) -> None:
        rule = self._rules[index]
        stack = self._stack
        if rule.length:
            del stack[-rule.length:]
        stack.append(self._gotos[stack[-1]][rule.origin])
        if rule.is_call:
            self._out.close_call()

    def _shift(self, term: str, pos: int) -> None:
        stack = self._stack
        acts = self._acts
        while True:
            a = acts[stack[-1]].get(term)
            if a is None:
                self._recover(pos)
                return
            if a >= 0:
                stack.append(a)
                break
            self._reduce(-a - 1)
        dred = self._dred
        r = dred[stack[-1]]
        while r is not None:
            self._reduce(r)
            r = dred[stack[-1]]

    def _accept_end(self) -> bool:
        stack = self._stack
        while True:
            top = stack[-1]
            if top == self._end_state:
                return True
            a = self._acts[top].get(_END)
            if a is None or a >= 0:
                return False
            self._reduce(-a - 1)

    def _finish(self) -> None:
        out = self._out
        if not self._accept_end():
            out.fail()
            self._stack = self._snap[:]
            self._accept_end()
        out.end()

    def _recover(self, pos: int) -> None:
        self._active = None
        self._out.fail()
        self._stack = self._snap[:]
        mark = (self._offset + pos, self._stack[-1])
        if mark == self._stall:
            self._force = True
        self._stall = mark

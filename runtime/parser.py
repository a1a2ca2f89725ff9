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

Errors never escape.  When the text stops fitting the grammar inside a committed call (one already
streamed), the call keeps the rest of its text up to its end (`skip.Skipper`), flagged ``malformed``, and
parsing goes on after it, so a valid call after a broken one is still a call.  Anywhere else the parser
returns to the last point where content could be read (a *safe* state), the uncommitted text of the broken
region becomes content (see `output.Output`), and parsing resumes where the error was found.
"""
from __future__ import annotations

from toolgram.ir import CompiledGrammar
from toolgram.runtime import encodings
from toolgram.runtime.json_value import DONE, ERROR, MORE
from toolgram.runtime.output import Output
from toolgram.runtime.schema_values import ToolSchemas
from toolgram.runtime.skip import CLOSE, Skipper, closers_of
from toolgram.runtime.textfilter import TextFilter, strip_text, unescape_xml

_TOKEN, _RUN, _BLOCK, _FAIL, _GROW, _SPLIT = 0, 1, 2, 3, 4, 5
_END = "$END"


def _can_start(starts: dict, pat, c: str) -> bool:
    ok = starts.get(c)
    if ok is None:
        if len(starts) > 4096:
            starts.clear()
        ok = starts[c] = pat.match(c, partial=True) is not None
    return ok


def _alone(patterns: tuple, pat, c: str) -> bool:
    """Whether no pattern but ``pat`` may start with ``c`` (then a class-run token of ``pat`` can grow)."""
    for other, _, _, _, starts in patterns:
        if other is not pat:
            if starts is False or _can_start(starts, other, c):
                return False
    return True


def _earliest(stops: tuple, buf: str, start: int, n: int) -> int:
    """Where the first of several markers occurs in ``buf[start:n]`` (-1: nowhere), by C-level ``str.find``
    per marker over windows that double in size, so the cost stays proportional to the distance searched
    (a regex alternation is slow when a marker's first character is frequent in the text)."""
    lo = start
    width = 256
    while lo < n:
        hi = min(n, lo + width)
        found = -1
        for mark in stops:
            end = (hi if found == -1 else found) + len(mark) - 1
            i = buf.find(mark, lo, end if end < n else n)
            if i != -1:
                found = i
        if found != -1:
            return found
        lo = hi
        width *= 2
    return -1


class _Run:
    __slots__ = ("term", "spec", "lex", "role", "acc", "filter", "length", "force", "cut", "emit", "max_length")
    is_run = True

    def __init__(self, term, spec, lex, force, out: Output):
        self.term = term
        self.spec = spec
        self.lex = lex
        self.role = "accumulate" if spec.accumulates else spec.role
        self.acc: list[str] = []
        self.filter = None
        self.length = 0
        self.max_length = spec.max_length
        self.force = force
        self.cut = False          # ended by the end of the text, not by a marker
        self.emit = self._emitter(out)

    def _emitter(self, out: Output):
        """The function that takes each piece of the run's text (bound once: the per-delta path is hot)."""
        role = self.role
        if role == "content":
            return out.content_text
        if role == "reasoning":
            return out.reasoning_text
        markup = out.markup
        if role == "accumulate":
            append = self.acc.append

            def emit(text):
                markup(text)
                append(text)
            return emit
        if role == "value":
            value_text = out.value_text
            spec = self.spec
            if spec.strip == "none" and not spec.unescape:
                def emit(text):
                    markup(text)
                    value_text(text)
                return emit
            self.filter = TextFilter(spec.strip, spec.unescape)
            feed = self.filter.feed

            def emit(text):
                markup(text)
                text = feed(text)
                if text:
                    value_text(text)
            return emit
        return markup


class _Block:
    __slots__ = ("term", "spec", "scanner", "value")
    is_run = False
    skip = False

    def __init__(self, term, spec, scanner):
        self.term = term
        self.spec = spec
        self.scanner = scanner
        self.value = spec.role == "value"


class _Skip:
    """Reading past the broken rest of a call (read like a block; see `_recover`)."""

    __slots__ = ("term", "scanner", "value", "base", "block_stops", "content")
    is_run = False
    skip = True

    def __init__(self, scanner: Skipper, base: int, block=None, block_stops=(), content=False):
        self.scanner = scanner
        self.base = base                   # stack index of the state the call started in
        self.content = content             # an element that was no call: its text is content
        self.term = block.term if block is not None else None   # the broken block, if a block broke
        self.value = block is not None and block.value
        self.block_stops = frozenset(block_stops)   # literals after which the broken block is over


def _extract(regex, text: str, group: str) -> str | None:
    if regex is None:
        return text or None
    m = regex.search(text)
    if m is None:
        return None
    value = m.group(group)
    return value.strip() if value else None


def start_state(grammar: CompiledGrammar, reasoning: bool = True, prompt: str | None = None) -> str:
    """Where the output starts, as transformers' ``parse_response(prefix=...)`` decides it from the prompt.

    With the rendered prompt (or its tail): a prompt ending with the reasoning closer (``<think></think>``,
    DeepSeek's thinking-off ``</think>``) starts in content; one ending with the opener (``<think>\n``) starts
    inside reasoning, also when the request turned thinking off (templates that ignore the switch still open
    the block, and the model then thinks); any other prompt starts in content where the model may still open
    a block itself, unless the request turned reasoning off.  Whitespace at the end of the prompt is ignored.
    No prompt: ``reasoning=False`` starts in content, else the reasoning grammar's own default
    (``starts_inside``).
    """
    states = grammar.tables.start_states
    plain = "plain" if "plain" in states else "start"
    spec = grammar.reasoning
    if prompt is None or spec is None or "inside" not in states:
        return "start" if reasoning else plain
    tail = prompt.rstrip()
    if spec.close and tail.endswith(spec.close):
        return "plain"
    if spec.open and tail.endswith(spec.open.rstrip()):
        return "inside"
    return "maybe" if reasoning else plain


class StreamingParser:
    """Parses one model response incrementally.  Use `feed` per delta, `close` at the end, then `result`."""

    def __init__(self, grammar: CompiledGrammar, tools=None, *, new_id=None, reasoning: bool = True,
                 prompt: str | None = None, on_truncated: str = "keep", on_unknown_tool: str | None = None):
        tables = grammar.tables
        start = start_state(grammar, reasoning, prompt)
        self._acts = tables.actions
        self._gotos = tables.gotos
        self._rules = tables.rules
        self._dred = tables.default_reduce
        self._lexers = tables.lexers
        self._specs = grammar.terminals
        self._stack = [tables.start_states[start]]
        self._end_state = tables.end_states[start]
        self._recovery = tables.recovery
        self._call_starts = tables.recovery.call_gotos
        self._elem = (-1, 0)      # (stack index, pending length) where the last call of a region may begin
        self._snap = list(self._stack)
        policies = grammar.policies
        if on_unknown_tool is not None:       # per parse: keep (flagged) | content | error
            if on_unknown_tool not in ("keep", "content", "error"):
                raise ValueError(f"on_unknown_tool must be keep, content or error, not {on_unknown_tool!r}")
            policies = {**policies, "unknown_tool": {"content": "reject"}.get(on_unknown_tool, on_unknown_tool)}
        if on_truncated not in ("keep", "content"):
            raise ValueError(f"on_truncated must be keep or content, not {on_truncated!r}")
        self._out = Output(ToolSchemas(tools), policies, new_id, on_truncated)
        self._buf = ""
        self._offset = 0          # stream offset of _buf[0]
        self._active = None       # the run or block being read
        self._grow = None         # (terminal, [text, ...]) of a class-run token still growing
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
                    if act.skip and act.content:
                        out.content_text(buf[start:pos])
                    else:
                        out.markup(buf[start:pos])
                if out.refused:
                    status = ERROR
                elif status == MORE:
                    if not eof:
                        break
                    status = ERROR
                self._active = None
                if status == DONE:
                    if act.skip:
                        pos = self._resume(act, buf, pos)
                        continue
                    if act.value:
                        out.value_end()
                    self._shift(act.term, pos)
                else:
                    self._recover(pos, act)
                continue
            if self._grow is not None:
                # a class-run token (whitespace...) that reached the end of the text before: extend it
                term, parts = self._grow
                spec = self._specs[term]
                m = spec.pattern.match(buf, pos)
                end = m.end() if m is not None else pos
                if end >= n and not eof:
                    if end > pos:
                        parts.append(buf[pos:end])
                    pos = end
                    break
                self._grow = None
                parts.append(buf[pos:end])
                text = "".join(parts)
                stack = self._stack
            else:
                if pos >= n:
                    if eof:
                        self._finish()
                    break
                stack = self._stack
                lex = self._lexers[stack[-1]]
                if lex.safe:
                    if out.in_region and out.settle():
                        # the region held no call, only broken elements: it was content, and so is what
                        # follows it, read from where the region began
                        self._stack = stack = self._snap[:]
                        lex = self._lexers[stack[-1]]
                    self._snap = stack[:]
                if self._force:
                    self._force = False
                    if lex.text is not None:
                        spec = self._specs[lex.text]
                        if spec.role not in ("content", "reasoning"):
                            out.enter_region()
                        self._active = _Run(lex.text, spec, lex, True, out)
                    else:
                        out.content_text(buf[pos])
                        pos += 1
                    continue
                if self._call_starts[stack[-1]] >= 0:
                    self._elem = (len(stack) - 1, len(out.pending))
                tok = self._lex(lex, buf, pos, n, eof)
                if tok is None:
                    break
                kind, term, end = tok
                if kind == _SPLIT:
                    call = out.call
                    if call is None or not call.committed:
                        # a call marker stands here that this state would read the beginning of: the text is
                        # that marker, read again from the last point content could be read
                        kind = _FAIL
                if kind == _FAIL:
                    self._recover(pos)
                    continue
                spec = self._specs[term]
                if kind == _RUN:
                    if spec.role not in ("content", "reasoning"):
                        out.enter_region()
                    self._active = _Run(term, spec, lex, False, out)
                    continue
                if not out.in_region:
                    out.enter_region()
                if kind == _BLOCK:
                    scanner = encodings.get(spec.block).scanner(out, spec.prepared, spec.role == "value")
                    self._active = _Block(term, spec, scanner)
                    continue
                if kind == _GROW:
                    self._grow = (term, [buf[pos:end]])
                    pos = end
                    continue
                text = buf[pos:end]
            if text:
                out.markup(text)
            if spec.accumulates or spec.arg_type is not None:
                self._token_events(spec, text)
            pos = end
            if out.refused:
                self._recover(pos)
                continue
            # shift (inlined: this is the per-token path)
            acts = self._acts
            while True:
                a = acts[stack[-1]].get(term)
                if a is None:
                    self._recover(pos)
                    break
                if a >= 0:
                    stack.append(a)
                    r = self._dred[a]
                    while r is not None:
                        self._reduce(r)
                        r = self._dred[stack[-1]]
                    break
                self._reduce(-a - 1)
        self._offset += pos
        self._buf = buf[pos:]

    # -- lexing --------------------------------------------------------------------------------
    @staticmethod
    def _lex(lex, buf: str, pos: int, n: int, eof: bool):
        best = None
        best_end = pos
        split = -1                        # where a marker read here would end inside a call marker
        lre = lex.literal_re
        if lre is not None:
            if not eof and n - pos < lex.literal_max and buf[pos:] in lex.literal_prefixes:
                return None
            m = lre.match(buf, pos)
            if m is not None:
                best_end = m.end()
                best = lex.literal_terms[m.group()]
                for mark in lex.split_markers:
                    if len(mark) > best_end - pos and buf.startswith(mark, pos):
                        split = best_end
        patterns = lex.patterns
        if patterns:
            c = buf[pos]
        for pat, term, cap, run, starts in patterns:
            # most patterns cannot start with most characters: ask the memo before running the regex
            if starts is not False and not _can_start(starts, pat, c):
                continue
            m = pat.match(buf, pos, partial=not eof)
            if m is None:
                continue
            e = m.end()
            if e - pos > cap:
                continue
            if not eof and (m.partial or e == n):
                if run and best_end < n and _alone(patterns, pat, c):
                    return _GROW, term, n       # nothing else can take this text: consume it as it comes
                return None
            if e > best_end:
                best_end = e
                best = term
        if best is not None:
            return _SPLIT if best_end == split else _TOKEN, best, best_end
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

    @staticmethod
    def _scan_run(act: _Run, buf: str, pos: int, n: int, eof: bool):
        lex = act.lex
        stops = lex.stops
        end = n
        finished = eof
        if stops:
            start = pos + 1 if act.force and act.length == 0 else pos
            if len(stops) == 1:
                found = buf.find(stops[0], start)
            elif n - start <= 256:
                m = lex.stop_re.search(buf, start)
                found = -1 if m is None else m.start()
            else:
                found = _earliest(stops, buf, start, n)
            if found != -1:
                end = found
                finished = True
            elif not eof:
                # hold back the earliest suffix that could begin a marker ending the run
                lo = n - lex.stop_max + 1
                if lo < pos:
                    lo = pos
                prefixes = lex.stop_prefixes
                for c in lex.stop_first:
                    i = buf.find(c, lo, end)
                    while i != -1:
                        if buf[i:] in prefixes:
                            end = i
                            break
                        i = buf.find(c, i + 1, end)
            else:
                act.cut = True
        if act.max_length is not None and act.length + (end - pos) > act.max_length:
            # refused at the first character over the limit, wherever the deltas split the text (and
            # whether or not a marker ending the run follows later): the result never depends on the split
            end = pos + (act.max_length - act.length) + 1
            act.length += end - pos
            act.emit(buf[pos:end])
            return end, ERROR
        if end > pos:
            act.length += end - pos
            act.emit(buf[pos:end])
        if not finished:
            return end, MORE
        return end, (DONE if act.length else ERROR)

    def _end_run(self, act: _Run, pos: int) -> None:
        out = self._out
        if act.cut and act.role in ("accumulate", "value"):
            pass                  # a name, key or value cut off by the end of the text is not complete
        elif act.role == "accumulate":
            self._token_events(act.spec, "".join(act.acc))
        elif act.role == "value":
            tail = act.filter.end() if act.filter is not None else ""
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

    def _recover(self, pos: int, block=None) -> None:
        out = self._out
        call = out.call
        cut = self._closed and pos >= len(self._buf)     # the output ended here: cut off, not broken
        if not cut and not (block is not None and block.skip):
            skip = self._skipper(block)
            if skip is not None:
                self._active = skip
                return
        self._active = None
        out.fail()
        self._stack = self._snap[:]
        mark = (self._offset + pos, self._stack[-1])
        if mark == self._stall:
            self._force = True
        self._stall = mark

    # -- a broken call -------------------------------------------------------------------------
    def _skipper(self, block) -> _Skip | None:
        """How to read past the rest of a call that broke here, or None (then the region comes back as content).

        A committed call keeps its text (``malformed``).  A broken block (JSON arguments...) is read to its own
        end first: its brackets closed, or a literal that may follow it; the call then goes on.  Otherwise the
        call is read to its end: its closing marker, a literal that may follow it (outside brackets and
        strings), or the bracket closing those open where it broke.  An element of a list of calls that began
        and broke before it was a call (no name, a refused name) is content, and the list goes on after it."""
        out = self._out
        rec = self._recovery
        stack = self._stack
        gotos = rec.call_gotos
        base = len(stack) - 1
        while base >= 0 and gotos[stack[base]] < 0:
            base -= 1
        if base < 0:
            return None
        call = out.call
        if call is not None and call.committed and not out.refused:
            call.malformed = True
            content = False
        elif (out.in_region and not out.live and self._elem[0] == base and len(out.pending) > self._elem[1]
              and ((base >= len(self._snap) and out.region_calls) or out.after_call)):
            # (only in a list that already holds a call, or right after one: elsewhere the broken element
            # decides that the region is no calls at all, and its text goes out as content at once)
            out.element_to_content(self._elem[1])
            content = True
        else:
            return None
        out.recoveries += 1
        markers = rec.call_ends + tuple(x for x in rec.call_follows if len(x) > 1)
        inner, quote, quotes = [], None, ('"',)
        if block is not None:
            nesting = getattr(block.scanner, "nesting", None)
            if nesting is not None:
                inner, quote, quotes = nesting()
            if not content:
                follows = rec.block_follows.get(block.term, ())
                markers += tuple(x for x in follows if len(x) > 1)
                return _Skip(Skipper(inner, quote, quotes, markers, follows), base, block, follows)
        closers: list = []
        for s in stack[base + 1:]:            # the brackets the call's markers opened, then the block's
            closers_of(rec.brackets[s], closers)
        return _Skip(Skipper(closers + inner, quote, quotes, markers, rec.call_follows, rec.call_ends), base,
                     content=content)

    def _resume(self, skip: _Skip, buf: str, pos: int) -> int:
        """The broken text is read: go on after the broken block, or after the call; return the position."""
        out = self._out
        stop = skip.scanner.stop
        self._elem = (-1, 0)              # a later break is not this element's
        if skip.term is not None and (stop == CLOSE or stop in skip.block_stops):
            if skip.value:
                out.value_cut()
            self._shift(skip.term, pos)
            return pos
        if stop is None:                  # the output ended inside the broken call
            out.fail()
            self._stack = self._snap[:]
            return pos
        if stop in self._recovery.call_ends:
            (out.content_text if skip.content else out.markup)(stop)
            pos += len(stop)
        stack = self._stack
        del stack[skip.base + 1:]
        stack.append(self._recovery.call_gotos[stack[-1]])
        if not skip.content:
            out.value_cut()
            out.close_call()
        dred = self._dred
        r = dred[stack[-1]]
        while r is not None:
            self._reduce(r)
            r = dred[stack[-1]]
        return pos

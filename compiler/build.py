"""Compiling a grammar file: YAML → checked data → Lark grammar → LALR tables → `CompiledGrammar`.

Each step reports problems as `GrammarError` with the grammar file's line: YAML syntax, schema violations
(unknown keys, missing fields, unknown encodings), Lark errors (mapped back from the Lark text to the line of
the YAML file it came from), and shapes the streaming runtime cannot execute.
"""
from __future__ import annotations

import re
from pathlib import Path

import regex
from lark import Lark
from lark.exceptions import GrammarError as LarkGrammarError
from lark.exceptions import LarkError
from lark.lexer import Lexer, PatternStr

from ..runtime.encodings import OPTIONS, first_chars
from . import lark_text, schema, tables
from .compiled import (BLOCK, LITERAL, LOOKAHEAD, PATTERN, TEXT, CompiledGrammar, ReasoningSpec,
                       TerminalSpec)
from .errors import GrammarError
from .regexlang import finite_strings
from .source import Lines, load_source

DEFAULT_NAME_PATTERN = r"[^\s\"'<>{}\[\]]{1,256}"
_ACCUMULATED_MAX = 512


class _NoLexer(Lexer):
    """toolgram lexes itself; Lark is only asked for the grammar and its LALR tables."""

    def __init__(self, conf):
        pass

    def lex(self, *args):  # pragma: no cover - never called
        raise NotImplementedError


def read(path: str | Path) -> tuple[dict, Lines]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise GrammarError(f"not UTF-8 text: {e.reason}", str(path), 1) from None
    except OSError as e:
        raise GrammarError(f"cannot read: {e.strerror}", str(path)) from None
    data, lines = load_source(text, str(path))
    schema.check(data, lines)
    return data, lines


def reasoning_spec(data: dict, lines: Lines) -> ReasoningSpec:
    spec = ReasoningSpec(name=data["name"], description=data["description"], models=tuple(data.get("models", ())),
                         open=data.get("open"), close=data.get("close"),
                         starts_inside=data.get("starts_inside", False), anywhere=data.get("anywhere", False),
                         ends_at_call=data.get("ends_at_call", False), channel=data.get("channel", False),
                         example=data.get("example", ""), file=lines.file)
    if spec.channel:
        if spec.open or spec.close:
            raise lines.error("a channel reasoning grammar has no open/close markers", ("channel",))
    else:
        if not spec.close:
            raise lines.error("a reasoning grammar needs 'close' (or 'channel: true')", ())
        if not spec.open and not spec.starts_inside:
            raise lines.error("'open' is required unless 'starts_inside' is true", ())
    return spec


def _compile_regex(pattern: str, where: str, lines: Lines, path: tuple, groups: tuple = ()):
    try:
        compiled = regex.compile(pattern)
    except regex.error as e:
        raise lines.error(f"{where}: invalid regex {pattern!r}: {e}", path) from None
    for g in groups:
        if g not in compiled.groupindex:
            raise lines.error(f"{where}: the regex needs a named group (?P<{g}>...)", path)
    return compiled


def _capture(value, what: str, lines: Lines, path: tuple):
    if value is True:
        return True, None
    if value is False or value is None:
        return False, None
    return True, _compile_regex(value, f"{what} capture", lines, path, (what,))


def _terminal_specs(data: dict, lines: Lines, lark_instance: Lark | None, declared: set[str]) -> dict:
    """TerminalSpec for every terminal Lark knows, with the roles the YAML gives them."""
    yaml_terms: dict = data.get("terminals", {})
    specs: dict[str, TerminalSpec] = {}
    defined = {t.name: t for t in lark_instance.terminals} if lark_instance is not None else {}
    for name, tdef in defined.items():
        pattern = tdef.pattern
        if isinstance(pattern, PatternStr) and not pattern.flags:
            specs[name] = TerminalSpec(name=name, kind=LITERAL, literal=pattern.value, spellings=(pattern.value,),
                                       source=pattern.value)
            continue
        source = pattern.to_regexp()
        words = finite_strings(source)
        if words:
            specs[name] = TerminalSpec(name=name, kind=LITERAL, literal=words[0], spellings=tuple(words),
                                       source=source)
        else:
            specs[name] = TerminalSpec(name=name, kind=PATTERN, source=source,
                                       pattern=_compile_regex(source, f"terminal {name}", lines, ("lark",)))
    for name, opts in yaml_terms.items():
        path = ("terminals", name)
        kinds = [k for k in ("text", "block", "lookahead") if opts.get(k)]
        if len(kinds) > 1:
            raise lines.error(f"terminal {name}: 'text', 'block' and 'lookahead' exclude each other", path)
        if kinds:
            if name in defined:
                raise lines.error(f"terminal {name} is declared here as {kinds[0]} and also defined in the Lark "
                                  f"text; define it in one place", path)
            if kinds[0] == "text":
                spec = TerminalSpec(name=name, kind=TEXT)
            elif kinds[0] == "block":
                block = opts["block"]
                extra = set(opts) - OPTIONS[block] - {"block", "role"}
                if extra:
                    raise lines.error(f"terminal {name}: {', '.join(sorted(extra))} cannot be used with "
                                      f"block {block!r}", path)
                spec = TerminalSpec(name=name, kind=BLOCK, block=block,
                                    options={k: v for k, v in opts.items() if k in OPTIONS[block]})
            else:
                spec = TerminalSpec(name=name, kind=LOOKAHEAD, lookahead=tuple(opts["lookahead"]))
            specs[name] = spec
        else:
            misplaced = set(opts) & set().union(*OPTIONS.values())
            if misplaced:
                raise lines.error(f"terminal {name}: {', '.join(sorted(misplaced))} are options of encoding "
                                  f"blocks ('block: ...')", path)
            if name not in defined:
                raise lines.error(f"terminal {name} is not defined in the Lark text (declare it with "
                                  f"'text: true' or 'block: ...', or define it in 'lark')", path)
            spec = specs[name]
        spec.role = opts.get("role", spec.role)
        spec.takes_name, spec.name_re = _capture(opts.get("name"), "name", lines, path + ("name",))
        spec.takes_id, spec.id_re = _capture(opts.get("id"), "id", lines, path + ("id",))
        spec.arg_type = opts.get("arg_type")
        strip = opts.get("strip", False)
        spec.strip = {True: "whitespace", False: "none"}.get(strip, strip)
        spec.unescape = opts.get("unescape")
        spec.max_length = opts.get("max_length")
        spec.settle()
        if spec.accumulates and spec.max_length is None:
            spec.max_length = _ACCUMULATED_MAX
        if spec.kind == BLOCK and spec.block == "json_call" and (spec.takes_name or spec.role != "markup"):
            raise lines.error(f"terminal {name}: a json_call block finds the name itself; give it no role", path)
        if spec.role in ("content", "reasoning") and spec.kind != TEXT:
            raise lines.error(f"terminal {name}: role {spec.role} is for text terminals ('text: true')", path)
        if spec.kind == TEXT and spec.role == "markup" and not spec.accumulates:
            raise lines.error(f"terminal {name}: a text terminal needs a role (content, reasoning, key, value) "
                              f"or a name/id capture", path)
    return specs


def _declared(data: dict) -> list[str]:
    return [n for n, o in data.get("terminals", {}).items() if o.get("text") or o.get("block") or o.get("lookahead")]


def _lark_error(e: Exception, full: str, tool_lark: str, lines: Lines) -> GrammarError:
    msg = str(e).strip().split("\n")[0]
    offset = lines.block_start.get(("lark",)) or lines.line(("lark",))
    tool_lines = tool_lark.count("\n") + 1
    m = re.search(r"at line (\d+) column (\d+)", str(e))
    if m and offset is not None:
        line = int(m.group(1))
        if line <= tool_lines:
            msg = msg[:m.start()].rstrip(", ") + f" (column {m.group(2)})" if m.start() < len(msg) else msg
            return GrammarError(f"Lark: {msg}", lines.file, offset + line - 1)
    for name in re.findall(r"(?:in rule |rule |Rule |<)'?([a-z_][a-z0-9_]*)'?", str(e)):
        line = lark_text.rule_line(tool_lark, name)
        if line is not None and offset is not None:
            return GrammarError(f"Lark: {msg}", lines.file, offset + line - 1)
    for name in re.findall(r"'([A-Z_][A-Z0-9_]*)'|\b([A-Z][A-Z0-9_]{2,})\b", str(e)):
        name = name[0] or name[1]
        line = lark_text.rule_line(tool_lark, name)
        if line is not None and offset is not None:
            return GrammarError(f"Lark: {msg}", lines.file, offset + line - 1)
    detail = str(e).strip().replace("\n", " ")
    return GrammarError(f"Lark: {detail}", lines.file, lines.line(("lark",)))


def _build_lark(full: str, starts: list[str], tool_lark: str, lines: Lines, import_dir: str | None) -> Lark:
    try:
        return Lark(full, parser="lalr", lexer=_NoLexer, keep_all_tokens=True, start=starts,
                    maybe_placeholders=False, import_paths=[import_dir] if import_dir else [])
    except (LarkGrammarError, LarkError, FileNotFoundError, ValueError, TypeError, KeyError,
            AttributeError, AssertionError, IndexError, RecursionError) as e:
        raise _lark_error(e, full, tool_lark, lines) from None


def compile_data(data: dict, lines: Lines, reasoning: ReasoningSpec | None = None,
                 import_dir: str | None = None) -> CompiledGrammar:
    """Compile checked tool-call grammar data (``read`` gives it) with an optional reasoning grammar."""
    tool_lark = data["lark"]
    if not lark_text.defines_start(tool_lark):
        raise lines.error("the Lark text must define a 'start' rule", ("lark",))
    yaml_terms = data.get("terminals", {})
    content_terms = {n for n, o in yaml_terms.items() if o.get("text") and o.get("role") == "content"}
    has_reasoning_terms = any(o.get("role") == "reasoning" for o in yaml_terms.values())
    if reasoning is not None and reasoning.channel and not has_reasoning_terms:
        raise lines.error(f"reasoning grammar {reasoning.name!r} is a channel of the tool-call grammar, but this "
                          f"grammar labels no text as reasoning", ("reasoning",))
    if reasoning is not None and reasoning.anywhere and not content_terms:
        raise lines.error(f"reasoning grammar {reasoning.name!r} allows blocks wherever content may be, but this "
                          f"grammar has no content text terminal", ("reasoning",))
    full, starts = lark_text.compose(tool_lark, reasoning, content_terms, _declared(data))
    lk = _build_lark(full, starts, tool_lark, lines, import_dir)
    if lk.ignore_tokens:
        line = re.search(r"(?m)^\s*%ignore", tool_lark)
        offset = lines.block_start.get(("lark",)) or lines.line(("lark",)) or 1
        raise GrammarError("%ignore is not supported: write whitespace where it may appear (e.g. WS?), "
                           "so that streaming knows what is markup", lines.file,
                           offset + tool_lark.count("\n", 0, line.start()) if line else lines.line(("lark",)))
    specs = _terminal_specs(data, lines, lk, set(_declared(data)))
    if reasoning is not None and not reasoning.channel:
        specs[lark_text.R_TEXT] = TerminalSpec(name=lark_text.R_TEXT, kind=TEXT, role="reasoning")
        if reasoning.ends_at_call:
            specs[lark_text.R_ESCAPE] = TerminalSpec(name=lark_text.R_ESCAPE, kind=LOOKAHEAD)
    calls = data["calls"]
    rule_names = {r.origin.name for r in lk.rules} | {r.alias for r in lk.rules if r.alias}
    for key in ("rule", "region", "argument"):
        if key in calls and calls[key] not in rule_names:
            raise lines.error(f"calls.{key}: no rule named {calls[key]!r} in the Lark text", ("calls", key))
    used = {sym.name for r in lk.rules for sym in r.expansion}
    for name in yaml_terms:
        if name not in used:
            raise lines.error(f"terminal {name} is declared but no rule uses it", ("terminals", name))

    def error(message: str, terminal: str):
        raise lines.error(message, ("terminals", terminal) if terminal in yaml_terms else ("lark",))

    actions, gotos, rules, start_states, end_states = tables.parse_table(lk, set(specs), calls["rule"])
    plain = start_states.get(lark_text.PLAIN_START, start_states["start"])
    trig = tables.triggers(actions, specs, plain)
    if reasoning is not None and reasoning.ends_at_call:
        if not trig:
            raise lines.error("the reasoning grammar ends at a tool call, but no marker starts a call from content",
                              ("lark",))
        specs[lark_text.R_ESCAPE].lookahead = trig
    block_first = {spec.block: first_chars(spec.block, spec.options) for spec in specs.values() if spec.kind == BLOCK}
    built = tables.build_tables(actions, gotos, rules, start_states, end_states, specs, block_first, error)
    policies = dict(data.get("policies", {}))
    policies.setdefault("commit", "name")
    policies.setdefault("unknown_tool", "keep")
    policies.setdefault("name_pattern", DEFAULT_NAME_PATTERN)
    try:
        re.compile(policies["name_pattern"])
    except re.error as e:
        raise lines.error(f"policies.name_pattern: invalid regex: {e}", ("policies", "name_pattern")) from None
    return CompiledGrammar(
        name=data["name"], description=data["description"].strip(), models=tuple(data.get("models", ())),
        file=lines.file, lark=full, tool_lark=tool_lark, terminals=specs, tables=built,
        call_rule=calls["rule"], region_rule=calls.get("region"), argument_rule=calls.get("argument"),
        policies=policies, reasoning=reasoning, default_reasoning=data.get("reasoning"),
        example=data.get("example", ""), corpus=data.get("corpus"), triggers=trig,
        has_reasoning_start=lark_text.PLAIN_START in start_states)

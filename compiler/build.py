"""Compiling a grammar file: YAML → checked data → Lark grammar → LALR tables → `CompiledGrammar`.

Each step reports problems as `GrammarError` with the grammar file's line: YAML syntax, schema violations
(unknown keys, missing fields, unknown encodings), Lark errors (mapped back from the Lark text to the line of
the YAML file it came from), and shapes the streaming runtime cannot execute.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import regex
from lark import Lark
from lark.exceptions import GrammarError as LarkGrammarError
from lark.exceptions import LarkError
from lark.lexer import Lexer, PatternStr
from lark.load_grammar import load_grammar

from toolgram.runtime import encodings
from toolgram.compiler import ebnf, lark_text, schema, tables
from toolgram.ir import (BLOCK, LITERAL, LOOKAHEAD, PATTERN, TEXT, CompiledGrammar, ReasoningSpec,
                       TerminalSpec)
from toolgram.errors import GrammarError
from toolgram.compiler.regexlang import finite_strings
from toolgram.compiler.source import MAX_FILE_BYTES, Lines, load_source

DEFAULT_NAME_PATTERN = r"[^\s\"'<>{}\[\]]{1,256}"
_ACCUMULATED_MAX = 512
MAX_RULES = 2000         # the largest bundled grammar has 162
MAX_LARK_CHARS = 64 * 1024   # ... and 1.8 kB of Lark text


class _NoLexer(Lexer):
    """toolgram lexes itself; Lark is only asked for the grammar and its LALR tables."""

    def __init__(self, conf):
        pass

    def lex(self, *args):  # pragma: no cover - never called
        raise NotImplementedError


def read(path: str | Path) -> tuple[dict, Lines]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)     # (never more: the path may be huge, or /dev/zero)
    except OSError as e:
        raise GrammarError(f"cannot read: {e.strerror or e}", str(path)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise GrammarError(f"file is larger than {MAX_FILE_BYTES} bytes", str(path), 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GrammarError(f"not UTF-8 text: {e.reason}", str(path), raw.count(b"\n", 0, e.start) + 1) from None
    data, lines = load_source(text, str(path))
    schema.check(data, lines)
    return data, lines


def reasoning_spec(data: dict, lines: Lines) -> ReasoningSpec:
    spec = ReasoningSpec(name=data["name"], description=data["description"], models=tuple(data.get("models", ())),
                         open=data.get("open"), close=data.get("close"),
                         starts_inside=data.get("starts_inside", False), anywhere=data.get("anywhere", False),
                         ends_at_call=data.get("ends_at_call", False) or bool(data.get("ends_at")),
                         ends_at=tuple(data.get("ends_at", ())), channel=data.get("channel", False),
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


def _terminal_specs(data: dict, lines: Lines, lark_instance: Lark | None) -> dict:
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
            if kinds[0] != "block":
                misplaced = set(opts) & set(encodings.registry.option_schemas())
                if misplaced:
                    raise lines.error(f"terminal {name}: {', '.join(sorted(misplaced))} are options of encoding "
                                      f"blocks ('block: ...'), not of a {kinds[0]} terminal", path)
            if kinds[0] == "text":
                spec = TerminalSpec(name=name, kind=TEXT)
            elif kinds[0] == "block":
                block = opts["block"]
                enc = encodings.get(block)
                extra = set(opts) - set(enc.options) - {"block", "role"}
                if extra:
                    raise lines.error(f"terminal {name}: {', '.join(sorted(extra))} cannot be used with "
                                      f"block {block!r}", path)
                options = {k: v for k, v in opts.items() if k in enc.options}
                spec = TerminalSpec(name=name, kind=BLOCK, block=block, options=options,
                                    prepared=enc.prepare(options))
            else:
                spec = TerminalSpec(name=name, kind=LOOKAHEAD, lookahead=tuple(opts["lookahead"]))
            specs[name] = spec
        else:
            misplaced = set(opts) & set(encodings.registry.option_schemas())
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
        spec.accumulates = bool(spec.takes_name or spec.takes_id or spec.role == "key")
        if spec.accumulates and spec.max_length is None:
            spec.max_length = _ACCUMULATED_MAX
        _check_applicable(name, opts, spec, lines, path)
        if spec.kind == BLOCK and encodings.get(spec.block).finds_name and (spec.takes_name or spec.role != "markup"):
            raise lines.error(f"terminal {name}: a {spec.block} block finds the name itself; give it no role", path)
        if spec.role in ("content", "reasoning") and spec.kind != TEXT:
            raise lines.error(f"terminal {name}: role {spec.role} is for text terminals ('text: true')", path)
        if spec.kind == TEXT and spec.role == "markup" and not spec.accumulates:
            raise lines.error(f"terminal {name}: a text terminal needs a role (content, reasoning, key, value) "
                              f"or a name/id capture", path)
    return specs


def _check_applicable(name: str, opts: dict, spec: TerminalSpec, lines: Lines, path: tuple) -> None:
    """A key that would change nothing on this kind of terminal is an error, like an unknown key."""
    value_run = spec.kind == TEXT and spec.role == "value"
    applies = {
        "strip": spec.accumulates or value_run,                   # read back stripped: names, ids, keys, values
        "unescape": spec.accumulates or value_run,
        "max_length": spec.kind in (PATTERN, TEXT) or spec.accumulates,
        "arg_type": spec.kind in (LITERAL, PATTERN) and not spec.accumulates,
        "name": spec.kind != LOOKAHEAD,
        "id": spec.kind != LOOKAHEAD,
    }
    for key, ok in applies.items():
        if key in opts and not ok:
            kind = f"{spec.role} {spec.kind}" if spec.kind == TEXT else spec.kind
            raise lines.error(f"terminal {name}: '{key}' does nothing on a {kind} terminal", path + (key,))


def _declared(data: dict) -> list[str]:
    return [n for n, o in data.get("terminals", {}).items() if o.get("text") or o.get("block") or o.get("lookahead")]


def _lark_error(e: Exception, tool_lark: str, lines: Lines) -> GrammarError:
    # one paragraph, on one line (a collision lists its rules on the lines below its first).  Lark reports
    # collisions in set order, which varies from run to run: take the first paragraph in sorted order, its rules
    # sorted, and below the rule defined first, so that the same file always gives the same error
    paragraphs = [p for p in str(e).strip().split("\n\n") if p.strip()] or [str(e)]
    text = min(paragraphs) if "collision" in str(e) else paragraphs[0]
    head, *rest = [x.strip().lstrip("- ") for x in text.split("\n") if x.strip()] or [""]
    msg = " ".join([head, *sorted(rest)])
    offset = lines.block_start.get(("lark",)) or lines.line(("lark",))
    tool_lines = tool_lark.count("\n") + 1
    m = re.search(r"at line (\d+) column (\d+)", str(e))
    if m and offset is not None:
        line = int(m.group(1))
        if line <= tool_lines:
            msg = msg[:m.start()].rstrip(", ") + f" (column {m.group(2)})" if m.start() < len(msg) else msg
            return GrammarError(f"Lark: {msg}", lines.file, offset + line - 1)
    found = [lark_text.rule_line(tool_lark, name)
             for name in re.findall(r"(?:in rule |rule |Rule |<)'?([a-z_][a-z0-9_]*)'?", msg)]
    found = [line for line in found if line is not None]
    if found and offset is not None:
        return GrammarError(f"Lark: {msg}", lines.file, offset + min(found) - 1)
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
    paths = [import_dir] if import_dir else []
    if len(tool_lark) > MAX_LARK_CHARS:
        raise GrammarError(f"the Lark text has {len(tool_lark)} characters; at most {MAX_LARK_CHARS} are accepted",
                           lines.file, lines.line(("lark",)))
    try:
        # Lark's LALR construction grows faster than the square of the grammar's size (a 200 kB file of
        # markers takes minutes): count the rules first, which is cheap, and refuse a grammar far larger than
        # any tool-call syntax needs
        grammar, _ = load_grammar(full, "<grammar>", paths, True)
        _, rules, _ = grammar.compile(starts, set())
        if len(rules) > MAX_RULES:
            raise GrammarError(f"the Lark text has {len(rules)} rules (alternatives and repetitions expanded); "
                               f"at most {MAX_RULES} are accepted", lines.file, lines.line(("lark",)))
        return Lark(full, parser="lalr", lexer=_NoLexer, keep_all_tokens=True, start=starts,
                    maybe_placeholders=False, import_paths=paths)
    except (LarkGrammarError, LarkError, FileNotFoundError, ValueError, TypeError, KeyError,
            AttributeError, AssertionError, IndexError, RecursionError) as e:
        raise _lark_error(e, tool_lark, lines) from None


def _check_productive(lk: Lark, tool_lark: str, lines: Lines) -> None:
    """Refuse a rule that derives no finite text (recursive without a base case, like ``call: call "x"``):
    Lark builds tables for it, but no output could ever complete it."""
    productive: set[str] = set()
    changed = True
    while changed:
        changed = False
        for r in lk.rules:
            name = r.origin.name
            if name not in productive and all(sym.is_term or sym.name in productive for sym in r.expansion):
                productive.add(name)
                changed = True
    dead = sorted({r.origin.name for r in lk.rules} - productive)
    if not dead:
        return
    offset = lines.block_start.get(("lark",)) or lines.line(("lark",))
    for name in sorted(dead, key=lambda n: n.startswith("_")):      # the grammar's own rules first
        line = lark_text.rule_line(tool_lark, name)
        if line is not None and offset is not None:
            raise GrammarError(f"rule {name} derives no finite text: it is recursive without a base case",
                               lines.file, offset + line - 1)
    raise lines.error(f"rules {', '.join(dead)} derive no finite text: recursive without a base case", ("lark",))


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
    specs = _terminal_specs(data, lines, lk)
    if reasoning is not None and not reasoning.channel:
        specs[lark_text.R_TEXT] = TerminalSpec(name=lark_text.R_TEXT, kind=TEXT, role="reasoning")
        if reasoning.ends_at_call:
            specs[lark_text.R_ESCAPE] = TerminalSpec(name=lark_text.R_ESCAPE, kind=LOOKAHEAD)
    calls = data["calls"]
    rule_names = {r.origin.name for r in lk.rules} | {r.alias for r in lk.rules if r.alias}
    for key in ("rule", "region", "argument"):
        if key in calls and calls[key] not in rule_names:
            raise lines.error(f"calls.{key}: no rule named {calls[key]!r} in the Lark text", ("calls", key))
    _check_productive(lk, tool_lark, lines)
    used = {sym.name for r in lk.rules for sym in r.expansion}
    for name in yaml_terms:
        if name not in used:
            raise lines.error(f"terminal {name} is declared but no rule uses it", ("terminals", name))

    def error(message: str, terminal: str):
        raise lines.error(message, ("terminals", terminal) if terminal in yaml_terms else ("lark",))

    actions, gotos, rules, start_states, end_states, call_last = tables.parse_table(lk, set(specs), calls["rule"])
    plain = start_states.get(lark_text.PLAIN_START, start_states["start"])
    trig = tables.triggers(actions, specs, plain)
    if reasoning is not None and reasoning.ends_at_call:
        if not trig:
            raise lines.error("the reasoning grammar ends at a tool call, but no marker starts a call from content",
                              ("lark",))
        escape = tuple(t for t in trig if t in reasoning.ends_at) if reasoning.ends_at else trig
        if not escape:
            raise GrammarError(f"reasoning grammar {reasoning.name}: none of its ends_at markers "
                               f"({', '.join(reasoning.ends_at)}) starts a call in grammar {data['name']} "
                               f"(its call markers: {', '.join(trig)})", reasoning.file, 1)
        specs[lark_text.R_ESCAPE].lookahead = escape
    block_first = {t: encodings.get(spec.block).first(spec.prepared) for t, spec in specs.items() if spec.kind == BLOCK}
    built = tables.build_tables(actions, gotos, rules, start_states, end_states, specs, block_first, error,
                                 call_last, data["calls"]["rule"], trig)
    policies = dict(data.get("policies", {}))
    policies.setdefault("commit", "name")
    policies.setdefault("unknown_tool", "keep")
    policies.setdefault("name_pattern", DEFAULT_NAME_PATTERN)
    try:
        re.compile(policies["name_pattern"])
    except re.error as e:
        raise lines.error(f"policies.name_pattern: invalid regex: {e}", ("policies", "name_pattern")) from None
    try:
        rules = ebnf.read_rules(full, aliases=(calls["rule"],))
        rules_problem = None
    except ValueError as e:              # (the grammar still parses; only constraints are refused)
        rules, rules_problem = {}, str(e)
    stops: dict = {}
    for lex in built.lexers:
        if lex.text is not None:
            stops.setdefault(lex.text, set()).update(lex.stops)
    fingerprint = hashlib.sha256(json.dumps([data, reasoning.__dict__ if reasoning else None], sort_keys=True,
                                            default=str).encode()).hexdigest()
    return CompiledGrammar(
        name=data["name"], description=data["description"].strip(), models=tuple(data.get("models", ())),
        file=lines.file, lark=full, tool_lark=tool_lark, terminals=specs, tables=built,
        call_rule=calls["rule"], region_rule=calls.get("region"), argument_rule=calls.get("argument"),
        policies=policies, reasoning=reasoning, default_reasoning=data.get("reasoning"),
        whitespace=dict(data.get("whitespace", {})),
        example=data.get("example", ""), corpus=data.get("corpus"), triggers=trig,
        has_reasoning_start=lark_text.PLAIN_START in start_states, rules=rules, rules_problem=rules_problem,
        fingerprint=fingerprint, text_stops={t: tuple(sorted(v, key=lambda x: (-len(x), x))) for t, v in stops.items()})

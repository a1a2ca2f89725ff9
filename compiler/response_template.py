"""Importing a Hugging Face ``response_template`` (transformers >= 5.13) as a toolgram grammar.

A response template is a declarative spec of one assistant message: regions (``fields``) opened and closed
by literals or regexes, each read by a content parser (``text``, ``json``, ``xml-inline``, ``kv-lines`` ...)
and reshaped by a ``transform``.  This module *translates* a template into toolgram grammar data (the dict a
grammar file holds: Lark text, terminals with roles, ``calls``, ``policies``) and compiles that with the same
`compile_data` every bundled grammar goes through, so an imported template streams (arguments included),
reports segments, and yields constraints in every syntax, like a bundled grammar.

The translation is exact or it is refused: every open/close regex is taken apart (Python's regex parser)
into markers, whitespace runs and captures, and whatever has no linear streaming equivalent -- a lookahead,
a backreference, a value that is not a run ended by a marker, a field the OpenAI message has no place for
-- raises `GrammarError` naming the field path (``fields.tool_calls.open_pattern: ...``).  Where the
toolgram reading deliberately differs from the reference implementation (text is never dropped, content is
kept verbatim and joined across regions), docs/response-templates.md lists it.
"""
from __future__ import annotations

import json
import re as _stdre
from pathlib import Path

import regex
import yaml

try:  # Python >= 3.11
    from re import _constants as C
    from re import _parser as P
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as C
    import sre_parse as P

from toolgram.compiler import schema
from toolgram.compiler.build import compile_data
from toolgram.ir import CompiledGrammar
from toolgram.errors import GrammarError
from toolgram.compiler.source import load_source

SPEC_KEYS = {"version", "defaults", "fields", "start_anchor", "start_anchor_pattern"}
FIELD_KEYS = {"open", "open_pattern", "close", "close_pattern", "content", "content_args", "repeats", "join",
              "optional", "transform", "transform_each"}
CONTENT_PARSERS = {"text", "int", "float", "bool", "json", "json-lax", "xml-inline", "kv-lines"}
# (a bounded-depth value pattern is regular, but toolgram's value readers read text up to a marker, or nested
# literals at any depth: either reads other text than the pattern, so it is refused, not approximated)
VALUE_RUN_ONLY = ("group 'value' must be a lazy run such as (?P<value>.*?) ended by a literal marker (toolgram "
                  "streams a value as text up to that marker); a value with a pattern of its own (alternatives, "
                  "bounded bracket nesting...) is not compiled: reading nested values to any depth would read "
                  "other text than the pattern")
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
CALL_FIELD = "tool_calls"
CONTENT_FIELD = "content"
_PLACEHOLDER = _stdre.compile(r"\{(\w+(?:\.\w+)*)\}")
_WS_SRC = r"\s+"


def _err(path: str, message: str, source: str | None) -> GrammarError:
    return GrammarError(f"{path}: {message}" if path else message, source or "<response_template>")


# -- loading --------------------------------------------------------------------------------------------

def load(obj) -> tuple[dict, str | None, str | None]:
    """``(template, source, model_name)`` from a template dict, a JSON file (tokenizer_config.json or a bare
    template) or a model directory holding tokenizer_config.json."""
    if isinstance(obj, dict):
        if "response_template" in obj and "fields" not in obj:
            obj = obj["response_template"]
        return obj, None, None
    path = Path(obj)
    model = None
    if path.is_dir():
        model = path.name
        path = path / "tokenizer_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise GrammarError(f"cannot read: {e.strerror or e}", str(path)) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise GrammarError(f"not a JSON file: {e}", str(path)) from None
    if isinstance(data, dict) and "fields" not in data:
        if "response_template" not in data:
            raise GrammarError("no response_template in this file", str(path))
        data = data["response_template"]
        if model is None and path.name == "tokenizer_config.json":
            model = path.parent.name or None
    return data, str(path), model


# -- validation (the checks transformers makes, with field paths) ---------------------------------------

def _compile_anchor(field: dict, lit_key: str, pat_key: str, where: str, source):
    if lit_key in field and pat_key in field:
        raise _err(where, f"cannot have both {lit_key!r} and {pat_key!r}", source)
    if lit_key in field:
        raw = field[lit_key]
        lits = [raw] if isinstance(raw, str) else raw
        if not isinstance(lits, list) or not lits or not all(isinstance(s, str) and s for s in lits):
            raise _err(f"{where}.{lit_key}", "must be a non-empty string or a non-empty list of non-empty "
                       "strings", source)
        return ("lits", list(dict.fromkeys(lits)))
    if pat_key in field:
        src = field[pat_key]
        if not isinstance(src, str):
            raise _err(f"{where}.{pat_key}", "must be a string (a regex)", source)
        try:
            regex.compile(src, regex.DOTALL)
        except regex.error as e:
            raise _err(f"{where}.{pat_key}", f"invalid regex: {e}", source) from None
        return ("regex", src)
    return None


def validate(spec, source=None) -> dict:
    """Check a template as transformers' loader does; return ``{name: field dict}`` plus anchors."""
    if not isinstance(spec, dict):
        raise _err("", f"a response_template must be a dict, not {type(spec).__name__}", source)
    if spec.get("version", 1) != 1:
        raise _err("version", f"unsupported version {spec.get('version')!r} (1 is known)", source)
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise _err("", f"unknown keys {sorted(unknown)}", source)
    if not isinstance(spec.get("defaults", {}), dict):
        raise _err("defaults", "must be a dict", source)
    fields = spec.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise _err("fields", "must be a non-empty dict", source)
    anchor = _compile_anchor(spec, "start_anchor", "start_anchor_pattern", "", source)
    if anchor is None:
        raise _err("start_anchor", "a template must define 'start_anchor' or 'start_anchor_pattern'", source)
    out = {}
    implicit = []
    for name, f in fields.items():
        where = f"fields.{name}"
        if not isinstance(f, dict):
            raise _err(where, "must be a dict", source)
        unknown = set(f) - FIELD_KEYS
        if unknown:
            raise _err(where, f"unknown keys {sorted(unknown)}", source)
        content = f.get("content", "text")
        if content not in CONTENT_PARSERS:
            raise _err(f"{where}.content", f"unknown content parser {content!r} (known: "
                       f"{', '.join(sorted(CONTENT_PARSERS))})", source)
        if not isinstance(f.get("content_args", {}), dict):
            raise _err(f"{where}.content_args", "must be a dict", source)
        for key in ("repeats", "optional", "transform_each"):
            if key in f and not isinstance(f[key], bool):
                raise _err(f"{where}.{key}", "must be true or false", source)
        if f.get("join") is not None and (not isinstance(f["join"], str) or not f.get("repeats")):
            raise _err(f"{where}.join", "must be a string, and needs 'repeats': true", source)
        if f.get("transform_each") and f.get("transform") is None:
            raise _err(f"{where}.transform_each", "is set but there is no transform", source)
        _check_transform(f.get("transform"), f"{where}.transform", source)
        op = _compile_anchor(f, "open", "open_pattern", where, source)
        cl = _compile_anchor(f, "close", "close_pattern", where, source)
        groups = set()
        for a in (op, cl):
            if a and a[0] == "regex":
                groups |= set(regex.compile(a[1], regex.DOTALL).groupindex)
        if groups and f.get("transform") is None:
            raise _err(where, f"open_pattern/close_pattern capture {sorted(groups)} but the field has no "
                       f"transform to use them", source)
        if op is None:
            implicit.append(name)
        out[name] = dict(f, _open=op, _close=cl, _groups=groups)
    if len(implicit) > 1:
        raise _err("fields", f"at most one field may have no open anchor (the implicit field); found "
                   f"{', '.join(implicit)}", source)
    return {"fields": out, "implicit": implicit[0] if implicit else None, "anchor": anchor}


def _check_transform(t, where, source) -> None:
    if isinstance(t, dict):
        for k, v in t.items():
            _check_transform(v, f"{where}.{k}", source)
    elif isinstance(t, list):
        for i, v in enumerate(t):
            _check_transform(v, f"{where}[{i}]", source)
    elif isinstance(t, str) and _PLACEHOLDER.search(t) and not _PLACEHOLDER.fullmatch(t):
        raise _err(where, f"{t!r} mixes a {{placeholder}} with literal text; only whole-string placeholders "
                   f"are supported", source)


# -- regexes taken apart --------------------------------------------------------------------------------

_CATEGORIES = {C.CATEGORY_DIGIT: r"\d", C.CATEGORY_NOT_DIGIT: r"\D", C.CATEGORY_SPACE: r"\s",
               C.CATEGORY_NOT_SPACE: r"\S", C.CATEGORY_WORD: r"\w", C.CATEGORY_NOT_WORD: r"\W"}


class _Refuse(Exception):
    pass


def _esc_class(c: int) -> str:
    ch = chr(c)
    return "\\" + ch if ch in "\\]^-[" else (r"\n" if ch == "\n" else r"\t" if ch == "\t" else ch)


def _esc(ch: str) -> str:
    return {"\n": r"\n", "\t": r"\t", "\r": r"\r"}.get(ch) or regex.escape(ch)


def _unparse(items) -> str:
    """Regex source for a parsed (sub)pattern, for the constructs a token pattern may use."""
    out = []
    for op, av in items:
        if op is C.LITERAL:
            out.append(_esc(chr(av)))
        elif op is C.NOT_LITERAL:
            out.append("[^" + _esc_class(av) + "]")
        elif op is C.ANY:
            out.append(r"[\s\S]")
        elif op is C.CATEGORY:
            out.append(_CATEGORIES[av])
        elif op is C.IN:
            parts = []
            neg = False
            for iop, iav in av:
                if iop is C.NEGATE:
                    neg = True
                elif iop is C.LITERAL:
                    parts.append(_esc_class(iav))
                elif iop is C.RANGE:
                    parts.append(_esc_class(iav[0]) + "-" + _esc_class(iav[1]))
                elif iop is C.CATEGORY:
                    parts.append(_CATEGORIES[iav])
                else:
                    raise _Refuse(f"a character class with {iop}")
            out.append("[" + ("^" if neg else "") + "".join(parts) + "]")
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = av
            inner = _unparse(body)
            if not (len(body) == 1 and body[0][0] in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.CATEGORY, C.IN)):
                inner = f"(?:{inner})"
            hi_s = "" if hi is C.MAXREPEAT else str(hi)
            q = {(0, ""): "*", (1, ""): "+", (0, "1"): "?"}.get((lo, hi_s), "{%d,%s}" % (lo, hi_s))
            out.append(inner + q + ("?" if op is C.MIN_REPEAT else ""))
        elif op is C.SUBPATTERN:
            out.append(f"(?:{_unparse(av[-1])})")
        elif op is C.BRANCH:
            out.append("(?:" + "|".join(_unparse(b) for b in av[1]) + ")")
        else:
            raise _Refuse(f"regex construct {str(op).lower()}")
    return "".join(out)


def _is_class(item) -> bool:
    return item[0] in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.CATEGORY, C.IN)


def _class_matches(item, ch: str) -> bool:
    return regex.fullmatch(_unparse([item]), ch, regex.DOTALL) is not None


def _is_space_item(item) -> bool:
    """A whitespace-only repeat such as ``\\s*``, ``\\s+``, ``[ \\t]*`` or ``\\n*``."""
    op, av = item
    if op not in (C.MAX_REPEAT, C.MIN_REPEAT) or len(av[2]) != 1 or not _is_class(av[2][0]):
        return False
    return _unparse(av[2]) in (r"\s", r"[\s]")     # (other whitespace classes stay exact patterns)


# Units: ("lit", text) | ("ws", optional) | ("pat", src, optional) | ("group", name, items, lazy_run)
#        | ("alt", [[units]...], optional) | ("end",)

def _units(items, where: str, names: dict):
    units = []
    i = 0
    items = list(items)
    while i < len(items):
        op, av = items[i]
        if op is C.LITERAL:
            units.append(("lit", chr(av)))
        elif op is C.AT:
            if av in (C.AT_END, C.AT_END_STRING):
                units.append(("end",))
            elif av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
                raise _Refuse("a '^' anchor (the template's regexes are searched anywhere in the text)")
            else:
                raise _Refuse("a word-boundary assertion (\\b, \\B): it looks at text on both sides of a "
                              "token boundary")
        elif op in (C.ASSERT, C.ASSERT_NOT):
            raise _Refuse("a lookahead or lookbehind (e.g. (?=...)): a streaming parser decides each token "
                          "from the text read so far, and an unbounded lookahead would hold back all text "
                          "until it resolves")
        elif op is C.GROUPREF or op is C.GROUPREF_EXISTS:
            raise _Refuse("a backreference or conditional group")
        elif op is C.SUBPATTERN:
            group, add, sub, body = av
            if add & (C.SRE_FLAG_IGNORECASE | C.SRE_FLAG_MULTILINE) or sub:
                raise _Refuse("inline flags (?i)/(?m) inside a pattern")
            name = names.get(group) if group else None
            if name is not None:
                units.append(("group", name, list(body)))
            else:
                units.extend(_units(body, where, names))
        elif op is C.BRANCH:
            alts = [_units(b, where, names) for b in av[1]]
            units.append(("alt", alts, False))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = av
            if _is_space_item(items[i]) and op is C.MAX_REPEAT and hi is C.MAXREPEAT:
                units.append(("ws", lo == 0))
            elif len(body) == 1 and _is_class(body[0]):
                # a token is never empty: x* is an optional x+, x{0,n} an optional x{1,n}
                units.append(("pat", _unparse([(op, (max(lo, 1), hi, body))]), lo == 0, op is C.MIN_REPEAT))
            elif (lo, hi) == (0, 1):
                sub = _units(body, where, names)
                units.append(("alt", [sub], True))
            else:
                raise _Refuse("a repeated group: nesting and unbounded repetition of several tokens have no "
                              "bounded streaming equivalent")
        elif _is_class((op, av)):
            units.append(("pat", _unparse([(op, av)]), False, False))
        else:
            raise _Refuse(f"regex construct {str(op).lower()}")
        i += 1
    return units


def parse_regex(src: str, where: str, source) -> list:
    """The units of a regex, or a GrammarError naming ``where``."""
    try:
        parsed = P.parse(src, _stdre.DOTALL)
    except Exception as e:
        raise _err(where, f"uses regex syntax toolgram cannot translate ({e}); only the constructs Python's "
                   f"re module reads are supported", source) from None
    names = {v: k for k, v in parsed.state.groupdict.items()}
    if parsed.state.flags & (_stdre.IGNORECASE | _stdre.MULTILINE):
        raise _err(where, "case-insensitive or multiline flags are not supported", source)
    try:
        return _merge(_units(list(parsed), where, names))
    except _Refuse as e:
        raise _err(where, f"{e}", source) from None


def _merge(units: list) -> list:
    out = []
    for u in units:
        if u[0] == "lit" and out and out[-1][0] == "lit":
            out[-1] = ("lit", out[-1][1] + u[1])
        elif u[0] == "alt":
            out.append(("alt", [_merge(a) for a in u[1]], u[2]))
        else:
            out.append(u)
    # Python's regex parser factors a common prefix out of alternatives ("<|a|>|<|b|>" -> "<|" (a|>|b|>));
    # markers must stay whole (a text run ends where a whole marker begins), so fold the prefix back in
    folded = []
    for u in out:
        texts = _literal_alts([u]) if u[0] == "alt" and not u[2] else None
        if texts and folded and folded[-1][0] == "lit" and all(texts):
            prev = folded.pop()[1]
            u = ("alt", [[("lit", prev + t)] for t in texts], False)
        folded.append(u)
    out = folded
    # a whitespace run followed by a whitespace literal (\s*\n): one pattern, as the regex backtracks
    merged = []
    for u in out:
        if u[0] == "lit" and merged and merged[-1][0] == "ws" and u[1][:1].isspace():
            head = len(u[1]) - len(u[1].lstrip())
            src = _WS_SRC[:-1] + "*" + "".join(_esc(ch) for ch in u[1][:head])
            merged[-1] = ("pat", src, False, False)
            if u[1][head:]:
                merged.append(("lit", u[1][head:]))
            continue
        merged.append(u)
    return merged


def _literal_alts(units) -> list[str] | None:
    """The texts of a unit list made of literals and literal alternatives only, or None."""
    texts = [""]
    for u in units:
        if u[0] == "lit":
            texts = [t + u[1] for t in texts]
        elif u[0] == "alt":
            alts = []
            for a in u[1]:
                sub = _literal_alts(a)
                if sub is None:
                    return None
                alts.extend(sub)
            if u[2]:
                alts.append("")
            texts = [t + a for t in texts for a in alts]
            if len(texts) > 64:
                return None
        else:
            return None
    return texts


# -- the translation ------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, source):
        self.source = source
        self.terms: dict = {}
        self.paths: dict = {}          # terminal -> field path (to name compile errors)
        self.rules: list = []
        self.n = 0
        self.name_pattern = None
        self.uses_ws = False
        self.markers: dict = {}
        self.named = False         # write literals as named TG_ markers (text regions)

    def term(self, prefix: str, opts: dict, path: str, lark_def: str | None = None) -> str:
        self.n += 1
        name = f"{prefix}_{self.n}"
        if lark_def is not None:
            self.rules.append(f"{name}: {lark_def}")
        if opts:
            self.terms[name] = opts
        self.paths[name] = path
        return name

    def marker(self, text: str) -> str:
        """A named terminal for a marker of a text region (reasoning, content closers): the TG_ prefix keeps
        it out of the call triggers, so tool_choice "none" does not ban it."""
        name = self.markers.get(text)
        if name is None:
            name = self.markers[text] = f"TG_TPL_{len(self.markers) + 1}"
            self.rules.append(f"{name}: {_lit(text)}")
        return name

    def ws(self) -> str:
        self.uses_ws = True
        return "WS"


def _lit(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _regex_lit(src: str) -> str:
    return "/" + src.replace("/", "\\/") + "/"


def _emit(units, b: _Builder, path: str, groups: dict, follows_text: bool = False) -> str:
    """Lark text for units; ``groups``: what a named group becomes ({name: callable(items, path) -> lark})."""
    parts = []
    for k, u in enumerate(units):
        kind = u[0]
        if kind == "lit":
            parts.append(b.marker(u[1]) if b.named else _lit(u[1]))
        elif kind == "end":
            continue
        elif kind == "ws":
            if follows_text and k == 0:
                continue          # the text before keeps its whitespace (a text run ends at a marker)
            parts.append(b.ws() + ("?" if u[1] else ""))
        elif kind == "pat":
            src, optional, lazy = u[1], u[2], u[3]
            if lazy:
                raise _Refuse(f"a lazy run {src!r} outside a named group has no role (it would be markup text)")
            t = b.term("P", {}, path, _regex_lit(src))
            parts.append(t + "?" if optional else t)
        elif kind == "group":
            name, items = u[1], u[2]
            if name not in groups:
                raise _Refuse(f"named group {name!r}: toolgram reads a call's name, id and arguments; a "
                              f"group named {name!r} has no place in the result")
            nxt = next((x for x in units[k + 1:] if x[0] != "end"), None)
            parts.append(groups[name](items, nxt))
        elif kind == "alt":
            alts = [x for x in u[1] if not (len(x) == 1 and x[0][0] == "end")]
            optional = u[2] or len(alts) < len(u[1])
            texts = [_emit(a, b, path, groups, follows_text and k == 0) for a in alts if a]
            if len(texts) < len(alts):
                optional = True
            if not texts:
                continue
            parts.append("(" + " | ".join(t or '""' for t in texts) + ")" + ("?" if optional else ""))
    return " ".join(p for p in parts if p)


def _strip_lead_ws(units):
    """An anchor's leading whitespace run is left to the text before it (content keeps its whitespace)."""
    while units and units[0][0] == "ws":
        units = units[1:]
    return units


def _first_is_literal(units) -> bool:
    if not units:
        return False
    u = units[0]
    if u[0] == "lit":
        return True
    if u[0] == "alt" and not u[2]:
        return all(_first_is_literal(a) for a in u[1] if a and a[0][0] != "end")
    return False


def _anchor_units(anchor, where: str, source) -> list:
    kind, val = anchor
    if kind == "lits":
        return [("alt", [[("lit", s)] for s in val], False)] if len(val) > 1 else [("lit", val[0])]
    return parse_regex(val, where, source)


def _drop_end(units) -> list:
    """A closer's ``$`` alternatives: the end of the text ends an open region anyway."""
    out = []
    for u in units:
        if u[0] == "alt":
            alts = [a for a in u[1] if not _only_end(a)]
            if alts:
                out.append(("alt", alts, u[2]))
        elif u[0] != "end":
            out.append(u)
    return out


def _only_end(units) -> bool:
    return all(u[0] == "end" or (u[0] == "alt" and all(_only_end(a) for a in u[1])) for u in units)


def _role(name: str) -> str | None:
    if name == CONTENT_FIELD:
        return "content"
    if name in REASONING_FIELDS:
        return "reasoning"
    return None


def _name_group(b: _Builder, where: str, kind: str):
    """A named group that carries the call's name (or id)."""

    def make(items, nxt):
        if len(items) == 1 and items[0][0] in (C.MAX_REPEAT, C.MIN_REPEAT) and len(items[0][1][2]) == 1 \
                and _is_class(items[0][1][2][0]):
            lo, hi, body = items[0][1]
            lazy = items[0][0] is C.MIN_REPEAT
            follow = nxt[1][0] if nxt is not None and nxt[0] == "lit" else None
            if lazy and follow is not None and not _class_matches(body[0], follow):
                lazy = False          # a lazy class that cannot cross the marker after it: the same as greedy
            if not lazy:
                src = _unparse([(C.MAX_REPEAT, (max(lo, 1), hi, body))])
                return b.term(kind.upper(), {kind: True}, where, _regex_lit(src))
            if follow is None:
                raise _Refuse(f"group {kind!r} is a lazy run that no marker ends")
            if kind == "name":
                b.name_pattern = _unparse([(C.MAX_REPEAT, (max(lo, 1), hi, body))])
            return b.term(kind.upper(), {"text": True, kind: True, "max_length": 256}, where)
        try:
            src = _unparse(items)
        except _Refuse as e:
            raise _Refuse(f"group {kind!r}: {e}") from None
        if regex.fullmatch(src, "", regex.DOTALL) is not None:
            raise _Refuse(f"group {kind!r} may match the empty text")
        return b.term(kind.upper(), {kind: True}, where, _regex_lit(src))
    return make


def _transform_plan(f: dict, where: str, source) -> dict:
    """Where a call's name, arguments and id come from, read off the field's transform."""
    t = f.get("transform")
    if not isinstance(t, dict):
        raise _err(f"{where}.transform", "a tool_calls field needs a transform shaping each call "
                   "({\"type\": \"function\", \"function\": ...})", source)
    fn = t.get("function")
    plan = {"name": None, "args": None, "id": None, "each": bool(f.get("transform_each"))}
    for k, v in t.items():
        if k in ("type", "function", "id"):
            continue
        if isinstance(v, str) and _PLACEHOLDER.fullmatch(v):
            raise _err(f"{where}.transform.{k}", "toolgram's calls carry type, id and function (name, "
                       "arguments); this key has no place", source)
    idv = t.get("id")
    if isinstance(idv, str) and _PLACEHOLDER.fullmatch(idv):
        plan["id"] = _PLACEHOLDER.fullmatch(idv).group(1)
    whole = "{content}" if not plan["each"] else None
    if isinstance(fn, str) and fn == whole:
        plan["name"], plan["args"] = "content.name", "content.arguments"
    elif isinstance(fn, dict):
        for k, v in fn.items():
            if k not in ("name", "arguments") and isinstance(v, str) and _PLACEHOLDER.fullmatch(v):
                raise _err(f"{where}.transform.function.{k}", "a function has a name and arguments only", source)
        for k in ("name", "arguments"):
            v = fn.get(k)
            m = _PLACEHOLDER.fullmatch(v) if isinstance(v, str) else None
            if m is None:
                raise _err(f"{where}.transform.function.{k}", "must be a placeholder such as "
                           f"\"{{{'name' if k == 'name' else 'content'}}}\"", source)
            plan["name" if k == "name" else "args"] = m.group(1)
    else:
        raise _err(f"{where}.transform.function", "must be \"{content}\" or a dict with name and arguments",
                   source)
    if plan["each"]:
        for k in ("name", "args", "id"):
            if plan[k] is not None:
                plan[k] = "content." + plan[k]
    return plan


def _json_block_opts(f, where, source) -> dict:
    args = f.get("content_args", {})
    unknown = set(args) - {"unquoted_keys", "string_delims", "allow_non_json", "strip"}
    if unknown:
        raise _err(f"{where}.content_args", f"unknown arguments {sorted(unknown)} for the json parser", source)
    delims = args.get("string_delims") or []
    if f.get("content", "json") == "json-lax":
        return {"block": "literal", "syntax": "relaxed", "bare_keys": True,
                "quotes": ['"', "'"] + [d[0] for d in delims if isinstance(d, list) and len(d) == 2]}
    if not delims and not args.get("unquoted_keys"):
        return {"block": "json"}
    for i, d in enumerate(delims):
        if not (isinstance(d, list) and len(d) == 2 and all(isinstance(x, str) and x for x in d)):
            raise _err(f"{where}.content_args.string_delims[{i}]", "must be an [open, close] pair", source)
        if d[0] != d[1]:
            raise _err(f"{where}.content_args.string_delims[{i}]", "toolgram's literal block needs the same "
                       "delimiter on both sides of a string", source)
    return {"block": "literal", "syntax": "relaxed", "bare_keys": bool(args.get("unquoted_keys")),
            "quotes": [d[0] for d in delims] + ['"'],
            "words": {"true": True, "false": False, "null": None}}


def _dialect_args(opts: dict, b: _Builder, where: str) -> tuple[str, str]:
    """A JSON object in a dialect (bare keys, custom string delimiters) as key/value pairs whose values a
    relaxed literal block reads (the block reads values; the object's keys are the grammar's)."""
    value = dict(opts, role="value")
    path = f"{where}.content_args"
    v = b.term("VALUE", value, path)
    qkey = b.term("KEY", {"text": True, "role": "key", "max_length": 256}, path)
    keys = [f"{_lit(q)} {qkey} {_lit(q)}" for q in opts["quotes"]]
    if opts.get("bare_keys"):
        keys.append(b.term("KEY", {"role": "key"}, path, _regex_lit(r"[A-Za-z0-9_$.\-]+")))
    ws = b.ws()
    b.rules.append(f"arg: ({' | '.join(keys)}) {ws}? \":\" {ws}? {v} {ws}?")
    return f"\"{{\" {ws}? (arg (\",\" {ws}? arg)* (\",\" {ws}?)?)? \"}}\" {ws}?", "arg"


def _value_type(vp, where, source) -> str | None:
    """How an xml-inline / kv-lines value is typed: None (text, typed by the tool schema) or "json"."""
    if vp is None:
        return None
    if not isinstance(vp, dict):
        raise _err(where, "must be {name, args}", source)
    name = vp.get("name", "text")
    if name == "text":
        return None
    if name in ("json", "json-lax", "int", "float", "bool"):
        args = vp.get("args", {}) or {}
        if name in ("json", "json-lax") and (args.get("string_delims") or args.get("unquoted_keys")):
            raise _err(where, "a value parsed with json dialect options (string_delims, unquoted_keys) is not "
                       "a run of text; toolgram cannot stream it as a value", source)
        return "json"
    raise _err(f"{where}.name", f"value parser {name!r} cannot type a single value", source)


def _xml_args(f, b: _Builder, where: str, source, close_first=()) -> tuple[str, str]:
    args = f.get("content_args", {})
    unknown = set(args) - {"tag_pattern", "value_parser", "merge_duplicates"}
    if unknown:
        raise _err(f"{where}.content_args", f"unknown arguments {sorted(unknown)} for xml-inline", source)
    tp = args.get("tag_pattern")
    if not isinstance(tp, str):
        raise _err(f"{where}.content_args.tag_pattern", "is required (a regex with groups key and value)", source)
    pw = f"{where}.content_args.tag_pattern"
    try:
        g = regex.compile(tp, regex.DOTALL).groupindex
    except regex.error as e:
        raise _err(pw, f"invalid regex: {e}", source) from None
    if "key" not in g or "value" not in g:
        raise _err(pw, "needs named groups key and value", source)
    vp = args.get("value_parser")
    units = parse_regex(tp, pw, source)
    vi = next((i for i, u in enumerate(units) if u[0] == "group" and u[1] == "value"), None)
    if vi is None:
        raise _err(pw, "group 'value' must stand at the top level of the pattern, not inside an alternative",
                   source)
    items = units[vi][2]
    if not (len(items) == 1 and items[0][0] is C.MIN_REPEAT and len(items[0][1][2]) == 1):
        raise _err(pw, VALUE_RUN_ONLY, source)
    vtype = _value_type(vp, f"{where}.content_args.value_parser", source)
    # whitespace around the value is the value's strip (the regex trims it)
    strip = False
    if vi + 1 < len(units) and units[vi + 1][0] == "ws":
        units = units[:vi + 1] + units[vi + 2:]
        strip = True
    if vi > 0 and units[vi - 1][0] == "ws":
        units = units[:vi - 1] + units[vi:]
        vi -= 1
        strip = True
    if isinstance(vp, dict) and (vp.get("args") or {}).get("strip", True):
        strip = True              # the text (or json) value parser strips the value
    if vtype == "json" and (vi == 0 or units[vi - 1][0] != "lit"):
        raise _err(pw, "a typed value_parser needs a marker right before the value", source)

    def key(items, nxt):
        follow = nxt[1][0] if nxt is not None and nxt[0] == "lit" else None
        if len(items) == 1 and items[0][0] in (C.MAX_REPEAT, C.MIN_REPEAT) and _is_class(items[0][1][2][0]) \
                and len(items[0][1][2]) == 1:
            lo, hi, body = items[0][1]
            if follow is not None and not _class_matches(body[0], follow) or items[0][0] is C.MAX_REPEAT:
                return b.term("KEY", {"role": "key"}, pw,
                              _regex_lit(_unparse([(C.MAX_REPEAT, (max(lo, 1), hi, body))])))
            return b.term("KEY", {"text": True, "role": "key", "max_length": 256}, pw)
        raise _Refuse("group 'key' must be a run of one character class (e.g. [^>\\n]+)")

    def value(items, nxt):
        if nxt is None or nxt[0] != "lit":
            raise _Refuse("group 'value' must be followed by a literal marker that ends it")
        if len(items) == 1 and items[0][0] is C.MIN_REPEAT and len(items[0][1][2]) == 1:
            body = items[0][1][2][0]
            if body[0] is C.ANY or (_is_class(body) and _class_matches(body, nxt[1][0])):
                opts = {"text": True, "role": "value"}
                if strip:
                    opts["strip"] = "whitespace"
                return b.term("VALUE", opts, pw) + "?"
        raise _Refuse(VALUE_RUN_ONLY)

    try:
        if vtype == "json":
            lit = units[vi - 1][1]
            before = units[:vi - 1]
            marker = b.term("VMARK", {"arg_type": "json"}, pw, _lit(lit))
            head = _emit(before, b, pw, {"key": key, "value": value})
            tail = _emit(units[vi:], b, pw, {"key": key, "value": value})
            body = f"{head} {marker} {tail}"
        else:
            body = _emit(units, b, pw, {"key": key, "value": value})
    except _Refuse as e:
        raise _err(pw, str(e), source) from None
    b.rules.append(f"arg: {body} {b.ws()}?")
    # text between tags is skipped by the reference (it finds tags with finditer): a markup run that stops
    # where a tag or the region's closer may begin
    stops = [regex.escape(u[1]) for u in units[:1] if u[0] == "lit"] + list(close_first)
    skip = "(?:(?!" + "|".join(stops) + r")[\s\S])+"
    t = b.term("SKIP", {}, f"{where}.content_args.tag_pattern", _regex_lit(skip))
    return f"{b.ws()}? (arg | {t})*", "arg"


def _closer_heads(f, where, source) -> list[str]:
    """Regexes of what ends a region's tag list: its closer (the reference finds the closer first and reads
    tags before it, so text between tags may hold anything but a whole closer)."""
    cl = f["_close"]
    if cl is None:
        return []
    if cl[0] == "lits":
        return [regex.escape(x) for x in cl[1]]
    return [f"(?:{cl[1]})"]


def _kv_args(f, b: _Builder, where: str, source) -> tuple[str, str]:
    args = f.get("content_args", {})
    unknown = set(args) - {"line_sep", "kv_sep", "strip", "value_parser"}
    if unknown:
        raise _err(f"{where}.content_args", f"unknown arguments {sorted(unknown)} for kv-lines", source)
    line_sep, kv_sep = args.get("line_sep", "\n"), args.get("kv_sep", ":")
    for k, v in (("line_sep", line_sep), ("kv_sep", kv_sep)):
        if not isinstance(v, str) or not v:
            raise _err(f"{where}.content_args.{k}", "must be a non-empty string", source)
    vtype = _value_type(args.get("value_parser"), f"{where}.content_args.value_parser", source)
    strip = args.get("strip", True)
    key_opts = {"text": True, "role": "key", "max_length": 256}
    val_opts = {"text": True, "role": "value"}
    if strip:
        val_opts["strip"] = "whitespace"
    k = b.term("KEY", key_opts, f"{where}.content_args")
    v = b.term("VALUE", val_opts, f"{where}.content_args")
    sep = b.term("KVSEP", {"arg_type": "json"} if vtype == "json" else {}, f"{where}.content_args.kv_sep",
                 _lit(kv_sep))
    b.rules.append(f"arg: {k} {sep} {v}?")
    return f"(arg {_lit(line_sep)})* arg?", "arg"


def translate(spec, prefix: str | None = None, *, name: str = "response_template", source=None,
              models=()) -> tuple[dict, dict]:
    """Grammar data (the dict of a grammar file) for a template; and the terminal -> field path map."""
    v = validate(spec, source)
    fields, implicit = v["fields"], v["implicit"]
    b = _Builder(source)
    items: list[str] = []
    tails: list[str] = []
    region_rules: dict = {}          # field -> (open_lark, body_lark, close_lark or None, trailing ws)
    call_field = None
    for fname, f in fields.items():
        where = f"fields.{fname}"
        role = _role(fname)
        if fname == CALL_FIELD:
            call_field = fname
            continue
        if role is None:
            raise _err(where, "toolgram's result holds content, reasoning_content and tool_calls; a field "
                       f"named {fname!r} has no place in it", source)
        if f.get("content", "text") != "text":
            raise _err(f"{where}.content", f"a {role} field is read as text; parser {f.get('content')!r} "
                       "has no place in toolgram's result", source)
        t = f.get("transform")
        if t is not None and t != "{content}":
            raise _err(f"{where}.transform", "a text field's value is its text; only \"{content}\" is "
                       "supported", source)
    if implicit is not None:
        items.append(b.term("TEXT", {"text": True, "role": _role(implicit)}, f"fields.{implicit}"))
    else:
        # no implicit field: the reference drops text outside every region; here it is markup (kept in the
        # segments), read as a run that stops where any opener may begin
        heads = []
        for fname, f in fields.items():
            op = f["_open"]
            units = _strip_lead_ws(_anchor_units(
                op, f"fields.{fname}.{'open' if op[0] == 'lits' else 'open_pattern'}", source))
            heads += [t for t in (_literal_alts(units[:1]) or []) if t]
        sink = "(?:(?!" + "|".join(regex.escape(x) for x in sorted(set(heads))) + r")[\s\S])+"
        items.append(b.term("OUTSIDE", {}, "fields", _regex_lit(sink)))

    def close_parts(f, where, after_text: bool):
        cl = f["_close"]
        if cl is None:
            return None
        key = "close" if cl[0] == "lits" else "close_pattern"
        units = _anchor_units(cl, f"{where}.{key}", source)
        if _only_end(units):
            return None
        units = _drop_end(units)
        if after_text:
            units = _strip_lead_ws(units)
            if not _first_is_literal(units):
                raise _err(f"{where}.{key}", "after text the closer must begin with a literal marker (text "
                           "runs until a marker it can see)", source)
        try:
            return _emit(units, b, f"{where}.{key}", {}, follows_text=after_text)
        except _Refuse as e:
            raise _err(f"{where}.{key}", str(e), source) from None

    def open_parts(f, where, groups):
        op = f["_open"]
        key = "open" if op[0] == "lits" else "open_pattern"
        units = _strip_lead_ws(_anchor_units(op, f"{where}.{key}", source))
        if not _first_is_literal(units):
            raise _err(f"{where}.{key}", "an opener must begin with a literal marker (the text before it runs "
                       "until a marker it can see)", source)
        try:
            return _emit(units, b, f"{where}.{key}", groups)
        except _Refuse as e:
            raise _err(f"{where}.{key}", str(e), source) from None

    # the implicit field's close and the text regions: markup between texts, not call markers
    b.named = True
    closes_calls = False
    if implicit is not None:
        f = fields[implicit]
        c = close_parts(f, f"fields.{implicit}", True)
        if c:
            b.rules.append(f"implicit_close: {c}")
            # the closer ends a text run or the calls (it is the end of the turn): an output may not start
            # with it, so a required constraint cannot end the turn before its call
            items[0] = f"{items[0]} implicit_close?"
            closes_calls = True
    # text regions
    for fname, f in fields.items():
        if fname in (implicit, CALL_FIELD):
            continue
        where = f"fields.{fname}"
        body = b.term("TEXT", {"text": True, "role": _role(fname)}, where)
        o = open_parts(f, where, {})
        c = close_parts(f, where, True)
        rule = f"region_{len(region_rules) + 1}"
        region_rules[fname] = (rule, body, c)
        if c:
            b.rules.append(f"{rule}: {o} {body}? {c}")
            items.append(rule)
        b.rules.append(f"{rule}_open: {o} {body}?")
        tails.append(f"{rule}_open")
    b.named = False
    calls = {"rule": "call"}
    # a region opens only when its whole opener matched: a call is certain when its arguments start
    policies = {"commit": "arguments"}
    if call_field is not None:
        f = fields[call_field]
        where = f"fields.{call_field}"
        plan = _transform_plan(f, where, source)
        content = f.get("content", "text")
        groups = {}
        for kind in ("name", "id"):
            g = plan[kind]
            if g is None or "." in g:
                continue
            if g not in f["_groups"]:
                raise _err(f"{where}.transform", f"{{{g}}} is not a named group of open_pattern/close_pattern",
                           source)
            groups[g] = _name_group(b, f"{where}.open_pattern", kind)
        unused = f["_groups"] - set(groups)
        if unused:
            raise _err(where, f"pattern group(s) {sorted(unused)} are not used as a call's name or id", source)
        o = open_parts(f, where, groups)
        # the arguments
        json_call = plan["name"] is not None and plan["name"].startswith("content.")
        if json_call:
            if content not in ("json",) or f.get("content_args", {}).get("string_delims") or \
                    f.get("content_args", {}).get("unquoted_keys"):
                raise _err(f"{where}.content", "a call whose name comes from the content must be JSON "
                           "(without dialect options)", source)
            if plan["args"] is None or not plan["args"].startswith("content."):
                raise _err(f"{where}.transform.function.arguments", "must come from the content too "
                           "(\"{content.KEY}\")", source)
            opts = {"block": "json_call", "name_keys": [plan["name"].split(".", 1)[1]],
                    "arguments_keys": [plan["args"].split(".", 1)[1]]}
            if plan["id"] is not None:
                if not plan["id"].startswith("content."):
                    raise _err(f"{where}.transform.id", "must come from the content (\"{content.KEY}\")",
                               source)
                opts["id_keys"] = [plan["id"].split(".", 1)[1]]
            if any("." in x.split(".", 1)[1] for x in (plan["name"], plan["args"])):
                raise _err(f"{where}.transform.function", "nested keys ({content.a.b}) are not supported",
                           source)
            opts["arguments_as_string"] = True
            args_lark = b.term("CALL", opts, f"{where}.content") + " " + b.ws() + "?"
        else:
            if plan["name"] is None:
                raise _err(f"{where}.transform.function.name", "the call's name must come from a pattern "
                           "group or the content", source)
            if plan["args"] != "content":
                raise _err(f"{where}.transform.function.arguments", "must be \"{content}\"", source)
            if content in ("json", "json-lax"):
                opts = _json_block_opts(f, where, source)
                if opts["block"] == "json":
                    args_lark = b.term("ARGS", opts, f"{where}.content") + " " + b.ws() + "?"
                else:
                    args_lark, calls["argument"] = _dialect_args(opts, b, where)
                if f.get("content_args", {}).get("allow_non_json"):
                    pass      # non-JSON arguments: a malformed call in toolgram (content), text in the spec
            elif content == "xml-inline":
                args_lark, calls["argument"] = _xml_args(f, b, where, source, _closer_heads(f, where, source))
            elif content == "kv-lines":
                args_lark, calls["argument"] = _kv_args(f, b, where, source)
            else:
                raise _err(f"{where}.content", f"parser {content!r} does not read arguments", source)
        c = close_parts(f, where, not json_call and content in ("xml-inline", "kv-lines"))
        if plan["each"]:
            if not json_call:
                raise _err(f"{where}.transform_each", "needs a JSON list of call objects", source)
            b.rules.append(f"call: {args_lark}")
            body = f"\"[\" WS? call (WS? \",\" WS? call)* WS? \"]\""
            b.uses_ws = True
            b.rules.append(f"calls: {o} {body} {c or ''}".rstrip())
            calls["region"] = "calls"
        else:
            # whitespace after a call's closer is a separator (the reference's patterns swallow it on one
            # side or the other), so that consecutive calls are one region for constraints; it stays out of
            # the call rule, so that a call ends at its closer (its last argument fragment is sent there, not
            # when the next token arrives)
            if c:
                c = c[:-len("WS?")].rstrip() if c.endswith("WS?") else c
                ws = b.ws()
                b.rules.append(f"call: {o} {args_lark} {c}".rstrip())
                b.rules.append(f"calls: call ({ws}? call)* {ws}?")
            else:
                b.rules.append(f"call: {o} {args_lark}".rstrip())
                b.rules.append("calls: call+")
            calls["region"] = "calls"
        items.append("calls implicit_close?" if closes_calls else "calls")
        if b.name_pattern:
            policies["name_pattern"] = b.name_pattern
    # where the prefix leaves the parser
    state = prefix_state(spec, v, prefix)
    head = ""
    if state is not None and state != implicit:
        if state == call_field:
            raise _err("start_anchor", "the prompt prefix ends inside a tool_calls region; toolgram starts an "
                       "output in text, not inside a call", source)
        rule, body, c = region_rules[state]
        if c is None:
            head = None                   # the whole output is that region
            b.rules.append(f"start: {body}?")
        else:
            b.rules.append(f"head: {body}? {c}")
            head = "head "
    if head is not None:
        tail = f" ({' | '.join(tails)})?" if tails else ""
        alt_open = f" | {region_rules[state][1]}?" if head else ""
        b.rules.insert(0, f"start: {head}item*{tail}{alt_open}")
    b.rules.append("item: " + " | ".join(items))
    if b.uses_ws:
        b.rules.append(f"WS: {_regex_lit(_WS_SRC)}")
    if call_field is None:
        raise _err("fields", "the template has no tool_calls field: toolgram grammars read tool calls", source)
    data = {
        "name": name,
        "description": f"Imported from a response template{f' ({source})' if source else ''}.",
        "lark": "\n".join(b.rules) + "\n",
        "terminals": b.terms,
        "calls": calls,
    }
    if models:
        data["models"] = list(models)
    if policies:
        data["policies"] = policies
    return data, b.paths


def prefix_state(spec: dict, v: dict, prefix: str | None) -> str | None:
    """The field the reference parser is in after reading the prompt prefix (past the last start anchor);
    None or the implicit field when it is between regions."""
    implicit = v["implicit"]
    if not prefix:
        return implicit
    kind, val = v["anchor"]
    pat = regex.compile("|".join(regex.escape(s) for s in sorted(val, key=len, reverse=True))
                        if kind == "lits" else val, regex.DOTALL)
    last = None
    for m in pat.finditer(prefix):
        last = m.end()
    text = prefix if last is None else prefix[last:]

    def rx(a):
        k, x = a
        return regex.compile("|".join(regex.escape(s) for s in sorted(x, key=len, reverse=True))
                             if k == "lits" else x, regex.DOTALL)
    fields = v["fields"]
    cur, pos = implicit, 0
    while True:
        watch = []
        if cur is not None and cur != implicit:
            if fields[cur]["_close"] is not None:
                watch.append(("close", cur, rx(fields[cur]["_close"])))
        else:
            watch += [("open", n, rx(f["_open"])) for n, f in fields.items() if f["_open"] is not None]
            if implicit is not None and fields[implicit]["_close"] is not None:
                watch.append(("close", implicit, rx(fields[implicit]["_close"])))
        best = None
        for kind_, n, r in watch:
            m = r.search(text, pos)
            if m is None or (m.start() == m.end() == len(text)):
                continue
            key = (m.start(), -(m.end() - m.start()), 0 if kind_ == "open" else 1)
            if best is None or key < best[0]:
                best = (key, kind_, n, m)
        if best is None:
            return cur
        _, kind_, n, m = best
        if m.end() == pos and kind_ == "close":
            return cur
        pos = m.end()
        cur = n if kind_ == "open" else implicit


def _safe_name(name: str | None) -> str:
    s = _stdre.sub(r"[^a-z0-9_]+", "_", (name or "").lower()).strip("_")
    if not s or not s[0].isalpha():
        s = "template_" + s if s else "response_template"
    return s[:64]


def compile_template(obj, prefix: str | None = None, name: str | None = None,
                     source: str | None = None) -> CompiledGrammar:
    """Compile a response template (dict, JSON file or model directory) into a `CompiledGrammar`."""
    spec, loaded_from, model = load(obj)
    source = source or loaded_from
    data, paths = translate(spec, prefix, name=_safe_name(name or model), source=source)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 16)
    src = source or "<response_template>"
    try:
        data2, lines = load_source(text, src)
        schema.check(data2, lines)
        return compile_data(data2, lines)
    except GrammarError as e:
        found = [t for t in _stdre.findall(r"\b([A-Z]+_\d+)\b", e.message) if t in paths]
        where = paths[found[0]] if found else "fields"
        raise GrammarError(f"{where}: the template's regions cannot be read by a linear streaming parser: "
                           f"{e.message}", src) from None


def grammar_yaml(obj, prefix: str | None = None, name: str | None = None) -> str:
    """The grammar file an import amounts to (for review, or to copy into grammars/)."""
    spec, source, model = load(obj)
    data, _ = translate(spec, prefix, name=_safe_name(name or model), source=source)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 16)

"""``toolgram new --from-template``: draft a grammar file from a model's chat template.

The template is the ground truth of what the model was trained to write.  The drafter renders probe
conversations through it (the server's sandboxed renderer, via `toolgram.template_probe`): one call, two
calls, a call with no arguments, nested values, content before a call, and a reasoning turn.  From the
renderings it infers

* the call markers: the text around each call, split into a section part (once around all calls) and a
  per-call part by comparing the one-call and two-call renderings; what lies between two calls;
* the argument encoding, chosen among the registered encoding blocks by *parsing the renderings back*:
  a JSON object holding name and arguments (``json_call``, also inside a JSON array), a name followed by a
  JSON object (``json``), a name followed by key/value tags (text values typed by the tool schema), or a
  Python-style call ``name(key=value)`` (``literal``).  Each candidate is compiled as a draft grammar and the
  first one that reads every probe back to the probe's calls wins;
* native call ids (an id the template writes next to the call);
* the reasoning markers (the text the template puts around a message's ``reasoning_content``) and whether
  the generation prompt leaves a block open; a bundled reasoning grammar with those markers is named;
* model globs from the template's file name.

It writes ``<name>.yaml`` and ``corpus/<name>.yaml`` (the renderings with their calls as the expected
result), runs the corpus like ``toolgram check``, and returns what it could not infer.  The result is a
draft for a person to review, not a bundled grammar.  Nothing here knows a format by name.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from toolgram import template_probe as tp
from toolgram.serve.chat import TemplateError

TOOLS = [
    tp.tool("get_weather", {"city": {"type": "string"}, "days": {"type": "integer"}}, ["city"]),
    tp.tool("get_time", {"timezone": {"type": "string"}}, ["timezone"]),
    tp.tool("list_files"),
    tp.tool("search", {"query": {"type": "string"}, "filter": {"type": "object"}, "limit": {"type": "integer"}}),
]

PROBES = {
    "single": ([("get_weather", {"city": "Paris", "days": 3})], None),
    "double": ([("get_weather", {"city": "Paris", "days": 3}), ("get_time", {"timezone": "Europe/Bern"})], None),
    "zero": ([("list_files", {})], None),
    "nested": ([("search", {"query": "tool calls", "filter": {"tags": ["a", "b"], "min": 1}, "limit": 5})], None),
    "content": ([("get_time", {"timezone": "Asia/Tokyo"})], "Let me check that for you."),
}
REASON = "REASONING-PROBE-41c7"
ANSWER = "ANSWER-PROBE-8d2f"
NAME_RE = r"/[A-Za-z_][A-Za-z0-9_.\-]*/"


@dataclass
class Draft:
    name: str
    grammar: dict                               # the YAML data
    corpus: list[dict]                          # corpus cases
    encoding: str | None = None
    unknown: list[str] = field(default_factory=list)     # what could not be inferred
    found: list[str] = field(default_factory=list)       # what was inferred, in words


# -- text helpers -----------------------------------------------------------------------------------------

def _common_prefix(*texts: str) -> str:
    return os.path.commonprefix(list(texts))


def _common_suffix(a: str, b: str) -> str:
    return _common_prefix(a[::-1], b[::-1])[::-1]


def _opener(text: str) -> str:
    """A common suffix cut to start at a token boundary: no leading closer borrowed from the text before."""
    while text and text[0] in ">]}|)":
        text = text[1:]
    return text


def _closer(text: str) -> str:
    """A common prefix cut to end at a token boundary: no trailing opener borrowed from the text after."""
    while text and text[-1] in "<[{|(":
        text = text[:-1]
    return text


def _lit(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _tokens(piece: str) -> str:
    """A literal piece of markup as Lark: its non-blank parts as markers, whitespace around them optional."""
    parts = [p for p in re.split(r"\s+", piece) if p]
    if not parts:
        return "WS?" if piece else ""
    out = " WS? ".join(_lit(p) for p in parts)
    if piece[:1].isspace():
        out = "WS? " + out
    if piece[-1:].isspace():
        out += " WS?"
    return out


def _seq(*items: str) -> str:
    text = " ".join(i for i in items if i)
    while "WS? WS?" in text:
        text = text.replace("WS? WS?", "WS?")
    return text


# -- probing ---------------------------------------------------------------------------------------------

def _render(source: str, calls, content=None, marks=None) -> str:
    r = tp.render_message(source, tp.assistant_calls(calls, content), TOOLS, results=False)
    text = r.message
    if calls and calls[0][0] not in text:             # cut at an end marker that also opens a call message
        text = r.full[len(r.header):]
        if r.end and text.rstrip().endswith(r.end):
            text = text.rstrip()[:-len(r.end)]
    if marks:                                         # an empty reasoning block the history writes
        o, c = (re.escape(m) for m in marks)
        text = re.sub(rf"^\s*(?:{o}\s*)?{c}\s*", "", text, count=1)
    return text


def probe(source: str, marks=None) -> tuple[dict, list[str]]:
    """``{probe name: (calls, content, model text)}`` and what could not be rendered.  A probe whose calls
    the template does not all write (one call per message, calls dropped beside content) is left out."""
    out, unknown = {}, []
    for key, (calls, content) in PROBES.items():
        try:
            text = _render(source, calls, content, marks)
        except TemplateError as e:
            unknown.append(f"probe {key!r}: the template refused it ({e.message})")
            continue
        missing = [n for n, _ in calls if n not in text]
        if missing:
            unknown.append(f"probe {key!r}: the template does not write the call(s) {missing} in the message")
            continue
        out[key] = (calls, content, text)
    # markup every message starts with (an empty reasoning block the history writes) is not a call marker
    texts = [t for _, _, t in out.values()]
    lead = _closer(_common_prefix(*texts)) if len(texts) > 1 else ""
    if lead.strip() and "content" in out and out["content"][2].find(out["content"][1]) >= len(lead):
        m = re.match(r"\s*(?:<[^<>]*>\s*)+", lead)
        if m:
            lead = m.group(0)
            unknown.append(f"every message starts with {lead!r}: left out of the call syntax (a reasoning "
                           f"block the history writes?)")
            out = {k: (c, t, x[len(lead):]) for k, (c, t, x) in out.items()}
    return out, unknown


# -- locating calls in a rendering --------------------------------------------------------------------------

def _json_objects(text: str):
    """Every JSON value that starts at a ``{`` or ``[`` of ``text``: (start, end, value)."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"[\[{]", text):
        try:
            value, end = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        yield m.start(), end, value


def _spans_json_call(text: str, calls):
    """Spans of JSON objects holding a call's name and arguments; with the keys that hold them."""
    spans, keys = [], None
    pos = 0
    for name, args in calls:
        hit = None
        for s, e, v in _json_objects(text[pos:]):
            if isinstance(v, dict):
                nk = [k for k, x in v.items() if x == name]
                ak = [k for k, x in v.items() if x == args or (isinstance(x, str) and _loads(x) == args)]
                if nk and (ak or not args):
                    hit = (pos + s, pos + e, nk[0], ak[0] if ak else None, v)
                    break
        if hit is None:
            return None, None
        spans.append(hit[:2])
        keys = keys or {"name": hit[2], "arguments": hit[3], "object": hit[4]}
        pos = hit[1]
    return spans, keys


def _loads(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def _spans_name_json(text: str, calls):
    """Spans from a call's name to the end of its JSON arguments object."""
    spans, pos = [], 0
    for name, args in calls:
        n = text.find(name, pos)
        if n < 0:
            return None
        hit = None
        for s, e, v in _json_objects(text[n + len(name):]):
            if v == args:
                hit = (n, n + len(name) + e, n + len(name), n + len(name) + s)
                break
        if hit is None:
            return None
        spans.append(hit)
        pos = hit[1]
    return spans


def _value_text(v) -> list[str]:
    """Ways a template may write an argument value as text."""
    if isinstance(v, str):
        return [v]
    return [json.dumps(v, ensure_ascii=False), json.dumps(v, ensure_ascii=False, separators=(",", ":")), str(v)]


def _spans_kv(text: str, calls):
    """Per call: name span, then (key start, key end, value start, value end) for each argument."""
    out, pos = [], 0
    for name, args in calls:
        n = text.find(name, pos)
        if n < 0:
            return None
        p = n + len(name)
        items = []
        for k, v in args.items():
            ks = text.find(k, p)
            if ks < 0:
                return None
            vs = -1
            for form in _value_text(v):
                vs = text.find(form, ks + len(k))
                if vs >= 0:
                    ve = vs + len(form)
                    break
            if vs < 0:
                return None
            items.append((ks, ks + len(k), vs, ve))
            p = ve
        out.append((n, n + len(name), items))
        pos = p
    return out


# -- building candidates ---------------------------------------------------------------------------------

@dataclass
class Frame:
    section_open: str
    call_open: str
    call_close: str
    sep: str
    section_close: str


def _frame(single: str, s1: tuple, double: str | None, d1: tuple | None, d2: tuple | None) -> Frame:
    """Split the text around calls into section and per-call markup (one-call vs two-call rendering)."""
    before, after = single[:s1[0]], single[s1[1]:]
    if double is None or d1 is None:
        return Frame("", before, after, "", "")
    gap = double[d1[1]:d2[0]]
    call_open = _opener(_common_suffix(before, gap))
    rest = gap[:len(gap) - len(call_open)]
    call_close = _closer(_common_prefix(after, rest))
    sep = rest[len(call_close):]
    return Frame(before[:len(before) - len(call_open)], call_open, call_close, sep, after[len(call_close):])


def _content_split(frame: Frame, content_text: str | None) -> Frame:
    """Drop a leading blank or content part of the section opener (what comes before the first marker)."""
    so = frame.section_open
    if not so.strip():
        return Frame("", frame.call_open, frame.call_close, frame.sep, frame.section_close)
    return frame


def _lark(frame: Frame, call_body: str, extra_rules: list[str]) -> str:
    so, sc = _tokens(frame.section_open.strip()), _tokens(frame.section_close.strip())
    co, cc = _tokens(frame.call_open.strip()), _tokens(frame.call_close.strip())
    sep = _tokens(frame.sep.strip())
    between = f"(WS? {sep})? WS?" if sep else "WS?"
    rules = ["start: (CONTENT | calls)*"]
    head = f"{so} WS? " if so else ""
    tail = f" (WS? {sc})?" if sc else ""
    rules.append(f"calls: {head}call ({between} call)*{tail}")
    body = call_body.strip()
    for edge in ("WS? ",):
        while body.startswith(edge):
            body = body[len(edge):]
    while body.endswith(" WS?"):
        body = body[:-4]
    rules.append(f"call: {_seq(co, 'WS?' if co else '', body, 'WS?' if cc else '', cc)}")
    rules += extra_rules
    rules.append("WS: /[ \\t\\r\\n]+/")
    return "\n".join(rules) + "\n"


def _candidates(probes: dict):
    """(encoding, grammar data) candidates built from the probe renderings."""
    single = probes.get("single")
    double = probes.get("double")
    if single is None:
        return
    calls1, _, text1 = single
    text2 = double[2] if double else None
    calls2 = double[0] if double else None

    # 1. a JSON object per call holding name and arguments (json_call), maybe inside a JSON array
    sp1, keys = _spans_json_call(text1, calls1)
    if sp1:
        sp2 = _spans_json_call(text2, calls2)[0] if text2 else None
        frame = _frame(text1, sp1[0], text2, sp2[0] if sp2 else None, sp2[1] if sp2 else None)
        block = {"block": "json_call", "name_keys": [keys["name"]],
                 "arguments_keys": [keys["arguments"] or "arguments"], "arguments_as_string": True}
        ids = [k for k, v in keys["object"].items() if v in tp.IDS]
        if ids:
            block["id_keys"] = ids
        frame = _content_split(frame, None)
        yield "json_call", {"lark": _lark(frame, "CALL", []),
                            "terminals": {"CONTENT": {"text": True, "role": "content"}, "CALL": block},
                            "calls": {"rule": "call", "region": "calls"}}
        if frame.call_open.strip().endswith("[") or frame.section_open.strip().endswith("["):
            arr = Frame(frame.section_open.rstrip().rstrip("["), "", "", "", "")
            yield "json_call", {"lark": "\n".join([
                "start: (CONTENT | calls)*",
                f"calls: {_seq(_tokens(arr.section_open), 'WS?')} \"[\" WS? call (WS? \",\" WS? call)* WS? \"]\""
                + (f" (WS? {_tokens(frame.section_close.lstrip().lstrip(']'))})?"
                   if frame.section_close.strip().lstrip("]").strip() else ""),
                "call: CALL", "WS: /[ \\t\\r\\n]+/"]) + "\n",
                "terminals": {"CONTENT": {"text": True, "role": "content"}, "CALL": block},
                "calls": {"rule": "call", "region": "calls"}}

    # 2. the name, then a JSON object of arguments
    sp1 = _spans_name_json(text1, calls1)
    if sp1:
        sp2 = _spans_name_json(text2, calls2) if text2 else None
        frame = _content_split(_frame(text1, sp1[0][:2], text2, sp2[0][:2] if sp2 else None,
                                      sp2[1][:2] if sp2 else None), None)
        mid = text1[sp1[0][2]:sp1[0][3]]
        mids = [mid] + ([text2[s[2]:s[3]] for s in sp2] if sp2 else [])
        marker = mids[0]
        for m in mids[1:]:
            marker = _common_suffix(marker, m)
        var = [m[:len(m) - len(marker)] for m in mids]
        rules, extra, id_term = [], "", None
        if any(var):
            ids = [v for v in var if any(v.endswith(i) for i in tp.IDS)]
            if len(ids) == len(var):                 # the model's own call id sits between name and arguments
                pre = _common_prefix(*[v[:-len(tp.IDS[0])] for v in var]) if len(var) > 1 else var[0][:-9]
                extra = _seq(_tokens(pre), "CALL_ID")
                rules.append("CALL_ID: /[A-Za-z0-9_\\-]{1,64}/")
                id_term = {"id": True}
            elif all(re.fullmatch(r"[:_\-. ]?\d+", v) for v in var):
                extra = "INDEX"
                rules.append("INDEX: /[:_\\-. ]?[0-9]+/")
            else:
                marker = mids[0]
        body = _seq("NAME", extra, _tokens(marker), "ARGS")
        terms = {"CONTENT": {"text": True, "role": "content"}, "NAME": {"name": True},
                 "ARGS": {"block": "json", "arguments_as_string": True}}
        if id_term:
            terms["CALL_ID"] = id_term
        yield "json", {"lark": _lark(frame, body, rules + [f"NAME: {NAME_RE}"]), "terminals": terms,
                       "calls": {"rule": "call", "region": "calls"},
                       **({"policies": {"commit": "arguments"}} if id_term else {})}

    # 3. a Python-style call: name(key=value, ...)
    m = re.search(re.escape(calls1[0][0]) + r"\s*\(", text1)
    if m:
        close = text1.find(")", m.end())
        if close > 0:
            before, after = text1[:m.start()], text1[close + 1:]
            lb = before.rstrip()
            listed = lb.endswith("[") and after.lstrip().startswith("]")
            so = lb[:-1] if listed else before
            sc = after.lstrip()[1:] if listed else after
            head = _tokens(so)
            tail = _tokens(sc)
            lst = '"[" WS? call (WS? "," WS? call)* WS? "]"' if listed else "call (WS? call)*"
            yield "literal", {"lark": "\n".join([
                "start: (CONTENT | calls)*",
                f"calls: {_seq(head, 'WS?' if head else '', lst, ('WS? (' + tail + ')?') if tail else '')}",
                'call: NAME WS? "(" WS? (arg (WS? "," WS? arg)* (WS? ",")? WS?)? ")"',
                'arg: KEY WS? "=" WS? VALUE', f"NAME: {NAME_RE}", "KEY: /[A-Za-z_][A-Za-z0-9_]*/",
                "WS: /[ \\t\\r\\n]+/"]) + "\n",
                "terminals": {"CONTENT": {"text": True, "role": "content"}, "NAME": {"name": True},
                              "KEY": {"role": "key"}, "VALUE": {"block": "literal", "syntax": "python",
                                                                "role": "value"}},
                "calls": {"rule": "call", "region": "calls", "argument": "arg"},
                "policies": {"commit": "arguments"}}

    # 4. the name, then key/value tags (values are text, typed by the tool schema)
    kv1 = _spans_kv(text1, calls1)
    if kv1 and len(kv1[0][2]) >= 2:
        n0, n1, items = kv1[0]
        (k1s, k1e, v1s, v1e), (k2s, k2e, v2s, v2e) = items[0], items[1]
        lead = text1[n1:k1s]                   # name close + first key's opener
        between = text1[v1e:k2s]               # value close + next key's opener
        key_open = _opener(_common_suffix(lead, between))
        value_close = between[:len(between) - len(key_open)].rstrip() or between[:len(between) - len(key_open)]
        name_close = lead[:len(lead) - len(key_open)]
        key_value = text1[k1e:v1s]
        kv2 = _spans_kv(text2, calls2) if text2 else None
        start1, end1 = n0, v2e
        # the call's own close follows the last value's close
        rest = text1[v2e:]
        if value_close.strip() and rest.lstrip().startswith(value_close.strip()):
            end1 = v2e + rest.find(value_close.strip()) + len(value_close.strip())
        d1 = d2 = None
        if kv2 and text2:
            ends = []
            for (a, b, its) in kv2:
                e = its[-1][3] if its else b
                r = text2[e:]
                if value_close.strip() and r.lstrip().startswith(value_close.strip()):
                    e += r.find(value_close.strip()) + len(value_close.strip())
                ends.append((a, e))
            d1, d2 = ends[0], ends[1]
        frame = _content_split(_frame(text1, (start1, end1), text2, d1, d2), None)
        kv_mid2 = text1[k2e:v2s]
        wrapped = key_value[-1:].isspace() or value_close[:1].isspace()
        mid = _tokens(key_value.strip()) if not wrapped else _tokens(key_value.lstrip().rstrip(" \t"))
        mid = _tokens(key_value.strip())
        extra_terms, typed = {}, False
        if kv_mid2.strip() and kv_mid2.strip() != key_value.strip():
            # the markup before a value differs between a string and a non-string value: it types the value
            v1, v2 = list(calls1[0][1].values())[:2]
            if isinstance(v1, str) != isinstance(v2, str):
                s_mid, j_mid = (key_value, kv_mid2) if isinstance(v1, str) else (kv_mid2, key_value)
                pre = _common_prefix(s_mid.strip(), j_mid.strip())
                pre = pre[:len(pre) - len(_common_suffix(pre, ""))]
                extra_terms = {"ARG_STRING": {"arg_type": "string"}, "ARG_JSON": {"arg_type": "json"}}
                mid = "(ARG_STRING | ARG_JSON)"
                typed = (_lit(s_mid.strip()), _lit(j_mid.strip()))
            else:
                mid = f"({_tokens(key_value.strip())} | {_tokens(kv_mid2.strip())})"
        if key_open.strip() and key_value.strip() and value_close.strip():
            name_term = {"text": True, "name": True, "max_length": 256}
            rules = [f"param: {_tokens(key_open.strip())} KEY {mid} VALUE? {_tokens(value_close.strip())}"]
            if typed:
                rules += [f"ARG_STRING: {typed[0]}", f"ARG_JSON: {typed[1]}"]
            if not name_close.strip():              # the name runs into the first key: a name pattern
                name_term = {"name": True}
                rules.append(f"NAME: {NAME_RE}")
            value = {"text": True, "role": "value"}
            if wrapped:                             # the template puts the value on its own line(s)
                value["strip"] = "newline"
            yield "key_value", {"lark": _lark(frame, _seq("NAME", _tokens(name_close.strip()), "(WS? param)*"), rules),
                "terminals": {"CONTENT": {"text": True, "role": "content"}, "NAME": name_term,
                              "KEY": {"text": True, "role": "key", "max_length": 256}, "VALUE": value,
                              **extra_terms},
                "calls": {"rule": "call", "region": "calls", "argument": "param"},
                "policies": {"commit": "arguments"}}


# -- choosing ---------------------------------------------------------------------------------------------

def _write_yaml(path: Path, data: dict) -> None:
    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper, s):
        style = "|" if "\n" in s else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)
    _Dumper.add_representer(str, _str)
    path.write_text(yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000),
                    encoding="utf-8")


def _reads_back(data: dict, probes: dict) -> list[str]:
    """Problems parsing every probe rendering back with the grammar ``data`` (empty: it reads them all)."""
    import toolgram
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "candidate.yaml"
        _write_yaml(path, {"name": "candidate", "description": "a draft candidate", **data})
        try:
            g = toolgram.load(str(path), reasoning=None)
        except toolgram.GrammarError as e:
            return [f"does not compile: {e}"]
        problems = []
        for key, (calls, content, text) in probes.items():
            r = g.parse(text, tools=TOOLS)
            got = [(c.name, json.loads(c.arguments)) for c in r.tool_calls]
            if got != [tuple(c) for c in calls]:
                problems.append(f"{key}: read {got}")
        return problems


def _globs(stem: str) -> list[str]:
    """Model globs from a template file name (``org-Model-Version...`` -> ``org/Model-Version*``)."""
    import toolgram
    from toolgram.compiler import registry
    orgs = {g.split("/")[0] for _, globs in registry.model_table() for g in globs if "/" in g}
    orgs |= {g.split("/")[0] for _, globs in registry.reasoning_table() for g in globs if "/" in g}
    del toolgram
    for org in sorted(orgs, key=len, reverse=True):
        if stem.lower().startswith(org.lower() + "-"):
            rest = stem[len(org) + 1:]
            parts = rest.split("-")
            keep = []
            for p in parts:
                keep.append(p)
                if re.search(r"\d", p):
                    break
            return [f"{org}/{'-'.join(keep)}*"]
    return []


def _reasoning(source: str, unknown: list[str], found: list[str]):
    """(bundled reasoning grammar name or None, (open, close) markers or None)."""
    name, marks = _reasoning_markers(source, unknown, found)
    return name, marks


def _reasoning_markers(source: str, unknown: list[str], found: list[str]):
    """The bundled reasoning grammar whose markers the template writes around ``reasoning_content``."""
    import toolgram
    from toolgram.compiler import registry
    r = None
    for key in ("reasoning_content", "thinking", "reasoning"):
        msg = {"role": "assistant", "content": ANSWER, key: REASON}
        try:
            r = tp.render_message(source, msg, TOOLS, results=False)
        except TemplateError as e:
            unknown.append(f"reasoning: the template refused a reasoning turn ({e.message})")
            return None, None
        if REASON in r.full:
            break
    else:
        unknown.append("reasoning: the template does not render a message's reasoning (markers unknown)")
        return None, None
    i = r.full.find(REASON)
    j = r.full.find(ANSWER, i)
    open_m = r.full[len(r.header):i].strip()
    close_m = r.full[i + len(REASON):j if j >= 0 else None].strip()
    if not open_m:
        # the header itself may end with the opener, shared with the generation prompt (`<think>`)
        tail = r.prompt[len(r.header):].strip() or r.header.rstrip()
        for m in re.finditer(r"<[^<>\s]{1,40}>|\[[^\[\]\s]{1,40}\]", tail):
            open_m = m.group(0)
    inside = bool(open_m) and tp.opens_reasoning(r.prompt, open_m, close_m)
    found.append(f"reasoning markers {open_m!r} ... {close_m!r}, generation prompt "
                 f"{'opens' if inside else 'does not open'} a block")
    flags = ("anywhere", "ends_at_call", "ends_at", "channel")
    names = sorted(toolgram.reasoning_grammars(),
                   key=lambda n: sum(bool(registry.read(registry.reasoning_path(n))[0].get(f)) for f in flags))
    for name in names:
        d = registry.read(registry.reasoning_path(name))[0]
        if d.get("open") == open_m and d.get("close") == close_m and bool(d.get("starts_inside")) == inside:
            return name, (open_m, close_m)
    unknown.append(f"reasoning: no bundled reasoning grammar has the markers {open_m!r} ... {close_m!r} "
                   f"with starts_inside: {inside}; write one (kind: reasoning)")
    return None, ((open_m, close_m) if open_m and close_m else None)


def _starts_inside(reasoning: str | None) -> bool:
    if not reasoning:
        return False
    from toolgram.compiler import registry
    return bool(registry.read(registry.reasoning_path(reasoning))[0].get("starts_inside"))


def draft(source: str, name: str, stem: str = "") -> Draft:
    unknown: list[str] = []
    found: list[str] = []
    reasoning, marks = _reasoning(source, unknown, found)
    probes, refused = probe(source, marks)
    unknown[:0] = refused
    chosen, enc = None, None
    tried = []
    for encoding, data in _candidates(probes):
        problems = _reads_back(data, probes)
        if not problems:
            chosen, enc = data, encoding
            break
        tried.append(f"{encoding}: {problems[0]}")
    corpus = []
    opened = _starts_inside(reasoning)
    for key, (calls, content, text) in probes.items():
        if opened and marks:                          # after a prompt-opened block the model closes it first
            text = marks[1] + text
        corpus.append({"name": f"rendered {key}", "output": text, "tools": "probe",
                       "expect": {"calls": [{"name": n, "arguments": a} for n, a in calls]}})
    if chosen is None:
        unknown.append("call syntax: no registered encoding reads the renderings back"
                       + (f" (tried {'; '.join(tried)})" if tried else " (no call found in the renderings)"))
        chosen = {"lark": "start: (CONTENT | call)*\ncall: \"TODO\"\n",
                  "terminals": {"CONTENT": {"text": True, "role": "content"}}, "calls": {"rule": "call"}}
    else:
        found.append(f"argument encoding: {enc} (read every probe back)")
    globs = _globs(stem) if stem else []
    if not globs:
        unknown.append("model globs: the file name names no known organisation; fill in `models`")
    if "id_keys" in json.dumps(chosen) or "CALL_ID" in json.dumps(chosen):
        found.append("native call ids: read from the call")
    elif any(i in p[2] for p in probes.values() for i in tp.IDS):
        unknown.append("native call ids: the template writes the request's ids, but not in a form the draft reads")
    example = probes["single"][2] if "single" in probes else None
    data = {"name": name,
            "description": f"Drafted by `toolgram new --from-template` from {stem or 'a chat template'}: "
                           f"{enc or 'unknown'} calls.  Review before use.",
            "models": globs}
    if reasoning:
        data["reasoning"] = reasoning
    if example:
        data["example"] = example
    data.update(chosen)
    return Draft(name, data, corpus, enc, unknown, found)


def name_for(stem: str) -> str:
    """A grammar name (``[a-z][a-z0-9_]*``) from a template file name."""
    name = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")
    return name if name[:1].isalpha() else f"draft_{name}"


def write(d: Draft, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus").mkdir(exist_ok=True)
    gpath = out / f"{d.name}.yaml"
    cpath = out / "corpus" / f"{d.name}.yaml"
    _write_yaml(gpath, d.grammar)
    _write_yaml(cpath, {"tools": {"probe": TOOLS}, "cases": d.corpus})
    return gpath, cpath


def check(gpath: Path) -> list[tuple[str, list[str]]]:
    """Run the draft's corpus as ``toolgram check`` does: (case name, problems) per case."""
    from toolgram import corpus
    return [(c.name, corpus.check_case(c)) for c in corpus.load_cases(str(gpath))]


def corpus_agreement(gpath: Path, family: str, reasoning=True) -> tuple[int, int, list[str]]:
    """How many cases of the bundled grammar ``family``'s corpus the draft at ``gpath`` reads to the calls the
    corpus expects (names and JSON-equal arguments): (agreeing, total, names of the others).
    ``reasoning=False``: the draft's call syntax alone, without the reasoning grammar it names."""
    import toolgram
    from toolgram import corpus
    g = toolgram.load(str(gpath)) if reasoning else toolgram.load(str(gpath), reasoning=None)
    agree, other = 0, []
    cases = corpus.load_cases(family)
    for case in cases:
        want = [(c["name"], c.get("arguments", {})) for c in (case.expect.get("calls") or [])]
        try:
            r = g.parse(case.output, case.tools, reasoning=case.reasoning)
            got = [(c.name, json.loads(c.arguments)) for c in r.tool_calls]
        except Exception as e:                       # a draft must never crash the parser; count it
            got = [f"error: {e}"]
        if got == want:
            agree += 1
        else:
            other.append(case.name)
    return agree, len(cases), other


def measure(templates: dict, families: dict) -> list[dict]:
    """Draft every template in ``templates`` ({stem: path}); per template: the encoding chosen, its own
    rendered corpus (cases passing / total) and, where ``families`` ({stem: bundled grammar}) names one, the
    bundled corpus cases it reads to the expected calls, with the drafted reasoning and with the call syntax
    alone."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for stem, path in sorted(templates.items()):
            d = draft(Path(path).read_text(encoding="utf-8"), name_for(stem), stem)
            gpath, _ = write(d, Path(tmp) / name_for(stem))
            own = check(gpath) if d.encoding else []
            row = {"template": stem, "encoding": d.encoding, "own": sum(1 for _, p in own if not p),
                   "own_total": len(own), "family": families.get(stem)}
            if row["family"] and d.encoding:
                row["agree"], row["total"], _ = corpus_agreement(gpath, row["family"])
                row["syntax"], _, _ = corpus_agreement(gpath, row["family"], reasoning=False)
            rows.append(row)
    return rows


def _main() -> int:
    """``python -m toolgram.draft``: the measurement table of docs/grammar-format.md, from the test-data
    cache (``python tests/data/fetch.py``) and the template table in tests/data."""
    root = Path(__file__).resolve().parent.parent
    cache = Path(os.environ.get("TOOLGRAM_TESTDATA") or root / ".cache" / "testdata") / "templates"
    table = yaml.safe_load((root / "tests" / "data" / "templates.yaml").read_text(encoding="utf-8"))["templates"]
    families = {s: e["grammar"] for s, e in table.items() if e["status"] == "mapped"}
    rows = measure({p.stem: p for p in cache.glob("*.jinja")}, families)
    best: dict = {}
    for r in rows:
        if r.get("total"):
            key = (r["syntax"] / r["total"], r["agree"] / r["total"])
            if r["family"] not in best or key > best[r["family"]][0]:
                best[r["family"]] = (key, r)
    print("| family | template | encoding drafted | bundled corpus, call syntax | with the drafted reasoning |")
    print("|---|---|---|---|---|")
    for fam in sorted(set(families.values())):
        if fam in best:
            r = best[fam][1]
            print(f"| {fam} | `{r['template']}` | {r['encoding']} | {r['syntax']}/{r['total']} "
                  f"({r['syntax'] / r['total']:.0%}) | {r['agree']}/{r['total']} |")
        else:
            stems = ", ".join(f"`{s}`" for s, f in sorted(families.items()) if f == fam)
            print(f"| {fam} | {stems} | none: no registered encoding reads the renderings back | 0% | - |")
    print()
    print("| template (no bundled grammar) | encoding drafted | its own rendered corpus |")
    print("|---|---|---|")
    for r in rows:
        if not r["family"] and r["encoding"]:
            print(f"| `{r['template']}` | {r['encoding']} | {r['own']}/{r['own_total']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

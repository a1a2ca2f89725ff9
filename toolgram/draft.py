"""``toolgram new --from-template``: draft a grammar file from a model's chat template.

The template is the ground truth of what the model was trained to write.  The drafter renders probe
conversations through it (the server's sandboxed renderer, via `toolgram.template_probe`): one call, two
calls, a call with no arguments, nested values, content before a call, every JSON scalar type, and a
reasoning turn.  From the renderings it infers

* the call markers: the text around each call, split at token boundaries into a section part (once around
  all calls) and a per-call part by comparing the one-call and two-call renderings; what lies between two
  calls; a wrapper around each call that may as well hold several; calls in a list; call ids and call
  indexes in the markup (patterns, not the probe's text);
* the argument encoding, chosen among the registered encoding blocks by *parsing the renderings back*:
  a JSON object holding name and arguments (``json_call``), a name followed by a JSON object (``json``),
  a literal call ``name(key=value)`` or ``name{key:value}`` with the template's quotes (``literal``), or a
  name followed by key/value tags (text values typed by the tool schema, or by the typing markup the
  template writes).  Each candidate is compiled from the most relaxed form (what real outputs leave out
  optional: a section opener, a closer, list brackets) to the strict one, and the first that reads every
  probe back to the probe's calls wins;
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
from toolgram.runtime.encodings import literal
from toolgram.serve.chat import TemplateError

TOOLS = [
    tp.tool("get_weather", {"city": {"type": "string"}, "days": {"type": "integer"}}, ["city"]),
    tp.tool("get_time", {"timezone": {"type": "string"}}, ["timezone"]),
    tp.tool("list_files"),
    tp.tool("search", {"query": {"type": "string"}, "filter": {"type": "object"}, "limit": {"type": "integer"}}),
    tp.tool("set_alarm", {"time": {"type": "string"}, "enabled": {"type": "boolean"},
                          "label": {"type": ["string", "null"]}, "ratio": {"type": "number"},
                          "days": {"type": "array", "items": {"type": "integer"}}}),
]
# the tools the probes render with: all but set_alarm, which only the scalars probe needs (a template may
# not render a "null" type)
RENDER_TOOLS = TOOLS[:-1]

PROBES = {
    "single": ([("get_weather", {"city": "Paris", "days": 3})], None),
    "double": ([("get_weather", {"city": "Paris", "days": 3}), ("get_time", {"timezone": "Europe/Bern"})], None),
    "zero": ([("list_files", {})], None),
    "nested": ([("search", {"query": "tool calls", "filter": {"tags": ["a", "b"], "min": 1}, "limit": 5})], None),
    "content": ([("get_time", {"timezone": "Asia/Tokyo"})], "Let me check that for you."),
    # every JSON type: what the template writes for true/null, and the markup it types values with
    "scalars": ([("set_alarm", {"time": "07:00", "enabled": True, "label": None, "ratio": 0.5,
                                "days": [1, 2]})], None),
}
OPTIONAL_PROBES = ("scalars",)     # a draft that misreads it is still chosen; the miss is reported
RELAX = (2, 1, 0)                  # candidate grammars from the most relaxed to the strict (see _lark)
REASON = "REASONING-PROBE-41c7"
ANSWER = "ANSWER-PROBE-8d2f"
NAME_RE = r"/[A-Za-z_][A-Za-z0-9_.\-]*/"
ID_MARK = "\ue000" * len(tp.IDS[0])    # stands for a call id in markup (same length: offsets stay valid)
INDEX_MARK = "\ue001"                  # stands for a digit run that counts the calls (index="1", :0)
WS_RULE = "WS: /[ \\t\\r\\n]+/"
ID_RULE = "CALL_ID: /[A-Za-z0-9_\\-]{1,64}/"
INDEX_RULE = "INDEX: /[0-9]{1,6}/"


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


def _common_suffix(*texts: str) -> str:
    return _common_prefix(*[t[::-1] for t in texts])[::-1]


_PAIRS = {"<": ">", "[": "]"}


def _token_end(text: str, k: int) -> int | None:
    """Where the markup token that position ``k`` of ``text`` falls inside ends (None: not inside one)."""
    best = None
    for opener, closer in _PAIRS.items():
        i = text.rfind(opener, 0, k)
        if i >= 0 and closer not in text[i + 1:k] and k - i <= 64:
            j = text.find(closer, k)
            if j >= 0 and j - i <= 64:
                best = max(best or 0, j + 1)
    return best


def _opener(text: str, *contexts: str) -> str:
    """A common suffix of ``contexts`` cut to start at a token boundary in each: no tail of a token
    borrowed from the text before."""
    k = 0
    moved = True
    while moved and k < len(text):
        moved = False
        for ctx in contexts:
            base = len(ctx) - len(text)
            end = _token_end(ctx, base + k)
            if end is not None and end - base > k:
                k, moved = end - base, True
    text = text[k:]
    while text and text[0] in ">]}|)":
        text = text[1:]
    return text


def _closer(text: str, *contexts: str) -> str:
    """A common prefix of ``contexts`` cut to end at a token boundary in each: no head of a token
    borrowed from the text after."""
    k = len(text)
    for ctx in contexts:
        for opener in _PAIRS:
            i = ctx.rfind(opener, 0, k)
            if i >= 0 and _PAIRS[opener] not in ctx[i + 1:k] and ctx.find(_PAIRS[opener], k) >= 0 and k - i <= 64:
                k = min(k, i)
    text = text[:k]
    while text and text[-1] in "<[{|(":
        text = text[:-1]
    return text


def _lit(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _tokens(piece: str, trail: bool = True) -> str:
    """A literal piece of markup as Lark: its non-blank parts as markers with optional whitespace after each
    (``trail=False``: not after the last); a call id or call index in it as a pattern."""
    out = []
    for part in piece.split():
        for i, seg in enumerate(re.split(f"({ID_MARK}|{INDEX_MARK})", part)):
            if seg == ID_MARK:
                out.append("CALL_ID")
            elif seg == INDEX_MARK:
                out.append("INDEX")
            elif seg:
                out.append(_lit(seg))
        out.append("WS?")
    if out and not trail:
        out.pop()
    return " ".join(out)


def _norm(text: str) -> str:
    """``text`` with the probes' call ids as ``ID_MARK`` (same length)."""
    for i in tp.IDS:
        text = text.replace(i, ID_MARK)
    return text


def _unify(*pieces: str) -> str | None:
    """One markup text for the same piece of several calls: digit runs that differ count the calls
    (``INDEX_MARK``); None when the pieces differ otherwise."""
    if len(set(pieces)) == 1:
        return pieces[0]
    skeletons = {re.sub(r"\d+", INDEX_MARK, p) for p in pieces}
    return skeletons.pop() if len(skeletons) == 1 else None


def _marked(piece: str) -> bool:
    """Whether ``piece`` holds a marker (not only blanks, brackets and punctuation)."""
    return bool(re.search(r"[A-Za-z|<>\[\]]{2,}", piece))


# -- probing ---------------------------------------------------------------------------------------------

def _render(source: str, calls, content=None, marks=None, kwargs=None, tools=None):
    """(the model's text of an assistant message, the generation prompt)."""
    msg = tp.assistant_calls(calls, content) if calls else {"role": "assistant", "content": content}
    r = tp.render_message(source, msg, tools or RENDER_TOOLS, results=False, kwargs=kwargs)
    text = r.message
    if calls and calls[0][0] not in text:             # cut at an end marker that also opens a call message
        text = r.full[len(r.header):]
        if r.end and text.rstrip().endswith(r.end):
            text = text.rstrip()[:-len(r.end)]
    if marks:                                         # an empty reasoning block the history writes
        o, c = (re.escape(m) for m in marks)
        text = re.sub(rf"^\s*(?:{o}\s*)?{c}\s*", "", text, count=1)
    return text, r.prompt


def template_kwargs(source: str, unknown: list[str]) -> dict:
    """Variables to render ``source`` with.  A template that reads variables a chat template is not given
    (its own name for the tool list, a date) and fails without them gets the tools' JSON text under each."""
    from toolgram.serve.chat import compile_template
    calls, content = PROBES["single"]
    try:
        _render(source, calls, content)
        return {}
    except (TemplateError, ValueError):
        pass
    import jinja2
    from jinja2 import meta
    try:
        env = compile_template(source).environment
        names = meta.find_undeclared_variables(jinja2.Environment().parse(source))
    except Exception:                                # a template that does not compile: the probes say why
        return {}
    given = {"messages", "tools", "add_generation_prompt", *tp.SPECIAL}
    extra = sorted(n for n in names - given - set(env.globals))
    if not extra:
        return {}
    kwargs = {n: json.dumps(RENDER_TOOLS, ensure_ascii=False) for n in extra}
    try:
        _render(source, calls, content, kwargs=kwargs)
    except TemplateError:
        return {}
    unknown.append(f"template variables: the template fails without {', '.join(extra)}; the draft rendered "
                   f"it with the tools' JSON text under each (check what the model's server passes)")
    return kwargs


def probe(source: str, marks=None, kwargs=None) -> tuple[dict, list[str], str, str]:
    """``{probe name: (calls, content, model text)}``, what could not be rendered, the generation prompt
    and the model's text of a plain reply.  A probe whose calls the template does not all write (one call per message, calls dropped
    beside content) is left out."""
    out, unknown, prompt = {}, [], ""
    for key, (calls, content) in PROBES.items():
        try:
            text, prompt = _render(source, calls, content, marks, kwargs,
                                   TOOLS if key in OPTIONAL_PROBES else None)
        except TemplateError as e:
            unknown.append(f"probe {key!r}: the template refused it ({e.message})")
            continue
        missing = [n for n, _ in calls if n not in text]
        if missing:
            unknown.append(f"probe {key!r}: the template does not write the call(s) {missing} in the message")
            continue
        out[key] = (calls, content, text)
    # markup every message starts with, a plain reply too (an empty reasoning block the history writes),
    # is not a call marker
    texts = [t for _, _, t in out.values()]
    lead = _closer(_common_prefix(*texts)) if len(texts) > 1 else ""
    try:
        plain = _render(source, [], tp.PLAIN, marks, kwargs)[0]
    except TemplateError:
        plain = ""
    if lead.strip() and plain.startswith(lead):
        m = re.match(r"\s*(?:<[^<>]*>\s*)+", lead)
        if m:
            lead = m.group(0)
            unknown.append(f"every message starts with {lead!r}: left out of the call syntax (a reasoning "
                           f"block the history writes?)")
            out = {k: (c, t, x[len(lead):]) for k, (c, t, x) in out.items()}
    return out, unknown, prompt, plain


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


def _loads(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


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


def _spans_name_json(text: str, calls):
    """Spans from a call's name to the end of its JSON arguments object: (name start, end, name end,
    arguments start)."""
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
    forms = [json.dumps(v, ensure_ascii=False), json.dumps(v, ensure_ascii=False, separators=(",", ":")), str(v)]
    return sorted(set(forms), key=len, reverse=True)


def _spans_kv(text: str, calls):
    """Per call: (name start, name end, [(key start, key end, value start, value end, value)]).  A value is
    its last spelling before the next key (markup may spell it first: ``type="null">null``)."""
    out, pos = [], 0
    for c, (name, args) in enumerate(calls):
        n = text.find(name, pos)
        if n < 0:
            return None
        p = n + len(name)
        items = []
        keys = list(args)
        for i, (k, v) in enumerate(args.items()):
            ks = text.find(k, p)
            if ks < 0:
                return None
            nxt = keys[i + 1] if i + 1 < len(keys) else (calls[c + 1][0] if c + 1 < len(calls) else None)
            bound = text.find(nxt, ks + len(k)) if nxt else -1
            bound = len(text) if bound < 0 else bound
            vs = -1
            for form in _value_text(v):
                vs = text.rfind(form, ks + len(k), bound)
                if vs >= 0:
                    ve = vs + len(form)
                    break
            if vs < 0:
                return None
            items.append((ks, ks + len(k), vs, ve, v))
            p = ve
        out.append((n, n + len(name), items))
        pos = p
    return out


def _literal_call_end(text: str, start: int, quotes: list[str]) -> int:
    """The end of the bracketed argument list opening at ``text[start]`` (skipping quoted strings), or -1."""
    depth, i = 0, start
    while i < len(text):
        q = next((q for q in quotes if text.startswith(q, i)), None)
        if q:
            j = text.find(q, i + len(q))
            if j < 0:
                return -1
            i = j + len(q)
            continue
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


# -- building candidates ---------------------------------------------------------------------------------

@dataclass
class Frame:
    section_open: str
    call_open: str
    call_close: str
    sep: str
    section_close: str
    listed: bool = False         # the calls sit in a list inside the section: "[" call ("," call)* "]"
    prompt_opens: bool = False   # the generation prompt writes the first call's opener
    reply_lead: str = ""         # (prompt_opens) what a reply in text writes there instead of a call


def _mask(text: str) -> str:
    """``text`` with every digit alike (same length), so that call indexes do not cut a common part."""
    return re.sub(r"\d", "\ue002", text)


def _frame(single: str, s1: tuple, double: str | None, d1: tuple | None, d2: tuple | None) -> Frame:
    """Split the text around calls into section and per-call markup (one-call vs two-call rendering).
    Digit runs that differ between the calls (a call index) become ``INDEX_MARK``."""
    before, after = single[:s1[0]], single[s1[1]:]
    if double is None or d1 is None:
        return Frame("", before, after, "", "")
    gap = double[d1[1]:d2[0]]
    n = len(_opener(_common_suffix(_mask(before), _mask(gap)), _mask(before), _mask(gap)))
    call_open = _unify(before[len(before) - n:], gap[len(gap) - n:]) or before[len(before) - n:]
    rest, rest_single = gap[:len(gap) - n], after
    m = len(_closer(_common_prefix(_mask(rest_single), _mask(rest)), _mask(rest_single), _mask(rest)))
    call_close = _unify(after[:m], rest[:m]) or after[:m]
    return Frame(before[:len(before) - n], call_open, call_close, rest[m:], after[m:])


def _shape(frame: Frame, prompt: str, reply_lead: str) -> Frame:
    """The frame's structure: a blank section opener dropped; a per-call wrapper pair (``<w><f>..</f></w>``)
    made the section (it may hold several calls); calls in a list; a first opener the prompt writes."""
    f = Frame(**vars(frame))
    if not f.section_open.strip():
        f.section_open = ""
    m1 = re.match(r"\s*(<[^<>\s]+>)", f.call_open)
    m2 = re.search(r"(</?[^<>\s]+>)\s*$", f.call_close)
    if (m1 and m2 and f.call_open[m1.end():].strip() and f.call_close[:m2.start()].strip()
            and m2.group(1).replace("/", "", 1) == m1.group(1) and m2.group(1) != m1.group(1)):
        wo, wc = f.call_open[:m1.end()], f.call_close[m2.start():]
        f = Frame(f.section_open + wo, f.call_open[m1.end():], f.call_close[:m2.start()], wc + f.sep + wo,
                  wc + f.section_close)
    so, sc = f.section_open.rstrip(), f.section_close.lstrip()
    if (so.endswith("[") and sc.startswith("]") and not f.call_open.strip() and not f.call_close.strip()
            and f.sep.strip() in ("", ",")):
        f.section_open, f.section_close, f.sep, f.listed = so[:-1], sc[1:], "", True
    if (not f.call_open.strip() and f.sep.strip() and not f.section_open.strip()
            and prompt.rstrip().endswith(f.sep.strip())):
        f.call_open, f.sep, f.prompt_opens, f.reply_lead = f.sep, "", True, reply_lead
    return f


def _piece(text: str) -> str:
    """``_tokens`` for a piece that follows a pattern: whitespace before it optional too."""
    return " ".join(x for x in ("WS?" if text[:1].isspace() else "", _tokens(text)) if x)


def _lark(frame: Frame, body: str, extra_rules: list[str], relax: int) -> str:
    """The draft's Lark text.  Whitespace only ever follows a marker (never leads one), so that an optional
    closer does not make the parser guess.  ``relax`` (0-2): what real outputs leave out is optional — from
    1 the section opener where each call has its own marker and the list brackets, from 2 a call's closer."""
    so, co, cc = _tokens(frame.section_open), _tokens(frame.call_open), _tokens(frame.call_close)
    sep, sc = _tokens(frame.sep), _tokens(frame.section_close)
    head = f"({so})?" if so and relax and _marked(frame.call_open) else so
    close = f"({cc})?" if cc and relax >= 2 and _marked(frame.call_open) else cc
    if frame.listed:
        inner = '"[" WS? call ("," WS? call)* "]" WS?'
        inner = f"({inner} | call)" if relax else inner
    elif frame.prompt_opens:
        inner = f"{co} call ({co} call)*"
    else:
        inner = f"call (({sep})? call)*" if sep else "call+"
    rules = ["start: (CONTENT | calls)*"]
    if frame.prompt_opens:
        rules = ["start: first? (CONTENT | calls)*"
                 + (f" | {_lit(frame.reply_lead)} (CONTENT | calls)*" if frame.reply_lead else ""),
                 f"first: call ({co} call)*"]
        co = ""
    rules.append(" ".join(x for x in ("calls:", head, inner, f"({sc})?" if sc else "") if x))
    rules.append(" ".join(x for x in ("call:", co, body, close) if x))
    rules += extra_rules
    text = "\n".join(rules)
    for name, rule in (("CALL_ID", ID_RULE), ("INDEX", INDEX_RULE)):
        if re.search(rf"\b{name}\b", text) and not re.search(rf"^{name}:", text, re.M):
            text += "\n" + rule
    return text + "\n" + WS_RULE + "\n"


def _grammar(frame: Frame, body: str, rules: list[str], terminals: dict, relax: int, argument=None) -> dict:
    lark = _lark(frame, body, rules, relax)
    terms = {"CONTENT": {"text": True, "role": "content"}, **terminals}
    if re.search(r"\bCALL_ID\b", lark):
        terms["CALL_ID"] = {"id": True}
    data = {"lark": lark, "terminals": terms,
            "calls": {"rule": "call", "region": "calls", **({"argument": argument} if argument else {})}}
    # commit at the arguments where a name alone is a weak sign: after an id, or with no marker of its own
    if argument or "CALL_ID" in terms or ("NAME" in terms and (frame.prompt_opens or not _marked(frame.call_open))):
        data["policies"] = {"commit": "arguments"}
    return data


def _reply_lead(probes: dict, plain: str) -> str:
    """Text a reply in words starts with, before its content (a recipient the template writes)."""
    if "content" not in probes or tp.PLAIN not in plain:
        return ""
    _, content, text = probes["content"]
    lead = plain[:plain.find(tp.PLAIN)]
    return lead if lead.strip() and text.startswith(lead + content) else ""


def _candidates(probes: dict, prompt: str = "", plain: str = ""):
    """(encoding, grammar data) candidates built from the probe renderings, each from the most relaxed to
    the strict form (the first that reads every probe back is chosen)."""
    single = probes.get("single")
    double = probes.get("double")
    if single is None:
        return
    calls1, text1 = single[0], _norm(single[2])
    calls2, text2 = (double[0], _norm(double[2])) if double else (None, None)
    lead = _reply_lead(probes, plain)

    def frame_of(s1, s2):
        return _shape(_frame(text1, s1, text2, s2[0] if s2 else None, s2[1] if s2 else None), prompt, lead)

    # 1. a JSON object per call holding name and arguments (json_call), maybe inside a JSON list
    sp1, keys = _spans_json_call(text1, calls1)
    if sp1:
        sp2 = _spans_json_call(text2, calls2)[0] if text2 else None
        block = {"block": "json_call", "name_keys": [keys["name"]],
                 "arguments_keys": [keys["arguments"] or "arguments"], "arguments_as_string": True}
        ids = [k for k, v in keys["object"].items() if v == ID_MARK]
        if ids:
            block["id_keys"] = ids
        frame = frame_of(sp1[0], sp2)
        for relax in RELAX:
            yield "json_call", _grammar(frame, "CALL WS?", [], {"CALL": block}, relax)

    # 2. the name, then a JSON object of arguments
    sp1 = _spans_name_json(text1, calls1)
    if sp1:
        sp2 = _spans_name_json(text2, calls2) if text2 else None
        frame = frame_of(sp1[0][:2], [s[:2] for s in sp2] if sp2 else None)
        mids = [text1[s[2]:s[3]] for s in sp1] + ([text2[s[2]:s[3]] for s in sp2] if sp2 else [])
        mid = _unify(*mids)
        if mid is None:
            mid = _common_suffix(*mids)
        body = " ".join(x for x in ("NAME", _piece(mid) if mid.strip() else "WS?" * bool(mid), "ARGS WS?") if x)
        terms = {"NAME": {"name": True}, "ARGS": {"block": "json", "arguments_as_string": True}}
        for relax in RELAX:
            yield "json", _grammar(frame, body, [f"NAME: {NAME_RE}"], terms, relax)

    # 3. a literal call: name(key=value, ...) or name{key:value, ...}
    yield from _literal_candidates(calls1, text1, calls2, text2, frame_of)

    # 4. the name, then key/value tags (values are text, typed by the tool schema)
    yield from _key_value_candidates(probes, calls1, text1, calls2, text2, frame_of)


def _literal_candidates(calls1, text1, calls2, text2, frame_of):
    name, args = calls1[0]
    m = re.search(re.escape(name) + r"\s*([({])", text1)
    strings = [(k, v) for k, v in args.items() if isinstance(v, str)]
    if not m or not strings:
        return
    opener = m.group(1)
    closer = ")" if opener == "(" else "}"
    k, v = strings[0]
    q = re.search(re.escape(k) + r"\s*([=:])\s*(\S{0,8}?)" + re.escape(v), text1[m.end():])
    if not q or not q.group(2) or not text1[m.end() + q.end():].startswith(q.group(2)):
        return
    assign, quote = q.group(1), q.group(2)
    python = assign == "="
    # the syntax's own words and the other's: a model trained on True/None also writes true/null
    words = {**literal.RELAXED["words"], **literal.PYTHON["words"]}
    value = {"block": "literal", "role": "value", "syntax": "python" if python else "relaxed", "words": words}
    if quote not in ("'", '"'):
        value["quotes"] = [quote]

    def spans(text, calls):
        out, pos = [], 0
        for n, _ in calls:
            mm = re.compile(re.escape(n) + r"\s*" + re.escape(opener)).search(text, pos)
            if not mm:
                return None
            end = _literal_call_end(text, mm.end() - 1, [quote])
            if end < 0:
                return None
            out.append((mm.start(), end))
            pos = end
        return out

    s1 = spans(text1, calls1)
    s2 = spans(text2, calls2) if text2 else None
    if not s1:
        return
    frame = frame_of(s1[0], s2)
    body = (f'NAME WS? {_lit(opener)} WS? (arg ("," WS? arg)* ("," WS?)?)? {_lit(closer)} WS?')
    rules = [f"NAME: {NAME_RE}", "KEY: /[A-Za-z_][A-Za-z0-9_]*/"]
    terms = {"NAME": {"name": True}, "KEY": {"role": "key"}, "VALUE": value}
    for relax in RELAX:
        if relax and not python:       # a key in the value quotes, an empty value
            arg = f"arg: (KEY | {_lit(quote)} QKEY {_lit(quote)}) WS? {_lit(assign)} WS? (VALUE WS?)?"
            extra = {"QKEY": {"text": True, "role": "key", "max_length": 256}}
        else:
            arg, extra = f"arg: KEY WS? {_lit(assign)} WS? VALUE WS?", {}
        yield "literal", _grammar(frame, body, [arg] + rules, {**terms, **extra}, relax, argument="arg")


def _untyped(s_mid: str, j_mids: list[str]) -> str | None:
    """The markup before a value with its typing attribute left out (``" string="true">`` -> ``">``)."""
    pre, post = _common_prefix(s_mid, *j_mids), _common_suffix(s_mid, *j_mids)
    cut = max(pre.rfind(" "), pre.rfind("\t"))
    if cut < 0 or not re.search(r"""[A-Za-z_-]+=["']?$""", pre[cut:]):
        return None
    if pre[-1] in "\"'" and post.startswith(pre[-1]):
        post = post[1:]
    return pre[:cut] + post


def _key_value_candidates(probes, calls1, text1, calls2, text2, frame_of):
    kv1 = _spans_kv(text1, calls1)
    if not kv1 or len(kv1[0][2]) < 2:
        return
    _, name_end, items = kv1[0]
    lead = text1[name_end:items[0][0]]     # name close + first key's opener
    between = text1[items[0][3]:items[1][0]]   # value close + next key's opener
    key_open = _opener(_common_suffix(lead, between), lead, between).lstrip()
    if not key_open.strip():
        return
    value_close = between[:len(between) - len(key_open)]
    vc = value_close.strip()

    # every call of every probe: the markup after its name, before each value
    name_closes, s_mids, j_mids = [], [], []
    for calls, _, raw in probes.values():
        text = _norm(raw)
        for n, ne, its in _spans_kv(text, calls) or []:
            if its:
                nc = text[ne:its[0][0]]
                if nc.endswith(key_open):
                    name_closes.append(nc[:len(nc) - len(key_open)])
            for ks, ke, vs, ve, v in its:
                (s_mids if isinstance(v, str) else j_mids).append(text[ke:vs])
    if not vc:
        return
    wrapped = any(m[-1:].isspace() for m in s_mids + j_mids) or value_close[:1].isspace()
    name_close = _unify(*name_closes) if name_closes else lead[:len(lead) - len(key_open)]
    if name_close is None:
        return

    def call_spans(text, calls):
        kv = _spans_kv(text, calls)
        if not kv:
            return None
        out = []
        for a, b, its in kv:
            e = its[-1][3] if its else b
            r = text[e:]
            if vc and r.lstrip().startswith(vc):
                e += r.find(vc) + len(vc)
            out.append((a, e))
        return out

    s1 = call_spans(text1, calls1)
    s2 = call_spans(text2, calls2) if text2 else None
    frame = frame_of(s1[0], s2)
    s_set = list(dict.fromkeys(m.strip() for m in s_mids))
    j_set = list(dict.fromkeys(m.strip() for m in j_mids))
    rules, terms = [], {}
    if len(set(s_set + j_set)) == 1:
        mids = {"strict": _tokens(s_set[0] if s_set else j_set[0], trail=False)}
        mids["relax"] = mids["strict"]
    elif len(s_set) == 1 and j_set and s_set[0] not in j_set:
        # the markup before a value differs between a string and other values: it types the value
        rules = [f"ARG_STRING: {_lit(s_set[0])}", "ARG_JSON: " + " | ".join(_lit(j) for j in j_set)]
        terms = {"ARG_STRING": {"arg_type": "string"}, "ARG_JSON": {"arg_type": "json"}}
        untyped = _untyped(s_set[0], j_set)
        mids = {"strict": "(ARG_STRING | ARG_JSON)",
                "relax": f"(ARG_STRING | ARG_JSON | {_lit(untyped)})" if untyped else "(ARG_STRING | ARG_JSON)"}
    else:
        alts = " | ".join(f"({_tokens(m, trail=False)})" for m in dict.fromkeys(s_set + j_set))
        mids = {"strict": f"({alts})", "relax": f"({alts})"}
    name_term = {"text": True, "name": True, "max_length": 256}
    if not name_close.strip():              # the name runs into the first key: a name pattern
        name_term = {"name": True}
        rules.append(f"NAME: {NAME_RE}")
    value = {"text": True, "role": "value"}
    if wrapped:                             # the template puts the value on its own line(s)
        value["strip"] = "newline"
    terms.update({"NAME": name_term, "KEY": {"text": True, "role": "key", "max_length": 256}, "VALUE": value})
    body = " ".join(x for x in ("NAME", _piece(name_close) if name_close.strip() else "WS?" * bool(name_close),
                                "param*") if x)
    for relax in RELAX:
        close = f"({_tokens(value_close)})?" if relax else _tokens(value_close)
        param = f"param: {_tokens(key_open)} KEY {mids['relax' if relax else 'strict']} VALUE? {close}"
        yield "key_value", _grammar(frame, body, [param] + rules, terms, relax, argument="param")


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


def _reasoning(source: str, unknown: list[str], found: list[str], kwargs=None):
    """(bundled reasoning grammar name or None, (open, close) markers or None)."""
    return _reasoning_markers(source, unknown, found, kwargs)


def _reasoning_markers(source: str, unknown: list[str], found: list[str], kwargs=None):
    """The bundled reasoning grammar whose markers the template writes around ``reasoning_content``."""
    import toolgram
    from toolgram.compiler import registry
    r = None
    for key in ("reasoning_content", "thinking", "reasoning"):
        msg = {"role": "assistant", "content": ANSWER, key: REASON}
        try:
            r = tp.render_message(source, msg, RENDER_TOOLS, results=False, kwargs=kwargs)
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
    kwargs = template_kwargs(source, unknown)
    reasoning, marks = _reasoning(source, unknown, found, kwargs)
    probes, refused, prompt, plain = probe(source, marks, kwargs)
    unknown[:0] = refused
    chosen, enc, partial = None, None, None
    tried = []
    for encoding, data in _candidates(probes, prompt, plain):
        problems = _reads_back(data, probes)
        if not problems:
            chosen, enc = data, encoding
            break
        if partial is None and all(p.split(":")[0] in OPTIONAL_PROBES for p in problems):
            partial = (encoding, data, problems)
        tried.append(f"{encoding}: {problems[0]}")
    if chosen is None and partial:
        enc, chosen, problems = partial
        for p in problems:
            unknown.append(f"probe {p.split(':')[0]!r}: the draft does not read the template's rendering back "
                           f"({p.split(': ', 1)[1]}); left out of its corpus")
            probes.pop(p.split(":")[0])
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

"""CLI commands for Hugging Face response templates:

    toolgram export NAME --to response-template      # a bundled grammar as a template (or why it cannot be)
    toolgram check-template PATH [--corpus NAME]     # a model author's check of a template before publishing

``check-template`` compiles the template (a field-path error ends it), runs it over the bundled corpus of its
family and reports: disagreements with toolgram's own grammar for the family, chunk-invariance failures
(streamed in 1-character deltas and in each case's chunks vs one-shot), text lost (segments that do not
rebuild the output), the reference implementation's reading where transformers is installed, and -- when the
checkpoint ships a chat template -- whether calls rendered by that template read back and are accepted by
the derived constraint.  Exit status 1 on any problem.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def cmd_export(args) -> int:
    from toolgram.export import NotExpressible, to_response_template
    if args.to != "response-template":
        print(f"toolgram: unknown export format {args.to!r} (known: response-template)", file=sys.stderr)
        return 2
    try:
        t = to_response_template(args.name)
    except NotExpressible as e:
        print(f"toolgram: grammar {args.name} cannot be written as a response template: {e}", file=sys.stderr)
        return 1
    notes = t.pop("_toolgram_notes", [])
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    print(json.dumps(t, indent=2, ensure_ascii=False))
    return 0


def _family(path: Path, explicit: str | None) -> str | None:
    import toolgram
    if explicit:
        return explicit
    d = path if path.is_dir() else path.parent
    cfg = d / "config.json"
    names = [d.name]
    if cfg.exists():
        try:
            c = json.loads(cfg.read_text(encoding="utf-8"))
            names += [c.get("_name_or_path") or "", *(c.get("architectures") or [])]
        except ValueError:
            pass
    for n in names:
        if n and toolgram.for_model(n):
            return toolgram.for_model(n)
    return None


def _chat_template(path: Path) -> str | None:
    d = path if path.is_dir() else path.parent
    jinja = d / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    cfg = d / "tokenizer_config.json"
    if cfg.exists():
        try:
            ct = json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
        except ValueError:
            return None
        if isinstance(ct, list):
            ct = next((x.get("template") for x in ct if x.get("name") == "default"), None)
        return ct if isinstance(ct, str) else None
    return None


_SAMPLE_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"]}}}]
_SAMPLE_CALLS = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
                 {"name": "get_weather", "arguments": {"city": "Rome", "days": 1}}]


def _env():
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise jinja2.TemplateError(msg)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False, separators=None, sort_keys=False: \
        json.dumps(x, indent=indent, ensure_ascii=ensure_ascii, separators=separators, sort_keys=sort_keys)
    env.globals["raise_exception"] = raise_exception
    return env


def generation_prompt(chat_template: str | None) -> str | None:
    """The prompt a chat template renders for one user message with the generation prompt (what opens the
    assistant turn: a thinking block it prefills decides where output starts), or None."""
    if not chat_template:
        return None
    try:
        return _env().from_string(chat_template).render(messages=[{"role": "user", "content": "Hi"}],
                                                        add_generation_prompt=True, bos_token="", eos_token="")
    except Exception:
        return None


def render_calls(chat_template: str, template: dict) -> str | None:
    """The assistant message with two calls as the checkpoint's chat template renders it (the text after the
    template's last start anchor), or None where it cannot be rendered."""
    import regex
    try:
        env = _env()
    except ImportError:
        return None
    calls = [{"type": "function", "id": f"call_{i}", "function": dict(c)} for i, c in enumerate(_SAMPLE_CALLS)]
    messages = [{"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "", "tool_calls": calls}]
    try:
        text = env.from_string(chat_template).render(messages=messages, tools=_SAMPLE_TOOLS,
                                                     add_generation_prompt=False, bos_token="", eos_token="")
    except Exception:
        return None
    anchor = template.get("start_anchor_pattern") or "|".join(
        regex.escape(a) for a in ([template["start_anchor"]] if isinstance(template.get("start_anchor"), str)
                                  else template.get("start_anchor") or []))
    last = None
    for m in regex.finditer(anchor, text, regex.DOTALL) if anchor else ():
        last = m.end()
    if last is None:
        return None
    text = text[last:]
    # the message ends at the end-of-turn marker (the implicit field's closer): the model stops there
    for f in template.get("fields", {}).values():
        if "open" in f or "open_pattern" not in f and "open" in f:
            continue
        if "open_pattern" in f:
            continue
        close = f.get("close_pattern") or "|".join(
            regex.escape(c) for c in ([f["close"]] if isinstance(f.get("close"), str) else f.get("close") or []))
        if close:
            m = regex.search(close, text, regex.DOTALL)
            if m is not None and m.end() > m.start():
                text = text[:m.start()]
    return text


def check_template(path: str, corpus_name: str | None = None, out=print) -> int:
    import toolgram
    from toolgram import corpus
    from toolgram.errors import GrammarError
    from toolgram.response_templates import (difference, normalize_result, reference_parse)
    problems = 0
    p = Path(path)
    try:
        g = toolgram.from_response_template(p)
    except GrammarError as e:
        out(f"FAIL compile: {e}")
        return 1
    out(f"ok   compiled: {len(g.compiled.tables.actions)} parser states, call markers {list(g.triggers)}")
    family = _family(p, corpus_name)
    try:
        import transformers.utils.chat_parsing  # noqa: F401
        have_ref = True
    except ImportError:
        have_ref = False
    if family is None:
        out("note no corpus: name one with --corpus (a bundled grammar)")
    else:
        bundled_cases = corpus.load_cases(family)
        out(f"     corpus {family}: {len(bundled_cases)} cases")
        ref_diff = 0
        for case in bundled_cases:
            one = g.parse(case.output, case.tools, new_id=corpus.counter_ids())
            if "".join(t for _, t in one.segments) != case.output:
                out(f"FAIL text lost: {case.name}")
                problems += 1
            for parts in (list(case.output), case.chunks or [case.output]):
                _, streamed = corpus.stream_deltas(g, case, parts)
                if corpus.summary(streamed) != corpus.summary(one):
                    out(f"FAIL chunk invariance: {case.name}")
                    problems += 1
                    break
            theirs = corpus.grammar_for(case).parse(case.output, case.tools, reasoning=case.reasoning)
            d = difference(normalize_result(one), normalize_result(theirs))
            if d:
                out(f"FAIL disagrees with grammar {family} in {d}: {case.name}")
                problems += 1
            if have_ref:
                ref = reference_parse(g.template, case.output, "", case.tools)
                if difference(normalize_result(one), ref):
                    ref_diff += 1
        if have_ref:
            out(f"info transformers' parse_response reads {ref_diff} of {len(bundled_cases)} cases differently "
                f"(docs/response-templates.md lists why)")
    ct = _chat_template(p)
    if ct is None:
        out("note no chat template beside the template: rendered calls not checked")
    else:
        rendered = render_calls(ct, g.template)
        if rendered is None:
            out("FAIL the chat template could not render two calls (or its output has no start anchor)")
            problems += 1
        else:
            r = g.parse(rendered, _SAMPLE_TOOLS)
            got = [(c.name, json.loads(c.arguments)) for c in r.tool_calls]
            want = [(c["name"], c["arguments"]) for c in _SAMPLE_CALLS]
            if got != want:
                out(f"FAIL rendered calls read back as {got}, expected {want}")
                problems += 1
            else:
                out("ok   calls rendered by the chat template read back exactly")
            try:
                import llguidance  # noqa: F401
                from toolgram.serve.demo_model import build_tokenizer, markers_of
                tok = build_tokenizer(markers_of(g))
                lt = llguidance.LLTokenizer(tok.to_str(), eos_token=0)
                for choice in ("auto", "required"):
                    c = g.constraint(_SAMPLE_TOOLS, choice, tokenizer=tok)
                    m = llguidance.LLMatcher(lt, c.text, log_level=0)
                    ok = not m.is_error() and all(m.consume_token(t) for t in tok.encode(rendered.rstrip()).ids) \
                        and (m.is_accepting() or m.is_stopped())
                    out(("ok  " if ok else "FAIL") + f" {choice} constraint "
                        f"{'accepts' if ok else 'rejects'} the rendered calls")
                    problems += not ok
            except ImportError:
                out("note llguidance not installed: constraints not checked against rendered calls")
    out(f"{'FAIL' if problems else 'ok  '} {problems} problem(s)")
    return 1 if problems else 0


def cmd_check_template(args) -> int:
    return check_template(args.path, args.corpus)


def add_commands(sub) -> None:
    e = sub.add_parser("export", help="write a bundled grammar in another format (a response template)",
                       description="Print the Hugging Face response template equivalent to a bundled grammar, "
                                   "or say why the spec cannot express it (exit 1).")
    e.add_argument("name")
    e.add_argument("--to", default="response-template", help="format (response-template)")
    e.set_defaults(func=cmd_export)
    c = sub.add_parser("check-template", help="check a response template before publishing it",
                       description="Compile a response template (a dict in tokenizer_config.json, a JSON file or "
                                   "a model directory), run it over the bundled corpus of its family and over "
                                   "calls rendered by the checkpoint's chat template; exit 1 on any problem.")
    c.add_argument("path")
    c.add_argument("--corpus", help="bundled grammar whose corpus to run (default: from the model name)")
    c.set_defaults(func=cmd_check_template)

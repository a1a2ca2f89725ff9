"""``docs/formats.md``, generated from the bundled grammar files: one section per grammar.

Each section gives what the file says (description, model globs, default reasoning, policies, the encoding
blocks it uses, the markers that start a call) and its example with the parse toolgram makes of it, so the
page cannot drift from the grammars.  The last part, real chat templates, comes from the template table the
tests check (``tests/data/templates.yaml``): which grammar each of llama.cpp's templates maps to, the
templates with no tool-call syntax, and what each template's round trip showed.  ``python -m
toolgram.formats_doc`` rewrites the page; tests/test_formats_doc.py checks that it is up to date.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from toolgram.api import load
from toolgram.compiler import registry
from toolgram.ir import BLOCK

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "formats.md"
TEMPLATES = ROOT / "tests" / "data" / "templates.yaml"

HEAD = """# Formats

Generated from `grammars/*.yaml` by `python -m toolgram.formats_doc` (a test checks it is up to date): every
bundled tool-call grammar and reasoning grammar, what it fits, and the parse toolgram makes of its example.
How to write one: [grammar-format.md](grammar-format.md).  Policies not listed are the defaults: a call
commits when its name is complete, unknown tool names are kept and flagged, text around calls is content.

| grammar | models | default reasoning |
|---|---|---|
"""


def _code(text: str, lang: str = "text") -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{lang}\n{text}\n{fence}"


def _cell(text: str) -> str:
    """Text made safe for a markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "\\n")


def _models(models) -> str:
    return ", ".join(f"`{m}`" for m in models) if models else "none (named explicitly)"


def _section(name: str) -> str:
    g = load(name)
    c = g.compiled
    lines = [f"## {name}", "", c.description.strip(), ""]
    if c.alias_of:
        lines += [f"- **Alias of** `{c.alias_of}`.", ""]
    lines.append(f"- **Models:** {_models(c.models)}")
    aliases = sorted(a for a, n in registry.alias_table().items() if n == name)
    if aliases:
        lines.append("- **Also answers to** (peers' parser names): " + ", ".join(f"`{a}`" for a in aliases))
    if c.default_reasoning:
        lines.append(f"- **Default reasoning:** `{c.default_reasoning}`")
    policies = {k: v for k, v in c.policies.items() if k != "name_pattern"}
    if policies:
        lines.append("- **Policies:** " + ", ".join(f"`{k}: {v}`" for k, v in sorted(policies.items())))
    blocks = sorted({s.block for s in c.terminals.values() if s.kind == BLOCK})
    if blocks:
        lines.append("- **Encoding blocks:** " + ", ".join(f"`{b}`" for b in blocks))
    if c.triggers:
        lines.append("- **Call markers (triggers):** " + ", ".join(f"`{t}`" for t in c.triggers))
    lines.append(f"- **File:** `grammars/{name}.yaml`, corpus `grammars/corpus/{name}.yaml`")
    if c.example:
        r = g.parse(c.example)
        parsed = {"content": r.content, "reasoning_content": r.reasoning_content,
                  "tool_calls": [{"name": t.name, "arguments": json.loads(t.arguments)} for t in r.tool_calls]}
        parsed = {k: v for k, v in parsed.items() if v not in (None, [])}
        lines += ["", "Example output:", "", _code(c.example), "", "Parsed:", "",
                  _code(json.dumps(parsed, indent=2, ensure_ascii=False), "json")]
    return "\n".join(lines) + "\n"


def _reasoning_section(name: str) -> str:
    data, _ = registry.read(registry.grammars_dir() / "reasoning" / f"{name}.yaml")
    marks = " … ".join(f"`{_cell(m)}`" for m in (data.get("open"), data.get("close")) if m) or "a channel"
    flags = [k for k in ("starts_inside", "anywhere", "ends_at_call", "channel") if data.get(k)]
    aliases = ", ".join(f"`{a}`" for a in sorted(data.get("aliases", ()))) or "-"
    return (f"| `{name}` | {marks} | {', '.join(flags) or '-'} | {aliases} | {_models(data.get('models', ()))} | "
            f"{_cell(' '.join(str(data.get('description', '')).split()))} |\n")


_CASES = {"single": "one call", "parallel": "two calls", "zero_args": "no arguments", "nested": "nested values",
          "strings": "hard strings", "markers": "the family's markers in a string", "scalars": "numbers and "
          "booleans", "content": "content before the calls"}


def _template_notes(e: dict) -> str:
    notes = []
    if e.get("calls") == "ignored":
        notes.append("the template does not render `tool_calls` (no round trip)")
    if e.get("calls") == "other":
        notes.append(f"renders calls as `{e['rendered_as']}` reads them, not as the model writes them")
    if e.get("parallel") == "refused":
        notes.append("refuses several calls in one message")
    elif e.get("parallel") == "one-per-turn":
        notes.append("each call ends the turn (one call per generation)")
    elif e.get("parallel") == "first-only":
        notes.append("renders only the first call of a message")
    if e.get("tools") == "not-rendered":
        notes.append("does not write the request's tools into the prompt")
    for case, why in (e.get("skip_cases") or {}).items():
        notes.append(f"{_CASES.get(case, case)}: {why}")
    cf = e.get("constraint_fails")
    if cf:
        which = "all cases" if cf["cases"] == "all" else ", ".join(_CASES.get(c, c) for c in cf["cases"])
        notes.append(f"constraint ({which}): {cf['reason']}")
    if e.get("needs_prompt"):
        notes.append(f"reasoning start decided by the prompt (`prompt=`), not the request's flag alone: "
                     f"{e['needs_prompt']}")
    if e.get("note"):
        notes.append(e["note"])
    return "; ".join(notes) or "round trip passes"


def _templates_section() -> str:
    if not TEMPLATES.exists():
        return ""
    import yaml
    table = yaml.safe_load(TEMPLATES.read_text(encoding="utf-8"))["templates"]
    out = ["\n## Real chat templates\n\n"
           "llama.cpp's chat templates (`models/templates/*.jinja`, fetched by `python tests/data/fetch.py`), "
           "each with the model id its file names and what `toolgram.for_model` / `reasoning_for_model` give "
           "for it.  tests/test_templates.py renders tool-call conversations through every mapped template in "
           "the server's sandbox and parses the assistant text back (single, parallel, no-argument, nested, "
           "hard-string, marker-text, number and boolean calls, content before calls), streaming equal to "
           "one-shot, and checks that `required` / `auto` constraints accept it.  Where a template cannot "
           "carry a case, or writes calls in a form the model does not, the note says so; each such note is "
           "checked to still hold.  Table: `tests/data/templates.yaml`.\n\n"
           "| template | model id | grammar | reasoning | round trip |\n|---|---|---|---|---|\n"]
    for stem, e in sorted(table.items(), key=lambda kv: kv[0].lower()):
        if e["status"] != "mapped":
            continue
        out.append(f"| `{stem}` | `{e['model']}` | [{e['grammar']}](#{e['grammar']}) | "
                   f"{e.get('reasoning') or '-'} | {_cell(_template_notes(e))} |\n")
    out.append("\n### Templates with no tool-call syntax\n\n")
    for stem, e in sorted(table.items(), key=lambda kv: kv[0].lower()):
        if e["status"] == "no-tool-calls":
            out.append(f"- `{stem}` (`{e['model']}`): {e.get('note', 'no tool calls')}\n")
    out.append("\n### Templates whose call syntax no bundled grammar reads yet\n\n"
               "| template | model id | syntax, and who adds it |\n|---|---|---|\n")
    for stem, e in sorted(table.items(), key=lambda kv: kv[0].lower()):
        if e["status"] == "needs-grammar":
            extra = f" ({e['note']})" if e.get("note") else ""
            out.append(f"| `{stem}` | `{e['model']}` | {_cell(e['needs'] + extra)} |\n")
    return "".join(out)


def _response_templates() -> str:
    """Per grammar: whether `toolgram export NAME --to response-template` writes it, and why not."""
    from toolgram.export import export_table
    rows = ["\n## Response templates\n\n`toolgram export NAME --to response-template` writes a grammar as a "
            "Hugging Face `response_template` where the spec can express it (see "
            "[response-templates.md](response-templates.md)); otherwise it says why.\n\n"
            "| grammar | exported | why not / notes |\n|---|---|---|\n"]
    for name, (t, why) in export_table().items():
        rows.append(f"| {name} | {'yes' if t else 'no'} | {_cell(why) or '-'} |\n")
    return "".join(rows)


def render() -> str:
    names = registry.grammar_names()
    out = [HEAD]
    for name in names:
        c = load(name).compiled
        out.append(f"| [{name}](#{name}) | {_models(c.models)} | {c.default_reasoning or '-'} |\n")
    out.append("\n## Reasoning grammars\n\nComposed with `toolgram.load(grammar, reasoning=name)` (or "
               "`--reasoning-parser`; the aliases are the peers' reasoning-parser names).\n\n"
               "| reasoning | markers | flags | aliases | models | description |\n|---|---|---|---|---|---|\n")
    out += [_reasoning_section(n) for n in registry.reasoning_names()]
    out.append(_response_templates())
    for name in names:
        out.append("\n" + _section(name))
    out.append(_templates_section())
    return "".join(out)


def main(argv=None) -> int:
    if not PAGE.parent.is_dir():
        print(f"toolgram: {PAGE.parent} does not exist: formats_doc rewrites docs/formats.md of a source checkout, "
              f"not of an installed package", file=sys.stderr)
        return 2
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

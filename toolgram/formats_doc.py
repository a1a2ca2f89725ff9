"""``docs/formats.md``, generated from the bundled grammar files: one section per grammar.

Each section gives what the file says (description, model globs, default reasoning, policies, the encoding
blocks it uses, the markers that start a call) and its example with the parse toolgram makes of it, so the
page cannot drift from the grammars.  ``python -m toolgram.formats_doc`` rewrites the page;
tests/test_formats_doc.py checks that it is up to date.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from toolgram.api import load
from toolgram.compiler import registry
from toolgram.compiler.compiled import BLOCK

PAGE = Path(__file__).resolve().parent.parent / "docs" / "formats.md"

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
    return (f"| `{name}` | {marks} | {', '.join(flags) or '-'} | {_models(data.get('models', ()))} | "
            f"{_cell(' '.join(str(data.get('description', '')).split()))} |\n")


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
               "`--reasoning-parser`).\n\n| reasoning | markers | flags | models | description |\n"
               "|---|---|---|---|---|\n")
    out += [_reasoning_section(n) for n in registry.reasoning_names()]
    out.append(_response_templates())
    for name in names:
        out.append("\n" + _section(name))
    return "".join(out)


def main(argv=None) -> int:
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

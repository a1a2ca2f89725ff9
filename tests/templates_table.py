"""The template table (tests/data/templates.yaml) and the probe conversations of the template tests.

The table says, per real chat template of the collection, which model id the file names and which grammar
and reasoning grammar that model must map to; docs/formats.md is generated from it (toolgram/formats_doc.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

TABLE_FILE = Path(__file__).parent / "data" / "templates.yaml"
STATUSES = ("mapped", "no-tool-calls", "needs-grammar")


def table() -> dict[str, dict]:
    return yaml.safe_load(TABLE_FILE.read_text(encoding="utf-8"))["templates"]


def _tool(name, properties=None, required=None):
    from toolgram.template_probe import tool
    return tool(name, properties, required)


TOOLS = [
    _tool("get_weather", {"city": {"type": "string"}, "days": {"type": "integer"}}, ["city"]),
    _tool("get_time", {"timezone": {"type": "string"}}, ["timezone"]),
    _tool("list_files"),
    _tool("search", {"filter": {"type": "object"}, "items": {"type": "array", "items": {"type": "object"}}}),
    _tool("echo", {"text": {"type": "string"}}, ["text"]),
    _tool("compute", {"n": {"type": "integer"}, "x": {"type": "number"}, "big": {"type": "integer"},
                      "small": {"type": "number"}, "yes": {"type": "boolean"}, "no": {"type": "boolean"}}),
]

STRINGS = 'He said "hi" & left.\nSecond line\twith a tab — ünïcödé 中文 😀 C:\\path\\to\\file {braces} [x] <y/>'

# name -> (calls [(name, arguments)], content before the calls)
CASES = {
    "single": ([("get_weather", {"city": "Paris", "days": 3})], None),
    "parallel": ([("get_weather", {"city": "Paris"}), ("get_time", {"timezone": "Europe/Bern"})], None),
    "zero_args": ([("list_files", {})], None),
    "nested": ([("search", {"filter": {"tags": ["a", "b"], "range": {"min": 1, "max": 2.5}},
                            "items": [{"id": 1, "ok": True}, {"id": 2, "note": None}]})], None),
    "strings": ([("echo", {"text": STRINGS})], None),
    "markers": ([("echo", {"text": "MARKERS"})], None),        # replaced by the family's own call markers
    "scalars": ([("compute", {"n": 42, "x": -3.25, "big": 12345678901, "small": 1.5e-07, "yes": True,
                              "no": False})], None),
    "content": ([("get_weather", {"city": "Paris"})], "Let me check the weather."),
}


def case_calls(case: str, markers) -> list[tuple[str, dict]]:
    calls, _ = CASES[case]
    if case == "markers":
        return [("echo", {"text": "see " + " and ".join(markers) + " here"})]
    return json.loads(json.dumps(calls))

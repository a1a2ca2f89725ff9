"""Behaviour snapshot for refactors: every corpus case's one-shot result and deltas under fixed splits, and
every grammar's constraint text for fixed tool lists x modes x syntaxes.

    python tests/snapshot/make_snapshot.py            # rewrite tests/snapshot/snapshot.json.gz
tests/test_snapshot.py compares the current code against the file, byte for byte."""
from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import sys
from pathlib import Path

import toolgram
from toolgram import corpus

HERE = Path(__file__).parent
FILE = HERE / "snapshot.json.gz"
SPLITS = (1, 3, 7, 64)
MODES = ("auto", "required", "none", "named")
SYNTAXES = ("lark", "gbnf", "structural_tag")


def _ids():
    n = itertools.count()
    return lambda: f"call_{next(n)}"


def _result(r) -> dict:
    return {"content": r.content, "reasoning": r.reasoning_content,
            "calls": [[c.id, c.name, c.arguments] for c in r.tool_calls],
            "segments": repr(getattr(r, "segments", None))}


def parse_cases() -> dict:
    out = {}
    sets = corpus.tool_sets()
    for name in toolgram.grammars():
        for case in corpus.load_cases(name, sets):
            g = toolgram.load(case.grammar, **case.load) if case.load else toolgram.load(case.grammar)
            entry = {"one": _result(g.parse(case.output, case.tools, new_id=_ids(), reasoning=case.reasoning))}
            for k in SPLITS:
                p = g.stream(case.tools, new_id=_ids(), reasoning=case.reasoning)
                deltas = []
                for i in range(0, len(case.output), k):
                    deltas.extend(p.feed(case.output[i:i + k]))
                deltas.extend(p.close())
                entry[f"split{k}"] = hashlib.sha256(json.dumps(deltas, sort_keys=True).encode()).hexdigest()
            out[case.id] = entry
    return out


TOOLSETS = {
    "weather": "weather",
    "typed": "typed",
    "both": ["weather", "typed"],
}


def constraint_texts() -> dict:
    sets = corpus.tool_sets()
    toolsets = {k: [t for n in (v if isinstance(v, list) else [v]) for t in sets[n]] for k, v in TOOLSETS.items()}
    toolsets["none"] = None
    out = {}
    for name in toolgram.grammars():
        g = toolgram.load(name)
        for tk, tools in toolsets.items():
            for mode in MODES:
                choice = mode
                if mode == "named":
                    if not tools:
                        continue
                    choice = {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
                for syntax in SYNTAXES:
                    for parallel in (True, False):
                        key = f"{name}|{tk}|{mode}|{syntax}|{parallel}"
                        try:
                            text = g.constraint(tools, choice, parallel, syntax).text
                        except toolgram.ConstraintError as e:
                            text = "ERROR " + str(e)
                        out[key] = hashlib.sha256(text.encode()).hexdigest()
    return out


def snapshot() -> dict:
    return {"parse": parse_cases(), "constraint": constraint_texts()}


if __name__ == "__main__":
    data = snapshot()
    with open(FILE, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as z:
        z.write(json.dumps(data, sort_keys=True, indent=0).encode())
    print(f"{len(data['parse'])} cases, {len(data['constraint'])} constraints -> {FILE}", file=sys.stderr)

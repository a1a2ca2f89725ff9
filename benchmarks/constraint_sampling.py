"""Issue 13, long run: soundness of the constraints by sampling, per grammar x mode x tokenization.

    python benchmarks/constraint_sampling.py [--samples 200] [--grammars all|NAME...] [--tokenizations bytes
        bytes+special markers] [--markdown]

A uniform sampler over the tokens the llguidance mask allows (tests/sampling.py) decodes under each constraint
(modes: auto, required, named, none, required with parallel_tool_calls=False; the corpus "weather" tools);
every finished output is parsed back and checked: calls only to the request's tools, arguments valid
(jsonschema), at most one call without parallel_tool_calls, none under none, no call text left in content.
Prints one line per grammar x tokenization: samples finished / unsound.  The CI subset is
tests/test_constraint_matrix.py::test_sampled_outputs_are_sound (3 samples per mode, fixed seed)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numpy as np  # noqa: E402

import toolgram  # noqa: E402
from toolgram import corpus  # noqa: E402

MODES = [("auto", True), ("required", True), ("named", True), ("none", True), ("required", False)]


def run(name: str, tokenization: str, samples: int, seed: int = 0) -> dict:
    from sampling import sample, unsound
    from vocabs import byte_vocab, marker_vocab
    g = toolgram.load(name)
    tools = corpus.tool_sets()["weather"]
    v = {"bytes": lambda: byte_vocab(None, False), "bytes+special": lambda: byte_vocab(name, True),
         "markers": lambda: marker_vocab(name)}[tokenization]()
    out = {"grammar": name, "tokenization": tokenization, "samples": 0, "finished": 0, "calls": 0, "unsound": 0,
           "examples": []}
    t = time.perf_counter()
    for mode, parallel in MODES:
        choice = {"type": "function", "function": {"name": "get_weather"}} if mode == "named" else mode
        c = g.constraint(tools, choice, parallel_tool_calls=parallel, tokenizer=v.added)
        rng = np.random.default_rng(seed)
        for _ in range(samples):
            ids, finished = sample(v, c.text, rng)
            out["samples"] += 1
            if not finished:
                continue
            out["finished"] += 1
            text = v.decode(ids)
            out["calls"] += len(g.parse(text, tools).tool_calls)
            why = unsound(g, tools, mode, parallel, text)
            if why:
                out["unsound"] += 1
                if len(out["examples"]) < 3:
                    out["examples"].append({"mode": mode, "parallel": parallel, "why": why, "output": text[:300]})
    out["seconds"] = round(time.perf_counter() - t, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200, help="per grammar x mode x tokenization")
    ap.add_argument("--grammars", nargs="*", default=["all"])
    ap.add_argument("--tokenizations", nargs="*", default=["bytes", "bytes+special", "markers"])
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    names = sorted(toolgram.grammars()) if a.grammars == ["all"] else a.grammars
    rows = []
    for name in names:
        for tok in a.tokenizations:
            r = run(name, tok, a.samples)
            rows.append(r)
            if not a.markdown:
                print(json.dumps(r), flush=True)
    if a.markdown:
        print("| grammar | tokenization | samples | finished | calls read | unsound |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['grammar']} | {r['tokenization']} | {r['samples']} | {r['finished']} | {r['calls']} | "
                  f"{r['unsound']} |")


if __name__ == "__main__":
    main()

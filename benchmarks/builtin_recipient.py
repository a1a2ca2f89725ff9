"""Issue 13, harmony's builtin recipients: what the constraint costs for the grammars whose text changed.

For 20 tools (19 of benchmarks/constraints.py's `tools` and get_weather), a byte-level vocabulary with the
family's special tokens (tests/vocabs.py), per grammar and mode (``required`` too for harmony's two): the
constraint text's size, the build (fastest of 5, a new tool set each time), llguidance's compile
(``LLMatcher``, fastest of 5) and the mask fill per token (median / p99 over the positions, each the fastest
of ``--runs`` matcher copies: the first run warms the lexer) while the matcher steps through an output: for
harmony's two grammars a message to the builtin python tool and then a call, for the others the grammar's
example.  The output's acceptance is printed too (a "before" tree refuses the builtin message; its figures
then stop there).  Compare two trees by running this script against each, in turns, on the same machine.

    python benchmarks/builtin_recipient.py [--runs N] [--grammars ...]    # prints a markdown table
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import toolgram  # noqa: E402
from toolgram import corpus  # noqa: E402

from constraints import tools  # noqa: E402

GRAMMARS = ["harmony", "harmony_llmjp", "functionary_v32", "hunyuan_a13b", "solar_open"]
BUILTIN = {
    "harmony": '<|channel|>analysis to=python code<|message|>print(2 ** 10)<|call|><|start|>assistant'
               '<|channel|>commentary to=functions.tool_3 <|constrain|>json<|message|>{"query": "x"}<|call|>',
    "harmony_llmjp": '<|channel|> analysis to=python code<|message|> print(2 ** 10)<|call|> <|start|> assistant'
                     '<|channel|> commentary to=functions.tool_3 <|constrain|> json<|message|> {"query": "x"}'
                     '<|call|>',
}


def measure(name: str, mode: str, runs: int):
    """(text kB, build ms, compile ms, mask fills µs per position, accepted) for one grammar and mode."""
    import llguidance
    import llguidance.numpy as lnp
    from vocabs import byte_vocab
    g = toolgram.load(name)
    v = byte_vocab(name, True)
    best, text = 1e9, ""
    for r in range(5):
        ts = tools(19) + corpus.tool_sets()["weather"][:1]     # (get_weather: the examples' tool)
        ts[0]["function"]["description"] = f"run {r}-{time.perf_counter()}"      # a new tool set each time
        t = time.perf_counter()
        text = g.constraint(ts, mode, tokenizer=v.added).text
        best = min(best, time.perf_counter() - t)
    compiles = []
    for _ in range(5):
        t = time.perf_counter()
        fresh = llguidance.LLMatcher(v.lt, text, log_level=0)
        compiles.append(time.perf_counter() - t)
    out = BUILTIN.get(name) or g.compiled.example
    mask = lnp.allocate_token_bitmask(1, v.lt.vocab_size)
    rounds = []
    for _ in range(runs):
        m = fresh.deep_copy()                  # (copies share the lexer's lazily built states: warm after one)
        fills, accepted = [], True
        for tok in v.encode(out):
            t = time.perf_counter()
            lnp.fill_next_token_bitmask(m, mask, 0)
            fills.append(time.perf_counter() - t)
            if not m.consume_token(tok):
                accepted = False
                break
        rounds.append(fills)
    n = min(map(len, rounds))
    fills = [min(r[i] for r in rounds) * 1e6 for i in range(n)]
    accepted = accepted and (m.is_accepting() or m.is_stopped())
    return len(text) / 1000, best * 1000, min(compiles) * 1000, fills, accepted


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--grammars", nargs="*", default=GRAMMARS)
    args = ap.parse_args()
    print("| grammar | mode | text (kB) | build (ms) | compile (ms) | mask median / p99 (µs) | output accepted |")
    print("|---|---|---|---|---|---|---|")
    for name in args.grammars:
        for mode in ("auto", "required") if name in BUILTIN else ("auto",):
            kb, build, comp, fills, ok = measure(name, mode, args.runs)
            p99 = sorted(fills)[min(len(fills) - 1, int(0.99 * len(fills)))]
            print(f"| {name} | {mode} | {kb:.1f} | {build:.1f} | {comp:.1f} | "
                  f"{statistics.median(fills):.0f} / {p99:.0f} | {'yes' if ok else 'no'} |", flush=True)


if __name__ == "__main__":
    main()

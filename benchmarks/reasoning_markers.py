"""Issue 13 item 5 (call markup inside reasoning): what the two constraint changes cost, per composition.

The changes are switched off in-process to get the "before" column: reasoning text holding the grammar's
marker tokens (`Specialiser._held_tokens`) and content that may not begin with an optional opener
(`_optional_openers`).  For 20 tools, ``auto``, a byte-level vocabulary with the family's special tokens
(tests/vocabs.py): the build (fastest of 5, new tool sets), llguidance's compile (``LLMatcher``, fastest of
5) and the mask fill per token (median / p99 over the positions, each the fastest of the rounds) while the
matcher steps through a reasoning block with a call marker in it, then content.  Before and after are
measured in turns (``--rounds``, default 3).

    python benchmarks/reasoning_markers.py [--rounds N]      # prints a markdown table
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import toolgram  # noqa: E402
from toolgram.compiler import constraint as builder  # noqa: E402
from toolgram.compiler.constraint import specialise  # noqa: E402

from constraints import tools  # noqa: E402

PAIRS = [("hermes", "qwen3"), ("qwen3_coder", "qwen3"), ("deepseek_v3", "deepseek_r1"), ("glm45", None),
         ("lfm2", None), ("mistral", "mistral")]


def measure(name, reasoning):
    """(build ms, compile ms, mask fill µs per position, whether the output was accepted)."""
    g = toolgram.load(name, reasoning) if reasoning else toolgram.load(name)
    spec = g.compiled.reasoning
    return timings(g, f"{spec.open or ''}I could call {g.triggers[0]} here, or not.{spec.close}The answer is 42.")[:4]


def timings(g, out: str):
    """For ``g``'s `auto` constraint, 20 new tools, a byte vocabulary with the family's special tokens: (build ms,
    compile ms, mask fill µs per position of ``out``, whether ``out`` was accepted, text length)."""
    import llguidance
    import llguidance.numpy as lnp
    from vocabs import byte_vocab
    v = byte_vocab(g.name, True)
    best, text = 1e9, ""
    for r in range(5):
        ts = tools(20)
        ts[0]["function"]["description"] = f"run {r}-{time.perf_counter()}"      # a new tool set each time
        t = time.perf_counter()
        text = g.constraint(ts, "auto", tokenizer=v.added).text
        best = min(best, time.perf_counter() - t)
    compile_s = []
    for _ in range(5):
        t = time.perf_counter()
        m = llguidance.LLMatcher(v.lt, text, log_level=0)
        compile_s.append(time.perf_counter() - t)
    mask = lnp.allocate_token_bitmask(1, v.lt.vocab_size)
    fills = []
    for tok in v.encode(out):
        t = time.perf_counter()
        lnp.fill_next_token_bitmask(m, mask, 0)
        fills.append(time.perf_counter() - t)
        if not m.consume_token(tok):
            break
    return best * 1000, min(compile_s) * 1000, [f * 1e6 for f in fills], m.is_accepting(), len(text)


def fastest(runs):
    """Each figure's fastest over the runs (other jobs on a shared machine only ever add time)."""
    n = min(len(r[2]) for r in runs)
    fills = [min(r[2][i] for r in runs) for i in range(n)]
    return (min(r[0] for r in runs), min(r[1] for r in runs), statistics.median(fills),
            sorted(fills)[min(n - 1, int(0.99 * n))], runs[0][3])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    held, openers = specialise.Specialiser._held_tokens, builder._optional_openers
    rows = []
    for name, reasoning in PAIRS:
        before, after = [], []
        for _ in range(args.rounds):          # interleaved, so that load hits both alike
            specialise.Specialiser._held_tokens = lambda self, terminal: []
            builder._optional_openers = lambda g, rules, start: []
            before.append(measure(name, reasoning))
            specialise.Specialiser._held_tokens, builder._optional_openers = held, openers
            after.append(measure(name, reasoning))
        rows.append((f"{name} + {reasoning or toolgram.load(name).reasoning}", fastest(before), fastest(after)))
    print("| composition | build 20 (ms) | compile (ms) | mask median / p99 (µs) | output accepted |")
    print("|---|---|---|---|---|")
    for label, b, a in rows:
        print(f"| {label} | {b[0]:.1f} → {a[0]:.1f} | {b[1]:.1f} → {a[1]:.1f} | {b[2]:.0f} / {b[3]:.0f} → "
              f"{a[2]:.0f} / {a[3]:.0f} | {'yes' if b[4] else 'no'} → {'yes' if a[4] else 'no'} |")


if __name__ == "__main__":
    main()

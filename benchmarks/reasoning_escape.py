"""Issue 13 item 5, the last two refusals: what content holding marker tokens and the written-out reasoning
escape cost, per composition.

Both changes are switched off in-process for the "before" column: content holding the grammar's marker
tokens (`Specialiser._held_tokens` for content terminals) and the lookahead terminal written as what follows
it (`passes.lookaheads`; before: written as nothing).  For 20 tools, ``auto``, a byte-level vocabulary with
the family's special tokens (tests/vocabs.py): the build (fastest of 5, new tool sets), llguidance's compile
(``LLMatcher``, fastest of 5), the constraint text's length, and the mask fill per token (median / p99 over
the positions, each the fastest of the rounds) while the matcher steps through a reasoning block, then
content holding the reasoning closer (a special token the parser keeps in content there).  Before and after
are measured in turns (``--rounds``, default 3).

    python benchmarks/reasoning_escape.py [--rounds N]      # prints a markdown table
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import toolgram  # noqa: E402
from toolgram.compiler.constraint import passes, specialise  # noqa: E402
from toolgram.ir import EMPTY, Alt, Rep, Seq, Tok, alt, seq  # noqa: E402

from reasoning_markers import fastest, timings  # noqa: E402
from constraints import tools  # noqa: E402

PAIRS = [("glm45", "glm45"), ("seed_oss", "seed_oss"), ("minimax_m2", "minimax_m2"), ("qwen3_coder", "qwen35"),
         ("apriel", "apriel"), ("hermes", "qwen3")]


def _escape_as_nothing(rules: dict, ahead: dict) -> dict:
    """The former writing: every lookahead terminal left out (unchanged nodes kept, as the writer shares
    nodes by identity)."""
    memo: dict = {}

    def walk(node):
        t = type(node)
        if t is Tok and node.name in ahead:
            return EMPTY
        if t not in (Seq, Alt, Rep):
            return node
        if id(node) not in memo:
            if t is Rep:
                item = walk(node.item)
                out = node if item is node.item else Rep(item, node.lo, node.hi)
            else:
                parts = node.items if t is Seq else node.options
                new = [walk(x) for x in parts]
                out = node if all(a is b for a, b in zip(new, parts)) else (seq if t is Seq else alt)(*new)
            memo[id(node)] = (node, out)
        return memo[id(node)][1]
    for name in list(rules):
        rules[name] = walk(rules[name])
    return rules


def measure(name, reasoning):
    """(build ms, compile ms, mask fill µs per position, whether the output was accepted, text length)."""
    g = toolgram.load(name, reasoning)
    spec = g.compiled.reasoning
    return timings(g, f"{spec.open or ''}Plan first.{spec.close}The answer{spec.close} is 42.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    held, ahead = specialise.Specialiser._held_tokens, passes.lookaheads

    def held_but_content(self, terminal):
        return [] if self.specs[terminal].role == "content" else held(self, terminal)
    rows = []
    for name, reasoning in PAIRS:
        before, after = [], []
        for _ in range(args.rounds):          # interleaved, so that load hits both alike
            specialise.Specialiser._held_tokens, passes.lookaheads = held_but_content, _escape_as_nothing
            before.append(measure(name, reasoning))
            specialise.Specialiser._held_tokens, passes.lookaheads = held, ahead
            after.append(measure(name, reasoning))
        rows.append((f"{name} + {reasoning}", fastest(before), fastest(after), before[0][4], after[0][4]))
    print("| composition | build 20 (ms) | compile (ms) | text (chars) | mask median / p99 (µs) | output accepted |")
    print("|---|---|---|---|---|---|")
    for label, b, a, lb, la in rows:
        print(f"| {label} | {b[0]:.1f} → {a[0]:.1f} | {b[1]:.1f} → {a[1]:.1f} | {lb} → {la} | {b[2]:.0f} / {b[3]:.0f} → "
              f"{a[2]:.0f} / {a[3]:.0f} | {'yes' if b[4] else 'no'} → {'yes' if a[4] else 'no'} |")


if __name__ == "__main__":
    main()

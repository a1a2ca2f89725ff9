"""Streaming cost of a structured argument written as nested elements (the xml_tree encoding).

One call whose array argument holds n objects (two typed members each), fed in 1-character deltas, at n and
2n elements: µs per delta at 2n and the ratio time(2n)/time(n) (CPU time of the thread, the fastest of
``--repeat`` alternating runs; 2 means linear).

    python benchmarks/nested_values.py                 # minimax_m3, 2000 / 4000 elements
    python benchmarks/nested_values.py --elements 500
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import toolgram  # noqa: E402

TOOLS = [{"type": "function", "function": {"name": "plan", "parameters": {"type": "object", "properties": {
    "stops": {"type": "array", "items": {"type": "object", "properties": {
        "city": {"type": "string"}, "nights": {"type": "integer"}}}}}}}}]


def output(n: int, ns: str = "]<]minimax[>[") -> str:
    item = f"{ns}<item>{ns}<city>Lyon, France{ns}</city>{ns}<nights>12{ns}</nights>{ns}</item>"
    return (f"</mm:think>{ns}<tool_call>\n{ns}<invoke name=\"plan\">{ns}<stops>" + item * n
            + f"{ns}</stops>{ns}</invoke>\n{ns}</tool_call>")


def run(g, text: str) -> float:
    p = g.stream(tools=TOOLS)
    t0 = time.thread_time()
    for ch in text:
        p.feed(ch)
    p.close()
    elapsed = time.thread_time() - t0
    assert len(p.result.tool_calls) == 1 and not p.result.recovered
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grammar", default="minimax_m3")
    ap.add_argument("--elements", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    g = toolgram.load(args.grammar)
    small, large = output(args.elements), output(2 * args.elements)
    best = {small: float("inf"), large: float("inf")}
    for _ in range(args.repeat):
        for text in (small, large):
            best[text] = min(best[text], run(g, text))
    print(f"{args.grammar}: {2 * args.elements} elements, {len(large)} characters in 1-character deltas: "
          f"{best[large] / len(large) * 1e6:.2f} µs/delta, ratio ×{best[large] / best[small]:.2f}")


if __name__ == "__main__":
    main()

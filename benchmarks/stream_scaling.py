"""Streaming cost per delta and its growth with output length, for every bundled grammar.

For each grammar: a call whose string argument is N characters long (N = 16k and 32k), built from the
grammar's own corpus (a case whose string argument appears verbatim in the output gets it replaced), and
plain content of 0.5 MB and 1 MB, fed in 1- and 4-character deltas.  Prints the median microseconds per
delta and time(2n)/time(n) (CPU time of the whole stream, the fastest of --repeat alternating runs), which
stays near 2 for a linear parser (a parser that re-scans its output grows by 4).  Also prints the cold compile time of each grammar.

    python benchmarks/stream_scaling.py [GRAMMAR ...] [--repeat 5] [--markdown]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TOOLGRAM_CACHE", "")

import toolgram  # noqa: E402
from toolgram import corpus  # noqa: E402
from toolgram.compiler import registry  # noqa: E402

PROSE = ("The quick brown fox jumps over the lazy dog; 3 < 4 and {sets} [lists] are fine. "
         "Résumé naïve café, 東京, emoji-free text. ")


def run_once(g, text: str, size: int, tools) -> tuple[float, float]:
    """(CPU seconds of this thread for the whole stream, median wall seconds of one ``feed``)."""
    p = g.stream(tools)
    chunks = [text[i:i + size] for i in range(0, len(text), size)]
    clock = time.perf_counter
    per = []
    gc.collect()
    start = time.thread_time()
    for c in chunks:
        t = clock()
        p.feed(c)
        per.append(clock() - t)
    p.close()
    total = time.thread_time() - start
    return total, statistics.median(per)


def measure_pair(g, small: str, large: str, size: int, tools, repeat: int) -> tuple[float, float, float]:
    """(ratio time(large)/time(small), CPU seconds for large, median µs per delta for large).

    The two lengths alternate, and each keeps its fastest run: on a shared machine the other jobs only ever
    add time, so the minimum is the figure least disturbed by them (and CPU time, not wall time, leaves out
    the time the process waited for a core)."""
    ts, tl, ml = [], [], []
    for _ in range(repeat):
        ts.append(run_once(g, small, size, tools)[0])
        total, med = run_once(g, large, size, tools)
        tl.append(total)
        ml.append(med)
    return min(tl) / min(ts), min(tl), statistics.median(ml)


def compile_ms(name: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        os.environ["TOOLGRAM_CACHE"] = d
        registry._COMPILED.clear()
        t = time.perf_counter()
        toolgram.load(name)
        cold = time.perf_counter() - t
        registry._COMPILED.clear()
        t = time.perf_counter()
        toolgram.load(name)
        warm = time.perf_counter() - t
    os.environ["TOOLGRAM_CACHE"] = ""
    registry._COMPILED.clear()
    return cold * 1000, warm * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("grammars", nargs="*")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args(argv)
    names = args.grammars or toolgram.grammars()
    rows = []
    for name in names:
        cold, warm = compile_ms(name)
        g = toolgram.load(name)
        tpl = corpus.long_argument_template(name)
        row = {"grammar": name, "compile_ms": cold, "cached_load_ms": warm}
        if tpl is not None:
            prefix, suffix, tools = tpl
            for size in (1, 4):
                ratio, t32, m32 = measure_pair(g, prefix + "x" * 16000 + suffix, prefix + "x" * 32000 + suffix,
                                               size, tools, args.repeat)
                row[f"arg_d{size}_us"] = m32 * 1e6
                row[f"arg_d{size}_ms32k"] = t32 * 1000
                row[f"arg_d{size}_ratio"] = ratio
        text = (PROSE * (1_000_000 // len(PROSE) + 1))[:1_000_000]
        for size in (1, 4):
            ratio, tf, mf = measure_pair(g, text[:500_000], text, size, None, args.repeat)
            row[f"content_d{size}_us"] = mf * 1e6
            row[f"content_d{size}_ms1mb"] = tf * 1000
            row[f"content_d{size}_ratio"] = ratio
        rows.append(row)
        if not args.markdown:
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
            sys.stdout.flush()
    if args.markdown:
        print("| grammar | compile ms (cold / cached) | 32k arg, 1-char: µs/delta, ratio | 32k arg, 4-char: µs/delta, "
              "ratio | 1 MB content, 1-char: µs/delta, ratio | 1 MB content, 4-char: µs/delta, ratio |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            def cell(prefix):
                if f"{prefix}_us" not in r:
                    return "n/a"
                return f"{r[prefix + '_us']:.2f}, ×{r[prefix + '_ratio']:.2f}"
            print(f"| {r['grammar']} | {r['compile_ms']:.1f} / {r['cached_load_ms']:.1f} | {cell('arg_d1')} | "
                  f"{cell('arg_d4')} | {cell('content_d1')} | {cell('content_d4')} |")
    worst = max((r[k] for r in rows for k in r if k.endswith("_ratio")), default=0)
    print(f"worst time(2n)/time(n): {worst:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The long fuzzing run: at least 10^5 generated model outputs per grammar, checked for every property of
tests/test_fuzz_grammar_pieces.py (no exception, segments cover the input, streaming equals one-shot, arguments
are JSON objects, all text encodable, hostile arguments stay data, no call without a call marker).

    python benchmarks/fuzz_long.py                      # every grammar, 100,000 inputs each, 2 processes
    python benchmarks/fuzz_long.py --inputs 2000 --grammars hermes,glm47 --jobs 1     # a quick look

Each grammar's inputs come from four generators: ``pieces`` (hypothesis: markers, partial markers, corpus
slices, JSON fragments, unicode, huge numbers, deep nesting), ``arguments`` (hypothesis: real corpus calls with
hostile JSON arguments; grammars whose arguments are key/value or literal syntax get more ``pieces`` instead),
``marker-free`` (hypothesis: text without the markers that start a call) and ``mutations`` (seeded random edits
of corpus cases, as tests/test_fuzz.py does, at a higher rate).  Every input is parsed one-shot and streamed in
one random split (and 1-character deltas for one input in eight).  Workers run at nice 19; hypothesis runs in
batches with fresh seeds, and a failing batch is recorded (its shrunk example) and the run goes on.

Output: a table (``--markdown`` for docs/reliability.md) and ``--out FILE`` (JSON with every failure).
``--merge A.json B.json ...`` prints the table of several ``--out`` files together (runs split in chunks, e.g.
one process per grammar and seed, summed per grammar).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TOOLGRAM_CACHE", "")

BATCH = 2500


def _families(name: str, total: int) -> dict:
    import test_fuzz_grammar_pieces as F
    share = {"pieces": 0.40, "arguments": 0.15, "marker-free": 0.15, "mutations": 0.30}
    if not F.templates(name):
        share["pieces"] += share.pop("arguments")
    return {k: int(total * v + 0.999) for k, v in share.items()}


def run_grammar(name: str, total: int, seed: int) -> dict:
    import warnings

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import test_fuzz as OLD
    import test_fuzz_grammar_pieces as F
    import toolgram
    from toolgram import corpus
    warnings.simplefilter("ignore")
    try:
        os.nice(19)
    except OSError:
        pass
    g = toolgram.load(name)
    rng = random.Random(f"{seed}-{name}")
    stats = {"grammar": name, "inputs": 0, "with_calls": 0, "skipped_known": 0, "failures": [], "families": {},
             "chars": 0}
    t0 = time.perf_counter()

    def parts_for(text):
        pts = [rng.randint(0, len(text)) for _ in range(rng.randint(0, 8))]
        out = F.splits(text, pts)[:1]
        if len(text) <= 400 and rng.random() < 0.125:
            out.append(list(text))
        return out

    def count(text, one):
        stats["inputs"] += 1
        stats["chars"] += len(text)
        stats["with_calls"] += bool(one.tool_calls)

    def skip(text) -> bool:
        if F.known_issue(name, text):
            stats["skipped_known"] += 1
            return True
        return False

    def prop_pieces(text):
        if not skip(text):
            count(text, F.check(g, text, parts_for(text)))

    def prop_arguments(sub):
        case, text, index = F.substitute(name, *sub)
        if not skip(text):
            gg = corpus.grammar_for(case)
            F.check_substituted(gg, case, text, index, sub[1], parts_for(text))
            count(text, gg.parse(text, case.tools, reasoning=case.reasoning))

    def prop_marker_free(text):
        if not skip(text):
            F.check_marker_free(g, text, parts_for(text))
            count(text, g.parse(text))

    strategies = {"pieces": (F.outputs(name), prop_pieces), "marker-free": (F.marker_free(name), prop_marker_free)}
    if F.templates(name):
        strategies["arguments"] = (F.substituted(name), prop_arguments)
    plan = _families(name, total)
    for family, n in plan.items():
        before = stats["inputs"] + stats["skipped_known"]
        if family == "mutations":
            cases = F.cases(name)
            pieces = OLD.pieces_of(name)
            done = 0
            while done < n:
                case = rng.choice(cases)
                text = OLD.mutate(rng, case.output, pieces)
                done += 1
                if skip(text):
                    continue
                try:
                    gg = corpus.grammar_for(case)
                    one = F.check(gg, text, parts_for(text), case.tools, case.reasoning)
                    count(text, one)
                except Exception as e:                      # noqa: BLE001 - recorded, the run goes on
                    stats["failures"].append({"family": family, "input": text, "error": repr(e)[:2000]})
        else:
            strategy, prop = strategies[family]
            left = n
            while left > 0:
                k = min(BATCH, left)
                left -= k
                start = stats["inputs"] + stats["skipped_known"]
                test = given(strategy)(prop)
                test = settings(max_examples=k, deadline=None, database=None, derandomize=False,
                                suppress_health_check=list(HealthCheck))(test)
                try:
                    test()
                except Exception as e:                      # noqa: BLE001
                    stats["failures"].append({"family": family, "error": "".join(
                        traceback.format_exception_only(type(e), e))[-4000:]})
                    ran = stats["inputs"] + stats["skipped_known"] - start
                    left += max(0, k - ran)                  # (the rest of a failed batch runs again)
                    if len(stats["failures"]) > 20:
                        break
        stats["families"][family] = stats["inputs"] + stats["skipped_known"] - before
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    return stats


def _worker(args):
    return run_grammar(*args)


def _merge(paths: list[str], markdown: bool) -> int:
    per: dict = {}
    for path in paths:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        for r in d["results"]:
            m = per.setdefault(r["grammar"], {"grammar": r["grammar"], "inputs": 0, "with_calls": 0, "skipped_known": 0,
                                              "failures": [], "families": {}, "seconds": 0.0, "runs": 0})
            for k in ("inputs", "with_calls", "skipped_known", "seconds"):
                m[k] += r[k]
            m["failures"] += r["failures"]
            m["runs"] += 1
            for k, v in r["families"].items():
                m["families"][k] = m["families"].get(k, 0) + v
    results = sorted(per.values(), key=lambda r: r["grammar"])
    total = sum(r["inputs"] for r in results)
    failures = sum(len(r["failures"]) for r in results)
    if markdown:
        print("| grammar | inputs checked | of which with calls | pieces / arguments / marker-free / mutations "
              "| runs | skipped (known bug) | failures | CPU s |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            fam = " / ".join(f"{r['families'].get(k, 0):,}" for k in ("pieces", "arguments", "marker-free", "mutations"))
            print(f"| {r['grammar']} | {r['inputs']:,} | {r['with_calls']:,} | {fam} | {r['runs']} "
                  f"| {r['skipped_known']:,} | {len(r['failures'])} | {r['seconds']:,.0f} |")
        print(f"\n{total:,} inputs in {len(paths)} runs, {failures} failures.")
    else:
        for r in results:
            print(f"{r['grammar']:14} {r['inputs']:>8} inputs in {r['runs']} runs  {len(r['failures'])} failures")
        print(f"total {total} inputs, {failures} failures")
    return 1 if failures else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=100_000, help="inputs per grammar (default 100000)")
    ap.add_argument("--grammars", help="comma-separated names (default: all bundled)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", help="write the figures and every failure as JSON")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="only print the table of these --out files, summed")
    args = ap.parse_args(argv)
    if args.merge:
        return _merge(args.merge, args.markdown)
    import toolgram
    names = args.grammars.split(",") if args.grammars else toolgram.grammars()
    t0 = time.perf_counter()
    work = [(n, args.inputs, args.seed) for n in names]
    if args.jobs > 1:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            results = []
            for r in pool.imap_unordered(_worker, work):
                results.append(r)
                print(f"{r['grammar']:14} {r['inputs']:>8} inputs  {r['seconds']:>8.1f} s  "
                      f"{len(r['failures'])} failures", file=sys.stderr, flush=True)
    else:
        results = [_worker(w) for w in work]
    results.sort(key=lambda r: r["grammar"])
    wall = time.perf_counter() - t0
    total = sum(r["inputs"] for r in results)
    failures = sum(len(r["failures"]) for r in results)
    if args.markdown:
        print("| grammar | inputs checked | of which with calls | pieces / arguments / marker-free / mutations "
              "| skipped (known bug) | failures | CPU s |")
        print("|---|---|---|---|---|---|---|")
        for r in results:
            fam = " / ".join(str(r["families"].get(k, 0)) for k in ("pieces", "arguments", "marker-free", "mutations"))
            print(f"| {r['grammar']} | {r['inputs']:,} | {r['with_calls']:,} | {fam} | {r['skipped_known']:,} "
                  f"| {len(r['failures'])} | {r['seconds']:,.0f} |")
        print(f"\n{total:,} inputs in {wall / 60:.0f} min wall ({args.jobs} processes), {failures} failures.")
    else:
        for r in results:
            print(f"{r['grammar']:14} {r['inputs']:>8} inputs ({r['with_calls']} with calls, {r['skipped_known']} "
                  f"skipped: known bug)  {len(r['failures'])} failures  {r['seconds']} s")
        print(f"total {total} inputs, {failures} failures, {wall:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"inputs_per_grammar": args.inputs, "seed": args.seed,
                                              "wall_seconds": round(wall), "results": results}, indent=1,
                                             ensure_ascii=False), encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

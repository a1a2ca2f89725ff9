"""toolgram against transformers' ResponseParser, on the public response templates toolgram imports.

The same delta streams (1, 4 and 32 characters, and the whole message) of one output with a long string
argument go to transformers' streaming `ResponseParser` (reading the template) and to toolgram's parser
compiled from the same template; both readings are checked equal.  Reported per template: microseconds per
delta at the largest size, the growth of the total time per doubling of the output (1.0x per doubling would be
constant work, 2.0x linear), and how many argument deltas reach a client (transformers sends the call once,
when its region closes).  vLLM's `hf` parser is not measured here: vLLM is not installed in the project's
environment (benchmarks/peers/README.md sets up a separate venv for vLLM comparisons).

    python benchmarks/peers/response_templates.py [--sizes 2000 4000 8000 16000] [--repeats 3] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from response_templates_public import public_templates  # noqa: E402

from toolgram.response_templates import from_response_template, normalize_reference, normalize_result  # noqa: E402


def payload(n: int) -> str:
    words = "the quick brown fox jumps over a lazy dog while tools stream their arguments".split()
    out, i = [], 0
    while sum(map(len, out)) + len(out) < n:
        out.append(words[i % len(words)])
        i += 1
    return " ".join(out)[:n]


def outputs(n: int) -> dict:
    p = payload(n)
    j = json.dumps({"path": "a.txt", "content": p})
    return {
        "transformers:qwen2": f'Sure.\n<tool_call>\n{{"name": "write_file", "arguments": {j}}}\n</tool_call>',
        "trl:qwen3": f'Sure.\n<tool_call>\n{{"name": "write_file", "arguments": {j}}}\n</tool_call>',
        "transformers:qwen3_5": ("Sure.\n<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n</parameter>\n"
                                 f"<parameter=content>\n{p}\n</parameter>\n</function>\n</tool_call>"),
        "trl:qwen3_5": ("Sure.\n<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n</parameter>\n"
                        f"<parameter=content>\n{p}\n</parameter>\n</function>\n</tool_call>"),
        "transformers:gemma4": ('Sure.<|tool_call>call:write_file{path:<|"|>a.txt<|"|>,content:<|"|>'
                                f'{p}<|"|>}}<tool_call|>'),
        "trl:glm4moe": ("Sure.\n<tool_call>write_file\n<arg_key>path</arg_key>\n<arg_value>a.txt</arg_value>\n"
                        f"<arg_key>content</arg_key>\n<arg_value>{p}</arg_value>\n</tool_call>"),
        "trl:llama3": f'{{"name": "write_file", "parameters": {j}}}<|eot_id|>',
    }


def deltas(text: str, size: int | None) -> list[str]:
    if size is None:
        return [text]
    return [text[i:i + size] for i in range(0, len(text), size)]


def run_ours(g, parts):
    p = g.stream()
    n_args = 0
    t0 = time.perf_counter()
    for d in parts:
        for delta in p.feed(d):
            n_args += sum(1 for tc in delta.get("tool_calls", ()) if tc.get("function", {}).get("arguments"))
    for delta in p.close():
        n_args += sum(1 for tc in delta.get("tool_calls", ()) if tc.get("function", {}).get("arguments"))
    return time.perf_counter() - t0, p.result, n_args


def run_ref(template, parts):
    from transformers.utils.chat_parsing import ResponseParser
    t0 = time.perf_counter()
    p = ResponseParser(template, prefix="")
    closes = 0
    for d in parts:
        closes += sum(e["type"] == "region_close" and e["field"] == "tool_calls" for e in p.feed(d))
    message, events = p.finalize()
    closes += sum(e["type"] == "region_close" and e["field"] == "tool_calls" for e in events)
    return time.perf_counter() - t0, message, closes


def measure(sizes, delta_sizes, repeats):
    templates = public_templates()
    rows = []
    for key in outputs(100):
        t = templates[key]
        g = from_response_template(t)
        warm = outputs(sizes[0])[key]
        run_ours(g, deltas(warm, 7))          # (first use compiles regexes and fills memos)
        run_ref(t, deltas(warm, 7))
        for ds in delta_sizes:
            times = {"toolgram": [], "transformers": []}
            per_delta = {}
            counts = {}
            for n in sizes:
                text = outputs(n)[key]
                parts = deltas(text, ds)
                best = {"toolgram": 1e9, "transformers": 1e9}
                for _ in range(repeats):
                    a, ours, n_args = run_ours(g, parts)
                    b, ref, closes = run_ref(t, parts)
                    best["toolgram"] = min(best["toolgram"], a)
                    best["transformers"] = min(best["transformers"], b)
                mine, theirs = normalize_result(ours), normalize_reference(ref)
                if mine["calls"] != theirs["calls"]:
                    raise SystemExit(f"{key}: readings differ: {mine['calls']} vs {theirs['calls']}")
                for k in best:
                    times[k].append(best[k])
                per_delta = {k: best[k] / len(parts) * 1e6 for k in best}
                counts = {"toolgram": n_args, "transformers": closes}
            growth = {k: (v[-1] / v[0]) ** (1 / max(1, len(v) - 1)) if v[0] > 0 else float("nan")
                      for k, v in times.items()}
            rows.append({"template": key, "delta": ds or "whole", "size": sizes[-1], "us_per_delta": per_delta,
                         "growth_per_doubling": growth, "argument_deltas": counts,
                         "total_ms": {k: v[-1] * 1e3 for k, v in times.items()}})
            print(f"{key:22} delta {str(ds or 'whole'):5} {sizes[-1]:6} chars: toolgram "
                  f"{per_delta['toolgram']:8.2f} us/delta (x{growth['toolgram']:.2f}/doubling, "
                  f"{counts['toolgram']} argument deltas)  transformers {per_delta['transformers']:8.2f} "
                  f"us/delta (x{growth['transformers']:.2f}/doubling, {counts['transformers']} call event)",
                  flush=True)
    return rows


def markdown(rows, sizes, repeats) -> str:
    out = [f"Output: a short sentence, then one call whose string argument grows to {sizes[-1]:,} characters; "
           f"sizes {', '.join(map(str, sizes))}; best of {repeats}. Times per delta at the largest size; growth "
           "= total time ratio per doubling of the output (2.0x = linear).", "",
           "| template | delta | toolgram µs/delta | transformers µs/delta | toolgram growth | transformers growth "
           "| argument deltas toolgram / transformers |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        u, g, c = r["us_per_delta"], r["growth_per_doubling"], r["argument_deltas"]
        out.append(f"| {r['template']} | {r['delta']} | {u['toolgram']:.2f} | {u['transformers']:.2f} | "
                   f"×{g['toolgram']:.2f} | ×{g['transformers']:.2f} | {c['toolgram']} / {c['transformers']} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 8000, 16000])
    ap.add_argument("--deltas", nargs="+", default=["1", "4", "32", "whole"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--markdown", help="write the table to this file")
    ap.add_argument("--json", help="write the measurements to this file")
    a = ap.parse_args(argv)
    ds = [None if d == "whole" else int(d) for d in a.deltas]
    rows = measure(a.sizes, ds, a.repeats)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    if a.markdown:
        Path(a.markdown).write_text(markdown(rows, a.sizes, a.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

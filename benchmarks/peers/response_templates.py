"""toolgram against transformers' ResponseParser and vLLM's `hf` parser, on the public response templates
toolgram imports.

The same delta streams (1, 4 and 32 characters, and the whole message) of one output with a long string
argument go to transformers' streaming `ResponseParser` (reading the template), to vLLM's `hf` parser
(`vllm/parser/response_template.py`, `parse_delta` per delta as vLLM's chat serving calls it; a template whose
reasoning field vLLM refuses gets it renamed `thinking`) and to toolgram's parser compiled from the same
template; the readings are checked equal.  Reported per template: microseconds per delta at the largest size,
the growth of the total time per doubling of the output (1.0x per doubling would be constant work, 2.0x
linear), and how many argument deltas reach a client (the template parsers send a call once, when its region
closes).  vLLM is measured where it is importable: run it in the vLLM venv (`bash .ci/vllm_setup.sh`).

    .venv-vllm/bin/python benchmarks/peers/response_templates.py [--sizes 2000 4000 8000 16000] [--repeats 3]
        [--markdown FILE] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "vllm"))

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
    """transformers' ResponseParser; its argument deltas are the call regions it closes (one event each)."""
    from transformers.utils.chat_parsing import ResponseParser
    t0 = time.perf_counter()
    p = ResponseParser(template, prefix="")
    closes = 0
    for d in parts:
        closes += sum(e["type"] == "region_close" and e["field"] == "tool_calls" for e in p.feed(d))
    message, events = p.finalize()
    closes += sum(e["type"] == "region_close" and e["field"] == "tool_calls" for e in events)
    return time.perf_counter() - t0, message, closes


def vllm_available() -> bool:
    try:
        import vllm.parser.response_template  # noqa: F401
    except Exception:          # noqa: BLE001 - not installed (or not importable) here: measured without it
        return False
    return True


def run_vllm(template, parts):
    """vLLM's hf parser for one request, fed ``parts`` as vLLM's chat serving does (the last one finished)."""
    import vllm_hf
    cls, request = vllm_hf.parser_class(vllm_hf.THINKING in template["fields"]), vllm_hf.request_for(None)
    t0 = time.perf_counter()
    parser = cls(vllm_hf.tokenizer(), request.tools, response_template=template)     # one per request in vLLM
    argument_deltas, calls = 0, {}
    last = len(parts) - 1
    for i, d in enumerate(parts):
        m = parser.parse_delta(d, [], request, [], finished=i == last)
        for tc in (m.tool_calls if m is not None else ()):
            calls.setdefault(tc.index, [tc.function.name, ""])[1] += tc.function.arguments or ""
            argument_deltas += bool(tc.function.arguments)
    elapsed = time.perf_counter() - t0
    message = {"tool_calls": [{"function": {"name": n, "arguments": a}} for n, a in calls.values()]}
    return elapsed, message, argument_deltas


def measure(sizes, delta_sizes, repeats, with_vllm):
    templates = public_templates()
    peers = ["toolgram", "transformers"] + (["vllm"] if with_vllm else [])
    rows = []
    for key in outputs(100):
        t = templates[key]
        g = from_response_template(t)
        if with_vllm:
            import vllm_hf
            vt = t if vllm_hf.refusal(t) is None else vllm_hf.with_thinking_field(t)
        runs = {"toolgram": lambda parts: run_ours(g, parts), "transformers": lambda parts: run_ref(t, parts),
                "vllm": lambda parts: run_vllm(vt, parts)}
        warm = outputs(sizes[0])[key]
        for p in peers:
            runs[p](deltas(warm, 7))          # (first use compiles regexes and fills memos)
        for ds in delta_sizes:
            times = {p: [] for p in peers}
            per_delta = {}
            counts = {}
            for n in sizes:
                text = outputs(n)[key]
                parts = deltas(text, ds)
                best = {p: 1e9 for p in peers}
                readings = {}
                for _ in range(repeats):
                    for p in peers:
                        elapsed, reading, n_args = runs[p](parts)
                        best[p] = min(best[p], elapsed)
                        readings[p] = reading
                        counts[p] = n_args
                mine = normalize_result(readings["toolgram"])
                for p in peers[1:]:
                    theirs = normalize_reference(readings[p])
                    if mine["calls"] != theirs["calls"]:
                        raise SystemExit(f"{key}: readings differ ({p}): {mine['calls']} vs {theirs['calls']}")
                for p in peers:
                    times[p].append(best[p])
                per_delta = {p: best[p] / len(parts) * 1e6 for p in peers}
            growth = {k: (v[-1] / v[0]) ** (1 / max(1, len(v) - 1)) if v[0] > 0 else float("nan")
                      for k, v in times.items()}
            rows.append({"template": key, "delta": ds or "whole", "size": sizes[-1], "us_per_delta": per_delta,
                         "growth_per_doubling": growth, "argument_deltas": counts,
                         "total_ms": {k: v[-1] * 1e3 for k, v in times.items()}})
            print(f"{key:22} delta {str(ds or 'whole'):5} {sizes[-1]:6} chars: " + "  ".join(
                f"{p} {per_delta[p]:8.2f} us/delta (x{growth[p]:.2f}/doubling, {counts[p]} argument deltas)"
                for p in peers), flush=True)
    return rows


def markdown(rows, sizes, repeats) -> str:
    peers = list(rows[0]["us_per_delta"])
    out = [f"Output: a short sentence, then one call whose string argument grows to {sizes[-1]:,} characters; "
           f"sizes {', '.join(map(str, sizes))}; best of {repeats}. Times per delta at the largest size; growth "
           "= total time ratio per doubling of the output (2.0x = linear).", "",
           "| template | delta | " + " | ".join(f"{p} µs/delta" for p in peers) + " | "
           + " | ".join(f"{p} growth" for p in peers) + f" | argument deltas {' / '.join(peers)} |",
           "|---|---|" + "---|" * (2 * len(peers) + 1)]
    for r in rows:
        u, g, c = r["us_per_delta"], r["growth_per_doubling"], r["argument_deltas"]
        out.append(f"| {r['template']} | {r['delta']} | " + " | ".join(f"{u[p]:.2f}" for p in peers) + " | "
                   + " | ".join(f"×{g[p]:.2f}" for p in peers) + " | " + " / ".join(str(c[p]) for p in peers)
                   + " |")
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
    with_vllm = vllm_available()
    if not with_vllm:
        print("vLLM is not importable here: toolgram and transformers only (run in .venv-vllm for all three)",
              file=sys.stderr)
    rows = measure(a.sizes, ds, a.repeats, with_vllm)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    if a.markdown:
        Path(a.markdown).write_text(markdown(rows, a.sizes, a.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of `toolgram serve`: streamed tool-call requests on the demo model (CPU engine), at concurrency
1, 8 and 32.

Reports requests/s, time to the first tool-call delta (client side: request sent -> first SSE chunk carrying
``tool_calls``), latency, and toolgram's own overhead: the same requests (same prompts, constraint and seeds, so
the same tokens) run through the server versus straight through the engine in this process (the decoder with
the constraint, no HTTP, no parser).  The server serialises generations on the CPU engine, so at every
concurrency the engine's time per request is the floor; overhead = server time per request / engine time per
request - 1.

    python benchmarks/serve.py [--grammar hermes] [--requests 48] [--concurrency 1 8 32] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-bench-demo-models"))

import httpx  # noqa: E402

import toolgram  # noqa: E402
from toolgram.serve import chat, demo_model  # noqa: E402
from toolgram.serve.launch import Server  # noqa: E402

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 10},
                                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET", "PST"]}}}}},
]
MAX_TOKENS = 160
MAX_CALLS = 3          # the demo server's default
EOS_BIAS = 4.0         # the demo server's default


def messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Request {i}: what is the weather in city number {i}?"}]


async def one(client: httpx.AsyncClient, model: str, i: int) -> dict:
    body = {"model": model, "messages": messages(i), "tools": TOOLS, "tool_choice": "required",
            "max_tokens": MAX_TOKENS, "seed": i, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first_call = None
    tokens = 0
    calls = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for ch in chunk.get("choices") or ():
                tcs = ch["delta"].get("tool_calls")
                if tcs:
                    if first_call is None:
                        first_call = time.perf_counter() - t0
                    calls = max(calls, max(tc["index"] for tc in tcs) + 1)
    return {"latency": time.perf_counter() - t0, "first_call": first_call, "tokens": tokens, "calls": calls}


async def run_level(base: str, model: str, concurrency: int, n: int, offset: int) -> dict:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:
        async def guarded(i):
            async with sem:
                return await one(client, model, i)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(guarded(offset + i) for i in range(n)))
        wall = time.perf_counter() - t0
    firsts = sorted(r["first_call"] for r in results if r["first_call"] is not None)
    lat = sorted(r["latency"] for r in results)
    return {"concurrency": concurrency, "requests": n, "wall_s": wall, "req_per_s": n / wall,
            "tokens": sum(r["tokens"] for r in results),
            "first_call_p50_ms": 1000 * statistics.median(firsts), "first_call_p90_ms": 1000 * _pct(firsts, 0.9),
            "latency_p50_ms": 1000 * statistics.median(lat), "latency_p90_ms": 1000 * _pct(lat, 0.9),
            "with_calls": sum(1 for r in results if r["calls"])}


def _pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))]


_DECODERS: dict = {}


def direct(grammar: str, ids: list[int]) -> dict:
    """The same requests straight through the engine (decoder + constraint), in this process."""
    from toolgram.runtime.decoding import Decoder
    g = toolgram.load(grammar)
    if grammar not in _DECODERS:
        _DECODERS[grammar] = Decoder.from_pretrained(demo_model.for_grammar(g))
    dec = _DECODERS[grammar]
    c = g.constraint(TOOLS, "required", tokenizer=dec.tokenizer, max_calls=MAX_CALLS)
    bias = {e: EOS_BIAS for e in dec.eos}
    prompts = []
    for i in ids:
        text = chat.render(demo_model.SERVE_TEMPLATE, messages(i), TOOLS,
                           special={"bos_token": "", "eos_token": dec.tokenizer.eos_token})
        prompts.append(dec.tokenizer.encode(text, add_special_tokens=False))
    list(dec.generate([prompts[0]], [c.text], max_new_tokens=8, seed=0, logit_bias=bias))   # warm-up
    tokens = 0
    t0 = time.perf_counter()
    for i, p in zip(ids, prompts):
        for step in dec.generate([p], [c.text], max_new_tokens=MAX_TOKENS, temperature=1.0, seed=i,
                                 logit_bias=bias):
            tokens += step.token >= 0
    wall = time.perf_counter() - t0
    return {"requests": len(ids), "wall_s": wall, "ms_per_request": 1000 * wall / len(ids), "tokens": tokens}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grammar", default="hermes")
    ap.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    g = toolgram.load(a.grammar)
    demo_model.for_grammar(g)                       # build the demo model before timing anything
    out = {"grammar": a.grammar, "max_tokens": MAX_TOKENS, "levels": []}
    with Server(["--tool-call-parser", a.grammar, "--max-concurrency", "256", "--log-level", "warning"]) as s:
        model = httpx.get(s.url + "/models").json()["data"][0]["id"]
        asyncio.run(run_level(s.base, model, 1, 4, 10_000))          # warm-up
        offset = 0
        for c in a.concurrency:
            ids = list(range(offset, offset + a.requests))
            offset += a.requests
            # the engine alone on exactly these requests (same seeds: the same tokens), right before the server
            # runs them, so that both see the same machine load
            d = direct(a.grammar, ids)
            level = asyncio.run(run_level(s.base, model, c, a.requests, ids[0]))
            server_ms = 1000 * level["wall_s"] / level["requests"]
            level.update(engine_ms_per_request=d["ms_per_request"], engine_tokens=d["tokens"],
                         server_ms_per_request=server_ms, overhead=server_ms / d["ms_per_request"] - 1)
            out["levels"].append(level)
            print(f"concurrency {c:3}: {level['req_per_s']:6.2f} req/s  first tool-call delta p50 "
                  f"{level['first_call_p50_ms']:7.1f} ms p90 {level['first_call_p90_ms']:7.1f} ms  latency p50 "
                  f"{level['latency_p50_ms']:7.1f} ms  ({level['tokens']} tokens, {level['with_calls']}/"
                  f"{level['requests']} with calls)\n"
                  f"                 engine alone {d['ms_per_request']:6.1f} ms/request ({d['tokens']} tokens), "
                  f"server {server_ms:6.1f} ms/request: overhead {100 * level['overhead']:+.1f}%", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

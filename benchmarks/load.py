"""Load test of `toolgram serve`: real HTTP on 127.0.0.1, 64 concurrent streaming clients, tool_choice modes mixed.

Starts ``toolgram serve`` (demo model, CPU engine, hermes grammar by default) on a free loopback port, sends a
warm-up wave, then ``--requests`` streamed chat completions from ``--clients`` concurrent clients, cycling
tool_choice none / auto / required / named (bounded: ``--requests`` and ``--max-seconds``).  Every response is
checked:

* HTTP 200, ``text/event-stream``, every event a ``chat.completion.chunk`` of one id, the last event ``[DONE]``;
* exactly one finish_reason, and the right one: ``tool_calls`` for required and named, never ``tool_calls`` for
  none (which has no tool-call deltas at all), ``stop``/``length``/``tool_calls`` for auto;
* every completed call's arguments are a JSON object that validates (jsonschema) against its tool's
  parameters, its name is a tool's (the named one for named), its id is set;
* usage (``stream_options.include_usage``) matches the number of chunks' worth of tokens reported.

Reports errors (must be 0), p50/p99 latency (request sent -> ``[DONE]``) and time to the first chunk,
requests/s, and the resident memory (VmRSS from /proc) of the server and its engine process after the warm-up
and after the run (must stay within 10%).  Exit status 1 if any check fails.

    python benchmarks/load.py                                   # 2,000 requests, 64 clients
    python benchmarks/load.py --requests 200 --json /tmp/load.json
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
from collections import Counter

os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-bench-demo-models"))

import httpx  # noqa: E402
import jsonschema  # noqa: E402

from toolgram.serve.launch import Server  # noqa: E402

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 10},
                                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET", "PST"]}},
        "additionalProperties": False}}},
    {"type": "function", "function": {"name": "search", "parameters": {
        "type": "object", "properties": {"q": {"type": "string", "maxLength": 12},
                                         "limit": {"type": "integer", "minimum": 1, "maximum": 5},
                                         "exact": {"type": "boolean"}},
        "required": ["q"], "additionalProperties": False}}},
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
MODES = ["none", "auto", "required", "named"]


def request_body(model: str, i: int, max_tokens: int) -> tuple[str, dict]:
    mode = MODES[i % len(MODES)]
    body = {"model": model, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": max_tokens,
            "seed": i, "tools": TOOLS,
            "messages": [{"role": "user", "content": f"Request {i}: what is the weather in city number {i}?"}]}
    if mode == "named":
        body["tool_choice"] = {"type": "function", "function": {"name": TOOLS[i % len(TOOLS)]["function"]["name"]}}
    else:
        body["tool_choice"] = mode
    return mode, body


CHECKED = Counter()


def check_stream(mode: str, body: dict, events: list[str]) -> list[str]:
    """Problems with one streamed response (empty: valid); counts what was checked in `CHECKED`."""
    problems = []
    if not events or events[-1] != "[DONE]":
        return ["the stream does not end with [DONE]"]
    ids, finishes, calls, usage = set(), [], {}, None
    for ev in events[:-1]:
        chunk = json.loads(ev)
        if "error" in chunk:
            return [f"error event: {chunk['error']}"]
        if chunk.get("object") != "chat.completion.chunk":
            problems.append(f"not a chunk: {ev[:200]}")
            continue
        ids.add(chunk["id"])
        if chunk.get("usage"):
            usage = chunk["usage"]
        for ch in chunk.get("choices") or []:
            if ch.get("finish_reason"):
                finishes.append(ch["finish_reason"])
            for tc in (ch.get("delta") or {}).get("tool_calls") or []:
                call = calls.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] += tc.get("id") or ""
                fn = tc.get("function") or {}
                call["name"] += fn.get("name") or ""
                call["arguments"] += fn.get("arguments") or ""
    if len(ids) != 1:
        problems.append(f"{len(ids)} different chunk ids")
    if len(finishes) != 1:
        return problems + [f"finish reasons {finishes}"]
    finish = finishes[0]
    CHECKED[f"{mode}: {finish}"] += 1
    allowed = {"none": {"stop", "length"}, "auto": {"stop", "length", "tool_calls"},
               "required": {"tool_calls"}, "named": {"tool_calls"}}[mode]
    if finish not in allowed:
        problems.append(f"finish_reason {finish!r} for tool_choice {mode}")
    if mode == "none" and calls:
        problems.append("tool-call deltas with tool_choice none")
    if finish == "tool_calls" and not calls:
        problems.append("finish_reason tool_calls without a call")
    if calls and finish != "tool_calls" and mode != "auto":
        problems.append(f"calls but finish_reason {finish!r}")
    complete = finish == "tool_calls"          # (auto cut by max_tokens: the last call may be unfinished)
    for k in sorted(calls):
        call = calls[k]
        if not complete and k == max(calls):
            continue
        if call["name"] not in SCHEMAS:
            problems.append(f"unknown tool {call['name']!r}")
            continue
        if mode == "named" and call["name"] != body["tool_choice"]["function"]["name"]:
            problems.append(f"named {body['tool_choice']['function']['name']!r}, called {call['name']!r}")
        if not call["id"]:
            problems.append("a call without an id")
        try:
            args = json.loads(call["arguments"])
            jsonschema.validate(args, SCHEMAS[call["name"]])
            CHECKED["calls validated"] += 1
        except (ValueError, jsonschema.ValidationError) as e:
            problems.append(f"{call['name']} arguments {call['arguments'][:200]!r}: {str(e)[:200]}")
    if usage is None:
        problems.append("no usage chunk")
    elif not (0 < usage["completion_tokens"] <= body["max_tokens"]):
        problems.append(f"usage {usage}")
    return problems


def rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants (the server and its engine process), KiB."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return total


async def run_requests(base: str, model: str, indices: list[int], clients: int, max_tokens: int,
                       deadline: float) -> list[dict]:
    queue: asyncio.Queue = asyncio.Queue()
    for i in indices:
        queue.put_nowait(i)
    results = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient):
        while time.monotonic() < deadline:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            mode, body = request_body(model, i, max_tokens)
            t0 = time.perf_counter()
            first = None
            events, problems = [], []
            try:
                async with http.stream("POST", base + "/v1/chat/completions", json=body) as r:
                    if r.status_code != 200:
                        await r.aread()
                        problems.append(f"HTTP {r.status_code}: {r.text[:300]}")
                    elif not r.headers.get("content-type", "").startswith("text/event-stream"):
                        problems.append(f"content-type {r.headers.get('content-type')}")
                    else:
                        async for line in r.aiter_lines():
                            if line.startswith("data: "):
                                if first is None:
                                    first = time.perf_counter() - t0
                                events.append(line[6:])
                if not problems:
                    problems = check_stream(mode, body, events)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
                problems.append(f"{type(e).__name__}: {e}")
            results.append({"i": i, "mode": mode, "seconds": time.perf_counter() - t0, "first": first,
                            "problems": problems})

    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0), limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return results


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--grammar", default="hermes")
    ap.add_argument("--max-tokens", type=int, default=128, help="per request (default 128)")
    ap.add_argument("--max-seconds", type=float, default=900, help="stop sending after this (default 900)")
    ap.add_argument("--warmup", type=int, default=128, help="requests before the first memory reading")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)

    server_args = ["--tool-call-parser", args.grammar, "--max-tokens", str(args.max_tokens),
                   "--max-calls", "1"]
    with Server(server_args) as s:
        model = httpx.get(s.url + "/models", timeout=10).json()["data"][0]["id"]
        far = time.monotonic() + args.max_seconds
        warm = asyncio.run(run_requests(s.base, model, list(range(10**6, 10**6 + args.warmup)), args.clients,
                                        args.max_tokens, far))
        rss_warm = rss_kib(s.proc.pid)
        t0 = time.perf_counter()
        results = asyncio.run(run_requests(s.base, model, list(range(args.requests)), args.clients,
                                           args.max_tokens, time.monotonic() + args.max_seconds))
        wall = time.perf_counter() - t0
        rss_after = rss_kib(s.proc.pid)
        alive = s.proc.poll() is None
    errors = [r for r in results + warm if r["problems"]]
    lat = [r["seconds"] for r in results]
    first = [r["first"] for r in results if r["first"] is not None]
    growth = (rss_after - rss_warm) / rss_warm if rss_warm else float("nan")
    figures = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
        "grammar": args.grammar, "clients": args.clients, "max_tokens": args.max_tokens,
        "requests_asked": args.requests, "requests_done": len(results), "warmup": len(warm),
        "modes": dict(Counter(r["mode"] for r in results)), "checked": dict(sorted(CHECKED.items())),
        "errors": len(errors),
        "error_examples": [(r["mode"], r["problems"][:3]) for r in errors[:10]],
        "wall_s": round(wall, 1), "requests_per_s": round(len(results) / wall, 2) if wall else None,
        "latency_p50_s": round(pct(lat, 50), 3), "latency_p99_s": round(pct(lat, 99), 3),
        "first_chunk_p50_s": round(pct(first, 50), 3), "first_chunk_p99_s": round(pct(first, 99), 3),
        "rss_after_warmup_mib": round(rss_warm / 1024, 1), "rss_after_run_mib": round(rss_after / 1024, 1),
        "rss_growth": round(growth, 4), "server_alive": alive,
    }
    ok = (not errors and len(results) == args.requests and abs(growth) <= 0.10 and alive)
    figures["ok"] = ok
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

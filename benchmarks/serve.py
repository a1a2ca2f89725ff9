"""Benchmark of `toolgram serve`: streamed tool-call requests on the demo model (CPU engine), at concurrency
1, 8 and 32.

Reports requests/s, time to the first tool-call delta (client side: request sent -> first SSE chunk carrying
``tool_calls``), latency, and toolgram's own overhead: the same requests (same prompts, constraint and seeds, so
the same tokens) run through the server versus straight through the engine in this process (the decoder with
the constraint, no HTTP, no parser, no engine process).  The server serialises generations on the CPU engine,
so at every concurrency the engine's time per request is the floor; overhead = server time per request / engine
time per request - 1.

The two are measured in alternating rounds (engine alone then server, then server then engine alone, ...), each
round on fresh requests, so that both see the same machine load; the overhead reported is the median of the
rounds.  On Linux it also reports where the CPU went, from the scheduler's own counters
(``/proc/PID/task/TID/schedstat``: time on a CPU and time waiting for one): per request, the decoder's CPU time
alone and in the engine process, the server process's CPU time, and the time the engine process spent idle
(neither running nor waiting for a CPU: waiting for the server), and the CPU time of the client (this process).  Those do not depend on the machine's load
the way wall-clock times do.

    python benchmarks/serve.py [--grammar hermes] [--requests 16] [--rounds 3] [--concurrency 1 8 32] [--json F]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
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


# -- the scheduler's counters (Linux) --------------------------------------------------------------------------
def _sched(pid: int, tid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of one thread; zeros where unavailable."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            run, wait, _ = f.read().split()
        return int(run) / 1e9, int(wait) / 1e9
    except (OSError, ValueError):
        return 0.0, 0.0


def _process_cpu(pid: int) -> float:
    """Seconds on a CPU of all threads of a process."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    return sum(_sched(pid, int(t))[0] for t in tids)


def _preemptions(pid: int) -> int:
    """How often the scheduler took the CPU from a process's main thread (involuntary context switches)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/status") as f:
            for line in f:
                if line.startswith("nonvoluntary_ctxt_switches"):
                    return int(line.split(":")[1])
    except OSError:
        pass
    return 0


def _pin(pid: int, cpus: set) -> None:
    """Bind every thread of a process to these CPUs."""
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(t), cpus)
        except OSError:
            pass


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# -- the server ------------------------------------------------------------------------------------------------
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


async def run_level(base: str, model: str, concurrency: int, ids: list[int]) -> dict:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:
        async def guarded(i):
            async with sem:
                return await one(client, model, i)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(guarded(i) for i in ids))
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "results": results}


# -- the engine alone ------------------------------------------------------------------------------------------
class Direct:
    """The same requests straight through the engine (decoder + constraint), in this process's main thread."""

    def __init__(self, grammar: str):
        from toolgram.runtime.decoding import Decoder
        g = toolgram.load(grammar)
        self.dec = Decoder.from_pretrained(demo_model.for_grammar(g))
        self.constraint = g.constraint(TOOLS, "required", tokenizer=self.dec.tokenizer, max_calls=MAX_CALLS).text
        self.bias = {e: EOS_BIAS for e in self.dec.eos}
        self.run([0])                                                       # warm-up

    def prompt(self, i: int) -> list[int]:
        tok = self.dec.tokenizer
        text = chat.render(demo_model.SERVE_TEMPLATE, messages(i), TOOLS,
                           special={"bos_token": "", "eos_token": tok.eos_token})
        return tok.encode(text, add_special_tokens=False)

    def run(self, ids: list[int]) -> dict:
        prompts = [self.prompt(i) for i in ids]
        tokens = 0
        tid = threading.get_native_id()
        c0 = _sched(os.getpid(), tid)
        t0 = time.perf_counter()
        for i, p in zip(ids, prompts):
            for step in self.dec.generate([p], [self.constraint], max_new_tokens=MAX_TOKENS, temperature=1.0, seed=i,
                                          logit_bias=self.bias):
                tokens += step.token >= 0
        wall = time.perf_counter() - t0
        c1 = _sched(os.getpid(), tid)
        return {"wall_s": wall, "tokens": tokens, "cpu_s": c1[0] - c0[0], "wait_s": c1[1] - c0[1]}


# -- one level -------------------------------------------------------------------------------------------------
def level(s: Server, model: str, direct: Direct, concurrency: int, n: int, rounds: int, first_id: int,
          pin: tuple | None = None) -> dict:
    engine_pid = next(iter(_children(s.proc.pid)), None)
    me = threading.get_native_id()
    rows, results = [], []
    for r in range(rounds):
        ids = list(range(first_id + r * n, first_id + (r + 1) * n))
        row = {}
        for what in (("direct", "server") if r % 2 == 0 else ("server", "direct")):
            if what == "direct":
                if pin:
                    os.sched_setaffinity(me, pin[0])                       # the decoder on the engine's cpu
                d = direct.run(ids)
                row.update(direct_s=d["wall_s"], direct_tokens=d["tokens"], direct_cpu_s=d["cpu_s"],
                           direct_wait_s=d["wait_s"])
                continue
            if pin:
                os.sched_setaffinity(me, pin[1])                           # the client beside the server
            srv0 = _process_cpu(s.proc.pid)
            eng0 = _sched(engine_pid, engine_pid) if engine_pid else (0.0, 0.0)
            cl0 = time.process_time()
            pre0 = _preemptions(engine_pid) if engine_pid else 0
            lv = asyncio.run(run_level(s.base, model, concurrency, ids))
            cl1 = time.process_time()
            pre1 = _preemptions(engine_pid) if engine_pid else 0
            srv1 = _process_cpu(s.proc.pid)
            eng1 = _sched(engine_pid, engine_pid) if engine_pid else (0.0, 0.0)
            results += lv["results"]
            row.update(server_s=lv["wall_s"], server_tokens=sum(x["tokens"] for x in lv["results"]),
                       server_cpu_s=srv1 - srv0, engine_cpu_s=eng1[0] - eng0[0], engine_wait_s=eng1[1] - eng0[1],
                       client_cpu_s=cl1 - cl0, engine_preempted=pre1 - pre0)
        row["overhead"] = row["server_s"] / row["direct_s"] - 1
        rows.append(row)
    total = n * rounds
    firsts = sorted(x["first_call"] for x in results if x["first_call"] is not None)
    lat = sorted(x["latency"] for x in results)
    server_s = sum(x["server_s"] for x in rows)
    direct_s = sum(x["direct_s"] for x in rows)
    out = {"concurrency": concurrency, "requests": total, "rounds": rounds,
           "req_per_s": total / server_s, "tokens": sum(x["server_tokens"] for x in rows),
           "engine_tokens": sum(x["direct_tokens"] for x in rows),
           "first_call_p50_ms": 1000 * statistics.median(firsts), "first_call_p90_ms": 1000 * _pct(firsts, 0.9),
           "latency_p50_ms": 1000 * statistics.median(lat), "latency_p90_ms": 1000 * _pct(lat, 0.9),
           "with_calls": sum(1 for x in results if x["calls"]),
           "engine_ms_per_request": 1000 * direct_s / total, "server_ms_per_request": 1000 * server_s / total,
           "overhead": statistics.median(x["overhead"] for x in rows),
           "overhead_rounds": [x["overhead"] for x in rows],
           "cpu_ms_per_request": {
               "decoder_alone": 1000 * sum(x["direct_cpu_s"] for x in rows) / total,
               "decoder_alone_waiting_for_cpu": 1000 * sum(x["direct_wait_s"] for x in rows) / total,
               "engine_process": 1000 * sum(x["engine_cpu_s"] for x in rows) / total,
               "server_process": 1000 * sum(x["server_cpu_s"] for x in rows) / total,
               "client": 1000 * sum(x["client_cpu_s"] for x in rows) / total,
               "engine_preempted_per_request": sum(x["engine_preempted"] for x in rows) / total,
               "engine_waiting_for_cpu": 1000 * sum(x["engine_wait_s"] for x in rows) / total,
               "engine_idle": 1000 * sum(x["server_s"] - x["engine_cpu_s"] - x["engine_wait_s"] for x in rows) / total,
           }}
    return out


def _pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def report(lv: dict) -> str:
    c = lv["cpu_ms_per_request"]
    rounds = ", ".join(f"{100 * x:+.1f}%" for x in lv["overhead_rounds"])
    same = "same tokens" if lv["tokens"] == lv["engine_tokens"] else \
        f"TOKENS DIFFER: server {lv['tokens']}, engine alone {lv['engine_tokens']}"
    lines = [
        f"concurrency {lv['concurrency']:3}: {lv['req_per_s']:6.2f} req/s  first tool-call delta p50 "
        f"{lv['first_call_p50_ms']:7.1f} ms p90 {lv['first_call_p90_ms']:7.1f} ms  latency p50 "
        f"{lv['latency_p50_ms']:7.1f} ms  ({lv['tokens']} tokens, {lv['with_calls']}/{lv['requests']} with calls)",
        f"    engine alone {lv['engine_ms_per_request']:6.1f} ms/request, server {lv['server_ms_per_request']:6.1f} "
        f"ms/request ({same}): overhead {100 * lv['overhead']:+.1f}% (median of rounds {rounds})",
    ]
    if c["engine_process"]:
        lines.append(
            f"    cpu ms/request: decoder alone {c['decoder_alone']:.1f} (and {c['decoder_alone_waiting_for_cpu']:.1f} "
            f"waiting for a cpu), engine process {c['engine_process']:.1f} "
            f"({100 * (c['engine_process'] / c['decoder_alone'] - 1):+.1f}%; and {c['engine_waiting_for_cpu']:.1f} "
            f"waiting for a cpu, {c['engine_idle']:.1f} idle), server process {c['server_process']:.1f}, "
            f"client {c['client']:.1f}; engine preempted {c['engine_preempted_per_request']:.1f} times/request")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grammar", default="hermes")
    ap.add_argument("--requests", type=int, default=16, help="requests per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--pin", action="store_true",
                    help="run the engine process (and the decoder alone) on one CPU, the server and the client on "
                         "the others: toolgram's own overhead without the server and the client competing with "
                         "the engine for its CPU (as on a machine with a core to spare for serving)")
    a = ap.parse_args(argv)
    g = toolgram.load(a.grammar)
    demo_model.for_grammar(g)                       # build the demo model before timing anything
    out = {"grammar": a.grammar, "max_tokens": MAX_TOKENS, "load_before": os.getloadavg(), "levels": []}
    direct = Direct(a.grammar)
    with Server(["--tool-call-parser", a.grammar, "--max-concurrency", "256", "--log-level", "warning"]) as s:
        model = httpx.get(s.url + "/models").json()["data"][0]["id"]
        pin = None
        if a.pin:
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) < 2:
                ap.error("--pin needs at least two CPUs")
            pin = ({cpus[-1]}, set(cpus[:-1]))
            _pin(s.proc.pid, pin[1])
            for c in _children(s.proc.pid):
                _pin(c, pin[0])
            out["pinned"] = {"engine": sorted(pin[0]), "server_and_client": sorted(pin[1])}
        asyncio.run(run_level(s.base, model, 1, list(range(10_000, 10_004))))     # warm-up
        first = 0
        for c in a.concurrency:
            lv = level(s, model, direct, c, a.requests, a.rounds, first, pin)
            first += a.requests * a.rounds
            out["levels"].append(lv)
            print(report(lv), flush=True)
    out["load_after"] = os.getloadavg()
    print(f"load average before {out['load_before'][0]:.1f}, after {out['load_after'][0]:.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

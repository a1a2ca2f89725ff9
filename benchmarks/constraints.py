"""Constraint build time and per-token mask time.

* build: `Grammar.constraint` for 1, 20 and 100 tools, cold (new tool set) and cached (same tool set again);
* mask: llguidance's per-token mask fill (numpy path) while a grammar-valid call is stepped through,
  at a 4k vocabulary (a BPE tokenizer trained locally) and, when the optional ``mistral-common`` package is
  installed, at the 131k vocabulary of its tekken tokenizer (converted locally; nothing is downloaded).

    python benchmarks/constraints.py [--grammars hermes glm47 ...] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import toolgram
from toolgram.compiler.compiled import LITERAL


def tools(n: int) -> list[dict]:
    return [{"type": "function", "function": {"name": f"tool_{i}", "description": "x", "parameters": {
        "type": "object", "properties": {"query": {"type": "string", "maxLength": 64},
                                         "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                                         "mode": {"type": "string", "enum": ["fast", "full"]},
                                         "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["query"]}}} for i in range(n)]


def build_times(name: str, n: int, repeat: int = 5) -> tuple[float, float]:
    g = toolgram.load(name)
    cold, hot = [], []
    for r in range(repeat):
        ts = tools(n)
        ts[0]["function"]["description"] = f"run {r}-{time.perf_counter()}"      # a new tool set each time
        t = time.perf_counter()
        g.constraint(ts, "required")
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        g.constraint(ts, "required")
        hot.append(time.perf_counter() - t)
    return statistics.median(cold) * 1000, statistics.median(hot) * 1000


def markers(g) -> list[str]:
    return sorted({x for s in g.compiled.terminals.values() if s.kind == LITERAL for x in s.spellings
                   if len(x) >= 2 and not x.isalnum() and not x.isspace()})


def tekken_tokenizer(extra_markers):
    """The 131k tekken vocabulary of mistral-common as a `tokenizers` BPE (None if not installed)."""
    try:
        import base64
        from importlib import resources
        from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
        from tokenizers.models import BPE
        path = resources.files("mistral_common") / "data" / "tekken_240911.json"
        data = json.loads(path.read_text(encoding="utf-8"))
    except Exception:
        return None
    byte_enc = {b: c for b, c in zip(range(256), pre_tokenizers.ByteLevel.alphabet())}  # noqa: F841
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    b2u = bytes_to_unicode()
    n_special = data["config"].get("default_num_special_tokens", 1000)
    vocab, ranks = {}, []
    for i, item in enumerate(data["vocab"][: data["config"]["default_vocab_size"] - n_special]):
        token = "".join(b2u[b] for b in base64.b64decode(item["token_bytes"]))
        vocab[token] = i + n_special
        ranks.append(token)
    merges = []
    rank_of = {t: r for r, t in enumerate(ranks)}
    for token in ranks:
        if len(token) < 2:
            continue
        best = None
        for k in range(1, len(token)):
            a, b = token[:k], token[k:]
            if a in rank_of and b in rank_of:
                score = max(rank_of[a], rank_of[b])
                if best is None or score < best[0]:
                    best = (score, a, b)
        if best:
            merges.append((best[1], best[2]))
    for i in range(n_special):
        vocab[f"<SPECIAL_{i}>"] = i
    tok = Tokenizer(BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(data["config"]["pattern"]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("</s>", special=True)])
    tok.add_tokens([AddedToken(m, special=False, normalized=False) for m in extra_markers])
    return tok


def mask_times(name: str, tok, steps: int = 200) -> tuple[float, float, int]:
    import llguidance
    import llguidance.numpy as lnp
    import numpy as np
    g = toolgram.load(name)
    ts = tools(20)
    c = g.constraint(ts, "required", tokenizer=tok)
    eos = tok.token_to_id("</s>") if tok.token_to_id("</s>") is not None else tok.token_to_id("<|im_end|>")
    lt = llguidance.LLTokenizer(tok.to_str(), eos_token=eos)
    m = llguidance.LLMatcher(lt, c.text, log_level=0)
    assert not m.is_error(), m.get_error()
    bm = lnp.allocate_token_bitmask(1, lt.vocab_size)
    times = []
    import random
    rng = random.Random(0)
    for _ in range(steps):
        t = time.perf_counter()
        lnp.fill_next_token_bitmask(m, bm, 0)
        times.append(time.perf_counter() - t)
        allowed = np.nonzero(np.unpackbits(bm[0].view(np.uint8), bitorder="little")[:lt.vocab_size])[0]
        if m.is_stopped() or not len(allowed):
            break
        m.consume_token(int(rng.choice(allowed)))
    return statistics.median(times) * 1e6, float(np.percentile(times, 99)) * 1e6, lt.vocab_size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grammars", nargs="*", default=["hermes", "glm47", "kimi_k2", "qwen3_coder", "pythonic"])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    from toolgram.serve.demo_model import build_tokenizer
    rows = []
    for name in args.grammars:
        g = toolgram.load(name)
        row = {"grammar": name}
        for n in (1, 20, 100):
            cold, hot = build_times(name, n)
            row[f"build_{n}_ms"], row[f"cached_{n}_ms"] = cold, hot
        small = build_tokenizer(markers(g))
        row["mask4k_median_us"], row["mask4k_p99_us"], row["vocab4k"] = mask_times(name, small)
        big = tekken_tokenizer(markers(g))
        if big is not None:
            row["mask131k_median_us"], row["mask131k_p99_us"], row["vocab131k"] = mask_times(name, big)
        rows.append(row)
        if not args.markdown:
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
    if args.markdown:
        print("| grammar | build 1 / 20 / 100 tools (ms) | cached (ms) | mask 4k vocab median / p99 (µs) | "
              "mask 131k vocab median / p99 (µs) |")
        print("|---|---|---|---|---|")
        for r in rows:
            big = (f"{r['mask131k_median_us']:.0f} / {r['mask131k_p99_us']:.0f}" if "mask131k_median_us" in r
                   else "n/a (mistral-common not installed)")
            print(f"| {r['grammar']} | {r['build_1_ms']:.1f} / {r['build_20_ms']:.1f} / {r['build_100_ms']:.1f} | "
                  f"{r['cached_20_ms']:.3f} | {r['mask4k_median_us']:.0f} / {r['mask4k_p99_us']:.0f} | {big} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

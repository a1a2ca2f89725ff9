"""Constraint build time and per-token mask time.

* build: `Grammar.constraint` for 1, 20 and 100 tools, cold (new tool set) and cached (same tool set again);
  the tools share their four parameters (`tools`), and, for 20, also differ in every parameter
  (`varied_tools`: nothing shared between tools); a cold build reuses what does not depend on the tools (kept
  per grammar and settings since the first request); ``first``: 20 tools with those caches emptied too (the
  first request of a grammar and settings);
  build and compile times are the fastest of their runs (other jobs on a shared machine only ever add time);
* compile: the constraint text compiled by llguidance (``LLMatcher`` creation, where llguidance builds its
  lexer and parser), for 20 tools;
* mask: llguidance's per-token mask fill (numpy path) while a grammar-valid call is stepped through,
  at a 4k vocabulary (a BPE tokenizer trained locally) and, when the optional ``mistral-common`` package is
  installed, at the 131k vocabulary of its tekken tokenizer (converted locally; nothing is downloaded);
* beside them, where xgrammar has a builtin structural tag for the family (what vLLM 0.33 applies for
  tool calls): the tag built and compiled by xgrammar 0.2.8 for the same tools (``required``), and
  xgrammar's mask fill over the same tokenizers, stepped the same way.

    python benchmarks/constraints.py [--grammars hermes glm47 ... | all] [--markdown]
    python benchmarks/constraints.py --build-only --grammars all --markdown    # build and cache hit only
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import toolgram
from toolgram.ir import LITERAL


def tools(n: int) -> list[dict]:
    """``n`` tools with the same four parameters (the goal's workload since the first round)."""
    return [{"type": "function", "function": {"name": f"tool_{i}", "description": "x", "parameters": {
        "type": "object", "properties": {"query": {"type": "string", "maxLength": 64},
                                         "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                                         "mode": {"type": "string", "enum": ["fast", "full"]},
                                         "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["query"]}}} for i in range(n)]


def varied_tools(n: int) -> list[dict]:
    """``n`` tools of the same shape whose parameters all differ (names, bounds, enum values, descriptions):
    nothing in one tool's constraint can be shared with another's."""
    return [{"type": "function", "function": {"name": f"tool_{i}", "description": f"tool {i}", "parameters": {
        "type": "object", "properties": {
            f"query_{i}": {"type": "string", "maxLength": 32 + i, "description": f"query {i}"},
            f"limit_{i}": {"type": "integer", "minimum": 1, "maximum": 50 + i},
            f"mode_{i}": {"type": "string", "enum": [f"fast{i}", f"full{i}"]},
            f"tags_{i}": {"type": "array", "items": {"type": "string"}, "maxItems": 5 + i}},
        "required": [f"query_{i}"]}}} for i in range(n)]


def build_times(name: str, n: int, repeat: int = 5, make=tools) -> tuple[float, float]:
    g = toolgram.load(name)
    cold, hot = [], []
    for r in range(repeat):
        ts = make(n)
        ts[0]["function"]["description"] = f"run {r}-{time.perf_counter()}"      # a new tool set each time
        t = time.perf_counter()
        g.constraint(ts, "required")
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        g.constraint(ts, "required")
        hot.append(time.perf_counter() - t)
    return min(cold) * 1000, min(hot) * 1000                 # fastest: other jobs only ever add time


def first_build_ms(name: str, n: int = 20, repeat: int = 5) -> float:
    """A build with every constraint cache empty (the tool-free parts made too), fastest of ``repeat``."""
    from toolgram import cache
    g = toolgram.load(name)
    best = float("inf")
    for r in range(repeat):
        for c in cache._ALL.values():
            if c.name.startswith("constraint"):
                c.clear()
        t = time.perf_counter()
        g.constraint(tools(n), "required")
        best = min(best, time.perf_counter() - t)
    return best * 1000


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


# toolgram grammar -> xgrammar 0.2.8 builtin structural-tag format (vLLM 0.33's structural_tag_registry)
XGRAMMAR_FORMATS = {"hermes": "qwen_3", "kimi_k2": "kimi", "glm47": "glm_4_7", "qwen3_coder": "qwen_3_coder",
                    "llama3_json": "llama", "deepseek_v3_1": "deepseek_v3_1", "harmony": "harmony",
                    "minimax_m2": "minimax", "deepseek_v3_2": "deepseek_v3_2"}


def llguidance_compile_ms(name: str, tok, n: int = 20, repeat: int = 5) -> float:
    import llguidance
    g = toolgram.load(name)
    eos = tok.token_to_id("</s>") if tok.token_to_id("</s>") is not None else tok.token_to_id("<|im_end|>")
    lt = llguidance.LLTokenizer(tok.to_str(), eos_token=eos)
    times = []
    for r in range(repeat):
        ts = tools(n)
        ts[0]["function"]["description"] = f"compile {r}"
        c = g.constraint(ts, "required", tokenizer=tok)
        t = time.perf_counter()
        m = llguidance.LLMatcher(lt, c.text, log_level=0)
        times.append(time.perf_counter() - t)
        assert not m.is_error(), m.get_error()
    return min(times) * 1000


def xgrammar_times(name: str, tok, steps: int = 200) -> dict | None:
    """xgrammar's own structural tag for the family: build+compile time (1/20/100 tools), mask times."""
    fmt = XGRAMMAR_FORMATS.get(name)
    if fmt is None:
        return None
    import numpy as np
    import xgrammar as xgr
    from transformers import PreTrainedTokenizerFast
    hf = PreTrainedTokenizerFast(tokenizer_object=tok)
    info = xgr.TokenizerInfo.from_huggingface(hf, vocab_size=tok.get_vocab_size())
    out = {}
    for n in (1, 20, 100):
        times = []
        for r in range(5):
            ts = tools(n)
            ts[0]["function"]["description"] = f"xgr {r}"
            t = time.perf_counter()
            tag = xgr.get_builtin_structural_tag(fmt, tools=ts, tool_choice="required", reasoning=False)
            compiled = xgr.GrammarCompiler(info, cache_enabled=False).compile_structural_tag(tag)
            times.append(time.perf_counter() - t)
        out[f"xgr_build_{n}_ms"] = min(times) * 1000
    tag = xgr.get_builtin_structural_tag(fmt, tools=tools(20), tool_choice="required", reasoning=False)
    compiled = xgr.GrammarCompiler(info, cache_enabled=False).compile_structural_tag(tag)
    matcher = xgr.GrammarMatcher(compiled)
    bm = xgr.allocate_token_bitmask(1, info.vocab_size)
    import random
    rng = random.Random(0)
    times = []
    for _ in range(steps):
        if matcher.is_terminated():         # a stop token was accepted: xgrammar refuses to fill another mask
            break
        t = time.perf_counter()
        matcher.fill_next_token_bitmask(bm)
        times.append(time.perf_counter() - t)
        allowed = np.nonzero(np.unpackbits(bm[0].numpy().view(np.uint8), bitorder="little")[:info.vocab_size])[0]
        if not len(allowed):
            break
        matcher.accept_token(int(rng.choice(allowed)))
    out["xgr_mask_median_us"] = statistics.median(times) * 1e6
    out["xgr_mask_p99_us"] = float(np.percentile(times, 99)) * 1e6
    return out


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
    ap.add_argument("--build-only", action="store_true", help="build and cache-hit times only (no compile, masks)")
    args = ap.parse_args(argv)
    from toolgram.serve.demo_model import build_tokenizer
    names = toolgram.grammars() if args.grammars == ["all"] else args.grammars
    rows = []
    for name in names:
        g = toolgram.load(name)
        row = {"grammar": name}
        for n in (1, 20, 100):
            cold, hot = build_times(name, n)
            row[f"build_{n}_ms"], row[f"cached_{n}_ms"] = cold, hot
        row["build_20_varied_ms"], _ = build_times(name, 20, make=varied_tools)
        row["first_20_ms"] = first_build_ms(name)
        if args.build_only:
            rows.append(row)
            if not args.markdown:
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
            continue
        small = build_tokenizer(markers(g))
        row["llg_compile_20_ms"] = llguidance_compile_ms(name, small)
        row["mask4k_median_us"], row["mask4k_p99_us"], row["vocab4k"] = mask_times(name, small)
        xg = xgrammar_times(name, small)
        if xg:
            row.update({k.replace("xgr_mask", "xgr_mask4k"): v for k, v in xg.items()})
        big = tekken_tokenizer(markers(g))
        if big is not None:
            row["mask131k_median_us"], row["mask131k_p99_us"], row["vocab131k"] = mask_times(name, big)
            xg = xgrammar_times(name, big)
            if xg:
                row.update({k.replace("xgr_mask", "xgr_mask131k").replace("xgr_build", "xgr131k_build"): v
                            for k, v in xg.items()})
        rows.append(row)
        if not args.markdown:
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
    if args.markdown and args.build_only:
        print("| grammar | build 1 / 20 / 100 tools (ms) | 20 varied tools (ms) | first 20 (ms) | cached 20 (ms) |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['grammar']} | " + " / ".join(f"{r[f'build_{n}_ms']:.1f}" for n in (1, 20, 100)) +
                  f" | {r['build_20_varied_ms']:.1f} | {r['first_20_ms']:.1f} | {r['cached_20_ms']:.3f} |")
    elif args.markdown:
        def pair(r, a, b, fmt="{:.0f}"):
            return f"{fmt.format(r[a])} / {fmt.format(r[b])}" if a in r else "n/a"

        def three(r, prefix):
            return " / ".join(f"{r[f'{prefix}_{n}_ms']:.1f}" for n in (1, 20, 100)) if f"{prefix}_1_ms" in r else "n/a"
        print("| grammar | engine | build 1 / 20 / 100 tools (ms) | cached 20 (ms) | compile 20 (ms) | "
              "mask 4k median / p99 (µs) | mask 131k median / p99 (µs) |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['grammar']} | toolgram + llguidance | {three(r, 'build')} | {r['cached_20_ms']:.3f} | "
                  f"{r['llg_compile_20_ms']:.1f} | {pair(r, 'mask4k_median_us', 'mask4k_p99_us')} | "
                  f"{pair(r, 'mask131k_median_us', 'mask131k_p99_us')} |")
            if "xgr_build_1_ms" in r:
                print(f"| | xgrammar tag `{XGRAMMAR_FORMATS[r['grammar']]}` (4k / 131k vocab) | "
                      f"{three(r, 'xgr_build')} / {three(r, 'xgr131k_build')} | - | (in build) | "
                      f"{pair(r, 'xgr_mask4k_median_us', 'xgr_mask4k_p99_us')} | "
                      f"{pair(r, 'xgr_mask131k_median_us', 'xgr_mask131k_p99_us')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

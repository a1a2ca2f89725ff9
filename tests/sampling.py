"""Sampling under a constraint with a uniform sampler over the allowed tokens (issue 13 soundness checks).

`sample(g, vocab, constraint, rng)` draws tokens uniformly among those the llguidance mask allows (the end token
with a raised weight, so that outputs finish), up to ``max_tokens``; `unsound(...)` says what is wrong with what
the parser reads back from an output the constraint accepted (None: sound)."""
from __future__ import annotations

import json

import numpy as np


def sample(vocab, constraint_text: str, rng, max_tokens: int = 400, stop_weight: float = 0.3):
    import llguidance
    import llguidance.numpy as lnp
    m = llguidance.LLMatcher(vocab.lt, constraint_text, log_level=0)
    if m.is_error():
        raise AssertionError(m.get_error())
    n = vocab.lt.vocab_size
    mask = lnp.allocate_token_bitmask(1, n)
    eos = vocab.lt.eos_token
    ids = []
    for _ in range(max_tokens):
        if m.is_stopped():
            return ids, True
        lnp.fill_next_token_bitmask(m, mask, 0)
        bits = np.unpackbits(mask[0].view(np.uint8), bitorder="little")[:n]
        allowed = np.flatnonzero(bits)
        if len(allowed) == 0:
            return ids, False
        if eos in allowed and rng.random() < stop_weight:
            return ids, True
        t = int(rng.choice(allowed[allowed != eos] if len(allowed) > 1 else allowed))
        if t == eos:
            return ids, True
        assert m.consume_token(t), m.get_error()
        ids.append(t)
    return ids, False


def unsound(g, tools, mode: str, parallel: bool, text: str, reasoning: bool = True) -> str | None:
    import jsonschema
    r = g.parse(text, tools, reasoning=reasoning)
    by = {t["function"]["name"]: (t["function"].get("parameters") or {}) for t in tools}
    calls = r.tool_calls
    if mode == "none" and calls:
        return f"a call under none: {calls[0].name}"
    if mode in ("required", "named") and not calls:
        return "no call under " + mode
    if not parallel and len(calls) > 1:
        return f"{len(calls)} calls with parallel_tool_calls=False"
    for c in calls:
        if c.name not in by:
            return f"unknown tool {c.name!r}"
        try:
            jsonschema.validate(json.loads(c.arguments), by[c.name])
        except (jsonschema.ValidationError, ValueError) as e:
            return f"arguments of {c.name} invalid: {str(e).splitlines()[0][:120]}"
    if any(t in (r.content or "") for t in g.triggers):
        return "call text left in content"
    return None

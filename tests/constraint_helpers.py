"""Shared pieces of the constraint tests: per-grammar test tokenizers and demo models, llguidance matchers."""
import functools
import json
import os
import tempfile

import toolgram
from toolgram.serve.demo_model import markers_of

os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models"))


@functools.lru_cache(maxsize=None)
def _tokenizer(markers: tuple):
    import llguidance
    from toolgram.serve.demo_model import build_tokenizer
    tok = build_tokenizer(list(markers))
    return tok, llguidance.LLTokenizer(tok.to_str(), eos_token=tok.token_to_id("<|im_end|>"))


def tokenizer_for(g):
    """(tokenizers.Tokenizer, llguidance.LLTokenizer) with the grammar's markers as single tokens."""
    return _tokenizer(tuple(markers_of(g)))


def accepts(g, constraint_text: str, text: str) -> str | None:
    """None if an llguidance matcher for the constraint consumes ``text`` and may stop there; else why not."""
    import llguidance
    tok, lt = tokenizer_for(g)
    m = llguidance.LLMatcher(lt, constraint_text, log_level=0)
    if m.is_error():
        return "grammar error: " + m.get_error()[:300]
    ids = tok.encode(text).ids
    for i, t in enumerate(ids):
        if not m.consume_token(t):
            return f"rejected token {i} after {tok.decode(ids[:i])[-40:]!r}: {m.get_error().splitlines()[0][:200]}"
    if not (m.is_accepting() or m.is_stopped()):
        return "not accepting at the end"
    return None


def synthesized_tools(case, result) -> list:
    """The case's tools, plus a free-form tool for every called name the case's tools lack."""
    tools = list(case.tools or [])
    names = {t["function"]["name"] for t in tools}
    for c in result.tool_calls:
        if c.name not in names:
            names.add(c.name)
            tools.append({"type": "function", "function": {"name": c.name, "parameters": {"type": "object"}}})
    return tools


def arguments_valid(tools, calls) -> bool:
    import jsonschema
    by = {t["function"]["name"]: (t["function"].get("parameters") or {}) for t in tools}
    for c in calls:
        try:
            jsonschema.validate(json.loads(c.arguments), by.get(c.name, {}))
        except (jsonschema.ValidationError, ValueError):
            return False
    return True


@functools.lru_cache(maxsize=None)
def decoder_for(name: str):
    from toolgram.serve import demo_model
    from toolgram.runtime.decoding import Decoder
    g = toolgram.load(name)
    return Decoder.from_pretrained(demo_model.build(markers_of(g)))


@functools.lru_cache(maxsize=None)
def byte_tokenizer():
    """An llguidance tokenizer whose tokens are the 256 bytes (id = byte value) and an end token (256): no
    marker is a token, every marker is spelled byte by byte."""
    import llguidance
    return llguidance.LLTokenizer.from_tiktoken(encoder={bytes([i]): i for i in range(256)},
                                                special_tokens={"<|end|>": 256}, pattern=r"(?s:.)", eos_token=256,
                                                n_vocab=None, slices=None)

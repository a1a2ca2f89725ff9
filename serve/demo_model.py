"""The built-in demo model: a tokenizer trained in seconds and a tiny random-weight causal LM, made locally.

Nothing is downloaded.  The tokenizer is a byte-level BPE trained on generated text (prose-like pseudo-words,
JSON, code) with the chosen grammar's markers as single added tokens, so constraints can name them as
tokens, as with real model families.  The model's weights are random: its tool calls are well formed only
because decoding is constrained, and their values are noise.  Both are kept in a cache directory keyed by
the marker set, so a second start is instant.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

# The template stored with the tokenizer (kept as it was: the constraint tests render prompts with it).
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] if m['content'] is string else '' }}"
          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# The template `toolgram serve` renders the demo model's prompts with: the same turns, plus the request's tools
# (their JSON, in a system turn), assistant tool calls (generic JSON objects) and tool results.  The model's
# weights are random, so what the prompt says changes nothing but its length; it is here so that multi-turn
# requests with tools render completely.
SERVE_TEMPLATE = """{%- if tools %}<|im_start|>system
You may call these functions; each is given as its JSON schema.
{% for t in tools %}{{ t | tojson }}
{% endfor %}<|im_end|>
{% endif %}
{%- for m in messages %}<|im_start|>{{ m.role }}
{% if m.content is string %}{{ m.content }}{% endif %}
{% if m.tool_calls %}{% for c in m.tool_calls %}{{ {"name": c.function.name, "arguments": c.function.arguments} | tojson }}
{% endfor %}{% endif %}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def markers_of(g) -> list[str]:
    """A grammar's markers as a model family would have them (`toolgram.Grammar.markers`), which the demo
    tokenizer makes single added tokens."""
    return g.markers


def _corpus(rng: random.Random, n: int = 6000):
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(n)]
    common = ("the weather city get time name arguments parameters location unit celsius fahrenheit "
              "query search file path content true false null def return import print value key id "
              "function call tool result paris london tokyo new york").split()
    for i in range(n):
        w = rng.sample(words, 8) + rng.sample(common, 4)
        rng.shuffle(w)
        yield " ".join(w) + rng.choice([".", "!", "?", ",", ":"])
        obj = {rng.choice(common): rng.choice([rng.choice(words), rng.randint(-999, 9999), True, None,
                                               [1, 2], {"k": "v"}]) for _ in range(3)}
        yield json.dumps({"name": rng.choice(words), "arguments": obj})
        yield f"{rng.choice(words)}({rng.choice(common)}={rng.randint(0, 99)}, {rng.choice(words)}='x')"
        yield "".join(rng.choice(" \n\t{}[]():;,.'\"<>/=_-+*0123456789") for _ in range(12))


def build_tokenizer(markers, vocab_size: int = 4096, seed: int = 0):
    """A byte-level BPE `tokenizers.Tokenizer` with ``markers`` as single added tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(random.Random(seed)), trainer)
    extra = [m for m in dict.fromkeys(markers) if m and m not in SPECIAL]
    tok.add_tokens([AddedToken(m, special=False, normalized=False) for m in extra])
    return tok


NOTE_FILE = "toolgram_demo.json"


def is_demo(directory) -> bool:
    """Whether a model directory is a toolgram demo model (random weights)."""
    return (Path(directory) / NOTE_FILE).exists()


def _key(markers, vocab_size: int, seed: int) -> str:
    h = hashlib.sha256(json.dumps([sorted(set(markers)), vocab_size, seed, 3]).encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    root = os.environ.get("TOOLGRAM_DEMO_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "toolgram" / "demo-models"


def build(markers, directory: str | Path | None = None, *, vocab_size: int = 4096, seed: int = 0,
          hidden: int = 64, layers: int = 2) -> Path:
    """Create (or reuse) a demo model directory loadable with transformers' Auto classes."""
    markers = list(markers)
    directory = Path(directory) if directory else cache_root() / _key(markers, vocab_size, seed)
    if (directory / "config.json").exists() and (directory / "tokenizer.json").exists():
        return directory
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(markers, vocab_size, seed)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                 bos_token=None, unk_token=None)
    hf.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    hf.chat_template = CHATML
    hf.save_pretrained(tmp)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(hf), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=4096, tie_word_embeddings=True,
                      bos_token_id=hf.convert_tokens_to_ids("<|endoftext|>"),
                      eos_token_id=hf.convert_tokens_to_ids("<|im_end|>"),
                      pad_token_id=hf.convert_tokens_to_ids("<|endoftext|>"))
    LlamaForCausalLM(cfg).save_pretrained(tmp, safe_serialization=True)
    (tmp / NOTE_FILE).write_text(json.dumps({
        "note": "toolgram demo model: RANDOM weights; tool calls are well formed by construction, values are noise",
        "markers": markers}, indent=1), encoding="utf-8")
    try:
        os.replace(tmp, directory)
    except OSError:
        if not (directory / "config.json").exists():
            raise
    return directory


def for_grammar(g, directory=None) -> Path:
    """The demo model directory for a loaded grammar (built on first use, then reused from the cache)."""
    return build(markers_of(g), directory)

"""The tokenizer's side of a constraint: which markers are single added tokens (written ``<[id]>`` in Lark)."""
from __future__ import annotations

from toolgram.errors import ConstraintError


def _marker_like(text: str) -> bool:
    """Added tokens that are markup (``<tool_call>``, ``[TOOL_CALLS]``, ``<|"|>``), not words or single bytes."""
    return len(text) >= 2 and not text.isalnum() and not text.isspace()


def added_tokens(tokenizer) -> dict:
    """``{text: id}`` of a tokenizer's added marker tokens (transformers, tokenizers, or a ready dict)."""
    if tokenizer is None:
        return {}
    if isinstance(tokenizer, dict):
        vocab = {str(k): int(v) for k, v in tokenizer.items()}
    elif hasattr(tokenizer, "get_added_vocab"):
        vocab = dict(tokenizer.get_added_vocab())
    elif hasattr(tokenizer, "get_added_tokens_decoder"):
        vocab = {t.content: i for i, t in tokenizer.get_added_tokens_decoder().items()}
    else:
        raise ConstraintError("tokenizer must be a transformers or tokenizers tokenizer, or a {text: id} dict")
    return {k: v for k, v in vocab.items() if _marker_like(k)}


def holdable_tokens(tokenizer) -> frozenset:
    """The added marker tokens that text may hold (the parser keeps such a marker in reasoning or content):
    those that are not the tokenizer's special tokens.  A special token (end of turn, padding) ends generation
    or is dropped from the text an engine decodes, so text never holds one.  A ``{text: id}`` dict says
    nothing about which tokens are special: all of its markers."""
    tokens = added_tokens(tokenizer)
    if tokenizer is None or isinstance(tokenizer, dict):
        return frozenset(tokens)
    decoder = getattr(tokenizer, "added_tokens_decoder", None)          # transformers
    if decoder is None and hasattr(tokenizer, "get_added_tokens_decoder"):
        decoder = tokenizer.get_added_tokens_decoder()                 # tokenizers
    special = {str(getattr(t, "content", t)) for t in (decoder or {}).values() if getattr(t, "special", False)}
    special.update(getattr(tokenizer, "all_special_tokens", None) or ())
    return frozenset(t for t in tokens if t not in special)

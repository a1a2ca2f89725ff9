"""Constrained decoding on the CPU: any transformers causal LM, llguidance masks applied with numpy.

`Decoder` wraps a model and its (fast) tokenizer.  `Decoder.generate` samples token by token with a KV
cache, and, when given a grammar (Lark text, as `Grammar.constraint` writes it), masks every step with an
llguidance matcher so that only tokens the grammar allows can be chosen.  The mask is applied with numpy
(llguidance's torch helper is ``torch.compile``d, which stalls the first call for seconds on a CPU).
Several sequences decode together as a batch, each with its own matcher.  Text comes out incrementally
(multi-byte characters are held until complete), so a streaming parser can consume it as it is made.

torch, transformers and llguidance are optional dependencies of toolgram: this module imports them when used.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from toolgram.cache import LRU


COMPILED_KEPT = 32          # compiled grammars a Decoder keeps (about 1.4 MB each for 20 tools at a 4k vocabulary)
# llguidance's lexer work per mask (its default, 200k, is about 14 ms of lexer building): a capped text lexeme
# (``max_reasoning``) beside a header's other lexemes can need more the first time the lexer meets a state,
# and a mask that runs out fails the sequence ("too many expressions constructed"); random walks with the demo
# tokenizer, max_reasoning=64: 9 of 20 failed at 200k, none at 1M or 2M, the slowest mask 8.7 ms
# (docs/constraints.md)
STEP_LEXER_FUEL = 2_000_000


def llguidance_limits():
    """The `llguidance.LLParserLimits` toolgram's own matchers run under (`STEP_LEXER_FUEL`)."""
    import llguidance
    return llguidance.LLParserLimits(step_lexer_fuel=STEP_LEXER_FUEL)


class DecodingError(RuntimeError):
    pass


@dataclass
class Step:
    """One generated token of one sequence."""

    index: int              # which sequence of the batch
    token: int
    text: str               # the text this token completes (may be "" while a character is incomplete)
    finished: bool = False
    reason: str | None = None   # "stop" (grammar complete or end of sequence), "length", "abort"


@dataclass
class _Seq:
    matcher: object = None
    tokens: list = field(default_factory=list)
    prefix: int = 0
    read: int = 0
    done: bool = False
    reason: str | None = None


class Decoder:
    """Generation with optional grammar masks for one model (thread-safe: one generation at a time)."""

    def __init__(self, model, tokenizer, *, device: str = "cpu", threads: int | None = None):
        import torch
        self.torch = torch
        if threads is None and sum(p.numel() for p in model.parameters()) < 50_000_000:
            threads = 1        # small models: thread hand-offs cost more than the matmuls (1 ms vs 8 us here)
        if threads:
            torch.set_num_threads(threads)
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.vocab = int(getattr(model.config, "vocab_size", len(tokenizer)))
        self.eos = self._eos_ids()
        self._lltok = None
        self._compiled = LRU("matchers", COMPILED_KEPT)   # grammar text -> its compiled matcher, never advanced
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, path, **kw) -> "Decoder":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        return cls(model, tok, **kw)

    def _eos_ids(self) -> list[int]:
        ids = []
        eos = getattr(self.model.config, "eos_token_id", None)
        for e in (eos if isinstance(eos, list) else [eos]):
            if e is not None:
                ids.append(int(e))
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        return sorted(set(ids))

    @property
    def ll_tokenizer(self):
        """The llguidance view of the tokenizer (built once: about a second for a large vocabulary)."""
        if self._lltok is None:
            import llguidance
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            if backend is None:
                raise DecodingError("constrained decoding needs a fast (Rust) tokenizer")
            self._lltok = llguidance.LLTokenizer(backend.to_str(), n_vocab=self.vocab, eos_token=self.eos[0])
        return self._lltok

    def matcher(self, grammar: str):
        """A fresh llguidance matcher for ``grammar`` (raises DecodingError for a grammar it refuses).

        The compiled matchers of the last `COMPILED_KEPT` grammars are kept and copied (``deep_copy``, about
        1 µs, where compiling a constraint for 20 tools takes 4–11 ms): a client sends the same tools turn
        after turn, and a batch often holds the same constraint many times."""
        template = self._compiled.get(grammar)
        if template is None:
            import llguidance
            template = llguidance.LLMatcher(self.ll_tokenizer, grammar, log_level=0, limits=llguidance_limits())
            if template.is_error():
                raise DecodingError(f"the constraint does not compile: {template.get_error()}")
            self._compiled.put(grammar, template)
        return template.deep_copy()

    # -- text --------------------------------------------------------------------------------------
    def _text(self, s: _Seq) -> str:
        """Incremental detokenization: the new complete text of a sequence (special tokens kept)."""
        decode = self.tokenizer.decode
        prefix_text = decode(s.tokens[s.prefix:s.read], skip_special_tokens=False)
        new_text = decode(s.tokens[s.prefix:], skip_special_tokens=False)
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            out = new_text[len(prefix_text):]
            s.prefix, s.read = s.read, len(s.tokens)
            return out
        return ""

    # -- generation ---------------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], grammars: list[str | None] | None = None, *,
                 max_new_tokens: int = 256, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                 stop_tokens: list[int] | None = None, should_abort=None, forced: list[int] | None = None,
                 logit_bias: dict | None = None):
        """Yield `Step`s for a batch of prompts (token-id lists), each optionally under a grammar.

        ``forced``: tokens every sequence starts its output with (checked against the grammar), e.g. a
        tool-call marker to make ``auto`` call."""
        torch = self.torch
        import numpy as np
        n = len(prompts)
        grammars = grammars or [None] * n
        with self._lock:
            seqs = [_Seq(matcher=self.matcher(g) if g else None) for g in grammars]
            gen = torch.Generator(device="cpu")
            if seed is not None:
                gen.manual_seed(int(seed) % (1 << 64))      # (torch takes 64 bits; -1 is 2**64 - 1 either way)
            stops = set(stop_tokens or ()) | set(self.eos)
            if forced:
                for i, s in enumerate(seqs):
                    for tok in forced:
                        if s.matcher is not None and not s.matcher.consume_token(tok):
                            raise DecodingError(f"the forced tokens do not fit the grammar: {s.matcher.get_error()}")
                        s.tokens.append(tok)
                    yield Step(i, -1, self._text(s))
                prompts = [list(p) + list(forced) for p in prompts]
            width = max(len(p) for p in prompts)
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos[0]
            ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long)
            attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
            past = None
            step_input = ids
            masks = None
            if any(s.matcher is not None for s in seqs):
                import llguidance.numpy as lnp
                masks = lnp.allocate_token_bitmask(n, self.ll_tokenizer.vocab_size)
            for _ in range(max_new_tokens):
                if should_abort is not None and should_abort():
                    for i, s in enumerate(seqs):
                        if not s.done:
                            s.done, s.reason = True, "abort"
                            yield Step(i, -1, "", True, "abort")
                    return
                with torch.no_grad():
                    out = self.model(input_ids=step_input, attention_mask=attn, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()
                if logit_bias:
                    for tok, bias in logit_bias.items():
                        if 0 <= int(tok) < logits.shape[1]:
                            logits[:, int(tok)] += float(bias)
                for i, s in enumerate(seqs):
                    if s.done or s.matcher is None:
                        continue
                    lnp.fill_next_token_bitmask(s.matcher, masks, i)
                    bits = np.unpackbits(masks[i].view(np.uint8), bitorder="little")[:logits.shape[1]]
                    allowed = torch.from_numpy(bits.astype(bool))
                    if allowed.shape[0] < logits.shape[1]:
                        allowed = torch.cat([allowed, torch.zeros(logits.shape[1] - allowed.shape[0], dtype=torch.bool)])
                    if not bool(allowed.any()):
                        s.done, s.reason = True, "stop"
                        continue
                    logits[i][~allowed] = float("-inf")
                chosen = self._sample(logits, temperature, top_p, gen)
                tokens = []
                for i, s in enumerate(seqs):
                    if s.done:
                        tokens.append(pad)
                        continue
                    tok = int(chosen[i])
                    tokens.append(tok)
                    if s.matcher is not None and not s.matcher.consume_token(tok):
                        raise DecodingError(f"sampled a token the grammar refused: {s.matcher.get_error()}")
                    s.tokens.append(tok)
                    finished = tok in stops or (s.matcher is not None and s.matcher.is_stopped())
                    text = "" if tok in stops else self._text(s)
                    if finished:
                        s.done, s.reason = True, "stop"
                        if tok in stops:
                            s.tokens.pop()
                    yield Step(i, tok, text, finished, s.reason)
                if all(s.done for s in seqs):
                    return
                step_input = torch.tensor(tokens, dtype=torch.long).unsqueeze(1)
                attn = torch.cat([attn, torch.ones((n, 1), dtype=torch.long)], dim=1)
            for i, s in enumerate(seqs):
                if not s.done:
                    s.done, s.reason = True, "length"
                    yield Step(i, -1, "", True, "length")

    def _sample(self, logits, temperature: float, top_p: float, gen):
        torch = self.torch
        if temperature <= 1e-6:       # (a subnormal temperature made logits / temperature inf - inf = nan)
            return torch.argmax(logits, dim=-1)
        probs = torch.softmax(logits / temperature, dim=-1)
        if not bool(torch.isfinite(probs).all()):
            return torch.argmax(logits, dim=-1)
        if top_p < 1.0:
            sorted_p, idx = torch.sort(probs, descending=True, dim=-1)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < top_p
            keep[..., 0] = True       # the most likely token always (a top_p below float32's least value kept none)
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
            probs = probs / probs.sum(dim=-1, keepdim=True)
        return torch.multinomial(probs, 1, generator=gen).squeeze(-1)

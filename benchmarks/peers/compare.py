"""toolgram against vLLM 0.33's own tool parsers, on identical delta streams, in one process.

Run it with the interpreter of the venv that benchmarks/peers/setup_vllm.sh makes (vLLM is not a
dependency of this project):

    bash benchmarks/peers/setup_vllm.sh
    ~/.cache/toolgram-peers/vllm-venv/bin/python benchmarks/peers/compare.py --quick
    ~/.cache/toolgram-peers/vllm-venv/bin/python benchmarks/peers/compare.py            # full
    ... compare.py --formats hermes kimi_k2 --workloads long_arg --sizes 2000 4000 --deltas 1 4 --repeats 5

What it does, per format (the toolgram grammar and the vLLM parser of the same family):
  * builds a small byte-level BPE tokenizer locally (the `tokenizers` library, trained in a second on
    generated text; the format's markers are added tokens), so vLLM parsers that look at token ids get
    real ones; nothing is downloaded;
  * generates the workloads (long string argument, many small parallel calls, long content with no call,
    content dense in '<' '{' '['), at several output lengths;
  * splits each output into deltas: at least N characters, cut at token boundaries (N=1 is one token per
    delta, as an engine streams without speculative decoding; 4 and 32 group tokens as MTP / spec-decode /
    stream_interval do), and the whole message as one delta; `--split chars` cuts at exactly N characters
    instead (each token's id then goes with the delta that completes it);
  * feeds the same delta strings (and, to vLLM, the same token ids) to both parsers: vLLM through
    `Parser.parse_delta`, the entry point of its serving layer (for legacy `ToolParser`s this is the
    `DelegatingParser` that builds previous/current text and token ids and calls
    `extract_tool_calls_streaming`, exactly as the server does; engine parsers get the delta only);
    toolgram through `StreamingParser.feed` / `close`;
  * times only the parse calls (construction, tokenizing and result assembly are outside the clock),
    after an untimed warm-up run, over several runs alternating which parser goes first: per message, the
    thread's CPU time over the loop of calls less the same loop around a no-op (robust when other jobs
    share the machine); per delta, the wall clock around each call (median and p99);
  * checks correctness: does each parser's streamed output (what a client assembles from the deltas)
    equal its own one-shot result (vLLM `Parser.parse`, toolgram `Grammar.parse`), and does it give the
    calls the workload contains.  A crash or an empty stream is recorded as a result.

Outputs (paths are flags): benchmarks/peers/results.json (every measurement), benchmarks/peers/RESULTS.md
(a section ready to paste into docs/performance.md) and docs/img/peers-*.png (log-log time against output
length, one line per parser).  Toolgram grammars that do not exist yet are skipped with a note, so a rerun
picks them up.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import random
import shlex
import statistics
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

# ------------------------------------------------------------------------------------------------
# Formats: how a call is written, which markers are tokens, which vLLM parser reads it
# ------------------------------------------------------------------------------------------------


def _j(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _xml_value(v) -> str:
    return v if isinstance(v, str) else _j(v)


def _py_value(v) -> str:
    if isinstance(v, str):
        return _j(v)           # a JSON string literal is a valid Python string literal
    if isinstance(v, bool):
        return "True" if v else "False"
    if v is None:
        return "None"
    return _j(v)


DS = {"calls_begin": "<｜tool▁calls▁begin｜>", "calls_end": "<｜tool▁calls▁end｜>", "call_begin": "<｜tool▁call▁begin｜>",
      "call_end": "<｜tool▁call▁end｜>", "sep": "<｜tool▁sep｜>"}


def render_hermes(calls):
    return "\n".join(f"<tool_call>\n{_j({'name': n, 'arguments': a})}\n</tool_call>" for n, a in calls)


def render_mistral(calls):
    return "".join(f"[TOOL_CALLS]{n}[ARGS]{_j(a)}" for n, a in calls)


def render_llama3_json(calls):
    return "; ".join(_j({"name": n, "parameters": a}) for n, a in calls)


def render_pythonic(calls):
    return "[" + ", ".join(f"{n}(" + ", ".join(f"{k}={_py_value(v)}" for k, v in a.items()) + ")"
                           for n, a in calls) + "]"


def render_jamba(calls):
    return "<tool_calls>[\n" + ",\n".join(_j({"name": n, "arguments": a}) for n, a in calls) + "\n]</tool_calls>"


def render_kimi_k2(calls):
    return ("<|tool_calls_section_begin|>" +
            "".join(f"<|tool_call_begin|>functions.{n}:{i}<|tool_call_argument_begin|>{_j(a)}<|tool_call_end|>"
                    for i, (n, a) in enumerate(calls)) + "<|tool_calls_section_end|>")


def render_glm47(calls):
    return "".join(f"<tool_call>{n}" + "".join(f"<arg_key>{k}</arg_key><arg_value>{_xml_value(v)}</arg_value>"
                                               for k, v in a.items()) + "</tool_call>" for n, a in calls)


def render_deepseek_v3(calls):
    return (DS["calls_begin"] + "\n".join(f"{DS['call_begin']}function{DS['sep']}{n}\n```json\n{_j(a)}\n```{DS['call_end']}"
                                          for n, a in calls) + DS["calls_end"])


def render_deepseek_v3_1(calls):
    return DS["calls_begin"] + "".join(f"{DS['call_begin']}{n}{DS['sep']}{_j(a)}{DS['call_end']}"
                                       for n, a in calls) + DS["calls_end"]


def render_phi4(calls):
    return "functools[" + ", ".join(_j({"name": n, "arguments": a}) for n, a in calls) + "]"


def render_qwen3_coder(calls):
    return "\n".join("<tool_call>\n<function=" + n + ">\n" +
                     "".join(f"<parameter={k}>\n{_xml_value(v)}\n</parameter>\n" for k, v in a.items()) +
                     "</function>\n</tool_call>" for n, a in calls)


@dataclass
class Format:
    name: str               # toolgram grammar name
    vllm: str               # vLLM --tool-call-parser name
    render: object          # calls -> the tool-call part of the output
    markers: list           # added tokens of the model family (the tool markers and a few others)
    prefix: bool = True     # the family writes prose before its calls in one message
    sep: str = "\n"         # between the prose and the calls
    notes: str = ""


FORMATS = {f.name: f for f in [
    Format("hermes", "hermes", render_hermes, ["<tool_call>", "</tool_call>", "<|im_start|>", "<|im_end|>"],
           notes="legacy ToolParser (Hermes2ProToolParser)"),
    Format("mistral", "mistral", render_mistral, ["[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "</s>", "[INST]", "[/INST]"],
           sep="", notes="engine adapter (v11+ tokenizer: [ARGS] in the vocab)"),
    Format("llama3_json", "llama3_json", render_llama3_json, ["<|python_tag|>", "<|eot_id|>", "<|eom_id|>"],
           prefix=False, notes="legacy ToolParser; calls are the whole message"),
    Format("pythonic", "pythonic", render_pythonic, ["<|python_start|>", "<|python_end|>"], prefix=False,
           notes="legacy ToolParser; calls are the whole message"),
    Format("jamba", "jamba", render_jamba, ["<tool_calls>", "</tool_calls>"], notes="legacy ToolParser"),
    Format("kimi_k2", "kimi_k2", render_kimi_k2,
           ["<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>", "<|tool_call_end|>",
            "<|tool_call_argument_begin|>", "<think>", "</think>", "<|im_end|>"], sep="", notes="engine adapter"),
    Format("glm47", "glm47", render_glm47,
           ["<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>", "<think>",
            "</think>", "<|user|>", "<|observation|>"], notes="engine adapter"),
    Format("deepseek_v3", "deepseek_v3", render_deepseek_v3, list(DS.values()) + ["<｜end▁of▁sentence｜>"], sep="",
           notes="legacy ToolParser"),
    Format("deepseek_v3_1", "deepseek_v31", render_deepseek_v3_1, list(DS.values()) + ["<｜end▁of▁sentence｜>"],
           sep="", notes="legacy ToolParser"),
    Format("phi4", "phi4_mini_json", render_phi4, ["<|tool_call|>", "<|/tool_call|>", "<|end|>"], sep=" ",
           notes="legacy ToolParser; no streaming in vLLM"),
    Format("qwen3_coder", "qwen3_coder", render_qwen3_coder, ["<tool_call>", "</tool_call>", "<|im_start|>", "<|im_end|>"],
           notes="engine adapter (Qwen3EngineToolParser)"),
]}

# ------------------------------------------------------------------------------------------------
# Workloads
# ------------------------------------------------------------------------------------------------

WORDS = ("the a of to and in is that for it on with as was at by be this from or have an they which one you "
         "file path value read write config server request response error return list string number table "
         "index update delete create user token model stream parser buffer delta output input result check "
         "Paris Rome Tokyo Berlin weather tomorrow résumé naïve café 東京 données").split()

TOOLS = [
    {"type": "function", "function": {
        "name": "write_file", "description": "Write a text file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                       "required": ["path", "content"]}}},
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather forecast for a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
]

CITIES = ["Paris", "Rome", "Tokyo", "Berlin", "Lima", "Oslo", "Cairo", "Quito", "Hanoi", "Perth", "Dakar", "Sofia"]


def prose(n: int, seed: int = 1) -> str:
    """n characters of text: words, punctuation, quotes, newlines, a little non-ASCII; no '<', '&', '[', '{'."""
    rnd = random.Random(seed)
    out, size, line = [], 0, 0
    while size < n:
        w = rnd.choice(WORDS)
        r = rnd.random()
        if r < 0.04:
            w = f'"{w}"'
        elif r < 0.10:
            w += rnd.choice([",", ".", ";", ":", "?", "!"])
        elif r < 0.12:
            w = f"({w})"
        elif r < 0.13:
            w += "'s"
        sepr = " "
        line += len(w) + 1
        if line > 70 + rnd.randint(0, 20):
            sepr, line = "\n", 0
        out.append(w + sepr)
        size += len(w) + 1
    s = "".join(out)[:n]
    return s.rstrip() + "." if s.rstrip() else "x" * n


def bracket_text(n: int, seed: int = 2) -> str:
    """n characters of code and markup: HTML, generics, comparisons, JSON-ish braces, near-miss tags."""
    rnd = random.Random(seed)
    pieces = [
        '<div class="row"><span>{item.name}</span></div>', "if (a < b && c > d) { x = {k: [1, 2]}; }",
        "List<Map<String, Integer>> m = new HashMap<>();", '{"id": 7, "tags": ["a", "b"], "ok": true}',
        "for (i = 0; i < n; i++) { sum += v[i]; }", "<tools>see <b>docs</b></tools>", "a<b, c<=d, e<<2, f->g",
        "template <typename T> T max(T a, T b) { return a < b ? b : a; }", "<!-- note -->", "{{ jinja }} {% if x %}",
        "<br/> <img src='x.png'/> <p>Text</p>", "f = lambda d: {k: v for k, v in d.items()}",
    ]
    out, size = [], 0
    while size < n:
        p = rnd.choice(pieces)
        out.append(p + rnd.choice([" ", "\n", " ", "  "]))
        size += len(out[-1])
    return "Here is the code:\n" + "".join(out)[: max(0, n - 18)]


@dataclass
class Case:
    workload: str
    size: int               # the size parameter (characters of argument / content; calls for parallel)
    text: str
    calls: list             # expected [(name, args)]
    content: str            # expected content (compared after strip())


def make_case(fmt: Format, workload: str, size: int) -> Case:
    lead = "I'll do that now." if fmt.prefix else ""
    glue = fmt.sep if fmt.prefix else ""
    if workload == "long_arg":
        calls = [("write_file", {"path": "/tmp/notes.txt", "content": prose(size, seed=size)})]
        return Case(workload, size, lead + glue + fmt.render(calls), calls, lead)
    if workload == "parallel":
        calls = [("get_weather", {"city": CITIES[i % len(CITIES)], "days": i % 7 + 1,
                                  "unit": "celsius" if i % 2 else "fahrenheit"}) for i in range(size)]
        return Case(workload, size, lead + glue + fmt.render(calls), calls, lead)
    if workload == "content":
        t = prose(size, seed=size + 7)
        return Case(workload, size, t, [], t)
    if workload == "brackets":
        t = bracket_text(size, seed=size + 3)
        return Case(workload, size, t, [], t)
    raise ValueError(workload)


WORKLOADS = ["long_arg", "parallel", "content", "brackets"]
WORKLOAD_DOC = {
    "long_arg": "one write_file call whose content argument is N characters of text",
    "parallel": "N small get_weather calls in one message",
    "content": "N characters of prose, no call",
    "brackets": "N characters of code and markup ('<', '{', '[' and near-miss tags), no call",
}

# ------------------------------------------------------------------------------------------------
# Tokenizer (local, byte-level BPE; markers as added tokens)
# ------------------------------------------------------------------------------------------------

_BASE_TOKENIZER = None


def base_tokenizer_json() -> str:
    global _BASE_TOKENIZER
    if _BASE_TOKENIZER is None:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)

        def corpus():
            for i in range(300):
                yield prose(2000, seed=1000 + i)
                yield bracket_text(800, seed=2000 + i)
                yield _j({"name": "get_weather", "arguments": {"city": CITIES[i % 12], "days": i % 7}})
        tok.train_from_iterator(corpus(), trainers.BpeTrainer(
            vocab_size=4096, min_frequency=2, show_progress=False, special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        _BASE_TOKENIZER = tok.to_str()
    return _BASE_TOKENIZER


class FormatTokenizer:
    """The raw `tokenizers.Tokenizer` (for offsets) and vLLM's cached HF wrapper of it (for the parsers)."""

    def __init__(self, fmt: Format):
        from tokenizers import AddedToken, Tokenizer
        from transformers import PreTrainedTokenizerFast
        self.raw = Tokenizer.from_str(base_tokenizer_json())
        self.raw.add_tokens([AddedToken(m, special=False, normalized=False) for m in fmt.markers])
        hf = PreTrainedTokenizerFast(tokenizer_object=self.raw, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
        hf.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                            "{% if add_generation_prompt %}assistant: {% endif %}")
        try:
            from vllm.tokenizers.hf import get_cached_tokenizer
            self.hf = get_cached_tokenizer(hf)
        except Exception:  # pragma: no cover
            self.hf = hf
        for m in fmt.markers:
            assert len(self.raw.encode(m).ids) == 1, m

    def encode(self, text: str):
        e = self.raw.encode(text)
        return list(e.ids), list(e.offsets)


def split_deltas(text: str, ids, offsets, n: int, mode: str):
    """[(delta_text, delta_token_ids)]: n=0 is the whole message."""
    if n == 0:
        return [(text, list(ids))]
    if mode == "chars":
        out, j = [], 0
        for start in range(0, len(text), n):
            end = min(len(text), start + n)
            k = j
            while k < len(ids) and offsets[k][1] <= end:
                k += 1
            out.append((text[start:end], list(ids[j:k])))
            j = k
        if j < len(ids):
            out[-1] = (out[-1][0], out[-1][1] + list(ids[j:]))
        return out
    # token-aligned: whole tokens, at least n characters, never inside a character
    out, start, j = [], 0, 0
    for k in range(len(ids)):
        end = offsets[k][1]
        boundary = k + 1 == len(ids) or offsets[k + 1][0] >= end
        if boundary and end - start >= n:
            out.append((text[start:end], list(ids[j:k + 1])))
            start, j = end, k + 1
    if start < len(text) or j < len(ids):
        out.append((text[start:], list(ids[j:])))
    assert "".join(d for d, _ in out) == text
    return out

# ------------------------------------------------------------------------------------------------
# The two sides
# ------------------------------------------------------------------------------------------------


def _norm_args(s):
    try:
        return ("json", json.loads(s))
    except Exception:
        return ("raw", s)


def normalize(content, calls):
    """(content or "", [(name, parsed arguments)]) for comparing results."""
    return (content or "", [(c["name"], _norm_args(c["arguments"])) for c in calls])


class Accum:
    """What an OpenAI client assembles from the stream: content, and per index name/arguments concatenated."""

    def __init__(self):
        self.content = []
        self.calls = {}

    def content_delta(self, s):
        if s:
            self.content.append(s)

    def call_delta(self, index, name, args):
        rec = self.calls.setdefault(index, {"name": "", "arguments": ""})
        if name:
            rec["name"] += name
        if args:
            rec["arguments"] += args

    def result(self):
        return "".join(self.content), [self.calls[k] for k in sorted(self.calls)]


class ToolgramSide:
    label = "toolgram"

    def __init__(self, fmt: Format, grammar):
        self.fmt = fmt
        self.g = grammar

    def one_shot(self, case: Case):
        r = self.g.parse(case.text, TOOLS)
        return r.content, [{"name": c.name, "arguments": c.arguments} for c in r.tool_calls]

    def run(self, case: Case, deltas, collect: bool):
        p = self.g.stream(TOOLS)
        clock = time.perf_counter_ns
        times = []
        acc = Accum() if collect else None
        feed = p.feed
        last = len(deltas) - 1
        c0 = time.thread_time_ns()
        for i, (d, _ids) in enumerate(deltas):
            t0 = clock()
            out = feed(d)
            if i == last:
                out = out + p.close()
            times.append(clock() - t0)
            if collect:
                for o in out:
                    acc.content_delta(o.get("content"))
                    for tc in o.get("tool_calls", ()):
                        fn = tc.get("function") or {}
                        acc.call_delta(tc["index"], fn.get("name"), fn.get("arguments"))
        cpu = time.thread_time_ns() - c0
        return times, cpu, (acc.result() if collect else None)


class VllmSide:
    label = "vLLM"

    def __init__(self, fmt: Format, tok: FormatTokenizer):
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.parser.parser_manager import ParserManager
        self.fmt = fmt
        self.tok = tok
        self.cls = ParserManager.get_parser(tool_parser_name=fmt.vllm, enable_auto_tools=True, tokenizer=tok.hf)
        self._request_cls = ChatCompletionRequest
        self.prompt_ids, _ = tok.encode("user: Please help.\nassistant: ")
        self.make_request()   # fail early

    def make_request(self):
        req = self._request_cls(model="local", messages=[{"role": "user", "content": "Please help."}],
                                tools=TOOLS, tool_choice="auto", stream=True)
        parser = self.cls(self.tok.hf, req.tools, chat_template_kwargs={}, model_config=None)
        req = parser.adjust_request(req)
        return parser, req

    def one_shot(self, case: Case):
        parser, req = self.make_request()
        ids, _ = self.tok.encode(case.text)
        _reasoning, content, calls = parser.parse(case.text, req, enable_auto_tools=True, model_output_token_ids=ids)
        return content, [{"name": c.name, "arguments": c.arguments} for c in (calls or [])]

    def run(self, case: Case, deltas, collect: bool):
        parser, req = self.make_request()
        prompt = self.prompt_ids
        clock = time.perf_counter_ns
        times = []
        acc = Accum() if collect else None
        parse_delta = parser.parse_delta
        last = len(deltas) - 1
        c0 = time.thread_time_ns()
        for i, (d, ids) in enumerate(deltas):
            t0 = clock()
            m = parse_delta(d, ids, req, prompt, finished=(i == last))
            times.append(clock() - t0)
            if collect and m is not None:
                acc.content_delta(m.content)
                for tc in m.tool_calls or ():
                    fn = tc.function
                    acc.call_delta(tc.index, fn.name if fn else None, fn.arguments if fn else None)
        cpu = time.thread_time_ns() - c0
        return times, cpu, (acc.result() if collect else None)


class NullSide:
    """The timing loop around a call that does nothing: its CPU time is subtracted from both parsers' totals."""
    label = "null"

    def run(self, case, deltas, collect=False):
        clock = time.perf_counter_ns
        times = []
        noop = _noop
        last = len(deltas) - 1
        c0 = time.thread_time_ns()
        for i, (d, ids) in enumerate(deltas):
            t0 = clock()
            m = noop(d, ids, None, None, finished=(i == last))
            times.append(clock() - t0)
        cpu = time.thread_time_ns() - c0
        return times, cpu, None


def _noop(*args, **kwargs):
    return None

# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    i = min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))
    return xs[i]


def describe(res) -> str:
    content, calls = res
    names = [c["name"] for c in calls]
    arg_len = sum(len(c["arguments"]) for c in calls)
    shown = names if len(names) <= 3 else names[:3] + [f"... {len(names)} calls"]
    return f"{len(calls)} calls {shown}, args {arg_len} chars, content {len(content or '')} chars"


def compare_results(a, b) -> str | None:
    """None if equal, else a short description of the first difference."""
    ca, la = normalize(*a)
    cb, lb = normalize(*b)
    if len(la) != len(lb):
        return f"{len(la)} calls vs {len(lb)}"
    for i, (x, y) in enumerate(zip(la, lb)):
        if x[0] != y[0]:
            return f"call {i} name {x[0]!r} vs {y[0]!r}"
        if x[1] != y[1]:
            kind = "unparsable " if "raw" in (x[1][0], y[1][0]) else ""
            return f"call {i} {kind}arguments differ"
    if ca != cb:
        k = next((i for i, (p, q) in enumerate(zip(ca, cb)) if p != q), min(len(ca), len(cb)))
        return f"content differs at char {k} ({len(ca)} vs {len(cb)} chars)"
    return None


def expected_check(res, case: Case) -> str | None:
    content, calls = res
    got = normalize(content, calls)[1]
    want = [(n, ("json", a)) for n, a in case.calls]
    if len(got) != len(want):
        return f"{len(got)} calls, expected {len(want)}"
    for i, (x, y) in enumerate(zip(got, want)):
        if x != y:
            return f"call {i} differs from the expected {y[0]}"
    if (content or "").strip() != case.content.strip():
        return f"content {len((content or '').strip())} chars, expected {len(case.content.strip())}"
    return None


@dataclass
class Cell:
    fmt: str
    workload: str
    size: int
    delta: int
    out_len: int
    n_deltas: int
    parsers: dict = field(default_factory=dict)   # label -> measurement dict
    loop_overhead_ms: float = 0.0


def measure_cell(sides, case: Case, delta: int, split: str, tok: FormatTokenizer, repeats: int, max_run_s: float,
                 skip: dict) -> Cell:
    ids, offsets = tok.encode(case.text)
    deltas = split_deltas(case.text, ids, offsets, delta, split)
    cell = Cell(sides[0].fmt.name, case.workload, case.size, delta, len(case.text), len(deltas))
    live = []
    for side in sides:
        m = {"runs": 0}
        cell.parsers[side.label] = m
        key = (side.label, case.workload, delta)
        if key in skip:
            m["skipped"] = skip[key]
            continue
        # one-shot result (untimed) and a warm-up streaming run that also gives the streamed result
        try:
            t0 = time.perf_counter()
            one = side.one_shot(case)
            m["one_shot_ms"] = (time.perf_counter() - t0) * 1e3
        except Exception as e:  # recorded, not hidden
            one = None
            m["one_shot_error"] = f"{type(e).__name__}: {e}"[:300]
        try:
            gc.collect()
            t0 = time.perf_counter()
            _, _, streamed = side.run(case, deltas, collect=True)
            warm_s = time.perf_counter() - t0
        except Exception as e:
            m["crash"] = f"{type(e).__name__}: {e}"[:300]
            m["crash_trace"] = traceback.format_exc(limit=-3)[-1500:]
            continue
        m["streamed"] = describe(streamed)
        m["one_shot"] = describe(one) if one is not None else None
        m["stream_vs_oneshot"] = compare_results(streamed, one) if one is not None else "one-shot failed"
        m["stream_vs_expected"] = expected_check(streamed, case)
        m["oneshot_vs_expected"] = expected_check(one, case) if one is not None else "one-shot failed"
        m["warm_s"] = warm_s
        live.append((side, m, warm_s))
    # timed runs, alternating which parser goes first
    timed = {side.label: [] for side, _, _ in live}
    null = NullSide()
    overhead = []
    for r in range(repeats):
        order = live if r % 2 == 0 else list(reversed(live))
        for side, m, warm_s in order:
            if warm_s > max_run_s and m["runs"] >= 1:
                continue          # a very slow parser: one timed run is enough (and the warm-up shows it)
            gc.collect()
            try:
                times, cpu, _ = side.run(case, deltas, collect=False)
            except Exception as e:
                m["crash"] = f"{type(e).__name__}: {e}"[:300]
                break
            timed[side.label].append((times, cpu))
            m["runs"] += 1
        overhead.append(null.run(case, deltas)[1])
    loop_ns = statistics.median(overhead) if overhead else 0
    cell.loop_overhead_ms = loop_ns / 1e6
    for side, m, warm_s in live:
        runs = timed[side.label]
        if not runs:
            continue
        walls = [sum(t) for t, _ in runs]
        cpus = [c for _, c in runs]
        pooled = [x for t, _ in runs for x in t]
        m["cpu_ms"] = statistics.median(cpus) / 1e6
        m["wall_ms"] = statistics.median(walls) / 1e6
        m["total_ms"] = max(statistics.median(cpus) - loop_ns, 0) / 1e6 or m["wall_ms"]
        m["cpu_ms_all"] = [x / 1e6 for x in cpus]
        m["wall_ms_all"] = [x / 1e6 for x in walls]
        m["us_per_delta_median"] = statistics.median(pooled) / 1e3
        m["us_per_delta_p99"] = pct(pooled, 0.99) / 1e3
        m["us_per_delta_mean"] = statistics.fmean(pooled) / 1e3
        if m["total_ms"] / 1e3 > max_run_s:
            skip[(side.label, case.workload, delta)] = (f"not run: at size {case.size} one run took "
                                                        f"{m['total_ms'] / 1e3:.1f} s (> --max-run-s {max_run_s:g})")
    return cell


def growth(points):
    """(factor per doubling of output length from a least-squares fit of log time on log length, n points)."""
    pts = [(math.log2(x), math.log2(y)) for x, y in points if x > 0 and y and y > 0]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    if den == 0:
        return None
    slope = sum((p[0] - mx) * (p[1] - my) for p in pts) / den
    return 2 ** slope

# ------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------


def dlabel(d):
    return "whole" if d == 0 else str(d)


def fmt_ms(x):
    if x is None:
        return "–"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def fmt_us(m):
    if "us_per_delta_median" not in m:
        return "–"
    a, b = m["us_per_delta_median"], m["us_per_delta_p99"]
    f = (lambda v: f"{v:.3g}" if v < 1000 else f"{v:.0f}")
    return f"{f(a)} / {f(b)}"


def status(m):
    if "crash" in m:
        return "crash"
    if "skipped" in m:
        return "skipped"
    return None


def correctness_cell(ms):
    """Aggregate over sizes: '✓' or '✗ k/n' for stream==one-shot and for stream==expected."""
    n = len(ms)
    crashes = sum(1 for m in ms if "crash" in m)
    if crashes:
        return f"crash {crashes}/{n}", f"crash {crashes}/{n}"
    ran = [m for m in ms if "stream_vs_oneshot" in m]
    if not ran:
        return "–", "–"
    a = sum(1 for m in ran if m["stream_vs_oneshot"] is None)
    b = sum(1 for m in ran if m["stream_vs_expected"] is None)
    ca = "✓" if a == len(ran) else f"✗ {len(ran) - a}/{len(ran)}"
    cb = "✓" if b == len(ran) else f"✗ {len(ran) - b}/{len(ran)}"
    return ca, cb


def summarize(cells, labels=("toolgram", "vLLM")):
    """Rows per (fmt, workload, delta) with figures at the largest size both parsers measured."""
    groups = {}
    for c in cells:
        groups.setdefault((c.fmt, c.workload, c.delta), []).append(c)
    rows = []
    for (f, w, d), cs in groups.items():
        cs.sort(key=lambda c: c.size)
        row = {"fmt": f, "workload": w, "delta": d, "cells": cs}
        both = [c for c in cs if all("total_ms" in c.parsers.get(lb, {}) for lb in labels)]
        ref = both[-1] if both else cs[-1]
        row["ref"] = ref
        for lb in labels:
            ms = [c.parsers.get(lb, {}) for c in cs]
            row[lb] = {
                "at": ref.parsers.get(lb, {}),
                "growth": growth([(c.out_len, c.parsers[lb].get("total_ms")) for c in cs if lb in c.parsers]),
                "correct": correctness_cell(ms),
                "largest": max((c.size for c in cs if "total_ms" in c.parsers.get(lb, {})), default=None),
            }
        a, b = (ref.parsers.get(lb, {}).get("total_ms") for lb in labels)
        row["ratio"] = a / b if a and b else None
        rows.append(row)
    return rows


def markdown(rows, meta, args, notes) -> str:
    L = []
    cmd_base = "~/.cache/toolgram-peers/vllm-venv/bin/python benchmarks/peers/compare.py"
    L.append("## Against vLLM 0.33's tool parsers\n")
    L.append(f"Measured {meta['date']} on {meta['machine']}; vLLM {meta['vllm']}, torch {meta['torch']} (CPU), "
             f"Python {meta['python']}. Mode: {meta['mode']}; medians of {args.repeats} timed runs after a warm-up run, "
             f"the two parsers alternating within one run of the script, so each ratio compares figures taken "
             f"minutes apart on the same machine. Set up with `bash benchmarks/peers/setup_vllm.sh`.\n")
    L.append("Both parsers get the same delta strings; vLLM also gets the token ids of a local byte-level BPE "
             "tokenizer whose added tokens are the format's markers, and is called through `Parser.parse_delta`, "
             "the entry point of its serving layer (legacy parsers receive the accumulated previous/current text "
             "and token ids from it, as in the server). A delta of N is the shortest run of whole tokens with at "
             f"least N characters ({'token-aligned' if args.split == 'tokens' else 'exactly N characters'} here): "
             "1 is one token per delta, 4 and 32 are what speculative decoding, MTP or `stream_interval` hand "
             "the parser; `whole` is the message in one delta. Workloads: " +
             "; ".join(f"`{w}`: {WORKLOAD_DOC[w]}" for w in args.workloads) + ".\n")
    L.append("Columns: figures at the largest size both parsers ran (`N`, output length in characters); ms: "
             "CPU time of the parse calls for the whole message (the thread's CPU time over the timed loop, less "
             "the same loop around a no-op call; CPU rather than wall time because other jobs shared this "
             f"machine: load average {meta.get('load_start', '?')} at the start, {meta.get('load_end', '?')} at "
             "the end); µs per delta (wall clock per call), median / p99 over all deltas of all timed runs; ratio = "
             "toolgram time / vLLM time (below 1: toolgram faster); growth = time factor per doubling of the "
             "output, fitted over all sizes a parser ran (2 is linear, 4 quadratic; with `whole` it is the "
             "one-shot cost); stream = one-shot: the output a client assembles from the stream equals the "
             "parser's own one-shot result (✗ k/n: differs at k of n sizes); expected: the streamed result has "
             "exactly the calls the workload contains and its content (trimmed).\n")
    if not meta.get("complete", True):
        L.append("**Partial run**: the script was still running (or was stopped) when this was written.\n")
    if notes:
        L.append("Notes: " + " ".join(notes) + "\n")
    fmts = []
    for r in rows:
        if r["fmt"] not in fmts:
            fmts.append(r["fmt"])
    # headline: one token per delta, each workload at its largest common size
    L.append("Summary, one token per delta (delta 1): ratio toolgram/vLLM of the message's parse time at the "
             "largest size both ran, and growth per doubling (toolgram / vLLM); last columns: over all cells "
             "(workloads × sizes × deltas), how many streamed a result whose calls differ from the parser's own "
             "one-shot result or from the expected calls (missing, extra, or different arguments) / whose "
             "content alone differs (from the one-shot content, or from the expected content after trimming).\n")
    ws = [w for w in WORKLOADS if w in args.workloads]
    L.append("| format | " + " | ".join(f"{w}: ratio, growth" for w in ws) +
             " | toolgram: calls / content differ | vLLM: calls / content differ |")
    L.append("|---|" + "---|" * len(ws) + "---|---|")
    for f in fmts:
        cellsf = []
        for w in ws:
            r = next((r for r in rows if r["fmt"] == f and r["workload"] == w and r["delta"] == 1), None)
            if r is None:
                cellsf.append("–")
                continue
            ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else (status(r["vLLM"]["at"]) or "–")
            ga, gb = r["toolgram"]["growth"], r["vLLM"]["growth"]
            cellsf.append(f"{ratio}, ×{ga:.2f} / ×{gb:.2f}" if ga and gb else ratio)
        bad = {}
        for lb in ("toolgram", "vLLM"):
            ms = [c.parsers.get(lb, {}) for r in rows if r["fmt"] == f for c in r["cells"]]
            ran = [m for m in ms if "stream_vs_oneshot" in m or "crash" in m]
            msgs = [[m.get("stream_vs_oneshot"), m.get("stream_vs_expected")] for m in ran]
            crash = sum(1 for m in ran if "crash" in m)
            calls = sum(1 for m, x in zip(ran, msgs) if "crash" not in m
                        and any(v and not v.startswith("content") for v in x))
            content = sum(1 for m, x in zip(ran, msgs) if "crash" not in m and any(x)
                          and all(not v or v.startswith("content") for v in x))
            bad[lb] = f"{calls} / {content}" + (f" / crash {crash}" if crash else "") + f" of {len(ran)}"
        L.append(f"| {f} | " + " | ".join(cellsf) + f" | {bad['toolgram']} | {bad['vLLM']} |")
    L.append("")
    for f in fmts:
        F = FORMATS[f]
        L.append(f"### {f} (vLLM `{F.vllm}`: {F.notes})\n")
        cmd = f"{cmd_base} --formats {f}" + (" --quick" if args.quick else "")
        L.append(f"`{cmd}`\n")
        L.append("| workload | delta | N | toolgram ms | vLLM ms | ratio | toolgram µs/delta | vLLM µs/delta | "
                 "growth tg / vLLM | stream = one-shot tg / vLLM | expected tg / vLLM |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in [r for r in rows if r["fmt"] == f]:
            tg, vl = r["toolgram"], r["vLLM"]
            ga = f"×{tg['growth']:.2f}" if tg["growth"] else "–"
            gb = f"×{vl['growth']:.2f}" if vl["growth"] else "–"
            ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "–"
            va = status(vl["at"]) or fmt_ms(vl["at"].get("total_ms"))
            ta = status(tg["at"]) or fmt_ms(tg["at"].get("total_ms"))
            L.append(f"| {r['workload']} | {dlabel(r['delta'])} | {r['ref'].out_len} | {ta} | {va} | {ratio} | "
                     f"{fmt_us(tg['at'])} | {fmt_us(vl['at'])} | {ga} / {gb} | {tg['correct'][0]} / {vl['correct'][0]} "
                     f"| {tg['correct'][1]} / {vl['correct'][1]} |")
        L.append("")
        foot = []
        for r in [r for r in rows if r["fmt"] == f]:
            for lb in ("toolgram", "vLLM"):
                for c in r["cells"]:
                    m = c.parsers.get(lb, {})
                    if "crash" in m:
                        foot.append(f"{lb} {r['workload']} d={dlabel(r['delta'])} N={c.size}: crash {m['crash']}")
                        break
                    if m.get("stream_vs_oneshot") or m.get("stream_vs_expected"):
                        foot.append(f"{lb} {r['workload']} d={dlabel(r['delta'])} N={c.size}: "
                                    f"stream vs one-shot: {m.get('stream_vs_oneshot') or 'equal'}; "
                                    f"vs expected: {m.get('stream_vs_expected') or 'as expected'} "
                                    f"(streamed {m.get('streamed')}; one-shot {m.get('one_shot')})")
                        break
                skipped = [c for c in r["cells"] if "skipped" in c.parsers.get(lb, {})]
                if skipped:
                    foot.append(f"{lb} {r['workload']} d={dlabel(r['delta'])}: sizes "
                                f"{', '.join(str(c.size) for c in skipped)} {skipped[0].parsers[lb]['skipped']}")
        if foot:
            L.append("<details><summary>first difference per row, skipped sizes</summary>\n")
            L.extend(f"- {x}" for x in foot)
            L.append("\n</details>\n")
        if args.plots:
            L.append(f"![{f}: time against output length](img/peers-{f}.png)\n")
    return "\n".join(L)


def plot(rows, img_dir: Path, fmts):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    img_dir.mkdir(parents=True, exist_ok=True)
    colors = {"toolgram": "tab:blue", "vLLM": "tab:red"}
    styles = {1: "-", 4: "--", 32: "-.", 0: ":"}
    written = []
    for f in fmts:
        rs = [r for r in rows if r["fmt"] == f]
        if not rs:
            continue
        ws = [w for w in WORKLOADS if any(r["workload"] == w for r in rs)]
        ncol = 2 if len(ws) > 1 else 1
        nrow = (len(ws) + ncol - 1) // ncol
        fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.0 * nrow), squeeze=False)
        flat = [a for row in axes for a in row]
        for ax in flat[len(ws):]:
            ax.set_visible(False)
        for ax, w in zip(flat, ws):
            for r in [r for r in rs if r["workload"] == w]:
                for lb in ("toolgram", "vLLM"):
                    pts = [(c.out_len, c.parsers[lb]["total_ms"]) for c in r["cells"] if "total_ms" in c.parsers.get(lb, {})]
                    if len(pts) < 1:
                        continue
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, styles.get(r["delta"], "-"), color=colors[lb], marker="o", ms=3,
                            label=f"{lb}, delta {dlabel(r['delta'])}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(f"{f}: {w}", fontsize=10)
            ax.set_xlabel("output length (characters)")
            ax.set_ylabel("CPU time to parse the message (ms)")
            ax.grid(True, which="both", alpha=0.3)
        flat[0].legend(fontsize=7)
        fig.tight_layout()
        p = img_dir / f"peers-{f}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    # overview: long_arg at delta 1, one line per parser of each format
    rs = [r for r in rows if r["workload"] == "long_arg" and r["delta"] == 1]
    if rs:
        fig, ax = plt.subplots(figsize=(7.5, 5))
        cmap = plt.get_cmap("tab20")
        for i, r in enumerate(rs):
            for lb, ls in (("toolgram", "-"), ("vLLM", "--")):
                pts = [(c.out_len, c.parsers[lb]["total_ms"]) for c in r["cells"] if "total_ms" in c.parsers.get(lb, {})]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, ls, color=cmap(i % 20), marker="o", ms=3, label=f"{lb} {r['fmt']}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title("one long string argument, one token per delta")
        ax.set_xlabel("output length (characters)")
        ax.set_ylabel("CPU time to parse the message (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        p = img_dir / "peers-long_arg.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written

# ------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, 3 runs (a few minutes)")
    ap.add_argument("--formats", nargs="*", default=None, help=f"default: all of {', '.join(FORMATS)}")
    ap.add_argument("--workloads", nargs="*", default=None, choices=WORKLOADS)
    ap.add_argument("--sizes", nargs="*", type=int, default=None,
                    help="characters of argument/content (default 2000..64000 doubling; quick: 2000..8000)")
    ap.add_argument("--calls", nargs="*", type=int, default=None,
                    help="numbers of parallel calls (default 16..512 doubling; quick: 16..64)")
    ap.add_argument("--deltas", nargs="*", type=int, default=None, help="delta sizes, 0 = whole message "
                    "(default 1 4 32 0)")
    ap.add_argument("--split", choices=["tokens", "chars"], default="tokens")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per cell (default 5; quick: 3)")
    ap.add_argument("--max-run-s", type=float, default=None,
                    help="once one run of a parser takes longer, larger sizes of that workload/delta are not run "
                         "(default 3; quick: 1.5)")
    ap.add_argument("--json", default=str(HERE / "results.json"))
    ap.add_argument("--markdown", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--img-dir", default=str(REPO / "docs" / "img"))
    ap.add_argument("--no-plots", dest="plots", action="store_false")
    ap.add_argument("--from-json", metavar="FILE", help="no measuring: rewrite the markdown (and plots) from a "
                    "results file this script wrote")
    args = ap.parse_args(argv)
    if args.from_json:
        return rerender(args)
    args.workloads = args.workloads or WORKLOADS
    args.sizes = args.sizes or ([2000, 4000, 8000] if args.quick else [2000, 4000, 8000, 16000, 32000, 64000])
    args.calls = args.calls or ([16, 32, 64] if args.quick else [16, 32, 64, 128, 256, 512])
    args.deltas = args.deltas if args.deltas is not None else [1, 4, 32, 0]
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.max_run_s = args.max_run_s or (1.5 if args.quick else 3.0)
    fmts = args.formats or list(FORMATS)
    unknown = [f for f in fmts if f not in FORMATS]
    if unknown:
        ap.error(f"unknown formats {unknown}; known: {', '.join(FORMATS)}")

    logging.disable(logging.WARNING)
    os.environ.setdefault("TOOLGRAM_CACHE", "")
    import toolgram
    import vllm
    import torch
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "vllm": vllm.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "mode": ("quick" if args.quick else "full") + f", split={args.split}",
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
            "load_start": "%.1f" % os.getloadavg()[0]}
    print(f"# vLLM {meta['vllm']}, torch {meta['torch']}, toolgram from {Path(toolgram.__file__).parent}", flush=True)

    notes, cells = [], []
    available = set(toolgram.grammars())
    done_fmts = []
    for f in fmts:
        F = FORMATS[f]
        if f not in available:
            msg = f"toolgram has no grammar `{f}` yet: {f} skipped (rerun picks it up)."
            print("NOTE " + msg, flush=True)
            notes.append(msg)
            continue
        try:
            g = toolgram.load(f)
        except Exception as e:
            msg = f"toolgram grammar `{f}` does not load ({type(e).__name__}: {str(e)[:120]}): {f} skipped."
            print("NOTE " + msg, flush=True)
            notes.append(msg)
            continue
        tok = FormatTokenizer(F)
        try:
            vside = VllmSide(F, tok)
        except Exception as e:
            msg = f"vLLM parser `{F.vllm}` could not be built ({type(e).__name__}: {str(e)[:160]}): {f} skipped."
            print("NOTE " + msg, flush=True)
            notes.append(msg)
            continue
        sides = [ToolgramSide(F, g), vside]
        done_fmts.append(f)
        # The imported libraries (torch, transformers, vLLM) leave ~10^6 tracked objects: a full collection
        # costs ~0.6 s here and would land inside some timed run.  Freeze them out of the collector.
        gc.collect()
        gc.freeze()
        skip = {}
        t_fmt = time.perf_counter()
        for w in args.workloads:
            for size in (args.calls if w == "parallel" else args.sizes):
                case = make_case(F, w, size)
                for d in args.deltas:
                    cell = measure_cell(sides, case, d, args.split, tok, args.repeats, args.max_run_s, skip)
                    cells.append(cell)
                    parts = []
                    for lb, m in cell.parsers.items():
                        s = status(m) or f"{m.get('total_ms', float('nan')):.2f} ms"
                        flags = []
                        if m.get("stream_vs_oneshot"):
                            flags.append("≠one-shot")
                        if m.get("stream_vs_expected"):
                            flags.append("≠expected")
                        parts.append(f"{lb} {s}{' ' + ','.join(flags) if flags else ''}")
                    print(f"{f:14s} {w:9s} N={size:<6d} d={dlabel(d):5s} len={cell.out_len:<7d} deltas={cell.n_deltas:<6d} "
                          + " | ".join(parts), flush=True)
        print(f"# {f}: {time.perf_counter() - t_fmt:.0f} s", flush=True)
        write_outputs(cells, meta, args, notes, done_fmts, final=False)   # a cut-short run still leaves results

    write_outputs(cells, meta, args, notes, done_fmts, final=True)
    return 0


def rerender(args) -> int:
    data = json.loads(Path(args.from_json).read_text())
    saved = data["args"]
    for k in ("quick", "workloads", "repeats", "split"):
        setattr(args, k, saved[k])
    cells = []
    for c in data["cells"]:
        cell = Cell(c["fmt"], c["workload"], c["size"], c["delta"], c["out_len"], c["n_deltas"], c["parsers"],
                    c.get("loop_overhead_ms", 0.0))
        cells.append(cell)
    fmts = []
    for c in cells:
        if c.fmt not in fmts:
            fmts.append(c.fmt)
    rows = summarize(cells)
    if args.plots:
        plot(rows, Path(args.img_dir), fmts)
    Path(args.markdown).write_text(markdown(rows, data["meta"], args, data["notes"]) + "\n")
    print(f"# wrote {args.markdown}")
    return 0


def write_outputs(cells, meta, args, notes, done_fmts, final: bool):
    meta["load_end"] = "%.1f" % os.getloadavg()[0]
    meta["complete"] = final
    rows = summarize(cells)
    out = {"meta": meta, "args": {k: v for k, v in vars(args).items()}, "notes": notes,
           "cells": [{"fmt": c.fmt, "workload": c.workload, "size": c.size, "delta": c.delta, "out_len": c.out_len,
                      "n_deltas": c.n_deltas, "loop_overhead_ms": c.loop_overhead_ms, "parsers": c.parsers}
                     for c in cells]}
    Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False, default=str))
    if args.plots and done_fmts:
        written = plot(rows, Path(args.img_dir), done_fmts)
        if final:
            print("# plots: " + ", ".join(str(p) for p in written))
    md = markdown(rows, meta, args, notes)
    Path(args.markdown).write_text(md + "\n")
    if final:
        print(f"# wrote {args.json}, {args.markdown}")


if __name__ == "__main__":
    sys.exit(main())

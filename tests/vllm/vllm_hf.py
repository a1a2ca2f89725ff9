"""vLLM's ``hf`` parser (``vllm/parser/response_template.py``) driven the way vLLM's chat serving drives it:
the parser class ``ParserManager`` composes for ``--tool-call-parser hf`` (and ``--reasoning-parser hf`` when
the template has a ``thinking`` field), ``parse`` for a whole message, ``parse_delta`` per streamed delta.
Readings come back normalized like transformers' (``toolgram.response_templates.normalize_reference``).

Only the vLLM venv imports this module (tests/vllm/, benchmarks/peers/response_templates.py)."""
from __future__ import annotations

import copy
import functools

from toolgram.response_templates import normalize_reference

# vLLM parses tool calls only for a request that has tools; a corpus case without a tool list gets this one,
# which names no called function (so no argument is cast by a schema)
PLACEHOLDER_TOOLS = [{"type": "function", "function": {"name": "placeholder_tool_for_parsing",
                                                       "parameters": {"type": "object"}}}]
# the one reasoning field name vLLM's serving adapter routes (and transformers' serving reads)
THINKING = "thinking"


def refusal(template: dict) -> str | None:
    """vLLM's reason for refusing to serve ``template`` (its startup check), or None."""
    from vllm.parser.response_template import validate_response_template_for_serving
    try:
        validate_response_template_for_serving(template)
    except (TypeError, ValueError) as e:
        return str(e)
    return None


def with_thinking_field(template: dict) -> dict:
    """``template`` with its reasoning field (``reasoning_content`` / ``reasoning``) renamed ``thinking``."""
    t = copy.deepcopy(template)
    fields = t["fields"]
    for name in ("reasoning_content", "reasoning"):
        if name in fields and THINKING not in fields:
            fields = {THINKING if k == name else k: v for k, v in fields.items()}
    t["fields"] = fields
    return t


@functools.lru_cache(maxsize=1)
def tokenizer():
    """A small byte-level tokenizer: the hf parser's tokenizer only encodes the thinking closer and decodes
    the prompt (empty here)."""
    from transformers import PreTrainedTokenizerFast

    from toolgram.serve import demo_model
    return PreTrainedTokenizerFast(tokenizer_object=demo_model.build_tokenizer([], vocab_size=300),
                                   eos_token="<|im_end|>")


def request_for(tools):
    """A chat request with ``tools`` (the placeholder when there are none), tool_choice auto."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    return ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}],
                                 tools=tools or PLACEHOLDER_TOOLS)


@functools.lru_cache(maxsize=2)
def parser_class(with_reasoning: bool):
    """The class vLLM composes once at startup for ``--tool-call-parser hf`` (and ``--reasoning-parser hf``)."""
    from vllm.parser.parser_manager import ParserManager
    return ParserManager.get_parser(tool_parser_name="hf", reasoning_parser_name="hf" if with_reasoning else None,
                                    enable_auto_tools=True)


def new_parser(template: dict, tools=None):
    """A fresh hf parser for one request, as vLLM's serving makes one per request, and the request
    (tool_choice auto, auto tool choice enabled)."""
    request = request_for(tools)
    cls = parser_class(THINKING in template["fields"])
    return cls(tokenizer(), request.tools, response_template=template), request


def _message(reasoning, content, calls) -> dict:
    return {"content": content, THINKING: reasoning,
            "tool_calls": [{"function": {"name": n, "arguments": a}} for n, a in calls]}


def vllm_parse(template: dict, text: str, tools=None) -> dict:
    """vLLM's non-streamed reading (``Parser.parse``), normalized."""
    parser, request = new_parser(template, tools)
    reasoning, content, calls = parser.parse(text, request, enable_auto_tools=True)
    return normalize_reference(_message(reasoning, content, [(c.name, c.arguments) for c in calls or ()]))


def vllm_stream(template: dict, deltas, tools=None) -> tuple[dict, int]:
    """vLLM's streamed reading (``Parser.parse_delta`` per delta, the last one ``finished``), normalized, and
    how many deltas carried argument text."""
    parser, request = new_parser(template, tools)
    deltas = list(deltas) or [""]
    reasoning, content, calls, argument_deltas = [], [], {}, 0
    for i, d in enumerate(deltas):
        m = parser.parse_delta(d, [], request, [], finished=i == len(deltas) - 1)
        if m is None:
            continue
        reasoning.append(m.reasoning or "")
        content.append(m.content or "")
        for tc in m.tool_calls:
            cur = calls.setdefault(tc.index, ["", ""])
            cur[0] += tc.function.name or ""
            cur[1] += tc.function.arguments or ""
            argument_deltas += bool(tc.function.arguments)
    message = _message("".join(reasoning) or None, "".join(content) or None,
                       [tuple(calls[i]) for i in sorted(calls)])
    return normalize_reference(message), argument_deltas

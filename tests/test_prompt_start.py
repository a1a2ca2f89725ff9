"""The rendered prompt decides whether the output starts inside reasoning (issue 14 item 3), for every
bundled reasoning grammar composed with a tool grammar: ends with the closer -> content, ends with the opener
-> reasoning, anything else -> content where the model may still open a block; streaming equals one-shot."""
import pytest

import toolgram
from toolgram.compiler import registry
from toolgram.runtime.parser import start_state


def _pairs():
    out = []
    for r in toolgram.reasoning_grammars():
        data = registry.read(registry.reasoning_path(r))[0]
        if data.get("channel"):
            continue
        tool = next((g for g in toolgram.grammars() if registry.read(registry.grammar_path(g))[0].get("reasoning") == r),
                    "hermes")
        out.append(pytest.param(tool, r, data, id=f"{tool}+{r}"))
    return out


@pytest.mark.parametrize("tool,reasoning,data", _pairs())
def test_prompt_decides_the_start(tool, reasoning, data):
    g = toolgram.load(tool, reasoning=reasoning)
    close, opener = data["close"], data.get("open")
    text = f"plain words{close}after"
    # the prompt closed the block: everything is content (the closer the model repeats is content too)
    closed = g.parse(text, prompt="...assistant" + (opener or "") + close)
    assert closed.reasoning_content is None
    if opener:
        inside = g.parse(text, prompt="...assistant" + opener + "\n")
        assert inside.reasoning_content is not None and inside.reasoning_content.startswith("plain words")
        assert (inside.content or "").endswith("after")
        none = g.parse("hello", prompt="...assistant")
        assert (none.content, none.reasoning_content) == ("hello", None)
        # the prompt opened nothing: a closer at the very start closes an empty block (markup), later it is text
        bare = g.parse(close + "after" + close, prompt="...assistant")
        assert (bare.content, bare.reasoning_content) == ("after" + close, None)
    for prompt in (None, "x" + close, "x" + (opener or "")):
        one = g.parse(text, prompt=prompt)
        p = g.stream(prompt=prompt)
        for ch in text:
            p.feed(ch)
        p.close()
        assert (p.result.content, p.result.reasoning_content) == (one.content, one.reasoning_content)


def test_the_prompt_wins_over_reasoning_off():
    """A template that ignores the thinking switch still opens the block: the model thinks, so the output starts
    inside; a prompt that opened nothing starts in content with reasoning off."""
    g = toolgram.load("qwen3_coder", reasoning="qwen35")
    assert start_state(g.compiled, reasoning=False, prompt="<think>\n") == "inside"
    assert g.parse("x</think>y", reasoning=False, prompt="<think>\n").reasoning_content == "x"
    assert start_state(g.compiled, reasoning=False, prompt="<|im_start|>assistant\n") == "plain"
    assert start_state(g.compiled, reasoning=False) == "plain"


def test_no_prompt_keeps_the_grammar_default():
    g = toolgram.load("qwen3_coder", reasoning="qwen35")       # starts_inside
    assert g.parse("thinking</think>answer").reasoning_content == "thinking"


def test_cli_parse_takes_the_prompt(tmp_path):
    import json
    import subprocess
    import sys
    out, prompt = tmp_path / "out.txt", tmp_path / "prompt.txt"
    out.write_text("The user wants weather.</think>Hi", encoding="utf-8")
    prompt.write_text("<|assistant|><think>", encoding="utf-8")
    run = [sys.executable, "-m", "toolgram.cli", "parse", "glm47", "--input", str(out)]
    with_prompt = json.loads(subprocess.run(run + ["--prompt", str(prompt)], capture_output=True, text=True,
                                            check=True).stdout)
    without = json.loads(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
    assert (with_prompt["reasoning_content"], with_prompt["content"]) == ("The user wants weather.", "Hi")
    assert without["reasoning_content"] is None


def _reasoning_then_calls(g, tool: str, close: str, opened: str, closed: str):
    """A text that, after a prompt that opened the block, is reasoning then calls only (from ``tool``'s corpus
    outputs that `required` accepts), and after a prompt that closed it has content; with its tools."""
    from test_constraint_agreement import AGREEMENT
    for p in AGREEMENT:
        case, tools, choice = p.values
        if case.grammar != tool or choice != "required":
            continue
        for text in (case.output, "plain words" + close + case.output.lstrip()):
            r = g.parse(text, tools, prompt=opened)
            if r.reasoning_content and r.tool_calls and not r.content and g.parse(text, tools, prompt=closed).content:
                return text, tools
    return None, None


@pytest.mark.parametrize("tool,reasoning,data", _pairs())
def test_the_constraint_starts_where_the_parser_does(tool, reasoning, data):
    """``constraint(prompt=)`` starts in the state ``stream(prompt=)`` starts in: after a prompt that opened the
    block, reasoning text then the closer then calls is accepted by `required` (the parser reads reasoning and
    calls); after a prompt that closed it, the same text is content before the calls, which `required` refuses."""
    from constraint_helpers import accepts, tokenizer_for
    close, opener = data["close"], data.get("open")
    if not opener:
        pytest.skip(f"{reasoning} has no open marker: no prompt can open its block")
    g = toolgram.load(tool, reasoning=reasoning)
    opened, closed = "...assistant" + opener + "\n", "...assistant" + opener + close
    text, tools = _reasoning_then_calls(g, tool, close, opened, closed)
    assert text is not None, f"{tool}'s corpus has no calls-only output `required` accepts"
    tok, _ = tokenizer_for(g)
    assert accepts(g, g.constraint(tools, "required", tokenizer=tok, prompt=opened).text, text) is None
    assert accepts(g, g.constraint(tools, "required", tokenizer=tok, prompt=closed).text, text) is not None

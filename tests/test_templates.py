"""Real chat templates (llama.cpp's collection, fetched by tests/data/fetch.py) against toolgram's grammars.

* every template of the collection is in the table (tests/data/templates.yaml), and its model id maps to the
  grammar and reasoning grammar the table names; a template with tool calls that maps to nothing fails;
* templates said to have no tool-call syntax, or to ignore `tool_calls`, really do not render the calls;
* round trip: assistant messages with tool calls (single, parallel, zero arguments, nested values, hard
  strings, the family's own markers, numbers and booleans, content before the calls), followed by tool
  results and another assistant turn, are rendered through the template in the server's sandbox; the
  assistant's text is cut out of the rendering and the grammar must read the same calls back, streaming
  one character at a time equal to one-shot, and the `required` and `auto` constraints must accept it;
* the generation prompt decides reasoning: with and without the template's thinking switches, the composed
  grammar starts inside reasoning exactly when the prompt left a reasoning block open.

What a template cannot carry is recorded per template in the table (`skip_cases`, `parallel`, `calls`), and
each such entry is checked to still fail (strict xfail), so the table cannot go stale silently.
"""
from __future__ import annotations

import re
import json

import pytest

import testdata
import toolgram
from templates_table import CASES, STATUSES, TOOLS, case_calls, table
from toolgram import template_probe as tp
from toolgram.serve.chat import TemplateError

TABLE = table()


def source(stem: str) -> str:
    found = testdata.templates()
    if stem not in found:
        testdata.require(f"templates/{stem}.jinja")
    return found[stem].read_text(encoding="utf-8")


def kwargs_of(entry: dict, tools=TOOLS) -> dict:
    out = {}
    for k, v in (entry.get("kwargs") or {}).items():
        out[k] = json.dumps(tools, indent=2) if v == "$tools_json" else v
    return out


# -- the table -------------------------------------------------------------------------------------------

def test_table_covers_the_collection():
    found = set(testdata.templates())
    assert found, "no templates in the collection"
    assert sorted(found - set(TABLE)) == [], "templates missing from tests/data/templates.yaml"
    assert sorted(set(TABLE) - found) == [], "table entries with no template in the collection"


@pytest.mark.parametrize("stem", sorted(TABLE))
def test_table_entry_is_well_formed(stem):
    e = TABLE[stem]
    assert e["status"] in STATUSES
    assert "/" in e["model"] or e["status"] != "mapped", "a mapped template needs an org/name model id"
    if e["status"] == "mapped":
        assert e["grammar"] in toolgram.grammars()
        assert e.get("reasoning") is None or e["reasoning"] in toolgram.reasoning_grammars()
    if e["status"] == "needs-grammar":
        assert e.get("needs"), "say which issue owns the missing grammar"
    assert e.get("calls", "rendered") in ("rendered", "ignored", "other")
    if e.get("calls") == "other":
        assert e.get("rendered_as") in toolgram.grammars() and e.get("note"), "evidence and the form it renders"
    assert set(e.get("skip_cases") or {}) <= set(CASES)


# -- item 2: every template maps -------------------------------------------------------------------------

@pytest.mark.parametrize("stem", sorted(TABLE))
def test_template_maps(stem, request):
    e = TABLE[stem]
    model = e["model"]
    if e["status"] == "no-tool-calls":
        assert toolgram.for_model(model) is None, f"{model} has no tool calls but maps to a grammar"
        return
    if e["status"] == "needs-grammar":
        if not e.get("required"):
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"needs grammar: {e['needs']}"))
        assert toolgram.for_model(model) is not None, f"{stem}: tool calls, but {model} maps to no grammar " \
                                                      f"({e['needs']})"
        return
    assert toolgram.for_model(model) == e["grammar"]
    assert toolgram.reasoning_for_model(model) == e.get("reasoning")


@pytest.mark.parametrize("stem", sorted(s for s, e in TABLE.items()
                                        if e["status"] == "no-tool-calls" or e.get("calls") == "ignored"))
def test_template_does_not_render_calls(stem):
    """What the table claims about templates without (rendered) calls holds: the call never shows."""
    e = TABLE[stem]
    calls = [("get_weather", {"city": "Reykjavik"})]
    try:
        r = tp.render_message(source(stem), tp.assistant_calls(calls), TOOLS, kwargs=kwargs_of(e),
                              end=e.get("end"))
    except TemplateError:
        return                                   # the template refuses tools or tool messages outright
    assert "Reykjavik" not in r.full


# -- item 3: the round trip ------------------------------------------------------------------------------

ROUND_TRIP = [(s, c) for s, e in sorted(TABLE.items())
              if e["status"] == "mapped" and e.get("calls", "rendered") != "ignored" for c in CASES]


def _grammar(e):
    return toolgram.load(e.get("rendered_as") or e["grammar"], reasoning=e.get("reasoning"))


def _markers(g, ends) -> list[str]:
    """The family's own call markers, less any that is an end-of-turn token (a model cannot write those)."""
    return [m for m in g.triggers if not any(x and (x in m or m in x) for x in ends)] or list(g.triggers)


def _model_output(g, r: tp.Rendering):
    """(text the model wrote after the prompt, whether it starts inside reasoning, notes)."""
    spec = g.compiled.reasoning
    if spec is None or spec.channel or not spec.open or not spec.close:
        return r.message, False
    inside = tp.opens_reasoning(r.prompt, spec.open, spec.close)
    text = r.message
    if inside and spec.close not in text:
        text = spec.close + text                  # history dropped the reasoning block, close marker included
    return text, inside


def _parse(g, text, inside, prompt, request):
    return g.parse(text, tools=TOOLS, prompt=prompt), lambda: g.stream(tools=TOOLS, prompt=prompt)


def _calls(result):
    return [(c.name, json.loads(c.arguments)) for c in result.tool_calls]


def _round_trip(stem, case, request, strict_skip=True):
    """(grammar, model output text, starts inside reasoning, expected calls, content, one-shot result).

    A case in the template's ``skip_cases`` is a strict xfail of the parse; the constraint test passes
    ``strict_skip=False`` (the constraint may still accept the rendering the parse cannot read back)."""
    e = TABLE[stem]
    why = (e.get("skip_cases") or {}).get(case)
    if why:
        request.applymarker(pytest.mark.xfail(strict=strict_skip, reason=f"{stem}: {why}"))
    if e.get("template_refuses"):                # the template cannot take OpenAI tools: checked to still be so
        with pytest.raises(TemplateError, match=re.escape(e["template_refuses"])):
            tp.render_message(source(stem), tp.assistant_calls(case_calls(case, ())), TOOLS, kwargs=kwargs_of(e))
        return None
    g = _grammar(e)
    ends = e.get("end") or [tp.end_of_turn(source(stem), TOOLS, kwargs_of(e))]
    calls = case_calls(case, _markers(g, ends))
    content = CASES[case][1]
    message = tp.assistant_calls(calls, content)
    parallel = e.get("parallel", "yes")
    if len(calls) > 1 and parallel == "refused":
        with pytest.raises(TemplateError):
            tp.render_message(source(stem), message, TOOLS, kwargs=kwargs_of(e), end=e.get("end"))
        return None
    r = tp.render_message(source(stem), message, TOOLS, kwargs=kwargs_of(e), end=e.get("end"))
    assert r.end is not None, f"no end-of-turn marker found after the message: {r.notes}"
    if len(calls) > 1 and parallel in ("one-per-turn", "first-only"):
        calls = calls[:1]
    text, inside = _model_output(g, r)
    one, fresh = _parse(g, text, inside, r.prompt, request)
    return g, text, inside, calls, content, one, fresh


@pytest.mark.parametrize("stem,case", ROUND_TRIP)
def test_round_trip(stem, case, request):
    got = _round_trip(stem, case, request)
    if got is None:
        return
    g, text, inside, calls, content, one, fresh = got
    assert _calls(one) == [tuple(c) for c in calls], f"message: {text!r}"
    left = (one.content or "").strip()
    if content:
        assert left == content, f"content: {one.content!r} from {text!r}"
    else:
        assert left == "", f"markup left as content: {left!r} in {text!r}"
    p = fresh()
    for ch in text:
        p.feed(ch)
    p.close()
    s = p.result
    assert [(c.name, c.arguments) for c in s.tool_calls] == [(c.name, c.arguments) for c in one.tool_calls]
    assert (s.content, s.reasoning_content) == (one.content, one.reasoning_content)


CONSTRAINED = [(s, c) for s, c in ROUND_TRIP if CASES[c][1] is None and c != "markers"]
# (markers: inside a value a model spells marker text with ordinary tokens; a tokenizer encoding the text
#  would make it the marker's own token, which no constraint allows there)


@pytest.mark.parametrize("stem,case", CONSTRAINED)
def test_round_trip_constraints(stem, case, request):
    """The `required` and lazy `auto` constraints accept what the template says the model writes."""
    e = TABLE[stem]
    known = e.get("constraint_fails") or {}
    if case in known.get("cases", ()) or known.get("cases") == "all":
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{stem}: {known['reason']}"))
    got = _round_trip(stem, case, request, strict_skip=False)
    if got is None:
        return
    g, text, inside, *_ = got
    from constraint_helpers import accepts, tokenizer_for
    tok, _ = tokenizer_for(g)
    # the server builds the constraint from the rendered prompt, as the parser starts from it
    prompt = tp.render(source(stem), [{"role": "user", "content": tp.USER}], TOOLS,
                       add_generation_prompt=True, special=tp.SPECIAL, kwargs=kwargs_of(TABLE[stem]))
    for choice in ("required", "auto"):
        c = g.constraint(TOOLS, choice, tokenizer=tok, prompt=prompt)
        problem = accepts(g, c.text, text)
        assert problem is None, f"{choice}: {problem} in {text!r}"


# -- item 4: the generation prompt decides reasoning -----------------------------------------------------

SWITCHES = {"enable_thinking": (False, True), "thinking": (False, True),
            "reasoning_effort": ("none", "no_think", "minimal", "low", "high"),
            "thinking_mode": ("enabled", "disabled", "adaptive")}


def _settings(text: str) -> list[dict]:
    """The template's default, and each thinking switch it reads set each way."""
    out = [{}]
    for k, values in SWITCHES.items():
        if re.search(r"(?<![\w.\[\'\"])" + k + r"\b(?![\'\"\]])", text):
            out += [{k: v} for v in values]
    return out


def _server_flag(kwargs: dict) -> bool:
    """The request's reasoning flag as serve/session.py derives it from chat_template_kwargs."""
    return not (kwargs.get("enable_thinking") is False or kwargs.get("thinking") is False)


def _starts_inside_now(g, prompt: str, kwargs: dict) -> bool:
    probe = "probe text 7e1"
    p = g.stream(reasoning=_server_flag(kwargs), prompt=prompt)
    p.feed(probe)
    p.close()
    return (p.result.reasoning_content or "") == probe


def _reasoning_openers() -> list[str]:
    """The open markers of every bundled reasoning grammar."""
    from toolgram.compiler import registry
    found = {registry.read(registry.reasoning_path(n))[0].get("open") for n in toolgram.reasoning_grammars()}
    return sorted(m for m in found if m)


REASONING_STEMS = sorted(s for s, e in TABLE.items() if e["status"] == "mapped")


@pytest.mark.parametrize("stem", REASONING_STEMS)
def test_generation_prompt_decides_reasoning(stem, request):
    e = TABLE[stem]
    text = source(stem)
    g = toolgram.load(e["grammar"], reasoning=e.get("reasoning"))
    spec = g.compiled.reasoning
    opens = _reasoning_openers()
    wrong = []
    if e.get("template_refuses"):
        with pytest.raises(TemplateError, match=re.escape(e["template_refuses"])):
            tp.render(text, [{"role": "user", "content": "Hi"}], TOOLS, add_generation_prompt=True,
                      special=tp.SPECIAL, kwargs=kwargs_of(e))
        return
    for kwargs in _settings(text):
        try:
            prompt = tp.render(text, [{"role": "user", "content": "Hi"}], TOOLS, add_generation_prompt=True,
                               special=tp.SPECIAL, kwargs={**kwargs_of(e), **kwargs})
        except TemplateError as err:        # a switch value this template does not take (its own message)
            assert kwargs and "refused the request" in err.message, err.message
            continue
        if spec is None or spec.channel or not spec.open:
            tail = prompt.rstrip()
            opened = [m for m in opens if tail.endswith(m.rstrip())]
            assert not opened or spec is not None, \
                f"{kwargs}: the prompt opens reasoning ({opened}) but {e['model']} maps to no reasoning grammar"
            continue
        want = tp.opens_reasoning(prompt, spec.open, spec.close)
        got = _starts_inside_now(g, prompt, kwargs)
        if got != want:
            wrong.append(f"{kwargs or 'default'}: prompt {'opens' if want else 'leaves closed'} reasoning, "
                         f"the parser starts {'inside' if got else 'outside'}")
    assert not wrong, wrong

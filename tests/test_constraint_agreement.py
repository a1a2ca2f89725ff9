"""The constraint agrees with the parser: every corpus output the grammar reads cleanly is accepted by the
``auto`` constraint for its tools (and by ``required`` when it has no content), by a real llguidance matcher
over every tokenization of tests/test_constraint_matrix.py (which runs the `AGREEMENT` cases defined here);
call-free outputs by ``auto`` and ``none``; and every syntax compiles in xgrammar.

Constraints write one canonical form where the parser tolerates several; corpus outputs in a tolerated
variant the constraint does not write are skipped here (see docs/constraints.md): arguments given as a JSON
string, extra keys such as "id" in a call object, arguments out of schema order, marker text inside a string
(special tokens cannot appear in JSON strings), raw control characters inside JSON strings (read leniently,
written escaped), Python tuples and digit separators.
"""
import json
import re
import sys

import pytest

from toolgram import corpus
from toolgram.ir import LITERAL

from conftest import ALL_CASES
from constraint_helpers import accepts, arguments_valid, synthesized_tools, tokenizer_for


def canonical(case, result, tools, g) -> bool:
    markers = {x for s in g.compiled.terminals.values() if s.kind == LITERAL for x in s.spellings if len(x) > 2}
    by = {t["function"]["name"]: (t["function"].get("parameters") or {}) for t in tools}
    for c in result.tool_calls:
        args = json.loads(c.arguments)
        props = list((by.get(c.name) or {}).get("properties", {}))
        if props and [k for k in props if k in args] != list(args):
            return False                                    # arguments out of schema order
        if any(m in json.dumps(args, ensure_ascii=False) for m in markers):
            return False                                    # marker text inside a string value
        if any('"' + v in case.output for v in _strings(args) if any(ch < " " for ch in v)):
            return False                                    # a raw control character inside a JSON string
    if re.search(r'"(arguments|parameters)"\s*:\s*"|\[ARGS\]\s*"|"\w*id"\s*:|"\{\\"', case.output):
        return False                                        # arguments as a JSON string, an id key (tool_call_id)
    if re.search(r"=\s*\(|:\s*\(|\d_\d", case.output) and case.grammar in ("pythonic", "lfm2"):
        return False                                        # Python tuples, digit separators
    return True


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def agreement_cases():
    out = []
    for case in ALL_CASES:
        g = corpus.grammar_for(case)
        r = g.parse(case.output, case.tools, reasoning=case.reasoning, prompt=case.prompt)
        if not r.tool_calls or r.recovered or any(c.truncated for c in r.tool_calls):
            continue
        tools = synthesized_tools(case, r)
        if not arguments_valid(tools, r.tool_calls) or not canonical(case, r, tools, g):
            continue
        for choice in ("auto", "required") if not r.content else ("auto",):
            out.append(pytest.param(case, tools, choice, id=f"{case.id}[{choice}]"))
    return out


AGREEMENT = agreement_cases()


def test_enough_agreement_cases():
    assert len(AGREEMENT) >= 200


def test_call_free_outputs_are_accepted_by_auto_and_none():
    checked = 0
    for case in ALL_CASES:
        g = corpus.grammar_for(case)
        r = g.parse(case.output, case.tools, reasoning=case.reasoning, prompt=case.prompt)
        # markup inside reasoning is checked too: text holds the markers this tokenizer makes (non-special) tokens
        outside = case.output.replace(r.reasoning_content or "\0", "")
        if r.tool_calls or r.recovered or any(t in outside for t in g.triggers):
            continue
        tok, _ = tokenizer_for(g)
        for choice in ("auto", "none"):
            c = g.constraint(case.tools or [], choice, tokenizer=tok, reasoning=case.reasoning, prompt=case.prompt)
            assert accepts(g, c.text, case.output) is None, (case.id, choice)
            checked += 1
    assert checked >= 10


xgr = pytest.importorskip("xgrammar") if "xgrammar" not in sys.modules else sys.modules["xgrammar"]


def _xgrammar_compiler(g):
    from transformers import PreTrainedTokenizerFast
    tok, _ = tokenizer_for(g)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>")
    return tok, xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(hf, vocab_size=len(hf)))


@pytest.mark.parametrize("name", sorted({c.grammar for c in ALL_CASES}))
def test_every_syntax_compiles_in_xgrammar(name):
    import toolgram
    g = toolgram.load(name)
    tok, comp = _xgrammar_compiler(g)
    tools = corpus.tool_sets()["typed"] + corpus.tool_sets()["weather"]
    for choice in ("required", "auto", "none", {"type": "function", "function": {"name": "get_weather"}}):
        lark = g.constraint(tools, choice, tokenizer=tok, dialect="xgrammar")
        comp.compile_lark(lark.text)
        comp.compile_grammar(xgr.Grammar.from_ebnf(g.constraint(tools, choice, syntax="gbnf").text))
        comp.compile_structural_tag(g.constraint(tools, choice, syntax="structural_tag").text)

"""The peers' parser names (Dynamo, vLLM) are aliases: they load the matching grammar, are listed by
``toolgram list --aliases``, and never shadow or collide with a bundled grammar's own name."""
import subprocess
import sys

import pytest

import toolgram
from toolgram.compiler import registry
from toolgram.compiler.build import read


def _declared(folder):
    out = []
    for p in sorted(folder.glob("*.yaml")):
        if not p.name.startswith("_"):
            out += [(a, p.stem) for a in read(p)[0].get("aliases", ())]
    return out


@pytest.mark.parametrize("folder", [registry.grammars_dir(), registry.grammars_dir() / "reasoning"])
def test_aliases_are_unique_and_never_a_grammar_name(folder):
    declared = _declared(folder)
    names = [a for a, _ in declared]
    assert len(names) == len(set(names)), "an alias is declared by two grammars"
    own = {p.stem for p in folder.glob("*.yaml")}
    assert not own & set(names), "an alias shadows a bundled grammar's own name"


@pytest.mark.parametrize("alias,target", [("qwen3_xml", "qwen3_coder"), ("deepseek-v4", "deepseek_v4"),
                                          ("openai", "harmony"), ("phi4_mini_json", "phi4"),
                                          ("llama4_pythonic", "pythonic")])
def test_tool_call_parser_alias_loads_its_grammar(alias, target):
    g = toolgram.load(alias)
    assert g.name == target
    assert g.reasoning == toolgram.load(target).reasoning


@pytest.mark.parametrize("tools,alias,target", [("hermes", "basic", "think"), ("hermes", "deepseek_v3_1", "deepseek_r1"),
                                                ("hermes", "nemotron_nano", "nemotron3"),
                                                ("openai", "openai_gptoss", "gpt_oss")])
def test_reasoning_parser_alias_loads_its_reasoning_grammar(tools, alias, target):
    g = toolgram.load(tools, reasoning=alias)
    assert g.reasoning == target


def test_basic_reasoning_with_hermes_reads_think_then_a_call():
    g = toolgram.load("hermes", reasoning="basic")
    r = g.parse('<think>need it</think>\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>')
    assert (r.reasoning_content, r.content, [c.name for c in r.tool_calls]) == ("need it", "\n", ["f"])


def test_a_tool_grammar_name_used_as_a_reasoning_alias_resolves_in_its_own_folder():
    # deepseek_v3 is both a tool grammar and Dynamo's name of a reasoning parser
    assert toolgram.load("deepseek_v3", reasoning="deepseek_v3").reasoning == "deepseek_r1"


def test_unknown_name_is_an_error_that_points_at_the_alias_list():
    with pytest.raises(toolgram.GrammarError, match="list --aliases"):
        toolgram.load("no_such_parser")


def test_list_aliases_shows_both_tables():
    out = subprocess.run([sys.executable, "-m", "toolgram.cli", "list", "--aliases"], capture_output=True,
                         text=True, check=True).stdout
    lines = [tuple(line.split()) for line in out.splitlines() if line.startswith("  ")]
    assert ("qwen3_xml", "qwen3_coder") in lines and ("basic", "think") in lines
    assert len(lines) == len(registry.alias_table()) + len(registry.reasoning_alias_table())


def test_serve_accepts_peer_names():
    from toolgram.serve.server import Options, choose_grammar
    g = choose_grammar(Options(tool_call_parser="qwen3_xml", reasoning_parser="basic"))
    assert (g.name, g.reasoning) == ("qwen3_coder", "think")

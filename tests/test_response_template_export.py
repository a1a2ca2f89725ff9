"""Exporting bundled grammars as response templates, and `toolgram check-template`.

Every bundled grammar either exports (a template transformers loads) or is refused with its reason; an
exported template, read by transformers and imported back by toolgram, agrees with the bundled grammar on
its corpus or the case is listed (tests/response_template_differences.yaml, export_cases)."""
import json

import pytest

from toolgram import corpus, grammars
from toolgram.cli import main
from toolgram.export import NotExpressible, export, export_table
from toolgram.response_templates import difference, from_response_template, normalize_result, reference_parse

from response_template_cases import differences

TABLE = differences()
EXPORTS = {n: t for n, (t, _) in export_table().items() if t is not None}


def test_every_grammar_exports_or_says_why():
    table = export_table()
    assert set(table) == set(grammars())
    for name, (t, why) in table.items():
        if t is None:
            assert len(why) > 20 and name not in EXPORTS
            with pytest.raises(NotExpressible):
                export(name)
    assert "hermes" in EXPORTS and len(EXPORTS) < len(table)


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_transformers_loads_the_export(name):
    from transformers.utils.chat_parsing.response_templates import load_response_template
    load_response_template(export(name))


CASES = [pytest.param(n, c, id=f"{n}:{c.name}") for n in sorted(EXPORTS) for c in corpus.load_cases(n)]


@pytest.mark.parametrize("name,case", CASES)
def test_export_reads_like_the_grammar(name, case):
    pytest.importorskip("transformers.utils.chat_parsing")
    t = export(name)
    # the rendered prompt's tail (a corpus case may carry one) decides the start state for all three readers
    # (a grammar whose reasoning starts inside stands for a prompt that opened the block: its opener)
    r = corpus.grammar_for(case).compiled.reasoning
    opened = r is not None and r.starts_inside and r.open and case.reasoning and case.prompt is None
    prompt = case.prompt or (r.open if opened else "")
    # transformers reads a prefix as text before the output; the exported template's anchor is a placeholder,
    # so it gets only what decides the start: the reasoning opener the prompt ends with, or nothing
    prompt = r.open if r is not None and r.open and prompt.rstrip().endswith(r.open) else ""
    bundled = normalize_result(corpus.grammar_for(case).parse(case.output, case.tools, reasoning=case.reasoning,
                                                              prompt=case.prompt))
    readings = {f"export:{name}": reference_parse(t, case.output, prompt, case.tools),
                f"import-export:{name}": normalize_result(from_response_template(t, prefix=prompt or None).parse(
                    case.output, case.tools, prompt=prompt or None))}
    for key, reading in readings.items():
        d = difference(bundled, reading, loose_whitespace=True)
        entry = TABLE["export_cases"].get((key, case.name))
        if d is None:
            assert entry is None, f"stale expected difference: {entry}"
            continue
        assert entry is not None, f"{key}: unexpected difference in {d}: grammar {bundled} template {reading}"
        assert entry["part"] == d
        if entry["reason"] == "reference-raises":
            assert "error" in reading


def test_cli_export(capsys):
    assert main(["export", "hermes", "--to", "response-template"]) == 0
    assert json.loads(capsys.readouterr().out) == export("hermes")
    assert main(["export", "mistral"]) == 1
    assert "cannot be written" in capsys.readouterr().err


CHATML = """{% for m in messages %}<|im_start|>{{ m.role }}
{% if m.content %}{{ m.content }}{% endif %}{% for c in m.tool_calls or [] %}<tool_call>
{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}
</tool_call>
{% endfor %}<|im_end|>
{% endfor %}"""


def _model(tmp_path, template, chat=CHATML):
    d = tmp_path / "Qwen2.5-7B-Instruct"
    d.mkdir()
    (d / "tokenizer_config.json").write_text(json.dumps({"response_template": template, "chat_template": chat}))
    return d


def test_check_template_passes_a_good_template(tmp_path, capsys):
    t = dict(export("qwen25"), start_anchor="<|im_start|>assistant\n")
    del t["start_anchor_pattern"]
    t["fields"]["content"]["close"] = "<|im_end|>"
    rc = main(["check-template", str(_model(tmp_path, t)), "--corpus", "qwen25"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "read back exactly" in out and "required constraint accepts" in out


def test_check_template_fails_on_problems(tmp_path, capsys):
    bad = {"start_anchor": "x", "fields": {"tool_calls": {"open_pattern": "(?=a)<t>", "close": "</t>",
                                                          "transform": {"type": "function",
                                                                        "function": "{content}"}}}}
    assert main(["check-template", str(_model(tmp_path, bad))]) == 1
    assert "fields.tool_calls.open_pattern" in capsys.readouterr().out
    # a template that reads calls differently from toolgram's grammar for the family
    (tmp_path / "b").mkdir()
    from response_template_cases import TEMPLATES
    assert main(["check-template", str(_model(tmp_path / "b", TEMPLATES["trl:qwen3"])), "--corpus", "hermes"]) == 1
    assert "disagrees with grammar hermes" in capsys.readouterr().out

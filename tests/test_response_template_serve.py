"""Serving picks the tool-call parser in order: --tool-call-parser, the checkpoint's response_template, the
model globs; says which and why; and refuses to start on a template it cannot compile."""
import json

import pytest

from toolgram.serve.server import Options, ServeError, build, choose_grammar

from response_template_cases import TEMPLATES

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}")


def _model(tmp_path, template=None, name="Qwen3-8B"):
    d = tmp_path / name
    d.mkdir()
    cfg = {"chat_template": CHATML}
    if template is not None:
        cfg["response_template"] = template
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return str(d)


def test_order_explicit_template_globs(tmp_path):
    d = _model(tmp_path, TEMPLATES["trl:qwen3_5"])
    g = choose_grammar(Options(model=d))
    assert "response_template" in g.selection and g.name == "qwen3_8b"
    # the chat template's generation prompt opens <think>: the output starts inside reasoning
    r = g.parse("Plan.</think>\n\nHello.")
    assert (r.reasoning_content, r.content) == ("Plan.", "Hello.")
    g = choose_grammar(Options(model=d, tool_call_parser="hermes"))
    assert g.name == "hermes" and g.selection == "--tool-call-parser"
    g = choose_grammar(Options(model=_model(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path)))
    assert g.name == "hermes" and "model globs" in g.selection


def test_unsupported_template_refuses_to_start(tmp_path):
    bad = json.loads(json.dumps(TEMPLATES["trl:nemotron_3"]))
    d = _model(tmp_path, bad)
    with pytest.raises(ServeError) as e:
        build(Options(model=d))
    assert "fields.reasoning_content.open_pattern" in str(e.value)


def test_cli_serve_exit_status(tmp_path, capsys):
    from toolgram.cli import main
    d = _model(tmp_path, TEMPLATES["trl:lfm2_2_5"])
    assert main(["serve", "--model", d]) == 2
    assert "fields.tool_calls.content_args.tag_pattern" in capsys.readouterr().err

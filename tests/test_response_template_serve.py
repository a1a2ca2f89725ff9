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


def test_served_template_model_says_which_parser_and_why(tmp_path):
    """End to end: a (demo-weight) checkpoint that ships a response_template is served with it, and
    /v1/models says so; a streamed tools request comes back through the imported grammar."""
    import shutil

    import httpx

    from toolgram.serve import demo_model
    from toolgram.serve.launch import Server
    from toolgram.response_templates import from_response_template
    t = TEMPLATES["transformers:qwen2"]
    src = demo_model.for_grammar(from_response_template(t))
    d = tmp_path / "Acme-7B"
    shutil.copytree(src, d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["response_template"] = t
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    with Server(["--model", str(d), "--max-calls", "1"]) as s:
        entry = httpx.get(s.url + "/models", timeout=30).json()["data"][0]
        assert entry["toolgram"]["tool_call_parser"] == "acme_7b"
        assert "response_template" in entry["toolgram"]["tool_call_parser_source"]
        r = httpx.post(s.url + "/chat/completions", timeout=120, json={
            "model": entry["id"], "messages": [{"role": "user", "content": "weather?"}], "max_tokens": 200,
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object", "properties": {"city": {"type": "string", "maxLength": 8}},
                "required": ["city"]}}}], "tool_choice": "required"})
        assert r.status_code == 200, r.text
        calls = r.json()["choices"][0]["message"].get("tool_calls")
        assert calls, json.dumps(r.json())[:1500]
        assert calls and calls[0]["function"]["name"] == "get_weather"
        assert "city" in json.loads(calls[0]["function"]["arguments"])

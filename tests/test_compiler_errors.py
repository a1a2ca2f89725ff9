"""Bad grammar files give GrammarError naming the file and line, and the CLI exits 2 with file:line."""
import textwrap

import pytest

import toolgram
from toolgram.cli import main
from toolgram.errors import GrammarError

GOOD = """\
name: tiny
description: a tiny grammar
lark: |
  start: (CONTENT | call)*
  call: "<c>" CALL "</c>"
terminals:
  CONTENT: {text: true, role: content}
  CALL: {block: json_call}
calls: {rule: call}
"""


def write(tmp_path, text, name="g.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def error_of(tmp_path, text, **kw):
    p = write(tmp_path, text)
    with pytest.raises(GrammarError) as info:
        toolgram.load(str(p), **kw)
    err = info.value
    assert err.file == str(p)
    return err


def test_good_grammar_compiles_and_parses(tmp_path):
    g = toolgram.load(str(write(tmp_path, GOOD)))
    r = g.parse('hi <c>{"name": "f", "arguments": {"a": 1}}</c>')
    assert r.content == "hi " and r.tool_calls[0].name == "f"


@pytest.mark.parametrize("text,line,words", [
    ("name: x\ndescription: y\nlark: |\n  start: A\n terminals: [\n", 5, "invalid YAML"),
    (GOOD.replace("calls: {rule: call}\n", ""), 1, "calls"),
    (GOOD.replace("description: a tiny grammar\n", "description: a tiny grammar\ncolour: red\n"), 3, "colour"),
    (GOOD.replace("block: json_call", "block: xml_magic"), 8, "xml_magic"),
    (GOOD.replace('  call: "<c>" CALL "</c>"', '  call: "<c>" CALL "</c>" (('), 5, "Lark"),
    (GOOD.replace('  call: "<c>" CALL "</c>"', '  call: "<c>" CALL helper'), 5, "helper"),
    (GOOD.replace("calls: {rule: call}", "calls: {rule: kall}"), 9, "kall"),
    (GOOD.replace("  CALL: {block: json_call}", "  CALL: {block: json_call}\n  EXTRA: {text: true, role: value}"),
     9, "no rule uses it"),
    (GOOD.replace('"<c>" CALL "</c>"', '"<c>" NAME WS "</c>"').replace(
        "  CALL: {block: json_call}", "  NAME: {text: true, name: true}\n  WS: {text: true, role: value}"),
     8, "text"),
    (GOOD.replace('"<c>" CALL "</c>"', '"<c>" NAME SP "</c>"\n  SP: /[ ]+/').replace(
        "  CALL: {block: json_call}", "  NAME: {text: true, name: true}"), 9, "literal marker"),
    (GOOD.replace("  CALL: {block: json_call}", "  CALL: {block: json_call, name: '(x)'}"), 8, "name"),
    (GOOD.replace("  CONTENT: {text: true, role: content}", "  CONTENT: {text: true, role: contents}"), 7,
     "contents"),
    (GOOD.replace('  call: "<c>" CALL "</c>"', '  call: "<c>" CALL "</c>"\n  WS: " "\n  %ignore WS'), 7, "%ignore"),
    (GOOD.replace("lark: |\n  start", "lark: |\n  begin"), 3, "start"),
])
def test_errors_name_the_line(tmp_path, text, line, words):
    err = error_of(tmp_path, text)
    assert err.line == line, str(err)
    assert words in str(err), str(err)
    assert str(err).startswith(f"{err.file}:{line}: ")


def test_not_a_mapping(tmp_path):
    assert "mapping" in str(error_of(tmp_path, "- a\n- b\n"))


def test_empty_file(tmp_path):
    assert "mapping" in str(error_of(tmp_path, ""))


def test_not_utf8(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(GrammarError) as info:
        toolgram.load(str(p))
    assert "UTF-8" in str(info.value)


def test_yaml_is_loaded_safely(tmp_path):
    err = error_of(tmp_path, "!!python/object/apply:os.system ['echo pwned']\n")
    assert "YAML" in str(err)


def test_unknown_names():
    with pytest.raises(GrammarError, match="no grammar named 'nope'"):
        toolgram.load("nope")
    with pytest.raises(GrammarError, match="no reasoning grammar named 'nope'"):
        toolgram.load("hermes", reasoning="nope")


def test_reasoning_grammar_errors(tmp_path):
    p = write(tmp_path, "name: r\nkind: reasoning\ndescription: d\nopen: '<t>'\n", "r.yaml")
    with pytest.raises(GrammarError, match="close") as info:
        toolgram.load("hermes", reasoning=str(p))
    assert info.value.file == str(p)


def test_cli_compile_reports_file_line_and_exits_2(tmp_path, capsys):
    p = write(tmp_path, GOOD.replace("block: json_call", "block: xml_magic"))
    assert main(["compile", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}:8: " in err and "Traceback" not in err


def test_cli_compile_good(tmp_path, capsys):
    p = write(tmp_path, GOOD)
    assert main(["compile", str(p)]) == 0
    assert '"name": "tiny"' in capsys.readouterr().out


def test_cli_unknown_grammar_exits_2(capsys):
    assert main(["parse", "nope", "--example"]) == 2
    assert "no grammar named" in capsys.readouterr().err

"""Hostile grammar files: every broken file in tests/hostile_grammars/ (and a few generated ones too large or too
binary to keep in git) makes ``toolgram compile FILE`` and ``toolgram check FILE`` print ``file:line: message``
and exit with status 2, never a traceback, within a bounded time; nothing in a file is ever executed.

Each corpus file says what it is on its first line and what must be reported on its second:
``# expect: LINE: WORDS`` (the line the error names and words its message contains), or ``# expect: ok`` for a
file that looks hostile but is legal (it must compile and keep the parser's guarantees).
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import toolgram
from toolgram import corpus
from toolgram.cli import main
from test_compiler_errors import GOOD     # the same minimal valid grammar

HERE = Path(__file__).parent / "hostile_grammars"
FILES = sorted(HERE.glob("*.yaml"))


def expectation(path: Path):
    head = path.read_text(encoding="utf-8", errors="replace").split("\n", 2)
    m = re.match(r"# expect: (?:(ok)|(\d+): (.+))$", head[1] if len(head) > 1 else "")
    assert m, f"{path.name}: the second line must be '# expect: LINE: WORDS' or '# expect: ok'"
    return None if m.group(1) else (int(m.group(2)), m.group(3).strip())


def cli(capsys, *argv) -> tuple[int, str]:
    """The command line in this process (an exception escaping ``main`` would fail the test with it)."""
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.err


def assert_reported(path: Path, rc: int, err: str, line: int, words: str):
    assert rc == 2, err
    assert "Traceback" not in err
    m = re.match(r"toolgram: (.+?):(\d+): (.*)", err.strip().splitlines()[0])
    assert m, err
    assert Path(m.group(1)).resolve() == path.resolve(), err
    assert int(m.group(2)) == line, err
    assert words in m.group(3), err
    assert len(err) < 2000, "an error message must stay short whatever the file holds"


@pytest.mark.parametrize("path", [f for f in FILES if expectation(f) is not None], ids=lambda p: p.stem)
@pytest.mark.parametrize("command", ["compile", "check"])
def test_broken_file_is_reported_with_its_line(path, command, capsys, tmp_path, monkeypatch):
    line, words = expectation(path)
    monkeypatch.chdir(tmp_path)                 # a payload that ran would leave a file here
    t = time.monotonic()
    rc, err = cli(capsys, command, str(path))
    assert time.monotonic() - t < 10
    if command == "check" and "kind: reasoning" in path.read_text():
        # (check runs tool-call grammars; a reasoning file is refused before its own problem is looked at)
        assert rc == 2 and "Traceback" not in err and re.match(rf"toolgram: .+:\d+: ", err), err
        return
    assert_reported(path, rc, err, line, words)
    assert not list(tmp_path.iterdir()), "something in the grammar file was executed"


@pytest.mark.parametrize("path", [f for f in FILES if expectation(f) is None], ids=lambda p: p.stem)
def test_legal_but_odd_file_compiles_and_keeps_the_guarantees(path, capsys):
    rc, err = cli(capsys, "compile", str(path))
    assert rc == 0, err
    g = toolgram.load(str(path))
    lits = sorted({x for s in g.compiled.terminals.values() if s.kind == "literal" for x in s.spellings})
    import random
    rng = random.Random(7)
    pieces = lits + [x[:-1] for x in lits if len(x) > 1] + ['{"name": "f", "arguments": {"a": 1}}', 'f:', 'x',
                                                           '{"a": "</c>"}', ' ', '{', '"']
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        one = g.parse(text, new_id=corpus.counter_ids())
        assert "".join(t for _, t in one.segments) == text
        k = rng.randint(0, len(text))
        for parts in (list(text), [text[:k], text[k:]]):
            p = g.stream(new_id=corpus.counter_ids())
            deltas = [d for part in parts for d in p.feed(part)] + p.close()
            assert corpus.rebuild(deltas) == corpus.summary(one), (text, parts)
        for call in one.tool_calls:
            assert isinstance(json.loads(call.arguments), dict)


def test_every_corpus_file_declares_its_expectation():
    assert len(FILES) >= 40
    for f in FILES:
        expectation(f)


GENERATED = {
    # name: (the file's bytes, the line reported, words of the message)
    "enormous_file": (lambda: (GOOD + "# " + "x" * (1 << 20) + "\n").encode(), 1, "larger than"),
    "enormous_lark_text": (lambda: GOOD.replace('  call: "<c>" CALL "</c>"\n', '  call: "<c>" CALL "</c>"\n' + "".join(
        f'  r{i}: "m{i}" | "n{i}"\n' for i in range(6000))).encode(), 3, "characters; at most"),
    "too_many_rules": (lambda: GOOD.replace('  call: "<c>" CALL "</c>"\n', '  call: marker CALL "</c>"\n  marker: ' + " | ".join(
        f'"<c{i}>"' for i in range(3000)) + "\n").encode(), 3, "rules"),
    "too_many_yaml_nodes": (lambda: (GOOD + "models: [" + ", ".join(f"m{i}" for i in range(60000)) + "]\n").encode(),
                            10, "YAML nodes"),
    "yaml_nested_100k_deep": (lambda: (GOOD + "models: " + "[" * 100000 + "]" * 100000 + "\n").encode(), 10,
                              "invalid YAML"),
    "nul_character": (lambda: GOOD.replace("a tiny", "a\0tiny").encode(), 2, "unacceptable character #x0000"),
    "not_utf8": (lambda: GOOD.replace("a tiny", "a \udcff tiny").encode("utf-8", "surrogateescape"), 2, "UTF-8"),
    "utf16_bom": (lambda: GOOD.encode("utf-16"), 1, "UTF-8"),
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_hostile_file(name, tmp_path, capsys):
    make, line, words = GENERATED[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(make())
    for command in ("compile", "check"):
        t = time.monotonic()
        rc, err = cli(capsys, command, str(path))
        assert time.monotonic() - t < 15, "refused, but only after too long"
        assert_reported(path, rc, err, line, words)


def test_a_device_or_directory_is_not_read_forever(capsys, tmp_path):
    if os.path.exists("/dev/zero"):
        rc, err = cli(capsys, "compile", "/dev/zero")
        assert rc == 2 and "/dev/zero:1: file is larger than" in err
    rc, err = cli(capsys, "compile", str(tmp_path))
    assert rc == 2 and "cannot read" in err and "Traceback" not in err


def test_the_real_command_exits_2_without_a_traceback(tmp_path):
    """The installed entry point in its own process, on three kinds of failure (YAML, schema, Lark)."""
    names = ["yaml_python_object", "unknown_top_key", "lark_left_recursion"]
    for n in names:
        path = HERE / f"{n}.yaml"
        for command in ("compile", "check"):
            r = subprocess.run([sys.executable, "-m", "toolgram.cli", command, str(path)], capture_output=True,
                               text=True, timeout=60, cwd=tmp_path)
            assert r.returncode == 2, r.stderr
            assert "Traceback" not in r.stderr
            line, words = expectation(path)
            assert f"{path.name}:{line}: " in r.stderr and words in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())


def test_yaml_tags_never_construct_python_objects(tmp_path):
    """Safe loading: no tag builds a Python object, also when the tag is nested inside a valid grammar."""
    from toolgram.compiler.source import load_source
    for tag in ("!!python/object/apply:os.system ['touch pwned']", "!!python/object/new:os.system ['touch pwned']",
                "!!python/name:os.system", "!!python/module:os", "!!python/tuple [1, 2]"):
        with pytest.raises(toolgram.GrammarError, match="constructor"):
            load_source(GOOD.replace("  CALL: {block: json_call}", f"  CALL:\n    block: json_call\n    name_keys: {tag}"),
                        "t.yaml")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()

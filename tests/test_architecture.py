"""The structure issue 8 set up, held by tests: one-way imports, the encoding registry, one request model,
caches with one policy, and a compile cache keyed by the compiler's own sources."""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import toolgram
from toolgram import cache
from toolgram.errors import ConstraintError, GrammarError, RequestError
from toolgram.request import ToolRequest, parse_request
from toolgram.runtime import encodings

# -- imports ----------------------------------------------------------------------------------------

PACKAGES = {"toolgram.compiler": "compiler", "toolgram.runtime": "runtime", "toolgram.serve": "serve"}
# what each layer may import of toolgram (besides itself); ir and errors import nothing of toolgram
ALLOWED = {
    "version": set(),
    "ir": set(),
    "errors": set(),
    "cache": set(),
    "request": {"errors", "cache"},
    "runtime": {"ir", "errors", "cache", "request", "version"},
    "compiler": {"ir", "errors", "cache", "request", "runtime", "version"},
    "serve": {"top", "errors", "cache", "request", "runtime", "compiler", "version"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "toolgram":
        return "external"
    if len(parts) == 1:
        return "top"
    if parts[1] in ("compiler", "runtime", "serve", "ir", "errors", "cache", "request", "version"):
        return parts[1]
    return "top"


def _modules():
    """(module name, file) of every module of the installed package."""
    out = []
    roots = {"toolgram": Path(toolgram.__file__).parent}
    for pkg in PACKAGES:
        roots[pkg] = Path(__import__(pkg, fromlist=["x"]).__file__).parent
    for pkg, root in roots.items():
        for f in sorted(root.rglob("*.py")):
            rel = f.relative_to(root).with_suffix("")
            if pkg == "toolgram" and rel.parts[0] in ("compiler", "runtime", "serve"):
                continue
            name = ".".join((pkg, *rel.parts))
            out.append((name[:-len(".__init__")] if name.endswith(".__init__") else name, f))
    return out


def _imports(tree) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((f"relative:{node.module}", node.lineno))
            elif node.module:
                found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
    return found


def test_layers_import_one_way_and_absolutely():
    problems = []
    graph: dict[str, set] = {}
    for name, f in _modules():
        layer = _layer(name)
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for target, line in _imports(tree):
            if target.startswith("relative:"):
                problems.append(f"{f}:{line}: relative import (write toolgram.…)")
                continue
            other = _layer(target)
            if other in ("external", layer):
                continue
            graph.setdefault(layer, set()).add(other)
            if layer in ALLOWED and other not in ALLOWED[layer]:
                problems.append(f"{f}:{line}: {layer} imports {target} ({other})")
    assert not problems, "\n".join(problems)
    # no cycle between the layers (the allowed table above is a DAG; this checks what is really there)
    seen, stack = set(), []

    def visit(n):
        if n in stack:
            raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(n):] + [n])}")
        if n in seen:
            return
        stack.append(n)
        for m in graph.get(n, ()):
            if m != "top":
                visit(m)
        stack.pop()
        seen.add(n)

    for n in graph:
        visit(n)


def test_serve_reads_the_ir_only_through_the_public_api():
    problems = []
    for name, f in _modules():
        if _layer(name) != "serve":
            continue
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for target, line in _imports(tree):
            if _layer(target) == "ir":
                problems.append(f"{f}:{line}: imports the IR ({target})")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "compiled":
                problems.append(f"{f}:{node.lineno}: reads .compiled (the IR behind toolgram.Grammar)")
    assert not problems, "\n".join(problems)


def test_the_check_can_fail(tmp_path):
    """The import walk sees a runtime module importing the compiler."""
    tree = ast.parse("import json\nfrom toolgram.compiler import registry\n")
    assert [(t, _layer(t)) for t, _ in _imports(tree)] == [("json", "external"),
                                                            ("toolgram.compiler", "compiler")]
    assert "compiler" not in ALLOWED["runtime"]


# -- a toy encoding, registered from a module of its own -------------------------------------------

TOY_MODULE = '''
"""A toy encoding: arguments as key:value pairs separated by commas, up to ')'."""
import json
import re

from toolgram.ir import EMPTY, Lit, Regex, seq
from toolgram.runtime.encodings.registry import Encoding, register
from toolgram.runtime.json_value import DONE, ERROR, MORE

_PAIR = re.compile(r"([a-z]+):([A-Za-z0-9]*)")


class PairsScanner:
    def __init__(self, out, options):
        self.out = out
        self.upper = options.get("upper", False)
        self.text = []

    def feed(self, buf, pos, eof=False):
        end = buf.find(")", pos)
        if end < 0:
            self.text.append(buf[pos:])
            return len(buf), (ERROR if eof else MORE)
        self.text.append(buf[pos:end])
        body = "".join(self.text)
        pairs = [p for p in body.split(",")] if body else []
        found = [_PAIR.fullmatch(p) for p in pairs]
        if not all(found):
            return end, ERROR
        args = {m.group(1): (m.group(2).upper() if self.upper else m.group(2)) for m in found}
        self.out.args(json.dumps(args))
        return end, DONE


def _arguments(ctx, spec, tool):
    props = list((tool.closed.get("properties") or {}))
    if not props:
        return EMPTY
    parts = []
    for i, key in enumerate(props):
        if i:
            parts.append(Lit(","))
        parts.extend([Lit(key + ":"), Regex("[A-Za-z0-9]{1,12}")])
    return seq(*parts)


register(Encoding(
    name="toy_pairs",
    summary="key:value pairs (a test encoding)",
    options={"upper": {"type": "boolean"}},
    first=lambda prepared: "abcdefghijklmnopqrstuvwxyz)",
    scanner=lambda out, prepared, value: PairsScanner(out, prepared),
    arguments=_arguments,
))
'''

TOY_GRAMMAR = '''
name: toy
description: "A call is <call NAME(key:value,...)>."
lark: |
  start: (CONTENT | call)*
  call: "<call " NAME "(" ARGS ")>"
  NAME: /[a-z_]+/
terminals:
  CONTENT: {text: true, role: content}
  NAME: {name: true}
  ARGS: {block: toy_pairs, upper: UPPER}
calls:
  rule: call
'''

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
    "required": ["city", "unit"]}}}]


@pytest.fixture
def toy_encoding(tmp_path):
    (tmp_path / "toy_pairs_encoding.py").write_text(TOY_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        import toy_pairs_encoding  # noqa: F401  (registers)
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("toy_pairs_encoding", None)
        encodings.registry.unregister("toy_pairs")


def test_a_new_encoding_is_one_module(toy_encoding):
    path = toy_encoding / "toy.yaml"
    path.write_text(TOY_GRAMMAR.replace("UPPER", "true"))
    g = toolgram.load(str(path))
    text = "Sure. <call get_weather(city:Paris,unit:c)> done"
    r = g.parse(text, TOOLS)
    assert r.content == "Sure.  done"
    assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [("get_weather", {"city": "PARIS", "unit": "C"})]
    whole = g.parse(text, TOOLS, new_id=lambda: "call_1").to_dict()
    for size in (1, 2, 3, 5, 8):                      # chunk-invariant
        p = g.stream(TOOLS, new_id=lambda: "call_1")
        deltas = [d for i in range(0, len(text), size) for d in p.feed(text[i:i + size])] + p.close()
        assert p.result.to_dict() == whole
        assert "".join(d["content"] for d in deltas if "content" in d) == r.content
    import llguidance
    from constraint_helpers import byte_tokenizer
    c = g.constraint(TOOLS, "required")
    assert "city:" in c.text
    tok = byte_tokenizer()
    for output, ok in (("<call get_weather(city:Paris,unit:c)>", True), ("<call get_weather(unit:c)>", False),
                       ("<call get_time(city:Paris,unit:c)>", False)):
        m = llguidance.LLMatcher(tok, c.text, log_level=0)
        consumed = all(m.consume_token(b) for b in output.encode())
        assert (consumed and m.is_accepting()) == ok, output


def test_an_encoding_option_is_checked_by_the_grammar_schema(toy_encoding):
    path = toy_encoding / "toy.yaml"
    path.write_text(TOY_GRAMMAR.replace("UPPER", "'yes'"))
    with pytest.raises(GrammarError) as e:
        toolgram.load(str(path))
    assert e.value.line == 11 and "terminals.ARGS.upper" in str(e.value)


def test_an_unknown_encoding_names_the_registered_ones(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_GRAMMAR.replace("toy_pairs, upper: UPPER", "toy_pairs"))
    with pytest.raises(GrammarError) as e:
        toolgram.load(str(path))
    assert "unknown encoding" in str(e.value) and "json_call" in str(e.value) and e.value.line == 11


def test_every_bundled_encoding_is_registered_with_its_sides():
    for name in ("json", "json_call", "literal"):
        enc = encodings.get(name)
        assert enc.scanner is not None and (enc.arguments or enc.value) and enc.options
    assert encodings.get("text").value is not None and "text" not in encodings.names()


# -- one request model ------------------------------------------------------------------------------

def test_both_openai_shapes_give_the_same_request():
    chat = parse_request(TOOLS, {"type": "function", "function": {"name": "get_weather"}}, False)
    fn = TOOLS[0]["function"]
    responses = parse_request([{"type": "function", **fn}], {"type": "function", "name": "get_weather"}, False)
    assert isinstance(chat, ToolRequest)
    assert (chat.mode, chat.named, chat.parallel) == (responses.mode, responses.named, responses.parallel) == \
        ("named", "get_weather", False)
    assert [t.closed for t in chat.tools] == [t.closed for t in responses.tools]
    assert chat.tools[0].param == "tools[0].function" and responses.tools[0].param == "tools[0]"
    g = toolgram.load("hermes")
    assert g.constraint(chat).text == g.constraint(responses).text == g.constraint(TOOLS, chat.tools and {
        "type": "function", "function": {"name": "get_weather"}}).text


@pytest.mark.parametrize("tools,choice,param", [
    ("nope", "auto", "tools"),
    ([1], "auto", "tools[0]"),
    ([{"type": "function", "function": {"parameters": {}}}], "auto", "tools[0].function.name"),
    (TOOLS + TOOLS, "auto", "tools[1].function.name"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": 3}}}],
     "auto", "tools[0].function.parameters"),
    ([{"type": "function", "name": "f", "parameters": {"type": "string"}}], "auto", "tools[0].parameters"),
    (TOOLS, {"type": "function", "function": {"name": "other"}}, "tool_choice"),
    (None, "required", "tool_choice"),
    (TOOLS, "sometimes", "tool_choice"),
])
def test_request_errors_name_the_param(tools, choice, param):
    with pytest.raises(RequestError) as e:
        parse_request(tools, choice)
    assert e.value.param == param
    with pytest.raises(ConstraintError):             # the constraint builder reports the same problem
        toolgram.load("hermes").constraint(tools, choice)


def test_no_second_validation_outside_the_request_model():
    """Tool-list checks live in toolgram/request.py only: the server and the plugin call parse_request."""
    root = Path(toolgram.__file__).parent
    offenders = []
    for name, f in _modules():
        if f == root / "request.py":
            continue
        text = f.read_text(encoding="utf-8")
        for phrase in ("duplicate tool name", "which is not in tools", "needs at least one tool", "check_schema(params"):
            if phrase in text:
                offenders.append(f"{f}: {phrase!r}")
    assert not offenders, offenders


# -- caches -----------------------------------------------------------------------------------------

def test_lru_is_bounded_and_counts():
    c = cache.LRU("test_lru", 2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1                 # a is now the most recent
    c.put("c", 3)                          # b goes
    assert c.get("b") is None and c.get("c") == 3 and len(c) == 2
    s = cache.stats()["test_lru"]
    assert s == {"hits": 2, "misses": 1, "size": 2, "maxsize": 2}


def test_constraints_go_through_the_lru():
    g = toolgram.load("hermes")
    before = cache.stats()["constraints"]
    g.constraint(TOOLS, "required", syntax="gbnf")
    g.constraint(TOOLS, "required", syntax="gbnf")
    after = cache.stats()["constraints"]
    assert after["hits"] >= before["hits"] + 1 and after["size"] <= after["maxsize"]


def test_grammar_derived_data_lives_on_the_compiled_grammar():
    c = toolgram.load("qwen3_coder").compiled
    assert c.rules and "start" in c.rules and c.text_stops and c.fingerprint


COPY_SCRIPT = """
import os, sys
import toolgram
from toolgram.compiler import tables
toolgram.load("hermes")
print(tables.PATTERN_CAP, len(os.listdir(os.environ["TOOLGRAM_CACHE"])))
"""


def _installed_copy(dest: Path) -> Path:
    """The package as installed (toolgram/, toolgram/compiler/ ...), copied to ``dest``."""
    pkg = dest / "toolgram"
    shutil.copytree(Path(toolgram.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for sub, mod in (("compiler", "toolgram.compiler"), ("runtime", "toolgram.runtime"), ("serve", "toolgram.serve"),
                     ("grammar_files", "toolgram.grammar_files")):
        src = Path(__import__(mod, fromlist=["x"]).__file__).parent
        if (pkg / sub).exists():
            shutil.rmtree(pkg / sub)
        shutil.copytree(src, pkg / sub, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def test_editing_a_compiler_constant_misses_the_disk_cache(tmp_path):
    pkg = _installed_copy(tmp_path / "site")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"), TOOLGRAM_CACHE=str(tmp_path / "cache"))

    def run():
        out = subprocess.run([sys.executable, "-c", COPY_SCRIPT], env=env, capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        cap, files = out.stdout.split()
        return int(cap), int(files)

    assert run() == (4096, 1)
    assert run() == (4096, 1)                          # the same sources: the cached tables
    tables = pkg / "compiler" / "tables.py"
    tables.write_text(tables.read_text().replace("PATTERN_CAP = 4096", "PATTERN_CAP = 2048"))
    assert run() == (2048, 2)                          # a new key: compiled again, with the new constant


# -- grammar files: keys that do nothing are errors -------------------------------------------------

def test_a_key_no_terminal_uses_is_an_error(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_GRAMMAR.replace("ARGS: {block: toy_pairs, upper: UPPER}", "ARGS: {block: json}")
                    .replace("CONTENT: {text: true, role: content}",
                             "CONTENT: {text: true, role: content, empty_value: x}"))
    with pytest.raises(GrammarError) as e:
        toolgram.load(str(path))
    assert e.value.line == 9 and "empty_value" in str(e.value)


@pytest.mark.parametrize("terminal,line", [
    ("CONTENT: {text: true, role: content, unescape: xml}", 9),   # content is verbatim
    ("CONTENT: {text: true, role: content, strip: true}", 9),
    ("NAME: {name: true, arg_type: json}", 10),           # a name is not a value's type marker
])
def test_a_key_that_does_nothing_on_its_terminal_is_an_error(tmp_path, terminal, line):
    text = TOY_GRAMMAR.replace("ARGS: {block: toy_pairs, upper: UPPER}", "ARGS: {block: json}")
    key = terminal.split(":")[0]
    text = "\n".join("  " + terminal if ln.startswith(f"  {key}: {{") else ln for ln in text.split("\n"))
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    with pytest.raises(GrammarError) as e:
        toolgram.load(str(path))
    assert e.value.line == line and "does nothing" in str(e.value), str(e.value)

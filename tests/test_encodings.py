"""Encoding blocks and filters on their own: JSON closable prefixes, literal conversion, text filters."""
import ast
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from toolgram.runtime.json_value import DONE, ERROR, MORE, JsonValue
from toolgram.runtime.encodings.literal import literal_to_json
from toolgram.runtime.schema_values import ToolSchemas, convert, types_of
from toolgram.runtime.textfilter import TextFilter, strip_text, unescape_xml

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
    max_leaves=12)


def scan(text, parts):
    out = []
    j = JsonValue(out.append)
    buf, status = "", MORE
    for i, part in enumerate(parts):
        buf += part
        pos, status = j.feed(buf, 0, eof=i == len(parts) - 1)
        buf = buf[pos:]
        if status != MORE:
            break
    return "".join(out), status, j


@given(value=json_values, indent=st.sampled_from([None, 1]), cuts=st.lists(st.integers(0, 500), max_size=6))
@settings(max_examples=300, deadline=None)
def test_json_value_streams_exactly_and_stays_closable(value, indent, cuts):
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    pts = sorted({c % (len(text) + 1) for c in cuts})
    parts = [text[a:b] for a, b in zip([0] + pts, pts + [len(text)])]
    out, status, _ = scan(text, parts)
    assert status == DONE and out == text
    for k in range(1, len(text)):
        prefix, status, j = scan(text[:k], [text[:k]])
        if prefix:
            json.loads(prefix + j.closers())


def test_json_value_rejects_invalid():
    for bad in ['{"a": 01}', '[1,]', '{"a" 1}', '"\\x"', 'NaN', '{"a": tru}', "{'a': 1}"]:
        _, status, _ = scan(bad, [bad])
        assert status == ERROR, bad


@given(cuts=st.lists(st.integers(0, 60), max_size=5))
@settings(max_examples=100, deadline=None)
def test_raw_control_characters_in_strings_go_out_escaped(cuts):
    """Models write raw newlines and tabs inside JSON strings (code arguments); they are kept, escaped."""
    text = '{"code": "def f():\n\treturn 1\r\n", "k\x01": "\x00"}'
    pts = sorted({c % (len(text) + 1) for c in cuts})
    parts = [text[a:b] for a, b in zip([0] + pts, pts + [len(text)])]
    out, status, _ = scan(text, parts)
    assert status == DONE
    assert json.loads(out) == json.loads(text, strict=False)


python_literals = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids) | st.dictionaries(st.text(max_size=4), kids,
                                                                                      max_size=3),
    max_leaves=8)


@given(value=python_literals)
@settings(max_examples=300, deadline=None)
def test_python_literal_converts_like_literal_eval(value):
    text = repr(value)
    out = literal_to_json(text, "python")
    expected = json.loads(json.dumps(ast.literal_eval(text)))
    assert out is not None and json.loads(out) == expected


def test_literal_never_evaluates():
    for code in ["__import__('os').system('x')", "open('f')", "f(1)", "a.b", "1 + 2", "lambda: 0"]:
        assert literal_to_json(code, "python") is None


@given(text=st.text(alphabet=" \n\r\tab&;<>lgtmp#x0", max_size=14), mode=st.sampled_from(["none", "newline",
       "whitespace"]), unescape=st.sampled_from([None, "xml"]), cuts=st.lists(st.integers(0, 20), max_size=5))
@settings(max_examples=400, deadline=None)
def test_text_filter_is_split_invariant(text, mode, unescape, cuts):
    expected = strip_text(text, mode)
    if unescape:
        expected = unescape_xml(expected)
    f = TextFilter(mode, unescape)
    pts = sorted({c % (len(text) + 1) for c in cuts})
    got = "".join(f.feed(text[a:b]) for a, b in zip([0] + pts, pts + [len(text)])) + f.end()
    assert got == expected


def test_schema_typing():
    root = {"type": "object", "$defs": {"n": {"type": "integer"}},
            "properties": {"s": {"type": "string"}, "n": {"$ref": "#/$defs/n"}, "u": {"type": ["integer", "null"]},
                           "o": {"type": "object"}, "e": {"enum": [1, 2]}, "b": {"type": "boolean"}}}
    tools = ToolSchemas([{"type": "function", "function": {"name": "f", "parameters": root}}])
    assert tools.parameter("f", "n")[0] == {"integer"}
    assert convert("5", {"integer"}) == "5"
    assert convert(" 5 ", {"integer", "null"}) == "5"
    assert convert("null", {"integer", "null"}) == "null"
    assert convert("five", {"integer"}) == '"five"'
    assert convert("{'a': (1, 2)}", {"object"}) == '{"a": [1, 2]}'
    assert convert("TRUE", {"boolean"}) == "true"
    assert convert("4.50", {"number"}) == "4.5"
    assert types_of(root["properties"]["e"], root) == {"integer"}
    assert tools.parameter("f", "missing") == (set(), None, None)
    assert tools.parameter("g", "s") == (set(), None, None)

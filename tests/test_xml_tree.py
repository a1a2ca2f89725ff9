"""The xml_tree encoding is generic: a grammar with no tag prefix and its own item tag reads nested values by
the schema, streams them equal to one-shot, keeps a broken value's siblings, and its constraint accepts
what it reads (and what it writes reads back)."""
import json

import pytest

import toolgram
from constraint_helpers import accepts, tokenizer_for

GRAMMAR = r'''
name: tree_demo
description: "A call <call f>, one element per argument named by its key, nested values as elements."
lark: |
  start: (CONTENT | call)*
  call: "<call " NAME ">" param* "</call>"
  param: "<" KEY ">" VALUE
terminals:
  CONTENT: {text: true, role: content}
  NAME: {text: true, name: true}
  KEY: {text: true, role: key}
  VALUE: {block: xml_tree, role: value, item_tag: li}
calls:
  rule: call
  argument: param
'''

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
    "ids": {"type": "array", "items": {"type": "integer"}},
    "opt": {"type": "object", "properties": {"on": {"type": "boolean"}, "w": {"type": "number"},
                                             "tags": {"type": "array", "items": {"type": "string"}}}},
    "name": {"type": "string"},
    "any": {}}}}}]

NESTED = "<call f><ids><li>1</li><li>2</li></ids><opt><on>true</on><w>2.5</w><tags><li>x</li></tags></opt>" \
         "<name>a <b> c</name></call>"


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    path = tmp_path_factory.mktemp("tree") / "tree_demo.yaml"
    path.write_text(GRAMMAR, encoding="utf-8")
    return toolgram.load(str(path))


def _stream(g, text, tools):
    p = g.stream(tools=tools)
    for ch in text:
        p.feed(ch)
    p.close()
    return p.result


def test_nested_values_typed_by_the_schema(g):
    r = g.parse(NESTED, tools=TOOLS)
    assert json.loads(r.tool_calls[0].arguments) == {"ids": [1, 2], "opt": {"on": True, "w": 2.5, "tags": ["x"]},
                                                     "name": "a <b> c"}
    s = _stream(g, NESTED, TOOLS)
    assert s.tool_calls[0].arguments == r.tool_calls[0].arguments


def test_without_a_schema_leaves_are_strings_and_the_first_tag_decides(g):
    text = "<call f><any><li>1</li><li>2</li></any><m><k>3</k><li>4</li></m></call>"
    r = g.parse(text)
    assert json.loads(r.tool_calls[0].arguments) == {"any": ["1", "2"], "m": {"k": "3", "li": "4"}}


def test_a_broken_value_keeps_what_was_read_and_the_next_argument(g):
    text = "<call f><ids><li>1</li><x>2</x></ids><name>n</name></call> after"
    r = g.parse(text, tools=TOOLS)
    call = r.tool_calls[0]
    assert json.loads(call.arguments) == {"ids": [1], "name": "n"} and call.malformed
    assert r.content == " after"
    s = _stream(g, text, TOOLS)
    assert (s.tool_calls[0].arguments, s.content) == (call.arguments, r.content)


@pytest.mark.parametrize("choice", ["required", "auto"])
def test_the_constraint_accepts_what_it_reads(g, choice):
    c = g.constraint(TOOLS, choice, tokenizer=tokenizer_for(g)[0])
    # (a constraint writes no tag opener inside text: here "<", which a top-level string may hold when read)
    assert accepts(g, c.text, NESTED.replace("a <b> c", "a b c")) is None
    # a value without a schema: text, an array of items, or an object whose first tag is not the item tag
    free = "<call f><any><k><li>1</li></k><j>2</j></any></call>"
    assert accepts(g, c.text, free) is None
    assert json.loads(g.parse(free, tools=TOOLS).tool_calls[0].arguments) == {"any": {"k": ["1"], "j": "2"}}

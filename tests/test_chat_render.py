"""serve/chat.py's renderer on what real templates use (no test data needed): HF's {% generation %} tag,
``tojson`` of a filter's lazy result, lists the template builds itself, templates that concatenate
``arguments`` as text; and what stays refused: mutating what the template is given, syntax errors (a 400)."""
import json

import pytest

from toolgram.serve.chat import TemplateError, render

CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": json.dumps({"a": 1})}}]}


def test_generation_tag_renders_its_body():
    assert render("{% generation %}[{{ messages[0].content }}]{% endgeneration %}",
                  [{"role": "user", "content": "hi"}]) == "[hi]"


def test_tojson_of_a_lazy_filter_result():
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert json.loads(render("{{ tools | map(attribute='function') | tojson }}", [], tools)) == [{"name": "f"}]


def test_template_built_lists_may_change_given_objects_may_not():
    assert render("{% set ns = namespace(q=[]) %}{% set _ = ns.q.append(2) %}{{ ns.q.pop(0) }}", []) == "2"
    with pytest.raises(TemplateError, match="unsafe"):
        render("{% set _ = messages.append(1) %}", [{"role": "user", "content": "x"}])
    with pytest.raises(TemplateError, match="unsafe"):
        render("{% set _ = messages[0].tool_calls.pop() %}", [CALL])


def test_arguments_as_text_when_the_template_concatenates_them():
    tpl = "{% for m in messages %}{% for c in m.tool_calls %}{{ c.function.name + ' ' + c.function.arguments }}" \
          "{% endfor %}{% endfor %}"
    assert render(tpl, [CALL]) == 'f {"a": 1}'
    # a template that iterates the arguments still gets a dict
    assert render("{{ messages[0].tool_calls[0].function.arguments.a }}", [CALL]) == "1"


def test_deeply_nested_input_is_not_a_crash():
    deep = []
    for _ in range(5000):
        deep = [deep]
    assert render("{{ messages[0].content }}", [{"role": "user", "content": "ok", "extra": deep}]) == "ok"


def test_syntax_error_is_a_template_error():
    with pytest.raises(TemplateError, match="line 1"):
        render("{% if %}", [])

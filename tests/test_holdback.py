"""Only text that can still become a marker is held back, and it is released the moment it cannot."""
import toolgram


def content_of(deltas):
    return "".join(d.get("content", "") for d in deltas)


def test_partial_marker_is_held_then_released():
    p = toolgram.load("hermes").stream()
    assert content_of(p.feed("Hello <tool_")) == "Hello "
    assert content_of(p.feed("cal")) == ""
    assert content_of(p.feed("x")) == "<tool_calx"
    assert content_of(p.close()) == ""


def test_partial_marker_at_end_of_output_is_content():
    p = toolgram.load("hermes").stream()
    out = content_of(p.feed("a < b <tool_c"))
    assert out == "a < b "
    assert content_of(p.close()) == "<tool_c"
    assert p.result.content == "a < b <tool_c"


def test_prose_with_brackets_streams_at_once():
    for name in ("hermes", "mistral", "llama3_json", "kimi_k2", "glm47"):
        p = toolgram.load(name).stream()
        assert content_of(p.feed("Say x")) == "Say x"
        assert content_of(p.feed(" {a: [1]} ")) == " {a: [1]} "


def test_name_emitted_once_when_complete():
    p = toolgram.load("glm47").stream()
    seen = []
    for ch in "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>":
        for d in p.feed(ch):
            for tc in d.get("tool_calls", ()):
                if "name" in tc.get("function", {}):
                    seen.append(tc["function"]["name"])
    p.close()
    assert seen == ["get_weather"]


def test_arguments_stream_inside_long_strings():
    p = toolgram.load("hermes").stream()
    p.feed('<tool_call>{"name": "write_file", "arguments": {"content": "')
    pieces = []
    for _ in range(100):
        for d in p.feed("abcd"):
            for tc in d.get("tool_calls", ()):
                pieces.append(tc["function"].get("arguments", ""))
    assert len(pieces) == 100 and all(x == "abcd" for x in pieces)


def test_kv_string_values_stream_as_they_arrive():
    tools = [{"type": "function", "function": {"name": "write_file", "parameters": {
        "type": "object", "properties": {"content": {"type": "string"}}}}}]
    p = toolgram.load("glm47").stream(tools)
    p.feed("<tool_call>write_file<arg_key>content</arg_key><arg_value>")
    args = ""
    for chunk in ["line 1\n", "line 2 <b", "> & more"]:
        for d in p.feed(chunk):
            for tc in d.get("tool_calls", ()):
                args += tc["function"].get("arguments", "")
    assert args.startswith('{"content": "line 1\\nline 2 ')

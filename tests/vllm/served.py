"""What the tests of a served vLLM share: an ``openai`` client and the check of the calls it returns."""
from __future__ import annotations

import json

import jsonschema
import openai


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=120)


def check_calls(calls, schemas: dict, names=None) -> None:
    """Calls came back, each with an id, a tool of ``schemas`` and arguments valid for its schema (and, given
    ``names``, exactly those tools in that order)."""
    assert calls, "no tool calls"
    for c in calls:
        assert c.id and c.function.name in schemas
        jsonschema.validate(json.loads(c.function.arguments), schemas[c.function.name])
    if names is not None:
        assert [c.function.name for c in calls] == names

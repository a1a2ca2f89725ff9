"""Shared pieces of the response-template tests: the public templates, the corpus family each one reads,
and the expected-differences table (tests/response_template_differences.yaml)."""
from __future__ import annotations

import functools
from pathlib import Path

import yaml

from toolgram import corpus
from toolgram.errors import GrammarError
from toolgram.response_templates import from_response_template

from response_templates_public import public_templates

# template -> the bundled grammar whose corpus holds outputs of that family
FAMILY = {"qwen2": "hermes", "qwen3": "hermes", "qwen3_5": "qwen3_coder", "gemma4": "gemma4",
          "glm4moe": "glm45", "gptoss": "harmony", "llama3": "llama3_json", "lfm2_2_5": "lfm2",
          "nemotron_3": "qwen3_coder", "deepseek_r1_distill": None}

# public templates toolgram refuses, with the field path and the words the refusal must carry
REFUSED = {
    "trl:deepseek_r1_distill": ("fields.reasoning_content.open_pattern", "lookahead"),
    "trl:nemotron_3": ("fields.reasoning_content.open_pattern", "lookahead"),
    "trl:lfm2_2_5": ("fields.tool_calls.content_args.tag_pattern", "bracket nesting"),
}

TEMPLATES = public_templates()
DIFF_FILE = Path(__file__).parent / "response_template_differences.yaml"


@functools.lru_cache(maxsize=None)
def grammar(key: str):
    return from_response_template(TEMPLATES[key])


def imported() -> list[str]:
    out = []
    for key in TEMPLATES:
        try:
            grammar(key)
        except GrammarError:
            continue
        out.append(key)
    return out


def cases_of(key: str) -> list:
    fam = FAMILY.get(key.split(":", 1)[1])
    return corpus.load_cases(fam) if fam else []


def differences() -> dict:
    data = yaml.safe_load(DIFF_FILE.read_text(encoding="utf-8"))
    reasons = data["reasons"]
    table = {}
    for e in data["cases"]:
        assert e["reason"] in reasons, e
        table[(e["template"], e["case"])] = e
    export = {}
    for e in data.get("export_cases", []):
        assert e["reason"] in reasons, e
        export[(e["template"], e["case"])] = e
    bundled = {}
    for e in data.get("bundled_cases", []):
        assert e["reason"] in reasons, e
        bundled[(e["template"], e["case"])] = e
    vllm = {}
    for e in data.get("vllm_cases", []):
        assert e["reason"] in reasons, e
        vllm[(e["template"], e["case"])] = e
    return {"reasons": reasons, "cases": table, "reference_streaming": data.get("reference_streaming", []),
            "export_cases": export, "bundled_cases": bundled, "vllm_cases": vllm,
            "vllm_refused": {e["template"]: e for e in data.get("vllm_refused", [])}}

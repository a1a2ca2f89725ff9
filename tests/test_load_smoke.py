"""A small run of benchmarks/load.py (the load test of docs/reliability.md): a real ``toolgram serve`` on 127.0.0.1,
16 concurrent streaming clients, tool_choice none/auto/required/named mixed; every response valid (arguments
validate against the tool's schema, the stream ends with [DONE], the finish reasons are right), no error, the
server alive and its memory steady.  The full run (64 clients, 2,000 requests) is the benchmark itself."""
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx")
pytest.importorskip("jsonschema")
pytest.importorskip("fastapi")
pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import load  # noqa: E402


def test_small_load_run_is_all_valid(tmp_path):
    out = tmp_path / "load.json"
    # (192 tokens: since the constraint admits the grammar's native "id" member, a random model's calls run
    # longer, and a required call cut by max_tokens is counted as an error)
    rc = load.main(["--requests", "64", "--clients", "16", "--warmup", "16", "--max-seconds", "120",
                    "--max-tokens", "192", "--json", str(out)])
    figures = json.loads(out.read_text())
    assert figures["errors"] == 0, figures["error_examples"]
    assert figures["requests_done"] == 64 and figures["server_alive"]
    assert set(figures["modes"]) == {"none", "auto", "required", "named"}
    checked = figures["checked"]
    assert checked.get("required: tool_calls", 0) >= 16 and checked.get("named: tool_calls", 0) >= 16
    assert checked.get("calls validated", 0) >= 32
    assert rc == 0, figures

"""Differential tests against vLLM's ``hf`` parser (``vllm/parser/response_template.py``, the parser vLLM serves
a checkpoint's ``response_template`` with): the same cases as the transformers differential -- every corpus case
of every imported public template and of every exported grammar -- read by toolgram and by vLLM, one-shot and
streamed one character at a time.  Same calls, content and reasoning, or the case is in
tests/response_template_differences.yaml (``vllm_cases``) with its reason, and the reason is checked:

* a reason the transformers differential also uses (``name-policy``, ``value-cut-off``...): vLLM reads the
  case exactly as transformers' ``parse_response`` does, so the divergence is the spec's, not vLLM's;
* ``vllm-*`` reasons name where vLLM's implementation departs from the spec's documented meaning (it drops
  a region transformers raises on, drops a call the spec returns, joins raw chunks).

Templates vLLM refuses to serve are listed in ``vllm_refused`` with the words of the refusal; their cases run
with the reasoning field renamed ``thinking`` (the one name vLLM routes).  Runs in the vLLM venv
(``.venv-vllm/bin/python -m pytest tests/vllm``); skipped, with the reason printed, where vLLM is absent."""
import sys

import pytest

try:
    import vllm.parser.response_template  # noqa: F401
except Exception as e:                                      # noqa: BLE001 - any import failure means "absent"
    reason = f"vLLM's hf parser is not importable here ({type(e).__name__}: {e}); run bash .ci/vllm_setup.sh " \
             f"and .venv-vllm/bin/python -m pytest tests/vllm"
    print("SKIP", __name__, reason, file=sys.stderr)
    pytest.skip(reason, allow_module_level=True)

from response_template_cases import TEMPLATES, cases_of, differences, grammar, imported  # noqa: E402
from vllm_hf import refusal, vllm_parse, vllm_stream, with_thinking_field  # noqa: E402

from toolgram import corpus  # noqa: E402
from toolgram.export import export_table  # noqa: E402
from toolgram.response_templates import (difference, from_response_template, normalize_result,  # noqa: E402
                                          reference_parse)

TABLE = differences()
EXPORTS = {f"export:{n}": t for n, (t, _) in export_table().items() if t is not None}


def _template(key):
    return TEMPLATES[key] if key in TEMPLATES else EXPORTS[key]


def _grammar(key):
    return grammar(key) if key in TEMPLATES else _export_grammar(key)


_EXPORT_GRAMMARS = {}


def _export_grammar(key):
    if key not in _EXPORT_GRAMMARS:
        _EXPORT_GRAMMARS[key] = from_response_template(EXPORTS[key])
    return _EXPORT_GRAMMARS[key]


def _cases(key):
    return cases_of(key) if key in TEMPLATES else corpus.load_cases(key.split(":", 1)[1])


def served(key) -> dict:
    """The template as vLLM is given it: as published, or (when vLLM refuses that) with ``thinking``."""
    t = _template(key)
    return t if refusal(t) is None else with_thinking_field(t)


KEYS = imported() + sorted(EXPORTS)
CASES = [pytest.param(key, case, id=f"{key}:{case.name}") for key in KEYS for case in _cases(key)]


def test_the_cases_are_the_transformers_differentials():
    assert len(CASES) > 250 and {k for k in KEYS if _cases(k)} == set(KEYS)


@pytest.mark.parametrize("key", sorted(set(TEMPLATES) | set(EXPORTS)))
def test_vllm_serves_the_template_or_is_listed(key):
    """vLLM's startup check (``validate_response_template_for_serving``) against the table: a refused template
    is listed with words of the refusal, and renaming its reasoning field is all it takes to be served."""
    why = refusal(_template(key))
    listed = TABLE["vllm_refused"].get(key)
    if why is None:
        assert listed is None, f"stale vllm_refused entry: {listed}"
        return
    assert listed is not None, f"vLLM refuses {key}: {why}"
    assert listed["says"] in why
    assert refusal(with_thinking_field(_template(key))) is None


@pytest.mark.parametrize("key,case", CASES)
def test_same_reading_as_vllm_or_listed(key, case):
    theirs = vllm_parse(served(key), case.output, case.tools)
    streamed, _ = vllm_stream(served(key), list(case.output), case.tools)
    assert streamed == theirs, f"vLLM's streaming differs from its one-shot: {streamed} vs {theirs}"
    ours = normalize_result(_grammar(key).parse(case.output, tools=case.tools))
    d = difference(ours, theirs)
    entry = TABLE["vllm_cases"].get((key, case.name))
    if d is None:
        assert entry is None, f"stale expected difference (toolgram and vLLM now agree): {entry}"
        return
    assert entry is not None, f"unexpected difference in {d}: toolgram {ours} vLLM {theirs}"
    assert entry["part"] == d, f"listed as a difference in {entry['part']}, found in {d}"
    ref = reference_parse(_template(key), case.output, "", case.tools)
    why = entry["reason"]
    if why == "vllm-drops-malformed":
        assert "error" in ref, f"transformers reads it ({ref}): not a region its parser rejects"
    elif why == "vllm-drops-incomplete-call":
        assert "error" not in ref and len(theirs["calls"]) < len(ref["calls"]), (ref, theirs)
    elif why == "vllm-raw-chunks":
        assert difference(ours, theirs, loose_whitespace=True) is None
    else:       # a divergence of the spec itself: vLLM reads the case as transformers does
        assert theirs == ref, f"listed with the spec's reason {why}, but vLLM and transformers differ: {ref}"

"""Shared test setup: a private compile cache, and the corpus cases of every bundled grammar."""
import os
import tempfile

os.environ.setdefault("TOOLGRAM_CACHE", tempfile.mkdtemp(prefix="toolgram-test-cache-"))

import pytest  # noqa: E402

from toolgram import corpus  # noqa: E402
from toolgram.compiler import registry  # noqa: E402


def all_cases():
    sets = corpus.tool_sets()
    return [case for name in registry.grammar_names() for case in corpus.load_cases(name, sets)]


ALL_CASES = all_cases()


@pytest.fixture(params=ALL_CASES, ids=[c.id for c in ALL_CASES])
def case(request):
    return request.param


def pytest_collection_modifyitems(config, items):
    """Tests marked slow run only with TOOLGRAM_SLOW=1 (they say so when skipped)."""
    if os.environ.get("TOOLGRAM_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set TOOLGRAM_SLOW=1 to run (see docs/constraints.md)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

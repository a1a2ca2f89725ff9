"""The refactor guard: the current code reproduces the recorded behaviour snapshot byte for byte (every corpus
case's one-shot result and its deltas under fixed splits; every grammar's constraint text for fixed tool lists x
modes x syntaxes).  A change that is meant to alter behaviour rewrites the snapshot
(``python tests/snapshot/make_snapshot.py``) in the same commit, and the commit message names it."""
import gzip
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "snapshot"))
import make_snapshot  # noqa: E402

RECORDED = json.loads(gzip.decompress(make_snapshot.FILE.read_bytes()))


@pytest.fixture(scope="module")
def current():
    return make_snapshot.snapshot()


@pytest.mark.parametrize("part", ["parse", "constraint"])
def test_behaviour_matches_snapshot(current, part):
    want, got = RECORDED[part], current[part]
    assert sorted(got) == sorted(want), "cases added or removed: rewrite the snapshot in the commit that does it"
    changed = [k for k in want if want[k] != got[k]]
    assert not changed, f"{len(changed)} differ, e.g. {changed[:10]}"

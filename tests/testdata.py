"""Access to the real-world test data fetched by ``python tests/data/fetch.py`` (templates, vocabularies).

Tests call `require(...)`: when the data is absent it skips with a message naming the setup step, unless
``TOOLGRAM_REQUIRE_TESTDATA=1`` (CI sets it), where a missing file is a failure, never a silent pass."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))
import fetch  # noqa: E402

SETUP = "python tests/data/fetch.py"


def root() -> Path:
    return fetch.cache_dir()


def require(*relative: str) -> Path:
    """The cache folder, after checking that ``relative`` paths exist in it (skip or fail otherwise)."""
    base = root()
    missing = [r for r in relative or ("PROVENANCE.json",) if not (base / r).exists()]
    if missing:
        message = f"test data missing ({', '.join(missing)} under {base}): run the setup step `{SETUP}`"
        if os.environ.get("TOOLGRAM_REQUIRE_TESTDATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return base


def templates() -> dict[str, Path]:
    """``{file stem: path}`` of llama.cpp's real chat templates."""
    base = require("templates")
    return {p.stem: p for p in sorted((base / "templates").glob("*.jinja"))}


def provenance() -> dict:
    return json.loads((require() / "PROVENANCE.json").read_text())

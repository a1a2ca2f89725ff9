"""The wheel holds every module: each package directory of the source tree is listed in pyproject.toml.

An editable install finds subpackages on its own, so a package missing from ``[tool.setuptools] packages``
only shows in a regular install (``pip install .``), where ``toolgram serve`` then fails to import
(``toolgram.serve.engines`` was missing once).  This checks the list against the tree, and builds the wheel.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")      # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent


def _config():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_directory_is_listed():
    cfg = _config()
    dirs = {pkg: Path(d) for pkg, d in cfg["package-dir"].items()}
    listed = set(cfg["packages"])
    for pkg, d in dirs.items():
        for init in (ROOT / d).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / d)
            name = ".".join([pkg, *rel.parts]) if rel.parts else pkg
            if "__pycache__" in rel.parts:
                continue
            assert name in listed, f"{init.parent.relative_to(ROOT)} is package {name}, missing from pyproject.toml"


def test_the_wheel_holds_every_module(tmp_path):
    pytest.importorskip("setuptools")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail(r.stdout + r.stderr)
    wheel = next(tmp_path.glob("toolgram-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    cfg = _config()
    for pkg, d in cfg["package-dir"].items():
        for src in (ROOT / d).glob("*.py"):
            inside = "/".join(pkg.split(".")) + "/" + src.name
            assert inside in names, f"{src.relative_to(ROOT)} is not in the wheel as {inside}"

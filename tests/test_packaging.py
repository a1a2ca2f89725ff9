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


def _build_wheel(dest: Path) -> tuple[Path, str]:
    """Build the wheel (no isolation: the dev venv has the build backend); return it and the build's output."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(dest), str(ROOT)],
                       capture_output=True, text=True, timeout=600, env=env, cwd=dest)
    if r.returncode != 0:
        pytest.fail(r.stdout[-3000:] + r.stderr[-3000:])
    return next(dest.glob("toolgram-*.whl")), r.stdout + r.stderr


def test_the_wheel_installs_and_runs(tmp_path):
    """The built wheel (not the editable tree) in a fresh venv: LICENSE and grammars inside, no build warnings,
    and ``toolgram list``, ``toolgram check`` and ``toolgram serve --try`` run from it."""
    import os
    import shutil
    import sysconfig
    wheel, log = _build_wheel(tmp_path)
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    warnings = [line for line in log.splitlines() if "warning" in line.lower() or "deprecat" in line.lower()]
    assert not warnings, "\n".join(warnings)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert "toolgram/grammar_files/hermes.yaml" in names and "toolgram/grammar_files/corpus/hermes.yaml" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies come from this (dev) environment; toolgram itself only from the wheel
    Path(site, "dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    env = dict(os.environ, TOOLGRAM_CACHE=str(tmp_path / "cache"))
    where = subprocess.run([str(py), "-c", "import toolgram; print(toolgram.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=120)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    exe = venv / "bin" / "toolgram"
    for args, expect in ((["list"], "hermes"), (["check"], "passed"), (["serve", "--try"], "get_weather")):
        r = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert r.returncode == 0 and expect in (r.stdout + r.stderr), (args, r.stdout[-2000:], r.stderr[-2000:])

"""Finding grammars: bundled names, files, reasoning grammars, model-name matching, and the compile cache.

Bundled tool-call grammars are ``grammars/<name>.yaml``; reasoning grammars are
``grammars/reasoning/<name>.yaml``.  A name may also be a path to a ``.yaml`` file.  Compiled grammars are
cached in memory (per file contents and reasoning) and on disk (a pickle per content hash, in
``$TOOLGRAM_CACHE`` or ``~/.cache/toolgram``), so a process pays Lark's table construction once per grammar.
The disk key covers everything the compiled form depends on: the grammar files, toolgram's version, the
sources of the compiler, the IR and the registered encodings, and Lark's version — so editing any of them
(a compiler constant, an encoding's first characters) recompiles, with no version to bump by hand.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import pickle
import sys
from importlib import resources
from pathlib import Path

from toolgram.compiler.build import compile_data, read, reasoning_spec
from toolgram.cache import LRU
from toolgram.errors import GrammarError
from toolgram.ir import CompiledGrammar, ReasoningSpec
from toolgram.runtime.encodings import registry as encodings

DEFAULT = object()
_COMPILED = LRU("grammars", 256)          # (path, reasoning, key) -> CompiledGrammar
_SOURCES: dict = {}                       # frozenset of modules -> hash of their source files


def grammars_dir() -> Path:
    return Path(str(resources.files("toolgram.grammar_files")))


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.name.startswith("_"))


def grammar_names() -> list[str]:
    """Names of the bundled tool-call grammars."""
    return _names(grammars_dir())


def reasoning_names() -> list[str]:
    return _names(grammars_dir() / "reasoning")


def _is_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or os.sep in name or "/" in name


def grammar_path(name: str) -> Path:
    if _is_path(name):
        return Path(name)
    path = grammars_dir() / f"{_unalias(name, grammars_dir(), alias_table())}.yaml"
    if not path.exists():
        raise GrammarError(f"no grammar named {name!r}; bundled: {', '.join(grammar_names())} "
                           f"(and their aliases: toolgram list --aliases)")
    return path


def reasoning_path(name: str) -> Path:
    if _is_path(name):
        return Path(name)
    path = grammars_dir() / "reasoning" / f"{_unalias(name, grammars_dir() / 'reasoning', reasoning_alias_table())}.yaml"
    if not path.exists():
        raise GrammarError(f"no reasoning grammar named {name!r}; bundled: {', '.join(reasoning_names())} "
                           f"(and their aliases: toolgram list --aliases)")
    return path


def _source_hash() -> str:
    """A hash of the code a compiled grammar depends on: the compiler package, the IR, the errors, the
    registered encodings' modules; with toolgram's and Lark's versions."""
    modules = frozenset(["toolgram.version", "toolgram.ir", "toolgram.errors", "toolgram.request", "toolgram.cache",
                         *encodings.modules()])
    hit = _SOURCES.get(modules)
    if hit is not None:
        return hit
    import lark

    from toolgram.version import __version__
    files = set(Path(__file__).parent.rglob("*.py"))
    for name in modules:
        mod = sys.modules.get(name)
        if getattr(mod, "__file__", None):
            files.add(Path(mod.__file__))
    h = hashlib.sha256(f"toolgram {__version__} lark {lark.__version__}".encode())
    for f in sorted(files):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    hit = _SOURCES[modules] = h.hexdigest()
    return hit


def _unalias(name: str, folder: Path, table: dict) -> str:
    """A bundled grammar's own name wins; else the grammar that lists ``name`` among its ``aliases``."""
    return name if (folder / f"{name}.yaml").exists() else table.get(name, name)


def _fingerprint(*paths: Path) -> str:
    h = hashlib.sha256(_source_hash().encode())
    for p in paths:
        try:
            h.update(p.read_bytes())
        except OSError as e:
            raise GrammarError(f"cannot read: {e.strerror}", str(p)) from None
        h.update(b"\0")
    return h.hexdigest()


def _cache_dir() -> Path | None:
    root = os.environ.get("TOOLGRAM_CACHE")
    if root == "":
        return None
    return Path(root) if root else Path.home() / ".cache" / "toolgram"


def _disk_get(key: str):
    d = _cache_dir()
    if d is None:
        return None
    try:
        with open(d / f"{key}.pickle", "rb") as f:
            return pickle.load(f)
    except Exception:
        return None


def _disk_put(key: str, value) -> None:
    d = _cache_dir()
    if d is None:
        return
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"{key}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, d / f"{key}.pickle")
    except Exception:
        pass


def load_reasoning(name: str) -> ReasoningSpec:
    path = reasoning_path(name)
    data, lines = read(path)
    if data.get("kind") != "reasoning":
        raise lines.error("not a reasoning grammar (kind: reasoning)", ("kind",))
    return reasoning_spec(data, lines)


def _resolve(path: Path, seen=()) -> tuple[dict, object, list[Path]]:
    """The data of a tool-call grammar file, following ``alias_of``."""
    data, lines = read(path)
    if data.get("kind") == "reasoning":
        raise lines.error("this is a reasoning grammar; load it with reasoning=...", ("kind",))
    files = [path]
    if "alias_of" in data:
        target = data["alias_of"]
        if target in seen or target == data["name"]:
            raise lines.error(f"alias cycle through {target!r}", ("alias_of",))
        try:
            target_path = grammar_path(target)
        except GrammarError as e:                # (no file of its own: the alias line is the problem)
            raise lines.error(f"alias_of: {e.message}", ("alias_of",)) from None
        tdata, tlines, tfiles = _resolve(target_path, seen + (data["name"],))
        merged = dict(tdata)
        merged.update({k: v for k, v in data.items() if k != "alias_of"})
        merged["alias_of"] = target
        merged.setdefault("corpus", None)
        return merged, tlines, files + tfiles
    return data, lines, files


def _compile_cached(path: str, reasoning: str | None, key: str) -> CompiledGrammar:
    hit = _COMPILED.get((path, reasoning, key))
    if hit is not None:
        return hit
    compiled = _disk_get(key)
    if not isinstance(compiled, CompiledGrammar):
        data, lines, _ = _resolve(Path(path))
        rspec = load_reasoning(reasoning) if reasoning else None
        compiled = compile_data(data, lines, rspec, import_dir=str(grammars_dir()))
        compiled.alias_of = data.get("alias_of")
        _disk_put(key, compiled)
    _COMPILED.put((path, reasoning, key), compiled)
    return compiled


def load(name: str, reasoning=DEFAULT) -> CompiledGrammar:
    """Compile (or fetch from cache) a tool-call grammar by bundled name or path."""
    path = grammar_path(name)
    data, _, files = _resolve(path)
    if reasoning is DEFAULT:
        reasoning = data.get("reasoning")
    rfiles = [reasoning_path(reasoning)] if reasoning else []
    key = _fingerprint(*files, *rfiles) + (f"-{reasoning}" if reasoning else "")
    return _compile_cached(str(path.resolve()), reasoning, key)


def _specificity(glob: str) -> int:
    return sum(1 for ch in glob if ch not in "*?[]")


def _matches(glob: str, model: str) -> bool:
    g, m = glob.lower(), model.lower().rstrip("/")
    if fnmatch.fnmatchcase(m, g):
        return True
    base = m.rsplit("/", 1)[-1]
    gbase = g.rsplit("/", 1)[-1]
    return "/" in g and fnmatch.fnmatchcase(base, gbase)


def _best(model: str, entries) -> str | None:
    best: list[tuple[int, str]] = []
    for name, globs in entries:
        score = max((_specificity(g) for g in globs if _matches(g, model)), default=-1)
        if score >= 0:
            best.append((score, name))
    if not best:
        return None
    best.sort(reverse=True)
    return best[0][1]


_TABLES: dict = {}    # folder -> (fingerprint of its files, table)


def _globs_table(folder: Path) -> list[tuple[str, tuple]]:
    """``[(grammar name, model globs)]`` of the grammar files in ``folder``, re-read only when a file changed."""
    files = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in files)
    hit = _TABLES.get(folder)
    if hit is None or hit[0] != stamp:
        table = [(p.stem, tuple(read(p)[0].get("models", ()))) for p in files]
        hit = _TABLES[folder] = (stamp, table)
    return hit[1]


_ALIASES: dict = {}   # folder -> (fingerprint of its files, {alias: grammar name})


def _aliases_of(folder: Path) -> dict:
    files = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in files)
    hit = _ALIASES.get(folder)
    if hit is None or hit[0] != stamp:
        table = {}
        for p in files:
            for alias in read(p)[0].get("aliases", ()):
                table.setdefault(alias, p.stem)
        hit = _ALIASES[folder] = (stamp, table)
    return hit[1]


def alias_table() -> dict:
    """``{peer parser name: bundled tool-call grammar}`` from the grammars' ``aliases`` fields."""
    return _aliases_of(grammars_dir())


def reasoning_alias_table() -> dict:
    """``{peer reasoning-parser name: bundled reasoning grammar}``."""
    return _aliases_of(grammars_dir() / "reasoning")


def model_table() -> list[tuple[str, tuple]]:
    return _globs_table(grammars_dir())


def reasoning_table() -> list[tuple[str, tuple]]:
    return _globs_table(grammars_dir() / "reasoning")


def for_model(model: str) -> str | None:
    """The bundled tool-call grammar whose model globs match ``model`` best (most specific glob)."""
    return _best(model, model_table())


def reasoning_for_model(model: str) -> str | None:
    return _best(model, reasoning_table())


def ambiguities(model: str, entries) -> list[str]:
    """Grammars that tie for ``model`` (a bundled-table bug if more than one)."""
    scores = []
    for name, globs in entries:
        score = max((_specificity(g) for g in globs if _matches(g, model)), default=-1)
        if score >= 0:
            scores.append((score, name))
    if not scores:
        return []
    top = max(s for s, _ in scores)
    return sorted(n for s, n in scores if s == top)

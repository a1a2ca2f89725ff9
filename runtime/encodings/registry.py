"""The encoding registry: every argument encoding a grammar can name with ``block: <name>``.

An encoding is one module that declares, in one `Encoding` value registered here:

* its ``name`` and its ``options`` (a JSON Schema fragment per option; merged into the grammar-file schema,
  so ``toolgram compile`` checks them with file:line errors);
* ``prepare``: the YAML options -> what its scanner reads (done once, at compile time; must pickle);
* ``first``: the characters one of its tokens can start with (the lexer tries it only there);
* ``scanner``: a fresh streaming scanner for one token, ``scanner(out, prepared, value)`` with
  ``feed(buf, pos, eof) -> (pos, MORE | DONE | ERROR)``, reporting to the parser's output;
* its constraint side: ``arguments(ctx, spec, tool)`` (a call's whole arguments, or a whole call when
  ``finds_name``) and/or ``value(ctx, spec, arg)`` (one argument value typed by its schema), returning
  constraint-IR nodes (`toolgram.ir`).  ``ctx`` is the constraint builder's `ConstraintContext`.  Arguments
  with equal schemas share one ``value`` node, unless ``value_names_key`` (the value also writes the key).

An encoding without ``scanner`` types text runs the state lexer reads (``text: true, role: value``).
Modules here import only toolgram.ir, toolgram.errors and each other: never the compiler.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from toolgram.errors import GrammarError


class ConstraintContext(Protocol):
    """What the constraint builder offers an encoding's constraint side."""

    grammar: str                  # the grammar's name (for messages)
    name_pattern: str             # the grammar's policies.name_pattern: names the parser reads back
    json_space: Any               # the node of one whitespace run between JSON tokens (the request's bound)

    def blank(self, most: int | None = None, chars: str = " \n", fewest: int = 0):
        """A node for a run of whitespace outside JSON: at most ``most`` and the request's ``separator``."""

    def stops(self, terminal: str) -> tuple:
        """The markers that end a text terminal, longest first."""

    def schema_value(self, schema, root: dict, *, syntax: str, where: str, prefix: str, quote: str = '"',
                     words=None, bare_keys: bool = False):
        """A node for a value of ``schema`` written as a ``syntax`` ("python" | "relaxed") literal."""

    def shared(self, key, make: Callable[[], Any]):
        """``make()``, made once per request for each hashable ``key`` (the pieces many tools have in common:
        nodes are immutable and may be shared)."""


@dataclass(frozen=True)
class Encoding:
    name: str
    summary: str
    options: dict = field(default_factory=dict)
    prepare: Callable[[dict], Any] = dict
    first: Callable[[Any], "str | None"] = lambda prepared: None
    scanner: "Callable | None" = None
    arguments: "Callable | None" = None
    value: "Callable | None" = None
    finds_name: bool = False
    value_names_key: bool = False     # ``value`` writes the argument's key too: not shared by equal schemas


_REGISTRY: dict[str, Encoding] = {}


def register(encoding: Encoding) -> Encoding:
    """Add an encoding (a second one with a taken name is an error)."""
    old = _REGISTRY.get(encoding.name)
    if old is not None and old is not encoding:
        raise ValueError(f"an encoding named {encoding.name!r} is already registered")
    for opt, schema in encoding.options.items():
        for other in _REGISTRY.values():
            if opt in other.options and other.options[opt] != schema:
                raise ValueError(f"option {opt!r} of encoding {encoding.name!r} differs from encoding "
                                 f"{other.name!r}'s option of the same name")
    _REGISTRY[encoding.name] = encoding
    return encoding


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> Encoding:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise GrammarError(f"unknown encoding {name!r} (registered: {', '.join(names())})") from None


def names(blocks_only: bool = True) -> list[str]:
    """Registered encodings (by default those a ``block:`` can name: they have a scanner)."""
    return sorted(n for n, e in _REGISTRY.items() if e.scanner is not None or not blocks_only)


def option_schemas() -> dict:
    """Every block option of every registered encoding: option name -> JSON Schema of its value."""
    out: dict = {}
    for e in _REGISTRY.values():
        out.update(e.options)
    return out


def modules() -> list[str]:
    """The modules the registered encodings come from (their sources go into the compile-cache key)."""
    out = set()
    for e in _REGISTRY.values():
        for fn in (e.prepare, e.first, e.scanner, e.arguments, e.value):
            mod = getattr(fn, "__module__", None)
            if mod:
                out.add(mod)
    return sorted(out)

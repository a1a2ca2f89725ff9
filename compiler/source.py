"""Reading a grammar file: safe YAML loading that remembers the line of every key and value.

`load_source` returns the plain data (``yaml.safe_load`` semantics: no Python objects can be constructed from
a file) and a `Lines` index that maps a path such as ``("terminals", "CALL", "block")`` to its 1-based line
in the file, so later stages can report ``file:line`` for any field.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from .errors import GrammarError

MAX_FILE_BYTES = 1 << 20


@dataclass
class Lines:
    """Line numbers of the nodes of one YAML document, by path."""

    file: str
    by_path: dict[tuple, int] = field(default_factory=dict)
    block_start: dict[tuple, int] = field(default_factory=dict)  # first content line of block scalars

    def line(self, path: tuple) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            if path in self.by_path:
                return self.by_path[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, message: str, path: tuple = ()) -> GrammarError:
        return GrammarError(message, self.file, self.line(path))


def _index(node, path: tuple, lines: Lines) -> None:
    lines.by_path.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines.by_path[path + (key,)] = key_node.start_mark.line + 1
            _index(value_node, path + (key,), lines)
            lines.by_path[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), lines)
    elif isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        lines.block_start[path] = node.start_mark.line + 2


def load_source(text: str, file: str) -> tuple[object, Lines]:
    """Parse ``text`` (a grammar file's contents) safely; errors name the file and line."""
    lines = Lines(file)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise GrammarError(f"file is larger than {MAX_FILE_BYTES} bytes", file, 1)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise GrammarError(f"invalid YAML: {problem}", file, mark.line + 1 if mark else None) from None
    except RecursionError:
        raise GrammarError("invalid YAML: nested too deeply", file, 1) from None
    if node is not None:
        _index(node, (), lines)
    return data, lines

"""Reading a grammar file: safe YAML loading that remembers the line of every key and value.

`load_source` returns the plain data (``yaml.safe_load`` semantics: no Python objects can be constructed from
a file) and a `Lines` index that maps a path such as ``("terminals", "CALL", "block")`` to its 1-based line
in the file, so later stages can report ``file:line`` for any field.

Hostile files are refused with their line before the data is built: mapping keys that are not strings
(``1:``, ``~:``, ``yes:``), a key given twice in one mapping (YAML keeps the last one silently), an alias that
contains itself, and aliases that expand to more than `MAX_NODES` nodes (the "billion laughs" file, a few
hundred bytes that would take minutes and gigabytes to check).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from toolgram.errors import GrammarError

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 50_000         # YAML nodes of a document, aliases expanded (a bundled grammar has < 1,000)


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
        # (a problem of the whole file, e.g. an empty one, is reported on its first line)
        return GrammarError(message, self.file, self.line(path) or 1)


_STR = "tag:yaml.org,2002:str"
# libyaml's parser when PyYAML has it (a large file parses in a tenth of the time); the data is built by
# PyYAML's SafeConstructor either way: no tag can construct a Python object
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _index(root, lines: Lines) -> None:
    """Record the line of every node by path, and refuse hostile shapes (see the module docstring).

    Iterative (deep documents are refused by the composer, not by Python's recursion limit); a node reached
    again through an alias is walked again, so the node budget bounds the work of every later stage."""
    stack = [(root, (), ())]                      # (node, path, ids of the collections that hold it)
    count = 0
    while stack:
        node, path, holders = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise GrammarError(f"the document has more than {MAX_NODES} YAML nodes (aliases expanded); a grammar "
                               f"file needs far fewer (an alias bomb?)", lines.file, node.start_mark.line + 1)
        lines.by_path.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in holders:
                raise GrammarError("a YAML alias refers to a node that contains it", lines.file,
                                   node.start_mark.line + 1)
            inner = holders + (id(node),)
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                    raise GrammarError(f"mapping keys must be strings, not {shown!r} (quote it)", lines.file, line)
                key = key_node.value
                if key in seen:
                    raise GrammarError(f"key {key!r} is given twice in one mapping (first on line {seen[key]})",
                                       lines.file, line)
                seen[key] = line
                lines.by_path[path + (key,)] = line
                stack.append((value_node, path + (key,), inner))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in reversed(list(enumerate(node.value))):
                stack.append((item, path + (i,), inner))
        elif isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            lines.block_start[path] = node.start_mark.line + 2


def load_source(text: str, file: str) -> tuple[object, Lines]:
    """Parse ``text`` (a grammar file's contents) safely; errors name the file and line."""
    lines = Lines(file)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise GrammarError(f"file is larger than {MAX_FILE_BYTES} bytes", file, 1)
    try:
        node = yaml.compose(text, Loader=_LOADER)
        data = None
        if node is not None:
            _index(node, lines)                  # (before building the data: refuses alias bombs and cycles)
            data = yaml.SafeLoader("").construct_document(node)     # safe_load's constructor, on that node
    except yaml.reader.ReaderError as e:         # a character YAML does not allow (NUL, most controls)
        line = text.count("\n", 0, e.position) + 1 if isinstance(e.position, int) else None
        raise GrammarError(f"invalid YAML: unacceptable character #x{e.character:04x}: {e.reason}", file,
                           line) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise GrammarError(f"invalid YAML: {problem}", file, mark.line + 1 if mark else None) from None
    except RecursionError:
        raise GrammarError("invalid YAML: nested too deeply", file, 1) from None
    return data, lines

"""toolgram's errors, in one place: grammar files that cannot compile, constraints and requests that cannot be
built.

Every problem with a grammar file is a `GrammarError` that names the file and, where it can be traced, the
line of the YAML file the problem comes from; ``str(err)`` reads ``file:line: message`` like a compiler.
"""
from __future__ import annotations


class GrammarError(Exception):
    """A grammar file (or a grammar name) that cannot be loaded or compiled."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        where = self.file or "<grammar>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.message}"


class ConstraintError(ValueError):
    """A constraint that cannot be built for a request: bad tools, a named tool not in ``tools``, ``required``
    without tools, a schema feature the chosen syntax cannot enforce.  The message names the tool and why;
    servers turn it into an HTTP 400."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param = param
        self.code = code


class RequestError(ConstraintError):
    """An invalid OpenAI request field (``tools``, ``tool_choice``, ``parallel_tool_calls``): ``param`` is its
    path, e.g. ``tools[2].function.name``, the ``param`` of the HTTP 400 a server answers with."""

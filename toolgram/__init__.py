"""toolgram: one declarative grammar per model family for tool-call parsing and constrained decoding.

See docs/grammar-format.md for the grammar files and README.md for the command line.
"""
from toolgram.api import Grammar, for_model, grammars, load, reasoning_for_model, reasoning_grammars
from toolgram.compiler.constraint import Constraint
from toolgram.errors import ConstraintError, GrammarError
from toolgram.runtime.parser import StreamingParser
from toolgram.runtime.types import Call as ToolCall, ParseResult, UnknownToolError
from toolgram.version import __version__


__all__ = ["Constraint", "ConstraintError", "Grammar", "GrammarError", "ParseResult", "StreamingParser", "ToolCall", "UnknownToolError", "for_model", "grammars",
           "load", "reasoning_for_model", "reasoning_grammars", "__version__"]

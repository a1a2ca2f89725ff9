"""toolgram: one declarative grammar per model family for tool-call parsing and constrained decoding.

See docs/grammar-format.md for the grammar files and README.md for the command line.
"""
from toolgram.api import Grammar, for_model, grammars, load, reasoning_for_model, reasoning_grammars
from toolgram.compiler.constraint import Constraint
from toolgram.compiler.errors import ConstraintError, GrammarError
from toolgram.runtime.parser import StreamingParser
from toolgram.runtime.types import Call as ToolCall, ParseResult
from toolgram.response_templates import from_response_template

__version__ = "0.1.0"

__all__ = ["Constraint", "ConstraintError", "Grammar", "GrammarError", "ParseResult", "StreamingParser", "ToolCall", "for_model", "from_response_template", "grammars",
           "load", "reasoning_for_model", "reasoning_grammars", "__version__"]

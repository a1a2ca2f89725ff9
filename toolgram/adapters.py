"""Adapters from toolgram constraints to other libraries' types.

outlines routes a context-free grammar (`outlines.types.CFG`) to llguidance, but turns grammar errors into
warnings and an empty generation; `outlines_cfg` checks the grammar with llguidance first and raises.
"""
from __future__ import annotations

from toolgram.compiler.constraint import Constraint
from toolgram.errors import ConstraintError


def check_lark(constraint: Constraint, tokenizer=None) -> None:
    """Raise ConstraintError if llguidance refuses the constraint's Lark grammar."""
    if constraint.syntax != "lark":
        raise ConstraintError(f"a {constraint.syntax} constraint is not a Lark grammar")
    import llguidance
    message = llguidance.LLMatcher.validate_grammar(llguidance.LLMatcher.grammar_from_lark(constraint.text),
                                                    tokenizer)
    if message and not message.startswith("WARNING"):
        raise ConstraintError(f"llguidance refuses the constraint: {message}")


def outlines_cfg(constraint: Constraint, tokenizer=None):
    """An ``outlines.types.CFG`` for a Lark constraint (needs the ``outlines`` extra).  ``tokenizer``: the
    llguidance tokenizer, needed to check grammars that name tokens (``<[id]>``)."""
    check_lark(constraint, tokenizer)
    from outlines.types import CFG
    return CFG(constraint.text)

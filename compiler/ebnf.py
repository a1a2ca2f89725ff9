"""Reading the grammar's own Lark text into constraint-IR nodes (`toolgram.ir`), with Lark's grammar loader.

The constraint for a request is derived from the grammar that parses: its rules are read into immutable nodes
at compile time, rewritten for the request's tools and ``tool_choice``, and written out again as
llguidance/xgrammar Lark, GBNF or structural tags.
"""
from __future__ import annotations


from lark import Token, Tree
from lark.grammar import NonTerminal, Terminal
from lark.load_grammar import GrammarBuilder, _literal_to_pattern

from toolgram.ir import EMPTY, Lit, Node, Ref, Regex, Rep, Tok, alt, seq

# -- reading Lark ----------------------------------------------------------------------------

_OPS = {"?": (0, 1), "*": (0, None), "+": (1, None)}


def _value(tree, strings: dict) -> Node:
    child = tree.children[0]
    if isinstance(child, Terminal):
        return Tok(child.name)
    if isinstance(child, NonTerminal):
        return Ref(child.name)
    if isinstance(child, Tree) and child.data == "literal":
        tok = child.children[0]
        if tok.type == "STRING":
            text = _unquote(tok.value)
            return Lit(text)
        return Regex(_regex_body(tok.value))
    if isinstance(child, Tree) and child.data == "template_usage":
        raise ValueError("rule templates are not supported in constraints")
    raise ValueError(f"unsupported Lark value {child!r}")


def _unquote(s: str) -> str:
    """A Lark string literal's text, read as Lark reads it."""
    pattern = _literal_to_pattern(Token("STRING", s))
    if pattern.flags:
        raise ValueError("case-insensitive string literals are not supported in constraints")
    return pattern.value


def _regex_body(s: str) -> str:
    body = s[1:s.rindex("/")]
    flags = s[s.rindex("/") + 1:]
    body = body.replace("\\/", "/")
    return f"(?{flags}:{body})" if flags else body


def _convert(tree, strings) -> Node:
    data = tree.data
    if data == "expansions":
        return alt(*[_convert(c, strings) for c in tree.children])
    if data == "alias":
        body = _convert(tree.children[0], strings)
        alias = getattr(tree.children[1], "name", str(tree.children[1]))
        if alias in strings.get("__aliases__", ()):      # an alternative named as the call: its own rule
            made = strings.setdefault("__alias_rules__", {})
            name = f"{alias}__alias{len(made)}"
            made[name] = body
            return Ref(name)
        return body
    if data == "expansion":
        return seq(*[_convert(c, strings) for c in tree.children]) if tree.children else EMPTY
    if data == "expr":
        item = _convert(tree.children[0], strings)
        op = tree.children[1]
        if op.type == "OP":
            lo, hi = _OPS[op.value]
        else:                                     # item ~ n  or  item ~ n..m
            lo = int(tree.children[2])
            hi = int(tree.children[3]) if len(tree.children) > 3 else lo
        return Rep(item, lo, hi)
    if data == "maybe":
        return Rep(_convert(tree.children[0], strings), 0, 1)
    if data == "value":
        return _value(tree, strings)
    raise ValueError(f"unsupported Lark construct {data!r}")


def read_rules(lark_text: str, aliases=()) -> dict:
    """Rule name -> Node of a (composed) Lark text.

    Alternatives aliased (``-> name``) with a name in ``aliases`` become rules ``name__aliasN``."""
    gb = GrammarBuilder()
    gb.load_grammar(lark_text)
    rules = {}
    ctx = {"__aliases__": set(aliases)}
    for name, d in gb._definitions.items():
        if d.params:
            raise ValueError(f"rule templates are not supported in constraints ({name})")
        if not d.is_term:
            rules[name] = _convert(d.tree, ctx)
    for name, body in ctx.get("__alias_rules__", {}).items():
        rules[name] = body
    return rules

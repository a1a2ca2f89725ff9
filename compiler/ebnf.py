"""A small EBNF tree for constraint building, read from the grammar's own Lark text.

The constraint for a request is derived from the grammar that parses: its rules are read (with Lark's own
grammar loader) into these immutable nodes, rewritten for the request's tools and ``tool_choice``, and written
out again as llguidance/xgrammar Lark, GBNF or structural tags.

Nodes: `Lit` (a marker or fixed text), `Tok` (a terminal of the grammar, by name), `Ref` (a rule), `Seq`,
`Alt`, `Rep` (``lo..hi`` repetitions), and the constraint-only leaves `Regex`, `Json` (a JSON Schema value)
and `Text` (free text that contains none of some markers, optionally bounded).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from lark import Token, Tree
from lark.grammar import NonTerminal, Terminal
from lark.load_grammar import GrammarBuilder


class Node:
    __slots__ = ()


@dataclass(frozen=True)
class Lit(Node):
    text: str


@dataclass(frozen=True)
class Tok(Node):
    name: str


@dataclass(frozen=True)
class Ref(Node):
    name: str


@dataclass(frozen=True)
class Seq(Node):
    items: tuple


@dataclass(frozen=True)
class Alt(Node):
    options: tuple


@dataclass(frozen=True)
class Rep(Node):
    item: Node
    lo: int
    hi: int | None          # None: unbounded


@dataclass(frozen=True)
class Regex(Node):
    pattern: str            # Python regex syntax, no anchors


@dataclass(frozen=True)
class Json(Node):
    schema: str             # JSON text of the schema (hashable)
    where: str = "tool"     # whose schema it is, for error messages

    @staticmethod
    def of(schema: dict, where: str = "tool") -> "Json":
        return Json(json.dumps(schema, ensure_ascii=False), where)    # key order kept: the property order


@dataclass(frozen=True)
class Text(Node):
    """Free text containing none of ``exclude`` (nor special tokens); ``lo``..``hi`` characters."""
    exclude: tuple = ()
    lo: int = 0
    hi: int | None = None
    pattern: str | None = None   # the text must also match this regex (JSON Schema "pattern")


@dataclass(frozen=True)
class Lazy(Node):
    """Free text up to and including the first ``marker``, as one lazily matched lexeme: a marker spelled
    with ordinary tokens right after free text (the text lexeme could not end in time otherwise)."""
    text: Text
    marker: str


EMPTY = Seq(())
NOTHING = Alt(())


def seq(*items) -> Node:
    flat = []
    for it in items:
        if it is None:
            return None
        if isinstance(it, Seq):
            flat.extend(it.items)
        else:
            flat.append(it)
    if any(isinstance(x, Alt) and not x.options for x in flat):
        return NOTHING
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


def alt(*options) -> Node:
    flat = []
    for o in options:
        if o is None:
            continue
        if isinstance(o, Alt):
            flat.extend(o.options)
        else:
            flat.append(o)
    uniq = list(dict.fromkeys(flat))
    return uniq[0] if len(uniq) == 1 else Alt(tuple(uniq))


def opt(item: Node) -> Node:
    return Rep(item, 0, 1)


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
    flags = ""
    while s and s[-1] != '"':
        flags += s[-1]
        s = s[:-1]
    if "i" in flags:
        raise ValueError("case-insensitive string literals are not supported in constraints")
    return json.loads(s) if "\\" not in s else _lark_string(s[1:-1])


def _lark_string(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


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


def read_rules(lark_text: str, declared: list[str], import_paths=(), aliases=()) -> tuple[dict, dict]:
    """``(rules, terminals)``: rule name -> Node, terminal name -> Node (None for declared ones).

    Alternatives aliased (``-> name``) with a name in ``aliases`` become rules ``name__aliasN``."""
    gb = GrammarBuilder(import_paths=list(import_paths))
    gb.load_grammar(lark_text + ("\n%declare " + " ".join(declared) + "\n" if declared else ""))
    rules, terms = {}, {}
    ctx = {"__aliases__": set(aliases)}
    for name, d in gb._definitions.items():
        if d.params:
            raise ValueError(f"rule templates are not supported in constraints ({name})")
        if d.is_term:
            terms[name] = _convert(d.tree, {}) if d.tree is not None else None
        else:
            rules[name] = _convert(d.tree, ctx)
    for name, body in ctx.get("__alias_rules__", {}).items():
        rules[name] = body
    return rules, terms

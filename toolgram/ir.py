"""The intermediate representation: what the compiler makes of a grammar file, as plain data.

Two parts, both picklable (the compiler caches them on disk) and with no behaviour beyond constructors:

* the **parser IR** the runtime executes: `CompiledGrammar` with its terminals (`TerminalSpec`: kind, role,
  captures, encoding block), the LALR `Tables` Lark computed and one `StateLexer` per parser state (what may
  be lexed there, every regex already compiled), and the composed `ReasoningSpec`;
* the **constraint IR** the constraint builder specialises per request: the grammar's rules as immutable EBNF
  nodes (`Lit`, `Tok`, `Ref`, `Seq`, `Alt`, `Rep`, and the constraint-only leaves `Regex`, `Json`, `Text`,
  `Lazy`), stored on the `CompiledGrammar` as ``rules``.

Who imports it: compiler/ builds it, runtime/ and the encodings read it, serve/ reads it through the public API.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# terminal kinds
LITERAL, PATTERN, TEXT, BLOCK, LOOKAHEAD = "literal", "pattern", "text", "block", "lookahead"
END = "$END"


@dataclass
class TerminalSpec:
    """One terminal of the grammar and what its text means."""

    name: str
    kind: str                         # LITERAL | PATTERN | TEXT | BLOCK | LOOKAHEAD
    role: str = "markup"              # markup | content | reasoning | key | value
    literal: str | None = None        # LITERAL: the marker text (the first spelling)
    spellings: tuple = ()             # LITERAL: every spelling (a terminal like "<|end|>" | "<|call|>")
    pattern: Any = None               # PATTERN: a compiled `regex` pattern
    source: str | None = None         # the Lark definition (literal or regex source), for docs/constraints
    takes_name: bool = False          # the token carries the function name ...
    name_re: Any = None               # ... picked out by this regex's group "name" (None: whole text)
    takes_id: bool = False            # the token carries the model's own call id ...
    id_re: Any = None                 # ... picked out by this regex's group "id"
    strip: str = "none"               # none | newline | whitespace
    unescape: str | None = None       # xml: decode &lt; &gt; &amp; &quot; &apos; &#N; &#xN;
    arg_type: str | None = None       # string | json: type of the argument value that follows
    block: str | None = None          # BLOCK: the encoding name
    options: dict = field(default_factory=dict)   # BLOCK: encoding options
    lookahead: tuple = ()             # LOOKAHEAD: markers it must stand before
    max_length: int | None = None     # longest accepted token (names, keys, ids)
    prepared: Any = None              # BLOCK: what the encoding's `prepare` made of the options (its scanner's)
    # whether the token's whole text is needed at once (names, ids, keys) rather than streamed (the runtime
    # reads it per token); the compiler sets it once the fields above are final
    accumulates: bool = False


@dataclass
class StateLexer:
    """What can be lexed in one parser state, prepared for fast incremental matching."""

    literal_re: Any = None            # `re` alternation of the acceptable markers, longest first
    literal_terms: dict = field(default_factory=dict)   # marker text -> terminal name
    literal_prefixes: frozenset = frozenset()            # proper prefixes of those markers
    literal_max: int = 0
    # call markers (triggers) that one of those markers begins but this state cannot read: where one of them
    # stands, the shorter marker is not read (its text is that call marker, read from content)
    split_markers: tuple = ()
    patterns: tuple = ()              # ((compiled regex, terminal name, longest token, class run, first-character
    #                                     memo the runtime fills, or False), ...)
    lookaheads: tuple = ()            # ((terminal name, (marker, ...)), ...)
    blocks: tuple = ()                # ((terminal name, first characters or None), ...)
    text: str | None = None           # the text terminal that can start here
    stops: tuple = ()                 # the markers that end that text run
    stop_re: Any = None               # `re` alternation of them (for short texts; long ones use str.find)
    stop_prefixes: frozenset = frozenset()
    stop_first: str = ""              # first characters of those markers
    stop_max: int = 0
    safe: bool = False                # content or reasoning can be lexed here: a recovery point


@dataclass
class Rule:
    origin: str
    length: int
    is_call: bool


@dataclass
class Tables:
    """LALR tables.  ``actions[state][terminal]`` is a shift to state ``n >= 0`` or a reduce ``-(i+1)``."""

    actions: list
    gotos: list
    rules: list
    default_reduce: list              # per state: rule index reduced whatever comes next, or None
    lexers: list
    start_states: dict
    end_states: dict
    recovery: "Recovery | None" = None


@dataclass
class Recovery:
    """What the parser needs to read past a call whose text broke (runtime/parser.py, ``_recover``)."""

    call_gotos: list                  # per state: the state after a call that starts here, or -1
    call_ends: tuple                  # markers (2+ characters) that end a call: a broken call's last text
    call_follows: tuple               # literals that may follow a call: a broken call ends before them
    brackets: list                    # per state: the brackets ()[]{} of the marker shifted into it
    block_follows: dict               # block terminal -> the literals that may follow it


@dataclass
class ReasoningSpec:
    name: str
    description: str = ""
    models: tuple = ()
    open: str | None = None
    close: str | None = None
    starts_inside: bool = False
    anywhere: bool = False
    ends_at_call: bool = False
    ends_at: tuple = ()               # with ends_at_call: only these call markers end reasoning (empty: all)
    channel: bool = False
    example: str = ""
    file: str | None = None


@dataclass
class CompiledGrammar:
    name: str
    description: str
    models: tuple
    file: str | None
    lark: str                         # the Lark text compiled (after composition)
    tool_lark: str                    # the tool-call grammar's own Lark text
    terminals: dict                   # name -> TerminalSpec
    tables: Tables
    call_rule: str
    region_rule: str | None
    argument_rule: str | None
    policies: dict
    reasoning: ReasoningSpec | None = None
    whitespace: dict = field(default_factory=dict)   # the file's ``whitespace:`` (constraint defaults over
    #                                                  toolgram.request.Whitespace's)
    default_reasoning: str | None = None
    example: str = ""
    alias_of: str | None = None
    corpus: str | None = None
    triggers: tuple = ()              # markers that start a tool-call region from content
    has_reasoning_start: bool = False  # tables have a "plain" start (reasoning off) besides "start"
    # the constraint IR, made at compile time: rule name -> node (reasoning composed), and for each text
    # terminal the markers that end it, longest first
    rules: dict = field(default_factory=dict, repr=False)
    rules_problem: str | None = None  # why the Lark text has no constraint IR (a construct it cannot express)
    text_stops: dict = field(default_factory=dict, repr=False)
    # hash of everything the compiled form came from (grammar files, compiler sources, versions)
    fingerprint: str = ""


# -- the constraint IR ----------------------------------------------------------------------



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


class _Compound(Node):
    """A node with children.  Its hash is kept once computed: nodes are immutable, and a deep node's hash would
    otherwise walk its whole tree each time (`alt` removes duplicate options by value).  The kept hash is not
    pickled (string hashes differ between processes)."""

    __slots__ = ()

    def __hash__(self) -> int:
        d = self.__dict__
        h = d.get("_hash")
        if h is None:
            h = d["_hash"] = hash((type(self), *[d[f] for f in self.__dataclass_fields__]))
        return h

    def __getstate__(self) -> dict:
        return {f: self.__dict__[f] for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class Seq(_Compound):
    items: tuple
    __hash__ = _Compound.__hash__           # (a class's own __hash__: dataclass keeps it)


@dataclass(frozen=True)
class Alt(_Compound):
    options: tuple
    __hash__ = _Compound.__hash__


@dataclass(frozen=True)
class Rep(_Compound):
    item: Node
    lo: int
    hi: int | None          # None: unbounded
    __hash__ = _Compound.__hash__


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
    flat: list = []
    nothing = False
    for it in items:
        t = type(it)                              # (node classes have no subclasses: exact type tests)
        if t is Seq:
            for x in it.items:
                if type(x) is Alt and not x.options:
                    nothing = True
            flat.extend(it.items)
        elif it is None:
            return None
        else:
            if t is Alt and not it.options:
                nothing = True
            flat.append(it)
    if nothing:
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


@dataclass(frozen=True)
class ArgSpec:
    """One argument of one tool, as the constraint builder hands it to an encoding's ``value`` side."""

    tool: str                 # the tool's name
    key: str | None           # the parameter (None: any key of a free-form object)
    schema: Any               # the parameter's JSON Schema (may be a $ref into ``root``)
    root: dict                # the tool's whole parameters schema (for $ref / $defs)
    types: frozenset          # the JSON types the schema allows (empty: unknown)
    type: str                 # "string" (text kept raw) | "json" (typed) | "any" (free-form: any text)

    @property
    def where(self) -> str:
        """How messages name it."""
        return f"tool {self.tool!r} parameter {self.key!r}"

    @property
    def slug(self) -> str:
        """A prefix for the rules made for it."""
        return f"tg_{_slug(self.tool)}_{_slug(self.key or 'free')}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:24] or "x"

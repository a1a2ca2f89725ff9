"""The compiled form of a grammar: plain data the runtime executes (and the constraint builder reads).

A `CompiledGrammar` holds the grammar's metadata, its terminals with their roles, the LALR tables Lark
computed, and one `StateLexer` per parser state: what may be lexed there (markers, patterns, text runs,
encoding blocks) with every regex already compiled.  It is picklable, so it can be cached on disk.
"""
from __future__ import annotations

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
    # whether the token's whole text is needed at once (names, ids, keys) rather than streamed: set by
    # `settle` once the fields above are final (the runtime reads it per token)
    accumulates: bool = False

    def settle(self) -> "TerminalSpec":
        self.accumulates = bool(self.takes_name or self.takes_id or self.role == "key")
        return self


@dataclass
class StateLexer:
    """What can be lexed in one parser state, prepared for fast incremental matching."""

    literal_re: Any = None            # `re` alternation of the acceptable markers, longest first
    literal_terms: dict = field(default_factory=dict)   # marker text -> terminal name
    literal_prefixes: frozenset = frozenset()            # proper prefixes of those markers
    literal_max: int = 0
    patterns: tuple = ()              # ((compiled regex, terminal name, longest token, class run), ...)
    lookaheads: tuple = ()            # ((terminal name, (marker, ...)), ...)
    blocks: tuple = ()                # ((terminal name, first characters or None), ...)
    text: str | None = None           # the text terminal that can start here
    stops: tuple = ()                 # the markers that end that text run
    stop_re: Any = None               # `re` alternation of them (for short texts; long ones use str.find)
    stop_prefixes: frozenset = frozenset()
    stop_first: str = ""              # first characters of those markers
    stop_max: int = 0
    accepts_end: bool = False
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
    default_reasoning: str | None = None
    example: str = ""
    alias_of: str | None = None
    corpus: str | None = None
    triggers: tuple = ()              # markers that start a tool-call region from content
    has_reasoning_start: bool = False  # tables have a "plain" start (reasoning off) besides "start"

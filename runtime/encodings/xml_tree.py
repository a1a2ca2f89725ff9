"""The ``xml_tree`` encoding: an argument value written as nested tags, read up to and including the argument's
own closing tag.

A value is either text (a scalar, typed by the tool schema as the ``text`` encoding types it) or a run of
child elements ``P<tag>...P</tag>``, where ``P`` is the grammar's ``tag_prefix`` (a namespace token some
families write before every tag): children named by keys make an object, children named ``item_tag`` make an
array, and the same holds at every depth.  Which one a container is comes from the schema (object or array);
where the schema does not say, from its first child's tag.  Leaves are typed by their own sub-schema
(``properties``, ``additionalProperties``, ``items``); without one they stay strings.  An empty value is
``[]`` / ``{}`` where the schema allows only an array / an object, else the empty string.  Closing tag names
are not compared with the opening ones (the nesting decides, as the template writes them).

Scalar text streams; a structured value streams per element (a leaf goes out when its closing tag is read).
"""
from __future__ import annotations

import re

from toolgram.ir import Json, Lit, Regex, Rep, Text, alt, opt, seq
from toolgram.runtime.encodings.registry import Encoding, register
from toolgram.runtime.json_value import DONE, ERROR, MORE, json_dumps
from toolgram.runtime.schema_values import convert, is_string_only, resolve, types_of, with_defs

_START, _SCALAR, _TAGS, _CONTENT, _SKIP, _END = range(6)
_OPEN, _CLOSE, _NEED = 1, 2, 3
_NAME = re.compile(r"[^\s<>/][^\s<>]{0,255}")
_NAME_SOURCE = r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}"      # tag names a constraint writes for free-form keys
_WS = " \t\r\n"
_SCALARS = ("integer", "number", "boolean", "null")


def _prepare(options: dict) -> dict:
    return {"tag_prefix": options.get("tag_prefix", ""), "item_tag": options.get("item_tag", "item")}


def _partial(buf: str, most: int, marker: str) -> int:
    """How many of the last ``most`` characters of ``buf`` (the value's own, not yet read) end it as a proper
    prefix of ``marker`` (held back).  Never more: text before them was read already, and holding it back
    would move the scan backwards (then a marker spelled across it and the next delta would be read twice)."""
    for k in range(min(len(marker) - 1, most), 0, -1):
        if buf.endswith(marker[:k]):
            return k
    return 0


def _pick(schema, root, kind: str):
    """The (resolved) schema of a container of ``kind`` ("{" or "["): a union's member of that kind."""
    s = resolve(schema, root)
    if not isinstance(s, dict):
        return None
    want = "object" if kind == "{" else "array"
    if want in types_of(s, root) and ("anyOf" not in s and "oneOf" not in s):
        return s
    for key in ("anyOf", "oneOf"):
        for member in s.get(key) or ():
            m = resolve(member, root)
            if isinstance(m, dict) and want in types_of(m, root):
                return m
    return s


def _kind(schema, root, child: str, item: str) -> str:
    types = types_of(schema, root) if schema is not None else set()
    if "array" in types and "object" not in types:
        return "["
    if "object" in types and "array" not in types:
        return "{"
    return "[" if child == item else "{"


class TreeValue:
    """Scans one argument value (text or nested elements) and its closing tag."""

    __slots__ = ("out", "open", "close", "item", "state", "frames", "head", "leaf", "elem", "depth")

    def __init__(self, out, prepared: dict):
        self.out = out
        self.open = prepared["tag_prefix"] + "<"
        self.close = prepared["tag_prefix"] + "</"
        self.item = prepared["item_tag"]
        self.state = _START
        self.frames: list[list] = []     # open containers: [kind, children so far, schema, root]
        self.head = ""                   # the JSON before the value of the element being read (", "key": )
        self.leaf: list[str] = []        # its text
        self.elem = None                 # its (schema, root)
        self.depth = 0                   # _SKIP: elements still open in a broken value

    @property
    def done(self) -> bool:
        return self.state == _END

    def closers(self) -> str:
        return "".join("}" if f[0] == "{" else "]" for f in reversed(self.frames))

    def _tag(self, buf: str, pos: int, n: int):
        """The tag at ``pos``: (_OPEN | _CLOSE, end, name), end -1 for a broken tag; (_NEED, 0, None) when
        the text ends inside it; None for text."""
        for kind, marker in ((_CLOSE, self.close), (_OPEN, self.open)):
            if buf.startswith(marker, pos):
                start = pos + len(marker)
                m = _NAME.match(buf, start)
                end = m.end() if m is not None else start
                if end < n and buf[end] == ">" and m is not None:
                    return kind, end + 1, m.group()
                if end >= n and end - start < 256:
                    return _NEED, 0, None          # (at the end of the output: cut off)
                return kind, -1, None          # a broken tag
            if n - pos < len(marker) and marker.startswith(buf[pos:]):
                return _NEED, 0, None
        return None

    def _emit(self, text: str) -> None:
        self.out.value_json(text)

    def _child(self, name: str) -> str:
        """Open a child of the innermost container: the JSON before its value; its schema becomes ``elem``."""
        frame = self.frames[-1]
        kind, count, schema, root = frame
        frame[1] += 1
        head = ", " if count else ""
        sub = None
        if schema is not None:
            if kind == "{":
                props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
                sub = props.get(name)
                if sub is None and isinstance(schema.get("additionalProperties"), dict):
                    sub = schema["additionalProperties"]
            elif isinstance(schema.get("items"), dict):
                sub = schema["items"]
        if kind == "{":
            head += json_dumps(name) + ": "
        self.elem = (sub, root)
        return head

    def _push(self, head: str, schema, root, child: str) -> None:
        kind = _kind(schema, root, child, self.item)
        self.frames.append([kind, 0, _pick(schema, root, kind) if schema is not None else None, root])
        self._emit(head + kind)

    @staticmethod
    def _typed(raw: str, schema, root) -> str:
        types = types_of(schema, root) if schema is not None else set()
        if not raw and "string" not in types and types & {"array", "object"}:
            return "[]" if "array" in types and "object" not in types else "{}"
        if is_string_only(types):
            return json_dumps(raw)
        return convert(raw, types)

    def feed(self, buf: str, pos: int, eof: bool = False) -> tuple[int, int]:
        n = len(buf)
        out = self.out
        while True:
            st = self.state
            if st == _START:
                q = pos
                while q < n and buf[q] in _WS:
                    q += 1
                if q >= n:
                    return (n if eof else pos), MORE
                tag = self._tag(buf, q, n)
                if tag is not None and tag[0] == _NEED:
                    return (n if eof else pos), MORE
                if tag is not None and tag[0] == _OPEN and tag[1] > 0:
                    _, schema, root = out.value_schema()
                    out.value_scanner(self)
                    self._push("", schema, root, tag[2])
                    pos = q
                    self.state = _TAGS
                    continue
                if tag is not None and tag[0] == _CLOSE and q == pos:
                    if tag[1] < 0:
                        return self._broken(buf, pos + len(self.close), n, eof, 1)
                    _, schema, root = out.value_schema()
                    empty = self._typed("", schema, root)
                    if empty in ("[]", "{}"):
                        self._emit(empty)
                    self.state = _END
                    return tag[1], DONE
                self.state = _SCALAR
                continue
            if st == _SCALAR:
                i = buf.find(self.close, pos)
                if i < 0:
                    end = n if eof else n - _partial(buf, n - pos, self.close)
                    if end > pos:
                        out.value_text(buf[pos:end])
                    return end, MORE
                if i > pos:
                    out.value_text(buf[pos:i])
                tag = self._tag(buf, i, n)
                if tag[0] == _NEED:
                    return (n if eof else i), MORE
                if tag[1] < 0:
                    return self._broken(buf, i + len(self.close), n, eof, 1)
                self.state = _END
                return tag[1], DONE
            if st == _TAGS:
                while pos < n and buf[pos] in _WS:
                    pos += 1
                if pos >= n:
                    return pos, MORE
                tag = self._tag(buf, pos, n)
                if tag is not None and tag[0] == _NEED:
                    return (n if eof else pos), MORE
                if tag is None or tag[1] < 0:
                    return self._broken(buf, pos, n, eof, len(self.frames))
                kind, end, name = tag
                if kind == _CLOSE:
                    frame = self.frames.pop()
                    self._emit("}" if frame[0] == "{" else "]")
                    pos = end
                    if not self.frames:
                        self.state = _END
                        return pos, DONE
                    continue
                if self.frames[-1][0] == "[" and name != self.item:
                    return self._broken(buf, pos, n, eof, len(self.frames))
                self.head = self._child(name)
                self.leaf = []
                pos = end
                self.state = _CONTENT
                continue
            if st == _CONTENT:
                i = buf.find(self.open, pos)
                if i < 0:
                    end = n if eof else n - _partial(buf, n - pos, self.open)
                    self.leaf.append(buf[pos:end])
                    return end, MORE
                self.leaf.append(buf[pos:i])
                tag = self._tag(buf, i, n)
                if tag[0] == _NEED:
                    return (n if eof else i), MORE
                if tag[1] < 0:
                    return self._broken(buf, i + len(self.open), n, eof, len(self.frames) + 1)
                head, raw = self.head, "".join(self.leaf)
                schema, root = self.elem
                if tag[0] == _CLOSE:
                    self._emit(head + self._typed(raw, schema, root))
                    pos = tag[1]
                    self.state = _TAGS
                    continue
                if raw.strip(_WS):                   # text, then an element: mixed content
                    return self._broken(buf, i, n, eof, len(self.frames) + 1)
                self._push(head, schema, root, tag[2])
                pos = i
                self.state = _TAGS
                continue
            if st == _SKIP:
                return self._skip(buf, pos, n, eof)
            return pos, DONE

    def _broken(self, buf: str, pos: int, n: int, eof: bool, depth: int) -> tuple[int, int]:
        """The value stopped fitting: read on to its own closing tag (counting the elements still open), so
        that the call goes on after it; what was sent stays, closed by `closers`."""
        self.state = _SKIP
        self.depth = depth
        return self._skip(buf, pos, n, eof)

    def _skip(self, buf: str, pos: int, n: int, eof: bool) -> tuple[int, int]:
        while True:
            i = buf.find(self.open, pos)
            if i < 0:
                return (n if eof else n - _partial(buf, n - pos, self.open)), MORE
            tag = self._tag(buf, i, n)
            if tag[0] == _NEED:
                return (n if eof else i), MORE
            if tag[1] < 0:
                pos = i + len(self.open)
                continue
            pos = tag[1]
            self.depth += 1 if tag[0] == _OPEN else -1
            if self.depth <= 0:
                return pos, ERROR            # (still not done: the builder closes what was sent)


def _scanner(out, prepared: dict, value: bool):
    return TreeValue(out, prepared)


# -- the constraint side ---------------------------------------------------------------------------------
def _string(s: dict, stop: str):
    enum = s.get("enum")
    if enum and all(isinstance(v, str) for v in enum):
        return alt(*[Lit(v) for v in enum if stop not in v])
    return Text(exclude=(stop,), lo=s.get("minLength", 0), hi=s.get("maxLength"), pattern=s.get("pattern"))


_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_REST = _FIRST + "0123456789.-"
_FREE_DEPTH = 3                 # how deep a constraint nests elements of a value whose schema says nothing


def _class(chars: str) -> str:
    return "[" + "".join(re.escape(c) for c in chars) + "]"


def _name_except(word: str) -> str:
    """A regex of the tag names a constraint writes (`_NAME_SOURCE`) other than ``word`` itself."""
    rest = _class(_REST) + "{0,63}"
    parts = [_class(_FIRST.replace(word[0], "")) + rest] if word else []
    for k in range(1, len(word)):
        parts.append(re.escape(word[:k]))                                       # a proper prefix
        parts.append(re.escape(word[:k]) + _class(_REST.replace(word[k], "")) + rest)
    parts.append(re.escape(word) + _class(_REST) + rest)                        # longer
    return "(?:" + "|".join(parts) + ")"


def _free(prep: dict, depth: int):
    """A value whose schema says nothing: text (a string), or elements the scanner reads without a schema —
    all named by the item tag (an array), or a first element named otherwise (an object), leaves strings."""
    opener = prep["tag_prefix"] + "<"
    closer = prep["tag_prefix"] + "</"
    if depth >= _FREE_DEPTH:
        return Text(exclude=(opener,))
    # (text is not empty where elements may start instead: an empty text followed by the closing tag would be
    # one lexeme with the closer's prefix, and it would end before an element's tag could)
    text = alt(seq(), Text(exclude=(opener,), lo=1))
    inner = _free(prep, depth + 1)
    item = prep["item_tag"]
    items = Rep(seq(Lit(f"{opener}{item}>"), inner, Lit(f"{closer}{item}>")), 1, None)
    first = seq(Lit(opener), Regex(_name_except(item)), Lit(">"), inner, Lit(closer), Regex(_NAME_SOURCE), Lit(">"))
    other = seq(Lit(opener), Regex(_NAME_SOURCE), Lit(">"), inner, Lit(closer), Regex(_NAME_SOURCE), Lit(">"))
    return alt(text, items, seq(first, Rep(other, 0, None)))


def _node(prep: dict, schema, root: dict, where: str, depth: int = 0):
    """What a value of ``schema`` may be written as, so that the scanner reads it back as a value of it."""
    opener = prep["tag_prefix"] + "<"
    closer = prep["tag_prefix"] + "</"
    s = resolve(schema, root)
    s = s if isinstance(s, dict) else {}
    types = types_of(s, root)
    if not types or depth > 16:
        return _free(prep, 0)                         # no schema: what the scanner reads without one
    options = []
    if "string" in types:
        string = _string(s, opener)
        if types & {"object", "array"} and isinstance(string, Text) and not string.lo:
            string = alt(seq(), Text(string.exclude, 1, string.hi, string.pattern))     # (see `_free`)
        options.append(string)
    scalars = [t for t in _SCALARS if t in types]
    if scalars:
        if len(types) == 1:
            options.append(Json.of(with_defs(s, root), where))
        else:
            options.extend(Json.of({"type": t}, where) for t in scalars)
    if "object" in types:
        obj = _pick(s, root, "{") or {}
        props = obj.get("properties") if isinstance(obj.get("properties"), dict) else {}
        required = set(obj.get("required") or ())
        if props:
            parts = []
            for key, sub in props.items():
                part = seq(Lit(f"{opener}{key}>"), _node(prep, sub, root, where, depth + 1), Lit(f"{closer}{key}>"))
                parts.append(part if key in required else opt(part))
            options.append(seq(*parts))
        elif obj.get("additionalProperties", True) is not False:
            # free-form: elements named freely (an object whatever its first tag: the schema says object)
            element = seq(Lit(opener), Regex(_NAME_SOURCE), Lit(">"), _free(prep, 1), Lit(closer),
                          Regex(_NAME_SOURCE), Lit(">"))
            options.append(Rep(element, 0, None))
        else:
            options.append(seq())
    if "array" in types:
        arr = _pick(s, root, "[") or {}
        items = arr.get("items") if isinstance(arr.get("items"), dict) else {}
        item = prep["item_tag"]
        element = seq(Lit(f"{opener}{item}>"), _node(prep, items, root, where, depth + 1), Lit(f"{closer}{item}>"))
        options.append(Rep(element, arr.get("minItems", 0), arr.get("maxItems")))
    return alt(*options)


def _value(ctx, spec, arg):
    prep = spec.prepared
    closer = prep["tag_prefix"] + "</"
    if arg.key is None:                               # a free-form tool: any key, a value without a schema
        return seq(_free(prep, 0), Lit(closer), Regex(_NAME_SOURCE), Lit(">"))
    return seq(_node(prep, arg.schema, arg.root, arg.where), Lit(f"{closer}{arg.key}>"))


ENCODING = register(Encoding(
    name="xml_tree",
    summary="an argument value as nested tags (text, or child elements: keys make an object, an item tag an "
            "array), typed by the tool schema, with its closing tag",
    options={"tag_prefix": {"type": "string"},
             "item_tag": {"type": "string", "minLength": 1}},
    prepare=_prepare,
    first=lambda prepared: None,
    scanner=_scanner,
    value=_value,
    value_names_key=True,
))

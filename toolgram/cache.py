"""One bounded LRU for every per-request cache, with hit / miss / size counts that /metrics exports.

Data derived from a grammar lives on its compiled form (`toolgram.ir.CompiledGrammar`) and dies with it; what
depends on a request (constraints per tool set, checked tool schemas, llguidance's verdict on a constraint,
compiled chat templates, compiled matchers) goes through an `LRU` created here, under a name.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

_ALL: dict[str, "LRU"] = {}
_MISSING = object()


class LRU:
    """A bounded mapping that drops the least recently used entry when full."""

    __slots__ = ("name", "maxsize", "hits", "misses", "_data", "_lock")

    def __init__(self, name: str, maxsize: int):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.name = name
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        _ALL[name] = self

    def get(self, key, default=None):
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                self.misses += 1
                return default
            self.hits += 1
            self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key) -> bool:
        return key in self._data

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def stats() -> dict[str, dict]:
    """``{cache name: {"hits", "misses", "size", "maxsize"}}`` of every cache made so far."""
    return {name: {"hits": c.hits, "misses": c.misses, "size": len(c), "maxsize": c.maxsize}
            for name, c in sorted(_ALL.items())}

"""Work stays proportional to the input: a regression guard that counts operations instead of timing them.

For every bundled grammar and a few long workloads (plain content, one very long string argument, a long
whitespace run between two calls), the stream is fed in small deltas at two sizes, N and 2N, while
``sys.settrace`` counts every line of Python executed and ``sys.setprofile`` every call into C (``str.find``,
regex matches...).  A parser that re-scanned its output would do more work per delta as the output grows, so:

* the count at 2N stays within 2.1x the count at N (linear; a re-scan would give ~4x);
* the text the parser keeps between deltas (``_buf``: a held-back marker prefix, an undecided token) stays
  bounded, so no C-level scan inside one call can grow with the output either;
* the same holds for the one-shot parse of the whole text.

The benchmark ``benchmarks/stream_scaling.py`` measures the time; this test only counts, so it is exact and
does not depend on the machine's load.
"""
from __future__ import annotations

import sys

import pytest

import toolgram
from toolgram import corpus

PROSE = ("The quick brown fox jumps over the lazy dog; 3 < 4 and {sets} [lists] are fine, "
         "Résumé naïve café, 東京. ")
DELTA = 3
N = 3000
HELD_MAX = 600       # longest text kept between deltas in these workloads (markers, short tokens)


def _workloads(name: str) -> dict:
    out = {"content": lambda n: (PROSE * (n // len(PROSE) + 1))[:n]}
    tpl = corpus.long_argument_template(name)
    if tpl is not None:
        prefix, suffix, _ = tpl
        out["argument"] = lambda n: prefix + ("abc def\n" * (n // 8 + 1))[:n] + suffix
    case = corpus.load_cases(name)[0]
    out["whitespace"] = lambda n: case.output + " \n" * (n // 2) + case.output
    return out


class _Counter:
    """Counts Python lines executed and C functions called while active."""

    def __init__(self):
        self.events = 0

    def _trace(self, frame, event, arg):
        self.events += 1
        return self._trace

    def _profile(self, frame, event, arg):
        if event == "c_call":
            self.events += 1

    def __enter__(self):
        sys.settrace(self._trace)
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)
        sys.settrace(None)


def _count_streaming(g, text: str, tools) -> tuple[int, int]:
    p = g.stream(tools)
    chunks = [text[i:i + DELTA] for i in range(0, len(text), DELTA)]
    held = 0
    with _Counter() as counter:
        for c in chunks:
            p.feed(c)
            held = max(held, len(p._buf))
        p.close()
    return counter.events, held


def _count_one_shot(g, text: str, tools) -> int:
    with _Counter() as counter:
        g.parse(text, tools)
    return counter.events


@pytest.mark.parametrize("name", toolgram.grammars())
def test_work_is_linear(name):
    g = toolgram.load(name)
    tools = corpus.load_cases(name)[0].tools
    problems = []
    for workload, make in _workloads(name).items():
        small, large = make(N), make(2 * N)
        s_events, s_held = _count_streaming(g, small, tools)
        l_events, l_held = _count_streaming(g, large, tools)
        ratio = l_events / s_events
        if ratio > 2.1:
            problems.append(f"{workload}: streaming work grew x{ratio:.2f} when the output doubled")
        if l_held > HELD_MAX:
            problems.append(f"{workload}: {l_held} characters held between deltas")
        one_ratio = _count_one_shot(g, large, tools) / _count_one_shot(g, small, tools)
        if one_ratio > 2.1:
            problems.append(f"{workload}: one-shot work grew x{one_ratio:.2f} when the output doubled")
    assert not problems, problems


def test_the_guard_sees_a_rescan(monkeypatch):
    """The count does catch quadratic work: a parser that matches its whole output again on every delta."""
    g = toolgram.load("hermes")
    original = type(g.stream(None)).feed

    def rescanning_feed(self, text):
        self._seen = getattr(self, "_seen", "") + text
        for _ in range(len(self._seen) // 256):     # Python-level work proportional to the output so far
            pass
        return original(self, text)

    text = (PROSE * 200)[:N]
    base = _count_streaming(g, text + text, None)[0] / _count_streaming(g, text, None)[0]
    monkeypatch.setattr(type(g.stream(None)), "feed", rescanning_feed)
    grown = _count_streaming(g, text + text, None)[0] / _count_streaming(g, text, None)[0]
    assert base <= 2.1 < grown

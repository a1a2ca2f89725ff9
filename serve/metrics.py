"""Prometheus metrics of one server (its own registry, so several servers can live in one process).

Counters: requests by endpoint (the route's path, for successes and errors alike) and status, prompt and completion tokens, tool calls, parse failures (outputs
with a region that did not fit the grammar), aborted generations (client disconnects, as the engine counts
them), upstream errors.  Histograms: constraint build time, request latency, time to first delta.  Gauges:
hits, misses and size of every toolgram cache (`toolgram.cache`), by cache name.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily

from toolgram import cache

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, engine=None):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("toolgram_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.prompt_tokens = Counter("toolgram_prompt_tokens", "Prompt tokens", registry=r)
        self.completion_tokens = Counter("toolgram_completion_tokens", "Generated tokens", registry=r)
        self.tool_calls = Counter("toolgram_tool_calls", "Tool calls returned", registry=r)
        self.parse_failures = Counter("toolgram_parse_failures",
                                      "Outputs with a region that did not fit the grammar (returned as content)",
                                      registry=r)
        self.stream_errors = Counter("toolgram_stream_errors", "Errors sent as an SSE error event", registry=r)
        self.constraint_seconds = Histogram("toolgram_constraint_build_seconds", "Constraint build time",
                                            buckets=_FAST, registry=r)
        self.latency = Histogram("toolgram_request_latency_seconds", "Request latency (to the last byte)",
                                 ["endpoint"], buckets=_SLOW, registry=r)
        self.first_delta = Histogram("toolgram_time_to_first_delta_seconds", "Time to the first generated text",
                                     buckets=_SLOW, registry=r)
        self.in_flight = Gauge("toolgram_requests_in_flight", "Generation requests being served", registry=r)
        if engine is not None:
            stats = engine.stats
            for key, doc in (("aborted", "Generations aborted because the client went away"),
                             ("requests", "Generations started by the engine"),
                             ("errors", "Engine errors"),
                             ("active", "Generations running now")):
                g = Gauge(f"toolgram_engine_{key}", doc, registry=r)
                g.set_function(lambda k=key: float(stats.get(k, 0)))

        r.register(_CacheCollector())

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CacheCollector:
    """toolgram's caches (`toolgram.cache.stats`), read at each scrape."""

    def collect(self):
        stats = cache.stats()
        for key, doc in (("hits", "Cache hits"), ("misses", "Cache misses"), ("size", "Entries held"),
                         ("maxsize", "Entries the cache may hold")):
            family = GaugeMetricFamily(f"toolgram_cache_{key}", doc, labels=["cache"])
            for name, s in stats.items():
                family.add_metric([name], float(s[key]))
            yield family

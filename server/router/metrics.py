"""The router's Prometheus metrics, in a registry of its own (never the process-global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RouterMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("mlserving_router_requests_total",
                                "Requests answered, by the variant that served them and the status returned",
                                ["variant", "status"], registry=r)
        self.upstream_latency = Histogram("mlserving_router_upstream_latency_seconds",
                                          "Time from sending a request upstream to its full answer",
                                          ["variant"], buckets=LATENCY_BUCKETS, registry=r)
        self.failovers = Counter("mlserving_router_failovers_total",
                                 "Requests moved to another variant after a connection failure",
                                 ["from_variant", "to_variant"], registry=r)
        self.mirror_requests = Counter("mlserving_router_mirror_requests_total",
                                       "Mirror copies sent, by outcome (ok, http_error, failed)",
                                       ["variant", "outcome"], registry=r)
        self.mirror_dropped = Counter("mlserving_router_mirror_dropped_total",
                                      "Mirror copies dropped: queue_full, or unreachable (variant backing off)",
                                      ["variant", "reason"], registry=r)
        self.table_generation = Gauge("mlserving_router_table_generation",
                                      "Generation of the routing table in force (-1 before the first)",
                                      registry=r)
        self.table_generation.set(-1)
        self.tables_applied = Counter("mlserving_router_tables_applied_total",
                                      "Routing tables accepted and put in force", registry=r)
        self.tables_refused = Counter("mlserving_router_tables_refused_total",
                                      "Routing tables refused by validation (the previous one kept serving)",
                                      registry=r)
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    # The forward path calls these per request: label lookups are cached.
    def count_request(self, variant: str, status: int) -> None:
        child = self._request_children.get((variant, status))
        if child is None:
            child = self._request_children[(variant, status)] = self.requests.labels(variant, str(status))
        child.inc()

    def observe_upstream(self, variant: str, seconds: float) -> None:
        child = self._latency_children.get(variant)
        if child is None:
            child = self._latency_children[variant] = self.upstream_latency.labels(variant)
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

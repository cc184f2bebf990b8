"""The router's Prometheus metrics, in a registry of its own (never the process-global one).

Every per-variant series carries the variant's ``version`` next to ``variant``, so two versions
behind one variant name (a rollout) stay apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


def _renard_r10(first: float, last: float) -> tuple[float, ...]:
    """Bucket bounds ~1.26x apart (1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8 per decade)."""
    steps = (1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0)
    bounds = []
    decade = first
    while decade <= last:
        bounds.extend(round(decade * s, 6) for s in steps if decade * s <= last * 1.0000001)
        decade *= 10
    return tuple(bounds)


# 41 buckets from 1 ms to 10 s: adjacent bounds ~1.26x apart, so a p99 estimated by
# histogram_quantile is within a quarter of the true value and a 1.5x ratio between two variants'
# p99s (what a canary analysis judges) is told apart from noise.
LATENCY_BUCKETS = _renard_r10(0.001, 10.0)
NO_VARIANT = "none"  # variant and version of a request that reached no variant (no table, too large)


class RouterMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("mlserving_router_requests_total",
                                "Requests answered, by the variant that served them and the status returned",
                                ["variant", "version", "status"], registry=r)
        self.upstream_latency = Histogram("mlserving_router_upstream_latency_seconds",
                                          "Time from sending a request upstream to its full answer",
                                          ["variant", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.variant_weight = Gauge("mlserving_router_variant_weight",
                                    "Share of primary traffic (percent) the routing table in force gives a "
                                    "variant; 0 for mirrors", ["variant", "version"], registry=r)
        self.shadow_comparisons = Counter("mlserving_router_shadow_comparisons_total",
                                          "Mirrored answers of a rollout's shadow track compared with the primary "
                                          "answer: same, flip (a label differs), value_delta (a value differs by "
                                          "more than 5 %), error (no comparable answer)",
                                          ["variant", "version", "outcome"], registry=r)
        self.failovers = Counter("mlserving_router_failovers_total",
                                 "Requests moved to another variant after a connection failure",
                                 ["from_variant", "to_variant"], registry=r)
        self.mirror_requests = Counter("mlserving_router_mirror_requests_total",
                                       "Mirror copies sent, by outcome (ok, http_error, failed)",
                                       ["variant", "version", "outcome"], registry=r)
        self.mirror_dropped = Counter("mlserving_router_mirror_dropped_total",
                                      "Mirror copies dropped: queue_full, or unreachable (variant backing off)",
                                      ["variant", "version", "reason"], registry=r)
        self.table_generation = Gauge("mlserving_router_table_generation",
                                      "Generation of the routing table in force (-1 before the first)",
                                      registry=r)
        self.table_generation.set(-1)
        self.tables_applied = Counter("mlserving_router_tables_applied_total",
                                      "Routing tables accepted and put in force", registry=r)
        self.tables_refused = Counter("mlserving_router_tables_refused_total",
                                      "Routing tables refused by validation (the previous one kept serving)",
                                      registry=r)
        self.auth_refused = Counter("mlserving_router_auth_refused_total",
                                    "Requests refused by bearer-token auth: missing, invalid, or not_configured",
                                    ["reason"], registry=r)
        self.rate_limited = Counter("mlserving_router_rate_limited_total",
                                    "Requests refused with 429 by the per-pod rate limit", ["key"], registry=r)
        self.certificate_reloads = Counter("mlserving_router_tls_reloads_total",
                                           "Serving certificates loaded, by outcome (ok, failed)", ["outcome"],
                                           registry=r)
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[tuple[str, str], Histogram] = {}

    # The forward path calls these per request: label lookups are cached.
    def count_request(self, variant: str, version: str, status: int) -> None:
        key = (variant, version, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(variant, version, str(status))
        child.inc()

    def observe_upstream(self, variant: str, version: str, seconds: float) -> None:
        key = (variant, version)
        child = self._latency_children.get(key)
        if child is None:
            child = self._latency_children[key] = self.upstream_latency.labels(variant, version)
        child.observe(seconds)

    def table_in_force(self, generation: int, weights: list[tuple[str, str, int]]) -> None:
        """The weights of a newly applied table replace the previous table's (variant, version, weight)."""
        self.table_generation.set(generation)
        self.tables_applied.inc()
        self.variant_weight.clear()
        for variant, version, weight in weights:
            self.variant_weight.labels(variant, version).set(weight)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def render_with_type(self) -> tuple[bytes, str]:
        return self.render(), self.content_type

"""One analysis interval from the routers' own metrics: per-version deltas between two scrapes.

A scrape is ``{pod: text}`` (Prometheus text format of each router pod). Counters are cumulative
per pod; the delta of a pod whose counter went down is its whole count (the pod restarted). The
p99 is read from the summed histogram deltas, linear inside the bucket it falls in.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "mlserving_router_requests_total"
LATENCY = "mlserving_router_upstream_latency_seconds"
SHADOW = "mlserving_router_shadow_comparisons_total"

Series = dict[tuple, float]  # (name, sorted label items) -> value


def parse_metrics(text: str) -> Series:
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (REQUESTS, LATENCY + "_bucket", SHADOW):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def delta(before: dict[str, Series], after: dict[str, Series]) -> Series:
    """Summed per-pod increase from ``before`` to ``after`` (pods missing before count from zero)."""
    total: Series = defaultdict(float)
    for pod, now in after.items():
        then = before.get(pod, {})
        for key, value in now.items():
            prev = then.get(key, 0.0)
            total[key] += value - prev if value >= prev else value
    return dict(total)


@dataclass(frozen=True)
class VersionStats:
    requests: int
    errors: int  # answered 5xx
    p99_ms: float | None  # None: no requests

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ShadowStats:
    compared: int  # every comparison, errors included
    flips: int
    value_deltas: int
    errors: int


def _labels(key: tuple) -> dict:
    return dict(key[1])


def version_stats(d: Series, variant: str, version: str) -> VersionStats:
    requests = errors = 0.0
    buckets: dict[float, float] = defaultdict(float)
    for key, value in d.items():
        labels = _labels(key)
        if labels.get("variant") != variant or labels.get("version") != version:
            continue
        if key[0] == REQUESTS:
            requests += value
            if str(labels.get("status", "")).startswith("5"):
                errors += value
        elif key[0] == LATENCY + "_bucket":
            buckets[float(labels["le"])] += value
    return VersionStats(int(requests), int(errors), quantile_ms(buckets, 0.99))


def quantile_ms(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile in milliseconds from cumulative bucket counts {upper bound: count}."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower * 1000
            inside = count - below
            fraction = (rank - below) / inside if inside else 1.0
            return (lower + (bound - lower) * fraction) * 1000
        lower, below = bound, count
    return lower * 1000


def shadow_stats(d: Series, variant: str, version: str) -> ShadowStats:
    counts: dict[str, float] = defaultdict(float)
    for key, value in d.items():
        labels = _labels(key)
        if key[0] == SHADOW and labels.get("variant") == variant and labels.get("version") == version:
            counts[labels.get("outcome", "")] += value
    return ShadowStats(int(sum(counts.values())), int(counts["flip"]), int(counts["value_delta"]),
                       int(counts["error"]))

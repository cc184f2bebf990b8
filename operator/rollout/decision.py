"""The verdict of one analysis interval against spec.rollout.slo (pure; docs/api.md, "Analysis")."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mlserving.operator.rollout.analysis import ShadowStats, VersionStats
from mlserving.operator.spec import Rollout

PASSED, FAILED, INCONCLUSIVE = "Passed", "Failed", "Inconclusive"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    message: str
    failed_check: str = ""
    value: float = 0.0
    limit: float = 0.0
    measured: dict = field(default_factory=dict)  # status.rollout.lastAnalysis figures


def _measured(new: VersionStats, old: VersionStats, shadow: ShadowStats | None) -> dict:
    out = {"requests": new.requests, "errorRatio": round(new.error_ratio, 6), "oldRequests": old.requests}
    if new.p99_ms is not None:
        out["p99Ms"] = round(new.p99_ms, 3)
    if old.p99_ms is not None:
        out["oldP99Ms"] = round(old.p99_ms, 3)
    if shadow is not None:
        out.update(compared=shadow.compared, flips=shadow.flips, valueDeltas=shadow.value_deltas)
    return out


def judge(rollout: Rollout, new: VersionStats, old: VersionStats, shadow: ShadowStats | None = None) -> Verdict:
    """Shadowing when ``shadow`` is given (the mirrored comparisons), else a live step."""
    return replace(_judge(rollout, new, old, shadow), measured=_measured(new, old, shadow))


def _judge(rollout: Rollout, new: VersionStats, old: VersionStats, shadow: ShadowStats | None) -> Verdict:
    slo = rollout.slo
    if shadow is not None:
        if shadow.compared < max(rollout.min_requests, 1):
            return Verdict(INCONCLUSIVE, f"{shadow.compared} mirrored answers compared, "
                                         f"fewer than minRequests ({rollout.min_requests})")
        checks = [("maxDecisionFlipRatio", shadow.flips / shadow.compared, slo.max_decision_flip_ratio,
                   "of mirrored answers changed their label"),
                  ("maxValueDeltaRatio", shadow.value_deltas / shadow.compared, slo.max_value_delta_ratio,
                   "of mirrored answers moved by more than 5 %"),
                  ("maxErrorRatio", shadow.errors / shadow.compared, slo.max_error_ratio,
                   "of mirrored requests got no comparable answer")]
        for check, value, limit, what in checks:
            if value > limit:
                return Verdict(FAILED, f"{check}: {value:.1%} {what} (limit {limit:.1%})", check, value, limit)
        return Verdict(PASSED, f"{shadow.compared} mirrored answers: {shadow.flips} flips, "
                               f"{shadow.value_deltas} value deltas, {shadow.errors} errors")
    if new.requests < max(rollout.min_requests, 1):
        return Verdict(INCONCLUSIVE, f"{new.requests} new-version requests, fewer than minRequests "
                                     f"({rollout.min_requests})")
    if new.error_ratio > slo.max_error_ratio:
        return Verdict(FAILED, f"maxErrorRatio: {new.error_ratio:.1%} of {new.requests} requests answered 5xx "
                               f"(limit {slo.max_error_ratio:.1%})", "maxErrorRatio", new.error_ratio,
                       slo.max_error_ratio)
    if slo.max_latency_p99_ms is not None and new.p99_ms is not None and new.p99_ms > slo.max_latency_p99_ms:
        return Verdict(FAILED, f"maxLatencyP99Ms: p99 {new.p99_ms:.1f} ms (limit {slo.max_latency_p99_ms:g} ms)",
                       "maxLatencyP99Ms", new.p99_ms, slo.max_latency_p99_ms)
    if (old.requests >= max(rollout.min_requests, 1) and old.p99_ms and new.p99_ms is not None
            and new.p99_ms > slo.max_latency_ratio * old.p99_ms):
        ratio = new.p99_ms / old.p99_ms
        return Verdict(FAILED, f"maxLatencyRatio: p99 {new.p99_ms:.1f} ms is {ratio:.2f}x the old version's "
                               f"{old.p99_ms:.1f} ms (limit {slo.max_latency_ratio:g}x)", "maxLatencyRatio",
                       ratio, slo.max_latency_ratio)
    return Verdict(PASSED, f"{new.requests} requests, {new.error_ratio:.1%} errors, p99 "
                           f"{new.p99_ms or 0:.1f} ms (old {old.p99_ms or 0:.1f} ms)")

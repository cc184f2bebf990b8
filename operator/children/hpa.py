"""autoscaling/v2 HorizontalPodAutoscalers for the variants and the router."""

from __future__ import annotations

import math

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata
from mlserving.operator.spec import Autoscaling, Variant


def variant_bounds(autoscaling: Autoscaling, variant: Variant) -> tuple[int, int]:
    """A live variant scales with its share of traffic; a mirror sees all of it."""
    if variant.mirror:
        return autoscaling.min_replicas, autoscaling.max_replicas
    w = variant.weight
    lo = max(1, math.ceil(autoscaling.min_replicas * w / 100))
    hi = max(lo, math.ceil(autoscaling.max_replicas * w / 100))
    return lo, hi


def _metrics(cpu: int | None, memory: int | None) -> list[dict]:
    out = []
    for resource, target in (("cpu", cpu), ("memory", memory)):
        if target is not None:
            out.append({"type": "Resource", "resource": {
                "name": resource, "target": {"type": "Utilization", "averageUtilization": target}}})
    return out


def hpa(ctx: Context, name: str, variant_label: str, lo: int, hi: int, cpu: int | None, memory: int | None) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(ctx, name, variant_label),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": lo,
            "maxReplicas": hi,
            "metrics": _metrics(cpu, memory),
        },
    }


def variant_hpa(ctx: Context, variant: Variant) -> dict:
    a = ctx.spec.autoscaling
    lo, hi = variant_bounds(a, variant)
    return hpa(ctx, naming.variant_child(ctx.spec.name, variant.name), variant.name, lo, hi,
               a.target_cpu, a.target_memory)

"""autoscaling/v2 HorizontalPodAutoscalers for the variants and the router."""

from __future__ import annotations

import copy
import math

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata
from mlserving.operator.spec import Autoscaling, Variant


def variant_bounds(autoscaling: Autoscaling, variant: Variant) -> tuple[int, int]:
    """A live variant scales with its share of traffic; a mirror sees all of it.

    A small share still gets room to scale: its maximum is at least 2 whenever the model's
    maxReplicas allows 2 (a 10 % variant of a 2-6 model gets 1-2, not 1-1).
    """
    if variant.mirror:
        return autoscaling.min_replicas, autoscaling.max_replicas
    w = variant.weight
    lo = max(1, math.ceil(autoscaling.min_replicas * w / 100))
    hi = max(lo, math.ceil(autoscaling.max_replicas * w / 100), min(2, autoscaling.max_replicas))
    return lo, hi


def _metrics(cpu: int | None, memory: int | None) -> list[dict]:
    out = []
    for resource, target in (("cpu", cpu), ("memory", memory)):
        if target is not None:
            out.append({"type": "Resource", "resource": {
                "name": resource, "target": {"type": "Utilization", "averageUtilization": target}}})
    return out


def hpa(ctx: Context, name: str, variant_label: str, lo: int, hi: int, cpu: int | None, memory: int | None,
        behavior: dict | None = None) -> dict:
    out = {
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
    if behavior:
        out["spec"]["behavior"] = copy.deepcopy(behavior)
    return out


def variant_hpa(ctx: Context, variant: Variant) -> dict:
    a = ctx.spec.autoscaling
    lo, hi = variant_bounds(a, variant)
    return hpa(ctx, naming.variant_child(ctx.spec.name, variant.name), variant.name, lo, hi,
               a.target_cpu, a.target_memory, a.behavior)

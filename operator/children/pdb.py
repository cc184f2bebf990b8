"""PodDisruptionBudgets: a voluntary eviction may take at most one pod of a variant at a time."""

from __future__ import annotations

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata
from mlserving.operator.children.hpa import variant_bounds
from mlserving.operator.spec import Variant


def pdb(ctx: Context, name: str, variant_label: str) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(ctx, name, variant_label),
        "spec": {"maxUnavailable": 1,
                 "selector": {"matchLabels": naming.selector_labels(ctx.spec.name, variant_label)}},
    }


def variant_min_replicas(ctx: Context, variant: Variant) -> int:
    if ctx.spec.autoscaling is not None:
        return variant_bounds(ctx.spec.autoscaling, variant)[0]
    return variant.replicas


def variant_pdb(ctx: Context, variant: Variant) -> dict | None:
    """Only for a variant that runs 2+ replicas: with one, a budget would block every drain."""
    if variant_min_replicas(ctx, variant) < 2:
        return None
    return pdb(ctx, naming.variant_child(ctx.spec.name, variant.name), variant.name)

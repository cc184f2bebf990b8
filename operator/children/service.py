"""Services: one per variant (``<md>-<variant>``) and the stable entry point ``<md>``."""

from __future__ import annotations

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata
from mlserving.operator.spec import Variant


def _service(ctx: Context, name: str, variant_label: str | None, selects: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ctx, name, variant_label),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector_labels(ctx.spec.name, selects),
            "ports": [{"name": "http", "port": naming.SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def variant_service(ctx: Context, variant: Variant) -> dict:
    return _service(ctx, naming.variant_child(ctx.spec.name, variant.name), variant.name, variant.name)


def stable_service(ctx: Context) -> dict:
    """To the router's pods with 2+ variants, else straight to the single variant's pods."""
    target = naming.ROUTER if ctx.spec.has_router else ctx.spec.variants[0].name
    return _service(ctx, naming.stable_service(ctx.spec.name), None, target)

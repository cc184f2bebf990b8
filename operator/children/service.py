"""Services: one per variant (``<md>-<variant>``) and the stable entry point ``<md>``."""

from __future__ import annotations

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata
from mlserving.operator.spec import Variant


def _service(ctx: Context, name: str, variant_label: str | None, selects: str, tls: bool = False) -> dict:
    port = ({"name": "https", "port": naming.TLS_SERVICE_PORT, "targetPort": "https"} if tls
            else {"name": "http", "port": naming.SERVICE_PORT, "targetPort": "http"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ctx, name, variant_label),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector_labels(ctx.spec.name, selects),
            "ports": [{**port, "protocol": "TCP"}],
        },
    }


def track_service(ctx: Context, track) -> dict:
    """The rollout track's Service: selects only the new version's pods (rollout.plan.Track)."""
    svc = _service(ctx, track.name, None, track.variant)
    svc["metadata"]["labels"] = naming.track_labels(ctx.spec.name, track.name, track.variant)
    svc["spec"]["selector"] = naming.track_selector(ctx.spec.name, track.name)
    return svc


def variant_service(ctx: Context, variant: Variant) -> dict:
    return _service(ctx, naming.variant_child(ctx.spec.name, variant.name), variant.name, variant.name)


def stable_service(ctx: Context) -> dict:
    """To the router's pods when there is a router, else straight to the single variant's pods;
    port 443 when the router terminates TLS, else 80."""
    spec = ctx.spec
    target = naming.ROUTER if ctx.router_selected else spec.variants[0].name
    return _service(ctx, naming.stable_service(spec.name), None, target, tls=spec.security.tls_secret is not None)

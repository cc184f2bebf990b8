"""Gateway API HTTPRoute ``<md>``: weighted backendRefs to the variant Services, mirrors as filters."""

from __future__ import annotations

import copy

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata


def http_route(ctx: Context) -> dict:
    spec = ctx.spec
    backends = [{"group": "", "kind": "Service", "name": naming.variant_child(spec.name, v.name),
                 "port": naming.SERVICE_PORT, "weight": v.weight} for v in spec.live_variants]
    mirrors = [{"type": "RequestMirror", "requestMirror": {"backendRef": {
        "group": "", "kind": "Service", "name": naming.variant_child(spec.name, v.name), "port": naming.SERVICE_PORT}}}
        for v in spec.variants if v.mirror]
    rule: dict = {"backendRefs": backends}
    if mirrors:
        rule["filters"] = mirrors
    route_spec: dict = {"parentRefs": copy.deepcopy(spec.gateway.parent_refs), "rules": [rule]}
    if spec.gateway.hostnames:
        route_spec["hostnames"] = list(spec.gateway.hostnames)
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": metadata(ctx, naming.stable_service(spec.name)), "spec": route_spec}

"""NetworkPolicies: who may open which port of a ModelDeployment's pods (ingress only).

``<md>-variants`` selects every pod of the ModelDeployment but the router's (variant pods and a
rollout track's pods): the serving port only from this ModelDeployment's
router pods (from anyone when the stable Service points straight at a single variant; also from
the namespaces of spec.routing.gateway's parentRefs when an HTTPRoute sends traffic to the
variants), the metrics port from spec.security.metricsFrom and the operator's namespace.
``<md>-router`` selects the router pods: the serving port from spec.security.allowedFrom (anyone
when unset), the metrics port as above. Any other port of these pods accepts nothing; egress is
left alone. spec.security.networkPolicy false renders neither.
"""

from __future__ import annotations

import copy

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server


def namespace_peer(namespace: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}


def _rule(port: int, peers: list[dict] | None) -> dict:
    """An ingress rule for one TCP port; ``peers`` None: from anywhere."""
    rule: dict = {"ports": [{"protocol": "TCP", "port": port}]}
    if peers is not None:
        rule["from"] = peers
    return rule


def _metrics_rule(ctx: Context) -> dict:
    peers = [copy.deepcopy(p) for p in ctx.spec.security.metrics_from]
    operator = namespace_peer(ctx.settings.operator_namespace)
    if operator not in peers:
        peers.append(operator)
    return _rule(naming.METRICS_PORT, peers)


def gateway_namespaces(ctx: Context) -> list[str]:
    """Namespaces of the Gateways an HTTPRoute of this ModelDeployment attaches to (none without one)."""
    gateway = ctx.spec.gateway
    if gateway is None or not ctx.settings.include_gateway:
        return []
    return sorted({ref.get("namespace") or ctx.spec.namespace for ref in gateway.parent_refs})


def _policy(ctx: Context, name: str, variant_label: str | None, pod_selector: dict, ingress: list[dict]) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ctx, name, variant_label),
        "spec": {"podSelector": pod_selector, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def _pods_of(ctx: Context) -> dict:
    return {naming.LABEL_MODEL_DEPLOYMENT: ctx.spec.name, naming.LABEL_MANAGED_BY: naming.MANAGED_BY}


def variants_policy(ctx: Context) -> dict:
    spec = ctx.spec
    # A single variant that just gained spec.rollout has its Service on the variant until a router
    # pod is available: the variant is shut off only once the Service selects the router.
    if ctx.router_selected:
        callers = [{"podSelector": {"matchLabels": naming.selector_labels(spec.name, naming.ROUTER)}}]
        callers += [namespace_peer(ns) for ns in gateway_namespaces(ctx)]
        serving = _rule(naming.HTTP_PORT, callers)
    else:
        serving = _rule(naming.HTTP_PORT, None)
    # NotIn also matches pods without the label: a rollout track's pods carry mlserving.io/track
    # instead of mlserving.io/variant, and must be shut off like the variant they replace.
    selector = {"matchLabels": _pods_of(ctx),
                "matchExpressions": [{"key": naming.LABEL_VARIANT, "operator": "NotIn", "values": [naming.ROUTER]}]}
    return _policy(ctx, naming.variants_network_policy(spec.name), None, selector, [serving, _metrics_rule(ctx)])


def router_policy(ctx: Context) -> dict:
    allowed = ctx.spec.security.allowed_from
    serving = _rule(naming.HTTP_PORT, None if allowed is None else [copy.deepcopy(p) for p in allowed])
    selector = {"matchLabels": {**_pods_of(ctx), naming.LABEL_VARIANT: naming.ROUTER}}
    return _policy(ctx, naming.router_child(ctx.spec.name), naming.ROUTER, selector, [serving, _metrics_rule(ctx)])


def network_policies(ctx: Context) -> list[dict]:
    if not ctx.spec.security.network_policy:
        return []
    return [variants_policy(ctx)] + ([router_policy(ctx)] if ctx.has_router else [])

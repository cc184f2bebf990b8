"""Every object a ModelDeployment should have, rendered as full manifests (pure functions).

Interface for the kopf layer:

- ``desired_children(md, settings) -> list[dict]``: every child the ModelDeployment ``md`` (the
  object as read from the API server) should have now, in apply order (ServiceAccount, Role and
  RoleBinding before the router Deployment; the routing ConfigMap before the router; variant
  Services and Deployments before the stable Service). Each is a complete manifest: apiVersion,
  kind, metadata (name, namespace, labels, ownerReferences to ``md`` with controller=true and
  blockOwnerDeletion=true, annotations when any) and spec/data. Apply each with server-side
  apply (field manager ``naming.FIELD_MANAGER``, force=True); anything carrying
  ``naming.children_selector(md_name)`` that is not in the list should be deleted.
  Raises ``mlserving.operator.spec.SpecError(field, message)`` for a spec it cannot render
  (phase Failed, no retry until the spec changes).
- ``child_kinds() -> list[(apiVersion, kind, plural)]``: every kind desired_children can emit,
  to watch and prune by label. The HTTPRoute kind is only served when the Gateway API CRDs exist.
- ``gateway_requested(md) -> bool``: spec.routing.gateway is set (if settings.include_gateway is
  False the HTTPRoute is left out: emit a Warning event and a non-fatal status Problem).
"""

from __future__ import annotations

from mlserving.operator.children import deployment, hpa, httproute, pdb, router, routing, service
from mlserving.operator.children.common import Context
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import parse

HTTPROUTE_KIND = ("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")


def desired_children(md: dict, settings: OperatorSettings) -> list[dict]:
    spec = parse(md)
    ctx = Context(spec=spec, settings=settings)
    out: list[dict] = []
    if spec.has_router:
        out += router.rbac(ctx)
    out.append(routing.configmap(ctx))
    for variant in spec.variants:
        out.append(service.variant_service(ctx, variant))
    for variant in spec.variants:
        out.append(deployment.variant_deployment(ctx, variant))
    for variant in spec.variants:
        if spec.autoscaling is not None:
            out.append(hpa.variant_hpa(ctx, variant))
        budget = pdb.variant_pdb(ctx, variant)
        if budget is not None:
            out.append(budget)
    if spec.has_router:
        out += router.workload(ctx)
    out.append(service.stable_service(ctx))
    if spec.gateway is not None and settings.include_gateway:
        out.append(httproute.http_route(ctx))
    return out


def child_kinds() -> list[tuple[str, str, str]]:
    return [
        ("v1", "ServiceAccount", "serviceaccounts"),
        ("rbac.authorization.k8s.io/v1", "Role", "roles"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
        ("v1", "ConfigMap", "configmaps"),
        ("v1", "Service", "services"),
        ("apps/v1", "Deployment", "deployments"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        HTTPROUTE_KIND,
    ]


def gateway_requested(md: dict) -> bool:
    return bool(((md.get("spec") or {}).get("routing") or {}).get("gateway"))

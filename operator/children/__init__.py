"""Every object a ModelDeployment should have, rendered as full manifests (pure functions).

Interface for the kopf layer:

- ``desired_children(md, settings) -> list[dict]``: every child the ModelDeployment ``md`` (the
  object as read from the API server) should have now (the applier writes them in the order of
  the kinds table, operator/kinds.py). Each is a complete manifest: apiVersion,
  kind, metadata (name, namespace, labels, ownerReferences to ``md`` with controller=true and
  blockOwnerDeletion=true, built only in common.py; annotations when any) and spec/data. Apply
  each with server-side
  apply (field manager ``naming.FIELD_MANAGER``, force=True); anything carrying
  ``naming.children_selector(md_name)`` that is not in the list should be deleted.
  Raises ``mlserving.operator.spec.SpecError(field, message)`` for a spec it cannot render
  (phase Failed, no retry until the spec changes).
- ``child_kinds() -> list[kinds.Kind]``: every kind desired_children can emit, to watch and
  prune by label (from operator/kinds.py). An ``optional`` kind (HTTPRoute) is only served when
  its API is installed.
- ``gateway_requested(md) -> bool``: spec.routing.gateway is set (if settings.include_gateway is
  False the HTTPRoute is left out: emit a Warning event and a non-fatal status Problem).
- ``monitoring_requested(md) -> bool``: the same for spec.monitoring and the prometheus-operator
  kinds (PodMonitor, PrometheusRule), with settings.include_monitoring.
"""

from __future__ import annotations

from mlserving.operator.children import (
    deployment,
    hpa,
    httproute,
    monitoring,
    networkpolicy,
    pdb,
    router,
    routing,
    service,
)
from mlserving.operator.children.common import Context
from mlserving.operator.kinds import child_kinds
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import parse

__all__ = ["child_kinds", "desired_children", "gateway_requested", "monitoring_requested"]


def desired_children(md: dict, settings: OperatorSettings, plan=None) -> list[dict]:
    """``plan``: a rollout.plan.RolloutPlan while spec.rollout is set (None: render from the spec)."""
    spec = parse(md)
    ctx = Context(spec=spec, settings=settings, plan=plan)
    track = plan.track if plan is not None else None
    out: list[dict] = networkpolicy.network_policies(ctx)  # in place before any pod starts
    if ctx.has_router:
        out += router.rbac(ctx)
    out.append(routing.configmap(ctx))
    for variant in spec.variants:
        out.append(service.variant_service(ctx, variant))
    if track is not None:
        out.append(service.track_service(ctx, track))
    for variant in spec.variants:
        out.append(deployment.variant_deployment(ctx, plan.rendered[variant.name] if plan else variant))
    if track is not None:
        out.append(deployment.track_deployment(ctx, track))
    for variant in spec.variants:
        if spec.autoscaling is not None:
            out.append(hpa.variant_hpa(ctx, variant))
        budget = pdb.variant_pdb(ctx, variant)
        if budget is not None:
            out.append(budget)
    if ctx.has_router:
        out += router.workload(ctx)
    out.append(service.stable_service(ctx))
    if spec.gateway is not None and settings.include_gateway:
        out.append(httproute.http_route(ctx))
    if settings.include_monitoring:
        out += monitoring.children(ctx)
    return out


def gateway_requested(md: dict) -> bool:
    return bool(((md.get("spec") or {}).get("routing") or {}).get("gateway"))


def monitoring_requested(md: dict) -> bool:
    """spec.monitoring asks for a PodMonitor or rules (both default to true)."""
    raw = (md.get("spec") or {}).get("monitoring") or {}
    return isinstance(raw, dict) and (raw.get("podMonitor", True) is not False or raw.get("rules", True) is not False)

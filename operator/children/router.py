"""The router of a ModelDeployment with 2+ variants: identity, RBAC, Deployment, HPA and PDB.

Its only API permission is to read its own routing ConfigMap; weights reach it through that
ConfigMap, so the router's pod template never changes with them.
"""

from __future__ import annotations

from mlserving.operator import naming
from mlserving.operator.children import hpa, pdb
from mlserving.operator.children.common import (
    Context,
    container,
    metadata,
    pod_annotations,
    pod_labels,
    pod_spec,
    rolling_deployment,
)

ROUTER_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
ROUTER_CPU_TARGET = 70


def rbac(ctx: Context) -> list[dict]:
    md = ctx.spec.name
    name = naming.router_child(md)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(ctx, name, naming.ROUTER),
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata(ctx, name, naming.ROUTER),
         "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                    "resourceNames": [naming.routing_configmap(md)], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": metadata(ctx, name, naming.ROUTER),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ctx.spec.namespace}]},
    ]


def router_deployment(ctx: Context) -> dict:
    md = ctx.spec.name
    # The router takes its log level as a flag (choices debug/info/warning/error), not from env.
    level = {"CRITICAL": "error"}.get(ctx.settings.log_level, ctx.settings.log_level.lower())
    args = ["router", "--configmap", f"{ctx.spec.namespace}/{naming.routing_configmap(md)}",
            "--port", str(naming.HTTP_PORT), "--log-level", level]
    router = container(ctx, "router", args, [], ROUTER_RESOURCES)
    template = {
        "metadata": {"labels": pod_labels(ctx, naming.ROUTER, None), "annotations": pod_annotations(ctx)},
        # The ServiceAccount does not automount; the pod asks for the token explicitly.
        "spec": pod_spec(ctx, [router], [], service_account=naming.router_child(md)),
    }
    return rolling_deployment(ctx, naming.router_child(md), naming.ROUTER, template, replicas=None)


def workload(ctx: Context) -> list[dict]:
    name = naming.router_child(ctx.spec.name)
    s = ctx.settings
    return [
        router_deployment(ctx),
        hpa.hpa(ctx, name, naming.ROUTER, s.router_min_replicas, s.router_max_replicas, ROUTER_CPU_TARGET, None),
        *([pdb.pdb(ctx, name, naming.ROUTER)] if s.router_min_replicas >= 2 else []),
    ]

"""The router of a ModelDeployment with 2+ variants, or with spec.security auth, rateLimit or tls:
identity, RBAC, Deployment, HPA and PDB.

Its only API permission is to read its own routing ConfigMap; weights reach it through that
ConfigMap, so the router's pod template never changes with them. The token and TLS Secrets are
mounted (``optional``: a missing Secret leaves the directory empty, the pod starts and the router
answers 503 instead of serving unchecked); the kubelet refreshes mounted Secrets within about a
minute, which is how a token added or removed, or a renewed certificate, reaches the router
without a restart and without any Secret permission for the router.
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
AUTH_VOLUME, AUTH_DIR = "auth-tokens", "/etc/mlserving/auth"
TLS_VOLUME, TLS_DIR = "tls", "/etc/mlserving/tls"
SECRET_FILE_MODE = 0o440  # owner root, group the pod's fsGroup (1000): readable by the router only


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


def _secret_volume(volume: str, secret: str, mount_path: str) -> tuple[dict, dict]:
    return ({"name": volume, "secret": {"secretName": secret, "optional": True, "defaultMode": SECRET_FILE_MODE}},
            {"name": volume, "mountPath": mount_path, "readOnly": True})


def security_args(ctx: Context) -> tuple[list[str], list[dict], list[dict]]:
    """(router flags, volumes, volumeMounts) for spec.security's auth, rateLimit and tls."""
    sec = ctx.spec.security
    args: list[str] = []
    volumes: list[dict] = []
    mounts: list[dict] = []
    for secret, volume, directory, flag in ((sec.auth_secret, AUTH_VOLUME, AUTH_DIR, "--auth-tokens-dir"),
                                             (sec.tls_secret, TLS_VOLUME, TLS_DIR, "--tls-dir")):
        if secret is not None:
            vol, mount = _secret_volume(volume, secret, directory)
            volumes.append(vol)
            mounts.append(mount)
            args += [flag, directory]
    if sec.rate_limit is not None:
        rate = sec.rate_limit
        args += ["--rate-limit-rps", format(rate.requests_per_second, "g"),
                 "--rate-limit-burst", str(rate.burst), "--rate-limit-key", rate.key]
    return args, volumes, mounts


def router_deployment(ctx: Context) -> dict:
    md = ctx.spec.name
    # The router takes its log level as a flag (choices debug/info/warning/error), not from env.
    level = {"CRITICAL": "error"}.get(ctx.settings.log_level, ctx.settings.log_level.lower())
    args = ["router", "--configmap", f"{ctx.spec.namespace}/{naming.routing_configmap(md)}",
            "--port", str(naming.HTTP_PORT), "--log-level", level]
    extra_args, volumes, mounts = security_args(ctx)
    router = container(ctx, "router", args + extra_args, [], ROUTER_RESOURCES, mounts,
                       tls=ctx.spec.security.tls_secret is not None)
    template = {
        "metadata": {"labels": pod_labels(ctx, naming.ROUTER, None), "annotations": pod_annotations(ctx)},
        # The ServiceAccount does not automount; the pod asks for the token explicitly.
        "spec": pod_spec(ctx, [router], volumes, service_account=naming.router_child(md)),
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

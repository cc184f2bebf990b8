"""Pieces every child shares: metadata with owner reference, the restricted pod, podOverrides."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from mlserving.operator import naming
from mlserving.operator.children.spread import topology_spread
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import API_VERSION, KIND, ModelDeploymentSpec

TMP_VOLUME = "tmp"
PRESTOP_SLEEP_SECONDS = 5  # lets endpoints drop the pod before it stops accepting connections
TERMINATION_GRACE_SECONDS = 30
PROMETHEUS_ANNOTATIONS = {"prometheus.io/scrape": "true", "prometheus.io/port": str(naming.METRICS_PORT),
                          "prometheus.io/path": "/metrics"}


@dataclass(frozen=True)
class Context:
    spec: ModelDeploymentSpec
    settings: OperatorSettings
    plan: object = None  # rollout.plan.RolloutPlan while spec.rollout is set

    @property
    def image(self) -> str:
        return self.spec.image or self.settings.server_image

    @property
    def has_router(self) -> bool:
        return self.spec.has_router

    @property
    def router_selected(self) -> bool:
        """The stable Service selects the router's pods (else the single variant's)."""
        return self.plan.router_selected if self.plan is not None else self.spec.has_router


def owner_reference(spec: ModelDeploymentSpec) -> dict:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": spec.name, "uid": spec.uid,
            "controller": True, "blockOwnerDeletion": True}


def metadata(ctx: Context, name: str, variant: str | None = None, annotations: dict | None = None) -> dict:
    meta = {"name": name, "namespace": ctx.spec.namespace,
            "labels": naming.common_labels(ctx.spec.name, variant),
            "ownerReferences": [owner_reference(ctx.spec)]}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def pod_labels(ctx: Context, variant: str, version: str | None) -> dict:
    """podOverrides labels first, so the operator's own labels (and selectors) always win."""
    labels = dict(ctx.spec.pod_overrides.labels)
    labels.update(naming.common_labels(ctx.spec.name, variant))
    if version is not None:
        labels[naming.LABEL_MODEL_VERSION] = version
    return labels


def pod_annotations(ctx: Context) -> dict:
    return {**ctx.spec.pod_overrides.annotations, **PROMETHEUS_ANNOTATIONS}


def container_security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "runAsUser": 1000, "runAsGroup": 1000, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def pod_security_context() -> dict:
    return {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"}}


def http_probes(port: str = "http", scheme: str = "HTTP") -> dict:
    """Readiness, liveness and a startup probe that gives the model up to 120 s to load.

    A new pod takes traffic at the first readiness success after the startup probe's: both poll
    every second, so a server ready in under a second is Ready about a second later (an HPA
    scale-up is only as fast as that). Three failed readiness polls take a pod out of its Service.
    """
    def get(path: str) -> dict:
        probe = {"path": path, "port": port}
        if scheme != "HTTP":
            probe["scheme"] = scheme
        return {"httpGet": probe}
    return {
        "startupProbe": {**get("/health/live"), "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 120},
        "readinessProbe": {**get("/health/ready"), "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {**get("/health/live"), "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
    }


def merge_env(ours: list[dict], overrides: list[dict]) -> list[dict]:
    """Our env with podOverrides.env applied: an override replaces the entry of the same name."""
    by_name = {e["name"]: i for i, e in enumerate(ours)}
    out = [dict(e) for e in ours]
    for entry in overrides:
        entry = copy.deepcopy(entry)
        if entry["name"] in by_name:
            out[by_name[entry["name"]]] = entry
        else:
            by_name[entry["name"]] = len(out)
            out.append(entry)
    return out


def pod_spec(ctx: Context, containers: list[dict], volumes: list[dict], *, service_account: str | None,
             init_containers: list[dict] | None = None) -> dict:
    """A restricted pod with podOverrides applied; ``service_account`` None = no API token."""
    o = ctx.spec.pod_overrides
    spec: dict = {}
    if service_account is not None:
        spec["serviceAccountName"] = service_account
        spec["automountServiceAccountToken"] = True
    elif o.service_account_name:
        spec["serviceAccountName"] = o.service_account_name
    else:
        spec["automountServiceAccountToken"] = False
    spec["securityContext"] = pod_security_context()
    spec["terminationGracePeriodSeconds"] = TERMINATION_GRACE_SECONDS
    spec["enableServiceLinks"] = False  # no docker-link env vars for every Service in the namespace
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = containers
    spec["volumes"] = [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "256Mi"}}] + volumes
    if o.node_selector:
        spec["nodeSelector"] = dict(o.node_selector)
    if o.tolerations:
        spec["tolerations"] = copy.deepcopy(o.tolerations)
    if o.affinity:
        spec["affinity"] = copy.deepcopy(o.affinity)
    if o.image_pull_secrets:
        spec["imagePullSecrets"] = copy.deepcopy(o.image_pull_secrets)
    if o.priority_class_name:
        spec["priorityClassName"] = o.priority_class_name
    return spec


def container(ctx: Context, name: str, args: list[str], env: list[dict], resources: dict,
              extra_mounts: list[dict] | None = None, tls: bool = False) -> dict:
    """``tls``: the serving port speaks HTTPS (named "https", probed over HTTPS)."""
    port = "https" if tls else "http"
    return {
        "name": name,
        "image": ctx.image,
        "imagePullPolicy": ctx.settings.image_pull_policy,
        "args": args,
        "ports": [{"name": port, "containerPort": naming.HTTP_PORT, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": naming.METRICS_PORT, "protocol": "TCP"}],
        "env": merge_env(env, ctx.spec.pod_overrides.env),
        "resources": copy.deepcopy(resources),
        **http_probes(port, "HTTPS" if tls else "HTTP"),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}] + (extra_mounts or []),
    }


def rolling_deployment(ctx: Context, name: str, variant: str | None, template: dict, replicas: int | None,
                       selector: dict | None = None, meta: dict | None = None) -> dict:
    """A Deployment whose rollout never drops below the desired ready count, its pods spread
    over nodes and zones as spec.placement.spread says. ``selector``: a rollout track's own."""
    selector = selector or naming.selector_labels(ctx.spec.name, variant)
    constraints = topology_spread(ctx.spec.spread, selector)
    if constraints:
        template = {**template, "spec": {**template["spec"], "topologySpreadConstraints": constraints}}
    spec: dict = {}
    if replicas is not None:  # None: an HPA owns the replica count
        spec["replicas"] = replicas
    spec.update({
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": 600,
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": template,
    })
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta or metadata(ctx, name, variant),
            "spec": spec}

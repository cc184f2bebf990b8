"""Names, labels and selectors of everything the operator creates for a ModelDeployment."""

from __future__ import annotations

FIELD_MANAGER = "mlserving-operator"
MANAGED_BY = "mlserving-operator"
ROUTER = "router"  # reserved variant name: the router's pods carry mlserving.io/variant=router

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_MODEL_DEPLOYMENT = "mlserving.io/model-deployment"
LABEL_VARIANT = "mlserving.io/variant"
LABEL_MODEL_VERSION = "mlserving.io/model-version"  # pod templates only
LABEL_TRACK = "mlserving.io/track"  # a rollout's new version: '<variant>-<hash>', never with LABEL_VARIANT
LABEL_ROLLOUT_OF = "mlserving.io/rollout-of"  # the variant a track belongs to

ROUTING_KEY = "routing.json"
HTTP_PORT = 8000  # server and router container port, named "http" ("https" on a TLS router)
METRICS_PORT = 9090  # server and router /metrics-only port, named "metrics" (the processes' default)
SERVICE_PORT = 80
TLS_SERVICE_PORT = 443  # the stable Service's port when the router terminates TLS


def stable_service(md: str) -> str:
    return md


def variant_child(md: str, variant: str) -> str:
    """Deployment, Service, HPA and PDB of one variant."""
    return f"{md}-{variant}"


def router_child(md: str) -> str:
    """Deployment, ServiceAccount, Role, RoleBinding, HPA and PDB of the router."""
    return f"{md}-{ROUTER}"


def variants_network_policy(md: str) -> str:
    return f"{md}-variants"


def routing_configmap(md: str) -> str:
    return f"{md}-routing"


def service_url(service: str, namespace: str, cluster_domain: str = "cluster.local") -> str:
    return f"http://{service}.{namespace}.svc.{cluster_domain}"


def common_labels(md: str, variant: str | None = None) -> dict[str, str]:
    """Labels of every child; ``variant`` (a variant name or "router") adds mlserving.io/variant."""
    labels = {
        LABEL_NAME: "mlserving",
        LABEL_INSTANCE: md,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_MODEL_DEPLOYMENT: md,
    }
    if variant is not None:
        labels[LABEL_VARIANT] = variant
    return labels


def selector_labels(md: str, variant: str) -> dict[str, str]:
    """Pod selector of a variant's (or the router's) Deployment, Service and PDB.

    Only instance and variant: a Deployment's selector is immutable, so a version in it would
    make every version change fail.
    """
    return {LABEL_INSTANCE: md, LABEL_VARIANT: variant}


def track_labels(md: str, track: str, variant: str) -> dict[str, str]:
    """Labels of a rollout track's children and pods: no mlserving.io/variant, so the variant's own
    Service and Deployment (which select it) never take the new version's pods."""
    return {**common_labels(md), LABEL_TRACK: track_label(md, track), LABEL_ROLLOUT_OF: variant}


def track_label(md: str, track: str) -> str:
    return track[len(md) + 1:]  # '<variant>-<hash>'


def track_selector(md: str, track: str) -> dict[str, str]:
    return {LABEL_INSTANCE: md, LABEL_TRACK: track_label(md, track)}


def children_selector(md: str) -> str:
    """Label selector (string form) matching every child of the ModelDeployment ``md``."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_MODEL_DEPLOYMENT}={md}"


"""Operator settings read once from the environment (the operator Deployment sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version

SERVER_IMAGE_REPOSITORY = "docker.io/mlserving/server"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def project_version() -> str:
    """The installed mlserving distribution's version (the image tag that matches this code)."""
    try:
        return version("mlserving")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.1.0"


def default_server_image() -> str:
    return f"{SERVER_IMAGE_REPOSITORY}:{project_version()}"


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the renderers need besides the ModelDeployment itself.

    server_image: image of the inference server and of the router (``spec.image`` overrides it
        per ModelDeployment). Env ``MLSERVING_SERVER_IMAGE``.
    image_pull_policy: env ``MLSERVING_IMAGE_PULL_POLICY`` (default IfNotPresent).
    log_level: LOG_LEVEL given to server and router pods. Env ``MLSERVING_LOG_LEVEL`` (INFO).
    cluster_domain: used in the URLs of status and of the routing table.
        Env ``MLSERVING_CLUSTER_DOMAIN`` (cluster.local).
    router_min_replicas / router_max_replicas: bounds of the router's HPA.
        Env ``MLSERVING_ROUTER_MIN_REPLICAS`` (2) / ``MLSERVING_ROUTER_MAX_REPLICAS`` (10).
    operator_namespace: the namespace the operator runs in; its pods may always scrape the
        metrics port (rollout analysis reads the routers). Env ``POD_NAMESPACE`` (downward API;
        default mlserving-system).
    include_gateway: whether the Gateway API CRDs exist, so an HTTPRoute can be rendered.
        Not from the environment: the kopf layer probes the API server and passes it in
        (``settings.with_gateway(True)``).
    """

    server_image: str
    image_pull_policy: str = "IfNotPresent"
    log_level: str = "INFO"
    cluster_domain: str = "cluster.local"
    router_min_replicas: int = 2
    router_max_replicas: int = 10
    operator_namespace: str = "mlserving-system"
    include_gateway: bool = False
    include_monitoring: bool = False  # the prometheus-operator CRDs exist (probed like the Gateway API)

    def __post_init__(self) -> None:
        check_image("MLSERVING_SERVER_IMAGE", self.server_image)
        if self.image_pull_policy not in PULL_POLICIES:
            raise ValueError(f"MLSERVING_IMAGE_PULL_POLICY: {self.image_pull_policy!r} must be one of {PULL_POLICIES}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"MLSERVING_LOG_LEVEL: {self.log_level!r} must be one of {LOG_LEVELS}")
        if not 1 <= self.router_min_replicas <= self.router_max_replicas:
            raise ValueError(
                "MLSERVING_ROUTER_MIN_REPLICAS/MLSERVING_ROUTER_MAX_REPLICAS: need 1 <= min <= max, "
                f"got {self.router_min_replicas}/{self.router_max_replicas}")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, include_gateway: bool = False) -> OperatorSettings:
        env = os.environ if env is None else env
        return cls(
            server_image=env.get("MLSERVING_SERVER_IMAGE") or default_server_image(),
            image_pull_policy=env.get("MLSERVING_IMAGE_PULL_POLICY") or "IfNotPresent",
            log_level=(env.get("MLSERVING_LOG_LEVEL") or "INFO").upper(),
            cluster_domain=env.get("MLSERVING_CLUSTER_DOMAIN") or "cluster.local",
            router_min_replicas=_int(env, "MLSERVING_ROUTER_MIN_REPLICAS", 2),
            router_max_replicas=_int(env, "MLSERVING_ROUTER_MAX_REPLICAS", 10),
            operator_namespace=env.get("POD_NAMESPACE") or "mlserving-system",
            include_gateway=include_gateway,
        )

    def with_gateway(self, include_gateway: bool) -> OperatorSettings:
        return replace(self, include_gateway=include_gateway)

    def with_monitoring(self, include_monitoring: bool) -> OperatorSettings:
        return replace(self, include_monitoring=include_monitoring)


def check_image(field: str, image: str) -> None:
    """An image reference must carry a tag or a digest, and the tag must not be ``latest``."""
    last = image.rsplit("/", 1)[-1]
    if "@" in image:
        return
    if ":" not in last or not image or image.endswith(":latest") or any(c.isspace() for c in image):
        raise ValueError(f"{field}: {image!r} must be a tagged (not :latest) or digest image reference")


def _int(env, key: str, default: int) -> int:
    raw = env.get(key)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{key}: {raw!r} is not an integer") from None

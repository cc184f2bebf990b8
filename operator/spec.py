"""A ModelDeployment object (as the API server returns it) parsed into plain dataclasses.

The API server already enforces the CRD's schema and CEL rules; this module applies the same
defaults (an object stored before a default existed, or a test dict, has none) and checks again
what the renderers rely on, plus what the API server cannot check (e.g. the storageUri scheme).
A problem raises ``SpecError(field, message)``: the kopf layer turns it into phase Failed and a
Warning event, and does not retry until the object changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mlserving.operator.settings import check_image

API_GROUP = "mlserving.io"
API_VERSION = "mlserving.io/v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"

MAX_VARIANTS = 8
RESERVED_VARIANT_NAMES = ("router",)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # Service names must be these
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
HTTP_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 header field name

# Mirrored in crds/modeldeployments.mlserving.io.yaml (a test checks they agree).
DEFAULT_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"},
                     "limits": {"cpu": "500m", "memory": "512Mi"}}
DEFAULT_REPLICAS = 1
DEFAULT_MIN_REPLICAS = 1
DEFAULT_TARGET_CPU = 70
STORAGE_SCHEMES = ("file", "pvc", "http", "https")


class SpecError(ValueError):
    """A ModelDeployment the operator cannot render; ``field`` is the JSON path of the culprit."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Storage:
    """Where a variant's model version directory comes from.

    kind "image": a path inside the server image (``file:///models/fraud/1.0.0``).
    kind "pvc": ``pvc://<claim>/<path>``, the claim mounted read-only.
    kind "http": ``http(s)://...`` an archive (tar, tar.gz, ...) an init container downloads.
    """

    kind: str
    uri: str
    path: str = ""  # image: absolute path; pvc: sub path inside the claim ("" = claim root)
    claim: str = ""


@dataclass(frozen=True)
class Variant:
    name: str
    version: str
    weight: int
    mirror: bool
    storage: Storage
    replicas: int
    resources: dict | None  # the variant's own override of spec.resources, as given


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    target_cpu: int | None
    target_memory: int | None


@dataclass(frozen=True)
class Gateway:
    parent_refs: list
    hostnames: list


@dataclass(frozen=True)
class PodOverrides:
    node_selector: dict = field(default_factory=dict)
    tolerations: list = field(default_factory=list)
    affinity: dict | None = None
    image_pull_secrets: list = field(default_factory=list)
    service_account_name: str | None = None
    priority_class_name: str | None = None
    env: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelDeploymentSpec:
    """The parsed object: metadata the children need plus the defaulted spec."""

    name: str
    namespace: str
    uid: str
    generation: int
    model: str
    image: str | None  # None: the operator's MLSERVING_SERVER_IMAGE
    variants: tuple[Variant, ...]
    autoscaling: Autoscaling | None
    resources: dict
    pod_overrides: PodOverrides
    sticky_header: str | None
    gateway: Gateway | None

    @property
    def live_variants(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if not v.mirror)

    @property
    def has_router(self) -> bool:
        """2+ variants (a mirror counts: only the router copies traffic to it)."""
        return len(self.variants) >= 2


def parse(md: dict) -> ModelDeploymentSpec:
    """Parse and default a ModelDeployment dict; raise SpecError naming the field on a problem."""
    meta = _obj(md.get("metadata"), "metadata")
    name = _str(meta.get("name"), "metadata.name")
    if not DNS_1035_LABEL.match(name) or len(name) > 63:
        raise SpecError("metadata.name", f"{name!r} must be a DNS-1035 label (lower case letters, "
                        "digits and '-', starting with a letter), because it names Services")
    if len(name) > 56:
        raise SpecError("metadata.name", f"{name!r} is too long: '<name>-router' must fit in 63 characters")
    namespace = _str(meta.get("namespace"), "metadata.namespace")
    spec = _obj(md.get("spec"), "spec")

    model = _str(spec.get("model"), "spec.model")
    if not DNS_LABEL.match(model) or len(model) > 63:
        raise SpecError("spec.model", f"{model!r} must be a DNS label (lower case letters, digits and '-')")

    image = spec.get("image")
    if image is not None:
        try:
            check_image("spec.image", _str(image, "spec.image"))
        except ValueError as exc:
            raise SpecError("spec.image", str(exc).split(": ", 1)[1]) from None

    raw_variants = spec.get("variants")
    if not isinstance(raw_variants, list) or not 1 <= len(raw_variants) <= MAX_VARIANTS:
        raise SpecError("spec.variants", f"must be a list of 1 to {MAX_VARIANTS} variants")
    variants = tuple(_variant(raw, i, name, model) for i, raw in enumerate(raw_variants))
    seen = set()
    for v in variants:
        if v.name in seen:
            raise SpecError(f"spec.variants[{v.name}].name", "variant names must be unique")
        seen.add(v.name)
    live_total = sum(v.weight for v in variants if not v.mirror)
    if live_total != 100:
        raise SpecError("spec.variants", f"the weights of non-mirror variants must sum to exactly 100, got {live_total}")

    resources = spec.get("resources")
    resources = DEFAULT_RESOURCES if resources is None else _resources(resources, "spec.resources")

    routing = _obj(spec.get("routing") or {}, "spec.routing")
    sticky = routing.get("stickyHeader")
    if sticky is not None:
        sticky = _str(sticky, "spec.routing.stickyHeader")
        if not HTTP_TOKEN.match(sticky) or len(sticky) > 64:
            raise SpecError("spec.routing.stickyHeader", f"{sticky!r} must be an HTTP header name of at most 64 characters")
        sticky = sticky.lower()

    return ModelDeploymentSpec(
        name=name, namespace=namespace, uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0), model=model, image=image, variants=variants,
        autoscaling=_autoscaling(spec.get("autoscaling")), resources=resources,
        pod_overrides=_pod_overrides(spec.get("podOverrides")), sticky_header=sticky,
        gateway=_gateway(routing.get("gateway")))


def parse_storage(uri: str, field_path: str) -> Storage:
    """Classify a storageUri; raise SpecError for a scheme or shape the operator cannot serve."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in STORAGE_SCHEMES:
        raise SpecError(field_path, f"unsupported scheme in {uri!r}: use file:///<path in the image>, "
                        "pvc://<claim>/<path> or http(s)://<archive URL>")
    if scheme == "file":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise SpecError(field_path, f"{uri!r} must be file:///<absolute path inside the server image>")
        return Storage("image", uri, path=parts.path.rstrip("/"))
    if scheme == "pvc":
        claim = parts.netloc
        if not claim or not DNS_LABEL.match(claim.split(".")[0]) or len(claim) > 253:
            raise SpecError(field_path, f"{uri!r} must be pvc://<claim name>/<path inside the claim>")
        sub = parts.path.strip("/")
        if any(seg in ("..", ".") for seg in sub.split("/")):
            raise SpecError(field_path, f"{uri!r}: the path inside the claim must not contain '.' or '..'")
        return Storage("pvc", uri, path=sub, claim=claim)
    if not parts.netloc:
        raise SpecError(field_path, f"{uri!r} has no host")
    return Storage("http", uri)


def _variant(raw, index: int, md_name: str, model: str) -> Variant:
    at = f"spec.variants[{index}]"
    raw = _obj(raw, at)
    name = _str(raw.get("name"), f"{at}.name")
    at = f"spec.variants[{name}]"
    if not DNS_1035_LABEL.match(name) or len(name) > 63:
        raise SpecError(f"{at}.name", f"{name!r} must be a DNS-1035 label")
    if name in RESERVED_VARIANT_NAMES:
        raise SpecError(f"{at}.name", f"{name!r} is reserved for the router")
    if len(md_name) + 1 + len(name) > 63:
        raise SpecError(f"{at}.name", f"'{md_name}-{name}' must fit in 63 characters")
    version = _str(raw.get("version"), f"{at}.version")
    if not version or len(version) > 63 or not LABEL_VALUE.match(version):
        raise SpecError(f"{at}.version", f"{version!r} must be a valid label value (at most 63 "
                        "characters: letters, digits, '-', '_', '.', alphanumeric at both ends)")
    weight = _int(raw.get("weight"), f"{at}.weight", 0, 100)
    mirror = raw.get("mirror", False)
    if not isinstance(mirror, bool):
        raise SpecError(f"{at}.mirror", "must be true or false")
    if mirror and weight != 0:
        raise SpecError(f"{at}.weight", "a mirror variant must have weight 0")
    uri = raw.get("storageUri") or f"file:///models/{model}/{version}"
    storage = parse_storage(_str(uri, f"{at}.storageUri"), f"{at}.storageUri")
    replicas = _int(raw.get("replicas", DEFAULT_REPLICAS), f"{at}.replicas", 0, 1000)
    resources = raw.get("resources")
    if resources is not None:
        resources = _resources(resources, f"{at}.resources")
    return Variant(name, version, weight, mirror, storage, replicas, resources)


def _autoscaling(raw) -> Autoscaling | None:
    if raw is None:
        return None
    raw = _obj(raw, "spec.autoscaling")
    lo = _int(raw.get("minReplicas", DEFAULT_MIN_REPLICAS), "spec.autoscaling.minReplicas", 1, 1000)
    if "maxReplicas" not in raw:
        raise SpecError("spec.autoscaling.maxReplicas", "is required")
    hi = _int(raw.get("maxReplicas"), "spec.autoscaling.maxReplicas", 1, 1000)
    if hi < lo:
        raise SpecError("spec.autoscaling.maxReplicas", f"must be >= minReplicas ({hi} < {lo})")
    cpu = raw.get("targetCPUUtilizationPercentage")
    mem = raw.get("targetMemoryUtilizationPercentage")
    if cpu is None and mem is None:
        cpu = DEFAULT_TARGET_CPU
    cpu = None if cpu is None else _int(cpu, "spec.autoscaling.targetCPUUtilizationPercentage", 1, 100)
    mem = None if mem is None else _int(mem, "spec.autoscaling.targetMemoryUtilizationPercentage", 1, 100)
    return Autoscaling(lo, hi, cpu, mem)


def _resources(raw, at: str) -> dict:
    raw = _obj(raw, at)
    out = {}
    for key in ("requests", "limits"):
        if key in raw:
            section = _obj(raw[key], f"{at}.{key}")
            out[key] = {k: str(v) for k, v in section.items()}
    unknown = set(raw) - {"requests", "limits"}
    if unknown:
        raise SpecError(f"{at}.{min(unknown)}", "only requests and limits are supported")
    return out


def _pod_overrides(raw) -> PodOverrides:
    if raw is None:
        return PodOverrides()
    at = "spec.podOverrides"
    raw = _obj(raw, at)
    env = _list(raw.get("env") or [], f"{at}.env")
    for i, entry in enumerate(env):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise SpecError(f"{at}.env[{i}].name", "every env entry needs a name")
    labels = {str(k): str(v) for k, v in _obj(raw.get("labels") or {}, f"{at}.labels").items()}
    return PodOverrides(
        node_selector=dict(_obj(raw.get("nodeSelector") or {}, f"{at}.nodeSelector")),
        tolerations=list(_list(raw.get("tolerations") or [], f"{at}.tolerations")),
        affinity=raw.get("affinity"),
        image_pull_secrets=list(_list(raw.get("imagePullSecrets") or [], f"{at}.imagePullSecrets")),
        service_account_name=raw.get("serviceAccountName"),
        priority_class_name=raw.get("priorityClassName"),
        env=list(env), labels=labels,
        annotations={str(k): str(v) for k, v in _obj(raw.get("annotations") or {}, f"{at}.annotations").items()})


def _gateway(raw) -> Gateway | None:
    if raw is None:
        return None
    raw = _obj(raw, "spec.routing.gateway")
    refs = _list(raw.get("parentRefs") or [], "spec.routing.gateway.parentRefs")
    if not refs:
        raise SpecError("spec.routing.gateway.parentRefs", "needs at least one parent Gateway")
    return Gateway(parent_refs=list(refs), hostnames=list(_list(raw.get("hostnames") or [],
                                                               "spec.routing.gateway.hostnames")))


def _obj(value, at: str) -> dict:
    if not isinstance(value, dict):
        raise SpecError(at, "must be an object")
    return value


def _list(value, at: str) -> list:
    if not isinstance(value, list):
        raise SpecError(at, "must be a list")
    return value


def _str(value, at: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(at, "is required and must be a non-empty string")
    return value


def _int(value, at: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SpecError(at, f"must be an integer from {lo} to {hi}, got {value!r}")
    return value

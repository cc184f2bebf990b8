"""A ModelDeployment object (as the API server returns it) parsed into plain dataclasses.

The API server already enforces the CRD's schema and CEL rules; this module applies the same
defaults (an object stored before a default existed, or a test dict, has none) and checks again
what the renderers rely on, plus what the API server cannot check (e.g. the storageUri scheme).
A problem raises ``SpecError(field, message)``: the kopf layer turns it into phase Failed and a
Warning event, and does not retry until the object changes.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mlserving.cli.fetch import S3_DEFAULT_REGION
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
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")  # Secret names
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")  # a label key's name part

# Mirrored in crds/modeldeployments.mlserving.io.yaml (a test checks they agree).
DEFAULT_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"},
                     "limits": {"cpu": "500m", "memory": "512Mi"}}
DEFAULT_REPLICAS = 1
DEFAULT_MIN_REPLICAS = 1
DEFAULT_TARGET_CPU = 70
STORAGE_SCHEMES = ("file", "pvc", "http", "https", "s3")
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
S3_ENDPOINT = re.compile(r"^https?://[^/?#\s]+/?$")
# spec.autoscaling.behavior: autoscaling/v2 HPAScalingRules, with the API's own bounds (mirrored
# in the CRD's schema; a test checks they agree).
SCALING_DIRECTIONS = ("scaleUp", "scaleDown")
SCALING_POLICY_TYPES = ("Pods", "Percent")
SCALING_SELECT_POLICIES = ("Max", "Min", "Disabled")
MAX_STABILIZATION_WINDOW_S = 3600
MAX_POLICY_PERIOD_S = 1800
MAX_SCALING_POLICIES = 10
# spec.rollout defaults, mirrored in the CRD (a test checks they agree).
ROLLOUT_DEFAULTS = {"steps": [10, 25, 50], "intervalSeconds": 30, "failureLimit": 2, "minRequests": 50,
                    "progressDeadlineSeconds": 600, "shadowSeconds": 0}
SLO_DEFAULTS = {"maxErrorRatio": 0.01, "maxLatencyRatio": 1.5, "maxDecisionFlipRatio": 0.05,
                "maxValueDeltaRatio": 0.05}
ROLLOUT_NAME_BUDGET = 57  # '<md>-<variant>' with spec.rollout: the track adds '-<5 hex digits>'
# spec.placement.spread, mirrored in the CRD's enum and default (a test checks they agree).
SPREAD_SOFT, SPREAD_HARD, SPREAD_NONE = "soft", "hard", "none"
SPREAD_MODES = (SPREAD_SOFT, SPREAD_HARD, SPREAD_NONE)
DEFAULT_SPREAD = SPREAD_SOFT

# spec.security (mirrored in the CRD; a test checks they agree).
MONITORING_LABEL = "mlserving.io/monitoring"
DEFAULT_METRICS_FROM = ({"namespaceSelector": {"matchLabels": {MONITORING_LABEL: "true"}}},)
RATE_LIMIT_KEYS = ("token", "header", "client")
DEFAULT_RATE_LIMIT_KEY = "client"
MAX_RATE = 1_000_000
MAX_PEERS = 16
PEER_FIELDS = ("namespaceSelector", "podSelector", "ipBlock")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


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
    kind "s3": ``s3://<bucket>/<prefix>`` a version directory (or archive) an init container
        downloads from spec.storage.s3's store.
    """

    kind: str
    uri: str
    path: str = ""  # image: absolute path; pvc: sub path inside the claim ("" = claim root)
    claim: str = ""


@dataclass(frozen=True)
class S3Store:
    """spec.storage.s3: the S3-compatible store of every s3:// storageUri, and its key pair's Secret."""

    endpoint: str
    region: str
    secret_name: str


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
    behavior: dict | None = None  # autoscaling/v2 HorizontalPodAutoscalerBehavior, as validated


@dataclass(frozen=True)
class Gateway:
    parent_refs: list
    hostnames: list


@dataclass(frozen=True)
class Slo:
    max_error_ratio: float
    max_latency_p99_ms: float | None
    max_latency_ratio: float
    max_decision_flip_ratio: float
    max_value_delta_ratio: float


@dataclass(frozen=True)
class Rollout:
    steps: tuple[int, ...]
    interval_seconds: int
    failure_limit: int
    min_requests: int
    progress_deadline_seconds: int
    shadow_seconds: int
    slo: Slo


@dataclass(frozen=True)
class RateLimit:
    requests_per_second: float
    burst: int
    key: str  # one of RATE_LIMIT_KEYS


@dataclass(frozen=True)
class Security:
    """spec.security. Peers are NetworkPolicy peers (dicts), checked and copied."""

    network_policy: bool = True
    allowed_from: tuple[dict, ...] | None = None  # None: the router accepts anyone
    metrics_from: tuple[dict, ...] = DEFAULT_METRICS_FROM
    auth_secret: str | None = None
    rate_limit: RateLimit | None = None
    tls_secret: str | None = None

    @property
    def needs_router(self) -> bool:
        """Tokens, rate limits and TLS are enforced by the router, so it runs for one variant too."""
        return bool(self.auth_secret or self.rate_limit or self.tls_secret)


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
class Monitoring:
    """spec.monitoring; defaults mirrored in the CRD (a test checks they agree)."""

    pod_monitor: bool = True
    rules: bool = True
    latency_p95_ms: float = 100.0
    error_ratio: float = 0.01
    drift_psi: float = 0.25

    @property
    def wanted(self) -> bool:
        return self.pod_monitor or self.rules


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
    rollout: Rollout | None = None
    spread: str = DEFAULT_SPREAD  # one of SPREAD_MODES
    monitoring: Monitoring = field(default_factory=Monitoring)
    security: Security = field(default_factory=Security)
    s3: S3Store | None = None  # spec.storage.s3

    @property
    def live_variants(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if not v.mirror)

    @property
    def router_from_creation(self) -> bool:
        """The stable Service selects the router from the start: 2+ variants (a mirror counts: only
        the router copies traffic to it), or spec.security asks for what only the router enforces
        (tokens, rate limit, TLS)."""
        return len(self.variants) >= 2 or self.security.needs_router

    @property
    def has_router(self) -> bool:
        """router_from_creation, or spec.rollout is set: a rollout shifts a share of requests, and
        only a router in front all along sees every request (clients' kept-alive connections stay
        on the pods they opened them to, so a router put in front when a rollout starts would not)."""
        return self.router_from_creation or self.rollout is not None


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

    s3 = _storage(spec.get("storage"))
    for v in variants:
        if v.storage.kind == "s3" and s3 is None:
            raise SpecError(f"spec.variants[{v.name}].storageUri", "an s3:// storageUri needs spec.storage.s3 "
                            "(endpoint, region, secretName)")

    rollout = _rollout(spec.get("rollout"))
    if rollout is not None:
        for v in variants:
            if len(name) + 1 + len(v.name) > ROLLOUT_NAME_BUDGET:
                raise SpecError(f"spec.variants[{v.name}].name", f"with spec.rollout, '{name}-{v.name}' must "
                                f"fit in {ROLLOUT_NAME_BUDGET} characters (the new version's Deployment "
                                "adds '-<5-digit hash>')")

    return ModelDeploymentSpec(
        name=name, namespace=namespace, uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0), model=model, image=image, variants=variants,
        autoscaling=_autoscaling(spec.get("autoscaling")), resources=resources,
        pod_overrides=_pod_overrides(spec.get("podOverrides")), sticky_header=sticky,
        gateway=_gateway(routing.get("gateway")), spread=_spread(spec.get("placement")),
        monitoring=parse_monitoring(spec), rollout=rollout, security=_security(spec.get("security"), sticky),
        s3=s3)


def _storage(raw) -> S3Store | None:
    raw = _obj(raw or {}, "spec.storage")
    _known(raw, "spec.storage", ("s3",))
    if raw.get("s3") is None:
        return None
    at = "spec.storage.s3"
    s3 = _obj(raw["s3"], at)
    _known(s3, at, ("endpoint", "region", "secretName"))
    endpoint = _str(s3.get("endpoint"), f"{at}.endpoint")
    if len(endpoint) > 512 or not S3_ENDPOINT.match(endpoint):
        raise SpecError(f"{at}.endpoint", f"{endpoint!r} must be http(s)://host[:port] (no path)")
    region = _str(s3.get("region", S3_DEFAULT_REGION), f"{at}.region")
    if not 1 <= len(region) <= 63 or not DNS_LABEL.match(region):
        raise SpecError(f"{at}.region", f"{region!r} must be a region name such as us-east-1")
    secret = _str(s3.get("secretName"), f"{at}.secretName")
    if len(secret) > 253 or not DNS_SUBDOMAIN.match(secret):
        raise SpecError(f"{at}.secretName", f"{secret!r} must be a Secret name (a DNS subdomain)")
    return S3Store(endpoint.rstrip("/"), region, secret)


def parse_monitoring(spec: dict) -> Monitoring:
    raw = _obj(spec.get("monitoring") or {}, "spec.monitoring")
    defaults = Monitoring()

    def flag(key: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            raise SpecError(f"spec.monitoring.{key}", f"must be true or false, got {value!r}")
        return value

    def number(key: str, default: float, lo: float, hi: float, low_open: bool) -> float:
        value = raw.get(key, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value <= hi and (
            value > lo if low_open else value >= lo)
        if not ok:
            raise SpecError(f"spec.monitoring.{key}", f"must be a number {'above' if low_open else 'from'} {lo:g} "
                            f"{'and at most' if low_open else 'to'} {hi:g}, got {value!r}")
        return float(value)

    return Monitoring(pod_monitor=flag("podMonitor", defaults.pod_monitor), rules=flag("rules", defaults.rules),
                      latency_p95_ms=number("latencyP95Ms", defaults.latency_p95_ms, 1, 60000, False),
                      error_ratio=number("errorRatio", defaults.error_ratio, 0, 1, True),
                      drift_psi=number("driftPSI", defaults.drift_psi, 0, 10, True))


def parse_storage(uri: str, field_path: str) -> Storage:
    """Classify a storageUri; raise SpecError for a scheme or shape the operator cannot serve."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in STORAGE_SCHEMES:
        raise SpecError(field_path, f"unsupported scheme in {uri!r}: use file:///<path in the image>, "
                        "pvc://<claim>/<path>, http(s)://<archive URL> or s3://<bucket>/<prefix>")
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
    if scheme == "s3":
        prefix = parts.path.strip("/")
        if not S3_BUCKET.match(parts.netloc) or parts.query or parts.fragment:
            raise SpecError(field_path, f"{uri!r} must be s3://<bucket>/<prefix> (a bucket name of 3 to 63 "
                            "lower case letters, digits, '.' and '-')")
        if any(seg in ("..", ".") for seg in prefix.split("/")):
            raise SpecError(field_path, f"{uri!r}: the prefix must not contain '.' or '..'")
        return Storage("s3", uri, path=prefix)
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
    return Autoscaling(lo, hi, cpu, mem, _behavior(raw.get("behavior")))


def _behavior(raw) -> dict | None:
    """spec.autoscaling.behavior: the HPA's scaleUp/scaleDown rules, checked and passed through."""
    if raw is None:
        return None
    at = "spec.autoscaling.behavior"
    raw = _obj(raw, at)
    unknown = set(raw) - set(SCALING_DIRECTIONS)
    if unknown:
        raise SpecError(f"{at}.{min(unknown)}", f"only {' and '.join(SCALING_DIRECTIONS)} are supported")
    return {d: _scaling_rules(raw[d], f"{at}.{d}") for d in SCALING_DIRECTIONS if raw.get(d) is not None}


def _scaling_rules(raw, at: str) -> dict:
    raw = _obj(raw, at)
    out = {}
    if raw.get("stabilizationWindowSeconds") is not None:
        out["stabilizationWindowSeconds"] = _int(raw["stabilizationWindowSeconds"], f"{at}.stabilizationWindowSeconds",
                                                 0, MAX_STABILIZATION_WINDOW_S)
    if raw.get("selectPolicy") is not None:
        select = raw["selectPolicy"]
        if select not in SCALING_SELECT_POLICIES:
            raise SpecError(f"{at}.selectPolicy", f"must be one of {', '.join(SCALING_SELECT_POLICIES)}, got {select!r}")
        out["selectPolicy"] = select
    if raw.get("policies") is not None:
        policies = _list(raw["policies"], f"{at}.policies")
        if len(policies) > MAX_SCALING_POLICIES:
            raise SpecError(f"{at}.policies", f"at most {MAX_SCALING_POLICIES} policies")
        out["policies"] = [_scaling_policy(p, f"{at}.policies[{i}]") for i, p in enumerate(policies)]
    return out


def _scaling_policy(raw, at: str) -> dict:
    raw = _obj(raw, at)
    kind = raw.get("type")
    if kind not in SCALING_POLICY_TYPES:
        raise SpecError(f"{at}.type", f"must be one of {', '.join(SCALING_POLICY_TYPES)}, got {kind!r}")
    return {"type": kind, "value": _int(raw.get("value"), f"{at}.value", 1, 2**31 - 1),
            "periodSeconds": _int(raw.get("periodSeconds"), f"{at}.periodSeconds", 1, MAX_POLICY_PERIOD_S)}


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


def _rollout(raw) -> Rollout | None:
    if raw is None:
        return None
    at = "spec.rollout"
    raw = {**ROLLOUT_DEFAULTS, **_obj(raw, at)}
    steps = _list(raw["steps"], f"{at}.steps")
    if not 1 <= len(steps) <= 10:
        raise SpecError(f"{at}.steps", f"must list 1 to 10 steps, got {len(steps)}")
    for i, step in enumerate(steps):
        _int(step, f"{at}.steps[{i}]", 1, 99)
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise SpecError(f"{at}.steps", f"must be strictly increasing, got {steps}")
    slo = {**SLO_DEFAULTS, **_obj(raw.get("slo") or {}, f"{at}.slo")}
    p99 = slo.get("maxLatencyP99Ms")
    if p99 is not None and not (_is_number(p99) and p99 > 0):
        raise SpecError(f"{at}.slo.maxLatencyP99Ms", f"must be a number above 0, got {p99!r}")
    return Rollout(
        steps=tuple(steps),
        interval_seconds=_int(raw["intervalSeconds"], f"{at}.intervalSeconds", 0, 86400),
        failure_limit=_int(raw["failureLimit"], f"{at}.failureLimit", 1, 100),
        min_requests=_int(raw["minRequests"], f"{at}.minRequests", 0, 10**9),
        progress_deadline_seconds=_int(raw["progressDeadlineSeconds"], f"{at}.progressDeadlineSeconds", 1, 86400),
        shadow_seconds=_int(raw["shadowSeconds"], f"{at}.shadowSeconds", 0, 86400),
        slo=Slo(max_error_ratio=_ratio(slo["maxErrorRatio"], f"{at}.slo.maxErrorRatio", 0, 1),
                max_latency_p99_ms=float(p99) if p99 is not None else None,
                max_latency_ratio=_ratio(slo["maxLatencyRatio"], f"{at}.slo.maxLatencyRatio", 1, 1000),
                max_decision_flip_ratio=_ratio(slo["maxDecisionFlipRatio"], f"{at}.slo.maxDecisionFlipRatio", 0, 1),
                max_value_delta_ratio=_ratio(slo["maxValueDeltaRatio"], f"{at}.slo.maxValueDeltaRatio", 0, 1)))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ratio(value, at: str, lo: float, hi: float) -> float:
    if not _is_number(value) or not lo <= value <= hi:
        raise SpecError(at, f"must be a number from {lo:g} to {hi:g}, got {value!r}")
    return float(value)


def _spread(raw) -> str:
    placement = _obj(raw or {}, "spec.placement")
    spread = placement.get("spread", DEFAULT_SPREAD)
    if spread not in SPREAD_MODES:
        raise SpecError("spec.placement.spread", f"must be one of {', '.join(SPREAD_MODES)}, got {spread!r}")
    return spread


def _gateway(raw) -> Gateway | None:
    if raw is None:
        return None
    raw = _obj(raw, "spec.routing.gateway")
    refs = _list(raw.get("parentRefs") or [], "spec.routing.gateway.parentRefs")
    if not refs:
        raise SpecError("spec.routing.gateway.parentRefs", "needs at least one parent Gateway")
    return Gateway(parent_refs=list(refs), hostnames=list(_list(raw.get("hostnames") or [],
                                                               "spec.routing.gateway.hostnames")))


def _security(raw, sticky_header: str | None) -> Security:
    at = "spec.security"
    raw = _obj(raw if raw is not None else {}, at)
    _known(raw, at, ("networkPolicy", "allowedFrom", "metricsFrom", "auth", "rateLimit", "tls"))
    network_policy = raw.get("networkPolicy", True)
    if not isinstance(network_policy, bool):
        raise SpecError(f"{at}.networkPolicy", "must be true or false")
    allowed = raw.get("allowedFrom")
    if allowed is not None:
        allowed = _peers(allowed, f"{at}.allowedFrom")
        if not allowed:
            raise SpecError(f"{at}.allowedFrom", "must list at least one peer (leave it out to allow anyone)")
    metrics = raw.get("metricsFrom")
    metrics = DEFAULT_METRICS_FROM if metrics is None else _peers(metrics, f"{at}.metricsFrom")
    auth = _secret_ref(raw.get("auth"), f"{at}.auth")
    tls = _secret_ref(raw.get("tls"), f"{at}.tls")
    rate = _rate_limit(raw.get("rateLimit"), f"{at}.rateLimit")
    if rate is not None and rate.key == "token" and auth is None:
        raise SpecError(f"{at}.rateLimit.key", "'token' needs spec.security.auth")
    if rate is not None and rate.key == "header" and sticky_header is None:
        raise SpecError(f"{at}.rateLimit.key", "'header' needs spec.routing.stickyHeader "
                        "(the header whose value identifies a client)")
    return Security(network_policy=network_policy, allowed_from=allowed, metrics_from=metrics,
                    auth_secret=auth, rate_limit=rate, tls_secret=tls)


def _secret_ref(raw, at: str) -> str | None:
    if raw is None:
        return None
    raw = _obj(raw, at)
    _known(raw, at, ("secretName",))
    name = _str(raw.get("secretName"), f"{at}.secretName")
    if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        raise SpecError(f"{at}.secretName", f"{name!r} must be a Secret name (a DNS subdomain)")
    return name


def _rate_limit(raw, at: str) -> RateLimit | None:
    if raw is None:
        return None
    raw = _obj(raw, at)
    _known(raw, at, ("requestsPerSecond", "burst", "key"))
    rps = raw.get("requestsPerSecond")
    if isinstance(rps, bool) or not isinstance(rps, int | float) or not 0 < rps <= MAX_RATE:
        raise SpecError(f"{at}.requestsPerSecond", f"must be a number above 0 and at most {MAX_RATE}, got {rps!r}")
    burst = raw.get("burst")
    burst = max(1, math.ceil(rps)) if burst is None else _int(burst, f"{at}.burst", 1, MAX_RATE)
    key = raw.get("key", DEFAULT_RATE_LIMIT_KEY)
    if key not in RATE_LIMIT_KEYS:
        raise SpecError(f"{at}.key", f"must be one of {', '.join(RATE_LIMIT_KEYS)}, got {key!r}")
    return RateLimit(float(rps), burst, key)


def _peers(raw, at: str) -> tuple[dict, ...]:
    """NetworkPolicy peers: each namespaceSelector and/or podSelector, or an ipBlock alone."""
    raw = _list(raw, at)
    if len(raw) > MAX_PEERS:
        raise SpecError(at, f"at most {MAX_PEERS} peers")
    out = []
    for i, peer in enumerate(raw):
        where = f"{at}[{i}]"
        if not isinstance(peer, dict):
            raise SpecError(where, "must be an object with namespaceSelector and/or podSelector, or ipBlock")
        _known(peer, where, PEER_FIELDS)
        if not any(k in peer for k in PEER_FIELDS):
            raise SpecError(where, "needs namespaceSelector and/or podSelector, or ipBlock")
        if "ipBlock" in peer and len(peer) > 1:
            raise SpecError(f"{where}.ipBlock", "cannot be combined with namespaceSelector or podSelector")
        if "ipBlock" in peer:
            out.append({"ipBlock": _ip_block(peer["ipBlock"], f"{where}.ipBlock")})
        else:
            out.append({k: _label_selector(peer[k], f"{where}.{k}") for k in PEER_FIELDS if k in peer})
    return tuple(out)


def _label_selector(raw, at: str) -> dict:
    raw = _obj(raw, at)
    _known(raw, at, ("matchLabels", "matchExpressions"))
    out: dict = {}
    if "matchLabels" in raw:
        labels = _obj(raw["matchLabels"], f"{at}.matchLabels")
        for key, value in labels.items():
            _label_key(key, f"{at}.matchLabels")
            _label_value(value, f"{at}.matchLabels[{key}]")
        out["matchLabels"] = dict(labels)
    if "matchExpressions" in raw:
        exprs = []
        for j, expr in enumerate(_list(raw["matchExpressions"], f"{at}.matchExpressions")):
            where = f"{at}.matchExpressions[{j}]"
            expr = _obj(expr, where)
            _known(expr, where, ("key", "operator", "values"))
            _label_key(expr.get("key"), f"{where}.key")
            op = expr.get("operator")
            if op not in SELECTOR_OPERATORS:
                raise SpecError(f"{where}.operator", f"must be one of {', '.join(SELECTOR_OPERATORS)}, got {op!r}")
            values = _list(expr.get("values") or [], f"{where}.values")
            if (op in ("In", "NotIn")) != bool(values):
                raise SpecError(f"{where}.values", "must be non-empty for In and NotIn, empty for Exists and DoesNotExist")
            for value in values:
                _label_value(value, f"{where}.values")
            exprs.append({"key": expr["key"], "operator": op, **({"values": list(values)} if values else {})})
        out["matchExpressions"] = exprs
    return out


def _label_key(key, at: str) -> None:
    prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
    if (not name or len(name) > 63 or not LABEL_NAME.match(name)
            or (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)))):
        raise SpecError(at, f"{key!r} is not a valid label key ([prefix/]name, name at most 63 characters)")


def _label_value(value, at: str) -> None:
    if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
        raise SpecError(at, f"{value!r} is not a valid label value")


def _ip_block(raw, at: str) -> dict:
    raw = _obj(raw, at)
    _known(raw, at, ("cidr", "except"))
    cidr = _cidr(raw.get("cidr"), f"{at}.cidr")
    excepts = [_cidr(e, f"{at}.except") for e in _list(raw.get("except") or [], f"{at}.except")]
    for e in excepts:
        if e.version != cidr.version or not e.subnet_of(cidr) or e == cidr:
            raise SpecError(f"{at}.except", f"{str(e)!r} must be a strict subset of {str(cidr)!r}")
    out = {"cidr": raw["cidr"]}
    if excepts:
        out["except"] = list(raw["except"])
    return out


def _cidr(value, at: str):
    if not isinstance(value, str) or "/" not in value:
        raise SpecError(at, f"{value!r} must be a CIDR such as 10.0.0.0/8")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise SpecError(at, f"{value!r} must be a CIDR such as 10.0.0.0/8") from None


def _known(raw: dict, at: str, fields: tuple[str, ...]) -> None:
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SpecError(f"{at}.{unknown[0]}", f"unknown field (expected {', '.join(fields)})")


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

"""ModelDeployment status computed from the spec and the child Deployments the API server reports.

Pure: no API calls, no clock. The kopf layer reads the child Deployments (by name, from the
ModelDeployment's namespace), passes the previous ``status`` and the current time, and writes the
returned dict to the status subresource.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlserving.operator import conditions, naming
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import ModelDeploymentSpec, SpecError, parse

PHASES = ("Pending", "Progressing", "Ready", "Degraded", "Failed")


@dataclass(frozen=True)
class Problem:
    """Something the kopf layer found that the Deployments do not show.

    fatal=True (e.g. an unsupported storageUri, a child owned by someone else, a rejected apply):
        phase Failed, condition Ready=False with this reason and message.
    fatal=False (e.g. spec.routing.gateway without the Gateway API CRDs): the phase is computed as
        usual and an extra condition ``type`` with status False carries reason and message.
    """

    reason: str
    message: str
    fatal: bool = True
    type: str = conditions.READY


def model_fetch_problems(pods: list[dict], container: str) -> list[Problem]:
    """A Problem for the pods whose model-fetching init container ``container`` failed.

    The container's termination message is its log's tail (terminationMessagePolicy
    FallbackToLogsOnError), i.e. ``mlserving fetch``'s error line naming the URI. A failed fetch is
    retried by the kubelet with back-off, so the state may be the current or the last one.
    """
    failures = []
    for pod in pods:
        for st in (pod.get("status") or {}).get("initContainerStatuses") or []:
            if st.get("name") != container:
                continue
            for state in (st.get("state") or {}, st.get("lastState") or {}):
                ended = state.get("terminated") or {}
                if ended and int(ended.get("exitCode") or 0) != 0:
                    why = (ended.get("message") or ended.get("reason") or "").strip().splitlines()
                    failures.append(f"pod {pod['metadata']['name']}: init container {container} exited "
                                    f"{ended.get('exitCode')}: {why[-1] if why else 'no message'}")
                    break
    if not failures:
        return []
    return [Problem(conditions.MODEL_FETCH_FAILED, "; ".join(sorted(failures)[:3]), fatal=True)]


def compute_status(md: dict, observed_deployments: dict[str, dict], previous_status: dict | None,
                   now: str, problems: list[Problem | dict] | None = None,
                   settings: OperatorSettings | None = None) -> dict:
    """The full ``status`` of ``md``.

    observed_deployments: name -> Deployment dict as read from the API server, for the children
        that exist (variant Deployments ``<md>-<variant>`` and the router ``<md>-router``); a
        missing name means not created yet.
    previous_status: ``md["status"]`` as read (None or {} at first); a condition whose status
        did not change keeps its lastTransitionTime (reason and message may change).
    now: RFC 3339 UTC timestamp, e.g. ``2026-01-01T00:00:00Z``.
    problems: Problem objects or dicts with the same keys (reason, message, fatal, type).
    settings: only its cluster_domain is used (default cluster.local).

    Phase: Failed if the spec cannot be parsed or a fatal problem is given; Pending while no child
    Deployment exists; Ready when every expected Deployment has rolled out its latest template
    with all replicas ready; Degraded when a Deployment reports ProgressDeadlineExceeded or
    ReplicaFailure, or when a Ready ModelDeployment lost ready replicas without a change of
    spec; else Progressing. Condition Ready is True exactly in phase Ready.
    """
    problems = [p if isinstance(p, Problem) else Problem(**p) for p in (problems or [])]
    domain = settings.cluster_domain if settings else "cluster.local"
    previous_status = previous_status or {}
    meta = md.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    status: dict = {
        "observedGeneration": generation,
        "url": naming.service_url(naming.stable_service(name), namespace, domain),
    }
    if "rollout" in previous_status:  # written by the rollout controller, kept by status refreshes
        status["rollout"] = previous_status["rollout"]
    try:
        spec = parse(md)
    except SpecError as exc:
        status.update(phase="Failed", traffic="", variants=[])
        status["conditions"] = _conditions(previous_status, now, generation, False, conditions.INVALID_SPEC,
                                           str(exc), problems)
        return status

    status["traffic"] = traffic_string(spec)
    status["variants"] = [_variant_status(v, observed_deployments.get(naming.variant_child(spec.name, v.name)))
                          for v in spec.variants]
    fatal = [p for p in problems if p.fatal]
    if fatal:
        phase, reason, message = "Failed", fatal[0].reason, "; ".join(p.message for p in fatal)
    else:
        phase, reason, message = _phase(spec, observed_deployments, previous_status)
    status["phase"] = phase
    status["conditions"] = _conditions(previous_status, now, generation, phase == "Ready", reason,
                                       message, problems)
    return status


def traffic_string(spec: ModelDeploymentSpec) -> str:
    """``stable=1.0.0:90% candidate=2.0.0:10%``; a mirror variant shows ``:mirror``."""
    return " ".join(f"{v.name}={v.version}:{'mirror' if v.mirror else f'{v.weight}%'}" for v in spec.variants)


def expected_deployments(spec: ModelDeploymentSpec) -> list[str]:
    names = [naming.variant_child(spec.name, v.name) for v in spec.variants]
    if spec.has_router:
        names.append(naming.router_child(spec.name))
    return names


def has_available_pod(dep: dict | None) -> bool:
    """The Deployment exists and at least one of its pods is available (it serves)."""
    return int(((dep or {}).get("status") or {}).get("availableReplicas") or 0) > 0


def deployment_rolled_out(dep: dict) -> tuple[bool, str]:
    """kubectl rollout status's test: (done, why not)."""
    meta, spec, st = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    name = meta.get("name", "?")
    if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return False, f"{name}: waiting for the Deployment controller to observe the new spec"
    want = int(spec.get("replicas", 1))
    updated = int(st.get("updatedReplicas") or 0)
    total = int(st.get("replicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    ready = int(st.get("readyReplicas") or 0)
    if updated < want:
        return False, f"{name}: {updated} of {want} replicas updated"
    if total > updated:
        return False, f"{name}: {total - updated} old replicas pending termination"
    if min(available, ready) < want:
        return False, f"{name}: {min(available, ready)} of {want} replicas ready"
    return True, ""


def _deployment_failed(dep: dict) -> str:
    for cond in (dep.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("status") == "False" \
                and cond.get("reason") == "ProgressDeadlineExceeded":
            return f"{dep['metadata']['name']}: {cond.get('message') or 'progress deadline exceeded'}"
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return f"{dep['metadata']['name']}: {cond.get('message') or 'replica failure'}"
    return ""


def _phase(spec: ModelDeploymentSpec, observed: dict[str, dict], previous: dict) -> tuple[str, str, str]:
    expected = expected_deployments(spec)
    present = [observed[n] for n in expected if n in observed]
    if not present:
        return "Pending", conditions.CHILDREN_NOT_CREATED, "waiting for the child Deployments to be created"
    failures = [f for f in (_deployment_failed(d) for d in present) if f]
    if failures:
        return "Degraded", conditions.ROLLOUT_FAILED, "; ".join(failures)
    missing = [n for n in expected if n not in observed]
    waiting = [why for done, why in (deployment_rolled_out(d) for d in present) if not done]
    if not missing and not waiting:
        return "Ready", conditions.ALL_REPLICAS_READY, f"{len(expected)} Deployments rolled out, all replicas ready"
    message = "; ".join([f"{n}: not created yet" for n in missing] + waiting)
    unchanged = previous.get("observedGeneration") == spec.generation and previous.get("phase") in ("Ready", "Degraded")
    rollout_done = not missing and all(_template_rolled_out(d) for d in present)
    if unchanged and rollout_done:
        return "Degraded", conditions.REPLICAS_UNAVAILABLE, message
    return "Progressing", conditions.ROLLOUT_IN_PROGRESS, message


def _template_rolled_out(dep: dict) -> bool:
    meta, spec, st = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    return (int(st.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
            and int(st.get("updatedReplicas") or 0) >= int(spec.get("replicas", 1))
            and int(st.get("replicas") or 0) <= int(st.get("updatedReplicas") or 0))


def _variant_status(variant, dep: dict | None) -> dict:
    st = (dep or {}).get("status") or {}
    return {"name": variant.name, "version": variant.version, "weight": variant.weight,
            "mirror": variant.mirror, "replicas": int(st.get("replicas") or 0),
            "readyReplicas": int(st.get("readyReplicas") or 0)}


def _conditions(previous: dict, now: str, generation: int, ready: bool, reason: str, message: str,
                problems: list[Problem]) -> list[dict]:
    wanted = [{"type": conditions.READY, "status": "True" if ready else "False", "reason": reason, "message": message}]
    for p in problems:
        if not p.fatal and p.type != conditions.READY:
            wanted.append({"type": p.type, "status": "False", "reason": p.reason, "message": p.message})
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    out = []
    for cond in wanted:
        before = old.get(cond["type"])
        since = now
        if before and before.get("status") == cond["status"] and before.get("lastTransitionTime"):
            since = before["lastTransitionTime"]
        out.append({**cond, "lastTransitionTime": since, "observedGeneration": generation})
    return out

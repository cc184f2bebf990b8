"""One reconciliation of a ModelDeployment: render, apply, prune, write status, post Events.

Called from kopf's handlers (create/update/resume) and from the re-reconcile queue (child
changes, periodic resync). Both paths serialise on a per-ModelDeployment lock, return a
:class:`Result` instead of raising, and never let an exception from a bad object escape:
the kopf layer turns ``Result.kind`` into success, ``kopf.PermanentError`` or
``kopf.TemporaryError``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from mlserving.operator import naming
from mlserving.operator.apply import (
    ApplyFailed,
    ChildApplier,
    OwnershipConflict,
    WaitingForPredecessor,
    controller_of,
    our_fields_fingerprint,
    selector_for,
)
from mlserving.operator.children import child_kinds, desired_children, gateway_requested
from mlserving.operator.events import post_event
from mlserving.operator.gateway import NOT_INSTALLED_MESSAGE, NOT_INSTALLED_REASON, GatewayDetector
from mlserving.operator.kubeapi import KINDS, ApiError, KubeApi, kind_of
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import SpecError
from mlserving.operator.status import READY, Problem, compute_status

log = logging.getLogger("mlserving.operator.reconcile")
MODEL_DEPLOYMENT = KINDS[("mlserving.io/v1alpha1", "ModelDeployment")]
DEPLOYMENT = KINDS[("apps/v1", "Deployment")]
CHILDREN_APPLIED = "ChildrenApplied"
GATEWAY_ROUTE = "GatewayRoute"


@dataclass(frozen=True)
class Result:
    kind: str  # "ok" | "permanent" | "temporary" | "gone"
    message: str = ""
    delay: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind in ("ok", "gone")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    def __init__(self, api: KubeApi, settings: OperatorSettings, gateway: GatewayDetector,
                 identity: str = ""):
        self.api = api
        self.settings = settings
        self.gateway = gateway
        self.identity = identity
        self.applier = ChildApplier(api)
        # Per child uid: digest of the fields we own, as our last apply left them (see apply.py).
        self.fingerprints: dict[str, str] = {}
        # Per child Deployment uid: the rollout figures last seen (status refreshes only on change).
        self.rollouts: dict[str, tuple] = {}
        # Per ModelDeployment uid: findings of the last full reconcile that the Deployments do not
        # show (gateway missing, apply incomplete, fatal errors); status refreshes reuse them.
        self.findings: dict[str, tuple[list[Problem], tuple[str, str] | None]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def forget(self, namespace: str, name: str, uid: str | None = None) -> None:
        with self._locks_guard:
            self._locks.pop((namespace, name), None)
        if uid:
            self.findings.pop(uid, None)

    # -- entry points ------------------------------------------------------------------------
    def reconcile_by_name(self, namespace: str, name: str) -> Result:
        try:
            md = self.api.get(MODEL_DEPLOYMENT, namespace, name)
        except ApiError as exc:
            return Result("temporary", f"reading ModelDeployment {namespace}/{name}: {exc}", 5)
        if md is None or md["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name, (md or {}).get("metadata", {}).get("uid"))
            return Result("gone")
        return self.reconcile(md)

    def refresh_status(self, namespace: str, name: str) -> Result:
        """Recompute status from the child Deployments only (no apply): a Deployment's replicas moved."""
        try:
            md = self.api.get(MODEL_DEPLOYMENT, namespace, name)
        except ApiError as exc:
            return Result("temporary", str(exc), 5)
        if md is None or md["metadata"].get("deletionTimestamp"):
            return Result("gone")
        uid = md["metadata"]["uid"]
        if uid not in self.findings:  # nothing reconciled yet in this process: do the full thing
            return self.reconcile(md)
        with self._lock(namespace, name):
            problems, demoted = self.findings[uid]
            try:
                deployments = self.api.list(DEPLOYMENT, namespace, selector_for(name))
            except ApiError as exc:
                return Result("temporary", str(exc), 5)
            observed = {d["metadata"]["name"]: d for d in deployments
                        if (controller_of(d) or {}).get("uid") == uid}
            return self._finish(md, observed, problems, demoted) or Result("ok")

    def reconcile(self, md: dict) -> Result:
        meta = md["metadata"]
        if meta.get("deletionTimestamp"):
            return Result("gone")
        with self._lock(meta["namespace"], meta["name"]):
            try:
                return self._reconcile_locked(md)
            except Exception as exc:  # a bug must cost one object, never the operator
                log.exception("reconciling %s/%s failed unexpectedly", meta["namespace"], meta["name"])
                return Result("temporary", f"{type(exc).__name__}: {exc}", 30)

    # -- the work ----------------------------------------------------------------------------
    def _reconcile_locked(self, md: dict) -> Result:
        meta = md["metadata"]
        uid = meta["uid"]
        problems: list[Problem] = []
        include_gateway = False
        if gateway_requested(md):
            try:
                include_gateway = self.gateway.installed()
            except ApiError as exc:
                return Result("temporary", f"checking for the Gateway API: {exc}", 5)
            if not include_gateway:
                problems.append(Problem(NOT_INSTALLED_REASON, NOT_INSTALLED_MESSAGE, fatal=False,
                                        type=GATEWAY_ROUTE))
        settings = self.settings.with_gateway(include_gateway)

        try:
            desired = desired_children(md, settings)
        except SpecError as exc:
            return self._fail(md, problems, "InvalidSpec", str(exc))
        except Exception as exc:  # a renderer crash on an odd object: report it, do not retry it
            log.exception("rendering %s/%s failed", meta["namespace"], meta["name"])
            return self._fail(md, problems, "RenderError", f"{type(exc).__name__}: {exc}")

        kinds = [kind_of(api_version, kind) for api_version, kind, _plural in child_kinds()
                 if kind != "HTTPRoute" or include_gateway]
        try:
            outcome = self.applier.apply(md, desired, kinds)
        except OwnershipConflict as exc:
            return self._fail(md, problems, "OwnershipConflict", str(exc))
        except WaitingForPredecessor as exc:
            self._incomplete(md, problems, "WaitingForPredecessor", str(exc))
            return Result("temporary", str(exc), 5)
        except ApplyFailed as exc:
            if exc.permanent:
                return self._fail(md, problems, "ApplyRejected", str(exc))
            self._incomplete(md, problems, "ApplyIncomplete", str(exc))
            return Result("temporary", str(exc), 10)
        except ApiError as exc:  # reads before any write: nothing half-applied
            return Result("temporary", f"reading children: {exc}", 5)

        for live in outcome.live:
            fingerprint = our_fields_fingerprint(live)
            if fingerprint:
                self.fingerprints[live["metadata"]["uid"]] = fingerprint
        if outcome.pruned:
            log.info("%s/%s: pruned %s", meta["namespace"], meta["name"], ", ".join(outcome.pruned))
        observed = {d["metadata"]["name"]: d for d in outcome.live_of_kind("Deployment")}
        self.findings[uid] = (problems, None)
        return self._finish(md, observed, problems) or Result("ok")

    def _fail(self, md: dict, problems: list[Problem], reason: str, message: str) -> Result:
        found = problems + [Problem(reason, message, fatal=True)]
        self.findings[md["metadata"]["uid"]] = (found, None)
        self._finish(md, {}, found)
        return Result("permanent", message)

    def _incomplete(self, md: dict, problems: list[Problem], reason: str, message: str) -> None:
        """Some children may be written, some not: say so in status (Ready=False and a condition)."""
        found = problems + [Problem(reason, message, fatal=False, type=CHILDREN_APPLIED)]
        self.findings[md["metadata"]["uid"]] = (found, (reason, message))
        observed = {}
        try:
            deployments = self.api.list(DEPLOYMENT, md["metadata"]["namespace"], selector_for(md["metadata"]["name"]))
            observed = {d["metadata"]["name"]: d for d in deployments
                        if (controller_of(d) or {}).get("uid") == md["metadata"]["uid"]}
        except ApiError:
            pass
        self._finish(md, observed, found, (reason, message))

    def _finish(self, md: dict, observed: dict[str, dict], problems: list[Problem],
                demoted: tuple[str, str] | None = None) -> Result | None:
        previous = md.get("status") or {}
        now = utc_now()
        status = compute_status(md, observed, previous, now, problems, self.settings)
        if demoted and status.get("phase") in ("Ready", "Pending"):
            _demote_ready(status, previous, now, *demoted)
        meta = md["metadata"]
        if status == previous:
            log.debug("%s/%s: up to date (%s)", meta["namespace"], meta["name"], status.get("phase"))
            return None
        try:
            self.api.merge_patch(MODEL_DEPLOYMENT, meta["namespace"], meta["name"], {"status": status},
                                 subresource="status", field_manager=naming.FIELD_MANAGER)
        except ApiError as exc:
            if exc.status == 404:
                return Result("gone")
            return Result("temporary", f"writing status: {exc}", 5)
        log.info("%s/%s: generation %s, phase %s%s", meta["namespace"], meta["name"], meta.get("generation"),
                 status.get("phase"), "".join(f"; {p.reason}: {p.message}" for p in problems))
        self._announce(md, previous, status)
        return None

    def _announce(self, md: dict, previous: dict, status: dict) -> None:
        """Events for what changed: Warning for a new failure or problem, Normal when Ready."""
        before = {c.get("type"): c for c in previous.get("conditions") or []}
        for cond in status.get("conditions") or []:
            old = before.get(cond["type"]) or {}
            if (old.get("status"), old.get("reason")) == (cond["status"], cond.get("reason")):
                continue
            if cond["status"] == "True":
                if cond["type"] == READY:
                    post_event(self.api, md, "Normal", "Ready", cond.get("message", ""), self.identity)
            elif cond["type"] != READY or status.get("phase") in ("Failed", "Degraded"):
                post_event(self.api, md, "Warning", cond.get("reason", "NotReady"), cond.get("message", ""),
                           self.identity)


def _demote_ready(status: dict, previous: dict, now: str, reason: str, message: str) -> None:
    status["phase"] = "Progressing"
    old = {c.get("type"): c for c in previous.get("conditions") or []}.get(READY) or {}
    since = old.get("lastTransitionTime") if old.get("status") == "False" else now
    for cond in status.get("conditions") or []:
        if cond.get("type") == READY:
            cond.update(status="False", reason=reason, message=message, lastTransitionTime=since or now)

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

from mlserving.operator import conditions, naming
from mlserving.operator.apply import (
    ApplyFailed,
    ChildApplier,
    OwnershipConflict,
    WaitingForPredecessor,
    controller_of,
    our_fields_fingerprint,
    selector_for,
)
from mlserving.operator.children import child_kinds, desired_children, gateway_requested, monitoring_requested
from mlserving.operator.children import fetch as model_fetch
from mlserving.operator.clock import SYSTEM, Clock, rfc3339
from mlserving.operator.events import post_event
from mlserving.operator.gateway import GROUP as GATEWAY_GROUP
from mlserving.operator.gateway import (
    MONITORING_GROUP,
    MONITORING_NOT_INSTALLED_MESSAGE,
    NOT_INSTALLED_MESSAGE,
    GatewayDetector,
)
from mlserving.operator.kinds import DEPLOYMENT, MODEL_DEPLOYMENT, POD
from mlserving.operator.kubeapi import ApiError, KubeApi
from mlserving.operator.rollout.controller import Prepared, RolloutController
from mlserving.operator.rollout.machine import COMMAND_ANNOTATION
from mlserving.operator.secrets import secret_problems
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import SpecError, parse
from mlserving.operator.status import (
    Problem,
    compute_status,
    deployment_rolled_out,
    has_available_pod,
    model_fetch_problems,
)

log = logging.getLogger("mlserving.operator.reconcile")
SECRET_RECHECK_SECONDS = 15
FETCH_RECHECK_SECONDS = 15


@dataclass(frozen=True)
class Result:
    kind: str  # "ok" | "permanent" | "temporary" | "gone"
    message: str = ""
    delay: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind in ("ok", "gone")


class Reconciler:
    def __init__(self, api: KubeApi, settings: OperatorSettings, gateway: GatewayDetector,
                 identity: str = "", clock: Clock = SYSTEM, monitoring: GatewayDetector | None = None,
                 rollouts: RolloutController | None = None):
        self.api = api
        self.clock = clock
        self.rollout_controller = rollouts or RolloutController(
            api, clock=lambda: datetime.fromtimestamp(clock.time(), UTC).replace(tzinfo=None))
        # Set by the kopf layer: look at (namespace, name) again in ``delay`` seconds (any thread).
        self.schedule = None
        self.settings = settings
        self.gateway = gateway
        self.monitoring = monitoring or GatewayDetector(api, clock=clock, group=MONITORING_GROUP, version="v1")
        self.identity = identity
        self.applier = ChildApplier(api)
        # Per child uid: digest of the fields we own, as our last apply left them (see apply.py).
        self.fingerprints: dict[str, str] = {}
        # Per child Deployment uid: the rollout figures last seen (status refreshes only on change).
        self.rollouts: dict[str, tuple] = {}
        # Per ModelDeployment uid: findings of the last full reconcile that the Deployments do not
        # show (gateway missing, apply incomplete, fatal errors); status refreshes reuse them.
        self.findings: dict[str, tuple[list[Problem], tuple[str, str] | None]] = {}
        # ModelDeployment uids whose last full reconcile kept the stable Service off the router they
        # have (no router pod available yet): a status refresh that finds one available reconciles
        # in full, so the Service switches then and not at the next resync.
        self.awaiting_router: set[str] = set()
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
            self.awaiting_router.discard(uid)
        self.rollout_controller.forget(namespace, name, uid)

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
            if uid in self.awaiting_router and has_available_pod(observed.get(naming.router_child(name))):
                return self._reconcile_locked(md)
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
                problems.append(Problem(conditions.GATEWAY_API_MISSING, NOT_INSTALLED_MESSAGE, fatal=False,
                                        type=conditions.HTTPROUTE_READY))
        # Probed even when not asked for: a PodMonitor left from before spec.monitoring was turned
        # off is only pruned while its kind is in the list below.
        wanted = monitoring_requested(md)
        try:
            monitoring_served = self.monitoring.installed()
        except ApiError as exc:
            if wanted:
                return Result("temporary", f"checking for the prometheus-operator CRDs: {exc}", 5)
            monitoring_served = False
        include_monitoring = wanted and monitoring_served
        if wanted and not monitoring_served:
            problems.append(Problem(conditions.PROMETHEUS_OPERATOR_MISSING, MONITORING_NOT_INSTALLED_MESSAGE,
                                    fatal=False, type=conditions.MONITORING_READY))
        settings = self.settings.with_gateway(include_gateway).with_monitoring(include_monitoring)

        prepared = None
        try:
            prepared = self.rollout_controller.prepare(md, parse(md))
        except SpecError:
            pass  # desired_children raises it again below, with the usual handling
        try:
            desired = desired_children(md, settings, prepared.plan if prepared else None)
        except SpecError as exc:
            return self._fail(md, problems, conditions.INVALID_SPEC, str(exc))
        except Exception as exc:  # a renderer crash on an odd object: report it, do not retry it
            log.exception("rendering %s/%s failed", meta["namespace"], meta["name"])
            return self._fail(md, problems, conditions.RENDER_ERROR, f"{type(exc).__name__}: {exc}")

        served = {GATEWAY_GROUP: include_gateway, MONITORING_GROUP: monitoring_served}
        kinds = [k for k in child_kinds() if not k.optional or served.get(k.group, False)]
        try:
            outcome = self.applier.apply(md, desired, kinds)
        except OwnershipConflict as exc:
            return self._fail(md, problems, conditions.OWNERSHIP_CONFLICT, str(exc))
        except WaitingForPredecessor as exc:
            self._incomplete(md, problems, conditions.WAITING_FOR_PREDECESSOR, str(exc))
            return Result("temporary", str(exc), 5)
        except ApplyFailed as exc:
            if exc.permanent:
                return self._fail(md, problems, conditions.APPLY_REJECTED, str(exc))
            self._incomplete(md, problems, conditions.APPLY_INCOMPLETE, str(exc))
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
        try:
            found, blocking = secret_problems(self.api, parse(md))
        except ApiError as exc:
            return Result("temporary", f"checking the Secrets of spec.security: {exc}", 5)
        problems += found
        # A missing Secret makes the router refuse requests: not Ready, and looked at again soon
        # (nothing about the ModelDeployment changes when the Secret is created).
        demoted = (blocking[0].reason, "; ".join(p.message for p in blocking)) if blocking else None
        self.findings[uid] = (problems, demoted)
        if prepared is not None:
            self.rollout_controller.after_apply(md, prepared)
        plan = prepared.plan if prepared else None
        if plan is not None and not plan.router_selected:
            self.awaiting_router.add(uid)
        else:
            self.awaiting_router.discard(uid)
        result = self._finish(md, observed, problems, demoted, rollout=prepared)
        if demoted:
            return result or Result("temporary", demoted[1], SECRET_RECHECK_SECONDS)
        return result or Result("ok")

    def _fail(self, md: dict, problems: list[Problem], reason: str, message: str) -> Result:
        found = problems + [Problem(reason, message, fatal=True)]
        self.findings[md["metadata"]["uid"]] = (found, None)
        self._finish(md, {}, found)
        return Result("permanent", message)

    def _incomplete(self, md: dict, problems: list[Problem], reason: str, message: str) -> None:
        """Some children may be written, some not: say so in status (Ready=False and a condition)."""
        found = problems + [Problem(reason, message, fatal=False, type=conditions.CHILDREN_APPLIED)]
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
                demoted: tuple[str, str] | None = None, rollout: Prepared | None = None) -> Result | None:
        previous = md.get("status") or {}
        now = rfc3339(self.clock)
        fetching = None if any(p.fatal for p in problems) else self._fetch_problems(md, observed)
        fetch_failed = fetching or []
        problems = problems + fetch_failed
        status = compute_status(md, observed, previous, now, problems, self.settings)
        if demoted and status.get("phase") in ("Ready", "Pending"):
            _demote_ready(status, previous, now, *demoted)
        if rollout is not None and rollout.state is not None:
            status["rollout"] = rollout.state
        result = self._write_status(md, previous, status, problems)
        if rollout is not None and result is None:
            self._rollout_done(md, rollout)
        if fetching == [] and self.schedule is not None:  # a fetch under way may still fail: look again
            self.schedule(md["metadata"]["namespace"], md["metadata"]["name"], FETCH_RECHECK_SECONDS)
        return result or self._recheck_fetch(fetch_failed)

    def _fetch_problems(self, md: dict, observed: dict[str, dict]) -> list[Problem] | None:
        """Failed model-fetching init containers (s3/http storage), while a Deployment is not rolled
        out; None when no fetch is under way (nothing to watch).

        Pods change without their Deployment's status changing, so while a fetch is under way the
        ModelDeployment is looked at again every FETCH_RECHECK_SECONDS, and after a failure
        (``_recheck_fetch``) until a fetch succeeds.
        """
        if not observed or all(deployment_rolled_out(d)[0] for d in observed.values()):
            return None
        try:
            spec = parse(md)
        except SpecError:
            return None
        if not any(v.storage.kind in ("http", "s3") for v in spec.variants):
            return None
        try:
            pods = self.api.list(POD, spec.namespace, selector_for(spec.name))
        except ApiError as exc:
            log.warning("%s/%s: listing pods for their model fetch: %s", spec.namespace, spec.name, exc)
            return []
        return model_fetch_problems(pods, model_fetch.CONTAINER_NAME)

    @staticmethod
    def _recheck_fetch(fetch_failed: list[Problem]) -> Result | None:
        if not fetch_failed:
            return None
        return Result("temporary", fetch_failed[0].message, FETCH_RECHECK_SECONDS)

    def _rollout_done(self, md: dict, rollout: Prepared) -> None:
        """After the status holds the new rollout state: its Events, the one-shot command, the next look."""
        meta = md["metadata"]
        for type_, reason, message in rollout.transition.events:
            post_event(self.api, md, type_, reason, message, self.identity)
        if rollout.command is not None:
            try:
                self.api.merge_patch(MODEL_DEPLOYMENT, meta["namespace"], meta["name"],
                                     {"metadata": {"annotations": {COMMAND_ANNOTATION: None}}},
                                     field_manager=naming.FIELD_MANAGER)
            except ApiError as exc:
                log.warning("%s/%s: removing %s: %s", meta["namespace"], meta["name"], COMMAND_ANNOTATION, exc)
        if rollout.transition.requeue is not None and self.schedule is not None:
            self.schedule(meta["namespace"], meta["name"], rollout.transition.requeue)

    def _write_status(self, md: dict, previous: dict, status: dict, problems: list[Problem]) -> Result | None:
        meta = md["metadata"]
        if status == previous:
            log.debug("%s/%s: up to date (%s)", meta["namespace"], meta["name"], status.get("phase"))
            return None
        patch = dict(status)
        if isinstance(previous.get("rollout"), dict) and "rollout" in status:
            # A merge patch keeps what it does not mention: null what the rollout state dropped.
            patch["rollout"] = _nulling_removed(previous["rollout"], status["rollout"])
        try:
            self.api.merge_patch(MODEL_DEPLOYMENT, meta["namespace"], meta["name"], {"status": patch},
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
                if cond["type"] == conditions.READY:
                    post_event(self.api, md, "Normal", conditions.EVENT_READY, cond.get("message", ""),
                               self.identity)
            elif cond["type"] != conditions.READY or status.get("phase") in ("Failed", "Degraded"):
                post_event(self.api, md, "Warning", cond.get("reason", conditions.EVENT_NOT_READY),
                           cond.get("message", ""),
                           self.identity)


def _nulling_removed(old: dict, new: dict) -> dict:
    out = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        out[key] = _nulling_removed(before, value) if isinstance(before, dict) and isinstance(value, dict) else value
    return out


def _demote_ready(status: dict, previous: dict, now: str, reason: str, message: str) -> None:
    status["phase"] = "Progressing"
    old = {c.get("type"): c for c in previous.get("conditions") or []}.get(conditions.READY) or {}
    since = old.get("lastTransitionTime") if old.get("status") == "False" else now
    for cond in status.get("conditions") or []:
        if cond.get("type") == conditions.READY:
            cond.update(status="False", reason=reason, message=message, lastTransitionTime=since or now)

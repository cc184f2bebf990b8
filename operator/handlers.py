"""The kopf handlers of the mlserving operator, one per concern.

- startup: operator settings, CRD check, then wait for the leader Lease (no watch starts before).
- ModelDeployment created / updated / resumed: reconcile it (sync, in kopf's thread pool).
- a child changed (any kind the operator creates, watched by the managed-by label): re-reconcile
  its owner when a child was deleted or a field we own was changed by someone else; refresh the
  owner's status when a child Deployment's replicas moved.
- resync: every ``MLSERVING_RESYNC_SECONDS`` all ModelDeployments are kicked again, as a safety
  net for a missed watch event. (Not a kopf timer: kopf puts a finalizer on every object with a
  timer, and a finalizer would block deleting a ModelDeployment whenever the operator is down.)
- cleanup: release the Lease so a standby replica takes over at once.

Process-wide state lives in :data:`RUNTIME`, set by ``mlserving operator`` before kopf starts.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from dataclasses import dataclass, field

import kopf
from mlserving.operator import naming
from mlserving.operator.apply import controller_of, our_fields_fingerprint
from mlserving.operator.children import child_kinds
from mlserving.operator.gateway import GatewayDetector
from mlserving.operator.kinds import MODEL_DEPLOYMENT
from mlserving.operator.kubeapi import ApiError, KubeApi
from mlserving.operator.leader import LeaderElector, LeaseConfig, LeaseNamespaceMissing
from mlserving.operator.reconcile import Reconciler, Result
from mlserving.operator.requeue import Requeue
from mlserving.operator.rollout.machine import COMMAND_ANNOTATION
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import API_GROUP, KIND, PLURAL

log = logging.getLogger("mlserving.operator")
VERSION = MODEL_DEPLOYMENT.version
CHILD_LABELS = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
STATUS_REFRESH_DELAY = 1.0


@dataclass
class Runtime:
    api: KubeApi
    settings: OperatorSettings
    lease: LeaseConfig
    namespaces: list[str] = field(default_factory=list)  # empty: all namespaces
    resync_seconds: float = 300.0
    workers: int = 8
    reconciler: Reconciler | None = None
    elector: LeaderElector | None = None
    requeue: Requeue | None = None


RUNTIME: Runtime | None = None


def configure(runtime: Runtime) -> None:
    global RUNTIME
    runtime.reconciler = Reconciler(runtime.api, runtime.settings, GatewayDetector(runtime.api),
                                    identity=runtime.lease.identity)
    runtime.elector = LeaderElector(runtime.api, runtime.lease)
    RUNTIME = runtime


def _runtime() -> Runtime:
    if RUNTIME is None:
        raise RuntimeError("handlers.configure() was not called: start the operator with `mlserving operator`")
    return RUNTIME


# -- startup / cleanup -------------------------------------------------------------------------
@kopf.on.login()
def login(**_) -> kopf.ConnectionInfo:
    """kopf's watches use the credentials KubeApi uses (operator/kubeconfig.py): one source."""
    return _runtime().api.credentials.to_kopf()


def apply_kopf_settings(settings: kopf.OperatorSettings, workers: int) -> None:
    """Our choices of kopf settings (docs/operator.md explains each). hack/kopf-floor.sh runs this
    against the lowest kopf pyproject.toml allows."""
    # Only our own Events (reconcile.py) reach the cluster; kopf's per-handler log lines do not.
    settings.posting.enabled = False
    # Progress and the last-handled spec go to annotations under our domain: the status schema is
    # structural, so kopf's default `status.kopf` would be pruned by the API server.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="mlserving.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="mlserving.io", key="last-handled-configuration")
    # No handler needs a finalizer (children go by ownerReference garbage collection); name it
    # ours anyway so a future one is recognisable.
    settings.persistence.finalizer = "mlserving.io/operator"
    # The kinds are fixed and the CRD is checked at startup: no need to list/watch CRDs and namespaces.
    settings.scanning.disabled = True
    # Leader election is ours (leader.py); kopf peering would freeze equal-priority replicas.
    settings.peering.standalone = True
    settings.execution.max_workers = workers
    # Children are filtered by the API server, not in here: the operator never receives (nor
    # parses) the ConfigMaps, Services, ... that are not its own.
    for kind in child_kinds():
        settings.watching.label_selectors[kind.plural] = f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10


@kopf.on.startup()
async def configure_kopf(settings: kopf.OperatorSettings, **_) -> None:
    rt = _runtime()
    apply_kopf_settings(settings, rt.workers)

    while True:  # the API server may still be starting: wait for it without a traceback per try
        try:
            versions = await asyncio.to_thread(rt.api.group_versions, API_GROUP)
            break
        except ApiError as exc:
            log.warning("API server not reachable yet (%s); retrying in 5s", exc)
            await asyncio.sleep(5)
    if VERSION not in versions:
        raise kopf.PermanentError(
            f"the CRD {PLURAL}.{API_GROUP} ({API_GROUP}/{VERSION}) is not installed: "
            "kubectl apply -k crds/ (or kubectl apply -k deploy/ for the operator as well)")

    elector = rt.elector
    log.info("operator %s: waiting for lease %s/%s", rt.lease.identity, rt.lease.namespace, rt.lease.name)
    announced = False
    while True:
        try:
            if await asyncio.to_thread(elector.try_acquire_or_renew):
                break
        except LeaseNamespaceMissing as exc:
            raise kopf.PermanentError(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 (API errors while campaigning: keep trying)
            log.warning("lease %s/%s: %s", rt.lease.namespace, rt.lease.name, exc)
        if not announced:
            log.info("standby: lease %s/%s is held by another replica", rt.lease.namespace, rt.lease.name)
            announced = True
        await asyncio.sleep(rt.lease.retry_period)
    elector.start_renewing()
    log.info("leader: %s holds lease %s/%s; starting to reconcile", rt.lease.identity,
             rt.lease.namespace, rt.lease.name)

    rt.requeue = Requeue(full=rt.reconciler.reconcile_by_name, status=rt.reconciler.refresh_status,
                         workers=max(2, rt.workers // 2))
    rt.requeue.start()
    loop = asyncio.get_running_loop()
    # A rollout asks for its next look from the reconcile thread.
    rt.reconciler.schedule = lambda namespace, name, delay: loop.call_soon_threadsafe(
        rt.requeue.kick, namespace, name, True, delay)
    asyncio.create_task(_resync_forever(rt), name="mlserving resync")


@kopf.on.cleanup()
async def release_lease(**_) -> None:
    rt = _runtime()
    if rt.requeue is not None:
        await rt.requeue.stop()
    await asyncio.to_thread(rt.elector.release)


# -- the ModelDeployment itself ----------------------------------------------------------------
@kopf.on.resume(API_GROUP, VERSION, PLURAL)
@kopf.on.create(API_GROUP, VERSION, PLURAL)
@kopf.on.update(API_GROUP, VERSION, PLURAL)
def reconcile_model_deployment(body: kopf.Body, retry: int, **_) -> None:
    md = copy.deepcopy(dict(body))
    result = _runtime().reconciler.reconcile(md)
    _raise_for(result, retry)


@kopf.on.event(API_GROUP, VERSION, PLURAL, annotations={COMMAND_ANNOTATION: kopf.PRESENT}, id="rollout-command")
async def rollout_command(event: kopf.RawEvent, namespace: str, name: str, **_) -> None:
    """A rollout command annotation set (pause, resume, ...): a full reconcile carries it out and
    removes it. kopf's update handler does not fire for it: annotations under our prefix, where
    kopf keeps its own state, are left out of the diff it compares."""
    rt = RUNTIME
    if rt is None or rt.requeue is None or event.get("type") == "DELETED":
        return
    rt.requeue.kick(namespace, name, full=True)


def _raise_for(result: Result, retry: int) -> None:
    if result.kind == "permanent":
        raise kopf.PermanentError(result.message)
    if result.kind == "temporary":
        # kopf retries after `delay`; grow it per retry so a broken API server is not hammered.
        raise kopf.TemporaryError(result.message, delay=min(60.0, max(result.delay, 1.0) * 2 ** min(retry, 6)))


# -- children ----------------------------------------------------------------------------------
async def child_changed(event: kopf.RawEvent, body: kopf.Body, **_) -> None:
    """A child moved. Decide cheaply whether its owner needs work, and queue it (in the loop's thread)."""
    rt = RUNTIME
    if rt is None or rt.requeue is None:
        return
    owner = controller_of(body)
    if not owner or owner.get("kind") != KIND:
        return
    meta = body.get("metadata") or {}
    namespace, uid = meta.get("namespace"), meta.get("uid")
    fingerprints = rt.reconciler.fingerprints
    if event.get("type") == "DELETED":
        fingerprints.pop(uid, None)
        rt.reconciler.rollouts.pop(uid, None)
        rt.requeue.kick(namespace, owner["name"], full=True)
        return
    current = our_fields_fingerprint(body)
    known = fingerprints.get(uid)
    if current is None or (known is not None and current != known):
        # Someone else changed or removed a field we apply: put it back.
        rt.requeue.kick(namespace, owner["name"], full=True)
    elif known is None:
        fingerprints[uid] = current  # first sight (initial listing): the resume reconcile covers it
    if body.get("kind") == "Deployment" and event.get("type") is not None:
        # Only a change the status is computed from is worth a refresh (not our own re-applies,
        # nor the controller's annotation updates).
        rollout = _rollout_state(body)
        if rt.reconciler.rollouts.get(uid) != rollout:
            rt.reconciler.rollouts[uid] = rollout
            # A rollout moves in many small steps: gather a second of them into one status write.
            rt.requeue.kick(namespace, owner["name"], full=False, delay=STATUS_REFRESH_DELAY)


def _rollout_state(deployment: kopf.Body) -> tuple:
    meta, spec, status = deployment.get("metadata") or {}, deployment.get("spec") or {}, deployment.get("status") or {}
    conditions = tuple((c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or [])
    return (meta.get("generation"), spec.get("replicas"), status.get("observedGeneration"), status.get("replicas"),
            status.get("updatedReplicas"), status.get("readyReplicas"), status.get("availableReplicas"), conditions)


for _child in child_kinds():
    kopf.on.event(_child.group, _child.version, _child.plural, labels=CHILD_LABELS,
                  id=f"watch-{_child.plural}")(child_changed)


# -- safety net --------------------------------------------------------------------------------
async def _resync_forever(rt: Runtime) -> None:
    while True:
        await asyncio.sleep(rt.resync_seconds)
        try:
            names = await asyncio.to_thread(_list_model_deployments, rt)
        except Exception as exc:  # noqa: BLE001 (a failed resync waits for the next one)
            log.warning("resync: listing ModelDeployments failed: %s", exc)
            continue
        for namespace, name in names:
            rt.requeue.kick(namespace, name, full=True)


def _list_model_deployments(rt: Runtime) -> list[tuple[str, str]]:
    scopes = rt.namespaces or [None]
    found = []
    for namespace in scopes:
        for md in rt.api.list(MODEL_DEPLOYMENT, namespace):
            meta = md["metadata"]
            found.append((meta["namespace"], meta["name"]))
    return found


def resync_seconds_from_env() -> float:
    raw = os.environ.get("MLSERVING_RESYNC_SECONDS", "300")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"MLSERVING_RESYNC_SECONDS: {raw!r} is not a number") from None
    if value < 5:
        raise ValueError(f"MLSERVING_RESYNC_SECONDS must be at least 5, got {value}")
    return value

"""Leader election on a coordination.k8s.io/v1 Lease.

kopf's peering only pauses operators of lower priority; peers of equal priority all freeze, so
it cannot give "exactly one of two replicas reconciles". This module does what client-go's
leaderelection does: the holder renews ``renewTime`` every ``retry_period``; a candidate takes
the Lease over only after it has seen the same record unchanged for a whole
``lease_duration`` by its own clock (so clock skew between nodes does not matter); every write
carries the resourceVersion it read, so two candidates cannot both win. A holder that cannot
renew within ``renew_deadline``, or finds someone else in the record, calls ``on_lost`` (the
operator exits: a process that may no longer be leader must not write another byte).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass

from mlserving.operator.clock import SYSTEM, Clock, rfc3339
from mlserving.operator.kinds import LEASE
from mlserving.operator.kubeapi import ApiError, KubeApi
from mlserving.operator.kubeconfig import SERVICE_ACCOUNT_DIR

log = logging.getLogger("mlserving.operator.leader")


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    @classmethod
    def from_env(cls, env=os.environ, watched: list[str] | tuple[str, ...] = ()) -> LeaseConfig:
        """MLSERVING_LEASE_NAME / _NAMESPACE / _DURATION, POD_NAME / POD_NAMESPACE from the downward API.

        Without MLSERVING_LEASE_NAMESPACE the Lease lives in the pod's namespace; outside a pod, in
        the first watched namespace (it exists: the operator is told to watch it), else in
        mlserving-system."""
        namespace = (env.get("MLSERVING_LEASE_NAMESPACE") or env.get("POD_NAMESPACE") or _own_namespace()
                     or (watched[0] if watched else DEFAULT_LEASE_NAMESPACE))
        identity = env.get("MLSERVING_OPERATOR_ID") or env.get("POD_NAME") or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        duration = float(env.get("MLSERVING_LEASE_DURATION", "15"))
        if duration < 3:
            raise ValueError(f"MLSERVING_LEASE_DURATION must be at least 3 seconds, got {duration}")
        return cls(namespace=namespace, name=env.get("MLSERVING_LEASE_NAME", "mlserving-operator"),
                   identity=identity, lease_duration=duration,
                   renew_deadline=duration * 2 / 3, retry_period=max(1.0, duration / 7.5))


DEFAULT_LEASE_NAMESPACE = "mlserving-system"


class LeaseNamespaceMissing(Exception):
    """The Lease cannot be created: its namespace does not exist. Waiting would not help."""


def _own_namespace() -> str | None:
    try:
        with open(f"{SERVICE_ACCOUNT_DIR}/namespace") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


class LeaderElector:
    def __init__(self, api: KubeApi, config: LeaseConfig, on_lost=None, clock: Clock = SYSTEM):
        self.api = api
        self.config = config
        self.clock = clock
        self.on_lost = on_lost or _exit_process
        self.is_leader = False
        self._observed_record: tuple | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0                      # monotonic time it was first seen
        self._last_renew = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one attempt -------------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        cfg = self.config
        lease = self.api.get(LEASE, cfg.namespace, cfg.name)
        now = rfc3339(self.clock, micro=True)
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                    "spec": self._spec(acquire_time=now, renew_time=now, transitions=0)}
            try:
                self.api.create(LEASE, cfg.namespace, body)
            except ApiError as exc:
                if exc.status == 409:  # another candidate created it first
                    return False
                if exc.status == 404:
                    raise LeaseNamespaceMissing(
                        f"cannot create the leader Lease {cfg.namespace}/{cfg.name}: namespace {cfg.namespace!r} "
                        f"does not exist. Create it (kubectl create namespace {cfg.namespace}) or set "
                        "MLSERVING_LEASE_NAMESPACE to an existing namespace") from exc
                raise
            self._became_leader()
            return True

        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"))
        mono = self.clock.monotonic()
        if record != self._observed_record:
            self._observed_record, self._observed_at = record, mono
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
        if holder and holder != cfg.identity and not self._expired(mono, duration):
            return False

        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == cfg.identity:
            new_spec = self._spec(acquire_time=spec.get("acquireTime") or now, renew_time=now,
                                  transitions=transitions)
        else:
            new_spec = self._spec(acquire_time=now, renew_time=now, transitions=transitions + 1)
        lease["spec"] = new_spec
        try:
            self.api.replace(LEASE, cfg.namespace, cfg.name, lease)  # carries resourceVersion
        except ApiError as exc:
            if exc.status == 409:  # the record changed under us: someone else renewed or took it
                return False
            raise
        if holder != cfg.identity:
            log.info("acquired lease %s/%s (previous holder %r)", cfg.namespace, cfg.name, holder)
        self._became_leader()
        return True

    def _expired(self, mono: float, duration: float) -> bool:
        """The record seen has stayed unchanged for a whole lease duration, by our own clock."""
        return mono - self._observed_at > duration

    def _spec(self, acquire_time: str, renew_time: str, transitions: int) -> dict:
        return {"holderIdentity": self.config.identity,
                "leaseDurationSeconds": round(self.config.lease_duration),
                "acquireTime": acquire_time, "renewTime": renew_time, "leaseTransitions": transitions}

    def _became_leader(self) -> None:
        self.is_leader = True
        self._last_renew = self.clock.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------
    def start_renewing(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name="lease-renewer", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.config.retry_period):
            if not self.renew_once():
                return

    def renew_once(self) -> bool:
        """One renewal by the leader; False (after ``on_lost``) once it may no longer lead."""
        cfg = self.config
        try:
            if self.try_acquire_or_renew():
                return True
        except ApiError as exc:
            log.warning("lease renewal failed: %s", exc)
        holder = (self._observed_record or ("",))[0]
        if holder and holder != cfg.identity:
            self._lose(f"lease {cfg.namespace}/{cfg.name} is now held by {holder!r}")
            return False
        if self._renew_deadline_passed():
            self._lose(f"could not renew lease {cfg.namespace}/{cfg.name} within {cfg.renew_deadline:.0f}s")
            return False
        return True

    def _renew_deadline_passed(self) -> bool:
        return self.clock.monotonic() - self._last_renew > self.config.renew_deadline

    def _lose(self, why: str) -> None:
        self.is_leader = False
        log.error("leadership lost: %s", why)
        self.on_lost(why)

    def release(self) -> None:
        """Give the lease up on a clean shutdown so a standby takes over at once."""
        self._stop.set()
        if not self.is_leader:
            return
        self.is_leader = False
        cfg = self.config
        try:
            lease = self.api.get(LEASE, cfg.namespace, cfg.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == cfg.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["renewTime"] = None
                lease["spec"]["acquireTime"] = None
                self.api.replace(LEASE, cfg.namespace, cfg.name, lease)
                log.info("released lease %s/%s", cfg.namespace, cfg.name)
        except ApiError as exc:
            log.warning("could not release lease %s/%s: %s", cfg.namespace, cfg.name, exc)

    def healthy(self) -> bool:
        """For the liveness probe: a standby is healthy; a leader only while its renewals succeed."""
        if not self.is_leader:
            return True
        return self.clock.monotonic() - self._last_renew <= self.config.lease_duration


def _exit_process(why: str) -> None:
    # Exit immediately, skipping kopf's graceful shutdown: handlers still running could
    # otherwise write after another replica has become leader. Kubernetes restarts the pod.
    logging.shutdown()
    os._exit(70)

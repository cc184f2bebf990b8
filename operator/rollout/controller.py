"""The rollout's impure side, called from one reconcile: observe, step the machine, scrape.

The reconciler calls :meth:`RolloutController.prepare` before rendering (it returns the next
status.rollout and the plan the renderers need) and :meth:`RolloutController.after_apply` once
the children are written. Baselines of the routers' counters live in memory: after an operator
restart the first interval only takes a new baseline (machine.step waits one interval).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mlserving.operator import naming
from mlserving.operator.apply import controller_of, selector_for
from mlserving.operator.kinds import KINDS, POD
from mlserving.operator.kubeapi import ApiError, KubeApi
from mlserving.operator.rollout import machine
from mlserving.operator.rollout.analysis import Series, delta, shadow_stats, version_stats
from mlserving.operator.rollout.decision import Verdict, judge
from mlserving.operator.rollout.metrics import RolloutMetrics
from mlserving.operator.rollout.plan import RolloutPlan, plan
from mlserving.operator.rollout.scrape import scrape_routers
from mlserving.operator.rollout.served import read_served
from mlserving.operator.spec import ModelDeploymentSpec
from mlserving.operator.status import deployment_rolled_out, has_available_pod

log = logging.getLogger("mlserving.operator.rollout")
DEPLOYMENT = KINDS[("apps/v1", "Deployment")]


@dataclass
class Prepared:
    state: dict | None
    plan: RolloutPlan | None
    transition: machine.Transition
    command: str | None  # the annotation value to remove once status is written


class RolloutController:
    def __init__(self, api: KubeApi, scrape: Callable[[KubeApi, str, str], dict[str, Series]] = scrape_routers,
                 metrics: RolloutMetrics | None = None, clock: Callable[[], datetime] | None = None):
        self.api = api
        self.scrape = scrape
        self.metrics = metrics or RolloutMetrics()
        self.clock = clock or (lambda: datetime.now(UTC).replace(tzinfo=None))
        self.baselines: dict[str, dict[str, Series]] = {}

    def prepare(self, md: dict, spec: ModelDeploymentSpec) -> Prepared:
        meta = md["metadata"]
        previous = (md.get("status") or {}).get("rollout")
        command = (meta.get("annotations") or {}).get(machine.COMMAND_ANNOTATION)
        if spec.rollout is None and not machine.is_active(previous):
            return Prepared(previous, None, machine.Transition(previous), command)
        live = self._deployments(md)
        served = {v.name: read_served(live.get(naming.variant_child(spec.name, v.name))) for v in spec.variants}

        def rolled(name: str | None) -> bool:
            return name in live and deployment_rolled_out(live[name])[0]

        observed = machine.Observed(
            track_ready=rolled((previous or {}).get("track")),
            routers_ready=rolled(naming.router_child(spec.name)),
            promoted_ready=self._promoted_ready(md, previous, served, rolled))
        uid = meta["uid"]
        transition = machine.step(spec, previous, served, observed, self.clock(),
                                  lambda shadow: self._analyze(md, spec, previous, shadow), command)
        state = transition.state
        if not machine.is_active(state):
            self.baselines.pop(uid, None)
        router_available = has_available_pod(live.get(naming.router_child(spec.name)))
        return Prepared(state, plan(spec, state, served, router_available), transition, command)

    def after_apply(self, md: dict, prepared: Prepared) -> None:
        meta = md["metadata"]
        if prepared.transition.rebaseline:
            try:
                self.baselines[meta["uid"]] = self.scrape(self.api, meta["namespace"], meta["name"])
            except ApiError as exc:
                log.warning("%s/%s: listing router pods: %s", meta["namespace"], meta["name"], exc)
                self.baselines.pop(meta["uid"], None)
        self.metrics.record(meta["namespace"], meta["name"], prepared.state)

    def forget(self, namespace: str, name: str, uid: str | None) -> None:
        if uid:
            self.baselines.pop(uid, None)
        self.metrics.forget(namespace, name)

    def _promoted_ready(self, md: dict, previous: dict | None, served: dict[str, dict | None],
                        rolled: Callable[[str], bool]) -> bool:
        """Promoting, the variant's Deployment rolled out serving the new version, and no pod of the
        old version left (only the promoting stage asks)."""
        if not machine.is_active(previous) or previous.get("stage") != machine.PROMOTING:
            return False
        variant = previous["variant"]
        return (rolled(naming.variant_child(md["metadata"]["name"], variant))
                and (served.get(variant) or {}).get("version") == previous.get("toVersion")
                and self._old_pods_gone(md, previous))

    def _old_pods_gone(self, md: dict, state: dict) -> bool:
        """No pod of the variant serves the old version any more, terminating ones included: until
        its process ends, a terminating pod still answers on the router's kept-alive connections."""
        meta = md["metadata"]
        selector = f"{selector_for(meta['name'])},{naming.LABEL_VARIANT}={state['variant']}"
        try:
            pods = self.api.list(POD, meta["namespace"], selector, cached=True)
        except ApiError as exc:
            log.warning("%s/%s: listing the variant's pods: %s", meta["namespace"], meta["name"], exc)
            return False
        return not any((p["metadata"].get("labels") or {}).get(naming.LABEL_MODEL_VERSION) == state["fromVersion"]
                       for p in pods)

    def _deployments(self, md: dict) -> dict[str, dict]:
        meta = md["metadata"]
        try:
            found = self.api.list(DEPLOYMENT, meta["namespace"], selector_for(meta["name"]), cached=True)
        except ApiError as exc:
            log.warning("%s/%s: listing Deployments: %s", meta["namespace"], meta["name"], exc)
            return {}
        return {d["metadata"]["name"]: d for d in found if (controller_of(d) or {}).get("uid") == meta["uid"]}

    def _analyze(self, md: dict, spec: ModelDeploymentSpec, state: dict, shadow: bool) -> Verdict | None:
        meta = md["metadata"]
        try:
            now = self.scrape(self.api, meta["namespace"], meta["name"])
        except ApiError as exc:
            log.warning("%s/%s: listing router pods: %s", meta["namespace"], meta["name"], exc)
            return None
        before = self.baselines.get(meta["uid"])
        # A pod that missed this scrape keeps its last figures: when it answers again, only what
        # it counted since then is new.
        self.baselines[meta["uid"]] = {**(before or {}), **now}
        if before is None:
            return None
        d = delta(before, now)
        variant = state["variant"]
        new = version_stats(d, variant, state["toVersion"])
        old = version_stats(d, variant, state["fromVersion"])
        return judge(spec.rollout, new, old, shadow_stats(d, variant, state["toVersion"]) if shadow else None)

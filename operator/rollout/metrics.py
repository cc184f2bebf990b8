"""The operator's rollout gauges, in a registry of their own, served on the operator's /metrics."""

from __future__ import annotations

from mlserving.operator.rollout.machine import PHASES
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class RolloutMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self.phase = Gauge("mlserving_rollout_phase", "1 for the phase the ModelDeployment's last rollout is in",
                           ["namespace", "name", "variant", "phase"], registry=self.registry)
        self.weight = Gauge("mlserving_rollout_weight",
                            "Percent of the rolling variant's traffic on the new version",
                            ["namespace", "name", "variant"], registry=self.registry)
        self._variants: dict[tuple[str, str], str] = {}

    def record(self, namespace: str, name: str, state: dict | None) -> None:
        if not state:
            return
        variant = state.get("variant", "")
        old = self._variants.get((namespace, name))
        if old is not None and old != variant:
            self.forget(namespace, name)
        self._variants[(namespace, name)] = variant
        for phase in PHASES:
            self.phase.labels(namespace, name, variant, phase).set(1 if state.get("phase") == phase else 0)
        self.weight.labels(namespace, name, variant).set(state.get("weight", 0))

    def forget(self, namespace: str, name: str) -> None:
        variant = self._variants.pop((namespace, name), None)
        if variant is None:
            return
        for phase in PHASES:
            try:
                self.phase.remove(namespace, name, variant, phase)
            except KeyError:
                pass
        try:
            self.weight.remove(namespace, name, variant)
        except KeyError:
            pass

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""A Reconciler on the in-memory API, and the moves of the controllers the fake does not run."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from fake_kubeapi import FakeClock, FakeKubeApi
from mlserving.operator.gateway import GatewayDetector
from mlserving.operator.kinds import DEPLOYMENT, MODEL_DEPLOYMENT, child_kinds
from mlserving.operator.reconcile import Reconciler, Result
from render_helpers import SETTINGS, make_md

NAMESPACE = "team-a"
NAME = "fraud"


@dataclass
class World:
    api: FakeKubeApi
    clock: FakeClock
    reconciler: Reconciler

    def md(self) -> dict:
        return self.api.get(MODEL_DEPLOYMENT, NAMESPACE, NAME)

    def reconcile(self) -> Result:
        return self.reconciler.reconcile(self.md())

    def change_spec(self, change) -> None:
        md = self.md()
        change(md["spec"])
        self.api.replace(MODEL_DEPLOYMENT, NAMESPACE, NAME, md, field_manager="kubectl")

    def children(self) -> dict[tuple[str, str], dict]:
        """Every object controlled by the ModelDeployment, keyed by (kind, name)."""
        uid = self.md()["metadata"]["uid"]
        return {(o["kind"], o["metadata"]["name"]): o for o in self.api.objects()
                if any(r.get("controller") and r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])}

    def condition(self, type_: str) -> dict | None:
        found = [c for c in (self.md().get("status") or {}).get("conditions") or [] if c["type"] == type_]
        return found[0] if found else None

    def events(self) -> list[tuple[str, str]]:
        return [(e["type"], e["reason"]) for e in self.api.objects("Event")]

    def roll_out(self) -> None:
        """What the Deployment controller does: every replica updated, ready and available."""
        for dep in self.api.list(DEPLOYMENT, NAMESPACE):
            want = dep["spec"].get("replicas", 1)
            status = {"observedGeneration": dep["metadata"]["generation"], "replicas": want,
                      "updatedReplicas": want, "readyReplicas": want, "availableReplicas": want}
            self.api.merge_patch(DEPLOYMENT, NAMESPACE, dep["metadata"]["name"], {"status": status},
                                 subresource="status", field_manager="kube-controller-manager")

    def scale(self, deployment: str, replicas: int) -> None:
        """What the HPA controller does (an Update through the scale subresource)."""
        self.api.merge_patch(DEPLOYMENT, NAMESPACE, deployment, {"spec": {"replicas": replicas}},
                             subresource="scale", field_manager="kube-controller-manager")


def world(variants=None, **spec) -> World:
    clock = FakeClock()
    api = FakeKubeApi(clock)
    md = make_md(copy.deepcopy(variants) if variants is not None else None, name=NAME, namespace=NAMESPACE, **spec)
    api.create(MODEL_DEPLOYMENT, NAMESPACE, md, field_manager="kubectl")
    reconciler = Reconciler(api, SETTINGS, GatewayDetector(api, clock=clock), identity="op-0", clock=clock)
    return World(api, clock, reconciler)


def non_optional_child_kinds() -> set[str]:
    return {k.kind for k in child_kinds() if not k.optional}

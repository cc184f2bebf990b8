"""The Reconciler drives a rollout end to end over the in-memory API, with the analysis fed by a
real router metrics registry: status.rollout, Events, children, commands and the restart path."""

import json
from datetime import UTC, datetime

from mlserving.operator.gateway import GatewayDetector
from mlserving.operator.kinds import KINDS, MODEL_DEPLOYMENT
from mlserving.operator.reconcile import Reconciler
from mlserving.operator.rollout.analysis import parse_metrics
from mlserving.operator.rollout.controller import RolloutController
from mlserving.server.router.metrics import RouterMetrics
from operator_world import NAME, NAMESPACE, world
from render_helpers import SETTINGS

DEP = KINDS[("apps/v1", "Deployment")]
CM = KINDS[("v1", "ConfigMap")]
ROLLOUT = {"steps": [20, 50], "intervalSeconds": 30, "minRequests": 10}


def rollout_reconciler(w, scrape) -> Reconciler:
    """The world's Reconciler with a rollout controller that scrapes ``scrape`` on the world's clock."""
    rc = RolloutController(w.api, scrape=scrape,
                           clock=lambda: datetime.fromtimestamp(w.clock.time(), UTC).replace(tzinfo=None))
    return Reconciler(w.api, SETTINGS, GatewayDetector(w.api, clock=w.clock), identity="op-0", clock=w.clock,
                      rollouts=rc)


class Harness:
    def __init__(self, rollout=None):
        self.world = world([{"name": "stable", "version": "1.0.0", "weight": 100}])
        self.api, self.clock = self.world.api, self.world.clock
        self.router = RouterMetrics()
        self.reconciler = self._reconciler()
        self.reconcile()
        self.world.roll_out()
        self.reconcile()
        self.rollout = rollout or ROLLOUT

    def _reconciler(self):
        return rollout_reconciler(self.world, lambda api, ns, name: {
            "router-0": parse_metrics(self.router.render().decode())})

    def md(self):
        return self.world.md()

    def reconcile(self):
        result = self.reconciler.reconcile(self.md())
        assert result.ok, result.message
        return self.md()

    def roll_out(self):
        self.world.roll_out()

    def set_version(self, version):
        def change(spec):
            spec["variants"][0]["version"] = version
            spec["rollout"] = json.loads(json.dumps(self.rollout))
        self.world.change_spec(change)

    def annotate(self, value):
        self.api.merge_patch(MODEL_DEPLOYMENT, NAMESPACE, NAME,
                             {"metadata": {"annotations": {"mlserving.io/rollout": value}}}, field_manager="kubectl")

    def traffic(self, new_ok=100, new_5xx=0, old=400):
        for _ in range(old):
            self.router.count_request("stable", "1.0.0", 200)
            self.router.observe_upstream("stable", "1.0.0", 0.01)
        for i in range(new_ok + new_5xx):
            self.router.count_request("stable", "2.0.0", 503 if i < new_5xx else 200)
            self.router.observe_upstream("stable", "2.0.0", 0.011)

    def rollout_state(self):
        return self.md()["status"]["rollout"]

    def deployments(self):
        return {o["metadata"]["name"]: o for o in self.api.list(DEP, NAMESPACE)}

    def table(self):
        return json.loads(self.api.get(CM, NAMESPACE, "fraud-routing")["data"]["routing.json"])

    def reasons(self):
        return [reason for _type, reason in self.world.events()]


def version_of(dep):
    return dep["spec"]["template"]["metadata"]["labels"]["mlserving.io/model-version"]


def test_healthy_rollout_from_start_to_promotion():
    h = Harness()
    h.set_version("2.0.0")
    h.reconcile()
    state = h.rollout_state()
    assert (state["phase"], state["stage"], state["fromVersion"], state["toVersion"]) == \
        ("Progressing", "Starting", "1.0.0", "2.0.0")
    deps = h.deployments()
    assert version_of(deps["fraud-stable"]) == "1.0.0" and version_of(deps[state["track"]]) == "2.0.0"
    assert "fraud-router" in deps and "tracks" not in h.table()["variants"][0]
    h.roll_out()
    h.clock.advance(2)
    h.reconcile()
    assert h.rollout_state()["weight"] == 20
    assert [t["weight"] for t in h.table()["variants"][0]["tracks"]] == [80, 20]
    for weight in (50, 100):
        h.traffic()
        h.clock.advance(31)
        h.reconcile()
        assert h.rollout_state()["weight"] == weight
        assert h.rollout_state()["lastAnalysis"]["requests"] == 100
    assert version_of(h.deployments()["fraud-stable"]) == "2.0.0"  # promoting: the variant rolls
    h.roll_out()
    h.clock.advance(2)
    h.reconcile()
    state = h.rollout_state()
    assert state["phase"] == "Promoted" and set(h.deployments()) == {"fraud-stable", "fraud-router"}
    assert "tracks" not in h.table()["variants"][0] and h.table()["variants"][0]["version"] == "2.0.0"
    assert h.reasons().count("RolloutStep") == 3 and "RolloutPromoted" in h.reasons()
    text = h.reconciler.rollout_controller.metrics.render().decode()
    assert 'mlserving_rollout_phase{name="fraud",namespace="team-a",phase="Promoted",variant="stable"} 1.0' in text
    assert 'mlserving_rollout_weight{name="fraud",namespace="team-a",variant="stable"} 100.0' in text


def start_steps(h):
    h.set_version("2.0.0")
    h.reconcile()
    h.roll_out()
    h.clock.advance(2)
    h.reconcile()
    assert h.rollout_state()["weight"] == 20


def test_errors_roll_back_after_failure_limit_with_the_check_in_status():
    h = Harness()
    start_steps(h)
    for _ in range(2):
        h.traffic(new_ok=80, new_5xx=20)
        h.clock.advance(31)
        h.reconcile()
    state = h.rollout_state()
    assert state["phase"] == "RolledBack"
    assert state["lastAnalysis"]["failedCheck"] == "maxErrorRatio" and state["lastAnalysis"]["value"] == 0.2
    assert set(h.deployments()) == {"fraud-stable", "fraud-router"} and version_of(h.deployments()["fraud-stable"]) == "1.0.0"
    assert h.md()["spec"]["variants"][0]["version"] == "2.0.0"  # the spec is left as written
    assert "RolloutRolledBack" in h.reasons()


def test_commands_act_once_and_the_annotation_goes():
    h = Harness()
    start_steps(h)
    h.annotate("pause")
    h.reconcile()
    assert h.rollout_state()["phase"] == "Paused" and "pausedPhase" in h.rollout_state()
    assert "mlserving.io/rollout" not in h.md()["metadata"].get("annotations", {})
    h.traffic(new_5xx=100)
    h.clock.advance(300)
    h.reconcile()
    assert h.rollout_state()["phase"] == "Paused" and h.rollout_state()["weight"] == 20  # held
    h.annotate("resume")
    h.reconcile()
    assert h.rollout_state()["phase"] == "Progressing" and "pausedPhase" not in h.rollout_state()
    h.annotate("sideways")
    h.reconcile()
    assert "RolloutCommandUnknown" in h.reasons()
    assert "mlserving.io/rollout" not in h.md()["metadata"].get("annotations", {})
    h.annotate("abort")
    h.reconcile()
    assert h.rollout_state()["phase"] == "RolledBack"
    h.annotate("retry")
    h.reconcile()
    assert h.rollout_state()["stage"] == "Starting"


def test_a_new_operator_resumes_from_status_and_keeps_both_versions():
    h = Harness()
    start_steps(h)
    h.traffic()
    h.clock.advance(31)
    h.reconcile()
    assert h.rollout_state()["weight"] == 50
    h.reconciler = h._reconciler()  # a restarted operator: no baseline in memory
    h.clock.advance(31)
    h.reconcile()
    state = h.rollout_state()
    assert state["weight"] == 50 and state["step"] == 1  # resumed, not restarted; a baseline taken
    assert {"fraud-stable", state["track"], "fraud-router"} <= set(h.deployments())
    h.traffic()
    h.clock.advance(31)
    h.reconcile()
    assert h.rollout_state()["stage"] == "Promoting"


def test_a_router_pod_that_misses_a_scrape_is_not_counted_twice():
    h = Harness()
    start_steps(h)
    pods = {"router-0": True}
    real = h.reconciler.rollout_controller.scrape
    h.reconciler.rollout_controller.scrape = lambda api, ns, name: real(api, ns, name) if pods["router-0"] else {}
    h.traffic(new_ok=100)
    pods["router-0"] = False  # this interval's scrape misses the pod: nothing measured
    h.clock.advance(31)
    h.reconcile()
    assert h.rollout_state()["lastAnalysis"]["verdict"] == "Inconclusive"
    pods["router-0"] = True
    h.traffic(new_ok=30)
    h.clock.advance(31)
    h.reconcile()
    assert h.rollout_state()["lastAnalysis"]["requests"] == 130  # since the last figures it reported


def test_a_single_variant_gaining_spec_rollout_moves_its_service_to_the_router_once_a_router_pod_is_available():
    w = world([{"name": "stable", "version": "1.0.0", "weight": 100}])
    r = w.reconciler
    r.reconcile(w.md())
    w.roll_out()
    r.reconcile(w.md())
    svc = KINDS[("v1", "Service")]

    def selected() -> str:
        return w.api.get(svc, NAMESPACE, NAME)["spec"]["selector"]["mlserving.io/variant"]

    w.change_spec(lambda spec: spec.update(rollout=dict(ROLLOUT)))
    assert r.reconcile(w.md()).ok
    assert "fraud-router" in {d["metadata"]["name"] for d in w.api.list(DEP, NAMESPACE)}
    assert selected() == "stable"  # no router pod yet: the variant keeps serving
    # The router's pod turns available; the operator hears it as a Deployment status change.
    w.roll_out()
    assert r.refresh_status(NAMESPACE, NAME).ok
    assert selected() == "router"
    assert w.condition("Ready")["status"] == "True"
    # From then on a status refresh is only a status refresh.
    before = w.api.get(svc, NAMESPACE, NAME)["metadata"]["resourceVersion"]
    assert r.refresh_status(NAMESPACE, NAME).ok and r.awaiting_router == set()
    assert w.api.get(svc, NAMESPACE, NAME)["metadata"]["resourceVersion"] == before


def test_promoted_only_once_no_pod_of_the_old_version_is_left_terminating_included():
    from mlserving.operator import naming

    h = Harness()
    h.set_version("2.0.0")
    h.reconcile()
    h.roll_out()
    h.clock.advance(2)
    h.reconcile()
    pod = KINDS[("v1", "Pod")]
    labels = {naming.LABEL_INSTANCE: NAME, naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
              naming.LABEL_VARIANT: "stable", naming.LABEL_MODEL_VERSION: "1.0.0"}
    h.api.create(pod, NAMESPACE, {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "fraud-stable-old", "labels": labels}})
    h.annotate("promote")
    h.reconcile()
    assert h.rollout_state()["stage"] == "Promoting"
    h.roll_out()  # fraud-stable rolled to 2.0.0, but the old pod still answers while it terminates
    h.clock.advance(2)
    h.reconcile()
    assert h.rollout_state()["stage"] == "Promoting"
    h.api.delete(pod, NAMESPACE, "fraud-stable-old")
    h.clock.advance(2)
    h.reconcile()
    assert h.rollout_state()["phase"] == "Promoted"


def test_an_unknown_rollout_command_is_refused_naming_the_annotation_and_removed():
    h = Harness()
    h.set_version("2.0.0")
    h.reconcile()
    h.annotate("faster")
    h.reconcile()
    assert "mlserving.io/rollout" not in (h.md()["metadata"].get("annotations") or {})
    from mlserving.operator.rollout.machine import EVENT_COMMAND_UNKNOWN

    assert ("Warning", EVENT_COMMAND_UNKNOWN) in h.world.events()
    assert h.rollout_state()["phase"] == "Progressing"  # nothing else changed

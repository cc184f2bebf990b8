"""End to end: progressive delivery on a real cluster, with constant in-cluster load.

One single-variant ModelDeployment with ``spec.rollout`` (short intervals so the suite fits its
budget), so it has its router all along and the load's kept-alive connections go through it;
each test changes its version and follows the rollout through ``status.rollout``, the
router pods' own ``mlserving_router_variant_weight`` series and the answers a load Job
(tests/e2e/loadgen.py) got through the stable Service:

- a healthy version walks its steps and is promoted (the weight timeline is printed);
- a version that is really slow (tests/e2e/misbehaving_models.py, fetched over HTTP from a
  ConfigMap volume) is rolled back on its latency SLO;
- a version whose decisions are the opposite ones is rolled back while shadowing, before any
  user gets an answer from it;
- pause / resume / promote / abort / retry by annotation and by ``mlserving rollout`` (also as
  the ``kubectl mlserving`` plugin);
- the leading operator pod deleted mid-rollout: the standby carries on from the same step.

The tests run in file order and share the ModelDeployment: each starts from what the previous
one left being served. :func:`rollout_model_deployment` builds the ModelDeployment from spec
overrides, so another suite (network policies on, for example) can apply the same one.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Self

import loadgen
import misbehaving_models
import netprobe
import pytest
from mlserving.operator import naming
from providers.base import project_images
from test_ab import (
    E2E_RESOURCES,
    PAYLOAD,
    install_operator,
    load_job,
    loadgen_configmap,
    restricted_namespace,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMESPACE = "mlserving-e2e-rollout"
NAME = "fraud"
VARIANT = "stable"
OPERATOR_NAMESPACE = "mlserving-system"
LEASE = "mlserving-operator"
SLOW, FLIPPED = "3.0.0-slow", "4.0.0-flipped"
LOAD_RATE = 30  # requests/s: 20 % of it over one interval is well above minRequests
# Fast enough for the suite's 5-minute budget; latency limits loose enough that a healthy version
# never fails on a shared 2-core machine's noise (the slow test tightens the absolute one).
FAST_ROLLOUT = {"steps": [20, 50], "intervalSeconds": 5, "failureLimit": 2, "minRequests": 10,
                "progressDeadlineSeconds": 120, "shadowSeconds": 0,
                "slo": {"maxErrorRatio": 0.01, "maxLatencyP99Ms": 2000, "maxLatencyRatio": 10}}
SERIES = re.compile(r'^(\w+)\{([^}]*)\}\s+(\S+)', re.MULTILINE)


def _merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def rollout_model_deployment(name: str = NAME, namespace: str = NAMESPACE, **spec_overrides) -> dict:
    """The single-variant ModelDeployment of this suite, with ``spec_overrides`` merged into its spec
    (dicts merged key by key, anything else replaced), e.g. ``security={"allowedFrom": [...]}``."""
    spec = {"model": "fraud", "variants": [{"name": VARIANT, "version": "1.0.0", "weight": 100}],
            "resources": E2E_RESOURCES, "rollout": FAST_ROLLOUT}
    return {"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": namespace}, "spec": _merge(spec, spec_overrides)}


class Timeline:
    """Samples status.rollout and the routers' weight series about once a second, in a thread."""

    def __init__(self, suite: RolloutSuite):
        self.suite = suite
        self.samples: list[tuple[float, str, int, int, dict]] = []  # (t, phase, step, weight, router weights)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self.t0 = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        print(self.render())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rollout = self.suite.rollout()
                weights = self.suite.router_weights()
            except Exception as exc:  # noqa: BLE001 - a missed sample is not a failure
                print(f"timeline: sample failed: {exc}")
            else:
                self.samples.append((time.time(), rollout.get("phase", ""), rollout.get("step", -1),
                                     rollout.get("weight", 0), weights))
            self._stop.wait(1.0)

    def changes(self) -> list[tuple[float, str, int, dict]]:
        """(seconds since start, phase, status weight, router weights) whenever one of them changed."""
        out, last = [], None
        for t, phase, _step, weight, routers in self.samples:
            key = (phase, weight, json.dumps(routers, sort_keys=True))
            if key != last:
                out.append((round(t - self.t0, 1), phase, weight, routers))
                last = key
        return out

    def render(self) -> str:
        lines = ["rollout timeline (s, phase, status weight, router weights per version):"]
        lines += [f"  {t:6.1f}  {phase:<12} {weight:>3}%  {routers}" for t, phase, weight, routers in self.changes()]
        return "\n".join(lines)

    def router_weights_seen(self, version: str) -> set[float]:
        return {routers[version] for *_, routers in self.samples if version in routers}


class RolloutSuite:
    def __init__(self, cluster):
        self.k = cluster
        self.load_jobs = 0
        self.running: set[str] = set()

    # --- the ModelDeployment -----------------------------------------------------------------

    def get(self) -> dict:
        return self.k.get_json(f"modeldeployment/{NAME}", namespace=NAMESPACE)

    def rollout(self) -> dict:
        return (self.get().get("status") or {}).get("rollout") or {}

    def set_version(self, version: str, storage_uri: str | None = None, **rollout) -> None:
        variant = {"name": VARIANT, "version": version, "weight": 100, **({"storageUri": storage_uri} if storage_uri else {})}
        patch = {"spec": {"variants": [variant], "rollout": _merge(FAST_ROLLOUT, rollout)}}
        self.k.kubectl("patch", f"modeldeployment/{NAME}", "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))

    def annotate(self, command: str) -> None:
        self.k.kubectl("annotate", "--overwrite", f"modeldeployment/{NAME}", "-n", NAMESPACE,
                       f"mlserving.io/rollout={command}")

    def cli(self, command: str, *, plugin: bool = False) -> str:
        """``mlserving rollout COMMAND md/NAME``, or the same through ``kubectl mlserving``."""
        bindir = os.path.dirname(sys.executable)
        if plugin:
            cmd = [self.k.kubectl_bin, "mlserving"]
            env = {**self.k.env, "PATH": bindir + os.pathsep + self.k.env.get("PATH", "")}
        else:
            cmd = [shutil.which("mlserving", path=bindir) or "mlserving"]
            env = self.k.env
        proc = subprocess.run([*cmd, "rollout", command, f"md/{NAME}", "-n", NAMESPACE], capture_output=True,
                              text=True, timeout=60, env=env, check=False)
        assert proc.returncode == 0, f"{' '.join(cmd)} rollout {command}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def annotation(self) -> str | None:
        return (self.get()["metadata"].get("annotations") or {}).get("mlserving.io/rollout")

    def wait_for(self, what: str, predicate, timeout: float = 150, interval: float = 1.0) -> dict:
        """status.rollout once ``predicate(rollout)`` holds."""
        deadline = time.monotonic() + timeout
        rollout: dict = {}
        while time.monotonic() < deadline:
            rollout = self.rollout()
            if predicate(rollout):
                return rollout
            time.sleep(interval)
        pytest.fail(f"{what}: not within {timeout:.0f} s; status.rollout: {json.dumps(rollout, indent=1)}")

    def wait_phase(self, phase: str, to_version: str, timeout: float = 150) -> dict:
        return self.wait_for(f"phase {phase} of the rollout to {to_version}",
                             lambda r: r.get("phase") == phase and r.get("toVersion") == to_version, timeout)

    def wait_annotation_gone(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.annotation() is not None:
            if time.monotonic() > deadline:
                pytest.fail(f"the operator did not remove mlserving.io/rollout={self.annotation()} in {timeout:.0f} s")
            time.sleep(0.5)

    def events(self, reason: str) -> list[dict]:
        items = self.k.get_json("events", "--field-selector", f"involvedObject.name={NAME},reason={reason}",
                                namespace=NAMESPACE)["items"]
        return items

    def operator_metrics(self) -> str:
        """/metrics of the operator pod holding the Lease (the one that reconciles)."""
        leader = self.k.kubectl("get", "lease", LEASE, "-n", OPERATOR_NAMESPACE, "-o", "jsonpath={.spec.holderIdentity}")
        return self.k.kubectl("get", "--raw", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods/{leader}:9090/proxy/metrics")

    # --- children ------------------------------------------------------------------------------

    def pods(self) -> list[dict]:
        return self.k.get_json("pods", "-l", f"app.kubernetes.io/instance={NAME}", namespace=NAMESPACE)["items"]

    def served_versions(self) -> set[str]:
        """mlserving.io/model-version of every model pod (router pods excluded), terminating ones too."""
        return {p["metadata"]["labels"].get("mlserving.io/model-version") for p in self.pods()
                if p["metadata"]["labels"].get("mlserving.io/variant") != "router"}

    def wait_children_settled(self, version: str, timeout: float = 120) -> None:
        """Only ``version``'s model pods left and no track Deployment: the variant's and the router's."""
        deadline = time.monotonic() + timeout
        want = sorted([f"{NAME}-{VARIANT}", naming.router_child(NAME)])
        while True:
            deployments = sorted(d["metadata"]["name"] for d in self.k.get_json(
                "deployments", "-l", f"app.kubernetes.io/instance={NAME}", namespace=NAMESPACE)["items"])
            versions = self.served_versions()
            if deployments == want and versions == {version}:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{timeout:.0f} s after the rollout: Deployments {deployments}, pod versions {versions} "
                            f"(want {want}, serving {version})")
            time.sleep(1)

    def wait_service_on_router(self, timeout: float = 60) -> None:
        """The stable Service selects the router's pods (it does once a router pod is available)."""
        deadline = time.monotonic() + timeout
        while True:
            selector = self.k.get_json(f"service/{NAME}", namespace=NAMESPACE)["spec"]["selector"]
            if selector.get(naming.LABEL_VARIANT) == naming.ROUTER:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"service/{NAME} still selects {selector} {timeout:.0f} s after Ready, not the router")
            time.sleep(1)

    def router_weights(self) -> dict[str, float]:
        """version -> the variant's weight as the first ready router pod has it in force."""
        for pod in self.pods():
            labels = pod["metadata"]["labels"]
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
            if labels.get("mlserving.io/variant") != "router" or not ready:
                continue
            text = self.k.kubectl("get", "--raw", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}:9090"
                                  "/proxy/metrics", timeout=20, check=False)
            return {labels["version"]: value for labels, value in labelled(text, "mlserving_router_variant_weight")
                    if labels.get("variant") == VARIANT}
        return {}

    # --- load ------------------------------------------------------------------------------------

    def start_load(self, rate: float = LOAD_RATE) -> str:
        for left in self.running:  # a failed test's load must not run on under the next one's
            self.k.kubectl("exec", f"job/{left}", "-n", NAMESPACE, "--", *loadgen.STOP_COMMAND,
                           check=False)
        self.running.clear()
        self.load_jobs += 1
        job = f"rollout-load-{self.load_jobs}"
        url = f"http://{NAME}.{NAMESPACE}.svc.cluster.local/predict"
        args = ["--url", url, "--payload", json.dumps(PAYLOAD), "--duration", "600", "--rate", str(rate),
                "--concurrency", "4", "--stop-file", loadgen.STOP_FILE]
        self.k.apply(load_job(job, args, deadline=720, namespace=NAMESPACE))
        self.running.add(job)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            log = self.k.kubectl("logs", f"job/{job}", "-n", NAMESPACE, check=False)
            if "LOADGEN_STARTED " in log:
                return job
            time.sleep(1)
        pytest.fail(f"load Job {job}: no answer within 120 s:\n{log}")

    def stop_load(self, job: str) -> dict:
        self.k.kubectl("exec", f"job/{job}", "-n", NAMESPACE, "--", *loadgen.STOP_COMMAND)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = self.k.get_json(f"job/{job}", namespace=NAMESPACE).get("status") or {}
            if status.get("succeeded") or status.get("failed"):
                log = self.k.kubectl("logs", f"job/{job}", "-n", NAMESPACE)
                self.running.discard(job)
                self.k.kubectl("delete", "job", job, "-n", NAMESPACE, "--wait=false", check=False)
                return loadgen.parse_result(log)
            time.sleep(1)
        pytest.fail(f"load Job {job} did not stop within 60 s of its stop file")


def labelled(text: str, metric: str) -> list[tuple[dict, float]]:
    """(labels, value) of every sample of ``metric`` in a Prometheus text exposition."""
    return [(dict(re.findall(r'(\w+)="([^"]*)"', labels)), float(value))
            for name, labels, value in SERIES.findall(text) if name == metric]


def series(text: str, metric: str, **labels: str) -> list[float]:
    """Values of the samples of ``metric`` whose labels are exactly ``labels``."""
    return [value for found, value in labelled(text, metric) if found == labels]


def versions_by_second(result: dict) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for second, variant, version, _n in result["timeline"]:
        if variant != "FAILED":
            out.setdefault(second, set()).add(version)
    return out


def answered(result: dict, version: str) -> int:
    return sum(n for _s, variant, v, n in result["timeline"] if variant != "FAILED" and v == version)


@pytest.fixture(scope="module")
def suite(e2e_cluster):
    k = e2e_cluster
    install_operator(k)
    archives = misbehaving_models.build_archives("fraud", {SLOW: "slow", FLIPPED: "flipped"})
    k.apply([restricted_namespace(NAMESPACE), loadgen_configmap(NAMESPACE),
             *misbehaving_models.file_server(NAMESPACE, archives)])
    k.apply(rollout_model_deployment())
    k.kubectl("wait", "--for=condition=Ready", f"modeldeployment/{NAME}", "-n", NAMESPACE, "--timeout=300s",
              timeout=320)
    k.kubectl("rollout", "status", f"deployment/{misbehaving_models.MODEL_FILES}", "-n", NAMESPACE,
              "--timeout=120s", timeout=140)
    suite = RolloutSuite(k)
    suite.wait_service_on_router()
    yield suite
    k.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def test_healthy_version_walks_its_steps_and_is_promoted_without_a_failed_request(suite):
    job = suite.start_load()
    with Timeline(suite) as timeline:
        suite.set_version("2.0.0")
        suite.wait_phase("Progressing", "2.0.0", timeout=60)
        column = suite.k.kubectl("get", f"modeldeployment/{NAME}", "-n", NAMESPACE)  # the ROLLOUT printer column
        done = suite.wait_phase("Promoted", "2.0.0", timeout=180)
        promoted = time.time()
        suite.wait_children_settled("2.0.0")
        time.sleep(3)  # answers after the track is gone
    result = suite.stop_load(job)

    assert result["failed"] == 0, result["errors"]
    weights = [h["weight"] for h in done["history"]]
    assert weights == sorted(weights) and {20, 50, 100} <= set(weights), done["history"]
    # the routers had each step in force, as their own weight series say
    assert {20.0, 50.0} <= timeline.router_weights_seen("2.0.0"), timeline.render()
    by_second = versions_by_second(result)
    assert any(v == {"1.0.0", "2.0.0"} for v in by_second.values()), "no second answered by both versions"
    late = {s: v for s, v in by_second.items() if s >= promoted + 2}
    assert late and set().union(*late.values()) == {"2.0.0"}, late
    assert answered(result, "1.0.0") and answered(result, "2.0.0")
    assert suite.events("RolloutStarted") and suite.events("RolloutStep") and suite.events("RolloutPromoted")
    assert suite.annotation() is None
    assert "ROLLOUT" in column and f"{VARIANT} 1.0.0->2.0.0 Progressing" in column, column
    ours = {"namespace": NAMESPACE, "name": NAME, "variant": VARIANT}
    gauges = suite.operator_metrics()
    assert series(gauges, "mlserving_rollout_phase", **ours, phase="Promoted") == [1.0], gauges
    assert series(gauges, "mlserving_rollout_weight", **ours) == [100.0], gauges


def test_slow_version_is_rolled_back_on_its_latency_slo_while_old_users_see_no_error(suite):
    job = suite.start_load(rate=20)
    with Timeline(suite):
        suite.set_version(SLOW, misbehaving_models.storage_uri(NAMESPACE, "fraud", SLOW),
                          slo={"maxLatencyP99Ms": 50})
        first = suite.wait_for("the slow version's first failed analysis",
                               lambda r: r.get("toVersion") == SLOW and (r.get("lastAnalysis") or {}).get("verdict")
                               == "Failed", timeout=150)
        first_failed = time.time()
        done = suite.wait_phase("RolledBack", SLOW, timeout=60)
        rolled_back = time.time()
        suite.wait_children_settled("2.0.0")
    result = suite.stop_load(job)

    failure_limit, interval = FAST_ROLLOUT["failureLimit"], FAST_ROLLOUT["intervalSeconds"]
    # within failureLimit intervals of the first bad analysis (plus the operator's poll and our own)
    assert rolled_back - first_failed <= (failure_limit - 1) * interval + 10, (first, done)
    analysis = done["lastAnalysis"]
    assert analysis["failedCheck"] == "maxLatencyP99Ms", analysis
    assert analysis["value"] > analysis["limit"] == 50
    assert analysis["p99Ms"] == pytest.approx(analysis["value"], abs=0.01)
    assert "maxLatencyP99Ms" in done["message"], done["message"]
    assert answered(result, SLOW), "the slow version never answered a live request"
    assert result["failed"] == 0, result["errors"]
    late = {s: v for s, v in versions_by_second(result).items() if s >= rolled_back + 2}
    assert late and set().union(*late.values()) == {"2.0.0"}, late
    assert suite.events("RolloutRolledBack")
    # the spec is left as the user wrote it
    assert suite.get()["spec"]["variants"][0]["version"] == SLOW


def test_shadow_candidate_with_other_decisions_is_rolled_back_before_any_live_request(suite):
    job = suite.start_load()
    with Timeline(suite):
        suite.set_version(FLIPPED, misbehaving_models.storage_uri(NAMESPACE, "fraud", FLIPPED), shadowSeconds=60)
        suite.wait_phase("Shadowing", FLIPPED, timeout=120)
        done = suite.wait_phase("RolledBack", FLIPPED, timeout=90)
        suite.wait_children_settled("2.0.0")
    result = suite.stop_load(job)

    analysis = done["lastAnalysis"]
    assert analysis["failedCheck"] == "maxDecisionFlipRatio", analysis
    assert analysis["value"] > analysis["limit"] and analysis["flips"] > 0, analysis
    assert all(h["weight"] == 0 for h in done["history"]), done["history"]
    assert "Progressing" not in {h["phase"] for h in done["history"][1:]}, done["history"]
    assert answered(result, FLIPPED) == 0, "a user got an answer from the shadowed version"
    assert result["failed"] == 0, result["errors"]


def test_pause_holds_the_weight_then_cli_resume_and_promote(suite):
    interval = FAST_ROLLOUT["intervalSeconds"]
    job = suite.start_load()
    with Timeline(suite):
        suite.set_version("2.1.0", steps=[20, 50, 80])
        suite.wait_for("step 1 of the rollout to 2.1.0",
                       lambda r: r.get("toVersion") == "2.1.0" and r.get("weight") == 20, timeout=120)
        suite.annotate("pause")
        paused = suite.wait_phase("Paused", "2.1.0", timeout=30)
        suite.wait_annotation_gone()
        time.sleep(2 * interval + 2)
        held = suite.rollout()
        assert (held["phase"], held["step"], held["weight"]) == ("Paused", paused["step"], paused["weight"]), held
        assert suite.router_weights().get("2.1.0") == paused["weight"]
        # Policies on mid-rollout: the new version's track pods are shut off like the variant's.
        netprobe.assert_policies_enforced(suite.k, NAMESPACE, NAME, VARIANT, project_images()[0].ref,
                                          model_pods=f"{naming.LABEL_INSTANCE}={NAME},{naming.LABEL_TRACK}")

        suite.cli("resume")
        suite.wait_for("resumed", lambda r: r.get("phase") == "Progressing", timeout=30)
        suite.wait_annotation_gone()
        suite.cli("promote")
        done = suite.wait_phase("Promoted", "2.1.0", timeout=120)
        suite.wait_annotation_gone()
        suite.wait_children_settled("2.1.0")
    result = suite.stop_load(job)

    messages = [h["message"] for h in done["history"]]
    assert any("promoting by mlserving.io/rollout=promote" in m for m in messages), messages
    assert 80 not in {h["weight"] for h in done["history"]}, "promote did not skip the remaining steps"
    assert result["failed"] == 0, result["errors"]


def test_cli_pause_annotation_abort_cli_abort_retries_and_annotation_promote(suite):
    job = suite.start_load()
    with Timeline(suite):
        suite.set_version("2.0.0")
        suite.wait_for("step 1 of the rollout to 2.0.0",
                       lambda r: r.get("toVersion") == "2.0.0" and r.get("weight") == 20, timeout=120)
        suite.cli("pause", plugin=True)  # `kubectl mlserving rollout pause`
        suite.wait_phase("Paused", "2.0.0", timeout=30)
        suite.wait_annotation_gone()

        suite.annotate("abort")
        aborted = suite.wait_phase("RolledBack", "2.0.0", timeout=30)
        assert "aborted by mlserving.io/rollout=abort" in aborted["message"], aborted
        suite.wait_annotation_gone()
        suite.wait_children_settled("2.1.0")

        suite.annotate("retry")
        suite.wait_for("the retried rollout's step 1",
                       lambda r: r.get("phase") == "Progressing" and r.get("weight") == 20, timeout=120)
        suite.wait_annotation_gone()
        suite.cli("abort")
        suite.wait_phase("RolledBack", "2.0.0", timeout=30)
        suite.wait_annotation_gone()

        suite.cli("retry")
        suite.wait_for("the second retry's step 1",
                       lambda r: r.get("phase") == "Progressing" and r.get("weight") == 20, timeout=120)
        suite.wait_annotation_gone()
        suite.annotate("promote")
        suite.wait_phase("Promoted", "2.0.0", timeout=120)
        suite.wait_annotation_gone()
        suite.wait_children_settled("2.0.0")
    result = suite.stop_load(job)

    assert result["failed"] == 0, result["errors"]
    status = suite.cli("status")
    assert "Promoted" in status and "2.1.0->2.0.0" in status, status


def test_leading_operator_pod_deleted_mid_rollout_the_rollout_continues_from_its_step(suite):
    k = suite.k
    job = suite.start_load()
    with Timeline(suite) as timeline:
        suite.set_version("2.1.0", steps=[20, 50, 80])
        before = suite.wait_for("step 2 of the rollout to 2.1.0",
                                lambda r: r.get("toVersion") == "2.1.0" and r.get("weight") == 50, timeout=150)
        leader = k.kubectl("get", "lease", LEASE, "-n", OPERATOR_NAMESPACE, "-o", "jsonpath={.spec.holderIdentity}")
        assert leader, "no operator holds the lease"
        k.kubectl("delete", "pod", leader, "-n", OPERATOR_NAMESPACE, "--wait=false")
        deleted = time.time()
        done = suite.wait_phase("Promoted", "2.1.0", timeout=180)
        suite.wait_children_settled("2.1.0")
    result = suite.stop_load(job)

    after = [s for s in timeline.samples if s[0] > deleted and s[1] != "Promoted"]
    assert all(weight >= 50 for _t, _phase, _step, weight, _r in after), timeline.render()
    assert done["startedAt"] == before["startedAt"], "the rollout started again from scratch"
    weights = [h["weight"] for h in done["history"]]
    assert weights == sorted(weights) and {20, 50, 80, 100} <= set(weights), done["history"]
    new_leader = k.kubectl("get", "lease", LEASE, "-n", OPERATOR_NAMESPACE, "-o", "jsonpath={.spec.holderIdentity}")
    assert new_leader and new_leader != leader
    assert result["failed"] == 0, result["errors"]


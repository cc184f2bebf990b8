"""End to end: the operator and router images in a real cluster, A/B traffic from inside it.

One session (the ``e2e_cluster`` fixture has built both images and loaded them into the node):
install with ``kubectl apply -k deploy/``, apply the A/B example (90/10, resources scaled down
for a 2-core node) and wait for ``condition=Ready``. Load comes from a Job inside the cluster
running tests/e2e/loadgen.py (mounted from a ConfigMap) with the server image's python, against
the stable Service, so every request crosses the router and a variant Service like a client's.

The ModelDeployment runs with its NetworkPolicies on (the default), and the run proves they are
enforced where the traffic tests ran: a pod of another namespace gets predictions through the
router but is refused at a variant pod's serving and metrics ports, and only a namespace labelled
for monitoring scrapes the metrics ports (tests/e2e/netprobe.py).

The tests run in file order and share the ModelDeployment; the last one deletes it.
"""

from __future__ import annotations

import json
import time

import loadgen
import netprobe
import pytest
import yaml
from crd_kit import wait_crd_served
from providers.base import REPO_ROOT, project_images

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMESPACE = "mlserving-e2e"
EXAMPLE = REPO_ROOT / "examples" / "fraud-ab.yaml"
LOADGEN_CONFIGMAP = "e2e-loadgen"
# 50m per variant pod: with the routers, the operator and kind's own control plane the whole
# session fits on one 2-core node, with room for a rollout's surge pod and the load Job.
E2E_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
ROLLOUT_VERSION = "2.1.0"
CHILD_KINDS = ("deployments,replicasets,pods,services,configmaps,serviceaccounts,roles,rolebindings,"
               "horizontalpodautoscalers,poddisruptionbudgets")


def n_features() -> int:
    from mlserving.training.data import FEATURE_NAMES

    return len(FEATURE_NAMES)


PAYLOAD = {"features": [round(0.05 * i, 2) for i in range(n_features())]}


def example_md(namespace: str = NAMESPACE) -> dict:
    md = yaml.safe_load(EXAMPLE.read_text())
    md["metadata"]["namespace"] = namespace
    md["spec"]["resources"] = E2E_RESOURCES
    return md


class AB:
    """The A/B ModelDeployment under test and the load Jobs driven against it."""

    def __init__(self, cluster, md: dict):
        self.k = cluster
        self.name = md["metadata"]["name"]
        self.spec = md["spec"]

    def get(self) -> dict:
        return self.k.get_json(f"modeldeployment/{self.name}", namespace=NAMESPACE)

    def url(self) -> str:
        url = (self.get().get("status") or {}).get("url") or f"http://{self.name}.{NAMESPACE}.svc.cluster.local"
        return url.rstrip("/") + "/predict"

    def variant_index(self, name: str) -> int:
        names = [v["name"] for v in self.get()["spec"]["variants"]]
        return names.index(name)

    def patch(self, ops: list[dict]) -> None:
        self.k.kubectl("patch", f"modeldeployment/{self.name}", "-n", NAMESPACE, "--type=json", "-p", json.dumps(ops))

    def wait_ready(self, timeout: int = 300) -> None:
        self.k.kubectl("wait", "--for=condition=Ready", f"modeldeployment/{self.name}", "-n", NAMESPACE,
                       f"--timeout={timeout}s", timeout=timeout + 20)

    # --- load Jobs ---------------------------------------------------------------------------

    def start_load(self, job: str, *, duration: float, rate: float, requests: int = 0, concurrency: int = 4) -> None:
        args = ["--url", self.url(), "--payload", json.dumps(PAYLOAD), "--duration", str(duration),
                "--rate", str(rate), "--concurrency", str(concurrency)]
        if requests:
            args += ["--requests", str(requests)]
        self.k.kubectl("delete", "job", job, "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
        self.k.apply(load_job(job, args, deadline=int(duration) + 180))

    def job_status(self, job: str) -> dict:
        return self.k.get_json(f"job/{job}", namespace=NAMESPACE).get("status") or {}

    def job_log(self, job: str) -> str:
        return self.k.kubectl("logs", f"job/{job}", "-n", NAMESPACE, check=False)

    def wait_load_started(self, job: str, timeout: float = 180) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.job_log(job).splitlines():
                if line.startswith("LOADGEN_STARTED "):
                    return float(line.split()[1])
            if self.job_status(job).get("failed"):
                pytest.fail(f"load Job {job} failed before its first answer:\n{self.job_log(job)}")
            time.sleep(1)
        pytest.fail(f"load Job {job}: no answer within {timeout:.0f} s:\n{self.job_log(job)}")

    def load_result(self, job: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.job_status(job)
            if status.get("succeeded"):
                return loadgen.parse_result(self.job_log(job))
            if status.get("failed"):
                pytest.fail(f"load Job {job} failed:\n{self.job_log(job)}")
            time.sleep(2)
        pytest.fail(f"load Job {job} did not finish within {timeout:.0f} s:\n{self.job_log(job)}")


def load_job(name: str, args: list[str], deadline: int, namespace: str = NAMESPACE, pods: int = 1) -> dict:
    """``pods`` generators run side by side (each at the rate ``args`` gives), each one reporting."""
    restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                  "runAsUser": 1000, "runAsGroup": 1000, "capabilities": {"drop": ["ALL"]},
                  "seccompProfile": {"type": "RuntimeDefault"}}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "mlserving-e2e-load"}},
        "spec": {
            "backoffLimit": 0,
            "completions": pods,
            "parallelism": pods,
            "activeDeadlineSeconds": deadline,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "mlserving-e2e-load"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "load",
                        "image": project_images()[0].ref,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python3", "/loadgen/loadgen.py", *args],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}},
                        "securityContext": restricted,
                        "volumeMounts": [{"name": "loadgen", "mountPath": "/loadgen", "readOnly": True},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "loadgen", "configMap": {"name": LOADGEN_CONFIGMAP}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def restricted_namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                                  "pod-security.kubernetes.io/warn": "restricted"}}}


def loadgen_configmap(namespace: str = NAMESPACE) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": LOADGEN_CONFIGMAP, "namespace": namespace},
            "data": {"loadgen.py": (REPO_ROOT / "tests" / "e2e" / "loadgen.py").read_text()}}


def install_operator(k) -> None:
    """deploy/ applied, the CRD established and the operator Available."""
    k.kubectl("apply", "-k", str(REPO_ROOT / "deploy"))
    wait_crd_served(k)
    k.kubectl("wait", "--for=condition=Available", "deployment", "--all", "-n", "mlserving-system",
              "--timeout=300s", timeout=320)


@pytest.fixture(scope="module")
def ab(e2e_cluster):
    k = e2e_cluster
    install_operator(k)
    k.apply([restricted_namespace(NAMESPACE), loadgen_configmap(NAMESPACE)])
    md = example_md()
    k.apply(md)
    deployment = AB(k, md)
    deployment.wait_ready()
    yield deployment
    k.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def test_2000_predictions_split_by_weight_with_matching_versions(ab):
    ab.start_load("load-split", requests=2000, duration=240, rate=100)
    result = ab.load_result("load-split", timeout=420)

    assert result["failed"] == 0, result["errors"]
    assert result["ok"] == 2000
    for variant in ab.spec["variants"]:
        share = 100 * result["by_variant"].get(variant["name"], 0) / result["ok"]
        assert abs(share - variant["weight"]) <= 3, (variant["name"], share, result["by_variant"])
    versions = {v["name"]: v["version"] for v in ab.spec["variants"]}
    for variant, header_version, body_version, n in result["answers"]:
        assert header_version == versions[variant], (variant, header_version, n)
        assert body_version == versions[variant], (variant, body_version, n)


def test_candidate_rolls_to_a_new_version_under_load_without_a_failed_request(ab):
    md = ab.name
    ab.start_load("load-rollout", duration=150, rate=40)
    ab.wait_load_started("load-rollout")
    time.sleep(5)
    index = ab.variant_index("candidate")
    ab.patch([{"op": "replace", "path": f"/spec/variants/{index}/version", "value": ROLLOUT_VERSION}])
    patched = time.time()
    ab.k.kubectl("rollout", "status", f"deployment/{md}-candidate", "-n", NAMESPACE, "--timeout=120s", timeout=140)
    # Complete when no pod of the old version is left, terminating ones included.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = ab.k.get_json("pods", "-l", f"mlserving.io/model-deployment={md},mlserving.io/variant=candidate",
                             namespace=NAMESPACE)["items"]
        if pods and all(p["metadata"]["labels"].get("mlserving.io/model-version") == ROLLOUT_VERSION for p in pods):
            break
        time.sleep(1)
    else:
        pytest.fail(f"candidate pods of the old version still present 120 s after the rollout: {pods}")
    rolled = time.time()
    ab.wait_ready()
    result = ab.load_result("load-rollout", timeout=360)

    assert result["failed"] == 0, result["errors"]
    assert result["finished"] > rolled + 5, "the load ended before the rollout did: raise its duration"
    candidate = [(sec, version, n) for sec, variant, version, n in result["timeline"] if variant == "candidate"]
    assert any(version == "2.0.0" and sec < patched for sec, version, n in candidate), "no answer from 2.0.0 before"
    after = [(sec, version, n) for sec, version, n in candidate if sec >= rolled + 1]
    assert after, "no candidate answer after the rollout"
    assert {version for _, version, _ in after} == {ROLLOUT_VERSION}, after


def test_weights_move_from_90_10_to_50_50_under_load_within_10_seconds(ab):
    md = ab.name
    routers_before = ab.k.get_json("pods", "-l", f"mlserving.io/model-deployment={md},mlserving.io/variant=router",
                                   namespace=NAMESPACE)["items"]
    ab.start_load("load-weights", duration=60, rate=50)
    ab.wait_load_started("load-weights")
    time.sleep(8)
    ops = [{"op": "replace", "path": f"/spec/variants/{ab.variant_index(name)}/weight", "value": 50}
           for name in ("stable", "candidate")]
    ab.patch(ops)
    changed = time.time()
    result = ab.load_result("load-weights", timeout=300)

    assert result["failed"] == 0, result["errors"]
    before, n_before = loadgen.share(result, "candidate", until=changed - 1)
    after, n_after = loadgen.share(result, "candidate", since=changed + 10)
    assert n_before >= 200 and n_after >= 1000, (n_before, n_after)
    assert abs(before - 0.10) <= 0.06, f"candidate share before the change: {before:.3f} of {n_before}"
    assert abs(after - 0.50) <= 0.05, f"candidate share from 10 s after the change: {after:.3f} of {n_after}"
    # the weights reached the routers through the API: no router pod was replaced or restarted
    routers_after = ab.k.get_json("pods", "-l", f"mlserving.io/model-deployment={md},mlserving.io/variant=router",
                                  namespace=NAMESPACE)["items"]
    restarts = {p["metadata"]["uid"]: sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses", []))
                for p in routers_after}
    assert {p["metadata"]["uid"] for p in routers_before} <= set(restarts), "a router pod was replaced"
    assert not any(restarts.values()), restarts


def test_network_policies_are_on_and_enforced_in_this_run(ab):
    netprobe.assert_policies_enforced(ab.k, NAMESPACE, ab.name, "stable", project_images()[0].ref)


def test_deleting_the_model_deployment_removes_every_child(ab):
    md = ab.get()
    uid = md["metadata"]["uid"]
    ab.k.kubectl("delete", f"modeldeployment/{ab.name}", "-n", NAMESPACE, "--wait=true", "--timeout=120s",
                 timeout=140)
    deadline = time.monotonic() + 180
    while True:
        objects = ab.k.get_json(CHILD_KINDS, namespace=NAMESPACE)["items"]
        left = [f"{o['kind']}/{o['metadata']['name']}" for o in objects
                if o["metadata"].get("labels", {}).get("mlserving.io/model-deployment") == ab.name
                or any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences", []))]
        if not left:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"children still present 180 s after deleting the ModelDeployment: {left}")
        time.sleep(2)

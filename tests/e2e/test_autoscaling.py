"""End to end: HPAs fed by the Metrics API scale real pods under in-cluster load.

On the real node (hack/node/up.sh runs metrics-server) or any cluster with a Metrics API:

1. a single-variant ModelDeployment (1-4 pods, CPU target 50 %, scale-up unthrottled, a 30 s
   scale-down window) goes from 1 to >= 3 Ready pods within 3 minutes under load from the e2e
   load generator (a Job in the cluster), and back to 1 within the window plus 2 minutes once the
   load stops, with 0 failed requests; the replica timeline is printed;
2. `kubectl top pods` lists every pod of it;
3. an A/B ModelDeployment under load through its router: the router's HPA goes from its minimum
   of 2 to >= 3;
4. on the local real node, the images' sizes as containerd reports them stay within budget.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time

import loadgen
import pytest
import yaml
from providers.base import REPO_ROOT, project_images
from test_ab import PAYLOAD, example_md, install_operator, load_job, loadgen_configmap, restricted_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMESPACE = "mlserving-e2e-hpa"
SCALE_DOWN_WINDOW_S = 30
SCALE_UP_WITHIN_S = 180
SCALE_DOWN_WITHIN_S = SCALE_DOWN_WINDOW_S + 120
# The longest a load runs: each test stops it (its generators then report) once the scale-up it is
# for was seen; a slower scale-up fails at SCALE_UP_WITHIN_S.
LOAD_S = 150
# A small CPU request, so a pod under load runs far above its 50 % target however fast the machine
# (with 100m, two pods at 400 rps on a quiet machine stayed near the target and never became three).
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
BEHAVIOR = {"scaleUp": {"stabilizationWindowSeconds": 0,
                        "policies": [{"type": "Pods", "value": 3, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_S,
                          "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}
# containerd's sizes of the images (ctr -n k8s.io images ls), in MiB.
IMAGE_BUDGET_MIB = {"server": 400, "operator": 320}
ROUTER_TEST_REPLICAS = {"stable": 3, "candidate": 1}
ROUTER_LOAD_PODS = 3
VARIANT_LOAD_PODS = 2


def single_md() -> dict:
    md = yaml.safe_load((REPO_ROOT / "examples" / "fraud-single.yaml").read_text())
    md["metadata"] = {"name": "fraud-hpa", "namespace": NAMESPACE}
    md["spec"]["resources"] = RESOURCES
    md["spec"]["variants"][0].pop("replicas", None)
    md["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 50,
                                 "behavior": copy.deepcopy(BEHAVIOR)}
    return md


class Timeline:
    """(seconds since start, ready pods, HPA desired) samples of one Deployment, printed as it goes."""

    def __init__(self, k, deployment: str):
        self.k, self.deployment = k, deployment
        self.t0 = time.monotonic()
        self.samples: list[tuple[float, int, int]] = []

    def restart(self) -> None:
        self.t0 = time.monotonic()

    def sample(self) -> int:
        dep = self.k.get_json(f"deployment/{self.deployment}", namespace=NAMESPACE)
        hpa = self.k.get_json(f"hpa/{self.deployment}", namespace=NAMESPACE)
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        desired = int((hpa.get("status") or {}).get("desiredReplicas") or 0)
        t = time.monotonic() - self.t0
        if not self.samples or self.samples[-1][1:] != (ready, desired):
            print(f"  t={t:6.1f} s  {self.deployment}: ready {ready}, HPA desired {desired}")
        self.samples.append((t, ready, desired))
        return ready

    def wait(self, what: str, done, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while True:
            if done(self.sample()):
                return time.monotonic() - self.t0
            if time.monotonic() > deadline:
                pytest.fail(f"{self.deployment}: {what} not reached within {timeout_s:.0f} s; timeline "
                            f"(t, ready, desired): {self.samples}")
            time.sleep(3)


def start_load(k, job: str, url: str, duration: float, rate: float, concurrency: int, pods: int = 1) -> None:
    args = ["--url", url, "--payload", json.dumps(PAYLOAD), "--duration", str(duration),
            "--rate", str(rate), "--concurrency", str(concurrency), "--stop-file", loadgen.STOP_FILE]
    k.kubectl("delete", "job", job, "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
    k.apply(load_job(job, args, deadline=int(duration) + 180, namespace=NAMESPACE, pods=pods))


def stop_load(k, job: str) -> None:
    """Every generator of the Job stops sending now (its ``--duration`` is only the upper bound)."""
    for pod in k.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"job-name={job}", "-o", "name").split():
        k.kubectl("exec", pod, "-n", NAMESPACE, "--", *loadgen.STOP_COMMAND, check=False)


def every_pod_in_top(k, timeout_s: float = 60) -> str:
    """`kubectl top pods` once it lists every running pod of the ModelDeployments (a new pod's
    first sample comes one metrics-server resolution after the scrape that first sees it)."""
    selector = "app.kubernetes.io/managed-by=mlserving-operator"
    deadline = time.monotonic() + timeout_s
    while True:
        pods = [p.split("/", 1)[1] for p in k.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector,
                                                      "--field-selector=status.phase=Running", "-o", "name").split()]
        top = k.kubectl("top", "pods", "-n", NAMESPACE, "-l", selector, "--no-headers", check=False)
        missing = [p for p in pods if not re.search(rf"^{re.escape(p)}\s+\d+m\s+\d+Mi", top, re.MULTILINE)]
        if pods and not missing:
            return top
        if time.monotonic() > deadline:
            pytest.fail(f"kubectl top pods does not show {missing or 'any pod'}:\n{top}")
        time.sleep(3)


def load_results(k, job: str) -> list[dict]:
    """Every generator's result once all of the load Job's pods have finished (each reports only at
    its end)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job_obj = k.get_json(f"job/{job}", namespace=NAMESPACE)
        status = job_obj.get("status") or {}
        if status.get("failed"):
            pytest.fail(f"load Job {job} failed:\n{k.kubectl('logs', f'job/{job}', '-n', NAMESPACE, check=False)}")
        if int(status.get("succeeded") or 0) >= int(job_obj["spec"].get("completions") or 1):
            pods = k.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"job-name={job}", "-o", "name").split()
            return [loadgen.parse_result(k.kubectl("logs", pod, "-n", NAMESPACE)) for pod in pods]
        time.sleep(2)
    pytest.fail(f"load Job {job} did not finish")


@pytest.fixture(scope="module")
def hpa_env(e2e_cluster):
    k = e2e_cluster
    install_operator(k)
    if "metrics.k8s.io" not in k.kubectl("api-versions"):
        pytest.fail("the cluster serves no Metrics API (metrics.k8s.io): HPAs cannot scale; "
                    "hack/node/up.sh starts metrics-server on the real node")
    k.apply([restricted_namespace(NAMESPACE), loadgen_configmap(NAMESPACE)])
    yield k
    k.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def test_variant_scales_1_to_3_under_load_and_back_without_a_failed_request(hpa_env):
    k = hpa_env
    md = single_md()
    k.apply(md)
    k.kubectl("wait", "--for=condition=Ready", "modeldeployment/fraud-hpa", "-n", NAMESPACE, "--timeout=300s",
              timeout=320)
    timeline = Timeline(k, "fraud-hpa-stable")
    timeline.wait("1 ready pod before the load", lambda ready: ready == 1, 120)
    url = f"http://fraud-hpa.{NAMESPACE}.svc.cluster.local/predict"
    print("replica timeline (load on):")
    start_load(k, "load-hpa", url, duration=LOAD_S, rate=400, concurrency=16, pods=VARIANT_LOAD_PODS)
    timeline.restart()
    up = timeline.wait(">= 3 ready pods", lambda ready: ready >= 3, SCALE_UP_WITHIN_S + 30)
    top = every_pod_in_top(k)
    stop_load(k, "load-hpa")
    results = load_results(k, "load-hpa")
    ok, failed = sum(r["ok"] for r in results), sum(r["failed"] for r in results)
    print(f"load ({len(results)} generators): {sum(r['requests'] for r in results)} requests, {ok} ok, "
          f"{failed} failed")
    print("replica timeline (load off):")
    down_from = time.monotonic()
    timeline.wait("back to 1 pod", lambda ready: ready == 1, SCALE_DOWN_WITHIN_S)
    print(f"scaled up to >= 3 in {up:.0f} s; back to 1 in {time.monotonic() - down_from:.0f} s after the load")
    assert failed == 0, [r["errors"] for r in results]
    print(top)
    k.kubectl("delete", "modeldeployment/fraud-hpa", "-n", NAMESPACE, "--wait=true", timeout=180)


def test_router_hpa_scales_from_2_to_3_under_ab_load(hpa_env):
    k = hpa_env
    md = example_md(NAMESPACE)
    md["spec"].pop("autoscaling", None)
    # Enough serving capacity that the routers, not the variants, are what the load saturates:
    # with one pod per variant the stable pod (90 % of the traffic, 500m limit) capped the rate
    # and the routers stayed below their 70 % CPU target.
    for v in md["spec"]["variants"]:
        v["replicas"] = ROUTER_TEST_REPLICAS[v["name"]]
    k.apply(md)
    name = md["metadata"]["name"]
    k.kubectl("wait", "--for=condition=Ready", f"modeldeployment/{name}", "-n", NAMESPACE, "--timeout=300s",
              timeout=320)
    timeline = Timeline(k, f"{name}-router")
    timeline.wait("the router's minimum of 2", lambda ready: ready == 2, 120)
    print("router replica timeline (load on):")
    # One generator pod is held to its own 500m limit; several side by side outrun two routers.
    start_load(k, "load-router", f"http://{name}.{NAMESPACE}.svc.cluster.local/predict",
               duration=LOAD_S, rate=500, concurrency=24, pods=ROUTER_LOAD_PODS)
    timeline.restart()
    try:
        up = timeline.wait(">= 3 ready router pods", lambda ready: ready >= 3, SCALE_UP_WITHIN_S + 30)
    finally:
        print(k.kubectl("top", "pods", "-n", NAMESPACE, check=False))
        stop_load(k, "load-router")
    results = load_results(k, "load-router")
    ok, failed = sum(r["ok"] for r in results), sum(r["failed"] for r in results)
    print(f"router scaled 2 -> >= 3 in {up:.0f} s; load ({len(results)} generators): {ok} ok, {failed} failed")
    assert failed == 0, [r["errors"] for r in results]
    k.kubectl("delete", f"modeldeployment/{name}", "-n", NAMESPACE, "--wait=false")


def containerd_sizes_mib() -> dict[str, float]:
    """ctr -n k8s.io images ls on the local real node: {reference: MiB}."""
    env = subprocess.run(["bash", str(REPO_ROOT / "hack" / "node" / "env.sh")], capture_output=True, text=True,
                         check=True).stdout
    sock = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)["CONTAINERD_SOCK"]
    out = subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", "images", "ls"], capture_output=True, text=True,
                         check=True).stdout
    sizes = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            sizes[cols[0]] = float(cols[3]) * {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}.get(cols[4], 1.0)
    return sizes


def test_image_sizes_on_the_node_stay_within_budget(e2e_cluster):
    if e2e_cluster.provider.name != "local":
        pytest.skip(f"sizes are read from the local real node's containerd, not from provider {e2e_cluster.provider.name}")
    sizes = containerd_sizes_mib()
    for spec in project_images():
        image = spec.ref.rsplit("/", 1)[1].split(":")[0]
        assert spec.ref in sizes, f"{spec.ref} not in containerd: {sorted(sizes)}"
        print(f"{spec.ref}: {sizes[spec.ref]:.1f} MiB (budget {IMAGE_BUDGET_MIB[image]} MiB)")
        assert sizes[spec.ref] <= IMAGE_BUDGET_MIB[image]

"""End to end: the shipped plain Prometheus configuration discovers and scrapes every server and
router pod of a ModelDeployment on a real node.

A Prometheus built with Kubernetes service discovery (hack/build-prometheus.sh) runs on the host
with monitoring/prometheus/prometheus.yml as shipped; only what differs outside the cluster is
added to its pod discovery (the API server's address and CA, a token of the ServiceAccount of
monitoring/prometheus/rbac.yaml instead of the in-cluster one), plus short intervals and the
rules rendered with a short window. The A/B example (two variants and the router) is deployed
and driven from a Job in the cluster; every pod must be an `up == 1` target on its metrics port,
and the dashboard's expressions, the recording rules and the drift gauges must answer from those
scrapes, for each pod.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from mlserving.operator.monitoring_rules import RECORDED_NAMES, RuleParams, rule_groups
from providers.base import REPO_ROOT
from test_ab import PAYLOAD, example_md, install_operator, load_job, loadgen_configmap, restricted_namespace

sys.path[:0] = [str(REPO_ROOT / "tests" / "monitoring"), str(REPO_ROOT / "tests" / "server")]
from prom_kit import dashboard_queries, kubernetes_prometheus, query
from server_testkit import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMESPACE = "mlserving-prom"
SHIPPED_CONFIG = REPO_ROOT / "monitoring" / "prometheus" / "prometheus.yml"
RBAC = REPO_ROOT / "monitoring" / "prometheus" / "rbac.yaml"
WINDOW = "30s"
METRICS_PORT = 9090
LOAD_S, LOAD_RPS = 60, 20
# One pod per variant keeps the 2-core node's start-up short; the router runs its own pods.
AUTOSCALING = {"minReplicas": 1, "maxReplicas": 2, "targetCPUUtilizationPercentage": 70}


def host_config(kubeconfig: Path, token_file: Path, rules: Path) -> dict:
    """The shipped configuration, pointed from the host at the node's API server."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
    config["global"].update({"scrape_interval": "2s", "evaluation_interval": "2s", "scrape_timeout": "1500ms"})
    config["rule_files"] = [str(rules)]
    [job] = config["scrape_configs"]
    [sd] = job["kubernetes_sd_configs"]
    sd.update({"api_server": cluster["server"], "authorization": {"credentials_file": str(token_file)},
               "tls_config": {"ca_file": cluster["certificate-authority"]}})
    return config


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return kubernetes_prometheus()


@pytest.fixture(scope="module")
def scraped(prometheus_bin, e2e_cluster, tmp_path_factory):  # the binary first: no cluster for a skip
    k = e2e_cluster
    if k.provider.name != "local":
        pytest.skip(f"a Prometheus on the host reaches the pod IPs of the real node only, not {k.provider.name}'s")
    tmp = tmp_path_factory.mktemp("prometheus-node")
    install_operator(k)
    k.kubectl("apply", "-f", str(RBAC))
    k.apply([restricted_namespace(NAMESPACE), loadgen_configmap(NAMESPACE)])
    md = example_md(NAMESPACE)
    md["spec"]["autoscaling"] = AUTOSCALING
    k.apply(md)
    name = md["metadata"]["name"]
    token = tmp / "token"
    token.write_text(k.kubectl("create", "token", "prometheus", "-n", "monitoring", "--duration=1h").strip())
    rules = tmp / "rules.yaml"
    params = RuleParams(window=WINDOW)
    rules.write_text(yaml.safe_dump({"groups": rule_groups(params)}, sort_keys=False))
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(host_config(k.kubeconfig, token, rules), sort_keys=False))
    port = free_port()
    log_path = tmp / "prometheus.log"
    with open(log_path, "wb") as log:
        prom = subprocess.Popen([prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        k.kubectl("wait", "--for=condition=Ready", f"modeldeployment/{name}", "-n", NAMESPACE, "--timeout=300s",
                  timeout=320)
        url = (k.get_json(f"modeldeployment/{name}", namespace=NAMESPACE).get("status") or {}).get("url") \
            or f"http://{name}.{NAMESPACE}.svc.cluster.local"
        args = ["--url", url.rstrip("/") + "/predict", "--payload", json.dumps(PAYLOAD), "--duration", str(LOAD_S),
                "--rate", str(LOAD_RPS)]
        k.apply(load_job("load-prometheus", args, deadline=LOAD_S + 180, namespace=NAMESPACE))
        yield {"prom": f"http://127.0.0.1:{port}", "k": k, "md": name, "log": log_path, "proc": prom}
    finally:
        prom.terminate()
        try:
            prom.wait(15)
        except subprocess.TimeoutExpired:
            prom.kill()
        k.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
        k.kubectl("delete", "-f", str(RBAC), "--ignore-not-found", "--wait=false", check=False)


def served_pods(k, md: str) -> dict[str, str]:
    """Every running server and router pod of the ModelDeployment: name -> pod IP."""
    pods = k.get_json("pods", "-l", f"mlserving.io/model-deployment={md}", namespace=NAMESPACE)["items"]
    return {p["metadata"]["name"]: p["status"].get("podIP", "") for p in pods
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")}


def wait_until(what: str, check, timeout: float, scraped: dict):
    """Polls check() -> (done, detail) until done; returns the detail, or fails naming the last one."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert scraped["proc"].poll() is None, f"prometheus exited: {scraped['log'].read_text()[-3000:]}"
        try:
            done, last = check()
        except (httpx.HTTPError, AssertionError) as exc:
            done, last = False, exc
        if done:
            return last
        time.sleep(2)
    pytest.fail(f"{what} within {timeout:.0f} s; last: {last}\n{scraped['log'].read_text()[-2000:]}")


def test_every_server_and_router_pod_is_an_up_target_on_its_metrics_port(scraped):
    prom, k, md = scraped["prom"], scraped["k"], scraped["md"]
    pods = served_pods(k, md)
    variants = {p["metadata"]["labels"]["mlserving.io/variant"] for p in
                k.get_json("pods", "-l", f"mlserving.io/model-deployment={md}", namespace=NAMESPACE)["items"]}
    assert variants == {"stable", "candidate", "router"}, variants

    def targets():
        active = httpx.get(f"{prom}/api/v1/targets", params={"state": "active"}, timeout=10).json()["data"]
        ours = [t for t in active["activeTargets"] if t["labels"].get("namespace") == NAMESPACE]
        by_pod = {t["labels"]["pod"]: t for t in ours}
        healthy = {pod for pod, t in by_pod.items() if t["health"] == "up"}
        return healthy >= set(pods), ours

    ours = wait_until("every pod an up target", targets, 90, scraped)
    by_pod: dict[str, list[dict]] = {}
    for t in ours:
        by_pod.setdefault(t["labels"]["pod"], []).append(t)
    for pod, ip in pods.items():
        [t] = by_pod[pod]  # one target per pod, however many container ports it has
        assert t["scrapeUrl"] == f"http://{ip}:{METRICS_PORT}/metrics", t
        assert t["labels"]["model_deployment"] == md
        assert t["labels"]["pod_variant"] in ("stable", "candidate", "router")
    up = {r["metric"]["pod"]: float(r["value"][1]) for r in query(prom, f'up{{namespace="{NAMESPACE}"}}')}
    assert {pod: up.get(pod) for pod in pods} == dict.fromkeys(pods, 1.0), up


def test_dashboard_rules_and_drift_answer_for_each_pod(scraped):
    prom, k, md = scraped["prom"], scraped["k"], scraped["md"]
    sel = f'namespace="{NAMESPACE}",model_deployment="{md}"'

    def answered():
        routed = query(prom, f"sum(rate(mlserving_router_requests_total{{{sel}}}[{WINDOW}]))")
        return bool(routed) and float(routed[0]["value"][1]) > LOAD_RPS / 4, routed

    wait_until("routed load seen by Prometheus", answered, 150, scraped)
    # A full rate window of load behind every expression.
    time.sleep(20)
    # The pods as they are now: a router pod may have turned ready during the load.
    pods = served_pods(k, md)
    labels = {p["metadata"]["name"]: p["metadata"]["labels"]["mlserving.io/variant"] for p in
              k.get_json("pods", "-l", f"mlserving.io/model-deployment={md}", namespace=NAMESPACE)["items"]}
    servers = {pod for pod in pods if labels[pod] != "router"}
    routers = set(pods) - servers

    def per_pod(expr: str) -> set[str]:
        return {r["metric"]["pod"] for r in query(prom, expr)}

    assert per_pod(f"model_feature_drift_psi{{{sel}}}") >= servers
    assert per_pod(f"model_prediction_drift_psi{{{sel}}}") >= servers
    rows = {r["metric"]["pod"]: float(r["value"][1]) for r in query(prom, f"model_drift_window_rows{{{sel}}}")}
    assert any(rows.get(pod, 0) > 0 for pod in servers), rows
    assert per_pod(f"rate(model_predictions_total{{{sel}}}[{WINDOW}])") >= servers
    assert per_pod(f"model_prediction_latency_seconds_bucket{{{sel}}}") >= servers
    assert per_pod(f"mlserving_router_variant_weight{{{sel}}}") >= routers
    # A router's request series exist once it served a request; a router pod that turned ready
    # during the load may have none yet (the load's kept-alive connections stay on the others).
    assert per_pod(f"rate(mlserving_router_requests_total{{{sel}}}[{WINDOW}])") & routers
    for name in RECORDED_NAMES:
        assert query(prom, f"{name}{{{sel}}}"), f"{name}: empty"
    exprs = dashboard_queries(namespace=NAMESPACE, model_deployment=md, variants="stable|candidate", window=WINDOW)
    empty = [expr for expr in exprs if not query(prom, expr)]
    assert not empty, f"dashboard expressions without data: {empty}"
    weights = {r["metric"]["variant"]: float(r["value"][1])
               for r in query(prom, f"max by (variant) (mlserving_router_variant_weight{{{sel}}})")}
    assert weights == {"stable": 90.0, "candidate": 10.0}, weights
    ready = {r["metric"]["pod_variant"]: float(r["value"][1])
             for r in query(prom, f"sum by (pod_variant) (up{{{sel}}})")}
    assert ready == {"stable": float(sum(labels[p] == "stable" for p in pods)),
                     "candidate": float(sum(labels[p] == "candidate" for p in pods)),
                     "router": float(len(routers))}, ready

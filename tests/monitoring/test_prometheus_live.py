"""A real Prometheus scrapes a real router and real servers under load; every dashboard expression,
recording rule and the long-standing queries are evaluated through its HTTP API, and the drift
alert fires for shifted traffic only.

Layout (all on 127.0.0.1): ModelDeployment "fraud" = router (70/30) in front of servers stable
1.0.0 and candidate 1.1.0, driven with held-out rows, 10 % of them invalid (19 features);
ModelDeployment "fraud-shifted" = one server driven directly with the same rows, one feature
shifted by one training standard deviation. Rates use 30 s windows (the load lasts ~45 s);
for: durations are rendered as 3 s.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import pytest
import yaml
from mlserving.operator.monitoring_rules import RECORDED_NAMES, RuleParams, rule_groups
from mlserving.training.train import train_version

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "server"))
from drift_traffic import reference_traffic
from prom_kit import dashboard_queries, query
from server_testkit import ServerProcess, free_port, server_env

pytestmark = pytest.mark.slow

SAMPLES, SEED = 4000, 5
WINDOW = "30s"
ROUTER_RPS, SHIFTED_RPS, INVALID_SHARE = 70.0, 35.0, 0.1
LOAD_S = 48.0
SHIFTED_FEATURE = 4  # merchant_risk
NAMESPACE = "team-a"
WEIGHTS = {"stable": 70, "candidate": 30}


def wait_http(url: str, what: str, proc, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{what} not ready: {log_path.read_text()[-3000:]}"
        time.sleep(0.2)


class Stack:
    """The processes of the scenario; stop() ends every one of them."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.servers: dict[str, ServerProcess] = {}

    def start_server(self, name: str, model_path: Path) -> None:
        metrics_port, port = free_port(), free_port()
        cmd = [sys.executable, "-m", "uvicorn", "mlserving.server.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log"]
        env = server_env(model_path, HOST="127.0.0.1", METRICS_PORT=metrics_port, DRIFT_INTERVAL_S=1,
                         LOG_LEVEL="warning")
        server = ServerProcess(cmd, env, self.tmp / f"{name}-{port}.log", port)
        server.metrics_port, server.model_path = metrics_port, model_path
        self.servers[name] = server

    def servers_ready(self) -> None:
        """Waits for every server; one that lost a port to another process on this busy machine
        between our probe and its bind is started again on new ports."""
        for name, server in list(self.servers.items()):
            for attempt in range(3):
                try:
                    server.wait_live()
                    wait_http(f"{server.url}/health/ready", name, server.process, server.log_path)
                    break
                except AssertionError:
                    server.stop()
                    if "already in use" not in server.logs() or attempt == 2:
                        raise
                    self.start_server(name, server.model_path)
                    server = self.servers[name]

    def spawn(self, name: str, cmd: list[str]) -> tuple[subprocess.Popen, Path]:
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc, log_path

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def target(port: int, **labels) -> dict:
    return {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": NAMESPACE, **labels}}


@pytest.fixture(scope="module")
def scenario(prometheus_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prometheus-live")
    models = tmp / "models"
    quiet = lambda *_: None
    # One training data set (same seed), two estimators: the candidate's reference is the stable's.
    train_version("fraud", "1.0.0", models, seed=SEED, samples=SAMPLES, params={"n_estimators": 10}, log=quiet)
    train_version("fraud", "1.1.0", models, seed=SEED, samples=SAMPLES, params={"n_estimators": 15}, log=quiet)
    stack = Stack(tmp)
    try:
        stack.start_server("stable", models / "fraud" / "1.0.0")
        stack.start_server("candidate", models / "fraud" / "1.1.0")
        stack.start_server("shifted", models / "fraud" / "1.0.0")
        stack.servers_ready()
        stable, candidate, shifted = (stack.servers[n] for n in ("stable", "candidate", "shifted"))
        stable_m, candidate_m, shifted_m = stable.metrics_port, candidate.metrics_port, shifted.metrics_port
        table = tmp / "routing.json"
        table.write_text(json.dumps({"generation": 1, "stickyHeader": None, "variants": [
            {"name": "stable", "version": "1.0.0", "url": stable.url, "weight": WEIGHTS["stable"], "mirror": False},
            {"name": "candidate", "version": "1.1.0", "url": candidate.url, "weight": WEIGHTS["candidate"],
             "mirror": False}]}))
        router_port, router_m = free_port(), free_port()
        router, router_log = stack.spawn("router", [
            sys.executable, "-m", "mlserving.cli.main", "router", "--config", str(table), "--host", "127.0.0.1",
            "--port", str(router_port), "--metrics-port", str(router_m)])

        rules = tmp / "rules.yaml"
        # A generous latency threshold: this test is about the values, not about a loaded machine.
        params = RuleParams(window=WINDOW, latency_p95_ms=5000, for_latency="3s", for_errors="3s", for_drift="3s", for_router="3s",
                            for_pods="3s")
        rules.write_text(yaml.safe_dump({"groups": rule_groups(params)}, sort_keys=False))
        prom_port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "mlserving", "static_configs": [
                target(stable_m, model_deployment="fraud", pod_variant="stable", pod_version="1.0.0",
                       pod="fraud-stable-0"),
                target(candidate_m, model_deployment="fraud", pod_variant="candidate", pod_version="1.1.0",
                       pod="fraud-candidate-0"),
                target(router_m, model_deployment="fraud", pod_variant="router", pod="fraud-router-0"),
                target(shifted_m, model_deployment="fraud-shifted", pod_variant="stable", pod_version="1.0.0",
                       pod="fraud-shifted-stable-0"),
            ]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        prom, prom_log = stack.spawn("prometheus", [
            prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=1h"])
        wait_http(f"http://127.0.0.1:{router_port}/health/ready", "router", router, router_log)
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{prom_url}/-/ready", "prometheus", prom, prom_log)

        sent = asyncio.run(drive(f"http://127.0.0.1:{router_port}/predict", shifted.url + "/predict"))
        yield {"prom": prom_url, "sent": sent, "eval_at": sent["end"] - 2.0}
    finally:
        stack.stop()


async def paced(session, url: str, rows, rps: float, invalid_share: float, start: float, log: list) -> None:
    """Open-loop: request i is sent at start + i / rps, whatever the answers' latency."""
    tasks = []
    invalid_every = round(1 / invalid_share) if invalid_share else 0
    for i, row in enumerate(rows):
        delay = start + i / rps - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        features = list(row[:19]) if invalid_every and i % invalid_every == 0 else list(row)
        tasks.append(asyncio.create_task(one(session, url, features, log)))
    await asyncio.gather(*tasks)


async def one(session, url: str, features: list, log: list) -> None:
    async with session.post(url, json={"features": features}) as resp:
        body = await resp.json(content_type=None)
        # When the answer arrived: the servers count a request when they answer it.
        log.append({"at": time.time(), "status": resp.status, "variant": resp.headers.get("x-mlserving-variant"),
                    "fraud": body.get("is_fraud") if resp.status == 200 else None})


async def drive(router_url: str, shifted_url: str) -> dict:
    reference = reference_traffic(SAMPLES, SEED, int(ROUTER_RPS * LOAD_S))
    shifted = reference_traffic(SAMPLES, SEED, int(SHIFTED_RPS * LOAD_S), shift_feature=SHIFTED_FEATURE, draw_seed=3)
    routed, direct = [], []
    start = time.time() + 0.5
    # A connection per request: no race with a server closing an idle keep-alive connection.
    connector = aiohttp.TCPConnector(force_close=True, limit=200)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(paced(session, router_url, reference, ROUTER_RPS, INVALID_SHARE, start, routed),
                             paced(session, shifted_url, shifted, SHIFTED_RPS, 0.0, start, direct))
    return {"routed": routed, "direct": direct, "start": start, "end": time.time()}


def values(result: list[dict], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def sent_rate(log: list, at: float, seconds: float = 30.0, **match) -> float:
    """Requests per second answered in the query's window, matching the given answer fields."""
    picked = [e for e in log if at - seconds < e["at"] <= at and all(e[k] == v for k, v in match.items())]
    return len(picked) / seconds


def close(actual: float, expected: float, share: float = 0.10) -> bool:
    return abs(actual - expected) <= share * expected


def test_recording_rules_give_the_rates_split_and_ratios_the_load_implies(scenario):
    prom, at, routed = scenario["prom"], scenario["eval_at"], scenario["sent"]["routed"]
    fraud = '{model_deployment="fraud"}'
    for name in RECORDED_NAMES:
        assert query(prom, name + fraud, at), f"{name}: empty"
    rate = query(prom, f'sum by (pod_variant, status) (mlserving:model_predictions:rate{fraud})', at)
    got = {(r["metric"]["pod_variant"], r["metric"]["status"]): float(r["value"][1]) for r in rate}
    for variant in WEIGHTS:
        ok = sent_rate(routed, at, variant=variant, status=200)
        bad = sent_rate(routed, at, variant=variant, status=422)
        assert close(got[(variant, "success")], ok), (variant, got, ok)
        assert close(got[(variant, "invalid")], bad, 0.25), (variant, got, bad)  # ~4 invalid per second
        assert got[(variant, "error")] == 0
    split = values(query(prom, f"mlserving:router_split:percent{fraud}", at), "variant")
    assert split.keys() == WEIGHTS.keys()
    for variant, weight in WEIGHTS.items():
        assert abs(split[variant] - weight) <= 3, split
    router_rate = sum(float(r["value"][1]) for r in query(prom, f"mlserving:router_requests:rate{fraud}", at))
    assert close(router_rate, sent_rate(routed, at)), router_rate
    assert set(values(query(prom, f"mlserving:router_errors:ratio{fraud}", at), "variant").values()) == {0.0}
    assert set(values(query(prom, f"mlserving:model_prediction_errors:ratio{fraud}", at),
                      "pod_variant").values()) == {0.0}
    for variant, ratio in values(query(prom, f"mlserving:fraud_predictions:ratio{fraud}", at), "pod_variant").items():
        answered = [e for e in routed if e["variant"] == variant and e["status"] == 200]
        expected = sum(bool(e["fraud"]) for e in answered) / len(answered)
        assert abs(ratio - expected) <= 0.03, (variant, ratio, expected)
    for name in ("mlserving:model_prediction_latency_seconds:p95", "mlserving:router_upstream_latency_seconds:p50",
                 "mlserving:router_upstream_latency_seconds:p99"):
        assert all(0 < v < 2 for v in values(query(prom, name + fraud, at), "version").values()), name


def test_every_dashboard_expression_returns_data(scenario):
    prom, at = scenario["prom"], scenario["eval_at"]
    results = {expr: query(prom, expr, at) for expr in dashboard_queries(
        namespace=NAMESPACE, model_deployment="fraud", variants="stable|candidate", window=WINDOW)}
    empty = [expr for expr, result in results.items() if not result]
    assert not empty, f"dashboard expressions without data: {empty}"
    by_title = {expr: values(result, "pod_variant") for expr, result in results.items()}
    invalid = next(v for e, v in by_title.items() if 'status="invalid"' in e)
    for variant in WEIGHTS:
        assert abs(invalid[variant] - INVALID_SHARE) <= 0.04, invalid
    pods = next(v for e, v in by_title.items() if e.startswith("sum by (pod_variant) (up"))
    assert pods == {"stable": 1.0, "candidate": 1.0, "router": 1.0}
    weights = next(values(r, "variant") for e, r in results.items() if "mlserving_router_variant_weight" in e)
    assert weights == {"stable": 70.0, "candidate": 30.0}


def test_long_standing_queries(scenario):
    """The four queries of the platform's documentation, with [5m] shortened to this test's window."""
    prom, at, routed = scenario["prom"], scenario["eval_at"], scenario["sent"]["routed"]
    w = f"[{WINDOW}]"
    fraud = '{model_deployment="fraud"}'
    per_status = query(prom, f"rate(model_predictions_total{fraud}{w})", at)
    success = {r["metric"]["pod_variant"]: float(r["value"][1]) for r in per_status
               if r["metric"]["status"] == "success"}
    assert close(sum(success.values()), sent_rate(routed, at, status=200))
    p95 = query(prom, f"histogram_quantile(0.95, rate(model_prediction_latency_seconds_bucket{fraud}{w}))", at)
    assert len(p95) == 2 and all(0 < float(r["value"][1]) < 2 for r in p95)
    errors = query(prom, f'rate(model_predictions_total{{model_deployment="fraud",status="error"}}{w})', at)
    assert len(errors) == 2 and all(float(r["value"][1]) == 0 for r in errors)  # 0, not empty
    # As written it matches nothing (status label on one side only); the recording rule says what it means.
    assert query(prom, f"rate(fraud_predictions_total{fraud}{w}) / rate(model_predictions_total{fraud}{w})", at) == []
    assert len(query(prom, f"mlserving:fraud_predictions:ratio{fraud}", at)) == 2


def test_drift_psi_and_the_drift_alert(scenario):
    prom, at = scenario["prom"], scenario["eval_at"]
    psi = query(prom, "model_feature_drift_psi", at)
    rows = values(query(prom, "model_drift_window_rows", at), "pod")
    # The candidate gets 30 % of the routed rows: its window may stay below the alerting minimum.
    assert rows["fraud-stable-0"] >= 1000 and rows["fraud-shifted-stable-0"] >= 1000, rows
    by_md: dict[str, dict[str, float]] = {}
    for r in psi:
        by_md.setdefault(r["metric"]["pod"], {})[r["metric"]["feature"]] = float(r["value"][1])
    for pod in ("fraud-stable-0", "fraud-candidate-0"):
        assert max(by_md[pod].values()) < 0.1, (pod, by_md[pod])
    shifted = by_md["fraud-shifted-stable-0"]
    assert shifted["merchant_risk"] > 0.25
    assert max(v for k, v in shifted.items() if k != "merchant_risk") < 0.1, shifted
    firing = query(prom, 'ALERTS{alertname="MLServingFeatureDrift",alertstate="firing"}', at)
    assert [(a["metric"]["model_deployment"], a["metric"]["feature"]) for a in firing] == \
        [("fraud-shifted", "merchant_risk")]
    others = query(prom, 'ALERTS{alertstate="firing",model_deployment="fraud"}', at)
    assert others == [], others

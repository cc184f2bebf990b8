"""`mlserving serve` with WORKERS=2: metrics from both worker processes are aggregated, on the main
port and on the metrics port."""

import sys
import time

import httpx
import pytest
from server_testkit import SEED_PAYLOAD, free_port, server_env, start_on_free_port


@pytest.fixture
def two_workers(model_registry, log_dir):
    path = model_registry / "fraud" / "1.0.0"
    metrics_port = free_port()
    server = start_on_free_port(
        lambda port: [sys.executable, "-m", "mlserving.cli.main", "serve", "--model-path", str(path),
                      "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        server_env(path, METRICS_PORT=metrics_port), log_dir, "workers")
    server.metrics_url = f"http://127.0.0.1:{metrics_port}"
    yield server
    server.stop()


def success_total(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("model_predictions_total{") and 'status="success"' in line and '"1.0.0"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_are_aggregated_across_workers(two_workers):
    url = two_workers.url
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/health/ready").status_code != 200:  # both workers load the model
        assert time.monotonic() < deadline, two_workers.logs()
        time.sleep(0.2)
    pids = set()
    answered = 0
    for _ in range(200):
        # A fresh connection each time, so the kernel hands requests to either worker.
        with httpx.Client() as c:
            assert c.post(f"{url}/predict", json=SEED_PAYLOAD).status_code == 200
            answered += 1
            model = c.get(f"{url}/model")
            if model.status_code == 200:
                pids.add(model.json()["pid"])
        if len(pids) == 2 and answered >= 20:
            break
    assert len(pids) == 2, f"all {answered} requests reached one worker: {pids}"
    # Whichever worker answers the scrape reports the requests of both.
    for _ in range(4):
        assert success_total(url) == answered
    # The metrics port is served once, by the supervising process, with every worker's values.
    assert success_total(two_workers.metrics_url) == answered
    assert '"msg":"model ready"' in two_workers.logs()

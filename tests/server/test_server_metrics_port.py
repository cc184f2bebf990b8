"""The server's metrics port: /metrics alone on a second port, the same series as on the main port."""

import socket
import sys

import httpx
from server_testkit import SEED_PAYLOAD, free_port, server_env, start_on_free_port, start_uvicorn


def sample(text: str, name: str, *label_parts: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(part in line for part in label_parts):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_port_serves_only_metrics_with_the_main_ports_values(model_registry, log_dir):
    metrics_port = free_port()
    server = start_uvicorn(model_registry / "fraud" / "1.0.0", log_dir, METRICS_PORT=metrics_port)
    try:
        for _ in range(7):
            assert httpx.post(f"{server.url}/predict", json=SEED_PAYLOAD).status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        main = httpx.get(f"{server.url}/metrics").text
        assert sample(scraped.text, "model_predictions_total", 'status="success"') == 7
        assert sample(main, "model_predictions_total", 'status="success"') == 7
        # Predictions are not served there: a policy admitting scrapers admits nothing else.
        other = httpx.post(f"http://127.0.0.1:{metrics_port}/predict", json=SEED_PAYLOAD)
        assert other.status_code in (404, 501)
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/health/ready").status_code == 404
    finally:
        server.stop()


def test_metrics_port_in_use_stops_the_server_naming_the_variable(model_registry, log_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = model_registry / "fraud" / "1.0.0"
        try:
            server = start_on_free_port(
                lambda p: [sys.executable, "-m", "mlserving.cli.main", "serve", "--model-path", str(path),
                           "--host", "127.0.0.1", "--port", str(p), "--metrics-port", str(port)],
                server_env(path), log_dir, "metrics-taken", attempts=1)
        except AssertionError as exc:
            assert "METRICS_PORT" in str(exc) and str(port) in str(exc)
        else:
            server.stop()
            raise AssertionError("the server started although its metrics port was taken")

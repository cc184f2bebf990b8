"""Trace context across processes: one request through a real router and a real server gives log
lines with one trace_id, and the server sees the router's traceparent."""

import json
import subprocess
import sys
import time

import httpx
import pytest
from server_testkit import SEED_PAYLOAD, free_port, start_uvicorn

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.fixture
def server_and_router(model_registry, log_dir, tmp_path):
    server = start_uvicorn(model_registry / "fraud" / "1.0.0", log_dir, LOG_LEVEL="debug")
    table = tmp_path / "routing.json"
    table.write_text(json.dumps({"generation": 1, "stickyHeader": None, "variants": [
        {"name": "stable", "version": "1.0.0", "url": server.url, "weight": 100, "mirror": False}]}))
    port = free_port()
    log_path = tmp_path / "router.log"
    with open(log_path, "wb") as log:
        router = subprocess.Popen([sys.executable, "-m", "mlserving.cli.main", "router", "--config", str(table),
                                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "debug"],
                                  stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert router.poll() is None, log_path.read_text()
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
    yield server, url, log_path
    router.terminate()
    router.wait(10)
    server.stop()


def wait_for_line(read, predicate, what: str) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [line for line in json_lines(read()) if predicate(line)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no log line with {what} in:\n{read()[-3000:]}")


def test_client_traceparent_reaches_the_server_and_both_log_its_trace_id(server_and_router):
    server, url, router_log = server_and_router
    answer = httpx.post(f"{url}/predict", json={"features": SEED_PAYLOAD["features"]},
                        headers={"traceparent": CLIENT_TRACEPARENT, "x-request-id": "trace-test-1"})
    assert answer.status_code == 200
    by_trace = lambda line: line.get("trace_id") == CLIENT_TRACE and line.get("request_id") == "trace-test-1"
    router_line = wait_for_line(router_log.read_text, by_trace, "the client's trace id (router)")
    server_line = wait_for_line(server.logs, by_trace, "the client's trace id (server)")
    assert router_line["level"] == server_line["level"] == "debug"
    assert router_line["variant"] == "stable" and router_line["status"] == 200


def test_router_starts_a_trace_the_server_then_logs_and_answers(server_and_router):
    server, url, router_log = server_and_router
    bad = httpx.post(f"{url}/predict", json={"features": [1.0]}, headers={"x-request-id": "trace-test-2"})
    assert bad.status_code == 422
    body = bad.json()
    # The server's error body names the trace the router started for this request.
    trace_id = body["trace_id"]
    assert len(trace_id) == 32 and int(trace_id, 16) and body["request_id"] == "trace-test-2"
    mine = lambda line: line.get("request_id") == "trace-test-2" and line.get("level") == "warning"
    assert wait_for_line(server.logs, mine, "the server's failure line")["trace_id"] == trace_id
    assert wait_for_line(router_log.read_text, mine, "the router's failure line")["trace_id"] == trace_id


def test_invalid_traceparent_is_replaced(server_and_router):
    _server, url, _router_log = server_and_router
    bad = httpx.post(f"{url}/predict", json={"features": [1.0]},
                     headers={"traceparent": "00-zz-00f067aa0ba902b7-01", "x-request-id": "trace-test-3"})
    trace_id = bad.json()["trace_id"]
    assert trace_id and trace_id != "zz"

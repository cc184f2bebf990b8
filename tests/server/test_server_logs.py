"""Structured JSON logs: a line per request at DEBUG, a line per error at WARNING, with the request id."""

import json
import time

from server_testkit import SEED_PAYLOAD


def log_lines(server) -> list[dict]:
    # One JSON object per "\n": str.splitlines() would also cut at U+2028 and the like, which
    # JSON leaves unescaped and which a fuzzed path may carry.
    lines = []
    for line in server.logs().split("\n"):
        line = line.strip()
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def wait_for(server, predicate, timeout=5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [entry for entry in log_lines(server) if predicate(entry)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_every_line_is_json_and_errors_are_warnings(onnx_server, client):
    r = client.post(f"{onnx_server.url}/predict", json={"features": [1, 2]}, headers={"x-request-id": "bad-77"})
    assert r.status_code == 422
    (entry,) = wait_for(onnx_server, lambda e: e.get("request_id") == "bad-77")
    assert entry["level"] == "warning" and entry["status"] == 422 and "exactly 20" in entry["error"]
    assert entry["path"] == "/predict" and entry["ts"].endswith("Z")
    text = [line for line in onnx_server.logs().split("\n") if line.strip() and not line.startswith("{")]
    assert text == [], f"non-JSON log lines: {text[:3]}"
    ready = [e for e in log_lines(onnx_server) if e.get("msg") == "model ready"]
    assert ready and ready[0]["format"] == "onnx" and ready[0]["version"] == "1.0.0"


def test_debug_logs_one_line_per_request(renamed_debug_server, client):
    server = renamed_debug_server
    client.post(f"{server.url}/predict", json={**SEED_PAYLOAD, "request_id": "dbg-1"})
    client.get(f"{server.url}/model", headers={"x-request-id": "dbg-2"})
    (predict,) = wait_for(server, lambda e: e.get("request_id") == "dbg-1")
    assert predict["level"] == "debug" and predict["status"] == 200 and predict["rows"] == 1
    assert predict["duration_ms"] >= 0
    (model,) = wait_for(server, lambda e: e.get("request_id") == "dbg-2")
    assert model["level"] == "debug" and model["path"] == "/model"


def test_access_logger_has_a_handler_only_when_debugging():
    # uvicorn builds every response's access-line arguments whenever uvicorn.access has a handler,
    # whatever its level: outside debug it must have none.
    import logging

    from mlserving.server.logs import PROJECT_LOGGERS, setup_logging, uvicorn_log_config

    loggers = [logging.getLogger(name) for name in (*PROJECT_LOGGERS, "uvicorn.access")]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    access = loggers[-1]
    try:
        setup_logging("info")
        assert not access.hasHandlers()
        setup_logging("debug")
        assert access.hasHandlers()
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
    assert uvicorn_log_config("info")["loggers"]["uvicorn.access"]["handlers"] == []
    assert uvicorn_log_config("debug")["loggers"]["uvicorn.access"]["handlers"] == ["stderr"]

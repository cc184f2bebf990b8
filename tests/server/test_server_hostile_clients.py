"""The server under hostile clients (``mlserving serve`` on 127.0.0.1, raw sockets): every case
here once stalled, exhausted or confused the server."""

import json
import socket
import time

import hostile_kit as hk
import pytest
from server_testkit import SEED_PAYLOAD, start_serve

BODY = json.dumps(SEED_PAYLOAD).encode()
NO_ID = json.dumps({"features": SEED_PAYLOAD["features"]}).encode()  # the header's id is the answer's
SERVER_POD_LIMIT_MB = 512  # operator/spec.py DEFAULT_RESOURCES
# Short timeouts so the tests see them fire; the defaults are 30 / 10 / 30 / 20 s.
SHORT = {"HTTP_IDLE_TIMEOUT_S": 2, "HTTP_HEAD_TIMEOUT_S": 2, "HTTP_BODY_TIMEOUT_S": 2, "HTTP_SHUTDOWN_TIMEOUT_S": 5}


@pytest.fixture(scope="module")
def server(model_registry, log_dir):
    proc = start_serve(model_registry / "fraud" / "1.0.0", log_dir, **SHORT)
    yield proc
    proc.stop()


def test_100mb_header_and_200_slow_clients_do_not_stall_a_normal_client(server):
    attack = hk.huge_header_and_slow_clients(server.port, server.process.pid, BODY)
    assert hk.status_of(attack.huge_answer) == 431, attack.huge_answer[:300]
    assert b"headers" in attack.huge_answer
    hk.assert_no_stall(attack)
    assert attack.rss_mb < SERVER_POD_LIMIT_MB


@pytest.mark.parametrize("head", [
    "x-big: " + "a" * (10 << 20),
    "\r\n".join(f"x-h{i}: v" for i in range(10_000)),
])
def test_large_or_many_headers_get_431(server, head):
    answer = hk.exchange(server.port, hk.post("/predict", BODY, head))
    assert hk.status_of(answer) == 431, answer[:300]


def test_silent_slow_head_and_slow_body_connections_are_closed(server):
    hk.assert_silent_and_slow_connections_closed(server.port, hk.post("/predict", BODY))


def test_content_length_over_the_limit_is_refused_at_once(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 10000000000\r\n\r\n")
        answer = hk.read_answer(sock, 5)
    assert hk.status_of(answer) == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", ""])
def test_prediction_needs_json_content_type(server, content_type):
    answer = hk.exchange(server.port, hk.post("/predict", BODY, content_type=content_type))
    assert hk.status_of(answer) == 415, answer[:300]
    assert b'"field":"content-type"' in answer


V2_BODY = json.dumps({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, len(SEED_PAYLOAD["features"])],
                                  "data": SEED_PAYLOAD["features"]}]}).encode()


@pytest.mark.parametrize("content_type,extra,status", [
    ("", (), 200),                       # tritonclient.http on a JSON-only request sends no content-type
    ("text/plain", (), 415),             # what a cross-origin form may send stays refused on v2 too
    ("application/octet-stream", (f"inference-header-content-length: {len(V2_BODY)}",), 200),  # binary extension
])
def test_v2_content_types_of_the_triton_and_kserve_clients(server, content_type, extra, status):
    answer = hk.exchange(server.port, hk.post("/v2/models/fraud/infer", V2_BODY, *extra, content_type=content_type))
    assert hk.status_of(answer) == status, answer[:300]


def test_json_content_type_with_charset_is_accepted(server):
    answer = hk.exchange(server.port, hk.post("/predict", BODY, content_type="application/json; charset=utf-8"))
    assert hk.status_of(answer) == 200, answer[:300]


@pytest.mark.parametrize("method,path,allowed", [("POST", "/health/live", b"GET"),
                                                 ("DELETE", "/v2/models/fraud", b"GET")])
def test_405_names_the_allowed_methods(server, method, path, allowed):
    answer = hk.exchange(server.port, f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".encode())
    assert hk.status_of(answer) == 405
    assert allowed.decode() in (hk.header(answer, "allow") or ""), answer[:300]


def test_client_strings_are_truncated_in_error_bodies_and_logs(server):
    meta = hk.exchange(server.port, b"GET /v2/models/fraud HTTP/1.1\r\nhost: x\r\n\r\n").partition(b"\r\n\r\n")[2]
    names = {name: 1.0 for name in json.loads(meta)["inputs"][0]["parameters"]["feature_names"]}
    names.update({("f" * 190_000) + str(i): 1.0 for i in range(5)})  # five unknown 190 KB names
    body = json.dumps({"features": names}).encode()
    answer = hk.exchange(server.port, hk.post("/predict", body, "x-request-id: long-names"))
    assert hk.status_of(answer) == 422 and b"unknown feature" in answer, answer[:300]
    assert len(answer) < 4000, len(answer)
    time.sleep(0.2)
    lines = [line for line in server.logs().splitlines() if "long-names" in line]
    assert lines and max(map(len, lines)) < 4000


@pytest.mark.parametrize("value", ["x" * 129, "a\tb", ""])
def test_unusable_request_id_is_replaced(server, value):
    answer = hk.exchange(server.port, hk.post("/predict", NO_ID, f"x-request-id: {value}"))
    assert hk.status_of(answer) == 200
    assert hk.header(answer, "x-request-id") not in (value, "", None)


def test_of_two_request_ids_the_first_counts(server):
    answer = hk.exchange(server.port, hk.post("/predict", NO_ID, "x-request-id: first", "x-request-id: second"))
    assert b"x-request-id: first\r\n" in answer


def test_websocket_upgrade_gets_a_clean_answer(server):
    answer = hk.exchange(server.port, b"GET /predict HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\n"
                                      b"upgrade: websocket\r\nsec-websocket-version: 13\r\n"
                                      b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert hk.status_of(answer) == 405, answer[:300]


def test_sigterm_answers_requests_on_keep_alive_connections_and_is_bounded(model_registry, log_dir):
    server = start_serve(model_registry / "fraud" / "1.0.0", log_dir, **SHORT)
    try:
        failures, answered, closes, took = hk.sigterm_under_keep_alive(server.port, server.process,
                                                                      hk.post("/predict", BODY))
    finally:
        server.stop()
    assert not failures, failures[:3]
    assert answered > 32 and closes == 32
    assert took < SHORT["HTTP_HEAD_TIMEOUT_S"] + SHORT["HTTP_SHUTDOWN_TIMEOUT_S"]

"""The router process in front of stand-in upstreams (router_fake_upstream.py) for behaviours the
real server cannot produce on demand: 5xx answers, hangs, exact header inspection, dead ports."""

import asyncio
import json
import socket
import threading
import time

import hostile_kit as hk
import pytest
from mlserving.server.asgi import usable_request_id
from router_testkit import (
    drive,
    free_port,
    http_get,
    metric_value,
    metrics,
    start_fake,
    start_router,
    variant,
    wait_for,
    write_raw,
    write_table,
)


@pytest.fixture(scope="module")
def fakes(logs):
    a, b = start_fake("a", logs), start_fake("b", logs)
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def router_a(fakes, logs, tmp_path_factory):
    """Router sending everything to fake a (weights 100/0), timeout 1 s."""
    table = tmp_path_factory.mktemp("table") / "routing.json"
    write_table(table, [variant("alpha", "1.0.0", fakes[0].url, 100), variant("beta", "2.0.0", fakes[1].url, 0)],
                generation=3)
    router = start_router(table, logs, "--timeout", "1")
    yield router
    router.stop()


def post(url, body=b"{}", headers=None, timeout=10.0):
    return asyncio.run(_post(url, body, headers, timeout))


async def _post(url, body, headers, timeout):
    import aiohttp
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
            session.post(url, data=body, headers=headers or {}) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


def fake_stats(fake):
    return json.loads(http_get(fake.url + "/fake/stats")[1])


def test_request_passes_through_and_response_names_the_variant(router_a, fakes):
    status, headers, body = post(router_a.url + "/predict?explain=1", b'{"rows": [[1, 2]]}',
                                 {"content-type": "application/json", "x-tenant": "team-a"})
    assert status == 200
    assert headers["x-mlserving-variant"] == "alpha" and headers["x-model-version"] == "1.0.0"
    echoed = json.loads(body)
    assert echoed == {"served_by": "a", "path": "/predict", "query": "explain=1", "method": "POST",
                      "body": '{"rows": [[1, 2]]}'}
    seen = fake_stats(fakes[0])["last_headers"]
    assert seen["x-tenant"] == "team-a" and seen["content-type"] == "application/json"
    assert seen["x-request-id"] == headers["x-request-id"] and usable_request_id(headers["x-request-id"])
    assert seen["host"] == fakes[0].url.removeprefix("http://")


def test_client_request_id_is_forwarded_and_returned(router_a, fakes):
    status, headers, _ = post(router_a.url + "/predict/batch", headers={"x-request-id": "req-42"})
    assert status == 200 and headers["x-request-id"] == "req-42"
    assert fake_stats(fakes[0])["request_ids"][-1] == "req-42"


@pytest.mark.parametrize("path", ["/v2/models/fraud/infer", "/v2/models/fraud/versions/1.0.0/infer"])
def test_v2_paths_are_forwarded(router_a, path):
    status, headers, body = post(router_a.url + path)
    assert status == 200 and json.loads(body)["path"] == path and headers["x-mlserving-variant"] == "alpha"
    status, body = http_get(router_a.url + "/v2/models/fraud")
    assert status == 200 and json.loads(body)["method"] == "GET"


def test_own_endpoints_are_not_forwarded(router_a):
    assert http_get(router_a.url + "/health/live") == (200, b'{"status": "live"}')
    status, body = http_get(router_a.url + "/health/ready")
    assert status == 200 and json.loads(body) == {"status": "ready", "generation": 3}
    status, body = http_get(router_a.url + "/nope")
    assert status == 404 and "/predict" in json.loads(body)["error"]
    text = metrics(router_a)
    assert metric_value(text, "mlserving_router_table_generation") == 3
    assert metric_value(text, "mlserving_router_tables_applied_total") == 1


@pytest.mark.parametrize("upstream, expected", [(500, 502), (502, 502), (503, 503), (504, 504)])
def test_upstream_5xx_becomes_json_naming_the_variant(router_a, upstream, expected):
    status, headers, body = post(router_a.url + "/predict", headers={"x-fake-status": str(upstream)})
    assert status == expected and headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["variant"] == "alpha" and error["upstream_status"] == upstream and "alpha" in error["error"]
    # The body format of server/logs.py, shared with the server: request_id, status, and the trace the
    # router started for this request.
    assert error["status"] == expected and error["request_id"] == headers["x-request-id"]
    assert error["field"] is None and len(error["trace_id"]) == 32
    assert headers["x-mlserving-variant"] == "alpha"
    assert metric_value(metrics(router_a), "mlserving_router_requests_total",
                        variant="alpha", status=str(expected)) >= 1


def test_upstream_4xx_passes_through_unchanged(router_a):
    status, headers, body = post(router_a.url + "/predict", headers={"x-fake-status": "422"})
    assert status == 422 and json.loads(body)["served_by"] == "a"
    assert headers["x-mlserving-variant"] == "alpha"


def test_slow_upstream_times_out_with_json_504(router_a):
    started = time.monotonic()
    status, _, body = post(router_a.url + "/predict", headers={"x-fake-delay": "5"})
    elapsed = time.monotonic() - started
    assert status == 504 and elapsed < 4.0  # router deadline 1 s, the upstream holds it 5 s
    error = json.loads(body)
    assert error["variant"] == "alpha" and "did not answer in time" in error["error"]


def test_connect_error_fails_over_once_and_is_counted(fakes, logs, tmp_path):
    table = tmp_path / "routing.json"
    dead = f"http://127.0.0.1:{free_port()}"
    write_table(table, [variant("gone", "1.0.0", dead, 50), variant("beta", "2.0.0", fakes[1].url, 50)])
    router = start_router(table, logs)
    try:
        answers = asyncio.run(drive(router.url + "/predict", [b"{}"] * 200, concurrency=8))
        assert {(a.status, a.variant) for a in answers} == {(200, "beta")}
        failovers = metric_value(metrics(router), "mlserving_router_failovers_total",
                                 from_variant="gone", to_variant="beta")
        assert 50 <= failovers <= 150  # about half the requests first drew the dead variant

        write_table(table, [variant("gone", "1.0.0", dead, 100), variant("beta", "2.0.0", fakes[1].url, 0)],
                    generation=2)
        wait_for(lambda: metric_value(metrics(router), "mlserving_router_table_generation") == 2, 5)
        status, headers, body = post(router.url + "/predict")
        error = json.loads(body)
        assert status == 502 and error["variant"] == "gone" and "could not be reached" in error["error"]
        assert headers["x-mlserving-variant"] == "gone"
    finally:
        router.stop()


def test_not_ready_until_a_valid_table_arrives(fakes, logs, tmp_path):
    table = tmp_path / "later.json"
    router = start_router(table, logs, ready=False)
    try:
        assert http_get(router.url + "/health/ready")[0] == 503
        status, _, body = post(router.url + "/predict")
        assert status == 503 and "no valid routing table" in json.loads(body)["error"]
        write_raw(table, "{broken")
        wait_for(lambda: metric_value(metrics(router), "mlserving_router_tables_refused_total") == 1, 5)
        assert http_get(router.url + "/health/ready")[0] == 503
        write_table(table, [variant("alpha", "1.0.0", fakes[0].url, 100)])
        wait_for(lambda: http_get(router.url + "/health/ready")[0] == 200, 5, what="ready")
        assert post(router.url + "/predict")[0] == 200
    finally:
        router.stop()
    assert "routing table from file" in router.log() and "refused: routing table: not valid JSON" in router.log()


def test_mirror_gets_a_copy_and_its_failures_stay_invisible(fakes, logs, tmp_path):
    mirror = start_fake("mirror", logs)
    table = tmp_path / "routing.json"
    write_table(table, [variant("alpha", "1.0.0", fakes[0].url, 100), variant("shadow", "3.0.0", mirror.url, 0, True)])
    router = start_router(table, logs)
    try:
        before = fake_stats(mirror)["count"]
        answers = asyncio.run(drive(router.url + "/predict", [b"{}"] * 300, concurrency=8,
                                    headers=lambda i: {"x-request-id": f"m-{i}"}))
        assert {(a.status, a.variant) for a in answers} == {(200, "alpha")}
        wait_for(lambda: fake_stats(mirror)["count"] - before == 300, 5, what="all mirror copies")
        assert set(fake_stats(mirror)["request_ids"][before:]) == {f"m-{i}" for i in range(300)}
        assert fake_stats(mirror)["last_headers"]["x-request-id"].startswith("m-")

        answers = asyncio.run(drive(router.url + "/predict", [b"{}"] * 50, concurrency=4,
                                    headers=lambda i: {"x-fake-status": "500"}))
        assert {a.status for a in answers} == {502}  # the primary's 500, not the mirror's
        mirror.stop()
        answers = asyncio.run(drive(router.url + "/predict", [b"{}"] * 300, concurrency=8))
        assert {(a.status, a.variant) for a in answers} == {(200, "alpha")}
        text = metrics(router)
        assert metric_value(text, "mlserving_router_mirror_requests_total", variant="shadow", outcome="ok") >= 300
        assert metric_value(text, "mlserving_router_mirror_requests_total", variant="shadow", outcome="failed") >= 1
        assert metric_value(text, "mlserving_router_mirror_dropped_total", variant="shadow") >= 1
    finally:
        router.stop()
        mirror.stop()


def test_body_over_the_limit_is_refused_with_413(fakes, logs, tmp_path):
    table = tmp_path / "routing.json"
    write_table(table, [variant("alpha", "1.0.0", fakes[0].url, 100)])
    router = start_router(table, logs, "--max-body-bytes", "1000")
    try:
        assert post(router.url + "/predict", b"x" * 1000)[0] == 200
        status, _, body = post(router.url + "/predict", b"x" * 1001)
        assert status == 413 and "--max-body-bytes" in json.loads(body)["error"]
    finally:
        router.stop()


class DropsFirstConnection:
    """A real TCP upstream whose first connection is closed as soon as a request arrives (a pod
    killed with the request in flight); later connections get a 200 naming it."""

    def __init__(self, name: str):
        self.name, self.connections = name, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn, self.connections == 1), daemon=True).start()

    def _handle(self, conn, drop):
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(rest) < length:
                    rest += conn.recv(65536)
                data = rest[length:]
                if drop:
                    return  # closed with the request unanswered
                body = json.dumps({"served_by": self.name}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)

    def close(self):
        self.sock.close()


def test_a_dropped_connection_is_retried_within_the_variant_before_any_failover(fakes, logs, tmp_path):
    flaky = DropsFirstConnection("flaky")
    table = tmp_path / "routing.json"
    write_table(table, [variant("flaky", "1.0.0", flaky.url, 100), variant("beta", "2.0.0", fakes[1].url, 0)])
    router = start_router(table, logs)
    try:
        status, headers, body = post(router.url + "/predict")
        assert (status, json.loads(body)["served_by"], headers["x-mlserving-variant"]) == (200, "flaky", "flaky")
        assert flaky.connections == 2
        assert metric_value(metrics(router), "mlserving_router_failovers_total",
                            from_variant="flaky", to_variant="beta") == 0
    finally:
        router.stop()
        flaky.close()


def test_the_answer_carries_each_header_once_in_one_write(router_a):
    """The router's answer, head and body, leaves in one write (the whole-response message): each
    header once, the upstream's own with lower-case names, the router's length, identity and id."""
    port = int(router_a.url.rsplit(":", 1)[1])
    answer = hk.exchange(port, hk.post("/predict", b'{"rows": [[1, 2]]}', "x-request-id: once"))
    head, _, body = answer.partition(b"\r\n\r\n")
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n")[1:]]
    assert hk.status_of(answer) == 200 and sorted(names) == sorted(set(names)), names
    assert all(name == name.lower() for name in names)
    assert {b"date", b"server", b"content-type", b"content-length", b"x-mlserving-variant", b"x-model-version",
            b"x-request-id"} <= set(names)
    assert names[-1] == b"content-length" and int(hk.header(answer, "content-length")) == len(body)
    assert hk.header(answer, "x-request-id") == "once" and json.loads(body)["served_by"] == "a"

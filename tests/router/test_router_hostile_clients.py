"""The router under hostile clients and misbehaving upstreams (real processes on 127.0.0.1, raw
sockets): every case here once stalled, exhausted or crashed the router's answer."""

import json
import socket
import sys
import time

import hostile_kit as hk
import pytest
from router_testkit import (
    HERE,
    Process,
    free_port,
    metric_value,
    metrics,
    start_fake,
    start_router,
    variant,
    write_table,
)

ROUTER_POD_LIMIT_MB = 256  # operator/children/router.py ROUTER_RESOURCES
SHORT = {"HTTP_IDLE_TIMEOUT_S": "2", "HTTP_HEAD_TIMEOUT_S": "2", "HTTP_BODY_TIMEOUT_S": "2",
         "HTTP_SHUTDOWN_TIMEOUT_S": "5"}
BODY = b'{"features": [1, 2, 3]}'


@pytest.fixture(scope="module")
def raw_upstream(logs):
    port = free_port()
    proc = Process("raw-upstream", [sys.executable, str(HERE / "router_raw_upstream.py"), "--port", str(port)],
                   port, logs).start()
    yield proc
    proc.stop()


def router_to(upstream_url: str, logs, tmp_path, *extra, mirror_url: str | None = None, env=None) -> Process:
    table = tmp_path / "routing.json"
    variants = [variant("raw", "1.0.0", upstream_url, 100)]
    if mirror_url:
        variants.append(variant("shadow", "2.0.0", mirror_url, 0, mirror=True))
    write_table(table, variants)
    router = start_router(table, logs, *extra, ready=True) if env is None else None
    if env is not None:
        port = free_port()
        cmd = [sys.executable, "-m", "mlserving.cli.main", "router", "--config", str(table),
               "--host", "127.0.0.1", "--port", str(port), *extra]
        router = Process("router", cmd, port, logs, env=env).start(ready_path="/health/ready")
    return router


@pytest.fixture(scope="module")
def router(raw_upstream, logs, tmp_path_factory):
    proc = router_to(raw_upstream.url, logs, tmp_path_factory.mktemp("table"), env=SHORT)
    yield proc
    proc.stop()


def test_100mb_header_and_200_slow_clients_do_not_stall_a_normal_client(router):
    attack = hk.huge_header_and_slow_clients(router.port, router.proc.pid, BODY)
    assert hk.status_of(attack.huge_answer) == 431, attack.huge_answer[:300]
    hk.assert_no_stall(attack)
    assert attack.rss_mb < ROUTER_POD_LIMIT_MB


@pytest.mark.parametrize("head", ["x-big: " + "a" * (10 << 20), "\r\n".join(f"x-h{i}: v" for i in range(10_000))])
def test_large_or_many_headers_get_431(router, head):
    assert hk.status_of(hk.exchange(router.port, hk.post("/predict", BODY, head))) == 431


@pytest.mark.parametrize("path", ["/v2/big?mb=200", "/v2/endless"])
def test_huge_or_endless_upstream_body_gives_502_naming_the_variant(router, path):
    before = hk.rss_mb(router.proc.pid)
    answer = hk.exchange(router.port, hk.post(path, BODY), timeout=30)
    growth = hk.rss_mb(router.proc.pid) - before
    assert hk.status_of(answer) == 502, answer[:300]
    assert b"'raw'" in answer and b"--max-response-bytes" in answer
    assert growth < 20, f"RSS grew {growth:.0f} MB"


@pytest.mark.parametrize("line", ["000 Zero", "099 Low", "101 Switching Protocols", "600 High"])
def test_invalid_upstream_status_line_gives_502(router, line):
    answer = hk.exchange(router.port, hk.post(f"/v2/status?line={line.replace(' ', '%20')}", BODY))
    assert hk.status_of(answer) == 502, answer[:300]
    assert b"'raw'" in answer


def test_interim_100_continue_is_not_passed_to_the_client(router):
    answer = hk.exchange(router.port, hk.post("/v2/interim", BODY))
    assert hk.status_of(answer) == 200, answer[:300]
    assert b"100 Continue" not in answer


def test_websocket_upgrade_gets_a_clean_answer(router):
    answer = hk.exchange(router.port, b"GET /predict HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\n"
                                      b"upgrade: websocket\r\nsec-websocket-version: 13\r\n"
                                      b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert hk.status_of(answer) == 200, answer[:300]  # forwarded as a plain GET; the raw upstream says 200


def test_body_over_the_server_limit_is_refused_from_content_length_at_once(router):
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 10000000000\r\n\r\n")
        answer = hk.read_answer(sock, 5)
    assert hk.status_of(answer) == 413, answer[:300]
    over = hk.exchange(router.port, hk.post("/predict", b"x" * ((1 << 20) + 1)))
    assert hk.status_of(over) == 413


def test_silent_slow_head_and_slow_body_connections_are_closed(router):
    hk.assert_silent_and_slow_connections_closed(router.port, hk.post("/predict", BODY))


def test_long_client_strings_are_truncated_in_the_404(router):
    answer = hk.exchange(router.port, f"GET /{'p' * 30000} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    assert hk.status_of(answer) == 404 and len(answer) < 2000


def test_unusable_request_ids_are_replaced_by_the_servers_rule(logs, tmp_path):
    fake = start_fake("ids", logs)
    router = router_to(fake.url, logs, tmp_path)
    try:
        sent = ["x" * 129, "a\tb", "", "fine-id"]
        echoed = []
        for value in sent:
            answer = hk.exchange(router.port, hk.post("/predict", BODY, f"x-request-id: {value}"))
            echoed.append(hk.header(answer, "x-request-id"))
        answer = hk.exchange(router.port, hk.post("/predict", BODY, "x-request-id: first", "x-request-id: second"))
        assert b"x-request-id: first\r\n" in answer
        seen = json.loads(hk.exchange(fake.port, b"GET /fake/stats HTTP/1.1\r\nhost: x\r\n\r\n")
                          .partition(b"\r\n\r\n")[2])["request_ids"]
    finally:
        router.stop()
        fake.stop()
    assert echoed[3] == "fine-id"
    assert all(e not in sent[:3] and e for e in echoed[:3])
    assert seen == [*echoed, "first"]  # the server got exactly the id the client was given


def test_a_mirror_that_never_answers_costs_bounded_memory_and_backs_off(raw_upstream, logs, tmp_path):
    fake = start_fake("primary", logs)
    router = router_to(fake.url, logs, tmp_path, mirror_url=raw_upstream.url)
    body = json.dumps({"features": "x" * ((1 << 20) - 100)}).encode()

    def dropped(reason: str) -> float:
        return metric_value(metrics(router), "mlserving_router_mirror_dropped_total",
                            variant="shadow", reason=reason)

    try:
        peak, sent = 0.0, 0
        with socket.create_connection(("127.0.0.1", router.port), timeout=30) as sock:
            # Copies only count as "unreachable" once a copy has timed out (5 s) and the mirror backs
            # off, so keep the primary traffic going until then, however fast the machine is.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                sock.sendall(hk.post("/v2/hang", body))
                assert hk.status_of(hk.read_answer(sock, 30)) == 200
                if sent % 20 == 0:
                    peak = max(peak, hk.rss_mb(router.proc.pid))
                    if sent >= 300 and dropped("unreachable") > 0:
                        break
                sent += 1
        unreachable, queue_full = dropped("unreachable"), dropped("queue_full")
    finally:
        router.stop()
        fake.stop()
    assert peak < 150, f"router RSS reached {peak:.0f} MB"
    assert queue_full > 0 and unreachable > 0, (sent, queue_full, unreachable)


def test_sigterm_answers_requests_on_keep_alive_connections_and_is_bounded(logs, tmp_path):
    fake = start_fake("drain", logs)
    router = router_to(fake.url, logs, tmp_path, env=SHORT)
    try:
        failures, answered, closes, took = hk.sigterm_under_keep_alive(router.port, router.proc,
                                                                      hk.post("/predict", BODY))
    finally:
        router.stop()
        fake.stop()
    assert not failures, failures[:3]
    assert answered > 32 and closes == 32
    assert took < float(SHORT["HTTP_HEAD_TIMEOUT_S"]) + float(SHORT["HTTP_SHUTDOWN_TIMEOUT_S"])

"""A hot-path response is one ASGI message and one write where the server offers it, and the two
standard messages elsewhere, with the same status, headers and body either way."""

import asyncio
import json
import shutil
import socket

import hostile_kit as hk
import pytest
from mlserving.server.config import ServerConfig
from mlserving.server.head_holding import HeadHoldingTransport
from mlserving.server.model_state import ModelState
from mlserving.server.whole_response import (
    EXTENSION,
    MESSAGE_TYPE,
    WholeResponseCycle,
    head_lines,
    split_head,
    whole_messages,
)
from server_testkit import SEED_PAYLOAD, start_serve, start_uvicorn
from test_head_holding import RecordingTransport
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

DEFAULTS = [(b"date", b"Wed, 02 Dec 2026 12:00:00 GMT"), (b"server", b"uvicorn")]
HEAD = head_lines([(b"content-type", b"application/json"), (b"x-request-id", b"r-1")])


def cycle(transport, keep_alive=True, method="POST"):
    done = []
    c = RequestResponseCycle(
        scope={"method": method}, transport=transport, flow=FlowControl(transport), logger=None, access_logger=None,
        access_log=False, default_headers=DEFAULTS, message_event=asyncio.Event(), expect_100_continue=False,
        keep_alive=keep_alive, on_response=lambda: done.append(True))
    c.__class__ = WholeResponseCycle
    return c, done


def test_one_message_is_one_write_with_length_and_the_default_headers():
    real = RecordingTransport()
    c, done = cycle(real)
    asyncio.run(c.send({"type": MESSAGE_TYPE, "status": 201, "head": HEAD, "body": b"{}"}))
    assert real.writes == [(b"HTTP/1.1 201 Created\r\ndate: Wed, 02 Dec 2026 12:00:00 GMT\r\nserver: uvicorn\r\n"
                            b"content-type: application/json\r\nx-request-id: r-1\r\ncontent-length: 2\r\n\r\n{}")]
    assert c.response_complete and done == [True] and not real.closed
    with pytest.raises(RuntimeError, match="already started"):
        asyncio.run(c.send({"type": MESSAGE_TYPE, "status": 200, "head": HEAD, "body": b"{}"}))


def test_a_connection_that_does_not_stay_open_says_so_and_closes():
    real = RecordingTransport()
    c, _ = cycle(real, keep_alive=False)
    asyncio.run(c.send({"type": MESSAGE_TYPE, "status": 200, "head": HEAD, "body": b"{}"}))
    assert b"\r\nconnection: close\r\n\r\n{}" in real.writes[0] and real.closed


@pytest.mark.parametrize("method, writes", [("POST", 1), ("HEAD", 1)])
def test_the_standard_messages_still_work_with_the_head_held_for_the_body(method, writes):
    real = RecordingTransport()
    c, done = cycle(real, method=method)
    asyncio.run(c.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}))
    held = type(c.transport) is HeadHoldingTransport
    asyncio.run(c.send({"type": "http.response.body", "body": b"{}"}))
    assert held is (method != "HEAD") and done == [True]
    assert len(real.writes) == writes and real.writes[0].endswith(b"content-length: 2\r\n\r\n" + (b"{}" if held else b""))


def test_without_the_extension_the_same_response_goes_as_two_standard_messages():
    assert whole_messages({"type": "http"}, 404, HEAD, b"{}") == (
        {"type": "http.response.start", "status": 404,
         "headers": [(b"content-length", b"2"), (b"content-type", b"application/json"), (b"x-request-id", b"r-1")]},
        {"type": "http.response.body", "body": b"{}"})
    assert whole_messages({"type": "http", "extensions": {EXTENSION: {}}}, 404, HEAD, b"{}") == (
        {"type": MESSAGE_TYPE, "status": 404, "head": HEAD, "body": b"{}"},)
    assert split_head(HEAD) == [(b"content-type", b"application/json"), (b"x-request-id", b"r-1")]


def header_list(answer: bytes) -> list[str]:
    return sorted(line.split(b":", 1)[0].decode().lower() for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:])


@pytest.fixture(scope="module")
def servers(model_registry, log_dir):
    """``mlserving serve`` (its protocol offers whole responses) and plain uvicorn (it does not)."""
    path = model_registry / "fraud" / "1.0.0"
    ours, plain = start_serve(path, log_dir), start_uvicorn(path, log_dir)
    yield ours, plain
    ours.stop()
    plain.stop()


@pytest.mark.parametrize("path, body", [("/predict", json.dumps(SEED_PAYLOAD).encode()),
                                        ("/predict", b"{not json"),
                                        ("/v2/models/fraud/infer", json.dumps(
                                            {"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP32",
                                                         "data": SEED_PAYLOAD["features"]}]}).encode())])
def test_both_servers_answer_the_same_status_headers_and_body(servers, path, body):
    request = hk.post(path, body, "x-request-id: same-id")
    answers = [hk.exchange(server.port, request) for server in servers]
    assert hk.status_of(answers[0]) == hk.status_of(answers[1])
    assert header_list(answers[0]) == header_list(answers[1]) == [
        "content-length", "content-type", "date", "server", "x-model-name", "x-model-version", "x-request-id"]
    bodies = [a.partition(b"\r\n\r\n")[2] for a in answers]
    assert bodies[0] == bodies[1] and int(hk.header(answers[0], "content-length")) == len(bodies[0])
    assert hk.header(answers[0], "x-request-id") == hk.header(answers[1], "x-request-id")
    assert hk.header(answers[0], "x-model-version") == "1.0.0"


def test_mlserving_serve_sends_hot_path_answers_whole(servers):
    """The whole-response layout (content-length after the application's own lines) shows that the
    extension was offered and taken; plain uvicorn's answer has it first."""
    order = lambda a: [line.split(b":", 1)[0].decode() for line in a.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]]
    request = hk.post("/predict", json.dumps(SEED_PAYLOAD).encode())
    ours, plain = (hk.exchange(server.port, request) for server in servers)
    assert order(ours) == ["date", "server", "content-type", "x-request-id", "x-model-name", "x-model-version",
                           "content-length"]
    assert order(plain).index("content-length") < order(plain).index("content-type")


def test_connection_close_is_answered_and_honoured_on_the_whole_path(servers):
    ours = servers[0]
    with socket.create_connection(("127.0.0.1", ours.port), timeout=10) as sock:
        sock.sendall(hk.post("/predict", json.dumps(SEED_PAYLOAD).encode(), "connection: close"))
        answer = hk.read_answer(sock)
        assert hk.status_of(answer) == 200 and hk.header(answer, "connection") == "close"
        assert hk.closed_by_peer(sock, 5) is not None


def test_keep_alive_serves_many_whole_responses_on_one_connection(servers):
    ours = servers[0]
    request = hk.post("/predict", json.dumps(SEED_PAYLOAD).encode())
    with socket.create_connection(("127.0.0.1", ours.port), timeout=10) as sock:
        for _ in range(50):
            sock.sendall(request)
            assert hk.status_of(hk.read_answer(sock)) == 200


def test_a_version_that_cannot_go_in_a_header_is_refused_at_load(model_registry, tmp_path):
    directory = tmp_path / "fraud" / "1.0.0"
    shutil.copytree(model_registry / "fraud" / "1.0.0", directory)
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["version"] = "1.0.0\r\nx-injected: yes"
    (directory / "metadata.json").write_text(json.dumps(metadata))
    state = ModelState(ServerConfig(model_path=directory))
    state.load()
    assert not state.ready
    assert "version must be at most 253 printable characters" in state.not_ready_reason
    assert "x-model-version header" in state.not_ready_reason

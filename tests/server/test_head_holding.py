"""A response's head and first body chunk leave in one write; HEAD and 100-continue are not held."""

import json
import socket

import hostile_kit as hk
import pytest
from mlserving.server.head_holding import JOIN_LIMIT, HeadHoldingTransport, holds_head
from server_testkit import SEED_PAYLOAD, start_serve


class RecordingTransport:
    def __init__(self):
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data):
        self.writes.append(bytes(data))

    def writelines(self, chunks):
        self.writes.append(b"".join(chunks))

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_head_goes_out_with_the_first_body_chunk_then_chunks_pass_through():
    real = RecordingTransport()
    transport = HeadHoldingTransport(real)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.writes == []
    transport.write(b"first")
    transport.write(b"second")
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nfirst", b"second"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1) and not transport.is_closing()


def test_a_large_body_is_not_copied_into_the_head():
    real = RecordingTransport()
    transport = HeadHoldingTransport(real)
    transport.write(b"head")
    transport.write(b"x" * (JOIN_LIMIT + 1))
    assert real.writes == [b"head" + b"x" * (JOIN_LIMIT + 1)]


def test_close_sends_a_held_head_first():
    real = RecordingTransport()
    transport = HeadHoldingTransport(real)
    transport.write(b"head")
    transport.close()
    assert real.writes == [b"head"] and real.closed


class Cycle:
    def __init__(self, waiting):
        self.waiting_for_100_continue = waiting


@pytest.mark.parametrize("method, waiting, held", [("POST", False, True), ("GET", False, True),
                                                   ("HEAD", False, False), ("POST", True, False)])
def test_which_requests_hold_their_head(method, waiting, held):
    assert holds_head(Cycle(waiting), {"method": method}) is held


@pytest.fixture(scope="module")
def server(model_registry, log_dir):
    proc = start_serve(model_registry / "fraud" / "1.0.0", log_dir)
    yield proc
    proc.stop()


def test_a_held_head_arrives_whole_with_its_body(server):
    answer = hk.exchange(server.port, hk.post("/predict", json.dumps(SEED_PAYLOAD).encode()))
    _, _, body = answer.partition(b"\r\n\r\n")
    assert hk.status_of(answer) == 200 and body.startswith(b"{") and body.endswith(b"}")
    assert int(hk.header(answer, "content-length")) == len(body)


def test_head_request_still_gets_its_head(server):
    answer = hk.exchange(server.port, b"HEAD /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert hk.status_of(answer) in (200, 405), answer[:200]


def test_expect_100_continue_gets_the_interim_answer_before_the_body_is_sent(server):
    body = json.dumps(SEED_PAYLOAD).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body))
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        answer = hk.read_answer(sock)
    assert hk.status_of(answer) == 200, answer[:300]

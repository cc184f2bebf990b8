"""Hostile HTTP clients on raw sockets, for the server's and the router's limit tests: huge heads,
slow heads and bodies, silent connections; and a normal client timing its requests meanwhile."""

from __future__ import annotations

import signal
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def read_answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything up to the connection's end, or the first full answer with a content-length."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data
        if not chunk:
            return data
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:") and len(body) >= int(line.split(b":")[1]):
                    return data


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_answer(sock, timeout)


def post(path: str, body: bytes, *headers: str, content_type: str = "application/json") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", f"content-length: {len(body)}"]
    if content_type:
        lines.append(f"content-type: {content_type}")
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode() + body


class HugeHeader(threading.Thread):
    """Sends ``POST path`` with one header of ``size`` bytes as fast as the peer reads; keeps the
    answer it got (if any) and how long the peer kept reading."""

    def __init__(self, port: int, size: int, path: str = "/predict"):
        super().__init__(daemon=True)
        self.port, self.size, self.path = port, size, path
        self.answer = b""
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sent = 0
            chunk = b"a" * (1 << 20)
            try:
                sock.sendall(f"POST {self.path} HTTP/1.1\r\nhost: x\r\nx-big: ".encode())
                while sent < self.size:
                    sock.sendall(chunk)
                    sent += len(chunk)
                sock.sendall(b"\r\n\r\n")
            except OSError:
                pass
            try:
                self.answer = read_answer(sock, 30)
            except OSError:
                pass
        self.seconds = time.monotonic() - started


@contextmanager
def slow_clients(port: int, count: int, partial: bytes = b"POST /predict HTTP/1.1\r\nhost: x\r\n"):
    """``count`` connections that send a partial request head and then nothing; yields the sockets."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if partial:
                sock.sendall(partial)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def closed_by_peer(sock: socket.socket, timeout: float) -> bytes | None:
    """What the peer sent before closing the connection within ``timeout`` s; None if it stayed open."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data
    except TimeoutError:
        return None


def latencies(port: int, raw: bytes, count: int) -> list[float]:
    """``count`` requests one after the other on one keep-alive connection; seconds each."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(raw)
            answer = read_answer(sock)
            assert status_of(answer) == 200, answer[:300]
            out.append(time.perf_counter() - started)
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def stall_bound(quiet: list[float]) -> float:
    """The p99 a normal client may see under attack: 50 ms, or three times its own p99 measured
    just before without the attack where the machine is too busy for 50 ms (a stall of the kind
    these tests catch lasts seconds, far above either)."""
    return max(0.05, 3 * p99(quiet))


def header(answer: bytes, name: str) -> str | None:
    """The first value of header ``name`` in a raw answer."""
    prefix = name.lower().encode() + b":"
    head = answer.partition(b"\r\n\r\n")[0]
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(prefix):
            return line.split(b":", 1)[1].strip().decode("latin-1")
    return None


def assert_silent_and_slow_connections_closed(port: int, request: bytes, within: float = 15) -> None:
    """A silent connection is closed; a slow head and a slow body get 408 and are closed."""
    with slow_clients(port, 1, partial=b"") as (silent,), slow_clients(port, 1) as (slow_head,), \
            slow_clients(port, 1, partial=request[:-5]) as (slow_body,):
        for sock, status in ((silent, None), (slow_head, 408), (slow_body, 408)):
            answer = closed_by_peer(sock, within)
            assert answer is not None, "connection still open"
            assert status_of(answer) == status, answer[:300]


def sigterm_under_keep_alive(port: int, process, request: bytes, clients: int = 32, slow: int = 100):
    """``clients`` keep-alive loops of ``request`` and ``slow`` half-sent heads, then SIGTERM.
    Returns (failures, answered, answers with connection: close, seconds to exit)."""
    failures, answered, closes = [], [0], [0]

    def client():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                while True:
                    sock.sendall(request)
                    answer = read_answer(sock)
                    if status_of(answer) != 200:
                        failures.append(answer[:200])
                        return
                    answered[0] += 1
                    if b"connection: close" in answer.lower():
                        closes[0] += 1
                        return
        except OSError as exc:
            failures.append(repr(exc))

    with slow_clients(port, slow):
        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        took = time.monotonic() - started
        for t in threads:
            t.join(10)
    return failures, answered[0], closes[0], took


class Attack(NamedTuple):
    huge_answer: bytes  # what the 100 MB header got
    quiet: list[float]  # the normal client's latencies before the attack
    attacked: list[float]  # ... and during it
    rss_mb: float  # the process's RSS while the attack was on


def huge_header_and_slow_clients(port: int, pid: int, body: bytes) -> Attack:
    """A 100 MB header and 200 slow clients against one process while a normal client posts."""
    quiet = latencies(port, post("/predict", body), 300)
    huge = HugeHeader(port, 100 << 20)
    with slow_clients(port, 200):
        huge.start()
        attacked = latencies(port, post("/predict", body), 300)
        huge.join(60)
        rss = rss_mb(pid)
    return Attack(huge.answer, quiet, attacked, rss)


def assert_no_stall(attack: Attack) -> None:
    assert p99(attack.attacked) < stall_bound(attack.quiet), \
        f"p99 {p99(attack.attacked) * 1000:.1f} ms under attack, {p99(attack.quiet) * 1000:.1f} ms before it"

"""Helpers for the router tests: real processes on 127.0.0.1, routing-table files, a bounded load client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
FAKE_UPSTREAM = HERE / "router_fake_upstream.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Process:
    """A child process with its output in a log file; stopped (and reaped) by stop()."""

    def __init__(self, name: str, cmd: list[str], port: int, log_dir: Path, env: dict | None = None):
        self.name, self.cmd, self.port = name, cmd, port
        self.log_path = log_dir / f"{name}-{port}.log"
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/health/live", timeout: float = 30.0) -> Process:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **(self.env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = http_get(self.url + ready_path, timeout=1.0)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready on {self.url}{ready_path} within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_fake(name: str, log_dir: Path, port: int | None = None, fail_every: int = 0) -> Process:
    port = port or free_port()
    cmd = [sys.executable, str(FAKE_UPSTREAM), "--name", name, "--port", str(port)]
    if fail_every:
        cmd += ["--fail-every", str(fail_every)]
    return Process(f"fake-{name}", cmd, port, log_dir).start(ready_path="/fake/stats")


def start_router(table_file: Path, log_dir: Path, *extra: str, ready: bool = True,
                 port: int | None = None) -> Process:
    port = port or free_port()
    cmd = [sys.executable, "-m", "mlserving.cli.main", "router", "--config", str(table_file),
           "--host", "127.0.0.1", "--port", str(port), *extra]
    return Process("router", cmd, port, log_dir).start(ready_path="/health/ready" if ready else "/health/live")


def variant(name: str, version: str, url: str, weight: int, mirror: bool = False) -> dict:
    return {"name": name, "version": version, "url": url, "weight": weight, "mirror": mirror}


def write_table(path: Path, variants: list[dict], generation: int = 1, sticky: str | None = "x-user-id") -> None:
    """Atomic replace (write + rename), as a ConfigMap volume or an editor's save would."""
    write_raw(path, json.dumps({"generation": generation, "stickyHeader": sticky, "variants": variants}))


def write_raw(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def metric_value(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def metrics(process: Process) -> str:
    return http_get(process.url + "/metrics")[1].decode()


@dataclass
class Answer:
    status: int
    variant: str | None
    version: str | None
    request_id: str | None
    body: bytes
    seconds: float
    sent_at: float
    key: str | None = None


async def drive(url: str, bodies, concurrency: int = 32, headers=None, timeout: float = 30.0) -> list[Answer]:
    """Send one POST per item of ``bodies`` with at most ``concurrency`` in flight.

    ``headers`` is a function of the item index returning extra headers (or None).
    """
    bodies = list(bodies)
    answers: list[Answer | None] = [None] * len(bodies)
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def worker():
            nonlocal next_index
            while next_index < len(bodies):
                i = next_index
                next_index += 1
                extra = headers(i) if headers else None
                answers[i] = await one_request(session, url, bodies[i], extra)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


async def one_request(session: aiohttp.ClientSession, url: str, body: bytes, headers=None) -> Answer:
    sent = time.monotonic()
    try:
        async with session.post(url, data=body, headers={"content-type": "application/json", **(headers or {})}) as resp:
            payload = await resp.read()
            h = resp.headers
            key = (headers or {}).get("x-user-id")
            return Answer(resp.status, h.get("x-mlserving-variant"), h.get("x-model-version"),
                          h.get("x-request-id"), payload, time.monotonic() - sent, sent, key)
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Answer(-1, None, None, None, repr(exc).encode(), time.monotonic() - sent, sent)


async def drive_for(url: str, seconds: float, clients: int, body: bytes, timeout: float = 30.0,
                    stop: asyncio.Event | None = None) -> list[Answer]:
    """``clients`` loops each sending one request after the other for ``seconds``, or until
    ``stop`` is set when one is given (``seconds`` is then only the upper bound)."""
    answers: list[Answer] = []
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def client():
            while time.monotonic() < end and not (stop and stop.is_set()):
                answers.append(await one_request(session, url, body))

        await asyncio.gather(*(client() for _ in range(clients)))
    return answers


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s")

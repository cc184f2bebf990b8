"""Process helpers for bench/router_latency.py: real processes on 127.0.0.1, optionally pinned to a CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

NICE = 0  # set by the bench's --nice: runs what is measured ahead of other work on a shared machine


def pinned(cmd: list[str], cpu: str | None) -> list[str]:
    """``cmd`` on one CPU (taskset), at the bench's niceness."""
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    return ["nice", "-n", str(NICE), *cmd] if NICE else cmd


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_table(path: Path, variants: list[tuple], generation: int = 1) -> None:
    doc = {"generation": generation, "stickyHeader": None, "variants": [
        {"name": n, "version": v, "url": u, "weight": w, "mirror": m} for n, v, u, w, m in variants]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


class Proc:
    def __init__(self, name: str, cmd: list[str], port: int, logs: Path, cpu: str | None = None):
        self.name, self.port = name, port
        self.cmd = pinned(cmd, cpu)
        self.log = logs / f"{name}-{port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid  # nice and taskset exec the command: same pid

    def start(self, ready_path: str, timeout: float = 60.0) -> Proc:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

"""Helpers for the inference-server tests: the seed payload and real uvicorn processes.

Every server here is a real ``uvicorn mlserving.server.main:app`` process on 127.0.0.1 reached
over real HTTP; models are trained small (1,500 rows, 10 trees) to keep the suite fast.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

# The seed's example request: 20 features of one card transaction.
SEED_FEATURES = [0.52, -1.21, 0.33, 1.74, -0.68, 0.05, 2.11, -0.94, 0.27, 1.38,
                 -0.45, 0.81, -1.67, 0.12, 0.99, -0.23, 1.05, -0.71, 0.64, -1.02]
SEED_PAYLOAD = {"features": SEED_FEATURES, "request_id": "txn-0001"}
SMALL = {"samples": 1500, "params": {"n_estimators": 10}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, command: list[str], env: dict, log_path: Path, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - the server writes to it until stop()
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_live(self, timeout: float = 60.0) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not live after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def server_env(model_path: Path, **env) -> dict:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("MODEL_", "PROMETHEUS_", "BATCH", "MAX_", "INLINE_", "ALLOW_"))}
    base.update({"MODEL_PATH": str(model_path), "LOG_LEVEL": "info"})
    base.update({k: str(v) for k, v in env.items()})
    return base


def start_uvicorn(model_path: Path, log_dir: Path, **env) -> ServerProcess:
    return start_on_free_port(lambda port: [sys.executable, "-m", "uvicorn", "mlserving.server.main:app",
                                            "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                              server_env(model_path, **env), log_dir, "server")


def start_on_free_port(command_for, env: dict, log_dir: Path, label: str, attempts: int = 3) -> ServerProcess:
    """Starts the server on a free port; another process on this busy machine may grab the port
    between our probe and the server's bind, so a bind failure is retried on a new port."""
    for attempt in range(attempts):
        port = free_port()
        server = ServerProcess(command_for(port), env, log_dir / f"{label}-{port}.log", port)
        try:
            return server.wait_live()
        except AssertionError:
            server.stop()
            if "address already in use" not in server.logs().lower() or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def start_router_to(upstream_url: str, log_dir: Path, version: str = "1") -> ServerProcess:
    """`mlserving router` sending all traffic to one upstream (a routing-table file of one variant)."""
    import json

    table = log_dir / f"routing-{free_port()}.json"
    table.write_text(json.dumps({"generation": 1, "stickyHeader": None, "variants": [
        {"name": "only", "version": version, "url": upstream_url, "weight": 100, "mirror": False}]}))
    return start_on_free_port(lambda port: [sys.executable, "-m", "mlserving.cli.main", "router", "--config",
                                            str(table), "--host", "127.0.0.1", "--port", str(port)],
                              server_env(Path("/nonexistent")), log_dir, "router")


def start_serve(model_path: Path, log_dir: Path, **env) -> ServerProcess:
    """``mlserving serve``, as the pod runs it (with the project's HTTP protocol and its limits)."""
    return start_on_free_port(lambda port: [sys.executable, "-m", "mlserving.cli.main", "serve",
                                            "--host", "127.0.0.1", "--port", str(port)],
                              server_env(model_path, **env), log_dir, "serve")

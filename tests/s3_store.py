"""A real S3-compatible store for the tests: SeaweedFS (master, volume, filer and S3 gateway in one
``weed server`` process) with signature-checked credentials, on loopback or on the node bridge.

Built from its Go module by hack/s3/build-seaweedfs.sh into ~/.cache/mlserving/seaweedfs/<version>/.
Without that binary the tests that need the store skip (the reason says how to build it), unless
MLSERVING_REQUIRE_S3=1 (set by .ci/run) makes that a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "hack" / "s3" / "build-seaweedfs.sh"
REQUIRE_FLAG = "MLSERVING_REQUIRE_S3"
START_TIMEOUT_S = 60.0


@dataclasses.dataclass(frozen=True)
class S3Store:
    """A running store: its endpoint, one valid key pair, and a client to fill buckets with."""

    endpoint: str  # http://host:port
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        from minio import Minio

        host = self.endpoint.split("://", 1)[1]
        return Minio(host, access_key=access_key or self.access_key, secret_key=secret_key or self.secret_key,
                     secure=False, region=self.region)

    def env(self, access_key: str | None = None, secret_key: str | None = None) -> dict[str, str]:
        """What mlserving.cli.s3 reads (the init container's environment)."""
        return {"MLSERVING_S3_ENDPOINT": self.endpoint, "MLSERVING_S3_REGION": self.region,
                "AWS_ACCESS_KEY_ID": access_key or self.access_key,
                "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key}

    def upload_dir(self, bucket: str, prefix: str, directory: pathlib.Path) -> list[str]:
        client = self.client()
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        keys = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            key = f"{prefix.strip('/')}/{path.relative_to(directory).as_posix()}"
            client.fput_object(bucket, key, str(path))
            keys.append(key)
        return keys


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")


def seaweedfs_binary() -> pathlib.Path:
    """The cached ``weed``; skips (or fails under MLSERVING_REQUIRE_S3=1) when it is not built."""
    version = os.environ.get("SEAWEEDFS_VERSION") or _script_default("SEAWEEDFS_VERSION")
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "mlserving"
    binary = pathlib.Path(os.environ.get("SEAWEEDFS_BIN") or cache / "seaweedfs" / version / "weed")
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    reason = f"SeaweedFS not built ({binary} missing): run {BUILD_SCRIPT.relative_to(REPO_ROOT)} (Go module build)"
    if env_flag(REQUIRE_FLAG):
        pytest.fail(f"{REQUIRE_FLAG}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _script_default(var: str) -> str:
    for line in BUILD_SCRIPT.read_text().splitlines():
        if line.startswith(f'{var}="${{{var}:-'):
            return line.split(":-", 1)[1].rstrip('}"')
    raise RuntimeError(f"{BUILD_SCRIPT} sets no default {var}")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ports(host: str, count: int) -> list[int]:
    """Distinct free ports: each HTTP and gRPC port is passed explicitly (SeaweedFS's defaults, such
    as 9333 and 8333, would collide between test sessions on one machine)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    return ports


@contextlib.contextmanager
def running_store(host: str, workdir: pathlib.Path) -> Iterator[S3Store]:
    """``weed server`` with an S3 gateway on ``host``, one identity allowed to read and write."""
    binary = seaweedfs_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    access, secret = f"mls{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [
        {"name": "mlserving-tests", "credentials": [{"accessKey": access, "secretKey": secret}],
         "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    master, volume, filer, s3, m_grpc, v_grpc, f_grpc, s3_grpc = _ports(host, 8)
    argv = [str(binary), "server", f"-dir={workdir / 'data'}", f"-ip={host}", f"-ip.bind={host}",
            f"-master.port={master}", f"-master.port.grpc={m_grpc}", "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}", f"-volume.port.grpc={v_grpc}", "-volume.max=4",
            "-filer", f"-filer.port={filer}", f"-filer.port.grpc={f_grpc}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0"]  # catalogs on fixed default ports: not needed
    (workdir / "data").mkdir(exist_ok=True)
    log = (workdir / "weed.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    store = S3Store(f"http://{host}:{s3}", access, secret)
    try:
        _wait_ready(store, proc, workdir / "weed.log")
        yield store
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _wait_ready(store: S3Store, proc: subprocess.Popen, log: pathlib.Path) -> None:
    """Ready when a signed request succeeds: a bucket can be created and an object written."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed server exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(store.endpoint, timeout=2).close()
        except urllib.error.HTTPError:
            pass  # an S3 error answer: the gateway is up
        except OSError as exc:
            last = str(exc)
            time.sleep(0.3)
            continue
        try:
            client = store.client()
            probe = f"ready-{secrets.token_hex(4)}"
            client.make_bucket(probe)
            client.remove_bucket(probe)
            return
        except Exception as exc:  # noqa: BLE001 (filer or volume not up yet: try again)
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
    raise RuntimeError(f"SeaweedFS S3 gateway {store.endpoint} not ready in {START_TIMEOUT_S:g} s "
                       f"({last}); log: {log.read_text()[-3000:]}")

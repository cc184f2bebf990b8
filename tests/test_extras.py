"""Each process's pip extra on its own: installed alone into a fresh venv, its `--help` and a real
start-up work, and it does not drag in another process's heavy dependencies.

The dependencies' wheels are fetched once into ~/.cache/mlserving/extras-wheels/<key> (key: the
extras' requirement lists in pyproject.toml), so later runs install offline (`--no-index`); the
project's own wheel is built fresh from this checkout each session.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "mlserving" / "extras-wheels"
# Distributions an extra must not install: another process's heavy dependencies.
FORBIDDEN = {
    "server": {"kopf", "kubernetes", "scikit-learn", "skl2onnx", "boto3", "botocore"},  # S3 through minio
    "router": {"kopf", "kubernetes", "onnxruntime", "scikit-learn", "numpy"},
    "operator": {"kubernetes", "onnxruntime", "scikit-learn", "skl2onnx", "numpy"},
}


def optional_dependencies() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def run(args, timeout=600, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def wheelhouse() -> pathlib.Path:
    requirements = sorted({r for extra in FORBIDDEN for r in optional_dependencies()[extra]
                           if not r.startswith("mlserving[")})
    key = hashlib.sha256(json.dumps(requirements).encode()).hexdigest()[:16]
    target = CACHE / key
    if not (target / ".complete").exists():
        staging = CACHE / f".{key}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", staging, *requirements])
        (staging / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("project-wheel")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", out, REPO])
    return out


@pytest.fixture(scope="session")
def alone(tmp_path_factory, wheelhouse, project_wheel):
    """alone(extra): the bin directory of a fresh venv holding only mlserving[extra] (made once)."""
    made: dict[str, pathlib.Path] = {}

    def make(extra: str) -> pathlib.Path:
        if extra not in made:
            venv = tmp_path_factory.mktemp(f"venv-{extra}")
            run([sys.executable, "-m", "venv", "--without-pip", venv])
            run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", "--no-index",
                 "--find-links", wheelhouse, "--find-links", project_wheel, f"mlserving[{extra}]"])
            made[extra] = venv / "bin"
        return made[extra]

    return make


def installed(bin_dir: pathlib.Path) -> set[str]:
    proc = run([sys.executable, "-m", "pip", "--python", bin_dir / "python", "list", "--format", "json"])
    return {d["name"].lower().replace("_", "-") for d in json.loads(proc.stdout)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, timeout_s: float = 90) -> int:
    """The first HTTP status url answers with (any status: the process is up and serving)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited {proc.returncode} before answering {url}:\n{out[-2000:]}\n{err[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.2)
    proc.kill()
    out, err = proc.communicate()
    pytest.fail(f"no answer from {url} within {timeout_s:.0f} s:\n{out[-2000:]}\n{err[-3000:]}")


def start(args, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("models")
    run([pathlib.Path(sys.executable).parent / "mlserving", "train", "--model", "fraud", "--version", "1.0.0",
         "--out", out, "--seed", "1"])
    return out / "fraud" / "1.0.0"


@pytest.mark.parametrize("extra", sorted(FORBIDDEN))
def test_extra_alone_holds_none_of_the_other_processes_dependencies(extra, alone):
    bin_dir = alone(extra)
    dists = installed(bin_dir)
    assert "mlserving" in dists
    assert not dists & FORBIDDEN[extra], f"mlserving[{extra}] pulls {sorted(dists & FORBIDDEN[extra])}"
    command = "serve" if extra == "server" else extra
    assert "usage: mlserving" in run([bin_dir / "mlserving", command, "--help"]).stdout
    assert "usage: mlserving fetch" in run([bin_dir / "mlserving", "fetch", "--help"]).stdout


def serve(bin_dir: pathlib.Path, model: pathlib.Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    return start([bin_dir / "mlserving", "serve", "--model-path", model, "--port", port, "--host", "127.0.0.1"]), port


def test_server_extra_alone_serves_an_onnx_model(alone, onnx_model):
    proc, port = serve(alone("server"), onnx_model)
    try:
        deadline = time.monotonic() + 90
        while wait_for_http(f"http://127.0.0.1:{port}/health/ready", proc) != 200:
            assert time.monotonic() < deadline, "the server never turned ready"
            time.sleep(0.2)
        body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP64",
                                       "data": [0.0] * 20}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/fraud/infer", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["outputs"]
    finally:
        stop(proc)


def test_server_extra_alone_refuses_a_joblib_only_version_naming_the_full_image(alone, onnx_model, tmp_path):
    version = tmp_path / "joblib-only"
    shutil.copytree(onnx_model, version)
    metadata = json.loads((version / "metadata.json").read_text())
    onnx = [name for name in metadata["artifacts"] if name.endswith(".onnx")]
    assert onnx, metadata["artifacts"]
    for name in onnx:
        del metadata["artifacts"][name]
        (version / name).unlink()
    (version / "metadata.json").write_text(json.dumps(metadata))
    proc, port = serve(alone("server"), version)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as resp:
                    pytest.fail(f"a joblib-only version turned ready on the lean server: {resp.status}")
            except urllib.error.HTTPError as exc:
                body = exc.read().decode()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert "server-full" in body and "no scikit-learn runtime" in body, body
    finally:
        stop(proc)


def test_router_extra_alone_starts_and_serves_its_health(tmp_path, alone):
    bin_dir = alone("router")
    table = tmp_path / "routing.json"
    table.write_text(json.dumps({"generation": 1, "stickyHeader": None, "variants": [
        {"name": "stable", "version": "1.0.0", "url": "http://127.0.0.1:9", "weight": 100, "mirror": False}]}))
    port = free_port()
    proc = start([bin_dir / "mlserving", "router", "--config", table, "--port", port, "--host", "127.0.0.1"])
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/health/live", proc) == 200
    finally:
        stop(proc)


def test_operator_extra_alone_starts_with_every_import(tmp_path, alone):
    bin_dir = alone("operator")
    # An API server that is not there: the operator loads everything, serves its liveness
    # endpoint and keeps retrying the connection.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "none", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}]}))
    port = free_port()
    env = {**os.environ, "MLSERVING_LEASE_NAMESPACE": "default", "POD_NAME": "extras-test"}
    proc = start([bin_dir / "mlserving", "operator", "--kubeconfig", kubeconfig,
                  "--liveness", f"http://127.0.0.1:{port}/healthz"], env=env)
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/healthz", proc) in (200, 500)
    finally:
        stop(proc)

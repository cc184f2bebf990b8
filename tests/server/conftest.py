"""Fixtures for the inference-server tests: small trained models and real uvicorn processes
(helpers in server_testkit.py)."""

import shutil
from pathlib import Path

import httpx
import pytest
from mlserving.training.train import train_version
from server_testkit import SMALL, ServerProcess, start_uvicorn


@pytest.fixture(scope="session")
def model_registry(tmp_path_factory) -> Path:
    """fraud 1.0.0 and 2.0.0 (different seeds), and a scikit-learn-only copy of 1.0.0."""
    root = tmp_path_factory.mktemp("registry")
    quiet = lambda *_: None
    train_version("fraud", "1.0.0", root, seed=1, log=quiet, **SMALL)
    train_version("fraud", "2.0.0", root, seed=2, log=quiet, **SMALL)
    return root


@pytest.fixture
def model_copy(model_registry, tmp_path):
    """A private copy of fraud 1.0.0 a test may damage."""
    def make(version: str = "1.0.0") -> Path:
        target = tmp_path / "fraud" / version
        shutil.copytree(model_registry / "fraud" / version, target)
        return target
    return make


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def onnx_server(model_registry, log_dir):
    server = start_uvicorn(model_registry / "fraud" / "1.0.0", log_dir, MAX_BATCH_INSTANCES=50)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sklearn_server(model_registry, log_dir):
    server = start_uvicorn(model_registry / "fraud" / "1.0.0", log_dir, MODEL_FORMAT="sklearn",
                           MAX_BATCH_SIZE=16, MAX_BATCH_TIME_MS=2)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def renamed_debug_server(model_registry, log_dir):
    """fraud 1.0.0 served as MODEL_NAME=fraud-a with LOG_LEVEL=debug."""
    server = start_uvicorn(model_registry / "fraud" / "1.0.0", log_dir, MODEL_NAME="fraud-a", LOG_LEVEL="debug")
    yield server
    server.stop()


@pytest.fixture
def start_server(log_dir):
    """Starts a server for one test and stops it afterwards."""
    started = []

    def start(model_path: Path, **env) -> ServerProcess:
        server = start_uvicorn(model_path, log_dir, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def client():
    with httpx.Client(timeout=10.0) as c:
        yield c

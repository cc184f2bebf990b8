"""MLServer, the baseline: its own virtualenv (it pins dependencies that conflict with ours) and its
model repository pointing at the same artifact our server loads (model.joblib with its scikit-learn
runtime, the XGBoost JSON with mlserver-xgboost, the LightGBM text model with mlserver-lightgbm)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightgbm
import sklearn
import xgboost
from server_models import MLSERVER_RUNTIMES, BenchModel
from server_procs import ServerProcess, free_port

MLSERVER_VERSION = "1.7.1"
DEFAULT_VENV = Path.home() / ".cache" / "mlserving" / "bench" / "mlserver-venv"


def requirements() -> list[str]:
    # uvloop 0.22 kills MLServer 1.7.1's inference workers at start ("There is no current event
    # loop"). The frameworks are pinned to ours so each artifact loads in the version that wrote it.
    return [f"mlserver=={MLSERVER_VERSION}", f"mlserver-sklearn=={MLSERVER_VERSION}",
            f"mlserver-xgboost=={MLSERVER_VERSION}", f"mlserver-lightgbm=={MLSERVER_VERSION}", "uvloop<0.22",
            f"scikit-learn=={sklearn.__version__}", f"xgboost=={xgboost.__version__}",
            f"lightgbm=={lightgbm.__version__}"]


def ensure_venv(venv: Path) -> Path:
    """Creates (once) the MLServer virtualenv and returns its `mlserver` executable."""
    marker = venv / ".mlserving-bench-requirements"
    wanted = "\n".join(requirements())
    mlserver = venv / "bin" / "mlserver"
    if marker.exists() and marker.read_text() == wanted and mlserver.exists():
        return mlserver
    print(f"creating the MLServer {MLSERVER_VERSION} virtualenv in {venv} (first use only) ...", flush=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *requirements()], check=True)
    marker.write_text(wanted)
    return mlserver


def write_repository(root: Path, model: BenchModel, max_batch_size: int, max_batch_time_s: float,
                     parallel_workers: int, ports: tuple[int, int, int]) -> None:
    http_port, grpc_port, metrics_port = ports
    model_dir = root / model.name
    model_dir.mkdir(parents=True, exist_ok=True)
    # debug=false turns uvicorn's access log off; the baseline gets its fastest settings.
    settings = {"debug": False, "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
                "metrics_port": metrics_port, "parallel_workers": parallel_workers}
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    model_settings = {
        "name": model.name,
        "implementation": MLSERVER_RUNTIMES[model.framework],
        "max_batch_size": max_batch_size,
        "max_batch_time": max_batch_time_s,
        "parameters": {"uri": str(model.native_path.resolve()), "version": model.version},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))


def mlserver_process(mlserver: Path, workdir: Path, model: BenchModel, max_batch_size: int,
                     max_batch_time_s: float, parallel_workers: int, core: int, nice: int = 0) -> ServerProcess:
    ports = (free_port(), free_port(), free_port())
    root = workdir / f"mlserver-{model.label}-{max_batch_size}-{max_batch_time_s:g}".replace(":", "-")
    write_repository(root, model, max_batch_size, max_batch_time_s, parallel_workers, ports)
    return ServerProcess(
        label=f"MLServer {max_batch_size}/{max_batch_time_s * 1000:g}ms",
        argv=[str(mlserver), "start", str(root)], env={}, port=ports[0],
        ready_path=f"/v2/models/{model.name}/ready", core=core,
        log_path=str(root) + ".log", cwd=str(root), nice=nice)

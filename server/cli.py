"""``mlserving serve``: serve one model version over HTTP with uvicorn.

Flags override the environment variables of the same meaning (MODEL_PATH, PORT, ...); the
uvicorn workers read their settings from the environment, so the flags are written there.
"""

import argparse
import os
import shutil
import sys
import tempfile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-path", help="model version directory (env MODEL_PATH, default /models/current)")
    parser.add_argument("--model-name", help="name to serve under (env MODEL_NAME, default: from metadata)")
    parser.add_argument("--host", help="bind address (env HOST, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (env PORT, default 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (env WORKERS, default 1)")
    parser.add_argument("--log-level", help="debug|info|warning|error (env LOG_LEVEL, default info)")
    parser.add_argument("--model-format", choices=["auto", "onnx", "sklearn"], help="env MODEL_FORMAT")


FLAG_ENV = {"model_path": "MODEL_PATH", "model_name": "MODEL_NAME", "host": "HOST", "port": "PORT",
            "workers": "WORKERS", "log_level": "LOG_LEVEL", "model_format": "MODEL_FORMAT"}


def run(args: argparse.Namespace) -> int:
    for flag, var in FLAG_ENV.items():
        value = getattr(args, flag, None)
        if value is not None:
            os.environ[var] = str(value)

    from mlserving.server.config import ConfigError, ServerConfig

    try:
        config = ServerConfig.from_env()
    except ConfigError as exc:
        print(f"mlserving serve: error: {exc}", file=sys.stderr)
        return 2
    metrics_dir = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    elif config.workers > 1:
        # Must be set before any worker imports prometheus_client.
        metrics_dir = tempfile.mkdtemp(prefix="mlserving-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    import uvicorn
    from mlserving.server.logs import uvicorn_log_config

    try:
        uvicorn.run(
            "mlserving.server.main:app", host=config.host, port=config.port, workers=config.workers,
            log_config=uvicorn_log_config(config.log_level), access_log=False, loop="auto", http="auto",
            lifespan="on", timeout_keep_alive=30,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0

"""``mlserving serve``: serve one model version over HTTP with uvicorn.

Flags override the environment variables of the same meaning (MODEL_PATH, PORT, ...); the
uvicorn workers read their settings from the environment, so the flags are written there.
"""

import argparse
import os
import shutil
import sys
import tempfile

from mlserving.server.config import MODEL_FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-path", help="model version directory (env MODEL_PATH, default /models/current)")
    parser.add_argument("--model-name", help="name to serve under (env MODEL_NAME, default: from metadata)")
    parser.add_argument("--host", help="bind address (env HOST, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (env PORT, default 8000)")
    parser.add_argument("--metrics-port", type=int,
                        help="second port serving only /metrics, 0 = off (env METRICS_PORT, default 9090)")
    parser.add_argument("--workers", type=int, help="worker processes (env WORKERS, default 1)")
    parser.add_argument("--log-level", help="debug|info|warning|error (env LOG_LEVEL, default info)")
    parser.add_argument("--model-format", choices=list(MODEL_FORMATS), help="env MODEL_FORMAT")


FLAG_ENV = {"model_path": "MODEL_PATH", "model_name": "MODEL_NAME", "host": "HOST", "port": "PORT",
            "metrics_port": "METRICS_PORT", "workers": "WORKERS", "log_level": "LOG_LEVEL", "model_format": "MODEL_FORMAT"}


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
    from mlserving.server.http_protocol import UVICORN_SETTINGS
    from mlserving.server.logs import uvicorn_log_config

    metrics_server = None
    if config.workers > 1 and config.metrics_port:
        # One metrics port for all workers: served here, in the supervising process, from the
        # multiprocess files every worker writes; the workers themselves leave it alone.
        from mlserving.server.metrics import render_multiprocess
        from mlserving.server.metrics_port import MetricsPortError, start_metrics_server

        try:
            metrics_server = start_metrics_server(config.host, config.metrics_port, render_multiprocess,
                                                  "METRICS_PORT (--metrics-port)")
        except MetricsPortError as exc:
            print(f"mlserving serve: error: {exc}", file=sys.stderr)
            return 2
        os.environ["METRICS_PORT"] = "0"
    try:
        uvicorn.run(
            "mlserving.server.main:app", host=config.host, port=config.port, workers=config.workers,
            log_config=uvicorn_log_config(config.log_level), access_log=False, loop="auto",
            lifespan="on", **UVICORN_SETTINGS,
        )
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0

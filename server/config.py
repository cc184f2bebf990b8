"""Server settings, read from the environment (see docs/server.md for the full table)."""

import os
from dataclasses import dataclass, fields
from pathlib import Path

MODEL_FORMATS = ("auto", "onnx", "native", "sklearn")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """An environment variable with a value the server cannot use; names the variable."""


@dataclass(frozen=True)
class ServerConfig:
    model_path: Path = Path("/models/current")
    model_name: str | None = None          # defaults to the name in metadata.json
    host: str = "0.0.0.0"
    port: int = 8000
    metrics_port: int = 9090               # /metrics on a port of its own; 0: only on the main port
    log_level: str = "info"
    workers: int = 1
    model_format: str = "auto"             # auto | onnx | native (sklearn: the older name of native)
    allow_pickle: bool = True
    max_body_bytes: int = 1 << 20
    max_batch_instances: int = 1000        # rows per /predict/batch or v2 infer request
    batching: str = "auto"                 # auto | on | off
    max_batch_size: int = 64               # rows per coalesced model call
    max_batch_time_ms: float = 0.0         # extra wait for more requests while the model is idle
    batch_workers: int = 1                 # model calls in flight at once (threads)
    inline_max_us: float = 300.0           # auto: call the model inline when one row costs less
    drift: str = "on"                      # on | off: PSI of the rows served against training
    drift_window_rows: int = 2000          # rows the PSIs are computed over (the newest)
    drift_interval_s: float = 10.0         # recompute at most this often
    drift_min_rows: int = 1000             # below this (or a full window), no feature is reported exceeding
    drift_psi_threshold: float = 0.25      # PSI above which /drift lists a feature

    @classmethod
    def from_env(cls, env=None) -> "ServerConfig":
        env = os.environ if env is None else env
        values = {}
        for name, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _parse(var, raw, _FIELD_TYPES[name])
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        rules = [
            (1 <= self.port <= 65535, "PORT", "must be 1-65535"),
            (0 <= self.metrics_port <= 65535 and self.metrics_port != self.port, "METRICS_PORT",
             "must be 0 (off) or 1-65535 and differ from PORT"),
            (self.log_level in LOG_LEVELS, "LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}"),
            (self.workers >= 1, "WORKERS", "must be at least 1"),
            (self.model_format in MODEL_FORMATS, "MODEL_FORMAT", "must be auto, onnx or native"),
            (self.max_body_bytes >= 1024, "MAX_BODY_BYTES", "must be at least 1024"),
            (self.max_batch_instances >= 1, "MAX_BATCH_INSTANCES", "must be at least 1"),
            (self.batching in ("auto", "on", "off"), "BATCHING", "must be auto, on or off"),
            (self.max_batch_size >= 1, "MAX_BATCH_SIZE", "must be at least 1"),
            (0 <= self.max_batch_time_ms <= 1000, "MAX_BATCH_TIME_MS", "must be 0-1000"),
            (1 <= self.batch_workers <= 64, "BATCH_WORKERS", "must be 1-64"),
            (self.inline_max_us >= 0, "INLINE_MAX_US", "must be 0 or more"),
            (self.drift in ("on", "off"), "DRIFT", "must be on or off"),
            (100 <= self.drift_window_rows <= 1_000_000, "DRIFT_WINDOW_ROWS", "must be 100-1000000"),
            (0.1 <= self.drift_interval_s <= 3600, "DRIFT_INTERVAL_S", "must be 0.1-3600 seconds"),
            (self.drift_min_rows >= 1, "DRIFT_MIN_ROWS", "must be at least 1"),
            (0 < self.drift_psi_threshold <= 10, "DRIFT_PSI_THRESHOLD", "must be above 0 and at most 10"),
        ]
        for ok, var, rule in rules:
            if not ok:
                raise ConfigError(f"{var}: {rule}, got {getattr(self, _VAR_FIELDS[var])!r}")


ENV_VARS = {
    "model_path": "MODEL_PATH", "model_name": "MODEL_NAME", "host": "HOST", "port": "PORT",
    "metrics_port": "METRICS_PORT",
    "log_level": "LOG_LEVEL", "workers": "WORKERS", "model_format": "MODEL_FORMAT",
    "allow_pickle": "ALLOW_PICKLE", "max_body_bytes": "MAX_BODY_BYTES",
    "max_batch_instances": "MAX_BATCH_INSTANCES", "batching": "BATCHING",
    "max_batch_size": "MAX_BATCH_SIZE", "max_batch_time_ms": "MAX_BATCH_TIME_MS",
    "batch_workers": "BATCH_WORKERS", "inline_max_us": "INLINE_MAX_US",
    "drift": "DRIFT", "drift_window_rows": "DRIFT_WINDOW_ROWS", "drift_interval_s": "DRIFT_INTERVAL_S",
    "drift_min_rows": "DRIFT_MIN_ROWS", "drift_psi_threshold": "DRIFT_PSI_THRESHOLD",
}
_VAR_FIELDS = {var: name for name, var in ENV_VARS.items()}
_FIELD_TYPES = {f.name: f.type for f in fields(ServerConfig)}


def _parse(var: str, raw: str, kind):
    raw = raw.strip()
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is Path:
            return Path(raw)
        return raw.lower() if var in ("LOG_LEVEL", "MODEL_FORMAT", "BATCHING", "DRIFT") else raw
    except ValueError:
        expected = {int: "an integer", float: "a number", bool: "true or false"}[kind]
        raise ConfigError(f"{var}: must be {expected}, got {raw!r}") from None

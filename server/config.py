"""Server settings, read from the environment (see docs/server.md for the full table)."""

import os
from dataclasses import dataclass, fields
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """An environment variable with a value the server cannot use; names the variable."""


@dataclass(frozen=True)
class ServerConfig:
    model_path: Path = Path("/models/current")
    model_name: str | None = None          # defaults to the name in metadata.json
    host: str = "0.0.0.0"
    port: int = 8000
    log_level: str = "info"
    workers: int = 1
    model_format: str = "auto"             # auto | onnx | sklearn
    allow_pickle: bool = True
    max_body_bytes: int = 1 << 20
    max_batch_instances: int = 1000        # rows per /predict/batch or v2 infer request
    batching: str = "auto"                 # auto | on | off
    max_batch_size: int = 64               # rows per coalesced model call
    max_batch_time_ms: float = 0.0         # extra wait for more requests while the model is idle
    batch_workers: int = 1                 # model calls in flight at once (threads)
    inline_max_us: float = 300.0           # auto: call the model inline when one row costs less

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
            (self.log_level in LOG_LEVELS, "LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}"),
            (self.workers >= 1, "WORKERS", "must be at least 1"),
            (self.model_format in ("auto", "onnx", "sklearn"), "MODEL_FORMAT", "must be auto, onnx or sklearn"),
            (self.max_body_bytes >= 1024, "MAX_BODY_BYTES", "must be at least 1024"),
            (self.max_batch_instances >= 1, "MAX_BATCH_INSTANCES", "must be at least 1"),
            (self.batching in ("auto", "on", "off"), "BATCHING", "must be auto, on or off"),
            (self.max_batch_size >= 1, "MAX_BATCH_SIZE", "must be at least 1"),
            (0 <= self.max_batch_time_ms <= 1000, "MAX_BATCH_TIME_MS", "must be 0-1000"),
            (1 <= self.batch_workers <= 64, "BATCH_WORKERS", "must be 1-64"),
            (self.inline_max_us >= 0, "INLINE_MAX_US", "must be 0 or more"),
        ]
        for ok, var, rule in rules:
            if not ok:
                raise ConfigError(f"{var}: {rule}, got {getattr(self, _VAR_FIELDS[var])!r}")


ENV_VARS = {
    "model_path": "MODEL_PATH", "model_name": "MODEL_NAME", "host": "HOST", "port": "PORT",
    "log_level": "LOG_LEVEL", "workers": "WORKERS", "model_format": "MODEL_FORMAT",
    "allow_pickle": "ALLOW_PICKLE", "max_body_bytes": "MAX_BODY_BYTES",
    "max_batch_instances": "MAX_BATCH_INSTANCES", "batching": "BATCHING",
    "max_batch_size": "MAX_BATCH_SIZE", "max_batch_time_ms": "MAX_BATCH_TIME_MS",
    "batch_workers": "BATCH_WORKERS", "inline_max_us": "INLINE_MAX_US",
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
        return raw.lower() if var in ("LOG_LEVEL", "MODEL_FORMAT", "BATCHING") else raw
    except ValueError:
        expected = {int: "an integer", float: "a number", bool: "true or false"}[kind]
        raise ConfigError(f"{var}: must be {expected}, got {raw!r}") from None

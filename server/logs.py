"""What our processes say to people, in one format for server, router and operator.

- Log lines: one JSON object per line on stderr (``ts``, ``level``, ``logger``, ``msg``, then the
  fields passed through ``extra=``, such as ``request_id`` and ``trace_id``).
- Error bodies: one JSON object ``{"error", "field", "status", "request_id"}`` plus ``trace_id``
  when the request carried a trace context and any context the caller adds (the router adds
  ``variant``, ``version``, ``tried``...). ``error`` reads "<field>: <rule>" where a field is to blame.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import orjson

# Attributes every LogRecord has; anything else passed through ``extra=`` goes into the JSON.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
# The loggers the server and router route through the JSON handler: ours and uvicorn's.
PROJECT_LOGGERS = ("mlserving", "uvicorn", "uvicorn.error")


MAX_ERROR_CHARS = 1000
MAX_FIELD_CHARS = 200


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Error messages and log lines echo client strings: at most ``limit`` characters of them."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def error_payload(status: int, message: str, field: str | None = None, request_id: str | None = None,
                  trace_id: str | None = None, **context) -> dict:
    """The error body as a dict (for frameworks that serialise themselves). Message and field are
    clipped: both may echo what a client sent."""
    payload = {"error": clip(message), "field": field and clip(field, MAX_FIELD_CHARS), "status": status,
               "request_id": request_id}
    if trace_id is not None:
        payload["trace_id"] = trace_id
    if context:
        payload.update(context)
    return payload


def error_body(status: int, message: str, field: str | None = None, request_id: str | None = None,
               trace_id: str | None = None, **context) -> bytes:
    """The error body as JSON bytes."""
    return orjson.dumps(error_payload(status, message, field, request_id, trace_id, **context))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key != "color_message":
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def json_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


def setup_logging(level: str = "info", loggers: tuple[str, ...] = PROJECT_LOGGERS) -> None:
    """Routes the given loggers (ours and uvicorn's by default) through one JSON handler on stderr."""
    handler = json_handler()
    for name in loggers:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level.upper())
    # Per-request access lines duplicate our own request log; keep them off unless debugging.
    # Off means no handler, not only a high level: uvicorn formats each access line's arguments
    # (client address, quoted path) whenever the logger has a handler, on every response.
    debug = level.lower() == "debug"
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = [handler] if debug else []
    access.propagate = False
    access.setLevel(logging.DEBUG if debug else logging.WARNING)


def uvicorn_log_config(level: str) -> dict:
    """A log_config for uvicorn.run that keeps uvicorn's own lines in the same JSON format."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"] if level == "debug" else [],
                               "level": "DEBUG" if level == "debug" else "WARNING", "propagate": False},
            "mlserving": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc, 10 ms resolution); None elsewhere.

    Logged with "model ready", so a pod's start-up can be measured from its container's process
    start (bench/pod_startup.py), not only from when Python got as far as logging.
    """
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as fh:
            uptime_s = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(uptime_s - start_ticks / os.sysconf("SC_CLK_TCK"), 3)

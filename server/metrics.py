"""Prometheus metrics with the seed's names; multiprocess-aware for WORKERS > 1.

prometheus-client decides between in-process and file-backed (multiprocess) values when it is
first imported, from ``PROMETHEUS_MULTIPROC_DIR``; ``mlserving serve`` sets it before starting
more than one worker. The hot path only touches pre-bound label children.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # the *_created series double the scrape size and nobody here reads them

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STATUS_SUCCESS, STATUS_INVALID, STATUS_ERROR = "success", "invalid", "error"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


class ServerMetrics:
    def __init__(self, model: str, version: str, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.predictions = Counter(
            "model_predictions_total", "Predictions answered (one per row), by outcome",
            ["status", "model", "version"], registry=self.registry)
        self.latency = Histogram(
            "model_prediction_latency_seconds", "Time from request body received to response ready",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.fraud = Counter(
            "fraud_predictions_total", "Rows predicted as fraud", ["model", "version"], registry=self.registry)
        self.load_timestamp = Gauge(
            "model_load_timestamp", "Unix time the served model was loaded and verified",
            ["model", "version"], multiprocess_mode="max", registry=self.registry)
        self._success = self.predictions.labels(STATUS_SUCCESS, model, version)
        self._invalid = self.predictions.labels(STATUS_INVALID, model, version)
        self._error = self.predictions.labels(STATUS_ERROR, model, version)
        self._fraud = self.fraud.labels(model, version)
        self._latency = self.latency.labels(model, version)
        self._load_timestamp = self.load_timestamp.labels(model, version)

    def model_loaded(self, timestamp: float) -> None:
        self._load_timestamp.set(timestamp)

    def success(self, rows: int, frauds: int, seconds: float) -> None:
        self._success.inc(rows)
        if frauds:
            self._fraud.inc(frauds)
        self._latency.observe(seconds)

    def invalid(self) -> None:
        self._invalid.inc()

    def error(self) -> None:
        self._error.inc()

    def render(self) -> tuple[bytes, str]:
        if multiprocess_dir():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

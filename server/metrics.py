"""Prometheus metrics with the seed's names; multiprocess-aware for WORKERS > 1.

What a prediction counts follows the model's task: ``fraud_predictions_total`` the positive
rows of a binary model, ``model_predicted_class_total{class}`` the rows per label of a
multiclass model, ``model_prediction_value`` a histogram of a regressor's values.

prometheus-client decides between in-process and file-backed (multiprocess) values when it is
first imported, from ``PROMETHEUS_MULTIPROC_DIR``; ``mlserving serve`` sets it before starting
more than one worker. The hot path only touches pre-bound label children.
"""

import os
from bisect import bisect_left
from collections import deque

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


# Regression values: a symmetric log scale, unless metadata.json gives ``prediction_buckets``.
DEFAULT_VALUE_BUCKETS = tuple(sorted({sign * 10.0 ** e for e in range(-2, 7) for sign in (-1, 1)} | {0.0}))


class ServerMetrics:
    def __init__(self, model: str, version: str, registry: CollectorRegistry | None = None, task=None,
                 value_buckets=None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._pending_rows: deque | None = None  # set when requests defer their figures (below)
        self.registry.register(_PendingFolder(self.fold_pending))  # first: collected before the metrics
        self.predictions = Counter(
            "model_predictions_total", "Predictions answered (one per row), by outcome",
            ["status", "model", "version"], registry=self.registry)
        self.latency = Histogram(
            "model_prediction_latency_seconds", "Time from request body received to response ready",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.load_timestamp = Gauge(
            "model_load_timestamp", "Unix time the served model was loaded and verified",
            ["model", "version"], multiprocess_mode="max", registry=self.registry)
        self._success = self.predictions.labels(STATUS_SUCCESS, model, version)
        self._invalid = self.predictions.labels(STATUS_INVALID, model, version)
        self._error = self.predictions.labels(STATUS_ERROR, model, version)
        self._latency = self.latency.labels(model, version)
        self._load_timestamp = self.load_timestamp.labels(model, version)
        kind = self._kind = getattr(task, "kind", "binary")
        if kind == "binary":
            self.fraud = Counter("fraud_predictions_total", "Rows predicted as the positive class (fraud)",
                                 ["model", "version"], registry=self.registry)
            self._fraud = self.fraud.labels(model, version)
            self._count_outcome = self._fraud.inc
        elif kind == "multiclass":
            self.classes = Counter("model_predicted_class_total", "Rows predicted as each class",
                                   ["model", "version", "class"], registry=self.registry)
            self._class_children = [self.classes.labels(model, version, str(c)) for c in task.classes]
            self._count_outcome = self._count_classes
        elif kind == "regression":
            self.values = Histogram("model_prediction_value", "Values the regression model predicted",
                                    ["model", "version"], buckets=tuple(value_buckets or DEFAULT_VALUE_BUCKETS),
                                    registry=self.registry)
            self._values = self.values.labels(model, version)
            self._count_outcome = self._observe_values
        self._bind_hot_values()

    def model_loaded(self, timestamp: float) -> None:
        self._load_timestamp.set(timestamp)

    def _bind_hot_values(self) -> None:
        # The per-request updates skip prometheus-client's public inc()/observe(), which re-check
        # the metric, take a lock per value and walk the buckets in Python: a few microseconds a
        # request on a path that costs tens. In-process, a request only appends its figures to
        # deques (atomic C calls, safe against a scrape on the metrics-port thread), and a
        # collector registered ahead of every metric folds them in whenever the registry is
        # collected, so every scrape sees exact counts. With file-backed (multiprocess) values the
        # scrape happens in another process, so the cells are updated at once.
        try:
            self._success_value = self._success._value
            self._latency_sum = self._latency._sum
            self._latency_buckets = self._latency._buckets
            self._latency_bounds = list(self._latency._upper_bounds)
        except AttributeError:  # another prometheus-client layout: the public API, slower
            self.success = self._success_public
            return
        if multiprocess_dir():
            self.success = self._success_direct
            return
        self._pending_rows = deque()
        self._pending_seconds: deque = deque()
        self._pending_positives: deque = deque()
        self._append_rows = self._pending_rows.append
        self._append_seconds = self._pending_seconds.append
        self._append_positives = self._pending_positives.append if self._kind == "binary" else None

    def success(self, rows: int, outcome, seconds: float) -> None:
        """``outcome``: positive rows (binary), class indices (multiclass) or values (regression)."""
        self._append_rows(rows)
        self._append_seconds(seconds)
        if outcome:
            if self._append_positives is not None:
                self._append_positives(outcome)
            else:
                self._count_outcome(outcome)
        if len(self._pending_rows) >= FOLD_EVERY:  # bounded without scrapes too
            self.fold_pending()

    def fold_pending(self) -> None:
        """The figures requests appended since the last fold, into the metric values. Each entry is
        taken by one popleft (atomic), so concurrent folds and appends lose or double nothing."""
        if self._pending_rows is None:
            return
        rows = sum(_drained(self._pending_rows))
        if rows:
            self._success_value.inc(rows)
        positives = sum(_drained(self._pending_positives))
        if positives:
            self._count_outcome(positives)
        bounds, counts, total = self._latency_bounds, {}, 0.0
        for seconds in _drained(self._pending_seconds):
            total += seconds
            index = bisect_left(bounds, seconds)
            counts[index] = counts.get(index, 0) + 1
        if counts:
            self._latency_sum.inc(total)
            for index, count in counts.items():
                self._latency_buckets[index].inc(count)

    def _success_direct(self, rows: int, outcome, seconds: float) -> None:
        self._success_value.inc(rows)
        if outcome:
            self._count_outcome(outcome)
        self._latency_sum.inc(seconds)
        self._latency_buckets[bisect_left(self._latency_bounds, seconds)].inc(1)

    def _success_public(self, rows: int, outcome, seconds: float) -> None:
        self._success.inc(rows)
        if outcome:
            self._count_outcome(outcome)
        self._latency.observe(seconds)

    def _count_classes(self, indices: list) -> None:
        children = self._class_children
        for index in indices:
            children[index].inc()

    def _observe_values(self, values: list) -> None:
        observe = self._values.observe
        for value in values:
            observe(value)

    def invalid(self) -> None:
        self._invalid.inc()

    def error(self) -> None:
        self._error.inc()

    def render(self) -> tuple[bytes, str]:
        if multiprocess_dir():
            return render_multiprocess()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


FOLD_EVERY = 10_000  # pending requests at most, between scrapes


def _drained(pending: deque):
    """The entries of ``pending``, each taken by one popleft (atomic), until it is empty."""
    pop = pending.popleft
    while True:
        try:
            yield pop()
        except IndexError:
            return


class _PendingFolder:
    """A collector without metrics of its own: collecting it folds the pending request figures in.
    Registered before the metrics, so a collection reads them after the fold."""

    def __init__(self, fold):
        self._fold = fold

    def collect(self):
        self._fold()
        return []

    def describe(self):
        return []


def render_multiprocess() -> tuple[bytes, str]:
    """Every worker's values from the PROMETHEUS_MULTIPROC_DIR files, aggregated."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST

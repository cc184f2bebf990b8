"""Drift detection: how far the rows served (and the scores predicted) have moved from training.

For each feature, the population stability index (PSI) of the last ``DRIFT_WINDOW_ROWS`` rows
served against the training reference bins in ``metadata.json`` (``reference.features``); the same
for the per-row score of the answers against the held-out score distribution (``reference.prediction``):
the positive-class probability (binary), the highest class probability (multiclass) or the predicted
value (regression), as ``Task.drift_scores`` defines it (training records the same).

    PSI = sum over bins of (live - reference) * ln(live / reference)     (fractions, floored at 1e-4)

Cost on the request path: ``record`` appends a reference to the request's input and output arrays
to bounded deques (no copy, no arithmetic, nothing the garbage collector walks). Everything else runs every ``DRIFT_INTERVAL_S`` in a worker
thread: the pending arrays are folded into the window and the PSIs computed and published.

A small window's PSI is biased upward (about (bins - 1) / rows under no drift: 0.0045 for 10 bins
and 2,000 rows, 0.09 for 100 rows), so ``exceeds`` only reports features over the threshold once
the window holds ``DRIFT_MIN_ROWS`` rows; the alert rules apply the same floor to
``model_drift_window_rows``.

With ``WORKERS > 1`` each worker keeps the window of the rows it served (the kernel spreads
connections, so each is a sample of the same traffic); the PSI gauges are aggregated as the
maximum over workers and the window size as the minimum, so an alert needs every worker's window
to be large enough and fires when any worker sees drift. ``GET /drift`` answers for the worker that
took the request (its ``pid`` is in the answer).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque

import numpy as np
from mlserving.server.tasks import Task
from prometheus_client import Gauge

log = logging.getLogger("mlserving.server.drift")

PSI_FLOOR = 1e-4  # a bin empty on one side would make PSI infinite
# Relative: a value this close to a known discrete value (or a bin edge) is that value. The served
# model (ONNX, float32) gives scores a few ulps away from the ones training recorded (float64).
DISCRETE_TOLERANCE = 1e-5


class DriftReferenceError(ValueError):
    """metadata.json has no usable reference statistics; names the part that is missing."""


class Binning:
    """One reference distribution: how a value is put into a bin, and the training fraction per bin."""

    def __init__(self, name: str, stats: dict):
        self.name = name
        kind = stats.get("kind")
        if kind == "continuous":
            edges = np.asarray(stats["bin_edges"], dtype=np.float64)
            self.inner_edges = edges[1:-1]
            self.values = None
            expected = np.asarray(stats["bin_fractions"], dtype=np.float64)
            if len(expected) != len(edges) - 1:
                raise DriftReferenceError(f"reference {name}: bin_fractions must have one entry per bin")
        elif kind == "discrete":
            self.values = np.asarray(stats["values"], dtype=np.float64)
            self.inner_edges = None
            # One more bin for values training never saw.
            expected = np.append(np.asarray(stats["value_fractions"], dtype=np.float64), 0.0)
            if len(expected) != len(self.values) + 1:
                raise DriftReferenceError(f"reference {name}: value_fractions must have one entry per value")
        else:
            raise DriftReferenceError(f"reference {name}: kind must be continuous or discrete, got {kind!r}")
        self.expected = np.maximum(expected, PSI_FLOOR)

    def fractions(self, column: np.ndarray) -> np.ndarray:
        if self.values is None:
            # A value on an edge belongs to the bin above it (as in training); one a rounding error
            # below it too: scores pile up on a few values, and those values are the edges.
            nudged = column + DISCRETE_TOLERANCE * np.maximum(1.0, np.abs(column))
            index = np.searchsorted(self.inner_edges, nudged, side="right")
        else:
            values = self.values  # the nearest known value, within the tolerance
            upper = np.clip(np.searchsorted(values, column), 1, len(values) - 1) if len(values) > 1 else \
                np.zeros(len(column), dtype=np.intp)
            lower = np.maximum(upper - 1, 0)
            nearest = np.where(np.abs(values[lower] - column) <= np.abs(values[upper] - column), lower, upper)
            unseen = np.abs(values[nearest] - column) > DISCRETE_TOLERANCE * np.maximum(1.0, np.abs(column))
            index = np.where(unseen, len(values), nearest)
        counts = np.bincount(index, minlength=len(self.expected))
        return counts / max(len(column), 1)

    def psi(self, column: np.ndarray) -> float:
        actual = np.maximum(self.fractions(column), PSI_FLOOR)
        return float(np.sum((actual - self.expected) * np.log(actual / self.expected)))


def reference_binnings(metadata: dict, feature_names: list[str]) -> tuple[list[Binning], Binning | None]:
    reference = metadata.get("reference")
    if not isinstance(reference, dict) or not isinstance(reference.get("features"), dict):
        raise DriftReferenceError("metadata.json has no reference.features (train with this version's "
                                  "`mlserving train` to get them)")
    features = reference["features"]
    missing = [name for name in feature_names if name not in features]
    if missing:
        raise DriftReferenceError(f"metadata.json reference.features lacks {', '.join(missing)}")
    try:
        binnings = [Binning(name, features[name]) for name in feature_names]
        prediction = reference.get("prediction")
        return binnings, Binning("prediction", prediction) if isinstance(prediction, dict) else None
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DriftReferenceError):
            raise
        raise DriftReferenceError(f"metadata.json reference: {type(exc).__name__}: {exc}") from None


class DriftGauges:
    """The drift series; multiprocess modes aggregate the workers' windows (see the module doc)."""

    def __init__(self, registry, model: str, version: str, feature_names: list[str]):
        self.feature = Gauge("model_feature_drift_psi",
                             "Population stability index of a feature over the window, against training",
                             ["model", "version", "feature"], multiprocess_mode="max", registry=registry)
        self.prediction = Gauge("model_prediction_drift_psi",
                                "Population stability index of the positive-class score over the window, "
                                "against the held-out scores of training", ["model", "version"],
                                multiprocess_mode="max", registry=registry)
        self.rows = Gauge("model_drift_window_rows", "Rows in the drift window the PSIs were computed over",
                          ["model", "version"], multiprocess_mode="min", registry=registry)
        self._features = [self.feature.labels(model, version, name) for name in feature_names]
        self._prediction = self.prediction.labels(model, version)
        self._rows = self.rows.labels(model, version)

    def publish(self, rows: int, feature_psi: list[float], prediction_psi: float | None) -> None:
        self._rows.set(rows)
        for gauge, value in zip(self._features, feature_psi, strict=True):
            gauge.set(value)
        if prediction_psi is not None:
            self._prediction.set(prediction_psi)


class DriftMonitor:
    def __init__(self, feature_names: list[str], binnings: list[Binning], prediction: Binning | None,
                 task: Task, window_rows: int, min_rows: int, threshold: float,
                 gauges: DriftGauges | None = None):
        self.feature_names = feature_names
        self.binnings = binnings
        self.prediction = prediction
        self.task = task
        self.prediction_status = ("on" if prediction is not None else
                                  "off: metadata.json has no reference.prediction (held-out scores of training)")
        self.window_rows = window_rows
        self.min_rows = min_rows
        self.threshold = threshold
        self.gauges = gauges
        # Requests since the last fold: their input and output arrays, by reference. Every entry
        # holds at least one row, so the newest window_rows entries are all a window can need.
        # Two deques of arrays, not one of (X, proba) tuples: arrays are not tracked by the cyclic
        # garbage collector, tuples are, and thousands of retained tuples made every collection
        # walk them (17 us per request measured, against nothing for the arrays).
        self.pending_X: deque = deque(maxlen=window_rows)
        self.pending_proba: deque = deque(maxlen=window_rows)
        self._append_X = self.pending_X.append
        self._append_proba = self.pending_proba.append
        self._window_X = np.empty((0, len(feature_names)))
        self._window_scores = np.empty(0)
        self.feature_psi: list[float] = [0.0] * len(feature_names)
        self.prediction_psi: float | None = None
        self.computed_at: float | None = None

    def record(self, X: np.ndarray, proba: np.ndarray) -> None:
        """The request path's only cost: two C-level appends."""
        self._append_X(X)
        self._append_proba(proba)

    def take_pending(self) -> list:
        """The (X, proba) entries recorded since the last call, oldest first (called on the event
        loop, like ``record``, so nothing is appended in between)."""
        entries = list(zip(self.pending_X, self.pending_proba, strict=True))
        self.pending_X.clear()
        self.pending_proba.clear()
        return entries

    def fold_and_compute(self, entries: list) -> None:
        """New rows into the window (keeping the newest window_rows), then every PSI."""
        if entries:
            X = np.concatenate([self._window_X, *[x for x, _ in entries]])
            proba = np.concatenate([p for _, p in entries])
            scores = np.concatenate([self._window_scores, self.task.drift_scores(proba)])
            self._window_X = X[-self.window_rows:]
            self._window_scores = scores[-self.window_rows:]
        X, scores = self._window_X, self._window_scores
        if len(X) == 0:
            return
        self.feature_psi = [b.psi(X[:, i]) for i, b in enumerate(self.binnings)]
        self.prediction_psi = self.prediction.psi(scores) if self.prediction is not None else None
        self.computed_at = time.time()
        if self.gauges is not None:
            self.gauges.publish(len(X), self.feature_psi, self.prediction_psi)

    @property
    def rows(self) -> int:
        return len(self._window_X)

    def report(self) -> dict:
        large_enough = self.rows >= self.min_rows
        exceeding = [name for name, psi in zip(self.feature_names, self.feature_psi, strict=True)
                     if large_enough and psi > self.threshold]
        prediction_exceeds = bool(large_enough and self.prediction_psi is not None
                                  and self.prediction_psi > self.threshold)
        return {
            "enabled": True,
            "pid": os.getpid(),
            "window_rows": self.rows,
            "window_capacity": self.window_rows,
            "computed_at": self.computed_at,
            "thresholds": {"psi": self.threshold, "min_window_rows": self.min_rows},
            "features": {name: round(psi, 6) for name, psi in zip(self.feature_names, self.feature_psi, strict=True)},
            "prediction_psi": None if self.prediction_psi is None else round(self.prediction_psi, 6),
            "prediction_score": self.task.drift_score,
            "prediction_drift": self.prediction_status,
            "exceeding": exceeding,
            "prediction_exceeds": prediction_exceeds,
        }

    async def run(self, interval_s: float) -> None:
        """Every interval: fold what arrived and recompute, in a worker thread."""
        while True:
            await asyncio.sleep(interval_s)
            entries = self.take_pending()
            if not entries:
                continue
            try:
                await asyncio.to_thread(self.fold_and_compute, entries)
            except Exception:  # a bad row batch must not end drift detection for the process
                log.exception("drift computation failed")


def build_monitor(config, model, registry) -> tuple[DriftMonitor | None, str]:
    """A monitor for the loaded model, or None and the reason drift detection is off."""
    if config.drift == "off":
        return None, "DRIFT=off"
    try:
        binnings, prediction = reference_binnings(model.metadata, model.feature_names)
    except DriftReferenceError as exc:
        return None, str(exc)
    gauges = DriftGauges(registry, model.name, model.version, model.feature_names)
    monitor = DriftMonitor(model.feature_names, binnings, prediction, model.task,
                           config.drift_window_rows, min(config.drift_min_rows, config.drift_window_rows),
                           config.drift_psi_threshold, gauges)
    return monitor, "on"

"""Drift detection: PSI per feature and of the scores, in the server and over real HTTP."""

import time

import httpx
import numpy as np
import pytest
from drift_traffic import held_out_rows, reference_traffic
from mlserving.server.drift import Binning, DriftMonitor, DriftReferenceError, reference_binnings
from mlserving.server.tasks import BINARY, Task
from mlserving.training.data import FEATURE_NAMES
from mlserving.training.reference_stats import feature_reference, prediction_reference
from server_testkit import SMALL, start_uvicorn


def monitor_for(samples: int, seed: int, window: int = 2000) -> DriftMonitor:
    _, train = held_out_rows(samples, seed)
    reference = feature_reference(train, FEATURE_NAMES)
    binnings = [Binning(name, reference[name]) for name in FEATURE_NAMES]
    return DriftMonitor(list(FEATURE_NAMES), binnings, None, Task(BINARY, (0, 1), 1), window, 1000, 0.25)


def feed(monitor: DriftMonitor, rows: np.ndarray, per_request: int = 1) -> None:
    for start in range(0, len(rows), per_request):
        X = rows[start:start + per_request].astype(np.float32)
        monitor.record(X, np.tile([0.9, 0.1], (len(X), 1)))
    monitor.fold_and_compute(monitor.take_pending())


def test_reference_traffic_stays_under_0_1_and_a_shifted_feature_goes_over_0_25():
    monitor = monitor_for(10_000, 42)
    feed(monitor, reference_traffic(10_000, 42, 2000))
    assert monitor.rows == 2000 and max(monitor.feature_psi) < 0.1, monitor.feature_psi
    assert monitor.report()["exceeding"] == []
    feed(monitor, reference_traffic(10_000, 42, 2000, shift_feature=3, draw_seed=8), per_request=7)
    psi = dict(zip(FEATURE_NAMES, monitor.feature_psi, strict=True))
    assert psi["day_of_week"] > 0.25
    assert max(v for k, v in psi.items() if k != "day_of_week") < 0.1, psi
    assert monitor.report()["exceeding"] == ["day_of_week"]


def test_window_keeps_the_newest_rows_and_small_windows_never_exceed():
    monitor = monitor_for(10_000, 42)
    feed(monitor, reference_traffic(10_000, 42, 300, shift_feature=0))
    report = monitor.report()
    # 300 rows: the PSI is high but below the minimum window nothing is reported as exceeding.
    assert report["window_rows"] == 300 and report["features"]["amount"] > 0.25 and report["exceeding"] == []
    feed(monitor, reference_traffic(10_000, 42, 2500), per_request=50)
    assert monitor.rows == 2000 and monitor.report()["features"]["amount"] < 0.1  # the shifted rows left


def test_more_requests_than_the_window_between_two_computations_keep_the_newest():
    monitor = monitor_for(10_000, 42, window=500)
    for _ in range(3):
        for row in reference_traffic(10_000, 42, 500, shift_feature=0):
            monitor.record(row[None, :], np.array([[0.5, 0.5]]))
    assert len(monitor.pending_X) == 500  # bounded, whatever the request rate
    for row in reference_traffic(10_000, 42, 500):
        monitor.record(row[None, :], np.array([[0.5, 0.5]]))
    monitor.fold_and_compute(monitor.take_pending())
    assert monitor.rows == 500 and monitor.feature_psi[0] < 0.1


def test_discrete_reference_and_unseen_values():
    scores = np.repeat([0.0, 0.1, 0.2, 0.9], [700, 200, 80, 20])
    binning = Binning("prediction", prediction_reference(scores))
    assert binning.psi(scores) == pytest.approx(0.0, abs=1e-9)
    assert binning.psi(np.full(1000, 0.55)) > 5  # a value training never produced
    assert binning.psi(np.repeat([0.0, 0.9], [500, 500])) > 0.25


def test_metadata_without_reference_is_refused_naming_the_part():
    with pytest.raises(DriftReferenceError, match="reference.features"):
        reference_binnings({}, ["a"])
    with pytest.raises(DriftReferenceError, match="lacks b"):
        reference_binnings({"reference": {"features": {"a": {"kind": "discrete", "values": [0.0],
                                                              "value_fractions": [1.0]}}}}, ["a", "b"])


def drift_of(url: str, rows: int, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = httpx.get(f"{url}/drift").json()
        if report["window_rows"] >= rows and report["computed_at"]:
            return report
        assert time.monotonic() < deadline, report
        time.sleep(0.1)


def send_rows(url: str, rows: np.ndarray) -> None:
    for start in range(0, len(rows), 500):
        answer = httpx.post(f"{url}/predict/batch", json={"instances": rows[start:start + 500].tolist()})
        assert answer.status_code == 200, answer.text


def test_server_reports_drift_over_http_and_as_gauges(model_registry, log_dir):
    server = start_uvicorn(model_registry / "fraud" / "1.0.0", log_dir, DRIFT_INTERVAL_S=0.2)
    try:
        traffic = reference_traffic(SMALL["samples"], 1, 2000)
        send_rows(server.url, traffic)
        report = drift_of(server.url, 2000)
        assert report["enabled"] and report["window_capacity"] == 2000
        assert report["thresholds"] == {"psi": 0.25, "min_window_rows": 1000}
        assert max(report["features"].values()) < 0.1 and report["exceeding"] == []
        assert report["prediction_psi"] is not None and report["prediction_psi"] < 0.1

        send_rows(server.url, reference_traffic(SMALL["samples"], 1, 2000, shift_feature=11, draw_seed=9))
        deadline = time.monotonic() + 30
        while (report := httpx.get(f"{server.url}/drift").json())["exceeding"] != ["distance_from_home_km"]:
            assert time.monotonic() < deadline, report
            time.sleep(0.1)
        text = httpx.get(f"{server.url}/metrics").text
        assert 'model_drift_window_rows{model="fraud",version="1.0.0"} 2000.0' in text
        line = next(x for x in text.splitlines()
                    if x.startswith('model_feature_drift_psi{') and 'feature="distance_from_home_km"' in x)
        assert float(line.rsplit(" ", 1)[1]) > 0.25
        assert "model_prediction_drift_psi{" in text
    finally:
        server.stop()


def test_drift_off_records_nothing_and_says_so(model_registry, log_dir):
    server = start_uvicorn(model_registry / "fraud" / "1.0.0", log_dir, DRIFT="off")
    try:
        send_rows(server.url, reference_traffic(SMALL["samples"], 1, 500))
        assert httpx.get(f"{server.url}/drift").json() == {"enabled": False, "reason": "DRIFT=off"}
        assert "model_feature_drift_psi" not in httpx.get(f"{server.url}/metrics").text
    finally:
        server.stop()


def test_discrete_values_match_within_float32_rounding():
    scores = np.repeat([0.0, 0.1, 0.3], [500, 300, 200])
    binning = Binning("prediction", prediction_reference(scores))
    assert binning.psi(scores.astype(np.float32).astype(np.float64)) == pytest.approx(0.0, abs=1e-9)
    single = Binning("flag", {"kind": "discrete", "values": [1.0], "value_fractions": [1.0]})
    assert single.psi(np.ones(10)) == pytest.approx(0.0, abs=1e-9) and single.psi(np.zeros(10)) > 5


def test_scores_on_bin_edges_keep_their_bin_after_float32_rounding():
    # Many distinct scores, piled on a few values that become quantile edges.
    scores = np.concatenate([np.zeros(600), np.full(200, 0.1), np.full(100, 0.3), np.linspace(0.31, 1, 100)])
    binning = Binning("prediction", prediction_reference(scores))
    assert binning.values is None  # continuous: quantile edges at 0.1 and 0.3
    rounded = scores * (1 - 1e-7)  # a float32 model landing just below an edge
    assert binning.psi(rounded) < 0.01


def test_v2_infer_rows_reach_the_drift_window(model_registry, log_dir):
    server = start_uvicorn(model_registry / "fraud" / "1.0.0", log_dir, DRIFT_INTERVAL_S=0.2)
    try:
        rows = reference_traffic(SMALL["samples"], 1, 150)
        for start in range(0, len(rows), 50):
            chunk = rows[start:start + 50]
            answer = httpx.post(f"{server.url}/v2/models/fraud/infer", json={"inputs": [
                {"name": "input-0", "shape": list(chunk.shape), "datatype": "FP64", "data": chunk.ravel().tolist()}]})
            assert answer.status_code == 200, answer.text
        assert drift_of(server.url, 150)["window_rows"] == 150
    finally:
        server.stop()

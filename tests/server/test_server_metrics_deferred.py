"""Requests defer their success figures; every collection of the registry still reads exact counts."""

import threading

from mlserving.server import metrics as metrics_module
from mlserving.server.metrics import ServerMetrics
from mlserving.server.tasks import Task
from prometheus_client import generate_latest


def sample(metrics: ServerMetrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, {"model": "m", "version": "v", **labels})


def test_counts_are_exact_at_every_scrape_without_an_explicit_flush():
    metrics = ServerMetrics("m", "v")
    for i in range(300):
        metrics.success(2, 1 if i % 3 == 0 else 0, 0.0003 if i % 2 else 0.002)
    assert sample(metrics, "model_predictions_total", status="success") == 600
    assert sample(metrics, "fraud_predictions_total") == 100
    assert sample(metrics, "model_prediction_latency_seconds_count") == 300
    assert sample(metrics, "model_prediction_latency_seconds_bucket", le="0.0005") == 150
    assert abs(sample(metrics, "model_prediction_latency_seconds_sum") - 150 * 0.0023) < 1e-9
    metrics.success(1, 0, 0.0001)  # after a scrape, the next one sees what came since
    assert b'status="success",version="v"} 601.0' in generate_latest(metrics.registry)
    assert metrics.render()[0].count(b"model_prediction_latency_seconds_count") == 1


def test_pending_figures_stay_bounded_without_scrapes(monkeypatch):
    monkeypatch.setattr(metrics_module, "FOLD_EVERY", 50)
    metrics = ServerMetrics("m", "v")
    for _ in range(120):
        metrics.success(1, 0, 0.001)
    assert len(metrics._pending_rows) < 50
    assert sample(metrics, "model_predictions_total", status="success") == 120


def test_a_scrape_on_another_thread_loses_and_doubles_nothing():
    metrics = ServerMetrics("m", "v")
    done = threading.Event()

    def scrape():
        while not done.is_set():
            generate_latest(metrics.registry)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for _ in range(50_000):
            metrics.success(1, 1, 0.001)
    finally:
        done.set()
        scraper.join()
    assert sample(metrics, "model_predictions_total", status="success") == 50_000
    assert sample(metrics, "fraud_predictions_total") == 50_000
    assert sample(metrics, "model_prediction_latency_seconds_count") == 50_000


def test_multiclass_and_regression_outcomes_are_counted():
    multiclass = Task(kind="multiclass", classes=("a", "b", "c"))
    metrics = ServerMetrics("m", "v", task=multiclass)
    metrics.success(3, [0, 2, 2], 0.001)
    assert sample(metrics, "model_predicted_class_total", **{"class": "c"}) == 2
    assert sample(metrics, "model_predictions_total", status="success") == 3
    regression = ServerMetrics("m", "v", task=Task(kind="regression"))
    regression.success(2, [1.5, -3.0], 0.001)
    assert sample(regression, "model_prediction_value_count") == 2
    assert sample(regression, "model_predictions_total", status="success") == 2


def test_file_backed_values_are_updated_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics = ServerMetrics("m", "v")
    assert metrics.success == metrics._success_direct

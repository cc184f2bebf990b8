"""Multiclass and regression models over real HTTP: /predict, /predict/batch and v2 follow the
task in metadata.json, and the metrics count what the task predicts."""

import joblib
import numpy as np
import pytest
from mlserving.server.tasks import TaskError, task_from_metadata
from mlserving.training.data import make_multiclass_dataset, make_regression_dataset
from mlserving.training.train import train_version


@pytest.fixture(scope="module")
def task_registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    quiet = lambda *_: None
    train_version("category", "1", root, dataset="multiclass", samples=600, params={"n_estimators": 5}, log=quiet)
    train_version("amount", "1", root, dataset="regression", samples=600, params={"n_estimators": 5}, log=quiet)
    return root


@pytest.fixture(scope="module")
def servers(task_registry, log_dir):
    from server_testkit import start_uvicorn

    started = {name: start_uvicorn(task_registry / name / "1", log_dir) for name in ("category", "amount")}
    for server in started.values():
        server.wait_live()
    yield started
    for server in started.values():
        server.stop()


def rows(dataset, n=6):
    return dataset(samples=300, seed=9).X[:n]


def test_multiclass_answers_label_and_probabilities(servers, task_registry, client):
    estimator = joblib.load(task_registry / "category" / "1" / "model.joblib")
    X = rows(make_multiclass_dataset)
    expected = estimator.predict_proba(X)
    classes = [str(c) for c in estimator.classes_]
    url = servers["category"].url
    one = client.post(f"{url}/predict", json={"features": X[0].tolist()}).json()
    assert one["label"] == estimator.predict(X[:1])[0]
    assert list(one["probabilities"]) == classes
    np.testing.assert_allclose([one["probabilities"][c] for c in classes], expected[0], rtol=1e-5, atol=1e-6)
    batch = client.post(f"{url}/predict/batch", json={"instances": X.tolist()}).json()["predictions"]
    assert [p["label"] for p in batch] == list(estimator.predict(X))
    v2 = client.post(f"{url}/v2/models/category/infer", json={"inputs": [
        {"name": "x", "datatype": "FP64", "shape": list(X.shape), "data": X.ravel().tolist()}]}).json()
    outputs = {o["name"]: o for o in v2["outputs"]}
    assert outputs["predict"]["datatype"] == "BYTES" and outputs["predict"]["data"] == list(estimator.predict(X))
    assert outputs["predict_proba"]["shape"] == [len(X), 3]
    np.testing.assert_allclose(np.reshape(outputs["predict_proba"]["data"], (len(X), 3)), expected, rtol=1e-5, atol=1e-6)
    metadata = client.get(f"{url}/v2/models/category").json()
    assert metadata["outputs"][1] == {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}
    metrics = client.get(f"{url}/metrics").text
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith("model_predicted_class_total{"))
    assert counted == 1 + 2 * len(X)
    assert "fraud_predictions_total{" not in metrics


def test_regression_answers_prediction(servers, task_registry, client):
    estimator = joblib.load(task_registry / "amount" / "1" / "model.joblib")
    X = rows(make_regression_dataset)
    expected = estimator.predict(X)
    url = servers["amount"].url
    one = client.post(f"{url}/predict", json={"features": X[0].tolist()}).json()
    assert set(one) == {"request_id", "prediction", "model_name", "model_version"}
    np.testing.assert_allclose(one["prediction"], expected[0], rtol=1e-5)
    batch = client.post(f"{url}/predict/batch", json={"instances": X.tolist()}).json()["predictions"]
    np.testing.assert_allclose([p["prediction"] for p in batch], expected, rtol=1e-5)
    v2 = client.post(f"{url}/v2/models/amount/infer", json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": list(X.shape), "data": X.tolist()}]}).json()
    (output,) = v2["outputs"]
    assert output["name"] == "predict" and output["shape"] == [len(X), 1] and output["datatype"] == "FP64"
    np.testing.assert_allclose(output["data"], estimator.predict(X.astype(np.float32)), rtol=1e-5)
    bad = client.post(f"{url}/v2/models/amount/infer", json={"inputs": [
        {"name": "x", "datatype": "FP64", "shape": list(X.shape), "data": X.ravel().tolist()}],
        "outputs": [{"name": "predict_proba"}]})
    assert bad.status_code == 422 and bad.json()["field"] == "outputs[0].name"
    metrics = client.get(f"{url}/metrics").text
    assert f'model_prediction_value_count{{model="amount",version="1"}} {1.0 + 2 * len(X)}' in metrics


@pytest.mark.parametrize(("metadata", "message"), [
    ({"task": "ranking"}, "task must be one of binary, multiclass, regression"),
    ({"task": "binary", "classes": [0, 1, 2]}, "exactly 2 classes"),
    ({"task": "binary", "positive_class": 7}, "positive_class 7 not in classes"),
    ({"task": "binary", "decision_threshold": 1.5}, "decision_threshold must be a number between 0 and 1"),
    ({"task": "multiclass"}, "classes must be the list of class labels"),
    ({"task": "multiclass", "classes": ["a", "a"]}, "classes must be distinct"),
    ({"task": "regression", "output_name": ""}, "output_name must be a non-empty string"),
])
def test_bad_task_metadata_is_named(metadata, message):
    with pytest.raises(TaskError, match=message):
        task_from_metadata(metadata)


def test_seed_metadata_reads_as_binary():
    task = task_from_metadata({"task": "binary_classification", "classes": [0, 1], "positive_class": 1})
    assert task.kind == "binary" and task.positive_index == 1 and task.outputs == ("predict", "predict_proba")

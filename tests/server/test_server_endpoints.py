"""Health, model metadata, v2 metadata and metrics endpoints over real HTTP."""

import joblib
import numpy as np
import pytest
from mlserving.training.data import make_fraud_dataset
from server_testkit import SEED_PAYLOAD

GET_ENDPOINTS = ["/health", "/health/live", "/health/ready", "/model", "/metrics", "/v2", "/v2/health/live",
                 "/v2/health/ready", "/v2/models/fraud", "/v2/models/fraud/ready",
                 "/v2/models/fraud/versions/1.0.0", "/v2/models/fraud/versions/1.0.0/ready"]


@pytest.mark.parametrize("path", GET_ENDPOINTS)
def test_get_endpoint_answers_and_echoes_request_id(onnx_server, client, path):
    r = client.get(f"{onnx_server.url}{path}", headers={"x-request-id": "probe-1"})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "probe-1"
    generated = client.get(f"{onnx_server.url}{path}").headers["x-request-id"]
    assert generated and generated != "probe-1"


def test_health_bodies(onnx_server, client):
    health = client.get(f"{onnx_server.url}/health", headers={"x-request-id": "h-1"}).json()
    assert health["status"] == "healthy" and health["model_loaded"] is True and health["request_id"] == "h-1"
    assert client.get(f"{onnx_server.url}/health/ready").json()["status"] == "ready"
    assert client.get(f"{onnx_server.url}/health/live").json()["status"] == "alive"
    assert client.get(f"{onnx_server.url}/v2/health/live").json() == {"live": True}
    assert client.get(f"{onnx_server.url}/v2/health/ready").json() == {"ready": True}
    assert client.get(f"{onnx_server.url}/v2/models/fraud/ready").json() == {"name": "fraud", "ready": True}


def test_model_metadata(onnx_server, client, model_registry):
    model = client.get(f"{onnx_server.url}/model").json()
    assert model["name"] == "fraud" and model["version"] == "1.0.0" and model["format"] == "onnx"
    assert model["dispatch"] == "inline"
    assert model["n_features"] == 20 and len(model["feature_names"]) == 20
    assert set(model["metadata"]["artifacts"]) == {"model.joblib", "model.onnx"}
    v2 = client.get(f"{onnx_server.url}/v2/models/fraud").json()
    assert v2["name"] == "fraud" and v2["versions"] == ["1.0.0"]
    assert v2["inputs"][0]["shape"] == [-1, 20] and v2["inputs"][0]["datatype"] == "FP32"
    assert [o["name"] for o in v2["outputs"]] == ["predict", "predict_proba"]
    server = client.get(f"{onnx_server.url}/v2").json()
    assert server["name"] == "mlserving" and server["version"] and server["extensions"] == ["binary_tensor_data"]


@pytest.mark.parametrize("path", ["/v2/models/other", "/v2/models/other/ready", "/v2/models/fraud/versions/3.0.0",
                                  "/v2/models/fraud/versions/3.0.0/ready"])
def test_v2_metadata_unknown_model(onnx_server, client, path):
    r = client.get(f"{onnx_server.url}{path}")
    assert r.status_code == 404 and r.json()["field"] == "model" and r.headers["x-request-id"]


def metric_values(text: str) -> dict:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def fraud_row(model_registry) -> list:
    """A row the served model calls fraud, found with the scikit-learn artifact itself."""
    estimator = joblib.load(model_registry / "fraud" / "1.0.0" / "model.joblib")
    X = make_fraud_dataset(samples=3000, seed=1).X
    proba = estimator.predict_proba(X)[:, 1]
    return X[int(np.argmax(proba))].tolist()


def test_metric_counters_move(onnx_server, client, model_registry):
    labels = 'model="fraud",version="1.0.0"'
    before = metric_values(client.get(f"{onnx_server.url}/metrics").text)
    client.post(f"{onnx_server.url}/predict", json=SEED_PAYLOAD)
    client.post(f"{onnx_server.url}/predict", json={"features": fraud_row(model_registry)})
    client.post(f"{onnx_server.url}/predict/batch", json={"instances": [SEED_PAYLOAD["features"]] * 3})
    client.post(f"{onnx_server.url}/predict", json={"features": [1]})
    after = metric_values(client.get(f"{onnx_server.url}/metrics").text)

    def delta(key):
        return after.get(key, 0.0) - before.get(key, 0.0)

    success = 'model_predictions_total{model="fraud",status="success",version="1.0.0"}'
    invalid = 'model_predictions_total{model="fraud",status="invalid",version="1.0.0"}'
    assert delta(success) == 5
    assert delta(invalid) == 1
    assert delta(f"fraud_predictions_total{{{labels}}}") >= 1
    assert delta(f"model_prediction_latency_seconds_count{{{labels}}}") == 3
    assert after[f"model_load_timestamp{{{labels}}}"] > 1.6e9

"""The prediction surfaces over real HTTP: the seed's /predict and /predict/batch, and v2 infer."""

import math

import joblib
import numpy as np
import pytest
from mlserving.training.data import make_fraud_dataset
from server_testkit import SEED_FEATURES, SEED_PAYLOAD


def v2_request(rows, datatype="FP64", nested=False, **extra):
    data = [list(r) for r in rows] if nested else [v for r in rows for v in r]
    return {"inputs": [{"name": "input-0", "datatype": datatype, "shape": [len(rows), len(rows[0])],
                        "data": data}], **extra}


def sample_rows(n=12, seed=5):
    return make_fraud_dataset(samples=400, seed=seed).X[:n].tolist()


def test_seed_payload(onnx_server, client):
    r = client.post(f"{onnx_server.url}/predict", json=SEED_PAYLOAD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"request_id", "is_fraud", "fraud_probability", "model_name", "model_version"}
    assert body["request_id"] == "txn-0001" and r.headers["x-request-id"] == "txn-0001"
    assert body["model_name"] == "fraud" and body["model_version"] == "1.0.0"
    assert r.headers["x-model-version"] == "1.0.0"
    assert 0.0 <= body["fraud_probability"] <= 1.0
    assert body["is_fraud"] == (body["fraud_probability"] >= 0.5)


def test_prediction_matches_the_scikit_learn_artifact(onnx_server, model_registry, client):
    estimator = joblib.load(model_registry / "fraud" / "1.0.0" / "model.joblib")
    expected = estimator.predict_proba(np.array([SEED_FEATURES]))[0, 1]
    got = client.post(f"{onnx_server.url}/predict", json=SEED_PAYLOAD).json()["fraud_probability"]
    assert abs(got - expected) <= 1e-5


def test_request_id_precedence(onnx_server, client):
    url = f"{onnx_server.url}/predict"
    both = client.post(url, json=SEED_PAYLOAD, headers={"x-request-id": "from-header"})
    assert both.json()["request_id"] == "txn-0001" and both.headers["x-request-id"] == "txn-0001"
    header_only = client.post(url, json={"features": SEED_FEATURES}, headers={"x-request-id": "from-header"})
    assert header_only.json()["request_id"] == "from-header" == header_only.headers["x-request-id"]
    first = client.post(url, json={"features": SEED_FEATURES})
    second = client.post(url, json={"features": SEED_FEATURES})
    assert first.json()["request_id"] == first.headers["x-request-id"]
    assert len(first.json()["request_id"]) >= 16 and first.json()["request_id"] != second.json()["request_id"]


def test_features_by_name(onnx_server, client):
    names = client.get(f"{onnx_server.url}/model").json()["feature_names"]
    by_name = client.post(f"{onnx_server.url}/predict", json={"features": dict(zip(names, SEED_FEATURES))})
    by_position = client.post(f"{onnx_server.url}/predict", json={"features": SEED_FEATURES})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["fraud_probability"] == by_position.json()["fraud_probability"]


def test_batch_equals_single_predictions(onnx_server, client):
    rows = sample_rows()
    batch = client.post(f"{onnx_server.url}/predict/batch", json={"instances": rows, "request_id": "b-1"})
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert body["request_id"] == "b-1" and body["model_version"] == "1.0.0"
    assert len(body["predictions"]) == len(rows)
    for row, prediction in zip(rows, body["predictions"], strict=True):
        single = client.post(f"{onnx_server.url}/predict", json={"features": row}).json()
        assert prediction == {"is_fraud": single["is_fraud"], "fraud_probability": single["fraud_probability"]}


@pytest.mark.parametrize("path", ["/v2/models/fraud/infer", "/v2/models/fraud/versions/1.0.0/infer"])
@pytest.mark.parametrize("nested", [False, True])
def test_v2_infer_equals_predict(onnx_server, client, path, nested):
    rows = sample_rows()
    r = client.post(f"{onnx_server.url}{path}", json=v2_request(rows, nested=nested, id="v2-req"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "v2-req" == r.headers["x-request-id"]
    assert body["model_name"] == "fraud" and body["model_version"] == "1.0.0"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["shape"] == [len(rows), 1] and outputs["predict"]["datatype"] == "INT64"
    assert outputs["predict_proba"]["shape"] == [len(rows), 2] and outputs["predict_proba"]["datatype"] == "FP64"
    proba = np.array(outputs["predict_proba"]["data"]).reshape(len(rows), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    seed_api = client.post(f"{onnx_server.url}/predict/batch", json={"instances": rows}).json()["predictions"]
    for i, prediction in enumerate(seed_api):
        assert proba[i, 1] == prediction["fraud_probability"]
        assert outputs["predict"]["data"][i] == int(prediction["is_fraud"])


def test_v2_requested_outputs_and_parameters(onnx_server, client):
    request = v2_request(sample_rows(3), outputs=[{"name": "predict_proba"}], parameters={"content_type": "np"})
    request["inputs"][0]["parameters"] = {"content_type": "np"}
    body = client.post(f"{onnx_server.url}/v2/models/fraud/infer", json=request).json()
    assert [o["name"] for o in body["outputs"]] == ["predict_proba"]


def test_v2_fp32_input(onnx_server, client):
    rows = sample_rows(4)
    fp32 = client.post(f"{onnx_server.url}/v2/models/fraud/infer", json=v2_request(rows, "FP32")).json()
    fp64 = client.post(f"{onnx_server.url}/v2/models/fraud/infer", json=v2_request(rows, "FP64")).json()
    a, b = (np.array(o["outputs"][1]["data"]) for o in (fp32, fp64))
    assert np.max(np.abs(a - b)) <= 1e-5


def test_v2_generated_id_is_echoed(onnx_server, client):
    r = client.post(f"{onnx_server.url}/v2/models/fraud/infer", json=v2_request(sample_rows(1)),
                    headers={"x-request-id": "hdr-7"})
    assert r.json()["id"] == "hdr-7" == r.headers["x-request-id"]
    r = client.post(f"{onnx_server.url}/v2/models/fraud/infer", json=v2_request(sample_rows(1)))
    assert r.json()["id"] == r.headers["x-request-id"] and r.json()["id"]


def test_probabilities_are_finite_numbers(onnx_server, client):
    body = client.post(f"{onnx_server.url}/predict/batch", json={"instances": sample_rows(50)}).json()
    assert all(math.isfinite(p["fraud_probability"]) for p in body["predictions"])

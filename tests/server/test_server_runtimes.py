"""ONNX and scikit-learn runtimes, versions, batching under concurrency, and the not-ready states."""

import asyncio

import httpx
import numpy as np
from mlserving.training.data import make_fraud_dataset
from server_testkit import SEED_PAYLOAD


def rows(n=200, seed=11):
    return make_fraud_dataset(samples=max(n, 400), seed=seed).X[:n].tolist()


def probabilities(client, server, instances):
    r = client.post(f"{server.url}/predict/batch", json={"instances": instances})
    assert r.status_code == 200, r.text
    return np.array([p["fraud_probability"] for p in r.json()["predictions"]])


def test_onnx_and_sklearn_paths_agree(onnx_server, sklearn_server, client):
    assert client.get(f"{onnx_server.url}/model").json()["format"] == "onnx"
    assert client.get(f"{sklearn_server.url}/model").json()["format"] == "sklearn"
    instances = rows(200)[:50]
    onnx = probabilities(client, onnx_server, instances)
    sklearn = probabilities(client, sklearn_server, instances)
    assert np.max(np.abs(onnx - sklearn)) <= 1e-5
    v2 = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [5, 20], "data": instances[:5]}]}
    a = client.post(f"{onnx_server.url}/v2/models/fraud/infer", json=v2).json()["outputs"][1]["data"]
    b = client.post(f"{sklearn_server.url}/v2/models/fraud/infer", json=v2).json()["outputs"][1]["data"]
    assert np.max(np.abs(np.array(a) - np.array(b))) <= 1e-5


def test_concurrent_requests_are_coalesced_and_answered_correctly(sklearn_server, onnx_server, client):
    instances = rows(96, seed=12)
    expected = np.concatenate([probabilities(client, onnx_server, instances[:48]),
                               probabilities(client, onnx_server, instances[48:])])
    calls_before = client.get(f"{sklearn_server.url}/model").json()["batching"]["model_calls"]

    async def fire():
        async with httpx.AsyncClient(timeout=30.0) as ac:
            tasks = [ac.post(f"{sklearn_server.url}/predict", json={"features": row, "request_id": f"c-{i}"})
                     for i, row in enumerate(instances)]
            return await asyncio.gather(*tasks)

    responses = asyncio.run(fire())
    for i, r in enumerate(responses):
        assert r.status_code == 200, r.text
        assert r.json()["request_id"] == f"c-{i}"
        assert abs(r.json()["fraud_probability"] - expected[i]) <= 1e-5
    batching = client.get(f"{sklearn_server.url}/model").json()["batching"]
    assert batching["max_batch_size"] == 16
    # 96 concurrent single-row requests must have shared model calls.
    assert batching["model_calls"] - calls_before < len(instances)


def test_versions_trained_with_different_seeds_disagree(model_registry, onnx_server, start_server, client):
    v2 = start_server(model_registry / "fraud" / "2.0.0")
    instances = rows(50, seed=13)
    first = probabilities(client, onnx_server, instances)
    second = probabilities(client, v2, instances)
    assert np.mean(np.abs(first - second)) > 0.01
    assert client.post(f"{v2.url}/predict", json=SEED_PAYLOAD).json()["model_version"] == "2.0.0"


def assert_not_ready(server, client, reason_words):
    ready = client.get(f"{server.url}/health/ready")
    assert ready.status_code == 503
    assert reason_words in ready.json()["reason"]
    assert client.get(f"{server.url}/health/live").status_code == 200
    health = client.get(f"{server.url}/health")
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    assert client.get(f"{server.url}/v2/health/ready").status_code == 503
    predict = client.post(f"{server.url}/predict", json=SEED_PAYLOAD)
    assert predict.status_code == 503 and reason_words in predict.json()["error"]
    assert reason_words in server.logs()


def test_checksum_mismatch_keeps_server_not_ready(model_copy, start_server, client):
    directory = model_copy()
    onnx = directory / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[-1] ^= 0xFF
    onnx.write_bytes(bytes(data))
    server = start_server(directory)
    assert_not_ready(server, client, "does not match metadata.json")


def test_model_name_from_env(renamed_debug_server, client):
    server = renamed_debug_server
    assert client.get(f"{server.url}/model").json()["name"] == "fraud-a"
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 20], "data": SEED_PAYLOAD["features"]}]}
    assert client.post(f"{server.url}/v2/models/fraud-a/infer", json=body).status_code == 200
    assert client.post(f"{server.url}/v2/models/fraud/infer", json=body).status_code == 404
    assert client.post(f"{server.url}/predict", json=SEED_PAYLOAD).json()["model_name"] == "fraud-a"

"""The v2 binary tensor extension: the real KServe and Triton clients (binary by default, and in JSON
mode) against the server and through the router, and the wire format's validation."""

import json
import struct

import joblib
import numpy as np
import pytest
from server_testkit import start_router_to
from v2_clients import CLIENTS, INFER, MODES


@pytest.fixture(scope="module")
def routed(onnx_server, log_dir):
    router = start_router_to(onnx_server.url, log_dir, "1.0.0")
    yield router
    router.stop()


def sample(n=5, seed=3):
    return np.random.default_rng(seed).normal(size=(n, 20))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client_name", CLIENTS)
@pytest.mark.parametrize("via", ["server", "router"])
def test_clients_get_the_models_answers(onnx_server, routed, model_registry, client_name, mode, via):
    estimator = joblib.load(model_registry / "fraud" / "1.0.0" / "model.joblib")
    X = sample()
    url = onnx_server.url if via == "server" else routed.url
    got = INFER[client_name](url, "fraud", X, ["predict", "predict_proba"], mode)
    np.testing.assert_allclose(got["predict_proba"].reshape(len(X), 2), estimator.predict_proba(X.astype(np.float32)),
                               rtol=1e-5, atol=1e-6)
    assert got["predict"].reshape(-1).tolist() == estimator.predict(X.astype(np.float32)).tolist()


def binary_request(X: np.ndarray, dtype="<f8", datatype="FP64", size=None, outputs=None, parameters=None):
    raw = X.astype(dtype).tobytes()
    head = {"inputs": [{"name": "x", "shape": list(X.shape), "datatype": datatype,
                        "parameters": {"binary_data_size": len(raw) if size is None else size}}]}
    if outputs is not None:
        head["outputs"] = outputs
    if parameters is not None:
        head["parameters"] = parameters
    text = json.dumps(head).encode()
    return text + raw, {"Inference-Header-Content-Length": str(len(text)), "content-type": "application/octet-stream"}


def split(response):
    length = int(response.headers["inference-header-content-length"])
    return json.loads(response.content[:length]), response.content[length:]


def test_binary_outputs_on_request(onnx_server, client):
    X = sample(3)
    body, headers = binary_request(X, "<f4", "FP32", outputs=[
        {"name": "predict_proba", "parameters": {"binary_data": True}}, {"name": "predict"}])
    r = client.post(f"{onnx_server.url}/v2/models/fraud/infer", content=body, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    head, raw = split(r)
    proba, label = head["outputs"]
    assert proba["parameters"]["binary_data_size"] == len(raw) == 3 * 2 * 8 and "data" not in proba
    json_answer = client.post(f"{onnx_server.url}/v2/models/fraud/infer", json={"inputs": [
        {"name": "x", "shape": [3, 20], "datatype": "FP32", "data": X.astype(np.float32).tolist()}]}).json()
    assert np.frombuffer(raw, "<f8").tolist() == json_answer["outputs"][1]["data"]
    assert label["data"] == json_answer["outputs"][0]["data"]
    # binary_data_output asks for every output as bytes; an output's own binary_data=false wins.
    body, headers = binary_request(X, parameters={"binary_data_output": True},
                                   outputs=[{"name": "predict"}, {"name": "predict_proba", "parameters": {"binary_data": False}}])
    head, raw = split(client.post(f"{onnx_server.url}/v2/models/fraud/infer", content=body, headers=headers))
    assert np.frombuffer(raw, "<i8").tolist() == json_answer["outputs"][0]["data"]
    assert head["outputs"][1]["data"] == json_answer["outputs"][1]["data"]


def test_json_request_with_binary_outputs(onnx_server, client):
    r = client.post(f"{onnx_server.url}/v2/models/fraud/infer", json={
        "inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [0.5] * 20}],
        "parameters": {"binary_data_output": True}})
    head, raw = split(r)
    assert [o["parameters"]["binary_data_size"] for o in head["outputs"]] == [8, 16] and len(raw) == 24


def test_string_labels_as_bytes():
    from mlserving.server.protocols.v2_binary import tensor_bytes

    raw = tensor_bytes("BYTES", ["travel", "é"])
    assert raw == struct.pack("<I", 6) + b"travel" + struct.pack("<I", 2) + "é".encode()


def bad(onnx_server, client, body, headers):
    r = client.post(f"{onnx_server.url}/v2/models/fraud/infer", content=body, headers=headers)
    assert 400 <= r.status_code < 500, r.text
    return r.status_code, r.json()


def test_binary_validation(onnx_server, client):
    X = sample(2)
    body, headers = binary_request(X, size=2 * 20 * 8 - 8)
    status, error = bad(onnx_server, client, body, headers)
    assert error["field"] == "inputs[0].parameters.binary_data_size" and "must be 320 bytes" in error["error"]
    body, headers = binary_request(X)
    status, error = bad(onnx_server, client, body[:-8], headers)
    assert error["field"] == "inputs[0].parameters.binary_data_size" and "only 312 follow" in error["error"]
    for value, words in ((np.nan, "nan is not allowed"), (np.inf, "inf is not allowed"), (1e300, "within")):
        Y = X.copy()
        Y[1, 3] = value
        body, headers = binary_request(Y)
        status, error = bad(onnx_server, client, body, headers)
        assert status == 422 and error["field"] == "inputs[0].data[23]" and words in error["error"], error
    big = sample(20)  # 400 values: checked with numpy rather than over a list
    big[15, 2] = np.nan
    body, headers = binary_request(big)
    status, error = bad(onnx_server, client, body, headers)
    assert status == 422 and error["field"] == "inputs[0].data[302]" and "nan is not allowed" in error["error"]
    body, headers = binary_request(X)
    headers["Inference-Header-Content-Length"] = str(len(body) + 1)
    status, error = bad(onnx_server, client, body, headers)
    assert status == 400 and error["field"] == "Inference-Header-Content-Length"
    headers["Inference-Header-Content-Length"] = "ten"
    status, error = bad(onnx_server, client, body, headers)
    assert status == 400 and error["field"] == "Inference-Header-Content-Length"
    text = json.dumps({"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [0.5] * 20}]}).encode()
    status, error = bad(onnx_server, client, text + b"\x00" * 8, {"Inference-Header-Content-Length": str(len(text))})
    assert error["field"] == "inputs[0].parameters.binary_data_size" and "required" in error["error"]

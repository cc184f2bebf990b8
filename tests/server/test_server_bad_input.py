"""Each kind of bad input gets its 4xx with a JSON body naming the field and the rule; never a 500."""

import pytest
from server_testkit import SEED_FEATURES

JSON = {"content-type": "application/json"}
ROW = ",".join(str(v) for v in SEED_FEATURES)
ROW19 = ",".join(str(v) for v in SEED_FEATURES[:19])


def v2_body(tensor: str) -> str:
    return '{"inputs": [' + tensor + ']}'


def tensor(shape="[1, 20]", datatype='"FP64"', data=f"[{ROW}]") -> str:
    return f'{{"name": "input-0", "datatype": {datatype}, "shape": {shape}, "data": {data}}}'


# (path, raw body, status, field, words the message must contain)
CASES = [
    ("/predict", "", 422, "body", "empty body"),
    ("/predict", '{"features": [1, 2', 400, "body", "valid JSON"),
    ("/predict", "[1, 2, 3]", 422, "body", "JSON object"),
    ("/predict", '{"request_id": "x"}', 422, "features", "required"),
    ("/predict", '{"features": [1, 2, 3]}', 422, "features", "exactly 20 numbers, got 3"),
    ("/predict", '{"features": "1,2,3"}', 422, "features", "array of 20 numbers"),
    ("/predict", f'{{"features": [{ROW19}, NaN]}}', 422, "features[19]", "NaN is not allowed"),
    ("/predict", f'{{"features": [Infinity, {ROW19}]}}', 422, "features[0]", "Infinity is not allowed"),
    ("/predict", f'{{"features": [{ROW19}, -Infinity]}}', 422, "features[19]", "-Infinity is not allowed"),
    ("/predict", f'{{"features": [{ROW19}, 1e999]}}', 422, "features[19]", "finite number"),
    ("/predict", f'{{"features": [-1e999, {ROW19}]}}', 422, "features[0]", "finite number"),
    ("/predict", f'{{"features": [{ROW19}, 1e300]}}', 422, "features[19]", "within"),
    ("/predict", f'{{"features": [{ROW19}, "0.5"]}}', 422, "features[19]", "must be a number, got a string"),
    ("/predict", f'{{"features": [{ROW19}, true]}}', 422, "features[19]", "got a boolean"),
    ("/predict", f'{{"features": [{ROW19}, null]}}', 422, "features[19]", "got null"),
    ("/predict", f'{{"features": [{ROW}], "request_id": 5}}', 422, "request_id", "string"),
    ("/predict", '{"features": {"amount": 1}}', 422, "features", "missing feature"),
    ("/predict/batch", '{"instances": []}', 422, "instances", "at least 1 row"),
    ("/predict/batch", '{"rows": []}', 422, "instances", "required"),
    ("/predict/batch", '{"instances": {"a": 1}}', 422, "instances", "array of rows"),
    ("/predict/batch", '{"instances": [' + ",".join([f"[{ROW}]"] * 51) + "]}", 413, "instances",
     "at most 50 rows"),
    ("/predict/batch", f'{{"instances": [[{ROW}], [{ROW19}, NaN]]}}', 422, "instances[1][19]", "NaN"),
    ("/predict/batch", f'{{"instances": [[{ROW}], [1, 2]]}}', 422, "instances[1]", "exactly 20"),
    ("/v2/models/fraud/infer", "{}", 422, "inputs", "exactly 1 tensor"),
    ("/v2/models/fraud/infer", '{"inputs": []}', 422, "inputs", "exactly 1 tensor"),
    ("/v2/models/fraud/infer", v2_body(tensor(datatype='"INT8"')), 422, "inputs[0].datatype", "FP32, FP64"),
    ("/v2/models/fraud/infer", v2_body(tensor(datatype='"BYTES"')), 422, "inputs[0].datatype", "FP32, FP64"),
    ("/v2/models/fraud/infer", v2_body(tensor(shape="[20]")), 422, "inputs[0].shape", "[N, 20]"),
    ("/v2/models/fraud/infer", v2_body(tensor(shape="[1, 19]")), 422, "inputs[0].shape", "20 features"),
    ("/v2/models/fraud/infer", v2_body(tensor(shape="[0, 20]", data="[]")), 422, "inputs[0].shape",
     "at least 1 row"),
    ("/v2/models/fraud/infer", v2_body(tensor(shape="[2, 20]")), 422, "inputs[0].data", "40 numbers"),
    ("/v2/models/fraud/infer", v2_body(tensor(shape="[51, 20]", data="[" + ",".join([ROW] * 51) + "]")), 413,
     "inputs[0].shape", "at most 50 rows"),
    ("/v2/models/fraud/infer", v2_body(tensor(data=f"[{ROW19}, NaN]")), 422, "inputs[0].data[19]", "NaN"),
    ("/v2/models/fraud/infer", v2_body(tensor(data='"abc"')), 422, "inputs[0].data", "array of numbers"),
    ("/v2/models/fraud/infer", '{"inputs": [' + tensor() + '], "outputs": [{"name": "label"}]}', 422,
     "outputs[0].name", "predict, predict_proba"),
    ("/v2/models/fraud/infer", '{"inputs": [' + tensor() + '], "parameters": [1]}', 422, "parameters",
     "object"),
    ("/v2/models/other/infer", v2_body(tensor()), 404, "model", "'other' is not served"),
    ("/v2/models/fraud/versions/9.9.9/infer", v2_body(tensor()), 404, "model", "no version '9.9.9'"),
]


@pytest.mark.parametrize(("path", "body", "status", "field", "words"), CASES,
                         ids=[f"{c[0]}:{c[3]}:{c[4]}" for c in CASES])
def test_bad_input(onnx_server, client, path, body, status, field, words):
    r = client.post(f"{onnx_server.url}{path}", content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()
    assert error["field"] == field
    assert error["error"].startswith(f"{field}: ")
    assert words in error["error"]
    assert error["request_id"] == r.headers["x-request-id"]


def test_body_over_the_limit(onnx_server, client):
    padding = b" " * (1024 * 1024)
    r = client.post(f"{onnx_server.url}/predict", content=b'{"features": []}' + padding, headers=JSON)
    assert r.status_code == 413 and r.json()["field"] == "body" and "1048576 bytes" in r.json()["error"]


def test_chunked_body_over_the_limit(onnx_server, client):
    def chunks():
        yield b'{"features": ['
        for _ in range(300):
            yield b"0.0," * 1000
        yield b"0]}"

    r = client.post(f"{onnx_server.url}/v2/models/fraud/infer", content=chunks(), headers=JSON)
    assert r.status_code == 413 and "MAX_BODY_BYTES" in r.json()["error"]


def test_bad_input_is_counted_and_server_stays_healthy(onnx_server, client):
    def invalid_count() -> float:
        for line in client.get(f"{onnx_server.url}/metrics").text.splitlines():
            if line.startswith("model_predictions_total{") and 'status="invalid"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = invalid_count()
    for _ in range(3):
        assert client.post(f"{onnx_server.url}/predict", content=b'{"features": [NaN]}', headers=JSON).status_code == 422
    assert invalid_count() == before + 3
    assert client.get(f"{onnx_server.url}/health/ready").status_code == 200


def test_unknown_path_and_method(onnx_server, client):
    r = client.get(f"{onnx_server.url}/nope")
    assert r.status_code == 404 and r.json()["field"] == "path" and r.headers["x-request-id"]
    r = client.get(f"{onnx_server.url}/predict")
    assert r.status_code == 405 and r.json()["field"] == "method"

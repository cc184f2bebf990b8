"""GET /openapi.json describes exactly what the server answers: FastAPI's routes and the hot paths
FastAPI never sees, checked against the application's route tables and the live process."""

import pytest
from mlserving.server import openapi
from mlserving.server.hotpath import parse_v2_infer_path
from mlserving.server.main import create_app
from server_testkit import SEED_PAYLOAD

EXAMPLES = {"name": "fraud", "version": "1.0.0"}


def fastapi_paths(routes) -> set[tuple[str, str]]:
    """(path, method) of every route, through included routers."""
    out = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out |= fastapi_paths(inner.routes)
        elif getattr(route, "include_in_schema", True):
            out |= {(route.path, m.lower()) for m in route.methods - {"HEAD"}}
    return out


@pytest.fixture(scope="module")
def doc(onnx_server, client):
    r = client.get(f"{onnx_server.url}/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return r.json()


def documented(doc) -> set[tuple[str, str]]:
    return {(path, method) for path, ops in doc["paths"].items() for method in ops}


def test_document_lists_every_fastapi_route_and_every_hot_path(doc):
    app = create_app()
    hot = {(p.rstrip("/"), "post") for p in app.routes}
    assert fastapi_paths(app.app.routes) | hot <= documented(doc)
    infer = [p for p in doc["paths"] if p.endswith("/infer")]
    assert infer and all(parse_v2_infer_path(p.format(**EXAMPLES)) is not None for p in infer)
    assert documented(doc) - hot - fastapi_paths(app.app.routes) == {(p, "post") for p in infer}


def test_every_documented_operation_is_answered_by_the_process(doc, onnx_server, client):
    for path, method in sorted(documented(doc)):
        url = onnx_server.url + path.format(**EXAMPLES)
        if method == "post":
            body = {"/predict": SEED_PAYLOAD, "/predict/batch": {"instances": [SEED_PAYLOAD["features"]]}}.get(
                path, {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 20],
                                   "data": SEED_PAYLOAD["features"]}]})
            r = client.post(url, json=body)
        else:
            r = client.get(url)
        assert r.status_code == 200, (path, method, r.status_code, r.text[:200])
    assert client.get(onnx_server.url + "/not-documented").status_code == 404


def test_hot_path_errors_reference_the_error_schema(doc):
    for path in openapi.HOT_PATHS:
        responses = doc["paths"][path]["post"]["responses"]
        assert {"200", "413", "415", "422"} <= set(responses)
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "field", "status", "request_id"]

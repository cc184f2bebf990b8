"""The inference server's OpenAPI document, served at GET /openapi.json.

FastAPI describes the routes it serves (health, model metadata, v2 metadata, metrics); the hot
paths it never sees (/predict, /predict/batch, v2 infer: see hotpath.py) are described here by hand,
with the error body every 4xx/5xx carries. tests/server/test_server_openapi.py checks the document
against the routes the process really answers.
"""

from __future__ import annotations

from fastapi.openapi.utils import get_openapi

ERROR = {
    "type": "object",
    "required": ["error", "field", "status", "request_id"],
    "properties": {
        "error": {"type": "string", "description": "<field>: <rule>"},
        "field": {"type": ["string", "null"], "description": "the field (or header) at fault"},
        "status": {"type": "integer"},
        "request_id": {"type": ["string", "null"]},
    },
}
NUMBER = {"type": "number"}
ROW = {"oneOf": [{"type": "array", "items": NUMBER},
                 {"type": "object", "additionalProperties": NUMBER, "description": "keyed by feature name"}]}
REQUEST_ID = {"type": "string", "minLength": 1, "maxLength": 128}
PREDICTION = {"type": "object", "required": ["is_fraud", "fraud_probability"],
              "properties": {"is_fraud": {"type": "boolean"}, "fraud_probability": NUMBER}}
TENSOR_OUT = {"type": "object", "required": ["name", "shape", "datatype", "data"],
              "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                             "datatype": {"type": "string"}, "data": {"type": "array", "items": NUMBER}}}

SEED_PREDICT = {"type": "object", "required": ["features"],
                "properties": {"features": ROW, "request_id": REQUEST_ID}}
SEED_BATCH = {"type": "object", "required": ["instances"],
              "properties": {"instances": {"type": "array", "minItems": 1, "items": ROW}, "request_id": REQUEST_ID}}
V2_REQUEST = {
    "type": "object", "required": ["inputs"],
    "properties": {
        "id": REQUEST_ID,
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object", "required": ["name", "datatype", "shape", "data"],
            "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                           "shape": {"type": "array", "items": {"type": "integer"}},
                           "data": {"type": "array", "items": NUMBER}}}},
        "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
    },
}
SEED_ANSWER = {"type": "object", "required": ["request_id", "is_fraud", "fraud_probability", "model_name",
                                              "model_version"],
               "properties": {**PREDICTION["properties"], "request_id": {"type": "string"},
                              "model_name": {"type": "string"}, "model_version": {"type": "string"}}}
BATCH_ANSWER = {"type": "object", "required": ["request_id", "predictions", "model_name", "model_version"],
                "properties": {"request_id": {"type": "string"}, "predictions": {"type": "array", "items": PREDICTION},
                               "model_name": {"type": "string"}, "model_version": {"type": "string"}}}
V2_ANSWER = {"type": "object", "required": ["model_name", "model_version", "id", "outputs"],
             "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                            "id": {"type": "string"}, "parameters": {"type": "object"},
                            "outputs": {"type": "array", "items": TENSOR_OUT}}}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def hot_operation(summary: str, request: dict, answer: dict, path_params: tuple[str, ...] = ()) -> dict:
    errors = {str(s): {"description": d, "content": _json({"$ref": "#/components/schemas/Error"})}
              for s, d in ((400, "not JSON"), (404, "no such model or version"), (405, "not POST"),
                           (413, "body or batch too large"), (415, "not application/json"),
                           (422, "a field breaks a rule"), (500, "internal error"), (503, "model not ready"))}
    return {"post": {
        "summary": summary,
        "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[^/]+$"}}
                       for p in path_params],
        "requestBody": {"required": True, "content": _json(request)},
        "responses": {"200": {"description": "the prediction", "content": _json(answer)}, **errors},
    }}


HOT_PATHS = {
    "/predict": hot_operation("One prediction (the seed's API)", SEED_PREDICT, SEED_ANSWER),
    "/predict/batch": hot_operation("Predictions for several rows", SEED_BATCH, BATCH_ANSWER),
    "/v2/models/{name}/infer": hot_operation("Open Inference Protocol v2 infer", V2_REQUEST, V2_ANSWER, ("name",)),
    "/v2/models/{name}/versions/{version}/infer": hot_operation(
        "Open Inference Protocol v2 infer, one version", V2_REQUEST, V2_ANSWER, ("name", "version")),
}


def document(api, version: str) -> dict:
    doc = get_openapi(title="mlserving inference server", version=version, routes=api.routes,
                      openapi_version="3.1.0")
    doc["paths"].update(HOT_PATHS)
    doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    return doc

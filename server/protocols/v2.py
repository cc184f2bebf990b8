"""Open Inference Protocol (KServe v2) REST, enough for MLServer and KServe clients unchanged.

The infer endpoints are hot paths served by the raw dispatcher; the metadata and health
endpoints are ordinary FastAPI routes.

Input: one tensor of datatype FP32 or FP64 and shape [N, n_features], ``data`` flat (row-major)
or nested. Outputs: ``predict`` (INT64 [N, 1], 1 when the fraud probability reaches the
model's decision threshold) and ``predict_proba`` (FP64 [N, n_classes]); the request's
``outputs`` selects among them, all are returned when it is absent.
"""

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from mlserving.server.hotpath import Call, HotResult
from mlserving.server.validation import (
    InputError,
    check_request_id,
    feature_row,
    json_type,
    parse_json,
    require_object,
)

SERVER_NAME = "mlserving"
INPUT_DATATYPES = ("FP32", "FP64")
OUTPUTS = ("predict", "predict_proba")


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlserving")
    except PackageNotFoundError:
        return "0.0.0"


class ModelNotFound(InputError):
    def __init__(self, message: str):
        super().__init__("model", message, status=404)


def check_target(state, name: str, version: str | None) -> None:
    model = state.model
    if name != model.name:
        raise ModelNotFound(f"{name!r} is not served here (this server serves {model.name!r})")
    if version is not None and version != model.version:
        raise ModelNotFound(f"{name!r} has no version {version!r} here (served: {model.version!r})")


def _input_rows(tensor, n_features: int, limit: int, dtype) -> np.ndarray:
    tensor = require_object(tensor, "inputs[0]")
    datatype = tensor.get("datatype")
    if datatype not in INPUT_DATATYPES:
        raise InputError("inputs[0].datatype", f"must be one of {', '.join(INPUT_DATATYPES)}, got {datatype!r}")
    shape = tensor.get("shape")
    if (type(shape) is not list or len(shape) != 2 or any(type(d) is not int for d in shape)):
        raise InputError("inputs[0].shape", f"must be [N, {n_features}], got {shape!r}")
    n_rows, n_cols = shape
    if n_cols != n_features:
        raise InputError("inputs[0].shape", f"must be [N, {n_features}]: the model takes {n_features} "
                                            f"features, got {n_cols}")
    if n_rows < 1:
        raise InputError("inputs[0].shape", f"must have at least 1 row, got {n_rows}")
    if n_rows > limit:
        raise InputError("inputs[0].shape", f"must have at most {limit} rows (MAX_BATCH_INSTANCES), got {n_rows}",
                         status=413)
    data = tensor.get("data")
    if type(data) is not list:
        raise InputError("inputs[0].data", f"must be an array of numbers, got {json_type(data)}")
    if data and type(data[0]) is list:
        if len(data) != n_rows:
            raise InputError("inputs[0].data", f"must hold {n_rows} rows to match shape {shape}, got {len(data)}")
        rows = [feature_row(r, n_features, {}, f"inputs[0].data[{i}]") if type(r) is list else
                _not_a_row(i, r) for i, r in enumerate(data)]
    else:
        if len(data) != n_rows * n_cols:
            raise InputError("inputs[0].data", f"must hold {n_rows * n_cols} numbers to match shape {shape}, "
                                               f"got {len(data)}")
        feature_row(data, len(data), {}, "inputs[0].data")  # type and range check of every value
        rows = data
    if datatype == "FP32":  # the values the client meant to send, whatever the runtime takes
        return np.array(rows, dtype=np.float32).reshape(n_rows, n_cols).astype(dtype, copy=False)
    return np.array(rows, dtype=dtype).reshape(n_rows, n_cols)


def _not_a_row(i: int, value):
    raise InputError(f"inputs[0].data[{i}]", f"must be an array of numbers, got {json_type(value)}")


def _requested_outputs(document: dict) -> tuple[str, ...]:
    outputs = document.get("outputs")
    if outputs is None:
        return OUTPUTS
    if type(outputs) is not list:
        raise InputError("outputs", f"must be an array of {{\"name\": ...}} objects, got {json_type(outputs)}")
    names = []
    for i, output in enumerate(outputs):
        name = output.get("name") if type(output) is dict else None
        if name not in OUTPUTS:
            raise InputError(f"outputs[{i}].name", f"must be one of {', '.join(OUTPUTS)}, got {name!r}")
        names.append(name)
    return tuple(names) or OUTPUTS


async def infer(call: Call) -> HotResult:
    state = call.state
    model = state.model
    document = require_object(parse_json(call.body))
    request_id = document.get("id")
    if request_id is not None:
        call.request_id = check_request_id(request_id, "id")
    check_target(state, call.model_name, call.model_version)
    parameters = document.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise InputError("parameters", f"must be an object, got {json_type(parameters)}")
    inputs = document.get("inputs")
    if type(inputs) is not list or len(inputs) != 1:
        got = f"{len(inputs)} tensors" if type(inputs) is list else json_type(inputs)
        raise InputError("inputs", f"must be an array of exactly 1 tensor of shape [N, {model.n_features}], got {got}")
    X = _input_rows(inputs[0], model.n_features, state.config.max_batch_instances, model.runtime.input_dtype)
    requested = _requested_outputs(document)
    proba = await state.predict_proba(X)
    # Plain lists: for the few rows a request holds they are cheaper than numpy ufuncs.
    table = proba.tolist()
    positive, threshold = model.positive_index, model.threshold
    labels = [1 if row[positive] >= threshold else 0 for row in table]
    n = len(table)
    tensors = {
        "predict": {"name": "predict", "shape": [n, 1], "datatype": "INT64", "data": labels},
        "predict_proba": {"name": "predict_proba", "shape": [n, proba.shape[1]], "datatype": "FP64",
                          "data": [p for row in table for p in row]},
    }
    body = orjson.dumps({
        "model_name": model.name,
        "model_version": model.version,
        "id": call.rid(),
        "parameters": {},
        "outputs": [tensors[name] for name in requested],
    })
    return HotResult(body, rows=n, frauds=sum(labels))


def router(state) -> APIRouter:
    api = APIRouter()

    def not_found(request: Request, message: str) -> JSONResponse:
        request_id = request.state.request_id
        return JSONResponse({"error": message, "field": "model", "status": 404, "request_id": request_id},
                            status_code=404)

    def model_or_error(request: Request, name: str, version: str | None):
        if state.model is None:
            return JSONResponse({"error": f"model not ready: {state.not_ready_reason}", "field": None,
                                 "status": 503, "request_id": request.state.request_id}, status_code=503)
        try:
            check_target(state, name, version)
        except ModelNotFound as exc:
            return not_found(request, str(exc))
        return None

    @api.get("/v2")
    async def server_metadata():
        return {"name": SERVER_NAME, "version": _package_version(), "extensions": []}

    @api.get("/v2/health/live")
    async def server_live():
        return {"live": True}

    @api.get("/v2/health/ready")
    async def server_ready():
        return JSONResponse({"ready": state.ready}, status_code=200 if state.ready else 503)

    async def model_metadata(request: Request, name: str, version: str | None = None):
        error = model_or_error(request, name, version)
        if error is not None:
            return error
        model = state.model
        return {
            "name": model.name,
            "versions": [model.version],
            "platform": f"mlserving-{model.format}",
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, model.n_features],
                        "parameters": {"feature_names": model.feature_names}}],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]},
                        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.metadata.get("classes", [0, 1]))]}],
            "parameters": {"decision_threshold": model.threshold},
        }

    async def model_ready(request: Request, name: str, version: str | None = None):
        if state.model is not None:
            error = model_or_error(request, name, version)
            if error is not None:
                return error
        return JSONResponse({"name": name, "ready": state.ready}, status_code=200 if state.ready else 503)

    api.add_api_route("/v2/models/{name}", model_metadata, methods=["GET"])
    api.add_api_route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"])
    api.add_api_route("/v2/models/{name}/ready", model_ready, methods=["GET"])
    api.add_api_route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"])
    return api

"""Open Inference Protocol (KServe v2) REST, enough for MLServer, KServe and Triton clients unchanged.

The infer endpoints are hot paths served by the raw dispatcher; the metadata and health
endpoints are ordinary FastAPI routes.

Input: one tensor of datatype FP32 or FP64 and shape [N, n_features], ``data`` flat (row-major)
or nested, or its raw bytes after the JSON header (the binary tensor extension, v2_binary.py).
Outputs follow the model's task (server/tasks.py): classifiers answer ``predict`` (the label per
row, [N, 1], INT64 or BYTES) and ``predict_proba`` (FP64 [N, n_classes]); regressors answer one
FP64 [N, 1] tensor named by metadata's ``output_name``. The request's ``outputs`` selects among
them, all are returned when it is absent; ``parameters.binary_data_output`` (or an output's own
``parameters.binary_data``) asks for raw bytes instead of JSON ``data``.
"""

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from mlserving.server.hotpath import Call, HotResult
from mlserving.server.protocols import v2_binary
from mlserving.server.protocols.errors import error_response
from mlserving.server.tasks import LABEL_OUTPUT, PROBA_OUTPUT, Task
from mlserving.server.validation import (
    FLOAT32_MAX,
    InputError,
    check_finite_array,
    check_request_id,
    json_type,
    locate_bad_number,
    parse_object,
    require_object,
)

SERVER_NAME = "mlserving"
INPUT_DATATYPES = ("FP32", "FP64")
EXTENSIONS = ["binary_tensor_data"]
_NUMBER_TYPES = frozenset((float, int))


def package_version() -> str:
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


def _shape(tensor: dict, n_features: int, limit: int) -> tuple[int, int]:
    shape = tensor.get("shape")
    if (type(shape) is not list or len(shape) != 2 or type(shape[0]) is not int or type(shape[1]) is not int):
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
    return n_rows, n_cols


def _json_values(data, n_rows: int, n_cols: int) -> list:
    """The flat list of a tensor's JSON ``data`` (flat or nested by row), every value checked."""
    if type(data) is not list:
        raise InputError("inputs[0].data", f"must be an array of numbers, got {json_type(data)}")
    if data and type(data[0]) is list:
        if len(data) != n_rows:
            raise InputError("inputs[0].data", f"must hold {n_rows} rows to match shape {[n_rows, n_cols]}, "
                                               f"got {len(data)}")
        for i, row in enumerate(data):
            if type(row) is not list or len(row) != n_cols:
                raise InputError(f"inputs[0].data[{i}]", f"must be an array of {n_cols} numbers, got "
                                 + (f"{len(row)}" if type(row) is list else json_type(row)))
        data = [v for row in data for v in row]
    elif len(data) != n_rows * n_cols:
        raise InputError("inputs[0].data", f"must hold {n_rows * n_cols} numbers to match shape "
                                           f"{[n_rows, n_cols]}, got {len(data)}")
    # The whole array at once, in C: all numbers (bool is not), all within float32 range.
    if not (set(map(type, data)) <= _NUMBER_TYPES and -FLOAT32_MAX <= min(data) and max(data) <= FLOAT32_MAX):
        locate_bad_number(data, "inputs[0].data")
    return data


_JSON_DTYPES = {"FP32": np.float32, "FP64": np.float64}


def _input_rows(tensor, binary, n_features: int, limit: int, dtype) -> np.ndarray:
    if type(tensor) is not dict:
        require_object(tensor, "inputs[0]")
    datatype = tensor.get("datatype")
    if type(datatype) is not str or datatype not in _JSON_DTYPES:
        raise InputError("inputs[0].datatype", f"must be one of {', '.join(INPUT_DATATYPES)}, got {datatype!r}")
    n_rows, n_cols = _shape(tensor, n_features, limit)
    size = v2_binary.binary_size(tensor, "inputs[0]") if "parameters" in tensor else None
    if size is not None:
        return _binary_rows(tensor, binary, size, datatype, n_rows, n_cols, dtype)
    if binary is not None and len(binary):
        raise InputError("inputs[0].parameters.binary_data_size", "is required when binary data follows the "
                                                                  "JSON header", status=400)
    values = _json_values(tensor.get("data"), n_rows, n_cols)
    if datatype == "FP32" and dtype is not np.float32:  # the values the client meant to send
        return np.array(values, dtype=np.float32).reshape(n_rows, n_cols).astype(dtype)
    # FP64 values were range-checked against float32, so a float32 runtime takes them directly.
    return np.array(values, dtype=dtype).reshape(n_rows, n_cols)


def _binary_rows(tensor, binary, size: int, datatype: str, n_rows: int, n_cols: int, dtype) -> np.ndarray:
    itemsize = v2_binary.NUMPY_DTYPES[datatype].itemsize
    if size != n_rows * n_cols * itemsize:
        raise InputError("inputs[0].parameters.binary_data_size",
                         f"must be {n_rows * n_cols * itemsize} bytes for shape {[n_rows, n_cols]} of "
                         f"{datatype}, got {size}")
    raw = v2_binary.take_input(binary, 0, size, "inputs[0]")
    X = np.frombuffer(raw, dtype=v2_binary.NUMPY_DTYPES[datatype]).reshape(n_rows, n_cols)
    check_finite_array(X, "inputs[0].data")
    return X.astype(dtype)  # a copy: the request's bytes are not kept


def _requested_outputs(document: dict, task: Task) -> list[tuple[str, bool]]:
    """(name, as binary) of every output to return."""
    parameters = document.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise InputError("parameters", f"must be an object, got {json_type(parameters)}")
    binary = bool(parameters.get("binary_data_output", False)) if parameters else False
    outputs = document.get("outputs")
    names = task.outputs
    if outputs is None:
        return [(name, binary) for name in names]
    if type(outputs) is not list:
        raise InputError("outputs", f"must be an array of {{\"name\": ...}} objects, got {json_type(outputs)}")
    chosen = []
    for i, output in enumerate(outputs):
        name = output.get("name") if type(output) is dict else None
        if name not in names:
            raise InputError(f"outputs[{i}].name", f"must be one of {', '.join(names)}, got {name!r}")
        own = output.get("parameters")
        if own is not None and type(own) is not dict:
            raise InputError(f"outputs[{i}].parameters", f"must be an object, got {json_type(own)}")
        chosen.append((name, bool(own.get("binary_data", binary)) if own else binary))
    return chosen or [(name, binary) for name in names]


def _one_named_output(document: dict, model) -> list[tuple[str, bool]] | None:
    """What most clients ask, ``"outputs": [{"name": N}]`` with no parameters anywhere, without the
    general walk; None for anything else (``_requested_outputs`` then checks it)."""
    if "parameters" in document:
        return None
    outputs = document.get("outputs")
    if type(outputs) is list and len(outputs) == 1:
        only = outputs[0]
        if type(only) is dict and len(only) == 1:
            name = only.get("name")
            if type(name) is str:
                return model.v2_single_outputs.get(name)
    return None


# Up to this many values an output goes to orjson as a list of Python floats (the same float64
# values, built faster than a float64 copy of the array); above it, as a numpy array.
SMALL_OUTPUT_VALUES = 64


def _float64_values(out: np.ndarray):
    if out.size <= SMALL_OUTPUT_VALUES:
        return out.ravel().tolist()
    return out.astype(np.float64, copy=False).reshape(-1)


def _labels(task: Task, out: np.ndarray) -> tuple[list, object]:
    """The label per row, and the outcome the metrics count (positive rows, or class indices)."""
    classes = task.classes
    if task.kind == "binary":
        threshold = task.threshold
        positive, other = classes[task.positive_index], classes[1 - task.positive_index]
        flags = [p >= threshold for p in out[:, task.positive_index].tolist()]
        return [positive if f else other for f in flags], sum(flags)
    chosen = out.argmax(axis=1).tolist()
    return [classes[i] for i in chosen], chosen


_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


async def infer(call: Call) -> HotResult:
    state = call.state
    model = state.model
    if call.json_length is None:
        binary = None
        document = parse_object(call.body)
    else:
        json_part, binary = v2_binary.split_body(call.body, call.json_length)
        document = parse_object(json_part)
    request_id = document.get("id")
    if request_id is not None:
        call.request_id = check_request_id(request_id, "id")
    if call.model_name != model.name or call.model_version is not None:
        check_target(state, call.model_name, call.model_version)
    task = model.task
    if "outputs" not in document and "parameters" not in document:
        requested = model.v2_default_outputs
    else:
        requested = _one_named_output(document, model) or _requested_outputs(document, task)
    inputs = document.get("inputs")
    if type(inputs) is not list or len(inputs) != 1:
        got = f"{len(inputs)} tensors" if type(inputs) is list else json_type(inputs)
        raise InputError("inputs", f"must be an array of exactly 1 tensor of shape [N, {model.n_features}], got {got}")
    X = _input_rows(inputs[0], binary, model.n_features, state.config.max_batch_instances, model.runtime.input_dtype)
    out = state.predict_inline(X) if state.inline else await state.predict(X)
    n = len(out)
    labels = None
    if task.kind == "binary":  # the positive rows, without building labels nobody asked for
        threshold = task.threshold
        if n == 1:
            outcome = int(float(out[0, task.positive_index]) >= threshold)
        else:
            outcome = len([p for p in out[:, task.positive_index].tolist() if p >= threshold])
    elif task.is_classifier:
        labels, outcome = _labels(task, out)
    else:
        outcome = out.tolist()
    outputs = []
    chunks = None
    for name, as_binary in requested:
        if name == PROBA_OUTPUT:
            datatype, shape, values = "FP64", [n, out.shape[1]], _float64_values(out)
        elif task.is_classifier:
            if labels is None:
                labels = _labels(task, out)[0]
            datatype, shape, values = task.label_datatype, [n, 1], labels
        else:
            datatype, shape, values = "FP64", [n, 1], _float64_values(out)
        if as_binary:
            raw = v2_binary.tensor_bytes(datatype, values)
            chunks = [raw] if chunks is None else [*chunks, raw]
            outputs.append({"name": name, "shape": shape, "datatype": datatype,
                            "parameters": {"binary_data_size": len(raw)}})
        else:
            outputs.append({"name": name, "shape": shape, "datatype": datatype, "data": values})
    body = orjson.dumps({"model_name": model.name, "model_version": model.version, "id": call.rid(),
                         "parameters": {}, "outputs": outputs}, option=_DUMP_OPTIONS)
    if chunks is None:
        return HotResult(body, n, outcome)
    head = b"%s: %d\r\n" % (v2_binary.HEADER_LENGTH, len(body))
    return HotResult(b"".join([body, *chunks]), n, outcome, head, v2_binary.BINARY_CONTENT_TYPE)


def router(state) -> APIRouter:
    api = APIRouter()

    def not_found(request: Request, message: str) -> JSONResponse:
        return error_response(request, 404, message, "model")

    def model_or_error(request: Request, name: str, version: str | None):
        if state.model is None:
            return error_response(request, 503, f"model not ready: {state.not_ready_reason}", None)
        try:
            check_target(state, name, version)
        except ModelNotFound as exc:
            return not_found(request, str(exc))
        return None

    @api.get("/v2")
    async def server_metadata():
        return {"name": SERVER_NAME, "version": package_version(), "extensions": EXTENSIONS}

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
        task = model.task
        if task.is_classifier:
            outputs = [{"name": LABEL_OUTPUT, "datatype": task.label_datatype, "shape": [-1, 1]},
                       {"name": PROBA_OUTPUT, "datatype": "FP64", "shape": [-1, len(task.classes)]}]
        else:
            outputs = [{"name": task.output_name, "datatype": "FP64", "shape": [-1, 1]}]
        return {
            "name": model.name,
            "versions": [model.version],
            "platform": f"mlserving-{model.format}",
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, model.n_features],
                        "parameters": {"feature_names": model.feature_names}}],
            "outputs": outputs,
            "parameters": task.describe(),
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

"""The seed's prediction API: ``POST /predict`` and ``POST /predict/batch``, shaped by the model's task.

/predict        {"features": [n numbers] | {name: number}, "request_id": "..."?}
             -> {"request_id", <the row's answer>, "model_name", "model_version"}
/predict/batch  {"instances": [[n numbers] | {name: number}, ...], "request_id": "..."?}
             -> {"request_id", "predictions": [<one answer per row>, ...], "model_name", "model_version"}

A row's answer: binary {"is_fraud", "fraud_probability"} (the positive class's probability
against the decision threshold), multiclass {"label", "probabilities": {label: p}}, regression
{"prediction"}.
"""

import numpy as np
import orjson
from mlserving.server.hotpath import Call, HotResult
from mlserving.server.tasks import BINARY, MULTICLASS
from mlserving.server.validation import (
    InputError,
    check_request_id,
    feature_row,
    parse_object,
)


def _request_id(document: dict, call: Call) -> None:
    value = document.get("request_id")
    if value is not None:
        call.request_id = check_request_id(value)


def answers(task, out: np.ndarray) -> tuple[list[dict], object]:
    """One answer per row, and the outcome the metrics count (see ServerMetrics.success)."""
    if task.kind == BINARY:
        probabilities = out[:, task.positive_index].tolist()
        threshold = task.threshold
        rows = [{"is_fraud": p >= threshold, "fraud_probability": p} for p in probabilities]
        return rows, sum(1 for p in probabilities if p >= threshold)
    if task.kind == MULTICLASS:
        chosen = out.argmax(axis=1).tolist()
        keys = [str(c) for c in task.classes]
        classes = task.classes
        return [{"label": classes[i], "probabilities": dict(zip(keys, row, strict=True))}
                for i, row in zip(chosen, out.tolist(), strict=True)], chosen
    values = out.tolist()
    return [{"prediction": v} for v in values], values


async def predict(call: Call) -> HotResult:
    document = parse_object(call.body)
    if "request_id" in document:
        _request_id(document, call)
    model = call.state.model
    features = document.get("features")
    if features is None:
        raise InputError("features", f"is required: an array of {model.n_features} numbers")
    row = feature_row(features, model.n_features, model.feature_index, "features")
    out = await call.state.predict(call.state.to_array([row]))
    task = model.task
    if task.kind == BINARY:  # the common case, without building lists
        probability = float(out[0, task.positive_index])
        is_fraud = probability >= task.threshold
        body = orjson.dumps({"request_id": call.rid(), "is_fraud": is_fraud, "fraud_probability": probability,
                             "model_name": model.name, "model_version": model.version})
        return HotResult(body, 1, int(is_fraud))
    rows, outcome = answers(task, out)
    body = orjson.dumps({"request_id": call.rid(), **rows[0], "model_name": model.name,
                         "model_version": model.version})
    return HotResult(body, 1, outcome)


async def predict_batch(call: Call) -> HotResult:
    document = parse_object(call.body)
    _request_id(document, call)
    model = call.state.model
    limit = call.state.config.max_batch_instances
    instances = document.get("instances")
    if instances is None:
        raise InputError("instances", f"is required: an array of rows of {model.n_features} numbers")
    if type(instances) is not list:
        raise InputError("instances", "must be an array of rows")
    if not instances:
        raise InputError("instances", "must hold at least 1 row, got 0")
    if len(instances) > limit:
        raise InputError("instances", f"must hold at most {limit} rows (MAX_BATCH_INSTANCES), got {len(instances)}",
                         status=413)
    rows = [feature_row(r, model.n_features, model.feature_index, f"instances[{i}]") for i, r in enumerate(instances)]
    out = await call.state.predict(call.state.to_array(rows))
    predictions, outcome = answers(model.task, out)
    body = orjson.dumps({
        "request_id": call.rid(),
        "predictions": predictions,
        "model_name": model.name,
        "model_version": model.version,
    })
    return HotResult(body, len(rows), outcome)
